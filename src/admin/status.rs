//! `/`: the status page for a person. Server-rendered HTML that reloads itself every few
//! seconds: the config in effect and the last reload, each source's requests, last status
//! and token schedule, the callers and their key sets.
//!
//! It shows what `/config` and `/metrics` show, never a secret, a caller's token hash or a
//! JWT subject's token. Sources are filtered (`?q=`) and paged (`?page=`) here, so a file
//! of 100,000 sources renders one page of rows and one pass over the ids.
//!
//! Every value from the config or the request goes through [`Escaped`]: a source id or a
//! filter string is text, never markup. The page has no script, and its
//! `Content-Security-Policy` allows none.

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::token_cache::CacheState;
use crate::caller::CallerKind;
use crate::config::spec::Access;
use crate::live::{Snapshot, Source};
use crate::watch::{LastReload, ReloadOutcome, ReloadStats};

/// Sources per page.
pub const PAGE: usize = 100;
/// Seconds between the page's own reloads.
const REFRESH_S: u32 = 5;
/// A filter longer than this is cut (no source id is this long anyway).
const MAX_FILTER: usize = 256;

/// What the page was asked for: `?q=` (a substring of the id or upstream, any case) and
/// `?page=` (from 1).
#[derive(Debug, PartialEq, Eq)]
pub struct Query {
    pub filter: String,
    pub page: usize,
}

impl Default for Query {
    fn default() -> Self {
        Self {
            filter: String::new(),
            page: 1,
        }
    }
}

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        let mut parsed = Self::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*key {
                "q" => parsed.filter = value.trim().chars().take(MAX_FILTER).collect(),
                "page" => parsed.page = value.parse().unwrap_or(1).max(1),
                _ => {}
            }
        }
        parsed
    }
}

/// Renders the page for `snapshot` (and the reloader's record, when there is one).
pub fn render(snapshot: &Snapshot, reloads: Option<&ReloadStats>, query: &Query) -> String {
    let mut out = String::with_capacity(32 * 1024);
    // Writing to a String cannot fail.
    let _ = write_page(&mut out, snapshot, reloads, query);
    out
}

fn write_page(
    out: &mut String,
    snapshot: &Snapshot,
    reloads: Option<&ReloadStats>,
    query: &Query,
) -> fmt::Result {
    write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>credproxy status</title><style>{STYLE}</style></head><body>\
         <header><h1>credproxy</h1><p>refreshes every {REFRESH_S} s · <a href=\"/metrics\">metrics</a> · \
         <a href=\"/config\">config JSON</a></p></header>"
    )?;
    write_config(out, snapshot, reloads)?;
    write_sources(out, snapshot, query)?;
    write_callers(out, snapshot)?;
    out.push_str("</body></html>\n");
    Ok(())
}

fn write_config(
    out: &mut String,
    snapshot: &Snapshot,
    reloads: Option<&ReloadStats>,
) -> fmt::Result {
    let meta = &snapshot.meta;
    write!(
        out,
        "<section id=\"config\"><h2>Config</h2><dl>\
         <dt>File</dt><dd><code>{}</code></dd>\
         <dt>Generation</dt><dd>{}</dd>\
         <dt>Content SHA-256</dt><dd><code>{}</code></dd>\
         <dt>Loaded</dt><dd>{}</dd>",
        Escaped(&meta.path.display().to_string()),
        meta.generation,
        crate::digest::hex(&meta.content_sha256),
        Ago(meta.loaded_at),
    )?;
    out.push_str("<dt>Last reload</dt><dd>");
    match reloads.and_then(ReloadStats::last) {
        None => out.push_str("none since the start"),
        Some(LastReload {
            at_unix,
            outcome,
            problems,
        }) => {
            let (class, what) = match outcome {
                ReloadOutcome::Applied(generation) => {
                    ("ok", format!("applied (generation {generation})"))
                }
                ReloadOutcome::Unchanged => ("ok", "unchanged".to_owned()),
                ReloadOutcome::Rejected => (
                    "bad",
                    "rejected; the config above stays in effect".to_owned(),
                ),
            };
            let at = UNIX_EPOCH + Duration::from_secs(at_unix);
            write!(out, "<span class=\"{class}\">{what}</span>, {}", Ago(at))?;
            if let Some(problems) = problems {
                write!(out, "<pre class=\"problems\">{}</pre>", Escaped(&problems))?;
            }
        }
    }
    out.push_str("</dd></dl></section>");
    Ok(())
}

fn write_sources(out: &mut String, snapshot: &Snapshot, query: &Query) -> fmt::Result {
    let all = snapshot.sources();
    let needle = query.filter.to_lowercase();
    // One buffer for every upstream's text: the filter runs over all sources.
    let mut upstream = String::new();
    let mut matches = |source: &&std::sync::Arc<Source>| {
        if needle.is_empty() || contains_ignoring_case(&source.id, &needle) {
            return true;
        }
        upstream.clear();
        let _ = write!(upstream, "{}", source.upstream);
        contains_ignoring_case(&upstream, &needle)
    };
    // One pass counts the matches and keeps only the page's rows.
    let skip = query.page.saturating_sub(1).saturating_mul(PAGE);
    let mut total = 0usize;
    let mut rows = Vec::with_capacity(PAGE);
    for source in all.iter().filter(&mut matches) {
        if total >= skip && rows.len() < PAGE {
            rows.push(source);
        }
        total += 1;
    }
    write!(
        out,
        "<section id=\"sources\"><h2>Sources <small>{} in the config</small></h2>\
         <form method=\"get\" action=\"/\"><input type=\"search\" name=\"q\" value=\"{}\" \
         placeholder=\"filter by id or upstream\" aria-label=\"filter sources\"> \
         <button type=\"submit\">Filter</button></form>",
        all.len(),
        Escaped(&query.filter),
    )?;
    let (from, to) = match rows.len() {
        0 => (0, 0),
        n => (skip + 1, skip + n),
    };
    write!(
        out,
        "<p class=\"range\">showing {from}–{to} of {total}{}</p>",
        if needle.is_empty() { "" } else { " matching" },
    )?;
    out.push_str(
        "<table><thead><tr><th>Source</th><th>Auth</th><th>Upstream</th>\
         <th class=\"n\">2xx</th><th class=\"n\">3xx</th><th class=\"n\">4xx</th><th class=\"n\">5xx</th>\
         <th>Last status</th><th>Token</th></tr></thead><tbody>",
    );
    let now = tokio::time::Instant::now();
    for source in rows {
        let counts = &source.metrics.requests;
        write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>",
            Escaped(&source.id),
            source.auth_type.as_str(),
            Escaped(&source.upstream.to_string()),
            counts.class(2),
            counts.class(3),
            counts.class(4),
            counts.class(5),
        )?;
        match source.metrics.last_status() {
            Some(status) => {
                let class = if status < 400 { "ok" } else { "bad" };
                write!(out, "<span class=\"{class}\">{status}</span>")?;
            }
            None => out.push('–'),
        }
        out.push_str("</td><td>");
        match source.credentials.cache() {
            Some(cache) => write_token(out, cache, now)?,
            None => out.push_str("static"),
        }
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table>");
    write_pager(out, query, total)?;
    out.push_str("</section>");
    Ok(())
}

/// A token source's cell: time to expiry, next refresh, last refresh result.
fn write_token(out: &mut String, cache: &dyn CacheState, now: tokio::time::Instant) -> fmt::Result {
    match cache.schedule() {
        Some(schedule) if schedule.usable_until > now => {
            write!(
                out,
                "expires in <span class=\"countdown\">{}</span>",
                Seconds(schedule.usable_until - now)
            )?;
            if schedule.refresh_at > now {
                write!(out, " · refresh in {}", Seconds(schedule.refresh_at - now))?;
            } else {
                out.push_str(" · refresh due");
            }
        }
        Some(_) => out.push_str("<span class=\"bad\">expired</span>"),
        None if cache.needs_subject() => out.push_str("one per caller subject"),
        None => out.push_str("none yet"),
    }
    match cache.stats().last_result() {
        Some(true) => out.push_str(" · last refresh <span class=\"ok\">ok</span>"),
        Some(false) => out.push_str(" · last refresh <span class=\"bad\">failed</span>"),
        None => {}
    }
    Ok(())
}

fn write_pager(out: &mut String, query: &Query, total: usize) -> fmt::Result {
    let pages = total.div_ceil(PAGE).max(1);
    if pages == 1 {
        return Ok(());
    }
    let link = |page: usize| {
        let mut href = form_urlencoded::Serializer::new(String::new());
        if !query.filter.is_empty() {
            href.append_pair("q", &query.filter);
        }
        href.append_pair("page", &page.to_string());
        format!("/?{}", href.finish())
    };
    out.push_str("<nav class=\"pager\">");
    if query.page > 1 {
        write!(
            out,
            "<a rel=\"prev\" href=\"{}\">‹ previous</a> ",
            Escaped(&link(query.page - 1))
        )?;
    }
    write!(out, "page {} of {pages}", query.page.min(pages))?;
    if query.page < pages {
        write!(
            out,
            " <a rel=\"next\" href=\"{}\">next ›</a>",
            Escaped(&link(query.page + 1))
        )?;
    }
    out.push_str("</nav>");
    Ok(())
}

fn write_callers(out: &mut String, snapshot: &Snapshot) -> fmt::Result {
    let Some(callers) = &snapshot.callers else {
        out.push_str(
            "<section id=\"callers\"><h2>Callers</h2><p>No <code>callers:</code> in the config: \
             every client of the proxy listener may use every source.</p></section>",
        );
        return Ok(());
    };
    write!(
        out,
        "<section id=\"callers\"><h2>Callers <small>{}</small></h2><table><thead><tr>\
         <th>Caller</th><th>Identified by</th><th>Sources</th><th class=\"n\">Rules</th></tr></thead><tbody>",
        callers.len()
    )?;
    for caller in callers.iter() {
        let identified = match &caller.kind {
            CallerKind::Token => "token".to_owned(),
            CallerKind::Jwt { issuer, .. } => format!("JWT from {issuer}"),
        };
        let sources = match caller.access() {
            Access::All => "all".to_owned(),
            Access::Only(ids) => ids.iter().map(|id| &**id).collect::<Vec<_>>().join(", "),
        };
        write!(
            out,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td class=\"n\">{}</td></tr>",
            Escaped(&caller.name),
            Escaped(&identified),
            Escaped(&sources),
            caller.rules().map_or(0, <[_]>::len),
        )?;
    }
    out.push_str("</tbody></table>");
    let mut remote = callers.remote_keys().peekable();
    if remote.peek().is_some() {
        out.push_str(
            "<h3 id=\"jwks\">Key sets</h3><table><thead><tr><th>Issuer</th><th>jwks_url</th>\
             <th>Keys</th><th class=\"n\">Failed fetches</th></tr></thead><tbody>",
        );
        for keys in remote {
            let state = match keys.current() {
                Some(set) => format!("<span class=\"ok\">{} loaded</span>", set.keys.len()),
                None => "<span class=\"bad\">not fetched yet</span>".to_owned(),
            };
            write!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td><td>{state}</td><td class=\"n\">{}</td></tr>",
                Escaped(&keys.issuer),
                Escaped(&keys.url.to_string()),
                keys.failures.load(std::sync::atomic::Ordering::Relaxed),
            )?;
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
    Ok(())
}

/// `needle` is lower case already. Jumps between candidates for its first byte (either
/// case) with `memchr`: the filter runs over every id and upstream of a large file.
fn contains_ignoring_case(haystack: &str, needle: &str) -> bool {
    let (haystack, needle) = (haystack.as_bytes(), needle.as_bytes());
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let mut from = 0;
    while let Some(found) = memchr::memchr2(first, first.to_ascii_uppercase(), &haystack[from..]) {
        let start = from + found;
        match haystack.get(start + 1..start + needle.len()) {
            Some(candidate) if candidate.eq_ignore_ascii_case(rest) => return true,
            Some(_) => from = start + 1,
            None => return false,
        }
    }
    false
}

/// Text made safe for HTML element content and quoted attribute values.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// A duration to the second, as `1h 2m 3s`.
struct Seconds(Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rounded = Duration::from_secs(self.0.as_secs());
        write!(f, "{}", humantime::format_duration(rounded))
    }
}

/// A time, as UTC and how long ago.
struct Ago(SystemTime);

impl fmt::Display for Ago {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ago = SystemTime::now().duration_since(self.0).unwrap_or_default();
        write!(
            f,
            "<time datetime=\"{at}\">{at}</time> ({} ago)",
            Seconds(ago),
            at = humantime::format_rfc3339_seconds(self.0),
        )
    }
}

const STYLE: &str = "\
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:80rem;padding:1rem 1.5rem;color:#1d2330;background:#f6f7f9}\
header{display:flex;align-items:baseline;gap:1rem;border-bottom:2px solid #2f6fde;margin-bottom:1rem}\
h1{margin:.2rem 0;font-size:1.5rem}h2{font-size:1.15rem;margin:1.4rem 0 .5rem}h2 small{color:#667;font-weight:normal}\
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:.3rem 1rem 1rem;margin-bottom:1rem}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}dt{color:#667}dd{margin:0}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eceff3;vertical-align:top}\
th{background:#f0f2f5;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
code{font:12.5px ui-monospace,monospace;word-break:break-all}\
.ok{color:#17803d;font-weight:600}.bad{color:#c02626;font-weight:600}\
pre.problems{background:#fff4f4;border-left:3px solid #c02626;padding:.5rem;white-space:pre-wrap;margin:.4rem 0 0}\
form{margin:.3rem 0}input{padding:.25rem .4rem;min-width:18rem}.range,.pager{color:#556;margin:.4rem 0}";

#[cfg(test)]
mod tests;

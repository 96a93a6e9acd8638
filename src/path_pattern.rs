//! Path patterns of caller rules (DESIGN §9): `/repos/acme/**`, `/pets/*`, compiled once
//! at load and matched against a request's rest path without allocating.
//!
//! Both sides are split on `/`, and compared segment by segment: `*` is one segment, `**`
//! any number (zero too), anything else is a literal. A literal is compared with the
//! segment percent-decoded (`%61cme` is `acme`, as the upstream will read it), case
//! included. A segment that decodes to something holding `/` or `\` (`a%2Fb`, `a\b`)
//! could be split by the upstream, so it matches only `**`.

use percent_encoding::percent_decode;

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Box<[Segment]>,
    /// As written, for `check` and `/config`.
    text: Box<str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Decoded bytes.
    Literal(Box<[u8]>),
    One,
    Any,
}

impl PathPattern {
    /// Parses a pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err("must start with `/`");
        };
        if text.contains(['?', '#']) {
            return Err("matches the path only: leave out `?` and `#` (the query is not matched)");
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let segment = match *part {
                "**" => Segment::Any,
                "*" => Segment::One,
                // `/` itself, and a trailing slash (`/repos/`), are an empty last segment.
                "" if i == last => Segment::Literal(Box::default()),
                "" => return Err("has an empty segment (`//`)"),
                part if part.contains('*') => {
                    return Err("uses `*` inside a segment; `*` and `**` stand for whole segments")
                }
                part => {
                    let decoded: Vec<u8> = percent_decode(part.as_bytes()).collect();
                    if decoded.contains(&b'/') || decoded.contains(&b'\\') {
                        return Err(
                            "has a segment holding an encoded `/` or `\\`, which only `**` matches",
                        );
                    }
                    if decoded == b"." || decoded == b".." {
                        return Err("has a `.` or `..` segment, which credproxy never forwards");
                    }
                    Segment::Literal(decoded.into())
                }
            };
            segments.push(segment);
        }
        Ok(Self {
            segments: segments.into(),
            text: text.into(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `rest` (the path after `/{source_id}`: empty or starting with `/`, without
    /// the query) matches. The source's root is `/` whether or not the request ends in one.
    ///
    /// Wildcard matching with backtracking to the last `**` only: each `**` matches any
    /// run of segments and everything else exactly one, so this is linear in practice and
    /// never worse than segments × pattern length.
    pub fn matches(&self, rest: &str) -> bool {
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        let pattern = &self.segments;
        let mut segments = rest.split('/');
        let mut p = 0;
        // After the last `**`: where the pattern resumes, and where the request did.
        let mut resume: Option<(usize, std::str::Split<'_, char>)> = None;
        loop {
            let mut ahead = segments.clone();
            let Some(segment) = ahead.next() else {
                return pattern[p..].iter().all(|s| *s == Segment::Any);
            };
            match pattern.get(p) {
                Some(Segment::Any) => {
                    p += 1;
                    resume = Some((p, segments.clone()));
                    continue;
                }
                Some(one) if one.matches(segment) => {
                    p += 1;
                    segments = ahead;
                    continue;
                }
                _ => {}
            }
            // A mismatch: the last `**` takes one more segment, or there is no match.
            let Some((after_any, from)) = &mut resume else {
                return false;
            };
            if from.next().is_none() {
                return false;
            }
            p = *after_any;
            segments = from.clone();
        }
    }
}

impl Segment {
    /// Whether this one-segment pattern (`*` or a literal) matches `segment`.
    fn matches(&self, segment: &str) -> bool {
        match self {
            Segment::Any => true,
            Segment::One => !segment.is_empty() && !splits(segment),
            Segment::Literal(literal) => {
                percent_decode(segment.as_bytes()).eq(literal.iter().copied())
            }
        }
    }
}

/// Whether an upstream could read `segment` as more than one.
fn splits(segment: &str) -> bool {
    segment.contains('\\')
        || (segment.contains('%')
            && percent_decode(segment.as_bytes()).any(|b| b == b'/' || b == b'\\'))
}

impl std::fmt::Display for PathPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, path: &str) -> bool {
        PathPattern::parse(pattern).expect("pattern").matches(path)
    }

    #[test]
    fn double_star_is_any_number_of_segments_including_none() {
        for path in [
            "/repos/acme",
            "/repos/acme/",
            "/repos/acme/x",
            "/repos/acme/x/y/z",
        ] {
            assert!(matches("/repos/acme/**", path), "{path}");
        }
        for path in ["/repos/acmeX", "/repos", "/repos/other/acme", "", "/"] {
            assert!(!matches("/repos/acme/**", path), "{path}");
        }
        assert!(matches("/**", ""));
        assert!(matches("/**", "/anything/at/all"));
        assert!(matches("/a/**/z", "/a/z"));
        assert!(matches("/a/**/z", "/a/b/c/z"));
        assert!(!matches("/a/**/z", "/a/b/c/z/d"));
        assert!(matches("/**/issues/*", "/repos/acme/issues/7"));
        assert!(matches("/a/**/b/**/c", "/a/x/b/y/b/c"));
        assert!(!matches("/a/**/b/**/c", "/a/x/c/b"));
    }

    #[test]
    fn single_star_is_exactly_one_non_empty_segment() {
        assert!(matches("/pets/*", "/pets/7"));
        assert!(!matches("/pets/*", "/pets"));
        assert!(!matches("/pets/*", "/pets/"));
        assert!(!matches("/pets/*", "/pets/7/photos"));
        assert!(matches("/*/photos", "/7/photos"));
        assert!(!matches("/pets/*", "/pets//"));
    }

    #[test]
    fn literals_are_case_sensitive_and_compared_decoded() {
        assert!(matches("/repos/acme", "/repos/acme"));
        assert!(!matches("/repos/acme", "/repos/ACME"));
        assert!(!matches("/repos/acme", "/repos/acme/"));
        assert!(matches("/repos/acme", "/repos/%61cme"));
        assert!(matches("/files/a%20b", "/files/a b"));
        assert!(matches("/", ""));
        assert!(matches("/", "/"));
        assert!(!matches("/", "/x"));
        assert!(matches("/repos/", "/repos/"));
        assert!(!matches("/repos/", "/repos"));
        assert!(!matches("/repos/acme", "/repos/acme;x"));
    }

    #[test]
    fn encoded_slashes_match_only_double_star() {
        for tricky in ["a%2Fb", "a%2fb", "a%5Cb", "a%5cb", "a\\b"] {
            let path = format!("/repos/{tricky}/issues");
            assert!(!matches("/repos/*/issues", &path), "{path}");
            assert!(matches("/repos/**", &path), "{path}");
            assert!(!matches("/repos/a/b/issues", &path), "{path}");
        }
        // `acme%2F..%2Fother` is one segment to credproxy and three to some upstreams.
        assert!(!matches(
            "/repos/acme/**",
            "/repos/acme%2F..%2Fother/secrets"
        ));
    }

    #[test]
    fn bad_patterns_say_why() {
        for (bad, why) in [
            ("repos/**", "start with `/`"),
            ("/a//b", "empty segment"),
            ("/a/b*", "inside a segment"),
            ("/a/***", "inside a segment"),
            ("/a?x=1", "query"),
            ("/a%2Fb", "encoded `/`"),
            ("/a/../b", "`..`"),
            ("/a/%2e", "`..`"),
        ] {
            let err = PathPattern::parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn many_stars_stay_cheap() {
        let pattern = format!("/{}x", "**/".repeat(16));
        let path = format!("/{}", "a/".repeat(64));
        assert!(!matches(&pattern, &path));
        assert!(matches(&pattern, &format!("{path}x")));
    }
}

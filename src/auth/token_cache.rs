//! Cached OAuth2 tokens of one source: single flight, refresh ahead, bounded per subject.
//!
//! A hit is lock-free: one `ArcSwapOption` load (plus, for token exchange, one lookup in
//! the bounded subject map). A miss takes the slot's async mutex, so concurrent misses
//! for one key make exactly one token request; waiters that queued behind a failed request
//! get its error instead of each trying again.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use tokio::time::Instant;

use super::lifetime::{schedule, Schedule};
use super::oauth2::{IssuedToken, TokenClient, TokenError};
use super::subject::Subject;
use super::TokenOutcome;
use crate::config::spec::{Grant, OAuthSpec};
use crate::secret::{sensitive_header_value, Secret};
use crate::transport::SourceTls;

/// Where a token source gets its tokens: the token endpoint ([`TokenClient`]), or a fake
/// in tests. The cache's rules (single flight, refresh ahead, expiry) do not depend on
/// which.
pub trait TokenIssuer: Clone + Send + Sync + 'static {
    fn issue(
        &self,
        source: &TokenSource,
        subject: Option<&Secret>,
    ) -> impl std::future::Future<Output = Result<IssuedToken, TokenError>> + Send;
}

impl TokenIssuer for TokenClient {
    fn issue(
        &self,
        source: &TokenSource,
        subject: Option<&Secret>,
    ) -> impl std::future::Future<Output = Result<IssuedToken, TokenError>> + Send {
        self.fetch(&source.settings, source.tls.as_ref(), subject)
    }
}

/// At most this many subjects' tokens are cached per token_exchange source; the least
/// useful are evicted first (moka's TinyLFU).
pub const SUBJECT_CACHE_CAPACITY: u64 = 10_000;
/// A subject not seen for this long is dropped even if its token is still valid.
const SUBJECT_IDLE: Duration = Duration::from_secs(3600);
/// After a failed background refresh, wait this long before trying again (the token is
/// still served meanwhile, until its `usable_until`).
const REFRESH_RETRY: Duration = Duration::from_secs(5);
/// At most one forced refresh (an upstream refused a cached token) per cache key in this
/// window: otherwise any caller could make each request cost a token request, and drop
/// the token that every caller shares, just by calling a path that answers 401.
pub const FORCED_REFRESH_HOLD_DOWN: Duration = Duration::from_secs(5);

/// The token side of one OAuth2 source.
pub struct TokenSource {
    source_id: Arc<str>,
    settings: OAuthSpec,
    /// The token endpoint's own TLS client (its CA, the client certificate), if any.
    tls: Option<SourceTls>,
    slots: Slots,
    pub stats: TokenStats,
    /// What the slots' `forced_at` times count from.
    epoch: Instant,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("source_id", &self.source_id)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

enum Slots {
    /// client_credentials, or an exchange with a configured subject: one token.
    Single(Arc<Slot>),
    /// An exchange of each caller's token: one slot per subject hash.
    PerSubject(moka::future::Cache<[u8; 32], Arc<Slot>>),
}

/// One cache key's token and the machinery that keeps it fresh.
#[derive(Default)]
struct Slot {
    current: ArcSwapOption<CachedToken>,
    /// Held while a token request for this key is in flight.
    fetch: tokio::sync::Mutex<()>,
    /// The last failure, for waiters that queued behind it.
    failure: ArcSwapOption<Failure>,
    /// Token requests finished for this key, counted under `fetch`: a request that sees
    /// the count change while it waited for the lock waited for one of them.
    attempts: AtomicU64,
    refreshing: AtomicBool,
    /// When a token of this key was last dropped after an upstream 401: milliseconds since
    /// the source's epoch, plus one (0: never).
    forced_at: AtomicU64,
}

struct CachedToken {
    /// `Bearer <token>`, marked sensitive.
    header: HeaderValue,
    schedule: Schedule,
}

struct Failure {
    error: TokenError,
}

/// Counters for the metrics endpoint.
#[derive(Debug, Default)]
pub struct TokenStats {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub requests_ok: AtomicU64,
    pub requests_failed: AtomicU64,
    /// Cached tokens dropped after an upstream refused them.
    pub forced_refreshes: AtomicU64,
    /// Upstream refusals within the hold-down, answered without a new token.
    pub forced_refreshes_held: AtomicU64,
    /// 0: no token request yet; 1: the last one succeeded; 2: it failed.
    last_result: AtomicU8,
}

impl TokenStats {
    /// Whether the last token request succeeded, once there was one.
    pub fn last_result(&self) -> Option<bool> {
        match self.last_result.load(Ordering::Relaxed) {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        }
    }

    fn record(&self, ok: bool) {
        let counter = if ok {
            &self.requests_ok
        } else {
            &self.requests_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.last_result
            .store(if ok { 1 } else { 2 }, Ordering::Relaxed);
    }
}

/// What [`TokenSource::refused`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A newer token is (or is being) cached: retry with it.
    Replaced,
    /// The token was dropped: retry with a new one.
    Dropped,
    /// Another refusal dropped a token moments ago: answer the 401 as it is.
    HeldDown,
}

/// A token ready to inject, and what is needed to drop it after an upstream 401.
pub struct Token {
    pub header: HeaderValue,
    pub outcome: TokenOutcome,
    cached: Arc<CachedToken>,
    slot: Arc<Slot>,
}

impl TokenSource {
    pub fn new(source_id: Arc<str>, settings: OAuthSpec) -> Self {
        let per_subject = matches!(
            &settings.grant,
            Grant::TokenExchange(exchange) if exchange.subject_token.is_none()
        );
        let slots = if per_subject {
            Slots::PerSubject(
                moka::future::Cache::builder()
                    .max_capacity(SUBJECT_CACHE_CAPACITY)
                    .time_to_idle(SUBJECT_IDLE)
                    .build(),
            )
        } else {
            Slots::Single(Arc::default())
        };
        let tls = settings
            .token_tls
            .as_ref()
            .map(|profile| SourceTls::new(Arc::clone(&profile.config), profile.fingerprint));
        Self {
            source_id,
            settings,
            tls,
            slots,
            stats: TokenStats::default(),
            epoch: Instant::now(),
        }
    }

    pub fn settings(&self) -> &OAuthSpec {
        &self.settings
    }

    /// Until when the cached token may be injected, for sources with one token.
    pub fn usable_until(&self) -> Option<Instant> {
        match &self.slots {
            Slots::Single(slot) => slot
                .current
                .load()
                .as_ref()
                .map(|t| t.schedule.usable_until),
            Slots::PerSubject(_) => None,
        }
    }

    /// Whether each caller's bearer is exchanged (so a subject is needed per request).
    pub fn needs_subject(&self) -> bool {
        matches!(self.slots, Slots::PerSubject(_))
    }

    /// A token for `subject` (None unless [`Self::needs_subject`]): cached while usable,
    /// refreshed in the background once due, fetched (once for all waiters) otherwise.
    pub async fn token(
        self: &Arc<Self>,
        client: &impl TokenIssuer,
        subject: Option<&Subject>,
    ) -> Result<Token, TokenError> {
        let slot = self.slot(subject).await;
        let started = Instant::now();
        if let Some(cached) = slot.current.load_full() {
            if started < cached.schedule.usable_until {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                if started >= cached.schedule.refresh_at {
                    self.refresh_in_background(&slot, client, subject);
                }
                return Ok(Token::new(cached, TokenOutcome::Cached, slot));
            }
        }
        self.stats.cache_misses.fetch_add(1, Ordering::Relaxed);

        let seen = slot.attempts.load(Ordering::Acquire);
        let lock_holder = Arc::clone(&slot);
        let _in_flight = lock_holder.fetch.lock().await;
        // Whoever held the lock before may have fetched a token, or failed, meanwhile.
        let waited_for_one = slot.attempts.load(Ordering::Acquire) != seen;
        if let Some(cached) = slot.current.load_full() {
            if Instant::now() < cached.schedule.usable_until {
                let outcome = if waited_for_one {
                    TokenOutcome::Fetched
                } else {
                    TokenOutcome::Cached
                };
                return Ok(Token::new(cached, outcome, slot));
            }
        }
        if let (true, Some(failure)) = (waited_for_one, slot.failure.load_full()) {
            return Err(failure.error.clone());
        }
        let result = self.fetch(client, subject).await;
        match &result {
            Ok(cached) => {
                slot.current.store(Some(Arc::clone(cached)));
                slot.failure.store(None);
            }
            Err(error) => slot.failure.store(Some(Arc::new(Failure {
                error: error.clone(),
            }))),
        }
        slot.attempts.fetch_add(1, Ordering::AcqRel);
        result.map(|cached| Token::new(cached, TokenOutcome::Fetched, slot))
    }

    /// What to do after the upstream refused `token` (a cached one): use the token that
    /// already replaced it, or drop it so that the next [`Self::token`] fetches a new one,
    /// or, within [`FORCED_REFRESH_HOLD_DOWN`] of the last such drop, nothing.
    pub fn refused(&self, token: &Token) -> Refusal {
        let slot = &token.slot;
        let still_current = slot
            .current
            .load()
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, &token.cached));
        if !still_current {
            return Refusal::Replaced;
        }
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let last = slot.forced_at.load(Ordering::Acquire);
        let hold_down = u64::try_from(FORCED_REFRESH_HOLD_DOWN.as_millis()).unwrap_or(u64::MAX);
        if last != 0 && now < last.saturating_add(hold_down) {
            self.stats
                .forced_refreshes_held
                .fetch_add(1, Ordering::Relaxed);
            return Refusal::HeldDown;
        }
        if slot
            .forced_at
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Another refusal of the same token won the race and is fetching.
            return Refusal::Replaced;
        }
        let _ = slot
            .current
            .compare_and_swap(&token.cached, None::<Arc<CachedToken>>);
        self.stats.forced_refreshes.fetch_add(1, Ordering::Relaxed);
        Refusal::Dropped
    }

    async fn slot(&self, subject: Option<&Subject>) -> Arc<Slot> {
        match (&self.slots, subject) {
            (Slots::Single(slot), _) => Arc::clone(slot),
            (Slots::PerSubject(slots), Some(subject)) => {
                slots.get_with(subject.key, async { Arc::default() }).await
            }
            // Callers resolve the subject first; without one, use a slot of its own.
            (Slots::PerSubject(_), None) => Arc::default(),
        }
    }

    fn refresh_in_background(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        client: &impl TokenIssuer,
        subject: Option<&Subject>,
    ) {
        if slot.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (this, slot, client, subject) = (
            Arc::clone(self),
            Arc::clone(slot),
            client.clone(),
            subject.cloned(),
        );
        tokio::spawn(async move {
            let in_flight = slot.fetch.lock().await;
            // A miss may have replaced the token while this task waited for the lock.
            let still_due = slot
                .current
                .load()
                .as_ref()
                .is_none_or(|c| Instant::now() >= c.schedule.refresh_at);
            if still_due {
                let result = this.fetch(&client, subject.as_ref()).await;
                slot.attempts.fetch_add(1, Ordering::AcqRel);
                match result {
                    Ok(cached) => slot.current.store(Some(cached)),
                    Err(error) => {
                        tracing::warn!(source = %this.source_id, %error, "Background token refresh failed; the current token is served until it must not be");
                        drop(in_flight);
                        tokio::time::sleep(REFRESH_RETRY).await;
                    }
                }
            }
            slot.refreshing.store(false, Ordering::Release);
        });
    }

    async fn fetch(
        &self,
        client: &impl TokenIssuer,
        subject: Option<&Subject>,
    ) -> Result<Arc<CachedToken>, TokenError> {
        let result = client.issue(self, subject.map(|s| &s.token)).await;
        let issued = match result {
            Ok(issued) => issued,
            Err(error) => {
                self.stats.record(false);
                return Err(error);
            }
        };
        let header = sensitive_header_value(&zeroize::Zeroizing::new(format!(
            "Bearer {}",
            issued.access_token.expose()
        )))
        .map_err(|_| {
            self.stats.record(false);
            TokenError::InvalidResponse { status: 200 }
        })?;
        self.stats.record(true);
        let schedule = schedule(
            Instant::now(),
            issued.lifetime,
            subject.and_then(|s| s.expires),
        );
        tracing::debug!(source = %self.source_id, lifetime_s = issued.lifetime.as_secs(), "Token fetched");
        Ok(Arc::new(CachedToken { header, schedule }))
    }
}

impl Token {
    fn new(cached: Arc<CachedToken>, outcome: TokenOutcome, slot: Arc<Slot>) -> Self {
        Self {
            header: cached.header.clone(),
            outcome,
            cached,
            slot,
        }
    }
}

#[cfg(test)]
mod tests;

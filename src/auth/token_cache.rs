//! Cached credentials of one source: single flight, refresh ahead, bounded per subject.
//! What is cached (an OAuth2 token's header, temporary AWS keys, a GitHub installation
//! token) and where it comes from is the [`Issue`] implementation's; the rules are here,
//! once.
//!
//! A hit is lock-free: one `ArcSwapOption` load (plus, for token exchange, one lookup in
//! the bounded subject map). A miss takes the slot's async mutex, so concurrent misses
//! for one key make exactly one request; waiters that queued behind a failed request get
//! its error instead of each trying again.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::time::Instant;

use super::lifetime::{schedule, Schedule};
use super::subject::Subject;
use super::token_client::TokenError;
use super::TokenOutcome;
use crate::secret::Secret;

/// A credential as issued, before the cache decides its schedule.
#[derive(Debug)]
pub struct Issued<V> {
    pub value: V,
    pub lifetime: Duration,
}

/// Where a cache's credentials come from: a source's settings, asked through `Client`.
pub trait Issue: Send + Sync + 'static {
    type Value: Clone + Send + Sync + 'static;
    /// What makes the requests (the token client; a fake in tests).
    type Client: Clone + Send + Sync + 'static;

    /// A new credential; `subject` is the caller's token, for a cache [`Keyed::PerSubject`].
    fn issue(
        &self,
        client: &Self::Client,
        subject: Option<&Secret>,
    ) -> impl Future<Output = Result<Issued<Self::Value>, TokenError>> + Send;
}

/// Whether a cache holds one credential or one per caller's subject token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyed {
    Single,
    PerSubject,
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

/// The cached credentials of one source.
pub struct CredentialCache<I: Issue> {
    source_id: Arc<str>,
    issuer: I,
    slots: Slots<I::Value>,
    pub stats: TokenStats,
    /// What the slots' `forced_at` times count from.
    epoch: Instant,
}

impl<I: Issue + std::fmt::Debug> std::fmt::Debug for CredentialCache<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("source_id", &self.source_id)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

enum Slots<V> {
    /// One credential for the source.
    Single(Arc<Slot<V>>),
    /// One per caller's subject token, keyed by its hash.
    PerSubject(moka::future::Cache<[u8; 32], Arc<Slot<V>>>),
}

/// One cache key's credential and the machinery that keeps it fresh.
struct Slot<V> {
    current: ArcSwapOption<Cached<V>>,
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

impl<V> Default for Slot<V> {
    fn default() -> Self {
        Self {
            current: ArcSwapOption::empty(),
            fetch: tokio::sync::Mutex::new(()),
            failure: ArcSwapOption::empty(),
            attempts: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            forced_at: AtomicU64::new(0),
        }
    }
}

struct Cached<V> {
    value: V,
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

/// What [`CredentialCache::refused`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A newer token is (or is being) cached: retry with it.
    Replaced,
    /// The token was dropped: retry with a new one.
    Dropped,
    /// Another refusal dropped a token moments ago: answer the 401 as it is.
    HeldDown,
}

/// A credential ready to use, and what is needed to drop it after an upstream 401.
pub struct Got<V> {
    pub value: V,
    pub outcome: TokenOutcome,
    cached: Arc<Cached<V>>,
    slot: Arc<Slot<V>>,
}

impl<I: Issue> CredentialCache<I> {
    pub fn new(source_id: Arc<str>, issuer: I, keyed: Keyed) -> Self {
        let slots = match keyed {
            Keyed::PerSubject => Slots::PerSubject(
                moka::future::Cache::builder()
                    .max_capacity(SUBJECT_CACHE_CAPACITY)
                    .time_to_idle(SUBJECT_IDLE)
                    .build(),
            ),
            Keyed::Single => Slots::Single(Arc::default()),
        };
        Self {
            source_id,
            issuer,
            slots,
            stats: TokenStats::default(),
            epoch: Instant::now(),
        }
    }

    /// The settings credentials are issued from.
    pub fn issuer(&self) -> &I {
        &self.issuer
    }

    /// When the cached token is refreshed and until when it may be injected, for sources
    /// with one token.
    pub fn schedule(&self) -> Option<Schedule> {
        match &self.slots {
            Slots::Single(slot) => slot.current.load().as_ref().map(|t| t.schedule),
            Slots::PerSubject(_) => None,
        }
    }

    /// Whether each caller's bearer is exchanged (so a subject is needed per request).
    pub fn needs_subject(&self) -> bool {
        matches!(self.slots, Slots::PerSubject(_))
    }

    /// A credential for `subject` (None unless [`Self::needs_subject`]): cached while
    /// usable, refreshed in the background once due, fetched (once for all waiters)
    /// otherwise.
    pub async fn get(
        self: &Arc<Self>,
        client: &I::Client,
        subject: Option<&Subject>,
    ) -> Result<Got<I::Value>, TokenError> {
        let slot = self.slot(subject).await;
        let started = Instant::now();
        if let Some(cached) = slot.current.load_full() {
            if started < cached.schedule.usable_until {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                if started >= cached.schedule.refresh_at {
                    self.refresh_in_background(&slot, client, subject);
                }
                return Ok(Got::new(cached, TokenOutcome::Cached, slot));
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
                return Ok(Got::new(cached, outcome, slot));
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
        result.map(|cached| Got::new(cached, TokenOutcome::Fetched, slot))
    }

    /// What to do after the upstream refused `token` (a cached one): use the token that
    /// already replaced it, or drop it so that the next [`Self::token`] fetches a new one,
    /// or, within [`FORCED_REFRESH_HOLD_DOWN`] of the last such drop, nothing.
    pub fn refused(&self, token: &Got<I::Value>) -> Refusal {
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
            .compare_and_swap(&token.cached, None::<Arc<Cached<I::Value>>>);
        self.stats.forced_refreshes.fetch_add(1, Ordering::Relaxed);
        Refusal::Dropped
    }

    async fn slot(&self, subject: Option<&Subject>) -> Arc<Slot<I::Value>> {
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
        slot: &Arc<Slot<I::Value>>,
        client: &I::Client,
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
        client: &I::Client,
        subject: Option<&Subject>,
    ) -> Result<Arc<Cached<I::Value>>, TokenError> {
        let result = self.issuer.issue(client, subject.map(|s| &s.token)).await;
        self.stats.record(result.is_ok());
        let issued = result?;
        let schedule = schedule(
            Instant::now(),
            issued.lifetime,
            subject.and_then(|s| s.expires),
        );
        tracing::debug!(source = %self.source_id, lifetime_s = issued.lifetime.as_secs(), "Credential fetched");
        Ok(Arc::new(Cached {
            value: issued.value,
            schedule,
        }))
    }
}

/// What the admin endpoints read of a cache, whatever it holds.
pub trait CacheState: Send + Sync {
    fn stats(&self) -> &TokenStats;
    /// The cached credential's refresh schedule, for a cache of one.
    fn schedule(&self) -> Option<Schedule>;
    /// Whether it holds one credential per caller subject (no single schedule).
    fn needs_subject(&self) -> bool;
}

impl<I: Issue> CacheState for CredentialCache<I> {
    fn stats(&self) -> &TokenStats {
        &self.stats
    }

    fn schedule(&self) -> Option<Schedule> {
        CredentialCache::schedule(self)
    }

    fn needs_subject(&self) -> bool {
        CredentialCache::needs_subject(self)
    }
}

impl<V: Clone> Got<V> {
    fn new(cached: Arc<Cached<V>>, outcome: TokenOutcome, slot: Arc<Slot<V>>) -> Self {
        Self {
            value: cached.value.clone(),
            outcome,
            cached,
            slot,
        }
    }
}

#[cfg(test)]
mod tests;

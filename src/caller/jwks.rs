//! A JWT caller's key set fetched from a `jwks_url`: refreshed every five minutes by
//! [`keep_fresh`], and on demand when a token names a key the set lacks (at most once a
//! minute, so that made-up `kid`s cannot make credproxy hammer the issuer). A failed fetch
//! keeps the last good set and is counted; a successful one replaces it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::ACCEPT;
use http::{Request, StatusCode, Uri};
use http_body_util::Full;

use crate::auth::token_client::{TokenClient, TokenError};
use crate::config::spec::TlsProfile;
use crate::jws::Jwks;
use crate::transport::SourceTls;

/// How often a set is fetched again, in the background.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// The least time between two fetches a token's unknown `kid` asks for.
pub const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(60);
/// Until a set has been fetched once, the background retries this often.
const RETRY_FIRST_FETCH_EVERY: Duration = Duration::from_secs(30);

/// One `jwks_url`, with the last good set fetched from it.
#[derive(Debug)]
pub struct RemoteJwks {
    pub url: Uri,
    /// For the metric label: whose keys these are.
    pub issuer: Arc<str>,
    tls: Option<Arc<SourceTls>>,
    current: ArcSwapOption<KeySet>,
    /// Milliseconds since `epoch` of the last fetch attempt, and of the last on-demand
    /// one; 0 for never.
    last_attempt_ms: AtomicU64,
    last_on_demand_ms: AtomicU64,
    epoch: Instant,
    /// One fetch at a time; whoever waited for it uses its result.
    fetching: tokio::sync::Mutex<()>,
    attempts: AtomicU64,
    pub failures: AtomicU64,
}

/// A fetched set, numbered so that a verification cached under an older set is not used.
#[derive(Debug)]
pub struct KeySet {
    pub generation: u64,
    pub keys: Jwks,
}

/// Why a fetch did not replace the set.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Request(#[from] TokenError),
    #[error("answered HTTP {0}")]
    Status(StatusCode),
    #[error("the answer {0}")]
    Keys(#[from] crate::jws::JwksError),
}

impl RemoteJwks {
    pub fn new(url: Uri, issuer: Arc<str>, tls: Option<&TlsProfile>) -> Self {
        Self {
            url,
            issuer,
            tls: tls.map(|profile| {
                Arc::new(SourceTls::new(
                    Arc::clone(&profile.config),
                    profile.fingerprint,
                ))
            }),
            current: ArcSwapOption::empty(),
            last_attempt_ms: AtomicU64::new(0),
            last_on_demand_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            fetching: tokio::sync::Mutex::new(()),
            attempts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Whether this set can stand in for one configured as `url` with `tls`: then its
    /// keys, its schedule and its counters carry over a reload.
    pub fn same_source(&self, url: &Uri, tls: Option<&TlsProfile>) -> bool {
        self.url == *url && self.tls.as_ref().map(|t| t.fingerprint) == tls.map(|t| t.fingerprint)
    }

    /// The last good set, if there has been one.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current.load_full()
    }

    /// The generation of the last good set, without taking a reference to it.
    pub fn generation(&self) -> Option<u64> {
        self.current.load().as_ref().map(|set| set.generation)
    }

    /// Claims the on-demand fetch for an unknown `kid`, if the last one was long enough
    /// ago (or there has been none).
    pub fn claim_on_demand(&self) -> bool {
        let now = self.now_ms();
        let last = self.last_on_demand_ms.load(Ordering::Relaxed);
        let wait = REFETCH_AT_MOST_EVERY.as_millis() as u64;
        if last != 0 && now.saturating_sub(last) < wait {
            return false;
        }
        self.last_on_demand_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether the background should fetch now.
    fn due(&self) -> bool {
        let last = self.last_attempt_ms.load(Ordering::Relaxed);
        if last == 0 {
            return true;
        }
        let every = match self.current.load().is_some() {
            true => REFRESH_EVERY,
            false => RETRY_FIRST_FETCH_EVERY,
        };
        self.now_ms().saturating_sub(last) >= every.as_millis() as u64
    }

    /// Fetches the set once; concurrent callers share one fetch.
    pub async fn fetch(&self, client: &TokenClient) {
        let seen = self.attempts.load(Ordering::Acquire);
        let _one = self.fetching.lock().await;
        if self.attempts.load(Ordering::Acquire) != seen {
            return; // Fetched while this one waited.
        }
        let result = self.fetch_once(client).await;
        self.last_attempt_ms
            .store(self.now_ms().max(1), Ordering::Relaxed);
        self.attempts.fetch_add(1, Ordering::Release);
        match result {
            Ok(keys) => {
                let previous = self.current.load_full();
                let unchanged = previous.as_ref().is_some_and(|p| p.keys.same_keys(&keys));
                if !unchanged {
                    let generation = previous.map_or(1, |p| p.generation + 1);
                    tracing::info!(url = %self.url, issuer = %self.issuer, keys = keys.len(), generation, "JWKS loaded");
                    self.current
                        .store(Some(Arc::new(KeySet { generation, keys })));
                }
            }
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let kept = self.current.load().is_some();
                tracing::warn!(url = %self.url, issuer = %self.issuer, %error, kept_last_good_set = kept, "JWKS fetch failed");
            }
        }
    }

    async fn fetch_once(&self, client: &TokenClient) -> Result<Jwks, FetchError> {
        let request = Request::get(self.url.clone())
            .header(ACCEPT, "application/jwk-set+json, application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| TokenError::Request(e.to_string()))?;
        let (status, body) = client.send(request, self.tls.as_deref()).await?;
        if status != StatusCode::OK {
            return Err(FetchError::Status(status));
        }
        Ok(Jwks::parse(&body)?)
    }

    fn now_ms(&self) -> u64 {
        // +1 so that 0 stays "never".
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

/// Fetches each key set when it is new, and again every [`REFRESH_EVERY`], for as long as
/// `sets` yields (it returns `None` once the proxy is gone). `sets` is asked once a second,
/// so a set a reload brings in is fetched at once.
pub async fn keep_fresh<F>(sets: F, client: TokenClient)
where
    F: Fn() -> Option<Vec<Arc<RemoteJwks>>>,
{
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(sets) = sets() else {
            return;
        };
        for set in sets.iter().filter(|set| set.due()) {
            set.fetch(&client).await;
        }
    }
}

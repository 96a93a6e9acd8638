//! The cache's rules on a paused clock, with a fake issuer: no sockets, no real waiting,
//! and exact call counts.

use std::sync::atomic::AtomicUsize;

use super::*;

/// Issues `tok-<n>` after `delay`, each living `lifetime`; fails while `failing` is set.
#[derive(Clone)]
struct FakeIssuer {
    calls: Arc<AtomicUsize>,
    delay: Duration,
    lifetime: Duration,
    failing: Arc<AtomicBool>,
}

impl FakeIssuer {
    fn new(delay: Duration, lifetime: Duration) -> Self {
        Self {
            calls: Arc::default(),
            delay,
            lifetime,
            failing: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

impl Issue for FakeIssuer {
    type Value = String;
    type Client = ();

    fn issue(
        &self,
        _client: &(),
        _subject: Option<&Secret>,
    ) -> impl Future<Output = Result<Issued<String>, TokenError>> + Send {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let (delay, lifetime, failing) = (self.delay, self.lifetime, Arc::clone(&self.failing));
        async move {
            tokio::time::sleep(delay).await;
            if failing.load(Ordering::SeqCst) {
                return Err(TokenError::Refused {
                    status: 503,
                    error: None,
                });
            }
            Ok(Issued {
                value: format!("tok-{n}"),
                lifetime,
            })
        }
    }
}

type FakeCache = CredentialCache<FakeIssuer>;

/// A cache of one credential, and a handle on its issuer to count and fail its calls.
fn cache(delay: Duration, lifetime: Duration) -> (Arc<FakeCache>, FakeIssuer) {
    let issuer = FakeIssuer::new(delay, lifetime);
    let cache = CredentialCache::new("s".into(), issuer.clone(), Keyed::Single);
    (Arc::new(cache), issuer)
}

async fn header(tokens: &Arc<FakeCache>) -> Result<(String, TokenOutcome), TokenError> {
    let got = tokens.get(&(), None).await?;
    Ok((got.value, got.outcome))
}

/// Lets spawned background refreshes run to where they wait.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_make_one_request_and_share_its_token() {
    let (tokens, issuer) = cache(Duration::from_secs(1), Duration::from_secs(3600));
    let waiters: Vec<_> = (0..50)
        .map(|_| {
            let tokens = Arc::clone(&tokens);
            tokio::spawn(async move { header(&tokens).await })
        })
        .collect();
    for waiter in waiters {
        let (text, outcome) = waiter.await.expect("task").expect("token");
        assert_eq!((text.as_str(), outcome), ("tok-1", TokenOutcome::Fetched));
    }
    assert_eq!(issuer.calls(), 1);
    assert_eq!(
        header(&tokens).await,
        Ok(("tok-1".into(), TokenOutcome::Cached))
    );
    assert_eq!(issuer.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn waiters_share_a_failure_and_the_next_request_tries_again() {
    let (tokens, issuer) = cache(Duration::from_secs(1), Duration::from_secs(3600));
    issuer.fail(true);
    let waiters: Vec<_> = (0..20)
        .map(|_| {
            let tokens = Arc::clone(&tokens);
            tokio::spawn(async move { header(&tokens).await })
        })
        .collect();
    for waiter in waiters {
        assert!(waiter.await.expect("task").is_err());
    }
    assert_eq!(issuer.calls(), 1);
    issuer.fail(false);
    assert_eq!(header(&tokens).await.expect("token").0, "tok-2");
    assert_eq!(issuer.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_token_is_refreshed_in_the_background_from_75_percent_of_its_life() {
    let (tokens, issuer) = cache(Duration::from_secs(1), Duration::from_secs(100));
    assert_eq!(header(&tokens).await.expect("token").0, "tok-1");
    let obtained = Instant::now();
    tokio::time::sleep_until(obtained + Duration::from_secs(74)).await;
    assert_eq!(header(&tokens).await.expect("token").0, "tok-1");
    settle().await;
    assert_eq!(issuer.calls(), 1, "not due before 75 %");
    tokio::time::sleep_until(obtained + Duration::from_secs(76)).await;
    // Due: served the current token at once, a new one fetched behind it.
    assert_eq!(
        header(&tokens).await,
        Ok(("tok-1".into(), TokenOutcome::Cached))
    );
    settle().await;
    assert_eq!(issuer.calls(), 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(header(&tokens).await.expect("token").0, "tok-2");
    assert_eq!(issuer.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_token_is_never_served_within_its_margin_of_expiry_even_if_refreshes_fail() {
    // 100 s: refreshed from 75 s, usable until 90 s (10 % margin, under 30 s).
    let (tokens, issuer) = cache(Duration::ZERO, Duration::from_secs(100));
    header(&tokens).await.expect("token");
    let obtained = Instant::now();
    issuer.fail(true);
    tokio::time::sleep_until(obtained + Duration::from_secs(89)).await;
    assert_eq!(header(&tokens).await.expect("still usable").0, "tok-1");
    tokio::time::sleep_until(obtained + Duration::from_secs(90)).await;
    assert!(
        header(&tokens).await.is_err(),
        "past its usable time: the failure, not the old token"
    );
    // 1 hour: the margin is capped at 30 s.
    let (tokens, issuer) = cache(Duration::ZERO, Duration::from_secs(3600));
    header(&tokens).await.expect("token");
    let obtained = Instant::now();
    issuer.fail(true);
    tokio::time::sleep_until(obtained + Duration::from_secs(3569)).await;
    assert!(header(&tokens).await.is_ok());
    tokio::time::sleep_until(obtained + Duration::from_secs(3570)).await;
    assert!(header(&tokens).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_failed_background_refresh_is_retried_after_a_pause() {
    let (tokens, issuer) = cache(Duration::ZERO, Duration::from_secs(100));
    header(&tokens).await.expect("token");
    let obtained = Instant::now();
    issuer.fail(true);
    tokio::time::sleep_until(obtained + Duration::from_secs(76)).await;
    header(&tokens).await.expect("served while refreshing");
    settle().await;
    assert_eq!(issuer.calls(), 2, "the first refresh, failed");
    // Within the retry pause no request starts another refresh.
    tokio::time::sleep(Duration::from_secs(2)).await;
    header(&tokens).await.expect("served");
    settle().await;
    assert_eq!(issuer.calls(), 2);
    issuer.fail(false);
    tokio::time::sleep(REFRESH_RETRY).await;
    header(&tokens).await.expect("served");
    settle().await;
    assert_eq!(issuer.calls(), 3);
    assert_eq!(header(&tokens).await.expect("token").0, "tok-3");
}

#[tokio::test(start_paused = true)]
async fn refusals_drop_a_token_at_most_once_per_hold_down() {
    let (tokens, issuer) = cache(Duration::ZERO, Duration::from_secs(3600));
    tokens.get(&(), None).await.expect("tok-1");
    let first = tokens.get(&(), None).await.expect("cached tok-1");
    assert_eq!(tokens.refused(&first), Refusal::Dropped);
    // A request that used the same token learns it was replaced, and gets the new one.
    assert_eq!(tokens.refused(&first), Refusal::Replaced);
    let second = tokens.get(&(), None).await.expect("tok-2");
    assert_eq!(second.value, "tok-2");
    assert_eq!(tokens.refused(&second), Refusal::HeldDown);
    tokio::time::sleep(FORCED_REFRESH_HOLD_DOWN).await;
    assert_eq!(tokens.refused(&second), Refusal::Dropped);
    assert_eq!(issuer.calls(), 2);
    let stats = &tokens.stats;
    assert_eq!(
        (
            stats.forced_refreshes.load(Ordering::Relaxed),
            stats.forced_refreshes_held.load(Ordering::Relaxed)
        ),
        (2, 1)
    );
}

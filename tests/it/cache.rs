//! Behaviour of `TokenCache`, on paused Tokio time.

use crate::support;

use std::error::Error as _;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use support::events::Events;
use support::{Behaviour, TestSource, advance, settle};
use tokio::time::Instant;
use tower_token_refresh::{Error, ErrorKind, Token, TokenCache};

const HOUR: Duration = Duration::from_secs(3600);
const SECOND: Duration = Duration::from_secs(1);

fn cache_over(source: &TestSource) -> TokenCache {
    TokenCache::builder(source.clone())
        .refresh_before(Duration::from_secs(10))
        .fetch_timeout(Duration::from_secs(5))
        .backoff(SECOND, Duration::from_secs(8))
        .build()
}

/// Starts `n` concurrent `token()` calls.
fn spawn_callers(
    cache: &TokenCache,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<Token, Error>>> {
    (0..n)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await })
        })
        .collect()
}

async fn outcomes(
    callers: Vec<tokio::task::JoinHandle<Result<Token, Error>>>,
) -> Vec<Result<Token, Error>> {
    let mut results = Vec::with_capacity(callers.len());
    for caller in callers {
        results.push(caller.await.expect("caller task"));
    }
    results
}

/// Polls a future once and reports whether it finished.
fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_callers_cause_one_fetch() {
    let source = TestSource::issuing(HOUR);
    source.gate().close();
    let cache = cache_over(&source);

    let callers = spawn_callers(&cache, 1000);
    settle().await;
    assert_eq!(source.calls(), 1, "one fetch while 1000 callers wait");
    source.gate().release();

    for outcome in outcomes(callers).await {
        assert_eq!(outcome.unwrap().secret(), "token-1");
    }
    assert_eq!(source.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_thousand_callers_at_an_expired_token_cause_one_fetch() {
    let source = TestSource::issuing(Duration::from_secs(60));
    let cache = cache_over(&source);
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");

    advance(Duration::from_secs(61)).await;
    source.gate().close();
    let callers = spawn_callers(&cache, 1000);
    settle().await;
    assert_eq!(source.calls(), 2);
    source.gate().release();
    for outcome in outcomes(callers).await {
        assert_eq!(outcome.unwrap().secret(), "token-2");
    }
    assert_eq!(source.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn all_waiters_share_one_error() {
    let source = TestSource::new(Behaviour::Fail("identity provider unavailable"));
    source.gate().close();
    let cache = cache_over(&source);

    let callers = spawn_callers(&cache, 1000);
    settle().await;
    source.gate().release();
    let errors: Vec<Error> = outcomes(callers)
        .await
        .into_iter()
        .map(|outcome| outcome.unwrap_err())
        .collect();

    assert_eq!(source.calls(), 1);
    let first = errors[0].source().expect("source error");
    assert_eq!(first.to_string(), "identity provider unavailable");
    for error in &errors {
        assert_eq!(error.kind(), ErrorKind::Source);
        assert_eq!(
            error.to_string(),
            "token source failed: identity provider unavailable"
        );
        assert!(
            std::ptr::addr_eq(error.source().unwrap(), first),
            "the same failure"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_keeps_serving_the_current_token_and_refreshes_once() {
    let source = TestSource::issuing(Duration::from_secs(100));
    let cache = cache_over(&source);
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");

    // Before the window (90 s, minus up to 2.5 s of jitter): no refresh.
    advance(Duration::from_secs(87)).await;
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");
    assert_eq!(source.calls(), 1);

    // Inside the window, with the fetch held open: nobody waits.
    advance(Duration::from_secs(4)).await;
    source.gate().close();
    for _ in 0..100 {
        let mut call = pin!(cache.token());
        match poll_once(call.as_mut()) {
            Poll::Ready(token) => assert_eq!(token.unwrap().secret(), "token-1"),
            Poll::Pending => panic!("a request waited for the background refresh"),
        }
    }
    settle().await;
    assert_eq!(source.calls(), 2, "exactly one background refresh");

    source.gate().release();
    settle().await;
    assert_eq!(cache.token().await.unwrap().secret(), "token-2");
    assert_eq!(source.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn after_expiry_callers_wait_for_the_refresh() {
    let source = TestSource::issuing(Duration::from_secs(100));
    let cache = cache_over(&source);
    cache.token().await.unwrap();
    advance(Duration::from_secs(100)).await;

    source.gate().close();
    let mut call = pin!(cache.token());
    assert!(
        poll_once(call.as_mut()).is_pending(),
        "an expired token is never used"
    );
    source.gate().release();
    assert_eq!(call.await.unwrap().secret(), "token-2");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_caller_that_started_a_refresh_does_not_cancel_it() {
    let source = TestSource::issuing(HOUR);
    source.gate().close();
    let cache = cache_over(&source);

    let mut starter = Box::pin(cache.token());
    assert!(poll_once(starter.as_mut()).is_pending());
    let other = spawn_callers(&cache, 1);
    settle().await;
    drop(starter);
    source.gate().release();

    let outcome = outcomes(other).await.pop().unwrap();
    assert_eq!(outcome.unwrap().secret(), "token-1");
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");
    assert_eq!(source.calls(), 1, "the refresh ran to completion once");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_source_fails_waiters_instead_of_hanging() {
    let source = TestSource::new(Behaviour::Panic);
    let cache = cache_over(&source);

    let callers = spawn_callers(&cache, 10);
    for outcome in outcomes(callers).await {
        let error = outcome.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::RefreshAborted);
        assert!(error.to_string().contains("panicked"), "{error}");
    }
    // The cache recovers once the backoff has passed.
    source.set(Behaviour::Issue(HOUR));
    advance(SECOND).await;
    assert_eq!(cache.token().await.unwrap().secret(), "token-2");
}

#[tokio::test(start_paused = true)]
async fn a_source_that_never_answers_times_out() {
    let source = TestSource::new(Behaviour::Hang);
    let cache = cache_over(&source);

    let started = Instant::now();
    let error = cache.token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(error.to_string(), "token source did not answer within 5s");
}

#[test]
fn waiters_get_an_error_when_the_runtime_running_the_refresh_shuts_down() {
    let source = TestSource::new(Behaviour::Hang);
    let cache = cache_over(&source);

    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The refresh starts on `first` and never finishes there.
    first.block_on(async {
        let mut call = pin!(cache.token());
        assert!(poll_once(call.as_mut()).is_pending());
    });

    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let waiter = {
        let cache = cache.clone();
        std::thread::spawn(move || second.block_on(cache.token()))
    };
    std::thread::sleep(Duration::from_millis(50));
    drop(first);

    let error = waiter.join().unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RefreshAborted);
    assert!(error.to_string().contains("shut down"), "{error}");
}

#[test]
fn without_a_runtime_a_needed_refresh_is_an_error() {
    let source = TestSource::issuing(HOUR);
    let cache = cache_over(&source);
    let mut call = pin!(cache.token());
    match poll_once(call.as_mut()) {
        Poll::Ready(Err(error)) => assert_eq!(error.kind(), ErrorKind::NoRuntime),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(source.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_background_refresh_keeps_the_current_token() {
    let source = TestSource::issuing(Duration::from_secs(100));
    let cache = cache_over(&source);
    cache.token().await.unwrap();

    source.set(Behaviour::Fail("token endpoint returned 503"));
    advance(Duration::from_secs(91)).await;
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");
    settle().await;
    assert_eq!(source.calls(), 2, "the background refresh ran and failed");
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");

    // Once the token expires, callers see the failure.
    advance(Duration::from_secs(9)).await;
    let error = cache.token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Source);
}

#[tokio::test(start_paused = true)]
async fn after_a_failure_the_source_is_not_called_before_the_backoff() {
    let source = TestSource::new(Behaviour::Fail("down"));
    let cache = cache_over(&source);

    let first = cache.token().await.unwrap_err();
    assert_eq!(source.calls(), 1);

    // Within the backoff (first delay: 0.5 s to 1 s): the last error, at once.
    for _ in 0..100 {
        let mut call = pin!(cache.token());
        match poll_once(call.as_mut()) {
            Poll::Ready(Err(error)) => {
                assert!(std::ptr::addr_eq(
                    error.source().unwrap(),
                    first.source().unwrap()
                ))
            }
            other => panic!("expected the last error at once, got {other:?}"),
        }
    }
    advance(Duration::from_millis(499)).await;
    cache.token().await.unwrap_err();
    assert_eq!(source.calls(), 1);

    // After it: one new attempt, which fails again; the delay doubles.
    advance(Duration::from_millis(501)).await;
    cache.token().await.unwrap_err();
    assert_eq!(source.calls(), 2);
    advance(Duration::from_millis(999)).await;
    cache.token().await.unwrap_err();
    assert_eq!(source.calls(), 2, "second delay is at least 1 s");
    // And at most 2 s (1 s and up to 1 s of jitter): 2 s after the failure
    // it is over whatever the jitter drew.
    advance(SECOND + Duration::from_millis(1)).await;
    source.set(Behaviour::Issue(HOUR));
    assert_eq!(cache.token().await.unwrap().secret(), "token-3");

    // Success resets the backoff.
    source.set(Behaviour::Fail("down again"));
    assert!(cache.invalidate(&cache.token().await.unwrap()));
    cache.token().await.unwrap_err();
    advance(SECOND).await;
    cache.token().await.unwrap_err();
    assert_eq!(source.calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn the_backoff_is_capped() {
    let source = TestSource::new(Behaviour::Fail("down"));
    let cache = cache_over(&source);
    for attempt in 1..=10 {
        cache.token().await.unwrap_err();
        assert_eq!(source.calls(), attempt);
        // The cap is 8 s.
        advance(Duration::from_secs(8)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn invalidation_is_generation_checked() {
    let source = TestSource::issuing(HOUR);
    let cache = cache_over(&source);

    let first = cache.token().await.unwrap();
    assert!(cache.invalidate(&first));
    assert!(!cache.invalidate(&first), "already dropped");
    let second = cache.token().await.unwrap();
    assert_eq!(second.secret(), "token-2");

    // A late rejection of the old token leaves the new one alone.
    assert!(!cache.invalidate(&first));
    assert_eq!(cache.token().await.unwrap().secret(), "token-2");
    assert_eq!(source.calls(), 2);

    // A token that did not come from this cache is compared by value.
    assert!(!cache.invalidate(&Token::bearer("token-1")));
    assert!(cache.invalidate(&Token::bearer("token-2")));
}

#[tokio::test(start_paused = true)]
async fn tokens_without_expiry_are_kept_until_invalidated() {
    let source = TestSource::new(Behaviour::IssueForever);
    let cache = cache_over(&source);
    let token = cache.token().await.unwrap();
    advance(Duration::from_secs(10 * 365 * 24 * 3600)).await;
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");
    cache.invalidate(&token);
    assert_eq!(cache.token().await.unwrap().secret(), "token-2");
}

#[tokio::test(start_paused = true)]
async fn unusable_tokens_from_the_source_are_errors_with_backoff() {
    let cache = TokenCache::new(|| async {
        Ok::<_, std::convert::Infallible>(Token::bearer("bad\r\nvalue"))
    });
    let error = cache.token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidToken);
    assert!(!error.to_string().contains("bad"));

    let expired = TokenCache::new(|| async {
        Ok::<_, std::convert::Infallible>(Token::bearer("t").expires_in(Duration::ZERO))
    });
    assert_eq!(
        expired.token().await.unwrap_err().kind(),
        ErrorKind::ExpiredToken
    );
}

#[tokio::test(start_paused = true)]
async fn refreshes_are_traced_without_the_token() {
    let (events, _guard) = Events::capture();
    let source = TestSource::issuing(Duration::from_secs(100));
    let cache = cache_over(&source);
    cache.token().await.unwrap();

    source.set(Behaviour::Fail("upstream said no"));
    advance(Duration::from_secs(100)).await;
    cache.token().await.unwrap_err();

    let started = events.lines_with("token refresh started");
    assert_eq!(started.len(), 2, "{}", events.text());
    assert!(started[0].contains("no token"));
    assert!(started[1].contains("token expired"));
    let succeeded = events.lines_with("token refresh succeeded");
    assert_eq!(succeeded.len(), 1, "{}", events.text());
    assert!(
        succeeded[0].contains("lifetime=Some(100s)"),
        "{}",
        succeeded[0]
    );
    let failed = events.lines_with("token refresh failed");
    assert_eq!(failed.len(), 1, "{}", events.text());
    assert!(failed[0].contains("upstream said no"), "{}", failed[0]);
    assert!(!events.text().contains("token-1"), "{}", events.text());
    assert!(!format!("{cache:?}").contains("token-1"));
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

fn idle_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn waiters_are_not_stranded_by_a_runtime_that_stops_running_the_refresh() {
    let source = TestSource::issuing(HOUR);
    let cache = TokenCache::builder(source.clone())
        .fetch_timeout(Duration::from_millis(200))
        .build();
    // The refresh is spawned on a runtime that is then never driven again.
    let idle = idle_runtime();
    idle.block_on(async {
        let mut call = pin!(cache.token());
        assert!(poll_once(call.as_mut()).is_pending());
    });

    let main = paused_runtime();
    main.block_on(async {
        let started = Instant::now();
        let error = cache.token().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout);
        assert!(started.elapsed() <= Duration::from_millis(1200));
        // The lost refresh (never polled) is replaced by one this runtime runs.
        assert_eq!(cache.token().await.unwrap().secret(), "token-1");
        assert_eq!(source.calls(), 1);
    });
    drop(idle);
}

#[test]
fn an_expired_token_is_not_returned_when_the_timer_runtime_stopped() {
    let source = TestSource::issuing(Duration::from_secs(1));
    let cache = cache_over(&source);
    let idle = idle_runtime();
    idle.block_on(cache.token()).unwrap();

    let main = paused_runtime();
    main.block_on(async {
        tokio::time::advance(Duration::from_secs(2)).await;
        let token = cache.token().await.unwrap();
        assert!(!token.is_expired());
        assert_eq!(token.secret(), "token-2");
    });
    drop(idle);
}

#[tokio::test(start_paused = true)]
async fn a_token_from_another_cache_does_not_invalidate_this_one() {
    let cache_a = cache_over(&TestSource::issuing(HOUR));
    let cache_b = TokenCache::new(|| async {
        Ok::<_, std::convert::Infallible>(Token::bearer("from-b").expires_in(HOUR))
    });
    cache_a.token().await.unwrap();
    let mut from_b = cache_b.token().await.unwrap();
    // Same generation, different value.
    assert!(!cache_a.invalidate(&from_b));
    from_b = Token::bearer("token-1");
    assert!(
        cache_a.invalidate(&from_b),
        "a same-valued token from elsewhere still matches"
    );
}

#[tokio::test(start_paused = true)]
async fn stats_count_what_the_cache_did() {
    let (events, _guard) = Events::capture();
    let source = TestSource::issuing(Duration::from_secs(100));
    let cache = TokenCache::builder(source.clone())
        .name("orders-api")
        .refresh_before(Duration::from_secs(10))
        .backoff(SECOND, SECOND)
        .build();
    assert_eq!(cache.stats(), tower_token_refresh::CacheStats::default());

    let callers = spawn_callers(&cache, 5);
    outcomes(callers).await;
    advance(Duration::from_secs(91)).await;
    cache.token().await.unwrap(); // starts a refresh ahead
    settle().await;
    let token = cache.token().await.unwrap();
    assert!(cache.invalidate(&token));
    source.set(Behaviour::Fail("down"));
    cache.token().await.unwrap_err();

    let stats = cache.stats();
    assert_eq!(stats.fetches, 3);
    assert_eq!(stats.fetch_failures, 1);
    assert_eq!(stats.refreshes_ahead, 1);
    assert_eq!(stats.refreshes_after_rejection, 1);
    assert_eq!(stats.rejections, 1);
    assert_eq!(
        stats.waited, 6,
        "five callers at the start, one after the rejection"
    );
    assert_eq!(
        stats.time_left,
        tower_token_refresh::TimeLeft::NoToken,
        "no token now"
    );
    assert!(
        events
            .text()
            .contains(r#"token_refresh{source="orders-api" reason="refresh window open"}"#),
        "{}",
        events.text()
    );
}

#[tokio::test(start_paused = true)]
async fn durations_too_long_to_add_are_taken_as_a_year_and_panic_nowhere() {
    // `Duration::MAX` is the natural way to write "no limit": every deadline
    // computed from one of these settings would overflow.
    for with_store in [false, true] {
        let source = TestSource::issuing(HOUR);
        source.gate().close();
        let mut builder = TokenCache::builder(source.clone())
            .refresh_before(Duration::MAX)
            .fetch_timeout(Duration::MAX)
            .backoff(Duration::MAX, Duration::MAX)
            .lease(Duration::MAX);
        if with_store {
            builder = builder.store(support::memory_store::MemoryStore::new());
        }
        let cache = builder.build();

        // One caller starts the refresh; the others join it while it runs.
        let callers = spawn_callers(&cache, 10);
        settle().await;
        source.gate().release();
        for outcome in outcomes(callers).await {
            assert_eq!(outcome.unwrap().secret(), "token-1", "store: {with_store}");
        }

        // A failure backs off for the longest setting, a year.
        source.set(Behaviour::Fail("identity provider down"));
        assert!(cache.invalidate(&cache.token().await.unwrap()));
        let error = cache.token().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Source, "store: {with_store}");
        advance(tower_token_refresh::LONGEST_SETTING / 2).await;
        cache.token().await.unwrap_err();
        assert_eq!(source.calls(), 2, "still backing off, store: {with_store}");
    }
}

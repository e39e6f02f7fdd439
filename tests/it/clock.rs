//! Clock cases: JWTs expired on arrival, far-future `exp`, `iat` ahead of
//! the local clock, and lifetimes shorter than the refresh window.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use support::advance;
use tower_token_refresh::{BoxError, ErrorKind, Token, TokenCache};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn jwt(iat: i64, exp: i64) -> String {
    format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"iat":{iat},"exp":{exp}}}"#))
    )
}

/// A cache whose source returns `make()`'s JWT, counting calls.
fn cache_of(make: impl Fn() -> String + Send + Sync + 'static) -> (TokenCache, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let cache = TokenCache::builder(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let token = Token::from_jwt(make());
        async move { token.map_err(BoxError::from) }
    })
    .backoff(Duration::from_secs(1), Duration::from_secs(30))
    .build();
    (cache, calls)
}

#[tokio::test(start_paused = true)]
async fn a_jwt_expired_on_arrival_is_an_error_and_is_not_refetched_in_a_loop() {
    let (cache, calls) = cache_of(|| jwt(now() - 7200, now() - 3600));
    for _ in 0..100 {
        let error = cache.token().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ExpiredToken);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "backing off, not refetching"
    );
}

#[tokio::test(start_paused = true)]
async fn a_far_future_exp_is_used_without_refreshing() {
    let (cache, calls) = cache_of(|| jwt(now(), 253_402_300_799)); // year 9999
    let token = cache.token().await.unwrap();
    assert!(token.time_left().unwrap() > Duration::from_secs(200 * 365 * 24 * 3600));
    advance(Duration::from_secs(30 * 24 * 3600)).await;
    cache.token().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn an_iat_ahead_of_the_local_clock_shortens_the_lifetime_to_the_issued_one() {
    // The issuer's clock is 30 minutes ahead: exp - now would say 90 min.
    let (cache, _) = cache_of(|| jwt(now() + 1800, now() + 1800 + 3600));
    let left = cache.token().await.unwrap().time_left().unwrap();
    assert!(
        left <= Duration::from_secs(3600) && left > Duration::from_secs(3590),
        "{left:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lifetime_shorter_than_the_refresh_window_is_not_refreshed_on_every_request() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let cache = TokenCache::builder(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>(Token::bearer("t").expires_in(Duration::from_secs(4))) }
    })
    .refresh_before(Duration::from_secs(60))
    .build();
    // 20 seconds of requests every 100 ms: 200 requests, 5 token lifetimes.
    for _ in 0..200 {
        cache.token().await.unwrap();
        advance(Duration::from_millis(100)).await;
    }
    let fetches = calls.load(Ordering::SeqCst);
    // Refreshed about halfway through each 4 s life: ~10 fetches, not 200.
    assert!((8..=16).contains(&fetches), "{fetches} fetches");
}

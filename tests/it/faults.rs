//! Faults of a real token endpoint on 127.0.0.1: for each, requests keep
//! succeeding while the token is valid, after expiry callers get a typed
//! error naming the cause, the endpoint is not hammered, and the cache
//! recovers by itself when the fault clears.
//!
//! These run in real time (sockets and paused time do not mix), with short
//! lifetimes: tokens live 2 s.
#![cfg(feature = "oauth2")]

use crate::support;

use std::error::Error as _;
use std::time::Duration;

use support::token_endpoint::{ClientMethod, Fault, TokenEndpoint};
use tokio::time::{Instant, sleep, sleep_until};
use tower_token_refresh::oauth2::{self, ClientAuth, ClientCredentials};
use tower_token_refresh::{Error, ErrorKind, TokenCache};

const SECRET: &str = "fault-test-secret";
const LIFETIME: Duration = Duration::from_secs(2);

fn cache_for(endpoint: &TokenEndpoint) -> TokenCache {
    let source =
        ClientCredentials::new(endpoint.token_url(), "svc", ClientAuth::basic(SECRET)).unwrap();
    TokenCache::builder(source)
        .refresh_before(Duration::from_secs(1))
        .fetch_timeout(Duration::from_millis(500))
        .backoff(Duration::from_millis(100), Duration::from_millis(400))
        .build()
}

/// The OAuth 2.0 error behind a cache error, if any.
fn oauth(error: &Error) -> Option<&oauth2::Error> {
    error
        .source()
        .and_then(|source| source.downcast_ref::<oauth2::Error>())
}

/// Runs the scenario: `on` turns the fault on, `off` clears it, `cause`
/// checks the error callers get once the token expired. Returns how many
/// token requests the endpoint got while the fault was on.
async fn survive<On, Off, Cause>(endpoint: &TokenEndpoint, on: On, off: Off, cause: Cause) -> usize
where
    On: AsyncFnOnce(&TokenEndpoint),
    Off: AsyncFnOnce(&TokenEndpoint),
    Cause: Fn(&Error) -> bool,
{
    endpoint.register("svc", ClientMethod::Basic(SECRET.into()));
    endpoint.set_lifetime_secs(LIFETIME.as_secs());
    let cache = cache_for(endpoint);
    let issued = Instant::now();
    let first = cache.token().await.unwrap();
    let before = endpoint.requests();
    on(endpoint).await;

    // While the token is valid, every caller gets it (background refreshes
    // fail from ~1 s on).
    while issued.elapsed() < LIFETIME - Duration::from_millis(200) {
        let token = cache.token().await.expect("a valid token is still served");
        assert_eq!(token.secret(), first.secret());
        sleep(Duration::from_millis(50)).await;
    }

    // After expiry: a typed error that names the cause.
    sleep_until(issued + LIFETIME + Duration::from_millis(100)).await;
    let error = cache.token().await.unwrap_err();
    assert!(
        cause(&error),
        "unexpected error: {error} / {:?}",
        oauth(&error)
    );
    let during = endpoint.requests() - before;

    // The fault clears: the cache recovers by itself, after its backoff.
    off(endpoint).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match cache.token().await {
            Ok(token) => {
                assert!(!token.is_expired());
                break;
            }
            Err(error) => {
                assert!(Instant::now() < deadline, "did not recover: {error}");
                sleep(Duration::from_millis(50)).await;
            }
        }
    }
    during
}

/// Backoff 100 ms doubling to 400 ms over ~1.5 s of failing refreshes
/// allows about 6 attempts; allow for timing slack.
const MAX_ATTEMPTS: usize = 10;

fn set(fault: Fault) -> impl AsyncFnOnce(&TokenEndpoint) {
    async move |endpoint: &TokenEndpoint| endpoint.set_fault(Some(fault))
}

async fn clear(endpoint: &TokenEndpoint) {
    endpoint.set_fault(None);
}

#[tokio::test]
async fn a_burst_of_503s() {
    let endpoint = TokenEndpoint::start().await;
    let attempts = survive(
        &endpoint,
        set(Fault::Status(503, None, "<html>down</html>")),
        clear,
        |error| {
            oauth(error).is_some_and(|e| {
                e.status() == Some(http::StatusCode::SERVICE_UNAVAILABLE) && e.is_retryable()
            })
        },
    )
    .await;
    assert!(
        (1..=MAX_ATTEMPTS).contains(&attempts),
        "{attempts} attempts"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_honoured() {
    let endpoint = TokenEndpoint::start().await;
    let attempts = survive(
        &endpoint,
        set(Fault::Status(429, Some(1), r#"{"error":"slow_down"}"#)),
        clear,
        |error| oauth(error).is_some_and(|e| e.retry_after() == Some(Duration::from_secs(1))),
    )
    .await;
    // One attempt per second at most, over ~1.5 s.
    assert!((1..=3).contains(&attempts), "{attempts} attempts");
}

#[tokio::test]
async fn connection_refused() {
    let endpoint = TokenEndpoint::start().await;
    survive(
        &endpoint,
        async |endpoint: &TokenEndpoint| endpoint.stop_listening(),
        async |endpoint: &TokenEndpoint| endpoint.listen_again().await,
        |error| oauth(error).is_some_and(|e| e.kind() == oauth2::ErrorKind::Transport),
    )
    .await;
}

#[tokio::test]
async fn a_connection_reset_mid_body() {
    let endpoint = TokenEndpoint::start().await;
    let attempts = survive(&endpoint, set(Fault::ResetMidBody), clear, |error| {
        oauth(error).is_some_and(|e| e.kind() == oauth2::ErrorKind::Transport)
    })
    .await;
    assert!(
        (1..=MAX_ATTEMPTS).contains(&attempts),
        "{attempts} attempts"
    );
}

#[tokio::test]
async fn headers_that_never_come() {
    let endpoint = TokenEndpoint::start().await;
    let attempts = survive(&endpoint, set(Fault::Hang), clear, |error| {
        error.kind() == ErrorKind::Timeout && error.to_string().contains("500ms")
    })
    .await;
    assert!(
        (1..=MAX_ATTEMPTS).contains(&attempts),
        "{attempts} attempts"
    );
}

#[tokio::test]
async fn a_body_that_trickles() {
    let endpoint = TokenEndpoint::start().await;
    let attempts = survive(&endpoint, set(Fault::Trickle), clear, |error| {
        error.kind() == ErrorKind::Timeout
    })
    .await;
    assert!(
        (1..=MAX_ATTEMPTS).contains(&attempts),
        "{attempts} attempts"
    );
}

#[tokio::test]
async fn garbage_and_truncated_json() {
    for body in ["<html>not json</html>", r#"{"access_token":"half"#] {
        let endpoint = TokenEndpoint::start().await;
        let attempts = survive(&endpoint, set(Fault::Body(body.into())), clear, |error| {
            oauth(error).is_some_and(|e| e.kind() == oauth2::ErrorKind::InvalidResponse)
                && !error.to_string().contains("half")
        })
        .await;
        assert!(
            (1..=MAX_ATTEMPTS).contains(&attempts),
            "{attempts} attempts"
        );
    }
}

#[tokio::test]
async fn an_oversized_body() {
    let endpoint = TokenEndpoint::start().await;
    let attempts = survive(
        &endpoint,
        set(Fault::Oversized(3 * 1024 * 1024)),
        clear,
        |error| oauth(error).is_some_and(|e| e.to_string().contains("larger than 1 MiB")),
    )
    .await;
    assert!(
        (1..=MAX_ATTEMPTS).contains(&attempts),
        "{attempts} attempts"
    );
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn a_tls_endpoint_with_an_untrusted_certificate() {
    let addr = support::untrusted_tls::start().await;
    let source = ClientCredentials::new(
        format!("https://{addr}/token"),
        "svc",
        ClientAuth::basic(SECRET),
    )
    .unwrap();
    let cache = TokenCache::builder(source)
        .backoff(Duration::from_millis(100), Duration::from_millis(400))
        .build();
    let error = cache.token().await.unwrap_err();
    let oauth = oauth(&error).expect("an OAuth 2.0 error");
    assert_eq!(oauth.kind(), oauth2::ErrorKind::Transport);
    let mut chain = String::new();
    let mut cause: Option<&dyn std::error::Error> = Some(oauth);
    while let Some(error) = cause {
        chain.push_str(&format!("{error} / "));
        cause = error.source();
    }
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
    // Backing off: a second call at once does not try again.
    assert!(cache.token().await.is_err());
    assert_eq!(support::untrusted_tls::handshakes(), 1);
}

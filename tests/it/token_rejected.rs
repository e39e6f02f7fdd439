//! What a caller learns of a rejection: the `TokenRejected` extension on
//! every path (retried or not, and why not), and events that name the cache,
//! the origin and the replay limit. On paused Tokio time.

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use http_body_util::combinators::BoxBody;
use support::TestSource;
use support::channel_body::channel_body;
use support::events::Events;
use support::revoking_api::{RejectWith, RevokingApi};
use tower::{Layer, Service, ServiceExt};
use tower_token_refresh::{
    NotReplayable, NotRetried, ResponseBody, TokenCache, TokenRefreshLayer, TokenRejected,
};

const HOUR: Duration = Duration::from_secs(3600);
const URI: &str = "http://orders.example:8080/items";

fn named(source: &TestSource, name: &str) -> TokenCache {
    TokenCache::builder(source.clone()).name(name).build()
}

/// Sends a POST with `body` and returns the response's status and its
/// `TokenRejected`, if any.
async fn send<S, B>(client: &S, body: B) -> (StatusCode, Option<TokenRejected>)
where
    S: Service<Request<B>, Response = Response<ResponseBody<String>>> + Clone,
    S::Error: std::fmt::Debug,
{
    let request = Request::post(URI).body(body).unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    let rejected = response.extensions().get::<TokenRejected>().cloned();
    (response.status(), rejected)
}

fn full(text: &'static str) -> Full<Bytes> {
    Full::new(Bytes::from_static(text.as_bytes()))
}

#[tokio::test(start_paused = true)]
async fn an_accepted_request_carries_no_report() {
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(named(&source, "orders")).layer(api.clone());
    assert_eq!(send(&client, full("a")).await, (StatusCode::OK, None));
}

#[tokio::test(start_paused = true)]
async fn without_retry_the_rejection_says_retrying_is_off_and_names_the_cache() {
    let (events, _guard) = Events::capture();
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(named(&source, "orders")).layer(api.clone());
    api.revoke("token-1");
    let (status, rejected) = send(&client, full("a")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let rejected = rejected.expect("the rejection is reported");
    assert_eq!(rejected.cache(), "orders");
    assert!(!rejected.retried());
    assert_eq!(rejected.not_retried(), Some(NotRetried::Off));

    let lines = events.lines_with("rejected request not retried");
    assert_eq!(lines.len(), 1, "{}", events.text());
    assert!(lines[0].contains("cache=\"orders\""), "{}", lines[0]);
    let rejected = events.lines_with("token rejected by the server");
    assert!(rejected[0].contains("cache=\"orders\""), "{}", rejected[0]);
}

#[tokio::test(start_paused = true)]
async fn a_retried_request_says_so_on_the_second_answer() {
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(named(&source, "orders"))
        .retry_rejected()
        .layer(api.clone());
    api.revoke("token-1");
    let (status, rejected) = send(&client, full("a")).await;
    assert_eq!(status, StatusCode::OK);
    let rejected = rejected.expect("the retry is reported");
    assert!(rejected.retried());
    assert_eq!(rejected.not_retried(), None);
    assert_eq!(api.seen(), ["token-1", "token-2"]);

    // Rejected again: the second answer goes back, and says so.
    api.reject_all();
    let (status, rejected) = send(&client, full("b")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let rejected = rejected.unwrap();
    assert!(rejected.retried());
    assert_eq!(rejected.not_retried(), Some(NotRetried::AlreadyRetried));
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_limit_names_the_origin_and_the_limit() {
    let (events, _guard) = Events::capture();
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(named(&source, "orders"))
        .retry_rejected()
        .replay_limit(8)
        .layer(api.clone());
    api.read_body_first();
    api.revoke("token-1");
    let (feeder, body) = channel_body();
    feeder.data("more than eight bytes");
    drop(feeder);

    let (status, rejected) = send(&client, BoxBody::new(body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        rejected.unwrap().not_retried(),
        Some(NotRetried::Body(NotReplayable::OverLimit))
    );
    let lines = events.lines_with("rejected request not retried");
    assert_eq!(lines.len(), 1, "{}", events.text());
    for field in [
        "cache=\"orders\"",
        "origin=http://orders.example:8080",
        "replay_limit=8",
    ] {
        assert!(lines[0].contains(field), "{field} in {}", lines[0]);
    }
}

#[tokio::test(start_paused = true)]
async fn no_new_token_for_the_retry_says_so() {
    use support::Behaviour;

    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(named(&source, "orders"))
        .retry_rejected()
        .layer(api.clone());
    assert_eq!(send(&client, full("a")).await.0, StatusCode::OK);
    api.revoke("token-1");
    source.set(Behaviour::Fail("identity provider down"));
    let (status, rejected) = send(&client, full("b")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        rejected.unwrap().not_retried(),
        Some(NotRetried::NoNewToken)
    );
}

#[tokio::test(start_paused = true)]
async fn with_token_routes_the_report_names_the_api_whose_token_was_rejected() {
    use tower_token_refresh::TokenRoutes;

    let orders = TestSource::issuing(HOUR);
    let billing = TestSource::issuing(HOUR);
    let routes = TokenRoutes::new()
        .route(
            "http://orders.example:8080".parse().unwrap(),
            named(&orders, "orders"),
        )
        .route(
            "http://billing.example".parse().unwrap(),
            named(&billing, "billing"),
        );
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::routes(routes).layer(api.clone());
    api.revoke("token-1");
    let request = Request::get("http://billing.example/invoices")
        .body(full(""))
        .unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response
            .extensions()
            .get::<TokenRejected>()
            .unwrap()
            .cache(),
        "billing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refresh_after_a_rejection_is_traced_as_rejected() {
    let (events, _guard) = Events::capture();
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(named(&source, "orders"))
        .retry_rejected()
        .layer(api.clone());
    assert_eq!(send(&client, full("a")).await.0, StatusCode::OK);
    api.revoke("token-1");
    assert_eq!(send(&client, full("b")).await.0, StatusCode::OK);

    let started = events.lines_with("token refresh started");
    assert_eq!(started.len(), 2, "{}", events.text());
    assert!(started[0].contains("reason=\"no token\""), "{}", started[0]);
    assert!(started[1].contains("reason=\"rejected\""), "{}", started[1]);
}

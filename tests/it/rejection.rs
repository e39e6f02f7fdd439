//! Reacting to rejected tokens: detection, generation-checked invalidation,
//! the one retry and its limits, on paused Tokio time.

use crate::support;

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use support::channel_body::{ChannelBody, channel_body};
use support::events::Events;
use support::revoking_api::{RejectWith, RevokingApi};
use support::{TestSource, advance, settle};
use tower::buffer::Buffer;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_token_refresh::{
    Error, ErrorKind, Replay, ReplayableBody, StandardRejection, TokenCache, TokenRefreshLayer,
};

const HOUR: Duration = Duration::from_secs(3600);

fn cache_over(source: &TestSource) -> TokenCache {
    TokenCache::builder(source.clone())
        .backoff(Duration::from_secs(1), Duration::from_secs(8))
        .build()
}

/// Sends a POST with `body`; returns the status and the API's answer.
fn send<S, B>(client: &S, body: B) -> impl Future<Output = (StatusCode, String)> + use<S, B>
where
    S: Service<Request<B>, Response = Response<tower_token_refresh::ResponseBody<String>>> + Clone,
    S::Error: std::fmt::Debug,
{
    let call = client
        .clone()
        .oneshot(Request::post("/items").body(body).unwrap());
    async move {
        let response = call.await.unwrap();
        let status = response.status();
        (status, response.into_body().into_inner())
    }
}

fn full(text: &'static str) -> Full<Bytes> {
    Full::new(Bytes::from_static(text.as_bytes()))
}

#[tokio::test(start_paused = true)]
async fn a_401_drops_the_token_and_the_request_is_retried_with_a_new_one() {
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .layer(api.clone());

    assert_eq!(
        send(&client, full("first")).await,
        (StatusCode::OK, "token-1 first".into())
    );
    api.revoke("token-1");
    assert_eq!(
        send(&client, full("second")).await,
        (StatusCode::OK, "token-2 second".into())
    );
    assert_eq!(source.calls(), 2);
    assert_eq!(api.seen(), ["token-1", "token-1", "token-2"]);
}

#[tokio::test(start_paused = true)]
async fn grpc_unauthenticated_in_the_headers_is_a_rejection() {
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::GrpcHeaders);
    let client = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .layer(api.clone());

    send(&client, Empty::<Bytes>::new()).await;
    api.revoke("token-1");
    assert_eq!(
        send(&client, Empty::new()).await,
        (StatusCode::OK, "token-2 ".into())
    );
    assert_eq!(api.rejected(), 1);
    assert_eq!(source.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_rejections_of_one_token_causes_one_refresh() {
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let cache = cache_over(&source);
    let client = TokenRefreshLayer::new(cache.clone())
        .retry_rejected()
        .layer(api.clone());
    cache.token().await.unwrap();

    // 100 requests reach the API with token-1, then it is revoked.
    api.gate().close();
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { send(&client, full("x")).await })
        })
        .collect();
    settle().await;
    assert_eq!(api.calls(), 100);
    api.revoke("token-1");
    api.gate().release();

    for request in requests {
        assert_eq!(request.await.unwrap(), (StatusCode::OK, "token-2 x".into()));
    }
    assert_eq!(api.rejected(), 100);
    assert_eq!(source.calls(), 2, "one refresh for 100 rejections");
}

#[tokio::test(start_paused = true)]
async fn a_late_rejection_of_a_replaced_token_causes_no_refresh() {
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let cache = cache_over(&source);
    let client = TokenRefreshLayer::new(cache.clone())
        .retry_rejected()
        .layer(api.clone());
    let first = cache.token().await.unwrap();

    // A request goes out with token-1 and is held by the API...
    api.gate().close();
    let late = {
        let client = client.clone();
        tokio::spawn(async move { send(&client, full("late")).await })
    };
    settle().await;
    // ...meanwhile token-1 is replaced by token-2...
    assert!(cache.invalidate(&first));
    assert_eq!(cache.token().await.unwrap().secret(), "token-2");
    // ...then the server rejects the held request's token-1.
    api.revoke("token-1");
    api.gate().release();

    assert_eq!(late.await.unwrap(), (StatusCode::OK, "token-2 late".into()));
    assert_eq!(source.calls(), 2, "the late rejection did not drop token-2");
    assert_eq!(cache.token().await.unwrap().secret(), "token-2");
}

#[tokio::test(start_paused = true)]
async fn without_retry_the_rejection_goes_back_and_the_token_is_still_dropped() {
    // (`without_retry` is the default; set here after `retry_rejected`.)
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .without_retry()
        .layer(api.clone());

    send(&client, full("a")).await;
    api.revoke("token-1");
    assert_eq!(send(&client, full("b")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(api.calls(), 2, "not retried");
    assert_eq!(
        send(&client, full("c")).await,
        (StatusCode::OK, "token-2 c".into())
    );
}

#[tokio::test(start_paused = true)]
async fn a_fresh_token_rejected_too_goes_back_and_the_source_is_not_hammered() {
    let (events, _guard) = Events::capture();
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .layer(api.clone());
    api.reject_all();

    // First request: token-1 rejected, retried once with token-2, rejected.
    assert_eq!(send(&client, full("a")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(api.calls(), 2, "at most one retry");
    assert_eq!(source.calls(), 2);

    // During the backoff: a typed error at once, no fetch, no request.
    for _ in 0..50 {
        let error = client
            .clone()
            .oneshot(Request::new(full("b")))
            .await
            .unwrap_err();
        let error = error.downcast_ref::<Error>().expect("our error");
        assert_eq!(error.kind(), ErrorKind::RejectedAgain);
    }
    assert_eq!(source.calls(), 2);
    assert_eq!(api.calls(), 2);
    assert!(!events.lines_with("fresh token rejected too").is_empty());

    // After it, one more fetch; the delays keep growing.
    advance(Duration::from_secs(1)).await;
    assert_eq!(send(&client, full("c")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(source.calls(), 3);
    advance(Duration::from_millis(999)).await;
    assert!(
        client
            .clone()
            .oneshot(Request::new(full("d")))
            .await
            .is_err()
    );
    assert_eq!(source.calls(), 3, "second delay is at least 1 s");
}

#[tokio::test(start_paused = true)]
async fn a_streamed_body_under_the_limit_is_replayed_whole() {
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .layer(api.clone());
    api.revoke("token-1");

    let (feeder, body) = channel_body();
    for chunk in ["stream", "ed ", "body"] {
        feeder.data(chunk);
    }
    drop(feeder);
    let body = BoxBody::new(body);
    assert_eq!(
        send(&client, body).await,
        (StatusCode::OK, "token-2 streamed body".into())
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_limit_is_not_retried_and_says_why() {
    let (events, _guard) = Events::capture();
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .replay_limit(8)
        .layer(api.clone());
    api.read_body_first();
    api.revoke("token-1");

    let (feeder, body) = channel_body();
    feeder.data("more than eight bytes");
    drop(feeder);
    assert_eq!(
        send(&client, BoxBody::new(body)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(api.calls(), 1);
    let skipped = events.lines_with("rejected request not retried");
    assert_eq!(skipped.len(), 1, "{}", events.text());
    assert!(
        skipped[0].contains("larger than the replay limit"),
        "{}",
        skipped[0]
    );

    // The token was dropped all the same: the next request gets a new one.
    assert_eq!(
        send(&client, full("ok")).await,
        (StatusCode::OK, "token-2 ok".into())
    );
}

/// A body type that cannot be sent twice.
struct OneShot(ChannelBody);

impl Body for OneShot {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_frame(cx)
    }
}

impl ReplayableBody for OneShot {
    fn prepare_replay(self, _limit: usize) -> (Self, Replay<Self>) {
        (self, Replay::never())
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_the_server_did_not_read_is_replayed_whatever_its_size() {
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .replay_limit(8)
        .layer(api.clone());
    api.revoke("token-1");

    // The API rejects before reading: the body comes back whole for the retry.
    let (feeder, body) = channel_body();
    feeder.data("more than eight bytes");
    drop(feeder);
    assert_eq!(
        send(&client, BoxBody::new(body)).await,
        (StatusCode::OK, "token-2 more than eight bytes".into())
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_that_cannot_be_replayed_is_not_retried() {
    let (events, _guard) = Events::capture();
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .layer(api.clone());
    api.revoke("token-1");

    let (feeder, body) = channel_body();
    drop(feeder);
    assert_eq!(
        send(&client, OneShot(body)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(api.calls(), 1);
    assert!(
        events.text().contains("cannot be replayed"),
        "{}",
        events.text()
    );
}

#[tokio::test(start_paused = true)]
async fn the_service_is_made_ready_again_before_the_retry() {
    // `Buffer` panics on `call` without a reserved slot from `poll_ready`.
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let buffered: Buffer<Request<Full<Bytes>>, _> = Buffer::new(api.clone(), 1);
    let client = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .layer(buffered);
    send(&client, full("warm")).await;
    api.revoke("token-1");

    let requests: Vec<_> = (0..10)
        .map(|_| tokio::spawn(send(&client, full("x"))))
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), (StatusCode::OK, "token-2 x".into()));
    }
}

#[tokio::test(start_paused = true)]
async fn other_statuses_count_only_when_configured() {
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http403);
    let cache = cache_over(&source);
    api.revoke("token-1");

    let default = TokenRefreshLayer::new(cache.clone())
        .retry_rejected()
        .layer(api.clone());
    assert_eq!(send(&default, full("a")).await.0, StatusCode::FORBIDDEN);
    assert_eq!(source.calls(), 1, "403 is not a rejection by default");

    let with_403 = TokenRefreshLayer::new(cache.clone())
        .retry_rejected()
        .rejection(StandardRejection::new().or_status(StatusCode::FORBIDDEN))
        .layer(api.clone());
    assert_eq!(
        send(&with_403, full("b")).await,
        (StatusCode::OK, "token-2 b".into())
    );

    // (Long enough later that token-2's rejection is not "rejected again".)
    advance(Duration::from_secs(11)).await;
    api.revoke("token-2");
    let closure = TokenRefreshLayer::new(cache)
        .retry_rejected()
        .rejection(|status: StatusCode, _: &HeaderMap| status == StatusCode::FORBIDDEN)
        .layer(api.clone());
    assert_eq!(
        send(&closure, full("c")).await,
        (StatusCode::OK, "token-3 c".into())
    );
}

#[tokio::test(start_paused = true)]
async fn grpc_unauthenticated_in_trailers_drops_the_token_without_retry_or_buffering() {
    let source = TestSource::issuing(HOUR);
    let cache = cache_over(&source);
    let (feeder, body) = channel_body();
    let body = std::sync::Mutex::new(Some(body));
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let inner = {
        let calls = calls.clone();
        let body = std::sync::Arc::new(body);
        service_fn(move |_: Request<Empty<Bytes>>| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = body.lock().unwrap().take().expect("one call only");
            async move {
                let response = Response::builder()
                    .header(CONTENT_TYPE, "application/grpc")
                    .body(body)
                    .unwrap();
                Ok::<_, Infallible>(response)
            }
        })
    };
    let client = TokenRefreshLayer::new(cache.clone())
        .retry_rejected()
        .layer(inner);

    let response = client.oneshot(Request::new(Empty::new())).await.unwrap();
    let mut body = response.into_body();
    // Data streams through as it comes.
    feeder.data("message 1");
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "message 1");
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");

    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "16".parse().unwrap());
    feeder.trailers(trailers);
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.trailers_ref().unwrap()["grpc-status"], "16");
    drop(feeder);
    assert!(body.frame().await.is_none());

    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "not retried"
    );
    assert_eq!(
        cache.token().await.unwrap().secret(),
        "token-2",
        "token dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn ok_grpc_trailers_keep_the_token_and_bodies_pass_through() {
    let source = TestSource::issuing(HOUR);
    let cache = cache_over(&source);
    let inner = service_fn(|_: Request<Empty<Bytes>>| async {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let body = Full::new(Bytes::from_static(b"payload"))
            .with_trailers(async move { Some(Ok::<_, Infallible>(trailers)) });
        let response = Response::builder()
            .header(CONTENT_TYPE, "application/grpc")
            .body(body)
            .unwrap();
        Ok::<_, Infallible>(response)
    });
    let client = TokenRefreshLayer::new(cache.clone())
        .retry_rejected()
        .layer(inner);
    let body = client
        .oneshot(Request::new(Empty::new()))
        .await
        .unwrap()
        .into_body();
    let collected = body.collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), "payload");
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");
    assert_eq!(source.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn token_errors_during_the_retry_return_the_rejection() {
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .layer(api.clone());
    send(&client, full("a")).await;
    api.revoke("token-1");
    source.set(support::Behaviour::Fail("identity provider down"));

    let (status, _) = send(&client, full("b")).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the original rejection comes back"
    );
}

#[tokio::test(start_paused = true)]
async fn a_replacement_token_the_server_accepted_is_not_treated_as_bad_credentials() {
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .layer(api.clone());

    send(&client, full("a")).await;
    api.revoke("token-1");
    assert_eq!(
        send(&client, full("b")).await,
        (StatusCode::OK, "token-2 b".into())
    );
    // token-2 replaced a rejected token but was accepted: its revocation a
    // moment later is a new revocation, retried at once.
    api.revoke("token-2");
    assert_eq!(
        send(&client, full("c")).await,
        (StatusCode::OK, "token-3 c".into())
    );
    assert_eq!(source.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_body_of_trailers_only_is_replayed_with_its_trailers() {
    let source = TestSource::issuing(HOUR);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let inner = {
        let seen = seen.clone();
        service_fn(move |request: Request<BoxBody<Bytes, Infallible>>| {
            let seen = seen.clone();
            async move {
                let trailers = request
                    .into_body()
                    .collect()
                    .await
                    .unwrap()
                    .trailers()
                    .cloned();
                let mut seen = seen.lock().unwrap();
                seen.push(trailers.and_then(|t| t.get("x-checksum").cloned()));
                let status = if seen.len() == 1 {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::OK
                };
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(status)
                        .body(String::new())
                        .unwrap(),
                )
            }
        })
    };
    let client = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .layer(inner);
    let body = Empty::<Bytes>::new().with_trailers(async {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", "abc".parse().unwrap());
        Some(Ok::<_, Infallible>(trailers))
    });
    let (status, _) = send(&client, BoxBody::new(body)).await;
    assert_eq!(status, StatusCode::OK);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].as_ref().unwrap(), "abc");
    assert_eq!(seen[1], seen[0], "the retry carried the trailers too");
}

#[tokio::test(start_paused = true)]
async fn a_rejection_that_arrives_while_the_body_is_still_sent_waits_for_it() {
    // Like an HTTP/1.1 connection: the 401 comes back while the connection
    // still holds (and keeps sending) the request body.
    let source = TestSource::issuing(HOUR);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let inner = {
        let calls = calls.clone();
        service_fn(move |request: Request<BoxBody<Bytes, Infallible>>| {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::spawn(async move {
                        let _ = request.into_body().collect().await;
                    });
                    let rejected = Response::builder().status(StatusCode::UNAUTHORIZED);
                    return Ok::<_, Infallible>(rejected.body(String::new()).unwrap());
                }
                let body = request.into_body().collect().await.unwrap().to_bytes();
                Ok(Response::new(String::from_utf8_lossy(&body).into_owned()))
            }
        })
    };
    let client = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .layer(inner);
    let (feeder, body) = channel_body();
    feeder.data("first half, ");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        feeder.data("second half");
    });
    let (status, answer) = send(&client, BoxBody::new(body)).await;
    assert_eq!(
        (status, answer.as_str()),
        (StatusCode::OK, "first half, second half")
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn retrying_is_off_by_default() {
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(cache_over(&source)).layer(api.clone());
    send(&client, full("a")).await;
    api.revoke("token-1");
    assert_eq!(send(&client, full("b")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&client, full("c")).await,
        (StatusCode::OK, "token-2 c".into())
    );
    assert_eq!(api.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_rejection_not_retried_says_why_on_every_path() {
    let (events, _guard) = Events::capture();
    let reasons = |events: &Events| {
        events
            .lines_with("rejected request not retried")
            .iter()
            .map(|line| line.split("reason=").nth(1).unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };

    // Retry off, sent at once with a fresh token.
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(cache_over(&source)).layer(api.clone());
    api.revoke("token-1");
    assert_eq!(send(&client, full("a")).await.0, StatusCode::UNAUTHORIZED);
    // Retry off, sent after waiting for a token (the first was dropped).
    api.revoke("token-2");
    assert_eq!(send(&client, full("b")).await.0, StatusCode::UNAUTHORIZED);
    // Retry on, and the second attempt is rejected too.
    let retrying = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .layer(api.clone());
    api.reject_all();
    assert_eq!(send(&retrying, full("c")).await.0, StatusCode::UNAUTHORIZED);

    let off = "\"retrying is off (see `TokenRefreshLayer::retry_rejected`)\"";
    let again = "\"the request was already retried once\"";
    assert_eq!(reasons(&events), [off, off, again]);
}

#[tokio::test(start_paused = true)]
async fn a_body_still_sent_a_second_after_the_rejection_is_not_retried() {
    // The connection keeps the body (it never ends): the retry gives up
    // waiting for it after a second and returns the rejection.
    let (events, _guard) = Events::capture();
    let source = TestSource::issuing(HOUR);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let inner = {
        let calls = calls.clone();
        service_fn(move |request: Request<BoxBody<Bytes, Infallible>>| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let _ = request.into_body().collect().await;
            });
            let rejected = Response::builder().status(StatusCode::UNAUTHORIZED);
            std::future::ready(Ok::<_, Infallible>(rejected.body(String::new()).unwrap()))
        })
    };
    let client = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .layer(inner);
    let (feeder, body) = channel_body();
    feeder.data("never finished");
    let started = tokio::time::Instant::now();
    let (status, _) = send(&client, BoxBody::new(body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(started.elapsed(), Duration::from_secs(1), "waited a second");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    let skipped = events.lines_with("rejected request not retried");
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].contains("the request body was still being sent"));
    drop(feeder);
}

#[tokio::test(start_paused = true)]
async fn the_retry_carries_one_authorization_the_new_token() {
    let source = TestSource::issuing(HOUR);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let inner = {
        let seen = seen.clone();
        service_fn(move |request: Request<Full<Bytes>>| {
            let values: Vec<String> = request
                .headers()
                .get_all(http::header::AUTHORIZATION)
                .iter()
                .map(|value| value.to_str().unwrap().to_owned())
                .collect();
            let status = if values == ["Bearer token-1"] {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            };
            seen.lock().unwrap().push(values);
            std::future::ready(Ok::<_, Infallible>(
                Response::builder()
                    .status(status)
                    .body(String::new())
                    .unwrap(),
            ))
        })
    };
    let client = TokenRefreshLayer::new(cache_over(&source))
        .retry_rejected()
        .layer(inner);
    assert_eq!(send(&client, full("a")).await.0, StatusCode::OK);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            vec!["Bearer token-1".to_owned()],
            vec!["Bearer token-2".to_owned()]
        ]
    );
}

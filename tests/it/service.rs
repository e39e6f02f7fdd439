//! `TokenRefresh` as a tower service: header injection, readiness, errors,
//! and a `Buffer` inner service.

use crate::support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use http_body_util::Empty;
use support::{Behaviour, TestSource, advance, echo_authorization, settle};
use tokio_test::assert_pending;
use tower::buffer::Buffer;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_token_refresh::{Error, ErrorKind, TokenCache, TokenRefresh, TokenRefreshLayer};

const HOUR: Duration = Duration::from_secs(3600);

type Body = Empty<Bytes>;

fn assert_service_traits<T: Clone + Send + Sync + 'static>() {}
fn assert_send<T: Send>(_: &T) {}

#[test]
fn layer_service_cache_and_future_are_thread_safe() {
    assert_service_traits::<TokenCache>();
    assert_service_traits::<TokenRefreshLayer>();
    type Svc = tower::util::BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;
    assert_service_traits::<TokenRefresh<Svc>>();
    let mut service = TokenRefresh::new(
        echo_authorization(),
        TokenCache::new(TestSource::issuing(HOUR)),
    );
    let future = service.call(Request::new(Body::new()));
    assert_send(&future);
}

#[tokio::test(start_paused = true)]
async fn requests_carry_the_token_in_a_sensitive_header() {
    let source = TestSource::issuing(HOUR);
    let cache = TokenCache::new(source.clone());
    let client = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache))
        .service(echo_authorization());

    for _ in 0..3 {
        let response = client
            .clone()
            .oneshot(Request::new(Body::new()))
            .await
            .unwrap();
        let header = response
            .into_body()
            .into_inner()
            .expect("authorization header");
        assert_eq!(header, "Bearer token-1");
        assert!(header.is_sensitive());
    }
    assert_eq!(source.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_existing_authorization_header_is_replaced() {
    let client = TokenRefresh::new(
        echo_authorization(),
        TokenCache::new(TestSource::issuing(HOUR)),
    );
    let request = Request::builder()
        .header(AUTHORIZATION, "Basic c3RhbGU=")
        .body(Body::new())
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.into_body().into_inner().unwrap(), "Bearer token-1");
}

#[tokio::test(start_paused = true)]
async fn an_existing_authorization_header_can_be_kept() {
    let source = TestSource::issuing(HOUR);
    let client = TokenRefreshLayer::new(TokenCache::new(source.clone()))
        .keep_existing_authorization()
        .layer(echo_authorization());
    let own = Request::builder()
        .header(AUTHORIZATION, "Basic b3du")
        .body(Body::new())
        .unwrap();
    let response = client.clone().oneshot(own).await.unwrap();
    assert_eq!(response.into_body().into_inner().unwrap(), "Basic b3du");
    assert_eq!(source.calls(), 0, "no token was needed");
    let response = client.oneshot(Request::new(Body::new())).await.unwrap();
    assert_eq!(response.into_body().into_inner().unwrap(), "Bearer token-1");
}

#[tokio::test(start_paused = true)]
async fn one_cache_serves_many_services() {
    let source = TestSource::issuing(HOUR);
    let cache = TokenCache::new(source.clone());
    let layer = TokenRefreshLayer::new(cache.clone());
    let a = ServiceBuilder::new()
        .layer(layer.clone())
        .service(echo_authorization());
    let b = ServiceBuilder::new()
        .layer(layer)
        .map_response(|r: Response<Option<HeaderValue>>| r.map(|h| h.is_some()))
        .service(echo_authorization());
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let (a, b) = (a.clone(), b.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    a.oneshot(Request::new(Body::new()))
                        .await
                        .unwrap()
                        .into_body()
                        .into_inner()
                        .is_some()
                } else {
                    *b.oneshot(Request::new(Body::new()))
                        .await
                        .unwrap()
                        .body()
                        .get_ref()
                }
            })
        })
        .collect();
    for handle in handles {
        assert!(handle.await.unwrap());
    }
    assert_eq!(source.calls(), 1);
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");
}

#[tokio::test(start_paused = true)]
async fn poll_ready_forwards_to_the_inner_service() {
    let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let mut service = TokenRefresh::new(mock, TokenCache::new(TestSource::issuing(HOUR)));

    handle.allow(0);
    let mut ready = tokio_test::task::spawn(service.ready());
    assert_pending!(ready.poll());
    handle.allow(1);
    assert!(ready.is_woken());
    drop(ready);
    let mut service = tokio_test::task::spawn(service);
    tokio_test::assert_ready_ok!(service.enter(|cx, mut s| s.as_mut().get_mut().poll_ready(cx)));
}

#[tokio::test(start_paused = true)]
async fn inner_errors_pass_through_unchanged() {
    #[derive(Debug)]
    struct Upstream;
    impl std::fmt::Display for Upstream {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("upstream broke")
        }
    }
    impl std::error::Error for Upstream {}

    let inner = service_fn(|_: Request<Body>| async { Err::<Response<Body>, _>(Upstream) });
    let client = TokenRefresh::new(inner, TokenCache::new(TestSource::issuing(HOUR)));
    let error = client.oneshot(Request::new(Body::new())).await.unwrap_err();
    assert!(error.downcast_ref::<Upstream>().is_some(), "{error:?}");
    assert!(error.downcast_ref::<Error>().is_none());
}

#[tokio::test(start_paused = true)]
async fn token_failures_are_typed_and_the_inner_service_is_not_called() {
    let called = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let inner = {
        let called = called.clone();
        service_fn(move |_: Request<Body>| {
            called.store(true, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(Body::new())) }
        })
    };
    let cache = TokenCache::new(TestSource::new(Behaviour::Fail("no tokens today")));
    let error: BoxError = TokenRefresh::new(inner, cache)
        .oneshot(Request::new(Body::new()))
        .await
        .unwrap_err();
    let error = error.downcast_ref::<Error>().expect("our error");
    assert_eq!(error.kind(), ErrorKind::Source);
    assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_buffer_inner_service_never_sees_call_without_poll_ready() {
    // `Buffer` panics when `call` comes without a successful `poll_ready`
    // on the same handle: the ready handle must move into the future.
    let source = TestSource::issuing(Duration::from_secs(60));
    source.gate().close();
    let cache = TokenCache::new(source.clone());
    let buffer = Buffer::new(echo_authorization(), 4);
    let client = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache))
        .service(buffer);

    // Requests that wait for the first token, then for a refresh after expiry.
    for expected in ["Bearer token-1", "Bearer token-2"] {
        let requests: Vec<_> = (0..16)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move {
                    let mut client = client;
                    let ready = client.ready().await.unwrap();
                    ready
                        .call(Request::new(Body::new()))
                        .await
                        .unwrap()
                        .into_body()
                        .into_inner()
                })
            })
            .collect();
        settle().await;
        source.gate().release();
        for request in requests {
            assert_eq!(request.await.unwrap().unwrap(), expected);
        }
        advance(Duration::from_secs(60)).await;
        source.gate().close();
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiting_request_is_sent_once_the_token_arrives() {
    let source = TestSource::issuing(HOUR);
    source.gate().close();
    let mut client = TokenRefresh::new(echo_authorization(), TokenCache::new(source.clone()));
    let ready = client.ready().await.unwrap();
    let mut response = tokio_test::task::spawn(ready.call(Request::new(Body::new())));
    assert_pending!(response.poll());
    source.gate().release();
    settle().await;
    assert!(response.is_woken());
    let response = response.await.unwrap();
    assert_eq!(response.into_body().into_inner().unwrap(), "Bearer token-1");
}

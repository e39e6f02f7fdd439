//! Rejections over real sockets: hyper-util client -> `TokenRefreshLayer`
//! -> a hyper server on 127.0.0.1 that revokes tokens on demand.

use crate::support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body::Body;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::auth_server::AuthServer;
use support::channel_body::channel_body;
use tower::{Layer, Service, ServiceExt};
use tower_token_refresh::{ResponseBody, TokenCache, TokenRefreshLayer};

const HOUR: Duration = Duration::from_secs(3600);

/// POSTs `body` to `/api`; returns the status and the answer.
async fn post<S, B, R>(client: &S, server: &AuthServer, body: B) -> (StatusCode, String)
where
    S: Service<Request<B>, Response = http::Response<ResponseBody<R>>> + Clone,
    S::Error: std::fmt::Debug,
    R: Body<Data = Bytes>,
    R::Error: std::fmt::Debug,
{
    let request = Request::post(server.url("/api")).body(body).unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A streamed body of `chunks`, boxed as clients send streams.
fn streamed(chunks: &[&str]) -> BoxBody<Bytes, Infallible> {
    let (feeder, body) = channel_body();
    for chunk in chunks {
        feeder.data(chunk.to_string());
    }
    BoxBody::new(body)
}

#[tokio::test]
async fn a_revoked_token_is_replaced_and_a_full_body_post_retried() {
    let server = AuthServer::start(HOUR).await;
    let cache = TokenCache::new(server.token_source());
    let client = TokenRefreshLayer::new(cache)
        .retry_rejected()
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    let body = || Full::new(Bytes::from_static(b"order #1"));
    assert_eq!(
        post(&client, &server, body()).await,
        (StatusCode::OK, "tok-1 got order #1".into())
    );
    server.revoke("tok-1");
    assert_eq!(
        post(&client, &server, body()).await,
        (StatusCode::OK, "tok-2 got order #1".into())
    );
    assert_eq!(server.rejected(), 1);
    assert_eq!(server.token_requests(), 2);
}

#[tokio::test]
async fn streamed_bodies_under_the_limit_are_replayed_and_over_it_are_not() {
    let server = AuthServer::start(HOUR).await;
    server.read_body_first();
    let cache = TokenCache::new(server.token_source());
    let client = TokenRefreshLayer::new(cache)
        .retry_rejected()
        .replay_limit(32)
        .layer(Client::builder(TokioExecutor::new()).build_http::<BoxBody<Bytes, Infallible>>());

    assert_eq!(
        post(&client, &server, streamed(&["warm"])).await.0,
        StatusCode::OK
    );

    // Under the limit: recorded while sent, replayed with the new token.
    server.revoke("tok-1");
    let (status, answer) = post(&client, &server, streamed(&["part one, ", "part two"])).await;
    assert_eq!(
        (status, answer.as_str()),
        (StatusCode::OK, "tok-2 got part one, part two")
    );

    // Over the limit: sent once, the 401 comes back unchanged.
    server.revoke("tok-2");
    let big = ["0123456789"; 5];
    let (status, _) = post(&client, &server, streamed(&big)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.rejected(), 2);

    // The rejected token was dropped all the same.
    let (status, answer) = post(&client, &server, streamed(&["after"])).await;
    assert_eq!(
        (status, answer.as_str()),
        (StatusCode::OK, "tok-3 got after")
    );
}

#[tokio::test]
async fn a_burst_of_401s_over_http_causes_one_refresh() {
    let server = AuthServer::start(HOUR).await;
    let cache = TokenCache::new(server.token_source());
    let client = TokenRefreshLayer::new(cache.clone())
        .retry_rejected()
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    cache.token().await.unwrap();
    server.revoke("tok-1");

    let requests: Vec<_> = (0..50)
        .map(|i| {
            let client = client.clone();
            let request = Request::post(server.url("/api"))
                .body(Full::new(Bytes::from(format!("n{i}"))))
                .unwrap();
            tokio::spawn(async move { client.oneshot(request).await.unwrap().status() })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(server.token_requests(), 2, "one refresh however many 401s");
}

#[tokio::test]
async fn a_stream_still_being_sent_when_rejected_over_http1_is_retried() {
    // The server rejects without reading the body while the client is
    // still streaming it: the retry waits for the first attempt to finish
    // sending, then replays the recording.
    let server = AuthServer::start(HOUR).await;
    let cache = TokenCache::new(server.token_source());
    let client = TokenRefreshLayer::new(cache.clone())
        .retry_rejected()
        .layer(Client::builder(TokioExecutor::new()).build_http::<BoxBody<Bytes, Infallible>>());
    for round in 0..5 {
        let token = cache.token().await.unwrap();
        server.revoke(token.secret());
        let (feeder, body) = channel_body();
        feeder.data("first half, ");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            feeder.data("second half");
        });
        let (status, answer) = post(&client, &server, BoxBody::new(body)).await;
        assert_eq!(status, StatusCode::OK, "round {round}: {answer}");
        assert!(answer.ends_with("got first half, second half"), "{answer}");
    }
}

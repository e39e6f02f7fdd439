//! End to end over real sockets: hyper-util client -> `TokenRefreshLayer`
//! -> a hyper server on 127.0.0.1 that checks every token.

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::auth_server::AuthServer;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_token_refresh::{TokenCache, TokenRefreshLayer};

async fn get<S, R>(client: &S, url: String) -> Response<R>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<R>> + Clone,
    S::Error: std::fmt::Debug,
{
    let request = Request::get(url).body(Empty::new()).unwrap();
    client.clone().oneshot(request).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_token_from_a_real_endpoint() {
    let server = AuthServer::start(Duration::from_secs(3600)).await;
    let cache = TokenCache::new(server.token_source());
    let client = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    let requests: Vec<_> = (0..200)
        .map(|_| {
            let client = client.clone();
            let url = server.url("/api");
            tokio::spawn(async move {
                let request = Request::get(url).body(Empty::new()).unwrap();
                let response = client.oneshot(request).await.unwrap();
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                (status, body)
            })
        })
        .collect();
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "hello, holder of tok-1");
    }
    assert_eq!(
        server.token_requests(),
        1,
        "one fetch for 200 concurrent requests"
    );
    assert_eq!(server.api_requests(), 200);
    assert_eq!(server.rejected(), 0);
}

#[tokio::test]
async fn an_invalidated_token_is_replaced_by_one_fetch_from_the_endpoint() {
    let server = AuthServer::start(Duration::from_secs(3600)).await;
    let cache = TokenCache::new(server.token_source());
    let client = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    assert_eq!(
        get(&client, server.url("/api")).await.status(),
        StatusCode::OK
    );
    let token = cache.token().await.unwrap();
    assert!(cache.invalidate(&token));
    let response = get(&client, server.url("/api")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "hello, holder of tok-2");
    assert_eq!(server.token_requests(), 2);
}

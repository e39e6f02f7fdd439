//! An axum service that calls another API from its handlers through a
//! shared `TokenCache` + layer (the state holds the wrapped client), with
//! `axum::body::Body` end to end.
#![cfg(feature = "axum")]

use crate::support;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use support::auth_server::AuthServer;
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};
use tower_token_refresh::{
    RetryRejected, StandardRejection, TokenCache, TokenRefresh, TokenRefreshLayer,
};

/// The gateway's state: one authorized client for every handler.
#[derive(Clone)]
struct Upstream {
    client: TokenRefresh<Client<HttpConnector, Body>, StandardRejection, RetryRejected>,
    api: Uri,
}

/// Forwards the request's body to the upstream API, with a token.
async fn forward(State(upstream): State<Upstream>, request: Request) -> Response {
    let mut outgoing = http::Request::new(request.into_body());
    *outgoing.method_mut() = http::Method::POST;
    *outgoing.uri_mut() = upstream.api.clone();
    match upstream.client.oneshot(outgoing).await {
        Ok(response) => response.map(Body::new).into_response(),
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    }
}

#[tokio::test]
async fn a_gateway_forwards_with_tokens_and_survives_a_revocation() {
    let upstream_api = AuthServer::start(Duration::from_secs(3600)).await;
    let cache = TokenCache::new(upstream_api.token_source());
    let state = Upstream {
        client: TokenRefreshLayer::new(cache.clone())
            .retry_rejected()
            .layer(Client::builder(TokioExecutor::new()).build_http()),
        api: upstream_api.url("/api").parse().unwrap(),
    };
    let app = Router::new()
        .route("/forward", post(forward))
        .with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let caller = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let call = |text: &'static str| {
        let caller = caller.clone();
        async move {
            let request = http::Request::post(format!("http://{gateway}/forward"))
                .body(Full::from(text))
                .unwrap();
            let response = caller.request(request).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };

    let answers = futures_join_all((0..10).map(|_| tokio::spawn(call("order"))).collect()).await;
    for answer in answers {
        assert_eq!(answer, (StatusCode::OK, "tok-1 got order".into()));
    }
    assert_eq!(cache.stats().fetches, 1);

    // The upstream revokes the token: the gateway's next call is retried
    // with a new one (the axum body was recorded while it was sent).
    upstream_api.read_body_first();
    upstream_api.revoke("tok-1");
    assert_eq!(
        call("after revocation").await,
        (StatusCode::OK, "tok-2 got after revocation".into())
    );
    assert_eq!(upstream_api.rejected(), 1);
    assert_eq!(cache.stats().retries, 1);
}

async fn futures_join_all<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

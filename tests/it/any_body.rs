//! The layer over services whose request body type it does not know: `()`,
//! reqwest's (through tower-reqwest), kube's (through
//! `ClientBuilder::with_layer`). Without retries it puts no bound on the
//! body; with retries, a function given to `replay_with` replays another
//! crate's body type, which cannot implement `ReplayableBody`.

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Pod;
use support::auth_server::AuthServer;
use support::{TestSource, fetch};
use tower::{BoxError, Layer, ServiceBuilder, ServiceExt, service_fn};
use tower_token_refresh::{Replay, TokenCache, TokenRefreshLayer};

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_unit_body_gets_the_token_and_a_rejection_drops_it() {
    let source = TestSource::issuing(HOUR);
    // A service whose requests have no body at all, that rejects token-1.
    let api = service_fn(|request: Request<()>| async move {
        let sent = request.headers().get(AUTHORIZATION).cloned();
        let status = match &sent {
            Some(value) if value == "Bearer token-1" => StatusCode::UNAUTHORIZED,
            Some(_) => StatusCode::OK,
            None => StatusCode::BAD_REQUEST,
        };
        Ok::<_, BoxError>(Response::builder().status(status).body(sent).unwrap())
    });
    let client = TokenRefreshLayer::new(TokenCache::new(source.clone())).layer(api);

    let sent = |response: &Response<tower_token_refresh::ResponseBody<Option<HeaderValue>>>| {
        response.body().get_ref().clone().unwrap()
    };
    let first = client.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sent(&first), "Bearer token-1");
    let second = client.clone().oneshot(Request::new(())).await.unwrap();
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(
        sent(&second),
        "Bearer token-2",
        "the rejected token was dropped"
    );
    assert_eq!(source.calls(), 2);
}

#[tokio::test]
async fn reqwest_through_tower_reqwest_replaces_a_rejected_token() {
    let server = AuthServer::start(HOUR).await;
    let cache = TokenCache::new(server.token_source());
    let client = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache))
        .layer(tower_reqwest::HttpClientLayer)
        .service(reqwest::Client::new());
    let get = || {
        Request::get(server.url("/api"))
            .body(reqwest::Body::default())
            .unwrap()
    };

    assert_eq!(
        fetch(&client, get()).await,
        (StatusCode::OK, "hello, holder of tok-1".into())
    );
    server.revoke("tok-1");
    // Without retries the rejection comes back, and the token is dropped…
    assert_eq!(fetch(&client, get()).await.0, StatusCode::UNAUTHORIZED);
    // …so the next request goes out with a new one.
    assert_eq!(
        fetch(&client, get()).await,
        (StatusCode::OK, "hello, holder of tok-2".into())
    );
    assert_eq!(server.token_requests(), 2);
}

#[tokio::test]
async fn reqwest_bodies_are_replayed_with_a_function_of_ours() {
    let server = AuthServer::start(HOUR).await;
    server.read_body_first();
    let cache = TokenCache::new(server.token_source());
    let client = ServiceBuilder::new()
        .layer(
            TokenRefreshLayer::new(cache)
                .retry_rejected()
                // reqwest's body can hold any body: record it while it is
                // sent, and play the recording back.
                .replay_with(|body: reqwest::Body, limit| {
                    Replay::record(body, limit, reqwest::Body::wrap)
                }),
        )
        .layer(tower_reqwest::HttpClientLayer)
        .service(reqwest::Client::new());
    let post = |text: &'static str| {
        Request::post(server.url("/api"))
            .body(reqwest::Body::from(text))
            .unwrap()
    };

    assert_eq!(
        fetch(&client, post("first")).await,
        (StatusCode::OK, "tok-1 got first".into())
    );
    server.revoke("tok-1");
    assert_eq!(
        fetch(&client, post("second")).await,
        (StatusCode::OK, "tok-2 got second".into()),
        "rejected, then sent again with a new token and the same body"
    );
    assert_eq!(server.rejected(), 1);
    assert_eq!(server.token_requests(), 2);
}

#[tokio::test]
async fn kube_client_with_layer_reads_a_pod_through_a_revocation() {
    let server = AuthServer::start(HOUR).await;
    let cache = TokenCache::new(server.token_source());
    let config = kube::Config::new(server.url("").parse().unwrap());
    let client: kube::Client = kube::client::ClientBuilder::try_from(config)
        .unwrap()
        // kube's innermost service is a `BoxService`, which cannot be
        // cloned: a buffer in front of it can.
        .with_layer(&tower::buffer::BufferLayer::new(64))
        .with_layer(
            &TokenRefreshLayer::new(cache)
                .retry_rejected()
                // kube's body copies itself (when it is not a stream).
                .replay_with(|body: kube::client::Body, limit| {
                    Replay::copied(body, limit, kube::client::Body::try_clone)
                }),
        )
        .build();
    let pods: kube::Api<Pod> = kube::Api::namespaced(client, "default");
    let token = |pod: Pod| pod.metadata.annotations.unwrap_or_default()["token"].clone();

    assert_eq!(token(pods.get("web-0").await.unwrap()), "tok-1");
    server.revoke("tok-1");
    assert_eq!(
        token(pods.get("web-0").await.unwrap()),
        "tok-2",
        "the rejected GET was sent again with a new token"
    );
    assert_eq!(server.rejected(), 1);
    assert_eq!(server.token_requests(), 2);
}

#[tokio::test]
async fn a_body_that_copies_itself_is_replayed_within_the_limit() {
    // `Replay::copied` for a body type that is not ours: a copy when it
    // fits, none when its size says it does not.
    let small = http_body_util::Full::new(Bytes::from_static(b"0123"));
    let (_, replay) = Replay::copied(small, 4, |body| Some(body.clone()));
    assert_eq!(format!("{replay:?}"), "Replay(\"Copy\")");
    let large = http_body_util::Full::new(Bytes::from_static(b"01234"));
    let (_, replay) = Replay::copied(large, 4, |body| Some(body.clone()));
    assert_eq!(format!("{replay:?}"), "Replay(\"Never\")");
}

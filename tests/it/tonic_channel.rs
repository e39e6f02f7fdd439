//! gRPC: a tonic `Channel` wrapped in `TokenRefreshLayer`, against a tonic
//! server on 127.0.0.1 whose interceptor answers `UNAUTHENTICATED` for
//! revoked tokens (a trailers-only response).

#![cfg(feature = "tonic")]

use crate::support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::TestSource;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Server};
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;
use tower_token_refresh::{TokenCache, TokenRefreshLayer};

const HOUR: Duration = Duration::from_secs(3600);

/// The tokens the server rejects, and how many calls it rejected.
#[derive(Clone, Default)]
struct Revocations {
    revoked: Arc<Mutex<HashSet<String>>>,
    rejected: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Revocations {
    fn revoke(&self, token: &str) {
        self.revoked.lock().unwrap().insert(token.to_owned());
    }

    fn check(&self, request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        self.seen.lock().unwrap().push(token.clone());
        if token.is_empty() || self.revoked.lock().unwrap().contains(&token) {
            self.rejected.fetch_add(1, Ordering::SeqCst);
            return Err(Status::unauthenticated("token revoked"));
        }
        Ok(request)
    }
}

async fn start_server(revocations: Revocations) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders", tonic_health::ServingStatus::Serving)
        .await;
    let service = InterceptedService::new(health, move |request| revocations.check(request));
    tokio::spawn(async move {
        let _keep_reporting = reporter;
        Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    addr
}

#[tokio::test]
async fn a_unary_call_succeeds_after_one_refresh_when_its_token_is_revoked() {
    let revocations = Revocations::default();
    let addr = start_server(revocations.clone()).await;
    let source = TestSource::issuing(HOUR);
    let cache = TokenCache::new(source.clone());

    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache).retry_rejected())
        .service(channel);
    let mut client = HealthClient::new(service);
    let check = || HealthCheckRequest {
        service: "orders".into(),
    };

    let status = client.check(check()).await.unwrap().into_inner().status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    revocations.revoke("token-1");
    let status = client.check(check()).await.unwrap().into_inner().status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    assert_eq!(source.calls(), 2, "one refresh");
    assert_eq!(revocations.rejected.load(Ordering::SeqCst), 1);
    assert_eq!(
        *revocations.seen.lock().unwrap(),
        ["token-1", "token-1", "token-2"]
    );
}

#[tokio::test]
async fn a_streaming_call_is_retried_when_rejected_before_it_starts() {
    let revocations = Revocations::default();
    let addr = start_server(revocations.clone()).await;
    let source = TestSource::issuing(HOUR);
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(TokenCache::new(source.clone())).retry_rejected())
        .service(channel);
    let mut client = HealthClient::new(service);
    revocations.revoke("token-1");

    let mut updates = client
        .watch(HealthCheckRequest {
            service: "orders".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = updates.message().await.unwrap().unwrap();
    assert_eq!(
        first.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    assert_eq!(source.calls(), 2);
}

#[tokio::test]
async fn bad_credentials_come_back_as_unauthenticated_after_one_retry() {
    let revocations = Revocations::default();
    let addr = start_server(revocations.clone()).await;
    let source = TestSource::issuing(HOUR);
    for n in 1..=5 {
        revocations.revoke(&format!("token-{n}"));
    }
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(TokenCache::new(source.clone())).retry_rejected())
        .service(channel);
    let mut client = HealthClient::new(service);

    let status = client
        .check(HealthCheckRequest {
            service: "orders".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        revocations.rejected.load(Ordering::SeqCst),
        2,
        "sent at most twice"
    );
    assert_eq!(source.calls(), 2);
}

#[tokio::test]
async fn a_call_that_cannot_get_a_token_fails_with_a_retryable_status() {
    use std::error::Error as _;

    let revocations = Revocations::default();
    let addr = start_server(revocations.clone()).await;
    let source = TestSource::new(support::Behaviour::Fail("identity provider is down"));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(TokenCache::new(source)).retry_rejected())
        .service(channel);
    let mut client = HealthClient::new(service);

    let status = client
        .check(HealthCheckRequest {
            service: "orders".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status.message(),
        "could not get an access token: token source failed: identity provider is down"
    );
    let error = status
        .source()
        .and_then(|source| source.downcast_ref::<tower_token_refresh::Error>())
        .expect("the token error is the status's source");
    assert_eq!(error.kind(), tower_token_refresh::ErrorKind::Source);
    assert!(
        revocations.seen.lock().unwrap().is_empty(),
        "nothing was sent"
    );
}

/// A wrong client secret can never succeed: the call fails with
/// `UNAUTHENTICATED` (not `UNAVAILABLE`, which clients retry), and the
/// message names the cache and the server's answer.
#[tokio::test]
async fn wrong_credentials_fail_with_a_status_that_is_not_retried() {
    use support::token_endpoint::{ClientMethod, TokenEndpoint};
    use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};

    let endpoint = TokenEndpoint::start().await;
    endpoint.register("orders-client", ClientMethod::Basic("right-secret".into()));
    let source = ClientCredentials::new(
        endpoint.token_url(),
        "orders-client",
        ClientAuth::basic("wrong-secret"),
    )
    .unwrap();
    let cache = TokenCache::builder(source).name("orders").build();
    let revocations = Revocations::default();
    let addr = start_server(revocations.clone()).await;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()))
        .service(channel);
    let status = HealthClient::new(service)
        .check(HealthCheckRequest {
            service: "orders".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let message = status.message();
    assert!(
        message.starts_with(
            "could not get an access token: token cache \"orders\": token source failed: "
        ),
        "{message}"
    );
    assert!(message.contains("invalid_client"), "{message}");
    assert!(
        message.contains(&format!("(from {})", endpoint.token_url())),
        "{message}"
    );
    assert!(!message.contains("wrong-secret"), "{message}");

    let error = cache.token().await.unwrap_err();
    assert!(!error.is_retryable());
    assert_eq!(error.cache(), Some("orders"));
}

/// The identity provider down: `UNAVAILABLE`, retryable.
#[tokio::test]
async fn an_identity_provider_that_is_down_fails_with_a_retryable_status() {
    use support::token_endpoint::{Fault, TokenEndpoint};
    use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};

    let endpoint = TokenEndpoint::start().await;
    endpoint.set_fault(Some(Fault::Status(503, None, "")));
    let source = ClientCredentials::new(endpoint.token_url(), "c", ClientAuth::basic("s")).unwrap();
    let cache = TokenCache::new(source);
    let error = cache.token().await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert_eq!(tonic::Status::from(error).code(), Code::Unavailable);
}

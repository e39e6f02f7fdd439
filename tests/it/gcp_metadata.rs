//! `workload::GcpMetadata` against a fake metadata server written from
//! Google's documentation (`tests/support/gcp_metadata_server.rs`): on
//! 127.0.0.1 where the host is moved as Google's libraries allow (the
//! builder, `GCE_METADATA_HOST`), in process (its `HttpClient`) where time
//! is paused.

use crate::support;

use std::error::Error as _;
use std::time::Duration;

use support::child;
use support::fake::{self, Fault};
use support::gcp_metadata_server::{ACCOUNT, GcpMetadataServer, LIFETIME};
use tokio::time::Instant;
use tower_token_refresh::TokenCache;
use tower_token_refresh::TokenSource;
use tower_token_refresh::oauth2::ErrorKind;
use tower_token_refresh::workload::{
    ATTEMPT_TIMEOUT, GcpMetadata, IdentityEndpointError, RETRY_BUDGET,
};

const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// A source that reaches `fake` in process (its host stays the default).
fn in_process(fake: &GcpMetadataServer) -> GcpMetadata {
    GcpMetadata::new().http_client(fake::in_process(fake.router()))
}

#[tokio::test]
async fn access_tokens_of_the_default_account_from_a_moved_host() {
    let fake = GcpMetadataServer::new();
    let served = fake.serve().await;
    let source = GcpMetadata::new().host(&served.addr.to_string()).unwrap();
    let token = source.fetch_token().await.unwrap();
    assert_eq!(token.secret(), GcpMetadataServer::access_token(1));
    let left = token.time_left().unwrap();
    assert!(
        left <= LIFETIME && left > LIFETIME - Duration::from_secs(30),
        "{left:?}"
    );
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, TOKEN_PATH);
    assert!(seen[0].query.is_empty(), "{:?}", seen[0].query);
    assert_eq!(fake.problems(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn scopes_and_a_named_account() {
    let fake = GcpMetadataServer::new();
    let source = in_process(&fake).account(ACCOUNT).scopes([
        "https://www.googleapis.com/auth/cloud-platform",
        "https://www.googleapis.com/auth/pubsub",
    ]);
    let token = source.fetch_token().await.unwrap();
    assert_eq!(token.time_left(), Some(LIFETIME), "the answer's expires_in");
    let seen = &fake.seen()[0];
    assert_eq!(
        seen.path,
        format!("/computeMetadata/v1/instance/service-accounts/{ACCOUNT}/token")
    );
    assert_eq!(
        seen.query["scopes"],
        "https://www.googleapis.com/auth/cloud-platform,https://www.googleapis.com/auth/pubsub"
    );
    assert_eq!(fake.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn identity_tokens_for_an_audience_expire_at_their_exp() {
    let fake = GcpMetadataServer::new();
    let served = fake.serve().await;
    let source = GcpMetadata::new()
        .host(&format!("http://{}", served.addr))
        .unwrap()
        .id_token("https://reports-abc123-uc.a.run.app")
        .full_format();
    let token = source.fetch_token().await.unwrap();
    let claims = fake::claims(token.secret());
    assert_eq!(claims["aud"], "https://reports-abc123-uc.a.run.app");
    assert_eq!(
        claims["google"]["compute_engine"]["project_id"],
        "my-project"
    );
    let left = token.time_left().unwrap();
    assert!(
        left <= Duration::from_secs(3600) && left > Duration::from_secs(3590),
        "{left:?}"
    );
    let seen = &fake.seen()[0];
    assert_eq!(
        seen.path,
        "/computeMetadata/v1/instance/service-accounts/default/identity"
    );
    assert_eq!(
        seen.query["audience"],
        "https://reports-abc123-uc.a.run.app"
    );
    assert_eq!(seen.query["format"], "full");

    // Without `full_format`, no `format`.
    let token = source
        .clone()
        .id_token("https://api.example.com")
        .fetch_token()
        .await
        .unwrap();
    assert!(fake::claims(token.secret())["google"].is_null());
    assert!(!fake.seen()[1].query.contains_key("format"));
}

/// What the fake refuses, as the real server does (so the other tests
/// show that the source sends what the server requires).
#[tokio::test]
async fn the_fake_refuses_requests_without_the_metadata_flavor_header() {
    let fake = GcpMetadataServer::new();
    let served = fake.serve().await;
    let url = format!("http://{}{TOKEN_PATH}", served.addr);
    let (status, body) = fake::raw_get(&url, &[]).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = fake::raw_get(&url, &[("Metadata-Flavor", "Google")]).await;
    assert_eq!(status, 200);
    let forwarded = [
        ("Metadata-Flavor", "Google"),
        ("X-Forwarded-For", "10.0.0.1"),
    ];
    assert_eq!(fake::raw_get(&url, &forwarded).await.0, 403);
    assert_eq!(fake.problems().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_with_backoff_and_retry_after() {
    let fake = GcpMetadataServer::new();
    fake.fail_with([
        Fault::Status(503, None, "Service Unavailable"),
        Fault::Status(500, None, "Internal Server Error"),
        Fault::Status(429, Some(1), "Too Many Requests"),
    ]);
    let started = Instant::now();
    let token = in_process(&fake).fetch_token().await.unwrap();
    assert_eq!(token.secret(), GcpMetadataServer::access_token(1));
    assert_eq!(fake.calls(), 4);
    let waited = started.elapsed();
    // Backoffs of at least 125 ms and 250 ms, then the asked-for second.
    assert!(
        waited >= Duration::from_millis(1375) && waited <= RETRY_BUDGET,
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_that_never_answers_is_given_up_within_the_budget() {
    let fake = GcpMetadataServer::new();
    fake.fail_with(vec![Fault::Hang; 10]);
    let started = Instant::now();
    let error = in_process(&fake).fetch_token().await.unwrap_err();
    let waited = started.elapsed();
    // Three attempts of 2 s and two backoffs; a fourth could not end within
    // the budget.
    assert_eq!(fake.calls(), 3);
    assert!(
        waited >= ATTEMPT_TIMEOUT * 3 && waited <= RETRY_BUDGET,
        "{waited:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(!error.is_permanent());

    // Through a cache: retryable, and the message says who and what.
    fake.fail_with(vec![Fault::Hang; 10]);
    let cache = TokenCache::new(in_process(&fake));
    let error = cache.token().await.unwrap_err();
    assert!(error.is_retryable());
    let shown = error.to_string();
    assert!(
        shown.contains("GCP metadata server gave no token")
            && shown.contains("did not answer within 2s")
            && shown.contains(&format!("http://metadata.google.internal{TOKEN_PATH}")),
        "{shown}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unknown_account_is_a_permanent_error_naming_the_endpoint() {
    let fake = GcpMetadataServer::new();
    let source = in_process(&fake).account("nobody@my-project.iam.gserviceaccount.com");
    let cache = TokenCache::new(source);
    let error = cache.token().await.unwrap_err();
    assert_eq!(fake.calls(), 1, "a 404 is not retried");
    assert!(!error.is_retryable());
    let endpoint_error = error
        .source()
        .and_then(|source| source.downcast_ref::<IdentityEndpointError>())
        .unwrap();
    assert!(endpoint_error.is_permanent());
    assert_eq!(endpoint_error.provider(), "GCP metadata server");
    assert_eq!(
        endpoint_error.status().map(|status| status.as_u16()),
        Some(404)
    );
    let shown = error.to_string();
    assert!(
        shown.contains("GCP metadata server gave no token: the metadata server refused the request")
            && shown.contains("404 Not Found")
            && shown.contains(
                "(from http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/nobody@my-project.iam.gserviceaccount.com/token)"
            ),
        "{shown}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_burst_at_expiry_makes_one_call() {
    let fake = GcpMetadataServer::new();
    let cache = TokenCache::new(in_process(&fake));
    let issued = |token: &str| {
        token
            .strip_prefix("ya29.gcp-access-")
            .unwrap()
            .parse()
            .unwrap()
    };
    fake::bursts_at_expiry(&cache, &fake, LIFETIME, issued).await;
}

#[test]
fn debug_name_and_fingerprint_say_which_identity() {
    let source = GcpMetadata::new().account(ACCOUNT).scopes(["a", "b"]);
    assert_eq!(source.name(), "GCP metadata server");
    assert_eq!(
        source.fingerprint().unwrap(),
        format!(
            "gcp-metadata http://metadata.google.internal account=\"{ACCOUNT}\" access-token scopes=\"a,b\""
        )
    );
    let shown = format!("{source:?}");
    assert!(
        shown.contains("metadata.google.internal") && shown.contains(ACCOUNT),
        "{shown}"
    );
    let id = GcpMetadata::new()
        .id_token("https://api.example.com")
        .full_format();
    assert_eq!(
        id.fingerprint().unwrap(),
        "gcp-metadata http://metadata.google.internal account=\"default\" id-token audience=\"https://api.example.com\" format=full"
    );
}

#[test]
fn plain_http_goes_only_to_the_metadata_server_or_this_machine() {
    for host in [
        "metadata.google.internal",
        "169.254.169.254",
        "127.0.0.1:8080",
        "localhost:8080",
        "http://[::1]:8080",
        "https://metadata.example.com",
    ] {
        assert!(GcpMetadata::new().host(host).is_ok(), "{host}");
    }
    for host in [
        "metadata.example.com",
        "10.1.2.3",
        "http://evil.example:80",
        "127.0.0.1/path",
    ] {
        let error = GcpMetadata::new().host(host).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("GCP metadata server: the host is not usable"),
            "{host}: {error}"
        );
    }
}

#[tokio::test]
async fn from_env_reads_gce_metadata_host() {
    let fake = GcpMetadataServer::new();
    let served = fake.serve().await;
    let name = child::test_path(module_path!(), "child_from_env");
    let addr = served.addr.to_string();
    child::run(&name, &[("GCE_METADATA_HOST", &addr), ("CASE", "fetch")]).await;
    assert_eq!(fake.calls(), 1, "the child asked the fake");
    child::run(
        &name,
        &[
            ("GCE_METADATA_HOST", "metadata.example.com"),
            ("CASE", "remote"),
        ],
    )
    .await;
    child::run(&name, &[("CASE", "unset")]).await;
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
#[ignore = "run by from_env_reads_gce_metadata_host, in a child process"]
async fn child_from_env() {
    if !child::in_child() {
        return;
    }
    match std::env::var("CASE").unwrap().as_str() {
        "fetch" => {
            let token = GcpMetadata::from_env()
                .unwrap()
                .fetch_token()
                .await
                .unwrap();
            assert_eq!(token.secret(), GcpMetadataServer::access_token(1));
        }
        "remote" => {
            let error = GcpMetadata::from_env().unwrap_err();
            assert_eq!(error.variable(), Some("GCE_METADATA_HOST"));
            assert!(!error.is_missing());
            assert!(
                error
                    .to_string()
                    .starts_with("GCP metadata server: GCE_METADATA_HOST is not usable: invalid endpoint URL: plain http is refused"),
                "{error}"
            );
        }
        "unset" => {
            let source = GcpMetadata::from_env().unwrap();
            assert!(format!("{source:?}").contains("http://metadata.google.internal"));
        }
        other => panic!("unknown case {other}"),
    }
}

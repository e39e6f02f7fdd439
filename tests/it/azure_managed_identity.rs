//! `workload::AzureManagedIdentity` against a fake of IMDS and the App
//! Service identity endpoint written from Microsoft's documentation
//! (`tests/support/azure_identity_server.rs`): on 127.0.0.1 where the
//! endpoint is moved as Azure's SDKs allow (`imds_at` /
//! `AZURE_POD_IDENTITY_AUTHORITY_HOST`, `app_service` /
//! `IDENTITY_ENDPOINT`), in process (its `HttpClient`) where time is
//! paused.

use crate::support;

use std::error::Error as _;
use std::time::Duration;

use support::azure_identity_server::{
    APP_SERVICE_LIFETIME, APP_SERVICE_PATH, AzureIdentityServer, CLIENT_ID, IDENTITY_HEADER,
    IMDS_LIFETIME, IMDS_PATH, OBJECT_ID, RESOURCE_ID,
};
use support::child;
use support::fake::{self, Fault};
use tokio::time::Instant;
use tower_token_refresh::workload::{AzureManagedIdentity, IdentityEndpointError, UserAssignedId};
use tower_token_refresh::{TokenCache, TokenSource};

const VAULT: &str = "https://vault.azure.net";

fn imds_in_process(fake: &AzureIdentityServer) -> AzureManagedIdentity {
    AzureManagedIdentity::imds(VAULT).http_client(fake::in_process(fake.router()))
}

fn app_service_in_process(fake: &AzureIdentityServer, header: &str) -> AzureManagedIdentity {
    AzureManagedIdentity::app_service(
        &format!("http://127.0.0.1:41234{APP_SERVICE_PATH}"),
        header,
        VAULT,
    )
    .unwrap()
    .http_client(fake::in_process(fake.router()))
}

fn endpoint_error(error: &tower_token_refresh::Error) -> &IdentityEndpointError {
    error
        .source()
        .and_then(|source| source.downcast_ref::<IdentityEndpointError>())
        .unwrap()
}

#[tokio::test]
async fn imds_on_a_moved_authority_for_the_system_assigned_identity() {
    let fake = AzureIdentityServer::new();
    let served = fake.serve().await;
    let source = AzureManagedIdentity::imds_at(
        &format!("http://{}", served.addr),
        "https://management.azure.com/",
    )
    .unwrap();
    let token = source.fetch_token().await.unwrap();
    assert_eq!(token.secret(), AzureIdentityServer::access_token(1));
    let left = token.time_left().unwrap();
    assert!(
        left <= IMDS_LIFETIME && left > IMDS_LIFETIME - Duration::from_secs(30),
        "{left:?}"
    );
    let seen = &fake.seen()[0];
    assert_eq!(seen.path, IMDS_PATH);
    assert_eq!(seen.query.len(), 2, "{:?}", seen.query);
    assert_eq!(seen.query["api-version"], "2018-02-01");
    assert_eq!(seen.query["resource"], "https://management.azure.com/");
    assert_eq!(fake.problems(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn imds_user_assigned_identities_by_each_id() {
    let fake = AzureIdentityServer::new();
    for (id, name, value) in [
        (
            UserAssignedId::ClientId(CLIENT_ID.into()),
            "client_id",
            CLIENT_ID,
        ),
        (
            UserAssignedId::ObjectId(OBJECT_ID.into()),
            "object_id",
            OBJECT_ID,
        ),
        (
            UserAssignedId::ResourceId(RESOURCE_ID.into()),
            "msi_res_id",
            RESOURCE_ID,
        ),
    ] {
        // A scope ending in /.default asks for its resource.
        let source = AzureManagedIdentity::imds("https://vault.azure.net/.default")
            .user_assigned(id)
            .http_client(fake::in_process(fake.router()));
        let token = source.fetch_token().await.unwrap();
        assert_eq!(
            token.time_left(),
            Some(IMDS_LIFETIME),
            "from expires_in, a string"
        );
        let seen = fake.seen().pop().unwrap();
        assert_eq!(seen.query[name], value);
        assert_eq!(seen.query["resource"], VAULT);
        assert_eq!(seen.query.len(), 3, "{:?}", seen.query);
    }
    assert_eq!(fake.problems(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn an_identity_not_assigned_is_a_permanent_error() {
    let fake = AzureIdentityServer::new();
    let source =
        imds_in_process(&fake).user_assigned(UserAssignedId::ClientId("0000-unknown".into()));
    let error = TokenCache::new(source).token().await.unwrap_err();
    assert_eq!(fake.calls(), 1, "a 400 is not retried");
    assert!(!error.is_retryable());
    assert!(endpoint_error(&error).is_permanent());
    let shown = error.to_string();
    assert!(
        shown.contains("Azure managed identity gave no token: the managed identity endpoint refused the request")
            && shown.contains("`invalid_request` with status 400 Bad Request: Identity not found")
            && shown.contains("(from http://169.254.169.254/metadata/identity/oauth2/token)"),
        "{shown}"
    );
    assert!(
        !shown.contains("0000-unknown"),
        "the query is not shown: {shown}"
    );
}

#[tokio::test]
async fn app_service_with_the_identity_header_and_expires_on() {
    let fake = AzureIdentityServer::new();
    let served = fake.serve().await;
    let endpoint = format!("http://{}{APP_SERVICE_PATH}", served.addr);
    for (id, name, value) in [
        (None, "", ""),
        (
            Some(UserAssignedId::ClientId(CLIENT_ID.into())),
            "client_id",
            CLIENT_ID,
        ),
        (
            Some(UserAssignedId::ObjectId(OBJECT_ID.into())),
            "principal_id",
            OBJECT_ID,
        ),
        (
            Some(UserAssignedId::ResourceId(RESOURCE_ID.into())),
            "mi_res_id",
            RESOURCE_ID,
        ),
    ] {
        let mut source =
            AzureManagedIdentity::app_service(&endpoint, IDENTITY_HEADER, VAULT).unwrap();
        if let Some(id) = id {
            source = source.user_assigned(id);
        }
        let token = source.fetch_token().await.unwrap();
        let left = token.time_left().unwrap();
        assert!(
            left <= APP_SERVICE_LIFETIME && left > APP_SERVICE_LIFETIME - Duration::from_secs(30),
            "from expires_on: {left:?}"
        );
        let seen = fake.seen().pop().unwrap();
        assert_eq!(seen.path, APP_SERVICE_PATH);
        assert_eq!(seen.query["api-version"], "2019-08-01");
        assert_eq!(seen.query["resource"], VAULT);
        if !name.is_empty() {
            assert_eq!(seen.query[name], value);
        }
    }
    assert_eq!(fake.problems(), Vec::<String>::new());
}

/// What the fake refuses, as Azure does (so the other tests show that the
/// source sends what the endpoints require).
#[tokio::test]
async fn the_fake_refuses_requests_without_the_required_headers() {
    let fake = AzureIdentityServer::new();
    let served = fake.serve().await;
    let imds = format!(
        "http://{}{IMDS_PATH}?api-version=2018-02-01&resource={VAULT}",
        served.addr
    );
    let (status, body) = fake::raw_get(&imds, &[]).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("Required metadata header not specified"),
        "{body}"
    );
    assert_eq!(fake::raw_get(&imds, &[("Metadata", "true")]).await.0, 200);
    let forwarded = [("Metadata", "true"), ("X-Forwarded-For", "10.0.0.1")];
    assert_eq!(fake::raw_get(&imds, &forwarded).await.0, 400);

    let app = format!(
        "http://{}{APP_SERVICE_PATH}?api-version=2019-08-01&resource={VAULT}",
        served.addr
    );
    assert_eq!(fake::raw_get(&app, &[]).await.0, 401);
    assert_eq!(
        fake::raw_get(&app, &[("X-IDENTITY-HEADER", "guess")])
            .await
            .0,
        401
    );
    let right = [("X-IDENTITY-HEADER", IDENTITY_HEADER)];
    assert_eq!(fake::raw_get(&app, &right).await.0, 200);
    assert_eq!(fake.problems().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn not_ready_gone_throttled_and_failing_are_retried_with_backoff() {
    let fake = AzureIdentityServer::new();
    fake.fail_with([
        Fault::Status(404, None, ""),
        Fault::Status(410, None, ""),
        Fault::Status(429, Some(1), r#"{"error":"too_many_requests"}"#),
    ]);
    let started = Instant::now();
    let token = imds_in_process(&fake).fetch_token().await.unwrap();
    assert_eq!(token.secret(), AzureIdentityServer::access_token(1));
    assert_eq!(fake.calls(), 4);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1375), "{waited:?}");

    // A server error on every attempt: retryable for the cache, not
    // permanent, even a 404 (the identity may be on its way).
    for status in [500, 404] {
        fake.fail_with(vec![Fault::Status(status, None, ""); 4]);
        let before = fake.calls();
        let error = TokenCache::new(imds_in_process(&fake))
            .token()
            .await
            .unwrap_err();
        assert_eq!(fake.calls() - before, 4, "{status}");
        assert!(error.is_retryable(), "{status}: {error}");
        let endpoint_error = endpoint_error(&error);
        assert!(!endpoint_error.is_permanent());
        assert_eq!(endpoint_error.status().unwrap().as_u16(), status);
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_budget_is_left_to_the_cache() {
    let fake = AzureIdentityServer::new();
    fake.fail_with([Fault::Status(429, Some(30), "")]);
    let cache = TokenCache::new(imds_in_process(&fake));
    let error = cache.token().await.unwrap_err();
    assert_eq!(fake.calls(), 1, "not retried within the fetch");
    assert_eq!(
        endpoint_error(&error).retry_after(),
        Some(Duration::from_secs(30))
    );
    // The cache waits as asked before calling again.
    tokio::time::advance(Duration::from_secs(20)).await;
    assert!(cache.token().await.is_err());
    assert_eq!(fake.calls(), 1);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(
        cache.token().await.unwrap().secret(),
        AzureIdentityServer::access_token(1)
    );
    assert_eq!(fake.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_identity_header_is_never_shown() {
    let fake = AzureIdentityServer::new();
    let wrong = "wrong-header-SECRET";
    let error = TokenCache::new(app_service_in_process(&fake, wrong))
        .token()
        .await
        .unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(
        shown.contains("401 Unauthorized") && !shown.contains("SECRET"),
        "{shown}"
    );
    assert!(!error.is_retryable());

    // Nor when the endpoint echoes it.
    fake.fail_with([Fault::Status(
        400,
        None,
        r#"{"error":"invalid_request","error_description":"bad header 9c1e-identity-header-SECRET"}"#,
    )]);
    let error = TokenCache::new(app_service_in_process(&fake, IDENTITY_HEADER))
        .token()
        .await
        .unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(
        shown.contains("redacted") && !shown.contains("SECRET"),
        "{shown}"
    );

    let source = app_service_in_process(&fake, IDENTITY_HEADER);
    let debug = format!("{source:?} {source:#?}");
    assert!(
        !debug.contains("SECRET") && debug.contains("redacted"),
        "{debug}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_burst_at_expiry_makes_one_call() {
    let issued = |token: &str| token.strip_prefix("az-access-").unwrap().parse().unwrap();
    let fake = AzureIdentityServer::new();
    let cache = TokenCache::new(imds_in_process(&fake));
    fake::bursts_at_expiry(&cache, &fake, IMDS_LIFETIME, issued).await;
    let fake = AzureIdentityServer::new();
    let cache = TokenCache::new(app_service_in_process(&fake, IDENTITY_HEADER));
    fake::bursts_at_expiry(&cache, &fake, APP_SERVICE_LIFETIME, issued).await;
}

#[test]
fn name_fingerprint_and_endpoint_policy() {
    let source =
        AzureManagedIdentity::imds(VAULT).user_assigned(UserAssignedId::ClientId(CLIENT_ID.into()));
    assert_eq!(source.name(), "Azure managed identity");
    assert_eq!(
        source.fingerprint().unwrap(),
        format!(
            "azure-managed-identity imds http://169.254.169.254{IMDS_PATH} resource=\"{VAULT}\" client_id=\"{CLIENT_ID}\""
        )
    );
    assert!(
        AzureManagedIdentity::app_service("http://localhost:8081/msi/token", "h", VAULT).is_ok()
    );
    assert!(
        AzureManagedIdentity::app_service("http://169.254.129.3:8081/msi/token", "h", VAULT)
            .is_ok()
    );
    let error = AzureManagedIdentity::app_service("http://10.0.0.4:8081/msi/token", "h", VAULT)
        .unwrap_err();
    assert!(
        error.to_string().starts_with("Azure managed identity: the identity endpoint is not usable: invalid endpoint URL: plain http is refused"),
        "{error}"
    );
    let error =
        AzureManagedIdentity::app_service("http://127.0.0.1/msi/token", "bad\nheader", VAULT)
            .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Azure managed identity: the identity header is not usable: it holds characters a header cannot carry"
    );
    assert!(AzureManagedIdentity::imds_at("imds.example.com", VAULT).is_err());
}

#[tokio::test]
async fn from_env_finds_app_service_or_imds_and_names_a_missing_variable() {
    let fake = AzureIdentityServer::new();
    let served = fake.serve().await;
    let name = child::test_path(module_path!(), "child_from_env");
    let endpoint = format!("http://{}{APP_SERVICE_PATH}", served.addr);
    let authority = format!("http://{}", served.addr);
    child::run(
        &name,
        &[
            ("IDENTITY_ENDPOINT", &endpoint),
            ("IDENTITY_HEADER", IDENTITY_HEADER),
            ("AZURE_CLIENT_ID", CLIENT_ID),
            ("CASE", "fetch"),
        ],
    )
    .await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, APP_SERVICE_PATH);
    assert_eq!(seen[0].query["client_id"], CLIENT_ID);

    child::run(
        &name,
        &[
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", &authority),
            ("CASE", "fetch"),
        ],
    )
    .await;
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].path, IMDS_PATH);
    assert!(!seen[1].query.contains_key("client_id"));

    child::run(
        &name,
        &[("IDENTITY_ENDPOINT", &endpoint), ("CASE", "no-header")],
    )
    .await;
    let remote = [
        ("IDENTITY_ENDPOINT", "http://10.0.0.4:8081/msi/token"),
        ("IDENTITY_HEADER", IDENTITY_HEADER),
        ("CASE", "remote"),
    ];
    child::run(&name, &remote).await;
    child::run(&name, &[("CASE", "unset")]).await;
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
#[ignore = "run by from_env_finds_app_service_or_imds_and_names_a_missing_variable, in a child process"]
async fn child_from_env() {
    if !child::in_child() {
        return;
    }
    match std::env::var("CASE").unwrap().as_str() {
        "fetch" => {
            let source = AzureManagedIdentity::from_env(VAULT).unwrap();
            let token = source.fetch_token().await.unwrap();
            assert!(token.secret().starts_with("az-access-"));
        }
        "no-header" => {
            let error = AzureManagedIdentity::from_env(VAULT).unwrap_err();
            assert_eq!(error.variable(), Some("IDENTITY_HEADER"));
            assert!(error.is_missing());
            assert!(
                error.to_string().starts_with(
                    "Azure managed identity: IDENTITY_HEADER is not set; IDENTITY_ENDPOINT is set without it"
                ),
                "{error}"
            );
        }
        "remote" => {
            let error = AzureManagedIdentity::from_env(VAULT).unwrap_err();
            assert_eq!(error.variable(), Some("IDENTITY_ENDPOINT"));
            assert!(!error.is_missing());
            let shown = format!("{error} {error:?}");
            assert!(
                !shown.contains("SECRET") && !shown.contains("10.0.0.4"),
                "{shown}"
            );
        }
        "unset" => {
            let source = AzureManagedIdentity::from_env(VAULT).unwrap();
            let shown = format!("{source:?}");
            assert!(
                shown.contains("http://169.254.169.254/metadata/identity/oauth2/token"),
                "{shown}"
            );
            assert!(shown.contains("identity: None"), "{shown}");
        }
        other => panic!("unknown case {other}"),
    }
}

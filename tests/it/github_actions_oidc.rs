//! `workload::GithubActionsOidc` against a fake of GitHub's OIDC token
//! endpoint written from GitHub's documentation
//! (`tests/support/github_oidc_server.rs`): on 127.0.0.1 through the
//! request URL (given, or in `ACTIONS_ID_TOKEN_REQUEST_URL`), in process
//! (its `HttpClient`) where time is paused.

use crate::support;

use std::error::Error as _;
use std::time::Duration;

use support::child;
use support::fake::{self, Fault};
use support::github_oidc_server::{GithubOidcServer, LIFETIME, PATH, REQUEST_TOKEN};
use tower_token_refresh::TokenCache;
use tower_token_refresh::TokenSource;
use tower_token_refresh::workload::{GithubActionsOidc, IdentityEndpointError};

/// The request URL GitHub gives a job, for sources that reach the fake in
/// process.
const GITHUB_URL: &str = "https://pipelines.actions.githubusercontent.com";

fn in_process(fake: &GithubOidcServer, request_token: &str) -> GithubActionsOidc {
    GithubActionsOidc::new(&GithubOidcServer::request_url(GITHUB_URL), request_token)
        .unwrap()
        .http_client(fake::in_process(fake.router()))
}

#[tokio::test]
async fn the_job_token_for_an_audience() {
    let fake = GithubOidcServer::new();
    let served = fake.serve().await;
    let url = GithubOidcServer::request_url(&format!("http://{}", served.addr));
    let source = GithubActionsOidc::new(&url, REQUEST_TOKEN)
        .unwrap()
        .audience("api://AzureADTokenExchange");
    let token = source.fetch_token().await.unwrap();
    let claims = fake::claims(token.secret());
    assert_eq!(claims["aud"], "api://AzureADTokenExchange");
    assert_eq!(claims["iss"], "https://token.actions.githubusercontent.com");
    let left = token.time_left().unwrap();
    assert!(
        left <= LIFETIME && left > LIFETIME - Duration::from_secs(10),
        "{left:?}"
    );
    let seen = &fake.seen()[0];
    assert_eq!(seen.path, PATH);
    assert_eq!(
        seen.query["api-version"], "2.0",
        "the URL's own query is kept"
    );
    assert_eq!(seen.query["audience"], "api://AzureADTokenExchange");
    assert_eq!(fake.problems(), Vec::<String>::new());

    // Without an audience, GitHub's default.
    let token = GithubActionsOidc::new(&url, REQUEST_TOKEN)
        .unwrap()
        .fetch_token()
        .await
        .unwrap();
    assert_eq!(
        fake::claims(token.secret())["aud"],
        "https://github.com/octo-org"
    );
    assert!(!fake.seen()[1].query.contains_key("audience"));
}

#[tokio::test]
async fn the_fake_refuses_requests_without_the_request_token() {
    let fake = GithubOidcServer::new();
    let served = fake.serve().await;
    let url = GithubOidcServer::request_url(&format!("http://{}", served.addr));
    assert_eq!(fake::raw_get(&url, &[]).await.0, 401);
    let wrong = [("Authorization", "bearer someone-else")];
    assert_eq!(fake::raw_get(&url, &wrong).await.0, 401);
    let right = format!("Bearer {REQUEST_TOKEN}");
    let (status, body) = fake::raw_get(&url, &[("Authorization", &right)]).await;
    assert_eq!(status, 200);
    assert!(body.starts_with(r#"{"value":"eyJ"#), "{body}");
}

#[tokio::test(start_paused = true)]
async fn a_refused_request_token_is_permanent_and_never_shown() {
    let fake = GithubOidcServer::new();
    let cache = TokenCache::new(in_process(&fake, "expired-request-token-SECRET"));
    let error = cache.token().await.unwrap_err();
    assert_eq!(fake.calls(), 1, "a 401 is not retried");
    assert!(!error.is_retryable());
    let endpoint_error = error
        .source()
        .and_then(|source| source.downcast_ref::<IdentityEndpointError>())
        .unwrap();
    assert!(endpoint_error.is_permanent());
    assert_eq!(
        endpoint_error.endpoint(),
        Some(&*format!("{GITHUB_URL}{PATH}"))
    );
    let shown = format!("{error} {error:?}");
    assert!(
        shown.contains("GitHub Actions OIDC gave no token: GitHub refused the request token")
            && shown.contains("401 Unauthorized"),
        "{shown}"
    );
    assert!(
        !shown.contains("SECRET") && !shown.contains("api-version"),
        "{shown}"
    );
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_and_bad_answers_never_quoted() {
    let fake = GithubOidcServer::new();
    fake.fail_with([
        Fault::Status(500, None, "Internal Server Error"),
        Fault::Status(503, Some(2), ""),
    ]);
    let source = in_process(&fake, REQUEST_TOKEN);
    source.fetch_token().await.unwrap();
    assert_eq!(fake.calls(), 3);

    for (body, expected) in [
        (r#"{"value":"opaque-SECRET-token"}"#, "`value` is not a JWT"),
        (r#"{"count":1}"#, "`value` is missing"),
        ("<html>SECRET</html>", "it looks like an HTML page"),
    ] {
        fake.fail_with([Fault::Status(200, None, body)]);
        let error = TokenCache::new(source.clone()).token().await.unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(shown.contains(expected), "{body}: {shown}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(error.is_retryable(), "{shown}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_at_expiry_makes_one_call() {
    let fake = GithubOidcServer::new();
    let cache = TokenCache::new(in_process(&fake, REQUEST_TOKEN).audience("sts.amazonaws.com"));
    let issued = |token: &str| fake::claims(token)["n"].as_u64().unwrap() as usize;
    fake::bursts_at_expiry(&cache, &fake, LIFETIME, issued).await;
}

#[test]
fn debug_and_fingerprint_never_show_the_request_token() {
    let source = GithubActionsOidc::new(&GithubOidcServer::request_url(GITHUB_URL), REQUEST_TOKEN)
        .unwrap()
        .audience("sts.amazonaws.com");
    let shown = format!("{source:?} {source:#?}");
    assert!(!shown.contains(REQUEST_TOKEN), "{shown}");
    assert!(
        shown.contains("redacted") && shown.contains("sts.amazonaws.com"),
        "{shown}"
    );
    assert_eq!(source.name(), "GitHub Actions OIDC");
    assert_eq!(
        source.fingerprint().unwrap(),
        format!("github-actions-oidc {GITHUB_URL}{PATH} audience=\"sts.amazonaws.com\"")
    );
    let error =
        GithubActionsOidc::new("http://token.example.com/idtoken", REQUEST_TOKEN).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("GitHub Actions OIDC: the request URL is not usable"),
        "{error}"
    );
}

#[tokio::test]
async fn from_env_reads_both_variables_and_names_a_missing_one() {
    let fake = GithubOidcServer::new();
    let served = fake.serve().await;
    let url = GithubOidcServer::request_url(&format!("http://{}", served.addr));
    let name = child::test_path(module_path!(), "child_from_env");
    let both = [
        ("ACTIONS_ID_TOKEN_REQUEST_URL", url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN),
    ];
    child::run(&name, &[both[0], both[1], ("CASE", "fetch")]).await;
    assert_eq!(fake.calls(), 1, "the child asked the fake");
    child::run(&name, &[both[1], ("CASE", "no-url")]).await;
    child::run(&name, &[both[0], ("CASE", "no-token")]).await;
    let plain = (
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "http://token.example.com/idtoken",
    );
    child::run(&name, &[plain, both[1], ("CASE", "plain-http")]).await;
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
#[ignore = "run by from_env_reads_both_variables_and_names_a_missing_one, in a child process"]
async fn child_from_env() {
    if !child::in_child() {
        return;
    }
    let case = std::env::var("CASE").unwrap();
    if case == "fetch" {
        let source = GithubActionsOidc::from_env().unwrap().audience("my-api");
        let token = source.fetch_token().await.unwrap();
        assert_eq!(fake::claims(token.secret())["aud"], "my-api");
        return;
    }
    let error = GithubActionsOidc::from_env().unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(REQUEST_TOKEN), "{shown}");
    match case.as_str() {
        "no-url" => {
            assert_eq!(error.variable(), Some("ACTIONS_ID_TOKEN_REQUEST_URL"));
            assert!(error.is_missing());
            assert_eq!(
                error.to_string(),
                "GitHub Actions OIDC: ACTIONS_ID_TOKEN_REQUEST_URL is not set; \
                 is the job's `permissions: id-token: write` given?"
            );
        }
        "no-token" => {
            assert_eq!(error.variable(), Some("ACTIONS_ID_TOKEN_REQUEST_TOKEN"));
            assert!(error.is_missing());
        }
        "plain-http" => {
            assert_eq!(error.variable(), Some("ACTIONS_ID_TOKEN_REQUEST_URL"));
            assert!(!error.is_missing());
            assert!(
                error
                    .to_string()
                    .starts_with("GitHub Actions OIDC: ACTIONS_ID_TOKEN_REQUEST_URL is not usable: invalid endpoint URL: plain http is refused"),
                "{error}"
            );
        }
        other => panic!("unknown case {other}"),
    }
}

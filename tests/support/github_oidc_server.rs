//! A fake of GitHub Actions' OIDC token endpoint, written from GitHub's
//! documentation and its toolkit:
//!
//! - https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect
//!   ("Methods for requesting the OIDC token": `curl -H "Authorization:
//!   bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN"
//!   "$ACTIONS_ID_TOKEN_REQUEST_URL&audience=…"`; the answer is JSON with
//!   the token in `value`; the default audience is the owner's URL; claims
//!   `iss`, `sub`, `aud`, `repository`, …),
//! - actions/toolkit `packages/core/src/oidc-utils.ts` (the audience
//!   appended URL-encoded to the request URL, which already has a query,
//!   `api-version=2.0`; `value` read from the answer; a bearer credential).
//!
//! A request without the bearer request token, or with another one, gets
//! `401`.
#![cfg(feature = "workload")]

use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::json;

use super::fake;

/// The job's request token (a secret).
pub const REQUEST_TOKEN: &str = "ghs-request-token-SECRET-0f3b";

/// The path of the job's request URL.
pub const PATH: &str = "/00000000-0000-0000-0000-000000000000/_apis/distributedtask/hubs/Actions/plans/7c1c/jobs/9a2d/idtoken";

/// How long the job's tokens live.
pub const LIFETIME: Duration = Duration::from_secs(300);

fake::fake_server!(
    /// The fake; clones share its state.
    GithubOidcServer,
    handle
);

impl GithubOidcServer {
    /// `ACTIONS_ID_TOKEN_REQUEST_URL` on `authority`.
    pub fn request_url(authority: &str) -> String {
        format!("{authority}{PATH}?api-version=2.0")
    }
}

async fn handle(State(fake): State<GithubOidcServer>, request: Request) -> Response {
    if let Some(fault) = fake.arrived(&request) {
        return fake::fault(fault).await;
    }
    let authorized = fake::header(&request, "authorization")
        .and_then(|value| value.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && token == REQUEST_TOKEN
        });
    if !authorized {
        fake.problem("no or wrong bearer request token");
        return fake::text(401, "");
    }
    let query = fake::query(&request);
    if request.uri().path() != PATH || query.get("api-version").map(String::as_str) != Some("2.0") {
        fake.problem(format!("asked {}", request.uri().path()));
        return fake::text(404, "");
    }
    let audience = query
        .get("audience")
        .cloned()
        .unwrap_or_else(|| "https://github.com/octo-org".to_owned());
    let n = fake.next_number();
    let claims = json!({
        "iss": "https://token.actions.githubusercontent.com",
        "sub": "repo:octo-org/octo-repo:ref:refs/heads/main",
        "aud": audience,
        "repository": "octo-org/octo-repo",
        "ref": "refs/heads/main",
        "job_workflow_ref": "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main",
        "n": n,
    });
    fake::json(200, json!({ "value": fake::jwt(claims, LIFETIME) }))
}

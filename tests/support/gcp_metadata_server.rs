//! A fake GCP metadata server, written from Google's documentation:
//!
//! - https://cloud.google.com/compute/docs/metadata/querying-metadata
//!   (`Metadata-Flavor: Google` required, else `403`; requests with
//!   `X-Forwarded-For` refused; answers carry `Metadata-Flavor: Google`;
//!   `503` while the server is briefly unavailable, to be retried),
//! - https://cloud.google.com/compute/docs/access/authenticate-workloads
//!   (`GET /computeMetadata/v1/instance/service-accounts/{account}/token`,
//!   optional `scopes` as a comma-separated list; the answer
//!   `{"access_token": …, "expires_in": 3599, "token_type": "Bearer"}`),
//! - https://cloud.google.com/compute/docs/instances/verifying-instance-identity
//!   (`…/identity?audience=…[&format=full]`: the JWT as text; an audience
//!   is required).
#![cfg(feature = "workload")]

use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderValue, Method};
use serde_json::json;

use super::fake;

/// The service account attached to the fake's "instance", besides `default`.
pub const ACCOUNT: &str = "reports@my-project.iam.gserviceaccount.com";

const PREFIX: &str = "/computeMetadata/v1/instance/service-accounts/";

fake::fake_server!(
    /// The fake; clones share its state.
    GcpMetadataServer,
    handle
);

/// How long the fake's tokens live, as the metadata server says of a
/// token it just minted.
pub const LIFETIME: Duration = Duration::from_secs(3599);

impl GcpMetadataServer {
    /// The access token the fake issues `n`-th (from 1).
    pub fn access_token(n: usize) -> String {
        format!("ya29.gcp-access-{n}")
    }
}

async fn handle(State(fake): State<GcpMetadataServer>, request: Request) -> Response {
    if let Some(fault) = fake.arrived(&request) {
        return fake::fault(fault).await;
    }
    let mut response = answer(&fake, &request);
    response
        .headers_mut()
        .insert("metadata-flavor", HeaderValue::from_static("Google"));
    response
}

fn answer(fake: &GcpMetadataServer, request: &Request) -> Response {
    if fake::header(request, "metadata-flavor") != Some("Google") {
        fake.problem("no Metadata-Flavor: Google");
        return fake::text(403, "Missing Metadata-Flavor:Google header.");
    }
    if request.headers().contains_key("x-forwarded-for") {
        fake.problem("X-Forwarded-For");
        return fake::text(403, "Request had an X-Forwarded-For header.");
    }
    if request.method() != Method::GET {
        fake.problem(format!("method {}", request.method()));
        return fake::text(405, "Method Not Allowed");
    }
    let query = fake::query(request);
    let Some((account, what)) = request
        .uri()
        .path()
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('/'))
    else {
        return fake::text(404, "Not Found");
    };
    if account != "default" && account != ACCOUNT {
        return fake::text(404, "Not Found");
    }
    let email = if account == "default" {
        "default@my-project.iam.gserviceaccount.com"
    } else {
        account
    };
    let n = fake.next_number();
    match what {
        "token" => fake::json(
            200,
            json!({
                "access_token": GcpMetadataServer::access_token(n),
                "expires_in": LIFETIME.as_secs(),
                "token_type": "Bearer",
            }),
        ),
        "identity" => {
            let Some(audience) = query
                .get("audience")
                .filter(|audience| !audience.is_empty())
            else {
                return fake::text(400, "non-empty audience parameter required");
            };
            let mut claims = json!({
                "iss": "https://accounts.google.com",
                "aud": audience,
                "azp": "112233445566778899000",
                "sub": "112233445566778899000",
                "email": email,
                "n": n,
            });
            if query.get("format").map(String::as_str) == Some("full") {
                claims["google"] = json!({"compute_engine": {
                    "project_id": "my-project", "zone": "us-central1-a",
                    "instance_id": "1234567890", "instance_name": "vm-1",
                }});
            }
            let mut response = fake::text(200, fake::jwt(claims, Duration::from_secs(3600)));
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("text/html"));
            response
        }
        _ => fake::text(404, "Not Found"),
    }
}

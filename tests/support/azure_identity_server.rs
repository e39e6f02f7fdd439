//! A fake of Azure's managed identity endpoints, written from Microsoft's
//! documentation:
//!
//! - IMDS, https://learn.microsoft.com/en-us/entra/identity/managed-identities-azure-resources/how-to-use-vm-token
//!   (`GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`
//!   with `Metadata: true`, optional `client_id`, `object_id` or
//!   `msi_res_id`; the answer's `expires_in`, `expires_on` and
//!   `not_before` are strings; `400` "Required metadata header not
//!   specified", `400` "Identity not found"; retry `404`, `429` and `5xx`)
//!   and https://learn.microsoft.com/en-us/azure/virtual-machines/instance-metadata-service
//!   (requests with `X-Forwarded-For` refused; `410` while IMDS updates),
//! - App Service and Functions, https://learn.microsoft.com/en-us/azure/app-service/overview-managed-identity
//!   ("REST endpoint reference": `GET $IDENTITY_ENDPOINT?resource=…&api-version=2019-08-01`
//!   with `X-IDENTITY-HEADER: $IDENTITY_HEADER`, optional `client_id`,
//!   `principal_id` or `mi_res_id`; the answer has `expires_on`, Unix
//!   seconds in a string, and no `expires_in`). The status for a missing or
//!   wrong identity header is not documented: the fake answers `401`.
#![cfg(feature = "workload")]

use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::json;

use super::fake;

/// The IMDS token path.
pub const IMDS_PATH: &str = "/metadata/identity/oauth2/token";
/// The App Service identity endpoint's path (as `IDENTITY_ENDPOINT`).
pub const APP_SERVICE_PATH: &str = "/msi/token";
/// `IDENTITY_HEADER`: a secret.
pub const IDENTITY_HEADER: &str = "9c1e-identity-header-SECRET";

/// The user-assigned identity assigned to the fake's resource.
pub const CLIENT_ID: &str = "5e29463d-71da-4fe0-8e69-999b57db23b0";
pub const OBJECT_ID: &str = "d8ab1f7e-3c47-4a2b-a6cb-2f6f6c5b0d9e";
pub const RESOURCE_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/api-caller";

/// How long IMDS's tokens live (`expires_in`).
pub const IMDS_LIFETIME: Duration = Duration::from_secs(86399);
/// How long App Service's tokens live (`expires_on` this far ahead).
pub const APP_SERVICE_LIFETIME: Duration = Duration::from_secs(3600);

fake::fake_server!(
    /// The fake: IMDS at [`IMDS_PATH`], App Service at [`APP_SERVICE_PATH`];
    /// clones share its state.
    AzureIdentityServer,
    handle
);

impl AzureIdentityServer {
    /// The access token the fake issues `n`-th (from 1): opaque, so that
    /// its expiry can only come from the answer's fields.
    pub fn access_token(n: usize) -> String {
        format!("az-access-{n}")
    }
}

async fn handle(State(fake): State<AzureIdentityServer>, request: Request) -> Response {
    if let Some(fault) = fake.arrived(&request) {
        return fake::fault(fault).await;
    }
    match request.uri().path() {
        IMDS_PATH => imds(&fake, &request),
        APP_SERVICE_PATH => app_service(&fake, &request),
        _ => fake::text(404, "Not Found"),
    }
}

fn invalid_request(description: &str) -> Response {
    fake::json(
        400,
        json!({"error": "invalid_request", "error_description": description}),
    )
}

fn imds(fake: &AzureIdentityServer, request: &Request) -> Response {
    if fake::header(request, "metadata") != Some("true") {
        fake.problem("no Metadata: true");
        return fake::json(
            400,
            json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
        );
    }
    if request.headers().contains_key("x-forwarded-for") {
        fake.problem("X-Forwarded-For");
        return fake::json(
            400,
            json!({"error": "Bad request. The request contains X-Forwarded-For header"}),
        );
    }
    let query = fake::query(request);
    if query.get("api-version").map(String::as_str) != Some("2018-02-01") {
        fake.problem(format!("api-version {:?}", query.get("api-version")));
        return fake::json(
            400,
            json!({"error": "Bad request. api-version was not specified in the request. For more information refer to aka.ms/azureimds"}),
        );
    }
    let Some(resource) = query.get("resource") else {
        fake.problem("no resource");
        return invalid_request("Required query variable 'resource' is missing");
    };
    let names = ["client_id", "object_id", "msi_res_id"];
    if let Some(refused) = identity(fake, &query, names) {
        return refused;
    }
    let now = fake::now_secs();
    let lifetime = IMDS_LIFETIME.as_secs();
    fake::json(
        200,
        json!({
            "access_token": AzureIdentityServer::access_token(fake.next_number()),
            "refresh_token": "",
            "expires_in": lifetime.to_string(),
            "expires_on": (now + lifetime).to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    )
}

fn app_service(fake: &AzureIdentityServer, request: &Request) -> Response {
    if fake::header(request, "x-identity-header") != Some(IDENTITY_HEADER) {
        fake.problem("no or wrong X-IDENTITY-HEADER");
        return fake::text(401, "Unauthorized");
    }
    let query = fake::query(request);
    if query.get("api-version").map(String::as_str) != Some("2019-08-01") {
        fake.problem(format!("api-version {:?}", query.get("api-version")));
        return invalid_request("api-version must be 2019-08-01");
    }
    let Some(resource) = query.get("resource") else {
        fake.problem("no resource");
        return invalid_request("resource is required");
    };
    let names = ["client_id", "principal_id", "mi_res_id"];
    if let Some(refused) = identity(fake, &query, names) {
        return refused;
    }
    let expires_on = fake::now_secs() + APP_SERVICE_LIFETIME.as_secs();
    fake::json(
        200,
        json!({
            "access_token": AzureIdentityServer::access_token(fake.next_number()),
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": query.get("client_id").map_or(CLIENT_ID, String::as_str),
        }),
    )
}

/// Checks the user-assigned identity asked for by `names` (client id,
/// object id, resource id), if any: at most one, and the one assigned.
/// The refusal, if the request is refused.
fn identity(
    fake: &AzureIdentityServer,
    query: &std::collections::HashMap<String, String>,
    names: [&str; 3],
) -> Option<Response> {
    let asked: Vec<(usize, &String)> = names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| query.get(*name).map(|value| (i, value)))
        .collect();
    match asked.as_slice() {
        [] => None,
        [(i, value)] if **value == [CLIENT_ID, OBJECT_ID, RESOURCE_ID][*i] => None,
        [_] => Some(invalid_request("Identity not found")),
        _ => {
            fake.problem("more than one identity");
            Some(invalid_request(
                "Only one of client_id, object_id or msi_res_id may be given",
            ))
        }
    }
}

//! Workload identity: the credentials a deployed service already has,
//! with no secret to manage, as [`TokenSource`](crate::TokenSource)s (so
//! they get the cache, the layer, single-flight refreshes, backoff, stores
//! and stats like any other source).
//!
//! - [`TokenFile`]: a token a platform keeps in a file and rotates:
//!   Kubernetes projected service-account tokens, Vault Agent sinks,
//!   `AZURE_FEDERATED_TOKEN_FILE`, any file a sidecar rewrites.
//! - [`GcpMetadata`]: access or identity tokens of the service account a
//!   Google Cloud workload runs as, from the metadata server (Compute
//!   Engine, GKE, Cloud Run, Cloud Functions, App Engine).
//! - [`AzureManagedIdentity`]: tokens of an Azure resource's managed
//!   identity, from IMDS (virtual machines, scale sets, AKS nodes,
//!   Container Instances) or the App Service and Functions identity
//!   endpoint.
//! - [`GithubActionsOidc`]: the OIDC token of a GitHub Actions job.
//!
//! The last three each have a `from_env()` constructor that reads the variables the
//! platform (and its SDKs) use, failing with a [`ConfigError`] that names
//! a missing variable. The endpoints are asked with short per-attempt
//! timeouts ([`ATTEMPT_TIMEOUT`]) and a few retries with
//! jittered backoff for transient failures ([`ATTEMPTS`], within
//! [`RETRY_BUDGET`]), honouring `Retry-After`; their failures are
//! [`IdentityEndpointError`]s. Requests are sent only when the cache needs
//! a token: a request through the layer costs what it always does.
//!
//! Metadata and managed identity endpoints speak plain HTTP on the machine itself: plain HTTP
//! is sent only to loopback and link-local addresses (and
//! `metadata.google.internal`); any other endpoint must be `https`.
//!
//! # Example
//!
//! ```no_run
//! use tower_token_refresh::workload::{AzureManagedIdentity, GcpMetadata};
//! use tower_token_refresh::{TokenCache, TokenRefreshLayer};
//!
//! # fn main() -> Result<(), tower_token_refresh::BoxError> {
//! let on_google_cloud = TokenCache::new(GcpMetadata::from_env()?);
//! let on_azure = TokenCache::new(AzureManagedIdentity::from_env("https://vault.azure.net")?);
//! let layer = TokenRefreshLayer::new(on_google_cloud);
//! # Ok(())
//! # }
//! ```
//!
//! Tokens a platform gives may also be exchanged for an API's token with
//! [`TokenExchange`](crate::oauth2::TokenExchange) (RFC 8693).
//!
//! The module builds on [`TokenSource`](crate::TokenSource),
//! [`Token`](crate::Token) and the [`oauth2`](crate::oauth2) module's HTTP
//! client; nothing else in the crate depends on it.

mod azure_managed_identity;
mod azure_workload_identity;
mod env;
mod error;
mod gcp_metadata;
mod github_actions_oidc;
mod retrying_get;
mod token_file;

pub use azure_managed_identity::{
    AZURE_CLIENT_ID, AZURE_POD_IDENTITY_AUTHORITY_HOST, AzureManagedIdentity,
    DEFAULT_AZURE_IMDS_ENDPOINT, IDENTITY_ENDPOINT, IDENTITY_HEADER, UserAssignedId,
};
pub use azure_workload_identity::{AZURE_PUBLIC_CLOUD, AzureWorkloadIdentity};
pub use error::{ConfigError, IdentityEndpointError};
pub use gcp_metadata::{DEFAULT_GCP_METADATA_HOST, GCE_METADATA_HOST, GcpMetadata};
pub use github_actions_oidc::{
    ACTIONS_ID_TOKEN_REQUEST_TOKEN, ACTIONS_ID_TOKEN_REQUEST_URL, GithubActionsOidc,
};
pub use retrying_get::{ATTEMPT_TIMEOUT, ATTEMPTS, RETRY_BUDGET};
pub use token_file::{DEFAULT_REREAD, MAX_TOKEN_FILE_BYTES, TokenFile, TokenFileError};

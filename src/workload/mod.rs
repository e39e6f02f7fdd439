//! Workload identity: the credentials a deployed service already has,
//! with no secret to manage, as [`TokenSource`](crate::TokenSource)s (so
//! they get the cache, the layer, single-flight refreshes, backoff, stores
//! and stats like any other source).
//!
//! - [`TokenFile`]: a token a platform keeps in a file and rotates:
//!   Kubernetes projected service-account tokens, Vault Agent sinks,
//!   `AZURE_FEDERATED_TOKEN_FILE`, any file a sidecar rewrites.
//!
//! - [`AzureWorkloadIdentity`]: Microsoft Entra workload identity (AKS):
//!   the client credentials grant with the service-account token file as
//!   the client assertion.
//!
//! Tokens a platform gives may also be exchanged for an API's token with
//! [`TokenExchange`](crate::oauth2::TokenExchange) (RFC 8693).
//!
//! Nothing here is used by the rest of the crate: the module builds on the
//! core ([`TokenSource`](crate::TokenSource), [`Token`](crate::Token)) and
//! on [`oauth2`](crate::oauth2).

mod azure_workload_identity;
mod env_var;
mod token_file;

pub use azure_workload_identity::{AZURE_PUBLIC_CLOUD, AzureWorkloadIdentity};
pub use env_var::EnvVarError;
pub use token_file::{DEFAULT_REREAD, MAX_TOKEN_FILE_BYTES, TokenFile, TokenFileError};

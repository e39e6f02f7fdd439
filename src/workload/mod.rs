//! Workload identity: the credentials a deployed service already has,
//! with no secret to manage, as [`TokenSource`](crate::TokenSource)s (so
//! they get the cache, the layer, single-flight refreshes, backoff, stores
//! and stats like any other source).
//!
//! - [`TokenFile`]: a token a platform keeps in a file and rotates:
//!   Kubernetes projected service-account tokens, Vault Agent sinks,
//!   `AZURE_FEDERATED_TOKEN_FILE`, any file a sidecar rewrites.
//!
//! Nothing here is used by the rest of the crate: the module builds on
//! [`TokenSource`](crate::TokenSource) and [`Token`](crate::Token) alone.

mod token_file;

pub use token_file::{DEFAULT_REREAD, MAX_TOKEN_FILE_BYTES, TokenFile, TokenFileError};

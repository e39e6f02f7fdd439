//! The integration tests, in one binary (one link, one test process): each
//! module was a test file of its own. `tests/fleet.rs` stays apart: it is
//! its own `main`, and starts copies of itself as worker processes.

#[path = "../support/mod.rs"]
mod support;

mod any_body;
mod axum_gateway;
#[cfg(feature = "workload")]
mod azure_managed_identity;
#[cfg(feature = "workload")]
mod azure_workload_identity;
mod cache;
mod clock;
#[cfg(all(feature = "dpop", any(feature = "rust-crypto", feature = "aws-lc-rs")))]
mod dpop;
mod faults;
mod file_store;
#[cfg(feature = "workload")]
mod gcp_metadata;
#[cfg(feature = "workload")]
mod github_actions_oidc;
mod hot_path_allocations;
mod hyper_client;
mod idle_runtime;
#[cfg(feature = "metrics")]
mod metrics;
mod oauth2;
mod oauth2_untrusted_answers;
mod one_service;
mod rejection;
mod rejection_http;
#[cfg(feature = "reqwest-middleware")]
mod reqwest_middleware;
mod secrets;
mod service;
mod stacks;
mod store;
mod store_rejection;
mod stress;
mod token_exchange;
#[cfg(feature = "workload")]
mod token_file;
mod token_rejected;
mod tonic_channel;

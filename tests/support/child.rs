//! Tests of what a source reads from the environment run in a child
//! process (this test binary again, one `#[ignore]`d test): setting
//! variables in this multi-threaded process would race with every other
//! test. The child test returns at once unless [`in_child`] (so a run with
//! `--ignored` passes it by).
#![cfg(feature = "workload")]

use std::process::Stdio;

/// Set in the child's environment.
const MARKER: &str = "TOWER_TOKEN_REFRESH_CHILD_TEST";

/// Every variable a workload source reads: cleared in the child, then set
/// as each test says (so that the parent's environment, say a CI job on
/// GitHub Actions, cannot leak in).
const CLEARED: &[&str] = &[
    "GCE_METADATA_HOST",
    "GCE_METADATA_ROOT",
    "GCE_METADATA_IP",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
];

/// Whether this process is a child that [`run`] started.
pub fn in_child() -> bool {
    std::env::var_os(MARKER).is_some()
}

/// Runs the ignored test `name` (its path in this binary, such as
/// `gcp_metadata::child_from_env`) in a child process with exactly `vars`
/// of the workload variables set, and asserts that it ran and passed.
pub async fn run(name: &str, vars: &[(&str, &str)]) {
    let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MARKER, "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for variable in CLEARED {
        command.env_remove(variable);
    }
    for (variable, value) in vars {
        command.env(variable, value);
    }
    let output = command.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "child test {name} with {vars:?} failed:\n{stdout}\n{stderr}"
    );
}

/// `module_path!()` of a test module, as the test binary names its tests
/// (without the crate's name).
pub fn test_path(module: &str, test: &str) -> String {
    let module = module.split_once("::").map_or("", |(_, rest)| rest);
    format!("{module}::{test}")
}

//! `workload::AzureWorkloadIdentity` against the embedded token endpoint
//! playing Microsoft Entra ID: the client credentials grant at
//! `/{tenant}/oauth2/v2.0/token` with the service-account token file as a
//! federated client assertion, rotated between requests; `from_env` with
//! the variables the AKS webhook sets (in a child process, so that no test
//! changes this process's environment), and errors that name a missing
//! variable.

use crate::support;

use std::time::Duration;

use support::jwt::expiring_in as jwt;
use support::temp_dir::TempDir;
use support::token_endpoint::{ClientMethod, TokenEndpoint};
use tower_token_refresh::TokenCache;
use tower_token_refresh::oauth2::ErrorKind;
use tower_token_refresh::workload::AzureWorkloadIdentity;

const HOUR: Duration = Duration::from_secs(3600);
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "5e1d8b6a-0000-4000-8000-000000000001";
/// Set in the child process that runs `from_env_in_a_child`.
const CHILD: &str = "TTR_AZURE_WORKLOAD_IDENTITY_CHILD";

/// Entra ID that trusts the service-account token now in `dir/token`.
async fn entra_with_federated_token(dir: &TempDir) -> (TokenEndpoint, String) {
    let endpoint = TokenEndpoint::start().await;
    endpoint.register(CLIENT, ClientMethod::FederatedAssertion);
    let token = jwt("system:serviceaccount:shop:orders", HOUR);
    std::fs::write(dir.join("token"), &token).unwrap();
    endpoint.trust_subject_token(&token);
    (endpoint, token)
}

#[tokio::test]
async fn the_token_file_is_the_client_assertion_read_again_after_rotation() {
    let dir = TempDir::new("azure-wi");
    let (endpoint, first) = entra_with_federated_token(&dir).await;
    let source =
        AzureWorkloadIdentity::builder(&endpoint.url("/"), TENANT, CLIENT, dir.join("token"))
            .scope("https://vault.azure.net/.default")
            .build()
            .unwrap();
    assert_eq!(source.fetch_token().await.unwrap().secret(), "cc-1");

    let second = jwt("system:serviceaccount:shop:orders", HOUR);
    std::fs::write(dir.join("token"), &second).unwrap();
    endpoint.distrust_subject_token(&first);
    endpoint.trust_subject_token(&second);
    assert_eq!(source.fetch_token().await.unwrap().secret(), "cc-2");

    let forms = endpoint.forms();
    for (form, assertion) in forms.iter().zip([&first, &second]) {
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["client_id"], CLIENT);
        assert_eq!(
            form["client_assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        assert_eq!(&form["client_assertion"], assertion);
        assert_eq!(form["scope"], "https://vault.azure.net/.default");
        assert!(!form.contains_key("client_secret"));
    }
    assert!(endpoint.problems().is_empty(), "{:?}", endpoint.problems());
    assert!(!format!("{source:?}").contains("eyJ"), "{source:?}");
}

#[tokio::test]
async fn a_token_entra_no_longer_trusts_is_refused_without_being_quoted() {
    let dir = TempDir::new("azure-wi-refused");
    let (endpoint, token) = entra_with_federated_token(&dir).await;
    endpoint.distrust_subject_token(&token);
    let source =
        AzureWorkloadIdentity::builder(&endpoint.url("/"), TENANT, CLIENT, dir.join("token"))
            .scope("https://vault.azure.net/.default")
            .build()
            .unwrap();
    let cache = TokenCache::new(source);
    let error = cache.token().await.unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("invalid_client"), "{shown}");
    for part in token.split('.') {
        assert!(!shown.contains(part), "{shown}");
    }
}

/// Runs `from_env_in_a_child` in a child process with `env`, and returns
/// what it printed.
async fn run_child(env: &[(&str, String)]) -> String {
    let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "azure_workload_identity::from_env_in_a_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove("AZURE_CLIENT_ID")
        .env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .env_remove("AZURE_AUTHORITY_HOST")
        .env(CHILD, "1");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the child test finished")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn from_env_reads_the_variables_the_aks_webhook_sets() {
    let dir = TempDir::new("azure-wi-env");
    let (endpoint, _) = entra_with_federated_token(&dir).await;
    let file = dir.join("token").display().to_string();
    let all = vec![
        ("AZURE_CLIENT_ID", CLIENT.to_owned()),
        ("AZURE_TENANT_ID", TENANT.to_owned()),
        ("AZURE_FEDERATED_TOKEN_FILE", file),
        ("AZURE_AUTHORITY_HOST", endpoint.url("/")),
    ];
    let out = run_child(&all).await;
    assert!(out.contains("child got token cc-1"), "{out}");
    assert_eq!(endpoint.requests(), 1);

    for missing in [
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
    ] {
        let env: Vec<_> = all
            .iter()
            .filter(|(name, _)| *name != missing)
            .cloned()
            .collect();
        let out = run_child(&env).await;
        let expected = format!("child error: environment variable {missing} is not set (");
        assert!(out.contains(&expected), "{out}");
        assert!(out.contains(&format!("variable() = {missing}")), "{out}");
    }

    let mut insecure = all.clone();
    insecure[3].1 = "http://login.example.com/".to_owned();
    let out = run_child(&insecure).await;
    assert!(
        out.contains("child error: environment variable AZURE_AUTHORITY_HOST is not an https URL"),
        "{out}"
    );
    assert!(
        !out.contains("login.example.com"),
        "the value is not quoted: {out}"
    );
    assert_eq!(endpoint.requests(), 1);
}

/// The child side of `from_env_reads_the_variables_the_aks_webhook_sets`:
/// does nothing unless started by it.
#[tokio::test]
#[ignore = "run by from_env_reads_the_variables_the_aks_webhook_sets in a child process"]
async fn from_env_in_a_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let builder = match AzureWorkloadIdentity::from_env() {
        Ok(builder) => builder,
        Err(error) => {
            println!("child error: {error}; variable() = {}", error.variable());
            return;
        }
    };
    let source = builder
        .scope("https://vault.azure.net/.default")
        .build()
        .unwrap();
    match source.fetch_token().await {
        Ok(token) => println!("child got token {}", token.secret()),
        Err(error) => {
            assert_ne!(error.kind(), ErrorKind::InvalidUrl);
            println!("child fetch failed: {error}");
        }
    }
}

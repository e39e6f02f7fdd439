//! `workload::AzureWorkloadIdentity` against the embedded token endpoint
//! playing Microsoft Entra ID: the client credentials grant at
//! `/{tenant}/oauth2/v2.0/token` with the service-account token file as a
//! federated client assertion, rotated between requests; `from_env` with
//! the variables the AKS webhook sets (in a child process, so that no test
//! changes this process's environment), and errors that name a missing
//! variable.

use crate::support;

use std::time::Duration;

use support::child;
use support::jwt::expiring_in as jwt;
use support::temp_dir::TempDir;
use support::token_endpoint::{ClientMethod, TokenEndpoint};
use tower_token_refresh::TokenCache;
use tower_token_refresh::workload::AzureWorkloadIdentity;

const HOUR: Duration = Duration::from_secs(3600);
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "5e1d8b6a-0000-4000-8000-000000000001";

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

#[tokio::test]
async fn from_env_reads_the_variables_the_aks_webhook_sets() {
    let dir = TempDir::new("azure-wi-env");
    let (endpoint, _) = entra_with_federated_token(&dir).await;
    let file = dir.join("token").display().to_string();
    let authority = endpoint.url("/");
    let all = [
        ("AZURE_CLIENT_ID", CLIENT),
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_FEDERATED_TOKEN_FILE", file.as_str()),
        ("AZURE_AUTHORITY_HOST", authority.as_str()),
    ];
    let name = child::test_path(module_path!(), "child_from_env");
    child::run(&name, &[&all[..], &[("CASE", "fetch")]].concat()).await;
    assert_eq!(endpoint.requests(), 1, "the child fetched from the fake");

    for (missing, case) in [
        ("AZURE_CLIENT_ID", "no-client"),
        ("AZURE_TENANT_ID", "no-tenant"),
        ("AZURE_FEDERATED_TOKEN_FILE", "no-file"),
    ] {
        let mut vars: Vec<_> = all
            .iter()
            .copied()
            .filter(|(name, _)| *name != missing)
            .collect();
        vars.push(("CASE", case));
        child::run(&name, &vars).await;
    }
    let mut insecure = all.to_vec();
    insecure[3].1 = "http://login.example.com/";
    insecure.push(("CASE", "plain-http"));
    child::run(&name, &insecure).await;
    assert_eq!(endpoint.requests(), 1);
}

/// The child side of `from_env_reads_the_variables_the_aks_webhook_sets`:
/// does nothing unless started by it.
#[tokio::test]
#[ignore = "run by from_env_reads_the_variables_the_aks_webhook_sets, in a child process"]
async fn child_from_env() {
    if !child::in_child() {
        return;
    }
    let case = std::env::var("CASE").unwrap();
    let built = AzureWorkloadIdentity::from_env();
    let expected_missing = match case.as_str() {
        "fetch" => {
            let source = built
                .unwrap()
                .scope("https://vault.azure.net/.default")
                .build()
                .unwrap();
            assert_eq!(source.fetch_token().await.unwrap().secret(), "cc-1");
            return;
        }
        "no-client" => "AZURE_CLIENT_ID",
        "no-tenant" => "AZURE_TENANT_ID",
        "no-file" => "AZURE_FEDERATED_TOKEN_FILE",
        "plain-http" => {
            let error = built.unwrap_err();
            assert_eq!(error.variable(), Some("AZURE_AUTHORITY_HOST"));
            assert!(!error.is_missing());
            assert!(error.to_string().contains("not an https URL"), "{error}");
            assert!(!error.to_string().contains("login.example.com"), "{error}");
            return;
        }
        other => panic!("unknown case {other}"),
    };
    let error = built.unwrap_err();
    assert_eq!(error.variable(), Some(expected_missing));
    assert!(error.is_missing());
    assert!(
        error.to_string().starts_with(&format!(
            "Microsoft Entra workload identity: {expected_missing} is not set; the AKS workload identity webhook"
        )),
        "{error}"
    );
}

#[tokio::test]
async fn a_burst_of_a_thousand_makes_one_token_request() {
    let dir = TempDir::new("azure-wi-burst");
    let (endpoint, _) = entra_with_federated_token(&dir).await;
    let source =
        AzureWorkloadIdentity::builder(&endpoint.url("/"), TENANT, CLIENT, dir.join("token"))
            .scope("https://vault.azure.net/.default")
            .build()
            .unwrap();
    let cache = TokenCache::new(source);
    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await.map(|token| token.secret().to_owned()) })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), "cc-1");
    }
    assert_eq!(endpoint.requests(), 1);
}

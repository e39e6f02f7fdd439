//! [`AzureWorkloadIdentity`]: Microsoft Entra workload identity, a client
//! that proves who it is with the Kubernetes service-account token its
//! platform rotates.

use std::path::PathBuf;

use super::{ConfigError, TokenFile, env};
use crate::oauth2::{ClientAuth, ClientCredentials, SourceBuilder};

/// Where Microsoft Entra ID answers when `AZURE_AUTHORITY_HOST` is not set.
pub const AZURE_PUBLIC_CLOUD: &str = "https://login.microsoftonline.com/";

/// Microsoft Entra workload identity (AKS, or any Entra federated identity
/// credential): the client credentials grant at
/// `{authority}/{tenant}/oauth2/v2.0/token`, where the client authenticates
/// with a [client assertion](ClientAuth::assertion_from): the token in
/// `AZURE_FEDERATED_TOKEN_FILE`, read afresh for each request by a
/// [`TokenFile`] (the kubelet rotates it). No client secret anywhere.
///
/// [`from_env`](Self::from_env) reads the variables the AKS workload
/// identity webhook sets in a pod labelled
/// `azure.workload.identity/use: "true"`: `AZURE_CLIENT_ID`,
/// `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE` and (optional)
/// `AZURE_AUTHORITY_HOST`, as Azure's own SDKs do. The scope is the
/// resource's, with `/.default` (Entra's client credentials grant wants
/// nothing else).
///
/// # Example
///
/// ```no_run
/// use tower_token_refresh::TokenCache;
/// use tower_token_refresh::workload::AzureWorkloadIdentity;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let source = AzureWorkloadIdentity::from_env()?
///     .scope("https://vault.azure.net/.default")
///     .build()?;
/// let cache = TokenCache::new(source);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct AzureWorkloadIdentity;

impl AzureWorkloadIdentity {
    /// A source for the identity the environment describes (see the type's
    /// documentation); add the [`scope`](SourceBuilder::scope) and
    /// [`build`](SourceBuilder::build) it.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the variable that is not set, or
    /// `AZURE_AUTHORITY_HOST` if it is not an `https` URL.
    pub fn from_env() -> Result<SourceBuilder<ClientCredentials>, ConfigError> {
        const PROVIDER: &str = "Microsoft Entra workload identity";
        const HINT: &str = "the AKS workload identity webhook sets it in pods labelled \
                            `azure.workload.identity/use: \"true\"`";
        let client_id = env::required(PROVIDER, "AZURE_CLIENT_ID", HINT)?;
        let tenant_id = env::required(PROVIDER, "AZURE_TENANT_ID", HINT)?;
        let token_file = env::required(PROVIDER, "AZURE_FEDERATED_TOKEN_FILE", HINT)?;
        let authority = env::optional("AZURE_AUTHORITY_HOST");
        if let Some(authority) = &authority {
            crate::oauth2::endpoint::validate(authority, false).map_err(|_| {
                ConfigError::invalid(
                    PROVIDER,
                    "authority host",
                    "it is not an https URL (such as https://login.microsoftonline.com/)",
                )
                .in_variable("AZURE_AUTHORITY_HOST")
            })?;
        }
        Ok(Self::builder(
            authority.as_deref().unwrap_or(AZURE_PUBLIC_CLOUD),
            &tenant_id,
            client_id,
            token_file,
        ))
    }

    /// A source for the application `client_id` of tenant `tenant_id` at
    /// `authority_host` (such as [`AZURE_PUBLIC_CLOUD`]), authenticated by
    /// the token in `token_file`.
    pub fn builder(
        authority_host: &str,
        tenant_id: &str,
        client_id: impl Into<String>,
        token_file: impl Into<PathBuf>,
    ) -> SourceBuilder<ClientCredentials> {
        let token_url = format!(
            "{}/{}/oauth2/v2.0/token",
            authority_host.trim_end_matches('/'),
            tenant_id.trim_matches('/'),
        );
        let assertion = ClientAuth::assertion_from(TokenFile::new(token_file));
        ClientCredentials::builder(token_url, client_id, assertion)
    }
}

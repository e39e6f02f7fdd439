//! [`ClientCredentials`]: the client credentials grant (RFC 6749 §4.4).

use std::sync::Arc;

use super::builder::sealed::Grant;
use super::token_client::TokenClient;
use super::{ClientAuth, Error, SourceBuilder};
use crate::{BoxError, Token, TokenFuture, TokenSource};

/// A [`TokenSource`] for the client credentials grant (RFC 6749 §4.4): a
/// service authenticates as itself.
///
/// # Example
///
/// ```
/// use tower_token_refresh::TokenCache;
/// use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};
///
/// # fn main() -> Result<(), tower_token_refresh::oauth2::Error> {
/// let source = ClientCredentials::builder(
///     "https://idp.example.com/oauth2/token",
///     "my-service",
///     ClientAuth::basic("client-secret"),
/// )
/// .scope("orders:read orders:write")
/// .resource("https://api.example.com")
/// .build()?;
/// let cache = TokenCache::new(source);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    client: Arc<TokenClient>,
}

impl ClientCredentials {
    /// A source with default settings.
    ///
    /// # Errors
    ///
    /// If `token_url` is not usable (see [`SourceBuilder::build`]).
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        auth: ClientAuth,
    ) -> Result<Self, Error> {
        Self::builder(token_url, client_id, auth).build()
    }

    /// Starts building a source (scopes, resources, HTTP client, …).
    pub fn builder(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        auth: ClientAuth,
    ) -> SourceBuilder<Self> {
        SourceBuilder::new(token_url.into(), Some((client_id.into(), auth)), ())
    }

    /// Requests a token.
    ///
    /// # Errors
    ///
    /// When the request fails or the server refuses it.
    pub async fn fetch_token(&self) -> Result<Token, Error> {
        let response = self
            .client
            .request(&[("grant_type", "client_credentials")], &[])
            .await?;
        Ok(response.token)
    }
}

impl Grant for ClientCredentials {
    type Config = ();

    fn build((): (), client: TokenClient) -> Result<Self, Error> {
        Ok(Self {
            client: Arc::new(client),
        })
    }
}

impl TokenSource for ClientCredentials {
    fn fetch(&self) -> TokenFuture {
        let source = self.clone();
        Box::pin(async move { source.fetch_token().await.map_err(BoxError::from) })
    }

    fn name(&self) -> &str {
        "oauth2 client_credentials"
    }

    fn fingerprint(&self) -> Option<String> {
        Some(self.client.fingerprint("client_credentials", &[]))
    }
}

//! [`TokenExchange`]: OAuth 2.0 token exchange (RFC 8693): a token the
//! program has (a Kubernetes service-account token, a CI job's OIDC token,
//! a token for another API) exchanged for the token an API wants.

use std::sync::Arc;

use super::builder::sealed::Grant;
use super::credential_source::CredentialSource;
use super::token_client::TokenClient;
use super::token_response::redactable;
use super::{Error, SourceBuilder};
use crate::{BoxError, Token, TokenFuture, TokenSource};

/// Token type identifiers (RFC 8693 §3), for `subject_token_type`,
/// `actor_token_type` and `requested_token_type`.
pub mod token_type {
    /// An OAuth 2.0 access token.
    pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
    /// An OAuth 2.0 refresh token.
    pub const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
    /// An OpenID Connect ID token.
    pub const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
    /// A JWT (RFC 7519): a Kubernetes service-account token, a GitHub
    /// Actions OIDC token, …
    pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
    /// A base64url-encoded SAML 1.1 assertion.
    pub const SAML1: &str = "urn:ietf:params:oauth:token-type:saml1";
    /// A base64url-encoded SAML 2.0 assertion.
    pub const SAML2: &str = "urn:ietf:params:oauth:token-type:saml2";
}

/// A [`TokenSource`] for OAuth 2.0 token exchange (RFC 8693): for each
/// token, takes a fresh `subject_token` from another source (and, if set, an
/// `actor_token`) and exchanges it at the token endpoint
/// (`grant_type=urn:ietf:params:oauth:grant-type:token-exchange`).
///
/// This is workload identity federation with any authorization server: a
/// Kubernetes service-account token read by
/// [`TokenFile`](crate::workload::TokenFile), a CI job's OIDC token or a
/// token from another [`TokenCache`](crate::TokenCache) (a cache is a source
/// too, and answers from its cache) becomes the API's token, with no secret
/// to manage.
///
/// - `audience`, `resource` and `scope` are the builder's
///   [`audience`](SourceBuilder::audience),
///   [`resource`](SourceBuilder::resource) (both may be repeated with
///   [`param`](SourceBuilder::param)) and [`scope`](SourceBuilder::scope).
/// - Client authentication is optional
///   ([`client_auth`](SourceBuilder::client_auth), any
///   [`ClientAuth`](super::ClientAuth)).
/// - The answer's `issued_token_type` is checked against
///   [`requested_token_type`](SourceBuilder::requested_token_type) when one
///   was asked for (an answer without it, which RFC 8693 requires but some
///   servers leave out, is taken as what was asked); a `token_type` of
///   `N_A` (a token that is not an access token, such as an ID token) is
///   accepted in an answer with an `issued_token_type`, and presented as a
///   bearer credential.
/// - The subject and actor tokens never appear in errors, logs or `Debug`:
///   a server message quoting one is redacted. A subject source that fails
///   fails the exchange with
///   [`ErrorKind::Credential`](super::ErrorKind::Credential), its error as
///   the cause.
///
/// # Example
///
/// A Kubernetes projected service-account token exchanged for an API token
/// (feature `workload` for [`TokenFile`](crate::workload::TokenFile)):
///
/// ```no_run
/// # #[cfg(feature = "workload")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tower_token_refresh::TokenCache;
/// use tower_token_refresh::oauth2::{TokenExchange, token_type};
/// use tower_token_refresh::workload::TokenFile;
///
/// let service_account = TokenFile::new("/var/run/secrets/tokens/api");
/// let source = TokenExchange::builder(
///     "https://sts.example.com/oauth2/token",
///     service_account,
///     token_type::JWT,
/// )
/// .audience("https://orders.example.com")
/// .requested_token_type(token_type::ACCESS_TOKEN)
/// .build()?;
/// let cache = TokenCache::new(source);
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "workload"))]
/// # fn main() {}
/// ```
///
/// Google Cloud workload identity federation is this exchange at
/// `https://sts.googleapis.com/v1/token`, with the workload identity
/// provider as the audience
/// (`//iam.googleapis.com/projects/…/providers/…`), scope
/// `https://www.googleapis.com/auth/cloud-platform` and
/// [`token_type::ACCESS_TOKEN`] requested.
#[derive(Debug, Clone)]
pub struct TokenExchange {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: TokenClient,
    config: TokenExchangeConfig,
}

/// Settings of a [`TokenExchange`] being built.
#[derive(Debug)]
pub struct TokenExchangeConfig {
    subject: CredentialSource,
    subject_token_type: String,
    actor: Option<(CredentialSource, String)>,
    requested_token_type: Option<String>,
}

impl TokenExchange {
    /// Starts building a source that exchanges the tokens of `subject`,
    /// of type `subject_token_type` (see [`token_type`]).
    pub fn builder(
        token_url: impl Into<String>,
        subject: impl TokenSource,
        subject_token_type: impl Into<String>,
    ) -> SourceBuilder<Self> {
        SourceBuilder::new(
            token_url.into(),
            None,
            TokenExchangeConfig {
                subject: CredentialSource::new(subject, "the subject token"),
                subject_token_type: subject_token_type.into(),
                actor: None,
                requested_token_type: None,
            },
        )
    }

    /// Takes a fresh subject token (and actor token) and exchanges it.
    ///
    /// # Errors
    ///
    /// When the subject or actor source fails
    /// ([`ErrorKind::Credential`](super::ErrorKind::Credential)), the
    /// request fails, the server refuses the exchange, or it issued another
    /// type of token than requested.
    pub async fn fetch_token(&self) -> Result<Token, Error> {
        let Inner { client, config } = &*self.inner;
        let timeout = client.request_timeout();
        let subject = config.subject.get(timeout).await?;
        let actor = match &config.actor {
            Some((source, kind)) => Some((source.get(timeout).await?, kind)),
            None => None,
        };
        let mut grant = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject.secret()),
            ("subject_token_type", config.subject_token_type.as_str()),
        ];
        let mut secrets: Vec<&str> = redactable(subject.secret()).collect();
        if let Some((actor, kind)) = &actor {
            grant.push(("actor_token", actor.secret()));
            grant.push(("actor_token_type", kind.as_str()));
            secrets.extend(redactable(actor.secret()));
        }
        if let Some(requested) = &config.requested_token_type {
            grant.push(("requested_token_type", requested));
        }
        let response = client.request(&grant, &secrets).await?;
        if let (Some(requested), Some(issued)) =
            (&config.requested_token_type, &response.issued_token_type)
            && issued != requested
        {
            return Err(Error::invalid_response(
                "`issued_token_type` is not the `requested_token_type`",
            ));
        }
        Ok(response.token)
    }
}

impl SourceBuilder<TokenExchange> {
    /// Also sends an `actor_token` of type `actor_token_type`, taken afresh
    /// from `source` for each exchange (delegation: the party acting for the
    /// subject, RFC 8693 §1.1).
    pub fn actor(mut self, source: impl TokenSource, actor_token_type: impl Into<String>) -> Self {
        self.config_mut().actor = Some((
            CredentialSource::new(source, "the actor token"),
            actor_token_type.into(),
        ));
        self
    }

    /// The type of token wanted (`requested_token_type`, see
    /// [`token_type`]); the server's `issued_token_type` must then match.
    pub fn requested_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.config_mut().requested_token_type = Some(token_type.into());
        self
    }
}

impl Grant for TokenExchange {
    type Config = TokenExchangeConfig;

    fn build(config: TokenExchangeConfig, client: TokenClient) -> Result<Self, Error> {
        Ok(Self {
            inner: Arc::new(Inner { client, config }),
        })
    }
}

impl TokenSource for TokenExchange {
    fn fetch(&self) -> TokenFuture {
        let source = self.clone();
        Box::pin(async move { source.fetch_token().await.map_err(BoxError::from) })
    }

    fn name(&self) -> &str {
        "oauth2 token_exchange"
    }

    fn fingerprint(&self) -> Option<String> {
        let config = &self.inner.config;
        let mut identity = vec![
            ("subject", config.subject.fingerprint()),
            ("subject_token_type", config.subject_token_type.clone()),
        ];
        if let Some((actor, kind)) = &config.actor {
            identity.push(("actor", actor.fingerprint()));
            identity.push(("actor_token_type", kind.clone()));
        }
        if let Some(requested) = &config.requested_token_type {
            identity.push(("requested_token_type", requested.clone()));
        }
        let identity: Vec<(&str, &str)> = identity
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        Some(self.inner.client.fingerprint("token_exchange", &identity))
    }
}

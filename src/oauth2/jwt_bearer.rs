//! [`JwtBearerGrant`]: exchanging a signed JWT assertion for an access token
//! (RFC 7523 §2.1), as service accounts do.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::builder::sealed::Grant;
use super::signing::assertion_claims;
use super::token_client::TokenClient;
use super::token_response::redactable;
use super::{Error, SigningKey, SourceBuilder};
use crate::{BoxError, Token, TokenFuture, TokenSource};

/// Default lifetime of a JWT-bearer assertion.
pub const DEFAULT_ASSERTION_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// A [`TokenSource`] for the JWT bearer grant (RFC 7523 §2.1): the program
/// holds a private key and, for each token, signs an assertion (`iss`,
/// `sub`, `aud`, `iat`, `exp`, a unique `jti`, plus claims of your own) and
/// exchanges it (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`).
///
/// This is the flow of service accounts: for Google's, the issuer is the
/// service account's email, the token URL `https://oauth2.googleapis.com/token`,
/// and the scopes go in a `scope` claim.
///
/// # Example
///
/// ```no_run
/// use tower_token_refresh::TokenCache;
/// use tower_token_refresh::oauth2::{Algorithm, JwtBearerGrant, SigningKey};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pem = std::fs::read("service-account-key.pem")?;
/// let key = SigningKey::from_pem(&pem, Algorithm::RS256)?.with_kid("key-id-1");
/// let source = JwtBearerGrant::builder(
///     "https://oauth2.googleapis.com/token",
///     key,
///     "robot@my-project.iam.gserviceaccount.com",
/// )
/// .claim("scope", "https://www.googleapis.com/auth/cloud-platform")
/// .build()?;
/// let cache = TokenCache::new(source);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct JwtBearerGrant {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: TokenClient,
    config: JwtBearerConfig,
}

/// Settings of a [`JwtBearerGrant`] being built.
#[derive(Debug)]
pub struct JwtBearerConfig {
    key: SigningKey,
    issuer: String,
    subject: Option<String>,
    audience: Option<String>,
    claims: Map<String, Value>,
    lifetime: Duration,
}

impl JwtBearerGrant {
    /// Starts building a source whose assertions `key` signs, issued by
    /// `issuer` (`iss`, and `sub` unless [`subject`](SourceBuilder::subject)
    /// says otherwise), for the token endpoint (`aud`, unless
    /// [`assertion_audience`](SourceBuilder::assertion_audience)).
    pub fn builder(
        token_url: impl Into<String>,
        key: SigningKey,
        issuer: impl Into<String>,
    ) -> SourceBuilder<Self> {
        SourceBuilder::new(
            token_url.into(),
            None,
            JwtBearerConfig {
                key,
                issuer: issuer.into(),
                subject: None,
                audience: None,
                claims: Map::new(),
                lifetime: DEFAULT_ASSERTION_LIFETIME,
            },
        )
    }

    /// Signs a fresh assertion and exchanges it for a token.
    ///
    /// # Errors
    ///
    /// When signing fails, the request fails or the server refuses it.
    pub async fn fetch_token(&self) -> Result<Token, Error> {
        let Inner { client, config } = &*self.inner;
        let mut claims = assertion_claims(
            &config.issuer,
            config.subject.as_deref().unwrap_or(&config.issuer),
            config.audience.as_deref().unwrap_or(&client.url),
            config.lifetime,
        );
        for (name, value) in &config.claims {
            claims.insert(name.clone(), value.clone());
        }
        let assertion = config.key.sign(&claims)?;
        let secrets: Vec<&str> = redactable(&assertion).collect();
        let response = client
            .request(
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &assertion),
                ],
                &secrets,
            )
            .await?;
        Ok(response.token)
    }
}

impl SourceBuilder<JwtBearerGrant> {
    /// The assertion's subject (`sub`), when it differs from the issuer
    /// (e.g. a user the service account acts for).
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.config_mut().subject = Some(subject.into());
        self
    }

    /// The assertion's audience (`aud`); defaults to the token endpoint URL.
    pub fn assertion_audience(mut self, audience: impl Into<String>) -> Self {
        self.config_mut().audience = Some(audience.into());
        self
    }

    /// Adds a claim to every assertion (e.g. `scope` for Google). Standard
    /// claims set here replace the defaults.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.config_mut().claims.insert(name.into(), value.into());
        self
    }

    /// How long each assertion is valid (`exp - iat`); defaults to
    /// [`DEFAULT_ASSERTION_LIFETIME`] (5 minutes), and is at most
    /// [`LONGEST_SETTING`](crate::LONGEST_SETTING) (a year).
    pub fn assertion_lifetime(mut self, lifetime: Duration) -> Self {
        self.config_mut().lifetime = lifetime;
        self
    }
}

impl Grant for JwtBearerGrant {
    type Config = JwtBearerConfig;

    fn build(config: JwtBearerConfig, client: TokenClient) -> Result<Self, Error> {
        Ok(Self {
            inner: Arc::new(Inner { client, config }),
        })
    }
}

impl TokenSource for JwtBearerGrant {
    fn fetch(&self) -> TokenFuture {
        let source = self.clone();
        Box::pin(async move { source.fetch_token().await.map_err(BoxError::from) })
    }

    fn name(&self) -> &str {
        "oauth2 jwt_bearer"
    }

    fn fingerprint(&self) -> Option<String> {
        let config = &self.inner.config;
        let mut identity = vec![("iss", config.issuer.clone())];
        if let Some(subject) = &config.subject {
            identity.push(("sub", subject.clone()));
        }
        if let Some(audience) = &config.audience {
            identity.push(("aud", audience.clone()));
        }
        // The claims that shape the token (`scope`, say), sorted; not the
        // ones that change with every assertion.
        let claims: std::collections::BTreeMap<&String, &Value> = config
            .claims
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "iat" | "exp" | "nbf" | "jti"))
            .collect();
        if !claims.is_empty() {
            identity.push(("claims", serde_json::to_string(&claims).unwrap_or_default()));
        }
        let identity: Vec<(&str, &str)> = identity
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        Some(self.inner.client.fingerprint("jwt_bearer", &identity))
    }
}

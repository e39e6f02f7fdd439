//! [`GithubActionsOidc`]: the OIDC token GitHub Actions gives a job, for
//! workload identity federation with a cloud or any authorization server.

use std::fmt;

use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderMap, HeaderValue, Uri};
use serde_json::Value;

use super::retrying_get::{Requester, without_query};
use super::{ConfigError, IdentityEndpointError, env};
use crate::oauth2::endpoint::Answer;
use crate::oauth2::{Error, HttpClient, endpoint, token_response};
use crate::{Secret, Token, TokenSource};

/// The URL a job asks for its OIDC token (set by the runner when the job
/// has `permissions: id-token: write`).
pub const ACTIONS_ID_TOKEN_REQUEST_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// The bearer token that authorizes that request (a secret).
pub const ACTIONS_ID_TOKEN_REQUEST_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

const PROVIDER: &str = "GitHub Actions OIDC";

const PERMISSION: &str = "is the job's `permissions: id-token: write` given?";

const REFUSED: &str = "GitHub refused the request token: does the job have \
                       `permissions: id-token: write`, and is it still running?";

/// The OIDC token (a JWT signed by GitHub) of the GitHub Actions job that
/// runs it, for an audience: what `@actions/core`'s `getIDToken` does. Use
/// it as the subject token of a token exchange, or as a client assertion,
/// to reach a cloud or an API without a stored secret.
///
/// - `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with
///   `Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`; the answer
///   is `{"value": "<JWT>"}`, which expires at its `exp`. Without an
///   [`audience`](Self::audience), GitHub's default applies (the owner's
///   URL).
/// - The request token is a [`Secret`]: `Debug`, errors and logs never show
///   it (nor the JWT).
/// - The request URL must be `https` (or `http` to loopback).
/// - Transient failures (connection errors, `429`, `5xx`, an attempt that
///   takes longer than [`ATTEMPT_TIMEOUT`](super::ATTEMPT_TIMEOUT)) are
///   retried with backoff, at most [`ATTEMPTS`](super::ATTEMPTS) times
///   within [`RETRY_BUDGET`](super::RETRY_BUDGET), honouring `Retry-After`;
///   `401` and `403` (a request token refused) are
///   [permanent](crate::Permanent).
///
/// # Example
///
/// ```no_run
/// use tower_token_refresh::TokenCache;
/// use tower_token_refresh::workload::GithubActionsOidc;
///
/// # fn main() -> Result<(), tower_token_refresh::BoxError> {
/// let source = GithubActionsOidc::from_env()?.audience("api://AzureADTokenExchange");
/// let cache = TokenCache::new(source);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct GithubActionsOidc {
    url: String,
    request_token: Secret,
    audience: Option<String>,
    requester: Requester,
}

impl GithubActionsOidc {
    /// Asks `request_url` (`ACTIONS_ID_TOKEN_REQUEST_URL`), authorized by
    /// `request_token` (`ACTIONS_ID_TOKEN_REQUEST_TOKEN`). Nothing is
    /// requested before the cache asks.
    ///
    /// # Errors
    ///
    /// When `request_url` is not an `https` URL (or `http` to loopback), or
    /// `request_token` cannot be sent in a header.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_token_refresh::workload::GithubActionsOidc;
    ///
    /// let source = GithubActionsOidc::new(
    ///     "https://pipelines.actions.githubusercontent.com/abc/idtoken?api-version=2.0",
    ///     "request-token",
    /// )?
    /// .audience("sts.amazonaws.com");
    /// assert!(!format!("{source:?}").contains("request-token"));
    /// # Ok::<(), tower_token_refresh::workload::ConfigError>(())
    /// ```
    pub fn new(request_url: &str, request_token: impl Into<Secret>) -> Result<Self, ConfigError> {
        let url = request_url.trim();
        endpoint::validate(url, false)
            .map_err(|error| ConfigError::invalid(PROVIDER, "request URL", error.to_string()))?;
        let source = Self {
            url: url.to_owned(),
            request_token: request_token.into(),
            audience: None,
            requester: Requester::new(PROVIDER, REFUSED),
        };
        source.authorization()?;
        Ok(source)
    }

    /// The job's token, from `ACTIONS_ID_TOKEN_REQUEST_URL` and
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, which the runner sets when the job
    /// has `permissions: id-token: write`.
    ///
    /// # Errors
    ///
    /// Naming the variable that is missing or unusable.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_token_refresh::workload::GithubActionsOidc;
    ///
    /// let source = GithubActionsOidc::from_env()?.audience("sts.amazonaws.com");
    /// # Ok::<(), tower_token_refresh::workload::ConfigError>(())
    /// ```
    pub fn from_env() -> Result<Self, ConfigError> {
        let url = env::required(PROVIDER, ACTIONS_ID_TOKEN_REQUEST_URL, PERMISSION)?;
        let token = env::required(PROVIDER, ACTIONS_ID_TOKEN_REQUEST_TOKEN, PERMISSION)?;
        Self::new(&url, token).map_err(|error| match error.setting() {
            "request URL" => error.in_variable(ACTIONS_ID_TOKEN_REQUEST_URL),
            _ => error.in_variable(ACTIONS_ID_TOKEN_REQUEST_TOKEN),
        })
    }

    /// Asks for a token for `audience` (its `aud` claim), such as
    /// `api://AzureADTokenExchange` or `sts.amazonaws.com`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Sends the requests with this client instead of the default one.
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.requester.http = client;
        self
    }

    /// `Authorization: bearer …`, marked sensitive.
    fn authorization(&self) -> Result<HeaderValue, ConfigError> {
        let mut value = HeaderValue::from_str(&format!("bearer {}", self.request_token.expose()))
            .map_err(|_| {
            ConfigError::invalid(
                PROVIDER,
                "request token",
                "it holds characters a header cannot carry",
            )
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    fn uri(&self) -> Result<Uri, Error> {
        let url = match &self.audience {
            Some(audience) => {
                let separator = if self.url.contains('?') { '&' } else { '?' };
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("audience", audience)
                    .finish();
                format!("{}{separator}{query}", self.url)
            }
            None => self.url.clone(),
        };
        url.parse()
            .map_err(|_| Error::invalid_url("not a valid absolute URL"))
    }

    /// Asks GitHub for the job's token now.
    ///
    /// # Errors
    ///
    /// See the type's docs.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_token_refresh::workload::GithubActionsOidc;
    ///
    /// # async fn run() -> Result<(), tower_token_refresh::BoxError> {
    /// let jwt = GithubActionsOidc::from_env()?.audience("my-api").fetch_token().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn fetch_token(&self) -> Result<Token, IdentityEndpointError> {
        let uri = self
            .uri()
            .map_err(|error| IdentityEndpointError::new(PROVIDER, error))?;
        let authorization = self.authorization().map_err(|_| {
            IdentityEndpointError::new(
                PROVIDER,
                Error::invalid_url("the request token cannot be sent"),
            )
        })?;
        let headers = HeaderMap::from_iter([
            (AUTHORIZATION, authorization),
            (ACCEPT, HeaderValue::from_static("application/json")),
        ]);
        let secret = self.request_token.expose();
        let answer = self.requester.get(&uri, &headers, &[secret]).await?;
        read_token(&answer).map_err(|error| self.requester.failed(&uri, error))
    }
}

/// The JWT in `{"value": "…"}`.
fn read_token(answer: &Answer) -> Result<Token, Error> {
    let object = token_response::parse_object(&answer.body).map_err(Error::invalid_response)?;
    match object.get("value") {
        Some(Value::String(jwt)) if !jwt.is_empty() => Token::from_jwt(jwt.as_str())
            .map_err(|_| Error::invalid_response("`value` is not a JWT with a readable `exp`")),
        Some(Value::String(_)) => Err(Error::invalid_response("`value` is empty")),
        Some(_) => Err(Error::invalid_response("`value` is not a string")),
        None => Err(Error::invalid_response("`value` is missing")),
    }
}

impl TokenSource for GithubActionsOidc {
    super::retrying_get::fetch_with_fetch_token!();

    fn fingerprint(&self) -> Option<String> {
        let mut fingerprint = format!("github-actions-oidc {}", without_query(&self.url));
        if let Some(audience) = &self.audience {
            fingerprint.push_str(&format!(" audience={audience:?}"));
        }
        Some(fingerprint)
    }
}

impl fmt::Debug for GithubActionsOidc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubActionsOidc")
            .field("url", &without_query(&self.url))
            .field("request_token", &self.request_token)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

//! [`SourceBuilder`]: the settings every OAuth 2.0 source shares.

use std::fmt;
use std::time::Duration;

use super::endpoint;
use super::token_client::TokenClient;
use super::{ClientAuth, Error, HttpClient};

pub(crate) mod sealed {
    /// A source a [`SourceBuilder`](super::SourceBuilder) can build.
    pub trait Grant: Sized {
        /// The grant's own settings.
        type Config;

        /// Builds the source once the shared settings are validated.
        fn build(config: Self::Config, client: super::TokenClient) -> Result<Self, super::Error>;
    }
}

/// Builds an OAuth 2.0 token source: the settings every grant shares, plus
/// each grant's own (see [`ClientCredentials`](super::ClientCredentials),
/// [`RefreshTokenGrant`](super::RefreshTokenGrant) and
/// [`JwtBearerGrant`](super::JwtBearerGrant)).
///
/// The endpoint URL is checked by [`build`](SourceBuilder::build): it must be
/// `https`, or `http` to a loopback address, unless
/// [`allow_insecure_http`](SourceBuilder::allow_insecure_http).
pub struct SourceBuilder<S: sealed::Grant> {
    config: S::Config,
    url: String,
    client: Option<(String, ClientAuth)>,
    params: Vec<(String, String)>,
    http: Option<HttpClient>,
    allow_insecure_http: bool,
    timeout: Duration,
    #[cfg(feature = "dpop")]
    dpop: Option<crate::dpop::DpopKey>,
}

/// Default [request timeout](SourceBuilder::request_timeout).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl<S: sealed::Grant> SourceBuilder<S> {
    pub(crate) fn new(
        url: String,
        client: Option<(String, ClientAuth)>,
        config: S::Config,
    ) -> Self {
        Self {
            config,
            url,
            client,
            params: Vec::new(),
            http: None,
            allow_insecure_http: false,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            #[cfg(feature = "dpop")]
            dpop: None,
        }
    }

    pub(crate) fn config_mut(&mut self) -> &mut S::Config {
        &mut self.config
    }

    /// Lowers the request timeout to `at_most` unless it was set.
    pub(crate) fn cap_default_timeout(&mut self, at_most: Duration) {
        if self.timeout == DEFAULT_REQUEST_TIMEOUT {
            self.timeout = self.timeout.min(at_most);
        }
    }

    /// Authenticates the client as `client_id` with `auth`. The grants
    /// whose credential is not a client ([`JwtBearerGrant`](super::JwtBearerGrant),
    /// [`TokenExchange`](super::TokenExchange)) send no client
    /// authentication unless this is called; for the others it replaces the
    /// client given when the builder was made.
    pub fn client_auth(mut self, client_id: impl Into<String>, auth: ClientAuth) -> Self {
        self.client = Some((client_id.into(), auth));
        self
    }

    /// Requests these scopes (`scope`, space-separated).
    pub fn scope(self, scope: impl Into<String>) -> Self {
        self.replace_param("scope", scope.into())
    }

    /// Requests a token for this resource (`resource`, RFC 8707); may be
    /// called more than once.
    pub fn resource(self, resource: impl Into<String>) -> Self {
        self.param("resource", resource)
    }

    /// Requests a token for this audience (`audience`, as Auth0, Okta and
    /// RFC 8693 servers expect).
    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.replace_param("audience", audience.into())
    }

    /// Adds a form parameter to every token request.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    fn replace_param(mut self, name: &str, value: String) -> Self {
        self.params.retain(|(existing, _)| existing != name);
        self.params.push((name.to_owned(), value));
        self
    }

    /// Sends token requests with this client instead of the default one.
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// The longest one token request may take, on its own (the cache's
    /// [fetch timeout](crate::TokenCacheBuilder::fetch_timeout) bounds how
    /// long callers wait; this bounds the request itself, which for a
    /// refresh token grant keeps going after a caller gave up, so that a
    /// rotated refresh token is never lost). Defaults to
    /// [`DEFAULT_REQUEST_TIMEOUT`] (30 seconds).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Allows a plain `http` token endpoint that is not on a loopback
    /// address. Credentials then cross the network unencrypted: only for
    /// test environments.
    pub fn allow_insecure_http(mut self) -> Self {
        self.allow_insecure_http = true;
        self
    }

    /// Binds the tokens to `key` (DPoP, RFC 9449): each token request
    /// carries a proof signed with it, and a `DPoP` token the server issues
    /// is sent by [`TokenRefresh`](crate::TokenRefresh) with a proof per
    /// request. See [`dpop`](crate::dpop).
    #[cfg(feature = "dpop")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    pub fn dpop(mut self, key: crate::dpop::DpopKey) -> Self {
        self.dpop = Some(key);
        self
    }

    /// Builds the source.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidUrl`](super::ErrorKind::InvalidUrl) if the token
    /// endpoint URL is not usable.
    pub fn build(self) -> Result<S, Error> {
        let uri = endpoint::validate(&self.url, self.allow_insecure_http)?;
        let client = TokenClient::new(
            self.url,
            uri,
            self.client,
            self.params,
            self.http.unwrap_or_default(),
            self.timeout,
        );
        #[cfg(feature = "dpop")]
        let client = client.with_dpop(self.dpop);
        S::build(self.config, client)
    }
}

impl<S: sealed::Grant> fmt::Debug for SourceBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<&str> = self.params.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("SourceBuilder")
            .field("url", &self.url)
            .field("client", &self.client)
            .field("params", &params)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish_non_exhaustive()
    }
}

//! [`GcpMetadata`]: access and identity tokens of the service account a
//! Google Cloud workload runs as, from the metadata server.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use super::retrying_get::Requester;
use super::{ConfigError, env};
use crate::oauth2::{Error, HttpClient, endpoint, token_response};
use crate::{Token, TokenSource};

/// The metadata server's host name on Google Cloud (Compute Engine, GKE,
/// Cloud Run, Cloud Functions, App Engine), as Google's libraries use it.
pub const DEFAULT_GCP_METADATA_HOST: &str = "metadata.google.internal";

/// The environment variable that moves the metadata server (an emulator,
/// a proxy), as Google's libraries read it: a host, with a port if needed.
pub const GCE_METADATA_HOST: &str = "GCE_METADATA_HOST";

const PROVIDER: &str = "GCP metadata server";

const REFUSED: &str = "the metadata server refused the request: is the service account \
                       attached to this workload, and are the scopes allowed?";

/// Access tokens (or identity tokens) of the service account a Google Cloud
/// workload runs as, from the metadata server, with no key to manage: what
/// `gcp_auth` and `google-cloud-auth` do on Compute Engine, GKE (workload
/// identity), Cloud Run, Cloud Functions and App Engine.
///
/// - **Access tokens**: `GET http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/{account}/token`
///   with `Metadata-Flavor: Google` (the [`account`](Self::account) is
///   `default` unless set; optional [`scopes`](Self::scopes)). The token
///   expires after the answer's `expires_in`.
/// - **Identity tokens** ([`id_token`](Self::id_token)): `…/identity?audience=…`,
///   a JWT for that audience (with [`full_format`](Self::full_format),
///   `format=full`), which expires at its `exp`.
/// - **Where**: [`DEFAULT_GCP_METADATA_HOST`], or the host in `GCE_METADATA_HOST`
///   ([`from_env`](Self::from_env)), or [`host`](Self::host). The metadata
///   server speaks plain HTTP on the machine itself, so plain HTTP goes only
///   to `metadata.google.internal`, a link-local address (such as
///   `169.254.169.254`, the server's address) or a loopback one (an
///   emulator); any other host must be an `https://` URL.
/// - **Transient failures** (connection errors, `429`, `5xx`, an attempt
///   that takes longer than [`ATTEMPT_TIMEOUT`](super::ATTEMPT_TIMEOUT)) are
///   retried with backoff, at most [`ATTEMPTS`](super::ATTEMPTS) times
///   within [`RETRY_BUDGET`](super::RETRY_BUDGET), honouring `Retry-After`;
///   then the cache's own backoff takes over. Another `4xx` (an unknown
///   service account) is [permanent](crate::Permanent).
/// - **Errors** are [`IdentityEndpointError`](super::IdentityEndpointError)s
///   naming the source and the endpoint; nothing here is secret, and no
///   error or `Debug` output shows a token.
///
/// As Google's own libraries do, the response's `Metadata-Flavor` header is
/// not checked (they check it only to detect whether they run on Google
/// Cloud).
///
/// # Example
///
/// ```no_run
/// use tower_token_refresh::workload::GcpMetadata;
/// use tower_token_refresh::{TokenCache, TokenRefreshLayer};
///
/// # fn main() -> Result<(), tower_token_refresh::BoxError> {
/// // The workload's default service account, where its libraries look.
/// let cache = TokenCache::new(GcpMetadata::from_env()?);
/// let layer = TokenRefreshLayer::new(cache);
/// # Ok(())
/// # }
/// ```
///
/// An identity token for a Cloud Run service, from a named service account:
///
/// ```no_run
/// use tower_token_refresh::TokenCache;
/// use tower_token_refresh::workload::GcpMetadata;
///
/// let source = GcpMetadata::new()
///     .account("reports@my-project.iam.gserviceaccount.com")
///     .id_token("https://reports-abc123-uc.a.run.app");
/// let cache = TokenCache::new(source);
/// ```
#[derive(Clone)]
pub struct GcpMetadata {
    /// `http://host[:port]` or `https://host[:port]`.
    base: String,
    account: String,
    scopes: Vec<String>,
    kind: Kind,
    requester: Requester,
}

#[derive(Clone, Debug)]
enum Kind {
    Access,
    Identity { audience: String, full: bool },
}

impl GcpMetadata {
    /// Access tokens of the `default` service account, from the metadata
    /// server at [`DEFAULT_GCP_METADATA_HOST`]. Nothing is requested before the
    /// cache asks.
    pub fn new() -> Self {
        Self {
            base: format!("http://{DEFAULT_GCP_METADATA_HOST}"),
            account: "default".to_owned(),
            scopes: Vec::new(),
            kind: Kind::Access,
            requester: Requester::new(PROVIDER, REFUSED),
        }
    }

    /// Like [`new`](Self::new), from the metadata server in
    /// `GCE_METADATA_HOST` if it is set, as Google's libraries do (an
    /// emulator, a proxy: `127.0.0.1:8080`).
    ///
    /// # Errors
    ///
    /// When `GCE_METADATA_HOST` holds a host that may not be reached in plain
    /// HTTP (see the type's docs) or is not a host.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_token_refresh::workload::GcpMetadata;
    ///
    /// // With GCE_METADATA_HOST=127.0.0.1:8080, an emulator there.
    /// let source = GcpMetadata::from_env()?.scopes(["https://www.googleapis.com/auth/cloud-platform"]);
    /// # Ok::<(), tower_token_refresh::workload::ConfigError>(())
    /// ```
    pub fn from_env() -> Result<Self, ConfigError> {
        match env::optional(GCE_METADATA_HOST) {
            Some(host) => Self::new()
                .host(&host)
                .map_err(|error| error.in_variable(GCE_METADATA_HOST)),
            None => Ok(Self::new()),
        }
    }

    /// Asks the metadata server at `host` (`host`, `host:port`, or a URL
    /// `http://host:port` / `https://host:port`).
    ///
    /// # Errors
    ///
    /// When `host` is not a host, or may not be reached in plain HTTP (see
    /// the type's docs).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_token_refresh::workload::GcpMetadata;
    ///
    /// // The server's address, without a DNS lookup; an emulator on this machine.
    /// let by_address = GcpMetadata::new().host("169.254.169.254")?;
    /// let emulator = GcpMetadata::new().host("localhost:8080")?;
    /// // Not in plain HTTP to another machine.
    /// assert!(GcpMetadata::new().host("metadata.example.com").is_err());
    /// # Ok::<(), tower_token_refresh::workload::ConfigError>(())
    /// ```
    pub fn host(mut self, host: &str) -> Result<Self, ConfigError> {
        let host = host.trim().trim_end_matches('/');
        let base = if host.starts_with("http://") || host.starts_with("https://") {
            host.to_owned()
        } else {
            format!("http://{host}")
        };
        let uri = endpoint::validate_on_instance(&format!("{base}/"), &[DEFAULT_GCP_METADATA_HOST])
            .map_err(|error| ConfigError::invalid(PROVIDER, "host", error.to_string()))?;
        if uri.path() != "/" || uri.query().is_some() {
            return Err(ConfigError::invalid(
                PROVIDER,
                "host",
                "give a host (and port), not a path",
            ));
        }
        self.base = base;
        Ok(self)
    }

    /// Tokens of this service account (its email address, or `default`,
    /// the workload's default account).
    ///
    /// # Panics
    ///
    /// When `account` is empty or holds anything but letters, digits and
    /// `@ . - _` (it is a segment of the request's path).
    pub fn account(mut self, account: impl Into<String>) -> Self {
        let account = account.into();
        assert!(
            !account.is_empty()
                && account
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"@.-_".contains(&b)),
            "a service account is `default` or an email address"
        );
        self.account = account;
        self
    }

    /// Asks for access tokens with these OAuth scopes (sent as `scopes`, a
    /// comma-separated list); without them, the metadata server gives the
    /// scopes the workload was given. Identity tokens have an audience
    /// instead, and ignore scopes.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Asks for identity tokens (OIDC JWTs signed by Google) for `audience`
    /// instead of access tokens: what Cloud Run, Cloud Functions and IAP
    /// expect.
    pub fn id_token(mut self, audience: impl Into<String>) -> Self {
        self.kind = Kind::Identity {
            audience: audience.into(),
            full: false,
        };
        self
    }

    /// For identity tokens: asks for `format=full` (the token then says
    /// which project and instance it comes from). Access tokens ignore it.
    pub fn full_format(mut self) -> Self {
        if let Kind::Identity { full, .. } = &mut self.kind {
            *full = true;
        }
        self
    }

    /// Sends the requests with this client instead of the default one.
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.requester.http = client;
        self
    }

    /// The request's URI.
    fn uri(&self) -> Result<Uri, Error> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        let what = match &self.kind {
            Kind::Access => {
                if !self.scopes.is_empty() {
                    query.append_pair("scopes", &self.scopes.join(","));
                }
                "token"
            }
            Kind::Identity { audience, full } => {
                query.append_pair("audience", audience);
                if *full {
                    query.append_pair("format", "full");
                }
                "identity"
            }
        };
        let query = query.finish();
        let separator = if query.is_empty() { "" } else { "?" };
        format!(
            "{}/computeMetadata/v1/instance/service-accounts/{}/{what}{separator}{query}",
            self.base, self.account
        )
        .parse()
        .map_err(|_| Error::invalid_url("not a valid absolute URL"))
    }

    /// Asks the metadata server for a token now.
    ///
    /// # Errors
    ///
    /// See the type's docs.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_token_refresh::workload::GcpMetadata;
    ///
    /// # async fn run() -> Result<(), tower_token_refresh::BoxError> {
    /// let token = GcpMetadata::new().fetch_token().await?;
    /// println!("expires in {:?}", token.time_left());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn fetch_token(&self) -> Result<Token, super::IdentityEndpointError> {
        let uri = self
            .uri()
            .map_err(|error| super::IdentityEndpointError::new(PROVIDER, error))?;
        let headers = HeaderMap::from_iter([(
            HeaderName::from_static("metadata-flavor"),
            HeaderValue::from_static("Google"),
        )]);
        let answer = self.requester.get(&uri, &headers, &[]).await?;
        let token = match self.kind {
            Kind::Access => token_response::read(&answer, &[]).map(|response| response.token),
            Kind::Identity { .. } => std::str::from_utf8(&answer.body)
                .ok()
                .and_then(|text| Token::from_jwt(text.trim()).ok())
                .ok_or(
                    Error::invalid_response(
                        "the identity token is not a JWT with a readable `exp`",
                    )
                    .into(),
                ),
        };
        token.map_err(|failure| self.requester.failed(&uri, failure.into()))
    }
}

impl Default for GcpMetadata {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenSource for GcpMetadata {
    super::retrying_get::fetch_with_fetch_token!();

    fn fingerprint(&self) -> Option<String> {
        let mut fingerprint = format!("gcp-metadata {} account={:?}", self.base, self.account);
        match &self.kind {
            Kind::Access if self.scopes.is_empty() => fingerprint.push_str(" access-token"),
            Kind::Access => {
                fingerprint.push_str(&format!(" access-token scopes={:?}", self.scopes.join(",")))
            }
            Kind::Identity { audience, full } => fingerprint.push_str(&format!(
                " id-token audience={audience:?}{}",
                if *full { " format=full" } else { "" }
            )),
        }
        Some(fingerprint)
    }
}

impl fmt::Debug for GcpMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpMetadata")
            .field("base", &self.base)
            .field("account", &self.account)
            .field("scopes", &self.scopes)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

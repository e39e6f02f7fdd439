//! [`AzureManagedIdentity`]: tokens of an Azure resource's managed
//! identity, from the instance metadata service (IMDS) or the App Service
//! and Functions identity endpoint.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use serde_json::Value;

use super::retrying_get::{Requester, busy_or_failing, without_query};
use super::{ConfigError, IdentityEndpointError, env};
use crate::oauth2::endpoint::Answer;
use crate::oauth2::{Error, HttpClient, endpoint, token_response};
use crate::{Secret, Token, TokenSource};

/// The instance metadata service's token endpoint on Azure virtual
/// machines, scale sets, AKS nodes and Container Instances.
pub const DEFAULT_AZURE_IMDS_ENDPOINT: &str =
    "http://169.254.169.254/metadata/identity/oauth2/token";

const IMDS_PATH: &str = "/metadata/identity/oauth2/token";
const IMDS_API_VERSION: &str = "2018-02-01";
const APP_SERVICE_API_VERSION: &str = "2019-08-01";

/// App Service and Functions: the identity endpoint's URL.
pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
/// App Service and Functions: the secret to send in `X-IDENTITY-HEADER`.
pub const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
/// Moves the IMDS endpoint (`http://host:port`), as Azure's SDKs read it.
pub const AZURE_POD_IDENTITY_AUTHORITY_HOST: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";
/// The client id of a user-assigned identity, as `DefaultAzureCredential`
/// reads it.
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";

const PROVIDER: &str = "Azure managed identity";

const REFUSED: &str = "the managed identity endpoint refused the request: is a managed identity \
                       assigned to this resource (and the user-assigned one asked for, if any), \
                       and is the resource right?";

/// Tokens of the managed identity of the Azure resource a workload runs on,
/// with no secret to manage: what `azure_identity`'s
/// `ManagedIdentityCredential` does.
///
/// - **IMDS** (virtual machines, scale sets, AKS nodes, Container
///   Instances; [`imds`](Self::imds)): `GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`
///   with `Metadata: true`. The endpoint moves with
///   [`imds_at`](Self::imds_at) or `AZURE_POD_IDENTITY_AUTHORITY_HOST`.
/// - **App Service and Functions** ([`app_service`](Self::app_service)):
///   `GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=…` with
///   `X-IDENTITY-HEADER: $IDENTITY_HEADER` (a secret: never shown).
/// - **Which identity**: the system-assigned one, or a
///   [user-assigned](Self::user_assigned) one, named by exactly one
///   [`UserAssignedId`] (`client_id`, `object_id` or `msi_res_id` for IMDS;
///   `client_id`, `principal_id` or `mi_res_id` for App Service).
/// - **Expiry**: `expires_in` (seconds, a string) when the answer has it
///   (IMDS), else `expires_on` (Unix time in seconds, a string; App Service
///   2019-08-01).
/// - **Retries**, as Azure's guidance says: `404` (the identity is not
///   ready yet), `410` (IMDS is updating), `429` and `5xx` are retried with
///   jittered exponential backoff, honouring `Retry-After`, at most
///   [`ATTEMPTS`](super::ATTEMPTS) times within
///   [`RETRY_BUDGET`](super::RETRY_BUDGET); then the cache's own backoff
///   takes over. A `400` (no such identity on this resource) or another
///   `4xx` is [permanent](crate::Permanent).
/// - **Plain HTTP** only to loopback and link-local addresses (where these
///   endpoints live); any other endpoint must be `https`.
///
/// # Example
///
/// ```no_run
/// use tower_token_refresh::workload::AzureManagedIdentity;
/// use tower_token_refresh::{TokenCache, TokenRefreshLayer};
///
/// # fn main() -> Result<(), tower_token_refresh::BoxError> {
/// // App Service or Functions if their variables are set, else IMDS.
/// let source = AzureManagedIdentity::from_env("https://vault.azure.net")?;
/// let layer = TokenRefreshLayer::new(TokenCache::new(source));
/// # Ok(())
/// # }
/// ```
///
/// A user-assigned identity on a virtual machine:
///
/// ```no_run
/// use tower_token_refresh::TokenCache;
/// use tower_token_refresh::workload::{AzureManagedIdentity, UserAssignedId};
///
/// let source = AzureManagedIdentity::imds("https://management.azure.com/")
///     .user_assigned(UserAssignedId::ClientId("00000000-0000-0000-0000-000000000000".into()));
/// let cache = TokenCache::new(source);
/// ```
#[derive(Clone)]
pub struct AzureManagedIdentity {
    endpoint: Endpoint,
    resource: String,
    identity: Option<UserAssignedId>,
    requester: Requester,
}

#[derive(Clone)]
enum Endpoint {
    Imds { url: String },
    AppService { url: String, header: Secret },
}

/// A user-assigned managed identity, named by one of its identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserAssignedId {
    /// Its client (application) id.
    ClientId(String),
    /// Its object (principal) id.
    ObjectId(String),
    /// Its Azure resource id
    /// (`/subscriptions/…/resourceGroups/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/…`).
    ResourceId(String),
}

impl AzureManagedIdentity {
    /// Tokens for `resource` (an App ID URI such as
    /// `https://vault.azure.net`; a scope ending in `/.default` is taken as
    /// its resource) from IMDS at [`DEFAULT_AZURE_IMDS_ENDPOINT`], for the
    /// system-assigned identity. Nothing is requested before the cache asks.
    pub fn imds(resource: impl Into<String>) -> Self {
        Self::new(
            Endpoint::Imds {
                url: DEFAULT_AZURE_IMDS_ENDPOINT.to_owned(),
            },
            resource.into(),
        )
    }

    /// Like [`imds`](Self::imds), from the IMDS at `authority`
    /// (`http://host:port`, as in `AZURE_POD_IDENTITY_AUTHORITY_HOST`).
    ///
    /// # Errors
    ///
    /// When `authority` is not a URL that may be used (plain HTTP only to
    /// loopback and link-local addresses).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_token_refresh::workload::AzureManagedIdentity;
    ///
    /// let source = AzureManagedIdentity::imds_at("http://127.0.0.1:8080", "https://vault.azure.net")?;
    /// assert!(AzureManagedIdentity::imds_at("http://imds.example.com", "https://vault.azure.net").is_err());
    /// # Ok::<(), tower_token_refresh::workload::ConfigError>(())
    /// ```
    pub fn imds_at(authority: &str, resource: impl Into<String>) -> Result<Self, ConfigError> {
        let authority = authority.trim().trim_end_matches('/');
        let authority = if authority.contains("://") {
            authority.to_owned()
        } else {
            format!("http://{authority}")
        };
        let url = checked(format!("{authority}{IMDS_PATH}"), "IMDS authority")?;
        Ok(Self::new(Endpoint::Imds { url }, resource.into()))
    }

    /// Tokens for `resource` from an App Service or Functions identity
    /// endpoint (`IDENTITY_ENDPOINT`), authenticated by `identity_header`
    /// (`IDENTITY_HEADER`), for the system-assigned identity.
    ///
    /// # Errors
    ///
    /// When `endpoint` is not a URL that may be used (plain HTTP only to
    /// loopback and link-local addresses), or `identity_header` cannot be
    /// sent in a header.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_token_refresh::workload::{AzureManagedIdentity, UserAssignedId};
    ///
    /// let source = AzureManagedIdentity::app_service(
    ///     "http://127.0.0.1:41741/msi/token",
    ///     "identity-header-from-the-platform",
    ///     "https://storage.azure.com",
    /// )?
    /// .user_assigned(UserAssignedId::ObjectId("d8ab1f7e-3c47-4a2b-a6cb-2f6f6c5b0d9e".into()));
    /// assert!(!format!("{source:?}").contains("identity-header-from-the-platform"));
    /// # Ok::<(), tower_token_refresh::workload::ConfigError>(())
    /// ```
    pub fn app_service(
        endpoint: &str,
        identity_header: impl Into<Secret>,
        resource: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let url = checked(endpoint.trim().to_owned(), "identity endpoint")?;
        let header = identity_header.into();
        header_value(&header)?;
        Ok(Self::new(
            Endpoint::AppService { url, header },
            resource.into(),
        ))
    }

    /// The managed identity where the platform says it is, as Azure's SDKs
    /// find it: App Service or Functions when `IDENTITY_ENDPOINT` and
    /// `IDENTITY_HEADER` are set, else IMDS (at
    /// `AZURE_POD_IDENTITY_AUTHORITY_HOST` if set); the user-assigned
    /// identity with the client id in `AZURE_CLIENT_ID` if set (as
    /// `DefaultAzureCredential` does), else the system-assigned one.
    ///
    /// # Errors
    ///
    /// Naming the variable: when only one of `IDENTITY_ENDPOINT` and
    /// `IDENTITY_HEADER` is set (Azure Arc, which sets `IDENTITY_ENDPOINT`
    /// alone, is not supported), or one holds an unusable value.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_token_refresh::workload::AzureManagedIdentity;
    ///
    /// match AzureManagedIdentity::from_env("https://vault.azure.net") {
    ///     Ok(source) => println!("asking {source:?}"),
    ///     Err(error) => eprintln!("{error}"), // names the variable
    /// }
    /// ```
    pub fn from_env(resource: impl Into<String>) -> Result<Self, ConfigError> {
        let resource = resource.into();
        let endpoint = env::optional(IDENTITY_ENDPOINT);
        let header = env::optional(IDENTITY_HEADER);
        let source = match (endpoint, header) {
            (Some(endpoint), Some(header)) => {
                let url = checked(endpoint, "identity endpoint")
                    .map_err(|error| error.in_variable(IDENTITY_ENDPOINT))?;
                let header = Secret::new(header);
                header_value(&header).map_err(|error| error.in_variable(IDENTITY_HEADER))?;
                Self::new(Endpoint::AppService { url, header }, resource)
            }
            (Some(_), None) => {
                return Err(ConfigError::missing(
                    PROVIDER,
                    IDENTITY_HEADER,
                    "IDENTITY_ENDPOINT is set without it (App Service and Functions set both; \
                     Azure Arc is not supported)",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::missing(
                    PROVIDER,
                    IDENTITY_ENDPOINT,
                    "IDENTITY_HEADER is set without it (App Service and Functions set both)",
                ));
            }
            (None, None) => match env::optional(AZURE_POD_IDENTITY_AUTHORITY_HOST) {
                Some(authority) => Self::imds_at(&authority, resource)
                    .map_err(|error| error.in_variable(AZURE_POD_IDENTITY_AUTHORITY_HOST))?,
                None => Self::imds(resource),
            },
        };
        Ok(match env::optional(AZURE_CLIENT_ID) {
            Some(client_id) => source.user_assigned(UserAssignedId::ClientId(client_id)),
            None => source,
        })
    }

    fn new(endpoint: Endpoint, resource: String) -> Self {
        let resource = match resource.strip_suffix("/.default") {
            Some(resource) => resource.to_owned(),
            None => resource,
        };
        let mut requester = Requester::new(PROVIDER, REFUSED);
        requester.retry_status = retried;
        Self {
            endpoint,
            resource,
            identity: None,
            requester,
        }
    }

    /// Asks for the tokens of this user-assigned identity instead of the
    /// system-assigned one.
    pub fn user_assigned(mut self, identity: UserAssignedId) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Sends the requests with this client instead of the default one.
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.requester.http = client;
        self
    }

    /// The request's URI and headers.
    fn request(&self) -> Result<(Uri, HeaderMap), IdentityEndpointError> {
        let (url, api_version, names) = match &self.endpoint {
            Endpoint::Imds { url } => (
                url,
                IMDS_API_VERSION,
                ["client_id", "object_id", "msi_res_id"],
            ),
            Endpoint::AppService { url, .. } => (
                url,
                APP_SERVICE_API_VERSION,
                ["client_id", "principal_id", "mi_res_id"],
            ),
        };
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("api-version", api_version);
        query.append_pair("resource", &self.resource);
        match &self.identity {
            Some(UserAssignedId::ClientId(id)) => query.append_pair(names[0], id),
            Some(UserAssignedId::ObjectId(id)) => query.append_pair(names[1], id),
            Some(UserAssignedId::ResourceId(id)) => query.append_pair(names[2], id),
            None => &mut query,
        };
        let separator = if url.contains('?') { '&' } else { '?' };
        let uri = format!("{url}{separator}{}", query.finish())
            .parse()
            .map_err(|_| {
                IdentityEndpointError::new(PROVIDER, Error::invalid_url("not a valid absolute URL"))
            })?;
        let headers = match &self.endpoint {
            Endpoint::Imds { .. } => HeaderMap::from_iter([(
                HeaderName::from_static("metadata"),
                HeaderValue::from_static("true"),
            )]),
            Endpoint::AppService { header, .. } => {
                let value = header_value(header).map_err(|_| {
                    IdentityEndpointError::new(
                        PROVIDER,
                        Error::invalid_url("the identity header cannot be sent"),
                    )
                })?;
                HeaderMap::from_iter([(HeaderName::from_static("x-identity-header"), value)])
            }
        };
        Ok((uri, headers))
    }

    /// Asks the managed identity endpoint for a token now.
    ///
    /// # Errors
    ///
    /// See the type's docs.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_token_refresh::workload::AzureManagedIdentity;
    ///
    /// # async fn run() -> Result<(), tower_token_refresh::BoxError> {
    /// let token = AzureManagedIdentity::imds("https://vault.azure.net").fetch_token().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn fetch_token(&self) -> Result<Token, IdentityEndpointError> {
        let (uri, headers) = self.request()?;
        let secret = match &self.endpoint {
            Endpoint::AppService { header, .. } => header.expose(),
            Endpoint::Imds { .. } => "",
        };
        let answer = self.requester.get(&uri, &headers, &[secret]).await?;
        read_token(&answer, secret).map_err(|error| self.requester.failed(&uri, error))
    }
}

/// What Azure's guidance says to retry: `404` (identity not ready yet),
/// `410` (IMDS updating), `429` and `5xx`.
fn retried(status: StatusCode) -> bool {
    matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE) || busy_or_failing(status)
}

/// `url`, if it may be used (plain HTTP only on the machine).
fn checked(url: String, setting: &'static str) -> Result<String, ConfigError> {
    endpoint::validate_on_instance(&url, &[])
        .map_err(|error| ConfigError::invalid(PROVIDER, setting, error.to_string()))?;
    Ok(url)
}

/// The identity header, marked sensitive.
fn header_value(secret: &Secret) -> Result<HeaderValue, ConfigError> {
    let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| {
        ConfigError::invalid(
            PROVIDER,
            "identity header",
            "it holds characters a header cannot carry",
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The token in a successful answer, expiring after `expires_in` if the
/// answer has it, else at `expires_on`.
fn read_token(answer: &Answer, secret: &str) -> Result<Token, Error> {
    let token = token_response::read(answer, &[secret])?.token;
    let object = token_response::parse_object(&answer.body).unwrap_or_default();
    let expires_on = match (object.get("expires_in"), object.get("expires_on")) {
        (None | Some(Value::Null), Some(expires_on)) if !expires_on.is_null() => expires_on,
        _ => return Ok(token),
    };
    let seconds = match expires_on {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or(Error::invalid_response(
        "`expires_on` is not a number of seconds since the Unix epoch",
    ))?;
    Ok(Token::bearer(token.secret()).expires_at(UNIX_EPOCH + Duration::from_secs(seconds)))
}

impl TokenSource for AzureManagedIdentity {
    super::retrying_get::fetch_with_fetch_token!();

    fn fingerprint(&self) -> Option<String> {
        let (kind, url) = match &self.endpoint {
            Endpoint::Imds { url } => ("imds", url),
            Endpoint::AppService { url, .. } => ("app-service", url),
        };
        let mut fingerprint = format!(
            "azure-managed-identity {kind} {} resource={:?}",
            without_query(url),
            self.resource
        );
        match &self.identity {
            Some(UserAssignedId::ClientId(id)) => {
                fingerprint.push_str(&format!(" client_id={id:?}"))
            }
            Some(UserAssignedId::ObjectId(id)) => {
                fingerprint.push_str(&format!(" object_id={id:?}"))
            }
            Some(UserAssignedId::ResourceId(id)) => {
                fingerprint.push_str(&format!(" resource_id={id:?}"))
            }
            None => {}
        }
        Some(fingerprint)
    }
}

impl fmt::Debug for AzureManagedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("AzureManagedIdentity");
        match &self.endpoint {
            Endpoint::Imds { url } => d.field("imds", &without_query(url)),
            Endpoint::AppService { url, header } => d
                .field("app_service", &without_query(url))
                .field("identity_header", header),
        };
        d.field("resource", &self.resource)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

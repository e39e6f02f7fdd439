//! [`Error`]: what went wrong talking to an authorization server.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::{Permanent, RetryAfter};

/// An error from an OAuth 2.0 token source or discovery.
///
/// [`kind`](Error::kind) says what failed; for errors the authorization
/// server reported (RFC 6749 §5.2), [`code`](Error::code),
/// [`description`](Error::description) and [`status`](Error::status) give
/// its answer. The message never contains a client secret, a refresh token,
/// an access token or a private key: server-provided descriptions that echo
/// one of the request's secrets are redacted.
///
/// Token sources return it as the [`source`](std::error::Error::source) of
/// the cache's [`crate::Error`]:
///
/// ```
/// # use tower_token_refresh::oauth2;
/// fn explain(error: &tower_token_refresh::Error) -> String {
///     use std::error::Error as _;
///     match error.source().and_then(|source| source.downcast_ref::<oauth2::Error>()) {
///         Some(oauth) if oauth.code() == Some(&oauth2::ErrorCode::InvalidClient) => {
///             "check the client id and secret".to_owned()
///         }
///         Some(oauth) if oauth.is_retryable() => format!("the server is struggling: {oauth}"),
///         _ => error.to_string(),
///     }
/// }
/// ```
#[derive(Clone)]
pub struct Error(Box<Inner>);

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    status: Option<StatusCode>,
    code: Option<ErrorCode>,
    description: Option<String>,
    uri: Option<String>,
    timeout: Option<Duration>,
    detail: Option<&'static str>,
    /// The endpoint asked (scheme, host, port and path: no query).
    endpoint: Option<String>,
    /// For [`ErrorKind::Credential`]: the name of the source that failed.
    from: Option<String>,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

/// What failed; see [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server answered with an OAuth error (RFC 6749 §5.2):
    /// see [`Error::code`].
    Rejected,
    /// The server answered with an error status and no OAuth error body
    /// (an HTML error page, a proxy's 503, …).
    Status,
    /// The request could not be sent or the answer could not be read
    /// (connection refused or reset, TLS failure, …).
    Transport,
    /// The server answered successfully, but not with a usable token
    /// response: not JSON, missing or mistyped fields, too large, not a
    /// bearer token.
    InvalidResponse,
    /// The endpoint URL cannot be used: not `https` (and not loopback
    /// without opting in), or not a valid URL.
    InvalidUrl,
    /// The server redirected; token requests do not follow redirects.
    Redirect,
    /// The server did not answer within the
    /// [request timeout](super::SourceBuilder::request_timeout) (for
    /// discovery, [its own](super::Discovery::request_timeout)).
    Timeout,
    /// Discovery found no usable `token_endpoint` in the issuer's metadata.
    Discovery,
    /// A signing key could not be read, or an assertion not signed.
    Signing,
    /// A credential another [`TokenSource`](crate::TokenSource) provides
    /// (the subject or actor token of a
    /// [`TokenExchange`](super::TokenExchange), a
    /// [client assertion](super::ClientAuth::assertion_from)) could not be
    /// had: that source's error is this error's
    /// [`source`](StdError::source).
    Credential,
}

/// An OAuth 2.0 error code (RFC 6749 §5.2, RFC 8693, RFC 7523).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`: client authentication failed.
    InvalidClient,
    /// `invalid_grant`: the refresh token, assertion or code is invalid,
    /// expired or revoked.
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `invalid_scope`
    InvalidScope,
    /// `invalid_target` (RFC 8707: a bad `resource`)
    InvalidTarget,
    /// Any other code.
    Other(String),
}

impl ErrorCode {
    pub(crate) fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "invalid_target" => Self::InvalidTarget,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The code as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::Other(other) => other,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    fn base(kind: ErrorKind) -> Inner {
        Inner {
            kind,
            status: None,
            code: None,
            description: None,
            uri: None,
            timeout: None,
            detail: None,
            endpoint: None,
            from: None,
            source: None,
        }
    }

    pub(crate) fn rejected(
        status: StatusCode,
        code: ErrorCode,
        description: Option<String>,
        uri: Option<String>,
    ) -> Self {
        Self(Box::new(Inner {
            status: Some(status),
            code: Some(code),
            description,
            uri,
            ..Self::base(ErrorKind::Rejected)
        }))
    }

    pub(crate) fn status_only(status: StatusCode) -> Self {
        Self(Box::new(Inner {
            status: Some(status),
            ..Self::base(ErrorKind::Status)
        }))
    }

    pub(crate) fn transport(source: crate::BoxError) -> Self {
        Self(Box::new(Inner {
            source: Some(Arc::from(source)),
            ..Self::base(ErrorKind::Transport)
        }))
    }

    pub(crate) fn invalid_response(detail: &'static str) -> Self {
        Self(Box::new(Inner {
            detail: Some(detail),
            ..Self::base(ErrorKind::InvalidResponse)
        }))
    }

    pub(crate) fn invalid_url(detail: &'static str) -> Self {
        Self(Box::new(Inner {
            detail: Some(detail),
            ..Self::base(ErrorKind::InvalidUrl)
        }))
    }

    pub(crate) fn redirect(status: StatusCode) -> Self {
        Self(Box::new(Inner {
            status: Some(status),
            ..Self::base(ErrorKind::Redirect)
        }))
    }

    pub(crate) fn timed_out(after: Duration) -> Self {
        Self(Box::new(Inner {
            timeout: Some(after),
            ..Self::base(ErrorKind::Timeout)
        }))
    }

    /// A discovery request that was not answered in time; `detail` names
    /// who did not answer.
    pub(crate) fn discovery_timed_out(after: Duration) -> Self {
        Self(Box::new(Inner {
            timeout: Some(after),
            detail: Some("the issuer's metadata endpoint"),
            ..Self::base(ErrorKind::Timeout)
        }))
    }

    pub(crate) fn discovery(detail: &'static str) -> Self {
        Self(Box::new(Inner {
            detail: Some(detail),
            ..Self::base(ErrorKind::Discovery)
        }))
    }

    #[cfg_attr(
        not(any(feature = "rust-crypto", feature = "aws-lc-rs")),
        allow(dead_code)
    )]
    pub(crate) fn signing(detail: &'static str) -> Self {
        Self(Box::new(Inner {
            detail: Some(detail),
            ..Self::base(ErrorKind::Signing)
        }))
    }

    /// `role` ("the subject token", …) could not be had from the source
    /// named `from`, which failed with `source`.
    pub(crate) fn credential(role: &'static str, from: &str, source: crate::BoxError) -> Self {
        Self(Box::new(Inner {
            detail: Some(role),
            from: Some(from.to_owned()),
            source: Some(Arc::from(source)),
            ..Self::base(ErrorKind::Credential)
        }))
    }

    /// Names the endpoint that was asked, `uri` without its query (which
    /// could carry something secret) or user information.
    pub(crate) fn with_endpoint(mut self, uri: &http::Uri) -> Self {
        if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
            let host = authority.as_str().rsplit('@').next().unwrap_or_default();
            self.0.endpoint = Some(format!("{scheme}://{host}{}", uri.path()));
        }
        self
    }

    /// The endpoint the request went to (without its query), when known.
    pub fn endpoint(&self) -> Option<&str> {
        self.0.endpoint.as_deref()
    }

    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.0.status = Some(status);
        self
    }

    /// Carries the server's `Retry-After` as a [`RetryAfter`] in its
    /// [`source`](StdError::source) chain, where the cache looks for it.
    pub(crate) fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        if let Some(delay) = retry_after {
            let mut asked = RetryAfter::new(delay);
            if let Some(source) = self.0.source.take() {
                asked = asked.with_shared_source(source);
            }
            self.0.source = Some(Arc::new(asked));
        }
        self
    }

    /// Carries a [`Permanent`] in its [`source`](StdError::source) chain
    /// when the server refused the client or the grant (an OAuth error or
    /// `401`/`403` with a status that is not retryable): the cache then
    /// says trying again will not help.
    pub(crate) fn marked_permanent(mut self) -> Self {
        // A DPoP nonce or proof problem (a nonce rotated under the request,
        // a clock off) is the proof's, not the client's or the grant's.
        let dpop = matches!(&self.0.code, Some(ErrorCode::Other(code))
            if code == "use_dpop_nonce" || code == "invalid_dpop_proof");
        let refused = match self.0.kind {
            ErrorKind::Rejected => !self.is_retryable() && !dpop,
            ErrorKind::Status => self
                .0
                .status
                .is_some_and(|status| matches!(status.as_u16(), 401 | 403)),
            _ => false,
        };
        if refused {
            let mut permanent = Permanent::new(
                "the authorization server refused the client or the grant: \
                 check its credentials and settings",
            );
            if let Some(source) = self.0.source.take() {
                permanent = permanent.with_shared_source(source);
            }
            self.0.source = Some(Arc::new(permanent));
        }
        self
    }

    /// What failed.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The HTTP status the server answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        self.0.status
    }

    /// The OAuth error code, when the server sent one.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.0.code.as_ref()
    }

    /// The server's `error_description`, if any.
    pub fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// The server's `error_uri`, if any.
    pub fn uri(&self) -> Option<&str> {
        self.0.uri.as_deref()
    }

    /// How long the server asked to wait before trying again
    /// (`Retry-After`), if it said. The [`TokenCache`](crate::TokenCache)
    /// honours it in its backoff: it is this error's
    /// [`source`](StdError::source), a [`RetryAfter`].
    pub fn retry_after(&self) -> Option<Duration> {
        let source = self.0.source.as_deref()?;
        RetryAfter::find(source).map(RetryAfter::delay)
    }

    /// Whether trying again later may succeed: `429 Too Many Requests`, a
    /// server error (5xx), or a transport failure. Other errors (a rejected
    /// client, an invalid grant, a malformed answer) need a change of
    /// configuration or credentials.
    pub fn is_retryable(&self) -> bool {
        match self.0.kind {
            ErrorKind::Transport | ErrorKind::Timeout => true,
            // As retryable as the other source's failure: not when it says
            // trying again will not help.
            ErrorKind::Credential => self
                .0
                .source
                .as_deref()
                .is_none_or(|source| !Permanent::is_in(source)),
            ErrorKind::Rejected | ErrorKind::Status | ErrorKind::InvalidResponse => {
                self.0.status.is_some_and(|status| {
                    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
                })
            }
            _ => false,
        }
    }

    /// Whether the server rejected the grant (`invalid_grant`): for a
    /// refresh token, it was revoked or has expired, and the user must
    /// sign in again.
    pub fn is_invalid_grant(&self) -> bool {
        self.0.code == Some(ErrorCode::InvalidGrant)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.what(f)?;
        match &self.0.endpoint {
            Some(endpoint) => write!(f, " (from {endpoint})"),
            None => Ok(()),
        }
    }
}

impl Error {
    fn what(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.kind {
            ErrorKind::Rejected => {
                let code = self.0.code.as_ref().map_or("unknown", ErrorCode::as_str);
                if self.0.code == Some(ErrorCode::InvalidGrant) {
                    write!(f, "authorization server rejected the grant (invalid_grant)")?;
                } else {
                    write!(f, "authorization server returned error `{code}`")?;
                }
                if let Some(status) = self.0.status {
                    write!(f, " with status {status}")?;
                }
                if let Some(description) = &self.0.description {
                    write!(f, ": {description}")?;
                }
                Ok(())
            }
            ErrorKind::Status => match self.0.status {
                Some(status) => write!(f, "token endpoint answered {status}"),
                None => f.write_str("token endpoint answered with an error"),
            },
            ErrorKind::Transport => f.write_str("could not reach the token endpoint"),
            ErrorKind::Timeout => {
                let who = self.0.detail.unwrap_or("token endpoint");
                match self.0.timeout {
                    Some(after) => write!(f, "{who} did not answer within {after:?}"),
                    None => write!(f, "{who} did not answer in time"),
                }
            }
            ErrorKind::InvalidResponse => {
                write!(
                    f,
                    "invalid token response: {}",
                    self.0.detail.unwrap_or("unusable")
                )
            }
            ErrorKind::InvalidUrl => {
                write!(
                    f,
                    "invalid endpoint URL: {}",
                    self.0.detail.unwrap_or("unusable")
                )
            }
            ErrorKind::Redirect => match self.0.status {
                Some(status) => write!(
                    f,
                    "token endpoint redirected ({status}); redirects are not followed"
                ),
                None => f.write_str("token endpoint redirected; redirects are not followed"),
            },
            ErrorKind::Discovery => {
                write!(
                    f,
                    "discovery failed: {}",
                    self.0.detail.unwrap_or("no token endpoint")
                )
            }
            ErrorKind::Signing => {
                write!(
                    f,
                    "could not sign the assertion: {}",
                    self.0.detail.unwrap_or("signing failed")
                )
            }
            ErrorKind::Credential => {
                let role = self.0.detail.unwrap_or("a credential");
                match &self.0.from {
                    Some(from) => write!(f, "could not get {role} from its source ({from})"),
                    None => write!(f, "could not get {role} from its source"),
                }
            }
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.0.kind);
        if let Some(status) = self.0.status {
            d.field("status", &status);
        }
        if let Some(code) = &self.0.code {
            d.field("code", code);
        }
        if let Some(description) = &self.0.description {
            d.field("description", description);
        }
        if let Some(detail) = self.0.detail {
            d.field("detail", &detail);
        }
        if let Some(endpoint) = &self.0.endpoint {
            d.field("endpoint", endpoint);
        }
        if let Some(from) = &self.0.from {
            d.field("from", from);
        }
        if let Some(source) = &self.0.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|source| &**source as &(dyn StdError + 'static))
    }
}

//! [`IdentityEndpointError`] and [`ConfigError`]: why a platform's identity
//! endpoint gave no token, and why a source could not be set up.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use http::StatusCode;

use crate::Permanent;
use crate::oauth2;

/// Why a platform's identity endpoint ([`GcpMetadata`](super::GcpMetadata),
/// [`AzureManagedIdentity`](super::AzureManagedIdentity),
/// [`GithubActionsOidc`](super::GithubActionsOidc)) gave no token.
///
/// The message names the source (`GCP metadata server gave no token`); its
/// [`source`](StdError::source) chain says what failed and where: an
/// [`oauth2::Error`] with the status, the server's OAuth error if it sent
/// one, and the endpoint (scheme, host, port and path: never the query).
/// When retrying cannot help (the endpoint refused the request: an unknown
/// identity, a rejected request token), the chain holds a [`Permanent`]
/// saying what to check; a `Retry-After` the endpoint sent is a
/// [`RetryAfter`](crate::RetryAfter) in the chain. No message ever holds a
/// token, an identity header or a request token.
///
/// ```
/// use tower_token_refresh::workload::IdentityEndpointError;
///
/// fn explain(error: &tower_token_refresh::Error) -> String {
///     use std::error::Error as _;
///     match error.source().and_then(|source| source.downcast_ref::<IdentityEndpointError>()) {
///         Some(endpoint) if endpoint.is_permanent() => {
///             format!("fix the configuration of {}: {error}", endpoint.provider())
///         }
///         _ => error.to_string(),
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct IdentityEndpointError {
    provider: &'static str,
    error: oauth2::Error,
    /// Set when retrying cannot help; its source is `error`.
    permanent: Option<Permanent>,
}

impl IdentityEndpointError {
    pub(crate) fn new(provider: &'static str, error: oauth2::Error) -> Self {
        Self {
            provider,
            error,
            permanent: None,
        }
    }

    /// Marks the failure permanent, with `what_to_check`.
    pub(crate) fn permanent(mut self, what_to_check: &'static str) -> Self {
        self.permanent = Some(Permanent::new(what_to_check).with_source(self.error.clone()));
        self
    }

    /// The source that failed: `"GCP metadata server"`,
    /// `"Azure managed identity"` or `"GitHub Actions OIDC"`.
    pub fn provider(&self) -> &str {
        self.provider
    }

    /// The HTTP status of the endpoint's last answer, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        self.error.status()
    }

    /// The endpoint asked (without its query), when known.
    pub fn endpoint(&self) -> Option<&str> {
        self.error.endpoint()
    }

    /// What went wrong talking to the endpoint.
    pub fn kind(&self) -> oauth2::ErrorKind {
        self.error.kind()
    }

    /// How long the endpoint asked to be left alone (`Retry-After`), if it
    /// said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.error.retry_after()
    }

    /// Whether retrying cannot help without a change of configuration (the
    /// endpoint refused the request); the cache then reports the failure as
    /// not [retryable](crate::Error::is_retryable).
    pub fn is_permanent(&self) -> bool {
        self.permanent.is_some()
    }
}

impl fmt::Display for IdentityEndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} gave no token", self.provider)
    }
}

impl StdError for IdentityEndpointError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.permanent {
            Some(permanent) => Some(permanent),
            None => Some(&self.error),
        }
    }
}

/// Why a workload identity source could not be set up: an environment
/// variable that is missing or unusable (named, its value never shown), or
/// a setting that is not usable.
///
/// ```
/// use tower_token_refresh::workload::GcpMetadata;
///
/// let error = GcpMetadata::new().host("metadata.example.com").unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "GCP metadata server: the host is not usable: invalid endpoint URL: plain http is \
///      refused except to loopback, link-local and metadata server addresses; use https"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct ConfigError {
    provider: &'static str,
    variable: Option<&'static str>,
    setting: &'static str,
    problem: Problem,
}

#[derive(Debug, Clone)]
enum Problem {
    /// Not set; what to check.
    Missing(&'static str),
    /// Set, but not usable: why (never the value).
    Invalid(Cow<'static, str>),
}

impl ConfigError {
    /// Environment variable `variable` is not set (or empty).
    pub(crate) fn missing(
        provider: &'static str,
        variable: &'static str,
        what_to_check: &'static str,
    ) -> Self {
        Self {
            provider,
            variable: Some(variable),
            setting: variable,
            problem: Problem::Missing(what_to_check),
        }
    }

    /// `setting` (a builder's argument) is not usable, because `why`.
    pub(crate) fn invalid(
        provider: &'static str,
        setting: &'static str,
        why: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            provider,
            variable: None,
            setting,
            problem: Problem::Invalid(why.into()),
        }
    }

    /// The same problem, with the value read from `variable`.
    pub(crate) fn in_variable(mut self, variable: &'static str) -> Self {
        self.variable = Some(variable);
        self
    }

    /// The setting at fault (`"request URL"`, `"identity header"`, …).
    pub(crate) fn setting(&self) -> &'static str {
        self.setting
    }

    /// The source being set up: `"GCP metadata server"`,
    /// `"Azure managed identity"`, `"GitHub Actions OIDC"` or
    /// `"Microsoft Entra workload identity"`.
    pub fn provider(&self) -> &str {
        self.provider
    }

    /// The environment variable at fault, if the setting came from one.
    pub fn variable(&self) -> Option<&str> {
        self.variable
    }

    /// Whether the variable is not set (rather than set to something
    /// unusable).
    pub fn is_missing(&self) -> bool {
        matches!(self.problem, Problem::Missing(_))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let provider = self.provider;
        match (&self.problem, self.variable) {
            (Problem::Missing(check), Some(variable)) => {
                write!(f, "{provider}: {variable} is not set; {check}")
            }
            (Problem::Missing(_), None) => write!(f, "{provider}: {} is not set", self.setting),
            (Problem::Invalid(why), Some(variable)) => {
                write!(f, "{provider}: {variable} is not usable: {why}")
            }
            (Problem::Invalid(why), None) => {
                write!(f, "{provider}: the {} is not usable: {why}", self.setting)
            }
        }
    }
}

impl StdError for ConfigError {}

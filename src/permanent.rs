//! [`Permanent`]: a token source's word that trying again will not help.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::BoxError;

/// An error that says a token source's failure is permanent: trying again
/// cannot succeed without a change of credentials or configuration (a wrong
/// client secret, a revoked grant, an unknown client).
///
/// The cache looks for it anywhere in the [`source`](StdError::source)
/// chain of a failed fetch's error, as it does for
/// [`RetryAfter`](crate::RetryAfter): a source can return it as is, wrap
/// another error in it ([`with_source`](Self::with_source)), or return an
/// error of its own whose `source()` leads to it. The cache's
/// [`Error::is_retryable`](crate::Error::is_retryable) is then `false`, and
/// a gRPC caller gets `UNAUTHENTICATED` instead of `UNAVAILABLE` (which
/// tells clients to retry). The backoff stays as it is: the source is
/// still called again after it, in case the credentials were fixed. The
/// crate's [OAuth 2.0 errors](crate::oauth2::Error) carry one when the
/// server refused the client or the grant (`invalid_client`,
/// `invalid_grant`, `unauthorized_client`, … with a `4xx` status).
///
/// ```
/// use tower_token_refresh::{BoxError, Permanent, Token, TokenCache};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = TokenCache::new(|| async {
///     // Say the key store answered that the API key was revoked:
///     Err::<Token, BoxError>(Permanent::new("API key revoked").into())
/// });
/// let error = cache.token().await.unwrap_err();
/// assert!(!error.is_retryable());
/// assert!(error.to_string().contains("API key revoked"));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Permanent {
    message: Cow<'static, str>,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl Permanent {
    /// A permanent failure, described by `message` (shown in errors and
    /// logs: never put a secret in it).
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// The error that made the failure permanent, shown as its
    /// [`source`](StdError::source).
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(Arc::from(source.into()));
        self
    }

    /// The same, for an error that is already shared.
    #[cfg_attr(not(feature = "oauth2"), allow(dead_code))]
    pub(crate) fn with_shared_source(mut self, source: Arc<dyn StdError + Send + Sync>) -> Self {
        self.source = Some(source);
        self
    }

    /// Whether `error`'s chain (`error` included) holds a `Permanent`.
    pub(crate) fn is_in(error: &(dyn StdError + 'static)) -> bool {
        crate::error::find_in_chain::<Self>(error).is_some()
    }
}

impl fmt::Display for Permanent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Permanent {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(Permanent);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer")
        }
    }

    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn found_anywhere_in_the_chain() {
        let outer = Outer(Permanent::new("revoked").with_source(std::io::Error::other("401")));
        assert!(Permanent::is_in(&outer));
        assert_eq!(outer.0.source().unwrap().to_string(), "401");
        assert!(!Permanent::is_in(&std::io::Error::other("down")));
    }
}

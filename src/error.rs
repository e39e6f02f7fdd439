//! The crate's error type.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Alias for a type-erased error type, as used by [`tower`](https://docs.rs/tower).
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// What went wrong while getting a token.
///
/// Returned by [`TokenCache::token`](crate::TokenCache::token) and
/// [`Token::from_jwt`](crate::Token::from_jwt), and by
/// [`TokenRefresh`](crate::TokenRefresh) as a [`BoxError`] that can be
/// recovered with `downcast_ref::<Error>()`. Errors of the inner service pass
/// through [`TokenRefresh`](crate::TokenRefresh) unchanged, so a `BoxError`
/// that does not downcast to this type came from the inner service.
///
/// One refresh failure is shared by every caller that waited for that refresh:
/// cloning an `Error` is cheap (the underlying source error is behind an
/// [`Arc`]).
///
/// The message never contains the token or any other secret: the token
/// source's own error is available through [`std::error::Error::source`] and
/// is the source's responsibility.
///
/// # Example
///
/// ```
/// use tower_token_refresh::{Error, ErrorKind, Token};
///
/// let err: Error = Token::from_jwt("not a jwt").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidJwt);
/// assert_eq!(err.to_string(), "token is not a valid JWT: expected three dot-separated parts");
/// ```
#[derive(Clone)]
pub struct Error {
    kind: Kind,
    source: Option<Arc<dyn StdError + Send + Sync>>,
    /// The name of the cache that failed.
    cache: Option<Arc<str>>,
}

/// The category of an [`Error`], for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The [`TokenSource`](crate::TokenSource) returned an error; it is
    /// available as the error's [`source`](std::error::Error::source).
    Source,
    /// The token source did not answer within the
    /// [fetch timeout](crate::TokenCacheBuilder::fetch_timeout).
    Timeout,
    /// The refresh ended without a result: the token source panicked, or the
    /// runtime that ran the refresh shut down.
    RefreshAborted,
    /// A refresh was needed but there is no Tokio runtime to run it on.
    NoRuntime,
    /// The token cannot be sent in an `Authorization` header (it contains
    /// characters that HTTP header values cannot carry).
    InvalidToken,
    /// The token source returned a token that had already expired.
    ExpiredToken,
    /// [`Token::from_jwt`](crate::Token::from_jwt) was given something that
    /// is not a JWT with readable claims.
    InvalidJwt,
    /// The server rejected a token right after it replaced a rejected one:
    /// the credentials are likely wrong. The source is not called again
    /// before the [backoff](crate::TokenCacheBuilder::backoff) delay.
    RejectedAgain,
    /// The token is [bound to a key](crate::SenderConstraint) and no proof
    /// could be made for the request (its URI is not absolute, or signing
    /// failed); the request was not sent. The cause is the error's
    /// [`source`](std::error::Error::source).
    Proof,
}

#[derive(Clone, Debug)]
enum Kind {
    Source,
    Timeout(Duration),
    RefreshAborted { panicked: bool },
    NoRuntime,
    InvalidToken,
    ExpiredToken,
    InvalidJwt(&'static str),
    RejectedAgain,
    Proof,
}

impl Error {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            source: None,
            cache: None,
        }
    }

    pub(crate) fn source_failed(source: impl Into<crate::BoxError>) -> Self {
        let source: crate::BoxError = source.into();
        Self {
            kind: Kind::Source,
            source: Some(Arc::from(source)),
            cache: None,
        }
    }

    /// The same error, naming the cache it came from.
    pub(crate) fn in_cache(mut self, name: &Arc<str>) -> Self {
        self.cache = Some(Arc::clone(name));
        self
    }

    pub(crate) fn timeout(after: Duration) -> Self {
        Self::new(Kind::Timeout(after))
    }

    pub(crate) fn refresh_aborted(panicked: bool) -> Self {
        Self::new(Kind::RefreshAborted { panicked })
    }

    pub(crate) fn no_runtime() -> Self {
        Self::new(Kind::NoRuntime)
    }

    pub(crate) fn invalid_token() -> Self {
        Self::new(Kind::InvalidToken)
    }

    pub(crate) fn expired_token() -> Self {
        Self::new(Kind::ExpiredToken)
    }

    pub(crate) fn invalid_jwt(reason: &'static str) -> Self {
        Self::new(Kind::InvalidJwt(reason))
    }

    pub(crate) fn rejected_again() -> Self {
        Self::new(Kind::RejectedAgain)
    }

    pub(crate) fn proof(source: impl Into<crate::BoxError>) -> Self {
        let source: crate::BoxError = source.into();
        Self {
            kind: Kind::Proof,
            source: Some(Arc::from(source)),
            cache: None,
        }
    }

    /// The [name](crate::TokenCacheBuilder::name) of the cache that could
    /// not get a token (with [`TokenRoutes`](crate::TokenRoutes): which
    /// API), when a cache given a name returned this error. The message
    /// starts with it too: `token cache "billing": token source failed: …`.
    pub fn cache(&self) -> Option<&str> {
        self.cache.as_deref()
    }

    /// Whether trying again later may succeed: the identity provider was
    /// down, slow or busy, or the refresh was cut short. `false` when the
    /// source said its failure is [`Permanent`](crate::Permanent) (wrong
    /// credentials, a revoked grant: the crate's OAuth 2.0 sources say so
    /// for `invalid_client`, `invalid_grant`, `unauthorized_client`, …),
    /// when fresh tokens keep being rejected, when the token cannot be sent
    /// in a header or is not a JWT, and without a runtime.
    ///
    /// ```
    /// use tower_token_refresh::{BoxError, Permanent, Token, TokenCache};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let down = TokenCache::new(|| async { Err::<Token, BoxError>("connection refused".into()) });
    /// assert!(down.token().await.unwrap_err().is_retryable());
    ///
    /// let refused = TokenCache::new(|| async {
    ///     Err::<Token, BoxError>(Permanent::new("invalid_client").into())
    /// });
    /// assert!(!refused.token().await.unwrap_err().is_retryable());
    /// # }
    /// ```
    pub fn is_retryable(&self) -> bool {
        match &self.kind {
            Kind::Source => !self
                .source
                .as_deref()
                .is_some_and(|source| crate::Permanent::is_in(source)),
            // An expired token may come of a clock step on either side:
            // the next one may be good.
            Kind::Timeout(_) | Kind::RefreshAborted { .. } | Kind::ExpiredToken => true,
            Kind::NoRuntime
            | Kind::InvalidToken
            | Kind::InvalidJwt(_)
            | Kind::RejectedAgain
            | Kind::Proof => false,
        }
    }

    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self.kind {
            Kind::Source => ErrorKind::Source,
            Kind::Timeout(_) => ErrorKind::Timeout,
            Kind::RefreshAborted { .. } => ErrorKind::RefreshAborted,
            Kind::NoRuntime => ErrorKind::NoRuntime,
            Kind::InvalidToken => ErrorKind::InvalidToken,
            Kind::ExpiredToken => ErrorKind::ExpiredToken,
            Kind::InvalidJwt(_) => ErrorKind::InvalidJwt,
            Kind::RejectedAgain => ErrorKind::RejectedAgain,
            Kind::Proof => ErrorKind::Proof,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(cache) = &self.cache {
            write!(f, "token cache \"{cache}\": ")?;
        }
        match &self.kind {
            Kind::Source => {
                f.write_str("token source failed")?;
                // What the source said, down to the innermost cause: a
                // source's errors carry no secrets.
                let mut last = String::new();
                let mut cause = self
                    .source
                    .as_deref()
                    .map(|source| source as &(dyn StdError + 'static));
                while let Some(error) = cause {
                    let text = error.to_string();
                    if !text.is_empty() && text != last {
                        write!(f, ": {text}")?;
                        last = text;
                    }
                    cause = error.source();
                }
                Ok(())
            }
            Kind::Timeout(after) => write!(f, "token source did not answer within {after:?}"),
            Kind::RefreshAborted { panicked: true } => {
                f.write_str("token refresh ended without a result: the token source panicked")
            }
            Kind::RefreshAborted { panicked: false } => f.write_str(
                "token refresh ended without a result: the runtime running it shut down",
            ),
            Kind::NoRuntime => {
                f.write_str("a token refresh is needed but no tokio runtime is running")
            }
            Kind::InvalidToken => {
                f.write_str("token contains characters that cannot be sent in an HTTP header")
            }
            Kind::ExpiredToken => {
                f.write_str("token source returned a token that has already expired")
            }
            Kind::InvalidJwt(reason) => write!(f, "token is not a valid JWT: {reason}"),
            Kind::RejectedAgain => f.write_str(
                "the server rejected a freshly fetched token too; backing off before fetching another",
            ),
            Kind::Proof => {
                f.write_str("no proof could be made for the request's key-bound token")?;
                if let Some(source) = &self.source {
                    write!(f, ": {source}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind);
        if let Some(cache) = &self.cache {
            d.field("cache", cache);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_ref()
            .map(|source| &**source as &(dyn StdError + 'static))
    }
}

/// The first `T` in `error`'s [`source`](StdError::source) chain (`error`
/// included): how the cache finds what a source's error says of itself
/// ([`RetryAfter`](crate::RetryAfter), [`Permanent`](crate::Permanent)).
pub(crate) fn find_in_chain<'a, T: StdError + 'static>(
    mut error: &'a (dyn StdError + 'static),
) -> Option<&'a T> {
    loop {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        error = error.source()?;
    }
}

/// A gRPC status for a call that could not get a token: `UNAVAILABLE`
/// (retryable: the identity provider may be back soon) when the error
/// [is retryable](Error::is_retryable), else `UNAUTHENTICATED` (wrong
/// credentials, a revoked grant, fresh tokens rejected again: retrying
/// cannot help). The message names the cache and the innermost cause; the
/// [`Error`] is the status's [`source`](std::error::Error::source).
///
/// [`TokenRefresh`](crate::TokenRefresh) fails gRPC requests with this
/// status, so tonic clients get it as is.
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let code = if error.is_retryable() {
            tonic::Code::Unavailable
        } else {
            tonic::Code::Unauthenticated
        };
        let mut status =
            tonic::Status::new(code, format!("could not get an access token: {error}"));
        status.set_source(Arc::new(error));
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_cache_and_every_cause() {
        let cause = crate::Permanent::new("invalid_client (401)")
            .with_source(std::io::Error::other("from https://idp.example/token"));
        let err = Error::source_failed(cause).in_cache(&Arc::from("billing"));
        assert_eq!(
            err.to_string(),
            "token cache \"billing\": token source failed: invalid_client (401): \
             from https://idp.example/token"
        );
        assert_eq!(err.cache(), Some("billing"));
        assert!(!err.is_retryable());
        assert!(Error::timeout(Duration::from_secs(1)).is_retryable());
        assert!(Error::source_failed("down").is_retryable());
        assert!(!Error::rejected_again().is_retryable());
    }

    #[test]
    fn source_error_is_reachable_and_shared() {
        let err = Error::source_failed("identity provider is down");
        assert_eq!(err.kind(), ErrorKind::Source);
        assert_eq!(
            err.to_string(),
            "token source failed: identity provider is down"
        );
        assert_eq!(
            err.source().map(ToString::to_string).as_deref(),
            Some("identity provider is down")
        );
        let clone = err.clone();
        let (a, b) = (err.source().unwrap(), clone.source().unwrap());
        assert!(std::ptr::addr_eq(a, b), "clones share one source error");
    }

    #[test]
    fn error_is_send_sync_and_downcastable_from_box_error() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
        let boxed: BoxError = Box::new(Error::timeout(Duration::from_secs(3)));
        let err = boxed.downcast_ref::<Error>().expect("our error");
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(err.to_string(), "token source did not answer within 3s");
    }
}

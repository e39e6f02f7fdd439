//! [`RetryAfter`]: a token source's request to be left alone for a while.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::BoxError;

/// An error that asks the [`TokenCache`](crate::TokenCache) not to call its
/// source again for `delay`: an identity provider's `Retry-After`, or any
/// reason a source has to be left alone.
///
/// The cache looks for it anywhere in the [`source`](StdError::source) chain
/// of a failed fetch's error, so a source can return it as is, wrap another
/// error in it ([`with_source`](Self::with_source)), or return an error of
/// its own whose `source()` leads to it. The cache's backoff then lasts at
/// least `delay` (at most 10 minutes: a longer request is taken as 10
/// minutes, so a wrong value cannot stop the source for good). The crate's
/// [OAuth 2.0 errors](crate::oauth2::Error) carry one when the server sent
/// `Retry-After`.
///
/// ```
/// use std::time::Duration;
/// use tower_token_refresh::{BoxError, RetryAfter, Token, TokenCache};
///
/// let cache = TokenCache::new(|| async {
///     // Say the identity provider answered `429` with `Retry-After: 30`:
///     let busy = std::io::Error::other("identity provider is rate limiting");
///     Err::<Token, BoxError>(RetryAfter::new(Duration::from_secs(30)).with_source(busy).into())
/// });
/// ```
#[derive(Debug, Clone)]
pub struct RetryAfter {
    delay: Duration,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl RetryAfter {
    /// Asks the cache to wait `delay` before calling the source again.
    pub fn new(delay: Duration) -> Self {
        Self {
            delay,
            source: None,
        }
    }

    /// The error that made the source ask for it, shown as its
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

    /// How long the source asked to be left alone.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The first `RetryAfter` in `error`'s chain (`error` included).
    pub(crate) fn find<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a Self> {
        crate::error::find_in_chain(error)
    }
}

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "asked to be called again after {:?}", self.delay)
    }
}

impl StdError for RetryAfter {
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
    struct Outer(RetryAfter);

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
        let inner = std::io::Error::other("rate limited");
        let outer = Outer(RetryAfter::new(Duration::from_secs(7)).with_source(inner));
        let found = RetryAfter::find(&outer).unwrap();
        assert_eq!(found.delay(), Duration::from_secs(7));
        assert_eq!(found.source().unwrap().to_string(), "rate limited");
        assert!(RetryAfter::find(&std::io::Error::other("no delay")).is_none());
    }
}

//! [`TokenSource`]: where fresh tokens come from.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{BoxError, Token};

/// The future returned by [`TokenSource::fetch`].
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<Token, BoxError>> + Send + 'static>>;

/// Fetches a fresh token.
///
/// A [`TokenCache`](crate::TokenCache) calls its source only when it needs a
/// new token, at most one call at a time, on a task of its own: the call
/// survives the cancellation of the request that caused it, and is bounded by
/// the cache's [fetch timeout](crate::TokenCacheBuilder::fetch_timeout).
///
/// Every closure `Fn() -> impl Future<Output = Result<Token, E>>` whose error
/// converts into [`BoxError`] is a source. The trait is object safe:
/// `Arc<dyn TokenSource>` is a source too.
///
/// The error a source returns is kept as the [`source`](std::error::Error::source)
/// of the cache's [`Error`](crate::Error) and may be logged by users: it must
/// not contain secrets.
///
/// # Example
///
/// A closure:
///
/// ```
/// use std::time::Duration;
/// use tower_token_refresh::{BoxError, Token, TokenCache};
///
/// let cache = TokenCache::new(|| async {
///     // Call your identity provider here.
///     Ok::<_, BoxError>(Token::bearer("abc").expires_in(Duration::from_secs(3600)))
/// });
/// ```
///
/// A type of your own:
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tower_token_refresh::{Token, TokenFuture, TokenSource};
///
/// struct FromEnvironment {
///     variable: String,
/// }
///
/// impl TokenSource for FromEnvironment {
///     fn fetch(&self) -> TokenFuture {
///         let variable = self.variable.clone();
///         Box::pin(async move {
///             let value = std::env::var(&variable)
///                 .map_err(|_| format!("environment variable {variable} is not set"))?;
///             Ok(Token::bearer(value).expires_in(Duration::from_secs(60)))
///         })
///     }
/// }
///
/// let source: Arc<dyn TokenSource> = Arc::new(FromEnvironment { variable: "API_TOKEN".into() });
/// let cache = tower_token_refresh::TokenCache::new(source);
/// ```
pub trait TokenSource: Send + Sync + 'static {
    /// Starts fetching a fresh token.
    ///
    /// The returned future owns everything it needs (`'static`): clone what
    /// you need from `self` before the `async` block.
    fn fetch(&self) -> TokenFuture;

    /// A short, non-secret name for this source, shown in `tracing` spans
    /// and, with the `metrics` feature, as the `cache` label of metrics (the
    /// cache's own [`name`](crate::TokenCacheBuilder::name) wins).
    fn name(&self) -> &str {
        "token source"
    }

    /// What identifies the credential this source turns into tokens (never
    /// a secret): for the OAuth 2.0 sources the grant, token URL, client id,
    /// scopes, audience and resource. A [store](crate::store) records it with
    /// each token, so that a cache never takes a token another source made
    /// (two caches given one store location by mistake). `None` (the
    /// default, and closures): the cache's
    /// [name](crate::TokenCacheBuilder::name) stands in for it.
    fn fingerprint(&self) -> Option<String> {
        None
    }
}

impl<F, Fut, E> TokenSource for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Token, E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn fetch(&self) -> TokenFuture {
        let future = self();
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

impl<S: TokenSource + ?Sized> TokenSource for Arc<S> {
    fn fetch(&self) -> TokenFuture {
        (**self).fetch()
    }

    fn name(&self) -> &str {
        (**self).name()
    }

    fn fingerprint(&self) -> Option<String> {
        (**self).fingerprint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The trait must stay object safe.
    const _: fn(&dyn TokenSource) = |_| {};

    #[tokio::test]
    async fn closures_and_trait_objects_are_sources() {
        #[derive(Debug)]
        struct Failure;
        impl std::fmt::Display for Failure {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("no token today")
            }
        }
        impl std::error::Error for Failure {}

        let ok: Arc<dyn TokenSource> = Arc::new(|| async { Ok::<_, Failure>(Token::bearer("t")) });
        assert_eq!(ok.fetch().await.unwrap().secret(), "t");

        let failing = || async { Err::<Token, _>(Failure) };
        let err = TokenSource::fetch(&failing).await.unwrap_err();
        assert!(err.downcast_ref::<Failure>().is_some());
    }
}

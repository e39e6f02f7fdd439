//! [`TokenRefreshLayer`].

use tower_layer::Layer;

use super::TokenRefresh;
use crate::TokenCache;

/// A [`Layer`] that wraps services in [`TokenRefresh`], sending each request
/// with the token of a shared [`TokenCache`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use http::{Request, Response, header::AUTHORIZATION};
/// use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};
/// use tower_token_refresh::{Token, TokenCache, TokenRefreshLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let cache = TokenCache::new(|| async {
///     Ok::<_, BoxError>(Token::bearer("abc").expires_in(Duration::from_secs(3600)))
/// });
///
/// let client = ServiceBuilder::new()
///     .layer(TokenRefreshLayer::new(cache))
///     .service(service_fn(|request: Request<String>| async move {
///         // Stands in for an HTTP client; echoes the header it was sent.
///         let sent = request.headers()[AUTHORIZATION].to_str()?.to_owned();
///         Ok::<_, BoxError>(Response::new(sent))
///     }));
///
/// let response = client.oneshot(Request::new(String::new())).await?;
/// assert_eq!(response.body(), "Bearer abc");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TokenRefreshLayer {
    cache: TokenCache,
}

impl TokenRefreshLayer {
    /// A layer that authorizes requests with the tokens of `cache`.
    pub fn new(cache: TokenCache) -> Self {
        Self { cache }
    }
}

impl<S> Layer<S> for TokenRefreshLayer {
    type Service = TokenRefresh<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenRefresh::new(inner, self.cache.clone())
    }
}

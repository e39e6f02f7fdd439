//! [`TokenRefresh`]: the service.

use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower_service::Service;

use super::{ResponseFuture, TokenRefreshLayer};
use crate::{BoxError, TokenCache};

/// Sends each request with `Authorization: Bearer <token>` from a shared
/// [`TokenCache`], replacing any `Authorization` header it had.
///
/// While the token is fresh the header is added with no lock, no clock read,
/// no allocation and no boxing, and the request goes straight to the inner
/// service. When it is missing or expired, the request waits for the one
/// refresh that all concurrent requests share; inside the refresh window it
/// goes out with the current token while a background refresh runs.
///
/// Errors are returned as [`BoxError`]: the inner service's errors unchanged,
/// and when no token could be had, a [`crate::Error`] (use
/// `downcast_ref::<tower_token_refresh::Error>()`); the inner service is then
/// not called.
///
/// # Clone
///
/// The inner service must be `Clone`. When a request has to wait for a token,
/// the service that was made ready by `poll_ready` moves into the response
/// future and a clone takes its place, as the [tower documentation
/// recommends](https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services):
/// so a [`Buffer`](https://docs.rs/tower/latest/tower/buffer/struct.Buffer.html)
/// (such as tonic's `Channel`) never sees `call` without `poll_ready`.
/// This happens only on that slow path.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use http::{Request, Response};
/// use tower::{BoxError, ServiceExt, service_fn};
/// use tower_token_refresh::{Token, TokenCache, TokenRefresh};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let cache = TokenCache::new(|| async {
///     Ok::<_, BoxError>(Token::bearer("abc").expires_in(Duration::from_secs(60)))
/// });
/// let inner = service_fn(|request: Request<()>| async move {
///     Ok::<_, BoxError>(Response::new(request.headers().contains_key("authorization")))
/// });
/// let response = TokenRefresh::new(inner, cache).oneshot(Request::new(())).await?;
/// assert!(*response.body());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TokenRefresh<S> {
    inner: S,
    cache: TokenCache,
}

impl<S> TokenRefresh<S> {
    /// Wraps `inner` to send its requests with the tokens of `cache`.
    pub fn new(inner: S, cache: TokenCache) -> Self {
        Self { inner, cache }
    }

    /// A [`TokenRefreshLayer`] with the tokens of `cache`.
    pub fn layer(cache: TokenCache) -> TokenRefreshLayer {
        TokenRefreshLayer::new(cache)
    }

    /// The token cache.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// A reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// A mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B, R> Service<Request<B>> for TokenRefresh<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = Response<R>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if let Some(credential) = self.cache.fresh_credential() {
            request
                .headers_mut()
                .insert(AUTHORIZATION, credential.header);
            return ResponseFuture::called(self.inner.call(request));
        }
        // Slow path: wait for a token with the service that is ready.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::waiting(self.cache.clone().credential(), ready, request)
    }
}

//! [`TokenRefresh`]: the service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::front::Front;
use super::future::{RETRY_OFF, send};
use super::settings::Ticket;
use super::shards::{Shards, slot};
use super::{ResponseBody, ResponseFuture, TokenRefreshLayer};
use crate::{BoxError, ClassifyRejection, ReplayableBody, StandardRejection, TokenCache};

/// Sends each request with `Authorization: Bearer <token>` from a shared
/// [`TokenCache`], replacing any `Authorization` header it had (unless
/// [`keep_existing_authorization`](TokenRefreshLayer::keep_existing_authorization)),
/// and replaces
/// a token the server rejects (see [`TokenRefreshLayer`] for how rejections
/// are detected and retried).
///
/// While the token is fresh the header is added with no lock and no clock
/// read, and the request goes straight to the inner service. When it is
/// missing or expired, the request waits for the one refresh that all
/// concurrent requests share; inside the refresh window it goes out with the
/// current token while a background refresh runs.
///
/// Errors are returned as [`BoxError`]: the inner service's errors unchanged,
/// and when no token could be had, a [`crate::Error`] (use
/// `downcast_ref::<tower_token_refresh::Error>()`); the inner service is then
/// not called. Responses come back with their body in a [`ResponseBody`],
/// which passes everything through.
///
/// # Clone
///
/// The inner service must be `Clone`. When a request has to wait for a token,
/// the service that was made ready by `poll_ready` moves into the response
/// future and a clone takes its place, as the [tower documentation
/// recommends](https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services):
/// so a [`Buffer`](https://docs.rs/tower/latest/tower/buffer/struct.Buffer.html)
/// (such as tonic's `Channel`) never sees `call` without `poll_ready`. A
/// request that may be retried keeps a clone too, and makes it ready before
/// the second attempt.
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
/// let inner = service_fn(|request: Request<String>| async move {
///     Ok::<_, BoxError>(Response::new(request.headers().contains_key("authorization")))
/// });
/// let response = TokenRefresh::new(inner, cache).oneshot(Request::new(String::new())).await?;
/// assert!(response.body().get_ref());
/// # Ok(())
/// # }
/// ```
pub struct TokenRefresh<S, C = StandardRejection> {
    inner: S,
    settings: Arc<Shards<C>>,
    front: Front,
}

impl<S> TokenRefresh<S> {
    /// Wraps `inner` with the default settings of [`TokenRefreshLayer::new`].
    pub fn new(inner: S, cache: TokenCache) -> Self {
        TokenRefreshLayer::new(cache).layer(inner)
    }

    /// A [`TokenRefreshLayer`] with the tokens of `cache`.
    pub fn layer(cache: TokenCache) -> TokenRefreshLayer {
        TokenRefreshLayer::new(cache)
    }
}

impl<S, C> TokenRefresh<S, C> {
    pub(super) fn from_settings(inner: S, settings: Arc<Shards<C>>) -> Self {
        Self {
            inner,
            settings,
            front: Front::default(),
        }
    }

    /// The token cache, if every request uses the same one.
    pub fn cache(&self) -> Option<&TokenCache> {
        self.settings.any().routes.single()
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

impl<S: Clone, C> Clone for TokenRefresh<S, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            settings: Arc::clone(&self.settings),
            front: Front::default(),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for TokenRefresh<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRefresh")
            .field("inner", &self.inner)
            .field("settings", &self.settings)
            .finish()
    }
}

impl<S, B, R, C> Service<Request<B>> for TokenRefresh<S, C>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayableBody,
    C: ClassifyRejection,
{
    type Response = Response<ResponseBody<R>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // From this thread's copy: requests on different threads do not
        // write to one shared reference count.
        let slot = slot();
        let settings = Arc::clone(self.settings.copy(slot));
        #[cfg(feature = "oauth2")]
        let token_request = request
            .extensions()
            .get::<crate::oauth2::TokenEndpointRequest>()
            .is_some();
        #[cfg(not(feature = "oauth2"))]
        let token_request = false;
        let keep = settings.keep_existing && request.headers().contains_key(AUTHORIZATION);
        let route = if token_request || keep {
            // A token request must not carry a bearer token, nor be retried;
            // with `keep_existing_authorization`, neither does a request that
            // has its own credentials.
            None
        } else {
            settings.routes.select(request.uri())
        };
        let Some((route, cache)) = route else {
            let future = self.inner.call(request);
            return ResponseFuture::passthrough(future, settings);
        };
        if let Some(credential) = self.front.credential(slot, route, cache) {
            let ticket = Ticket {
                route,
                generation: credential.generation,
            };
            if settings.replay_limit.is_none() {
                // The hot path: the header goes into the request where it
                // is, and the request moves once, to the inner service.
                request
                    .headers_mut()
                    .insert(AUTHORIZATION, credential.header);
                let future = self.inner.call(request);
                return ResponseFuture::called(future, ticket, Err(RETRY_OFF), settings);
            }
            let (future, second) = send(&mut self.inner, request, credential, &settings);
            return ResponseFuture::called(future, ticket, second, settings);
        }
        // Slow path: wait for a token with the service that is ready.
        let credential = cache.clone().credential();
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::waiting(credential, route, ready, request, settings)
    }
}

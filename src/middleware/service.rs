//! [`TokenRefresh`]: the service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::attempt::{Attempt, CredentialFuture};
use super::second_attempt::SecondAttempt;
use super::settings::Settings;
use super::ticket::Ticket;
use super::{
    NoRetry, ResponseBody, ResponseFuture, RetryRejected, RetryResponseFuture, TokenRefreshLayer,
};
use crate::{BoxError, ClassifyRejection, NoToken, PrepareReplay, StandardRejection, TokenCache};

/// Sends each request with `Authorization: Bearer <token>` from a shared
/// [`TokenCache`], replacing any `Authorization` header it had (unless
/// [`keep_existing_authorization`](TokenRefreshLayer::keep_existing_authorization)),
/// and replaces
/// a token the server rejects (see [`TokenRefreshLayer`] for how rejections
/// are detected and retried).
///
/// **The inner service must be [`Clone`].** tonic's `Channel` and
/// hyper-util's `Client` are. Wrap one that is not in a
/// [`tower::buffer::Buffer`](https://docs.rs/tower/latest/tower/buffer/struct.Buffer.html),
/// which is `Clone` whatever it wraps (tower's `buffer` feature; built inside
/// a Tokio runtime):
/// `ServiceBuilder::new().layer(TokenRefreshLayer::new(cache)).buffer(1024).service(inner)`.
/// Without `Clone`, `TokenRefresh<S>` does not implement `Service`, and the
/// compiler says only that (error E0599 on `oneshot` or `ready`: "its trait
/// bounds were not satisfied"), without naming `Clone`. [Clone](#clone) below
/// says why it is needed.
///
/// While the token is fresh the header is added with no lock and no clock
/// read, and the request goes straight to the inner service. When it is
/// missing or expired, the request waits for the one refresh that all
/// concurrent requests share; inside the refresh window it goes out with the
/// current token while a background refresh runs.
///
/// Any request body type works, unless the layer retries rejected requests
/// ([`RetryRejected`]): then the body must be one the layer can send again
/// ([`PrepareReplay`]).
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
pub struct TokenRefresh<S, C = StandardRejection, R = NoRetry> {
    inner: S,
    settings: Arc<Settings<C>>,
    retry: R,
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

/// What `call` does with a request.
enum Decision {
    /// Not ours to authorize: send it as it is.
    Pass,
    /// It has the token of `Ticket` (a fresh one): send it.
    Authorized(Ticket),
    /// Wait for a credential of route `usize` first.
    Wait(CredentialFuture, usize),
}

impl<S, C, R> TokenRefresh<S, C, R> {
    pub(super) fn from_parts(inner: S, settings: Arc<Settings<C>>, retry: R) -> Self {
        Self {
            inner,
            settings,
            retry,
        }
    }

    /// The token cache, if every request uses the same one.
    pub fn cache(&self) -> Option<&TokenCache> {
        self.settings.routes.single()
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

    /// The settings the request's future takes, and what to do with
    /// `request`, to which a fresh token is added here (where it is: the
    /// request moves only once, to the inner service).
    #[inline]
    fn decide<B>(&self, request: &mut Request<B>) -> (Arc<Settings<C>>, Decision) {
        let settings = Arc::clone(&self.settings);
        let not_ours = request.extensions().get::<NoToken>().is_some()
            || (settings.keep_existing && request.headers().contains_key(AUTHORIZATION));
        let route = if not_ours {
            None
        } else {
            settings.routes.select(request.uri())
        };
        let decision = match route {
            None => Decision::Pass,
            Some((route, cache)) => match cache.fresh_credential() {
                // Only bearer tokens are fresh here: a bound one waits for
                // its constraint (and a proof) on the slow path.
                Some(credential) => {
                    Decision::Authorized(Ticket::bearer(request.headers_mut(), credential, route))
                }
                None => Decision::Wait(Box::pin(cache.clone().credential()), route),
            },
        };
        (settings, decision)
    }

    /// The attempt that carries out `decision` for `request`.
    #[inline]
    fn attempt<B>(&mut self, decision: Decision, request: Request<B>) -> Attempt<S, B>
    where
        S: Service<Request<B>> + Clone,
    {
        match decision {
            Decision::Authorized(ticket) => Attempt::Sent {
                future: self.inner.call(request),
                ticket,
            },
            Decision::Pass => Attempt::Passthrough {
                future: self.inner.call(request),
            },
            // The service made ready by `poll_ready` waits with the
            // request, and a clone takes its place (see `# Clone` above).
            Decision::Wait(credential, route) => {
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                Attempt::wait(credential, route, ready, request)
            }
        }
    }
}

impl<S: Clone, C, R: Clone> Clone for TokenRefresh<S, C, R> {
    fn clone(&self) -> Self {
        Self::from_parts(
            self.inner.clone(),
            Arc::clone(&self.settings),
            self.retry.clone(),
        )
    }
}

impl<S: fmt::Debug, C: fmt::Debug, R: fmt::Debug> fmt::Debug for TokenRefresh<S, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRefresh")
            .field("inner", &self.inner)
            .field("settings", &self.settings)
            .field("retry", &self.retry)
            .finish()
    }
}

/// Without retries: any request body.
impl<S, B, RB, C> Service<Request<B>> for TokenRefresh<S, C, NoRetry>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    C: ClassifyRejection,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let (settings, decision) = self.decide(&mut request);
        ResponseFuture::new(self.attempt(decision, request), settings)
    }
}

/// With retries: bodies that `P` can prepare to be sent again.
impl<S, B, RB, C, P> Service<Request<B>> for TokenRefresh<S, C, RetryRejected<P>>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    C: ClassifyRejection,
    P: PrepareReplay<B>,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = BoxError;
    type Future = RetryResponseFuture<S, B, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let (settings, decision) = self.decide(&mut request);
        if let Decision::Pass = decision {
            return RetryResponseFuture::last(self.attempt(decision, request), settings);
        }
        let (request, second) = SecondAttempt::plan(&self.inner, request, &self.retry);
        RetryResponseFuture::first(self.attempt(decision, request), second, settings)
    }
}

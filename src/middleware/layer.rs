//! [`TokenRefreshLayer`].

use std::sync::Arc;

use tower_layer::Layer;

use super::settings::Settings;
use super::{NoRetry, Origin, RetryRejected, TokenRefresh, TokenRoutes};
use crate::{ClassifyRejection, StandardRejection, TokenCache};

/// A [`Layer`] that wraps services in [`TokenRefresh`]: each request is sent
/// with the token of a shared [`TokenCache`], and a rejected token is
/// replaced.
///
/// # Rejections
///
/// When a response says the server rejected the token (by default `401
/// Unauthorized`, or gRPC `UNAUTHENTICATED` in the response headers; see
/// [`rejection`](Self::rejection)), the token is dropped from the cache if it
/// is still the current one, so a burst of rejections of one token causes a
/// single refresh, and the next request gets a new token.
///
/// With [`retry_rejected`](Self::retry_rejected), the rejected request is
/// also sent once more with a new token, if its body can be sent again
/// ([`ReplayableBody`](crate::ReplayableBody), or your own function for a
/// body type of another crate: [`replay_with`](Self::replay_with)): an
/// empty body, a body that is cheap to copy, or a body recorded while it
/// was sent, up to the [replay limit](Self::replay_limit). Otherwise, or if
/// the second attempt is rejected too, or no new token can be had, the
/// rejection goes back to the caller unchanged; a `tracing` event says why
/// it was not retried. A request is never sent more than twice. Retrying is
/// off by default because it costs every request a copy of its head
/// (method, URI, headers) and of the inner service, more than adding the
/// token itself.
///
/// # Request bodies
///
/// Without retries the layer puts no bound on the request body: `()`,
/// `kube::client::Body`, `reqwest::Body`, anything. Retrying is a choice
/// made in the type ([`RetryRejected`] in place of [`NoRetry`]), so only a
/// retrying layer asks how to send a body again:
///
/// ```compile_fail
/// # use tower::{BoxError, Layer, ServiceExt, service_fn};
/// # use tower_token_refresh::{Token, TokenCache, TokenRefreshLayer};
/// # async fn demo() -> Result<(), BoxError> {
/// # let cache = TokenCache::new(|| async { Ok::<_, BoxError>(Token::bearer("t")) });
/// /// A body type the layer cannot send twice.
/// struct Stream;
/// let client = TokenRefreshLayer::new(cache)
///     .retry_rejected()
///     .layer(service_fn(|_: http::Request<Stream>| async {
///         Ok::<_, BoxError>(http::Response::new(()))
///     }));
/// // error: `TokenRefresh` does not know how to send a `Stream` request body again
/// client.oneshot(http::Request::new(Stream)).await?;
/// # Ok(())
/// # }
/// ```
///
/// gRPC `UNAUTHENTICATED` that arrives in the trailers of a streaming
/// response drops the token too, but that call is not retried.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use http::{Request, Response, header::AUTHORIZATION};
/// use http_body_util::Empty;
/// use bytes::Bytes;
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
///     .service(service_fn(|request: Request<Empty<Bytes>>| async move {
///         // Stands in for an HTTP client; echoes the header it was sent.
///         let sent = request.headers()[AUTHORIZATION].to_str()?.to_owned();
///         Ok::<_, BoxError>(Response::new(sent))
///     }));
///
/// let response = client.oneshot(Request::new(Empty::new())).await?;
/// assert_eq!(response.body().get_ref(), "Bearer abc");
/// # Ok(())
/// # }
/// ```
///
/// Customised:
///
/// ```
/// # use tower_token_refresh::{BoxError, Token, TokenCache, TokenRefreshLayer, StandardRejection};
/// # let cache = TokenCache::new(|| async { Ok::<_, BoxError>(Token::bearer("abc")) });
/// use http::StatusCode;
///
/// let layer = TokenRefreshLayer::new(cache)
///     // This API answers 403 for expired tokens.
///     .rejection(StandardRejection::new().or_status(StatusCode::FORBIDDEN))
///     // Resend rejected requests, keeping at most 16 KiB of a body for it.
///     .retry_rejected()
///     .replay_limit(16 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct TokenRefreshLayer<C = StandardRejection, R = NoRetry> {
    settings: Settings<C>,
    retry: R,
}

impl TokenRefreshLayer {
    /// A layer that authorizes requests with the tokens of `cache` and
    /// treats 401 and gRPC `UNAUTHENTICATED` as rejections (which drop the
    /// token). Rejected requests are not resent unless
    /// [`retry_rejected`](Self::retry_rejected) is set.
    pub fn new(cache: TokenCache) -> Self {
        Self::routes(TokenRoutes::all(cache))
    }

    /// A layer that picks each request's token by its destination (see
    /// [`TokenRoutes`]); requests that match no route go out without a token.
    pub fn routes(routes: TokenRoutes) -> Self {
        Self {
            settings: Settings {
                routes,
                classifier: StandardRejection::new(),
                keep_existing: false,
            },
            retry: NoRetry,
        }
    }
}

impl<C, R> TokenRefreshLayer<C, R> {
    /// Sends a rejected request once more with a new token, when its body
    /// can be sent again, keeping up to
    /// [`DEFAULT_REPLAY_LIMIT`](crate::DEFAULT_REPLAY_LIMIT) (64 KiB) of a
    /// streamed body for it. The caller then never sees a rejection caused
    /// by a revoked or stale token; each request pays for a copy of its
    /// head and a clone of the inner service, and a few small allocations
    /// (see `benches/README.md`).
    ///
    /// The request body must then be one the layer can send again: a
    /// [`ReplayableBody`](crate::ReplayableBody), or any body given a
    /// function with [`replay_with`](TokenRefreshLayer::replay_with).
    pub fn retry_rejected(self) -> TokenRefreshLayer<C, RetryRejected> {
        self.with_retry(RetryRejected::default())
    }

    /// Never sends a request a second time (the default): a rejection still
    /// drops the token, so the next request gets a new one, and goes back
    /// to the caller.
    pub fn without_retry(self) -> TokenRefreshLayer<C> {
        self.with_retry(NoRetry)
    }

    fn with_retry<T>(self, retry: T) -> TokenRefreshLayer<C, T> {
        TokenRefreshLayer {
            settings: self.settings,
            retry,
        }
    }

    /// Sends the token only to `origins` (and to relative URIs, whose
    /// destination the inner service decides, like a tonic `Channel`'s):
    /// requests to any other origin go out without it, and so does a
    /// `CONNECT` (its `host:port` target names a destination). Recommended
    /// for general-purpose clients, so a token never reaches a host it was
    /// not meant for.
    ///
    /// With [`routes`](Self::routes), routes to other origins are dropped.
    /// Calling it again narrows further: the token goes only to origins in
    /// every list.
    ///
    /// ```
    /// # use tower_token_refresh::{BoxError, Origin, Token, TokenCache, TokenRefreshLayer};
    /// # let cache = TokenCache::new(|| async { Ok::<_, BoxError>(Token::bearer("t")) });
    /// let layer = TokenRefreshLayer::new(cache)
    ///     .only_to([Origin::parse("https://api.example.com")?]);
    /// # Ok::<(), tower_token_refresh::InvalidOrigin>(())
    /// ```
    pub fn only_to(mut self, origins: impl IntoIterator<Item = Origin>) -> Self {
        self.settings.routes = self.settings.routes.only_to(origins.into_iter().collect());
        self
    }

    /// Leaves requests that already carry an `Authorization` header alone:
    /// they keep their header, get no token, and their rejections are not
    /// handled. By default the layer replaces any `Authorization` header a
    /// request has, so that every request it sends carries the cache's token.
    pub fn keep_existing_authorization(mut self) -> Self {
        self.settings.keep_existing = true;
        self
    }

    /// Decides which responses are rejections of the token (default:
    /// [`StandardRejection`]).
    pub fn rejection<D: ClassifyRejection>(self, classifier: D) -> TokenRefreshLayer<D, R> {
        TokenRefreshLayer {
            settings: Settings {
                routes: self.settings.routes,
                classifier,
                keep_existing: self.settings.keep_existing,
            },
            retry: self.retry,
        }
    }

    /// The token cache, if every request uses the same one.
    pub fn cache(&self) -> Option<&TokenCache> {
        self.settings.routes.single()
    }
}

impl<C, P> TokenRefreshLayer<C, RetryRejected<P>> {
    /// Keeps up to `bytes` of a streamed request body to send it again
    /// (default [`DEFAULT_REPLAY_LIMIT`](crate::DEFAULT_REPLAY_LIMIT),
    /// 64 KiB); a larger body is sent once, and not retried.
    pub fn replay_limit(mut self, bytes: usize) -> Self {
        self.retry.limit = bytes;
        self
    }

    /// Prepares each request body to be sent again with `prepare`, a
    /// function `Fn(B, usize) -> (B, Replay<B>)` (the `usize` is the replay
    /// limit), instead of the body type's own
    /// [`ReplayableBody`](crate::ReplayableBody): for body types of other
    /// crates, which cannot implement it. See
    /// [`PrepareReplay`](crate::PrepareReplay).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower_token_refresh::{Replay, TokenRefreshLayer};
    /// # let cache = tower_token_refresh::TokenCache::new(|| async {
    /// #     Ok::<_, tower_token_refresh::BoxError>(tower_token_refresh::Token::bearer("t"))
    /// # });
    ///
    /// let layer = TokenRefreshLayer::new(cache)
    ///     .retry_rejected()
    ///     // e.g. `Replay::record(body, limit, reqwest::Body::wrap)` for
    ///     // reqwest's body, or `Replay::copied(body, limit,
    ///     // kube::client::Body::try_clone)` for kube's.
    ///     .replay_with(|body: Full<Bytes>, limit| {
    ///         Replay::copied(body, limit, |body| Some(body.clone()))
    ///     });
    /// ```
    pub fn replay_with<Q>(self, prepare: Q) -> TokenRefreshLayer<C, RetryRejected<Q>>
    where
        Q: Clone + Send + Sync + 'static,
    {
        let limit = self.retry.limit;
        self.with_retry(RetryRejected { limit, prepare })
    }
}

impl<S, C: Clone, R: Clone> Layer<S> for TokenRefreshLayer<C, R> {
    type Service = TokenRefresh<S, C, R>;

    fn layer(&self, inner: S) -> Self::Service {
        let settings = Arc::new(self.settings.clone());
        TokenRefresh::from_parts(inner, settings, self.retry.clone())
    }
}

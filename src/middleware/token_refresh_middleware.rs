//! [`TokenRefreshMiddleware`]: the layer's behaviour for reqwest, as a
//! [`reqwest_middleware::Middleware`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::Extensions;
use http::header::AUTHORIZATION;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use super::Origin;
use super::attempt::{Verdict, judge_head, reject};
use super::settings::Settings;
use super::ticket::Ticket;
use super::token_rejected::{NotRetried, TokenRejected};
use crate::cache::{Constraint, Credential};
use crate::replay::NotReplayable;
use crate::{ClassifyRejection, NoToken, StandardRejection, TokenCache, TokenRoutes};

/// Keeps reqwest requests authorized from a shared [`TokenCache`]: a
/// [`reqwest_middleware::Middleware`] that does what
/// [`TokenRefreshLayer`](crate::TokenRefreshLayer) does for tower stacks,
/// so one cache can serve a tonic channel, a hyper-util client and a
/// reqwest client in one program.
///
/// - Each request gets `Authorization: Bearer <token>` (marked sensitive),
///   replacing any it had unless
///   [`keep_existing_authorization`](Self::keep_existing_authorization); a
///   request with a [`NoToken`] extension (`.with_extension(NoToken)`) gets
///   none. A token bound to a key (DPoP, feature `dpop`) goes as
///   `Authorization: DPoP <token>` with a proof for the request, and a
///   server's nonce challenge is answered as the layer answers it: with
///   [`retry_rejected`](Self::retry_rejected), the request is sent once more
///   with a new proof and the same token.
/// - A fresh token costs an atomic load; a missing or expired one is fetched
///   once for every concurrent request.
/// - A `401` (or what the [classifier](Self::rejection) calls a rejection)
///   drops the token if it is still the current one (and from the cache's
///   store). With [`retry_rejected`](Self::retry_rejected), the request is
///   sent once more with a new token when reqwest can copy it
///   ([`reqwest::Request::try_clone`]: not a streaming body). A rejection
///   that goes back to the caller carries a [`TokenRejected`] extension
///   saying why it was not retried, as with the layer.
/// - When no token can be had, the request fails with
///   [`reqwest_middleware::Error::Middleware`] carrying the crate's
///   [`Error`](crate::Error) (`error.downcast_ref::<tower_token_refresh::Error>()`
///   on its `anyhow` error); reqwest is not called.
///
/// Redirects: reqwest follows them itself, below the middleware, and drops
/// `Authorization` when a redirect leaves the scheme, host and port of the
/// request (so the token never follows a redirect to another origin); a
/// redirect within the origin keeps it. A response that comes from another
/// origin than the request went to is not judged: its `401` is about a
/// request that carried no token of ours, and drops nothing.
///
/// Unlike the layer, a gRPC status that comes in the trailers is not
/// watched, and routes for relative URIs ([`TokenRoutes::relative`]) never
/// match: reqwest's requests always name their origin.
///
/// The crate's OAuth 2.0 sources send their own token requests with their
/// own client: they never pass through this middleware.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_token_refresh::{BoxError, Token, TokenCache, TokenRefreshMiddleware};
///
/// let cache = TokenCache::new(|| async {
///     Ok::<_, BoxError>(Token::bearer("abc").expires_in(Duration::from_secs(3600)))
/// });
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(TokenRefreshMiddleware::new(cache).retry_rejected())
///     .build();
/// // client.get("https://api.example.com/items").send().await?
/// # let _ = client;
/// ```
pub struct TokenRefreshMiddleware<C = StandardRejection> {
    settings: Arc<Settings<C>>,
    retry: bool,
}

impl TokenRefreshMiddleware {
    /// Authorizes every request with `cache`'s token.
    pub fn new(cache: TokenCache) -> Self {
        Self::routes(TokenRoutes::all(cache))
    }

    /// Authorizes each request with the token of the first route of
    /// `routes` that matches its URL; a request that matches none goes out
    /// without a token.
    pub fn routes(routes: TokenRoutes) -> Self {
        Self {
            settings: Arc::new(Settings {
                routes,
                classifier: StandardRejection::new(),
                keep_existing: false,
            }),
            retry: false,
        }
    }
}

impl<C: ClassifyRejection + Clone> TokenRefreshMiddleware<C> {
    /// Sends a rejected request once more with a new token, when reqwest
    /// can copy it (a streaming body cannot be: such a request is not
    /// retried, and a `tracing` event says so).
    pub fn retry_rejected(mut self) -> Self {
        self.retry = true;
        self
    }

    /// Sends tokens only to `origins`: other requests go out without one.
    /// Restricts what was set before; never widens it.
    pub fn only_to(mut self, origins: impl IntoIterator<Item = Origin>) -> Self {
        let settings = Arc::make_mut(&mut self.settings);
        settings.routes = settings
            .routes
            .clone()
            .only_to(origins.into_iter().collect());
        self
    }

    /// Leaves requests that already have an `Authorization` header alone.
    pub fn keep_existing_authorization(mut self) -> Self {
        Arc::make_mut(&mut self.settings).keep_existing = true;
        self
    }

    /// Tells rejections with `classifier` instead of [`StandardRejection`].
    pub fn rejection<D: ClassifyRejection + Clone>(
        self,
        classifier: D,
    ) -> TokenRefreshMiddleware<D> {
        let settings = Settings {
            routes: self.settings.routes.clone(),
            classifier,
            keep_existing: self.settings.keep_existing,
        };
        TokenRefreshMiddleware {
            settings: Arc::new(settings),
            retry: self.retry,
        }
    }

    /// The route of `request` and its cache, unless the request is not
    /// ours to authorize (a [`NoToken`] extension, its own `Authorization`
    /// kept, or no route).
    #[inline]
    fn route<'a>(
        &'a self,
        request: &Request,
        extensions: &Extensions,
    ) -> Option<(usize, &'a TokenCache)> {
        let settings = &*self.settings;
        let not_ours = extensions.get::<NoToken>().is_some()
            || (settings.keep_existing && request.headers().contains_key(AUTHORIZATION));
        if not_ours {
            return None;
        }
        settings.routes.select_url(request.url())
    }

    /// Puts `credential` into `request` and says what its sending needs.
    #[inline]
    fn authorize<'a>(
        &self,
        request: &mut Request,
        cache: &'a TokenCache,
        route: usize,
        credential: (Credential, Constraint),
    ) -> Result<Sending<'a>, reqwest_middleware::Error> {
        let ticket = ticket_for(request, credential, route)?;
        Ok(Sending {
            cache,
            ticket,
            sent_to: Destination::of(request.url()),
            // A copy to send again, taken before the request goes (a
            // streaming body cannot be copied); boxed, so that the future
            // stays small.
            second: if self.retry {
                request.try_clone().map(Box::new)
            } else {
                None
            },
        })
    }

    /// Waits for a token for `request` (there was no fresh one), then sends
    /// it.
    async fn wait_then_send(
        &self,
        mut request: Request,
        (route, cache): (usize, &TokenCache),
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let credential = cache
            .clone()
            .credential()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let sending = self.authorize(&mut request, cache, route, credential)?;
        self.send(sending, request, extensions, next).await
    }

    /// Sends the authorized `request`; after a rejection, hands over to
    /// [`rejected`](Self::rejected) (boxed: the common path's future does
    /// not carry the rare path's).
    async fn send(
        &self,
        sending: Sending<'_>,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let response = next.clone().run(request, extensions).await?;
        match judged(&self.settings, sending.ticket, sending.sent_to, &response) {
            Verdict::Rejected => Box::pin(self.rejected(sending, response, extensions, next)).await,
            Verdict::ProveAgain => {
                Box::pin(self.prove_again(sending, response, extensions, next)).await
            }
            Verdict::Pass | Verdict::WatchTrailers => Ok(response),
        }
    }

    /// The server challenged the proof of `sending`'s key-bound token (a
    /// DPoP nonce, now kept): sends the request once more with a new proof
    /// and the same token, when it may; otherwise the caller gets the
    /// challenge, and the next request carries the new proof.
    #[cold]
    async fn prove_again(
        &self,
        sending: Sending<'_>,
        challenge: Response,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let Sending {
            cache,
            ticket,
            sent_to,
            second,
        } = sending;
        let (true, Some(second)) = (self.retry, second) else {
            return Ok(challenge);
        };
        let Ok(credential) = cache.clone().credential().await else {
            return Ok(challenge);
        };
        drop(challenge);
        tracing::debug!(
            cache = cache.name(),
            "sending the request again with a new proof, as the server asked"
        );
        let second = (*second, ticket.route(), sent_to);
        let answer = self
            .send_again(cache, second, credential, extensions, next)
            .await?;
        Ok(answer.unwrap_or_else(|rejected_again| rejected_again))
    }

    /// Sends `second` (a copy of a request sent to `sent_to` on `route`)
    /// once more with `credential`: its response, or (`Err`) its rejection,
    /// ready for the caller (the token dropped, `AlreadyRetried`).
    async fn send_again(
        &self,
        cache: &TokenCache,
        (mut second, route, sent_to): (Request, usize, Destination),
        credential: (Credential, Constraint),
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Result<Response, Response>> {
        let ticket = ticket_for(&mut second, credential, route)?;
        let response = next.run(second, extensions).await?;
        if matches!(
            judged(&self.settings, ticket, sent_to, &response),
            Verdict::Rejected
        ) {
            forget(cache, ticket, &response).await;
            return Ok(Err(not_retried(
                cache,
                response,
                NotRetried::AlreadyRetried,
            )));
        }
        Ok(Ok(response))
    }

    /// The server rejected the token of `sending` with `rejection`: drops
    /// the token, and sends the request once more with a new one when it
    /// may.
    async fn rejected(
        &self,
        sending: Sending<'_>,
        rejection: Response,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let Sending {
            cache,
            ticket,
            sent_to,
            second,
        } = sending;
        forget(cache, ticket, &rejection).await;
        let second = match (self.retry, second) {
            (false, _) => return Ok(not_retried(cache, rejection, NotRetried::Off)),
            (true, None) => {
                let why = NotRetried::Body(NotReplayable::NotCopied);
                return Ok(not_retried(cache, rejection, why));
            }
            (true, Some(second)) => *second,
        };
        let credential = match cache.clone().credential().await {
            Ok(credential) => credential,
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "no new token for the rejected request"
                );
                return Ok(not_retried(cache, rejection, NotRetried::NoNewToken));
            }
        };
        drop(rejection);
        cache.note_retry();
        tracing::debug!(
            cache = cache.name(),
            "retrying rejected request with a new token"
        );
        let second = (second, ticket.route(), sent_to);
        match self
            .send_again(cache, second, credential, extensions, next)
            .await?
        {
            Ok(mut response) => {
                response
                    .extensions_mut()
                    .insert(TokenRejected::new(cache.name(), true, None));
                Ok(response)
            }
            Err(rejected_again) => Ok(rejected_again),
        }
    }
}

/// Puts `credential` into `request`, with a proof for it if the token is
/// bound to a key.
#[inline]
fn ticket_for(
    request: &mut Request,
    (credential, constraint): (Credential, Constraint),
    route: usize,
) -> Result<Ticket, reqwest_middleware::Error> {
    let target = constraint.as_ref().map(|_| {
        (
            request.method().clone(),
            request.url().as_str().parse::<http::Uri>().ok(),
        )
    });
    let target = target
        .as_ref()
        .and_then(|(method, uri)| Some((method, uri.as_ref()?)));
    Ticket::authorize_headers(request.headers_mut(), credential, constraint, route, target)
        .map_err(reqwest_middleware::Error::middleware)
}

/// What sending one authorized request needs after it went: its cache and
/// ticket, where it went, and a copy to send again.
struct Sending<'a> {
    cache: &'a TokenCache,
    ticket: Ticket,
    sent_to: Destination,
    second: Option<Box<Request>>,
}

/// What `response` says of the token of `ticket`, sent to `sent_to`
/// (judged as the layer judges: a success confirms the token; a proof's
/// challenge is no rejection). A response
/// from another origin (reqwest followed a redirect there, and dropped the
/// token on the way) says nothing about the token: it neither rejects nor
/// confirms it (where it came from is looked at only then). A gRPC
/// status in trailers is not watched (reqwest's callers read bodies
/// themselves).
#[inline]
fn judged<C: ClassifyRejection>(
    settings: &Settings<C>,
    ticket: Ticket,
    sent_to: Destination,
    response: &Response,
) -> Verdict {
    let from_there = || Destination::of(response.url()) == sent_to;
    judge_head(
        settings,
        ticket,
        response.status(),
        response.headers(),
        from_there,
    )
}

/// Where a request went, to tell whether its response came from the same
/// origin (scheme, host and port) after redirects, without keeping a copy of
/// its URL: the host is kept as its length and a 64-bit FNV-1a hash (two
/// hosts that differ only where the hash collides would be taken for one:
/// a response from there would be judged, no token would be sent there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Destination {
    https: bool,
    port: Option<u16>,
    host_len: usize,
    host_hash: u64,
}

impl Destination {
    #[inline]
    fn of(url: &reqwest::Url) -> Self {
        let host = url.host_str().unwrap_or_default();
        let host_hash = host.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        Self {
            https: url.scheme() == "https",
            port: url.port_or_known_default(),
            host_len: host.len(),
            host_hash,
        }
    }
}

/// Drops the rejected token of `ticket` from `cache` (if still current),
/// and waits while its store forgets it.
#[cold]
async fn forget(cache: &TokenCache, ticket: Ticket, rejection: &Response) {
    if let Some(discarding) = reject(cache, ticket, rejection.status()) {
        discarding.finished().await;
    }
}

/// `rejection`, to go back to the caller with a [`TokenRejected`] saying
/// why it was not sent again (and a `tracing` event naming its origin).
#[cold]
fn not_retried(cache: &TokenCache, mut rejection: Response, why: NotRetried) -> Response {
    let origin = Origin::of_url(rejection.url());
    why.trace(cache.name(), origin.as_ref(), None);
    let retried = matches!(why, NotRetried::AlreadyRetried);
    rejection
        .extensions_mut()
        .insert(TokenRejected::new(cache.name(), retried, Some(why)));
    rejection
}

impl<C> Clone for TokenRefreshMiddleware<C> {
    fn clone(&self) -> Self {
        Self {
            settings: Arc::clone(&self.settings),
            retry: self.retry,
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for TokenRefreshMiddleware<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRefreshMiddleware")
            .field("settings", &self.settings)
            .field("retry", &self.retry)
            .finish()
    }
}

type HandleFuture<'a> =
    Pin<Box<dyn Future<Output = reqwest_middleware::Result<Response>> + Send + 'a>>;

// The trait is declared with `async_trait`; this is the signature it
// expands to, written out so the crate needs no macro for it.
impl<C: ClassifyRejection + Clone> Middleware for TokenRefreshMiddleware<C> {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        request: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> HandleFuture<'async_trait>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        // Decided here, before any future is made: a request that is not
        // ours goes on as it is, and one with a fresh token gets a future
        // that holds only what sending it needs.
        let Some((route, cache)) = self.route(&request, extensions) else {
            return next.run(request, extensions);
        };
        let mut request = request;
        match cache.fresh_credential() {
            Some(credential) => {
                match self.authorize(&mut request, cache, route, (credential, None)) {
                    Ok(sending) => Box::pin(self.send(sending, request, extensions, next)),
                    Err(error) => Box::pin(std::future::ready(Err(error))),
                }
            }
            None => Box::pin(self.wait_then_send(request, (route, cache), extensions, next)),
        }
    }
}

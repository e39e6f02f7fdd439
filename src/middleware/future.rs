//! [`ResponseFuture`] of [`TokenRefresh`](super::TokenRefresh).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::ResponseBody;
use super::retry::Retry;
use super::settings::{Settings, Ticket};
use crate::cache::Credential;
use crate::rejection::{Head, grpc_status, is_grpc};
use crate::{BoxError, ClassifyRejection, Error, ReplayableBody};

/// Waiting for a token: boxed, as it only happens off the hot path.
type CredentialFuture = Pin<Box<dyn Future<Output = Result<Credential, Error>> + Send>>;

/// Whether (and how) the request can be sent again if it is rejected.
/// Boxed: only requests that can be retried pay for keeping their head.
type SecondChance<S, B> = Result<Box<Retry<S, B>>, &'static str>;

const ALREADY_RETRIED: &str = "the request was already retried once";

pin_project! {
    /// Response future of [`TokenRefresh`](super::TokenRefresh).
    pub struct ResponseFuture<S, B, C>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
        settings: Arc<Settings<C>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        /// No usable token yet: wait for one, holding the ready service.
        WaitingForToken { slow: Box<Slow<S, B, S::Response>> },
        /// The request went to the inner service with the token of `ticket`.
        Called {
            #[pin]
            future: S::Future,
            ticket: Ticket,
            second: SecondChance<S, B>,
        },
        /// Rejected while the first attempt may still be sending the body:
        /// waiting (briefly) for it to be done, to replay it.
        RetryWaitingForBody { slow: Box<Slow<S, B, S::Response>> },
        /// Rejected: waiting for a new token to send the request again.
        RetryWaitingForToken { slow: Box<Slow<S, B, S::Response>> },
        /// Waiting for the service to be ready for the second attempt.
        RetryPollingReady { slow: Box<Slow<S, B, S::Response>> },
        /// A request that is not ours to authorize (no route, or a token
        /// request).
        Passthrough {
            #[pin]
            future: S::Future,
        },
    }
}

/// What the states off the hot path hold, boxed so that the future of a
/// request that goes straight through stays small.
struct Slow<S, B, R> {
    route: usize,
    generation: u64,
    credential: Option<CredentialFuture>,
    wait: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    service: Option<S>,
    request: Option<Request<B>>,
    retry: Option<Box<Retry<S, B>>>,
    rejected: Option<R>,
}

impl<S, B, R> Slow<S, B, R> {
    fn new(route: usize) -> Box<Self> {
        Box::new(Self {
            route,
            generation: 0,
            credential: None,
            wait: None,
            service: None,
            request: None,
            retry: None,
            rejected: None,
        })
    }
}

impl<S, B, C> ResponseFuture<S, B, C>
where
    S: Service<Request<B>>,
{
    pub(super) fn called(
        future: S::Future,
        ticket: Ticket,
        second: SecondChance<S, B>,
        settings: Arc<Settings<C>>,
    ) -> Self {
        Self {
            state: State::Called {
                future,
                ticket,
                second,
            },
            settings,
        }
    }

    pub(super) fn passthrough(future: S::Future, settings: Arc<Settings<C>>) -> Self {
        Self {
            state: State::Passthrough { future },
            settings,
        }
    }

    pub(super) fn waiting(
        credential: impl Future<Output = Result<Credential, Error>> + Send + 'static,
        route: usize,
        service: S,
        request: Request<B>,
        settings: Arc<Settings<C>>,
    ) -> Self {
        let mut slow = Slow::new(route);
        slow.credential = Some(Box::pin(credential));
        slow.service = Some(service);
        slow.request = Some(request);
        Self {
            state: State::WaitingForToken { slow },
            settings,
        }
    }
}

/// Sends `request` with `credential` on the ready `service`, keeping what a
/// second attempt needs.
#[inline]
pub(super) fn send<S, B, C>(
    service: &mut S,
    mut request: Request<B>,
    credential: Credential,
    settings: &Settings<C>,
) -> (S::Future, SecondChance<S, B>)
where
    S: Service<Request<B>> + Clone,
    B: ReplayableBody,
{
    let Some(limit) = settings.replay_limit else {
        // No retry: nothing to keep, and the request is not moved around.
        request
            .headers_mut()
            .insert(AUTHORIZATION, credential.header);
        return (service.call(request), Err(RETRY_OFF));
    };
    let (mut request, second) = Retry::plan(service, request, limit);
    request
        .headers_mut()
        .insert(AUTHORIZATION, credential.header);
    (service.call(request), second.map(Box::new))
}

pub(super) const RETRY_OFF: &str = "retrying is off (see `TokenRefreshLayer::retry_rejected`)";

fn polled_after_completion() -> BoxError {
    "ResponseFuture polled after completion".into()
}

impl<S, B, C, R> Future for ResponseFuture<S, B, C>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayableBody,
    C: ClassifyRejection,
{
    type Output = Result<Response<ResponseBody<R>>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let settings: &Arc<Settings<C>> = this.settings;
        let mut state = this.state;
        // The hot path first: the inner service answered a request that
        // went out with a token.
        if let StateProj::Called {
            future,
            ticket,
            second,
        } = state.as_mut().project()
        {
            let response = ready!(future.poll(cx)).map_err(Into::into)?;
            let ticket = *ticket;
            // The response is only looked at, then moved once, into the
            // output, unless it rejected the token.
            match judge(settings, ticket, &response) {
                Verdict::Pass => return Poll::Ready(Ok(response.map(ResponseBody::new))),
                Verdict::WatchTrailers => {
                    return Poll::Ready(Ok(watch_trailers(response, settings, ticket)));
                }
                Verdict::Rejected => match rejected(
                    response,
                    ticket,
                    std::mem::replace(second, Err(ALREADY_RETRIED)),
                    settings,
                ) {
                    Ok(next) => state.set(next),
                    Err(response) => return Poll::Ready(Ok(response.map(ResponseBody::new))),
                },
            }
        }
        poll_states(state, settings, cx)
    }
}

/// Every state but a first answer: waiting for a token, retrying. Kept out
/// of `poll` so that the hot path stays small.
#[inline(never)]
fn poll_states<S, B, C, R>(
    mut state: Pin<&mut State<S, B>>,
    settings: &Arc<Settings<C>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Response<ResponseBody<R>>, BoxError>>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayableBody,
    C: ClassifyRejection,
{
    loop {
        match state.as_mut().project() {
            StateProj::WaitingForToken { slow } => {
                let Some(credential) = slow.credential.as_mut() else {
                    return Poll::Ready(Err(polled_after_completion()));
                };
                let outcome = ready!(credential.as_mut().poll(cx));
                let (Some(mut service), Some(request)) = (slow.service.take(), slow.request.take())
                else {
                    return Poll::Ready(Err(polled_after_completion()));
                };
                let credential = match outcome {
                    Ok(credential) => credential,
                    Err(error) => {
                        return Poll::Ready(Err(token_failure(error, request.headers())));
                    }
                };
                let ticket = Ticket {
                    route: slow.route,
                    generation: credential.generation,
                };
                let (future, second) = send(&mut service, request, credential, settings);
                state.set(State::Called {
                    future,
                    ticket,
                    second,
                });
            }
            // The same steps as the hot path in `poll`, for a request sent
            // from here. (One shared `#[inline(always)]` function for both
            // measured 25 more instructions per request on the hot path.)
            StateProj::Called {
                future,
                ticket,
                second,
            } => {
                let response = ready!(future.poll(cx)).map_err(Into::into)?;
                let ticket = *ticket;
                match judge(settings, ticket, &response) {
                    Verdict::Pass => return Poll::Ready(Ok(response.map(ResponseBody::new))),
                    Verdict::WatchTrailers => {
                        return Poll::Ready(Ok(watch_trailers(response, settings, ticket)));
                    }
                    Verdict::Rejected => {
                        match rejected(
                            response,
                            ticket,
                            std::mem::replace(second, Err(ALREADY_RETRIED)),
                            settings,
                        ) {
                            Ok(next) => state.set(next),
                            Err(response) => {
                                return Poll::Ready(Ok(response.map(ResponseBody::new)));
                            }
                        }
                    }
                }
            }
            StateProj::RetryWaitingForBody { slow } => {
                if let Some(wait) = slow.wait.as_mut() {
                    ready!(wait.as_mut().poll(cx));
                }
                let (Some(retry), Some(rejected)) = (slow.retry.take(), slow.rejected.take())
                else {
                    return Poll::Ready(Err(polled_after_completion()));
                };
                let Some(cache) = settings.routes.cache(slow.route) else {
                    return Poll::Ready(Ok(rejected.map(ResponseBody::new)));
                };
                match retry_with_new_token(*retry, rejected, slow.route, cache) {
                    Ok(next) => state.set(next),
                    Err(response) => return Poll::Ready(Ok(response.map(ResponseBody::new))),
                }
            }
            StateProj::RetryWaitingForToken { slow } => {
                let Some(credential) = slow.credential.as_mut() else {
                    return Poll::Ready(Err(polled_after_completion()));
                };
                let outcome = ready!(credential.as_mut().poll(cx));
                slow.credential = None;
                let Some(rejected) = slow.rejected.take() else {
                    return Poll::Ready(Err(polled_after_completion()));
                };
                let credential = match outcome {
                    Ok(credential) => credential,
                    Err(error) => {
                        tracing::warn!(
                            error = &error as &dyn std::error::Error,
                            "rejected request not retried: no new token"
                        );
                        return Poll::Ready(Ok(rejected.map(ResponseBody::new)));
                    }
                };
                drop(rejected);
                if let Some(cache) = settings.routes.cache(slow.route) {
                    cache.note_retry();
                }
                slow.generation = credential.generation;
                if let Some(request) = slow.request.as_mut() {
                    request
                        .headers_mut()
                        .insert(AUTHORIZATION, credential.header);
                }
                let slow = std::mem::replace(slow, Slow::new(0));
                state.set(State::RetryPollingReady { slow });
            }
            StateProj::RetryPollingReady { slow } => {
                let Some(ready_service) = slow.service.as_mut() else {
                    return Poll::Ready(Err(polled_after_completion()));
                };
                ready!(ready_service.poll_ready(cx)).map_err(Into::into)?;
                let (Some(mut service), Some(request)) = (slow.service.take(), slow.request.take())
                else {
                    return Poll::Ready(Err(polled_after_completion()));
                };
                let future = service.call(request);
                let ticket = Ticket {
                    route: slow.route,
                    generation: slow.generation,
                };
                state.set(State::Called {
                    future,
                    ticket,
                    second: Err(ALREADY_RETRIED),
                });
            }
            StateProj::Passthrough { future } => {
                let response = ready!(future.poll(cx)).map_err(Into::into)?;
                return Poll::Ready(Ok(response.map(ResponseBody::new)));
            }
        }
    }
}

/// The state that waits for a new token to send `retry`, or, when its body
/// cannot be replayed, the rejection to return (after saying why).
fn retry_with_new_token<S, B, R>(
    retry: Retry<S, B>,
    rejected: Response<R>,
    route: usize,
    cache: &crate::TokenCache,
) -> Result<State<S, B>, Response<R>>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    match retry.into_request() {
        Err(reason) => {
            tracing::info!(reason, "rejected request not retried");
            Err(rejected)
        }
        Ok((service, request)) => {
            tracing::debug!("retrying rejected request with a new token");
            let mut slow = Slow::new(route);
            slow.rejected = Some(rejected);
            slow.credential = Some(Box::pin(cache.clone().credential()));
            slow.service = Some(service);
            slow.request = Some(request);
            Ok(State::RetryWaitingForToken { slow })
        }
    }
}

/// What a response says about the token it was sent with.
enum Verdict {
    /// Not a rejection (and, if it confirms the token, noted as such), or
    /// not sent with a token of ours: passed on as it is.
    Pass,
    /// A gRPC response whose status comes in the trailers: its body watches
    /// them.
    WatchTrailers,
    /// The token was rejected.
    Rejected,
}

/// Judges a response to a request sent with the token of `ticket`: one
/// `content-type` lookup decides for every response that is not gRPC. A
/// successful one confirms the token; a gRPC one is judged by its status
/// (in the headers of a trailers-only response, else in the trailers, which
/// are then watched).
#[inline]
fn judge<C: ClassifyRejection, R>(
    settings: &Settings<C>,
    ticket: Ticket,
    response: &Response<R>,
) -> Verdict {
    let Some(cache) = settings.routes.cache(ticket.route) else {
        return Verdict::Pass;
    };
    let status = response.status();
    let headers = response.headers();
    let grpc = is_grpc(headers);
    if settings.classifier.rejects_head(Head {
        status,
        headers,
        grpc,
    }) {
        return Verdict::Rejected;
    }
    let confirmed = if grpc {
        match grpc_status(headers) {
            Some(code) => code == b"0",
            None => return Verdict::WatchTrailers,
        }
    } else {
        status.is_success()
    };
    if confirmed {
        cache.accepted(ticket.generation);
    }
    Verdict::Pass
}

/// A gRPC response whose status will come in its trailers, with a body that
/// watches them.
fn watch_trailers<C: ClassifyRejection, R>(
    response: Response<R>,
    settings: &Arc<Settings<C>>,
    ticket: Ticket,
) -> Response<ResponseBody<R>> {
    let settings = Arc::clone(settings);
    response.map(|body| ResponseBody::watching(body, settings, ticket))
}

/// After a rejection: drops the token, then either the state that sends the
/// request again, or (saying why not) the rejection to return. Off the hot
/// path, so kept out of `poll`.
#[cold]
#[inline(never)]
fn rejected<S, B, C, R>(
    response: Response<R>,
    ticket: Ticket,
    second: SecondChance<S, B>,
    settings: &Settings<C>,
) -> Result<State<S, B>, Response<R>>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    B: ReplayableBody,
{
    let Some(cache) = settings.routes.cache(ticket.route) else {
        return Err(response);
    };
    let dropped = cache.reject(ticket.generation);
    tracing::info!(
        status = %response.status(),
        generation = ticket.generation,
        dropped,
        "token rejected by the server"
    );
    let retry = match second {
        Ok(retry) => retry,
        Err(reason) => {
            tracing::info!(reason, "rejected request not retried");
            return Err(response);
        }
    };
    match retry.until_sent() {
        Some(wait) => {
            let mut slow = Slow::new(ticket.route);
            slow.rejected = Some(response);
            slow.wait = Some(wait);
            slow.retry = Some(retry);
            Ok(State::RetryWaitingForBody { slow })
        }
        None => retry_with_new_token(*retry, response, ticket.route, cache),
    }
}

/// The error a request fails with when no token can be had: our [`Error`],
/// or for a gRPC request (with the `tonic` feature) a `tonic::Status` that
/// carries it as its source, so tonic clients see a meaningful code.
fn token_failure(error: Error, request_headers: &HeaderMap) -> BoxError {
    #[cfg(feature = "tonic")]
    if is_grpc(request_headers) {
        return Box::new(tonic::Status::from(error));
    }
    let _ = request_headers;
    Box::new(error)
}

impl<S, B, C> fmt::Debug for ResponseFuture<S, B, C>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::WaitingForToken { .. } => "WaitingForToken",
            State::Called { .. } => "Called",
            State::RetryWaitingForBody { .. } => "RetryWaitingForBody",
            State::RetryWaitingForToken { .. } => "RetryWaitingForToken",
            State::RetryPollingReady { .. } => "RetryPollingReady",
            State::Passthrough { .. } => "Passthrough",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

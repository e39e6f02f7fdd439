//! [`Attempt`]: one sending of a request, and what its response says about
//! the token it carried.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::Origin;
use super::response_body::ResponseBody;
use super::settings::Settings;
use super::ticket::Ticket;
use super::token_rejected::{NotRetried, TokenRejected};
use crate::cache::{Constraint, Credential, Discarding};
use crate::rejection::{ResponseHead, grpc_status, is_grpc};
use crate::{BoxError, Challenge, ClassifyRejection, Error, TokenCache};

/// Waiting for a token: boxed, as it only happens off the hot path.
pub(super) type CredentialFuture =
    Pin<Box<dyn Future<Output = Result<(Credential, Constraint), Error>> + Send>>;

pin_project! {
    /// One sending of a request: first waiting for a token if there is no
    /// fresh one, then the inner service's answer, judged.
    #[project = AttemptProj]
    #[project_replace = AttemptTaken]
    pub(super) enum Attempt<S, B>
    where
        S: Service<Request<B>>,
    {
        /// No fresh token: waiting for one, with the service that was made
        /// ready for this request.
        WaitingForToken { waiting: Box<Waiting<S, B>> },
        /// Sent with the token of `ticket`.
        Sent {
            #[pin]
            future: S::Future,
            ticket: Ticket,
        },
        /// Not ours to authorize (no route, [`NoToken`](crate::NoToken), or
        /// its own `Authorization` kept): sent as it is.
        Passthrough {
            #[pin]
            future: S::Future,
        },
        /// Rejected: the answer waits until the rejected token is discarded
        /// from the cache's store, so that nobody loads it again.
        Discarding { waiting: Box<DiscardWait<S::Response>> },
        /// Taken apart while moving to the next state, or finished without
        /// sending (no token).
        Done,
    }
}

/// What [`Attempt::WaitingForToken`] holds.
pub(super) struct Waiting<S, B> {
    credential: CredentialFuture,
    route: usize,
    service: S,
    request: Request<B>,
}

/// What [`Attempt::Discarding`] holds.
pub(super) struct DiscardWait<R> {
    finished: Pin<Box<dyn Future<Output = ()> + Send>>,
    rejection: R,
    route: usize,
}

impl<R> DiscardWait<R> {
    /// Waits for `discarding` before answering with `rejection`.
    #[cold]
    fn new(discarding: Discarding, rejection: R, route: usize) -> Box<Self> {
        Box::new(Self {
            finished: Box::pin(discarding.finished()),
            rejection,
            route,
        })
    }
}

/// What a response says, once judged.
pub(super) enum Answer<R> {
    /// Pass it on.
    Pass(Response<ResponseBody<R>>),
    /// It rejected the token of route `route` (dropped from the cache
    /// already, if it was still the current one).
    Rejected(Response<R>, usize),
    /// It challenged the proof sent with the key-bound token of route
    /// `route` (a DPoP nonce): the token stands; a new proof may do.
    ProveAgain(Response<R>, usize),
}

impl<S, B> Attempt<S, B>
where
    S: Service<Request<B>>,
{
    /// Waits for `credential` of `route`, then sends `request` on `service`,
    /// which was made ready for it.
    pub(super) fn wait(
        credential: CredentialFuture,
        route: usize,
        service: S,
        request: Request<B>,
    ) -> Self {
        Attempt::WaitingForToken {
            waiting: Box::new(Waiting {
                credential,
                route,
                service,
                request,
            }),
        }
    }

    /// Waits for the store to drop a rejected token before answering.
    pub(super) fn discarding(waiting: Box<DiscardWait<S::Response>>) -> Self {
        Attempt::Discarding { waiting }
    }

    /// The name of the state, for `Debug`.
    pub(super) fn state_name(&self) -> &'static str {
        match self {
            Attempt::WaitingForToken { .. } => "WaitingForToken",
            Attempt::Sent { .. } => "Sent",
            Attempt::Passthrough { .. } => "Passthrough",
            Attempt::Discarding { .. } => "Discarding",
            Attempt::Done => "Done",
        }
    }

    /// The inner service's answer, judged with `settings`. (The hot path,
    /// a request sent at once with a fresh token, is written out in
    /// [`ResponseFuture`](super::ResponseFuture) with [`judge`]: returned
    /// through [`Answer`], the response is copied twice more.)
    pub(super) fn poll_answer<C, R>(
        mut self: Pin<&mut Self>,
        settings: &Arc<Settings<C>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Answer<R>, BoxError>>
    where
        S: Service<Request<B>, Response = Response<R>>,
        S::Error: Into<BoxError>,
        C: ClassifyRejection,
    {
        loop {
            match self.as_mut().project() {
                AttemptProj::Sent { future, ticket } => {
                    let ticket = *ticket;
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    match judge(settings, ticket, &response) {
                        Verdict::Rejected => match drop_rejected(settings, ticket, response) {
                            Ok(rejection) => {
                                return Poll::Ready(Ok(Answer::Rejected(
                                    rejection,
                                    ticket.route(),
                                )));
                            }
                            Err(waiting) => self.set(Attempt::discarding(waiting)),
                        },
                        Verdict::ProveAgain => {
                            return Poll::Ready(Ok(Answer::ProveAgain(response, ticket.route())));
                        }
                        verdict => {
                            return Poll::Ready(Ok(Answer::Pass(
                                verdict.pass(response, settings, ticket),
                            )));
                        }
                    }
                }
                AttemptProj::Discarding { waiting } => {
                    ready!(waiting.finished.as_mut().poll(cx));
                    let AttemptTaken::Discarding { waiting } =
                        self.as_mut().project_replace(Attempt::Done)
                    else {
                        continue;
                    };
                    return Poll::Ready(Ok(Answer::Rejected(waiting.rejection, waiting.route)));
                }
                AttemptProj::Passthrough { future } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    return Poll::Ready(Ok(Answer::Pass(response.map(ResponseBody::new))));
                }
                AttemptProj::WaitingForToken { waiting } => {
                    let outcome = ready!(waiting.credential.as_mut().poll(cx));
                    // Always the state just matched; `Done` stays on failure.
                    let AttemptTaken::WaitingForToken { waiting } =
                        self.as_mut().project_replace(Attempt::Done)
                    else {
                        continue;
                    };
                    let Waiting {
                        route,
                        mut service,
                        mut request,
                        ..
                    } = *waiting;
                    let ticket = outcome.and_then(|(credential, constraint)| {
                        Ticket::authorize(&mut request, credential, constraint, route)
                    });
                    match ticket {
                        Ok(ticket) => self.set(Attempt::Sent {
                            future: service.call(request),
                            ticket,
                        }),
                        Err(error) => {
                            return Poll::Ready(Err(token_failure(error, request.headers())));
                        }
                    }
                }
                AttemptProj::Done => return Poll::Ready(Err(polled_after_completion())),
            }
        }
    }
}

/// `rejection`, to go back to the caller of route `route` as it is, with a
/// [`TokenRejected`] saying why it was not sent again (said in a `tracing`
/// event too, with where it went and the replay limit, when the layer kept
/// them: it does when it retries).
#[cold]
#[inline(never)]
pub(super) fn not_retried<C, R>(
    settings: &Settings<C>,
    route: usize,
    mut rejection: Response<R>,
    why: NotRetried,
    origin: Option<&Origin>,
    limit: Option<usize>,
) -> Response<ResponseBody<R>> {
    let cache = settings.routes.cache(route).map_or("", TokenCache::name);
    why.trace(cache, origin, limit);
    let retried = matches!(why, NotRetried::AlreadyRetried);
    rejection
        .extensions_mut()
        .insert(TokenRejected::new(cache, retried, Some(why)));
    rejection.map(ResponseBody::new)
}

/// What a response says about the token it was sent with.
pub(crate) enum Verdict {
    /// Not a rejection (and, if it confirms the token, noted as such).
    Pass,
    /// A gRPC response whose status comes in the trailers: its body watches
    /// them.
    WatchTrailers,
    /// The token was rejected: [`drop_rejected`] drops it.
    Rejected,
    /// The proof sent with a key-bound token was challenged (a DPoP
    /// nonce): not a rejection of the token.
    ProveAgain,
}

impl Verdict {
    /// `response`, to pass on to the caller.
    #[inline]
    pub(super) fn pass<C: ClassifyRejection, R>(
        self,
        response: Response<R>,
        settings: &Arc<Settings<C>>,
        ticket: Ticket,
    ) -> Response<ResponseBody<R>> {
        match self {
            Verdict::WatchTrailers => {
                let settings = Arc::clone(settings);
                response.map(|body| ResponseBody::watching(body, settings, ticket))
            }
            Verdict::Pass | Verdict::Rejected | Verdict::ProveAgain => {
                response.map(ResponseBody::new)
            }
        }
    }
}

/// Judges the response to a request sent with the token of `ticket`, and
/// records a success as confirming the token (a rejection is for
/// [`drop_rejected`], off the hot path). One `content-type` lookup decides
/// for every response that is not gRPC; a gRPC one is judged by its status
/// (in the headers of a trailers-only response, else in the trailers, which
/// are then watched).
#[inline]
pub(super) fn judge<C: ClassifyRejection, R>(
    settings: &Settings<C>,
    ticket: Ticket,
    response: &Response<R>,
) -> Verdict {
    judge_head(
        settings,
        ticket,
        response.status(),
        response.headers(),
        || true,
    )
}

/// [`judge`] for a response of which only the head is at hand (reqwest's),
/// and which may not come from where the token went: `from_there` says
/// whether it does, asked only when the answer matters (a rejection, or a
/// success that would confirm a token not yet confirmed).
#[inline]
pub(crate) fn judge_head<C: ClassifyRejection>(
    settings: &Settings<C>,
    ticket: Ticket,
    status: http::StatusCode,
    headers: &HeaderMap,
    from_there: impl Fn() -> bool,
) -> Verdict {
    let Some(cache) = settings.routes.cache(ticket.route()) else {
        return Verdict::Pass;
    };
    // A proven request's answer (from where it went: a redirect target's
    // nonce is another origin's) may carry a nonce, or challenge the proof.
    if let Some(origin) = ticket.proven_for
        && from_there()
        && read_proven(cache, origin, status, headers) == Challenge::ProveAgain
    {
        return Verdict::ProveAgain;
    }
    let grpc = is_grpc(headers);
    if settings.classifier.rejects_head(ResponseHead {
        status,
        headers,
        grpc,
    }) {
        return if from_there() {
            Verdict::Rejected
        } else {
            Verdict::Pass
        };
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
        cache.accepted_if(ticket.generation, from_there);
    }
    Verdict::Pass
}

/// Lets the constraint of `cache`'s key-bound tokens read the response to
/// a request proven for `origin` (a new nonce), and says whether it
/// challenges the proof. Off the bearer path.
#[cold]
#[inline(never)]
pub(super) fn read_proven(
    cache: &TokenCache,
    origin: crate::OriginId,
    status: http::StatusCode,
    headers: &HeaderMap,
) -> Challenge {
    cache
        .last_constraint()
        .map_or(Challenge::None, |constraint| {
            constraint.answered(origin, status, headers)
        })
}

/// Drops the token of `ticket` (if it is still the current one) after the
/// server rejected it with `rejection`: the rejection to answer with now,
/// or, while the token is discarded from the store, what waits for that.
/// Off the hot path.
#[cold]
#[inline(never)]
pub(super) fn drop_rejected<C, R>(
    settings: &Settings<C>,
    ticket: Ticket,
    rejection: Response<R>,
) -> Result<Response<R>, Box<DiscardWait<Response<R>>>> {
    let Some(cache) = settings.routes.cache(ticket.route()) else {
        return Ok(rejection);
    };
    match reject(cache, ticket, rejection.status()) {
        Some(discarding) => Err(DiscardWait::new(discarding, rejection, ticket.route())),
        None => Ok(rejection),
    }
}

/// Drops the token of `ticket` from `cache` (if it is still the current
/// one) after a server rejected it with `status`, and says so; returns the
/// removal from the store to wait for, if any.
pub(crate) fn reject(
    cache: &TokenCache,
    ticket: Ticket,
    status: http::StatusCode,
) -> Option<Discarding> {
    let rejected = cache.reject(ticket.generation);
    tracing::info!(
        cache = cache.name(),
        %status,
        generation = ticket.generation,
        dropped = rejected.dropped,
        "token rejected by the server"
    );
    rejected.discarding
}

/// The error of a response future polled again after it finished.
pub(super) fn polled_after_completion() -> BoxError {
    "response future polled after completion".into()
}

/// The error a request fails with when no token can be had: our [`Error`],
/// or for a gRPC request (with the `tonic` feature) a `tonic::Status` that
/// carries it as its source, so tonic clients see a meaningful code.
pub(super) fn token_failure(error: Error, request_headers: &HeaderMap) -> BoxError {
    #[cfg(feature = "tonic")]
    if is_grpc(request_headers) {
        return Box::new(tonic::Status::from(error));
    }
    let _ = request_headers;
    Box::new(error)
}

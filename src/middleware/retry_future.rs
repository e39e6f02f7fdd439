//! [`RetryResponseFuture`] of [`TokenRefresh`](super::TokenRefresh) with
//! [`RetryRejected`](super::RetryRejected).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::Origin;
use super::attempt::{
    Answer, Attempt, CredentialFuture, not_retried, polled_after_completion, token_failure,
};
use super::response_body::ResponseBody;
use super::second_attempt::{NoSecond, SecondAttempt, UntilSent};
use super::settings::Settings;
use super::ticket::Ticket;
use super::token_rejected::{NotRetried, TokenRejected};
use crate::{BoxError, ClassifyRejection, TokenCache};

pin_project! {
    /// Response future of [`TokenRefresh`](super::TokenRefresh) with
    /// [`RetryRejected`](super::RetryRejected): a first attempt, and after
    /// a rejection a second one with a new token, when the body can be sent
    /// again.
    pub struct RetryResponseFuture<S, B, C>
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
    #[project_replace = StateTaken]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        /// The first attempt, with what a second one needs (or why there
        /// can be none).
        First {
            #[pin]
            attempt: Attempt<S, B>,
            second: Result<Box<SecondAttempt<S, B>>, NoSecond>,
        },
        /// Rejected while the first attempt may still be sending the body:
        /// waiting (briefly) for it to be done, to replay it.
        BodyInFlight { waiting: Box<BodyInFlight<S, B>> },
        /// Rejected: waiting for a new token to send the request again.
        WaitingForToken { waiting: Box<WaitingForToken<S, B>> },
        /// Waiting for the service to be ready for the second attempt.
        PollingReady { waiting: Box<PollingReady<S, B>> },
        /// An attempt whose answer goes to the caller: the second one
        /// (`retried` says of what), or a request that is not ours to
        /// authorize.
        Last {
            #[pin]
            attempt: Attempt<S, B>,
            retried: Option<Retried>,
        },
        /// Taken apart while moving to the next state.
        Done,
    }
}

/// What [`State::BodyInFlight`] holds.
struct BodyInFlight<S: Service<Request<B>>, B> {
    until_sent: UntilSent,
    second: SecondAttempt<S, B>,
    rejection: S::Response,
    route: usize,
    cause: Cause,
}

/// What [`State::WaitingForToken`] holds.
struct WaitingForToken<S: Service<Request<B>>, B> {
    credential: CredentialFuture,
    service: S,
    request: Request<B>,
    rejection: S::Response,
    route: usize,
    cause: Cause,
}

/// What [`State::PollingReady`] holds.
struct PollingReady<S, B> {
    service: S,
    request: Request<B>,
    ticket: Ticket,
    origin: Option<Origin>,
    cause: Cause,
}

/// What a second attempt was sent for: the rejection of route `route`'s
/// token, or a challenge of its proof, on `origin`.
struct Retried {
    route: usize,
    origin: Option<Origin>,
    cause: Cause,
}

/// Why a request is sent a second time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// Its token was rejected: with a new token.
    Rejected,
    /// The proof of its key-bound token was challenged (a DPoP nonce):
    /// with the same token and a new proof.
    ProveAgain,
}

impl Cause {
    /// The first answer, to go back to the caller as it is: a rejection
    /// says why it was not sent again ([`not_retried`]); a challenge is
    /// passed on (it is no rejection).
    fn not_retried<C, R>(
        self,
        settings: &Settings<C>,
        route: usize,
        answer: Response<R>,
        why: NotRetried,
        origin: Option<&Origin>,
        limit: Option<usize>,
    ) -> Response<ResponseBody<R>> {
        match self {
            Cause::Rejected => not_retried(settings, route, answer, why, origin, limit),
            Cause::ProveAgain => answer.map(ResponseBody::new),
        }
    }
}

impl<S, B, C> RetryResponseFuture<S, B, C>
where
    S: Service<Request<B>>,
{
    /// A first attempt, with what a second one needs.
    pub(super) fn first(
        attempt: Attempt<S, B>,
        second: Result<Box<SecondAttempt<S, B>>, NoSecond>,
        settings: Arc<Settings<C>>,
    ) -> Self {
        Self {
            state: State::First { attempt, second },
            settings,
        }
    }

    /// An attempt that will not be retried.
    pub(super) fn last(attempt: Attempt<S, B>, settings: Arc<Settings<C>>) -> Self {
        Self {
            state: State::Last {
                attempt,
                retried: None,
            },
            settings,
        }
    }
}

impl<S, B, C, R> Future for RetryResponseFuture<S, B, C>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    C: ClassifyRejection,
{
    type Output = Result<Response<ResponseBody<R>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let settings: &Arc<Settings<C>> = this.settings;
        let mut state = this.state;
        // Each state that moves on takes its data out (`project_replace`
        // leaves `Done`, and gives back the state just matched).
        loop {
            match state.as_mut().project() {
                StateProj::First { attempt, .. } => {
                    let (rejection, route, cause) = match ready!(attempt.poll_answer(settings, cx))?
                    {
                        Answer::Pass(response) => return Poll::Ready(Ok(response)),
                        Answer::Rejected(rejection, route) => (rejection, route, Cause::Rejected),
                        Answer::ProveAgain(challenge, route) => {
                            (challenge, route, Cause::ProveAgain)
                        }
                    };
                    let StateTaken::First { second, .. } =
                        state.as_mut().project_replace(State::Done)
                    else {
                        continue;
                    };
                    match second {
                        Ok(second) => match second.until_sent() {
                            Some(until_sent) => {
                                state.set(State::BodyInFlight {
                                    waiting: Box::new(BodyInFlight {
                                        until_sent,
                                        second: *second,
                                        rejection,
                                        route,
                                        cause,
                                    }),
                                });
                            }
                            None => match retry(*second, rejection, route, cause, settings) {
                                Ok(next) => state.set(next),
                                Err(rejection) => return Poll::Ready(Ok(rejection)),
                            },
                        },
                        Err(no) => {
                            return Poll::Ready(Ok(cause.not_retried(
                                settings,
                                route,
                                rejection,
                                NotRetried::Body(no.why),
                                no.origin.as_ref(),
                                Some(no.limit),
                            )));
                        }
                    }
                }
                StateProj::BodyInFlight { waiting } => {
                    ready!(waiting.until_sent.as_mut().poll(cx));
                    let StateTaken::BodyInFlight { waiting } =
                        state.as_mut().project_replace(State::Done)
                    else {
                        continue;
                    };
                    let BodyInFlight {
                        second,
                        rejection,
                        route,
                        cause,
                        ..
                    } = *waiting;
                    match retry(second, rejection, route, cause, settings) {
                        Ok(next) => state.set(next),
                        Err(rejection) => return Poll::Ready(Ok(rejection)),
                    }
                }
                StateProj::WaitingForToken { waiting } => {
                    let outcome = ready!(waiting.credential.as_mut().poll(cx));
                    let StateTaken::WaitingForToken { waiting } =
                        state.as_mut().project_replace(State::Done)
                    else {
                        continue;
                    };
                    let WaitingForToken {
                        service,
                        mut request,
                        rejection,
                        route,
                        cause,
                        ..
                    } = *waiting;
                    let origin = Origin::of(request.uri());
                    let (credential, constraint) = match outcome {
                        Ok(credential) => credential,
                        Err(error) => {
                            tracing::warn!(
                                error = &error as &dyn std::error::Error,
                                "no new token for the rejected request"
                            );
                            return Poll::Ready(Ok(cause.not_retried(
                                settings,
                                route,
                                rejection,
                                NotRetried::NoNewToken,
                                origin.as_ref(),
                                None,
                            )));
                        }
                    };
                    if let (Some(cache), Cause::Rejected) = (settings.routes.cache(route), cause) {
                        cache.note_retry();
                    }
                    let ticket =
                        match Ticket::authorize(&mut request, credential, constraint, route) {
                            Ok(ticket) => ticket,
                            Err(error) => {
                                return Poll::Ready(Err(token_failure(error, request.headers())));
                            }
                        };
                    state.set(State::PollingReady {
                        waiting: Box::new(PollingReady {
                            service,
                            request,
                            ticket,
                            origin,
                            cause,
                        }),
                    });
                }
                StateProj::PollingReady { waiting } => {
                    ready!(waiting.service.poll_ready(cx)).map_err(Into::into)?;
                    let StateTaken::PollingReady { waiting } =
                        state.as_mut().project_replace(State::Done)
                    else {
                        continue;
                    };
                    let PollingReady {
                        mut service,
                        request,
                        ticket,
                        origin,
                        cause,
                    } = *waiting;
                    state.set(State::Last {
                        attempt: Attempt::Sent {
                            future: service.call(request),
                            ticket,
                        },
                        retried: Some(Retried {
                            route: ticket.route(),
                            origin,
                            cause,
                        }),
                    });
                }
                StateProj::Last { attempt, retried } => {
                    let answer = ready!(attempt.poll_answer(settings, cx))?;
                    return Poll::Ready(Ok(match (answer, retried.take()) {
                        (Answer::Pass(response), None) => response,
                        // Sent again for a new proof, not a new token: it
                        // is no rejection's retry.
                        (
                            Answer::Pass(response),
                            Some(Retried {
                                cause: Cause::ProveAgain,
                                ..
                            }),
                        ) => response,
                        // Challenged again: the caller gets it (the next
                        // request carries the newest proof).
                        (Answer::ProveAgain(response, _), _) => response.map(ResponseBody::new),
                        (Answer::Pass(mut response), Some(retried)) => {
                            let cache = settings.routes.cache(retried.route);
                            response.extensions_mut().insert(TokenRejected::new(
                                cache.map_or("", TokenCache::name),
                                true,
                                None,
                            ));
                            response
                        }
                        (Answer::Rejected(rejection, route), retried) => not_retried(
                            settings,
                            route,
                            rejection,
                            NotRetried::AlreadyRetried,
                            retried.as_ref().and_then(|retried| retried.origin.as_ref()),
                            None,
                        ),
                    }));
                }
                StateProj::Done => return Poll::Ready(Err(polled_after_completion())),
            }
        }
    }
}

/// The state that waits for a new token to send `second`, or, when its body
/// cannot be replayed, the rejection to return (saying why).
// The rejection is the response itself, handed straight to the caller on a
// rare path: boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
fn retry<S, B, C, R>(
    second: SecondAttempt<S, B>,
    rejection: Response<R>,
    route: usize,
    cause: Cause,
    settings: &Settings<C>,
) -> Result<State<S, B>, Response<ResponseBody<R>>>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    let Some(cache) = settings.routes.cache(route) else {
        return Err(rejection.map(ResponseBody::new));
    };
    match second.into_request() {
        Err(no) => Err(cause.not_retried(
            settings,
            route,
            rejection,
            NotRetried::Body(no.why),
            no.origin.as_ref(),
            Some(no.limit),
        )),
        Ok((service, request)) => {
            match cause {
                Cause::Rejected => tracing::debug!(
                    cache = cache.name(),
                    "retrying rejected request with a new token"
                ),
                Cause::ProveAgain => tracing::debug!(
                    cache = cache.name(),
                    "sending the request again with a new proof, as the server asked"
                ),
            }
            Ok(State::WaitingForToken {
                waiting: Box::new(WaitingForToken {
                    credential: Box::pin(cache.clone().credential()),
                    service,
                    request,
                    rejection,
                    route,
                    cause,
                }),
            })
        }
    }
}

impl<S, B, C> fmt::Debug for RetryResponseFuture<S, B, C>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::First { attempt, .. } => attempt.state_name(),
            State::BodyInFlight { .. } => "BodyInFlight",
            State::WaitingForToken { .. } => "RetryWaitingForToken",
            State::PollingReady { .. } => "RetryPollingReady",
            State::Last { attempt, .. } => attempt.state_name(),
            State::Done => "Done",
        };
        f.debug_struct("RetryResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

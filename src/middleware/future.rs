//! [`ResponseFuture`] of [`TokenRefresh`](super::TokenRefresh).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::header::AUTHORIZATION;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::ResponseBody;
use super::retry::Retry;
use super::settings::Settings;
use crate::cache::Credential;
use crate::rejection::is_grpc;
use crate::{BoxError, ClassifyRejection, Error, ReplayableBody};

/// Waiting for a token: boxed, as it only happens off the hot path.
type CredentialFuture = Pin<Box<dyn Future<Output = Result<Credential, Error>> + Send>>;

/// Whether (and how) the request can be sent again if it is rejected.
type SecondChance<S, B> = Result<Retry<S, B>, &'static str>;

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
        WaitingForToken {
            credential: CredentialFuture,
            service: Option<S>,
            request: Option<Request<B>>,
        },
        /// The request went to the inner service with token `generation`.
        Called {
            #[pin]
            future: S::Future,
            generation: u64,
            second: Option<SecondChance<S, B>>,
        },
        /// Rejected: waiting for a new token to send the request again.
        RetryWaitingForToken {
            credential: CredentialFuture,
            service: Option<S>,
            request: Option<Request<B>>,
            rejected: Option<S::Response>,
        },
        /// A request that is not ours to authorize (a token request).
        Passthrough {
            #[pin]
            future: S::Future,
        },
        /// Waiting for the service to be ready for the second attempt.
        RetryPollingReady {
            service: Option<S>,
            request: Option<Request<B>>,
            generation: u64,
        },
    }
}

impl<S, B, C> ResponseFuture<S, B, C>
where
    S: Service<Request<B>>,
{
    pub(super) fn called(
        future: S::Future,
        generation: u64,
        second: SecondChance<S, B>,
        settings: Arc<Settings<C>>,
    ) -> Self {
        Self {
            state: State::Called {
                future,
                generation,
                second: Some(second),
            },
            settings,
        }
    }

    #[cfg_attr(not(feature = "oauth2"), allow(dead_code))]
    pub(super) fn passthrough(future: S::Future, settings: Arc<Settings<C>>) -> Self {
        Self {
            state: State::Passthrough { future },
            settings,
        }
    }

    pub(super) fn waiting(
        credential: impl Future<Output = Result<Credential, Error>> + Send + 'static,
        service: S,
        request: Request<B>,
        settings: Arc<Settings<C>>,
    ) -> Self {
        Self {
            state: State::WaitingForToken {
                credential: Box::pin(credential),
                service: Some(service),
                request: Some(request),
            },
            settings,
        }
    }
}

/// Sends `request` with `credential` on the ready `service`, keeping what a
/// second attempt needs.
pub(super) fn send<S, B, C>(
    service: &mut S,
    request: Request<B>,
    credential: Credential,
    settings: &Settings<C>,
) -> (S::Future, SecondChance<S, B>)
where
    S: Service<Request<B>> + Clone,
    B: ReplayableBody,
{
    let (mut request, second) = Retry::plan(service, request, settings.replay_limit);
    request
        .headers_mut()
        .insert(AUTHORIZATION, credential.header);
    (service.call(request), second)
}

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

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let settings: &Arc<Settings<C>> = this.settings;
        loop {
            match this.state.as_mut().project() {
                StateProj::WaitingForToken {
                    credential,
                    service,
                    request,
                } => {
                    let credential = ready!(credential.as_mut().poll(cx))?;
                    let (Some(mut service), Some(request)) = (service.take(), request.take())
                    else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    let generation = credential.generation;
                    let (future, second) = send(&mut service, request, credential, settings);
                    this.state.set(State::Called {
                        future,
                        generation,
                        second: Some(second),
                    });
                }
                StateProj::Called {
                    future,
                    generation,
                    second,
                } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    let generation = *generation;
                    if !settings
                        .classifier
                        .rejects(response.status(), response.headers())
                    {
                        settings.cache.accepted(generation);
                        return Poll::Ready(Ok(watch_trailers(response, settings, generation)));
                    }
                    let dropped = settings.cache.reject(generation);
                    tracing::info!(
                        status = %response.status(),
                        generation,
                        dropped,
                        "token rejected by the server"
                    );
                    let second = second.take().unwrap_or(Err(ALREADY_RETRIED));
                    match second.and_then(Retry::into_request) {
                        Err(reason) => {
                            tracing::info!(reason, "rejected request not retried");
                            return Poll::Ready(Ok(response.map(ResponseBody::new)));
                        }
                        Ok((service, request)) => {
                            tracing::debug!("retrying rejected request with a new token");
                            this.state.set(State::RetryWaitingForToken {
                                credential: Box::pin(settings.cache.clone().credential()),
                                service: Some(service),
                                request: Some(request),
                                rejected: Some(response),
                            });
                        }
                    }
                }
                StateProj::RetryWaitingForToken {
                    credential,
                    service,
                    request,
                    rejected,
                } => {
                    let outcome = ready!(credential.as_mut().poll(cx));
                    let (Some(service), Some(mut request), Some(rejected)) =
                        (service.take(), request.take(), rejected.take())
                    else {
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
                    request
                        .headers_mut()
                        .insert(AUTHORIZATION, credential.header);
                    this.state.set(State::RetryPollingReady {
                        service: Some(service),
                        request: Some(request),
                        generation: credential.generation,
                    });
                }
                StateProj::Passthrough { future } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    return Poll::Ready(Ok(response.map(ResponseBody::new)));
                }
                StateProj::RetryPollingReady {
                    service,
                    request,
                    generation,
                } => {
                    let Some(ready_service) = service.as_mut() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    ready!(ready_service.poll_ready(cx)).map_err(Into::into)?;
                    let (Some(mut service), Some(request)) = (service.take(), request.take())
                    else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    let future = service.call(request);
                    let generation = *generation;
                    this.state.set(State::Called {
                        future,
                        generation,
                        second: Some(Err(ALREADY_RETRIED)),
                    });
                }
            }
        }
    }
}

/// Passes an accepted response on; a gRPC one has its trailers watched.
fn watch_trailers<R, C: ClassifyRejection>(
    response: Response<R>,
    settings: &Arc<Settings<C>>,
    generation: u64,
) -> Response<ResponseBody<R>> {
    if is_grpc(response.headers()) {
        let settings = Arc::clone(settings);
        response.map(|body| ResponseBody::watching(body, settings, generation))
    } else {
        response.map(ResponseBody::new)
    }
}

impl<S, B, C> fmt::Debug for ResponseFuture<S, B, C>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::WaitingForToken { .. } => "WaitingForToken",
            State::Called { .. } => "Called",
            State::RetryWaitingForToken { .. } => "RetryWaitingForToken",
            State::RetryPollingReady { .. } => "RetryPollingReady",
            State::Passthrough { .. } => "Passthrough",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

//! [`ResponseFuture`] of [`TokenRefresh`](super::TokenRefresh).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Request;
use http::header::AUTHORIZATION;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::cache::Credential;
use crate::{BoxError, Error};

/// Waiting for a token: boxed, as it only happens on the slow path.
type CredentialFuture = Pin<Box<dyn Future<Output = Result<Credential, Error>> + Send>>;

pin_project! {
    /// Response future of [`TokenRefresh`](super::TokenRefresh).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        /// The request is waiting for a token, holding the ready service.
        WaitingForToken {
            credential: CredentialFuture,
            service: Option<S>,
            request: Option<Request<B>>,
        },
        /// The request went to the inner service.
        Called {
            #[pin]
            future: S::Future,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(super) fn called(future: S::Future) -> Self {
        Self {
            state: State::Called { future },
        }
    }

    pub(super) fn waiting(
        credential: impl Future<Output = Result<Credential, Error>> + Send + 'static,
        service: S,
        request: Request<B>,
    ) -> Self {
        Self {
            state: State::WaitingForToken {
                credential: Box::pin(credential),
                service: Some(service),
                request: Some(request),
            },
        }
    }
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::WaitingForToken {
                    credential,
                    service,
                    request,
                } => {
                    let credential = ready!(credential.as_mut().poll(cx))?;
                    let (Some(mut service), Some(mut request)) = (service.take(), request.take())
                    else {
                        // Unreachable: we leave this state as soon as we take them.
                        return Poll::Ready(Err("ResponseFuture polled after completion".into()));
                    };
                    request
                        .headers_mut()
                        .insert(AUTHORIZATION, credential.header);
                    let future = service.call(request);
                    this.state.set(State::Called { future });
                }
                StateProj::Called { future } => return future.poll(cx).map_err(Into::into),
            }
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::WaitingForToken { .. } => "WaitingForToken",
            State::Called { .. } => "Called",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

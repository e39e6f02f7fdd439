//! [`ResponseFuture`] of [`TokenRefresh`](super::TokenRefresh) without
//! retries.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::attempt::{Answer, Attempt, AttemptProj, Verdict, drop_rejected, judge, not_retried};
use super::response_body::ResponseBody;
use super::settings::Settings;
use super::token_rejected::NotRetried;
use crate::{BoxError, ClassifyRejection};

pin_project! {
    /// Response future of [`TokenRefresh`](super::TokenRefresh) without
    /// retries: one [attempt](Attempt), whose answer goes to the caller.
    pub struct ResponseFuture<S, B, C>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        attempt: Attempt<S, B>,
        settings: Arc<Settings<C>>,
    }
}

impl<S, B, C> ResponseFuture<S, B, C>
where
    S: Service<Request<B>>,
{
    pub(super) fn new(attempt: Attempt<S, B>, settings: Arc<Settings<C>>) -> Self {
        Self { attempt, settings }
    }
}

impl<S, B, C, R> Future for ResponseFuture<S, B, C>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
    C: ClassifyRejection,
{
    type Output = Result<Response<ResponseBody<R>>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // The hot path: sent at once, with a fresh token. Written out so that
        // the response moves once, into the output.
        if let AttemptProj::Sent { future, ticket } = this.attempt.as_mut().project() {
            let ticket = *ticket;
            let response = ready!(future.poll(cx)).map_err(Into::into)?;
            let settings: &Arc<Settings<C>> = this.settings;
            match judge(settings, ticket, &response) {
                Verdict::Rejected => match drop_rejected(settings, ticket, response) {
                    Ok(rejection) => {
                        return Poll::Ready(Ok(not_retried(
                            settings,
                            ticket.route(),
                            rejection,
                            NotRetried::Off,
                            None,
                            None,
                        )));
                    }
                    // Waits for the store to forget the token.
                    Err(waiting) => this.attempt.set(Attempt::discarding(waiting)),
                },
                verdict => return Poll::Ready(Ok(verdict.pass(response, settings, ticket))),
            }
        }
        Poll::Ready(Ok(
            match ready!(this.attempt.poll_answer(this.settings, cx))? {
                Answer::Pass(response) => response,
                // Without retries, the caller gets the challenge; the next
                // request carries the new proof.
                Answer::ProveAgain(response, _) => response.map(ResponseBody::new),
                Answer::Rejected(rejection, route) => {
                    not_retried(this.settings, route, rejection, NotRetried::Off, None, None)
                }
            },
        ))
    }
}

impl<S, B, C> fmt::Debug for ResponseFuture<S, B, C>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("state", &self.attempt.state_name())
            .finish_non_exhaustive()
    }
}

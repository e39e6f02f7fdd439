//! [`ResponseBody`]: passes a response body through, watching gRPC
//! trailers for a rejected token.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::settings::Settings;
use super::ticket::Ticket;
use crate::ClassifyRejection;
use crate::rejection::grpc_status;

pin_project! {
    /// The response body of [`TokenRefresh`](crate::TokenRefresh): the inner
    /// service's body, passed through frame by frame (data, trailers, size
    /// hint and end of stream unchanged, no buffering).
    ///
    /// For gRPC responses it also reads the trailers as they pass: a
    /// `grpc-status: 16` (`UNAUTHENTICATED`) there, which a streaming call
    /// can only report at its end, drops the token the call was sent with
    /// (if it is still the current one). That call is not retried.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        watch: Option<Watch>,
    }
}

struct Watch {
    settings: Arc<dyn WatchTrailers>,
    ticket: Ticket,
}

/// What a response body needs to react to rejections in trailers, without
/// the classifier's type showing in the body's type.
pub(super) trait WatchTrailers: Send + Sync + 'static {
    /// Drops the token of `ticket` if `trailers` reject it.
    fn on_trailers(&self, ticket: Ticket, trailers: &HeaderMap);
}

impl<C: ClassifyRejection> WatchTrailers for Settings<C> {
    fn on_trailers(&self, ticket: Ticket, trailers: &HeaderMap) {
        let Some(cache) = self.routes.cache(ticket.route()) else {
            return;
        };
        // A proven call's trailers may carry a nonce, or challenge the
        // proof (not the token): the next call proves again.
        if let Some(origin) = ticket.proven_for
            && super::attempt::read_proven(cache, origin, http::StatusCode::OK, trailers)
                == crate::Challenge::ProveAgain
        {
            return;
        }
        if self.classifier.rejects_trailers(trailers) {
            // The response is the caller's already: the store is told on a
            // task of its own, which nothing here can wait for.
            let rejected = cache.reject(ticket.generation);
            tracing::info!(
                cache = cache.name(),
                generation = ticket.generation,
                dropped = rejected.dropped,
                "token rejected in gRPC trailers"
            );
        } else if grpc_status(trailers) == Some(b"0") {
            cache.accepted(ticket.generation);
        }
    }
}

impl<B> ResponseBody<B> {
    pub(super) fn new(inner: B) -> Self {
        Self { inner, watch: None }
    }

    pub(super) fn watching(inner: B, settings: Arc<dyn WatchTrailers>, ticket: Ticket) -> Self {
        Self {
            inner,
            watch: Some(Watch { settings, ticket }),
        }
    }

    /// A reference to the inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// A mutable reference to the inner body.
    pub fn get_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// The inner body (no longer watching trailers).
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Default> Default for ResponseBody<B> {
    fn default() -> Self {
        Self::new(B::default())
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &frame
            && let Some(trailers) = frame.trailers_ref()
            && let Some(watch) = this.watch.take()
        {
            watch.settings.on_trailers(watch.ticket, trailers);
        }
        frame
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("inner", &self.inner)
            .field("watching_trailers", &self.watch.is_some())
            .finish()
    }
}

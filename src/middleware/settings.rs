//! What a layer's services share: the cache and how to treat rejections.

use http::HeaderMap;

use super::TokenRoutes;
use crate::ClassifyRejection;
use crate::rejection::grpc_status;

/// Which route, and which of its tokens, a request was sent with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(crate) route: usize,
    pub(crate) generation: u64,
}

/// Shared by a [`TokenRefresh`](super::TokenRefresh) and its futures behind
/// one `Arc`, so that a request clones a single pointer. Aligned so that
/// the reference counts of [`Shards`](super::shards::Shards)' copies never
/// share a cache line.
#[derive(Debug, Clone)]
#[repr(align(128))]
pub(crate) struct Settings<C> {
    pub(crate) routes: TokenRoutes,
    pub(crate) classifier: C,
    /// The replay limit, or `None` when retrying is off.
    pub(crate) replay_limit: Option<usize>,
    /// Requests that already have an `Authorization` header keep it.
    pub(crate) keep_existing: bool,
}

/// What a response body needs to react to rejections in trailers, without
/// the classifier's type showing in the body's type.
pub(crate) trait WatchTrailers: Send + Sync + 'static {
    /// Drops the token of `ticket` if `trailers` reject it.
    fn on_trailers(&self, ticket: Ticket, trailers: &HeaderMap);
}

impl<C: ClassifyRejection> WatchTrailers for Settings<C> {
    fn on_trailers(&self, ticket: Ticket, trailers: &HeaderMap) {
        let Some(cache) = self.routes.cache(ticket.route) else {
            return;
        };
        if self.classifier.rejects_trailers(trailers) {
            let dropped = cache.reject(ticket.generation);
            tracing::info!(
                generation = ticket.generation,
                dropped,
                "token rejected in gRPC trailers"
            );
        } else if grpc_status(trailers) == Some(b"0") {
            cache.accepted(ticket.generation);
        }
    }
}

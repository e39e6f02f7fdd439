//! What a layer's services share: the cache and how to treat rejections.

use http::HeaderMap;

use crate::{ClassifyRejection, TokenCache};

/// Shared by a [`TokenRefresh`](super::TokenRefresh) and its futures behind
/// one `Arc`, so that a request clones a single pointer.
#[derive(Debug, Clone)]
pub(crate) struct Settings<C> {
    pub(crate) cache: TokenCache,
    pub(crate) classifier: C,
    /// The replay limit, or `None` when retrying is off.
    pub(crate) replay_limit: Option<usize>,
}

/// What a response body needs to react to rejections in trailers, without
/// the classifier's type showing in the body's type.
pub(crate) trait WatchTrailers: Send + Sync + 'static {
    /// Drops the token of `generation` if `trailers` reject it.
    fn on_trailers(&self, generation: u64, trailers: &HeaderMap);
}

impl<C: ClassifyRejection> WatchTrailers for Settings<C> {
    fn on_trailers(&self, generation: u64, trailers: &HeaderMap) {
        if self.classifier.rejects_trailers(trailers) {
            let dropped = self.cache.reject(generation);
            tracing::info!(generation, dropped, "token rejected in gRPC trailers");
        }
    }
}

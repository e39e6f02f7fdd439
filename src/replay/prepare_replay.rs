//! [`PrepareReplay`]: how a retrying layer prepares each request body to be
//! sent again, and the default, [`ByBodyType`].

use super::{Replay, ReplayableBody};

/// How a retrying [`TokenRefreshLayer`](crate::TokenRefreshLayer) prepares
/// each request body of type `B` to be sent a second time.
///
/// The default, [`ByBodyType`], asks the body type itself
/// ([`ReplayableBody`]). A body type of another crate (`reqwest::Body`,
/// `kube::client::Body`, …) cannot implement that trait (the orphan rule),
/// so the layer takes a function instead, given to
/// [`replay_with`](crate::TokenRefreshLayer::replay_with): any
/// `Fn(B, usize) -> (B, Replay<B>)`, where the `usize` is the
/// [replay limit](crate::TokenRefreshLayer::replay_limit). The [`Replay`]
/// constructors make it one line:
///
/// ```
/// # mod kube { pub mod client {
/// #     use bytes::Bytes;
/// #     /// Stands in for `kube::client::Body`: a body with `try_clone`.
/// #     pub struct Body(http_body_util::Full<Bytes>);
/// #     impl Body { pub fn try_clone(&self) -> Option<Self> { Some(Body(self.0.clone())) } }
/// #     impl http_body::Body for Body {
/// #         type Data = Bytes; type Error = std::convert::Infallible;
/// #         fn poll_frame(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>)
/// #             -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
/// #             std::pin::Pin::new(&mut self.get_mut().0).poll_frame(cx)
/// #         }
/// #     }
/// # } }
/// use tower_token_refresh::{Replay, TokenCache, TokenRefreshLayer};
/// # let cache = TokenCache::new(|| async {
/// #     Ok::<_, tower_token_refresh::BoxError>(tower_token_refresh::Token::bearer("t"))
/// # });
///
/// // A body that can copy itself: keep a copy.
/// let layer = TokenRefreshLayer::new(cache.clone())
///     .retry_rejected()
///     .replay_with(|body: kube::client::Body, limit| {
///         Replay::copied(body, limit, kube::client::Body::try_clone)
///     });
///
/// // A body that can wrap any body (`reqwest::Body::wrap`, …): record it
/// // while it is sent, with `Replay::record(body, limit, reqwest::Body::wrap)`.
/// ```
#[diagnostic::on_unimplemented(
    message = "`TokenRefresh` does not know how to send a `{B}` request body again",
    label = "request body type without `ReplayableBody`",
    note = "only `retry_rejected()` needs it: without retries any request body works",
    note = "tonic's and axum's `Body` have it with the features `tonic` and `axum` (on by default); `Full`, `Empty`, `String`, `BoxBody` and `UnsyncBoxBody` always; for your own body type, implement `tower_token_refresh::ReplayableBody` (with `Replay::never()` if it cannot be sent again)",
    note = "for another crate's body type, give `.replay_with(..)` a function `Fn({B}, usize) -> ({B}, Replay<{B}>)`, such as `|body, limit| Replay::copied(body, limit, Body::try_clone)`"
)]
pub trait PrepareReplay<B>: Clone + Send + Sync + 'static {
    /// Prepares `body` to be sent, with what is needed to send it again,
    /// keeping at most `limit` bytes for that.
    fn prepare_replay(&self, body: B, limit: usize) -> (B, Replay<B>);
}

/// The default [`PrepareReplay`]: each body type's own [`ReplayableBody`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ByBodyType;

impl<B: ReplayableBody> PrepareReplay<B> for ByBodyType {
    #[inline]
    fn prepare_replay(&self, body: B, limit: usize) -> (B, Replay<B>) {
        body.prepare_replay(limit)
    }
}

impl<B, F> PrepareReplay<B> for F
where
    F: Fn(B, usize) -> (B, Replay<B>) + Clone + Send + Sync + 'static,
{
    fn prepare_replay(&self, body: B, limit: usize) -> (B, Replay<B>) {
        self(body, limit)
    }
}

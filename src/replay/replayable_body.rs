//! [`ReplayableBody`]: request body types that know how they can be sent
//! again, and its implementations for the common ones.

use bytes::{Buf, Bytes};
use http_body::Body;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{Empty, Full};

use super::{NotReplayable, Replay};

/// A request body type that [`TokenRefresh`](crate::TokenRefresh) knows how
/// to send a second time, after the server rejected the token it was sent
/// with. Needed only with [`retry_rejected`](crate::TokenRefreshLayer::retry_rejected):
/// without retries the layer accepts any request body.
///
/// Implemented for the common request bodies, each in the cheapest way that
/// works for it:
///
/// | body | replayed by |
/// |------|-------------|
/// | [`Empty`] | sending another empty body |
/// | [`Full`], [`String`] | keeping a copy (`Full<Bytes>`: a reference count; `String`: up to the limit) |
/// | [`BoxBody`], [`UnsyncBoxBody`] (`Data = Bytes`), `tonic::body::Body` (feature `tonic`), `axum::body::Body` (feature `axum`) | sending it through a [`ReplayBody`](crate::ReplayBody) that records up to the limit; a known-empty body is sent again as empty |
/// | `hyper::body::Incoming` | never: it is not retried |
///
/// For a body type of another crate, which the orphan rule keeps you from
/// implementing this trait for, give the layer a function instead
/// ([`replay_with`](crate::TokenRefreshLayer::replay_with); see
/// [`PrepareReplay`](crate::PrepareReplay)). For a body type of your own,
/// implement it with one of the [`Replay`] constructors:
///
/// ```
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
/// use bytes::Bytes;
/// use http_body::{Body, Frame};
/// use tower_token_refresh::{Replay, ReplayableBody};
///
/// /// A body streamed from somewhere that cannot be rewound.
/// struct Upload(/* … */);
///
/// # impl Body for Upload {
/// #     type Data = Bytes;
/// #     type Error = std::io::Error;
/// #     fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>)
/// #         -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> { Poll::Ready(None) }
/// # }
/// impl ReplayableBody for Upload {
///     fn prepare_replay(self, _limit: usize) -> (Self, Replay<Self>) {
///         (self, Replay::never())
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`TokenRefresh` does not know how to send a `{Self}` request body again",
    label = "request body type without `ReplayableBody`",
    note = "only `retry_rejected()` needs it: without retries any request body works",
    note = "tonic's and axum's `Body` have it with the features `tonic` and `axum` (on by default); `Full`, `Empty`, `String`, `BoxBody` and `UnsyncBoxBody` always; for your own body type, implement `tower_token_refresh::ReplayableBody` (with `Replay::never()` if it cannot be sent again)",
    note = "for another crate's body type, give `.replay_with(..)` a function `Fn({Self}, usize) -> ({Self}, Replay<{Self}>)`"
)]
pub trait ReplayableBody: Body + Sized {
    /// Prepares `self` to be sent, with what is needed to send it again.
    /// `limit` is the most bytes the layer lets a request keep for that
    /// ([`TokenRefreshLayer::replay_limit`](crate::TokenRefreshLayer::replay_limit)).
    fn prepare_replay(self, limit: usize) -> (Self, Replay<Self>);
}

impl<D: Buf> ReplayableBody for Empty<D> {
    fn prepare_replay(self, _limit: usize) -> (Self, Replay<Self>) {
        (self, Replay::empty())
    }
}

impl<D: Buf + Clone> ReplayableBody for Full<D> {
    fn prepare_replay(self, limit: usize) -> (Self, Replay<Self>) {
        // A `Full<Vec<u8>>` would be copied whole; `Full<Bytes>` costs a
        // reference count, but keeps the limit's promise all the same.
        Replay::copied(self, limit, |body| Some(body.clone()))
    }
}

impl ReplayableBody for String {
    fn prepare_replay(self, limit: usize) -> (Self, Replay<Self>) {
        if self.is_empty() {
            (self, Replay::empty())
        } else if self.len() > limit {
            (self, Replay::unavailable(NotReplayable::OverLimit))
        } else {
            let copy = self.clone();
            (self, Replay::from_copy(copy))
        }
    }
}

impl<E: 'static> ReplayableBody for BoxBody<Bytes, E> {
    fn prepare_replay(self, limit: usize) -> (Self, Replay<Self>) {
        record_unless_empty(self, limit, BoxBody::new)
    }
}

impl<E: 'static> ReplayableBody for UnsyncBoxBody<Bytes, E> {
    fn prepare_replay(self, limit: usize) -> (Self, Replay<Self>) {
        record_unless_empty(self, limit, UnsyncBoxBody::new)
    }
}

impl ReplayableBody for hyper::body::Incoming {
    fn prepare_replay(self, _limit: usize) -> (Self, Replay<Self>) {
        (self, Replay::never())
    }
}

#[cfg(feature = "tonic")]
impl ReplayableBody for tonic::body::Body {
    fn prepare_replay(self, limit: usize) -> (Self, Replay<Self>) {
        record_unless_empty(self, limit, tonic::body::Body::new)
    }
}

#[cfg(feature = "axum")]
impl ReplayableBody for axum_core::body::Body {
    fn prepare_replay(self, limit: usize) -> (Self, Replay<Self>) {
        record_unless_empty(self, limit, axum_core::body::Body::new)
    }
}

/// Bodies that are already at their end (no data, no trailers) are sent
/// again as empty; others are recorded. (A size hint of exactly 0 is not
/// enough: such a body may still carry trailers.)
fn record_unless_empty<B>(
    body: B,
    limit: usize,
    wrap: fn(super::ReplayBody<B>) -> B,
) -> (B, Replay<B>)
where
    B: Body<Data = Bytes> + Default + Unpin,
{
    if body.is_end_stream() {
        (body, Replay::empty())
    } else {
        Replay::record(body, limit, wrap)
    }
}

//! [`Replay`]: how one request's body can be sent a second time.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;

use super::recording::{ReplayBody, Shared};

/// How to send one request's body a second time, made by
/// [`ReplayableBody::prepare_replay`](crate::ReplayableBody::prepare_replay).
pub struct Replay<B> {
    kind: Kind<B>,
}

enum Kind<B> {
    Never(&'static str),
    Empty(fn() -> B),
    Clone(B),
    Recorded {
        shared: Arc<Shared<B>>,
        wrap: fn(ReplayBody<B>) -> B,
    },
}

impl<B> Replay<B> {
    /// The body cannot be sent again (say, a stream that cannot be rebuilt).
    pub fn never() -> Self {
        Self::unavailable("the request body type cannot be replayed")
    }

    /// The body is empty: send `B::default()` again.
    pub fn empty() -> Self
    where
        B: Default,
    {
        Self {
            kind: Kind::Empty(B::default),
        }
    }

    /// Send this copy again.
    pub fn from_copy(copy: B) -> Self {
        Self {
            kind: Kind::Clone(copy),
        }
    }

    /// Send `body` the first time through a [`ReplayBody`] that records up
    /// to `limit` bytes of it, and `wrap` turns the recorder (and later the
    /// replayer) back into a `B`. For body types that can hold any body,
    /// such as `tonic::body::Body::new` or `axum::body::Body::new`.
    ///
    /// A body whose size hint already says it is larger than `limit` is not
    /// recorded at all.
    pub fn record(body: B, limit: usize, wrap: fn(ReplayBody<B>) -> B) -> (B, Self)
    where
        B: Body<Data = Bytes> + Unpin,
    {
        if body.size_hint().lower() > limit as u64 {
            return (body, Self::unavailable(super::OVER_LIMIT));
        }
        let (recorder, shared) = ReplayBody::recording(body, limit);
        let replay = Self {
            kind: Kind::Recorded { shared, wrap },
        };
        (wrap(recorder), replay)
    }

    pub(crate) fn unavailable(why: &'static str) -> Self {
        Self {
            kind: Kind::Never(why),
        }
    }

    /// When the first attempt may still be sending a recorded body: a
    /// future that ends once it is done with it (at most `limit` later).
    pub(crate) fn until_sent(
        &self,
        limit: Duration,
    ) -> Option<impl Future<Output = ()> + Send + 'static + use<B>> {
        let Kind::Recorded { shared, .. } = &self.kind else {
            return None;
        };
        let sent = Arc::clone(shared.sent());
        if sent.is_done() {
            return None;
        }
        Some(async move { sent.wait(limit).await })
    }

    /// The body for the second attempt, or why there is none.
    pub(crate) fn into_body(self) -> Result<B, &'static str> {
        match self.kind {
            Kind::Never(why) => Err(why),
            Kind::Empty(make) => Ok(make()),
            Kind::Clone(copy) => Ok(copy),
            Kind::Recorded { shared, wrap } => shared.replay().map(wrap),
        }
    }

    /// Why a body that cannot be replayed cannot, for tracing.
    pub(crate) fn never_reason(&self) -> Option<&'static str> {
        match self.kind {
            Kind::Never(why) => Some(why),
            _ => None,
        }
    }
}

impl<B> fmt::Debug for Replay<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Never(_) => "Never",
            Kind::Empty(_) => "Empty",
            Kind::Clone(_) => "Clone",
            Kind::Recorded { .. } => "Recorded",
        };
        f.debug_tuple("Replay").field(&kind).finish()
    }
}

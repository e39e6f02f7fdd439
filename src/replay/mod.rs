//! Sending a request body a second time, for the one retry after a
//! rejected token: [`Replay`] (how one body is sent again),
//! [`ReplayableBody`] (body types that know how), [`PrepareReplay`] (the
//! layer's choice of how), and [`ReplayBody`] (a recorder for streams).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;

mod prepare_replay;
mod replay_body;
mod replayable_body;

pub use prepare_replay::{ByBodyType, PrepareReplay};
pub use replay_body::ReplayBody;
pub use replayable_body::ReplayableBody;

use replay_body::Handoff;

/// Default [replay limit](crate::TokenRefreshLayer::replay_limit): the most
/// bytes of a request body kept to send it again.
pub const DEFAULT_REPLAY_LIMIT: usize = 64 * 1024;

/// Why a request body cannot be sent a second time: part of
/// [`NotRetried`](crate::NotRetried).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotReplayable {
    /// Its type cannot be replayed ([`Replay::never`]).
    BodyType,
    /// It is larger than the replay limit.
    OverLimit,
    /// The first attempt was still sending it.
    StillSending,
    /// It was sent twice already.
    AlreadyReplayed,
    /// Reading it failed the first time.
    Failed,
    /// It could not copy itself (a stream, say), though its type can.
    NotCopied,
}

impl NotReplayable {
    /// What it says, as in `tracing` events.
    pub fn as_str(self) -> &'static str {
        match self {
            NotReplayable::BodyType => "the request body type cannot be replayed",
            NotReplayable::OverLimit => "the request body is larger than the replay limit",
            NotReplayable::StillSending => "the request body was still being sent",
            NotReplayable::AlreadyReplayed => "the body was already replayed",
            NotReplayable::Failed => "the request body failed",
            NotReplayable::NotCopied => "the request body could not be copied",
        }
    }
}

impl std::fmt::Display for NotReplayable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to send one request's body a second time, made by
/// [`ReplayableBody::prepare_replay`] or a [`PrepareReplay`].
pub struct Replay<B> {
    kind: Kind<B>,
}

enum Kind<B> {
    Never(NotReplayable),
    Empty(fn() -> B),
    Copy(B),
    Recorded {
        handoff: Arc<Handoff<B>>,
        wrap: fn(ReplayBody<B>) -> B,
    },
}

impl<B> Replay<B> {
    /// The body cannot be sent again (say, a stream that cannot be rebuilt).
    pub fn never() -> Self {
        Self::unavailable(NotReplayable::BodyType)
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
            kind: Kind::Copy(copy),
        }
    }

    /// Keeps a copy of `body` made by `copy` (such as the body type's own
    /// `try_clone`) to send again, unless its size hint says it is larger
    /// than `limit` or `copy` makes none. For body types of other crates
    /// that can copy themselves but have no [`ReplayableBody`]; see
    /// [`PrepareReplay`].
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower_token_refresh::Replay;
    ///
    /// let body = Full::new(Bytes::from_static(b"{}"));
    /// let (body, replay) = Replay::copied(body, 1024, |body| Some(body.clone()));
    /// # let _ = (body, replay);
    /// ```
    pub fn copied(body: B, limit: usize, copy: impl FnOnce(&B) -> Option<B>) -> (B, Self)
    where
        B: Body,
    {
        if body.size_hint().lower() > limit as u64 {
            return (body, Self::unavailable(NotReplayable::OverLimit));
        }
        let replay = match copy(&body) {
            Some(copy) => Self::from_copy(copy),
            None => Self::unavailable(NotReplayable::NotCopied),
        };
        (body, replay)
    }

    /// Send `body` the first time through a [`ReplayBody`] that records up
    /// to `limit` bytes of it, and `wrap` turns the recorder (and later the
    /// replayer) back into a `B`. For body types that can hold any body,
    /// such as `tonic::body::Body::new`, `axum::body::Body::new` or
    /// `reqwest::Body::wrap`.
    ///
    /// A body whose size hint already says it is larger than `limit` is not
    /// recorded at all.
    pub fn record(body: B, limit: usize, wrap: fn(ReplayBody<B>) -> B) -> (B, Self)
    where
        B: Body<Data = Bytes> + Unpin,
    {
        if body.size_hint().lower() > limit as u64 {
            return (body, Self::unavailable(NotReplayable::OverLimit));
        }
        let (recorder, handoff) = ReplayBody::recording(body, limit);
        let replay = Self {
            kind: Kind::Recorded { handoff, wrap },
        };
        (wrap(recorder), replay)
    }

    pub(crate) fn unavailable(why: NotReplayable) -> Self {
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
        let Kind::Recorded { handoff, .. } = &self.kind else {
            return None;
        };
        let sent = Arc::clone(handoff.sent());
        if sent.is_done() {
            return None;
        }
        Some(async move { sent.wait(limit).await })
    }

    /// The body for the second attempt, or why there is none.
    pub(crate) fn into_body(self) -> Result<B, NotReplayable> {
        match self.kind {
            Kind::Never(why) => Err(why),
            Kind::Empty(make) => Ok(make()),
            Kind::Copy(copy) => Ok(copy),
            Kind::Recorded { handoff, wrap } => handoff.replay().map(wrap),
        }
    }

    /// Why a body that cannot be replayed cannot.
    pub(crate) fn never_reason(&self) -> Option<NotReplayable> {
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
            Kind::Copy(_) => "Copy",
            Kind::Recorded { .. } => "Recorded",
        };
        f.debug_tuple("Replay").field(&kind).finish()
    }
}

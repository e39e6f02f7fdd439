//! [`ReplayBody`]: records a request body while it is sent, and plays the
//! recording back for the retry.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

use super::NotReplayable;

/// A request body that [`TokenRefresh`](crate::TokenRefresh) can send a
/// second time: the first time it forwards the original body and records
/// what it forwards, up to a byte limit; the second time it plays the
/// recording back, then whatever of the original body had not been sent.
///
/// Body types that wrap any body (tonic's and axum's `Body`, `BoxBody`)
/// are replayed by wrapping one of these; see [`Replay::record`](crate::Replay::record).
///
/// Data, trailers, size hints and end-of-stream pass through unchanged.
pub struct ReplayBody<B> {
    mode: Mode<B>,
}

enum Mode<B> {
    /// First attempt: forward `inner`, record into `recorded`.
    Recording {
        inner: Option<B>,
        recorded: Recorded,
        limit: usize,
        handoff: Arc<Handoff<B>>,
    },
    /// Second attempt: play `chunks` and `trailers` back, then `rest`.
    Replaying {
        chunks: VecDeque<Bytes>,
        trailers: Option<HeaderMap>,
        rest: Option<B>,
    },
}

/// What the first attempt forwarded.
#[derive(Debug, Default, Clone)]
struct Recorded {
    chunks: VecDeque<Bytes>,
    bytes: usize,
    trailers: Option<HeaderMap>,
    /// Nothing will replay the body: nothing is kept.
    abandoned: bool,
}

/// Where the first attempt leaves its recording for the retry.
pub(super) struct Handoff<B> {
    state: Mutex<State<B>>,
    sent: Arc<Sent>,
}

/// Tells a waiting retry that the first attempt is done with the body
/// (finished it, gave it back, or went over the limit). Separate from
/// [`Handoff`] so that waiting does not need the body type to be `Send`.
#[derive(Debug, Default)]
pub(super) struct Sent {
    done: AtomicBool,
    notify: Notify,
}

impl Sent {
    fn mark(&self) {
        self.done.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Waits until the first attempt is done with the body, at most `limit`.
    pub(super) async fn wait(&self, limit: Duration) {
        let done = async {
            loop {
                let notified = self.notify.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if self.done.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, done).await;
    }

    pub(super) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }
}

enum State<B> {
    /// The first attempt still holds the body and has not finished it.
    Sending,
    /// The whole body was forwarded and recorded.
    Complete(Recorded),
    /// The first attempt was dropped before the end: the recording so far
    /// and the rest of the original body.
    Interrupted(Recorded, B),
    /// The body was larger than the limit, failed, or was already replayed.
    Unavailable(NotReplayable),
}

impl Recorded {
    /// Drops the copy, and records nothing more: the body will not be
    /// replayed.
    fn abandon(&mut self) {
        *self = Recorded {
            abandoned: true,
            ..Recorded::default()
        };
    }

    /// Whether this is the whole body so far, for a replay.
    fn is_usable(&self, limit: usize) -> bool {
        !self.abandoned && self.bytes <= limit
    }

    /// Keeps a copy of `frame`, unless the body went over `limit`: then
    /// the recording is dropped and the retry made impossible.
    fn record<B>(&mut self, frame: &Frame<Bytes>, limit: usize, handoff: &Handoff<B>) {
        if !self.is_usable(limit) {
            return;
        }
        if let Some(data) = frame.data_ref() {
            self.bytes = self.bytes.saturating_add(data.len());
            if self.bytes > limit {
                *self = Recorded {
                    bytes: self.bytes,
                    ..Recorded::default()
                };
                handoff.set(State::Unavailable(NotReplayable::OverLimit));
            } else {
                self.chunks.push_back(data.clone());
            }
        } else if let Some(trailers) = frame.trailers_ref() {
            self.trailers = Some(trailers.clone());
        }
    }
}

impl<B> ReplayBody<B> {
    /// Wraps `body` to record it; `handoff` receives the recording.
    pub(super) fn recording(body: B, limit: usize) -> (Self, Arc<Handoff<B>>) {
        let handoff = Arc::new(Handoff {
            state: Mutex::new(State::Sending),
            sent: Arc::default(),
        });
        let body = Self {
            mode: Mode::Recording {
                inner: Some(body),
                recorded: Recorded::default(),
                limit,
                handoff: Arc::clone(&handoff),
            },
        };
        (body, handoff)
    }
}

impl<B> Handoff<B> {
    fn set(&self, state: State<B>) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
        self.sent.mark();
    }

    pub(super) fn sent(&self) -> &Arc<Sent> {
        &self.sent
    }

    /// The body for the second attempt, or why there is none. Takes the
    /// recording: there is no third attempt.
    pub(super) fn replay(&self) -> Result<ReplayBody<B>, NotReplayable> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = std::mem::replace(
            &mut *state,
            State::Unavailable(NotReplayable::AlreadyReplayed),
        );
        let (recorded, rest) = match taken {
            State::Complete(recorded) => (recorded, None),
            State::Interrupted(recorded, rest) => (recorded, Some(rest)),
            State::Sending => {
                *state = State::Sending;
                return Err(NotReplayable::StillSending);
            }
            State::Unavailable(why) => {
                *state = State::Unavailable(why);
                return Err(why);
            }
        };
        Ok(ReplayBody {
            mode: Mode::Replaying {
                chunks: recorded.chunks,
                trailers: recorded.trailers,
                rest,
            },
        })
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match &mut self.get_mut().mode {
            Mode::Recording {
                inner,
                recorded,
                limit,
                handoff,
            } => {
                let Some(body) = inner.as_mut() else {
                    return Poll::Ready(None);
                };
                let frame = ready!(Pin::new(body).poll_frame(cx));
                // Once the response came and its future is gone, nothing
                // can replay the body: a long stream (a gRPC client stream,
                // an upload answered early) must not keep a copy for life.
                if Arc::strong_count(handoff) == 1 {
                    recorded.abandon();
                }
                match &frame {
                    Some(Ok(frame)) => recorded.record(frame, *limit, handoff),
                    Some(Err(_)) => {
                        handoff.set(State::Unavailable(NotReplayable::Failed));
                        recorded.abandon();
                        *inner = None;
                    }
                    None => {
                        if recorded.is_usable(*limit) {
                            handoff.set(State::Complete(std::mem::take(recorded)));
                        }
                        *inner = None;
                    }
                }
                Poll::Ready(frame)
            }
            Mode::Replaying {
                chunks,
                trailers,
                rest,
            } => {
                if let Some(chunk) = chunks.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                if let Some(body) = rest.as_mut() {
                    match ready!(Pin::new(body).poll_frame(cx)) {
                        Some(frame) => return Poll::Ready(Some(frame)),
                        None => *rest = None,
                    }
                }
                Poll::Ready(
                    trailers
                        .take()
                        .map(|trailers| Ok(Frame::trailers(trailers))),
                )
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.mode {
            Mode::Recording { inner, .. } => inner.as_ref().is_none_or(Body::is_end_stream),
            Mode::Replaying {
                chunks,
                trailers,
                rest,
            } => {
                chunks.is_empty()
                    && trailers.is_none()
                    && rest.as_ref().is_none_or(Body::is_end_stream)
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.mode {
            Mode::Recording { inner, .. } => inner
                .as_ref()
                .map_or_else(|| SizeHint::with_exact(0), Body::size_hint),
            Mode::Replaying { chunks, rest, .. } => {
                let buffered: u64 = chunks.iter().map(|chunk| chunk.len() as u64).sum();
                let rest = rest
                    .as_ref()
                    .map_or_else(|| SizeHint::with_exact(0), Body::size_hint);
                // A body may announce an upper bound up to `u64::MAX`.
                let mut hint = SizeHint::new();
                hint.set_lower(buffered.saturating_add(rest.lower()));
                if let Some(upper) = rest.upper().and_then(|upper| upper.checked_add(buffered)) {
                    hint.set_upper(upper);
                }
                hint
            }
        }
    }
}

impl<B> Drop for ReplayBody<B> {
    fn drop(&mut self) {
        // A first attempt dropped before the end hands the rest over.
        if let Mode::Recording {
            inner,
            recorded,
            limit,
            handoff,
        } = &mut self.mode
            && let Some(rest) = inner.take()
            && recorded.is_usable(*limit)
        {
            let mut state = handoff.state.lock().unwrap_or_else(PoisonError::into_inner);
            if matches!(*state, State::Sending) {
                *state = State::Interrupted(std::mem::take(recorded), rest);
            }
            drop(state);
            handoff.sent.mark();
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.mode {
            Mode::Recording { .. } => "Recording",
            Mode::Replaying { .. } => "Replaying",
        };
        f.debug_struct("ReplayBody")
            .field("mode", &mode)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    use super::*;

    /// A body fed frame by frame by the test.
    struct ChannelBody(mpsc::UnboundedReceiver<Frame<Bytes>>);

    impl Body for ChannelBody {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.0.poll_recv(cx).map(|frame| frame.map(Ok))
        }
    }

    async fn collect<B>(body: B) -> (Bytes, Option<HeaderMap>)
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Debug,
    {
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().cloned();
        (collected.to_bytes(), trailers)
    }

    #[tokio::test]
    async fn a_complete_body_is_replayed_with_its_trailers() {
        let body =
            http_body_util::Full::new(Bytes::from_static(b"hello world")).with_trailers(async {
                let mut trailers = HeaderMap::new();
                trailers.insert("checksum", "abc".parse().unwrap());
                Some(Ok::<_, Infallible>(trailers))
            });
        let (recorder, handoff) = ReplayBody::recording(Box::pin(body), 1024);
        assert_eq!(handoff.replay().err(), Some(NotReplayable::StillSending));
        let (first, first_trailers) = collect(recorder).await;
        let (second, second_trailers) = collect(handoff.replay().unwrap()).await;
        assert_eq!(first, "hello world");
        assert_eq!(second, first);
        assert_eq!(second_trailers, first_trailers);
        assert_eq!(second_trailers.unwrap()["checksum"], "abc");
        assert_eq!(handoff.replay().err(), Some(NotReplayable::AlreadyReplayed));
    }

    #[tokio::test]
    async fn nothing_is_kept_once_nothing_can_replay_the_body() {
        // The response passed and its future, holding the way to replay,
        // is gone, while the first attempt still streams its body.
        let (sender, receiver) = mpsc::unbounded_channel();
        let (mut recorder, handoff) = ReplayBody::recording(ChannelBody(receiver), 1 << 20);
        let mut sent = Vec::new();
        let chunk = |sent: &mut Vec<Bytes>| {
            let data = Bytes::from(vec![0u8; 1024]);
            sent.push(data.clone());
            sender.send(Frame::data(data)).unwrap();
        };
        chunk(&mut sent);
        drop(recorder.frame().await.unwrap().unwrap());
        assert!(!sent[0].is_unique(), "kept while a retry may need it");
        drop(handoff);
        for _ in 0..32 {
            chunk(&mut sent);
            drop(recorder.frame().await.unwrap().unwrap());
        }
        assert!(
            sent.iter_mut().all(|data| data.is_unique()),
            "nothing is kept once nothing can replay it"
        );
    }

    /// A body that only says it has at most `u64::MAX` bytes.
    struct Vague(Option<Bytes>);

    impl Body for Vague {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.take().map(|data| Ok(Frame::data(data))))
        }

        fn size_hint(&self) -> SizeHint {
            let mut hint = SizeHint::new();
            hint.set_upper(u64::MAX);
            hint
        }
    }

    #[tokio::test]
    async fn a_replay_adds_up_size_hints_without_overflowing() {
        let (mut recorder, handoff) =
            ReplayBody::recording(Vague(Some(Bytes::from_static(b"abc"))), 1024);
        recorder.frame().await.unwrap().unwrap();
        drop(recorder);
        let hint = handoff.replay().unwrap().size_hint();
        assert_eq!((hint.lower(), hint.upper()), (3, None));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_forwarded_but_not_replayed() {
        let (sender, receiver) = mpsc::unbounded_channel();
        for _ in 0..10 {
            sender
                .send(Frame::data(Bytes::from(vec![7u8; 10])))
                .unwrap();
        }
        drop(sender);
        let (recorder, handoff) = ReplayBody::recording(ChannelBody(receiver), 99);
        let (first, _) = collect(recorder).await;
        assert_eq!(first.len(), 100, "the first attempt is sent whole");
        assert_eq!(handoff.replay().err(), Some(NotReplayable::OverLimit));
    }

    #[tokio::test]
    async fn an_interrupted_body_replays_the_recording_then_the_rest() {
        let (sender, receiver) = mpsc::unbounded_channel();
        let (mut recorder, handoff) = ReplayBody::recording(ChannelBody(receiver), 1024);

        sender
            .send(Frame::data(Bytes::from_static(b"one ")))
            .unwrap();
        let frame = recorder.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "one ");
        // The first attempt stops here (the server answered early).
        drop(recorder);

        sender
            .send(Frame::data(Bytes::from_static(b"two")))
            .unwrap();
        drop(sender);
        let replay = handoff.replay().unwrap();
        assert_eq!(replay.size_hint().lower(), 4);
        let (second, _) = collect(replay).await;
        assert_eq!(second, "one two");
    }

    #[tokio::test]
    async fn size_hints_and_end_of_stream_pass_through() {
        let body = http_body_util::Full::new(Bytes::from_static(b"12345"));
        let (recorder, handoff) = ReplayBody::recording(body, 1024);
        assert_eq!(recorder.size_hint().exact(), Some(5));
        assert!(!recorder.is_end_stream());
        collect(recorder).await;
        let replay = handoff.replay().unwrap();
        assert_eq!(replay.size_hint().exact(), Some(5));
        assert!(!replay.is_end_stream());
        let (second, _) = collect(replay).await;
        assert_eq!(second, "12345");
    }
}

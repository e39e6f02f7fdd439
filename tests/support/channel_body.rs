//! A body the test feeds frame by frame.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};
use tokio::sync::mpsc;

/// Receives frames from a [`Feeder`].
pub struct ChannelBody(mpsc::UnboundedReceiver<Frame<Bytes>>);

/// Sends frames to a [`ChannelBody`]; dropping it ends the body.
#[derive(Clone)]
pub struct Feeder(mpsc::UnboundedSender<Frame<Bytes>>);

pub fn channel_body() -> (Feeder, ChannelBody) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (Feeder(sender), ChannelBody(receiver))
}

impl Feeder {
    pub fn data(&self, data: impl Into<Bytes>) {
        let _ = self.0.send(Frame::data(data.into()));
    }

    pub fn trailers(&self, trailers: HeaderMap) {
        let _ = self.0.send(Frame::trailers(trailers));
    }
}

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

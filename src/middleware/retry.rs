//! What a request keeps to be sent once more after a rejection.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::{Extensions, HeaderMap, Method, Request, Uri, Version};

use crate::{Replay, ReplayableBody};

/// How long a rejected request waits for its first attempt to be done with
/// a recorded body (over HTTP/1.1 the connection may still be sending it
/// when the rejection arrives) before giving up on the retry.
const BODY_SENT_WAIT: Duration = Duration::from_secs(1);

/// The second attempt of one request: a service to send it with, a copy of
/// its head, and how to rebuild its body.
pub(super) struct Retry<S, B> {
    pub(super) service: S,
    head: Head,
    replay: Replay<B>,
}

/// A copy of a request's head.
struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
}

impl<S, B> Retry<S, B> {
    /// Prepares `request` to be sent, and what a second attempt needs if it
    /// is possible (or why it is not).
    pub(super) fn plan(
        service: &S,
        request: Request<B>,
        limit: usize,
    ) -> (Request<B>, Result<Self, &'static str>)
    where
        S: Clone,
        B: ReplayableBody,
    {
        let (parts, body) = request.into_parts();
        let (body, replay) = body.prepare_replay(limit);
        let request = Request::from_parts(parts, body);
        let retry = Self::prepare(service, &request, replay);
        (request, retry)
    }

    /// Copies what a retry of `request` needs, if its body can be replayed;
    /// otherwise returns why not.
    fn prepare(service: &S, request: &Request<B>, replay: Replay<B>) -> Result<Self, &'static str>
    where
        S: Clone,
    {
        if let Some(why) = replay.never_reason() {
            return Err(why);
        }
        Ok(Self {
            service: service.clone(),
            head: Head {
                method: request.method().clone(),
                uri: request.uri().clone(),
                version: request.version(),
                headers: request.headers().clone(),
                extensions: request.extensions().clone(),
            },
            replay,
        })
    }

    /// A future that ends once the first attempt is done with the body, if
    /// it may not be yet.
    pub(super) fn until_sent(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        self.replay
            .until_sent(BODY_SENT_WAIT)
            .map(|wait| Box::pin(wait) as Pin<Box<dyn Future<Output = ()> + Send>>)
    }

    /// The request to send again, or why it cannot be.
    pub(super) fn into_request(self) -> Result<(S, Request<B>), &'static str> {
        let body = self.replay.into_body()?;
        let mut request = Request::new(body);
        *request.method_mut() = self.head.method;
        *request.uri_mut() = self.head.uri;
        *request.version_mut() = self.head.version;
        *request.headers_mut() = self.head.headers;
        *request.extensions_mut() = self.head.extensions;
        Ok((self.service, request))
    }
}

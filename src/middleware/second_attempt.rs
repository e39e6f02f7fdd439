//! [`SecondAttempt`]: what a request keeps to be sent once more after a
//! rejection.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap, Method, Request, Uri, Version};

use super::{Origin, RetryRejected};
use crate::replay::NotReplayable;
use crate::{PrepareReplay, Replay};

/// How long a rejected request waits for its first attempt to be done with
/// a recorded body (over HTTP/1.1 the connection may still be sending it
/// when the rejection arrives) before giving up on the retry.
const BODY_SENT_WAIT: Duration = Duration::from_secs(1);

/// A future that ends when the first attempt is done with the body.
pub(super) type UntilSent = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The second attempt of one request: a service to send it with, a copy of
/// its head, and how to rebuild its body.
pub(super) struct SecondAttempt<S, B> {
    service: S,
    head: RequestHead,
    replay: Replay<B>,
    limit: usize,
}

/// Why a request has no second attempt, and what the event that says so
/// names: where it went and the replay limit.
pub(super) struct NoSecond {
    pub(super) why: NotReplayable,
    pub(super) origin: Option<Origin>,
    pub(super) limit: usize,
}

/// A copy of a request's head.
struct RequestHead {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
}

impl<S, B> SecondAttempt<S, B> {
    /// Prepares `request` to be sent, and what a second attempt needs if it
    /// is possible (or why it is not). The copy of the head keeps no
    /// `Authorization`: the second attempt gets a new token.
    pub(super) fn plan<P: PrepareReplay<B>>(
        service: &S,
        request: Request<B>,
        retry: &RetryRejected<P>,
    ) -> (Request<B>, Result<Box<Self>, NoSecond>)
    where
        S: Clone,
    {
        let (parts, body) = request.into_parts();
        let (body, replay) = retry.prepare.prepare_replay(body, retry.limit);
        let second = match replay.never_reason() {
            Some(why) => Err(NoSecond {
                why,
                // Known up front for a body over the limit, which is worth
                // naming where it went; not for a body type that is never
                // replayed (`Incoming`, say), whose every request would pay
                // for a copy of its origin.
                origin: match why {
                    NotReplayable::OverLimit => Origin::of(&parts.uri),
                    _ => None,
                },
                limit: retry.limit,
            }),
            None => {
                let mut headers = parts.headers.clone();
                headers.remove(AUTHORIZATION);
                Ok(Box::new(Self {
                    service: service.clone(),
                    head: RequestHead {
                        method: parts.method.clone(),
                        uri: parts.uri.clone(),
                        version: parts.version,
                        headers,
                        extensions: parts.extensions.clone(),
                    },
                    replay,
                    limit: retry.limit,
                }))
            }
        };
        (Request::from_parts(parts, body), second)
    }

    /// A future that ends once the first attempt is done with the body, if
    /// it may not be yet.
    pub(super) fn until_sent(&self) -> Option<UntilSent> {
        self.replay
            .until_sent(BODY_SENT_WAIT)
            .map(|wait| Box::pin(wait) as UntilSent)
    }

    /// The request to send again, or why it cannot be.
    pub(super) fn into_request(self) -> Result<(S, Request<B>), NoSecond> {
        let body = match self.replay.into_body() {
            Ok(body) => body,
            Err(why) => {
                return Err(NoSecond {
                    why,
                    origin: Origin::of(&self.head.uri),
                    limit: self.limit,
                });
            }
        };
        let mut request = Request::new(body);
        *request.method_mut() = self.head.method;
        *request.uri_mut() = self.head.uri;
        *request.version_mut() = self.head.version;
        *request.headers_mut() = self.head.headers;
        *request.extensions_mut() = self.head.extensions;
        Ok((self.service, request))
    }
}

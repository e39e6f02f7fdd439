//! [`TokenRejected`]: what a response says when the layer saw its request's
//! token rejected, and [`NotRetried`]: why such a request was not sent
//! again.

use std::fmt;

use super::Origin;
use crate::replay::NotReplayable;

/// A response extension: the server rejected the token this request was
/// sent with (a `401`, or gRPC `UNAUTHENTICATED` in the response head), and
/// whether the layer sent the request again.
///
/// Without it, a rejection the layer did not retry reaches the caller as a
/// bare `401`: a gateway would pass it on as if its own caller had failed to
/// authenticate. With it, the caller can tell the upstream's rejection of
/// *our* token (and answer `502`, say) and which cache's token it was.
///
/// - Not retried ([`not_retried`](Self::not_retried) is `Some`): the
///   response is the rejection itself.
/// - Retried ([`retried`](Self::retried)): the response is the second
///   attempt's, sent with a new token; if that was rejected too,
///   `not_retried` says [`NotRetried::AlreadyRetried`].
///
/// A rejection in gRPC trailers comes after the response was handed over:
/// it drops the token, but the response carries no extension.
///
/// # Example
///
/// ```
/// use http::{Response, StatusCode};
/// use tower_token_refresh::{NotRetried, TokenRejected};
///
/// fn upstream_status<B>(response: &Response<B>) -> StatusCode {
///     match response.extensions().get::<TokenRejected>() {
///         // The upstream refused our token: not the caller's fault.
///         Some(rejected) if rejected.not_retried().is_some() => StatusCode::BAD_GATEWAY,
///         _ => response.status(),
///     }
/// }
/// # let response = Response::new(());
/// # assert_eq!(upstream_status(&response), StatusCode::OK);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRejected {
    cache: String,
    retried: bool,
    not_retried: Option<NotRetried>,
}

impl TokenRejected {
    pub(super) fn new(cache: &str, retried: bool, not_retried: Option<NotRetried>) -> Self {
        Self {
            cache: cache.to_owned(),
            retried,
            not_retried,
        }
    }

    /// The [name](crate::TokenCache::name) of the cache whose token was
    /// rejected: with [`TokenRoutes`](crate::TokenRoutes), which API.
    pub fn cache(&self) -> &str {
        &self.cache
    }

    /// Whether the request was sent a second time, with a new token: the
    /// response is that attempt's.
    pub fn retried(&self) -> bool {
        self.retried
    }

    /// Why the response is a rejection the layer did not retry (`None`: the
    /// retry was answered otherwise).
    pub fn not_retried(&self) -> Option<NotRetried> {
        self.not_retried
    }
}

/// Why a rejected request went back to its caller instead of being sent
/// again with a new token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotRetried {
    /// The layer does not retry ([`NoRetry`](crate::NoRetry), the default;
    /// see [`TokenRefreshLayer::retry_rejected`](crate::TokenRefreshLayer::retry_rejected)).
    Off,
    /// The request was already sent a second time, and rejected again.
    AlreadyRetried,
    /// No new token could be had (the token source failed).
    NoNewToken,
    /// Its body cannot be sent again.
    Body(NotReplayable),
}

impl NotRetried {
    /// What it says, as in `tracing` events.
    pub fn as_str(self) -> &'static str {
        match self {
            NotRetried::Off => "retrying is off (see `TokenRefreshLayer::retry_rejected`)",
            NotRetried::AlreadyRetried => "the request was already retried once",
            NotRetried::NoNewToken => "no new token could be had",
            NotRetried::Body(why) => why.as_str(),
        }
    }

    /// Says, in a `tracing` event, why the rejected request of `cache` is
    /// not retried: where it went (`origin`, when the layer kept it) and,
    /// for a body over it, the replay limit.
    pub(super) fn trace(self, cache: &str, origin: Option<&Origin>, limit: Option<usize>) {
        let limit = match self {
            NotRetried::Body(NotReplayable::OverLimit) => limit,
            _ => None,
        };
        tracing::info!(
            cache,
            origin = origin.map(tracing::field::display),
            replay_limit = limit,
            reason = self.as_str(),
            "rejected request not retried"
        );
    }
}

impl fmt::Display for NotRetried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

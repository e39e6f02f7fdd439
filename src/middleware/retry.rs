//! How a layer treats a rejected request: [`NoRetry`] (the default) or
//! [`RetryRejected`].

use std::fmt;

use crate::replay::{ByBodyType, DEFAULT_REPLAY_LIMIT, NotReplayable};

/// A rejected request goes back to the caller: the default of
/// [`TokenRefreshLayer`](crate::TokenRefreshLayer). The token is dropped
/// all the same, so the next request gets a new one. The layer then puts no
/// bound on the request body type.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRetry;

/// A rejected request is sent once more with a new token, when its body can
/// be sent again: set by
/// [`TokenRefreshLayer::retry_rejected`](crate::TokenRefreshLayer::retry_rejected).
///
/// `P` prepares each body to be sent again ([`PrepareReplay`](crate::PrepareReplay));
/// by default each body type's own [`ReplayableBody`](crate::ReplayableBody).
#[derive(Clone)]
pub struct RetryRejected<P = ByBodyType> {
    pub(super) limit: usize,
    pub(super) prepare: P,
}

impl Default for RetryRejected {
    fn default() -> Self {
        Self {
            limit: DEFAULT_REPLAY_LIMIT,
            prepare: ByBodyType,
        }
    }
}

impl<P> fmt::Debug for RetryRejected<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryRejected")
            .field("replay_limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// Why a rejected request goes back to its caller instead of being sent
/// again; said in a `tracing` event.
#[derive(Debug, Clone, Copy)]
pub(super) enum NotRetried {
    /// The layer does not retry ([`NoRetry`]).
    Off,
    /// This was the second attempt already.
    AlreadyRetried,
    /// Its body cannot be sent again.
    Body(NotReplayable),
}

impl NotRetried {
    fn as_str(self) -> &'static str {
        match self {
            NotRetried::Off => "retrying is off (see `TokenRefreshLayer::retry_rejected`)",
            NotRetried::AlreadyRetried => "the request was already retried once",
            NotRetried::Body(why) => why.as_str(),
        }
    }

    /// Says why the rejected request is not retried.
    pub(super) fn trace(self) {
        tracing::info!(reason = self.as_str(), "rejected request not retried");
    }
}

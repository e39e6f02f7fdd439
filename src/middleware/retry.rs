//! How a layer treats a rejected request: [`NoRetry`] (the default) or
//! [`RetryRejected`].

use std::fmt;

use crate::replay::{ByBodyType, DEFAULT_REPLAY_LIMIT};

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

//! [`CacheStats`]: counters of what a cache did, for metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use super::TimeLeft;

/// A snapshot of a [`TokenCache`](crate::TokenCache)'s counters, from
/// [`TokenCache::stats`](crate::TokenCache::stats). Counters only grow;
/// export them as monotonic counters (e.g. Prometheus `_total`).
///
/// ```
/// # use tower_token_refresh::{BoxError, Token, TokenCache};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let cache = TokenCache::new(|| async {
///     Ok::<_, BoxError>(Token::bearer("t").expires_in(std::time::Duration::from_secs(60)))
/// });
/// cache.token().await?;
/// let stats = cache.stats();
/// assert_eq!(stats.fetches, 1);
/// assert_eq!(stats.waited, 1);
/// assert!(stats.time_left.as_duration().is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls to the token source.
    pub fetches: u64,
    /// Calls to the token source that failed (error, timeout, panic,
    /// unusable token).
    pub fetch_failures: u64,
    /// Refreshes started ahead of expiry, while the token was still in use.
    pub refreshes_ahead: u64,
    /// Refreshes started because the server rejected the token.
    pub refreshes_after_rejection: u64,
    /// Tokens dropped because the server rejected them.
    pub rejections: u64,
    /// Requests sent a second time after a rejection.
    pub retries: u64,
    /// Callers that had to wait for a refresh (no usable token).
    pub waited: u64,
    /// Refreshes that took a token another process (or an earlier run)
    /// saved in the [store](crate::TokenCacheBuilder::store) instead of
    /// calling the source.
    pub store_hits: u64,
    /// Calls to the store that failed (the cache then fetched on its own).
    pub store_failures: u64,
    /// How long the current token has left, or whether there is none.
    pub time_left: TimeLeft,
}

/// The live counters behind [`CacheStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) fetches: AtomicU64,
    pub(crate) fetch_failures: AtomicU64,
    pub(crate) refreshes_ahead: AtomicU64,
    pub(crate) refreshes_after_rejection: AtomicU64,
    pub(crate) rejections: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) waited: AtomicU64,
    pub(crate) store_hits: AtomicU64,
    pub(crate) store_failures: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, time_left: TimeLeft) -> CacheStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            fetches: read(&self.fetches),
            fetch_failures: read(&self.fetch_failures),
            refreshes_ahead: read(&self.refreshes_ahead),
            refreshes_after_rejection: read(&self.refreshes_after_rejection),
            rejections: read(&self.rejections),
            retries: read(&self.retries),
            waited: read(&self.waited),
            store_hits: read(&self.store_hits),
            store_failures: read(&self.store_failures),
            time_left,
        }
    }
}

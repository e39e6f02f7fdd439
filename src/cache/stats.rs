//! [`CacheStats`]: counters of what a cache did, for metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use super::TimeLeft;
use crate::Token;

/// A snapshot of a [`TokenCache`](crate::TokenCache)'s counters, from
/// [`TokenCache::stats`](crate::TokenCache::stats). Counters only grow;
/// export them as monotonic counters (e.g. Prometheus `_total`).
///
/// With the `metrics` feature, every cache also reports these counters and
/// its token's expiry through the `metrics` facade, labelled with the
/// cache's [name](crate::TokenCache::name): see the `metrics` module for
/// the metric names.
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

/// One of a cache's counters; with the `metrics` feature, also reported
/// through the `metrics` facade.
#[derive(Debug)]
pub(crate) struct Counter {
    value: AtomicU64,
    #[cfg(feature = "metrics")]
    exported: ::metrics::Counter,
}

impl Default for Counter {
    fn default() -> Self {
        Self {
            value: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            exported: ::metrics::Counter::noop(),
        }
    }
}

impl Counter {
    #[cfg(feature = "metrics")]
    fn exported(exported: ::metrics::Counter) -> Self {
        Self {
            exported,
            ..Self::default()
        }
    }

    fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// The live counters behind [`CacheStats`], and with the `metrics` feature
/// the cache's metrics handles, registered once when the cache is built.
#[derive(Debug)]
#[cfg_attr(not(feature = "metrics"), derive(Default))]
pub(crate) struct Counters {
    pub(crate) fetches: Counter,
    pub(crate) fetch_failures: Counter,
    pub(crate) refreshes_ahead: Counter,
    pub(crate) refreshes_after_rejection: Counter,
    pub(crate) rejections: Counter,
    pub(crate) retries: Counter,
    pub(crate) waited: Counter,
    pub(crate) store_hits: Counter,
    pub(crate) store_failures: Counter,
    /// The current token's expiry, in Unix seconds.
    #[cfg(feature = "metrics")]
    expiry: ::metrics::Gauge,
}

impl Counters {
    /// The counters of the cache named `cache`.
    #[cfg(not(feature = "metrics"))]
    pub(crate) fn new(_cache: &str) -> Self {
        Self::default()
    }

    /// The counters of the cache named `cache`, registered with the
    /// `metrics` recorder in force (a no-op one if none is installed yet).
    #[cfg(feature = "metrics")]
    pub(crate) fn new(cache: &str) -> Self {
        use crate::metrics::{self as m, Metric};
        m::describe();
        let counter = |metric: &Metric| Counter::exported(metric.counter(cache));
        Self {
            fetches: counter(&m::FETCHES),
            fetch_failures: counter(&m::FETCH_FAILURES),
            refreshes_ahead: counter(&m::REFRESHES_AHEAD),
            refreshes_after_rejection: counter(&m::REFRESHES_AFTER_REJECTION),
            rejections: counter(&m::REJECTIONS),
            retries: counter(&m::RETRIES),
            waited: counter(&m::WAITS),
            store_hits: counter(&m::STORE_HITS),
            store_failures: counter(&m::STORE_FAILURES),
            expiry: m::TOKEN_EXPIRY.gauge(cache),
        }
    }

    pub(crate) fn add(counter: &Counter) {
        counter.value.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        counter.exported.increment(1);
    }

    /// Reports the expiry of `token`, just published, or that the token
    /// was dropped (`None`). Called where the current token changes, never
    /// on the request path.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn set_expiry(&self, token: Option<&Token>) {
        #[cfg(feature = "metrics")]
        self.expiry.set(crate::metrics::unix_expiry(token));
    }

    pub(crate) fn snapshot(&self, time_left: TimeLeft) -> CacheStats {
        CacheStats {
            fetches: self.fetches.get(),
            fetch_failures: self.fetch_failures.get(),
            refreshes_ahead: self.refreshes_ahead.get(),
            refreshes_after_rejection: self.refreshes_after_rejection.get(),
            rejections: self.rejections.get(),
            retries: self.retries.get(),
            waited: self.waited.get(),
            store_hits: self.store_hits.get(),
            store_failures: self.store_failures.get(),
            time_left,
        }
    }
}

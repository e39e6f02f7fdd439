//! Metrics through the [`metrics`](https://docs.rs/metrics/0.24) facade:
//! every cache's counters and token expiry, for any `metrics` exporter
//! (Prometheus, OpenTelemetry, StatsD, …), without exporter code of your
//! own.
//!
//! With the `metrics` feature, each [`TokenCache`](crate::TokenCache)
//! registers the metrics below when it is
//! [built](crate::TokenCacheBuilder::build), with one label, `cache`, its
//! [name](crate::TokenCache::name), and updates them as it works. The
//! counters are those of [`CacheStats`](crate::CacheStats), counted at the
//! same moments.
//!
//! | metric | type | unit | meaning |
//! |---|---|---|---|
//! | `token_refresh_fetches_total` | counter | count | Calls to the token source ([`fetches`](crate::CacheStats::fetches)) |
//! | `token_refresh_fetch_failures_total` | counter | count | Calls to the token source that failed: error, timeout, panic, unusable token ([`fetch_failures`](crate::CacheStats::fetch_failures)) |
//! | `token_refresh_refreshes_ahead_total` | counter | count | Refreshes started ahead of expiry, while the token was still in use ([`refreshes_ahead`](crate::CacheStats::refreshes_ahead)) |
//! | `token_refresh_refreshes_after_rejection_total` | counter | count | Refreshes started because the server rejected the token ([`refreshes_after_rejection`](crate::CacheStats::refreshes_after_rejection)) |
//! | `token_refresh_rejections_total` | counter | count | Tokens dropped because the server rejected them ([`rejections`](crate::CacheStats::rejections)) |
//! | `token_refresh_retries_total` | counter | count | Requests sent a second time after a rejection ([`retries`](crate::CacheStats::retries)) |
//! | `token_refresh_waits_total` | counter | count | Callers that had to wait for a refresh, having no usable token ([`waited`](crate::CacheStats::waited)) |
//! | `token_refresh_store_hits_total` | counter | count | Refreshes that took a token from the [store](crate::TokenCacheBuilder::store) instead of calling the source ([`store_hits`](crate::CacheStats::store_hits)) |
//! | `token_refresh_store_failures_total` | counter | count | Calls to the store that failed ([`store_failures`](crate::CacheStats::store_failures)) |
//! | `token_refresh_token_expiry_timestamp_seconds` | gauge | seconds | When the current token expires, in Unix time; `0` when there is no token, `+Inf` when it never expires ([`time_left`](crate::CacheStats::time_left)) |
//!
//! Each metric is described (help text and unit) to the recorder when a
//! cache is built. The names carry Prometheus' suffixes (`_total`,
//! `_seconds`) already, so they come out the same whether or not the
//! exporter adds suffixes of its own (`metrics-exporter-prometheus`'s
//! `with_recommended_naming`); OpenTelemetry exporters take them as they
//! are.
//!
//! # Install the recorder first
//!
//! A cache registers its metrics, once, with the recorder in force when it
//! is built: the global recorder, or a local one set on the building thread
//! (`metrics::with_local_recorder`), which the cache then keeps reporting
//! to from any thread. A cache built before a recorder is installed reports
//! nothing, for its whole life. So install the exporter at the start of
//! `main`, as usual with the `metrics` crate, and build caches after it.
//!
//! # Names
//!
//! The `cache` label is the cache's [name](crate::TokenCache::name). Give
//! each cache its own with
//! [`TokenCacheBuilder::name`](crate::TokenCacheBuilder::name), one that
//! stays the same across restarts (the API its tokens are for, say
//! `orders-api`), so that series continue when a process restarts. Caches
//! with the same name share series: their counters add up, and the expiry
//! gauge shows the token of whichever published last. A cache without a
//! name of its own takes its source's [name](crate::TokenSource::name)
//! (`token source` for closures).
//!
//! # Time left
//!
//! The token's time left is exported as its expiry time,
//! `token_refresh_token_expiry_timestamp_seconds` (as cert-manager exports
//! certificate expiry). The expiry changes only when a token is published
//! or dropped, so the gauge, set at those moments, is right at any time in
//! between, at no cost. A gauge of seconds left would instead be stale
//! between updates, unless a timer per cache rewrote it every few seconds;
//! and alerting on a timestamp is the Prometheus way. The time left is one
//! subtraction in PromQL:
//!
//! ```text
//! token_refresh_token_expiry_timestamp_seconds - time()
//! ```
//!
//! It is negative once the token has expired, and when there is no token
//! (the gauge is then `0`), and `+Inf` for a token that never expires. An
//! alert when a cache has less than a minute of token left (or none):
//!
//! ```text
//! token_refresh_token_expiry_timestamp_seconds{cache="orders-api"} - time() < 60
//! ```
//!
//! The cache keeps expiry on the monotonic clock, and converts it to
//! wall-clock time once, when the token is published: should the system
//! clock be stepped afterwards, the gauge is off by as much until the next
//! token. In the process,
//! [`CacheStats::time_left`](crate::CacheStats::time_left) gives the time
//! left directly.
//!
//! # Cost
//!
//! Nothing on the request path: a request that finds a fresh token touches
//! no metric. Counters are incremented where the cache counts for
//! [`CacheStats`](crate::CacheStats) (fetches, refreshes, rejections,
//! retries, waits), through handles registered once per cache; the gauge is
//! set when the token changes.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower_token_refresh::{BoxError, Token, TokenCache};
//! # use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // First install an exporter, e.g. `PrometheusBuilder::new().install()?`
//! // with metrics-exporter-prometheus; here a recorder that keeps values.
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! metrics::set_global_recorder(recorder)?;
//!
//! // Then build caches: each reports as `cache="orders-api"`.
//! let cache = TokenCache::builder(|| async {
//!     Ok::<_, BoxError>(Token::bearer("abc").expires_in(Duration::from_secs(3600)))
//! })
//! .name("orders-api")
//! .build();
//! cache.token().await?;
//!
//! // token_refresh_fetches_total{cache="orders-api"} 1
//! let fetches = snapshotter.snapshot().into_vec().into_iter().find_map(|(key, _, _, value)| {
//!     let key = key.key();
//!     let labels: Vec<_> = key.labels().map(|label| (label.key(), label.value())).collect();
//!     (key.name() == "token_refresh_fetches_total" && labels == [("cache", "orders-api")])
//!         .then_some(value)
//! });
//! assert_eq!(fetches, Some(DebugValue::Counter(1)));
//! # Ok(())
//! # }
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use ::metrics::Unit;

use crate::{TimeLeft, Token};

/// The label naming the cache.
const CACHE_LABEL: &str = "cache";

/// A metric of a cache: its name and help text.
pub(crate) struct Metric {
    name: &'static str,
    help: &'static str,
}

pub(crate) const FETCHES: Metric = Metric {
    name: "token_refresh_fetches_total",
    help: "Calls to the token source.",
};
pub(crate) const FETCH_FAILURES: Metric = Metric {
    name: "token_refresh_fetch_failures_total",
    help: "Calls to the token source that failed (error, timeout, panic, unusable token).",
};
pub(crate) const REFRESHES_AHEAD: Metric = Metric {
    name: "token_refresh_refreshes_ahead_total",
    help: "Refreshes started ahead of expiry, while the token was still in use.",
};
pub(crate) const REFRESHES_AFTER_REJECTION: Metric = Metric {
    name: "token_refresh_refreshes_after_rejection_total",
    help: "Refreshes started because the server rejected the token.",
};
pub(crate) const REJECTIONS: Metric = Metric {
    name: "token_refresh_rejections_total",
    help: "Tokens dropped because the server rejected them.",
};
pub(crate) const RETRIES: Metric = Metric {
    name: "token_refresh_retries_total",
    help: "Requests sent a second time after a rejection.",
};
pub(crate) const WAITS: Metric = Metric {
    name: "token_refresh_waits_total",
    help: "Callers that had to wait for a refresh (no usable token).",
};
pub(crate) const STORE_HITS: Metric = Metric {
    name: "token_refresh_store_hits_total",
    help: "Refreshes that took a token from the token store instead of calling the source.",
};
pub(crate) const STORE_FAILURES: Metric = Metric {
    name: "token_refresh_store_failures_total",
    help: "Calls to the token store that failed (the cache then fetched on its own).",
};
pub(crate) const TOKEN_EXPIRY: Metric = Metric {
    name: "token_refresh_token_expiry_timestamp_seconds",
    help: "When the current token expires, in Unix time (0: no token; +Inf: never expires).",
};

const COUNTERS: [&Metric; 9] = [
    &FETCHES,
    &FETCH_FAILURES,
    &REFRESHES_AHEAD,
    &REFRESHES_AFTER_REJECTION,
    &REJECTIONS,
    &RETRIES,
    &WAITS,
    &STORE_HITS,
    &STORE_FAILURES,
];

impl Metric {
    /// This counter of the cache named `cache`, registered with the
    /// recorder in force.
    pub(crate) fn counter(&self, cache: &str) -> ::metrics::Counter {
        ::metrics::counter!(self.name, CACHE_LABEL => cache.to_owned())
    }

    /// This gauge of the cache named `cache`, registered with the recorder
    /// in force.
    pub(crate) fn gauge(&self, cache: &str) -> ::metrics::Gauge {
        ::metrics::gauge!(self.name, CACHE_LABEL => cache.to_owned())
    }
}

/// Describes every metric to the recorder in force (recorders keep the
/// last description: describing again, for each cache, is harmless).
pub(crate) fn describe() {
    for metric in COUNTERS {
        ::metrics::describe_counter!(metric.name, Unit::Count, metric.help);
    }
    ::metrics::describe_gauge!(TOKEN_EXPIRY.name, Unit::Seconds, TOKEN_EXPIRY.help);
}

/// The value of the expiry gauge for `token`, the current token if any:
/// its expiry in Unix seconds, `0` without a token, `+Inf` if it never
/// expires.
pub(crate) fn unix_expiry(token: Option<&Token>) -> f64 {
    match TimeLeft::of(token) {
        TimeLeft::NoToken => 0.0,
        TimeLeft::NeverExpires => f64::INFINITY,
        TimeLeft::ExpiresIn(left) => match SystemTime::now().checked_add(left) {
            // Too far away to tell: as good as never.
            None => f64::INFINITY,
            Some(at) => at
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |since| since.as_secs_f64()),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_counter_is_described_and_named_after_the_conventions() {
        let mut names: Vec<_> = COUNTERS.iter().map(|metric| metric.name).collect();
        assert!(
            names
                .iter()
                .all(|name| name.starts_with("token_refresh_") && name.ends_with("_total"))
        );
        assert!(TOKEN_EXPIRY.name.ends_with("_timestamp_seconds"));
        names.push(TOKEN_EXPIRY.name);
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "names are unique");
    }

    #[tokio::test(start_paused = true)]
    async fn the_expiry_gauge_tells_no_token_and_no_expiry_apart() {
        assert_eq!(unix_expiry(None), 0.0);
        assert_eq!(unix_expiry(Some(&Token::bearer("t"))), f64::INFINITY);

        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let token = Token::bearer("t").expires_in(Duration::from_secs(60));
        let expiry = unix_expiry(Some(&token));
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(expiry >= (before + Duration::from_secs(60)).as_secs_f64());
        assert!(expiry <= (after + Duration::from_secs(60)).as_secs_f64());
    }
}

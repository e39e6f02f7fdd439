//! The `metrics` feature: what a cache reports through the `metrics` facade,
//! read back from a recorder of each test's own (set on the test's thread
//! while the cache is built; tests run in parallel, so never a global one).

use crate::support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use support::memory_store::MemoryStore;
use support::revoking_api::{RejectWith, RevokingApi};
use support::{Behaviour, TestSource, advance, settle};
use tower::Layer;
use tower_token_refresh::{CacheStats, TimeLeft, TokenCache, TokenCacheBuilder, TokenRefreshLayer};

const HOUR: Duration = Duration::from_secs(3600);

const EXPIRY: &str = "token_refresh_token_expiry_timestamp_seconds";

/// Reads one field of [`CacheStats`].
type Field = fn(&CacheStats) -> u64;

/// Every counter, with the [`CacheStats`] field it mirrors.
const COUNTERS: [(&str, Field); 9] = [
    ("token_refresh_fetches_total", |s| s.fetches),
    ("token_refresh_fetch_failures_total", |s| s.fetch_failures),
    ("token_refresh_refreshes_ahead_total", |s| s.refreshes_ahead),
    ("token_refresh_refreshes_after_rejection_total", |s| {
        s.refreshes_after_rejection
    }),
    ("token_refresh_rejections_total", |s| s.rejections),
    ("token_refresh_retries_total", |s| s.retries),
    ("token_refresh_waits_total", |s| s.waited),
    ("token_refresh_store_hits_total", |s| s.store_hits),
    ("token_refresh_store_failures_total", |s| s.store_failures),
];

/// A recorder that keeps every value and description, and reads them
/// without resetting them (`DebuggingRecorder`'s snapshots reset counters
/// and gauges to zero, and a gauge of zero means something here).
#[derive(Clone)]
struct TestRecorder {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry<Key, AtomicStorage>,
    descriptions: Mutex<HashMap<String, (Option<Unit>, String)>>,
}

impl TestRecorder {
    fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                registry: Registry::atomic(),
                descriptions: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Builds a cache with this recorder in force (on this thread only).
    fn build(&self, builder: TokenCacheBuilder) -> TokenCache {
        metrics::with_local_recorder(self, || builder.build())
    }

    /// Every series: its name and its labels.
    fn series(&self) -> Vec<(String, Vec<(String, String)>)> {
        let mut series = Vec::new();
        let mut add = |key: &Key| {
            let labels = key
                .labels()
                .map(|label| (label.key().to_owned(), label.value().to_owned()))
                .collect();
            series.push((key.name().to_owned(), labels));
        };
        self.inner.registry.visit_counters(|key, _| add(key));
        self.inner.registry.visit_gauges(|key, _| add(key));
        series.sort();
        series
    }

    fn counter(&self, name: &'static str, cache: &str) -> Option<u64> {
        let key = Key::from_parts(name, vec![metrics::Label::new("cache", cache.to_owned())]);
        let value = self.inner.registry.get_counter(&key)?;
        Some(value.load(Ordering::SeqCst))
    }

    fn gauge(&self, name: &'static str, cache: &str) -> Option<f64> {
        let key = Key::from_parts(name, vec![metrics::Label::new("cache", cache.to_owned())]);
        let value = self.inner.registry.get_gauge(&key)?;
        Some(f64::from_bits(value.load(Ordering::SeqCst)))
    }

    fn expiry(&self, cache: &str) -> f64 {
        self.gauge(EXPIRY, cache)
            .expect("the expiry gauge is registered")
    }

    fn description(&self, name: &str) -> Option<(Option<Unit>, String)> {
        self.inner.descriptions.lock().unwrap().get(name).cloned()
    }

    /// Asserts that every exported counter of `cache` equals its stats.
    #[track_caller]
    fn assert_matches(&self, cache: &TokenCache) {
        let stats = cache.stats();
        for (name, field) in COUNTERS {
            assert_eq!(
                self.counter(name, cache.name()),
                Some(field(&stats)),
                "{name}{{cache={:?}}} against {stats:?}",
                cache.name()
            );
        }
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner
            .descriptions
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned(), (unit, description.into_owned()));
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let registry = &self.inner.registry;
        registry.get_or_create_counter(key, |counter| Counter::from_arc(counter.clone()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let registry = &self.inner.registry;
        registry.get_or_create_gauge(key, |gauge| Gauge::from_arc(gauge.clone()))
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// Now in Unix seconds.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(start_paused = true)]
async fn a_cache_reports_its_counters_labelled_with_its_name() {
    let recorder = TestRecorder::new();
    let source = TestSource::issuing(HOUR);
    let cache = recorder.build(
        TokenCache::builder(source.clone())
            .name("orders-api")
            .refresh_before(Duration::from_secs(60))
            .backoff(Duration::from_secs(1), Duration::from_secs(1)),
    );

    // Registered when built: every counter at zero, one label, the name.
    let mut expected: Vec<_> = COUNTERS
        .iter()
        .map(|(name, _)| *name)
        .chain([EXPIRY])
        .map(|name| {
            let labels = vec![("cache".to_owned(), "orders-api".to_owned())];
            (name.to_owned(), labels)
        })
        .collect();
    expected.sort();
    assert_eq!(recorder.series(), expected);
    recorder.assert_matches(&cache);
    assert_eq!(recorder.expiry("orders-api"), 0.0, "no token yet");

    // Described once, with a unit and a help text.
    for (name, _) in COUNTERS {
        let (unit, help) = recorder.description(name).expect(name);
        assert_eq!(unit, Some(Unit::Count), "{name}");
        assert!(help.ends_with('.') && help.len() > 20, "{name}: {help}");
    }
    let (unit, help) = recorder.description(EXPIRY).unwrap();
    assert_eq!(unit, Some(Unit::Seconds));
    assert!(help.contains("Unix time"), "{help}");

    // A fetch, waited for.
    let token = cache.token().await.unwrap();
    assert_eq!(
        recorder.counter("token_refresh_fetches_total", "orders-api"),
        Some(1)
    );
    assert_eq!(
        recorder.counter("token_refresh_waits_total", "orders-api"),
        Some(1)
    );
    recorder.assert_matches(&cache);

    // Requests with a fresh token count nothing.
    for _ in 0..10 {
        cache.token().await.unwrap();
    }
    recorder.assert_matches(&cache);
    assert_eq!(cache.stats().fetches, 1);

    // A rejection, then the refresh it causes.
    assert!(cache.invalidate(&token));
    assert_eq!(
        recorder.counter("token_refresh_rejections_total", "orders-api"),
        Some(1)
    );
    assert_eq!(
        recorder.expiry("orders-api"),
        0.0,
        "no token after a rejection"
    );
    let token = cache.token().await.unwrap();
    assert_eq!(token.secret(), "token-2");
    assert_eq!(
        recorder.counter(
            "token_refresh_refreshes_after_rejection_total",
            "orders-api"
        ),
        Some(1)
    );
    assert_eq!(
        recorder.counter("token_refresh_fetches_total", "orders-api"),
        Some(2)
    );
    recorder.assert_matches(&cache);

    // A refresh ahead of expiry (the window opens 60 to 75 s before it).
    advance(HOUR - Duration::from_secs(50)).await;
    cache.token().await.unwrap();
    settle().await;
    assert_eq!(
        recorder.counter("token_refresh_refreshes_ahead_total", "orders-api"),
        Some(1)
    );
    assert_eq!(cache.token().await.unwrap().secret(), "token-3");
    recorder.assert_matches(&cache);

    // A failed fetch.
    source.set(Behaviour::Fail("identity provider down"));
    assert!(cache.invalidate(&cache.token().await.unwrap()));
    cache.token().await.unwrap_err();
    assert_eq!(
        recorder.counter("token_refresh_fetch_failures_total", "orders-api"),
        Some(1)
    );
    assert_eq!(
        recorder.counter("token_refresh_rejections_total", "orders-api"),
        Some(2)
    );
    recorder.assert_matches(&cache);
    assert_eq!(cache.stats().time_left, TimeLeft::NoToken);
    assert_eq!(recorder.expiry("orders-api"), 0.0);
}

#[tokio::test(start_paused = true)]
async fn the_expiry_gauge_follows_the_token() {
    let recorder = TestRecorder::new();
    let source = TestSource::issuing(HOUR);
    let cache = recorder.build(TokenCache::builder(source.clone()).name("orders-api"));
    assert_eq!(recorder.expiry("orders-api"), 0.0);

    // Published: its expiry in Unix time, an hour from now.
    let before = unix_now();
    let token = cache.token().await.unwrap();
    let after = unix_now();
    let expiry = recorder.expiry("orders-api");
    assert!(
        (before + 3600.0..=after + 3600.0).contains(&expiry),
        "{expiry} is not an hour after {before}..{after}"
    );
    // Time left, as PromQL computes it (`x - time()`), agrees with the stats.
    let left = cache.stats().time_left.as_duration().unwrap();
    assert_eq!(left, HOUR, "paused time");
    assert!((expiry - unix_now() - left.as_secs_f64()).abs() < 5.0);

    // Time passing changes nothing: the gauge is a timestamp.
    tokio::time::advance(Duration::from_secs(600)).await;
    assert_eq!(recorder.expiry("orders-api"), expiry);

    // Dropped: 0, no token.
    assert!(cache.invalidate(&token));
    assert_eq!(recorder.expiry("orders-api"), 0.0);

    // A token without expiry: +Inf (time left is +Inf too).
    source.set(Behaviour::IssueForever);
    cache.token().await.unwrap();
    assert_eq!(cache.stats().time_left, TimeLeft::NeverExpires);
    assert_eq!(recorder.expiry("orders-api"), f64::INFINITY);

    // A new token of another lifetime: its own expiry. (Rejected after
    // more than 10 s: a token rejected sooner after replacing a rejected
    // one makes the cache back off.)
    advance(Duration::from_secs(11)).await;
    assert!(cache.invalidate(&cache.token().await.unwrap()));
    source.set(Behaviour::Issue(Duration::from_secs(60)));
    let before = unix_now();
    cache.token().await.unwrap();
    let after = unix_now();
    let expiry = recorder.expiry("orders-api");
    assert!((before + 60.0..=after + 60.0).contains(&expiry), "{expiry}");
}

#[tokio::test(start_paused = true)]
async fn caches_with_different_names_are_separate_series() {
    let recorder = TestRecorder::new();
    let orders = recorder.build(TokenCache::builder(TestSource::issuing(HOUR)).name("orders-api"));
    let billing =
        recorder.build(TokenCache::builder(TestSource::issuing(HOUR)).name("billing-api"));

    let token = billing.token().await.unwrap();
    assert!(billing.invalidate(&token));
    billing.token().await.unwrap();
    assert!(billing.invalidate(&billing.token().await.unwrap()));
    orders.token().await.unwrap();

    assert_eq!(
        recorder.counter("token_refresh_fetches_total", "orders-api"),
        Some(1)
    );
    assert_eq!(
        recorder.counter("token_refresh_fetches_total", "billing-api"),
        Some(2)
    );
    assert_eq!(
        recorder.counter("token_refresh_rejections_total", "orders-api"),
        Some(0)
    );
    assert_eq!(
        recorder.counter("token_refresh_rejections_total", "billing-api"),
        Some(2)
    );
    recorder.assert_matches(&orders);
    recorder.assert_matches(&billing);
    assert!(recorder.expiry("orders-api") > unix_now());
    assert_eq!(recorder.expiry("billing-api"), 0.0);
    assert_eq!(recorder.series().len(), 2 * (COUNTERS.len() + 1));
}

#[tokio::test(start_paused = true)]
async fn an_unnamed_cache_is_labelled_with_its_sources_name() {
    let recorder = TestRecorder::new();
    let cache = recorder.build(TokenCache::builder(TestSource::issuing(HOUR)));
    assert_eq!(cache.name(), "token source");
    cache.token().await.unwrap();
    assert_eq!(
        recorder.counter("token_refresh_fetches_total", "token source"),
        Some(1)
    );
}

#[tokio::test(start_paused = true)]
async fn rejections_and_retries_through_the_layer_are_counted() {
    let recorder = TestRecorder::new();
    let source = TestSource::issuing(HOUR);
    let cache = recorder.build(TokenCache::builder(source.clone()).name("orders-api"));
    let api = RevokingApi::new(RejectWith::Http401);
    let client = TokenRefreshLayer::new(cache.clone())
        .retry_rejected()
        .layer(api.clone());

    let post = || {
        Request::post("/items")
            .body(Full::new(Bytes::from_static(b"x")))
            .unwrap()
    };
    let (status, _) = support::fetch(&client, post()).await;
    assert_eq!(status, StatusCode::OK);
    api.revoke("token-1");
    let (status, _) = support::fetch(&client, post()).await;
    assert_eq!(status, StatusCode::OK, "retried with a new token");

    assert_eq!(
        recorder.counter("token_refresh_rejections_total", "orders-api"),
        Some(1)
    );
    assert_eq!(
        recorder.counter("token_refresh_retries_total", "orders-api"),
        Some(1)
    );
    assert_eq!(
        recorder.counter(
            "token_refresh_refreshes_after_rejection_total",
            "orders-api"
        ),
        Some(1)
    );
    assert_eq!(
        recorder.counter("token_refresh_fetches_total", "orders-api"),
        Some(2)
    );
    recorder.assert_matches(&cache);
}

#[tokio::test(start_paused = true)]
async fn store_hits_and_failures_are_counted() {
    let recorder = TestRecorder::new();
    let store = MemoryStore::new();
    // Another process (here a cache built without the recorder) saved a
    // token.
    let other = TokenCache::builder(TestSource::issuing(HOUR))
        .name("orders-api")
        .store(store.clone())
        .build();
    let saved = other.token().await.unwrap();

    let cache = recorder.build(
        TokenCache::builder(TestSource::issuing(HOUR))
            .name("orders-api")
            .store(store.clone()),
    );
    let token = cache.token().await.unwrap();
    assert_eq!(token.secret(), saved.secret(), "taken from the store");
    assert_eq!(
        recorder.counter("token_refresh_store_hits_total", "orders-api"),
        Some(1)
    );
    assert_eq!(
        recorder.counter("token_refresh_fetches_total", "orders-api"),
        Some(0)
    );
    recorder.assert_matches(&cache);

    // The store goes down: discarding the rejected token from it fails (on
    // a task of its own), and so does the next refresh's look.
    store.set_down(true);
    assert!(cache.invalidate(&token));
    settle().await;
    assert_eq!(
        recorder.counter("token_refresh_store_failures_total", "orders-api"),
        Some(1)
    );
    cache.token().await.unwrap();
    assert_eq!(
        recorder.counter("token_refresh_store_failures_total", "orders-api"),
        Some(2)
    );
    assert_eq!(
        recorder.counter("token_refresh_fetches_total", "orders-api"),
        Some(1)
    );
    recorder.assert_matches(&cache);
}

#[tokio::test(start_paused = true)]
async fn a_cache_built_before_the_recorder_reports_nothing() {
    // Handles are registered once, when the cache is built: a recorder
    // installed later never hears of it (install the exporter first).
    let cache = TokenCache::builder(TestSource::issuing(HOUR))
        .name("orders-api")
        .build();
    let recorder = TestRecorder::new();
    let _in_force = metrics::set_default_local_recorder(&recorder);
    let token = cache.token().await.unwrap();
    assert!(cache.invalidate(&token));
    cache.token().await.unwrap();
    assert_eq!(cache.stats().fetches, 2);
    assert_eq!(recorder.series(), Vec::new());
}

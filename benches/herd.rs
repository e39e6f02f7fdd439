//! The thundering herd and refreshes under load, against baselines measured
//! in the same run:
//!
//! - `herd/fetch_alone` vs `herd/10000_requests_at_an_expired_token`: 10,000
//!   concurrent requests find the token expired; the source takes 5 ms. The
//!   herd should cost one fetch plus a small constant. Each herd asserts it
//!   caused exactly one fetch, and the added wait of every request is
//!   recorded: percentiles are printed at the end.
//! - `refresh_ahead/token_never_expires` vs
//!   `refresh_ahead/token_refreshed_every_100ms`: 4 tasks send requests while
//!   the token (200 ms lifetime) is refreshed in the background about every
//!   100 ms by a 5 ms fetch. No request should wait for a refresh: a
//!   continuous 3-second run of each prints how many did, and latency
//!   percentiles.
//!
//! Run with `cargo bench --bench herd`.

use std::convert::Infallible;
use std::future::ready;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Empty;
use tower::{BoxError, Layer, ServiceExt, service_fn};
use tower_token_refresh::{Token, TokenCache, TokenRefreshLayer};

const FETCH_TIME: Duration = Duration::from_millis(5);
const HERD: usize = 10_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A source that takes [`FETCH_TIME`] and counts its calls.
fn slow_source(
    calls: Arc<AtomicUsize>,
    lifetime: Duration,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<Token, BoxError>> + Send>>
+ Send
+ Sync
+ 'static {
    move || {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(FETCH_TIME).await;
            Ok(Token::bearer(format!("token-{n}")).expires_in(lifetime))
        })
    }
}

fn layered(
    cache: TokenCache,
) -> tower_token_refresh::TokenRefresh<
    impl tower::Service<
        Request<Empty<Bytes>>,
        Response = Response<()>,
        Error = Infallible,
        Future: Send,
    > + Clone
    + Send,
> {
    TokenRefreshLayer::new(cache).layer(service_fn(|_: Request<Empty<Bytes>>| {
        ready(Ok::<_, Infallible>(Response::new(())))
    }))
}

/// Sends [`HERD`] concurrent requests, at a token that has just expired (or
/// a valid one, the baseline); returns the time until the last answered,
/// and each request's wait.
async fn one_herd(expired: bool) -> (Duration, Vec<Duration>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let lifetime = if expired {
        Duration::from_millis(50)
    } else {
        Duration::from_secs(3600)
    };
    let cache = TokenCache::new(slow_source(calls.clone(), lifetime));
    cache.token().await.unwrap();
    if expired {
        // Let the token expire (its timer marks it due).
        tokio::time::sleep(Duration::from_millis(51)).await;
    }
    let client = layered(cache);
    let started = Instant::now();
    let requests: Vec<_> = (0..HERD)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let sent = Instant::now();
                client.oneshot(Request::new(Empty::new())).await.unwrap();
                sent.elapsed()
            })
        })
        .collect();
    let mut waits = Vec::with_capacity(HERD);
    for request in requests {
        waits.push(request.await.unwrap());
    }
    let elapsed = started.elapsed();
    let expected = if expired { 2 } else { 1 };
    assert_eq!(
        calls.load(Ordering::SeqCst),
        expected,
        "one fetch for the whole herd"
    );
    (elapsed, waits)
}

fn herd(c: &mut Criterion) {
    let runtime = runtime();
    let waits = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let mut group = c.benchmark_group("herd");
    group.sample_size(20);

    group.bench_function("fetch_alone", |b| {
        b.to_async(&runtime).iter(|| tokio::time::sleep(FETCH_TIME));
    });

    for expired in [false, true] {
        let name = if expired {
            "10000_requests_at_an_expired_token"
        } else {
            "10000_requests_with_a_valid_token"
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let waits = waits.clone();
                runtime.block_on(async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (elapsed, herd_waits) = one_herd(expired).await;
                        total += elapsed;
                        if expired {
                            waits.lock().unwrap().extend(herd_waits);
                        }
                    }
                    total
                })
            });
        });
    }
    group.finish();

    let mut waits = waits.lock().unwrap();
    waits.sort();
    if !waits.is_empty() {
        let at = |p: f64| waits[((waits.len() - 1) as f64 * p) as usize];
        println!(
            "herd: added wait over {} requests (fetch takes {FETCH_TIME:?}): p50 {:?}, p99 {:?}, max {:?}",
            waits.len(),
            at(0.50),
            at(0.99),
            at(1.0)
        );
    }
}

/// Sends requests from 4 tasks for `run_for` without a pause (criterion's
/// samples have gaps in which a token may expire unused); returns every
/// request's latency and how many requests waited for a token.
async fn continuous_load(lifetime: Duration, run_for: Duration) -> (Vec<Duration>, u64, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = TokenCache::new(slow_source(calls.clone(), lifetime));
    cache.token().await.unwrap();
    let client = layered(cache.clone());
    let until = Instant::now() + run_for;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let sent = Instant::now();
                    client
                        .clone()
                        .oneshot(Request::new(Empty::new()))
                        .await
                        .unwrap();
                    latencies.push(sent.elapsed());
                    // Real requests wait for the network, letting other
                    // tasks (the refresh) run.
                    tokio::task::yield_now().await;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    latencies.sort();
    // The first `token()` above waited; the requests should not have.
    let waited = cache.stats().waited - 1;
    (latencies, waited, calls.load(Ordering::SeqCst))
}

fn refresh_ahead(c: &mut Criterion) {
    let runtime = runtime();
    for (name, lifetime) in [
        ("token_never_expires", Duration::from_secs(24 * 3600)),
        ("token_refreshed_every_100ms", Duration::from_millis(200)),
    ] {
        let (latencies, waited, fetches) =
            runtime.block_on(continuous_load(lifetime, Duration::from_secs(3)));
        let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
        println!(
            "refresh_ahead/{name}: {} requests in 3 s, {fetches} fetches, {waited} waited for a token; latency p50 {:?}, p99.9 {:?}, max {:?}",
            latencies.len(),
            at(0.5),
            at(0.999),
            at(1.0)
        );
    }

    let mut group = c.benchmark_group("refresh_ahead");
    for (name, lifetime) in [
        ("token_never_expires", Duration::from_secs(24 * 3600)),
        ("token_refreshed_every_100ms", Duration::from_millis(200)),
    ] {
        let calls = Arc::new(AtomicUsize::new(0));
        let cache = TokenCache::new(slow_source(calls, lifetime));
        runtime.block_on(cache.token()).unwrap();
        let client = layered(cache);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let client = client.clone();
                runtime.block_on(async move {
                    let started = Instant::now();
                    let tasks: Vec<_> = (0..4)
                        .map(|_| {
                            let client = client.clone();
                            tokio::spawn(async move {
                                for _ in 0..iters.div_ceil(4) {
                                    client
                                        .clone()
                                        .oneshot(Request::new(Empty::new()))
                                        .await
                                        .unwrap();
                                    tokio::task::yield_now().await;
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                    started.elapsed()
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, herd, refresh_ahead);
criterion_main!(benches);

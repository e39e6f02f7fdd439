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
//!   100 ms by a 5 ms fetch. No request should wait for a refresh: the
//!   slowest request is printed for both.
//!
//! Run with `cargo bench --bench herd`.

use std::convert::Infallible;
use std::future::ready;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

/// The slowest request seen, in nanoseconds.
static SLOWEST_NEVER: AtomicU64 = AtomicU64::new(0);
static SLOWEST_REFRESHED: AtomicU64 = AtomicU64::new(0);

fn refresh_ahead(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("refresh_ahead");
    let cases = [
        (
            "token_never_expires",
            Duration::from_secs(24 * 3600),
            &SLOWEST_NEVER,
        ),
        (
            "token_refreshed_every_100ms",
            Duration::from_millis(200),
            &SLOWEST_REFRESHED,
        ),
    ];
    let mut fetches = Vec::new();
    for (name, lifetime, slowest) in cases {
        let calls = Arc::new(AtomicUsize::new(0));
        let cache = TokenCache::new(slow_source(calls.clone(), lifetime));
        runtime.block_on(cache.token()).unwrap();
        let client = layered(cache.clone());
        let started = Instant::now();
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
                                    let sent = Instant::now();
                                    client
                                        .clone()
                                        .oneshot(Request::new(Empty::new()))
                                        .await
                                        .unwrap();
                                    let took = sent.elapsed().as_nanos() as u64;
                                    slowest.fetch_max(took, Ordering::Relaxed);
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
        // The first `token()` above waited; no request should have since.
        let waited = cache.stats().waited - 1;
        fetches.push((
            name,
            calls.load(Ordering::SeqCst),
            started.elapsed(),
            waited,
        ));
    }
    group.finish();
    for (name, fetched, over, waited) in fetches {
        println!(
            "refresh_ahead/{name}: {fetched} fetches in {over:.1?}; requests that waited for a token: {waited}"
        );
    }
    println!(
        "refresh_ahead: slowest request with a never-expiring token {:?}, with refreshes every ~100 ms {:?} (a fetch takes {FETCH_TIME:?})",
        Duration::from_nanos(SLOWEST_NEVER.load(Ordering::Relaxed)),
        Duration::from_nanos(SLOWEST_REFRESHED.load(Ordering::Relaxed)),
    );
}

criterion_group!(benches, herd, refresh_ahead);
criterion_main!(benches);

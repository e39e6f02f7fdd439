//! Per-request cost of `TokenRefreshLayer` with a fresh token, against
//! baselines measured in the same run over the same inner service:
//!
//! - `bare`: the inner service alone;
//! - `floor`: tower-http's `SetRequestHeader` with a fixed sensitive header,
//!   the cost of adding a header that never changes;
//! - `hand_written`: a `Mutex<(String, Instant)>` checked on every call,
//!   building the header per request, as people write it today;
//! - `ours`: `TokenRefreshLayer` over a `TokenCache` holding a fresh token.
//!
//! Run with `cargo bench --bench hot_path`; compare the times as ratios.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use http_body_util::Empty;
use tower::{BoxError, Layer, Service, service_fn};
use tower_http::set_header::SetRequestHeaderLayer;
use tower_token_refresh::{Token, TokenCache, TokenRefreshLayer};

type Body = Empty<Bytes>;

fn inner() -> impl Service<
    Request<Body>,
    Response = Response<()>,
    Error = Infallible,
    Future = Ready<Result<Response<()>, Infallible>>,
> + Clone {
    service_fn(|request: Request<Body>| {
        black_box(&request);
        ready(Ok(Response::new(())))
    })
}

/// What people write today: lock, check expiry, format the header.
#[derive(Clone)]
struct HandWritten<S> {
    inner: S,
    token: Arc<Mutex<(String, Instant)>>,
}

impl<S: Service<Request<Body>>> Service<Request<Body>> for HandWritten<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> S::Future {
        let value = {
            let token = self.token.lock().unwrap();
            if Instant::now() >= token.1 {
                unreachable!("the benchmark token never expires");
            }
            HeaderValue::try_from(format!("Bearer {}", token.0)).unwrap()
        };
        request.headers_mut().insert(AUTHORIZATION, value);
        self.inner.call(request)
    }
}

/// A typical request: a URI and a few headers.
fn request() -> Request<Body> {
    Request::get("https://api.example.com/v1/items/42")
        .header("accept", "application/json")
        .header("user-agent", "bench/1.0")
        .body(Empty::new())
        .unwrap()
}

/// One request through `service`, driven without a runtime.
fn send<S, R>(service: &mut S, request: Request<Body>) -> Response<R>
where
    S: Service<Request<Body>, Response = Response<R>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let _ = service.poll_ready(&mut cx);
    match pin!(service.call(request)).poll(&mut cx) {
        Poll::Ready(response) => response.unwrap(),
        Poll::Pending => unreachable!("every service here answers at once"),
    }
}

fn bench_one<S, R>(c: &mut Criterion, name: &str, mut service: S)
where
    S: Service<Request<Body>, Response = Response<R>>,
    S::Error: std::fmt::Debug,
{
    c.bench_function(name, |b| {
        b.iter_batched(
            request,
            |request| send(&mut service, request),
            criterion::BatchSize::SmallInput,
        )
    });
}

/// The hand-written stack's token and expiry.
type HandWrittenState = Arc<Mutex<(String, Instant)>>;

/// What every stack shares: a cache holding a fresh token, the same token
/// as a fixed sensitive header (the floor), and the hand-written stack's state.
fn contenders(runtime: &tokio::runtime::Runtime) -> (TokenCache, HeaderValue, HandWrittenState) {
    let cache = TokenCache::new(|| async {
        Ok::<_, BoxError>(
            Token::bearer("a-realistic-looking-access-token-value-0123456789")
                .expires_in(Duration::from_secs(24 * 3600)),
        )
    });
    let token = runtime.block_on(cache.token()).unwrap();
    let mut fixed = HeaderValue::try_from(format!("Bearer {}", token.secret())).unwrap();
    fixed.set_sensitive(true);
    let hand_written = Arc::new(Mutex::new((
        token.secret().to_owned(),
        Instant::now() + Duration::from_secs(24 * 3600),
    )));
    (cache, fixed, hand_written)
}

fn hot_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _context = runtime.enter();
    let (cache, fixed, hand_written) = contenders(&runtime);

    bench_one(c, "hot_path/bare", inner());
    bench_one(
        c,
        "hot_path/floor",
        SetRequestHeaderLayer::overriding(AUTHORIZATION, fixed).layer(inner()),
    );
    bench_one(
        c,
        "hot_path/hand_written",
        HandWritten {
            inner: inner(),
            token: hand_written,
        },
    );
    bench_one(
        c,
        "hot_path/ours",
        TokenRefreshLayer::new(cache.clone()).layer(inner()),
    );
    bench_one(
        c,
        "hot_path/ours_retry_rejected",
        TokenRefreshLayer::new(cache)
            .retry_rejected()
            .layer(inner()),
    );
}

/// Wall time for `threads` threads to send `iters` requests each, each on
/// its own clone of `service`, all sharing the token.
fn concurrent<S, R>(service: &S, threads: usize, iters: u64) -> Duration
where
    S: Service<Request<Body>, Response = Response<R>> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    let barrier = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let mut service = service.clone();
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    for _ in 0..iters {
                        send(&mut service, request());
                    }
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        for worker in workers {
            worker.join().unwrap();
        }
        started.elapsed()
    })
}

/// Throughput with 1 and 2 threads, for the scaling ratio
/// (2 threads' requests per second / 1 thread's).
fn bench_scaling<S, R>(c: &mut Criterion, name: &str, service: S)
where
    S: Service<Request<Body>, Response = Response<R>> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    let mut group = c.benchmark_group(format!("scaling/{name}"));
    for threads in [1, 2] {
        group.throughput(criterion::Throughput::Elements(threads as u64));
        group.bench_function(format!("{threads}_threads"), |b| {
            b.iter_custom(|iters| concurrent(&service, threads, iters))
        });
    }
    group.finish();
}

fn scaling(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _context = runtime.enter();
    let (cache, fixed, hand_written) = contenders(&runtime);

    bench_scaling(
        c,
        "floor",
        SetRequestHeaderLayer::overriding(AUTHORIZATION, fixed).layer(inner()),
    );
    bench_scaling(
        c,
        "hand_written",
        HandWritten {
            inner: inner(),
            token: hand_written,
        },
    );
    bench_scaling(c, "ours", TokenRefreshLayer::new(cache).layer(inner()));
}

criterion_group!(benches, hot_path, scaling);
criterion_main!(benches);

//! Per-request cost of `TokenRefreshLayer` with a fresh token, against
//! baselines measured in the same run over the same inner service (the
//! stacks of `benches/support`: bare, floor, the two hand-written ones, ours).
//!
//! Run with `cargo bench --bench hot_path`; compare the times as ratios.
//! `benches/hot_path_paired.rs` measures the same stacks interleaved and
//! prints the ratios themselves.

mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use support::{Body, inner, request, send, stacks};
use tower::{Layer, Service};
use tower_token_refresh::TokenRefreshLayer;

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

fn hot_path(c: &mut Criterion) {
    let runtime = support::runtime();
    let _context = runtime.enter();
    let stacks = stacks(&runtime);

    bench_one(c, "hot_path/bare", stacks.bare);
    bench_one(c, "hot_path/floor", stacks.floor);
    bench_one(c, "hot_path/hand_written", stacks.hand_written);
    bench_one(c, "hot_path/hand_written_async", stacks.hand_written_async);
    bench_one(c, "hot_path/ours", stacks.ours);
    bench_one(
        c,
        "hot_path/ours_retry_rejected",
        TokenRefreshLayer::new(stacks.cache)
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
    let stacks = stacks(&runtime);

    bench_scaling(c, "floor", stacks.floor);
    bench_scaling(c, "hand_written", stacks.hand_written);
    bench_scaling(c, "hand_written_async", stacks.hand_written_async);
    bench_scaling(c, "ours", stacks.ours);
}

criterion_group!(benches, hot_path, scaling);
criterion_main!(benches);

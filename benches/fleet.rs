//! Token stores for fleets, against baselines measured in the same run:
//!
//! - **Token-endpoint calls per hour** (printed first; a simulation on
//!   paused Tokio time, so exact and instant): N processes, tokens that live
//!   1 hour, default refresh window, each process asking for its token every
//!   10 seconds; long-lived replicas, and jobs restarted every 10 minutes;
//!   with no store, and with one shared store (the tests' in-memory store on
//!   Tokio's clock, which exercises the same protocol as `FileStore` and
//!   `RedisStore`).
//! - **Token-endpoint calls per hour against real Redis** (with the `redis`
//!   feature, when `redis-server` and `redis-cli` are installed): 1, 8 and
//!   32 processes (caches, each with a store and a connection of its own)
//!   with no store, a `RedisStore` on one `redis-server`, and one on a
//!   3-primary Redis Cluster started for the run. Real time, so scaled:
//!   tokens live 2 s and each process asks for its token every 2 s / 360
//!   (as every 10 s for 1-hour tokens), for 3 lifetimes; calls per lifetime
//!   are calls per hour for 1-hour tokens.
//! - **First request per process** (criterion, `first_request/*`): a new
//!   `TokenCache` answering its first `token()`:
//!   - `no_store_fetch_over_loopback`: the baseline, a client-credentials
//!     fetch from a token endpoint on 127.0.0.1 (a real identity provider
//!     adds its own latency on top);
//!   - `file_store_token_saved`: a `FileStore` that holds a valid token;
//!   - `file_store_empty`: a `FileStore` with no token: lock, fetch, save;
//!   - `redis_store_token_saved`: a new `RedisStore` (connecting included)
//!     that holds a valid token, when `redis-server` is installed.
//!
//! Run with `cargo bench --bench fleet` (`--features redis` for the Redis
//! rows and benchmarks).

#[path = "../examples/support/mod.rs"]
mod embedded;
#[path = "../tests/support/memory_store.rs"]
#[allow(dead_code)]
mod memory_store;
#[cfg(feature = "redis")]
#[path = "../tests/support"]
#[allow(dead_code, unreachable_pub)]
mod support {
    pub mod redis_cluster;
    pub mod temp_dir;
}

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use memory_store::MemoryStore;
use tower::BoxError;
use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};
use tower_token_refresh::store::FileStore;
use tower_token_refresh::{Token, TokenCache};

const HOUR: Duration = Duration::from_secs(3600);

/// Fetches of a fleet of `processes` over one simulated hour.
fn fetches_per_hour(
    processes: usize,
    shared_store: bool,
    restart_every: Option<Duration>,
) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let calls = Arc::new(AtomicUsize::new(0));
        let store = MemoryStore::new();
        let start = || {
            let calls = Arc::clone(&calls);
            let builder = TokenCache::builder(move || {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Ok::<_, BoxError>(Token::bearer(random_token()).expires_in(HOUR)) }
            });
            if shared_store {
                builder.store(store.clone()).build()
            } else {
                builder.build()
            }
        };
        let mut fleet: Vec<TokenCache> = (0..processes).map(|_| start()).collect();
        let step = Duration::from_secs(10);
        let mut elapsed = Duration::ZERO;
        while elapsed < HOUR {
            if let Some(every) = restart_every
                && elapsed.as_secs().is_multiple_of(every.as_secs())
                && !elapsed.is_zero()
            {
                fleet = (0..processes).map(|_| start()).collect();
            }
            for cache in &fleet {
                cache.token().await.unwrap();
            }
            tokio::time::advance(step).await;
            elapsed += step;
        }
        calls.load(Ordering::Relaxed)
    })
}

fn random_token() -> String {
    use std::hash::{BuildHasher, RandomState};
    format!("token-{:x}", RandomState::new().hash_one(0u8))
}

fn print_calls_per_hour() {
    println!("\ntoken-endpoint calls per hour (1-hour tokens, default refresh window)");
    println!(
        "{:<34} {:>10} {:>12} {:>7}",
        "fleet", "no store", "shared store", "ratio"
    );
    for processes in [1, 10, 50] {
        for (what, restart) in [
            ("replicas", None),
            (
                "jobs restarted every 10 min",
                Some(Duration::from_secs(600)),
            ),
        ] {
            let alone = fetches_per_hour(processes, false, restart);
            let shared = fetches_per_hour(processes, true, restart);
            println!(
                "{:<34} {alone:>10} {shared:>12} {:>6.1}×",
                format!("{processes} {what}"),
                alone as f64 / shared as f64
            );
        }
    }
    println!();
}

/// Token-endpoint calls of `processes` caches over `LIFETIMES` real token
/// lifetimes, each cache with the store `store` makes (`None`: no store),
/// divided by `LIFETIMES`: calls per hour for 1-hour tokens.
#[cfg(feature = "redis")]
async fn real_calls_per_lifetime(
    processes: usize,
    store: &dyn Fn() -> Option<tower_token_refresh::store::RedisStore>,
) -> f64 {
    const LIFETIME: Duration = Duration::from_secs(2);
    const LIFETIMES: u32 = 3;
    let calls = Arc::new(AtomicUsize::new(0));
    let fleet: Vec<TokenCache> = (0..processes)
        .map(|_| {
            let calls = Arc::clone(&calls);
            let builder = TokenCache::builder(move || {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Ok::<_, BoxError>(Token::bearer(random_token()).expires_in(LIFETIME)) }
            });
            match store() {
                Some(store) => builder.store(store).build(),
                None => builder.build(),
            }
        })
        .collect();
    let until = tokio::time::Instant::now() + LIFETIME * LIFETIMES;
    let tasks: Vec<_> = fleet
        .into_iter()
        .map(|cache| {
            tokio::spawn(async move {
                while tokio::time::Instant::now() < until {
                    cache.token().await.unwrap();
                    tokio::time::sleep(LIFETIME / 360).await;
                }
                cache.stats().store_failures
            })
        })
        .collect();
    let mut store_failures = 0;
    for task in tasks {
        store_failures += task.await.unwrap();
    }
    // A store that failed measured fetching alone, not the store.
    assert_eq!(store_failures, 0, "the store failed");
    calls.load(Ordering::Relaxed) as f64 / f64::from(LIFETIMES)
}

/// The real-Redis rows: no store, one `redis-server`, a 3-primary cluster.
#[cfg(feature = "redis")]
fn print_real_calls_per_hour(runtime: &tokio::runtime::Runtime) {
    use support::redis_cluster::{RedisCluster, which};
    use tower_token_refresh::store::RedisStore;

    if which("redis-server").is_none() || which("redis-cli").is_none() {
        println!("redis-server or redis-cli not installed: no real-Redis rows\n");
        return;
    }
    let Some(port) = free_port() else { return };
    let Ok(mut server) = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
    else {
        return;
    };
    let cluster = match runtime.block_on(RedisCluster::start(3, 0)) {
        Ok(cluster) => cluster,
        Err(why) => {
            println!("could not start a Redis Cluster: {why}\n");
            let _ = server.kill();
            return;
        }
    };
    runtime.block_on(async {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let standalone = format!("redis://127.0.0.1:{port}");
    let seeds = cluster.urls();
    println!(
        "token-endpoint calls per hour, real Redis (2-second tokens for 3 lifetimes, as 1-hour tokens)"
    );
    println!(
        "{:<14} {:>9} {:>9} {:>9} {:>13} {:>15}",
        "processes", "no store", "redis", "cluster", "no store/redis", "no store/cluster"
    );
    for processes in [1, 8, 32] {
        // The cluster's ACL user may use `fleet:*` keys only.
        let key = format!("fleet:bench-{}", random_token());
        let alone = runtime.block_on(real_calls_per_lifetime(processes, &|| None));
        let redis = runtime.block_on(real_calls_per_lifetime(processes, &|| {
            Some(RedisStore::new(&standalone, key.as_str()).unwrap())
        }));
        let clustered = runtime.block_on(real_calls_per_lifetime(processes, &|| {
            Some(RedisStore::cluster(&seeds, key.as_str()).unwrap())
        }));
        println!(
            "{processes:<14} {alone:>9.1} {redis:>9.1} {clustered:>9.1} {:>13.1}× {:>15.1}×",
            alone / redis,
            alone / clustered
        );
    }
    println!();
    drop(cluster);
    let _ = server.kill();
    let _ = server.wait();
}

fn first_request(c: &mut Criterion) {
    print_calls_per_hour();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    #[cfg(feature = "redis")]
    print_real_calls_per_hour(&runtime);
    let server = runtime
        .block_on(embedded::Embedded::start(
            embedded::Clock::start(),
            HOUR,
            true,
        ))
        .unwrap();
    let source = || {
        ClientCredentials::new(
            server.token_url(),
            embedded::CLIENT_ID,
            ClientAuth::basic(embedded::CLIENT_SECRET),
        )
        .unwrap()
    };
    let dir = std::env::temp_dir().join(format!("ttr-bench-fleet-{}", std::process::id()));
    let saved = dir.join("saved.json");
    runtime.block_on(async {
        let cache = TokenCache::builder(source())
            .store(FileStore::new(&saved).unwrap())
            .build();
        cache.token().await.unwrap();
    });

    let mut group = c.benchmark_group("first_request");
    // Building the source (its HTTP client and TLS roots) is setup, not
    // measured: every process pays it, with a store or without.
    group.bench_function("no_store_fetch_over_loopback", |b| {
        b.to_async(&runtime).iter_batched(
            source,
            |source| async { TokenCache::new(source).token().await.unwrap() },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("file_store_token_saved", |b| {
        b.to_async(&runtime).iter_batched(
            source,
            |source| async {
                let cache = TokenCache::builder(source)
                    .store(FileStore::new(&saved).unwrap())
                    .build();
                cache.token().await.unwrap();
                assert_eq!(cache.stats().fetches, 0);
            },
            BatchSize::SmallInput,
        );
    });
    let empty = dir.join("empty.json");
    group.bench_function("file_store_empty", |b| {
        b.to_async(&runtime).iter_batched(
            || {
                let _ = std::fs::remove_file(&empty);
                source()
            },
            |source| async {
                let cache = TokenCache::builder(source)
                    .store(FileStore::new(&empty).unwrap())
                    .build();
                cache.token().await.unwrap();
            },
            BatchSize::SmallInput,
        );
    });
    #[cfg(feature = "redis")]
    redis_first_request(&mut group, &runtime, &source);
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "redis")]
fn redis_first_request<S: tower_token_refresh::TokenSource>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    source: &dyn Fn() -> S,
) {
    use tower_token_refresh::store::RedisStore;

    let Some(port) = free_port() else { return };
    let Ok(mut server) = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
    else {
        println!("redis-server not installed: skipping first_request/redis_store_token_saved");
        return;
    };
    let url = format!("redis://127.0.0.1:{port}");
    let connected = runtime.block_on(async {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    });
    if connected {
        runtime.block_on(async {
            let store = RedisStore::new(&url, "bench:token").unwrap();
            let cache = TokenCache::builder(source()).store(store).build();
            cache.token().await.unwrap();
        });
        group.bench_function("redis_store_token_saved", |b| {
            b.to_async(runtime).iter_batched(
                source,
                |source| async {
                    // A new store: connecting is part of a process's first request.
                    let store = RedisStore::new(&url, "bench:token").unwrap();
                    let cache = TokenCache::builder(source).store(store).build();
                    cache.token().await.unwrap();
                    assert_eq!(cache.stats().fetches, 0);
                },
                BatchSize::SmallInput,
            );
        });
    }
    let _ = server.kill();
    let _ = server.wait();
}

#[cfg(feature = "redis")]
fn free_port() -> Option<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
    Some(listener.local_addr().ok()?.port())
}

criterion_group!(benches, first_request);
criterion_main!(benches);

//! Soak test: tokens live 1 second, 200 concurrent clients send requests
//! for a while, and 20 % of token fetches fail at random.
//!
//! ```sh
//! cargo run --release --example soak              # short mode: 10 seconds
//! cargo run --release --example soak -- 60        # long mode: 60 seconds
//! ```
//!
//! It checks, and exits non-zero otherwise, that:
//! - no request was sent with a token the API no longer accepted (zero 401s),
//!   and requests failed only when no valid token existed;
//! - the number of fetches stays within what lifetimes and backoff allow;
//! - no task is left behind once the clients and the cache are dropped;
//! - memory stays flat (resident set size after warm-up and at the end).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::ready;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use tokio::time::Instant;
use tower::{BoxError, Layer, ServiceExt, service_fn};
use tower_token_refresh::{Token, TokenCache, TokenRefreshLayer};

const LIFETIME: Duration = Duration::from_secs(1);
const CLIENTS: usize = 200;
const FAILURE_RATE_PERCENT: u64 = 20;

/// Tokens the identity provider issued, and when they expire.
type Issued = Arc<Mutex<HashMap<String, Instant>>>;

/// A tiny deterministic random generator (xorshift), for reproducible runs.
fn random(state: &AtomicU64) -> u64 {
    let mut x = state.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state.store(x, Ordering::Relaxed);
    x
}

/// Resident memory now (`VmRSS`) or at its peak (`VmHWM`), in KiB.
fn memory_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    rejected: AtomicUsize,
    no_token: AtomicUsize,
}

fn main() -> Result<(), BoxError> {
    let seconds: u64 = std::env::args().nth(1).map_or(Ok(10), |arg| arg.parse())?;
    let run_for = Duration::from_secs(seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(soak(run_for));
    let alive = runtime.metrics().num_alive_tasks();
    let report = outcome?;
    println!("tasks still alive after everything was dropped: {alive}");
    if alive > 0 || !report {
        std::process::exit(1);
    }
    Ok(())
}

async fn soak(run_for: Duration) -> Result<bool, BoxError> {
    let issued: Issued = Arc::default();
    let fetches = Arc::new(AtomicUsize::new(0));
    let failed_fetches = Arc::new(AtomicUsize::new(0));
    let seed = Arc::new(AtomicU64::new(0x9E37_79B9_7F4A_7C15));
    let source = {
        let (issued, fetches, failed_fetches) =
            (issued.clone(), fetches.clone(), failed_fetches.clone());
        move || {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            let fail = random(&seed) % 100 < FAILURE_RATE_PERCENT;
            let (issued, failed_fetches) = (issued.clone(), failed_fetches.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if fail {
                    failed_fetches.fetch_add(1, Ordering::SeqCst);
                    return Err::<Token, BoxError>("identity provider hiccup".into());
                }
                let value = format!("token-{n}");
                issued
                    .lock()
                    .unwrap()
                    .insert(value.clone(), Instant::now() + LIFETIME);
                Ok(Token::bearer(value).expires_in(LIFETIME))
            }
        }
    };
    let cache = TokenCache::builder(source)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build();

    // The API accepts only unexpired tokens it knows.
    let api = {
        let issued = issued.clone();
        service_fn(move |request: Request<Empty<Bytes>>| {
            let token = request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .map(str::to_owned);
            let valid = token.is_some_and(|token| {
                issued
                    .lock()
                    .unwrap()
                    .get(&token)
                    .is_some_and(|expiry| Instant::now() < *expiry)
            });
            let status = if valid {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            ready(Ok::<_, Infallible>(
                Response::builder().status(status).body(()).unwrap(),
            ))
        })
    };
    let client = TokenRefreshLayer::new(cache.clone()).layer(api);

    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let until = started + run_for;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, tally) = (client.clone(), tally.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    match client.clone().oneshot(Request::new(Empty::new())).await {
                        Ok(response) if response.status() == StatusCode::OK => {
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {
                            tally.rejected.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            tally.no_token.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let warm_rss = memory_kib("VmRSS:");
    let warm_peak = memory_kib("VmHWM:");
    for client in clients {
        client.await?;
    }
    let elapsed = started.elapsed();
    let end_rss = memory_kib("VmRSS:");
    let end_peak = memory_kib("VmHWM:");
    let stats = cache.stats();
    drop(client);
    drop(cache);
    // Let aborted timers and finished tasks go.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let fetched = fetches.load(Ordering::SeqCst);
    let failed = failed_fetches.load(Ordering::SeqCst);
    let ok = tally.ok.load(Ordering::Relaxed);
    let rejected = tally.rejected.load(Ordering::Relaxed);
    let no_token = tally.no_token.load(Ordering::Relaxed);
    // A token is refreshed at most 5/8 of its lifetime early; each failed
    // fetch is retried after the backoff.
    let successful = fetched - failed;
    let max_successful =
        (elapsed.as_secs_f64() / (LIFETIME.as_secs_f64() * 3.0 / 8.0)).ceil() as usize + 1;

    println!(
        "soak: {CLIENTS} clients for {elapsed:.1?}, tokens live {LIFETIME:?}, {FAILURE_RATE_PERCENT}% of fetches fail"
    );
    println!(
        "  requests: {ok} succeeded, {rejected} sent with a token the API refused, {no_token} failed without a token"
    );
    println!(
        "  fetches: {fetched} ({successful} succeeded, {failed} failed; at most {max_successful} successful ones allowed)"
    );
    println!("  cache: {stats:?}");
    println!(
        "  resident memory: {warm_rss} KiB after warm-up (peak {warm_peak} KiB), {end_rss} KiB at the end (peak {end_peak} KiB)"
    );

    let mut healthy = true;
    if rejected > 0 {
        println!("FAIL: requests were sent with tokens the API no longer accepted");
        healthy = false;
    }
    // Requests fail without a token only when every fetch in a row failed
    // until the token expired: rare, and never a large share.
    if no_token * 100 > (ok + no_token) {
        println!("FAIL: more than 1% of requests had no token");
        healthy = false;
    }
    if successful > max_successful
        || successful < (elapsed.as_secs_f64() / LIFETIME.as_secs_f64()) as usize
    {
        println!("FAIL: the number of successful fetches is outside the bounds");
        healthy = false;
    }
    if end_rss > warm_rss + 16 * 1024 || end_peak > warm_peak + 16 * 1024 {
        println!("FAIL: resident memory grew by more than 16 MiB");
        healthy = false;
    }
    Ok(healthy)
}

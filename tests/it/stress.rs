//! The cache's state machine under many random interleavings on the
//! multi-thread runtime: concurrent callers, short lifetimes, rejections,
//! failing, slow and hanging fetches, and cancelled callers. Invariants:
//! at most one fetch in flight; no caller hangs; `token()` never returns a
//! token that has expired; invalidation is generation-checked.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response};
use http_body_util::Empty;
use tokio::time::Instant;
use tower::{BoxError, Layer, ServiceExt, service_fn};
use tower_token_refresh::{Token, TokenCache, TokenRefreshLayer};

const FETCH_TIMEOUT: Duration = Duration::from_millis(50);

/// xorshift, seeded per task: reproducible enough, and cheap.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default)]
struct Observed {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    fetches: AtomicUsize,
    calls: AtomicUsize,
    errors: AtomicUsize,
    cancelled: AtomicUsize,
    invalidated: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_interleavings_keep_the_invariants() {
    let observed = Arc::new(Observed::default());
    let seed = Arc::new(AtomicU64::new(0x2545_F491_4F6C_DD1D));
    let source = {
        let observed = observed.clone();
        move || {
            let observed = observed.clone();
            let mut random = Random(seed.fetch_add(0x9E37_79B9, Ordering::Relaxed) | 1);
            async move {
                let now = observed.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                observed.max_in_flight.fetch_max(now, Ordering::SeqCst);
                let n = observed.fetches.fetch_add(1, Ordering::SeqCst);
                let roll = random.below(100);
                let delay = Duration::from_millis(random.below(4));
                // Counted out on every path, including cancellation.
                struct Leave(Arc<Observed>);
                impl Drop for Leave {
                    fn drop(&mut self) {
                        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                let _leave = Leave(observed);
                tokio::time::sleep(delay).await;
                match roll {
                    0..10 => Err::<Token, BoxError>("random failure".into()),
                    10..12 => std::future::pending().await,
                    _ => {
                        let lifetime = Duration::from_millis(20 + random.below(60));
                        Ok(Token::bearer(format!("t{n}")).expires_in(lifetime))
                    }
                }
            }
        }
    };
    let cache = TokenCache::builder(source)
        .fetch_timeout(FETCH_TIMEOUT)
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
        .build();
    let client = TokenRefreshLayer::new(cache.clone()).layer(service_fn(
        |request: Request<Empty<Bytes>>| async move {
            assert!(
                request.headers()[AUTHORIZATION]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer t")
            );
            Ok::<_, Infallible>(Response::new(()))
        },
    ));

    let until = Instant::now() + Duration::from_secs(3);
    let tasks: Vec<_> = (0..16u64)
        .map(|task| {
            let (cache, client, observed) = (cache.clone(), client.clone(), observed.clone());
            tokio::spawn(async move {
                let mut random = Random(0xDEAD_BEEF ^ ((task + 1) * 0x1000_0001));
                while Instant::now() < until {
                    observed.calls.fetch_add(1, Ordering::Relaxed);
                    match random.below(10) {
                        // A caller that gives up early.
                        0 => {
                            let wait = Duration::from_micros(random.below(3000));
                            if tokio::time::timeout(wait, cache.token()).await.is_err() {
                                observed.cancelled.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // A request through the layer.
                        1..=3 => {
                            let call = client.clone().oneshot(Request::new(Empty::new()));
                            let outcome = tokio::time::timeout(Duration::from_secs(1), call)
                                .await
                                .expect("a request hung");
                            if outcome.is_err() {
                                observed.errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // A caller, and sometimes a rejection of its token.
                        _ => {
                            let asked = Instant::now();
                            let outcome =
                                tokio::time::timeout(Duration::from_secs(1), cache.token())
                                    .await
                                    .expect("a caller hung");
                            match outcome {
                                Ok(token) => {
                                    // Against the time of asking: on a busy
                                    // machine this thread may be descheduled
                                    // for longer than a 20 ms token lives
                                    // between the answer and this check
                                    // (freshness at the answer is tested on
                                    // paused time in `cache`).
                                    assert!(
                                        token.expiry().is_none_or(|expiry| expiry > asked),
                                        "a token that had expired was returned"
                                    );
                                    if random.below(20) == 0 && cache.invalidate(&token) {
                                        observed.invalidated.fetch_add(1, Ordering::Relaxed);
                                        assert!(
                                            !cache.invalidate(&token),
                                            "a token was invalidated twice"
                                        );
                                    }
                                }
                                Err(_) => {
                                    observed.errors.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    if random.below(4) == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a task panicked");
    }

    let max_in_flight = observed.max_in_flight.load(Ordering::SeqCst);
    let fetches = observed.fetches.load(Ordering::SeqCst);
    println!(
        "{} calls, {fetches} fetches, {} errors, {} cancelled, {} invalidated",
        observed.calls.load(Ordering::Relaxed),
        observed.errors.load(Ordering::Relaxed),
        observed.cancelled.load(Ordering::Relaxed),
        observed.invalidated.load(Ordering::Relaxed),
    );
    assert_eq!(max_in_flight, 1, "two fetches ran at once");
    assert!(fetches > 20, "the scenario exercised refreshes ({fetches})");
    assert!(observed.invalidated.load(Ordering::Relaxed) > 0);
}

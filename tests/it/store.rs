//! A `TokenCache` with a `TokenStore`: several caches sharing one store
//! behave like processes sharing one token. On paused Tokio time, with an
//! in-memory store on Tokio's clock (the file and Redis stores are tested
//! against real files, processes and a real Redis in `file_store.rs` and
//! `fleet.rs`).

use crate::support;

use std::time::Duration;

use support::events::Events;
use support::memory_store::MemoryStore;
use support::{TestSource, advance, settle};
use tokio::time::Instant;
use tower_token_refresh::{Token, TokenCache};

const MINUTE: Duration = Duration::from_secs(60);
const SECOND: Duration = Duration::from_secs(1);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const LEASE: Duration = Duration::from_secs(8);

/// One "process": a cache over the fleet's source and the shared store.
fn process(source: &TestSource, store: &MemoryStore) -> TokenCache {
    TokenCache::builder(source.clone())
        .store(store.clone())
        .fetch_timeout(FETCH_TIMEOUT)
        .lease(LEASE)
        .build()
}

/// Starts `per_process` concurrent `token()` calls on every process and
/// returns the tokens they got.
async fn burst(processes: &[TokenCache], per_process: usize) -> Vec<String> {
    let callers: Vec<_> = processes
        .iter()
        .flat_map(|cache| {
            (0..per_process).map(move |_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.token().await })
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        let token = caller.await.unwrap().expect("every request gets a token");
        tokens.push(token.secret().to_owned());
    }
    tokens
}

#[tokio::test(start_paused = true)]
async fn a_fleet_fetches_once_per_token_lifetime() {
    let source = TestSource::issuing(10 * MINUTE);
    let store = MemoryStore::new();
    let fleet: Vec<_> = (0..4).map(|_| process(&source, &store)).collect();

    // 4 processes × 50 requests, all starting without a token.
    let tokens = burst(&fleet, 50).await;
    assert_eq!(source.calls(), 1, "one fetch for the whole fleet");
    assert!(tokens.iter().all(|token| token == "token-1"));

    // Three more lifetimes under steady traffic: refreshes ahead of expiry,
    // each process opening its refresh window at a different moment.
    for lifetime in 2..=4 {
        let until = Instant::now() + 10 * MINUTE;
        while Instant::now() < until {
            advance(5 * SECOND).await;
            burst(&fleet, 2).await;
        }
        assert_eq!(source.calls(), lifetime, "one fetch per lifetime");
    }
    let stats: u64 = fleet.iter().map(|cache| cache.stats().store_hits).sum();
    assert!(stats >= 3 * 3, "the other processes took the stored tokens");
}

#[tokio::test(start_paused = true)]
async fn a_fleet_at_expiry_fetches_once() {
    let source = TestSource::issuing(MINUTE);
    let store = MemoryStore::new();
    let fleet: Vec<_> = (0..4).map(|_| process(&source, &store)).collect();
    burst(&fleet, 1).await;
    assert_eq!(source.calls(), 1);

    // Nobody sends a request until the token has expired.
    advance(MINUTE + SECOND).await;
    source.gate().close();
    let burst = tokio::spawn({
        let fleet = fleet.clone();
        async move { burst(&fleet, 50).await }
    });
    settle().await;
    advance(100 * Duration::from_millis(1)).await;
    source.gate().release();
    let tokens = burst.await.unwrap();
    assert_eq!(
        source.calls(),
        2,
        "one fetch for 200 requests in 4 processes"
    );
    assert!(tokens.iter().all(|token| token == "token-2"));
}

#[tokio::test(start_paused = true)]
async fn a_restarted_process_reuses_the_stored_token() {
    let source = TestSource::issuing(10 * MINUTE);
    let store = MemoryStore::new();
    let first_run = process(&source, &store);
    assert_eq!(first_run.token().await.unwrap().secret(), "token-1");
    drop(first_run);

    advance(MINUTE).await;
    let second_run = process(&source, &store);
    let token = second_run.token().await.unwrap();
    assert_eq!(token.secret(), "token-1");
    assert_eq!(source.calls(), 1, "the second run fetched nothing");
    assert_eq!(second_run.stats().fetches, 0);
    assert_eq!(second_run.stats().store_hits, 1);
    assert_eq!(
        token.time_left(),
        Some(9 * MINUTE),
        "the stored expiry is kept"
    );
}

#[tokio::test(start_paused = true)]
async fn an_expired_stored_token_is_not_used() {
    let source = TestSource::issuing(10 * MINUTE);
    let store = MemoryStore::new();
    store.put(Token::bearer("old").expires_in(MINUTE));
    advance(MINUTE).await;
    let cache = process(&source, &store);
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");
    assert_eq!(store.stored().as_deref(), Some("token-1"));
}

#[tokio::test(start_paused = true)]
async fn the_hot_path_never_touches_the_store() {
    let source = TestSource::issuing(10 * MINUTE);
    let store = MemoryStore::new();
    let cache = process(&source, &store);
    cache.token().await.unwrap();
    let calls = store.calls();
    for _ in 0..1_000 {
        cache.token().await.unwrap();
    }
    assert_eq!(store.calls(), calls);
}

#[tokio::test(start_paused = true)]
async fn a_stored_copy_of_a_rejected_token_is_not_taken_again() {
    let source = TestSource::issuing(10 * MINUTE);
    let store = MemoryStore::new();
    let a = process(&source, &store);
    let b = process(&source, &store);
    let first = a.token().await.unwrap();
    assert_eq!(b.token().await.unwrap().secret(), "token-1");

    // The API rejects token-1 (revoked): B drops it and must fetch, even
    // though the store still holds token-1.
    let from_b = b.token().await.unwrap();
    assert!(b.invalidate(&from_b));
    assert_eq!(b.token().await.unwrap().secret(), "token-2");
    assert_eq!(source.calls(), 2);

    // A, rejected too, takes B's token-2 from the store.
    assert!(a.invalidate(&first));
    assert_eq!(a.token().await.unwrap().secret(), "token-2");
    assert_eq!(source.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn when_a_lock_holder_dies_another_process_fetches_after_its_lease() {
    let source = TestSource::issuing(10 * MINUTE);
    let store = MemoryStore::new();
    store.take_lock_and_die(LEASE);
    let cache = process(&source, &store);

    let started = Instant::now();
    let token = cache.token().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(token.secret(), "token-1");
    assert_eq!(source.calls(), 1);
    assert!(
        waited >= LEASE && waited < LEASE + 100 * Duration::from_millis(1),
        "waited {waited:?} for a lease of {LEASE:?}"
    );
    assert_eq!(store.stored().as_deref(), Some("token-1"));
    assert!(!store.is_locked(), "the lock was released");
}

#[tokio::test(start_paused = true)]
async fn a_lock_never_released_makes_the_process_fetch_alone() {
    let source = TestSource::issuing(10 * MINUTE);
    let store = MemoryStore::new();
    // A holder stuck forever, in a store that never expires its lease.
    store.take_lock_and_die(Duration::from_secs(1_000_000));
    let cache = process(&source, &store);
    let (events, _guard) = Events::capture();

    let started = Instant::now();
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");
    let waited = started.elapsed();
    assert!(
        waited >= LEASE + FETCH_TIMEOUT && waited < LEASE + FETCH_TIMEOUT + SECOND,
        "gave up after {waited:?}"
    );
    assert_eq!(
        events.lines_with("fetching alone").len(),
        1,
        "{}",
        events.text()
    );
    assert_eq!(store.stored(), None, "not saved without the lock");
}

#[tokio::test(start_paused = true)]
async fn when_the_store_is_down_requests_keep_flowing() {
    let source = TestSource::issuing(MINUTE);
    let store = MemoryStore::new();
    let fleet: Vec<_> = (0..2).map(|_| process(&source, &store)).collect();
    burst(&fleet, 10).await;
    assert_eq!(source.calls(), 1);

    store.set_down(true);
    let (events, _guard) = Events::capture();
    advance(MINUTE + SECOND).await;
    let tokens = burst(&fleet, 10).await;
    assert_eq!(tokens.len(), 20, "every request got a token");
    assert_eq!(source.calls(), 3, "each process fetched on its own");
    assert!(fleet.iter().all(|cache| cache.stats().store_failures >= 1));
    assert!(
        !events
            .lines_with("token store failed; fetching without it")
            .is_empty()
    );

    // Back up: the next refresh goes through the store again.
    store.set_down(false);
    advance(MINUTE + SECOND).await;
    burst(&fleet, 10).await;
    assert_eq!(source.calls(), 4, "one fetch again for both");
}

#[tokio::test(start_paused = true)]
async fn a_hung_store_is_bounded_by_the_fetch_timeout() {
    use tower_token_refresh::store::{Lease, StoreFuture, StoredToken, TokenStore};

    struct Hangs;
    impl TokenStore for Hangs {
        fn load(&self) -> StoreFuture<'_, Option<StoredToken>> {
            Box::pin(std::future::pending())
        }
        fn try_lock(&self, _: Duration) -> StoreFuture<'_, Option<Lease>> {
            Box::pin(std::future::pending())
        }
        fn save<'a>(&'a self, _: &'a StoredToken, _: &'a Lease) -> StoreFuture<'a, bool> {
            Box::pin(std::future::pending())
        }
        fn discard<'a>(&'a self, _: &'a Token) -> StoreFuture<'a, bool> {
            Box::pin(std::future::pending())
        }
        fn unlock(&self, _: Lease) -> StoreFuture<'_, ()> {
            Box::pin(std::future::pending())
        }
    }

    let source = TestSource::issuing(MINUTE);
    let cache = TokenCache::builder(source.clone())
        .store(Hangs)
        .fetch_timeout(FETCH_TIMEOUT)
        .build();
    let started = Instant::now();
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");
    assert_eq!(
        started.elapsed(),
        FETCH_TIMEOUT,
        "one store call timed out, then a fetch"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fetch_that_timed_out_keeps_the_lock_until_its_lease_ends() {
    use support::Behaviour;
    use tower_token_refresh::ErrorKind;

    // The source may still be at work after the cache stopped waiting (a
    // refresh token exchange goes on to keep a rotated refresh token):
    // another process must not start one meanwhile.
    let source = TestSource::new(Behaviour::Hang);
    let store = MemoryStore::new();
    let cache = process(&source, &store);
    let error = cache.token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(store.is_locked(), "released right after the timeout");
    advance(LEASE - FETCH_TIMEOUT - SECOND).await;
    assert!(store.is_locked());
    advance(2 * SECOND).await;
    assert!(!store.is_locked());
}

#[tokio::test(start_paused = true)]
async fn a_failing_identity_provider_gets_one_call_per_backoff_from_the_fleet() {
    use support::Behaviour;

    let source = TestSource::new(Behaviour::Fail("identity provider down"));
    let store = MemoryStore::new();
    let fleet: Vec<_> = (0..4)
        .map(|_| {
            TokenCache::builder(source.clone())
                .store(store.clone())
                .fetch_timeout(FETCH_TIMEOUT)
                .lease(LEASE)
                .backoff(2 * SECOND, 8 * SECOND)
                .build()
        })
        .collect();
    let attempt = || async {
        let mut errors = Vec::new();
        for cache in &fleet {
            errors.push(cache.token().await.unwrap_err());
        }
        errors
    };

    let errors = attempt().await;
    assert_eq!(source.calls(), 1, "one call for the whole fleet");
    assert!(
        errors[1..].iter().all(
            |error| std::error::Error::source(error).is_some_and(|cause| cause
                .to_string()
                .contains("another process sharing the token store"))
        ),
        "{errors:?}"
    );
    advance(SECOND / 2).await;
    attempt().await;
    assert_eq!(source.calls(), 1, "nobody calls during the fleet's backoff");

    advance(3 * SECOND).await;
    attempt().await;
    assert_eq!(
        source.calls(),
        2,
        "one call per backoff, not one per process"
    );

    // The provider is back: one fetch serves the fleet, and clears the
    // failure.
    source.set(Behaviour::Issue(MINUTE));
    advance(20 * SECOND).await;
    let tokens = burst(&fleet, 5).await;
    assert_eq!(source.calls(), 3);
    assert!(tokens.iter().all(|token| token == "token-3"));
}

#[tokio::test(start_paused = true)]
async fn a_fleet_backoff_longer_than_any_the_cache_sets_is_ignored() {
    use tower_token_refresh::store::TokenStore;
    // A failure marker a day ahead (a clock stepped back, a damaged store)
    // would stop the fleet for a day: no process sets one that long.
    let source = TestSource::issuing(MINUTE * 60);
    let store = MemoryStore::new();
    let lease = store.try_lock(MINUTE).await.unwrap().unwrap();
    store
        .save_failure(Duration::from_secs(24 * 3600), &lease)
        .await
        .unwrap();
    store.unlock(lease).await.unwrap();
    let cache = TokenCache::builder(source.clone())
        .store(store.clone())
        .build();
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");
    assert_eq!(source.calls(), 1);

    // One as long as a backoff of the cache's is honoured.
    let source = TestSource::issuing(MINUTE * 60);
    let store = MemoryStore::new();
    let lease = store.try_lock(MINUTE).await.unwrap().unwrap();
    store.save_failure(SECOND * 20, &lease).await.unwrap();
    store.unlock(lease).await.unwrap();
    let cache = TokenCache::builder(source.clone())
        .store(store.clone())
        .build();
    cache.token().await.unwrap_err();
    assert_eq!(source.calls(), 0, "the fleet is backing off");
    advance(SECOND * 21).await;
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");
}

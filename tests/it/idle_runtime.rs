//! A program that drives its runtime only now and then (a script calling
//! `Runtime::block_on` per job) must not send a token that expired while the
//! runtime sat idle. The request path trusts a flag that a timer raises;
//! the timer task cannot run while nobody drives its runtime, so a thread of
//! the crate's raises it on time as well.
//!
//! These tests need real time to pass outside any runtime, which paused
//! Tokio time cannot express: they use lifetimes of a few hundred
//! milliseconds and wait for them with `std::thread::sleep`.

use crate::support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::Empty;
use support::echo_authorization;
use tower::{BoxError, Layer, Service, ServiceExt};
use tower_token_refresh::{Token, TokenCache, TokenRefreshLayer};

const LIFETIME: Duration = Duration::from_millis(300);

/// When each token issued so far expires, by header value.
type Expiries = Arc<Mutex<HashMap<String, Instant>>>;

/// A cache handing out `t1`, `t2`, … that live [`LIFETIME`], and when each
/// expires.
fn short_lived() -> (TokenCache, Expiries) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let expiries = Expiries::default();
    let recorded = Arc::clone(&expiries);
    let cache = TokenCache::new(move || {
        let name = format!("t{}", fetches.fetch_add(1, Ordering::SeqCst) + 1);
        let token = Token::bearer(name.clone()).expires_in(LIFETIME);
        recorded
            .lock()
            .unwrap()
            .insert(format!("Bearer {name}"), Instant::now() + LIFETIME);
        async move { Ok::<_, BoxError>(token) }
    });
    (cache, expiries)
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sleeps (outside any runtime) until every token issued so far expired.
fn sleep_past(expiries: &Expiries) {
    let last = expiries.lock().unwrap().values().max().copied().unwrap();
    std::thread::sleep(last.saturating_duration_since(Instant::now()) + Duration::from_millis(20));
}

/// Checks, just after it was sent, that `sent` had not expired. (A stalled
/// machine may refresh early, so which token it is is not checked.)
fn assert_unexpired(expiries: &Expiries, sent: &HeaderValue) {
    let sent = sent.to_str().unwrap();
    let expiry = expiries.lock().unwrap()[sent];
    assert!(Instant::now() < expiry, "{sent} was sent after it expired");
}

#[test]
fn a_script_that_drives_its_runtime_now_and_then_never_sends_an_expired_token() {
    let (cache, expiries) = short_lived();
    let runtime = current_thread();
    let mut kept = TokenRefreshLayer::new(cache.clone()).layer(echo_authorization());
    let cloned = kept.clone();
    let send_both = |kept: &mut _| -> [HeaderValue; 2] {
        runtime.block_on(async {
            let on_one: &mut tower_token_refresh::TokenRefresh<_> = kept;
            let first = ServiceExt::<Request<Empty<Bytes>>>::ready(on_one)
                .await
                .unwrap()
                .call(Request::new(Empty::new()))
                .await
                .unwrap();
            let second = cloned
                .clone()
                .oneshot(Request::new(Empty::new()))
                .await
                .unwrap();
            [first, second].map(|response| response.into_body().into_inner().unwrap())
        })
    };

    // Twice first, so that the thread has its snapshot.
    for _ in 0..2 {
        for sent in send_both(&mut kept) {
            assert_unexpired(&expiries, &sent);
        }
    }
    for round in 2..=4 {
        sleep_past(&expiries);
        for sent in send_both(&mut kept) {
            assert_unexpired(&expiries, &sent);
        }
        assert!(cache.stats().fetches >= round);
    }
}

#[test]
fn a_token_fetched_on_a_runtime_left_idle_is_not_sent_expired_from_another() {
    let (cache, expiries) = short_lived();
    let client = TokenRefreshLayer::new(cache.clone()).layer(echo_authorization());
    // The first token, and its timer, belong to a runtime that then idles.
    let idle = current_thread();
    let first = idle
        .block_on(client.clone().oneshot(Request::new(Empty::new())))
        .unwrap();
    assert_unexpired(&expiries, &first.into_body().into_inner().unwrap());

    let busy = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    sleep_past(&expiries);
    let sent = busy
        .block_on(client.clone().oneshot(Request::new(Empty::new())))
        .unwrap();
    assert_unexpired(&expiries, &sent.into_body().into_inner().unwrap());
    drop(idle);
}

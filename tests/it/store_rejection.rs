//! A token a server rejected leaves the store too (compared first, so a
//! newer token stays), and caches sharing a store by mistake do not take
//! each other's tokens. Through the layer, on paused Tokio time, with the
//! in-memory store; the file store against real files. (Processes taking
//! turns over a file and Redis: `fleet.rs`.)

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use support::events::Events;
use support::memory_store::MemoryStore;
use support::revoking_api::{RejectWith, RevokingApi};
use support::temp_dir::TempDir;
use support::{TestSource, fetch};
use tower::Layer;
use tower_token_refresh::store::{FileStore, StoredToken, TokenStore};
use tower_token_refresh::{Token, TokenCache, TokenRefresh, TokenRefreshLayer};

const HOUR: Duration = Duration::from_secs(3600);

/// One run of a program: a cache named "api" over the shared store, and a
/// client of the API through the layer (retry off, the default).
fn run(source: &TestSource, store: &MemoryStore, api: &RevokingApi) -> TokenRefresh<RevokingApi> {
    let cache = TokenCache::builder(source.clone())
        .name("api")
        .store(store.clone())
        .build();
    TokenRefreshLayer::new(cache).layer(api.clone())
}

async fn send(client: &TokenRefresh<RevokingApi>) -> StatusCode {
    let request = http::Request::get("/items")
        .body(Full::<Bytes>::default())
        .unwrap();
    fetch(client, request).await.0
}

#[tokio::test(start_paused = true)]
async fn a_rejected_token_has_left_the_store_when_the_rejection_reaches_the_caller() {
    let source = TestSource::issuing(HOUR);
    let store = MemoryStore::new();
    let api = RevokingApi::new(RejectWith::Http401);

    assert_eq!(send(&run(&source, &store, &api)).await, StatusCode::OK);
    assert_eq!(store.stored().as_deref(), Some("token-1"));

    // The identity provider forgets its tokens; the next run loads the
    // stored one, is rejected, and exits at once.
    api.revoke("token-1");
    let second = run(&source, &store, &api);
    assert_eq!(send(&second).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        store.stored(),
        None,
        "discarded before the caller saw the 401"
    );
    drop(second);

    // The run after fetches; it never sends the dead token.
    assert_eq!(send(&run(&source, &store, &api)).await, StatusCode::OK);
    assert_eq!(api.seen(), ["token-1", "token-1", "token-2"]);
    assert_eq!(source.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_late_rejection_of_an_old_token_leaves_the_newer_one() {
    let source = TestSource::issuing(HOUR);
    let store = MemoryStore::new();
    let api = RevokingApi::new(RejectWith::Http401);
    let a = run(&source, &store, &api);
    let b = run(&source, &store, &api);
    assert_eq!(send(&a).await, StatusCode::OK);
    assert_eq!(send(&b).await, StatusCode::OK, "b loads token-1");
    assert_eq!(source.calls(), 1);

    api.revoke("token-1");
    assert_eq!(send(&b).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&b).await,
        StatusCode::OK,
        "b fetches and saves token-2"
    );
    assert_eq!(store.stored().as_deref(), Some("token-2"));

    // `a` still holds token-1: its rejection must not delete token-2.
    assert_eq!(send(&a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(store.stored().as_deref(), Some("token-2"));
    assert_eq!(send(&a).await, StatusCode::OK, "a loads token-2");
    assert_eq!(source.calls(), 2);
    assert_eq!(
        api.seen(),
        [
            "token-1", "token-1", "token-1", "token-2", "token-1", "token-2"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_store_that_fails_to_discard_does_not_hold_the_rejection_past_the_fetch_timeout() {
    let source = TestSource::issuing(HOUR);
    let store = MemoryStore::new();
    let api = RevokingApi::new(RejectWith::Http401);
    let (events, _guard) = Events::capture();
    let client = run(&source, &store, &api);
    assert_eq!(send(&client).await, StatusCode::OK);
    api.revoke("token-1");
    store.set_down(true);
    assert_eq!(send(&client).await, StatusCode::UNAUTHORIZED);
    assert!(
        !events
            .lines_with("could not discard the rejected token from the store")
            .is_empty(),
        "{}",
        events.text()
    );
}

#[tokio::test(start_paused = true)]
async fn caches_sharing_a_store_by_mistake_keep_their_own_tokens() {
    let (events, _guard) = Events::capture();
    let store = MemoryStore::new();
    let cache = |source: &TestSource, name: &str| {
        TokenCache::builder(source.clone())
            .name(name)
            .store(store.clone())
            .build()
    };
    let (orders_source, billing_source) = (TestSource::issuing(HOUR), TestSource::issuing(HOUR));
    let orders = cache(&orders_source, "orders");
    let billing = cache(&billing_source, "billing");

    orders.token().await.unwrap();
    assert_eq!(store.stored_fingerprint().as_deref(), Some("orders"));
    // Billing finds orders' token: it fetches its own, and leaves the
    // store alone.
    billing.token().await.unwrap();
    assert_eq!(billing_source.calls(), 1, "billing fetched its own token");
    assert_eq!(store.stored_fingerprint().as_deref(), Some("orders"));
    assert_eq!(billing.stats().store_failures, 1);
    let warned = events.lines_with("token store failed; fetching without it");
    assert_eq!(warned.len(), 1, "{}", events.text());
    assert!(warned[0].contains("another source"), "{}", warned[0]);
    assert!(warned[0].contains("stored by orders"), "{}", warned[0]);

    // Orders, on a restart, still finds its own.
    cache(&orders_source, "orders").token().await.unwrap();
    assert_eq!(orders_source.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_token_of_no_known_source_is_not_taken_but_may_be_replaced() {
    let store = MemoryStore::new();
    // Written before fingerprints were kept.
    store.put(Token::bearer("old-format").expires_in(HOUR));
    let source = TestSource::issuing(HOUR);
    let cache = TokenCache::builder(source.clone())
        .name("orders")
        .store(store.clone())
        .build();
    assert_eq!(cache.token().await.unwrap().secret(), "token-1");
    assert_eq!(store.stored().as_deref(), Some("token-1"));
    assert_eq!(store.stored_fingerprint().as_deref(), Some("orders"));
    assert_eq!(cache.stats().store_failures, 0);
}

#[tokio::test]
async fn the_file_store_discards_only_the_token_it_still_holds() {
    let dir = TempDir::new("discard");
    let path = dir.join("token.json");
    // Two processes' stores on one file.
    let (a, b) = (
        FileStore::new(&path).unwrap(),
        FileStore::new(&path).unwrap(),
    );
    let saved = |name: &str| StoredToken::new(Token::bearer(name).expires_in(HOUR), None);
    let lease = a.try_lock(HOUR).await.unwrap().unwrap();
    assert!(a.save(&saved("newer"), &lease).await.unwrap());
    drop(lease);

    assert!(!b.discard(&Token::bearer("older")).await.unwrap());
    let stored = a.load().await.unwrap().unwrap();
    assert_eq!(stored.token().secret(), "newer");
    assert!(b.discard(&Token::bearer("newer")).await.unwrap());
    assert!(a.load().await.unwrap().is_none());
}

#[tokio::test]
async fn the_file_store_discards_under_the_write_lock_and_keeps_the_rest() {
    use tower_token_refresh::Secret;
    use tower_token_refresh::store::RefreshTokenStore;

    let dir = TempDir::new("discard-locked");
    let path = dir.join("token.json");
    let (a, b) = (
        FileStore::new(&path).unwrap(),
        FileStore::new(&path).unwrap(),
    );
    let stored = StoredToken::new(Token::bearer("rejected").expires_in(HOUR), None);
    let lease = a.try_lock(HOUR).await.unwrap().unwrap();
    assert!(a.save(&stored, &lease).await.unwrap());
    a.save_refresh_token(&Secret::new("refresh-2"))
        .await
        .unwrap();

    // Another writer is changing the file: the discard waits for it.
    let writer = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("token.json.write-lock"))
        .unwrap();
    writer.lock().unwrap();
    let discard = tokio::spawn(async move { b.discard(&Token::bearer("rejected")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !discard.is_finished(),
        "the discard waits for the write lock"
    );
    drop(writer);
    assert!(discard.await.unwrap().unwrap());

    // The refresh lock (held by `a` all along) is not needed to discard;
    // what else the file holds stays.
    assert!(a.load().await.unwrap().is_none());
    assert_eq!(
        a.load_refresh_token().await.unwrap().unwrap().expose(),
        "refresh-2"
    );
    drop(lease);
}

#[cfg(feature = "oauth2")]
#[test]
fn oauth_sources_are_told_apart_by_what_shapes_their_tokens_never_by_secrets() {
    use tower_token_refresh::TokenSource;
    use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};

    let source = |client: &str, scope: &str, secret: &str| {
        ClientCredentials::builder(
            "http://127.0.0.1:1/token",
            client,
            ClientAuth::basic(secret.to_owned()),
        )
        .allow_insecure_http()
        .scope(scope)
        .build()
        .unwrap()
        .fingerprint()
        .unwrap()
    };
    let orders = source("svc", "orders:read", "s3cret-one");
    assert!(orders.contains("http://127.0.0.1:1/token"), "{orders}");
    assert!(
        orders.contains("svc") && orders.contains("orders:read"),
        "{orders}"
    );
    assert!(!orders.contains("s3cret"), "{orders}");
    assert_eq!(orders, source("svc", "orders:read", "rotated-secret"));
    assert_ne!(orders, source("svc", "billing:read", "s3cret-one"));
    assert_ne!(orders, source("other", "orders:read", "s3cret-one"));
}

/// A request rejected on one runtime waits for the store to drop the token,
/// whose removal an earlier rejection started on another runtime; that
/// runtime then sits idle (a script's `block_on` per job). The wait is
/// bounded all the same.
#[test]
fn a_rejection_does_not_wait_forever_for_a_removal_on_an_idle_runtime() {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};
    use tower::{Service, service_fn};

    let store = MemoryStore::new();
    let cache = TokenCache::builder(TestSource::issuing(HOUR))
        .name("api")
        .store(store.clone())
        .fetch_timeout(Duration::from_millis(500))
        .build();
    let unauthorized = service_fn(|_: http::Request<()>| async {
        Ok::<_, Infallible>(
            http::Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .body(())
                .unwrap(),
        )
    });
    let client = TokenRefreshLayer::new(cache.clone()).layer(unauthorized);
    let busy = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    busy.block_on(cache.token()).unwrap();
    let mut cx = Context::from_waker(Waker::noop());

    // Sent with token-1; its answer is not polled yet.
    let mut on_busy = client.clone();
    assert!(on_busy.poll_ready(&mut cx).is_ready());
    let on_busy = on_busy.call(http::Request::new(()));

    // Rejected on an idle runtime: the removal's task is spawned there and
    // never driven.
    let idle = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    idle.block_on(async {
        let mut service = client.clone();
        assert!(service.poll_ready(&mut cx).is_ready());
        let mut future = pin!(service.call(http::Request::new(())));
        let _ = future.as_mut().poll(&mut cx);
    });

    let answered =
        busy.block_on(async { tokio::time::timeout(Duration::from_secs(10), on_busy).await });
    let response = answered
        .expect("the rejection waited past the fetch timeout")
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    drop(idle);
}

#[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
#[test]
fn jwt_bearer_sources_are_told_apart_by_their_claims_and_audience() {
    use tower_token_refresh::TokenSource;
    use tower_token_refresh::oauth2::{Algorithm, JwtBearerGrant, SigningKey};

    const EC_PRIVATE: &[u8] = include_bytes!("../keys/ec_private.pem");
    let source = |scope: &str, audience: Option<&str>| {
        let key = SigningKey::from_pem(EC_PRIVATE, Algorithm::ES256).unwrap();
        let mut builder =
            JwtBearerGrant::builder("http://127.0.0.1:1/token", key, "sa@project.example")
                .claim("scope", scope)
                .claim("jti", "changes-every-time");
        if let Some(audience) = audience {
            builder = builder.assertion_audience(audience);
        }
        builder.build().unwrap().fingerprint().unwrap()
    };
    let read_only = source("cloud-platform.read-only", None);
    assert!(read_only.contains("sa@project.example"), "{read_only}");
    assert!(!read_only.contains("changes-every-time"), "{read_only}");
    assert_eq!(read_only, source("cloud-platform.read-only", None));
    assert_ne!(read_only, source("cloud-platform", None));
    assert_ne!(
        read_only,
        source("cloud-platform.read-only", Some("https://other.example"))
    );
}

//! One service instance sending many requests, each with the credential of
//! its thread's snapshot (the hot path): a snapshot must never outlive its
//! token. A new token (after a 401, after `invalidate`, when the refresh
//! window opens, after expiry), another route, or another thread must show
//! from the next request on.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{Empty, Full};
use support::revoking_api::{RejectWith, RevokingApi};
use support::{TestSource, advance, echo_authorization, settle};
use tower::{BoxError, Layer, Service, ServiceExt};
use tower_token_refresh::{
    Origin, ResponseBody, Token, TokenCache, TokenRefreshLayer, TokenRoutes,
};

const HOUR: Duration = Duration::from_secs(3600);

type Echoed = Response<ResponseBody<Option<HeaderValue>>>;

/// Sends `request` on `client` itself (not a clone) and returns the header
/// it carried.
async fn send_on<S>(client: &mut S, request: Request<Empty<Bytes>>) -> HeaderValue
where
    S: Service<Request<Empty<Bytes>>, Response = Echoed>,
    S::Error: std::fmt::Debug,
{
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    response
        .into_body()
        .into_inner()
        .expect("authorization header")
}

async fn send<S>(client: &mut S) -> HeaderValue
where
    S: Service<Request<Empty<Bytes>>, Response = Echoed>,
    S::Error: std::fmt::Debug,
{
    send_on(client, Request::new(Empty::new())).await
}

/// A cache that hands out `<name>-1`, `<name>-2`, … living an hour.
fn counting(name: &'static str) -> TokenCache {
    let fetches = Arc::new(AtomicUsize::new(0));
    TokenCache::new(move || {
        let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok::<_, BoxError>(Token::bearer(format!("{name}-{n}")).expires_in(HOUR)) }
    })
}

#[tokio::test(start_paused = true)]
async fn a_dropped_or_expired_token_is_not_sent_again() {
    let source = TestSource::issuing(HOUR);
    let cache = TokenCache::new(source.clone());
    let mut client = TokenRefreshLayer::new(cache.clone()).layer(echo_authorization());
    for _ in 0..3 {
        assert_eq!(send(&mut client).await, "Bearer token-1");
    }

    let token = cache.token().await.unwrap();
    assert!(cache.invalidate(&token));
    for _ in 0..3 {
        assert_eq!(send(&mut client).await, "Bearer token-2");
    }

    advance(HOUR).await;
    for _ in 0..3 {
        assert_eq!(send(&mut client).await, "Bearer token-3");
    }
    assert_eq!(source.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_refresh_window_opening_starts_a_refresh_and_the_new_token_follows() {
    let source = TestSource::issuing(Duration::from_secs(100));
    let cache = TokenCache::builder(source.clone())
        .refresh_before(Duration::from_secs(10))
        .build();
    let mut client = TokenRefreshLayer::new(cache).layer(echo_authorization());
    for _ in 0..3 {
        assert_eq!(send(&mut client).await, "Bearer token-1");
    }
    assert_eq!(source.calls(), 1);

    // Inside the window (it opens 10 s before expiry, less jitter), the
    // token is still valid and still sent, and a refresh starts.
    advance(Duration::from_secs(93)).await;
    assert_eq!(send(&mut client).await, "Bearer token-1");
    settle().await;
    assert_eq!(
        source.calls(),
        2,
        "the request in the window started a refresh"
    );
    for _ in 0..3 {
        assert_eq!(send(&mut client).await, "Bearer token-2");
    }
}

#[tokio::test(start_paused = true)]
async fn a_401_then_a_retry_on_the_same_instance_use_the_new_token() {
    let source = TestSource::issuing(HOUR);
    let api = RevokingApi::new(RejectWith::Http401);
    let mut client = TokenRefreshLayer::new(TokenCache::new(source.clone()))
        .retry_rejected()
        .layer(api.clone());
    async fn post<S>(client: &mut S) -> StatusCode
    where
        S: Service<Request<Full<Bytes>>, Response = Response<ResponseBody<String>>>,
        S::Error: std::fmt::Debug,
    {
        let request = Request::post("/items")
            .body(Full::new(Bytes::from_static(b"a")))
            .unwrap();
        let response = client.ready().await.unwrap().call(request).await.unwrap();
        response.status()
    }
    for _ in 0..3 {
        assert_eq!(post(&mut client).await, StatusCode::OK);
    }
    api.revoke("token-1");
    for _ in 0..3 {
        assert_eq!(post(&mut client).await, StatusCode::OK);
    }
    assert_eq!(source.calls(), 2);
    assert_eq!(
        api.seen(),
        [
            "token-1", "token-1", "token-1", "token-1", "token-2", "token-2", "token-2"
        ],
        "one rejected request, retried; the rest with the new token"
    );
}

#[tokio::test(start_paused = true)]
async fn each_route_gets_its_own_token_however_requests_alternate() {
    let (a, b) = (counting("a"), counting("b"));
    // Both caches changed as often, so their versions are the same number:
    // only the cache tells a snapshot of one from the other.
    a.token().await.unwrap();
    b.token().await.unwrap();
    let routes = TokenRoutes::new()
        .route(Origin::parse("https://a.example").unwrap(), a)
        .route(Origin::parse("https://b.example").unwrap(), b);
    let mut client = TokenRefreshLayer::routes(routes).layer(echo_authorization());
    let to = |origin: &str| {
        Request::get(format!("{origin}/items"))
            .body(Empty::new())
            .unwrap()
    };
    for round in 0..12 {
        // Alternating, then in runs of three.
        let (origin, want) = if (round < 6 && round % 2 == 0) || (6..9).contains(&round) {
            ("https://a.example", "Bearer a-1")
        } else {
            ("https://b.example", "Bearer b-1")
        };
        assert_eq!(
            send_on(&mut client, to(origin)).await,
            want,
            "round {round}"
        );
    }
}

/// Once `invalidate` has returned on one thread and that thread has told
/// another (a happens-before edge), no request the other thread starts
/// afterwards may carry the dropped token.
#[test]
fn a_token_dropped_on_another_thread_is_not_sent_after_being_told() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Tokens dropped right after they were fetched look like bad
    // credentials: a tiny backoff keeps the loop fast, and both sides
    // tolerate the errors it gives meanwhile.
    let fetches = Arc::new(AtomicUsize::new(0));
    let cache = TokenCache::builder(move || {
        let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok::<_, BoxError>(Token::bearer(format!("t-{n}")).expires_in(HOUR)) }
    })
    .backoff(Duration::from_micros(10), Duration::from_micros(20))
    .build();
    runtime.block_on(cache.token()).unwrap();
    let client = TokenRefreshLayer::new(cache.clone()).layer(echo_authorization());
    let (dropped_sender, dropped) = std::sync::mpsc::channel::<Option<String>>();
    let (ack, acked) = std::sync::mpsc::channel::<()>();
    let handle = runtime.handle().clone();
    let sender = std::thread::spawn(move || {
        let mut client = client;
        let mut dropped_tokens = Vec::new();
        let mut sent_dropped = 0;
        loop {
            match dropped.try_recv() {
                Ok(Some(token)) => {
                    dropped_tokens.push(format!("Bearer {token}"));
                    ack.send(()).unwrap();
                }
                Ok(None) => break,
                Err(_) => {}
            }
            let sent = handle.block_on(async {
                let response = client.ready().await.ok()?;
                let response = response.call(Request::new(Empty::new())).await.ok()?;
                response.into_body().into_inner()
            });
            if sent
                .is_some_and(|header| dropped_tokens.iter().any(|token| header == token.as_str()))
            {
                sent_dropped += 1;
            }
        }
        sent_dropped
    });
    let mut dropped_count = 0;
    while dropped_count < 1_000 {
        let Ok(token) = runtime.block_on(cache.token()) else {
            std::thread::sleep(Duration::from_micros(50));
            continue;
        };
        if cache.invalidate(&token) {
            dropped_sender
                .send(Some(token.secret().to_owned()))
                .unwrap();
            acked.recv().unwrap();
            dropped_count += 1;
        }
    }
    dropped_sender.send(None).unwrap();
    assert_eq!(
        sender.join().unwrap(),
        0,
        "requests sent with a dropped token"
    );
}

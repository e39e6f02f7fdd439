//! What the fakes of platform identity endpoints share: serving an axum
//! router on 127.0.0.1 (or in process, as an `HttpClient`, for tests on
//! paused time), counting calls, recording what was asked, injecting the
//! faults a test asks for, and the problems a strict server found.
#![cfg(feature = "workload")]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_token_refresh::oauth2::HttpClient;

/// What an endpoint answers instead of a token, when a test says so.
#[derive(Debug, Clone)]
pub enum Fault {
    /// This status, with `Retry-After` (seconds) if given, and this body.
    Status(u16, Option<u64>, &'static str),
    /// Never answer.
    Hang,
}

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: HashMap<String, String>,
}

/// Declares a fake: a cloneable handle on its [`Script`] (which it derefs
/// to), whose router sends every request to `$handler`.
macro_rules! fake_server {
    ($(#[$doc:meta])* $name:ident, $handler:path) => {
        $(#[$doc])*
        #[derive(Clone, Default)]
        pub struct $name(std::sync::Arc<$crate::support::fake::Script>);

        impl std::ops::Deref for $name {
            type Target = $crate::support::fake::Script;

            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl $name {
            pub fn new() -> Self {
                Self::default()
            }

            pub fn router(&self) -> axum::Router {
                axum::Router::new().fallback($handler).with_state(self.clone())
            }

            pub async fn serve(&self) -> $crate::support::fake::Served {
                $crate::support::fake::serve(self.router()).await
            }
        }
    };
}
pub(crate) use fake_server;

/// Calls, requests, faults and problems of one fake.
#[derive(Default)]
pub struct Script {
    calls: AtomicUsize,
    issued: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    faults: Mutex<VecDeque<Fault>>,
    problems: Mutex<Vec<String>>,
}

impl Script {
    /// Counts a request and records it; then the next injected fault, if
    /// there is one (answer it with [`fault`]).
    pub fn arrived(&self, request: &axum::extract::Request) -> Option<Fault> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(Seen {
            path: request.uri().path().to_owned(),
            query: query(request),
        });
        self.faults.lock().unwrap().pop_front()
    }

    /// The next requests get these faults, in order, then tokens again.
    pub fn fail_with(&self, faults: impl IntoIterator<Item = Fault>) {
        self.faults.lock().unwrap().extend(faults);
    }

    /// Numbers the tokens a fake issues: 1, 2, …
    pub fn next_number(&self) -> usize {
        self.issued.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Requests received so far (refused ones included).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The requests received, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Records a problem with a request (answered as the real server
    /// would); the tests of well-formed requests assert there is none.
    pub fn problem(&self, text: impl Into<String>) {
        self.problems.lock().unwrap().push(text.into());
    }

    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap().clone()
    }
}

/// The answer a fault gives.
pub async fn fault(fault: Fault) -> Response {
    match fault {
        Fault::Status(status, retry_after, body) => {
            let mut response = Response::builder().status(status);
            if let Some(seconds) = retry_after {
                response = response.header(RETRY_AFTER, seconds.to_string());
            }
            response.body(Body::from(body)).unwrap()
        }
        Fault::Hang => std::future::pending().await,
    }
}

/// The query of `request`, decoded.
pub fn query(request: &axum::extract::Request) -> HashMap<String, String> {
    form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// A header's value, if it is text.
pub fn header<'a>(request: &'a axum::extract::Request, name: &str) -> Option<&'a str> {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// A fake served on 127.0.0.1; stops when dropped.
pub struct Served {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` on a free port of 127.0.0.1.
pub async fn serve(router: Router) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Served { addr, task }
}

/// `router` as an HTTP client, without a socket: for tests on paused time
/// (a socket's readiness is not bound to tokio's clock).
pub fn in_process(router: Router) -> HttpClient {
    HttpClient::new(router)
}

pub fn json(status: u16, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(body.to_string()))
        .unwrap()
}

pub fn text(status: u16, body: impl Into<String>) -> Response {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(body.into()))
        .unwrap()
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A JWT (unsigned: only its claims are read) with these claims, plus
/// `iat` now and `exp` after `lifetime`.
pub fn jwt(mut claims: Value, lifetime: Duration) -> String {
    let now = now_secs();
    claims["iat"] = now.into();
    claims["exp"] = (now + lifetime.as_secs()).into();
    format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The claims of a JWT `jwt` made.
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// GETs `url` with these headers over a socket, outside any source: how
/// the tests show what the fake refuses.
pub async fn raw_get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let mut request = http::Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A burst of a thousand callers through `cache` (on paused time), then
/// another once its first token has expired (`lifetime` later): each burst
/// makes exactly one call to `fake`, and every caller gets the token that
/// call issued (`issued(token)` says which call issued `token`: 1, 2, …).
pub async fn bursts_at_expiry(
    cache: &tower_token_refresh::TokenCache,
    fake: &Script,
    lifetime: Duration,
    issued: impl Fn(&str) -> usize,
) {
    for call in 1..=2 {
        if call > 1 {
            tokio::time::advance(lifetime + Duration::from_secs(1)).await;
        }
        let tokens = burst(cache).await;
        assert_eq!(fake.calls(), call, "one call per burst");
        assert!(tokens.iter().all(|token| issued(token) == call));
    }
}

/// A thousand callers at once: the tokens they got.
pub async fn burst(cache: &tower_token_refresh::TokenCache) -> Vec<String> {
    let callers: Vec<_> = (0..1000)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await.map(|token| token.secret().to_owned()) })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(caller.await.unwrap().unwrap());
    }
    tokens
}

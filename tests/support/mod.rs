//! Shared test helpers: token sources that count their calls, fail on
//! demand, or hold a fetch open until the test releases it.
#![allow(dead_code, unreachable_pub)]

pub mod auth_server;
pub mod azure_identity_server;
pub mod channel_body;
pub mod child;
pub mod dpop_server;
pub mod events;
pub mod fake;
pub mod gcp_metadata_server;
pub mod github_oidc_server;
pub mod jwt;
pub mod memory_store;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod revoking_api;
pub mod tcp_proxy;
pub mod temp_dir;
pub mod token_endpoint;
#[cfg(feature = "rustls")]
pub mod untrusted_tls;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tower_token_refresh::{BoxError, Token, TokenFuture, TokenSource};

/// What the next fetches of a [`TestSource`] do.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Return `token-N` (N = call number, from 1) living this long.
    Issue(Duration),
    /// Return `token-N` without expiry.
    IssueForever,
    /// Fail with this message.
    Fail(&'static str),
    /// Panic.
    Panic,
    /// Never answer.
    Hang,
}

/// A token source that counts its calls and does what the test says.
#[derive(Clone)]
pub struct TestSource {
    inner: Arc<Inner>,
}

struct Inner {
    calls: AtomicUsize,
    behaviour: Mutex<Behaviour>,
    gate: Gate,
}

impl TestSource {
    pub fn issuing(lifetime: Duration) -> Self {
        Self::new(Behaviour::Issue(lifetime))
    }

    pub fn new(behaviour: Behaviour) -> Self {
        Self {
            inner: Arc::new(Inner {
                calls: AtomicUsize::new(0),
                behaviour: Mutex::new(behaviour),
                gate: Gate::open(),
            }),
        }
    }

    /// The number of fetches started so far.
    pub fn calls(&self) -> usize {
        self.inner.calls.load(Ordering::SeqCst)
    }

    /// Changes what later fetches do.
    pub fn set(&self, behaviour: Behaviour) {
        *self.inner.behaviour.lock().unwrap() = behaviour;
    }

    /// Fetches wait at this gate before answering.
    pub fn gate(&self) -> &Gate {
        &self.inner.gate
    }
}

impl TokenSource for TestSource {
    fn fetch(&self) -> TokenFuture {
        let inner = Arc::clone(&self.inner);
        let n = inner.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            inner.gate.pass().await;
            let behaviour = inner.behaviour.lock().unwrap().clone();
            match behaviour {
                Behaviour::Issue(lifetime) => {
                    Ok(Token::bearer(format!("token-{n}")).expires_in(lifetime))
                }
                Behaviour::IssueForever => Ok(Token::bearer(format!("token-{n}"))),
                Behaviour::Fail(message) => Err(BoxError::from(message)),
                Behaviour::Panic => panic!("test source panics on purpose"),
                Behaviour::Hang => std::future::pending().await,
            }
        })
    }
}

/// Holds fetches until the test opens it.
#[derive(Clone)]
pub struct Gate {
    permits: Arc<Semaphore>,
}

impl Gate {
    pub fn open() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
        }
    }

    /// Closes the gate: later fetches wait at it.
    pub fn close(&self) {
        self.permits.forget_permits(Semaphore::MAX_PERMITS);
    }

    /// Opens the gate for every waiting and later fetch.
    pub fn release(&self) {
        let missing = Semaphore::MAX_PERMITS - self.permits.available_permits();
        self.permits.add_permits(missing);
    }

    pub async fn pass(&self) {
        drop(self.permits.acquire().await);
    }
}

/// Lets every spawned task run until it blocks (current-thread runtime).
pub async fn settle() {
    for _ in 0..5_000 {
        tokio::task::yield_now().await;
    }
}

/// Moves paused time forward, then lets the tasks whose timers fired run
/// (as they would in real time) before the test goes on.
pub async fn advance(by: Duration) {
    tokio::time::advance(by).await;
    settle().await;
}

/// An inner service that answers with the `Authorization` header it got.
pub fn echo_authorization() -> impl tower::Service<
    http::Request<http_body_util::Empty<bytes::Bytes>>,
    Response = http::Response<Option<http::HeaderValue>>,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone
+ Send {
    tower::service_fn(
        |request: http::Request<http_body_util::Empty<bytes::Bytes>>| async move {
            let header = request.headers().get(http::header::AUTHORIZATION).cloned();
            Ok::<_, std::convert::Infallible>(http::Response::new(header))
        },
    )
}

/// Sends `request` through a clone of `client` and reads the answer as
/// text.
pub async fn fetch<S, B, R>(client: &S, request: http::Request<B>) -> (http::StatusCode, String)
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone,
    S::Error: std::fmt::Debug,
    R: http_body::Body,
    R::Error: std::fmt::Debug,
{
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let response = client.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

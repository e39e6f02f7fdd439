//! The stacks every hot-path benchmark compares, over the same inner
//! service (a `service_fn` that answers at once with an empty response):
//!
//! - bare: the inner service alone;
//! - floor: tower-http's `SetRequestHeader` with a fixed sensitive header
//!   (built at run time, as a real token is), the cost of adding a header
//!   that never changes;
//! - hand-written: a `Mutex<(String, Instant)>` checked on every call,
//!   building the header per request, as people write it today;
//! - hand-written async: the same with a `tokio::sync::RwLock`, read in the
//!   (boxed) response future, as written when the refresh is async;
//! - floor and ours cloned per request (`clone()` then `call`, as
//!   `clone().oneshot(..)` does), for stacks that are used that way;
//! - ours: `TokenRefreshLayer` over a `TokenCache` holding a fresh token;
//! - ours retrying: the same with `retry_rejected()`, which keeps a copy of
//!   each request's head and of the inner service for a second attempt.

#![allow(dead_code)] // Each benchmark uses part of it.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::Pin;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use http_body_util::Empty;
use tower::{BoxError, Layer, Service, service_fn};
use tower_http::set_header::{SetRequestHeader, SetRequestHeaderLayer};
use tower_token_refresh::{
    RetryRejected, StandardRejection, Token, TokenCache, TokenRefresh, TokenRefreshLayer,
};

pub type Body = Empty<Bytes>;

/// What the inner service of every stack is.
pub trait Inner:
    Service<
        Request<Body>,
        Response = Response<()>,
        Error = Infallible,
        Future = Ready<Result<Response<()>, Infallible>>,
    > + Clone
    + Send
    + 'static
{
}

impl<S> Inner for S where
    S: Service<
            Request<Body>,
            Response = Response<()>,
            Error = Infallible,
            Future = Ready<Result<Response<()>, Infallible>>,
        > + Clone
        + Send
        + 'static
{
}

/// The inner service of every stack.
pub fn inner() -> impl Inner {
    service_fn(|request: Request<Body>| {
        black_box(&request);
        ready(Ok(Response::new(())))
    })
}

/// A typical request: a URI and two headers.
pub fn request() -> Request<Body> {
    Request::get("https://api.example.com/v1/items/42")
        .header("accept", "application/json")
        .header("user-agent", "bench/1.0")
        .body(Empty::new())
        .unwrap()
}

/// The least a request can be: an empty body, the default URI (`/`) and
/// one header. Building and dropping it costs little, so what a layer adds
/// weighs more against it than against [`request`].
pub fn minimal_request() -> Request<Body> {
    let mut request = Request::new(Empty::new());
    request
        .headers_mut()
        .insert("accept", HeaderValue::from_static("*/*"));
    request
}

/// One request through `service`, driven without a runtime.
#[inline]
pub fn send<S, R>(service: &mut S, request: Request<Body>) -> Response<R>
where
    S: Service<Request<Body>, Response = Response<R>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let _ = service.poll_ready(&mut cx);
    match pin!(service.call(request)).poll(&mut cx) {
        Poll::Ready(response) => response.unwrap(),
        Poll::Pending => unreachable!("every service here answers at once"),
    }
}

/// What people write today: lock, check expiry, format the header.
#[derive(Clone)]
pub struct HandWritten<S> {
    inner: S,
    token: Arc<Mutex<(String, Instant)>>,
}

impl<S: Service<Request<Body>>> Service<Request<Body>> for HandWritten<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> S::Future {
        let value = {
            let token = self.token.lock().unwrap();
            if Instant::now() >= token.1 {
                unreachable!("the benchmark token never expires");
            }
            HeaderValue::try_from(format!("Bearer {}", token.0)).unwrap()
        };
        request.headers_mut().insert(AUTHORIZATION, value);
        self.inner.call(request)
    }
}

/// What people write when the token is refreshed asynchronously: the
/// `tokio::sync::RwLock` is read with `.await` in an `async` block, which
/// makes the response future a boxed one, with the inner service moved into
/// it. (`try_read` in `call` would avoid the box; code written this way
/// rarely does.) The heavier of the two hand-written baselines.
#[derive(Clone)]
pub struct HandWrittenAsync<S> {
    inner: S,
    token: Arc<tokio::sync::RwLock<(String, Instant)>>,
}

impl<S> Service<Request<Body>> for HandWrittenAsync<S>
where
    S: Service<Request<Body>> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let token = Arc::clone(&self.token);
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let value = {
                let token = token.read().await;
                if Instant::now() >= token.1 {
                    unreachable!("the benchmark token never expires");
                }
                HeaderValue::try_from(format!("Bearer {}", token.0)).unwrap()
            };
            request.headers_mut().insert(AUTHORIZATION, value);
            inner.call(request).await
        })
    }
}

/// `S` cloned for each request, as `service.clone().oneshot(request)`
/// does: the clone is made ready, called, and dropped.
#[derive(Clone)]
pub struct ClonedPerRequest<S>(pub S);

impl<S> Service<Request<Body>> for ClonedPerRequest<S>
where
    S: Service<Request<Body>> + Clone,
    S::Error: std::fmt::Debug,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> S::Future {
        let mut clone = self.0.clone();
        let mut cx = Context::from_waker(Waker::noop());
        match clone.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => clone.call(request),
            _ => unreachable!("every service here is always ready"),
        }
    }
}

/// The stacks over the inner service `S`, sharing one token.
pub struct Stacks<S> {
    pub bare: S,
    pub floor: SetRequestHeader<S, HeaderValue>,
    pub hand_written: HandWritten<S>,
    pub hand_written_async: HandWrittenAsync<S>,
    pub ours: TokenRefresh<S>,
    pub ours_retrying: TokenRefresh<S, StandardRejection, RetryRejected>,
    /// The cache behind `ours`.
    pub cache: TokenCache,
}

/// The single-threaded runtime the one-thread benchmarks run the stacks in
/// (enter it: the cache's timers need one).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Fetches the token (on `runtime`) and builds the stacks.
pub fn stacks(runtime: &tokio::runtime::Runtime) -> Stacks<impl Inner + use<>> {
    let cache = TokenCache::new(|| async {
        Ok::<_, BoxError>(
            Token::bearer("a-realistic-looking-access-token-value-0123456789")
                .expires_in(Duration::from_secs(24 * 3600)),
        )
    });
    let token = runtime.block_on(cache.token()).unwrap();
    let mut fixed = HeaderValue::try_from(format!("Bearer {}", token.secret())).unwrap();
    fixed.set_sensitive(true);
    Stacks {
        bare: inner(),
        floor: SetRequestHeaderLayer::overriding(AUTHORIZATION, fixed).layer(inner()),
        hand_written: HandWritten {
            inner: inner(),
            token: Arc::new(Mutex::new((
                token.secret().to_owned(),
                Instant::now() + Duration::from_secs(24 * 3600),
            ))),
        },
        hand_written_async: HandWrittenAsync {
            inner: inner(),
            token: Arc::new(tokio::sync::RwLock::new((
                token.secret().to_owned(),
                Instant::now() + Duration::from_secs(24 * 3600),
            ))),
        },
        ours: TokenRefreshLayer::new(cache.clone()).layer(inner()),
        ours_retrying: TokenRefreshLayer::new(cache.clone())
            .retry_rejected()
            .layer(inner()),
        cache,
    }
}

/// The median of `times`.
pub fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Runs this benchmark again in a new process (a new address layout), with
/// `variable` set to `rounds`: that process measures and prints its `N`
/// medians on one line, which are returned.
pub fn measure_in_a_process<const N: usize>(variable: &str, rounds: usize) -> [f64; N] {
    let program = std::env::current_exe().expect("the benchmark's own path");
    let output = std::process::Command::new(program)
        .env(variable, rounds.to_string())
        .output()
        .expect("starting a measuring process");
    let text = String::from_utf8_lossy(&output.stdout);
    let times: Vec<f64> = text
        .split_whitespace()
        .filter_map(|time| time.parse().ok())
        .collect();
    match <[f64; N]>::try_from(times) {
        Ok(times) if output.status.success() => times,
        _ => panic!(
            "a measuring process failed ({}): {text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

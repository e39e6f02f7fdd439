//! An in-memory API service that rejects revoked tokens, as a `Service`
//! (no sockets), for tests on paused time.

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tower::Service;

use super::Gate;

/// How the API says "rejected".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectWith {
    Http401,
    Http403,
    /// A trailers-only gRPC response: `grpc-status: 16` in the headers.
    GrpcHeaders,
}

/// Answers `200` with `"<token> <body>"`, or rejects revoked tokens.
#[derive(Clone)]
pub struct RevokingApi {
    state: Arc<State>,
}

struct State {
    revoked: Mutex<HashSet<String>>,
    reject_all: Mutex<bool>,
    read_body_first: Mutex<bool>,
    reject_with: RejectWith,
    calls: AtomicUsize,
    rejected: AtomicUsize,
    seen: Mutex<Vec<String>>,
    gate: Gate,
}

impl RevokingApi {
    pub fn new(reject_with: RejectWith) -> Self {
        Self {
            state: Arc::new(State {
                revoked: Mutex::new(HashSet::new()),
                reject_all: Mutex::new(false),
                read_body_first: Mutex::new(false),
                reject_with,
                calls: AtomicUsize::new(0),
                rejected: AtomicUsize::new(0),
                seen: Mutex::new(Vec::new()),
                gate: Gate::open(),
            }),
        }
    }

    pub fn revoke(&self, token: &str) {
        self.state.revoked.lock().unwrap().insert(token.to_owned());
    }

    /// Rejects every token (bad credentials).
    pub fn reject_all(&self) {
        *self.state.reject_all.lock().unwrap() = true;
    }

    /// Reads the whole request body before checking the token (by default
    /// a rejected request's body is not read).
    pub fn read_body_first(&self) {
        *self.state.read_body_first.lock().unwrap() = true;
    }

    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    pub fn rejected(&self) -> usize {
        self.state.rejected.load(Ordering::SeqCst)
    }

    /// Requests wait at this gate (after being counted) before the API
    /// answers.
    pub fn gate(&self) -> &Gate {
        &self.state.gate
    }

    /// The tokens requests came with, in order.
    pub fn seen(&self) -> Vec<String> {
        self.state.seen.lock().unwrap().clone()
    }
}

impl std::fmt::Debug for RevokingApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokingApi").finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for RevokingApi
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Debug,
{
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            state.calls.fetch_add(1, Ordering::SeqCst);
            let token = request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_owned();
            state.seen.lock().unwrap().push(token.clone());
            state.gate.pass().await;
            let read_first = *state.read_body_first.lock().unwrap();
            let (parts, body) = request.into_parts();
            let mut body = Some(body);
            let mut read = None;
            if read_first {
                let bytes = body.take().unwrap().collect().await.unwrap().to_bytes();
                read = Some(bytes);
            }
            let rejected =
                *state.reject_all.lock().unwrap() || state.revoked.lock().unwrap().contains(&token);
            if rejected {
                state.rejected.fetch_add(1, Ordering::SeqCst);
                let response = match state.reject_with {
                    RejectWith::Http401 => Response::builder().status(StatusCode::UNAUTHORIZED),
                    RejectWith::Http403 => Response::builder().status(StatusCode::FORBIDDEN),
                    RejectWith::GrpcHeaders => Response::builder()
                        .header(CONTENT_TYPE, "application/grpc")
                        .header("grpc-status", "16")
                        .header("grpc-message", "token revoked"),
                };
                return Ok(response.body(String::new()).unwrap());
            }
            let body = match (read, body) {
                (Some(bytes), _) => bytes,
                (None, Some(body)) => body.collect().await.unwrap().to_bytes(),
                (None, None) => Bytes::new(),
            };
            drop(parts);
            let body = String::from_utf8_lossy(&body);
            Ok(Response::new(format!("{token} {body}")))
        })
    }
}

//! Sends 100,000 requests through one stack, for counting instructions with
//! callgrind (steadier than time on a noisy machine):
//!
//! ```sh
//! cargo bench --bench instructions --no-run
//! for stack in bare floor hand ours; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$stack \
//!     target/release/deps/instructions-* $stack 2>&1 | grep Collected
//! done
//! ```
//!
//! (Each total includes building the requests, the same for every stack:
//! compare differences.)

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use http_body_util::Empty;
use std::convert::Infallible;
use std::future::{Future, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tower::{BoxError, Layer, Service, service_fn};
use tower_http::set_header::SetRequestHeaderLayer;
use tower_token_refresh::{Token, TokenCache, TokenRefreshLayer};

fn request() -> Request<Empty<Bytes>> {
    Request::get("https://api.example.com/v1/items/42")
        .header("accept", "application/json")
        .body(Empty::new())
        .unwrap()
}
fn send<S, R>(service: &mut S, request: Request<Empty<Bytes>>)
where
    S: Service<Request<Empty<Bytes>>, Response = Response<R>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let _ = service.poll_ready(&mut cx);
    match pin!(service.call(request)).poll(&mut cx) {
        Poll::Ready(r) => {
            black_box(r.unwrap());
        }
        Poll::Pending => unreachable!(),
    }
}
fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "ours".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _g = rt.enter();
    let cache = TokenCache::new(|| async {
        Ok::<_, BoxError>(
            Token::bearer("a-realistic-looking-access-token-value")
                .expires_in(Duration::from_secs(86400)),
        )
    });
    rt.block_on(cache.token()).unwrap();
    let inner = service_fn(|r: Request<Empty<Bytes>>| {
        black_box(&r);
        ready(Ok::<_, Infallible>(Response::new(())))
    });
    let mut fixed = HeaderValue::from_static("Bearer a-realistic-looking-access-token-value");
    fixed.set_sensitive(true);
    let n = 100_000;
    let reqs: Vec<_> = (0..n).map(|_| request()).collect();
    match which.as_str() {
        "bare" => {
            let mut s = inner;
            for r in reqs {
                send(&mut s, r)
            }
        }
        "floor" => {
            let mut s = SetRequestHeaderLayer::overriding(AUTHORIZATION, fixed).layer(inner);
            for r in reqs {
                send(&mut s, r)
            }
        }
        "hand" => {
            #[derive(Clone)]
            struct Hand<S> {
                inner: S,
                token: std::sync::Arc<std::sync::Mutex<(String, std::time::Instant)>>,
            }
            impl<S: Service<Request<Empty<Bytes>>>> Service<Request<Empty<Bytes>>> for Hand<S> {
                type Response = S::Response;
                type Error = S::Error;
                type Future = S::Future;
                fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
                    self.inner.poll_ready(cx)
                }
                fn call(&mut self, mut r: Request<Empty<Bytes>>) -> S::Future {
                    let v = {
                        let t = self.token.lock().unwrap();
                        assert!(std::time::Instant::now() < t.1);
                        HeaderValue::try_from(format!("Bearer {}", t.0)).unwrap()
                    };
                    r.headers_mut().insert(AUTHORIZATION, v);
                    self.inner.call(r)
                }
            }
            let mut s = Hand {
                inner,
                token: std::sync::Arc::new(std::sync::Mutex::new((
                    "a-realistic-looking-access-token-value".into(),
                    std::time::Instant::now() + Duration::from_secs(3600),
                ))),
            };
            for r in reqs {
                send(&mut s, r)
            }
        }
        _ => {
            let mut s = TokenRefreshLayer::new(cache).layer(inner);
            for r in reqs {
                send(&mut s, r)
            }
        }
    }
}

//! The request path allocates nothing with a fresh token: a counting global
//! allocator compares requests through `TokenRefresh` with requests to the
//! bare inner service.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::{Future, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use tower::{BoxError, Layer, Service, service_fn};
use tower_token_refresh::{Token, TokenCache, TokenRefreshLayer};

struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations made on this thread by `f`.
fn allocations_in(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

/// A request whose header map already has room, as one from a real client
/// would (an empty map allocates on its first insert, layer or not).
fn request() -> Request<Empty<Bytes>> {
    let mut request = Request::new(Empty::new());
    request.headers_mut().reserve(8);
    request
}

/// Drives one request through `service` to its response, on this thread.
fn send<S, R>(service: &mut S, request: Request<Empty<Bytes>>) -> Response<R>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<R>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let mut future = pin!(service.call(request));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(response) => response.unwrap(),
        Poll::Pending => panic!("the hot path must not wait"),
    }
}

#[test]
fn the_hot_path_allocates_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _context = runtime.enter();
    let cache = TokenCache::new(|| async {
        Ok::<_, BoxError>(Token::bearer("a-token").expires_in(Duration::from_secs(3600)))
    });
    runtime.block_on(cache.token()).unwrap();

    let bare = service_fn(|_: Request<Empty<Bytes>>| ready(Ok::<_, Infallible>(Response::new(()))));
    let mut bare_service = bare;
    // The default layer (no retry: retrying copies each request head).
    let mut layered = TokenRefreshLayer::new(cache).layer(bare);
    // Warm up (thread-locals of arc-swap and the like).
    send(&mut layered, request());

    const N: usize = 1000;
    let requests: Vec<_> = (0..N).map(|_| request()).collect();
    let mut responses = Vec::with_capacity(N);
    let mut layered_responses = Vec::with_capacity(N);
    let bare_allocations = allocations_in(|| {
        for request in requests {
            responses.push(send(&mut bare_service, request));
        }
    });
    responses.clear();

    let requests: Vec<_> = (0..N).map(|_| request()).collect();
    let layered_allocations = allocations_in(|| {
        for request in requests {
            layered_responses.push(send(&mut layered, request));
        }
    });

    assert_eq!(
        layered_allocations, bare_allocations,
        "TokenRefresh allocated {layered_allocations} times in {N} requests, the bare service {bare_allocations}"
    );

    // A service cloned for each request (as `clone().oneshot(..)` does)
    // cannot keep the last credential: it takes the thread's snapshot,
    // without allocating either.
    layered_responses.clear();
    let requests: Vec<_> = (0..N).map(|_| request()).collect();
    let cloned_allocations = allocations_in(|| {
        for request in requests {
            layered_responses.push(send(&mut layered.clone(), request));
        }
    });
    assert_eq!(
        cloned_allocations, bare_allocations,
        "TokenRefresh cloned per request allocated {cloned_allocations} times in {N} requests, the bare service {bare_allocations}"
    );
}

/// With `retry_rejected`, a request whose body is never replayed (a gateway
/// forwarding `hyper::body::Incoming`, say) allocates nothing more than the
/// bare service: what a "not retried" event would name is not copied up
/// front.
#[test]
fn a_retrying_layer_allocates_nothing_for_a_body_it_never_replays() {
    use tower_token_refresh::Replay;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _context = runtime.enter();
    let cache = TokenCache::new(|| async {
        Ok::<_, BoxError>(Token::bearer("a-token").expires_in(Duration::from_secs(3600)))
    });
    runtime.block_on(cache.token()).unwrap();
    let mut bare =
        service_fn(|_: Request<Empty<Bytes>>| ready(Ok::<_, Infallible>(Response::new(()))));
    let mut layered = TokenRefreshLayer::new(cache)
        .retry_rejected()
        .replay_with(|body: Empty<Bytes>, _limit| (body, Replay::never()))
        .layer(bare);
    let absolute = || {
        let mut request = request();
        *request.uri_mut() = "https://api.example.com/items".parse().unwrap();
        request
    };
    send(&mut layered, absolute());
    const N: usize = 100;
    let requests: Vec<_> = (0..N).map(|_| absolute()).collect();
    let mut responses = Vec::with_capacity(N);
    let bare_allocations = allocations_in(|| {
        for request in requests {
            responses.push(send(&mut bare, request));
        }
    });
    let requests: Vec<_> = (0..N).map(|_| absolute()).collect();
    let mut layered_responses = Vec::with_capacity(N);
    let layered_allocations = allocations_in(|| {
        for request in requests {
            layered_responses.push(send(&mut layered, request));
        }
    });
    assert_eq!(
        layered_allocations, bare_allocations,
        "{layered_allocations} allocations in {N} requests through the layer, {bare_allocations} bare"
    );
}

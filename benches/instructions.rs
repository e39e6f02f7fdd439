//! Sends 100,000 requests through one of the stacks of `benches/support`,
//! for counting instructions with callgrind (steadier than time on a noisy
//! machine):
//!
//! ```sh
//! cargo bench --bench instructions --no-run
//! binary=$(ls target/release/deps/instructions-* | grep -v '\.d$')
//! for stack in bare floor hand hand_async ours; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$stack \
//!     $binary $stack 2>&1 | grep Collected
//! done
//! ```
//!
//! `$binary --minimal STACK` sends the minimal request (`/`, one header)
//! instead of the typical one (a URI and two headers).
//!
//! (Each total includes building the requests, the same for every stack:
//! compare differences.)

mod support;

use std::hint::black_box;

use http::{Request, Response};
use support::{Body, minimal_request, request, send, stacks};
use tower::Service;

const REQUESTS: usize = 100_000;

fn run<S, R>(mut service: S, build: fn() -> Request<Body>)
where
    S: Service<Request<Body>, Response = Response<R>>,
    S::Error: std::fmt::Debug,
{
    let requests: Vec<_> = (0..REQUESTS).map(|_| build()).collect();
    for request in requests {
        black_box(send(&mut service, request));
    }
}

fn main() {
    // `cargo bench` adds `--bench`: the stack is the first other argument.
    let which = std::env::args()
        .skip(1)
        .find(|argument| !argument.starts_with('-'))
        .unwrap_or_else(|| "ours".into());
    let build = if std::env::args().any(|argument| argument == "--minimal") {
        minimal_request
    } else {
        request
    };
    let runtime = support::runtime();
    let _context = runtime.enter();
    let stacks = stacks(&runtime);
    match which.as_str() {
        "bare" => run(stacks.bare, build),
        "floor" => run(stacks.floor, build),
        "hand" => run(stacks.hand_written, build),
        "hand_async" => run(stacks.hand_written_async, build),
        "ours" => run(stacks.ours, build),
        other => panic!("unknown stack {other:?}: bare, floor, hand, hand_async or ours"),
    }
}

//! What `retry_rejected()` costs every request: the floor, ours and ours
//! retrying take turns (as in `hot_path_paired`), in one process, with the
//! typical request; then the medians and ratios.
//!
//! A bench of its own: a binary that also sends requests through a retrying
//! layer compiles the shared hot-path code differently (other inlining), so
//! the other benches leave it out.
//!
//! ```sh
//! cargo bench --bench retrying               # 1,000 rounds
//! cargo bench --bench retrying -- --count    # one stack at a time, for callgrind:
//! valgrind --tool=callgrind target/release/deps/retrying-* --count ours_retrying
//! ```

mod support;

use std::hint::black_box;
use std::time::Instant;

use http::{Request, Response};
use support::{Body, request, send, stacks};
use tower::Service;

const BATCH: usize = 1_000;
const ROUNDS: usize = 1_000;
/// Requests a `--count` run sends, as `benches/instructions.rs` does.
const COUNTED: usize = 100_000;

/// One batch through `service`; the time per request, in nanoseconds.
fn batch<S, R>(service: &mut S, requests: Vec<Request<Body>>) -> f64
where
    S: Service<Request<Body>, Response = Response<R>>,
    S::Error: std::fmt::Debug,
{
    let count = requests.len();
    let started = Instant::now();
    for request in requests {
        black_box(send(service, request));
    }
    started.elapsed().as_nanos() as f64 / count as f64
}

fn main() {
    let runtime = support::runtime();
    let _context = runtime.enter();
    let mut stacks = stacks(&runtime);
    let mut arguments = std::env::args()
        .skip(1)
        .filter(|argument| argument != "--bench");
    if arguments.next().as_deref() == Some("--count") {
        let requests: Vec<_> = (0..COUNTED).map(|_| request()).collect();
        match arguments.next().as_deref() {
            Some("bare") => drop(batch(&mut stacks.bare, requests)),
            Some("floor") => drop(batch(&mut stacks.floor, requests)),
            Some("ours") => drop(batch(&mut stacks.ours, requests)),
            Some("ours_retrying") => drop(batch(&mut stacks.ours_retrying, requests)),
            other => {
                eprintln!("retrying --count: bare, floor, ours or ours_retrying, not {other:?}");
                std::process::exit(2);
            }
        }
        return;
    }
    let mut times: [Vec<f64>; 4] = std::array::from_fn(|_| Vec::with_capacity(ROUNDS));
    for round in 0..ROUNDS {
        for turn in 0..4 {
            let index = (round + turn) % 4;
            let requests = (0..BATCH).map(|_| request()).collect();
            times[index].push(match index {
                0 => batch(&mut stacks.bare, requests),
                1 => batch(&mut stacks.floor, requests),
                2 => batch(&mut stacks.ours, requests),
                _ => batch(&mut stacks.ours_retrying, requests),
            });
        }
    }
    let [bare, floor, ours, retrying] = times.map(support::median);
    println!(
        "retrying: {ROUNDS} rounds x {BATCH} requests; ns per request (median): \
         bare {bare:.1}, floor {floor:.1}, ours {ours:.1}, ours retrying {retrying:.1}"
    );
    println!(
        "  ours / floor {:.3}; ours retrying / floor {:.3}; \
         retrying's overhead over bare / ours' {:.2}x",
        ours / floor,
        retrying / floor,
        (retrying - bare) / (ours - bare)
    );
}

//! The hot path's ratios, measured so that a noisy machine disturbs every
//! stack alike: the stacks of `benches/support` take turns, in
//! rotating order, each sending the same batch of 1,000 requests (built
//! before the clock starts), for many rounds; each stack's time per request
//! is the median over the rounds. Criterion (`benches/hot_path.rs`) runs
//! one benchmark after another, so a change in the machine's load between
//! two of them shows up in their ratio.
//!
//! ```sh
//! cargo bench --bench hot_path_paired             # 3,000 rounds (~20 s)
//! cargo bench --bench hot_path_paired -- --quick  # 300 rounds (~2 s)
//! cargo bench --bench hot_path_paired -- --quick --check 1.4
//! ```
//!
//! `--check LIMIT` fails (exit code 1) when ours / floor is above `LIMIT`:
//! `.ci/run` uses a loose limit, which a lock or an allocation on the hot
//! path would exceed (the hand-written stack is ≈ 1.6 × the floor) and this
//! machine's noise does not.

mod support;

use std::hint::black_box;
use std::time::Instant;

use http::{Request, Response};
use support::{Body, request, send, stacks};
use tower::Service;

const BATCH: usize = 1_000;

/// Sends a batch through a stack; the time per request, in nanoseconds.
trait Stack {
    fn send_batch(&mut self, requests: Vec<Request<Body>>) -> f64;
}

struct Timed<S>(S);

impl<S, R> Stack for Timed<S>
where
    S: Service<Request<Body>, Response = Response<R>>,
    S::Error: std::fmt::Debug,
{
    #[inline(never)]
    fn send_batch(&mut self, requests: Vec<Request<Body>>) -> f64 {
        let count = requests.len();
        let started = Instant::now();
        for request in requests {
            black_box(send(&mut self.0, request));
        }
        started.elapsed().as_nanos() as f64 / count as f64
    }
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; other arguments are ours.
    let arguments: Vec<String> = std::env::args().collect();
    let quick = arguments.iter().any(|argument| argument == "--quick");
    let limit: Option<f64> = arguments
        .iter()
        .position(|argument| argument == "--check")
        .map(|at| {
            let limit = arguments.get(at + 1).and_then(|limit| limit.parse().ok());
            limit.expect("--check needs a limit for ours / floor, such as 1.4")
        });
    let rounds = if quick { 300 } else { 3_000 };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _context = runtime.enter();
    let stacks = stacks(&runtime);
    let mut contenders: [(&str, Box<dyn Stack>); 5] = [
        ("bare", Box::new(Timed(stacks.bare))),
        ("floor", Box::new(Timed(stacks.floor))),
        ("hand-written", Box::new(Timed(stacks.hand_written))),
        (
            "hand-written async",
            Box::new(Timed(stacks.hand_written_async)),
        ),
        ("ours", Box::new(Timed(stacks.ours))),
    ];
    let mut times: [Vec<f64>; 5] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    for round in 0..rounds {
        for turn in 0..contenders.len() {
            let index = (round + turn) % contenders.len();
            let requests = (0..BATCH).map(|_| request()).collect();
            times[index].push(contenders[index].1.send_batch(requests));
        }
    }
    let [bare, floor, hand_written, hand_written_async, ours] = times.map(median);
    println!("hot_path_paired: {rounds} rounds x {BATCH} requests per stack, medians");
    for (name, time) in contenders.iter().map(|(name, _)| name).zip([
        bare,
        floor,
        hand_written,
        hand_written_async,
        ours,
    ]) {
        println!(
            "  {name:<18} {time:7.1} ns/request  ({:+.1} ns over bare)",
            time - bare
        );
    }
    let ratio = ours / floor;
    println!("  ours / floor: {ratio:.3} (target <= 1.15)");
    for (name, time) in [("", hand_written), (" async", hand_written_async)] {
        println!(
            "  hand-written{name} / ours, overhead over bare: {:.2}x (target >= 3)",
            (time - bare) / (ours - bare)
        );
    }
    if let Some(limit) = limit
        && ratio > limit
    {
        eprintln!("hot_path_paired: ours / floor {ratio:.3} is above the limit {limit}");
        std::process::exit(1);
    }
}

//! The hot path's ratios, measured so that a noisy machine disturbs every
//! stack alike: the stacks of `benches/support` take turns, in
//! rotating order, each sending the same batch of 1,000 requests (built
//! before the clock starts), for many rounds; each stack's time per request
//! is the median over the rounds. Criterion (`benches/hot_path.rs`) runs
//! one benchmark after another, so a change in the machine's load between
//! two of them shows up in their ratio.
//!
//! Besides the four stacks, the floor and ours are also measured with the
//! service cloned for each request (`clone().oneshot(..)`), where ours
//! cannot keep the last credential in the service and takes it from the
//! thread's snapshot.
//!
//! ```sh
//! cargo bench --bench hot_path_paired             # 3,000 rounds (~30 s)
//! cargo bench --bench hot_path_paired -- --quick  # 300 rounds (~3 s)
//! cargo bench --bench hot_path_paired -- --quick --check 2.5
//! ```
//!
//! `--check LIMIT` fails (exit code 1) when ours' overhead over the bare
//! service is more than `LIMIT` times the floor's (≈ 1.5 on an idle
//! machine; the hand-written stack, with a lock, a clock read and a
//! formatted header, is ≈ 3.3). `.ci/run` uses 2.5: loose enough for a
//! noisy machine, tight enough to catch a hot path that got as costly as
//! the hand-written check. (Allocations are caught exactly, by
//! `tests/hot_path_allocations.rs`.)

mod support;

use std::hint::black_box;
use std::time::Instant;

use http::{Request, Response};
use support::{Body, ClonedPerRequest, request, send, stacks};
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

/// The command line: `--quick`, `--check LIMIT`, and the `--bench` cargo
/// adds. Anything else is refused, so a mistyped check is not skipped.
struct Arguments {
    quick: bool,
    limit: Option<f64>,
}

fn arguments() -> Arguments {
    let mut parsed = Arguments {
        quick: false,
        limit: None,
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--bench" => {}
            "--quick" => parsed.quick = true,
            "--check" => {
                let limit = arguments.next().and_then(|limit| limit.parse().ok());
                parsed.limit = Some(limit.unwrap_or_else(|| {
                    usage("--check needs a limit (ours' overhead / the floor's), such as 2.5")
                }));
            }
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    parsed
}

fn usage(problem: &str) -> ! {
    eprintln!("hot_path_paired: {problem}\nusage: hot_path_paired [--quick] [--check LIMIT]");
    std::process::exit(2)
}

fn main() {
    let Arguments { quick, limit } = arguments();
    let rounds = if quick { 300 } else { 3_000 };
    let runtime = support::runtime();
    let _context = runtime.enter();
    let stacks = stacks(&runtime);
    let mut contenders: [(&str, Box<dyn Stack>); 7] = [
        ("bare", Box::new(Timed(stacks.bare))),
        ("floor", Box::new(Timed(stacks.floor.clone()))),
        ("hand-written", Box::new(Timed(stacks.hand_written))),
        (
            "hand-written async",
            Box::new(Timed(stacks.hand_written_async)),
        ),
        ("ours", Box::new(Timed(stacks.ours.clone()))),
        (
            "floor, cloned",
            Box::new(Timed(ClonedPerRequest(stacks.floor))),
        ),
        (
            "ours, cloned",
            Box::new(Timed(ClonedPerRequest(stacks.ours))),
        ),
    ];
    let mut times: [Vec<f64>; 7] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    for round in 0..rounds {
        for turn in 0..contenders.len() {
            let index = (round + turn) % contenders.len();
            let requests = (0..BATCH).map(|_| request()).collect();
            times[index].push(contenders[index].1.send_batch(requests));
        }
    }
    let medians = times.map(median);
    let [
        bare,
        floor,
        hand_written,
        hand_written_async,
        ours,
        floor_cloned,
        ours_cloned,
    ] = medians;
    println!("hot_path_paired: {rounds} rounds x {BATCH} requests per stack, medians");
    for ((name, _), time) in contenders.iter().zip(medians) {
        println!(
            "  {name:<18} {time:7.1} ns/request  ({:+.1} ns over bare)",
            time - bare
        );
    }
    println!("  ours / floor: {:.3} (target <= 1.15)", ours / floor);
    println!(
        "  cloned per request, ours / floor: {:.3}",
        ours_cloned / floor_cloned
    );
    for (name, time) in [("", hand_written), (" async", hand_written_async)] {
        println!(
            "  hand-written{name} / ours, overhead over bare: {:.2}x (target >= 3)",
            (time - bare) / (ours - bare)
        );
    }
    let overheads = (ours - bare) / (floor - bare);
    println!("  ours' overhead / the floor's: {overheads:.2}");
    if let Some(limit) = limit
        && overheads > limit
    {
        eprintln!(
            "hot_path_paired: ours' overhead is {overheads:.2} times the floor's, above the limit {limit}"
        );
        std::process::exit(1);
    }
}

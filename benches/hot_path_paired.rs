//! The hot path's ratios, measured so that a noisy machine disturbs every
//! stack alike: the stacks of `benches/support` take turns, in
//! rotating order, each sending the same batch of 1,000 requests (built
//! before the clock starts), for many rounds; each stack's time per request
//! is the median over the rounds. Criterion (`benches/hot_path.rs`) runs
//! one benchmark after another, so a change in the machine's load between
//! two of them shows up in their ratio.
//!
//! That is done in several processes, one after another, and the ratios
//! reported are the medians over the processes. Each process gets its own
//! random address layout, and the layout alone moves ours by several ns
//! (ours / floor came out between 1.09 and 1.18 in twelve processes of one
//! binary on an idle machine, each steady within itself; with address
//! randomisation switched off, 1.05–1.08 every time): one process is one
//! draw of that lottery, as a user's program is.
//!
//! Besides the four stacks, the floor and ours are also measured with the
//! service cloned for each request (`clone().oneshot(..)`), as many
//! callers use them; and bare, the floor and ours with a minimal request
//! (`/`, one header), which costs so little to build and drop that what a
//! layer adds weighs more against it.
//!
//! ```sh
//! cargo bench --bench hot_path_paired             # 5 processes x 2,000 rounds (~60 s)
//! cargo bench --bench hot_path_paired -- --quick  # 3 processes x 300 rounds (~6 s)
//! cargo bench --bench hot_path_paired -- --quick --check 2.5
//! cargo bench --bench hot_path_paired -- --processes 9
//! ```
//!
//! `--check LIMIT` fails (exit code 1) when ours' overhead over the bare
//! service is more than `LIMIT` times the floor's, with either request (≈ 1.6 on an idle
//! machine; the hand-written stack, with a lock, a clock read and a
//! formatted header, is ≈ 3.2). `.ci/run` uses 2.5: loose enough for a
//! noisy machine, tight enough to catch a hot path that got as costly as
//! the hand-written check. (Allocations are caught exactly, by
//! `tests/hot_path_allocations.rs`.)

mod support;

use std::hint::black_box;
use std::time::Instant;

use http::{Request, Response};
use support::{Body, ClonedPerRequest, minimal_request, request, send, stacks};
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

/// The command line: `--quick`, `--check LIMIT`, `--processes N`, and the
/// `--bench` cargo adds. Anything else is refused, so a mistyped check is
/// not skipped.
struct Arguments {
    quick: bool,
    limit: Option<f64>,
    processes: Option<usize>,
}

fn arguments() -> Arguments {
    let mut parsed = Arguments {
        quick: false,
        limit: None,
        processes: None,
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
            "--processes" => {
                let count = arguments.next().and_then(|count| count.parse().ok());
                parsed.processes = Some(
                    count
                        .filter(|&count| count > 0)
                        .unwrap_or_else(|| usage("--processes needs a count, such as 5")),
                );
            }
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    parsed
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "hot_path_paired: {problem}\nusage: hot_path_paired [--quick] [--check LIMIT] [--processes N]"
    );
    std::process::exit(2)
}

/// Set in a process this benchmark starts: run that many rounds and print
/// the stacks' medians on one line.
const ROUNDS_VARIABLE: &str = "HOT_PATH_PAIRED_ROUNDS";

/// The stacks' times, in the order [`measure`] gives them.
const STACKS: usize = 10;

/// A stack and how to build the requests it is sent.
type Contender = (Box<dyn Stack>, fn() -> Request<Body>);

/// One process: the stacks take turns for `rounds` rounds; each stack's
/// median time per request. With the typical request: bare, floor,
/// hand-written, hand-written async, ours, floor cloned, ours cloned; with
/// the minimal one: bare, floor, ours.
fn measure(rounds: usize) -> [f64; STACKS] {
    let runtime = support::runtime();
    let _context = runtime.enter();
    let stacks = stacks(&runtime);
    let minimal = support::stacks(&runtime);
    let mut contenders: [Contender; STACKS] = [
        (Box::new(Timed(stacks.bare)), request),
        (Box::new(Timed(stacks.floor.clone())), request),
        (Box::new(Timed(stacks.hand_written)), request),
        (Box::new(Timed(stacks.hand_written_async)), request),
        (Box::new(Timed(stacks.ours.clone())), request),
        (Box::new(Timed(ClonedPerRequest(stacks.floor))), request),
        (Box::new(Timed(ClonedPerRequest(stacks.ours))), request),
        (Box::new(Timed(minimal.bare)), minimal_request),
        (Box::new(Timed(minimal.floor)), minimal_request),
        (Box::new(Timed(minimal.ours)), minimal_request),
    ];
    let mut times: [Vec<f64>; STACKS] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    for round in 0..rounds {
        for turn in 0..contenders.len() {
            let index = (round + turn) % contenders.len();
            let (stack, build) = &mut contenders[index];
            let requests = (0..BATCH).map(|_| build()).collect();
            times[index].push(stack.send_batch(requests));
        }
    }
    times.map(support::median)
}

/// The ratios of one process's medians.
struct Ratios {
    /// Ours' time per request / the floor's (target 1: at most 1.15).
    ours_to_floor: f64,
    /// The same for the two stacks cloned per request.
    cloned: f64,
    /// The hand-written stack's overhead over bare / ours' (target 2).
    hand_written: f64,
    /// The same for the hand-written async stack.
    hand_written_async: f64,
    /// Ours' overhead over bare / the floor's (what `--check` limits).
    overheads: f64,
    /// With the minimal request: ours' time / the floor's.
    minimal_ours_to_floor: f64,
    /// With the minimal request: ours' overhead over bare / the floor's.
    minimal_overheads: f64,
}

impl Ratios {
    fn of(times: &[f64; STACKS]) -> Self {
        let [
            bare,
            floor,
            hand,
            hand_async,
            ours,
            floor_cloned,
            ours_cloned,
            minimal_bare,
            minimal_floor,
            minimal_ours,
        ] = *times;
        Self {
            ours_to_floor: ours / floor,
            cloned: ours_cloned / floor_cloned,
            hand_written: (hand - bare) / (ours - bare),
            hand_written_async: (hand_async - bare) / (ours - bare),
            overheads: (ours - bare) / (floor - bare),
            minimal_ours_to_floor: minimal_ours / minimal_floor,
            minimal_overheads: (minimal_ours - minimal_bare) / (minimal_floor - minimal_bare),
        }
    }
}

fn main() {
    if let Ok(rounds) = std::env::var(ROUNDS_VARIABLE) {
        let rounds = rounds.parse().expect("a number of rounds");
        let times = measure(rounds).map(|time| time.to_string());
        println!("{}", times.join(" "));
        return;
    }
    let Arguments {
        quick,
        limit,
        processes,
    } = arguments();
    let (rounds, default_processes) = if quick { (300, 3) } else { (2_000, 5) };
    let processes = processes.unwrap_or(default_processes);
    println!(
        "hot_path_paired: {processes} processes x {rounds} rounds x {BATCH} requests per stack; \
         ns per request (each process's median over its rounds), then ratios"
    );
    println!(
        "  {:<7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6} | {:>10} {:>7} {:>9} {:>10} {:>9} | {:>10} {:>9}",
        "process",
        "bare",
        "floor",
        "hand",
        "async",
        "ours",
        "fl. cl",
        "ou. cl",
        "m.bare",
        "m.flr",
        "m.ours",
        "ours/floor",
        "cloned",
        "hand/ours",
        "async/ours",
        "overheads",
        "m.ou/flr",
        "m.overh."
    );
    let mut all = Vec::with_capacity(processes);
    for process in 1..=processes {
        let times: [f64; STACKS] = support::measure_in_a_process(ROUNDS_VARIABLE, rounds);
        let ratios = Ratios::of(&times);
        let typical: String = times[..7]
            .iter()
            .map(|time| format!(" {time:6.1}"))
            .collect();
        let minimal: String = times[7..]
            .iter()
            .map(|time| format!(" {time:6.1}"))
            .collect();
        println!(
            "  {process:<7}{typical} |{minimal} | {:10.3} {:7.3} {:8.2}x {:9.2}x {:9.2} | {:10.3} {:9.2}",
            ratios.ours_to_floor,
            ratios.cloned,
            ratios.hand_written,
            ratios.hand_written_async,
            ratios.overheads,
            ratios.minimal_ours_to_floor,
            ratios.minimal_overheads,
        );
        all.push(ratios);
    }
    let median_of = |ratio: fn(&Ratios) -> f64| support::median(all.iter().map(ratio).collect());
    let overheads = median_of(|ratios| ratios.overheads);
    let minimal_overheads = median_of(|ratios| ratios.minimal_overheads);
    println!(
        "medians over the processes (typical request: a URI and two headers; minimal: `/` and one header):"
    );
    for (name, ratio, unit, target) in [
        (
            "ours / floor",
            median_of(|r| r.ours_to_floor),
            "",
            " (target <= 1.15)",
        ),
        (
            "cloned per request, ours / floor",
            median_of(|r| r.cloned),
            "",
            "",
        ),
        (
            "hand-written / ours, overhead over bare",
            median_of(|r| r.hand_written),
            "x",
            " (target >= 3)",
        ),
        (
            "hand-written async / ours, overhead over bare",
            median_of(|r| r.hand_written_async),
            "x",
            " (target >= 3)",
        ),
        (
            "ours' overhead / the floor's",
            overheads,
            "",
            " (target <= 1.25)",
        ),
        (
            "minimal request, ours / floor",
            median_of(|r| r.minimal_ours_to_floor),
            "",
            "",
        ),
        (
            "minimal request, ours' overhead / the floor's",
            minimal_overheads,
            "",
            " (target <= 1.25)",
        ),
    ] {
        println!("  {name}: {ratio:.3}{unit}{target}");
    }
    let overheads = overheads.max(minimal_overheads);
    if let Some(limit) = limit
        && overheads > limit
    {
        eprintln!(
            "hot_path_paired: ours' overhead is {overheads:.2} times the floor's (the larger of the two request shapes), above the limit {limit}"
        );
        std::process::exit(1);
    }
}

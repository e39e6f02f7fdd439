//! What `TokenRefreshMiddleware` costs a reqwest request, without the
//! network: every chain ends in a terminal middleware that does not call
//! `next` and answers at once with an empty `reqwest::Response` (built from
//! `http::Response::new(reqwest::Body::from(""))`), so the times are the
//! middleware chain's, not loopback I/O's. Each request is a
//! `reqwest::Request` (a URL and two headers, as `benches/support`'s
//! typical request) built before the clock starts, sent with
//! `ClientWithMiddleware::execute` and polled once with a no-op waker
//! (everything answers at once), inside a current-thread runtime (the
//! cache's timers need one).
//!
//! The chains, all ending in the terminal middleware:
//!
//! - bare: the terminal middleware alone;
//! - floor: a middleware that sets a fixed sensitive `Authorization`
//!   header, written as reqwest-middleware's documentation writes one (an
//!   `async_trait` method: its own boxed future, which awaits `next`'s), the
//!   shape of any middleware that looks at the response;
//! - lean floor: the same header, with `next`'s boxed future returned as
//!   is (no future of its own: the least a middleware can cost, for one
//!   that never sees the response);
//! - ours: `TokenRefreshMiddleware::new(cache)`, the cache holding a fresh
//!   token;
//! - ours, `only_to`: the same restricted to the request's origin (each
//!   request's URL is compared with it);
//! - ours, retrying: the same with `retry_rejected()` (each request is
//!   copied with `reqwest::Request::try_clone` before it goes).
//!
//! As in `hot_path_paired`, the chains take turns in rotating order, each
//! sending the same batch of 1,000 requests, for many rounds; each chain's
//! time per request is the median over the rounds; and that is done in
//! several processes (each its own address layout), the ratios reported
//! being the medians over the processes.
//!
//! ```sh
//! cargo bench --features reqwest-middleware --bench reqwest_middleware             # 5 processes x 1,000 rounds (~25 s)
//! cargo bench --features reqwest-middleware --bench reqwest_middleware -- --quick  # 3 processes x 200 rounds (~3 s)
//! cargo bench --features reqwest-middleware --bench reqwest_middleware -- --processes 9
//! cargo bench --features reqwest-middleware --bench reqwest_middleware -- --sizes  # each chain's future, in bytes
//! ```
//!
//! `--count CHAIN` (one of bare, floor, lean, ours, only_to, retrying)
//! sends 100,000 requests through one chain, for callgrind:
//!
//! ```sh
//! cargo bench --features reqwest-middleware --bench reqwest_middleware --no-run
//! binary=$(ls target/release/deps/reqwest_middleware-* | grep -v '\.d$')
//! for chain in bare floor lean ours; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$chain \
//!     $binary --count $chain 2>&1 | grep Collected
//! done
//! ```

mod support;

use std::future::{Future, ready};
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use http::header::{ACCEPT, AUTHORIZATION, USER_AGENT};
use http::{Extensions, HeaderValue, Method};
use reqwest::{Request, Response, Url};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use tower::BoxError;
use tower_token_refresh::{Origin, Token, TokenCache, TokenRefreshMiddleware};

const BATCH: usize = 1_000;
const URL: &str = "https://api.example.com/v1/items/42";

/// What `Middleware::handle` returns (reqwest-middleware declares the trait
/// with `async_trait`; this is the signature it expands to).
type HandleFuture<'a> =
    Pin<Box<dyn Future<Output = reqwest_middleware::Result<Response>> + Send + 'a>>;

/// The end of every chain: drops the request and answers at once with an
/// empty `200 OK`, never calling `next` (so reqwest never sends anything).
/// With an expectation, it first checks the `Authorization` the request
/// came with (for a check before the clock starts).
struct Terminal {
    expect: Option<Option<HeaderValue>>,
}

impl Middleware for Terminal {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        request: Request,
        _extensions: &'life1 mut Extensions,
        _next: Next<'life2>,
    ) -> HandleFuture<'async_trait>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        if let Some(expected) = &self.expect {
            assert_eq!(request.headers().get(AUTHORIZATION), expected.as_ref());
        }
        black_box(&request);
        drop(request);
        let response = Response::from(http::Response::new(reqwest::Body::from("")));
        Box::pin(ready(Ok(response)))
    }
}

/// The floor: a fixed sensitive `Authorization` header, set in the
/// middleware's own (boxed) future, as an `async_trait` method does.
struct FixedHeader(HeaderValue);

impl Middleware for FixedHeader {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        mut request: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> HandleFuture<'async_trait>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            request.headers_mut().insert(AUTHORIZATION, self.0.clone());
            next.run(request, extensions).await
        })
    }
}

/// The lean floor: the same header, and `next`'s future returned as is.
struct FixedHeaderLean(HeaderValue);

impl Middleware for FixedHeaderLean {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        mut request: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> HandleFuture<'async_trait>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        request.headers_mut().insert(AUTHORIZATION, self.0.clone());
        next.run(request, extensions)
    }
}

/// A client whose chain is `middleware` (if any), then `terminal`.
fn chain(middleware: Option<&Arc<dyn Middleware>>, terminal: Terminal) -> ClientWithMiddleware {
    let mut builder = ClientBuilder::new(reqwest::Client::new());
    if let Some(middleware) = middleware {
        builder = builder.with_arc(Arc::clone(middleware));
    }
    builder.with(terminal).build()
}

/// A typical request: a URL and two headers.
fn request(url: &Url) -> Request {
    let mut request = Request::new(Method::GET, url.clone());
    let headers = request.headers_mut();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static("bench/1.0"));
    request
}

/// One request through `client`, polled once: every chain here answers at
/// once.
#[inline]
fn send(client: &ClientWithMiddleware, request: Request) -> Response {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(client.execute(request)).poll(&mut cx) {
        Poll::Ready(Ok(response)) => response,
        Poll::Ready(Err(error)) => panic!("the chain failed: {error}"),
        Poll::Pending => unreachable!("every chain here answers at once"),
    }
}

/// Sends a batch through `client`; the time per request, in nanoseconds.
#[inline(never)]
fn send_batch(client: &ClientWithMiddleware, requests: Vec<Request>) -> f64 {
    let count = requests.len();
    let started = Instant::now();
    for request in requests {
        black_box(send(client, request));
    }
    started.elapsed().as_nanos() as f64 / count as f64
}

/// The chains' names, in the order [`middlewares`] builds them.
const NAMES: [&str; STACKS] = ["bare", "floor", "lean", "ours", "only_to", "retrying"];
const STACKS: usize = 6;

/// The middleware of each chain (bare: none), in the order of [`NAMES`],
/// and the header they all set. Fetches the token on `runtime`.
fn middlewares(
    runtime: &tokio::runtime::Runtime,
) -> ([Option<Arc<dyn Middleware>>; STACKS], HeaderValue) {
    let cache = TokenCache::new(|| async {
        Ok::<_, BoxError>(
            Token::bearer("a-realistic-looking-access-token-value-0123456789")
                .expires_in(Duration::from_secs(24 * 3600)),
        )
    });
    let token = runtime.block_on(cache.token()).expect("the token");
    let mut fixed = HeaderValue::try_from(format!("Bearer {}", token.secret())).expect("a header");
    fixed.set_sensitive(true);
    let origin = Origin::parse("https://api.example.com").expect("an origin");
    let ours = TokenRefreshMiddleware::new(cache);
    let middlewares: [Option<Arc<dyn Middleware>>; STACKS] = [
        None,
        Some(Arc::new(FixedHeader(fixed.clone()))),
        Some(Arc::new(FixedHeaderLean(fixed.clone()))),
        Some(Arc::new(ours.clone())),
        Some(Arc::new(ours.clone().only_to([origin]))),
        Some(Arc::new(ours.retry_rejected())),
    ];
    (middlewares, fixed)
}

/// The clients of the chains, in the order of [`NAMES`], each checked
/// first: it sends the token (bare: nothing). Enter `runtime` first.
fn clients(runtime: &tokio::runtime::Runtime, url: &Url) -> [ClientWithMiddleware; STACKS] {
    let (middlewares, fixed) = middlewares(runtime);
    for (index, middleware) in middlewares.iter().enumerate() {
        let expected = (index > 0).then(|| fixed.clone());
        let checking = chain(
            middleware.as_ref(),
            Terminal {
                expect: Some(expected),
            },
        );
        black_box(send(&checking, request(url)));
    }
    middlewares.map(|middleware| chain(middleware.as_ref(), Terminal { expect: None }))
}

/// One process: the chains take turns for `rounds` rounds; each chain's
/// median time per request, in the order of [`NAMES`].
fn measure(rounds: usize) -> [f64; STACKS] {
    let runtime = support::runtime();
    let _context = runtime.enter();
    let url = Url::parse(URL).expect("a URL");
    let clients = clients(&runtime, &url);
    let mut times: [Vec<f64>; STACKS] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    for round in 0..rounds {
        for turn in 0..STACKS {
            let index = (round + turn) % STACKS;
            let requests = (0..BATCH).map(|_| request(&url)).collect();
            times[index].push(send_batch(&clients[index], requests));
        }
    }
    times.map(support::median)
}

/// Requests a `--count` run sends, as `benches/instructions.rs` does.
const COUNTED: usize = 100_000;

/// `--count NAME`: [`COUNTED`] requests through one chain, for callgrind.
fn count(name: &str) {
    let Some(index) = NAMES.iter().position(|known| *known == name) else {
        usage(&format!("--count needs one of {NAMES:?}, not {name:?}"));
    };
    let runtime = support::runtime();
    let _context = runtime.enter();
    let url = Url::parse(URL).expect("a URL");
    let clients = clients(&runtime, &url);
    let requests: Vec<_> = (0..COUNTED).map(|_| request(&url)).collect();
    for request in requests {
        black_box(send(&clients[index], request));
    }
}

/// The size of the future the middleware after it in the chain returned
/// last (set by [`Probe`]).
static FUTURE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// Records the size of the boxed future of the middleware after it.
struct Probe;

impl Middleware for Probe {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        request: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> HandleFuture<'async_trait>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        let future = next.run(request, extensions);
        FUTURE_SIZE.store(size_of_val(&*future), Ordering::Relaxed);
        future
    }
}

/// `--sizes`: the size of the future each chain's middleware allocates
/// per request (the terminal's, for bare).
fn sizes() {
    let runtime = support::runtime();
    let _context = runtime.enter();
    let url = Url::parse(URL).expect("a URL");
    let (middlewares, _) = middlewares(&runtime);
    for (name, middleware) in NAMES.iter().zip(&middlewares) {
        let mut builder = ClientBuilder::new(reqwest::Client::new()).with(Probe);
        if let Some(middleware) = middleware {
            builder = builder.with_arc(Arc::clone(middleware));
        }
        let client = builder.with(Terminal { expect: None }).build();
        black_box(send(&client, request(&url)));
        println!(
            "  {name:<9} {:>4} bytes",
            FUTURE_SIZE.load(Ordering::Relaxed)
        );
    }
    println!(
        "  (sizes of: reqwest::Request {}, reqwest::Response {}, Extensions {})",
        size_of::<Request>(),
        size_of::<Response>(),
        size_of::<Extensions>()
    );
}

/// Set in a process this benchmark starts: run that many rounds and print
/// the chains' medians on one line.
const ROUNDS_VARIABLE: &str = "REQWEST_MIDDLEWARE_ROUNDS";

/// The ratios of one process's medians.
struct Ratios {
    /// Ours' time per request / the floor's.
    ours_to_floor: f64,
    /// Ours' overhead over bare / the floor's.
    overheads: f64,
    /// Ours' time / the lean floor's.
    ours_to_lean: f64,
    /// Ours' overhead / the lean floor's.
    lean_overheads: f64,
    /// Ours with `only_to` / ours.
    only_to: f64,
    /// Ours retrying / ours.
    retrying: f64,
}

impl Ratios {
    fn of(times: &[f64; STACKS]) -> Self {
        let [bare, floor, lean, ours, only_to, retrying] = *times;
        Self {
            ours_to_floor: ours / floor,
            overheads: (ours - bare) / (floor - bare),
            ours_to_lean: ours / lean,
            lean_overheads: (ours - bare) / (lean - bare),
            only_to: only_to / ours,
            retrying: retrying / ours,
        }
    }
}

/// The command line: `--quick`, `--processes N`, and the `--bench` cargo
/// adds; or `--count CHAIN` or `--sizes`, run at once. Anything else is
/// refused.
fn arguments() -> (bool, Option<usize>) {
    let (mut quick, mut processes) = (false, None);
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--bench" => {}
            "--quick" => quick = true,
            "--count" => {
                let name = arguments
                    .next()
                    .unwrap_or_else(|| usage(&format!("--count needs one of {NAMES:?}")));
                count(&name);
                std::process::exit(0);
            }
            "--sizes" => {
                sizes();
                std::process::exit(0);
            }
            "--processes" => {
                let count = arguments.next().and_then(|count| count.parse().ok());
                processes = Some(
                    count
                        .filter(|&count| count > 0)
                        .unwrap_or_else(|| usage("--processes needs a count, such as 5")),
                );
            }
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    (quick, processes)
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "reqwest_middleware: {problem}\nusage: reqwest_middleware [--quick] [--processes N] | --count CHAIN | --sizes"
    );
    std::process::exit(2)
}

fn main() {
    if let Ok(rounds) = std::env::var(ROUNDS_VARIABLE) {
        let rounds = rounds.parse().expect("a number of rounds");
        let times = measure(rounds).map(|time| time.to_string());
        println!("{}", times.join(" "));
        return;
    }
    let (quick, processes) = arguments();
    let (rounds, default_processes) = if quick { (200, 3) } else { (1_000, 5) };
    let processes = processes.unwrap_or(default_processes);
    println!(
        "reqwest_middleware: {processes} processes x {rounds} rounds x {BATCH} requests per chain; \
         ns per request (each process's median over its rounds), then ratios"
    );
    let names: String = NAMES.iter().map(|name| format!(" {name:>8}")).collect();
    println!(
        "  {:<7}{names} | {:>10} {:>9} | {:>9} {:>9} | {:>8} {:>9}",
        "process", "ours/floor", "overheads", "ours/lean", "overh./l.", "only_to", "retrying"
    );
    let mut all = Vec::with_capacity(processes);
    for process in 1..=processes {
        let times: [f64; STACKS] = support::measure_in_a_process(ROUNDS_VARIABLE, rounds);
        let ratios = Ratios::of(&times);
        let times: String = times.iter().map(|time| format!(" {time:8.1}")).collect();
        println!(
            "  {process:<7}{times} | {:10.3} {:9.2} | {:9.3} {:9.2} | {:8.3} {:9.3}",
            ratios.ours_to_floor,
            ratios.overheads,
            ratios.ours_to_lean,
            ratios.lean_overheads,
            ratios.only_to,
            ratios.retrying,
        );
        all.push(ratios);
    }
    let median_of = |ratio: fn(&Ratios) -> f64| support::median(all.iter().map(ratio).collect());
    println!("medians over the processes (overhead: a chain's time minus bare's):");
    for (name, ratio) in [
        ("ours / floor", median_of(|r| r.ours_to_floor)),
        ("ours' overhead / the floor's", median_of(|r| r.overheads)),
        ("ours / lean floor", median_of(|r| r.ours_to_lean)),
        (
            "ours' overhead / the lean floor's",
            median_of(|r| r.lean_overheads),
        ),
        ("ours with only_to / ours", median_of(|r| r.only_to)),
        ("ours retrying / ours", median_of(|r| r.retrying)),
    ] {
        println!("  {name}: {ratio:.3}");
    }
}

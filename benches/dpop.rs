//! What a DPoP proof costs per request: the floor (a fixed header), ours
//! with a bearer token, and ours with a DPoP-bound token signing an ES256 or
//! an EdDSA proof for every request, taking turns in one process; then the
//! medians and ratios. A proof is a signature per request, so the bearer
//! hot path cannot apply: this measures what that costs, against the
//! bearer layer measured in the same run.
//!
//! ```sh
//! cargo bench --bench dpop --features dpop
//! ```

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use http::{Request, Response};
use support::{Body, inner, request, send};
use tower::{BoxError, Layer, Service};
use tower_token_refresh::dpop::{DpopAlgorithm, DpopKey};
use tower_token_refresh::{Token, TokenCache, TokenRefreshLayer};

const BATCH: usize = 200;
const ROUNDS: usize = 200;

/// One batch through `service`; the time per request, in nanoseconds.
fn batch<S, R>(service: &mut S) -> f64
where
    S: Service<Request<Body>, Response = Response<R>>,
    S::Error: std::fmt::Debug,
{
    let requests: Vec<_> = (0..BATCH).map(|_| request()).collect();
    let started = Instant::now();
    for request in requests {
        black_box(send(service, request));
    }
    started.elapsed().as_nanos() as f64 / BATCH as f64
}

/// A cache whose token is bound to a new key of `algorithm`.
fn bound_cache(runtime: &tokio::runtime::Runtime, algorithm: DpopAlgorithm) -> TokenCache {
    let key = DpopKey::generate(algorithm).unwrap();
    let cache = TokenCache::new(move || {
        let token = key.bind(
            Token::bearer("a-realistic-looking-access-token-value-0123456789")
                .expires_in(Duration::from_secs(24 * 3600)),
        );
        async move { Ok::<_, BoxError>(token) }
    });
    runtime.block_on(cache.token()).unwrap();
    cache
}

fn main() {
    let runtime = support::runtime();
    let _context = runtime.enter();
    let stacks = support::stacks(&runtime);
    let mut floor = stacks.floor;
    let mut bearer = stacks.ours;
    let mut es256 =
        TokenRefreshLayer::new(bound_cache(&runtime, DpopAlgorithm::ES256)).layer(inner());
    let mut eddsa =
        TokenRefreshLayer::new(bound_cache(&runtime, DpopAlgorithm::EdDSA)).layer(inner());

    let mut times: [Vec<f64>; 4] = std::array::from_fn(|_| Vec::with_capacity(ROUNDS));
    for round in 0..ROUNDS {
        for turn in 0..4 {
            let index = (round + turn) % 4;
            times[index].push(match index {
                0 => batch(&mut floor),
                1 => batch(&mut bearer),
                2 => batch(&mut es256),
                _ => batch(&mut eddsa),
            });
        }
    }
    let [floor, bearer, es256, eddsa] = times.map(support::median);
    println!(
        "dpop: {ROUNDS} rounds x {BATCH} requests; per request (median): floor {floor:.0} ns, \
         bearer {bearer:.0} ns, DPoP ES256 {:.1} µs, DPoP EdDSA {:.1} µs",
        es256 / 1000.0,
        eddsa / 1000.0
    );
    println!(
        "  ratios to the bearer layer: ES256 {:.0}x, EdDSA {:.0}x; bearer / floor {:.3}",
        es256 / bearer,
        eddsa / bearer,
        bearer / floor
    );
}

//! The main job, on an embedded default: a token endpoint and an API run in
//! this process on 127.0.0.1, tokens live 3 seconds, and several workers call
//! the API through `TokenRefreshLayer` for 10 seconds.
//!
//! Run it with `cargo run --example demo`. It prints a timeline of every
//! token issued and every request (with the token it carried), then a
//! summary, and exits non-zero if any request failed.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{CLIENT_ID, CLIENT_SECRET, Clock, Embedded};
use tokio::time::Instant;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};
use tower_token_refresh::{TokenCache, TokenRefreshLayer};

const TOKEN_LIFETIME: Duration = Duration::from_secs(3);
const RUN_FOR: Duration = Duration::from_secs(10);
const WORKERS: usize = 4;
const REQUEST_EVERY: Duration = Duration::from_millis(700);

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let clock = Clock::start();
    let server = Embedded::start(clock, TOKEN_LIFETIME, false).await?;

    println!(
        "tower-token-refresh demo: {WORKERS} workers call the API every {REQUEST_EVERY:?} \
         for {RUN_FOR:?}; tokens live {TOKEN_LIFETIME:?}"
    );
    println!("token endpoint and API on http://{}\n", server.addr);
    println!("{:>8}  {:<15} event", "time", "who");

    // Tokens come from the embedded OAuth 2.0 token endpoint.
    let source = ClientCredentials::new(
        server.token_url(),
        CLIENT_ID,
        ClientAuth::basic(CLIENT_SECRET),
    )?;
    let cache = TokenCache::new(source);

    // The API client: any tower HTTP client, wrapped in the layer.
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (1..=WORKERS)
        .map(|worker| {
            let api = api.clone();
            let url = server.api_url();
            let outcomes = Arc::clone(&outcomes);
            tokio::spawn(async move {
                // Spread the workers over the interval.
                tokio::time::sleep(REQUEST_EVERY * worker as u32 / WORKERS as u32).await;
                while clock.elapsed() < RUN_FOR {
                    let started = Instant::now();
                    let request = Request::get(url.as_str()).body(Empty::new()).unwrap();
                    let outcome = match api.clone().oneshot(request).await {
                        Ok(response) => support::read(response).await,
                        Err(error) => Err(format!("request failed: {error}")),
                    };
                    let took = started.elapsed();
                    let who = format!("worker {worker}");
                    match &outcome {
                        Ok(token) => {
                            clock.print(&who, &format!("GET /api -> 200 with {token} ({took:.1?})"))
                        }
                        Err(error) => clock.print(&who, &format!("GET /api FAILED: {error}")),
                    }
                    outcomes.lock().unwrap().push(outcome);
                    tokio::time::sleep(REQUEST_EVERY).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let failed = outcomes.iter().filter(|outcome| outcome.is_err()).count();
    let mut per_token = BTreeMap::new();
    for token in outcomes.iter().flatten() {
        let number: usize = token.trim_start_matches("tok-").parse().unwrap_or(0);
        *per_token.entry(number).or_insert(0) += 1;
    }
    println!("\nsummary");
    println!(
        "  {} requests: {} succeeded, {failed} failed",
        outcomes.len(),
        outcomes.len() - failed
    );
    println!(
        "  {} tokens issued in {:.1?}: the first on demand, then one refresh ahead of each expiry",
        server.issued(),
        clock.elapsed()
    );
    println!(
        "  most token requests in flight at once: {} (single-flight)",
        server.max_in_flight()
    );
    for (number, count) in per_token {
        println!("  tok-{number}: used by {count} requests");
    }
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

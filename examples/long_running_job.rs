//! A job that outlives its tokens: the problem this crate was written for.
//!
//! ```sh
//! cargo run --example long_running_job
//! ```
//!
//! A "script" processes 30 items, one every 300 ms (about 9 seconds),
//! calling an API for each, while the API's tokens live only 2 seconds. A
//! token fetched once at the start would stop working after the seventh
//! item; with `TokenRefreshLayer` the job never notices: each token is
//! replaced in the background shortly before it expires, and the items go on
//! without waiting.
//!
//! An embedded OAuth 2.0 token endpoint and API run on 127.0.0.1. The
//! example prints a line per item (with the token the API saw) and each
//! token issued, then a summary; it exits non-zero if an item failed, or if
//! any call other than the first had to wait for a token.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{CLIENT_ID, CLIENT_SECRET, Clock, Embedded};
use tokio::time::{Instant, MissedTickBehavior};
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};
use tower_token_refresh::{TokenCache, TokenRefreshLayer};

const ITEMS: usize = 30;
const ITEM_EVERY: Duration = Duration::from_millis(300);
const TOKEN_LIFETIME: Duration = Duration::from_secs(2);
/// Refresh in the background once a token has less than this left (plus up
/// to a quarter more, at random).
const REFRESH_BEFORE: Duration = Duration::from_millis(500);

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let clock = Clock::start();
    let server = Embedded::start(clock, TOKEN_LIFETIME, false).await?;
    println!(
        "processing {ITEMS} items, one every {ITEM_EVERY:?}, with tokens that live {TOKEN_LIFETIME:?}\n"
    );

    let source = ClientCredentials::new(
        server.token_url(),
        CLIENT_ID,
        ClientAuth::basic(CLIENT_SECRET),
    )?;
    let cache = TokenCache::builder(source)
        .refresh_before(REFRESH_BEFORE)
        .fetch_timeout(Duration::from_secs(2))
        .build();
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    let mut ticks = tokio::time::interval(ITEM_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failed = 0;
    for item in 1..=ITEMS {
        ticks.tick().await;
        let started = Instant::now();
        let request = Request::get(server.api_url()).body(Empty::new())?;
        let outcome = match api.clone().oneshot(request).await {
            Ok(response) => support::read(response).await,
            Err(error) => Err(error.to_string()),
        };
        let took = started.elapsed();
        let who = format!("item {item:>2}/{ITEMS}");
        match outcome {
            Ok(token) => clock.print(&who, &format!("done, API saw {token} ({took:.1?})")),
            Err(error) => {
                failed += 1;
                clock.print(&who, &format!("FAILED: {error}"));
            }
        }
    }

    let elapsed = clock.elapsed();
    let stats = cache.stats();
    println!("\nsummary after {elapsed:.1?}");
    println!("  items: {} processed, {failed} failed", ITEMS - failed);
    println!(
        "  tokens fetched: {} (one every {:.2?} on average; {} refreshed ahead of expiry)",
        stats.fetches,
        elapsed / stats.fetches.max(1) as u32,
        stats.refreshes_ahead
    );
    println!(
        "  calls that waited for a token: {} (only the first should), rejections: {}",
        stats.waited, stats.rejections
    );

    let mut problems = Vec::new();
    if failed > 0 {
        problems.push(format!("{failed} items failed"));
    }
    if stats.waited != 1 {
        problems.push(format!(
            "{} calls waited for a token, not just the first",
            stats.waited
        ));
    }
    // The job outlives several tokens, each used until shortly before it expires.
    let at_least = elapsed.as_secs_f64() / TOKEN_LIFETIME.as_secs_f64();
    if (stats.fetches as f64) < at_least.ceil() {
        problems.push(format!(
            "only {} tokens for a {elapsed:.1?} job",
            stats.fetches
        ));
    }
    if problems.is_empty() {
        println!(
            "OK: the job outlived {} tokens without noticing",
            stats.fetches - 1
        );
        Ok(())
    } else {
        for problem in problems {
            println!("FAILED: {problem}");
        }
        std::process::exit(1);
    }
}

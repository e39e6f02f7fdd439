//! A fleet of processes sharing one token: the identity provider sees one
//! fetch per token lifetime, however many processes call the API.
//!
//! ```sh
//! cargo run --example fleet                                 # 4 processes, a shared file
//! cargo run --example fleet --features redis -- redis://127.0.0.1:6379
//! # A Redis Cluster: its seed nodes, comma-separated.
//! cargo run --example fleet --features redis -- redis://127.0.0.1:7000,redis://127.0.0.1:7001
//! # Redis Sentinel: the primary's name, then the sentinels, comma-separated
//! # (the primary's user and password, if any, from REDIS_PRIMARY_USER and
//! # REDIS_PRIMARY_PASSWORD).
//! cargo run --example fleet --features redis -- --sentinel mymaster redis://127.0.0.1:26379,redis://127.0.0.1:26380
//! ```
//!
//! The example starts an embedded OAuth 2.0 token endpoint and API on
//! 127.0.0.1 (tokens live 3 seconds), then runs itself again as 4 worker
//! processes. Each worker has its own `TokenCache` and `TokenRefreshLayer`,
//! sharing tokens through a [`FileStore`] in a temporary directory (or a
//! `RedisStore`, given a Redis URL, a cluster's seed node URLs separated
//! by commas, or a primary's name and its sentinels, and the `redis`
//! feature), and calls the
//! API every 50 ms for 8 seconds. Then a fifth process starts, as a
//! restarted job would, and finds the token already there.
//!
//! Without a store each worker would fetch its own tokens (about 4 × 4);
//! the example prints how many the fleet fetched, and exits non-zero if a
//! request failed or the fleet fetched more than once per token lifetime.

mod support;

use std::process::Stdio;
use std::sync::Arc;
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
use tower_token_refresh::store::{FileStore, TokenStore};
use tower_token_refresh::{TokenCache, TokenRefreshLayer};

const WORKERS: usize = 4;
const LIFETIME: Duration = Duration::from_secs(3);
const REFRESH_BEFORE: Duration = Duration::from_millis(500);
const RUN_FOR: Duration = Duration::from_secs(8);
const REQUEST_EVERY: Duration = Duration::from_millis(50);

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--worker", ..] => worker(&args[1..]).await,
        ["--sentinel", name, urls] => {
            coordinator(Some(format!("redis-sentinel {urls} {name}"))).await
        }
        [urls] if urls.contains(',') => coordinator(Some(format!("redis-cluster {urls}"))).await,
        [url] => coordinator(Some(format!("redis {url}"))).await,
        [] => coordinator(None).await,
        _ => Err(
            "usage: fleet [REDIS_URL | SEED_URL,SEED_URL,… | --sentinel NAME SENTINEL_URL,…]"
                .into(),
        ),
    }
}

/// Starts the servers and the worker processes, and checks the count.
async fn coordinator(redis: Option<String>) -> Result<(), BoxError> {
    let server = Embedded::start(Clock::start(), LIFETIME, true).await?;
    let dir =
        std::env::temp_dir().join(format!("tower-token-refresh-fleet-{}", std::process::id()));
    let store = match redis {
        Some(redis) => format!("{redis} fleet-example:{}", std::process::id()),
        None => format!("file {}", dir.join("token.json").display()),
    };
    println!(
        "{WORKERS} processes call the API every {REQUEST_EVERY:?} for {RUN_FOR:?}; \
         tokens live {LIFETIME:?}; shared store: {}\n",
        store.split(' ').next().unwrap_or_default()
    );

    let spawn = |name: String, run_for: Duration| {
        let mut command = tokio::process::Command::new(std::env::current_exe()?);
        command
            .arg("--worker")
            .arg(name)
            .arg(server.token_url())
            .arg(server.api_url())
            .arg(run_for.as_millis().to_string())
            .args(store.split(' '))
            .stdout(Stdio::inherit())
            .kill_on_drop(true);
        command.spawn()
    };
    let workers = (1..=WORKERS)
        .map(|n| spawn(format!("worker {n}"), RUN_FOR))
        .collect::<Result<Vec<_>, _>>()?;
    let mut failed = false;
    for mut worker in workers {
        failed |= !worker.wait().await?.success();
    }
    let fleet_fetches = server.issued();

    // A job restarted while the token is still valid fetches nothing.
    failed |= !spawn("restarted job".to_owned(), Duration::ZERO)?
        .wait()
        .await?
        .success();
    let _ = std::fs::remove_dir_all(&dir);

    // Refreshes start at most 1.25 × REFRESH_BEFORE early.
    let per_token = LIFETIME - REFRESH_BEFORE * 5 / 4;
    let most = (RUN_FOR.as_secs_f64() / per_token.as_secs_f64()).ceil() as usize + 1;
    println!(
        "\nthe fleet fetched {fleet_fetches} tokens in {RUN_FOR:?} (at most {most} expected; \
         about {} without a shared store); the restarted job fetched {}",
        WORKERS * most.saturating_sub(1),
        server.issued() - fleet_fetches
    );
    if failed || fleet_fetches > most || server.issued() != fleet_fetches {
        return Err("the fleet did not share its tokens".into());
    }
    Ok(())
}

/// One process of the fleet.
async fn worker(args: &[String]) -> Result<(), BoxError> {
    let [name, token_url, api_url, run_for, kind, location, rest @ ..] = args else {
        return Err("usage: --worker NAME TOKEN_URL API_URL MILLIS \
             (file PATH | redis URL KEY | redis-cluster URL,URL,… KEY \
             | redis-sentinel URL,URL,… NAME KEY)"
            .into());
    };
    let store: Arc<dyn TokenStore> = match kind.as_str() {
        "file" => Arc::new(FileStore::new(location)?),
        #[cfg(feature = "redis")]
        "redis" => Arc::new(tower_token_refresh::store::RedisStore::new(
            location,
            rest.first().ok_or("redis needs a key")?.as_str(),
        )?),
        #[cfg(feature = "redis")]
        "redis-cluster" => Arc::new(tower_token_refresh::store::RedisStore::cluster(
            location.split(','),
            rest.first().ok_or("redis-cluster needs a key")?.as_str(),
        )?),
        #[cfg(feature = "redis")]
        "redis-sentinel" => {
            let [name, key] = rest else {
                return Err("redis-sentinel needs a primary's name and a key".into());
            };
            let mut builder = tower_token_refresh::store::RedisStore::sentinel_builder(
                location.split(','),
                name,
                key,
            );
            if let Ok(password) = std::env::var("REDIS_PRIMARY_PASSWORD") {
                let user = std::env::var("REDIS_PRIMARY_USER").unwrap_or_else(|_| "default".into());
                builder = builder.primary_auth(user, tower_token_refresh::Secret::new(password));
            }
            Arc::new(builder.build()?)
        }
        other => return Err(format!("store {other} is not available (rest: {rest:?})").into()),
    };
    let source = ClientCredentials::new(
        token_url.as_str(),
        CLIENT_ID,
        ClientAuth::basic(CLIENT_SECRET),
    )?;
    let cache = TokenCache::builder(source)
        .store(store)
        .refresh_before(REFRESH_BEFORE)
        .build();
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    let until = Instant::now() + Duration::from_millis(run_for.parse()?);
    let (mut sent, mut failed) = (0, 0);
    loop {
        let request = Request::get(api_url.as_str()).body(Empty::new())?;
        match api.clone().oneshot(request).await {
            Ok(response) if response.status().is_success() => {}
            _ => failed += 1,
        }
        sent += 1;
        if Instant::now() >= until {
            break;
        }
        tokio::time::sleep(REQUEST_EVERY).await;
    }
    let stats = cache.stats();
    println!(
        "{name:<14} {sent:>4} requests, {failed} failed; fetched {} token(s) itself, took {} from the store",
        stats.fetches, stats.store_hits
    );
    if failed > 0 {
        return Err(format!("{name}: {failed} requests failed").into());
    }
    Ok(())
}

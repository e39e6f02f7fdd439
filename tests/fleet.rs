//! Fleets of real OS processes sharing one token through a `RedisStore` (a
//! real `redis-server` on 127.0.0.1, a Redis Cluster, or a primary found
//! through Redis Sentinel) or a `FileStore`, against one token endpoint
//! that counts fetches.
//!
//! This test binary has its own `main` (`harness = false`): run as
//! `fleet --fleet-worker …` it is a worker process (a `TokenCache` with a
//! store, behind `TokenRefreshLayer` over a hyper client, sending the
//! requests the test asks for on stdin); otherwise it runs the scenarios,
//! each starting its own servers and workers. `cargo test --test fleet NAME`
//! runs the scenarios whose name contains NAME.
//!
//! Redis scenarios need the `redis-server` binary (Debian package
//! `redis-server`), and the Redis Cluster ones (`cluster_*`: clusters of
//! `redis-server --cluster-enabled yes` processes on 127.0.0.1, made with
//! `redis-cli --cluster create`) and the Sentinel ones (`sentinel_*`: a
//! primary, its replicas and three `redis-server --sentinel` processes on
//! 127.0.0.1, each sentinel with a configuration file of its own and an
//! ACL user of its own) `redis-cli` too (Debian package `redis-tools`,
//! which `redis-server` depends on). Without them they are
//! skipped, and the output says how many and why; with `REQUIRE_REDIS=1` in
//! the environment (as `.ci/run` sets it, after installing the packages) a
//! missing binary fails them instead.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use support::redis_cluster::{REDIS_PASSWORD, REDIS_USER, RedisCluster, which, with_fleet_user};
use support::redis_sentinel::{Node, RedisSentinel};
use support::tcp_proxy::TcpProxy;
use support::temp_dir::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Notify;
use tokio::time::{Instant, sleep, timeout};
use tower_token_refresh::store::{RedisStore, StoreError};

/// Tokens live this long (the endpoint's `expires_in`).
const LIFETIME: Duration = Duration::from_secs(2);
/// The workers' fetch timeout and lease.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
const LEASE: Duration = Duration::from_secs(4);
const WORKERS: usize = 4;
const REQUESTS: usize = 50;
/// The cluster and Sentinel workers' store timeouts: well over what a
/// failover takes here (about 1.5 to 2 s, with `CLUSTER_NODE_TIMEOUT` or
/// the sentinels' `DOWN_AFTER`), so that a slow one on a loaded machine is
/// still ridden through.
const CLUSTER_STORE_TIMEOUT: Duration = Duration::from_millis(4500);
const SENTINEL_STORE_TIMEOUT: Duration = Duration::from_millis(4500);
/// The cluster and Sentinel workers' fetch timeout (which bounds every
/// store call: above their store timeout) and lease (above the fetch
/// timeout).
const FAILOVER_FETCH_TIMEOUT: Duration = Duration::from_secs(6);
const FAILOVER_LEASE: Duration = Duration::from_secs(8);
/// Tokens live this long in the failover scenarios: longer than the store's
/// timeout, since a holder whose save waits for the promotion hands its
/// token over only after it.
const FAILOVER_LIFETIME: Duration = Duration::from_secs(6);
/// Set to `1`, a missing `redis-server` fails the Redis scenarios instead
/// of skipping them.
const REQUIRE_REDIS: &str = "REQUIRE_REDIS";
/// No step of a scenario may take longer.
const STEP_LIMIT: Duration = Duration::from_secs(30);

type Outcome = Result<(), String>;
type Scenario = (&'static str, fn() -> Outcome);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--fleet-worker") {
        return worker::main(&args[1..]);
    }
    // libtest flags (`--nocapture`, `--quiet`, …) are accepted and ignored;
    // a plain argument filters scenarios by name.
    let mut filter = Vec::new();
    let mut skip = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--skip" => skip.extend(rest.next()),
            // libtest options that take a value.
            "--test-threads" | "--format" | "--color" | "-Z" | "--logfile" => {
                rest.next();
            }
            flag if flag.starts_with('-') => {}
            name => filter.push(name),
        }
    }
    let scenarios: [Scenario; 30] = [
        ("cluster_store_waits_for_replicas", || {
            run(cluster_store_waits_for_replicas())
        }),
        ("cluster_keys_share_one_slot", || {
            run(cluster_keys_share_one_slot())
        }),
        ("cluster_fleet_fetches_once_per_token_lifetime", || {
            run(cluster_fleet_fetches_once_per_token_lifetime())
        }),
        ("cluster_primary_killed_mid_refresh", || {
            run(cluster_primary_killed_mid_refresh())
        }),
        ("cluster_primary_frozen_mid_refresh", || {
            run(cluster_primary_frozen_mid_refresh())
        }),
        ("cluster_lock_lost_in_failover", || {
            run(cluster_lock_lost_in_failover())
        }),
        ("cluster_slot_migrated_mid_run", || {
            run(cluster_slot_migrated_mid_run())
        }),
        ("cluster_down_and_back", || run(cluster_down_and_back())),
        ("sentinel_fleet_fetches_once_per_token_lifetime", || {
            run(sentinel_fleet_fetches_once_per_token_lifetime())
        }),
        ("sentinel_primary_killed_mid_refresh", || {
            run(sentinel_primary_killed_mid_refresh())
        }),
        ("sentinel_primary_frozen_mid_refresh", || {
            run(sentinel_primary_frozen_mid_refresh())
        }),
        ("sentinel_lock_lost_in_failover", || {
            run(sentinel_lock_lost_in_failover())
        }),
        ("sentinel_down_and_back", || run(sentinel_down_and_back())),
        ("sentinel_idle_process_after_failover", || {
            run(sentinel_idle_process_after_failover())
        }),
        ("sentinel_misconfigured_fails_at_once", || {
            run(sentinel_misconfigured_fails_at_once())
        }),
        (
            "sentinel_hung_the_store_reconnects_to_the_last_primary",
            || run(sentinel_hung_the_store_reconnects_to_the_last_primary()),
        ),
        ("redis_fleet_fetches_once_per_token_lifetime", || {
            run(redis_fleet_fetches_once_per_token_lifetime())
        }),
        ("redis_lock_holder_killed_mid_fetch", || {
            run(redis_lock_holder_killed_mid_fetch())
        }),
        ("redis_stopped_mid_run", || run(redis_stopped_mid_run())),
        ("redis_primary_behind_one_address_failed_over", || {
            run(redis_primary_behind_one_address_failed_over())
        }),
        ("redis_lock_is_fenced", || run(redis_lock_is_fenced())),
        ("redis_keeps_a_rotated_refresh_token_for_the_fleet", || {
            run(redis_keeps_a_rotated_refresh_token_for_the_fleet())
        }),
        ("redis_fleet_backs_off_together", || {
            run(redis_fleet_backs_off_together())
        }),
        ("redis_over_tls_with_a_private_ca", || {
            run(redis_over_tls_with_a_private_ca())
        }),
        ("cluster_over_tls_with_a_private_ca", || {
            run(cluster_over_tls_with_a_private_ca())
        }),
        ("file_fleet_fetches_once_per_token_lifetime", || {
            run(file_fleet_fetches_once_per_token_lifetime())
        }),
        ("file_store_restart_reuses_the_token", || {
            run(file_store_restart_reuses_the_token())
        }),
        ("file_lock_holder_killed_mid_fetch", || {
            run(file_lock_holder_killed_mid_fetch())
        }),
        ("file_rejected_token_is_not_loaded_by_the_next_run", || {
            run(file_rejected_token_is_not_loaded_by_the_next_run())
        }),
        (
            "redis_rejected_token_is_not_loaded_by_the_next_process",
            || run(redis_rejected_token_is_not_loaded_by_the_next_process()),
        ),
    ];
    if args.iter().any(|arg| arg == "--list") {
        for (name, _) in &scenarios {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let mut selected: Vec<_> = scenarios
        .iter()
        .filter(|(name, _)| filter.is_empty() || filter.iter().any(|f| name.contains(f)))
        .filter(|(name, _)| !skip.iter().any(|s| name.contains(s.as_str())))
        .collect();
    let required = std::env::var_os(REQUIRE_REDIS).is_some_and(|value| value == "1");
    let mut skipped = Vec::new();
    let missing = ["redis-server", "redis-cli"]
        .into_iter()
        .filter(|binary| which(binary).is_none())
        .collect::<Vec<_>>();
    if !missing.is_empty() && !required {
        // Clusters are made, and replicas and failovers driven, with
        // redis-cli.
        let needs_cli = |name: &str| {
            name.starts_with("cluster_")
                || name.starts_with("sentinel_")
                || name == "redis_primary_behind_one_address_failed_over"
        };
        let needs_missing = |name: &str| {
            (needs_cli(name) && missing.contains(&"redis-cli"))
                || (["redis_", "cluster_", "sentinel_"]
                    .iter()
                    .any(|prefix| name.starts_with(prefix))
                    && missing.contains(&"redis-server"))
        };
        (skipped, selected) = selected
            .into_iter()
            .partition(|(name, _)| needs_missing(name));
    }
    println!("\nrunning {} tests", selected.len());
    if !skipped.is_empty() {
        let missing = missing.join(" and ");
        println!(
            "{} Redis tests skipped: {missing} not found (install the Debian packages \
             `redis-server` and `redis-tools`; {REQUIRE_REDIS}=1 makes this an error)",
            skipped.len()
        );
        for (name, _) in &skipped {
            println!("test {name} ... skipped ({missing} not found)");
        }
    }
    let mut failed = Vec::new();
    for (name, scenario) in &selected {
        let started = std::time::Instant::now();
        match scenario() {
            Ok(()) => println!("test {name} ... ok ({:.1?})", started.elapsed()),
            Err(why) => {
                println!("test {name} ... FAILED\n    {why}");
                failed.push(*name);
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; {} skipped",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len(),
        skipped.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(scenario: impl std::future::Future<Output = Outcome>) -> Outcome {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?
        .block_on(scenario)
}

macro_rules! check {
    ($condition:expr, $($why:tt)+) => {
        if !$condition {
            return Err(format!($($why)+));
        }
    };
}

// ---------------------------------------------------------------- scenarios

async fn redis_fleet_fetches_once_per_token_lifetime() -> Outcome {
    let redis = RedisServer::start(None).await?;
    fetches_once_per_token_lifetime(WORKERS, &redis.store_spec()).await
}

/// `workers` processes sharing the store of `spec`, three waves of
/// `REQUESTS` each, at each token's expiry: one fetch per wave.
async fn fetches_once_per_token_lifetime(workers: usize, spec: &str) -> Outcome {
    let servers = Servers::start().await;
    let mut fleet = Fleet::spawn(workers, spec, &servers).await?;
    for wave in 1..=3 {
        let results = fleet.wave(REQUESTS).await?;
        check!(
            results.iter().all(|r| r.all_ok()),
            "wave {wave}: some requests failed: {results:?}"
        );
        check!(
            servers.fetches() == wave,
            "wave {wave}: {} fetches for the fleet, expected {wave}",
            servers.fetches()
        );
        servers.wait_until_tokens_expire().await;
    }
    fleet.exit().await
}

async fn redis_lock_holder_killed_mid_fetch() -> Outcome {
    let redis = RedisServer::start(None).await?;
    let servers = Servers::start().await;
    let mut fleet = Fleet::spawn(WORKERS, &redis.store_spec(), &servers).await?;
    // The first fetch never answers: its process is killed while holding
    // the lock.
    servers.hang_next_fetch();
    fleet.start_wave(REQUESTS).await?;
    let holder = servers.wait_for_fetch_in_flight().await?;
    let killed_at = Instant::now();
    fleet.kill(holder).await?;
    servers.release_hung_fetch();

    let results = fleet.finish_wave().await?;
    let recovered = killed_at.elapsed();
    check!(
        results.iter().all(|r| r.all_ok()),
        "requests failed after the holder died: {results:?}"
    );
    check!(
        servers.fetches() == 2,
        "{} fetches: expected the killed holder's and one more",
        servers.fetches()
    );
    check!(
        recovered <= LEASE + FETCH_TIMEOUT,
        "took {recovered:?} to recover, more than lease + fetch time ({:?})",
        LEASE + FETCH_TIMEOUT
    );
    check!(
        recovered >= LEASE - Duration::from_millis(500),
        "recovered after {recovered:?}, before the lease ({LEASE:?}) ended: the lock did not hold"
    );
    fleet.exit().await
}

async fn redis_stopped_mid_run() -> Outcome {
    let mut redis = RedisServer::start(None).await?;
    let servers = Servers::start().await;
    let mut fleet = Fleet::spawn(WORKERS, &redis.store_spec(), &servers).await?;
    fleet.wave(REQUESTS).await?;
    check!(
        servers.fetches() == 1,
        "{} fetches before the stop",
        servers.fetches()
    );

    // Redis goes away; tokens expire; requests must keep succeeding.
    let port = redis.stop();
    each_process_fetches_alone(&mut fleet, &servers, "while Redis was down").await?;

    // Redis is back: the fleet shares one token again.
    redis = RedisServer::start(Some(port)).await?;
    settles_to_one_fetch_per_lifetime(&mut fleet, &servers, 1, "after Redis came back").await?;

    // And while a wave's refreshes are in flight.
    servers.wait_until_tokens_expire().await;
    fleet.start_wave(REQUESTS).await?;
    redis.stop();
    let results = fleet.finish_wave().await?;
    check!(
        results.iter().all(|r| r.all_ok()),
        "requests failed when Redis stopped mid-wave: {results:?}"
    );
    fleet.exit().await
}

/// A primary with a replica behind one address (a proxy here, a DNS name
/// in a managed offering): a failover swaps their roles and moves the
/// address to the new primary. Connections made before still lead to the
/// old one, which answers writes with `READONLY`: the store makes its
/// connection anew, and the fleet goes on sharing one token per lifetime
/// (each process would otherwise fetch its own, lifetime after lifetime).
async fn redis_primary_behind_one_address_failed_over() -> Outcome {
    let old = RedisServer::start_replicable().await?;
    let new = RedisServer::start_replicable().await?;
    let new_port = new.port.to_string();
    redis_cli(new.port, &["replicaof", "127.0.0.1", &old.port.to_string()]).await?;
    let proxy = TcpProxy::start(old.port).await?;
    let spec = format!(
        "redis=redis://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{}|fleet:token",
        proxy.port
    );
    let servers = Servers::start().await;
    let mut fleet = Fleet::spawn(WORKERS, &spec, &servers).await?;
    settles_to_one_fetch_per_lifetime(&mut fleet, &servers, 1, "before the failover").await?;

    // The failover: the replica promoted, the old primary its replica, the
    // address moved.
    redis_cli(new.port, &["replicaof", "no", "one"]).await?;
    redis_cli(old.port, &["replicaof", "127.0.0.1", &new_port]).await?;
    proxy.switch_to(new.port);
    let deadline = Instant::now() + STEP_LIMIT;
    while !redis_cli(old.port, &["info", "replication"])
        .await?
        .contains("master_link_status:up")
    {
        check!(
            Instant::now() < deadline,
            "the old primary never followed the new one"
        );
        sleep(Duration::from_millis(20)).await;
    }
    settles_to_one_fetch_per_lifetime(&mut fleet, &servers, 2, "after the failover").await?;
    fleet.exit().await
}

/// `redis-cli` against the server on `port`, as the scenarios' user.
async fn redis_cli(port: u16, args: &[&str]) -> Result<String, String> {
    let output = timeout(
        STEP_LIMIT,
        Command::new(which("redis-cli").unwrap_or_else(|| "redis-cli".into()))
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["--user", REDIS_USER, "--no-auth-warning"])
            .env("REDISCLI_AUTH", REDIS_PASSWORD)
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| format!("redis-cli {args:?} did not finish"))?
    .map_err(|e| format!("cannot run redis-cli: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    check!(
        output.status.success() && !stdout.starts_with("ERR"),
        "redis-cli {args:?}: {stdout}"
    );
    Ok(stdout)
}

/// The identity provider fails: the fleet calls it once, not once per
/// process, and recovers together.
async fn redis_fleet_backs_off_together() -> Outcome {
    let redis = RedisServer::start(None).await?;
    let servers = Servers::start().await;
    let mut fleet = Fleet::spawn(WORKERS, &redis.store_spec(), &servers).await?;
    servers.set_failing(true);
    let results = fleet.wave(REQUESTS).await?;
    check!(
        results.iter().all(|r| r.failed == REQUESTS),
        "requests succeeded without a token? {results:?}"
    );
    check!(
        servers.fetches() == 1,
        "{} calls to a failing identity provider; the fleet should make one",
        servers.fetches()
    );
    servers.set_failing(false);
    // The backoff after one failure is at most a second.
    sleep(Duration::from_millis(1500)).await;
    let results = fleet.wave(REQUESTS).await?;
    check!(
        results.iter().all(|r| r.all_ok()),
        "after recovery: {results:?}"
    );
    check!(
        servers.fetches() == 2,
        "{} fetches, expected 2",
        servers.fetches()
    );
    fleet.exit().await
}

/// Two processes (here, two caches) share a refresh token grant's rotated
/// refresh tokens through Redis: the second starts from the refresh token
/// the first rotated in, not from the spent one it was configured with.
async fn redis_keeps_a_rotated_refresh_token_for_the_fleet() -> Outcome {
    use std::sync::Arc;

    use support::token_endpoint::TokenEndpoint;
    use tower_token_refresh::TokenCache;
    use tower_token_refresh::store::RedisStore;

    let redis = RedisServer::start(None).await?;
    let endpoint = TokenEndpoint::rotating_refresh_tokens("pw").await;
    let url = format!(
        "redis://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{}",
        redis.port
    );
    let process = || -> Result<TokenCache, String> {
        let store = Arc::new(RedisStore::new(&url, "fleet:rt").map_err(|e| e.to_string())?);
        let grant = endpoint
            .refresh_token_grant("pw")
            .store(store.clone())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(TokenCache::builder(grant).store(store).build())
    };

    let first = process()?;
    let a = first.token().await.map_err(|e| e.to_string())?;
    let second = process()?;
    let b = second.token().await.map_err(|e| e.to_string())?;
    check!(
        a.secret() == b.secret(),
        "the second process fetched its own token"
    );
    check!(
        endpoint.requests() == 1,
        "{} exchanges",
        endpoint.requests()
    );

    // The second process needs a new token: it must spend refresh-1 (in
    // Redis), not refresh-0 (spent, and what it was configured with).
    check!(second.invalidate(&b), "not invalidated");
    second.token().await.map_err(|e| e.to_string())?;
    check!(
        endpoint.requests() == 2,
        "{} exchanges: a spent refresh token was tried",
        endpoint.requests()
    );
    // And the first, rejected too, takes the second's token from Redis.
    check!(first.invalidate(&a), "not invalidated");
    first.token().await.map_err(|e| e.to_string())?;
    check!(
        endpoint.requests() == 2,
        "{} exchanges",
        endpoint.requests()
    );
    check!(endpoint.problems().is_empty(), "{:?}", endpoint.problems());
    Ok(())
}

/// The lock, by hand, on stores `store` makes (one key, each its own
/// connection): a holder whose lease ran out can neither write nor release
/// under its successor; a rejection deletes only the token it names.
async fn lock_is_fenced(
    store: &dyn Fn() -> Result<tower_token_refresh::store::RedisStore, String>,
) -> Outcome {
    use tower_token_refresh::Token;
    use tower_token_refresh::store::{StoredToken, TokenStore};

    let (a, b, c) = (store()?, store()?, store()?);
    let lease = Duration::from_millis(300);
    let err = |e: tower_token_refresh::store::StoreError| e.to_string();

    let first = a
        .try_lock(lease)
        .await
        .map_err(err)?
        .ok_or("a: lock free")?;
    check!(
        b.try_lock(lease).await.map_err(err)?.is_none(),
        "b took a held lock"
    );
    sleep(lease + Duration::from_millis(100)).await;
    let second = b
        .try_lock(lease * 10)
        .await
        .map_err(err)?
        .ok_or("b: lease ran out")?;

    let late = StoredToken::new(
        Token::bearer("from-a").expires_in(Duration::from_secs(60)),
        Some("fleet".into()),
    );
    check!(
        !a.save(&late, &first).await.map_err(err)?,
        "a wrote without the lock"
    );
    a.unlock(first).await.map_err(err)?;
    check!(
        c.try_lock(lease).await.map_err(err)?.is_none(),
        "a released b's lock"
    );

    let fresh = StoredToken::new(
        Token::bearer("from-b").expires_in(Duration::from_secs(60)),
        Some("fleet".into()),
    );
    check!(
        b.save(&fresh, &second).await.map_err(err)?,
        "b could not write"
    );
    b.unlock(second).await.map_err(err)?;
    let loaded = c.load().await.map_err(err)?.ok_or("nothing stored")?;
    check!(
        loaded.token().secret() == "from-b",
        "stored the wrong token"
    );
    check!(loaded.fingerprint() == Some("fleet"), "fingerprint lost");
    let left = loaded.token().time_left().unwrap_or_default();
    check!(left > Duration::from_secs(58), "expiry lost: {left:?}");
    check!(
        c.try_lock(lease).await.map_err(err)?.is_some(),
        "b did not release"
    );

    // A rejection of the old token leaves the newer one; of the stored one,
    // removes it.
    check!(
        !a.discard(late.token()).await.map_err(err)?,
        "an old token's rejection deleted the newer one"
    );
    check!(
        c.load().await.map_err(err)?.is_some(),
        "the newer token is gone"
    );
    check!(
        a.discard(fresh.token()).await.map_err(err)?,
        "the rejected token was not discarded"
    );
    check!(
        c.load().await.map_err(err)?.is_none(),
        "the rejected token is still stored"
    );

    Ok(())
}

/// The lock, by hand: a holder whose lease ran out can neither write nor
/// release under its successor; a value that is not ours is ignored.
async fn redis_lock_is_fenced() -> Outcome {
    use tower_token_refresh::store::{RedisStore, TokenStore};

    let redis = RedisServer::start(None).await?;
    let url = format!(
        "redis://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{}",
        redis.port
    );
    let store = || RedisStore::new(&url, "fleet:fenced").map_err(|e| e.to_string());
    lock_is_fenced(&store).await?;
    let c = store()?;
    let err = |e: tower_token_refresh::store::StoreError| e.to_string();

    // A value that is not a token record: ignored (with a warning).
    let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    redis::cmd("SET")
        .arg("fleet:fenced")
        .arg("not json")
        .query_async::<()>(&mut connection)
        .await
        .map_err(|e| e.to_string())?;
    check!(
        c.load().await.map_err(err)?.is_none(),
        "garbage taken for a token"
    );
    Ok(())
}

async fn redis_over_tls_with_a_private_ca() -> Outcome {
    let dir = TempDir::new("fleet-tls");
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .map_err(|e| e.to_string())?;
    let certificate = certified.cert.pem();
    let tls = TlsFiles {
        certificate: dir.join("redis.crt"),
        key: dir.join("redis.key"),
    };
    std::fs::write(&tls.certificate, &certificate).map_err(|e| e.to_string())?;
    std::fs::write(&tls.key, certified.signing_key.serialize_pem()).map_err(|e| e.to_string())?;
    let redis = RedisServer::start_with(None, Some(&tls), &[]).await?;
    let url = format!(
        "rediss://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{}",
        redis.port
    );
    shares_over_tls(
        || {
            RedisStore::builder(&url, "fleet:tls")
                .root_certificates(certificate.clone())
                .build()
        },
        RedisStore::builder(&url, "fleet:tls")
            .timeout(UNTRUSTING_TIMEOUT)
            .build(),
    )
    .await
}

/// A cluster whose nodes speak only TLS (to each other too), with a
/// private CA: as for one server.
async fn cluster_over_tls_with_a_private_ca() -> Outcome {
    let cluster = RedisCluster::start_tls(3, 0).await?;
    let certificate = cluster.certificate.clone().ok_or("no certificate")?;
    let urls = cluster.urls();
    check!(urls[0].starts_with("rediss://"), "{urls:?}");
    shares_over_tls(
        || {
            RedisStore::cluster_builder(&urls, "fleet:tls")
                .root_certificates(certificate.clone())
                .build()
        },
        RedisStore::cluster_builder(&urls, "fleet:tls")
            .timeout(UNTRUSTING_TIMEOUT)
            .build(),
    )
    .await
}

/// The timeout of a store that does not trust the servers' certificate:
/// it must fail at once, not after trying again for this long.
const UNTRUSTING_TIMEOUT: Duration = Duration::from_secs(20);

/// Two caches on stores that trust the servers' certificate share one
/// token; a store that does not trust it fails at once (a certificate is
/// not worth trying again), and its cache fetches on its own.
async fn shares_over_tls(
    trusting: impl Fn() -> Result<RedisStore, StoreError>,
    untrusting: Result<RedisStore, StoreError>,
) -> Outcome {
    use tower_token_refresh::TokenCache;
    use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};

    let servers = Servers::start().await;
    let cache = |store: RedisStore| {
        let source = ClientCredentials::builder(
            format!("http://{}/token", servers.addr),
            "worker-0",
            ClientAuth::post("fleet-secret"),
        )
        .build()
        .unwrap();
        TokenCache::builder(source).store(store).build()
    };
    let first = cache(trusting().map_err(|e| e.to_string())?);
    let second = cache(trusting().map_err(|e| e.to_string())?);
    first.token().await.map_err(|e| e.to_string())?;
    second.token().await.map_err(|e| e.to_string())?;
    check!(
        servers.fetches() == 1,
        "{} fetches over TLS",
        servers.fetches()
    );
    check!(second.stats().store_hits == 1, "{:?}", second.stats());
    check!(first.stats().store_failures == 0, "{:?}", first.stats());

    let untrusting = cache(untrusting.map_err(|e| e.to_string())?);
    let started = Instant::now();
    untrusting.token().await.map_err(|e| e.to_string())?;
    check!(
        started.elapsed() < UNTRUSTING_TIMEOUT / 2,
        "a store that does not trust the certificate took {:?} to give up",
        started.elapsed()
    );
    check!(
        untrusting.stats().store_failures >= 1 && servers.fetches() == 2,
        "{:?}",
        untrusting.stats()
    );
    Ok(())
}

async fn file_fleet_fetches_once_per_token_lifetime() -> Outcome {
    let dir = TempDir::new("fleet-file");
    let spec = format!("file={}", dir.join("token.json").display());
    fetches_once_per_token_lifetime(WORKERS, &spec).await
}

async fn file_store_restart_reuses_the_token() -> Outcome {
    let dir = TempDir::new("fleet-restart");
    let servers = Servers::start().await;
    let spec = format!("file={}", dir.join("token.json").display());
    for run in 1..=3 {
        let mut one = Fleet::spawn(1, &spec, &servers).await?;
        let results = one.wave(REQUESTS).await?;
        check!(results[0].all_ok(), "run {run}: {results:?}");
        one.exit().await?;
        check!(
            servers.fetches() == 1,
            "run {run}: {} fetches; later runs must reuse the saved token",
            servers.fetches()
        );
    }
    Ok(())
}

async fn file_lock_holder_killed_mid_fetch() -> Outcome {
    let dir = TempDir::new("fleet-kill");
    let servers = Servers::start().await;
    let spec = format!("file={}", dir.join("token.json").display());
    let mut fleet = Fleet::spawn(WORKERS, &spec, &servers).await?;
    servers.hang_next_fetch();
    fleet.start_wave(REQUESTS).await?;
    let holder = servers.wait_for_fetch_in_flight().await?;
    let killed_at = Instant::now();
    fleet.kill(holder).await?;
    servers.release_hung_fetch();
    let results = fleet.finish_wave().await?;
    check!(results.iter().all(|r| r.all_ok()), "{results:?}");
    check!(
        servers.fetches() == 2,
        "{} fetches, expected 2",
        servers.fetches()
    );
    // The operating system frees a dead holder's file lock at once.
    let recovered = killed_at.elapsed();
    check!(
        recovered < Duration::from_secs(1),
        "took {recovered:?}: the dead holder's file lock was not freed at once"
    );
    fleet.exit().await
}

/// One process at a time (a CLI run, a cron job): the first saves its
/// token; the identity provider then forgets every token it issued; the
/// second run loads the dead token, and the server's rejection must remove
/// it from the store before that run exits (retry is off: that request
/// fails); the third run must fetch a new token, never send the dead one.
async fn rejected_token_is_not_loaded_by_the_next_run(spec: &str) -> Outcome {
    let servers = Servers::start().await;
    let one_run = |expect_ok: bool| {
        let servers = servers.clone();
        async move {
            let mut run = Fleet::spawn(1, spec, &servers).await?;
            let results = run.wave(1).await?;
            run.exit().await?;
            let ok = results[0].ok == 1;
            check!(ok == expect_ok, "run answered {results:?}");
            Ok::<(), String>(())
        }
    };
    one_run(true).await?;
    check!(servers.fetches() == 1, "{} fetches", servers.fetches());
    servers.forget_tokens();
    one_run(false).await?;
    check!(
        servers.fetches() == 1,
        "the second run was to load the stored token"
    );
    one_run(true).await?;
    check!(
        servers.fetches() == 2,
        "{} fetches: the third run was to fetch",
        servers.fetches()
    );
    let rejected = servers.rejected("access-1");
    check!(
        rejected == 1,
        "the dead token was sent {rejected} times, by more than the run that found it dead"
    );
    Ok(())
}

async fn file_rejected_token_is_not_loaded_by_the_next_run() -> Outcome {
    let dir = TempDir::new("fleet-rejected");
    let spec = format!("file={}", dir.join("token.json").display());
    rejected_token_is_not_loaded_by_the_next_run(&spec).await
}

async fn redis_rejected_token_is_not_loaded_by_the_next_process() -> Outcome {
    let redis = RedisServer::start(None).await?;
    let spec = format!(
        "redis=redis://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{}|fleet:rejected",
        redis.port
    );
    rejected_token_is_not_loaded_by_the_next_run(&spec).await
}

// ------------------------------------------------------------ Redis Cluster

/// The store's keys (token, lock, failure, refresh token) share one slot:
/// its scripts run on a cluster, where keys without the tag would be
/// refused (`CROSSSLOT`); and the lock, fencing and compare-and-delete work
/// there as on one server.
async fn cluster_keys_share_one_slot() -> Outcome {
    use tower_token_refresh::store::{RedisStore, StoreError};

    let cluster = RedisCluster::start(3, 0).await?;
    let store =
        || RedisStore::cluster(cluster.urls(), "fleet:slot").map_err(|e: StoreError| e.to_string());
    let key = store()?.key().to_owned();
    check!(key == "{fleet:slot}", "key {key}");
    let mut slots = Vec::new();
    for suffix in ["", ":lock", ":failure", ":refresh_token"] {
        slots.push(
            cluster
                .cli(&["cluster", "keyslot", &format!("{key}{suffix}")])
                .await?,
        );
    }
    check!(
        slots.iter().all(|slot| *slot == slots[0]),
        "the store's keys are in slots {slots:?}"
    );
    // The same keys without the tag are in several slots, and a script
    // touching them is refused: the test above would catch a lost tag.
    let untagged = cluster
        .cli(&[
            "eval",
            "return redis.call('GET', KEYS[1])",
            "2",
            "fleet:slot:lock",
            "fleet:slot",
        ])
        .await;
    check!(
        untagged.as_ref().is_err_and(|e| e.contains("CROSSSLOT")),
        "a script over untagged keys was not refused: {untagged:?}"
    );

    lock_is_fenced(&store).await
}

/// `wait_for_replicas`: the lock and the save wait (`WAIT`, on the primary
/// of the store's slot) until a replica has them; with that replica frozen,
/// each waits the time given, and the write stands.
async fn cluster_store_waits_for_replicas() -> Outcome {
    use tower_token_refresh::Token;
    use tower_token_refresh::store::{RedisStore, StoreError, StoredToken, TokenStore};

    let cluster = RedisCluster::start(3, 1).await?;
    let err = |e: StoreError| e.to_string();
    let token = StoredToken::new(
        Token::bearer("replicated").expires_in(Duration::from_secs(60)),
        Some("fleet".into()),
    );
    let store = |wait: Duration| {
        RedisStore::cluster_builder(cluster.urls(), "fleet:wait")
            .timeout(wait + Duration::from_secs(2))
            .wait_for_replicas(1, wait)
            .build()
            .map_err(err)
    };

    // A live replica answers WAIT long before it times out (the first
    // round also connects; the second is timed).
    let live_wait = Duration::from_secs(3);
    let live = store(live_wait)?;
    for round in 0..2 {
        let started = Instant::now();
        let lease = live
            .try_lock(LEASE)
            .await
            .map_err(err)?
            .ok_or("lock free")?;
        check!(live.save(&token, &lease).await.map_err(err)?, "not saved");
        live.unlock(lease).await.map_err(err)?;
        let took = started.elapsed();
        check!(
            round == 0 || took < live_wait,
            "took {took:?} with a live replica: WAIT was not answered by it"
        );
    }

    let wait = Duration::from_millis(600);
    let store = store(wait)?;
    // Connected before the replica freezes: only WAIT is timed below.
    store.load().await.map_err(err)?;
    let replica = cluster
        .replica_of(cluster.primary_of(store.key()).await?)
        .await?;
    cluster.freeze(replica, true)?;
    let started = Instant::now();
    let locked = store.try_lock(LEASE).await.map_err(err);
    let took_lock = started.elapsed();
    let saved = match &locked {
        Ok(Some(lease)) => store.save(&token, lease).await.map_err(err),
        _ => Ok(false),
    };
    let took = started.elapsed();
    cluster.freeze(replica, false)?;
    let lease = locked?.ok_or("lock free")?;
    check!(saved?, "not saved while the replica was frozen");
    store.unlock(lease).await.map_err(err)?;
    check!(
        took_lock >= wait && took >= wait * 2,
        "lock took {took_lock:?}, lock and save {took:?}: the replica's silence was not waited for"
    );
    check!(
        took < wait * 2 + Duration::from_secs(1),
        "lock and save took {took:?}: WAIT went on longer than {wait:?} each"
    );
    Ok(())
}

/// 8 processes on a 3-primary cluster for 3 token lifetimes: one fetch per
/// lifetime, no failed request.
async fn cluster_fleet_fetches_once_per_token_lifetime() -> Outcome {
    let cluster = RedisCluster::start(3, 0).await?;
    fetches_once_per_token_lifetime(8, &cluster.store_spec("fleet:token")).await
}

/// The primary that holds the lock (and the token) is killed while the
/// holder fetches; its replica is promoted. No request fails; the failover
/// costs at most one extra fetch; the newest token is the one stored; the
/// next lifetime is one fetch again.
async fn cluster_primary_killed_mid_refresh() -> Outcome {
    cluster_primary_lost_mid_refresh(false).await
}

/// As `cluster_primary_killed_mid_refresh`, but the primary hangs
/// (`SIGSTOP`) instead of dying: its connections stay open and answer
/// nothing. The store gives up on each attempt soon enough to follow the
/// promotion within its timeout: no request fails, the failover costs at
/// most one extra fetch, the newest token is the one stored. Resumed, the
/// old primary rejoins as a replica (connections still open to it meet
/// `MOVED`), and the next lifetimes are one fetch each.
async fn cluster_primary_frozen_mid_refresh() -> Outcome {
    cluster_primary_lost_mid_refresh(true).await
}

/// The primary holding the lock (and the token) is lost while the holder
/// fetches, killed or (`frozen`) hung; a replica is promoted. No request
/// fails; the failover costs at most one extra fetch; the newest token is
/// the one stored; a hung primary, resumed, rejoins as a replica; the next
/// lifetimes are one fetch each.
async fn primary_lost_mid_refresh(mut deployment: impl Failover, frozen: bool) -> Outcome {
    let servers = Servers::with_lifetime(FAILOVER_LIFETIME).await;
    let mut fleet = Fleet::spawn(8, &deployment.store_spec(), &servers).await?;
    let results = fleet.wave(REQUESTS).await?;
    check!(results.iter().all(|r| r.all_ok()), "{results:?}");
    check!(servers.fetches() == 1, "{} fetches", servers.fetches());
    servers.wait_until_tokens_expire().await;

    servers.hold_next_fetch();
    fleet.start_wave(REQUESTS).await?;
    servers.wait_for_fetch_in_flight().await?;
    let primary = deployment.primary().await?;
    let lost = if frozen { "hung" } else { "died" };
    deployment.lose(primary, frozen)?;
    servers.release_hung_fetch();
    let results = fleet.finish_wave().await;
    let promoted = deployment.wait_for_promotion(primary).await;
    let resumed = if frozen {
        deployment.resume(primary)
    } else {
        Ok(())
    };
    let (results, promoted) = (results?, promoted?);
    resumed?;
    check!(
        results.iter().all(|r| r.all_ok()),
        "requests failed while the primary {lost}: {results:?}"
    );
    let during = servers.fetches() - 1;
    check!(
        (1..=2).contains(&during),
        "{during} fetches across the failover: at most one extra was allowed"
    );
    println!("    {during} fetch(es) across the failover");
    // No older token over a newer one: what is stored is the newest.
    let stored = deployment.stored_token(promoted).await?;
    if let Some(newest) = servers.last_issued() {
        check!(
            stored.is_empty() || stored.contains(&format!("\"{newest}\"")),
            "stored {stored:?}, but {newest} is newer"
        );
    }
    if frozen {
        let resumed_at = Instant::now();
        deployment.wait_for_rejoin(primary, promoted).await?;
        println!(
            "    the old primary rejoined as a replica {:.1?} after it resumed",
            resumed_at.elapsed()
        );
        check!(
            deployment.primary().await? == promoted,
            "the resumed primary is the primary again"
        );
    }
    settles_to_one_fetch_per_lifetime(&mut fleet, &servers, 2, "after the failover").await?;
    fleet.exit().await
}

/// What [`primary_lost_mid_refresh`] does to a cluster or to a primary
/// and its sentinels. Nodes are numbered as the deployment numbers them.
trait Failover {
    fn store_spec(&self) -> String;
    /// The primary holding the store's keys.
    async fn primary(&self) -> Result<usize, String>;
    /// Kills the node, or (`frozen`) stops it (`SIGSTOP`).
    fn lose(&mut self, node: usize, frozen: bool) -> Outcome;
    /// Resumes a stopped node.
    fn resume(&mut self, node: usize) -> Outcome;
    /// The replica promoted in `old`'s place.
    async fn wait_for_promotion(&self, old: usize) -> Result<usize, String>;
    /// The stored token as `node` has it (`redis-cli get`).
    async fn stored_token(&self, node: usize) -> Result<String, String>;
    /// The deployment whole again once `old` has resumed (through
    /// Sentinel: `old` a replica of `promoted`; a cluster: every slot
    /// served).
    async fn wait_for_rejoin(&self, old: usize, promoted: usize) -> Outcome;
}

async fn cluster_primary_lost_mid_refresh(frozen: bool) -> Outcome {
    primary_lost_mid_refresh(RedisCluster::start(3, 1).await?, frozen).await
}

/// The store's key on a cluster: its hash tag added.
const CLUSTER_TOKEN_KEY: &str = "{fleet:token}";

impl Failover for RedisCluster {
    fn store_spec(&self) -> String {
        RedisCluster::store_spec(self, "fleet:token")
    }
    async fn primary(&self) -> Result<usize, String> {
        self.primary_of(CLUSTER_TOKEN_KEY).await
    }
    fn lose(&mut self, node: usize, frozen: bool) -> Outcome {
        if frozen {
            return self.freeze(node, true);
        }
        self.kill(node);
        Ok(())
    }
    fn resume(&mut self, node: usize) -> Outcome {
        self.freeze(node, false)
    }
    async fn wait_for_promotion(&self, old: usize) -> Result<usize, String> {
        RedisCluster::wait_for_promotion(self, CLUSTER_TOKEN_KEY, old).await
    }
    async fn stored_token(&self, node: usize) -> Result<String, String> {
        self.cli_at(node, &["get", CLUSTER_TOKEN_KEY]).await
    }
    /// The cluster up again: the old primary a replica, its slot the
    /// promoted node's.
    async fn wait_for_rejoin(&self, _old: usize, _promoted: usize) -> Outcome {
        self.wait_until_up().await
    }
}

/// The failover loses the lock: the replica promoted never had it (the
/// test deletes it there, and only there, while the holder fetches), so
/// another process takes the promoted node's lock and fetches too. The
/// holder's save, made last with the newest token, is refused by fencing:
/// the token stored is the one fetched under the promoted node's lock.
/// Exactly two fetches (the path was taken); no request fails; the next
/// lifetimes are one fetch each.
///
/// A cluster replica redirects keyed writes to its primary (`MOVED`) even
/// when writable: the lock is deleted on it with `FLUSHDB`, which names no
/// key (the slot's other keys are the token's, expired, and the failure's,
/// unset).
async fn cluster_lock_lost_in_failover() -> Outcome {
    let key = "{fleet:token}";
    let mut cluster = RedisCluster::start(3, 1).await?;
    let spec = cluster.store_spec("fleet:token");
    let servers = Servers::with_lifetime(FAILOVER_LIFETIME).await;
    let mut fleet = Fleet::spawn(8, &spec, &servers).await?;
    let results = fleet.wave(REQUESTS).await?;
    check!(results.iter().all(|r| r.all_ok()), "{results:?}");
    check!(servers.fetches() == 1, "{} fetches", servers.fetches());
    servers.wait_until_tokens_expire().await;

    servers.hold_next_fetch();
    fleet.start_wave(REQUESTS).await?;
    let holder = servers.wait_for_fetch_in_flight().await?;
    let primary = cluster.primary_of(key).await?;
    let replica = cluster.replica_of(primary).await?;
    let lock = format!("{key}:lock");
    let held = cluster.cli_at(primary, &["get", &lock]).await?;
    check!(!held.is_empty(), "the holder's lock is not on the primary");
    // The lock replicated first: deleted after, it does not come back.
    let offset = |info: String, field: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(field)?.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("no {field} in {info}"))
    };
    let written = offset(
        cluster.cli_at(primary, &["info", "replication"]).await?,
        "master_repl_offset:",
    )?;
    let deadline = Instant::now() + STEP_LIMIT;
    while offset(
        cluster.cli_at(replica, &["info", "replication"]).await?,
        "slave_repl_offset:",
    )? < written
    {
        check!(
            Instant::now() < deadline,
            "the replica never caught up with the lock"
        );
        sleep(Duration::from_millis(5)).await;
    }
    cluster
        .cli_at(replica, &["config", "set", "replica-read-only", "no"])
        .await?;
    cluster.cli_at(replica, &["flushdb"]).await?;
    cluster.kill(primary);
    let promoted = cluster.wait_for_promotion(key, primary).await?;
    check!(
        promoted == replica,
        "node {promoted} was promoted, not the replica without the lock ({replica})"
    );
    // Another process takes the promoted node's lock, fetches (not held)
    // and saves; only then does the holder get its token, the newest.
    holder_is_fenced_out(&mut fleet, &servers, holder, async || {
        cluster.cli_at(promoted, &["get", key]).await
    })
    .await?;
    fleet.exit().await
}

/// After a failover that lost the lock `holder` holds while its fetch is
/// held: another process takes the promoted primary's lock, fetches (not
/// held) and saves; only then is the holder's fetch answered, with the
/// newest token, and its save must be refused by fencing. No request
/// fails; exactly two fetches across the failover (the lost lock's path
/// was taken); the token stored (`stored` reads it on the promoted
/// primary) is the one fetched under its lock; then one fetch per
/// lifetime.
async fn holder_is_fenced_out(
    fleet: &mut Fleet,
    servers: &Servers,
    holder: usize,
    stored: impl AsyncFn() -> Result<String, String>,
) -> Outcome {
    let (second, fetcher) = servers.wait_for_issued(2).await?;
    check!(
        fetcher != holder,
        "the second token went to the holder (worker {holder})"
    );
    let deadline = Instant::now() + STEP_LIMIT;
    while !stored().await?.contains(&format!("\"{second}\"")) {
        check!(
            Instant::now() < deadline,
            "worker {fetcher} did not save {second} under the promoted primary's lock"
        );
        sleep(Duration::from_millis(5)).await;
    }
    servers.release_hung_fetch();
    let results = fleet.finish_wave().await?;
    check!(
        results.iter().all(|r| r.all_ok()),
        "requests failed across the failover: {results:?}"
    );
    check!(
        servers.fetches() == 3,
        "{} fetches across the failover, expected 2 (the holder's and one under the \
         promoted primary's lock)",
        servers.fetches() - 1
    );
    let newest = servers.last_issued().ok_or("no token issued")?;
    check!(
        servers.issued_to(&newest)? == holder,
        "the newest token, {newest}, went to worker {}, not the holder (worker {holder})",
        servers.issued_to(&newest)?
    );
    let stored = stored().await?;
    check!(
        stored.contains(&format!("\"{second}\"")),
        "stored {stored:?}: the holder's save ({newest}) was not refused, or {second} was lost"
    );
    settles_to_one_fetch_per_lifetime(fleet, servers, 2, "after the failover").await
}

/// The store's slot moves to another primary (`redis-cli --cluster
/// reshard`) while the fleet refreshes: no request fails, and the fleet
/// shares one token per lifetime again once it has moved.
///
/// 5 000 more keys in the store's slot, moved one by one, keep the slot
/// on the move for a while (under a second, less than the store's timeout:
/// the store waits for it); the fleet's tokens expire just as it
/// starts moving, so the refresh meets `ASK` (a key already moved) and
/// `TRYAGAIN` (a script whose keys are split between the two nodes, which
/// Redis refuses until the slot has moved). Tokens live 6 s here, longer
/// than a save may wait for the slot (the store's timeout).
async fn cluster_slot_migrated_mid_run() -> Outcome {
    let cluster = RedisCluster::start(3, 0).await?;
    let key = "{fleet:token}";
    let servers = Servers::with_lifetime(Duration::from_secs(6)).await;
    let mut fleet = Fleet::spawn(WORKERS, &cluster.store_spec("fleet:token"), &servers).await?;
    fleet.wave(REQUESTS).await?;
    let from = cluster.primary_of(key).await?;
    let to = (from + 1) % 3;
    let (from_id, to_id) = (cluster.node_id(from).await?, cluster.node_id(to).await?);
    let slot: usize = cluster
        .cli(&["cluster", "keyslot", key])
        .await?
        .parse()
        .map_err(|_| "slot")?;
    cluster
        .cli_at(
            from,
            &[
                "eval",
                "for i = 1, tonumber(ARGV[1]) do redis.call('SET', KEYS[1] .. ':pad:' .. i, 'x') end",
                "1",
                key,
                "5000",
            ],
        )
        .await?;
    // `reshard` moves a primary's slots from its lowest: those before
    // ours in its range, then ours.
    let first = [0, 5461, 10923]
        .into_iter()
        .filter(|f| *f <= slot)
        .max()
        .unwrap_or(0);
    let count = slot - first + 1;
    servers.wait_until_tokens_expire().await;
    let mut reshard = cluster.cli_command(&[
        "--cluster",
        "reshard",
        &format!("127.0.0.1:{}", cluster.nodes[from].port),
        "--cluster-from",
        &from_id,
        "--cluster-to",
        &to_id,
        "--cluster-slots",
        &count.to_string(),
        "--cluster-pipeline",
        "1",
        "--cluster-yes",
    ]);
    let mut reshard = reshard
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run redis-cli: {e}"))?;
    let migrating = format!("[{slot}->-{to_id}]");
    let deadline = Instant::now() + STEP_LIMIT;
    while !cluster
        .cli_at(from, &["cluster", "nodes"])
        .await?
        .contains(&migrating)
    {
        check!(
            Instant::now() < deadline,
            "slot {slot} never started moving"
        );
        sleep(Duration::from_millis(5)).await;
    }
    let results = fleet.wave(REQUESTS).await?;
    let still_moving = cluster
        .cli_at(from, &["cluster", "nodes"])
        .await?
        .contains(&migrating);
    check!(
        results.iter().all(|r| r.all_ok()),
        "requests failed while the slot moved: {results:?}"
    );
    let status = timeout(STEP_LIMIT, reshard.wait())
        .await
        .map_err(|_| "reshard did not finish")?
        .map_err(|e| e.to_string())?;
    check!(status.success(), "redis-cli --cluster reshard: {status}");
    check!(
        cluster.primary_of(key).await? == to,
        "the slot did not move"
    );
    println!(
        "    {} fetch(es) for the wave sent while the slot moved (still moving after it: {still_moving})",
        servers.fetches() - 1
    );
    // The store waited for the slot instead of failing (each process
    // would then have fetched on its own).
    check!(
        servers.fetches() == 2,
        "{} fetches for the wave sent while the slot moved, expected 1",
        servers.fetches() - 1
    );
    settles_to_one_fetch_per_lifetime(&mut fleet, &servers, 1, "after the migration").await?;
    fleet.exit().await
}

/// Every node of the cluster down: each process fetches on its own and
/// requests keep flowing; the cluster back: one fetch per lifetime again.
async fn cluster_down_and_back() -> Outcome {
    let mut cluster = RedisCluster::start(3, 0).await?;
    let servers = Servers::start().await;
    let mut fleet = Fleet::spawn(WORKERS, &cluster.store_spec("fleet:token"), &servers).await?;
    fleet.wave(REQUESTS).await?;
    check!(servers.fetches() == 1, "{} fetches", servers.fetches());

    for node in 0..cluster.nodes.len() {
        cluster.kill(node);
    }
    each_process_fetches_alone(&mut fleet, &servers, "while the cluster was down").await?;

    cluster.restart_all().await?;
    settles_to_one_fetch_per_lifetime(&mut fleet, &servers, 2, "with the cluster back").await?;
    fleet.exit().await
}

/// A wave at the last token's expiry, with the store unreachable: every
/// request succeeds, each of the `WORKERS` processes fetching on its own.
async fn each_process_fetches_alone(fleet: &mut Fleet, servers: &Servers, when: &str) -> Outcome {
    servers.wait_until_tokens_expire().await;
    let before = servers.fetches();
    let results = fleet.wave(REQUESTS).await?;
    check!(
        results.iter().all(|r| r.all_ok()),
        "requests failed {when}: {results:?}"
    );
    check!(
        servers.fetches() == before + WORKERS,
        "{} fetches: expected one per process {when}",
        servers.fetches() - before
    );
    Ok(())
}

/// `lifetimes` waves, each at the last token's expiry: one fetch each, no
/// failed request.
async fn settles_to_one_fetch_per_lifetime(
    fleet: &mut Fleet,
    servers: &Servers,
    lifetimes: usize,
    when: &str,
) -> Outcome {
    for lifetime in 1..=lifetimes {
        servers.wait_until_tokens_expire().await;
        let before = servers.fetches();
        let results = fleet.wave(REQUESTS).await?;
        check!(
            results.iter().all(|r| r.all_ok()),
            "lifetime {lifetime} {when}: {results:?}"
        );
        check!(
            servers.fetches() == before + 1,
            "lifetime {lifetime} {when}: {} fetches, expected 1 (tokens went to {:?})",
            servers.fetches() - before,
            servers.last_recipients(servers.fetches() - before)
        );
    }
    Ok(())
}

// ------------------------------------------------------------ Redis Sentinel

/// 8 processes on a primary found through three sentinels, for 3 token
/// lifetimes: one fetch per lifetime, no failed request.
async fn sentinel_fleet_fetches_once_per_token_lifetime() -> Outcome {
    let sentinel = RedisSentinel::start(1).await?;
    fetches_once_per_token_lifetime(8, &sentinel.store_spec("fleet:token")).await
}

/// The primary is killed while the lock holder fetches; the sentinels
/// promote a replica and the stores ask them for it. No request fails; the
/// failover costs at most one extra fetch; the newest token is the one
/// stored; the next lifetimes are one fetch each.
async fn sentinel_primary_killed_mid_refresh() -> Outcome {
    sentinel_primary_lost_mid_refresh(false).await
}

/// As `sentinel_primary_killed_mid_refresh`, but the primary hangs
/// (`SIGSTOP`) with its connections open: the stores give up on each
/// attempt and ask the sentinels again until they name the promoted
/// replica. Then the old primary resumes, and the sentinels make it a
/// replica of the new one (closing its clients' connections); the next
/// lifetimes are one fetch each.
async fn sentinel_primary_frozen_mid_refresh() -> Outcome {
    sentinel_primary_lost_mid_refresh(true).await
}

async fn sentinel_primary_lost_mid_refresh(frozen: bool) -> Outcome {
    primary_lost_mid_refresh(RedisSentinel::start(2).await?, frozen).await
}

impl Failover for RedisSentinel {
    fn store_spec(&self) -> String {
        RedisSentinel::store_spec(self, "fleet:token")
    }
    async fn primary(&self) -> Result<usize, String> {
        RedisSentinel::primary(self).await
    }
    fn lose(&mut self, node: usize, frozen: bool) -> Outcome {
        if frozen {
            return self.freeze(Node::Data(node), true);
        }
        self.kill(Node::Data(node));
        Ok(())
    }
    fn resume(&mut self, node: usize) -> Outcome {
        self.freeze(Node::Data(node), false)
    }
    async fn wait_for_promotion(&self, old: usize) -> Result<usize, String> {
        RedisSentinel::wait_for_promotion(self, old).await
    }
    async fn stored_token(&self, node: usize) -> Result<String, String> {
        self.cli_at(Node::Data(node), &["get", "fleet:token"]).await
    }
    /// The sentinels make the old primary a replica of the promoted one.
    async fn wait_for_rejoin(&self, old: usize, promoted: usize) -> Outcome {
        self.wait_for_replica(old, promoted).await
    }
}

/// As `cluster_lock_lost_in_failover`, through Sentinel: the replica is
/// made writable and the lock deleted on it (once it has it), the primary
/// killed; the sentinels promote the replica, which never had the lock.
/// Another process takes it and fetches; the holder's later save, with the
/// newest token, is refused by fencing: exactly two fetches, the token
/// stored is the other process's, no request fails; then one fetch per
/// lifetime.
async fn sentinel_lock_lost_in_failover() -> Outcome {
    let mut sentinel = RedisSentinel::start(1).await?;
    let servers = Servers::with_lifetime(FAILOVER_LIFETIME).await;
    let mut fleet = Fleet::spawn(8, &sentinel.store_spec("fleet:token"), &servers).await?;
    let results = fleet.wave(REQUESTS).await?;
    check!(results.iter().all(|r| r.all_ok()), "{results:?}");
    check!(servers.fetches() == 1, "{} fetches", servers.fetches());
    servers.wait_until_tokens_expire().await;

    servers.hold_next_fetch();
    fleet.start_wave(REQUESTS).await?;
    let holder = servers.wait_for_fetch_in_flight().await?;
    let primary = sentinel.primary().await?;
    let replica = sentinel.replica_of(primary).await?;
    let lock = "fleet:token:lock";
    let held = sentinel.cli_at(Node::Data(primary), &["get", lock]).await?;
    check!(!held.is_empty(), "the holder's lock is not on the primary");
    // The lock replicated first: deleted after, it does not come back.
    let deadline = Instant::now() + STEP_LIMIT;
    while sentinel.cli_at(Node::Data(replica), &["get", lock]).await? != held {
        check!(
            Instant::now() < deadline,
            "the replica never got the holder's lock"
        );
        sleep(Duration::from_millis(5)).await;
    }
    sentinel
        .cli_at(
            Node::Data(replica),
            &["config", "set", "replica-read-only", "no"],
        )
        .await?;
    let deleted = sentinel.cli_at(Node::Data(replica), &["del", lock]).await?;
    check!(
        deleted == "1",
        "the replica's lock was not deleted: {deleted}"
    );
    sentinel.kill(Node::Data(primary));
    let promoted = sentinel.wait_for_promotion(primary).await?;
    check!(
        promoted == replica,
        "node {promoted} was promoted, not the replica without the lock ({replica})"
    );
    holder_is_fenced_out(&mut fleet, &servers, holder, async || {
        sentinel
            .cli_at(Node::Data(promoted), &["get", "fleet:token"])
            .await
    })
    .await?;
    fleet.exit().await
}

/// A process that makes no call during a failover keeps its connection to
/// the old primary. The primary hangs while the others refresh, a replica
/// is promoted, and the old primary resumes: for seconds, until the
/// sentinels make it a replica, it says it is the primary and takes
/// writes. The idle process asks the sentinels before taking the lock, so
/// its lock and token go to the new primary: one fetch per lifetime right
/// after the resume (each lifetime two otherwise, the idle process's lock
/// and token on the old primary).
async fn sentinel_idle_process_after_failover() -> Outcome {
    const IDLE: usize = WORKERS - 1;
    let sentinel = RedisSentinel::start(2).await?;
    let servers = Servers::start().await;
    let mut fleet = Fleet::spawn(WORKERS, &sentinel.store_spec("fleet:token"), &servers).await?;
    fleet.wave(REQUESTS).await?;
    check!(servers.fetches() == 1, "{} fetches", servers.fetches());

    servers.wait_until_tokens_expire().await;
    let primary = sentinel.primary().await?;
    sentinel.freeze(Node::Data(primary), true)?;
    let results = fleet.wave_without(IDLE, REQUESTS).await;
    let promoted = sentinel.wait_for_promotion(primary).await;
    // Resumed only once the tokens have expired, so that the next wave
    // comes at once: the sentinels make the old primary a replica some 8 s
    // after it says it is the primary again, and a slow machine could
    // otherwise use that up before the idle process takes its turn.
    servers.wait_until_tokens_expire().await;
    sentinel.freeze(Node::Data(primary), false)?;
    let (results, _promoted) = (results?, promoted?);
    check!(
        results.iter().all(|r| r.all_ok()),
        "requests failed while the primary hung: {results:?}"
    );
    let during = servers.fetches() - 1;
    check!(
        (1..=2).contains(&during),
        "{during} fetches across the failover: at most one extra was allowed"
    );
    settles_to_one_fetch_per_lifetime(&mut fleet, &servers, 1, "with the old primary back").await?;
    // What makes the scenario: through that lifetime the old primary was
    // still a primary, taking writes.
    let role = sentinel.cli_at(Node::Data(primary), &["role"]).await?;
    check!(
        role.starts_with("master"),
        "the old primary was a replica again before the idle process refreshed: {role}"
    );
    settles_to_one_fetch_per_lifetime(&mut fleet, &servers, 2, "after the failover").await?;
    fleet.exit().await
}

/// Through Sentinel, a configuration that cannot work fails at once with
/// an error that says why (not after the store's timeout, and without a
/// password): a primary name the sentinels do not monitor; a sentinel user
/// not allowed a question the store asks. A sentinel user allowed just
/// what the documentation lists works.
async fn sentinel_misconfigured_fails_at_once() -> Outcome {
    use support::redis_sentinel::{
        CLIENT_PASSWORD, CLIENT_USER, NARROW_USER, PRIMARY_NAME, SENTINEL_PASSWORD,
    };
    use tower_token_refresh::Secret;
    use tower_token_refresh::store::TokenStore;

    let sentinel = RedisSentinel::start(1).await?;
    let store = |urls: Vec<String>, primary_name: &str| {
        RedisStore::sentinel_builder(urls, primary_name, "fleet:token")
            .primary_auth(REDIS_USER, Secret::new(REDIS_PASSWORD))
            .timeout(UNTRUSTING_TIMEOUT)
            .build()
            .map_err(|error| error.to_string())
    };
    let documented = store(
        sentinel.sentinel_urls_as(CLIENT_USER, CLIENT_PASSWORD),
        PRIMARY_NAME,
    )?;
    if let Err(error) = documented.load().await {
        return Err(format!("the documented ACL: {}", error_chain(&error)));
    }
    let cases = [
        (
            "an unknown primary name",
            store(sentinel.sentinel_urls(), "no-such-primary")?,
            "no sentinel monitors a primary of that name",
        ),
        (
            "a sentinel user not allowed SENTINEL GET-MASTER-ADDR-BY-NAME",
            store(
                sentinel.sentinel_urls_as(NARROW_USER, CLIENT_PASSWORD),
                PRIMARY_NAME,
            )?,
            "no permissions to run the 'sentinel|get-master-addr-by-name' command",
        ),
    ];
    for (what, store, expected) in cases {
        let started = Instant::now();
        let Err(error) = store.load().await else {
            return Err(format!("{what}: the store worked"));
        };
        let took = started.elapsed();
        let text = error_chain(&error);
        println!("    {what}: {took:.1?}: {text}");
        check!(
            took < UNTRUSTING_TIMEOUT / 4,
            "{what}: failed after {took:?}, not at once"
        );
        check!(text.contains(expected), "{what}: {text}");
        check!(
            ![SENTINEL_PASSWORD, CLIENT_PASSWORD, REDIS_PASSWORD]
                .iter()
                .any(|password| text.contains(password)),
            "{what}: a password in {text}"
        );
    }
    Ok(())
}

/// Every sentinel hung (`SIGSTOP`: their ports take connections that get
/// no answer) when the store's connection to the primary breaks: the store
/// connects to the last primary it knew, within its timeout, instead of
/// taking the silence for a wrong primary name.
async fn sentinel_hung_the_store_reconnects_to_the_last_primary() -> Outcome {
    use support::redis_sentinel::PRIMARY_NAME;
    use tower_token_refresh::Secret;
    use tower_token_refresh::store::TokenStore;

    let sentinel = RedisSentinel::start(1).await?;
    let primary = sentinel.primary().await?;
    let store = RedisStore::sentinel_builder(sentinel.sentinel_urls(), PRIMARY_NAME, "fleet:token")
        .primary_auth(REDIS_USER, Secret::new(REDIS_PASSWORD))
        .timeout(SENTINEL_STORE_TIMEOUT)
        .build()
        .map_err(|error| error.to_string())?;
    if let Err(error) = store.load().await {
        return Err(format!("before: {}", error_chain(&error)));
    }
    sentinel.freeze_sentinels(true)?;
    let killed = sentinel
        .cli_at(Node::Data(primary), &["client", "kill", "type", "normal"])
        .await;
    let started = Instant::now();
    let loaded = store.load().await;
    let took = started.elapsed();
    sentinel.freeze_sentinels(false)?;
    let killed = killed?;
    check!(
        killed.parse::<u32>().is_ok_and(|killed| killed >= 1),
        "CLIENT KILL closed no connection: {killed}"
    );
    if let Err(error) = loaded {
        return Err(format!(
            "with every sentinel hung, after {took:?}: {}",
            error_chain(&error)
        ));
    }
    println!("    reconnected to the last primary in {took:.1?}");
    Ok(())
}

/// An error and its sources, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Every sentinel down, the primary up: the stores keep their connections
/// to it, and the fleet still shares one token. The primary down too: each
/// process fetches on its own, and requests keep flowing. Everything back
/// (on the same ports; the sentinels from their own configuration): one
/// fetch per lifetime again.
async fn sentinel_down_and_back() -> Outcome {
    let mut sentinel = RedisSentinel::start(1).await?;
    let servers = Servers::start().await;
    let mut fleet = Fleet::spawn(WORKERS, &sentinel.store_spec("fleet:token"), &servers).await?;
    fleet.wave(REQUESTS).await?;
    check!(servers.fetches() == 1, "{} fetches", servers.fetches());

    let primary = sentinel.primary().await?;
    for index in 0..sentinel.sentinels.len() {
        sentinel.kill(Node::Sentinel(index));
    }
    settles_to_one_fetch_per_lifetime(&mut fleet, &servers, 1, "with every sentinel down").await?;

    sentinel.kill(Node::Data(primary));
    each_process_fetches_alone(
        &mut fleet,
        &servers,
        "while the sentinels and the primary were down",
    )
    .await?;

    sentinel.restart_all().await?;
    check!(
        sentinel.primary().await? == primary,
        "the sentinels came back naming another primary"
    );
    settles_to_one_fetch_per_lifetime(
        &mut fleet,
        &servers,
        2,
        "with the sentinels and the primary back",
    )
    .await?;
    fleet.exit().await
}

// ------------------------------------------------------------ token endpoint + API

/// The token endpoint (client credentials, counts fetches, can hang one)
/// and an API that accepts only unexpired tokens it issued.
#[derive(Clone)]
struct Servers {
    addr: SocketAddr,
    state: Arc<Mutex<EndpointState>>,
    release: Arc<Notify>,
}

#[derive(Default)]
struct EndpointState {
    /// Tokens live this long (`LIFETIME` unless a scenario says otherwise).
    lifetime: Duration,
    fetches: usize,
    /// Tokens issued (fetches that succeeded), which number them.
    issued_count: usize,
    issued: HashMap<String, Instant>,
    /// The worker (client id, `worker-N`) each token was issued to.
    issued_to: HashMap<String, String>,
    /// How often each token was refused by the API.
    rejected: HashMap<String, usize>,
    last_expiry: Option<Instant>,
    hang_next: bool,
    /// The next fetch waits for `release_hung_fetch`, then succeeds.
    hold_next: bool,
    failing: bool,
    in_flight: Option<String>,
}

impl Servers {
    async fn start() -> Self {
        Self::with_lifetime(LIFETIME).await
    }

    async fn with_lifetime(lifetime: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let servers = Self {
            addr: listener.local_addr().unwrap(),
            state: Arc::new(Mutex::new(EndpointState {
                lifetime,
                ..EndpointState::default()
            })),
            release: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/token", post(token))
            .route("/api", get(api))
            .with_state(servers.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        servers
    }

    fn fetches(&self) -> usize {
        self.state.lock().unwrap().fetches
    }

    /// Token requests get `503 Service Unavailable` while set.
    fn set_failing(&self, failing: bool) {
        self.state.lock().unwrap().failing = failing;
    }

    /// The identity provider restarts: every token it issued is refused
    /// from now on.
    fn forget_tokens(&self) {
        self.state.lock().unwrap().issued.clear();
    }

    /// How often the API refused `token`.
    fn rejected(&self, token: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.rejected.get(token).copied().unwrap_or(0)
    }

    fn hang_next_fetch(&self) {
        self.state.lock().unwrap().hang_next = true;
    }

    fn hold_next_fetch(&self) {
        self.state.lock().unwrap().hold_next = true;
    }

    /// The token last issued, if any.
    fn last_issued(&self) -> Option<String> {
        let state = self.state.lock().unwrap();
        (state.issued_count > 0).then(|| format!("access-{}", state.issued_count))
    }

    fn release_hung_fetch(&self) {
        self.release.notify_waiters();
    }

    /// The client id of the worker whose fetch is in flight.
    async fn wait_for_fetch_in_flight(&self) -> Result<usize, String> {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            if let Some(client) = self.state.lock().unwrap().in_flight.clone() {
                return worker_id(&client);
            }
            check!(Instant::now() < deadline, "no fetch started");
            sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until `count` tokens have been issued in all: the last one,
    /// and the worker it was issued to.
    async fn wait_for_issued(&self, count: usize) -> Result<(String, usize), String> {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            {
                let state = self.state.lock().unwrap();
                if state.issued_count >= count {
                    let token = format!("access-{count}");
                    let client = state.issued_to.get(&token).cloned().unwrap_or_default();
                    return Ok((token, worker_id(&client)?));
                }
            }
            check!(
                Instant::now() < deadline,
                "{} tokens issued, {count} awaited",
                self.state.lock().unwrap().issued_count
            );
            sleep(Duration::from_millis(2)).await;
        }
    }

    /// The worker `token` was issued to.
    /// Who got the last `n` tokens, oldest first.
    fn last_recipients(&self, n: usize) -> Vec<String> {
        let state = self.state.lock().unwrap();
        (state.issued_count.saturating_sub(n) + 1..=state.issued_count)
            .map(|i| {
                let token = format!("access-{i}");
                let to = state.issued_to.get(&token).cloned().unwrap_or_default();
                format!("{token} to {to}")
            })
            .collect()
    }

    fn issued_to(&self, token: &str) -> Result<usize, String> {
        let client = self.state.lock().unwrap().issued_to.get(token).cloned();
        worker_id(&client.ok_or_else(|| format!("{token} was not issued"))?)
    }

    async fn wait_until_tokens_expire(&self) {
        let expiry = self.state.lock().unwrap().last_expiry;
        if let Some(expiry) = expiry {
            tokio::time::sleep_until(expiry + Duration::from_millis(300)).await;
        }
    }
}

/// `N` of a client id `worker-N`.
fn worker_id(client: &str) -> Result<usize, String> {
    client
        .strip_prefix("worker-")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| format!("unexpected client id {client:?}"))
}

async fn token(State(servers): State<Servers>, body: String) -> (StatusCode, String) {
    // Every worker is the same OAuth client, as in a real fleet (their
    // stored tokens are interchangeable); each says which worker it is.
    let client = body
        .split('&')
        .find_map(|pair| pair.strip_prefix("fleet_worker="))
        .unwrap_or("unknown")
        .to_owned();
    let (hang, hold) = {
        let mut state = servers.state.lock().unwrap();
        state.fetches += 1;
        if state.failing {
            return (StatusCode::SERVICE_UNAVAILABLE, String::new());
        }
        state.in_flight = Some(client.clone());
        (
            std::mem::take(&mut state.hang_next),
            std::mem::take(&mut state.hold_next),
        )
    };
    if hang || hold {
        // Numbered when it answers: a token issued later is newer.
        servers.release.notified().await;
    }
    if hang {
        return (StatusCode::SERVICE_UNAVAILABLE, String::new());
    }
    let mut state = servers.state.lock().unwrap();
    state.in_flight = None;
    state.issued_count += 1;
    let access = format!("access-{}", state.issued_count);
    let expiry = Instant::now() + state.lifetime;
    state.issued.insert(access.clone(), expiry);
    state.issued_to.insert(access.clone(), client);
    state.last_expiry = Some(expiry);
    let body = format!(
        r#"{{"access_token":"{access}","token_type":"Bearer","expires_in":{}}}"#,
        state.lifetime.as_secs()
    );
    (StatusCode::OK, body)
}

async fn api(State(servers): State<Servers>, headers: HeaderMap) -> StatusCode {
    let token = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let mut state = servers.state.lock().unwrap();
    match token.and_then(|token| state.issued.get(token)) {
        Some(expiry) if *expiry > Instant::now() => StatusCode::OK,
        _ => {
            if let Some(token) = token {
                *state.rejected.entry(token.to_owned()).or_default() += 1;
            }
            StatusCode::UNAUTHORIZED
        }
    }
}

// ------------------------------------------------------------------- workers

#[derive(Debug)]
struct WaveResult {
    /// Which worker: read only by `Debug`, in failure messages.
    #[allow(dead_code)]
    worker: usize,
    ok: usize,
    failed: usize,
}

impl WaveResult {
    fn all_ok(&self) -> bool {
        self.failed == 0 && self.ok == REQUESTS
    }
}

struct Worker {
    id: usize,
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    alive: bool,
}

struct Fleet {
    workers: Vec<Worker>,
}

impl Fleet {
    async fn spawn(n: usize, store: &str, servers: &Servers) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|error| error.to_string())?;
        let mut workers = Vec::new();
        for id in 0..n {
            let mut child = Command::new(&exe)
                .args([
                    "--fleet-worker",
                    &id.to_string(),
                    store,
                    &format!("http://{}/token", servers.addr),
                    &format!("http://{}/api", servers.addr),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .map_err(|error| format!("cannot start a worker: {error}"))?;
            let stdin = child.stdin.take().unwrap();
            let lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let mut worker = Worker {
                id,
                child,
                stdin,
                lines,
                alive: true,
            };
            let ready = worker.read_line().await?;
            check!(ready == "ready", "worker {id} said {ready:?}");
            workers.push(worker);
        }
        Ok(Self { workers })
    }

    async fn wave(&mut self, requests: usize) -> Result<Vec<WaveResult>, String> {
        self.start_wave(requests).await?;
        self.finish_wave().await
    }

    /// A wave that worker `idle` sits out.
    async fn wave_without(
        &mut self,
        idle: usize,
        requests: usize,
    ) -> Result<Vec<WaveResult>, String> {
        let position = self
            .workers
            .iter()
            .position(|w| w.id == idle && w.alive)
            .ok_or_else(|| format!("no live worker {idle}"))?;
        self.workers[position].alive = false;
        let results = self.wave(requests).await;
        self.workers[position].alive = true;
        results
    }

    /// Tells every live worker to send `requests` concurrent requests.
    async fn start_wave(&mut self, requests: usize) -> Outcome {
        for worker in self.workers.iter_mut().filter(|w| w.alive) {
            worker.send(&format!("wave {requests}")).await?;
        }
        Ok(())
    }

    async fn finish_wave(&mut self) -> Result<Vec<WaveResult>, String> {
        let mut results = Vec::new();
        for worker in self.workers.iter_mut().filter(|w| w.alive) {
            let line = worker.read_line().await?;
            let mut fields = line.split_whitespace().skip(1).map(str::parse::<usize>);
            match (fields.next(), fields.next()) {
                (Some(Ok(ok)), Some(Ok(failed))) => results.push(WaveResult {
                    worker: worker.id,
                    ok,
                    failed,
                }),
                _ => return Err(format!("worker {} said {line:?}", worker.id)),
            }
        }
        Ok(results)
    }

    async fn kill(&mut self, id: usize) -> Outcome {
        let worker = self
            .workers
            .iter_mut()
            .find(|w| w.id == id)
            .ok_or_else(|| format!("no worker {id}"))?;
        worker
            .child
            .kill()
            .await
            .map_err(|error| error.to_string())?;
        worker.alive = false;
        Ok(())
    }

    async fn exit(mut self) -> Outcome {
        for worker in self.workers.iter_mut().filter(|w| w.alive) {
            worker.send("exit").await?;
            let status = timeout(STEP_LIMIT, worker.child.wait())
                .await
                .map_err(|_| format!("worker {} did not exit", worker.id))?
                .map_err(|error| error.to_string())?;
            check!(
                status.success(),
                "worker {} exited with {status}",
                worker.id
            );
        }
        Ok(())
    }
}

impl Worker {
    async fn send(&mut self, line: &str) -> Outcome {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|error| format!("worker {}: {error}", self.id))
    }

    async fn read_line(&mut self) -> Result<String, String> {
        match timeout(STEP_LIMIT, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => Err(format!("worker {} exited", self.id)),
            Ok(Err(error)) => Err(format!("worker {}: {error}", self.id)),
            Err(_) => Err(format!(
                "worker {} did not answer within {STEP_LIMIT:?}",
                self.id
            )),
        }
    }
}

/// The worker process: reads `wave N` / `exit` on stdin.
mod worker {
    use std::process::ExitCode;
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tower::{Layer, ServiceExt};
    use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};
    use tower_token_refresh::store::{FileStore, TokenStore};
    use tower_token_refresh::{BoxError, TokenCache, TokenRefreshLayer};

    use super::{FAILOVER_FETCH_TIMEOUT, FAILOVER_LEASE, FETCH_TIMEOUT, LEASE};

    pub(super) fn main(args: &[String]) -> ExitCode {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        match runtime.block_on(serve(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("fleet worker failed: {error}");
                ExitCode::FAILURE
            }
        }
    }

    fn store(spec: &str) -> Result<Arc<dyn TokenStore>, BoxError> {
        if let Some(path) = spec.strip_prefix("file=") {
            return Ok(Arc::new(FileStore::new(path)?));
        }
        #[cfg(feature = "redis")]
        if let Some(rest) = spec.strip_prefix("cluster=") {
            let (urls, key) = rest.rsplit_once('|').ok_or("cluster=URL,URL,…|KEY")?;
            let store =
                tower_token_refresh::store::RedisStore::cluster_builder(urls.split(','), key)
                    .timeout(super::CLUSTER_STORE_TIMEOUT)
                    .build()?;
            return Ok(Arc::new(store));
        }
        #[cfg(feature = "redis")]
        if let Some(rest) = spec.strip_prefix("sentinel=") {
            let usage = "sentinel=URL,URL,…|PRIMARY_NAME|KEY";
            let (urls, rest) = rest.split_once('|').ok_or(usage)?;
            let (primary_name, key) = rest.split_once('|').ok_or(usage)?;
            let store = tower_token_refresh::store::RedisStore::sentinel_builder(
                urls.split(','),
                primary_name,
                key,
            )
            .primary_auth(
                super::REDIS_USER,
                tower_token_refresh::Secret::new(super::REDIS_PASSWORD),
            )
            .timeout(super::SENTINEL_STORE_TIMEOUT)
            .build()?;
            return Ok(Arc::new(store));
        }
        #[cfg(feature = "redis")]
        if let Some(rest) = spec.strip_prefix("redis=") {
            let (url, key) = rest.rsplit_once('|').ok_or("redis=URL|KEY")?;
            return Ok(Arc::new(tower_token_refresh::store::RedisStore::new(
                url, key,
            )?));
        }
        Err(format!("unknown store {spec}").into())
    }

    async fn serve(args: &[String]) -> Result<(), BoxError> {
        let [id, spec, token_url, api_url] = args else {
            return Err("usage: --fleet-worker ID STORE TOKEN_URL API_URL".into());
        };
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(
                // redis-rs logs every failed reconnection as an error; the
                // cluster-down scenario makes many on purpose.
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "error,redis=off".into()),
            )
            .init();
        let source = ClientCredentials::builder(
            token_url.as_str(),
            "fleet",
            ClientAuth::post("fleet-secret"),
        )
        .param("fleet_worker", format!("worker-{id}"))
        .build()?;
        // Stores that ride failovers through wait longer for each call.
        let (fetch_timeout, lease) =
            if spec.starts_with("cluster=") || spec.starts_with("sentinel=") {
                (FAILOVER_FETCH_TIMEOUT, FAILOVER_LEASE)
            } else {
                (FETCH_TIMEOUT, LEASE)
            };
        let cache = TokenCache::builder(source)
            .store(store(spec)?)
            .fetch_timeout(fetch_timeout)
            .lease(lease)
            .build();
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let service = TokenRefreshLayer::new(cache).layer(client);
        let api: http::Uri = api_url.parse()?;

        println!("ready");
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await? {
            let Some(n) = line.strip_prefix("wave ") else {
                break;
            };
            let n: usize = n.parse()?;
            let requests: Vec<_> = (0..n)
                .map(|_| {
                    let request = http::Request::get(api.clone()).body(Empty::new()).unwrap();
                    tokio::spawn(service.clone().oneshot(request))
                })
                .collect();
            let (mut ok, mut failed) = (0, 0);
            for request in requests {
                match request.await? {
                    Ok(response) if response.status().is_success() => ok += 1,
                    Ok(response) => {
                        eprintln!("worker {id}: API answered {}", response.status());
                        failed += 1;
                    }
                    Err(error) => {
                        eprintln!("worker {id}: request failed: {error}");
                        failed += 1;
                    }
                }
            }
            println!("done {ok} {failed}");
        }
        Ok(())
    }
}

// --------------------------------------------------------------- redis-server

/// A `redis-server` on a free 127.0.0.1 port with an ACL user (the default
/// user is off), stopped when dropped.
struct RedisServer {
    child: Option<std::process::Child>,
    port: u16,
    /// Its working directory: a replica writes the primary's data there
    /// (`dump.rdb`), which a server started later would load.
    _dir: TempDir,
}

/// A certificate and its key, PEM files, for `redis-server --tls-port`.
struct TlsFiles {
    certificate: PathBuf,
    key: PathBuf,
}

impl RedisServer {
    async fn start(port: Option<u16>) -> Result<Self, String> {
        Self::start_with(port, None, &[]).await
    }

    /// A server that can be made a replica (`REPLICAOF`) of another one.
    async fn start_replicable() -> Result<Self, String> {
        Self::start_with(
            None,
            None,
            &["--masteruser", REDIS_USER, "--masterauth", REDIS_PASSWORD],
        )
        .await
    }

    async fn start_with(
        port: Option<u16>,
        tls: Option<&TlsFiles>,
        args: &[&str],
    ) -> Result<Self, String> {
        let binary = which("redis-server").ok_or(
            "redis-server not found: install the Debian package `redis-server` \
             (apt-get install -y redis-server)",
        )?;
        let port = match port {
            Some(port) => port,
            None => std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .map_err(|error| error.to_string())?
                .port(),
        };
        let mut command = std::process::Command::new(binary);
        match tls {
            None => command.args(["--port", &port.to_string()]),
            Some(tls) => command
                .args(["--port", "0", "--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(&tls.certificate)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .args(["--tls-auth-clients", "no"]),
        };
        command.args(["--bind", "127.0.0.1"]).args(args);
        let dir = TempDir::new("fleet-redis");
        command.current_dir(dir.path());
        let child = with_fleet_user(&mut command)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot start redis-server: {error}"))?;
        let server = Self {
            child: Some(child),
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            check!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            sleep(Duration::from_millis(20)).await;
        }
        Ok(server)
    }

    fn store_spec(&self) -> String {
        format!(
            "redis=redis://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{}|fleet:token",
            self.port
        )
    }

    /// Kills the server; returns its port.
    fn stop(&mut self) -> u16 {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.port
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

//! [`RedisStore`]: one token shared by a fleet of processes through Redis.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, FromRedisValue, RedisResult, ServerErrorKind};
use tokio::time::Instant;

use super::record::Record;
use super::redis_sentinel::Sentinels;
use super::{
    Lease, RefreshTokenStore, StoreError, StoreErrorKind, StoreFuture, StoredToken, TokenStore,
};
use crate::{Secret, Token};

/// Default [timeout](RedisStoreBuilder::timeout) of one Redis call.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Against a cluster or through Sentinel, the pause before a call that met
/// a node down, a failover or a slot being moved is made again (until its
/// timeout).
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Against a cluster or through Sentinel, one attempt of a call may take
/// this share of the store's timeout (and connecting, at most half of it): a
/// primary that hangs (its process stopped, its host cut off) is given up
/// on and asked again (the topology or the sentinels anew) while a replica
/// takes over. Every command of the store has the same effect when run
/// twice, so a call made again after its reply was lost does no harm.
const ATTEMPTS_PER_TIMEOUT: u32 = 4;

/// Writes the token (and clears a failure) only while the caller's fence
/// still holds the lock.
const SAVE_IF_HOLDING: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
if ARGV[3] == '0' then
    redis.call('SET', KEYS[2], ARGV[2])
else
    redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
redis.call('DEL', KEYS[3])
return 1
";

/// Asks the fleet to back off, only while the caller's fence holds the lock.
const FAIL_IF_HOLDING: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 1
";

/// Deletes the token only if it is still the rejected one (compared in the
/// stored record, so a newer token saved meanwhile stays); a record that is
/// not JSON is left alone.
const DISCARD_IF_SAME: &str = r"
local stored = redis.call('GET', KEYS[1])
if not stored then
    return 0
end
local ok, record = pcall(cjson.decode, stored)
if not ok or type(record) ~= 'table' or record['access_token'] ~= ARGV[1] then
    return 0
end
return redis.call('DEL', KEYS[1])
";

/// Takes the lock for the caller's fence unless someone holds it; a lock
/// the caller already holds counts as taken (its lease renewed: a write,
/// for `WAIT` to wait for on this connection). A plain `SET NX` sent again
/// after its reply was lost (the store retries calls on a cluster) would
/// find the caller's own lock and report it as another's.
const TAKE_LOCK: &str = r"
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if held then
    return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Deletes the lock only if the caller's fence still holds it.
const UNLOCK_IF_HOLDING: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
";

/// Shares one token between the processes of a fleet through Redis, so the
/// whole fleet calls its identity provider once per token lifetime.
///
/// Keys, from the key you choose (`K`):
/// - `K`: the token, its expiry and its source's fingerprint (JSON),
///   expiring with the token, and deleted (by a script that compares it
///   first) when a server rejects that token;
/// - `K:failure`: set (expiring) when the holder's fetch failed, so the
///   fleet backs off together;
/// - `K:lock`: the refresh lock, `SET NX PX <lease>` with a random fencing
///   value; released, and written under, only by a Lua script that checks
///   the value, so a holder whose lease ran out can neither release its
///   successor's lock nor overwrite its token;
/// - `K:refresh_token`: a [`RefreshTokenGrant`](crate::oauth2::RefreshTokenGrant)'s
///   rotated refresh token, if one shares the store.
///
/// Processes that find the lock taken poll `K` (every 5 ms, backing off to
/// 50 ms) until the holder saves its token. A holder that dies frees the
/// lock when its lease ends. The connection is made on first use and
/// re-made after failures; while Redis is unreachable each cache fetches on
/// its own (with a warning), so requests keep flowing.
///
/// URLs: `redis://[user][:password]@host:port/db` (ACL user and password),
/// `rediss://…` for TLS (rustls with the operating system's root
/// certificates; if the process has not chosen a rustls crypto provider,
/// ring is installed as the default). Neither the URL nor the password
/// appears in `Debug` output or errors.
///
/// # Deployments
///
/// - **One server** (or the primary of a replicated one, through one
///   address): [`RedisStore::new`], keys as above.
/// - **Redis Cluster**: [`RedisStore::cluster`] with seed nodes (any few
///   nodes of the cluster; the client learns the rest, follows `MOVED` and
///   `ASK` redirections and topology changes). Every key of the store shares
///   one hash tag, so each script touches one slot: the keys are
///   `{K}`, `{K}:lock`, `{K}:failure` and `{K}:refresh_token`, or, when `K`
///   already has a hash tag (`{billing}:token`), `K` and its suffixes as
///   above. While a call meets a node or the cluster down, a replica, or a
///   slot being migrated, it is made again every 50 ms or so until its
///   [timeout](RedisStoreBuilder::timeout), one attempt taking at most a
///   quarter of it (and connecting to the seeds at most half): a failover
///   shorter than that is ridden through, whether the primary crashed or
///   hangs. A store that has never connected does not try again: a wrong
///   address, password or certificate fails at once. ACL users
///   must be allowed the store's keys, `~T*` where `T` is the tagged key
///   [`key`](RedisStore::key) returns, and the commands `cluster|slots`
///   (the client learns the topology) and, with
///   [`wait_for_replicas`](RedisStoreBuilder::wait_for_replicas), `wait`.
/// - **Sentinel**: [`RedisStore::sentinel`] with the sentinels' URLs and
///   the name they monitor the primary under, the primary's user and
///   password given by [`primary_auth`](RedisStoreBuilder::primary_auth);
///   keys as for one server. To connect, the store asks every sentinel at
///   once (`SENTINEL MASTER` for its configuration epoch and `SENTINEL
///   GET-MASTER-ADDR-BY-NAME`; of the answers within a quarter of the
///   timeout, the one with the highest epoch wins, so a sentinel that has
///   not heard of a failover yet is outvoted) and checks that the server
///   named says it is the primary (`ROLE`). It asks again whenever a call
///   meets a broken connection, a replica (`READONLY`: the old primary back
///   after a failover), no primary, or no answer: as on a cluster, the call
///   is made again until its timeout, one attempt taking at most a quarter
///   of it and connecting at most half. Before taking the lock (within that
///   call's timeout) it asks them whether they still name the primary it
///   is connected to, at most once per quarter of the timeout: an old
///   primary cut off during a failover and back before the sentinels have
///   made it a replica still says it is the primary, for seconds, and takes
///   writes, and a process idle through the failover is still connected to
///   it. While no sentinel answers, the store connects to the last primary
///   it knew (if it still says it is the primary). ACL users: on the
///   sentinels, `sentinel|master` and `sentinel|get-master-addr-by-name`
///   (a user short of either, or a primary name no sentinel monitors,
///   fails at once when every sentinel answers, with an error that says
///   so; sentinels silent within a quarter of the timeout count as
///   unreachable); on the primary, the store's
///   keys, `role`, and `wait` with
///   [`wait_for_replicas`](RedisStoreBuilder::wait_for_replicas) (`select`
///   with a database). With `rediss://` sentinels the
///   primary is reached over TLS too, checked against the address the
///   sentinels announce (an IP address unless they announce hostnames:
///   its certificate must name it), with the same
///   [root certificates](RedisStoreBuilder::root_certificates). A database
///   in the sentinels' URLs (`/2`) is the primary's.
/// - A **primary behind one address** that follows it (a managed
///   offering's primary endpoint): [`RedisStore::new`]. A call answered
///   `READONLY` (the address still led to the old primary) drops the
///   connection and is made once more on a new one, within the store's
///   timeout.
///
/// # Failover
///
/// Redis replicates asynchronously: a primary that dies can take its last
/// writes with it, and the replica promoted in its place may not know that
/// a process holds the refresh lock (or that it just saved a token). A
/// second process can then take the lock and fetch too: at most one extra
/// fetch per failover. What cannot happen is an older token written over a
/// newer one: a save is made only by a script that finds the saver's own
/// random fencing value in the lock, on the primary of the moment, so a
/// holder whose lock the failover lost (or whose lease ran out) saves
/// nothing, and a rejected token is deleted only if it is still the stored
/// one. When the stored token does go back to an older one (a save the
/// failover lost), processes do not take it for newer than the one they
/// hold: it costs at most that one extra fetch. No request fails because
/// of a failover: every store call is bounded by the cache's fetch
/// timeout, and a process that cannot reach the store fetches on its own.
/// That is also the cost of the failover's gap itself: a process that
/// needs a new token while no primary answers fetches its own (as when
/// Redis is down). A cluster or Sentinel store waits for the promotion
/// within its [timeout](RedisStoreBuilder::timeout), so a failover shorter
/// than that costs at most the one extra fetch; a store on one address does
/// not wait. While a whole cluster (or every sentinel and the primary) is
/// down, each store call waits that timeout before the process fetches on
/// its own. Failovers take as long as the deployment is configured to wait
/// before calling a primary failed (`cluster-node-timeout`, 15 s by
/// default; Sentinel's `down-after-milliseconds`, 30 s by default) plus the
/// promotion: a store timeout shorter than that still keeps requests
/// flowing, each process fetching its own token during the gap.
/// For writes that survive the loss of a primary,
/// [`wait_for_replicas`](RedisStoreBuilder::wait_for_replicas) makes the
/// lock and the save wait (`WAIT`) until that many replicas have them.
///
/// Anyone who can read `K` can use the token: restrict it with Redis ACLs
/// (`~K*` key patterns) and use TLS across untrusted networks.
///
/// Give each cache a key of its own (see
/// [one store location per cache](super#one-store-location-per-cache)),
/// and turn on [`retry_rejected`](crate::TokenRefreshLayer::retry_rejected)
/// in processes that make few requests: a process that starts after a
/// revocation but before the rejection has been seen loads the dead token,
/// and only a rejection tells (see
/// [a store and retries go together](super#a-store-and-retries-go-together)).
///
/// # Example
///
/// ```no_run
/// use tower_token_refresh::TokenCache;
/// use tower_token_refresh::store::RedisStore;
/// # use tower_token_refresh::{BoxError, Token};
/// # let source = || async { Ok::<_, BoxError>(Token::bearer("abc")) };
///
/// let store = RedisStore::new("redis://token-cache:secret@redis.internal:6379", "billing-api:token")?;
/// let cache = TokenCache::builder(source).store(store).build();
///
/// // A cluster: a few seed nodes; TLS and ACL users as for one server.
/// let store = RedisStore::cluster(
///     ["rediss://token-cache:secret@redis-0.internal:6379", "rediss://token-cache:secret@redis-1.internal:6379"],
///     "billing-api:token",
/// )?;
/// assert_eq!(store.key(), "{billing-api:token}");
/// # Ok::<(), tower_token_refresh::store::StoreError>(())
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Clients,
    timeout: Duration,
    /// `WAIT` for this many replicas after taking the lock and saving.
    replicas: Option<(u32, Duration)>,
    token_key: String,
    lock_key: String,
    failure_key: String,
    refresh_token_key: String,
    /// Made on first use; dropped after a call timed out (the connection
    /// may be half-open), so the next call connects again.
    connection: Mutex<Slot>,
    /// Held while connecting: callers that all lost the connection make
    /// one new one.
    connecting: tokio::sync::Mutex<()>,
    /// Set once a connection has been made. Before that, failing to
    /// connect is a configuration's fault (an unknown host, a wrong
    /// password, an untrusted certificate) and is not tried again within
    /// a call; after, it may be a failover's.
    connected_once: AtomicBool,
}

/// The connection, and which one it is: a caller whose call failed drops
/// it only if it is still the one the call was made on.
#[derive(Default)]
struct Slot {
    generation: u64,
    connection: Option<Connection>,
}

/// One server, a cluster, or the primary the sentinels name (one per
/// store, behind its `Arc`: the size difference does not matter).
#[allow(clippy::large_enum_variant)]
enum Clients {
    Standalone(Client),
    Cluster(ClusterClient),
    /// Asked for the primary's address at each connection.
    Sentinel(Sentinels),
}

#[derive(Clone)]
enum Connection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(MultiplexedConnection),
}

impl Connection {
    async fn run<T: FromRedisValue>(&mut self, command: &Cmd) -> RedisResult<T> {
        match self {
            Connection::Standalone(connection) => command.query_async(connection).await,
            Connection::Cluster(connection) => command.query_async(connection).await,
            Connection::Sentinel(connection) => command.query_async(connection).await,
        }
    }
}

/// Where a store's Redis is.
enum Servers {
    Standalone(Secret),
    Cluster(Vec<Secret>),
    Sentinel {
        sentinels: Vec<Secret>,
        primary_name: String,
    },
}

/// Settings of a [`RedisStore`]; made by [`RedisStore::builder`],
/// [`RedisStore::cluster_builder`] or [`RedisStore::sentinel_builder`].
pub struct RedisStoreBuilder {
    servers: Servers,
    key: String,
    timeout: Duration,
    replicas: Option<(u32, Duration)>,
    root_certificates: Option<Vec<u8>>,
    client_certificate: Option<(Vec<u8>, Secret)>,
    primary_auth: Option<(String, Secret)>,
}

impl RedisStore {
    /// A store at the Redis server of `url`, keeping the token under `key`.
    /// Nothing connects until the store is first used.
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::InvalidConfig`] when the URL cannot be parsed.
    pub fn new(url: &str, key: impl Into<String>) -> Result<Self, StoreError> {
        Self::builder(url, key).build()
    }

    /// Starts building a store with custom settings.
    pub fn builder(url: &str, key: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Servers::Standalone(Secret::new(url)), key.into())
    }

    /// A store on the Redis Cluster that `seed_urls` belong to (any few of
    /// its nodes, `redis://` or `rediss://`, all with the same user,
    /// password and scheme), keeping the token under `key` with a hash tag
    /// (see [deployments](RedisStore#deployments)). Nothing connects until
    /// the store is first used.
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::InvalidConfig`] when there is no seed, a URL cannot
    /// be parsed, the seeds differ in user, password or TLS, or `key`
    /// cannot be given a hash tag (it is empty or starts with `}`).
    pub fn cluster<I>(seed_urls: I, key: impl Into<String>) -> Result<Self, StoreError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self::cluster_builder(seed_urls, key).build()
    }

    /// Starts building a [cluster](Self::cluster) store with custom
    /// settings.
    pub fn cluster_builder<I>(seed_urls: I, key: impl Into<String>) -> RedisStoreBuilder
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let seeds = seed_urls
            .into_iter()
            .map(|url| Secret::new(url.as_ref()))
            .collect();
        RedisStoreBuilder::new(Servers::Cluster(seeds), key.into())
    }

    /// A store on the primary that the Redis Sentinels at `sentinel_urls`
    /// monitor as `primary_name` (the name in their `sentinel monitor`
    /// line), keeping the token under `key` (as for one server). The
    /// sentinels are asked for the primary when the store connects, and
    /// again after a failover (see [deployments](RedisStore#deployments)).
    /// The URLs are the sentinels' (`redis://` or `rediss://`, with the
    /// sentinels' own user and password if they have one, all alike); the
    /// primary's user and password are given with
    /// [`primary_auth`](RedisStoreBuilder::primary_auth), and the primary
    /// is reached over TLS when the sentinels are. Nothing connects until
    /// the store is first used.
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::InvalidConfig`] when there is no sentinel, a URL
    /// cannot be parsed, or the URLs differ in user, password or TLS.
    pub fn sentinel<I>(
        sentinel_urls: I,
        primary_name: &str,
        key: impl Into<String>,
    ) -> Result<Self, StoreError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self::sentinel_builder(sentinel_urls, primary_name, key).build()
    }

    /// Starts building a [Sentinel](Self::sentinel) store with custom
    /// settings, such as the primary's
    /// [user and password](RedisStoreBuilder::primary_auth).
    pub fn sentinel_builder<I>(
        sentinel_urls: I,
        primary_name: &str,
        key: impl Into<String>,
    ) -> RedisStoreBuilder
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let sentinels = sentinel_urls
            .into_iter()
            .map(|url| Secret::new(url.as_ref()))
            .collect();
        RedisStoreBuilder::new(
            Servers::Sentinel {
                sentinels,
                primary_name: primary_name.to_owned(),
            },
            key.into(),
        )
    }

    /// The key the token is kept under (for a cluster, with its hash tag).
    pub fn key(&self) -> &str {
        &self.inner.token_key
    }

    /// The connection made before, or a new one (with its generation).
    async fn connect(&self) -> RedisResult<(u64, Connection)> {
        if let Some(cached) = self.cached_connection() {
            return Ok(cached);
        }
        let _connecting = self.inner.connecting.lock().await;
        // Another caller may have connected while this one waited.
        if let Some(cached) = self.cached_connection() {
            return Ok(cached);
        }
        let timeout = self.inner.timeout;
        let connection = match &self.inner.client {
            Clients::Standalone(client) => {
                // Half the timeout each: a call whose connection breaks
                // is made once more within it.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout / 2))
                    .set_response_timeout(Some(timeout / 2))
                    // Fail fast while Redis is down: the cache fetches on its
                    // own meanwhile, and a later call reconnects.
                    .set_number_of_retries(1)
                    .set_max_delay(timeout);
                ConnectionManager::new_with_config(client.clone(), config)
                    .await
                    .map(Connection::Standalone)
            }
            Clients::Cluster(client) => {
                tokio::time::timeout(timeout / 2, client.get_async_connection())
                    .await
                    .unwrap_or_else(|_elapsed| Err(timed_out()))
                    .map(Connection::Cluster)
            }
            Clients::Sentinel(sentinels) => tokio::time::timeout(
                timeout / 2,
                sentinels.connect_to_primary(timeout / 4, timeout),
            )
            .await
            .unwrap_or_else(|_elapsed| Err(timed_out()))
            .map(Connection::Sentinel),
        }?;
        self.inner.connected_once.store(true, Ordering::Relaxed);
        let mut slot = self.connection_slot();
        slot.generation += 1;
        slot.connection = Some(connection.clone());
        Ok((slot.generation, connection))
    }

    fn connection_slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.inner
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn cached_connection(&self) -> Option<(u64, Connection)> {
        let slot = self.connection_slot();
        Some((slot.generation, slot.connection.clone()?))
    }

    /// Drops the connection of `generation`, if it is still the current one.
    fn forget_connection(&self, generation: u64) {
        let mut slot = self.connection_slot();
        if slot.generation == generation {
            slot.connection = None;
        }
    }

    /// Runs `command` (see [`Self::query_on`]).
    async fn query<T: FromRedisValue>(
        &self,
        command: &Cmd,
        what: &'static str,
    ) -> Result<T, StoreError> {
        self.query_on(command, what)
            .await
            .map(|(value, _connection)| value)
    }

    /// Runs `command`; returns its answer and the connection that gave it
    /// (for `WAIT`, which must follow a write on its connection).
    ///
    /// On one server, within the store's timeout: after an outage the
    /// connection answers its first call with the error of its last
    /// reconnection attempt and reconnects, so such a call is made once
    /// more; so is a call answered `READONLY` (the address now leads to a
    /// replica, as after a planned failover behind one DNS name), on a new
    /// connection. A call that timed out or met a replica drops the
    /// connection for the next call to make anew.
    ///
    /// Against a cluster or through Sentinel, a call that meets a node
    /// down, no primary, a slot on the move, a replica, or no answer within
    /// a [share](ATTEMPTS_PER_TIMEOUT) of the timeout is made again after
    /// [`RETRY_PAUSE`] (jittered) until the store's timeout (the cluster
    /// client follows `MOVED` and `ASK` itself), so that a failover shorter
    /// than the timeout is ridden through. A connection that timed out
    /// (or, through Sentinel, failed) is dropped first: the next attempt
    /// asks the seed nodes or the sentinels anew. Failing to connect is
    /// tried again only by a store that has connected before.
    async fn query_on<T: FromRedisValue>(
        &self,
        command: &Cmd,
        what: &'static str,
    ) -> Result<(T, Connection), StoreError> {
        self.query_until(command, what, Instant::now() + self.inner.timeout)
            .await
    }

    /// [`Self::query_on`], by `deadline` (for a call that did something
    /// else first within the store's timeout).
    async fn query_until<T: FromRedisValue>(
        &self,
        command: &Cmd,
        what: &'static str,
        deadline: Instant,
    ) -> Result<(T, Connection), StoreError> {
        let timeout = self.inner.timeout;
        // The connection the call is on: dropped if the store's timeout
        // cuts the call (the connection may be half-open).
        let mut on = 0;
        if matches!(self.inner.client, Clients::Standalone(_)) {
            let result = tokio::time::timeout_at(deadline, self.query_one_server(command, &mut on))
                .await
                .unwrap_or_else(|_elapsed| {
                    self.forget_connection(on);
                    Err(timed_out())
                });
            return result.map_err(unavailable(what));
        }
        let attempt_limit = timeout / ATTEMPTS_PER_TIMEOUT;
        let mut last_error: Option<(redis::RedisError, &'static str)> = None;
        loop {
            on = 0;
            let attempt = async {
                let (generation, mut connection) =
                    self.connect().await.map_err(Failed::Connecting)?;
                on = generation;
                let result = tokio::time::timeout(attempt_limit, connection.run(command))
                    .await
                    .unwrap_or_else(|_elapsed| Err(timed_out()));
                match result {
                    Ok(value) => Ok((value, connection)),
                    Err(error) => Err(Failed::Calling(error)),
                }
            };
            let result = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(result) => result,
                Err(_elapsed) => {
                    self.forget_connection(on);
                    let (error, what) = last_error.unwrap_or((timed_out(), what));
                    return Err(unavailable(what)(error));
                }
            };
            let (error, what) = match result {
                Ok(answer) => return Ok(answer),
                Err(Failed::Connecting(error)) => {
                    let what = "could not connect to Redis";
                    // Before any connection, failing to connect is the
                    // configuration's fault; through Sentinel, once the
                    // sentinels have named a primary, failing to reach it
                    // is a failover's.
                    let proven = self.inner.connected_once.load(Ordering::Relaxed)
                        || matches!(&self.inner.client, Clients::Sentinel(sentinels) if sentinels.have_answered());
                    let retry = is_transient(&error)
                        && error.kind() != redis::ErrorKind::AuthenticationFailed
                        && proven;
                    if !retry {
                        return Err(unavailable(what)(error));
                    }
                    (error, what)
                }
                Err(Failed::Calling(error)) => {
                    if !is_transient(&error) {
                        return Err(unavailable(what)(error));
                    }
                    let sentinel = matches!(self.inner.client, Clients::Sentinel(_));
                    if error.is_timeout() || sentinel {
                        self.forget_connection(on);
                    }
                    (error, what)
                }
            };
            let pause = RETRY_PAUSE / 2 + crate::jitter::up_to(RETRY_PAUSE);
            if Instant::now() + pause >= deadline {
                return Err(unavailable(what)(error));
            }
            last_error = Some((error, what));
            tokio::time::sleep(pause).await;
        }
    }

    /// [`Self::query_on`] on one server; `on` tells which connection the
    /// call is on. A call that timed out is not made again (the connection
    /// may be half-open): its connection is dropped.
    async fn query_one_server<T: FromRedisValue>(
        &self,
        command: &Cmd,
        on: &mut u64,
    ) -> RedisResult<(T, Connection)> {
        let (generation, mut connection) = self.connect().await?;
        *on = generation;
        let mut result = connection.run(command).await;
        if let Err(error) = &result
            && is_disconnection(error)
            && !error.is_timeout()
        {
            result = connection.run(command).await;
        }
        if let Err(error) = &result
            && is_replica(error)
        {
            self.forget_connection(generation);
            let (generation, mut new) = self.connect().await?;
            *on = generation;
            result = new.run(command).await;
            connection = new;
        }
        match result {
            Ok(value) => Ok((value, connection)),
            Err(error) => {
                if error.is_timeout() || is_replica(&error) {
                    self.forget_connection(*on);
                }
                Err(error)
            }
        }
    }

    /// After a write under the lock: waits until the configured number of
    /// replicas have it, if one is configured. Fewer replicas in time is
    /// not an error (the write stands on the primary), only a warning.
    async fn wait_for_replicas(&self, connection: Connection) {
        let Some((replicas, wait)) = self.inner.replicas else {
            return;
        };
        let timeout_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        let command = redis::cmd("WAIT").arg(replicas).arg(timeout_ms).clone();
        // Made once, on the write's connection: on another, `WAIT` would
        // know no write and answer at once.
        let waited = async {
            match connection {
                Connection::Cluster(mut connection) => {
                    use redis::cluster_routing::{
                        Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
                    };
                    // To the primary of the store's slot (redis-rs would
                    // send a keyless `WAIT` to every primary).
                    let slot = key_slot(self.inner.lock_key.as_bytes());
                    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                        Route::new(slot, SlotAddr::Master),
                    ));
                    let value = connection.route_command(command, routing).await?;
                    i64::from_redis_value(value).map_err(Into::into)
                }
                mut connection => connection.run::<i64>(&command).await,
            }
        };
        let limit = (wait + self.inner.timeout / ATTEMPTS_PER_TIMEOUT).min(self.inner.timeout);
        let result = tokio::time::timeout(limit, waited)
            .await
            .unwrap_or_else(|_elapsed| Err(timed_out()));
        match result {
            Ok(acknowledged) if acknowledged >= i64::from(replicas) => {}
            Ok(acknowledged) => tracing::warn!(
                acknowledged,
                wanted = replicas,
                "fewer Redis replicas than asked acknowledged the write in time"
            ),
            Err(error) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "could not wait for Redis replicas"
            ),
        }
    }

    /// Through Sentinel, before taking the lock: drops the connection if
    /// the sentinels name another primary than the one it leads to. A
    /// process that made no call during a failover still holds a
    /// connection to the old primary, which, back before the sentinels
    /// make it a replica, answers as the primary: its lock and token would
    /// go there, and the fleet would fetch twice per lifetime until then.
    /// At most one question per quarter of the timeout: a process polling
    /// for the lock calls `try_lock` every 50 ms, and a failover cannot
    /// happen unseen in between unless the sentinels' `down-after-milliseconds`
    /// is shorter than that.
    async fn drop_a_failed_over_primary(&self) {
        let Clients::Sentinel(sentinels) = &self.inner.client else {
            return;
        };
        // Without a connection, connecting asks the sentinels anyway. The
        // generation is read before the sentinels' last primary is: a
        // connection made meanwhile, to the primary they name, is newer
        // and stays.
        let Some((generation, _)) = self.cached_connection() else {
            return;
        };
        let quarter = self.inner.timeout / ATTEMPTS_PER_TIMEOUT;
        if sentinels.name_another_primary(quarter, quarter).await {
            tracing::debug!("the sentinels name another primary: reconnecting");
            self.forget_connection(generation);
        }
    }

    /// Releases, in the background and as best it can, a lock this store
    /// may have taken with `fence` although the call failed (its reply
    /// lost): the fleet would otherwise wait a lease for it.
    fn release_in_background(&self, fence: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.clone();
        runtime.spawn(async move {
            let _released = store.unlock(Lease::new(fence)).await;
        });
    }
}

/// A lock `try_lock` may have taken without handing it over: released in
/// the background when dropped with a fence.
struct Unreleased<'a> {
    store: &'a RedisStore,
    fence: Option<String>,
}

impl Drop for Unreleased<'_> {
    fn drop(&mut self) {
        if let Some(fence) = self.fence.take() {
            self.store.release_in_background(fence);
        }
    }
}

/// How one attempt of a call failed.
enum Failed {
    Connecting(redis::RedisError),
    Calling(redis::RedisError),
}

/// The connection broke or could not be made.
fn is_disconnection(error: &redis::RedisError) -> bool {
    error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal()
}

/// The server is a replica: the primary was failed over. (Before Redis 7,
/// a script's write on a replica is answered `ERR Error running script …
/// -READONLY …`.)
fn is_replica(error: &redis::RedisError) -> bool {
    matches!(
        error.kind(),
        redis::ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
    ) || error
        .detail()
        .is_some_and(|detail| detail.contains("-READONLY"))
}

/// A failover, a node down or a slot on the move: worth asking again.
fn is_transient(error: &redis::RedisError) -> bool {
    is_disconnection(error)
        || error.is_cluster_error()
        || error.is_timeout()
        || is_replica(error)
        || matches!(
            error.kind(),
            redis::ErrorKind::Server(ServerErrorKind::BusyLoading)
        )
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

/// The key under which a cluster store keeps its token: `key` if it has a
/// hash tag, else `key` in braces (the tag). `None` if neither gives a
/// non-empty tag (`key` empty or starting with `}`).
fn tagged(key: &str) -> Option<String> {
    if hash_tag(key).is_some() {
        return Some(key.to_owned());
    }
    let tagged = format!("{{{key}}}");
    hash_tag(&tagged).is_some().then_some(tagged)
}

/// Redis Cluster's hash tag of `key`: what is between the first `{` and
/// the first `}` after it, if that is not empty.
fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let close = key[open + 1..].find('}')?;
    Some(&key[open + 1..open + 1 + close]).filter(|tag| !tag.is_empty())
}

/// Redis Cluster's slot of `key` (CRC16/XMODEM of its hash tag, or of the
/// whole key, modulo 16384).
fn key_slot(key: &[u8]) -> u16 {
    let hashed = std::str::from_utf8(key)
        .ok()
        .and_then(hash_tag)
        .map_or(key, str::as_bytes);
    let mut crc: u16 = 0;
    for byte in hashed {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

impl RedisStoreBuilder {
    fn new(servers: Servers, key: String) -> Self {
        Self {
            servers,
            key,
            timeout: DEFAULT_REDIS_TIMEOUT,
            replicas: None,
            root_certificates: None,
            client_certificate: None,
            primary_auth: None,
        }
    }

    /// The longest one Redis call (or connection attempt) may take.
    /// Defaults to [`DEFAULT_REDIS_TIMEOUT`] (2 seconds). Against a
    /// cluster or through Sentinel, a call is made again within this time
    /// while a node is down, a primary is being failed over or a slot
    /// moves, each attempt taking at most a quarter of it, and connecting
    /// (to the seed nodes, or to the sentinels and the primary) at most
    /// half of it: make it longer
    /// than your failovers take (and keep the cache's
    /// [fetch timeout](crate::TokenCacheBuilder::fetch_timeout), which
    /// bounds every store call, longer still). A save can wait this long
    /// for a slot on the move: tokens that live shorter than that can
    /// expire before the fleet has them.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// After taking the lock, after saving a token and after saving a
    /// rotated refresh token, waits (Redis `WAIT`, at most `wait`) until
    /// `replicas` replicas have the write, so that a failover right after
    /// loses none (see [failover](RedisStore#failover)). Off by default.
    /// When fewer replicas acknowledge in time the store goes on (with a
    /// warning): the write stands on the primary, and fencing still holds.
    /// Each refresh then takes up to twice `wait` longer; requests do not
    /// wait for it while the current token is valid. `wait` must be shorter
    /// than the store's [timeout](Self::timeout), and the cache's
    /// [fetch timeout](crate::TokenCacheBuilder::fetch_timeout) longer than
    /// twice the store's timeout plus `wait`. `WAIT` is sent once, on the
    /// connection that made the write (a write made again on a new
    /// connection, after its reply was lost, writes anew there, so that
    /// `WAIT` has it to wait for); other calls of the process on that
    /// connection wait behind it, so keep `wait` short.
    pub fn wait_for_replicas(mut self, replicas: u32, wait: Duration) -> Self {
        self.replicas = Some((replicas, wait));
        self
    }

    /// For `rediss://`: trust only the certificate authorities in `pem`
    /// (e.g. your private CA) instead of the operating system's roots.
    pub fn root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates = Some(pem.into());
        self
    }

    /// For `rediss://` with mutual TLS: present this client certificate
    /// chain and private key (both PEM).
    pub fn client_certificate(mut self, chain_pem: impl Into<Vec<u8>>, key_pem: Secret) -> Self {
        self.client_certificate = Some((chain_pem.into(), key_pem));
        self
    }

    /// For a [Sentinel](RedisStore::sentinel) store: the primary's ACL
    /// user and password (`"default"` for a server with only
    /// `requirepass`). The sentinels' own credentials, if any, are in
    /// their URLs. Stores on one server or a cluster take theirs from
    /// their URLs, and refuse this setting.
    pub fn primary_auth(mut self, user: impl Into<String>, password: Secret) -> Self {
        self.primary_auth = Some((user.into(), password));
        self
    }

    /// Builds the store. Nothing connects until it is first used.
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::InvalidConfig`] when a URL cannot be parsed, the
    /// URLs of a cluster's seeds or of the sentinels differ in user,
    /// password or TLS, the key cannot be given a cluster's hash tag,
    /// [`primary_auth`](Self::primary_auth) is set for a store not made
    /// through Sentinel, or [`wait_for_replicas`](Self::wait_for_replicas)
    /// waits as long as the timeout.
    pub fn build(self) -> Result<RedisStore, StoreError> {
        if self.primary_auth.is_some() && !matches!(self.servers, Servers::Sentinel { .. }) {
            return Err(StoreError::new(
                StoreErrorKind::InvalidConfig,
                "`primary_auth` is for a Sentinel store: put a server's or a cluster's \
                 user and password in its URL",
                None,
            ));
        }
        if let Some((_, wait)) = self.replicas
            && wait >= self.timeout
        {
            return Err(StoreError::new(
                StoreErrorKind::InvalidConfig,
                "`wait_for_replicas` must wait less than the store's timeout",
                None,
            ));
        }
        let certificates = (self.root_certificates.is_some() || self.client_certificate.is_some())
            .then(|| redis::TlsCertificates {
                client_tls: self.client_certificate.as_ref().map(|(chain, key)| {
                    redis::ClientTlsConfig {
                        client_cert: chain.clone(),
                        client_key: key.expose().as_bytes().to_vec(),
                    }
                }),
                root_cert: self.root_certificates.clone(),
            });
        let (client, key, tls) = match &self.servers {
            Servers::Standalone(url) => {
                let client = match certificates {
                    Some(certificates) => Client::build_with_tls(url.expose(), certificates),
                    None => Client::open(url.expose()),
                }
                .map_err(invalid_config)?;
                let tls = url.expose().starts_with("rediss");
                (Clients::Standalone(client), self.key, tls)
            }
            Servers::Cluster(seeds) => {
                let key = tagged(&self.key).ok_or_else(|| {
                    StoreError::new(
                        StoreErrorKind::InvalidConfig,
                        "a Redis Cluster store's key must not be empty or start with `}`",
                        None,
                    )
                })?;
                let mut builder =
                    redis::cluster::ClusterClientBuilder::new(seeds.iter().map(Secret::expose))
                        // Connecting waits for every seed, then asks for
                        // the topology: one that hangs (a node cut off,
                        // stopped) costs a fifth of the timeout, so that
                        // connecting fits in half of it.
                        .connection_timeout(self.timeout / 5)
                        .response_timeout(self.timeout)
                        // `query` makes calls again itself; the client's own
                        // retries (redirections, reconnections) stay short.
                        .retries(3)
                        .min_retry_wait(10)
                        .max_retry_wait(100);
                if let Some(certificates) = certificates {
                    builder = builder.certs(certificates);
                }
                let client = builder.build().map_err(|error| {
                    if seeds.is_empty() {
                        StoreError::new(
                            StoreErrorKind::InvalidConfig,
                            "a Redis Cluster store needs at least one seed node",
                            None,
                        )
                    } else {
                        invalid_config(error)
                    }
                })?;
                let tls = seeds.iter().any(|url| url.expose().starts_with("rediss"));
                (Clients::Cluster(client), key, tls)
            }
            Servers::Sentinel {
                sentinels,
                primary_name,
            } => {
                let client = Sentinels::new(
                    sentinels,
                    primary_name,
                    self.primary_auth.as_ref(),
                    certificates,
                )?;
                let tls = sentinels
                    .iter()
                    .any(|url| url.expose().starts_with("rediss"));
                (Clients::Sentinel(client), self.key, tls)
            }
        };
        if tls {
            crate::tls::install_default();
        }
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                timeout: self.timeout,
                replicas: self.replicas,
                lock_key: format!("{key}:lock"),
                failure_key: format!("{key}:failure"),
                refresh_token_key: format!("{key}:refresh_token"),
                token_key: key,
                connection: Mutex::new(Slot::default()),
                connecting: tokio::sync::Mutex::new(()),
                connected_once: AtomicBool::new(false),
            }),
        })
    }
}

/// A client that could not be made from the settings. The parser's message
/// may quote a URL, password included: only its category is kept.
fn invalid_config(error: redis::RedisError) -> StoreError {
    let what = match error.kind() {
        redis::ErrorKind::InvalidClientConfig => {
            "not a valid redis:// or rediss:// URL, or seed nodes that differ in user, \
             password or TLS"
        }
        _ => "invalid TLS certificates for Redis",
    };
    StoreError::new(StoreErrorKind::InvalidConfig, what, None)
}

impl TokenStore for RedisStore {
    fn load(&self) -> StoreFuture<'_, Option<StoredToken>> {
        Box::pin(async move {
            let command = redis::cmd("GET").arg(&self.inner.token_key).clone();
            let value: Option<Vec<u8>> = self
                .query(&command, "could not read the token from Redis")
                .await?;
            Ok(value.and_then(|bytes| parse_or_warn(&bytes)?.token()))
        })
    }

    fn try_lock(&self, lease: Duration) -> StoreFuture<'_, Option<Lease>> {
        Box::pin(async move {
            let fence = fence()?;
            let lease_ms = expiry_ms(lease);
            // The question to the sentinels counts against the call's time.
            let deadline = Instant::now() + self.inner.timeout;
            self.drop_a_failed_over_primary().await;
            let command = redis::cmd("EVAL")
                .arg(TAKE_LOCK)
                .arg(1)
                .arg(&self.inner.lock_key)
                .arg(&fence)
                .arg(lease_ms)
                .clone();
            // Until the caller has its lease: a call that fails or is
            // cancelled (the cache bounds store calls) after the script
            // ran would leave the lock to its lease.
            let mut unreleased = Unreleased {
                store: self,
                fence: Some(fence.clone()),
            };
            let (taken, connection) = self
                .query_until::<i64>(&command, "could not take the lock in Redis", deadline)
                .await?;
            if taken != 1 {
                unreleased.fence = None;
                return Ok(None);
            }
            self.wait_for_replicas(connection).await;
            unreleased.fence = None;
            Ok(Some(Lease::new(fence)))
        })
    }

    fn save<'a>(&'a self, token: &'a StoredToken, lease: &'a Lease) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut record = Record::default();
            record.set_token(token);
            // The key expires with the token; 0: the token does not expire.
            let expire_ms = match token.token().time_left() {
                Some(left) => expiry_ms(left),
                None => 0,
            };
            let command = redis::cmd("EVAL")
                .arg(SAVE_IF_HOLDING)
                .arg(3)
                .arg(&self.inner.lock_key)
                .arg(&self.inner.token_key)
                .arg(&self.inner.failure_key)
                .arg(lease.fence())
                .arg(record.to_json())
                .arg(expire_ms)
                .clone();
            let (saved, connection) = self
                .query_on::<i64>(&command, "could not save the token to Redis")
                .await?;
            if saved == 1 {
                self.wait_for_replicas(connection).await;
            }
            Ok(saved == 1)
        })
    }

    fn discard<'a>(&'a self, token: &'a Token) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let command = redis::cmd("EVAL")
                .arg(DISCARD_IF_SAME)
                .arg(1)
                .arg(&self.inner.token_key)
                .arg(token.secret())
                .clone();
            let deleted: i64 = self
                .query(&command, "could not discard the rejected token in Redis")
                .await?;
            Ok(deleted == 1)
        })
    }

    fn unlock(&self, lease: Lease) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let command = redis::cmd("EVAL")
                .arg(UNLOCK_IF_HOLDING)
                .arg(1)
                .arg(&self.inner.lock_key)
                .arg(lease.fence())
                .clone();
            let _deleted: i64 = self
                .query(&command, "could not release the lock in Redis")
                .await?;
            Ok(())
        })
    }

    fn save_failure<'a>(&'a self, retry_after: Duration, lease: &'a Lease) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let retry_ms = expiry_ms(retry_after);
            let command = redis::cmd("EVAL")
                .arg(FAIL_IF_HOLDING)
                .arg(2)
                .arg(&self.inner.lock_key)
                .arg(&self.inner.failure_key)
                .arg(lease.fence())
                .arg(retry_ms)
                .clone();
            let _saved: i64 = self
                .query(&command, "could not save a failed fetch to Redis")
                .await?;
            Ok(())
        })
    }

    fn load_failure(&self) -> StoreFuture<'_, Option<Duration>> {
        Box::pin(async move {
            let command = redis::cmd("PTTL").arg(&self.inner.failure_key).clone();
            // -2: no such key; -1: no expiry (not ours).
            let left_ms: i64 = self
                .query(&command, "could not read a failed fetch from Redis")
                .await?;
            Ok(u64::try_from(left_ms)
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis))
        })
    }

    fn name(&self) -> &str {
        "redis"
    }
}

impl RefreshTokenStore for RedisStore {
    fn load_refresh_token(&self) -> StoreFuture<'_, Option<Secret>> {
        Box::pin(async move {
            let command = redis::cmd("GET").arg(&self.inner.refresh_token_key).clone();
            let value: Option<Vec<u8>> = self
                .query(&command, "could not read the refresh token from Redis")
                .await?;
            Ok(value.and_then(|bytes| parse_or_warn(&bytes)?.refresh_token()))
        })
    }

    fn save_refresh_token<'a>(&'a self, refresh_token: &'a Secret) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut record = Record::default();
            record.set_refresh_token(refresh_token);
            let command = redis::cmd("SET")
                .arg(&self.inner.refresh_token_key)
                .arg(record.to_json())
                .clone();
            let ((), connection) = self
                .query_on(&command, "could not save the refresh token to Redis")
                .await?;
            // A rotated refresh token lost in a failover is a spent one.
            self.wait_for_replicas(connection).await;
            Ok(())
        })
    }
}

/// A stored record, or `None` with a warning if it is not one of ours.
fn parse_or_warn(bytes: &[u8]) -> Option<Record> {
    Record::parse(bytes)
        .map_err(|error| {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "token in Redis corrupted; ignoring it"
            );
        })
        .ok()
}

/// `duration` as a Redis `PX` expiry: whole milliseconds, at least one.
fn expiry_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// A random fencing value: 128 bits from the operating system.
fn fence() -> Result<String, StoreError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| {
        StoreError::new(
            StoreErrorKind::Other,
            "no randomness for the lock's fencing value",
            Some(error.to_string().into()),
        )
    })?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn unavailable(what: &'static str) -> impl Fn(redis::RedisError) -> StoreError {
    move |error| StoreError::new(StoreErrorKind::Unavailable, what, Some(error.into()))
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let deployment = match self.inner.client {
            Clients::Standalone(_) => "one server",
            Clients::Cluster(_) => "cluster",
            Clients::Sentinel(_) => "sentinel",
        };
        f.debug_struct("RedisStore")
            .field("key", &self.inner.token_key)
            .field("deployment", &deployment)
            .field("timeout", &self.inner.timeout)
            .field("wait_for_replicas", &self.inner.replicas)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("RedisStoreBuilder");
        match &self.servers {
            Servers::Standalone(_) => &mut f,
            Servers::Cluster(seeds) => f.field("cluster_seeds", &seeds.len()),
            Servers::Sentinel {
                sentinels,
                primary_name,
            } => f
                .field("sentinels", &sentinels.len())
                .field("primary_name", primary_name)
                .field("primary_auth", &self.primary_auth.is_some()),
        }
        .field("key", &self.key)
        .field("timeout", &self.timeout)
        .field("wait_for_replicas", &self.replicas)
        .field("root_certificates", &self.root_certificates.is_some())
        .field("client_certificate", &self.client_certificate.is_some())
        .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_cluster_store_is_in_one_slot() {
        for key in [
            "billing-api:token",
            "{billing}:token",
            "a}b",
            "x{}y",
            "{",
            "é",
        ] {
            let token = tagged(key).expect(key);
            let slots: Vec<u16> = ["", ":lock", ":failure", ":refresh_token"]
                .iter()
                .map(|suffix| key_slot(format!("{token}{suffix}").as_bytes()))
                .collect();
            assert!(
                slots.iter().all(|slot| *slot == slots[0]),
                "{key}: {slots:?}"
            );
        }
        assert_eq!(
            tagged("billing-api:token").as_deref(),
            Some("{billing-api:token}")
        );
        assert_eq!(
            tagged("{billing}:token").as_deref(),
            Some("{billing}:token")
        );
        assert_eq!(tagged(""), None);
        assert_eq!(tagged("}x"), None);
        // Without the tag, the keys land in different slots.
        assert_ne!(
            key_slot(b"billing-api:token"),
            key_slot(b"billing-api:token:lock")
        );
    }

    #[test]
    fn slots_match_redis() {
        // From the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"{fleet:token}"), 7781);
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
    }

    #[test]
    fn a_cluster_store_needs_seeds_and_a_taggable_key() {
        let kind = |result: Result<RedisStore, StoreError>| result.map(|_| ()).unwrap_err().kind();
        let none: [&str; 0] = [];
        assert_eq!(
            kind(RedisStore::cluster(none, "k")),
            StoreErrorKind::InvalidConfig
        );
        assert_eq!(
            kind(RedisStore::cluster(["redis://127.0.0.1:7000"], "")),
            StoreErrorKind::InvalidConfig
        );
        let mixed = RedisStore::cluster(
            [
                "redis://u:secret-a@127.0.0.1:7000",
                "redis://u:secret-b@127.0.0.1:7001",
            ],
            "k",
        )
        .map(|_| ())
        .unwrap_err();
        assert_eq!(mixed.kind(), StoreErrorKind::InvalidConfig);
        assert!(
            !format!("{mixed} {mixed:?}").contains("secret"),
            "{mixed:?}"
        );

        let store = RedisStore::cluster_builder(["redis://u:secret@127.0.0.1:7000"], "k")
            .wait_for_replicas(1, Duration::from_millis(100))
            .build()
            .unwrap();
        assert_eq!(store.key(), "{k}");
        assert!(!format!("{store:?}").contains("secret"));

        // WAIT is bounded by the store's timeout: a longer wait is refused.
        let refused = RedisStore::cluster_builder(["redis://127.0.0.1:7000"], "k")
            .timeout(Duration::from_secs(1))
            .wait_for_replicas(1, Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert_eq!(refused.kind(), StoreErrorKind::InvalidConfig);
        assert!(
            refused.to_string().contains("wait_for_replicas"),
            "{refused}"
        );
    }

    #[test]
    fn a_sentinel_store_needs_sentinels_alike_and_keeps_its_secrets() {
        let kind = |result: Result<RedisStore, StoreError>| result.map(|_| ()).unwrap_err().kind();
        let none: [&str; 0] = [];
        assert_eq!(
            kind(RedisStore::sentinel(none, "primary", "k")),
            StoreErrorKind::InvalidConfig
        );
        let mixed = RedisStore::sentinel(
            [
                "redis://u:secret-a@127.0.0.1:26379",
                "redis://u:secret-b@127.0.0.1:26380",
            ],
            "primary",
            "k",
        )
        .map(|_| ())
        .unwrap_err();
        assert_eq!(mixed.kind(), StoreErrorKind::InvalidConfig);
        assert!(
            !format!("{mixed} {mixed:?}").contains("secret"),
            "{mixed:?}"
        );
        assert_eq!(
            kind(RedisStore::sentinel(
                ["redis://127.0.0.1:26379", "rediss://127.0.0.1:26380"],
                "primary",
                "k"
            )),
            StoreErrorKind::InvalidConfig
        );

        let builder = RedisStore::sentinel_builder(
            [
                "redis://u:sentinel-secret@127.0.0.1:26379",
                "redis://u:sentinel-secret@127.0.0.1:26380",
            ],
            "primary",
            "billing:token",
        )
        .primary_auth("app", Secret::new("primary-secret"));
        let shown = format!("{builder:?}");
        assert!(shown.contains("sentinels: 2"), "{shown}");
        let store = builder.build().unwrap();
        // Keys as on one server: no hash tag.
        assert_eq!(store.key(), "billing:token");
        let shown = format!("{store:?}");
        assert!(shown.contains("sentinel"), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");

        assert_eq!(
            kind(RedisStore::sentinel(["redis://127.0.0.1:26379"], "", "k")),
            StoreErrorKind::InvalidConfig
        );

        // The primary's credentials are a Sentinel store's only.
        let refused = RedisStore::builder("redis://127.0.0.1:6379", "k")
            .primary_auth("app", Secret::new("primary-secret"))
            .build()
            .map(|_| ())
            .unwrap_err();
        assert_eq!(refused.kind(), StoreErrorKind::InvalidConfig);
        assert!(refused.to_string().contains("primary_auth"), "{refused}");
        assert!(!format!("{refused:?}").contains("primary-secret"));
    }
}

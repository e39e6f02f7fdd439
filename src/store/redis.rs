//! [`RedisStore`]: one token shared by a fleet of processes through Redis.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, FromRedisValue};

use super::record::Record;
use super::{
    Lease, RefreshTokenStore, StoreError, StoreErrorKind, StoreFuture, StoredToken, TokenStore,
};
use crate::{Secret, Token};

/// Default [timeout](RedisStoreBuilder::timeout) of one Redis call.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

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
/// One Redis server (or the primary of a replicated one) is expected; Redis
/// Cluster is not supported (the scripts touch several keys).
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
/// # Ok::<(), tower_token_refresh::store::StoreError>(())
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    timeout: Duration,
    token_key: String,
    lock_key: String,
    failure_key: String,
    refresh_token_key: String,
    /// Made on first use; dropped after a call timed out (the connection
    /// may be half-open), so the next call connects again.
    connection: Mutex<Option<ConnectionManager>>,
}

/// Settings of a [`RedisStore`]; made by [`RedisStore::builder`].
pub struct RedisStoreBuilder {
    url: Secret,
    key: String,
    timeout: Duration,
    root_certificates: Option<Vec<u8>>,
    client_certificate: Option<(Vec<u8>, Secret)>,
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
        RedisStoreBuilder {
            url: Secret::new(url),
            key: key.into(),
            timeout: DEFAULT_REDIS_TIMEOUT,
            root_certificates: None,
            client_certificate: None,
        }
    }

    /// The key the token is kept under.
    pub fn key(&self) -> &str {
        &self.inner.token_key
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let slot = || {
            self.inner
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if let Some(connection) = slot().as_ref() {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.inner.timeout))
            .set_response_timeout(Some(self.inner.timeout))
            // Fail fast while Redis is down: the cache fetches on its own
            // meanwhile, and a later call reconnects.
            .set_number_of_retries(1)
            .set_max_delay(self.inner.timeout);
        let connection = ConnectionManager::new_with_config(self.inner.client.clone(), config)
            .await
            .map_err(unavailable("could not connect to Redis"))?;
        *slot() = Some(connection.clone());
        Ok(connection)
    }

    /// Runs `command`. After an outage the connection answers its first
    /// call with the error of its last reconnection attempt and reconnects:
    /// such a call is made once more. A call that timed out drops the
    /// connection (it may be half-open) for the next call to make anew.
    async fn query<T: FromRedisValue>(
        &self,
        command: &Cmd,
        what: &'static str,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection().await?;
        let mut result = command.query_async(&mut connection).await;
        if let Err(error) = &result
            && (error.is_io_error()
                || error.is_connection_dropped()
                || error.is_connection_refusal())
        {
            result = command.query_async(&mut connection).await;
        }
        if let Err(error) = &result
            && error.is_timeout()
        {
            *self
                .inner
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
        }
        result.map_err(unavailable(what))
    }
}

impl RedisStoreBuilder {
    /// The longest one Redis call (or connection attempt) may take.
    /// Defaults to [`DEFAULT_REDIS_TIMEOUT`] (2 seconds).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
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

    /// Builds the store. Nothing connects until it is first used.
    ///
    /// # Errors
    ///
    /// [`StoreErrorKind::InvalidConfig`] when the URL cannot be parsed.
    pub fn build(self) -> Result<RedisStore, StoreError> {
        let custom_tls = self.root_certificates.is_some() || self.client_certificate.is_some();
        let client = if custom_tls {
            let certificates = redis::TlsCertificates {
                client_tls: self.client_certificate.as_ref().map(|(chain, key)| {
                    redis::ClientTlsConfig {
                        client_cert: chain.clone(),
                        client_key: key.expose().as_bytes().to_vec(),
                    }
                }),
                root_cert: self.root_certificates.clone(),
            };
            Client::build_with_tls(self.url.expose(), certificates)
        } else {
            Client::open(self.url.expose())
        };
        let client = client.map_err(|error| {
            // The parser's message may quote the URL, password included:
            // only its category is kept.
            let what = match error.kind() {
                redis::ErrorKind::InvalidClientConfig => "not a valid redis:// or rediss:// URL",
                _ => "invalid TLS certificates for Redis",
            };
            StoreError::new(StoreErrorKind::InvalidConfig, what, None)
        })?;
        if self.url.expose().starts_with("rediss") {
            crate::tls::install_default();
        }
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                timeout: self.timeout,
                lock_key: format!("{}:lock", self.key),
                failure_key: format!("{}:failure", self.key),
                refresh_token_key: format!("{}:refresh_token", self.key),
                token_key: self.key,
                connection: Mutex::new(None),
            }),
        })
    }
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
            let command = redis::cmd("SET")
                .arg(&self.inner.lock_key)
                .arg(&fence)
                .arg("NX")
                .arg("PX")
                .arg(lease_ms)
                .clone();
            let taken: Option<String> = self
                .query(&command, "could not take the lock in Redis")
                .await?;
            Ok(taken.map(|_| Lease::new(fence)))
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
            let saved: i64 = self
                .query(&command, "could not save the token to Redis")
                .await?;
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
            self.query(&command, "could not save the refresh token to Redis")
                .await
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
        f.debug_struct("RedisStore")
            .field("key", &self.inner.token_key)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .field("root_certificates", &self.root_certificates.is_some())
            .field("client_certificate", &self.client_certificate.is_some())
            .finish_non_exhaustive()
    }
}

//! Finding a Redis primary through its sentinels, for [`RedisStore`](super::RedisStore).
//!
//! Written on redis-rs's plain client rather than its Sentinel client, for
//! bounds the store can promise: every sentinel is asked at once and the
//! answer with the highest configuration epoch wins (one sentinel down
//! costs nothing, one hung at most the connection timeout), each step
//! is bounded by the store's settings, the primary named is checked
//! (`ROLE`) before it is used, and when no sentinel answers the last
//! primary is tried again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    RedisConnectionInfo, RedisError, RedisResult, ServerErrorKind, TlsCertificates, Value,
};

use super::{StoreError, StoreErrorKind};
use crate::Secret;

/// The sentinels of one primary, and how to reach the primary they name.
pub(super) struct Sentinels {
    sentinels: Vec<Client>,
    primary_name: String,
    /// The primary's user, password and database.
    primary_settings: RedisConnectionInfo,
    tls: Option<Option<TlsCertificates>>,
    /// The primary last connected to: tried when no sentinel answers.
    last_primary: Mutex<Option<(String, u16)>>,
    /// Whether they ever have.
    answered: AtomicBool,
    /// When [`Self::name_another_primary`] last asked them.
    checked_at: Mutex<Option<Instant>>,
}

impl Sentinels {
    /// `urls` are the sentinels' (their own user, password and TLS, all
    /// alike); a database in them is the primary's.
    pub(super) fn new(
        urls: &[Secret],
        primary_name: &str,
        primary_auth: Option<&(String, Secret)>,
        certificates: Option<TlsCertificates>,
    ) -> Result<Self, StoreError> {
        let invalid = |what| StoreError::new(StoreErrorKind::InvalidConfig, what, None);
        let infos = urls
            .iter()
            .map(|url| url.expose().into_connection_info())
            .collect::<RedisResult<Vec<_>>>()
            .map_err(|_| invalid("a sentinel's URL is not a valid redis:// or rediss:// URL"))?;
        let Some(first) = infos.first() else {
            return Err(invalid("a Sentinel store needs at least one sentinel"));
        };
        if primary_name.is_empty() {
            return Err(invalid("a Sentinel store needs the primary's name"));
        }
        let settings = |info: &ConnectionInfo| {
            let redis = info.redis_settings();
            (
                redis.username().map(str::to_owned),
                redis.password().map(str::to_owned),
                redis.db(),
                matches!(info.addr(), ConnectionAddr::TcpTls { .. }),
            )
        };
        let (_, _, db, tls) = settings(first);
        if infos.iter().any(|info| settings(info) != settings(first)) {
            return Err(invalid(
                "the sentinels' URLs differ in user, password, database or TLS",
            ));
        }
        let sentinels = infos
            .into_iter()
            .map(|info| {
                // Sentinels have no databases: the URL's is the primary's.
                let redis = info.redis_settings().clone().set_db(0);
                let info = info.set_redis_settings(redis);
                match (&certificates, tls) {
                    (Some(certificates), true) => {
                        Client::build_with_tls(info, certificates.clone())
                    }
                    _ => Client::open(info),
                }
            })
            .collect::<RedisResult<Vec<_>>>()
            .map_err(|_| invalid("invalid TLS certificates for Redis"))?;
        let mut primary_settings = RedisConnectionInfo::default().set_db(db);
        if let Some((user, password)) = primary_auth {
            primary_settings = primary_settings
                .set_username(user)
                .set_password(password.expose());
        }
        Ok(Self {
            sentinels,
            primary_name: primary_name.to_owned(),
            primary_settings,
            tls: tls.then_some(certificates),
            last_primary: Mutex::new(None),
            answered: AtomicBool::new(false),
            checked_at: Mutex::new(None),
        })
    }

    /// A connection to the primary: asks every sentinel at once for its
    /// address (the answer with the highest configuration epoch within
    /// `connect`; with none, the last primary), then checks that the
    /// server there says it is the primary.
    ///
    /// `connect` bounds each connection (to a sentinel, to the primary);
    /// `respond` is the primary connection's response timeout (long
    /// enough for `WAIT`).
    pub(super) async fn connect_to_primary(
        &self,
        connect: Duration,
        respond: Duration,
    ) -> RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect))
            .set_response_timeout(Some(connect));
        let (host, port) = match self.ask_sentinels(&config, connect).await {
            Ok(address) => address,
            Err(error) => match self.last_primary() {
                Some(address) if is_unanswered(&error) => address,
                _ => return Err(error),
            },
        };
        let primary = self.primary_client(&host, port)?;
        let mut connection = primary
            .get_multiplexed_async_connection_with_config(
                &config.clone().set_response_timeout(Some(respond)),
            )
            .await?;
        let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut connection).await?;
        let is_primary = match role.first() {
            Some(Value::BulkString(role)) => role == b"master",
            Some(Value::SimpleString(role)) => role == "master",
            _ => false,
        };
        if !is_primary {
            // A sentinel that has not seen the failover yet, or the old
            // primary back as a replica.
            return Err(RedisError::from((
                ErrorKind::Server(ServerErrorKind::ReadOnly),
                "the server the sentinels name is not the primary (a failover under way)",
            )));
        }
        *self
            .last_primary
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((host, port));
        Ok(connection)
    }

    /// Whether a sentinel has ever named a primary: a store's
    /// configuration holds, and failing to reach the primary is a
    /// failover's doing.
    pub(super) fn have_answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    /// Whether the sentinels name a primary other than the one last
    /// connected to: a failover this store's connection has not seen (an
    /// old primary cut off during a failover and back before the sentinels
    /// have made it a replica still says it is the primary, for seconds,
    /// and takes writes). Asked at most once per `every`, whatever came of
    /// the last question; no answer within `limit` is a no.
    pub(super) async fn name_another_primary(&self, every: Duration, limit: Duration) -> bool {
        let Some(last) = self.last_primary() else {
            return false;
        };
        {
            let mut checked_at = self
                .checked_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if checked_at.is_some_and(|checked| checked.elapsed() < every) {
                return false;
            }
            *checked_at = Some(Instant::now());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(limit))
            .set_response_timeout(Some(limit));
        match self.ask_sentinels(&config, limit).await {
            Ok(named) => named != last,
            Err(_) => false,
        }
    }

    fn last_primary(&self) -> Option<(String, u16)> {
        self.last_primary
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The primary's address as the sentinels answering within `limit`
    /// see it: of their answers, the one with the highest configuration
    /// epoch (a failover raises it, so a sentinel that has not heard of
    /// one yet is outvoted). With no address from any of them: a sentinel
    /// unreachable or silent within `limit` makes it an outage (an I/O
    /// error); when every one answered, an error reply is the error, not
    /// worth asking again: a sentinel refusing the question (its ACL
    /// user), or, every one saying it monitors no such primary, an error of
    /// its own (a wrong name).
    ///
    /// The epoch comes from `SENTINEL MASTER`, the address from `SENTINEL
    /// GET-MASTER-ADDR-BY-NAME`, asked together: the sentinel leading a
    /// failover has the new epoch before its `SENTINEL MASTER` shows the
    /// promoted replica's address (until every replica follows it, seconds
    /// later), while `GET-MASTER-ADDR-BY-NAME` names the promoted replica
    /// at once, as the other sentinels at that epoch do.
    async fn ask_sentinels(
        &self,
        config: &AsyncConnectionConfig,
        limit: Duration,
    ) -> RedisResult<(String, u16)> {
        let question = redis::pipe()
            .cmd("SENTINEL")
            .arg("MASTER")
            .arg(&self.primary_name)
            .cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.primary_name)
            .clone();
        // Dropped (the late questions aborted) when the time is up.
        let mut asked = tokio::task::JoinSet::new();
        for sentinel in &self.sentinels {
            let (sentinel, config, question) = (sentinel.clone(), config.clone(), question.clone());
            asked.spawn(async move {
                let mut connection = sentinel
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                question
                    .query_async::<(HashMap<String, String>, Option<(String, u16)>)>(
                        &mut connection,
                    )
                    .await
            });
        }
        let deadline = Instant::now() + limit;
        let mut best: Option<(u64, (String, u16))> = None;
        let mut last_error = None;
        // An error reply other than "no such master" (the sentinels' ACL
        // user not allowed a command): the configuration's to fix.
        let mut refused = None;
        while let Ok(Some(answer)) = tokio::time::timeout_at(deadline, asked.join_next()).await {
            match answer {
                Ok(Ok((primary, address))) => {
                    let epoch = primary
                        .get("config-epoch")
                        .and_then(|epoch| epoch.parse::<u64>().ok())
                        .unwrap_or(0);
                    if let Some((ip, port)) = address
                        && best.as_ref().is_none_or(|(highest, _)| epoch > *highest)
                    {
                        best = Some((epoch, (ip, port)));
                    }
                }
                // An answer, not an outage.
                Ok(Err(error)) if is_error_reply(&error) => {
                    if !error.to_string().contains("No such master") {
                        refused = Some(error);
                    }
                }
                Ok(Err(error)) => last_error = Some(error),
                // A question that panicked (in redis-rs): as unanswered.
                Err(_) => {
                    last_error = Some(RedisError::from((
                        ErrorKind::Io,
                        "asking a sentinel failed",
                    )));
                }
            }
        }
        if let Some((_, address)) = best {
            self.answered.store(true, Ordering::Relaxed);
            return Ok(address);
        }
        // A sentinel that could not be reached, or gave no answer in time,
        // makes it an outage (the last primary is tried, the call made
        // again); only when every one answered is it the configuration.
        let unanswered = !asked.is_empty();
        Err(match (last_error, refused) {
            (Some(error), _) => error,
            (None, _) if unanswered => RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no sentinel answered in time",
            )),
            (None, Some(refused)) => refused,
            (None, None) => RedisError::from((
                ErrorKind::MasterNameNotFoundBySentinel,
                "no sentinel monitors a primary of that name",
            )),
        })
    }

    fn primary_client(&self, host: &str, port: u16) -> RedisResult<Client> {
        let addr = match &self.tls {
            Some(_) => ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: false,
                tls_params: None,
            },
            None => ConnectionAddr::Tcp(host.to_owned(), port),
        };
        let info = "redis://127.0.0.1"
            .into_connection_info()?
            .set_addr(addr)
            .set_redis_settings(self.primary_settings.clone());
        match &self.tls {
            Some(Some(certificates)) => Client::build_with_tls(info, certificates.clone()),
            _ => Client::open(info),
        }
    }
}

/// No sentinel could be reached (as opposed to sentinels that answered).
fn is_unanswered(error: &RedisError) -> bool {
    error.kind() != ErrorKind::MasterNameNotFoundBySentinel && !is_error_reply(error)
}

/// A server's error reply (`Extension`: with a code redis-rs does not
/// know).
fn is_error_reply(error: &RedisError) -> bool {
    matches!(error.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
}

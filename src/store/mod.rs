//! Token stores: keep the token across restarts and share it between
//! processes, so a fleet calls its identity provider once per token lifetime.
//!
//! A [`TokenCache`](crate::TokenCache) given a store with
//! [`TokenCacheBuilder::store`](crate::TokenCacheBuilder::store) consults it
//! whenever it needs a new token, and only then: requests never touch the
//! store, so the hot path stays an atomic load.
//!
//! 1. It [loads](TokenStore::load) the stored token and uses it if it is
//!    still good (not expired, not the token being replaced) and was made
//!    by its own source (see below).
//! 2. Otherwise it [takes the lock](TokenStore::try_lock) with a lease, looks
//!    again (another process may have just saved one), calls its
//!    [`TokenSource`](crate::TokenSource), [saves](TokenStore::save) the new
//!    token and [releases](TokenStore::unlock) the lock.
//! 3. A process that finds the lock taken polls the store until the holder
//!    saves its token, or takes the lock itself once the holder's lease ends
//!    (a holder that died frees it that way).
//! 4. When the holder's fetch fails, it asks the others to
//!    [back off](TokenStore::save_failure) with it, so a failing identity
//!    provider gets one call per backoff delay from the whole fleet.
//! 5. When a server rejects the token, the cache
//!    [discards](TokenStore::discard) it from the store too (only if the
//!    store still holds that token, never a newer one), before the rejected
//!    response reaches the caller: the next run, or the next process, does
//!    not load a dead token.
//! 6. When the store fails (unreachable, corrupted), the cache logs a warning
//!    and fetches on its own: requests keep flowing.
//!
//! # One store location per cache
//!
//! Give each cache its own file or key. Every stored token records which
//! source made it (a [`StoredToken`]'s fingerprint: for the OAuth 2.0
//! sources their token URL, client id, scopes, audience and resource; for a
//! closure, the cache's [name](crate::TokenCacheBuilder::name)), and a cache
//! ignores (with a warning, counted in
//! [`store_failures`](crate::CacheStats::store_failures)) a token another
//! source made, and never overwrites it. Two caches pasted onto one location
//! then each fetch their own tokens instead of sending each other's. Name
//! caches whose source is a closure, so that their tokens can be told apart.
//!
//! # A store and retries go together
//!
//! A stored token outlives the process: when the server has revoked it
//! (the identity provider restarted, a key rotated), the next run loads it,
//! and only the server's rejection tells. The cache then drops it from
//! memory and from the store, but the request that carried it has failed.
//! A program that makes one request per run (a CLI, a cron job) needs
//! [`TokenRefreshLayer::retry_rejected`](crate::TokenRefreshLayer::retry_rejected)
//! to send that request again with a new token in the same run.
//!
//! Stores in this crate: [`FileStore`] (one machine, survives restarts) and,
//! with the `redis` feature, `RedisStore` (a fleet). Implement
//! [`TokenStore`] for anything else (a database, etcd, a secrets manager).
//!
//! Anyone who can read the store can read the token: protect it like the
//! credentials it was made from.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower_token_refresh::store::FileStore;
//! use tower_token_refresh::{BoxError, Token, TokenCache};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! # let dir = std::env::temp_dir().join(format!("ttr-doc-{}", std::process::id()));
//! let path = dir.join("token.json");
//! let source = || async {
//!     // Ask your identity provider here.
//!     Ok::<_, BoxError>(Token::bearer("abc").expires_in(Duration::from_secs(3600)))
//! };
//!
//! // The first run fetches and saves the token…
//! let first = TokenCache::builder(source).name("orders").store(FileStore::new(&path)?).build();
//! first.token().await?;
//! assert_eq!(first.stats().fetches, 1);
//!
//! // …the next run (here, another cache) finds it and fetches nothing.
//! let next = TokenCache::builder(source).name("orders").store(FileStore::new(&path)?).build();
//! assert_eq!(next.token().await?.secret(), "abc");
//! assert_eq!(next.stats().fetches, 0);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::Token;

mod error;
mod file;
mod private_file;
mod record;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_sentinel;
mod refresh_token_store;
mod stored_token;

pub use error::{StoreError, StoreErrorKind};
pub use file::FileStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{DEFAULT_REDIS_TIMEOUT, RedisStore, RedisStoreBuilder};
pub use refresh_token_store::RefreshTokenStore;
pub use stored_token::StoredToken;

/// Runs one store call, bounded by `limit`: a store that does not answer
/// in time is [`Unavailable`](StoreErrorKind::Unavailable).
pub(crate) async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_elapsed| {
            Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "token store did not answer in time",
                None,
            ))
        })
}

/// The future returned by [`TokenStore`] methods.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where a [`TokenCache`](crate::TokenCache) keeps its token beyond its own
/// memory, and how processes sharing it take turns to refresh it.
///
/// The cache calls a store only when it needs a new token, from its refresh
/// task, bounding each call by its
/// [fetch timeout](crate::TokenCacheBuilder::fetch_timeout). An error from
/// any method makes the cache log a warning and fetch on its own; it never
/// reaches a request. The object-safe trait is implemented for `Arc<S>`, so
/// one store can serve a cache and, when it is a [`RefreshTokenStore`] too,
/// a [`RefreshTokenGrant`](crate::oauth2::RefreshTokenGrant) at once.
///
/// Implementations must never put a token or refresh token in an error or a
/// log line.
pub trait TokenStore: Send + Sync + 'static {
    /// The stored token, if there is one, with the fingerprint it was saved
    /// with. It may have expired, be the token the cache is replacing, or
    /// come from another source: the cache checks.
    fn load(&self) -> StoreFuture<'_, Option<StoredToken>>;

    /// Takes the refresh lock for at most `lease` if no one holds it:
    /// `Some` with proof of holding it, `None` when another holder has it.
    /// A holder that dies must not keep it longer than its lease.
    fn try_lock(&self, lease: Duration) -> StoreFuture<'_, Option<Lease>>;

    /// Saves `token` with its fingerprint, as long as `lease` still holds
    /// the lock (fencing: a holder whose lease ran out must not overwrite
    /// its successor's token). Returns whether it was saved.
    fn save<'a>(&'a self, token: &'a StoredToken, lease: &'a Lease) -> StoreFuture<'a, bool>;

    /// Removes the stored token if it is still `token` (same value): a
    /// server rejected it, and no process should load it again. A newer
    /// token saved meanwhile stays: the comparison and the removal must be
    /// one atomic step (under the store's own lock, or a script), so that
    /// a late rejection of an old token never deletes its successor.
    /// Everything else stored (a fleet's backoff, a refresh token) stays.
    /// Returns whether it removed the token.
    ///
    /// Called without holding the refresh lock; the cache bounds it by its
    /// [fetch timeout](crate::TokenCacheBuilder::fetch_timeout) and makes
    /// the rejected response wait for it.
    fn discard<'a>(&'a self, token: &'a Token) -> StoreFuture<'a, bool>;

    /// Releases the lock if `lease` still holds it.
    fn unlock(&self, lease: Lease) -> StoreFuture<'_, ()>;

    /// Asks every process sharing the store not to call its source for
    /// `retry_after`: the holder of `lease` just failed to fetch a token
    /// (identity provider down or rate-limiting), and the fleet should back
    /// off together instead of each process trying in turn. Saving a token
    /// clears it. Stores that do not share failures do nothing (the
    /// default).
    fn save_failure<'a>(&'a self, retry_after: Duration, lease: &'a Lease) -> StoreFuture<'a, ()> {
        let _ = (retry_after, lease);
        Box::pin(async { Ok(()) })
    }

    /// How much longer the processes sharing the store are asked to wait
    /// after a failed fetch ([`save_failure`](Self::save_failure)), if they
    /// are. The default: never.
    fn load_failure(&self) -> StoreFuture<'_, Option<Duration>> {
        Box::pin(async { Ok(None) })
    }

    /// Names the store in logs. Defaults to the type's name.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }
}

impl<S: TokenStore + ?Sized> TokenStore for Arc<S> {
    fn load(&self) -> StoreFuture<'_, Option<StoredToken>> {
        (**self).load()
    }

    fn try_lock(&self, lease: Duration) -> StoreFuture<'_, Option<Lease>> {
        (**self).try_lock(lease)
    }

    fn save<'a>(&'a self, token: &'a StoredToken, lease: &'a Lease) -> StoreFuture<'a, bool> {
        (**self).save(token, lease)
    }

    fn discard<'a>(&'a self, token: &'a Token) -> StoreFuture<'a, bool> {
        (**self).discard(token)
    }

    fn unlock(&self, lease: Lease) -> StoreFuture<'_, ()> {
        (**self).unlock(lease)
    }

    fn save_failure<'a>(&'a self, retry_after: Duration, lease: &'a Lease) -> StoreFuture<'a, ()> {
        (**self).save_failure(retry_after, lease)
    }

    fn load_failure(&self) -> StoreFuture<'_, Option<Duration>> {
        (**self).load_failure()
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}

/// Proof of holding a store's refresh lock, from [`TokenStore::try_lock`].
///
/// It carries a fencing value (random, so that only this holder can release
/// or write under the lock) and, for stores whose lock is an object (an open
/// file), that object: dropping the lease drops it.
pub struct Lease {
    fence: String,
    held: Option<Box<dyn Any + Send + Sync>>,
}

impl Lease {
    /// A lease proven by `fence`, the value the lock was taken with.
    pub fn new(fence: impl Into<String>) -> Self {
        Self {
            fence: fence.into(),
            held: None,
        }
    }

    /// Keeps `guard` (e.g. a locked file) for as long as the lease lives.
    pub fn holding(mut self, guard: impl Any + Send + Sync) -> Self {
        self.held = Some(Box::new(guard));
        self
    }

    /// The fencing value the lock was taken with.
    pub fn fence(&self) -> &str {
        &self.fence
    }

    /// The guard given to [`holding`](Self::holding), if it is a `T`.
    pub fn guard<T: Any>(&self) -> Option<&T> {
        self.held.as_ref()?.downcast_ref()
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("held", &self.held.is_some())
            .finish_non_exhaustive()
    }
}

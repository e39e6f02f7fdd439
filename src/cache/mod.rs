//! [`TokenCache`]: one shared token, refreshed single-flight.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use tokio::time::Instant;

use crate::{Error, SenderConstraint, Token, TokenSource};

mod backoff;
mod backstop;
mod builder;
mod entry;
mod invalidate;
mod refresh;
mod refresh_window;
mod snapshot;
mod stats;
mod store_refresh;
mod time_left;

pub use builder::{
    DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, DEFAULT_FETCH_TIMEOUT, LONGEST_SETTING,
    TokenCacheBuilder,
};

pub use stats::CacheStats;
pub use time_left::TimeLeft;

pub(crate) use invalidate::{Discarding, Rejected};

/// Unique identities of caches, for per-thread snapshots.
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

use builder::Config;
use entry::{Entry, Status};
use refresh::{Flight, Join, Reason};
use stats::Counters;

/// A shared, cheap-to-clone handle to one token, refreshed single-flight.
///
/// - **Hot path**: while the token is fresh, using it takes an atomic load
///   and a reference-count increment: no lock, no clock read, no allocation.
/// - **Single-flight**: however many callers find the token missing or
///   expired at once, the [`TokenSource`] is called once and all of them get
///   its result.
/// - **Refresh ahead**: inside the [refresh window](TokenCacheBuilder::refresh_before)
///   callers keep using the current token while one background refresh
///   fetches the next.
/// - **Failures**: a fetch is bounded by a [timeout](TokenCacheBuilder::fetch_timeout);
///   after a failure the source is not called again before a
///   [backoff](TokenCacheBuilder::backoff) delay, while a still-valid token
///   stays in use.
/// - **Cancellation**: the fetch runs on a task of its own, so dropping the
///   caller that started it neither cancels it nor strands other callers.
///
/// Clone it to share one token between many [`TokenRefreshLayer`](crate::TokenRefreshLayer)s,
/// services and tasks. Refreshes run on the Tokio runtime of the caller
/// that starts them.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_token_refresh::{BoxError, Token, TokenCache};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let cache = TokenCache::new(|| async {
///     // Ask your identity provider for a token here.
///     Ok::<_, BoxError>(Token::bearer("abc").expires_in(Duration::from_secs(3600)))
/// });
///
/// let token = cache.token().await?;
/// assert_eq!(token.secret(), "abc");
///
/// // The server rejected it? Drop it (only if no newer one replaced it yet).
/// assert!(cache.invalidate(&token));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TokenCache {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    /// The published token: read lock-free by every request.
    current: ArcSwapOption<Entry>,
    source: Arc<dyn TokenSource>,
    config: Config,
    /// The cache's name, else its source's: in errors and events.
    name: Arc<str>,
    flight: Mutex<Flight>,
    /// The refresh in progress: read without the lock by joiners, changed
    /// only under the `flight` lock.
    running: ArcSwapOption<refresh::Running>,
    /// The backoff after a failure: read without the lock by requests,
    /// changed only under the `flight` lock.
    backoff: ArcSwapOption<refresh::BackingOff>,
    generation: AtomicU64,
    /// The current token replaced a rejected one and was not accepted yet.
    unconfirmed: AtomicBool,
    /// The source's tokens are bound to a key (DPoP): useless to other
    /// processes, so the store is no longer used.
    key_bound: AtomicBool,
    /// The constraint of the last key-bound token published, kept when the
    /// token goes: responses to requests it sent are read with it.
    last_constraint: Mutex<Constraint>,
    /// Identifies this cache in per-thread snapshots.
    id: u64,
    /// Changes whenever what the hot path may use changes (a token is
    /// published or dropped, or its refresh window opens).
    version: Arc<AtomicU64>,
    counters: Counters,
}

/// A token ready to be sent: its header and its generation.
#[derive(Debug, Clone)]
pub(crate) struct Credential {
    pub(crate) header: HeaderValue,
    pub(crate) generation: u64,
}

/// What each request sent with a token needs besides its header, if the
/// token is bound to a key. Kept apart from [`Credential`], which the
/// bearer hot path moves around (two words more there cost it).
pub(crate) type Constraint = Option<Arc<dyn SenderConstraint>>;

impl Credential {
    fn of(entry: &Entry) -> Self {
        Self {
            header: entry.header().clone(),
            generation: entry.generation(),
        }
    }
}

impl TokenCache {
    /// A cache with default settings over `source`. No token is fetched
    /// until one is needed.
    pub fn new(source: impl TokenSource) -> Self {
        Self::builder(source).build()
    }

    /// Starts building a cache over `source` with custom settings.
    pub fn builder(source: impl TokenSource) -> TokenCacheBuilder {
        TokenCacheBuilder::new(source)
    }

    pub(crate) fn from_parts(source: Arc<dyn TokenSource>, config: Config) -> Self {
        let name: Arc<str> = Arc::from(config.name.as_deref().unwrap_or_else(|| source.name()));
        let counters = Counters::new(&name);
        Self {
            shared: Arc::new(Shared {
                current: ArcSwapOption::empty(),
                source,
                config,
                name,
                flight: Mutex::new(Flight::default()),
                running: ArcSwapOption::empty(),
                backoff: ArcSwapOption::empty(),
                generation: AtomicU64::new(0),
                unconfirmed: AtomicBool::new(false),
                key_bound: AtomicBool::new(false),
                last_constraint: Mutex::new(None),
                id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
                version: Arc::new(AtomicU64::new(0)),
                counters,
            }),
        }
    }

    /// A valid token: the cached one, or a fresh one if there is none or it
    /// has expired (waiting for the refresh every concurrent caller shares).
    /// Inside the refresh window, returns the current token at once and
    /// starts a background refresh.
    ///
    /// # Errors
    ///
    /// When a token was needed and the refresh failed: the error of that
    /// refresh, or during the backoff that follows it, the last error.
    pub async fn token(&self) -> Result<Token, Error> {
        let entry = self.entry().await?;
        Ok(entry.token().clone())
    }

    /// Drops `token` if it is still the current token, so that the next
    /// caller fetches a new one; call it when a server rejects the token.
    /// Returns whether it was dropped.
    ///
    /// A token that was already replaced is left alone: a burst of
    /// rejections of one token causes a single refresh, and a late rejection
    /// of an old token causes none.
    ///
    /// If tokens keep being rejected right after they were fetched (the
    /// credentials are likely wrong), the source is not called again before
    /// the [backoff](TokenCacheBuilder::backoff) delay, and callers get an
    /// [`ErrorKind::RejectedAgain`](crate::ErrorKind::RejectedAgain) error
    /// meanwhile.
    ///
    /// With a [store](TokenCacheBuilder::store), the token is also
    /// [discarded](crate::store::TokenStore::discard) from the store if it
    /// still holds it, on a task of its own (the
    /// [`TokenRefreshLayer`](crate::TokenRefreshLayer) makes the rejected
    /// response wait for it; here nothing waits).
    pub fn invalidate(&self, token: &Token) -> bool {
        let Some(entry) = self.shared.current.load_full() else {
            return false;
        };
        // The value must match (a token from another cache may share the
        // generation number); so must the generation, for tokens from here.
        let same = entry.token().secret() == token.secret()
            && (token.generation() == 0 || entry.generation() == token.generation());
        same && self.shared.reject_entry(&entry)
    }

    /// The cache's [name](TokenCacheBuilder::name), else its source's
    /// [name](TokenSource::name): it names the cache in errors, events,
    /// [`TokenRejected`](crate::TokenRejected) and, with the `metrics`
    /// feature, the `cache` label of its metrics.
    ///
    /// ```
    /// # use tower_token_refresh::{BoxError, Token, TokenCache};
    /// let cache = TokenCache::builder(|| async { Ok::<_, BoxError>(Token::bearer("t")) })
    ///     .name("billing-api")
    ///     .build();
    /// assert_eq!(cache.name(), "billing-api");
    /// ```
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// What the cache has done so far: fetches, failures, refreshes,
    /// rejections, retries, waits, and the current token's time left.
    pub fn stats(&self) -> CacheStats {
        let current = self.shared.current.load();
        let time_left = TimeLeft::of(current.as_ref().map(|entry| entry.token()));
        self.shared.counters.snapshot(time_left)
    }

    /// Whether `other` is a handle to the same cache.
    pub(crate) fn same_as(&self, other: &TokenCache) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Counts a request sent a second time after a rejection.
    pub(crate) fn note_retry(&self) {
        Counters::add(&self.shared.counters.retries);
    }

    /// Drops the token of `generation` if it is still current (and from
    /// the store).
    pub(crate) fn reject(&self, generation: u64) -> Rejected {
        self.shared.reject(generation)
    }

    /// Notes that the server accepted the token of `generation`.
    #[inline]
    pub(crate) fn accepted(&self, generation: u64) {
        self.shared.accepted(generation);
    }

    /// [`accepted`](Self::accepted), if `also` says so; asked only when the
    /// note would change something.
    #[inline]
    pub(crate) fn accepted_if(&self, generation: u64, also: impl FnOnce() -> bool) {
        self.shared.accepted_if(generation, also);
    }

    /// The hot path: the current token's header if it is fresh; from this
    /// thread's snapshot when nothing changed since it was taken (the
    /// cache's version, one atomic load, says so).
    #[inline]
    pub(crate) fn fresh_credential(&self) -> Option<Credential> {
        let version = self.shared.version.load(Ordering::Acquire);
        if let Some(credential) = snapshot::get(self.shared.id, version) {
            return Some(credential);
        }
        let current = self.shared.current.load();
        match current.as_ref() {
            // A key-bound token needs a proof: the slow path, with its
            // constraint ([`credential`](Self::credential)).
            Some(entry) if entry.is_fresh() && entry.token().sender_constraint().is_none() => {
                // From this thread's copy of the header, from the first
                // request on.
                Some(snapshot::put(
                    self.shared.id,
                    version,
                    Credential::of(entry),
                ))
            }
            _ => None,
        }
    }

    /// The constraint of the last key-bound token this cache published
    /// (the current one, or the one a request went with if it was dropped
    /// since): what reads the responses to proven requests. A key's
    /// constraints share its nonces, so any of them reads them right.
    pub(crate) fn last_constraint(&self) -> Constraint {
        self.shared
            .last_constraint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The slow path: a usable token, refreshing if needed, and its
    /// constraint if it is bound to a key.
    pub(crate) async fn credential(self) -> Result<(Credential, Constraint), Error> {
        self.entry().await.map(|entry| {
            let constraint = entry.token().sender_constraint().cloned();
            (Credential::of(&entry), constraint)
        })
    }

    async fn entry(&self) -> Result<Arc<Entry>, Error> {
        let found = self.find_entry().await;
        // A name of the user's own tells which API failed; the source's
        // ("token source") would only repeat the message.
        match &self.shared.config.name {
            Some(_) => found.map_err(|error| error.in_cache(&self.shared.name)),
            None => found,
        }
    }

    async fn find_entry(&self) -> Result<Arc<Entry>, Error> {
        let reason = match self.shared.current.load_full() {
            None => Reason::Missing,
            Some(entry) => match entry.status(Instant::now()) {
                Status::Fresh => return Ok(entry),
                Status::RefreshDue => {
                    // Best effort: a refresh that cannot start now (backing
                    // off) is tried again by a later request.
                    drop(self.shared.join_or_start(Reason::Ahead));
                    return Ok(entry);
                }
                Status::Expired => Reason::Expired,
            },
        };
        match self.shared.join_or_start(reason) {
            Join::Ready(entry) => Ok(entry),
            Join::Wait(waiter) => {
                Counters::add(&self.shared.counters.waited);
                waiter.outcome().await
            }
            Join::Failed(error) => Err(error),
        }
    }
}

/// A cache is a [`TokenSource`] too: its [`fetch`](TokenSource::fetch) is
/// [`token`](TokenCache::token), the cached token while it is good. So one
/// cache's tokens can feed another source, as the subject token of a
/// [`TokenExchange`](crate::oauth2::TokenExchange) or a
/// [client assertion](crate::oauth2::ClientAuth::assertion_from), and be
/// fetched once however many sources use them.
///
/// ```
/// use std::time::Duration;
/// use tower_token_refresh::{BoxError, Token, TokenCache, TokenSource};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let upstream = TokenCache::new(|| async {
///     Ok::<_, BoxError>(Token::bearer("id-token").expires_in(Duration::from_secs(600)))
/// });
/// let token = upstream.fetch().await?;
/// assert_eq!(token.secret(), "id-token");
/// # Ok(())
/// # }
/// ```
impl TokenSource for TokenCache {
    fn fetch(&self) -> crate::TokenFuture {
        let cache = self.clone();
        Box::pin(async move { cache.token().await.map_err(crate::BoxError::from) })
    }

    fn name(&self) -> &str {
        self.shared.name()
    }

    fn fingerprint(&self) -> Option<String> {
        self.shared.config.fingerprint.clone()
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.shared.current.load();
        f.debug_struct("TokenCache")
            .field("token", &current.as_ref().map(|entry| entry.token()))
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::BoxError;

    #[tokio::test]
    async fn while_the_source_backs_off_requests_take_no_lock() {
        // An identity provider that is down: every request knows the answer
        // from the backoff, without queueing on the refresh lock.
        let fetches = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&fetches);
        let cache = TokenCache::builder(move || {
            let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    Ok(Token::bearer("t").expires_in(Duration::from_secs(3600)))
                } else {
                    Err(BoxError::from("identity provider down"))
                }
            }
        })
        .backoff(Duration::from_secs(600), Duration::from_secs(600))
        .build();
        let token = cache.token().await.unwrap();
        assert!(cache.invalidate(&token));
        cache.token().await.unwrap_err();
        assert_eq!(fetches.load(Ordering::SeqCst), 2);

        let _held = cache.shared.flight();
        let (sender, receiver) = mpsc::channel();
        let other = cache.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = sender.send(runtime.block_on(other.token()).map(|_| ()));
        });
        let outcome = receiver
            .recv_timeout(Duration::from_secs(10))
            .expect("a request during the backoff blocked on the refresh lock");
        let error = outcome.unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::Source, "the last error");
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "the source is left alone"
        );
    }

    #[tokio::test]
    async fn the_hot_path_takes_no_lock() {
        let cache = TokenCache::new(|| async {
            Ok::<_, BoxError>(Token::bearer("t").expires_in(Duration::from_secs(3600)))
        });
        cache.token().await.unwrap();

        // With the refresh lock held, the hot path must still answer.
        let _held = cache.shared.flight();
        let (sender, receiver) = mpsc::channel();
        let other = cache.clone();
        std::thread::spawn(move || {
            let _ = sender.send(other.fresh_credential().map(|c| c.header));
        });
        let header = receiver
            .recv_timeout(Duration::from_secs(10))
            .expect("the hot path blocked on the refresh lock");
        assert_eq!(header.unwrap(), "Bearer t");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_from_the_source_stretches_the_backoff() {
        use std::sync::atomic::AtomicUsize;

        #[derive(Debug)]
        struct Busy(crate::RetryAfter);
        impl fmt::Display for Busy {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("identity provider busy")
            }
        }
        impl std::error::Error for Busy {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }

        let calls = Arc::new(AtomicUsize::new(0));
        let cache = {
            let calls = calls.clone();
            TokenCache::new(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                // Found in the chain, below an error of the source's own.
                async { Err::<Token, _>(Busy(crate::RetryAfter::new(Duration::from_secs(120)))) }
            })
        };
        let error = cache.token().await.unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::Source);
        tokio::time::advance(Duration::from_secs(119)).await;
        cache.token().await.unwrap_err();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "Retry-After: 120 is honoured"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        cache.token().await.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}

//! [`TokenCacheBuilder`]: settings of a [`TokenCache`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::TokenCache;
use super::backoff::Backoff;
use crate::TokenSource;
use crate::store::TokenStore;

/// Default [fetch timeout](TokenCacheBuilder::fetch_timeout).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Default first delay of the [backoff](TokenCacheBuilder::backoff) after a
/// failed fetch.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Default longest delay of the [backoff](TokenCacheBuilder::backoff).
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The longest duration a setting takes: a year. A longer one (such as
/// `Duration::MAX`, for "no limit") is taken as a year, which is no limit
/// in practice, and deadlines computed from it cannot overflow.
pub const LONGEST_SETTING: Duration = Duration::from_secs(365 * 24 * 60 * 60);

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) name: Option<String>,
    /// What a store records with each token to say which source made it:
    /// the source's fingerprint, else the cache's name.
    pub(crate) fingerprint: Option<String>,
    pub(crate) refresh_before: Option<Duration>,
    pub(crate) fetch_timeout: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) store: Option<StoreHandle>,
    /// How long the store's refresh lock is held at most; `None`: derived
    /// from the fetch timeout.
    pub(crate) lease: Option<Duration>,
}

/// A store the cache consults before calling its source.
#[derive(Clone)]
pub(crate) struct StoreHandle(pub(crate) Arc<dyn TokenStore>);

impl fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl Config {
    /// How long the refresh lock of a store is held at most: long enough
    /// for one fetch and the store calls around it.
    pub(crate) fn lease(&self) -> Duration {
        self.lease.unwrap_or(self.fetch_timeout.saturating_mul(2))
    }

    /// The longest a refresh may take before it is considered lost: one
    /// fetch; with a store, waiting for another holder (a lease and a fetch
    /// timeout, plus the two store calls of the last look), then, holding
    /// the lock, a look, a fetch, a save and a release (each bounded by the
    /// fetch timeout).
    pub(crate) fn refresh_limit(&self) -> Duration {
        match self.store {
            None => self.fetch_timeout,
            Some(_) => self.lease() + self.fetch_timeout.saturating_mul(7),
        }
    }
}

/// Builds a [`TokenCache`] with custom settings; made by
/// [`TokenCache::builder`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_token_refresh::{BoxError, Token, TokenCache};
///
/// let cache = TokenCache::builder(|| async {
///     Ok::<_, BoxError>(Token::bearer("abc").expires_in(Duration::from_secs(3600)))
/// })
/// .refresh_before(Duration::from_secs(120))
/// .fetch_timeout(Duration::from_secs(5))
/// .backoff(Duration::from_millis(500), Duration::from_secs(60))
/// .build();
/// ```
pub struct TokenCacheBuilder {
    source: Arc<dyn TokenSource>,
    config: Config,
}

impl TokenCacheBuilder {
    pub(crate) fn new(source: impl TokenSource) -> Self {
        Self {
            source: Arc::new(source),
            config: Config {
                name: None,
                fingerprint: None,
                refresh_before: None,
                fetch_timeout: DEFAULT_FETCH_TIMEOUT,
                backoff: Backoff {
                    initial: DEFAULT_BACKOFF_INITIAL,
                    max: DEFAULT_BACKOFF_MAX,
                },
                store: None,
                lease: None,
            },
        }
    }

    /// How long before expiry to refresh a token.
    ///
    /// Inside this window requests keep using the current token while one
    /// background refresh fetches the next; no request waits for it. The
    /// window is capped at half the token's lifetime, so a token that lives
    /// less than twice this long is refreshed around the middle of its life
    /// rather than on every request. Each refresh starts up to a quarter of
    /// the window earlier still, at random (so at most 5/8 of the lifetime
    /// early), so that many processes started together do not refresh in
    /// lockstep.
    ///
    /// By default the window scales with the token's lifetime: a tenth of it,
    /// at least 10 seconds and at most 5 minutes (5 minutes for a one-hour
    /// token, 10 seconds for a one-minute token).
    pub fn refresh_before(mut self, window: Duration) -> Self {
        self.config.refresh_before = Some(window.min(LONGEST_SETTING));
        self
    }

    /// The longest time one call to the token source may take; a call that
    /// takes longer fails with [`ErrorKind::Timeout`](crate::ErrorKind::Timeout).
    ///
    /// Defaults to [`DEFAULT_FETCH_TIMEOUT`] (10 seconds). At most
    /// [`LONGEST_SETTING`] (a year): there is always a limit.
    ///
    /// # Panics
    ///
    /// If `timeout` is zero.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        assert!(!timeout.is_zero(), "fetch timeout must be more than zero");
        self.config.fetch_timeout = timeout.min(LONGEST_SETTING);
        self
    }

    /// How long to wait before calling the source again after it failed:
    /// `initial` after the first failure, doubling with each further
    /// consecutive failure up to `max`, with the upper half of each delay
    /// random. Meanwhile a still-valid token stays in use, and callers that
    /// need a new token get the last error at once.
    ///
    /// Defaults to [`DEFAULT_BACKOFF_INITIAL`] (1 second) and
    /// [`DEFAULT_BACKOFF_MAX`] (30 seconds). Each is at most
    /// [`LONGEST_SETTING`] (a year).
    ///
    /// # Panics
    ///
    /// If `initial` is greater than `max`.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        assert!(
            initial <= max,
            "backoff: initial delay ({initial:?}) must not exceed the maximum ({max:?})"
        );
        self.config.backoff = Backoff {
            initial: initial.min(LONGEST_SETTING),
            max: max.min(LONGEST_SETTING),
        };
        self
    }

    /// Names the cache, e.g. after the API its tokens are for: in errors,
    /// in `tracing` spans and events (`token_refresh{source=…}`), in the
    /// `cache` label of its metrics (feature `metrics`), and, for a source
    /// without a [fingerprint](crate::TokenSource::fingerprint) (a
    /// closure), in the [store](Self::store), to tell its tokens from
    /// another cache's. Defaults to the source's
    /// [`name`](crate::TokenSource::name).
    ///
    /// For metrics, give each cache a name of its own that stays the same
    /// across restarts: caches with the same name share series.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = Some(name.into());
        self
    }

    /// Keeps tokens in `store` as well as in memory: before calling its
    /// source the cache takes a token another process (or a previous run)
    /// saved there, and processes sharing the store take turns to refresh
    /// it, so a fleet fetches once per token lifetime. See
    /// [`store`](crate::store).
    ///
    /// Only refreshes consult the store; requests never wait on it, except
    /// a rejected one, whose response waits (at most a fetch timeout) until
    /// the rejected token is [discarded](TokenStore::discard) from the store.
    /// When the store fails, the cache logs a warning and fetches on its own.
    ///
    /// Give each cache a store location of its own, and name caches whose
    /// source is a closure ([`name`](Self::name)): the store records which
    /// source made each token, and a cache ignores tokens of another source
    /// (see [one store location per cache](crate::store#one-store-location-per-cache)).
    /// A process that makes one request per run needs
    /// [`retry_rejected`](crate::TokenRefreshLayer::retry_rejected) to
    /// recover from a stored token that was revoked meanwhile (see
    /// [a store and retries go together](crate::store#a-store-and-retries-go-together)).
    /// Each store call is bounded by the [fetch timeout](Self::fetch_timeout);
    /// a caller waiting for a token may wait for another process's refresh
    /// (at most a [lease](Self::lease) plus a fetch timeout) before this
    /// process fetches on its own.
    pub fn store(mut self, store: impl TokenStore) -> Self {
        self.config.store = Some(StoreHandle(Arc::new(store)));
        self
    }

    /// How long a process may hold the [store](Self::store)'s refresh lock:
    /// if it dies while refreshing, the others wait this long before one of
    /// them takes over. Keep it above the [fetch timeout](Self::fetch_timeout).
    ///
    /// Defaults to twice the fetch timeout (20 seconds). At most
    /// [`LONGEST_SETTING`] (a year).
    ///
    /// # Panics
    ///
    /// If `lease` is zero.
    pub fn lease(mut self, lease: Duration) -> Self {
        assert!(!lease.is_zero(), "lease must be more than zero");
        self.config.lease = Some(lease.min(LONGEST_SETTING));
        self
    }

    /// Builds the cache. No token is fetched until one is needed.
    pub fn build(mut self) -> TokenCache {
        self.config.fingerprint = self.source.fingerprint().or(self.config.name.clone());
        TokenCache::from_parts(self.source, self.config)
    }
}

impl fmt::Debug for TokenCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCacheBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

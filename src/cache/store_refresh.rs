//! A refresh through a [`TokenStore`]: take a token another process saved,
//! or take turns with the other processes to fetch one.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Shared;
use super::backoff::FleetBackoff;
use super::refresh::Reason;
use super::stats::Counters;
use crate::store::{Lease, StoreError, StoreErrorKind, StoredToken, TokenStore};
use crate::{Error, ErrorKind, Token};

/// The first pause between two looks at a store whose lock another process
/// holds; it doubles up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(50);

/// Where a refresh's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Provenance {
    Source,
    Store,
}

impl Provenance {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Provenance::Source => "token source",
            Provenance::Store => "token store",
        }
    }
}

/// One refresh of a cache through its store.
pub(super) struct StoreRefresh<'a> {
    shared: &'a Shared,
    store: &'a Arc<dyn TokenStore>,
}

impl<'a> StoreRefresh<'a> {
    pub(super) fn new(shared: &'a Shared, store: &'a Arc<dyn TokenStore>) -> Self {
        Self { shared, store }
    }

    /// A new token through the store: a usable stored one, or one fetched
    /// while holding the store's lock (and saved), or, when the store fails
    /// or another holder takes too long, one fetched alone.
    ///
    /// `replacing` is the token being replaced (current, expired or
    /// rejected): a stored copy of it is not a new token.
    pub(super) async fn run(
        &self,
        replacing: Option<&Token>,
        reason: Reason,
    ) -> Result<(Token, Provenance), Error> {
        let (shared, store) = (self.shared, self.store);
        let fetched = match self.take_turns(replacing, reason).await {
            Ok(Turn::Stored(token)) => return Ok((token, Provenance::Store)),
            Ok(Turn::Fetched(fetched)) => fetched,
            Ok(Turn::FleetBackingOff(left)) => {
                tracing::debug!(?left, "another process's fetch failed; backing off with it");
                Err(Error::source_failed(FleetBackoff::new(left)))
            }
            Ok(Turn::GaveUp) => {
                tracing::warn!(
                    store = store.name(),
                    "another process held the token store's lock past its lease; fetching alone"
                );
                shared.fetch_from_source().await
            }
            Err(error) => {
                Counters::add(&shared.counters.store_failures);
                tracing::warn!(
                    store = store.name(),
                    error = &error as &dyn std::error::Error,
                    "token store failed; fetching without it"
                );
                shared.fetch_from_source().await
            }
        };
        fetched.map(|token| (token, Provenance::Source))
    }

    /// The rest of a fleet's backoff read from the store, unless it is
    /// longer than any this cache sets: no process of the fleet wrote that
    /// (a clock stepped back, a damaged store), and honouring it would stop
    /// the fleet until then. A fetch that succeeds replaces it.
    fn fleet_backoff(&self, stored: Option<Duration>) -> Option<Duration> {
        let left = stored?;
        if left <= self.shared.longest_backoff() {
            return Some(left);
        }
        tracing::warn!(
            left = ?left,
            "ignoring a fleet backoff longer than any this cache sets"
        );
        None
    }

    async fn take_turns(
        &self,
        replacing: Option<&Token>,
        reason: Reason,
    ) -> Result<Turn, StoreError> {
        let (config, store) = (&self.shared.config, self.store);
        let lease = config.lease();
        // Long enough for a holder that just took the lock to let its lease
        // run out, and for whoever takes over to fetch.
        let give_up_at = Instant::now() + lease + config.fetch_timeout;
        let mut pause = POLL_FIRST;
        loop {
            if let Some(token) = self.ours(self.call(store.load()).await?)?
                && usable(&token, replacing)
            {
                tracing::debug!(reason = reason.as_str(), "token taken from the store");
                return Ok(Turn::Stored(token));
            }
            if let Some(left) = self.fleet_backoff(self.call(store.load_failure()).await?) {
                return Ok(Turn::FleetBackingOff(left));
            }
            if let Some(held) = self.call(store.try_lock(lease)).await? {
                return self.fetch_holding(held, replacing).await;
            }
            if Instant::now() >= give_up_at {
                return Ok(Turn::GaveUp);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(POLL_MAX);
        }
    }

    /// Holding the lock: look once more (another holder may have saved a
    /// token between our look and our lock), else fetch and save.
    async fn fetch_holding(
        &self,
        held: Lease,
        replacing: Option<&Token>,
    ) -> Result<Turn, StoreError> {
        let (shared, store) = (self.shared, self.store);
        let stored = match self
            .call(store.load())
            .await
            .and_then(|stored| self.ours(stored))
        {
            Ok(stored) => stored,
            Err(error) => {
                self.release(held).await;
                return Err(error);
            }
        };
        if let Some(token) = stored.filter(|token| usable(token, replacing)) {
            self.release(held).await;
            tracing::debug!("token taken from the store");
            return Ok(Turn::Stored(token));
        }
        // The previous holder may have failed between our look and our lock.
        match self
            .call(store.load_failure())
            .await
            .map(|left| self.fleet_backoff(left))
        {
            Ok(None) => {}
            Ok(Some(left)) => {
                self.release(held).await;
                return Ok(Turn::FleetBackingOff(left));
            }
            Err(error) => {
                self.release(held).await;
                return Err(error);
            }
        }
        let lease_ends = Instant::now() + shared.config.lease();
        let fetched = shared.fetch_from_source().await;
        if fetched
            .as_ref()
            .is_err_and(|error| error.kind() == ErrorKind::Timeout)
        {
            // The source may still be at work (a refresh token grant finishes
            // its exchange on a task of its own, to keep a rotated refresh
            // token): let nobody else start one before the lease ends.
            let store = Arc::clone(store);
            tokio::spawn(async move {
                tokio::time::sleep_until(lease_ends).await;
                let _ = store.unlock(held).await;
            });
            return Ok(Turn::Fetched(fetched));
        }
        if let Err(error) = &fetched {
            // The others back off with this process instead of each calling
            // a failing identity provider in turn.
            let delay = shared.next_backoff(error);
            if let Err(error) = self.call(store.save_failure(delay, &held)).await {
                tracing::warn!(
                    store = store.name(),
                    error = &error as &dyn std::error::Error,
                    "could not tell the store the fetch failed"
                );
            }
        }
        if let Ok(token) = &fetched
            && token.sender_constraint().is_some()
        {
            // Useless without the key, which never goes into a store: this
            // cache fetches on its own from now on.
            shared
                .key_bound
                .store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(
                store = store.name(),
                "the source's tokens are bound to a key: they are not saved, \
                 and this cache no longer uses its store"
            );
        } else if let Ok(token) = &fetched {
            let stored = StoredToken::new(token.clone(), shared.config.fingerprint.clone());
            match self.call(store.save(&stored, &held)).await {
                Ok(true) => tracing::debug!("token saved to the store"),
                Ok(false) => tracing::warn!(
                    store = store.name(),
                    "the store's lock lease ran out during the fetch; token not saved"
                ),
                Err(error) => {
                    Counters::add(&shared.counters.store_failures);
                    tracing::warn!(
                        store = store.name(),
                        error = &error as &dyn std::error::Error,
                        "could not save the token to the store"
                    );
                }
            }
        }
        self.release(held).await;
        Ok(Turn::Fetched(fetched))
    }

    /// The stored token if this cache's source made it (or one may take it
    /// for a token of no known source: an older record or an unnamed
    /// closure's, which is no token at all to a cache that knows its
    /// source, but may be overwritten). A token of another source is an
    /// error: the cache then fetches without the store, leaving it alone.
    fn ours(&self, stored: Option<StoredToken>) -> Result<Option<Token>, StoreError> {
        let Some(stored) = stored else {
            return Ok(None);
        };
        let mine = self.shared.config.fingerprint.as_deref();
        match (stored.fingerprint(), mine) {
            (theirs, mine) if theirs == mine => Ok(Some(stored.into_token())),
            (None, Some(_)) => Ok(None),
            (theirs, mine) => Err(StoreError::new(
                StoreErrorKind::InvalidConfig,
                "the token store holds a token another source made: give each cache a \
                 store location of its own",
                Some(
                    format!(
                        "stored by {}; this cache's source is {}",
                        theirs.unwrap_or("a source without a fingerprint"),
                        mine.unwrap_or("a source without a fingerprint or name")
                    )
                    .into(),
                ),
            )),
        }
    }

    async fn release(&self, held: Lease) {
        if let Err(error) = self.call(self.store.unlock(held)).await {
            // The lease frees it anyway.
            tracing::debug!(
                error = &error as &dyn std::error::Error,
                "could not release the store's lock"
            );
        }
    }

    /// One store call, bounded by the fetch timeout.
    async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        crate::store::bounded(self.shared.config.fetch_timeout, call).await
    }
}

enum Turn {
    /// Another process (or an earlier run) saved a usable token.
    Stored(Token),
    /// This process held the lock and called the source.
    Fetched(Result<Token, Error>),
    /// The lock stayed taken longer than a lease and a fetch.
    GaveUp,
    /// Another process's fetch failed: the fleet waits this much longer.
    FleetBackingOff(Duration),
}

/// Whether a stored token may replace `replacing`: sendable, not expired, not the same
/// token, and, when both expire, not expiring sooner (a stale copy left by a
/// process that could not reach the store is not newer).
fn usable(stored: &Token, replacing: Option<&Token>) -> bool {
    // A value a header cannot carry is not a token to use (and must not
    // make the cache back off as if the source had failed).
    if stored.is_expired() || http::HeaderValue::from_str(stored.secret()).is_err() {
        return false;
    }
    let Some(replacing) = replacing else {
        return true;
    };
    if stored.secret() == replacing.secret() {
        return false;
    }
    match (stored.expiry(), replacing.expiry()) {
        (Some(stored), Some(replacing)) => stored >= replacing,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stored_token_must_be_newer_than_the_one_it_replaces() {
        let minute = Duration::from_secs(60);
        let current = Token::bearer("a").expires_in(minute);
        assert!(usable(&current, None));
        assert!(!usable(
            &Token::bearer("a").expires_in(2 * minute),
            Some(&current)
        ));
        assert!(usable(
            &Token::bearer("b").expires_in(2 * minute),
            Some(&current)
        ));
        assert!(!usable(
            &Token::bearer("b").expires_in(minute / 2),
            Some(&current)
        ));
        assert!(!usable(
            &Token::bearer("b").expires_in(Duration::ZERO),
            None
        ));
        assert!(usable(&Token::bearer("b"), Some(&current)));
        assert!(!usable(&Token::bearer("line\nbreak"), None));
    }
}

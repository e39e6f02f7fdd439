//! Dropping a rejected token: generation-checked, discarded from the store
//! too, and backing off when fresh tokens keep being rejected.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::Shared;
use super::entry::Entry;
use super::stats::Counters;
use crate::{Error, Token};

/// A token rejected this soon after it replaced a rejected token, without
/// having been accepted once, suggests the credentials, not the token, are
/// the problem.
const REJECTED_AGAIN_WITHIN: Duration = Duration::from_secs(10);

/// What became of a rejected token.
#[derive(Debug)]
pub(crate) struct Rejected {
    /// It was the current token, and is dropped.
    pub(crate) dropped: bool,
    /// It is being discarded from the store: the rejected response waits
    /// for that, so that a process that exits right after leaves no dead
    /// token behind.
    pub(crate) discarding: Option<Discarding>,
}

/// A rejected token being removed from the store, by a task of its own
/// (bounded by the fetch timeout): every request rejected with that token
/// can wait for it to finish.
#[derive(Debug, Clone)]
pub(crate) struct Discarding {
    generation: u64,
    done: watch::Receiver<()>,
    /// How long the task may take: the fetch timeout.
    limit: Duration,
}

/// How much longer than the task's own bound a waiter waits: the task may
/// run on a runtime that stops driving it (a script's idle runtime), and
/// waiters on other runtimes must not wait for it forever.
const STALE_AFTER_LIMIT: Duration = Duration::from_secs(1);

impl Discarding {
    /// Resolves when the store write is over (whatever its outcome), or
    /// shortly after it should have been.
    pub(crate) async fn finished(mut self) {
        // The task drops its sender when it ends.
        let ended = async { while self.done.changed().await.is_ok() {} };
        if tokio::time::timeout(self.limit + STALE_AFTER_LIMIT, ended)
            .await
            .is_err()
        {
            tracing::warn!("the rejected token's removal from the store did not end in time");
        }
    }
}

impl Shared {
    /// Drops the token of `generation` if it is still the current one, and
    /// says whether the store is being told.
    pub(crate) fn reject(self: &Arc<Self>, generation: u64) -> Rejected {
        let current = self.current.load_full();
        let dropped = match current {
            Some(entry) if entry.generation() == generation => self.reject_entry(&entry),
            _ => false,
        };
        // Also for a request rejected with a token another request had
        // dropped already: its discard may still be under way.
        let discarding = self
            .flight()
            .discarding
            .clone()
            .filter(|discarding| discarding.generation == generation);
        Rejected {
            dropped,
            discarding,
        }
    }

    /// Drops `entry` if it is still the current token.
    ///
    /// When the token being dropped was fetched to replace a rejected token,
    /// was never accepted, and is rejected within [`REJECTED_AGAIN_WITHIN`],
    /// the source is not called again before the backoff delay: callers get
    /// [`ErrorKind::RejectedAgain`](crate::ErrorKind::RejectedAgain) meanwhile.
    pub(super) fn reject_entry(self: &Arc<Self>, entry: &Arc<Entry>) -> bool {
        let mut flight = self.flight();
        // Under the lock, so no refresh publishes between check and drop.
        let current = self.current.load();
        if !current
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, entry))
        {
            return false;
        }
        self.current.store(None);
        self.counters.set_expiry(None);
        self.bump();
        self.unconfirmed.store(false, Ordering::Relaxed);
        super::stats::Counters::add(&self.counters.rejections);
        let now = Instant::now();
        let rejected_again = flight.current_replaced_rejected
            && now.saturating_duration_since(entry.published_at()) < REJECTED_AGAIN_WITHIN;
        if rejected_again {
            flight.rejections = flight.rejections.saturating_add(1);
            let delay = self.config.backoff.delay(flight.rejections);
            self.back_off(Error::rejected_again(), now + delay);
            tracing::warn!(
                generation = entry.generation(),
                backoff = ?delay,
                "fresh token rejected too; backing off"
            );
        } else {
            flight.rejections = 0;
            tracing::debug!(generation = entry.generation(), "token invalidated");
        }
        flight.next_replaces_rejected = true;
        flight.rejected = Some(entry.token().clone());
        flight.discarding = self.discard_from_store(entry);
        true
    }

    /// Starts removing the rejected token of `entry` from the store, if the
    /// cache has one (and a runtime to do it on).
    fn discard_from_store(self: &Arc<Self>, entry: &Entry) -> Option<Discarding> {
        // A key-bound token is never saved: nothing to discard.
        if entry.token().sender_constraint().is_some() {
            return None;
        }
        let store = Arc::clone(&self.config.store.as_ref()?.0);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no tokio runtime to discard the rejected token from the store");
            return None;
        };
        let (done, receiver) = watch::channel(());
        let shared = Arc::clone(self);
        let token: Token = entry.token().clone();
        let generation = entry.generation();
        drop(runtime.spawn(async move {
            let limit = shared.config.fetch_timeout;
            match crate::store::bounded(limit, store.discard(&token)).await {
                Ok(true) => tracing::debug!(generation, "rejected token discarded from the store"),
                Ok(false) => tracing::debug!(
                    generation,
                    "the store holds another token than the rejected one; left alone"
                ),
                Err(error) => {
                    Counters::add(&shared.counters.store_failures);
                    tracing::warn!(
                        store = store.name(),
                        error = &error as &dyn std::error::Error,
                        "could not discard the rejected token from the store"
                    );
                }
            }
            drop(done);
        }));
        Some(Discarding {
            generation,
            done: receiver,
            limit: self.config.fetch_timeout,
        })
    }

    /// Notes that the server accepted the token of `generation`: a later
    /// rejection of it is a new revocation, not a sign of bad credentials.
    /// Costs one relaxed atomic load unless the current token replaced a
    /// rejected one and has not been accepted yet.
    #[inline]
    pub(crate) fn accepted(&self, generation: u64) {
        self.accepted_if(generation, || true);
    }

    /// [`accepted`](Self::accepted), if `also` says so (asked only when
    /// the note would change something).
    #[inline]
    pub(crate) fn accepted_if(&self, generation: u64, also: impl FnOnce() -> bool) {
        if self.unconfirmed.load(Ordering::Relaxed) && also() {
            self.confirm(generation);
        }
    }

    #[cold]
    fn confirm(&self, generation: u64) {
        let mut flight = self.flight();
        let current = self.current.load();
        if current
            .as_ref()
            .is_some_and(|entry| entry.generation() == generation)
        {
            flight.current_replaced_rejected = false;
            flight.rejections = 0;
            self.unconfirmed.store(false, Ordering::Relaxed);
        }
    }
}

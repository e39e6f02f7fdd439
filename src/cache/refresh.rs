//! Single-flight refresh: at most one fetch runs per cache, on a task of its
//! own, and every caller that needs its result subscribes to it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use super::Shared;
use super::entry::{Entry, Status};
use super::stats::Counters;
use super::store_refresh::{Provenance, StoreRefresh};
use crate::{Error, Token};

/// The outcome of one refresh, shared by all its waiters.
pub(crate) type Outcome = Result<Arc<Entry>, Error>;

/// Why a refresh starts; recorded in tracing events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// No token yet, or it was invalidated.
    Missing,
    /// The token has expired.
    Expired,
    /// The token is inside its refresh window; requests keep using it.
    Ahead,
    /// A server rejected the token.
    Rejected,
}

impl Reason {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "no token",
            Reason::Expired => "token expired",
            Reason::Ahead => "refresh window open",
            Reason::Rejected => "rejected",
        }
    }
}

/// How much longer than the fetch timeout a refresh may take before it is
/// considered lost (its runtime stopped running it) and replaced.
const STALE_AFTER_TIMEOUT: Duration = Duration::from_secs(1);

/// The refresh in progress.
#[derive(Debug)]
pub(crate) struct Running {
    id: u64,
    started: Instant,
    /// The runtime running the refresh.
    runtime: tokio::runtime::Id,
    receiver: watch::Receiver<Option<Outcome>>,
}

/// Refresh bookkeeping, behind a mutex touched only off the hot path and
/// never held across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    /// Identifies refreshes, so a lost one cannot clear its successor.
    next_id: u64,
    /// Consecutive failed fetches.
    failures: u32,
    /// Consecutive tokens rejected right after replacing a rejected token.
    pub(super) rejections: u32,
    /// The current token replaced a rejected one.
    pub(super) current_replaced_rejected: bool,
    /// The next token will replace a rejected one.
    pub(super) next_replaces_rejected: bool,
    /// The last token dropped as rejected: a store may still hold it.
    pub(super) rejected: Option<Token>,
    /// The removal of the last rejected token from the store.
    pub(super) discarding: Option<super::invalidate::Discarding>,
}

/// The last failure, and when the source may be called again.
pub(crate) struct BackingOff {
    error: Error,
    until: Instant,
}

/// What a caller that needs a token should do next.
pub(crate) enum Join {
    /// A token published meanwhile is good to use.
    Ready(Arc<Entry>),
    /// Wait for the refresh in progress.
    Wait(Waiter),
    /// The source is backing off after a failure (or no refresh can run).
    Failed(Error),
}

/// A subscription to the outcome of one refresh.
#[derive(Debug)]
pub(crate) struct Waiter {
    receiver: watch::Receiver<Option<Outcome>>,
    timeout: Duration,
    /// The refresh runs on another runtime, which could stop running it
    /// while this one goes on: bound the wait with a timer of our own.
    elsewhere: bool,
}

impl Waiter {
    fn new(
        receiver: watch::Receiver<Option<Outcome>>,
        timeout: Duration,
        runtime: tokio::runtime::Id,
    ) -> Self {
        let elsewhere =
            tokio::runtime::Handle::try_current().map_or(true, |current| current.id() != runtime);
        Self {
            receiver,
            timeout,
            elsewhere,
        }
    }

    /// Waits for the refresh to finish. Cancel-safe and bounded: the fetch
    /// has a timeout, a refresh task that dies drops its sender, and a
    /// refresh on another runtime (which may stop polling it) is given up
    /// on shortly after the fetch timeout. (On the same runtime no timer
    /// is needed: a herd of waiters does not pay for one each.)
    pub(crate) async fn outcome(mut self) -> Outcome {
        let waited = if self.elsewhere {
            let limit = self.timeout + STALE_AFTER_TIMEOUT;
            match tokio::time::timeout(limit, self.receiver.wait_for(Option::is_some)).await {
                Ok(waited) => waited,
                Err(_elapsed) => return Err(Error::timeout(self.timeout)),
            }
        } else {
            self.receiver.wait_for(Option::is_some).await
        };
        match waited {
            Ok(outcome) => match &*outcome {
                Some(outcome) => outcome.clone(),
                None => Err(Error::refresh_aborted(false)),
            },
            Err(_closed) => Err(Error::refresh_aborted(false)),
        }
    }
}

impl Shared {
    /// Tells per-thread snapshots that what they hold may be stale.
    pub(super) fn bump(&self) {
        self.version.fetch_add(1, Ordering::Release);
    }

    fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The cache's name, else its source's.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Calls the source, bounded by the fetch timeout.
    pub(super) async fn fetch_from_source(&self) -> Result<Token, Error> {
        Counters::add(&self.counters.fetches);
        let timeout = self.config.fetch_timeout;
        match tokio::time::timeout(timeout, self.source.fetch()).await {
            Ok(Ok(token)) => Ok(token),
            Ok(Err(source_error)) => Err(Error::source_failed(source_error)),
            Err(_elapsed) => Err(Error::timeout(timeout)),
        }
    }

    pub(super) fn flight(&self) -> MutexGuard<'_, Flight> {
        // The lock is never held across code that can panic, but should a
        // panic poison it, the bookkeeping is still consistent: keep going.
        self.flight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the refresh in progress, or starts one, unless a usable token
    /// was published meanwhile or the source is backing off.
    pub(crate) fn join_or_start(self: &Arc<Self>, reason: Reason) -> Join {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Join::Failed(Error::no_runtime());
        };
        let now = Instant::now();
        let timeout = self.config.refresh_limit();
        let join = |running: &Running| {
            (now.saturating_duration_since(running.started) <= timeout + STALE_AFTER_TIMEOUT).then(
                || {
                    Join::Wait(Waiter::new(
                        running.receiver.clone(),
                        timeout,
                        running.runtime,
                    ))
                },
            )
        };
        // A token published meanwhile is good to use if it serves `reason`.
        let usable = || {
            self.current.load_full().filter(|entry| match reason {
                Reason::Ahead => entry.status(now) == Status::Fresh,
                Reason::Missing | Reason::Expired | Reason::Rejected => {
                    entry.status(now) != Status::Expired
                }
            })
        };
        // A herd joins the refresh in progress without taking the lock.
        if let Some(joined) = self.running.load().as_deref().and_then(join) {
            return joined;
        }
        // So do requests while the source backs off (an identity provider
        // that is down): the answer is known.
        if let Some(error) = self.backoff_error(now) {
            return match usable() {
                Some(entry) => Join::Ready(entry),
                None => Join::Failed(error),
            };
        }
        let (task, waiter, reason) = {
            let mut flight = self.flight();
            // `running` only changes under the lock: look again.
            if let Some(running) = self.running.load_full() {
                if let Some(joined) = join(&running) {
                    return joined;
                }
                // Its runtime stopped running it: start another.
                tracing::warn!("token refresh lost (its runtime stopped); starting another");
                self.running.store(None);
            }
            // Re-check under the lock: a refresh may have published a token
            // between the caller's look and now.
            if let Some(entry) = usable() {
                return Join::Ready(entry);
            }
            if let Some(error) = self.backoff_error(now) {
                return Join::Failed(error);
            }
            let (sender, receiver) = watch::channel(None);
            flight.next_id += 1;
            let id = flight.next_id;
            let running = Arc::new(Running {
                id,
                started: now,
                runtime: runtime.id(),
                receiver: receiver.clone(),
            });
            self.running.store(Some(running));
            if reason == Reason::Ahead {
                Counters::add(&self.counters.refreshes_ahead);
            }
            if flight.next_replaces_rejected {
                Counters::add(&self.counters.refreshes_after_rejection);
            }
            // No token because a server rejected it: say so.
            let reason = match reason {
                Reason::Missing if flight.next_replaces_rejected => Reason::Rejected,
                reason => reason,
            };
            // The token this refresh replaces, so that a store's copy of it
            // is not taken for a new one.
            let replacing = self
                .current
                .load_full()
                .map(|entry| entry.token().clone())
                .or_else(|| flight.rejected.clone());
            let task = RefreshTask {
                shared: Arc::clone(self),
                id,
                sender: Some(sender),
                replacing,
            };
            (task, Waiter::new(receiver, timeout, runtime.id()), reason)
        };
        // Spawned outside the lock: on a runtime that is shutting down the
        // task is dropped at once, and its `Drop` takes the lock.
        drop(runtime.spawn(task.run(reason)));
        Join::Wait(waiter)
    }

    /// Records the outcome of refresh `id` under the lock: publishes the new
    /// token, or starts the backoff; either way the refresh is over. The
    /// outcome of a refresh that was replaced as lost is only handed to its
    /// own waiters.
    fn record(&self, id: u64, outcome: &Outcome) {
        let mut flight = self.flight();
        if self
            .running
            .load()
            .as_ref()
            .is_none_or(|running| running.id != id)
        {
            return;
        }
        // What the refresh leaves behind (a token, or a backoff) is
        // published before it stops showing as running: requests that look
        // without the lock see one or the other, never neither.
        match outcome {
            Ok(entry) => {
                flight.failures = 0;
                flight.rejected = None;
                self.backoff.store(None);
                flight.current_replaced_rejected =
                    std::mem::take(&mut flight.next_replaces_rejected);
                if !flight.current_replaced_rejected {
                    flight.rejections = 0;
                }
                self.unconfirmed
                    .store(flight.current_replaced_rejected, Ordering::Relaxed);
                if let Some(constraint) = entry.token().sender_constraint() {
                    *self
                        .last_constraint
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(Arc::clone(constraint));
                }
                self.current.store(Some(Arc::clone(entry)));
                self.counters.set_expiry(Some(entry.token()));
                self.bump();
            }
            Err(error) => {
                flight.failures = flight.failures.saturating_add(1);
                let delay = self.backoff_after(flight.failures, error);
                self.back_off(error.clone(), Instant::now() + delay);
            }
        }
        self.running.store(None);
    }

    /// The delay before the source may be called again after `failures`
    /// consecutive failures, the last one `error`.
    fn backoff_after(&self, failures: u32, error: &Error) -> Duration {
        self.config
            .backoff
            .delay(failures)
            .max(super::backoff::requested_delay(error).unwrap_or_default())
    }

    /// The error of the backoff in force at `now`, if the source is backing
    /// off. Read without the lock.
    fn backoff_error(&self, now: Instant) -> Option<Error> {
        let backing_off = self.backoff.load();
        let backing_off = backing_off.as_deref()?;
        (now < backing_off.until).then(|| backing_off.error.clone())
    }

    /// Backs off after `error` until `until` (under the `flight` lock).
    pub(super) fn back_off(&self, error: Error, until: Instant) {
        self.backoff
            .store(Some(Arc::new(BackingOff { error, until })));
    }

    /// The longest backoff this cache sets: its own maximum, or the longest
    /// delay a source's error may ask for.
    pub(super) fn longest_backoff(&self) -> Duration {
        self.config
            .backoff
            .max
            .max(super::backoff::MAX_REQUESTED_DELAY)
    }

    /// The delay that will follow `error` if it ends the refresh in
    /// progress.
    pub(super) fn next_backoff(&self, error: &Error) -> Duration {
        let failures = self.flight().failures.saturating_add(1);
        self.backoff_after(failures, error)
    }
}

/// The refresh task. If it is dropped before it completes (the source
/// panicked, or the runtime shut down), its `Drop` completes it with an
/// error, so that no waiter hangs and the next caller can start again.
struct RefreshTask {
    shared: Arc<Shared>,
    id: u64,
    sender: Option<watch::Sender<Option<Outcome>>>,
    replacing: Option<Token>,
}

impl RefreshTask {
    async fn run(mut self, reason: Reason) {
        let shared = Arc::clone(&self.shared);
        let span = tracing::info_span!(
            "token_refresh",
            source = shared.name(),
            reason = reason.as_str()
        );
        async move {
            tracing::debug!("token refresh started");
            let started = Instant::now();
            let store = self
                .shared
                .config
                .store
                .as_ref()
                .filter(|_| !self.shared.key_bound.load(Ordering::Relaxed));
            let fetched = match store {
                None => self
                    .shared
                    .fetch_from_source()
                    .await
                    .map(|token| (token, Provenance::Source)),
                Some(store) => {
                    let replacing = self.replacing.take();
                    StoreRefresh::new(&self.shared, &store.0)
                        .run(replacing.as_ref(), reason)
                        .await
                }
            };
            let origin = fetched
                .as_ref()
                .map_or(Provenance::Source, |(_, origin)| *origin);
            if origin == Provenance::Store {
                Counters::add(&self.shared.counters.store_hits);
            }
            let fetched = fetched.map(|(token, _)| token);
            let took = started.elapsed();
            match self.complete(fetched) {
                Some(Ok(entry)) => tracing::info!(
                    ?took,
                    from = origin.as_str(),
                    lifetime = ?entry.token().time_left(),
                    "token refresh succeeded"
                ),
                Some(Err(error)) => tracing::warn!(
                    ?took,
                    error = &error as &dyn std::error::Error,
                    "token refresh failed"
                ),
                None => {}
            }
        }
        .instrument(span)
        .await;
    }

    /// Publishes the outcome and wakes the waiters; `None` if already done.
    fn complete(&mut self, fetched: Result<Token, Error>) -> Option<Outcome> {
        let sender = self.sender.take()?;
        let outcome = fetched.and_then(|token| {
            Entry::new(
                token,
                self.shared.next_generation(),
                self.shared.config.refresh_before,
                Arc::clone(&self.shared.version),
            )
        });
        if outcome.is_err() {
            Counters::add(&self.shared.counters.fetch_failures);
        }
        self.shared.record(self.id, &outcome);
        // No receiver left is fine: nobody was waiting.
        let _ = sender.send(Some(outcome.clone()));
        Some(outcome)
    }
}

impl Drop for RefreshTask {
    fn drop(&mut self) {
        let error = Error::refresh_aborted(std::thread::panicking());
        if let Some(Err(error)) = self.complete(Err(error)) {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "token refresh failed"
            );
        }
    }
}

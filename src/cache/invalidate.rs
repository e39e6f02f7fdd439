//! Dropping a rejected token: generation-checked, and backing off when
//! fresh tokens keep being rejected.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::Shared;
use super::entry::Entry;
use crate::Error;

/// A token rejected this soon after it replaced a rejected token, without
/// having been accepted once, suggests the credentials, not the token, are
/// the problem.
const REJECTED_AGAIN_WITHIN: Duration = Duration::from_secs(10);

impl Shared {
    /// Drops the token of `generation` if it is still the current one.
    /// Returns whether it was dropped.
    pub(crate) fn reject(&self, generation: u64) -> bool {
        let current = self.current.load_full();
        match current {
            Some(entry) if entry.generation() == generation => self.reject_entry(&entry),
            _ => false,
        }
    }

    /// Drops `entry` if it is still the current token.
    ///
    /// When the token being dropped was fetched to replace a rejected token,
    /// was never accepted, and is rejected within [`REJECTED_AGAIN_WITHIN`],
    /// the source is not called again before the backoff delay: callers get
    /// [`ErrorKind::RejectedAgain`](crate::ErrorKind::RejectedAgain) meanwhile.
    pub(super) fn reject_entry(&self, entry: &Arc<Entry>) -> bool {
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
        true
    }

    /// Notes that the server accepted the token of `generation`: a later
    /// rejection of it is a new revocation, not a sign of bad credentials.
    /// Costs one relaxed atomic load unless the current token replaced a
    /// rejected one and has not been accepted yet.
    #[inline]
    pub(crate) fn accepted(&self, generation: u64) {
        if self.unconfirmed.load(Ordering::Relaxed) {
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

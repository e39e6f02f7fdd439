//! A process-wide thread that raises an entry's `due` flag at its refresh
//! time, whether or not a Tokio runtime is running the entry's timer.
//!
//! The request path trusts the flag and never reads the clock. The flag is
//! raised by a timer task on the runtime that fetched the token, which only
//! fires while that runtime is driven: a program that calls
//! `Runtime::block_on` now and then (a script on a current-thread runtime),
//! or a token fetched on one runtime and used from another that stays busy,
//! would otherwise send a token past its expiry after an idle spell. This
//! thread sleeps until the earliest refresh time of all entries and raises
//! their flags on time; the request path then reads the clock and refreshes.
//!
//! The runtime's timer stays: it follows Tokio's (possibly paused) clock,
//! which the tests rely on, and raising a flag twice is harmless.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Instant;

use super::entry::Entry;

/// An entry to raise at `at`.
struct Deadline {
    at: Instant,
    entry: Weak<Entry>,
}

impl PartialEq for Deadline {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Deadline {}

impl PartialOrd for Deadline {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Deadline {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.cmp(&other.at)
    }
}

struct Backstop {
    /// The earliest deadline first.
    deadlines: Mutex<BinaryHeap<Reverse<Deadline>>>,
    /// Wakes the thread when a deadline earlier than all others arrives.
    earlier: Condvar,
}

/// The backstop, if its thread could be started.
static BACKSTOP: OnceLock<Option<Backstop>> = OnceLock::new();

/// When this many deadlines are queued, those of dropped entries (replaced
/// tokens) are cleared out, so that a cache whose tokens are often replaced
/// early keeps the queue small.
const PRUNE_FROM: usize = 1024;

impl Backstop {
    fn deadlines(&self) -> MutexGuard<'_, BinaryHeap<Reverse<Deadline>>> {
        // Nothing that can panic runs under the lock; should it ever be
        // poisoned, the queue is still a valid heap.
        self.deadlines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        let mut deadlines = self.deadlines();
        loop {
            let now = Instant::now();
            while let Some(Reverse(first)) = deadlines.peek()
                && first.at <= now
            {
                if let Some(Reverse(due)) = deadlines.pop()
                    && let Some(entry) = due.entry.upgrade()
                {
                    entry.raise();
                }
            }
            deadlines = match deadlines.peek() {
                Some(Reverse(first)) => {
                    let wait = first.at.saturating_duration_since(now);
                    self.earlier
                        .wait_timeout(deadlines, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .earlier
                    .wait(deadlines)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

/// Raises `entry` at `at` (or at once, should the thread not start).
pub(super) fn raise_at(at: Instant, entry: Weak<Entry>) {
    let backstop = BACKSTOP.get_or_init(|| {
        std::thread::Builder::new()
            .name("token-refresh-backstop".into())
            .spawn(|| {
                // Waits until the `OnceLock` holds the backstop it runs.
                if let Some(backstop) = BACKSTOP.wait() {
                    backstop.run();
                }
            })
            .ok()
            .map(|_| Backstop {
                deadlines: Mutex::new(BinaryHeap::new()),
                earlier: Condvar::new(),
            })
    });
    let Some(backstop) = backstop else {
        // No thread: the request path reads the clock instead.
        if let Some(entry) = entry.upgrade() {
            entry.raise();
        }
        return;
    };
    let mut deadlines = backstop.deadlines();
    if deadlines.len() >= PRUNE_FROM && deadlines.len().is_power_of_two() {
        deadlines.retain(|Reverse(deadline)| deadline.entry.strong_count() > 0);
    }
    let earliest = deadlines.peek().is_none_or(|Reverse(first)| at < first.at);
    deadlines.push(Reverse(Deadline { at, entry }));
    drop(deadlines);
    if earliest {
        backstop.earlier.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::Token;

    fn entry(lifetime: Duration) -> Arc<Entry> {
        let token = Token::bearer("t").expires_in(lifetime);
        Entry::new(token, 1, None, Arc::default()).unwrap()
    }

    #[test]
    fn raises_an_entry_whose_runtime_is_not_driven() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // A 200 ms token: its refresh window opens 75–100 ms from now.
        let entry = runtime.block_on(async { entry(Duration::from_millis(200)) });
        assert!(entry.is_fresh());
        let waited = Instant::now();
        while entry.is_fresh() && waited.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!entry.is_fresh(), "raised while the runtime was idle");
        assert!(
            waited.elapsed() >= Duration::from_millis(50),
            "not before its time"
        );
        drop(runtime);
    }

    #[test]
    fn deadlines_of_dropped_entries_are_cleared_out() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            for _ in 0..3 * PRUNE_FROM {
                drop(entry(Duration::from_secs(3600)));
            }
        });
        let queued = BACKSTOP
            .get()
            .and_then(Option::as_ref)
            .map(|backstop| backstop.deadlines().len())
            .unwrap();
        // Other tests may queue a few of their own meanwhile.
        assert!(queued < PRUNE_FROM + 100, "{queued} deadlines queued");
    }
}

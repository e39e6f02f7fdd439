//! [`Shards`]: one copy of a layer's settings per thread slot, so that the
//! reference each request's future takes is not one counter every thread
//! writes to.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::settings::Settings;

/// Copies of the same settings; each thread takes its references from its
/// own copy. Each copy sits on cache lines of its own (see [`Settings`]).
///
/// The number of copies is a power of two, so that a thread finds its copy
/// with a mask (a 64-bit division costs tens of cycles).
pub(crate) struct Shards<C> {
    copies: Box<[Arc<Settings<C>>]>,
    /// `copies.len() - 1`.
    mask: usize,
}

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// A thread whose slot is not handed out yet.
const UNASSIGNED: usize = usize::MAX;

thread_local! {
    /// This thread's slot, handed out round-robin on first use. A `const`
    /// thread-local without a destructor: reading it is one load, with no
    /// check of its initialisation or destruction.
    static SLOT: Cell<usize> = const { Cell::new(UNASSIGNED) };
}

/// This thread's slot: a number no other thread has.
#[inline]
fn slot() -> usize {
    let slot = SLOT.get();
    if slot != UNASSIGNED {
        return slot;
    }
    assign_slot()
}

#[cold]
#[inline(never)]
fn assign_slot() -> usize {
    // Any value but `UNASSIGNED`, which would only mean asking again.
    let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1);
    SLOT.set(slot);
    slot
}

impl<C: Clone> Shards<C> {
    pub(crate) fn new(settings: Settings<C>) -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |cores| cores.get());
        let count = cores.clamp(1, 64).next_power_of_two();
        let copies: Box<[_]> = (0..count).map(|_| Arc::new(settings.clone())).collect();
        Self {
            mask: copies.len() - 1,
            copies,
        }
    }
}

impl<C> Shards<C> {
    /// This thread's copy.
    #[inline]
    pub(crate) fn this_thread(&self) -> &Arc<Settings<C>> {
        &self.copies[slot() & self.mask]
    }

    /// Any copy, for what does not depend on the thread.
    pub(crate) fn any(&self) -> &Settings<C> {
        &self.copies[0]
    }
}

impl<C: fmt::Debug> fmt::Debug for Shards<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.any(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_keeps_its_slot_and_threads_spread_over_the_copies() {
        let mine = slot();
        assert_ne!(mine, UNASSIGNED);
        assert_eq!(slot(), mine);
        let others: Vec<usize> = (0..4)
            .map(|_| std::thread::spawn(slot).join().unwrap())
            .collect();
        for (index, other) in others.iter().enumerate() {
            assert!(
                !others[..index].contains(other),
                "slots are handed out once"
            );
        }
    }
}

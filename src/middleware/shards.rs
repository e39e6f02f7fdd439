//! [`Shards`]: one copy of a layer's settings per thread slot, so that the
//! reference each request's future takes is not one counter every thread
//! writes to.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::settings::Settings;

/// Copies of the same settings; each thread takes its references from its
/// own copy. Each copy sits on cache lines of its own (see [`Settings`]).
pub(crate) struct Shards<C> {
    copies: Box<[Arc<Settings<C>>]>,
}

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's slot, handed out round-robin.
    static SLOT: usize = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
}

impl<C: Clone> Shards<C> {
    pub(crate) fn new(settings: Settings<C>) -> Self {
        let count = std::thread::available_parallelism()
            .map_or(4, |cores| cores.get())
            .clamp(1, 64);
        let copies = (0..count).map(|_| Arc::new(settings.clone())).collect();
        Self { copies }
    }
}

impl<C> Shards<C> {
    /// This thread's copy.
    #[inline]
    pub(crate) fn local(&self) -> &Arc<Settings<C>> {
        let slot = SLOT.try_with(|slot| *slot).unwrap_or(0);
        &self.copies[slot % self.copies.len()]
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

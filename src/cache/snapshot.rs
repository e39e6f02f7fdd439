//! Per-thread snapshots of the current credential: the hot path compares a
//! cache's version (one atomic read) with the thread's snapshot and, if
//! nothing changed, uses it without touching the shared token.

use std::cell::RefCell;

use http::HeaderValue;

use super::Credential;

/// Snapshots kept per thread (caches used by one thread at once).
const SLOTS: usize = 4;

struct Snapshot {
    cache: u64,
    version: u64,
    header: HeaderValue,
    generation: u64,
}

#[derive(Default)]
struct Snapshots {
    slots: [Option<Snapshot>; SLOTS],
    next: usize,
}

thread_local! {
    static SNAPSHOTS: RefCell<Snapshots> = RefCell::new(Snapshots::default());
}

/// This thread's credential for `cache`, if it was taken at `version`.
#[inline]
pub(super) fn get(cache: u64, version: u64) -> Option<Credential> {
    SNAPSHOTS
        .try_with(|snapshots| {
            let snapshots = snapshots.try_borrow().ok()?;
            snapshots.slots.iter().flatten().find_map(|snapshot| {
                (snapshot.cache == cache && snapshot.version == version).then(|| Credential {
                    header: snapshot.header.clone(),
                    generation: snapshot.generation,
                })
            })
        })
        .ok()
        .flatten()
}

/// Remembers `credential` for `cache` at `version` on this thread.
pub(super) fn put(cache: u64, version: u64, credential: &Credential) {
    let _ = SNAPSHOTS.try_with(|snapshots| {
        let Ok(mut snapshots) = snapshots.try_borrow_mut() else {
            return;
        };
        let snapshot = Snapshot {
            cache,
            version,
            header: credential.header.clone(),
            generation: credential.generation,
        };
        let existing = snapshots
            .slots
            .iter()
            .position(|slot| slot.as_ref().is_some_and(|slot| slot.cache == cache));
        let index = match existing {
            Some(index) => index,
            None => {
                let index = snapshots.next;
                snapshots.next = (index + 1) % SLOTS;
                index
            }
        };
        snapshots.slots[index] = Some(snapshot);
    });
}

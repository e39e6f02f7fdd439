//! Per-thread snapshots of the current credential: the hot path compares a
//! cache's version (one atomic read) with the thread's snapshot and, if
//! nothing changed, uses it without touching the shared token.
//!
//! A snapshot holds a copy of the header's bytes of its own (made once per
//! thread and token, never per request): a request's header is a clone of
//! the thread's copy, so threads do not all count references on the one
//! shared allocation of the cache's header.

use std::cell::RefCell;

use http::HeaderValue;

use super::Credential;

/// Snapshots kept per thread (caches used by one thread at once).
const SLOTS: usize = 4;

struct Snapshot {
    cache: u64,
    version: u64,
    /// This thread's copy of the header (its bytes shared only with the
    /// requests sent from this thread).
    header: HeaderValue,
    generation: u64,
}

impl Snapshot {
    #[inline]
    fn credential(&self) -> Credential {
        Credential {
            header: self.header.clone(),
            generation: self.generation,
        }
    }
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
                (snapshot.cache == cache && snapshot.version == version)
                    .then(|| snapshot.credential())
            })
        })
        .ok()
        .flatten()
}

/// Remembers `credential` for `cache` at `version` on this thread, and
/// returns it with this thread's copy of the header (or as it is, if the
/// thread's snapshots are gone or in use).
pub(super) fn put(cache: u64, version: u64, credential: Credential) -> Credential {
    SNAPSHOTS
        .try_with(|snapshots| {
            let Ok(mut snapshots) = snapshots.try_borrow_mut() else {
                return None;
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
            let slot = &mut snapshots.slots[index];
            match slot.as_mut().filter(|snapshot| {
                snapshot.cache == cache
                    && snapshot.generation == credential.generation
                    && snapshot.header == credential.header
            }) {
                // The same token at a new version: keep this thread's copy.
                Some(snapshot) => snapshot.version = version,
                None => {
                    *slot = Some(Snapshot {
                        cache,
                        version,
                        header: own_copy(&credential.header),
                        generation: credential.generation,
                    });
                }
            }
            slot.as_ref().map(Snapshot::credential)
        })
        .ok()
        .flatten()
        .unwrap_or(credential)
}

/// A copy of `header` in an allocation of its own, ready to be cloned
/// without allocating.
fn own_copy(header: &HeaderValue) -> HeaderValue {
    let Ok(mut copy) = HeaderValue::from_bytes(header.as_bytes()) else {
        // Cannot happen (the bytes were a header value already); sharing
        // the cache's bytes is right, only slower.
        return header.clone();
    };
    copy.set_sensitive(header.is_sensitive());
    // The first clone of a freshly built value moves its bytes to shared
    // storage (one allocation); keep that clone, so that requests never
    // allocate and clone it with one reference-count increment.
    copy.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(value: &'static str, generation: u64) -> Credential {
        let mut header = HeaderValue::from_static(value);
        header.set_sensitive(true);
        Credential { header, generation }
    }

    #[test]
    fn a_thread_uses_its_own_sensitive_copy() {
        std::thread::spawn(|| {
            let returned = put(1, 7, credential("Bearer a", 3));
            let got = get(1, 7).unwrap();
            assert_eq!(
                returned.header.as_bytes().as_ptr(),
                got.header.as_bytes().as_ptr(),
                "put gives this thread's copy, from the first request on"
            );
            assert_eq!(got.header, "Bearer a");
            assert!(got.header.is_sensitive());
            assert_eq!(got.generation, 3);
            assert!(get(1, 8).is_none(), "another version");
            assert!(get(2, 7).is_none(), "another cache");

            // A copy, not the value that was put.
            let put_bytes = "Bearer a".as_ptr();
            assert_ne!(got.header.as_bytes().as_ptr(), put_bytes);
            // Clones share this thread's copy.
            let again = get(1, 7).unwrap();
            assert_eq!(
                got.header.as_bytes().as_ptr(),
                again.header.as_bytes().as_ptr()
            );

            // The same token at a new version keeps the copy; a new token
            // replaces it.
            put(1, 8, credential("Bearer a", 3));
            let kept = get(1, 8).unwrap();
            assert_eq!(
                kept.header.as_bytes().as_ptr(),
                got.header.as_bytes().as_ptr()
            );
            assert!(get(1, 7).is_none());
            put(1, 9, credential("Bearer b", 4));
            let new = get(1, 9).unwrap();
            assert_eq!(new.header, "Bearer b");
            assert_eq!(new.generation, 4);
            assert!(new.header.is_sensitive());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn threads_do_not_share_copies() {
        put(10, 1, credential("Bearer shared?", 1));
        let here = get(10, 1).unwrap();
        let there = std::thread::spawn(|| {
            put(10, 1, credential("Bearer shared?", 1));
            get(10, 1).unwrap().header.as_bytes().as_ptr() as usize
        })
        .join()
        .unwrap();
        assert_ne!(here.header.as_bytes().as_ptr() as usize, there);
    }
}

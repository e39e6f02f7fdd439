//! [`Nonces`]: the latest `DPoP-Nonce` each origin gave, bounded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use crate::OriginId;

/// At most this many origins' nonces are kept (the least recently given
/// is forgotten first): a server cannot grow the map without bound.
pub const MAX_ORIGINS: usize = 64;

/// The longest nonce kept; a longer one is ignored.
pub const MAX_NONCE_BYTES: usize = 1024;

/// The latest nonce per origin. Nonces are never logged.
#[derive(Default)]
pub(crate) struct Nonces {
    latest: Mutex<VecDeque<(OriginId, Arc<str>)>>,
}

impl Nonces {
    /// The nonce `origin` gave last, if any.
    pub(crate) fn get(&self, origin: OriginId) -> Option<Arc<str>> {
        let latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        latest
            .iter()
            .find(|(id, _)| *id == origin)
            .map(|(_, nonce)| Arc::clone(nonce))
    }

    /// Keeps `nonce` as `origin`'s latest, if it is a valid nonce
    /// (RFC 9449 §8.1: one or more of `%x21 / %x23-5B / %x5D-7E`, here at
    /// most [`MAX_NONCE_BYTES`]). Returns whether it was kept.
    pub(crate) fn set(&self, origin: OriginId, nonce: &str) -> bool {
        let valid = !nonce.is_empty()
            && nonce.len() <= MAX_NONCE_BYTES
            && nonce
                .bytes()
                .all(|byte| matches!(byte, 0x21 | 0x23..=0x5b | 0x5d..=0x7e));
        if !valid {
            return false;
        }
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = match latest.iter().position(|(id, _)| *id == origin) {
            // The same nonce again (every response may repeat it): no
            // allocation.
            Some(index) if &*latest[index].1 == nonce => latest.remove(index),
            Some(index) => {
                latest.remove(index);
                None
            }
            None => None,
        };
        if latest.len() >= MAX_ORIGINS {
            latest.pop_front();
        }
        // Given last: forgotten last.
        latest.push_back(kept.unwrap_or_else(|| (origin, Arc::from(nonce))));
        true
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(n: usize) -> OriginId {
        OriginId::of(&format!("https://host-{n}.example.com/").parse().unwrap()).unwrap()
    }

    #[test]
    fn keeps_the_latest_nonce_per_origin() {
        let nonces = Nonces::default();
        assert!(nonces.set(origin(1), "n-1"));
        assert!(nonces.set(origin(2), "n-2"));
        assert!(nonces.set(origin(1), "n-1b"));
        assert_eq!(nonces.get(origin(1)).as_deref(), Some("n-1b"));
        assert_eq!(nonces.get(origin(2)).as_deref(), Some("n-2"));
        assert_eq!(nonces.get(origin(3)), None);
    }

    #[test]
    fn bounded_in_origins_and_length_and_refuses_what_is_not_a_nonce() {
        let nonces = Nonces::default();
        for n in 0..1000 {
            nonces.set(origin(n), "nonce");
        }
        assert_eq!(nonces.len(), MAX_ORIGINS);
        assert_eq!(nonces.get(origin(0)), None, "the oldest went first");
        assert!(nonces.get(origin(999)).is_some());
        // Given again, an origin is forgotten last.
        nonces.set(origin(936), "again");
        for n in 2000..2063 {
            nonces.set(origin(n), "nonce");
        }
        assert_eq!(nonces.get(origin(936)).as_deref(), Some("again"));
        assert_eq!(nonces.get(origin(937)), None);
        for bad in ["", "with space", "quote\"", "back\\slash", "ünïcode"] {
            assert!(!nonces.set(origin(1), bad), "{bad:?}");
        }
        assert!(!nonces.set(origin(1), &"x".repeat(MAX_NONCE_BYTES + 1)));
        assert!(nonces.set(origin(1), &"x".repeat(MAX_NONCE_BYTES)));
    }
}

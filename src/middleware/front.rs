//! [`Front`]: a service's own copy of the credential it last sent, in front
//! of the cache's per-thread snapshots.

use crate::TokenCache;
use crate::cache::Credential;

/// The credential a [`TokenRefresh`](super::TokenRefresh) last sent, reused
/// without looking up the thread's snapshot while it is still the one the
/// snapshot would give: taken on this thread (its header's bytes are this
/// thread's copy, so threads still do not share a reference count), for
/// the same route, at the cache's current [version](TokenCache::version).
/// Checking that is one atomic load and three comparisons.
///
/// Kept from a service's second request on: a service that is cloned for
/// each request (`clone().oneshot(..)`) sends one, and would only pay for
/// keeping it. A clone starts empty for the same reason.
///
/// Not `Debug`: it holds a token.
#[derive(Default)]
pub(crate) enum Front {
    /// No request sent yet.
    #[default]
    Unused,
    /// Requests were sent, with no credential to keep for the last one.
    Used,
    /// The credential of the last request.
    Kept {
        slot: usize,
        route: usize,
        version: u64,
        credential: Credential,
    },
}

impl Front {
    /// The fresh credential of `route`'s `cache`, for a request sent on the
    /// thread in `slot`; `None` if the cache has no fresh token.
    #[inline]
    pub(crate) fn credential(
        &mut self,
        slot: usize,
        route: usize,
        cache: &TokenCache,
    ) -> Option<Credential> {
        if let Front::Kept {
            slot: kept_slot,
            route: kept_route,
            version,
            credential,
        } = self
            && *kept_slot == slot
            && *kept_route == route
            && *version == cache.version()
        {
            return Some(credential.clone());
        }
        self.refill(slot, route, cache)
    }

    /// From the thread's snapshot (or the cache), keeping a copy from the
    /// second request on.
    #[inline(never)]
    fn refill(&mut self, slot: usize, route: usize, cache: &TokenCache) -> Option<Credential> {
        let Some((version, credential)) = cache.fresh_credential() else {
            *self = Front::Used;
            return None;
        };
        *self = match self {
            Front::Unused => Front::Used,
            Front::Used | Front::Kept { .. } => Front::Kept {
                slot,
                route,
                version,
                credential: credential.clone(),
            },
        };
        Some(credential)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::middleware::shards::slot;
    use crate::{BoxError, Token};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A cache that hands out `<name>-1`, `<name>-2`, … and has the first.
    fn counting_cache(runtime: &tokio::runtime::Runtime, name: &'static str) -> TokenCache {
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let cache = TokenCache::new(move || {
            let n = fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            async move {
                Ok::<_, BoxError>(
                    Token::bearer(format!("{name}-{n}")).expires_in(Duration::from_secs(3600)),
                )
            }
        });
        runtime.block_on(cache.token()).unwrap();
        cache
    }

    fn kept_header(front: &Front) -> Option<&http::HeaderValue> {
        match front {
            Front::Kept { credential, .. } => Some(&credential.header),
            _ => None,
        }
    }

    #[test]
    fn kept_from_the_second_request_and_reused_while_the_version_holds() {
        let runtime = runtime();
        let cache = counting_cache(&runtime, "token");
        let mut front = Front::default();
        let here = slot();

        let first = front.credential(here, 0, &cache).unwrap();
        assert_eq!(first.header, "Bearer token-1");
        assert!(
            matches!(front, Front::Used),
            "nothing kept after one request"
        );

        front.credential(here, 0, &cache).unwrap();
        let kept = kept_header(&front).expect("kept after the second").clone();
        let third = front.credential(here, 0, &cache).unwrap();
        assert_eq!(third.header, "Bearer token-1");
        assert_eq!(
            third.header.as_bytes().as_ptr(),
            kept.as_bytes().as_ptr(),
            "the kept copy is what goes out"
        );
        assert!(third.header.is_sensitive());
    }

    #[test]
    fn a_new_token_replaces_the_kept_one_at_once() {
        let runtime = runtime();
        let cache = counting_cache(&runtime, "token");
        let mut front = Front::default();
        let here = slot();
        front.credential(here, 0, &cache).unwrap();
        let before = front.credential(here, 0, &cache).unwrap();
        assert!(kept_header(&front).is_some());

        let token = runtime.block_on(cache.token()).unwrap();
        assert!(cache.invalidate(&token));
        assert!(
            front.credential(here, 0, &cache).is_none(),
            "the dropped token is not sent from the kept copy"
        );
        runtime.block_on(cache.token()).unwrap();
        let after = front.credential(here, 0, &cache).unwrap();
        assert_eq!(after.header, "Bearer token-2");
        assert_ne!(after.generation, before.generation);
        assert_eq!(kept_header(&front).unwrap(), "Bearer token-2");
    }

    #[test]
    fn another_route_or_thread_does_not_use_the_kept_copy() {
        let runtime = runtime();
        let (one, two) = (
            counting_cache(&runtime, "one"),
            counting_cache(&runtime, "two"),
        );
        assert_eq!(
            one.version(),
            two.version(),
            "only the route tells their kept copies apart"
        );
        let mut front = Front::default();
        let here = slot();
        front.credential(here, 0, &one).unwrap();
        front.credential(here, 0, &one).unwrap();
        assert_eq!(kept_header(&front).unwrap(), "Bearer one-1");

        // Route 1 has its own cache: its token, not the kept one of route 0.
        let other = front.credential(here, 1, &two).unwrap();
        assert_eq!(other.header, "Bearer two-1");
        assert!(matches!(front, Front::Kept { route: 1, .. }));

        // Moved to another thread, a service takes that thread's copy.
        let kept = kept_header(&front).unwrap().as_bytes().as_ptr() as usize;
        let there = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let credential = front.credential(slot(), 1, &two).unwrap();
                    credential.header.as_bytes().as_ptr() as usize
                })
                .join()
                .unwrap()
        });
        assert_ne!(there, kept, "another thread's bytes");
    }
}

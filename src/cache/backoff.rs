//! How long to wait before calling the source again after failures.

use std::time::Duration;

use crate::{RetryAfter, jitter};

/// The longest delay a source's error can ask for (`Retry-After`, a
/// fleet's backoff); asking for more means trying again after this long.
pub(crate) const MAX_REQUESTED_DELAY: Duration = Duration::from_secs(10 * 60);

/// Exponential backoff with jitter after consecutive fetch failures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// The delay before the next fetch after `failures` consecutive failures
    /// (at least one): `initial * 2^(failures - 1)`, capped at `max`, of which
    /// the upper half is random ("equal jitter").
    pub(crate) fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1));
        let base = self
            .initial
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max);
        base / 2 + jitter::up_to(base / 2)
    }
}

/// Another process sharing the token store failed to fetch a token and
/// asked the fleet to back off with it: its source is the [`RetryAfter`]
/// for the rest of the fleet's backoff.
#[derive(Debug)]
pub(crate) struct FleetBackoff {
    left: RetryAfter,
}

impl FleetBackoff {
    pub(crate) fn new(left: Duration) -> Self {
        Self {
            left: RetryAfter::new(left),
        }
    }
}

impl std::fmt::Display for FleetBackoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "another process sharing the token store failed to fetch a token; \
             the fleet backs off with it",
        )
    }
}

impl std::error::Error for FleetBackoff {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.left)
    }
}

/// The delay a token source's error asks for (a [`RetryAfter`] anywhere in
/// its chain: an identity provider's `Retry-After`, the rest of a fleet's
/// backoff, a source's own), capped at [`MAX_REQUESTED_DELAY`]: a delay far
/// in the future (a clock stepped back, a damaged store) must not stop the
/// source for good.
pub(crate) fn requested_delay(error: &crate::Error) -> Option<Duration> {
    let cause = std::error::Error::source(error)?;
    RetryAfter::find(cause).map(|asked| asked.delay().min(MAX_REQUESTED_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
        };
        for _ in 0..100 {
            let first = backoff.delay(1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
            let fourth = backoff.delay(4);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8));
            let capped = backoff.delay(1000);
            assert!(capped >= Duration::from_secs(15) && capped <= Duration::from_secs(30));
        }
    }

    #[test]
    fn a_fleet_backoff_is_capped_like_retry_after() {
        let error =
            crate::Error::source_failed(FleetBackoff::new(Duration::from_secs(365 * 24 * 3600)));
        assert_eq!(requested_delay(&error), Some(MAX_REQUESTED_DELAY));
        let error = crate::Error::source_failed(FleetBackoff::new(Duration::from_secs(3)));
        assert_eq!(requested_delay(&error), Some(Duration::from_secs(3)));
    }
}

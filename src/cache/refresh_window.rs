//! When to refresh a token ahead of its expiry.

use std::time::Duration;

use tokio::time::Instant;

use crate::jitter;

/// Shortest automatic refresh window.
pub(crate) const MIN_AUTO_REFRESH_WINDOW: Duration = Duration::from_secs(10);
/// Longest automatic refresh window.
pub(crate) const MAX_AUTO_REFRESH_WINDOW: Duration = Duration::from_secs(5 * 60);

/// How early to refresh a token that expires at `expiry`, `lifetime` after
/// it was received: the start of its refresh window.
///
/// The window is `refresh_before` if set, else a tenth of the lifetime
/// clamped to [`MIN_AUTO_REFRESH_WINDOW`, `MAX_AUTO_REFRESH_WINDOW`]; never
/// more than half the lifetime, so a short-lived token is not refreshed on
/// every request. A random extra of up to a quarter of the window spreads
/// the refreshes of many processes.
pub(crate) fn refresh_at(
    expiry: Instant,
    lifetime: Duration,
    refresh_before: Option<Duration>,
) -> Instant {
    let window = refresh_before
        .unwrap_or_else(|| (lifetime / 10).clamp(MIN_AUTO_REFRESH_WINDOW, MAX_AUTO_REFRESH_WINDOW))
        .min(lifetime / 2);
    let early = window + jitter::up_to(window / 4);
    expiry.checked_sub(early).unwrap_or(expiry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(lifetime: Duration, refresh_before: Option<Duration>) -> (Duration, Duration) {
        // (earliest, latest) offsets before expiry over many draws.
        let expiry = Instant::now() + Duration::from_secs(100_000);
        let early: Vec<Duration> = (0..500)
            .map(|_| expiry - refresh_at(expiry, lifetime, refresh_before))
            .collect();
        (*early.iter().min().unwrap(), *early.iter().max().unwrap())
    }

    #[test]
    fn auto_window_scales_with_lifetime() {
        let secs = Duration::from_secs;
        // An hour-long token: 5 min window (+ up to 75 s jitter).
        let (min, max) = window(secs(3600), None);
        assert!(min >= secs(300) && max <= secs(375), "{min:?} {max:?}");
        assert!(max > secs(310), "jitter spreads refreshes: {max:?}");
        // Twenty minutes: a tenth.
        let (min, max) = window(secs(1200), None);
        assert!(min >= secs(120) && max <= secs(150), "{min:?} {max:?}");
        // A minute: at least ten seconds.
        let (min, max) = window(secs(60), None);
        assert!(
            min >= secs(10) && max <= Duration::from_millis(12_500),
            "{min:?} {max:?}"
        );
        // Three seconds: never more than half the lifetime (+ jitter).
        let (min, max) = window(secs(3), None);
        assert!(min >= Duration::from_millis(1500), "{min:?}");
        assert!(max <= Duration::from_millis(1875), "{max:?}");
    }

    #[test]
    fn explicit_window_is_capped_at_half_the_lifetime() {
        let secs = Duration::from_secs;
        let (min, max) = window(secs(600), Some(secs(30)));
        assert!(min >= secs(30) && max <= Duration::from_millis(37_500));
        let (min, _) = window(secs(20), Some(secs(60)));
        assert!(min >= secs(10) && min < secs(13));
    }
}

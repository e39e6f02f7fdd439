//! Random jitter for refresh times and backoff delays, so many processes do
//! not act in lockstep.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    // `RandomState` is seeded from the OS once per process and varied per
    // instance: enough for jitter, which needs no cryptographic quality.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x9E37_79B9_7F4A_7C15);
    hasher.finish() | 1
}

/// xorshift64*: a fast, small pseudo-random generator.
fn next_u64() -> u64 {
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// A random number, for names that must not collide (temporary files);
/// not for secrets.
pub(crate) fn random_u64() -> u64 {
    next_u64()
}

/// A uniformly random duration in `[0, max]`.
pub(crate) fn up_to(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    // Multiply-shift maps 64 random bits onto [0, nanos] without modulo bias
    // worth caring about here.
    let scaled = (u128::from(next_u64()) * (u128::from(nanos) + 1)) >> 64;
    Duration::from_nanos(scaled as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_in_range_and_varies() {
        let max = Duration::from_millis(250);
        let samples: Vec<Duration> = (0..1000).map(|_| up_to(max)).collect();
        assert!(samples.iter().all(|d| *d <= max));
        let low = samples.iter().filter(|d| **d < max / 2).count();
        assert!((300..700).contains(&low), "{low} of 1000 below the middle");
        assert_eq!(up_to(Duration::ZERO), Duration::ZERO);
        assert!(up_to(Duration::MAX) <= Duration::MAX);
    }
}

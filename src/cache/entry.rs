//! A published token: its prebuilt header and a flag that says, without
//! reading the clock, whether it may be used as is.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use http::HeaderValue;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::{backstop, refresh_window};
use crate::{Error, Token};

/// What a request may do with an [`Entry`] at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Use it.
    Fresh,
    /// Use it, and make sure a background refresh is running.
    RefreshDue,
    /// Do not use it: wait for a new one.
    Expired,
}

/// The token currently published by a cache.
///
/// The request path only reads `due`, an atomic flag, and clones `header`
/// (a reference-count increment). A timer task raises `due` when the refresh
/// window opens; from then on requests compare the clock with the times kept
/// here. Should the timer not run (no runtime, or its runtime shut down), the
/// flag is raised anyway so that decisions fall back to reading the clock;
/// should its runtime not be driven when the window opens, the
/// [backstop](super::backstop) thread raises it on time.
pub(crate) struct Entry {
    token: Token,
    header: HeaderValue,
    refresh_at: Option<Instant>,
    published_at: Instant,
    due: AtomicBool,
    /// The cache's version, bumped when `due` is raised.
    version: Arc<AtomicU64>,
    timer: OnceLock<AbortHandle>,
}

impl Entry {
    /// Prepares `token` for publication as generation `generation`.
    ///
    /// # Errors
    ///
    /// If the token cannot be sent in a header, or has already expired.
    pub(crate) fn new(
        token: Token,
        generation: u64,
        refresh_before: Option<Duration>,
        version: Arc<AtomicU64>,
    ) -> Result<Arc<Self>, Error> {
        let now = Instant::now();
        let refresh_at = match token.expiry() {
            None => None,
            Some(expiry) if expiry <= now => return Err(Error::expired_token()),
            Some(expiry) => Some(refresh_window::refresh_at(
                expiry,
                expiry - now,
                refresh_before,
            )),
        };
        let scheme = token
            .sender_constraint()
            .map_or("Bearer", |constraint| constraint.scheme());
        let mut header = HeaderValue::try_from(format!("{scheme} {}", token.secret()))
            .map_err(|_| Error::invalid_token())?;
        header.set_sensitive(true);
        // The first clone of a freshly built value moves its bytes to shared
        // storage (one allocation); do it now, so that requests never do.
        drop(header.clone());

        let entry = Arc::new(Self {
            token: token.with_generation(generation),
            header,
            refresh_at,
            published_at: now,
            due: AtomicBool::new(false),
            version,
            timer: OnceLock::new(),
        });
        if let Some(refresh_at) = refresh_at {
            entry.start_timer(refresh_at, now);
        }
        Ok(entry)
    }

    fn start_timer(self: &Arc<Self>, refresh_at: Instant, now: Instant) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.due.store(true, Ordering::Relaxed);
            return;
        };
        if refresh_at <= now {
            self.due.store(true, Ordering::Relaxed);
            return;
        }
        // Raised when the timer fires, and also when its task is dropped
        // without firing (runtime shut down): then requests read the clock.
        let raise = RaiseOnDrop(Arc::downgrade(self));
        let timer = runtime.spawn(async move {
            tokio::time::sleep_until(refresh_at).await;
            drop(raise);
        });
        let _ = self.timer.set(timer.abort_handle());
        backstop::raise_at(refresh_at.into_std(), Arc::downgrade(self));
    }

    /// Raises `due` (once), and bumps the cache's version so that requests
    /// holding a copy of this entry's credential look again.
    pub(super) fn raise(&self) {
        if !self.due.swap(true, Ordering::Relaxed) {
            self.version.fetch_add(1, Ordering::Release);
        }
    }

    pub(crate) fn token(&self) -> &Token {
        &self.token
    }

    pub(crate) fn header(&self) -> &HeaderValue {
        &self.header
    }

    /// When the cache received this token.
    pub(crate) fn published_at(&self) -> Instant {
        self.published_at
    }

    pub(crate) fn generation(&self) -> u64 {
        self.token.generation()
    }

    /// The lock-free, clock-free check of the request path.
    #[inline]
    pub(crate) fn is_fresh(&self) -> bool {
        !self.due.load(Ordering::Relaxed)
    }

    /// The full check by the clock, for paths off the hot path (which also
    /// stay right when the timer cannot run).
    pub(crate) fn status(&self, now: Instant) -> Status {
        match (self.token.expiry(), self.refresh_at) {
            (Some(expiry), _) if now >= expiry => Status::Expired,
            (_, Some(refresh_at)) if now >= refresh_at => Status::RefreshDue,
            _ => Status::Fresh,
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token's own `Debug` is redacted; the header is not shown.
        f.debug_struct("Entry")
            .field("token", &self.token)
            .field("refresh_at", &self.refresh_at)
            .field("due", &self.due)
            .finish_non_exhaustive()
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.get() {
            timer.abort();
        }
    }
}

struct RaiseOnDrop(Weak<Entry>);

impl Drop for RaiseOnDrop {
    fn drop(&mut self) {
        if let Some(entry) = self.0.upgrade() {
            entry.raise();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[tokio::test(start_paused = true)]
    async fn timer_marks_the_entry_due_then_the_clock_decides() {
        let token = Token::bearer("t").expires_in(Duration::from_secs(100));
        let entry = Entry::new(token, 1, Some(Duration::from_secs(10)), Arc::default()).unwrap();
        assert!(entry.is_fresh());
        assert_eq!(entry.header().to_str().unwrap(), "Bearer t");
        assert!(entry.header().is_sensitive());

        // The window opens at 90 s minus up to 2.5 s of jitter.
        tokio::time::advance(Duration::from_secs(87)).await;
        assert!(entry.is_fresh());
        tokio::time::advance(Duration::from_secs(4)).await;
        tokio::task::yield_now().await;
        assert!(!entry.is_fresh());
        assert_eq!(entry.status(Instant::now()), Status::RefreshDue);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(entry.status(Instant::now()), Status::Expired);
    }

    #[tokio::test(start_paused = true)]
    async fn token_without_expiry_stays_fresh() {
        let entry = Entry::new(Token::bearer("t"), 1, None, Arc::default()).unwrap();
        tokio::time::advance(Duration::from_secs(1_000_000)).await;
        assert_eq!(entry.status(Instant::now()), Status::Fresh);
    }

    #[test]
    fn without_a_runtime_the_clock_decides() {
        let token = Token::bearer("t").expires_in(Duration::from_secs(100));
        let entry = Entry::new(token, 1, None, Arc::default()).unwrap();
        assert!(!entry.is_fresh());
        assert_eq!(entry.status(Instant::now()), Status::Fresh);
    }

    #[test]
    fn runtime_shutdown_falls_back_to_the_clock() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let entry = runtime.block_on(async {
            let token = Token::bearer("t").expires_in(Duration::from_secs(100));
            Entry::new(token, 1, None, Arc::default()).unwrap()
        });
        assert!(entry.is_fresh());
        drop(runtime);
        assert!(!entry.is_fresh());
        assert_eq!(entry.status(Instant::now()), Status::Fresh);
    }

    #[test]
    fn unusable_tokens_are_refused() {
        let err = Entry::new(Token::bearer("line\nbreak"), 1, None, Arc::default())
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidToken);
        let expired = Token::bearer("t").expires_in(Duration::ZERO);
        let err = Entry::new(expired, 1, None, Arc::default()).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::ExpiredToken);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_token_value_is_accepted_or_refused_without_showing_it(value in ".*") {
            match Entry::new(Token::bearer(format!("v{value}")), 1, None, Arc::default()) {
                Ok(entry) => prop_assert!(entry.header().is_sensitive()),
                Err(error) => {
                    prop_assert_eq!(error.kind(), crate::ErrorKind::InvalidToken);
                    let shown = format!("{} {:?}", error, error);
                    let secret = format!("v{}", value);
                    prop_assert!(!shown.contains(&secret));
                }
            }
        }
    }
}

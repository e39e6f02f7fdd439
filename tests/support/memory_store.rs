//! An in-memory [`TokenStore`] on Tokio's clock, standing in for a shared
//! store between simulated processes (one `TokenCache` each) under paused
//! time; it can go down, and its lock can be taken by a "process" that
//! never releases it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower_token_refresh::store::{
    Lease, RefreshTokenStore, StoreError, StoreErrorKind, StoreFuture, StoredToken, TokenStore,
};
use tower_token_refresh::{Secret, Token};

#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    down: AtomicBool,
    calls: AtomicUsize,
    saves: AtomicUsize,
}

#[derive(Default)]
struct State {
    token: Option<StoredToken>,
    lock: Option<(String, Instant)>,
    next_fence: u64,
    refresh_token: Option<Secret>,
    retry_at: Option<Instant>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call fails while down.
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// Calls made to the store so far.
    pub fn calls(&self) -> usize {
        self.inner.calls.load(Ordering::SeqCst)
    }

    /// Tokens saved so far.
    pub fn saves(&self) -> usize {
        self.inner.saves.load(Ordering::SeqCst)
    }

    /// The stored token's value.
    pub fn stored(&self) -> Option<String> {
        let state = self.inner.state.lock().unwrap();
        state
            .token
            .as_ref()
            .map(|stored| stored.token().secret().to_owned())
    }

    /// The stored token's fingerprint.
    pub fn stored_fingerprint(&self) -> Option<String> {
        let state = self.inner.state.lock().unwrap();
        state.token.as_ref()?.fingerprint().map(str::to_owned)
    }

    /// Puts a token of no known source in the store, as another process (of
    /// an older version) would.
    pub fn put(&self, token: Token) {
        self.put_from(token, None);
    }

    /// Puts a token made by the source of `fingerprint` in the store.
    pub fn put_from(&self, token: Token, fingerprint: Option<&str>) {
        self.inner.state.lock().unwrap().token =
            Some(StoredToken::new(token, fingerprint.map(str::to_owned)));
    }

    /// Takes the lock for `lease` as a process that then dies would.
    pub fn take_lock_and_die(&self, lease: Duration) {
        let mut state = self.inner.state.lock().unwrap();
        state.lock = Some(("dead process".to_owned(), Instant::now() + lease));
    }

    pub fn is_locked(&self) -> bool {
        let state = self.inner.state.lock().unwrap();
        state
            .lock
            .as_ref()
            .is_some_and(|(_, until)| *until > Instant::now())
    }

    fn check(&self) -> Result<(), StoreError> {
        self.inner.calls.fetch_add(1, Ordering::SeqCst);
        if self.inner.down.load(Ordering::SeqCst) {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "memory store is down",
                None,
            ));
        }
        Ok(())
    }

    fn holds(state: &State, lease: &Lease) -> bool {
        state
            .lock
            .as_ref()
            .is_some_and(|(fence, until)| fence == lease.fence() && *until > Instant::now())
    }
}

impl TokenStore for MemoryStore {
    fn load(&self) -> StoreFuture<'_, Option<StoredToken>> {
        Box::pin(async move {
            self.check()?;
            Ok(self.inner.state.lock().unwrap().token.clone())
        })
    }

    fn try_lock(&self, lease: Duration) -> StoreFuture<'_, Option<Lease>> {
        Box::pin(async move {
            self.check()?;
            let mut state = self.inner.state.lock().unwrap();
            let now = Instant::now();
            if state.lock.as_ref().is_some_and(|(_, until)| *until > now) {
                return Ok(None);
            }
            state.next_fence += 1;
            let fence = format!("fence-{}", state.next_fence);
            state.lock = Some((fence.clone(), now + lease));
            Ok(Some(Lease::new(fence)))
        })
    }

    fn save<'a>(&'a self, token: &'a StoredToken, lease: &'a Lease) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            self.check()?;
            let mut state = self.inner.state.lock().unwrap();
            if !Self::holds(&state, lease) {
                return Ok(false);
            }
            state.token = Some(token.clone());
            state.retry_at = None;
            self.inner.saves.fetch_add(1, Ordering::SeqCst);
            Ok(true)
        })
    }

    fn discard<'a>(&'a self, token: &'a Token) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            self.check()?;
            let mut state = self.inner.state.lock().unwrap();
            let same = state
                .token
                .as_ref()
                .is_some_and(|stored| stored.token().secret() == token.secret());
            if same {
                state.token = None;
            }
            Ok(same)
        })
    }

    fn unlock(&self, lease: Lease) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.check()?;
            let mut state = self.inner.state.lock().unwrap();
            if Self::holds(&state, &lease) {
                state.lock = None;
            }
            Ok(())
        })
    }

    fn save_failure<'a>(&'a self, retry_after: Duration, lease: &'a Lease) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.check()?;
            let mut state = self.inner.state.lock().unwrap();
            if Self::holds(&state, lease) {
                state.retry_at = Some(Instant::now() + retry_after);
            }
            Ok(())
        })
    }

    fn load_failure(&self) -> StoreFuture<'_, Option<Duration>> {
        Box::pin(async move {
            self.check()?;
            let state = self.inner.state.lock().unwrap();
            let now = Instant::now();
            Ok(state.retry_at.filter(|at| *at > now).map(|at| at - now))
        })
    }

    fn name(&self) -> &str {
        "memory"
    }
}

impl RefreshTokenStore for MemoryStore {
    fn load_refresh_token(&self) -> StoreFuture<'_, Option<Secret>> {
        Box::pin(async move {
            self.check()?;
            Ok(self.inner.state.lock().unwrap().refresh_token.clone())
        })
    }

    fn save_refresh_token<'a>(&'a self, refresh_token: &'a Secret) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.check()?;
            self.inner.state.lock().unwrap().refresh_token = Some(refresh_token.clone());
            Ok(())
        })
    }
}

//! [`RefreshTokenGrant`]: exchanging a refresh token (RFC 6749 §6), with
//! rotation.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use super::builder::sealed::Grant;
use super::token_client::TokenClient;
use super::token_response::Failure;
use super::{ClientAuth, Error, Secret, SourceBuilder};
use crate::store::RefreshTokenStore;
use crate::{BoxError, Token, TokenFuture, TokenSource};

type RotationHook = Arc<dyn Fn(&Secret) + Send + Sync>;

/// A [`TokenSource`] that exchanges a refresh token for access tokens
/// (RFC 6749 §6).
///
/// When the server rotates the refresh token (sends a new one with the
/// access token), the new one replaces the old one before the access token
/// is returned, and the [`on_rotation`](SourceBuilder::on_rotation) hook
/// gets it to persist. A new refresh token in a successful answer whose
/// access token is unusable (a negative `expires_in`, a token type other
/// than `Bearer`, …) is kept and handed to the hook just the same, although
/// that fetch fails: the server may already have spent the old one.
/// Exchanges are serialized, so two tasks (or two caches sharing this
/// source) never spend the same refresh token twice.
///
/// With a [`store`](SourceBuilder::store) (a [`FileStore`](crate::store::FileStore)
/// for a program run again and again, a `RedisStore` for a fleet), each
/// exchange starts from the stored refresh token when there is one, and a
/// rotated refresh token is saved there before the access token is used.
///
/// A refresh token the server no longer accepts fails with an error whose
/// [`is_invalid_grant`](Error::is_invalid_grant) is true: the user must sign
/// in again.
///
/// # Example
///
/// ```
/// use tower_token_refresh::TokenCache;
/// use tower_token_refresh::oauth2::{ClientAuth, RefreshTokenGrant};
///
/// # fn main() -> Result<(), tower_token_refresh::oauth2::Error> {
/// let source = RefreshTokenGrant::builder(
///     "https://idp.example.com/oauth2/token",
///     "my-cli",
///     ClientAuth::none(),
///     "refresh-token-from-sign-in",
/// )
/// .on_rotation(|new_refresh_token| {
///     // Save it where the next run will find it.
///     let _ = new_refresh_token.expose();
/// })
/// .build()?;
/// let cache = TokenCache::new(source);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RefreshTokenGrant {
    inner: Arc<Inner>,
}

struct Inner {
    client: TokenClient,
    current: Mutex<Secret>,
    exchange: tokio::sync::Mutex<()>,
    on_rotation: Option<RotationHook>,
    store: Option<Arc<dyn RefreshTokenStore>>,
    /// The refresh token this process last read from or wrote to the store.
    synced: Mutex<Option<Secret>>,
}

/// Settings of a [`RefreshTokenGrant`] being built.
pub struct RefreshTokenConfig {
    refresh_token: Secret,
    on_rotation: Option<RotationHook>,
    store: Option<Arc<dyn RefreshTokenStore>>,
}

impl RefreshTokenGrant {
    /// Starts building a source that exchanges `refresh_token`.
    pub fn builder(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        auth: ClientAuth,
        refresh_token: impl Into<Secret>,
    ) -> SourceBuilder<Self> {
        SourceBuilder::new(
            token_url.into(),
            Some((client_id.into(), auth)),
            RefreshTokenConfig {
                refresh_token: refresh_token.into(),
                on_rotation: None,
                store: None,
            },
        )
    }

    /// The refresh token the next exchange will use.
    pub fn refresh_token(&self) -> Secret {
        self.inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Exchanges the refresh token for an access token.
    ///
    /// # Errors
    ///
    /// When the request fails or the server refuses it
    /// ([`Error::is_invalid_grant`] when the refresh token is no longer
    /// valid), or its answer is unusable (a new refresh token in it is kept
    /// all the same).
    pub async fn fetch_token(&self) -> Result<Token, Error> {
        // The exchange runs on a task of its own: if the caller gives up
        // (the cache's fetch timeout), a refresh token the server already
        // rotated is still stored and handed to the hook. The request
        // timeout bounds the task.
        let inner = Arc::clone(&self.inner);
        match tokio::spawn(async move { inner.exchange().await }).await {
            Ok(result) => result,
            Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
            Err(_cancelled) => Err(Error::transport("the token exchange was cancelled".into())),
        }
    }
}

impl Inner {
    async fn exchange(&self) -> Result<Token, Error> {
        let _one_at_a_time = self.exchange.lock().await;
        let in_memory = self.current();
        let Some(stored) = self.adopt_stored(&in_memory).await else {
            return self.exchange_with(in_memory).await;
        };
        match self.exchange_with(stored).await {
            // A stale copy (e.g. in the store from before a new sign-in):
            // the refresh token this process was given may still work.
            Err(error) if error.is_invalid_grant() => {
                tracing::warn!("stored refresh token rejected; trying the one in memory");
                self.exchange_with(in_memory).await
            }
            other => other,
        }
    }

    fn current(&self) -> Secret {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One exchange of `refresh_token`. On success the refresh token to use
    /// next (rotated, or this one) becomes current and is saved.
    async fn exchange_with(&self, refresh_token: Secret) -> Result<Token, Error> {
        let response = self
            .client
            .request(
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.expose()),
                ],
                &[refresh_token.expose()],
            )
            .await;
        let response = match response {
            Ok(response) => response,
            Err(Failure {
                error,
                refresh_token: issued,
            }) => {
                if let Some(issued) = issued {
                    // A successful answer with a new refresh token but an
                    // unusable access token: the server may have spent the
                    // refresh token sent already, so losing the new one
                    // would mean signing in again.
                    tracing::warn!(
                        "token response unusable; keeping the refresh token that came with it"
                    );
                    self.keep(refresh_token, Some(issued)).await;
                }
                if error.is_invalid_grant() {
                    tracing::warn!("refresh token rejected (invalid_grant): sign in again");
                }
                return Err(error);
            }
        };
        self.keep(refresh_token, response.refresh_token).await;
        Ok(response.token)
    }

    /// Makes the refresh token to use next current, and saves it: the one
    /// the server `issued` if it rotated in a new one (handed to the hook
    /// first), else the one `used`.
    async fn keep(&self, used: Secret, issued: Option<Secret>) {
        let next = match issued {
            Some(rotated) if rotated != used => {
                tracing::debug!("refresh token rotated");
                if let Some(hook) = &self.on_rotation {
                    hook(&rotated);
                }
                rotated
            }
            _ => used,
        };
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = next.clone();
        self.save(&next).await;
    }

    /// The store's refresh token, if another process (or an earlier run)
    /// put a new one there since this process last read or wrote it. A
    /// value this process already saw is not taken again: its own copy is
    /// newer (say, a save failed).
    async fn adopt_stored(&self, in_memory: &Secret) -> Option<Secret> {
        let store = self.store.as_ref()?;
        let limit = self.client.request_timeout();
        match crate::store::bounded(limit, store.load_refresh_token()).await {
            Ok(Some(stored)) => {
                let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
                let seen = synced.as_ref() == Some(&stored);
                *synced = Some(stored.clone());
                (!seen && stored != *in_memory).then(|| {
                    tracing::debug!("refresh token taken from the store");
                    stored
                })
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "could not read the refresh token from the store; using the one in memory"
                );
                None
            }
        }
    }

    /// Saves the refresh token to use next, unless the store has it
    /// already; tried twice. Runs before the access token is returned.
    async fn save(&self, next: &Secret) {
        let Some(store) = &self.store else { return };
        let synced = self
            .synced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if synced.as_ref() == Some(next) {
            return;
        }
        let limit = self.client.request_timeout();
        for attempt in 1..=2 {
            match crate::store::bounded(limit, store.save_refresh_token(next)).await {
                Ok(()) => {
                    *self.synced.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(next.clone());
                    return;
                }
                Err(error) => tracing::warn!(
                    attempt,
                    error = &error as &dyn std::error::Error,
                    "could not save the refresh token to the store"
                ),
            }
        }
    }
}

impl SourceBuilder<RefreshTokenGrant> {
    /// Calls `hook` with each new refresh token the server rotates in,
    /// before the access token that came with it is used: persist it there.
    /// Keep it quick (it runs inside the token fetch).
    pub fn on_rotation(mut self, hook: impl Fn(&Secret) + Send + Sync + 'static) -> Self {
        self.config_mut().on_rotation = Some(Arc::new(hook));
        self
    }

    /// Keeps the refresh token in `store` too: an exchange starts from the
    /// stored one when another process (or an earlier run) put a new one
    /// there, and the refresh token to use next is saved before the access
    /// token that came with it is used. Share the store with the cache
    /// ([`TokenCacheBuilder::store`](crate::TokenCacheBuilder::store)) by
    /// passing an `Arc` of it to both: the cache's lock then makes the
    /// processes exchange one at a time.
    ///
    /// - A stored refresh token the server rejects (`invalid_grant`, e.g. a
    ///   stale copy from before a new sign-in) is followed by one try with
    ///   the refresh token in memory.
    /// - A store that fails is logged and the refresh token in memory is
    ///   used; a failed save is tried once more, and the stale value left in
    ///   the store is not taken back later.
    /// - An exchange outlives a cache that stopped waiting for it (so a
    ///   rotated refresh token is never lost); the cache then keeps the
    ///   store's lock until its [lease](crate::TokenCacheBuilder::lease)
    ///   ends, so that no other process spends the same refresh token
    ///   meanwhile. Keep the [request timeout](SourceBuilder::request_timeout)
    ///   below the lease: with a store it defaults to the cache's default
    ///   fetch timeout (10 s; the default lease is 20 s) instead of 30 s.
    pub fn store(mut self, store: impl RefreshTokenStore) -> Self {
        self.config_mut().store = Some(Arc::new(store));
        self.cap_default_timeout(crate::DEFAULT_FETCH_TIMEOUT);
        self
    }
}

impl Grant for RefreshTokenGrant {
    type Config = RefreshTokenConfig;

    fn build(config: RefreshTokenConfig, client: TokenClient) -> Result<Self, Error> {
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                current: Mutex::new(config.refresh_token),
                exchange: tokio::sync::Mutex::new(()),
                on_rotation: config.on_rotation,
                store: config.store,
                synced: Mutex::new(None),
            }),
        })
    }
}

impl TokenSource for RefreshTokenGrant {
    fn fetch(&self) -> TokenFuture {
        let source = self.clone();
        Box::pin(async move { source.fetch_token().await.map_err(BoxError::from) })
    }

    fn name(&self) -> &str {
        "oauth2 refresh_token"
    }

    fn fingerprint(&self) -> Option<String> {
        Some(self.inner.client.fingerprint("refresh_token", &[]))
    }
}

impl fmt::Debug for RefreshTokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenGrant")
            .field("client", &self.inner.client)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RefreshTokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenConfig").finish_non_exhaustive()
    }
}

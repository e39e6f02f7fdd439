//! [`RefreshTokenGrant`]: exchanging a refresh token (RFC 6749 §6), with
//! rotation.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use super::builder::sealed::Grant;
use super::token_client::TokenClient;
use super::{ClientAuth, Error, Secret, SourceBuilder};
use crate::store::TokenStore;
use crate::{BoxError, Token, TokenFuture, TokenSource};

type RotationHook = Arc<dyn Fn(&Secret) + Send + Sync>;

/// A [`TokenSource`] that exchanges a refresh token for access tokens
/// (RFC 6749 §6).
///
/// When the server rotates the refresh token (sends a new one with the
/// access token), the new one replaces the old one before the access token
/// is returned, and the [`on_rotation`](SourceBuilder::on_rotation) hook
/// gets it to persist. Exchanges are serialized, so two tasks (or two caches
/// sharing this source) never spend the same refresh token twice.
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
    store: Option<Arc<dyn TokenStore>>,
}

/// Settings of a [`RefreshTokenGrant`] being built.
pub struct RefreshTokenConfig {
    refresh_token: Secret,
    on_rotation: Option<RotationHook>,
    store: Option<Arc<dyn TokenStore>>,
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
    /// valid).
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
        self.adopt_stored().await;
        let refresh_token = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
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
            Err(error) => {
                if error.is_invalid_grant() {
                    tracing::warn!("refresh token rejected (invalid_grant): sign in again");
                }
                return Err(error);
            }
        };
        if let Some(rotated) = response.refresh_token
            && rotated != refresh_token
        {
            *self.current.lock().unwrap_or_else(PoisonError::into_inner) = rotated.clone();
            tracing::debug!("refresh token rotated");
            if let Some(hook) = &self.on_rotation {
                hook(&rotated);
            }
            self.save_rotated(&rotated).await;
        }
        Ok(response.token)
    }

    /// Starts from the store's refresh token, which another process (or an
    /// earlier run) may have rotated in.
    async fn adopt_stored(&self) {
        let Some(store) = &self.store else { return };
        let timeout = self.client.request_timeout();
        match tokio::time::timeout(timeout, store.load_refresh_token()).await {
            Ok(Ok(Some(stored))) => {
                let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
                if *current != stored {
                    tracing::debug!("refresh token taken from the store");
                    *current = stored;
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "could not read the refresh token from the store; using the one in memory"
            ),
            Err(_elapsed) => tracing::warn!(
                "token store did not answer in time; using the refresh token in memory"
            ),
        }
    }

    /// Saves a rotated refresh token before its access token is used.
    async fn save_rotated(&self, rotated: &Secret) {
        let Some(store) = &self.store else { return };
        let timeout = self.client.request_timeout();
        match tokio::time::timeout(timeout, store.save_refresh_token(rotated)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "could not save the rotated refresh token to the store"
            ),
            Err(_elapsed) => {
                tracing::warn!(
                    "token store did not answer in time; rotated refresh token not saved"
                )
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

    /// Keeps the refresh token in `store` too: each exchange starts from
    /// the stored one (rotated by another process or an earlier run), and a
    /// rotated one is saved before the access token that came with it is
    /// used. Share the store with the cache
    /// ([`TokenCacheBuilder::store`](crate::TokenCacheBuilder::store)) by
    /// passing an `Arc` of it to both: the cache's lock then makes the
    /// processes exchange one at a time.
    ///
    /// A store that fails is logged and the refresh token in memory is
    /// used.
    pub fn store(mut self, store: impl TokenStore) -> Self {
        self.config_mut().store = Some(Arc::new(store));
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

//! [`RefreshTokenGrant`]: exchanging a refresh token (RFC 6749 §6), with
//! rotation.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use super::builder::sealed::Grant;
use super::token_client::TokenClient;
use super::{ClientAuth, Error, Secret, SourceBuilder};
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
}

/// Settings of a [`RefreshTokenGrant`] being built.
pub struct RefreshTokenConfig {
    refresh_token: Secret,
    on_rotation: Option<RotationHook>,
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
        }
        Ok(response.token)
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

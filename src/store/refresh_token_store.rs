//! [`RefreshTokenStore`]: a store that also keeps the refresh token the next
//! access tokens are made from.

use std::sync::Arc;

use super::StoreFuture;
use crate::Secret;

/// A store that keeps, beside the access token, the refresh token of a
/// [`RefreshTokenGrant`](crate::oauth2::RefreshTokenGrant), so that a
/// rotated refresh token survives a restart and reaches every process of a
/// fleet.
///
/// Apart from [`TokenStore`](super::TokenStore), which the cache uses for
/// access tokens whatever their source: only sources that rotate a
/// credential of their own need this. [`FileStore`](super::FileStore) and
/// `RedisStore` implement both; pass an `Arc` of one store to the cache and
/// to the grant.
///
/// Implementations must never put a refresh token in an error or a log
/// line.
pub trait RefreshTokenStore: Send + Sync + 'static {
    /// The stored refresh token, if any.
    fn load_refresh_token(&self) -> StoreFuture<'_, Option<Secret>>;

    /// Saves a rotated refresh token.
    fn save_refresh_token<'a>(&'a self, refresh_token: &'a Secret) -> StoreFuture<'a, ()>;
}

impl<S: RefreshTokenStore + ?Sized> RefreshTokenStore for Arc<S> {
    fn load_refresh_token(&self) -> StoreFuture<'_, Option<Secret>> {
        (**self).load_refresh_token()
    }

    fn save_refresh_token<'a>(&'a self, refresh_token: &'a Secret) -> StoreFuture<'a, ()> {
        (**self).save_refresh_token(refresh_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The trait must stay object safe.
    const _: fn(&dyn RefreshTokenStore) = |_| {};
}

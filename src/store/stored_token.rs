//! [`StoredToken`]: a token as a store keeps it, with the source that made
//! it.

use crate::Token;

/// A token as a [`TokenStore`](super::TokenStore) keeps it: the token, and
/// what identifies the source that made it (its
/// [fingerprint](crate::TokenSource::fingerprint), else the cache's
/// [name](crate::TokenCacheBuilder::name)).
///
/// A cache takes a stored token only if it was made by its own source: two
/// caches given one store location by mistake (the orders API's and the
/// billing API's) would otherwise send each other's tokens. A store keeps
/// the fingerprint as it is given and hands it back; it never needs to read
/// it.
///
/// ```
/// use tower_token_refresh::Token;
/// use tower_token_refresh::store::StoredToken;
///
/// let stored = StoredToken::new(Token::bearer("abc"), Some("orders".to_owned()));
/// assert_eq!(stored.fingerprint(), Some("orders"));
/// assert_eq!(stored.token().secret(), "abc");
/// ```
#[derive(Debug, Clone)]
pub struct StoredToken {
    token: Token,
    fingerprint: Option<String>,
}

impl StoredToken {
    /// `token`, made by the source identified by `fingerprint` (`None`: a
    /// source that identifies itself in no way, or a record written before
    /// fingerprints were kept).
    pub fn new(token: Token, fingerprint: Option<String>) -> Self {
        Self { token, fingerprint }
    }

    /// The token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// What identifies the source that made the token, if known.
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// The token, without its fingerprint.
    pub fn into_token(self) -> Token {
        self.token
    }
}

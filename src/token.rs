//! [`Token`]: a bearer token and when it expires.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::{Error, SenderConstraint};

mod jwt;

/// A bearer token and, optionally, when it expires.
///
/// A token without an expiry is used until the server rejects it. Expiry is
/// kept as a [`tokio::time::Instant`] (monotonic, and paused along with Tokio's
/// clock in tests); wall-clock times are converted once, when the token is
/// built.
///
/// Cloning is cheap (the value is reference-counted). Neither `Debug` nor
/// `Display` shows the token's value; use [`Token::secret`] where the raw value
/// is truly needed.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_token_refresh::Token;
///
/// let token = Token::bearer("s3cr3t").expires_in(Duration::from_secs(3600));
/// assert_eq!(token.secret(), "s3cr3t");
/// assert!(!token.is_expired());
/// // Formatting never reveals the value.
/// assert!(!format!("{token} {token:?}").contains("s3cr3t"));
/// ```
#[derive(Clone)]
pub struct Token {
    secret: Arc<str>,
    expiry: Option<Instant>,
    /// Set by the cache that published this token; 0 for tokens that did not
    /// come from a cache.
    generation: u64,
    /// What each request sent with this token needs (a DPoP proof), if the
    /// token is bound to a key.
    constraint: Option<Arc<dyn SenderConstraint>>,
}

impl Token {
    /// A bearer token that never expires (until the server rejects it).
    ///
    /// Whether the value can be sent in a header is checked when the token
    /// reaches a [`TokenCache`](crate::TokenCache): a value with characters
    /// that a header cannot carry fails that refresh with
    /// [`ErrorKind::InvalidToken`](crate::ErrorKind::InvalidToken).
    pub fn bearer(value: impl Into<String>) -> Self {
        let value: String = value.into();
        Self {
            secret: Arc::from(value),
            expiry: None,
            generation: 0,
            constraint: None,
        }
    }

    /// Binds the token to a key: it is sent as
    /// `Authorization: <scheme> <token>` (the constraint's
    /// [scheme](SenderConstraint::scheme)) with a proof made for each request
    /// (see [`SenderConstraint`]). The `dpop` feature's sources bind the
    /// DPoP tokens they get.
    pub fn with_sender_constraint(mut self, constraint: Arc<dyn SenderConstraint>) -> Self {
        self.constraint = Some(constraint);
        self
    }

    /// What each request sent with this token needs, if it is bound to a
    /// key.
    pub fn sender_constraint(&self) -> Option<&Arc<dyn SenderConstraint>> {
        self.constraint.as_ref()
    }

    /// Sets the token to expire `lifetime` from now (the `expires_in` of an
    /// OAuth 2.0 token response).
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        // A lifetime too long to represent is as good as no expiry.
        self.expiry = Instant::now().checked_add(lifetime);
        self
    }

    /// Sets the token to expire at a wall-clock time.
    ///
    /// The time is converted to a lifetime against [`SystemTime::now`] once,
    /// here. A time in the past makes an expired token.
    pub fn expires_at(self, at: SystemTime) -> Self {
        let lifetime = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        self.expires_in(lifetime)
    }

    /// Reads a JWT's expiry from its `exp` claim, and its issue time from
    /// `iat` to guard against a wrong local clock. The signature is **not**
    /// verified: the token is only read to learn when to refresh it; the
    /// server that receives it verifies it.
    ///
    /// The lifetime is the shorter of `exp` minus the local time and the
    /// issued lifetime `exp - iat`: when the local clock runs behind the
    /// issuer's, `exp - now` would overstate how long the token lives, and
    /// `exp - iat` does not depend on the local clock. A token that the local
    /// clock says has expired is expired. A JWT without `exp` never expires.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidJwt`](crate::ErrorKind::InvalidJwt) when the value
    /// is not a signed JWT in compact form with base64url JSON claims whose
    /// `exp` and `iat`, if present, are numbers. The message never includes
    /// the token or its claims.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_token_refresh::Token;
    /// # use std::time::{Duration, SystemTime, UNIX_EPOCH};
    /// # use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    /// # let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    /// # let jwt = format!(
    /// #     "{}.{}.sig",
    /// #     B64.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
    /// #     B64.encode(format!(r#"{{"sub":"svc","iat":{now},"exp":{}}}"#, now + 300)),
    /// # );
    /// // `jwt` is a JWT issued now that expires in five minutes.
    /// let token = Token::from_jwt(jwt)?;
    /// let left = token.time_left().unwrap();
    /// assert!(left > Duration::from_secs(295) && left <= Duration::from_secs(300));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_jwt(value: impl Into<String>) -> Result<Self, Error> {
        let value: String = value.into();
        let lifetime = jwt::lifetime(&value, SystemTime::now())?;
        let token = Self::bearer(value);
        Ok(match lifetime {
            Some(lifetime) => token.expires_in(lifetime),
            None => token,
        })
    }

    /// The token's value. Handle it with care: it is a credential.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// When the token expires, if it does.
    pub fn expiry(&self) -> Option<Instant> {
        self.expiry
    }

    /// How long until the token expires (zero once it has), if it does.
    pub fn time_left(&self) -> Option<Duration> {
        self.expiry
            .map(|expiry| expiry.saturating_duration_since(Instant::now()))
    }

    /// Whether the token has expired. A token without expiry never does.
    pub fn is_expired(&self) -> bool {
        self.expiry.is_some_and(|expiry| expiry <= Instant::now())
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn with_generation(mut self, generation: u64) -> Self {
        self.generation = generation;
        self
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Token");
        debug
            .field("secret", &"[redacted]")
            .field("time_left", &self.time_left());
        if let Some(constraint) = &self.constraint {
            debug.field("scheme", &constraint.scheme());
        }
        debug.finish()
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted bearer token]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expiry_follows_tokio_time() {
        let token = Token::bearer("abc").expires_in(Duration::from_secs(10));
        assert_eq!(token.time_left(), Some(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(token.time_left(), Some(Duration::from_secs(6)));
        assert!(!token.is_expired());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(token.is_expired());
        assert_eq!(token.time_left(), Some(Duration::ZERO));
    }

    #[test]
    fn token_without_expiry_never_expires() {
        let token = Token::bearer("abc");
        assert_eq!(token.expiry(), None);
        assert!(!token.is_expired());
    }

    #[test]
    fn huge_lifetime_means_no_expiry() {
        let token = Token::bearer("abc").expires_in(Duration::MAX);
        assert_eq!(token.expiry(), None);
    }

    #[test]
    fn expires_at_in_the_past_is_expired() {
        let token = Token::bearer("abc").expires_at(SystemTime::UNIX_EPOCH);
        assert!(token.is_expired());
        let token = Token::bearer("abc").expires_at(SystemTime::now() + Duration::from_secs(120));
        let left = token.time_left().unwrap();
        assert!(left > Duration::from_secs(118) && left <= Duration::from_secs(120));
    }

    #[test]
    fn formatting_never_shows_the_secret() {
        let token = Token::bearer("hunter2-secret").expires_in(Duration::from_secs(5));
        let shown = format!("{token} {token:?} {token:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}

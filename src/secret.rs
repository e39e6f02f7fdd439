//! [`Secret`]: a credential string that is redacted when printed and
//! wiped from memory when dropped.

use std::fmt;

use zeroize::Zeroizing;

/// A secret value (client secret, refresh token): `Debug` shows
/// `Secret([redacted])`, and the memory is zeroed when it is dropped.
///
/// ```
/// use tower_token_refresh::Secret;
///
/// let secret = Secret::new("s3cr3t");
/// assert_eq!(format!("{secret:?}"), "Secret([redacted])");
/// assert_eq!(secret.expose(), "s3cr3t");
/// ```
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The value. Handle it with care.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        // Not constant-time: secrets are compared only in tests and
        // bookkeeping, never against attacker input.
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

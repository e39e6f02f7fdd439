//! Signed JWT assertions (RFC 7523): [`SigningKey`] and the JWS it makes.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::Error;

/// A private key that signs JWT assertions, with its algorithm and an
/// optional key id (`kid`).
///
/// Read from PEM: PKCS#1 or PKCS#8 RSA keys for `RS*`/`PS*` algorithms,
/// SEC1 or PKCS#8 EC keys for `ES256`/`ES384`, PKCS#8 Ed25519 keys for
/// `EdDSA`.
///
/// Signing uses the backend chosen by this crate's features (`aws-lc-rs`
/// if enabled, else `rust-crypto`) directly, never jsonwebtoken's
/// process-wide default, so it cannot panic when another crate enables a
/// second backend.
///
/// `Debug` never shows the key. The PEM is kept in memory that is zeroed
/// when the key is dropped; the parsed key jsonwebtoken needs exists only
/// while an assertion is signed (jsonwebtoken does not zero it when it is
/// freed).
#[derive(Clone)]
pub struct SigningKey {
    pem: Zeroizing<Vec<u8>>,
    algorithm: Algorithm,
    kid: Option<String>,
}

impl SigningKey {
    /// Reads a PEM private key for `algorithm`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Signing`](super::ErrorKind::Signing) if the PEM is not
    /// a private key of the kind `algorithm` needs, or `algorithm` is an
    /// HMAC algorithm (use `client_secret_*` for shared secrets). The key is
    /// checked by signing a test message.
    pub fn from_pem(pem: &[u8], algorithm: Algorithm) -> Result<Self, Error> {
        let key = Self {
            pem: Zeroizing::new(pem.to_vec()),
            algorithm,
            kid: None,
        };
        key.signature(b"test")?;
        Ok(key)
    }

    /// The parsed key, for one signature.
    fn encoding_key(&self) -> Result<EncodingKey, Error> {
        use Algorithm::*;
        let pem = &self.pem[..];
        match self.algorithm {
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => EncodingKey::from_rsa_pem(pem),
            ES256 | ES384 => EncodingKey::from_ec_pem(pem),
            EdDSA => EncodingKey::from_ed_pem(pem),
            HS256 | HS384 | HS512 => {
                return Err(Error::signing(
                    "HMAC algorithms need a shared secret, not a private key",
                ));
            }
            _ => return Err(Error::signing("this algorithm is not supported")),
        }
        .map_err(|_| Error::signing("the PEM is not a private key for this algorithm"))
    }

    /// Sets the key id sent in the assertion's header (`kid`), so the
    /// server can pick the right public key.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn signature(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let key = self.encoding_key()?;
        let signer = (provider().signer_factory)(&self.algorithm, &key)
            .map_err(|_| Error::signing("the key does not fit the algorithm"))?;
        signer
            .try_sign(message)
            .map_err(|_| Error::signing("the signature could not be computed"))
    }

    /// Signs `claims` as a compact JWS.
    pub(crate) fn sign(&self, claims: &Map<String, Value>) -> Result<String, Error> {
        let mut header = Map::new();
        header.insert(
            "alg".into(),
            serde_json::to_value(self.algorithm).unwrap_or_default(),
        );
        header.insert("typ".into(), "JWT".into());
        if let Some(kid) = &self.kid {
            header.insert("kid".into(), kid.clone().into());
        }
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string())
        );
        let signature = self.signature(message.as_bytes())?;
        Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn provider() -> &'static CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    {
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
    }
    #[cfg(not(feature = "aws-lc-rs"))]
    {
        &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
    }
}

/// The standard claims of an assertion: `iss`, `sub`, `aud`, `iat`, `exp`
/// and a unique `jti`.
pub(crate) fn assertion_claims(
    issuer: &str,
    subject: &str,
    audience: &str,
    lifetime: std::time::Duration,
) -> Map<String, Value> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0);
    let mut claims = Map::new();
    claims.insert("iss".into(), issuer.into());
    claims.insert("sub".into(), subject.into());
    claims.insert("aud".into(), audience.into());
    claims.insert("iat".into(), now.into());
    // At most `LONGEST_SETTING` (a year), so that `exp` cannot overflow.
    let lifetime = lifetime.min(crate::LONGEST_SETTING).as_secs().max(1);
    claims.insert("exp".into(), now.saturating_add(lifetime).into());
    claims.insert("jti".into(), unique_id().into());
    claims
}

/// 128 random bits, base64url: unique per assertion.
fn unique_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: still unique within this process.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_nanos())
            .unwrap_or(0);
        let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes = (nanos ^ u128::from(count) << 64).to_le_bytes();
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_assertion_lifetime_too_long_to_add_is_a_year() {
        let claims = assertion_claims("iss", "sub", "aud", Duration::MAX);
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert_eq!(exp - iat, crate::LONGEST_SETTING.as_secs());
        let claims = assertion_claims("iss", "sub", "aud", Duration::ZERO);
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert_eq!(exp - iat, 1, "at least a second");
    }
}

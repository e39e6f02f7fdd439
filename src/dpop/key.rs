//! [`DpopKey`]: the key a client proves possession of, and signs DPoP
//! proofs with.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::nonces::Nonces;

/// The algorithm DPoP proofs are signed with (RFC 7518 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum DpopAlgorithm {
    /// ECDSA with P-256 and SHA-256: small, and what every DPoP server
    /// supports (the default).
    #[default]
    ES256,
    /// Ed25519: the fastest to sign; check that your server accepts it.
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key: for servers that
    /// accept nothing else. Slow to generate and to sign, and signed with
    /// the `rsa` crate, whose private-key operations are not constant-time
    /// (RUSTSEC-2023-0071): prefer ES256 or EdDSA.
    RS256,
}

impl DpopAlgorithm {
    /// The `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
            Self::RS256 => "RS256",
        }
    }
}

/// RSA keys generated for DPoP have this many bits.
const RSA_BITS: usize = 2048;

/// A key that DPoP-bound tokens (RFC 9449) are bound to: generated in memory
/// ([`generate`](Self::generate)), or loaded from PEM
/// ([`from_pem`](Self::from_pem)) when a fleet of processes must share it.
///
/// Give it to a token source (`.dpop(key)` on the OAuth 2.0 builders): each
/// token request then carries a proof, the server binds the token to the
/// key's [thumbprint](Self::thumbprint), and
/// [`TokenRefresh`](crate::TokenRefresh) sends every request with a fresh
/// proof. It also keeps the nonces servers hand out, per origin.
///
/// Cheap to clone (shared). The private key never leaves it: `Debug` shows
/// the algorithm and thumbprint only, and the key is zeroized when the last
/// clone is dropped.
///
/// ```
/// use tower_token_refresh::dpop::{DpopAlgorithm, DpopKey};
///
/// let key = DpopKey::generate(DpopAlgorithm::ES256)?;
/// assert_eq!(key.thumbprint().len(), 43); // base64url of a SHA-256
/// assert!(key.public_jwk().contains(r#""kty":"EC""#));
/// assert!(!format!("{key:?}").contains(r#""d""#));
/// # Ok::<(), tower_token_refresh::dpop::DpopKeyError>(())
/// ```
#[derive(Clone)]
pub struct DpopKey {
    inner: Arc<Inner>,
}

struct Inner {
    signer: Signer,
    algorithm: DpopAlgorithm,
    /// The public key as a JWK, its required members in lexicographic
    /// order (RFC 7638's form, and a valid JWK).
    jwk: String,
    thumbprint: String,
    /// The proofs' protected header, base64url-encoded: the same for every
    /// proof, so encoded once.
    header: String,
    nonces: Nonces,
}

enum Signer {
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
    Rs256(Box<rsa::pkcs1v15::SigningKey<Sha256>>),
}

/// A DPoP key that could not be made or read. The message never contains
/// key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopKeyError(&'static str);

impl fmt::Display for DpopKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DPoP key: {}", self.0)
    }
}

impl std::error::Error for DpopKeyError {}

impl DpopKey {
    /// A new key for `algorithm` ([`DpopAlgorithm::ES256`] unless the
    /// server needs another), in memory: each process has its own, and its
    /// tokens are useless to any other.
    ///
    /// # Errors
    ///
    /// When the operating system gives no random numbers, or (RS256) key
    /// generation fails.
    pub fn generate(algorithm: DpopAlgorithm) -> Result<Self, DpopKeyError> {
        const NO_RANDOM: DpopKeyError = DpopKeyError("the operating system gave no random bytes");
        let signer = match algorithm {
            DpopAlgorithm::ES256 => {
                let mut bytes = Zeroizing::new([0_u8; 32]);
                loop {
                    getrandom::fill(&mut *bytes).map_err(|_| NO_RANDOM)?;
                    // All but a 2^-32 sliver of 32-byte strings are keys.
                    if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&*bytes) {
                        break Signer::Es256(key);
                    }
                }
            }
            DpopAlgorithm::EdDSA => {
                let mut bytes = Zeroizing::new([0_u8; 32]);
                getrandom::fill(&mut *bytes).map_err(|_| NO_RANDOM)?;
                Signer::EdDsa(ed25519_dalek::SigningKey::from_bytes(&bytes))
            }
            DpopAlgorithm::RS256 => {
                let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, RSA_BITS)
                    .map_err(|_| DpopKeyError("RSA key generation failed"))?;
                Signer::Rs256(Box::new(rsa::pkcs1v15::SigningKey::new(key)))
            }
        };
        Ok(Self::with_signer(signer, algorithm))
    }

    /// Reads a private key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`) for every
    /// algorithm, SEC 1 (`BEGIN EC PRIVATE KEY`) for ES256, PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`, at least 2048 bits) for RS256. For a fleet
    /// whose processes share tokens, each process is given the same key.
    ///
    /// # Errors
    ///
    /// When the PEM is not a private key for `algorithm`.
    pub fn from_pem(pem: &[u8], algorithm: DpopAlgorithm) -> Result<Self, DpopKeyError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey as _;
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        use rsa::traits::PublicKeyParts as _;

        let pem = std::str::from_utf8(pem).map_err(|_| DpopKeyError("the PEM is not text"))?;
        let signer = match algorithm {
            DpopAlgorithm::ES256 => {
                let secret = p256::SecretKey::from_pkcs8_pem(pem)
                    .or_else(|_| p256::SecretKey::from_sec1_pem(pem))
                    .map_err(|_| DpopKeyError("not a P-256 private key in PEM"))?;
                Signer::Es256(secret.into())
            }
            DpopAlgorithm::EdDSA => Signer::EdDsa(
                ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
                    .map_err(|_| DpopKeyError("not an Ed25519 private key in PKCS#8 PEM"))?,
            ),
            DpopAlgorithm::RS256 => {
                let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
                    .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
                    .map_err(|_| DpopKeyError("not an RSA private key in PEM"))?;
                if key.size() * 8 < RSA_BITS {
                    return Err(DpopKeyError("an RSA key must have at least 2048 bits"));
                }
                Signer::Rs256(Box::new(rsa::pkcs1v15::SigningKey::new(key)))
            }
        };
        Ok(Self::with_signer(signer, algorithm))
    }

    fn with_signer(signer: Signer, algorithm: DpopAlgorithm) -> Self {
        use rsa::traits::PublicKeyParts as _;

        let jwk = match &signer {
            Signer::Es256(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                let (x, y) = (
                    point.x().map(|x| B64.encode(x)),
                    point.y().map(|y| B64.encode(y)),
                );
                format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    x.unwrap_or_default(),
                    y.unwrap_or_default()
                )
            }
            Signer::EdDsa(key) => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                B64.encode(key.verifying_key().as_bytes())
            ),
            Signer::Rs256(key) => {
                let public = key.as_ref().as_ref().to_public_key();
                format!(
                    r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                    B64.encode(public.e().to_bytes_be()),
                    B64.encode(public.n().to_bytes_be())
                )
            }
        };
        let thumbprint = B64.encode(Sha256::digest(jwk.as_bytes()));
        let header = B64.encode(format!(
            r#"{{"typ":"dpop+jwt","alg":"{}","jwk":{jwk}}}"#,
            algorithm.as_str()
        ));
        Self {
            inner: Arc::new(Inner {
                signer,
                algorithm,
                jwk,
                thumbprint,
                header,
                nonces: Nonces::default(),
            }),
        }
    }

    /// The algorithm proofs are signed with.
    pub fn algorithm(&self) -> DpopAlgorithm {
        self.inner.algorithm
    }

    /// The public key as a JWK (JSON), as proofs carry it.
    pub fn public_jwk(&self) -> &str {
        &self.inner.jwk
    }

    /// The JWK SHA-256 thumbprint of the public key (RFC 7638): what a
    /// DPoP-bound token's `cnf.jkt` claim holds.
    pub fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }

    /// Binds `token`, which a server issued as a DPoP token (`token_type`
    /// `DPoP`) for proofs of this key, to the key: for token sources of
    /// your own. The OAuth 2.0 sources given [`dpop`](crate::oauth2::SourceBuilder::dpop)
    /// bind their tokens themselves.
    ///
    /// ```
    /// use tower_token_refresh::Token;
    /// use tower_token_refresh::dpop::{DpopAlgorithm, DpopKey};
    ///
    /// let key = DpopKey::generate(DpopAlgorithm::EdDSA)?;
    /// let token = key.bind(Token::bearer("issued-as-dpop"));
    /// assert_eq!(token.sender_constraint().unwrap().scheme(), "DPoP");
    /// # Ok::<(), tower_token_refresh::dpop::DpopKeyError>(())
    /// ```
    pub fn bind(&self, token: crate::Token) -> crate::Token {
        let binding = super::DpopBinding::new(self.clone(), token.secret());
        token.with_sender_constraint(binding)
    }

    pub(crate) fn nonces(&self) -> &Nonces {
        &self.inner.nonces
    }

    /// A proof for a request with method `htm` to `htu` (already without
    /// query and fragment), with `ath` when it presents a token and `nonce`
    /// when the server gave one: a JWS with a unique `jti` and `iat` now.
    pub(crate) fn proof(
        &self,
        htm: &str,
        htu: &str,
        ath: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, DpopKeyError> {
        let mut jti = [0_u8; 16];
        getrandom::fill(&mut jti)
            .map_err(|_| DpopKeyError("the operating system gave no random bytes"))?;
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let mut claims = json!({"jti": B64.encode(jti), "htm": htm, "htu": htu, "iat": iat});
        if let Value::Object(claims) = &mut claims {
            if let Some(ath) = ath {
                claims.insert("ath".into(), ath.into());
            }
            if let Some(nonce) = nonce {
                claims.insert("nonce".into(), nonce.into());
            }
        }
        let mut jws = String::with_capacity(self.inner.header.len() + 512);
        jws.push_str(&self.inner.header);
        jws.push('.');
        B64.encode_string(claims.to_string(), &mut jws);
        let signature = self.sign(jws.as_bytes())?;
        jws.push('.');
        B64.encode_string(signature, &mut jws);
        Ok(jws)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DpopKeyError> {
        use rsa::signature::{SignatureEncoding as _, Signer as _};

        Ok(match &self.inner.signer {
            Signer::Es256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_bytes().to_vec()
            }
            Signer::EdDsa(key) => key.sign(message).to_bytes().to_vec(),
            Signer::Rs256(key) => key
                .try_sign(message)
                .map_err(|_| DpopKeyError("RSA signing failed"))?
                .to_vec(),
        })
    }
}

/// The `ath` of a token: the base64url SHA-256 of its value (RFC 9449
/// §4.2).
pub(crate) fn access_token_hash(token: &str) -> String {
    B64.encode(Sha256::digest(token.as_bytes()))
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("algorithm", &self.inner.algorithm)
            .field("thumbprint", &self.inner.thumbprint)
            .finish_non_exhaustive()
    }
}

//! [`ClientAuth`]: how a client proves who it is to the token endpoint.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;

#[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
use super::SigningKey;
use super::form::Form;
use super::{Error, Secret};

/// How long a client assertion (`private_key_jwt`) is valid.
#[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
const CLIENT_ASSERTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(60);

/// Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7523
/// §2.2).
///
/// ```
/// use tower_token_refresh::oauth2::ClientAuth;
///
/// let basic = ClientAuth::basic("s3cr3t"); // Authorization: Basic …
/// let post = ClientAuth::post("s3cr3t");   // client_secret in the form
/// assert!(!format!("{basic:?} {post:?}").contains("s3cr3t"));
/// ```
#[derive(Clone)]
pub struct ClientAuth {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Basic(Secret),
    Post(Secret),
    #[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
    PrivateKeyJwt(SigningKey),
    None,
}

impl ClientAuth {
    /// `client_secret_basic`: the client id and secret, each
    /// form-URL-encoded, in an `Authorization: Basic` header (RFC 6749
    /// §2.3.1).
    pub fn basic(secret: impl Into<Secret>) -> Self {
        Self {
            kind: Kind::Basic(secret.into()),
        }
    }

    /// `client_secret_post`: `client_id` and `client_secret` in the request
    /// body.
    pub fn post(secret: impl Into<Secret>) -> Self {
        Self {
            kind: Kind::Post(secret.into()),
        }
    }

    /// `private_key_jwt` (RFC 7523 §2.2): a fresh assertion signed with
    /// `key` for every request, with `iss` = `sub` = the client id, `aud` =
    /// the token endpoint, a one-minute `exp` and a unique `jti`.
    #[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))))]
    pub fn private_key_jwt(key: SigningKey) -> Self {
        Self {
            kind: Kind::PrivateKeyJwt(key),
        }
    }

    /// A public client: only `client_id` in the request body.
    pub fn none() -> Self {
        Self { kind: Kind::None }
    }

    /// Adds the client's credentials to a token request; returns the
    /// `Authorization` header to send, if any.
    pub(crate) fn apply(
        &self,
        client_id: &str,
        token_url: &str,
        form: &mut Form,
    ) -> Result<Option<HeaderValue>, Error> {
        match &self.kind {
            Kind::Basic(secret) => {
                let credentials = format!(
                    "{}:{}",
                    Form::encode(client_id),
                    Form::encode(secret.expose())
                );
                let mut header =
                    HeaderValue::try_from(format!("Basic {}", STANDARD.encode(credentials)))
                        .map_err(|_| {
                            Error::invalid_url("the client credentials cannot be sent in a header")
                        })?;
                header.set_sensitive(true);
                Ok(Some(header))
            }
            Kind::Post(secret) => {
                form.push("client_id", client_id);
                form.push("client_secret", secret.expose());
                Ok(None)
            }
            #[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
            Kind::PrivateKeyJwt(key) => {
                let claims = super::signing::assertion_claims(
                    client_id,
                    client_id,
                    token_url,
                    CLIENT_ASSERTION_LIFETIME,
                );
                let assertion = key.sign(&claims)?;
                form.push("client_id", client_id);
                form.push(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                );
                form.push("client_assertion", &assertion);
                Ok(None)
            }
            Kind::None => {
                let _ = token_url;
                form.push("client_id", client_id);
                Ok(None)
            }
        }
    }

    /// The secret this authentication sends as is, for redaction.
    pub(crate) fn secret(&self) -> Option<&str> {
        match &self.kind {
            Kind::Basic(secret) | Kind::Post(secret) => Some(secret.expose()),
            _ => None,
        }
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let method = match &self.kind {
            Kind::Basic(_) => "client_secret_basic",
            Kind::Post(_) => "client_secret_post",
            #[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
            Kind::PrivateKeyJwt(_) => "private_key_jwt",
            Kind::None => "none",
        };
        f.debug_tuple("ClientAuth").field(&method).finish()
    }
}

//! [`ClientAuth`]: how a client proves who it is to the token endpoint.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use zeroize::Zeroizing;

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
    /// `Authorization` header to send, if any, and every credential the
    /// request now carries, as sent, for redaction.
    pub(crate) fn apply(
        &self,
        client_id: &str,
        token_url: &str,
        form: &mut Form,
    ) -> Result<Applied, Error> {
        match &self.kind {
            Kind::Basic(secret) => {
                let encoded_secret = Zeroizing::new(Form::encode(secret.expose()));
                let credentials =
                    Zeroizing::new(format!("{}:{}", Form::encode(client_id), *encoded_secret));
                let basic = Zeroizing::new(STANDARD.encode(&*credentials));
                let mut header =
                    HeaderValue::try_from(format!("Basic {}", *basic)).map_err(|_| {
                        Error::invalid_url("the client credentials cannot be sent in a header")
                    })?;
                header.set_sensitive(true);
                // A server may echo the secret as given, as it appears in
                // the header once decoded, or the header value itself.
                Ok(Applied {
                    authorization: Some(header),
                    secrets: vec![
                        Zeroizing::new(secret.expose().to_owned()),
                        encoded_secret,
                        basic,
                    ],
                })
            }
            Kind::Post(secret) => {
                form.push("client_id", client_id);
                form.push("client_secret", secret.expose());
                // The form carries the secret form-URL-encoded; a server may
                // echo either form.
                Ok(Applied {
                    authorization: None,
                    secrets: vec![
                        Zeroizing::new(secret.expose().to_owned()),
                        Zeroizing::new(Form::encode(secret.expose())),
                    ],
                })
            }
            #[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
            Kind::PrivateKeyJwt(key) => {
                let claims = super::signing::assertion_claims(
                    client_id,
                    client_id,
                    token_url,
                    CLIENT_ASSERTION_LIFETIME,
                );
                let assertion = Zeroizing::new(key.sign(&claims)?);
                form.push("client_id", client_id);
                form.push(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                );
                form.push("client_assertion", &assertion);
                // The signed assertion authenticates the client until it
                // expires: a server message must not quote it, nor a part.
                let secrets = super::signing::redactable(&assertion)
                    .map(|part| Zeroizing::new(part.to_owned()))
                    .collect();
                Ok(Applied {
                    authorization: None,
                    secrets,
                })
            }
            Kind::None => {
                let _ = token_url;
                form.push("client_id", client_id);
                Ok(Applied::default())
            }
        }
    }
}

/// What [`ClientAuth::apply`] added to a token request.
#[derive(Default)]
pub(crate) struct Applied {
    /// The `Authorization` header to send, if any.
    pub(crate) authorization: Option<HeaderValue>,
    /// Every credential the request carries, in each form it is sent in: a
    /// server message that echoes one of them is redacted.
    pub(crate) secrets: Vec<Zeroizing<String>>,
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

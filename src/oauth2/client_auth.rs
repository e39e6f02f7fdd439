//! [`ClientAuth`]: how a client proves who it is to the token endpoint.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use zeroize::Zeroizing;

#[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
use super::SigningKey;
use super::credential_source::CredentialSource;
use super::form::Form;
use super::{Error, Secret};
use crate::TokenSource;

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
    Assertion(CredentialSource),
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

    /// A client assertion another source provides (RFC 7521 §4.2, RFC 7523
    /// §2.2): `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
    /// and `client_assertion` = the source's token, taken afresh for each
    /// token request.
    ///
    /// This is how a workload authenticates with a token its platform gives
    /// it instead of a secret: Microsoft Entra workload identity (AKS, or any
    /// federated credential) sends the Kubernetes service-account token from
    /// [`TokenFile`](crate::workload::TokenFile) (see
    /// [`AzureWorkloadIdentity`](crate::workload::AzureWorkloadIdentity)).
    /// A source that fails fails the token request with
    /// [`ErrorKind::Credential`](super::ErrorKind::Credential).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};
    /// use tower_token_refresh::{BoxError, Token};
    ///
    /// # fn main() -> Result<(), tower_token_refresh::oauth2::Error> {
    /// // Any source: here a closure, often a `workload::TokenFile`.
    /// let assertion = || async {
    ///     Ok::<_, BoxError>(Token::bearer("eyJ…").expires_in(Duration::from_secs(600)))
    /// };
    /// let source = ClientCredentials::builder(
    ///     "https://login.microsoftonline.com/my-tenant/oauth2/v2.0/token",
    ///     "00000000-0000-0000-0000-000000000000",
    ///     ClientAuth::assertion_from(assertion),
    /// )
    /// .scope("https://graph.microsoft.com/.default")
    /// .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn assertion_from(source: impl TokenSource) -> Self {
        Self {
            kind: Kind::Assertion(CredentialSource::new(source, "the client assertion")),
        }
    }

    /// A public client: only `client_id` in the request body.
    pub fn none() -> Self {
        Self { kind: Kind::None }
    }

    /// Adds the client's credentials to a token request; returns the
    /// `Authorization` header to send, if any, and every credential the
    /// request now carries, as sent, for redaction. A credential from
    /// another source is awaited for at most `timeout`.
    pub(crate) async fn apply(
        &self,
        client_id: &str,
        token_url: &str,
        form: &mut Form,
        timeout: std::time::Duration,
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
                Ok(Applied {
                    authorization: None,
                    secrets: redactable(&assertion),
                })
            }
            Kind::Assertion(source) => {
                let assertion = source.get(timeout).await?;
                form.push("client_id", client_id);
                form.push(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                );
                form.push("client_assertion", assertion.secret());
                Ok(Applied {
                    authorization: None,
                    secrets: redactable(assertion.secret()),
                })
            }
            Kind::None => {
                let _ = (token_url, timeout);
                form.push("client_id", client_id);
                Ok(Applied::default())
            }
        }
    }
}

/// An assertion authenticates the client until it expires: a server
/// message must not quote it, nor a part of it.
fn redactable(assertion: &str) -> Vec<Zeroizing<String>> {
    super::token_response::redactable(assertion)
        .map(|part| Zeroizing::new(part.to_owned()))
        .collect()
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
            Kind::Assertion(source) => {
                return f.debug_tuple("ClientAuth").field(source).finish();
            }
            Kind::None => "none",
        };
        f.debug_tuple("ClientAuth").field(&method).finish()
    }
}

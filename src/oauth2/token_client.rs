//! What every grant shares: the token endpoint, the client's credentials,
//! extra parameters, and one token request.

use std::fmt;
use std::time::Duration;

use http::Uri;

use super::client_auth::Applied;
use super::endpoint;
use super::form::Form;
use super::token_response::{self, Failure, TokenResponse};
use super::{ClientAuth, Error, HttpClient};

/// Sends token requests for one client to one token endpoint.
///
/// `pub` only because the sealed `Grant` trait names it; the module is
/// private, so it cannot be named outside the crate.
#[allow(unreachable_pub)]
pub struct TokenClient {
    pub(crate) url: String,
    uri: Uri,
    client_id: Option<String>,
    auth: ClientAuth,
    params: Vec<(String, String)>,
    http: HttpClient,
    timeout: Duration,
    /// Proves possession of this key with each token request (DPoP).
    #[cfg(feature = "dpop")]
    dpop: Option<Dpop>,
}

/// A token client's DPoP key, and whether it said that the server answers
/// with bearer tokens.
#[cfg(feature = "dpop")]
struct Dpop {
    key: crate::dpop::DpopKey,
    warned_bearer: std::sync::atomic::AtomicBool,
}

impl TokenClient {
    pub(crate) fn new(
        url: String,
        uri: Uri,
        client: Option<(String, ClientAuth)>,
        params: Vec<(String, String)>,
        http: HttpClient,
        timeout: Duration,
    ) -> Self {
        let (client_id, auth) = match client {
            Some((id, auth)) => (Some(id), auth),
            None => (None, ClientAuth::none()),
        };
        Self {
            url,
            uri,
            client_id,
            auth,
            params,
            http,
            timeout,
            #[cfg(feature = "dpop")]
            dpop: None,
        }
    }

    /// Proves possession of `key` with each token request.
    #[cfg(feature = "dpop")]
    pub(crate) fn with_dpop(mut self, key: Option<crate::dpop::DpopKey>) -> Self {
        self.dpop = key.map(|key| Dpop {
            key,
            warned_bearer: std::sync::atomic::AtomicBool::new(false),
        });
        self
    }

    /// What identifies the credential for `grant` (a store keeps it with
    /// each token): the token URL, the client id and the parameters that
    /// shape the token (`scope`, `audience`, `resource`), never a secret.
    pub(crate) fn fingerprint(&self, grant: &str, identity: &[(&str, &str)]) -> String {
        let mut fingerprint = format!("oauth2 {grant} {}", self.url);
        // Sorted: the same settings given in another order are the same
        // credential.
        let mut shaping: Vec<(&str, &str)> = self
            .params
            .iter()
            .filter(|(name, _)| matches!(name.as_str(), "scope" | "audience" | "resource"))
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        shaping.sort_unstable();
        let client = self.client_id.as_deref().map(|id| ("client_id", id));
        for (name, value) in client
            .into_iter()
            .chain(identity.iter().copied())
            .chain(shaping)
        {
            fingerprint.push_str(&format!(" {name}={value:?}"));
        }
        // A DPoP-bound token is another key's credential.
        #[cfg(feature = "dpop")]
        if let Some(dpop) = &self.dpop {
            fingerprint.push_str(&format!(" dpop_jkt={:?}", dpop.key.thumbprint()));
        }
        fingerprint
    }

    /// The longest one token request may take.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// POSTs `grant` (plus the extra parameters and the client's
    /// credentials) and reads the token response. `secrets` are values in
    /// `grant` never to be shown, even if the server echoes them. A
    /// [`Failure`] converts to the [`Error`] with `?`.
    pub(crate) async fn request(
        &self,
        grant: &[(&str, &str)],
        secrets: &[&str],
    ) -> Result<TokenResponse, Failure> {
        let from_here = |error: Error| error.with_endpoint(&self.uri);
        // A DPoP server may ask for a nonce first: one more request, with
        // it, within this one.
        let mut nonce_asked = false;
        loop {
            let mut form = Form::default();
            for (name, value) in grant {
                form.push(name, value);
            }
            for (name, value) in &self.params {
                form.push(name, value);
            }
            let applied = match &self.client_id {
                Some(client_id) => {
                    self.auth
                        .apply(client_id, &self.url, &mut form, self.timeout)
                        .await?
                }
                None => Applied::default(),
            };
            let proof = self.dpop_proof().map_err(from_here)?;
            let post = endpoint::post_form(
                &self.http,
                &self.uri,
                form.finish(),
                applied.authorization,
                proof,
            );
            let answer = tokio::time::timeout(self.timeout, post)
                .await
                .map_err(|_| from_here(Error::timed_out(self.timeout)))?
                .map_err(from_here)?;
            if self.dpop_nonce_given(&answer) && !nonce_asked {
                nonce_asked = true;
                continue;
            }
            let mut secrets = secrets.to_vec();
            secrets.extend(applied.secrets.iter().map(|secret| secret.as_str()));
            let response = token_response::read(&answer, &secrets).map_err(|mut failure| {
                failure.error = from_here(failure.error);
                failure
            })?;
            return self.bind(response).map_err(|error| from_here(error).into());
        }
    }

    /// The `DPoP` header for a token request, if the client has a key.
    #[cfg(feature = "dpop")]
    fn dpop_proof(&self) -> Result<Option<http::HeaderValue>, Error> {
        let Some(dpop) = &self.dpop else {
            return Ok(None);
        };
        let origin = crate::OriginId::of(&self.uri);
        let nonce = origin.and_then(|origin| dpop.key.nonces().get(origin));
        let htu = crate::dpop::htu(&self.uri).ok_or(Error::invalid_url(
            "the token endpoint is not an absolute URL",
        ))?;
        let proof = dpop
            .key
            .proof("POST", &htu, None, nonce.as_deref())
            .map_err(|_| Error::signing("the DPoP proof could not be signed"))?;
        let mut value = http::HeaderValue::try_from(proof)
            .map_err(|_| Error::signing("the DPoP proof is not a header value"))?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    #[cfg(not(feature = "dpop"))]
    fn dpop_proof(&self) -> Result<Option<http::HeaderValue>, Error> {
        Ok(None)
    }

    /// Keeps the nonce `answer` gives, and says whether it is a nonce
    /// challenge (RFC 9449 §8) to answer with one more request.
    #[cfg(feature = "dpop")]
    fn dpop_nonce_given(&self, answer: &endpoint::Answer) -> bool {
        let Some(dpop) = &self.dpop else {
            return false;
        };
        let kept = crate::OriginId::of(&self.uri)
            .is_some_and(|origin| crate::dpop::keep_nonce(&dpop.key, origin, &answer.headers));
        kept && token_response::asks_for_dpop_nonce(answer)
    }

    #[cfg(not(feature = "dpop"))]
    fn dpop_nonce_given(&self, _answer: &endpoint::Answer) -> bool {
        false
    }

    /// Binds a `DPoP` token to the client's key; a bearer token answered to
    /// a DPoP client is used as a bearer token, which a warning says once.
    #[cfg(feature = "dpop")]
    fn bind(&self, mut response: TokenResponse) -> Result<TokenResponse, Error> {
        match (&self.dpop, response.dpop_bound) {
            (Some(dpop), true) => {
                response.token = dpop.key.bind(response.token);
                Ok(response)
            }
            (None, true) => Err(Error::invalid_response(
                "`token_type` is `DPoP`, but this source has no DPoP key (see `SourceBuilder::dpop`)",
            )),
            (Some(dpop), false) => {
                if !dpop
                    .warned_bearer
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(
                        endpoint = %self.uri.path(),
                        "the authorization server issued a bearer token to a DPoP client: \
                         it is sent as a bearer token, not bound to the key"
                    );
                }
                Ok(response)
            }
            (None, false) => Ok(response),
        }
    }

    #[cfg(not(feature = "dpop"))]
    fn bind(&self, response: TokenResponse) -> Result<TokenResponse, Error> {
        if response.dpop_bound {
            return Err(Error::invalid_response(
                "`token_type` is `DPoP`: DPoP needs the `dpop` feature and a key",
            ));
        }
        Ok(response)
    }
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<&str> = self.params.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("TokenClient")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("params", &params)
            .finish_non_exhaustive()
    }
}

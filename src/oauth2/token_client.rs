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
        }
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
        let post = endpoint::post_form(&self.http, &self.uri, form.finish(), applied.authorization);
        let from_here = |error: Error| error.with_endpoint(&self.uri);
        let answer = tokio::time::timeout(self.timeout, post)
            .await
            .map_err(|_| from_here(Error::timed_out(self.timeout)))?
            .map_err(from_here)?;
        let mut secrets = secrets.to_vec();
        secrets.extend(applied.secrets.iter().map(|secret| secret.as_str()));
        token_response::read(&answer, &secrets).map_err(|mut failure| {
            failure.error = from_here(failure.error);
            failure
        })
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

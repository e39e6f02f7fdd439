//! [`Discovery`]: finding an authorization server's token endpoint from its
//! issuer URL (OpenID Connect Discovery, RFC 8414).

use std::time::Duration;

use serde_json::Value;

use super::endpoint;
use super::{DEFAULT_REQUEST_TIMEOUT, Error, HttpClient};

/// Reads an authorization server's metadata from its issuer URL:
/// `{issuer}/.well-known/openid-configuration` (OpenID Connect), then
/// `/.well-known/oauth-authorization-server{path}` (RFC 8414).
///
/// The metadata's `issuer` must be the issuer asked for (RFC 8414 §3.3), and
/// its `token_endpoint` must pass the same URL checks as a token endpoint
/// given directly.
///
/// Each request for a document must be answered within the
/// [request timeout](Discovery::request_timeout) (by default the token
/// requests' [`DEFAULT_REQUEST_TIMEOUT`]).
///
/// # Example
///
/// ```no_run
/// use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials, Discovery};
///
/// # async fn run() -> Result<(), tower_token_refresh::oauth2::Error> {
/// let metadata = Discovery::new("https://idp.example.com/realms/main").fetch().await?;
/// let source = ClientCredentials::new(
///     metadata.token_endpoint(),
///     "my-service",
///     ClientAuth::basic("client-secret"),
/// )?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Discovery {
    issuer: String,
    http: Option<HttpClient>,
    allow_insecure_http: bool,
    timeout: Duration,
}

/// What [`Discovery`] found.
#[derive(Debug, Clone)]
pub struct ProviderMetadata {
    issuer: String,
    token_endpoint: String,
    grant_types_supported: Vec<String>,
    auth_methods_supported: Vec<String>,
}

impl ProviderMetadata {
    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token endpoint URL.
    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }

    /// `grant_types_supported`, if the server listed them.
    pub fn grant_types_supported(&self) -> &[String] {
        &self.grant_types_supported
    }

    /// `token_endpoint_auth_methods_supported`, if the server listed them.
    pub fn token_endpoint_auth_methods_supported(&self) -> &[String] {
        &self.auth_methods_supported
    }
}

impl Discovery {
    /// Discovery for the issuer at `issuer`.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            http: None,
            allow_insecure_http: false,
            timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Sets how long one request for a metadata document may take, its body
    /// read included; [`fetch`](Discovery::fetch) fails with
    /// [`ErrorKind::Timeout`](super::ErrorKind::Timeout) when it is over.
    /// Defaults to [`DEFAULT_REQUEST_TIMEOUT`] (30 seconds), as token
    /// requests do.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Uses this HTTP client.
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = Some(client);
        self
    }

    /// Allows plain `http` issuers and token endpoints that are not on a
    /// loopback address (test environments only).
    pub fn allow_insecure_http(mut self) -> Self {
        self.allow_insecure_http = true;
        self
    }

    /// Fetches and checks the metadata.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Discovery`](super::ErrorKind::Discovery) if neither
    /// document is found or usable, or the issuer does not match;
    /// [`ErrorKind::Timeout`](super::ErrorKind::Timeout) if a request is not
    /// answered within the [request timeout](Discovery::request_timeout);
    /// transport and URL errors as for token requests.
    pub async fn fetch(self) -> Result<ProviderMetadata, Error> {
        let issuer = self.issuer.trim_end_matches('/').to_owned();
        let issuer_uri = endpoint::validate(&issuer, self.allow_insecure_http)?;
        let http = self.http.unwrap_or_default();
        let openid = format!("{issuer}/.well-known/openid-configuration");
        let path = issuer_uri.path().trim_end_matches('/');
        let rfc8414 = format!(
            "{}://{}/.well-known/oauth-authorization-server{path}",
            issuer_uri.scheme_str().unwrap_or("https"),
            issuer_uri
                .authority()
                .map_or("", |authority| authority.as_str()),
        );
        let mut last = Error::discovery("no metadata document found at the issuer");
        for url in [openid, rfc8414] {
            let uri = endpoint::validate(&url, self.allow_insecure_http)?;
            // The default client has no timeout of its own, and a server
            // may accept the connection and never answer.
            let answer = tokio::time::timeout(self.timeout, endpoint::get_json(&http, &uri))
                .await
                .map_err(|_| Error::discovery_timed_out(self.timeout))??;
            if !answer.status.is_success() {
                last = Error::discovery("no metadata document found at the issuer")
                    .with_status(answer.status);
                continue;
            }
            return self::read(&answer.body, &issuer, self.allow_insecure_http);
        }
        Err(last)
    }
}

fn read(body: &[u8], issuer: &str, allow_insecure_http: bool) -> Result<ProviderMetadata, Error> {
    let Ok(Value::Object(metadata)) = serde_json::from_slice::<Value>(body) else {
        return Err(Error::discovery(
            "the metadata document is not a JSON object",
        ));
    };
    let text = |field: &str| metadata.get(field).and_then(Value::as_str);
    let list = |field: &str| -> Vec<String> {
        metadata
            .get(field)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let found_issuer = text("issuer").ok_or(Error::discovery("the metadata has no `issuer`"))?;
    if found_issuer.trim_end_matches('/') != issuer {
        return Err(Error::discovery(
            "the metadata's `issuer` is not the issuer asked for",
        ));
    }
    let token_endpoint =
        text("token_endpoint").ok_or(Error::discovery("the metadata has no `token_endpoint`"))?;
    endpoint::validate(token_endpoint, allow_insecure_http)?;
    Ok(ProviderMetadata {
        issuer: found_issuer.to_owned(),
        token_endpoint: token_endpoint.to_owned(),
        grant_types_supported: list("grant_types_supported"),
        auth_methods_supported: list("token_endpoint_auth_methods_supported"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth2::ErrorKind;

    #[test]
    fn metadata_is_checked() {
        let good = br#"{"issuer":"https://idp.example.com","token_endpoint":"https://idp.example.com/token","grant_types_supported":["client_credentials"]}"#;
        let metadata = read(good, "https://idp.example.com", false).unwrap();
        assert_eq!(metadata.token_endpoint(), "https://idp.example.com/token");
        assert_eq!(metadata.grant_types_supported(), ["client_credentials"]);

        let other_issuer = br#"{"issuer":"https://evil.example.com","token_endpoint":"https://evil.example.com/token"}"#;
        let error = read(other_issuer, "https://idp.example.com", false).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Discovery);

        let insecure = br#"{"issuer":"https://idp.example.com","token_endpoint":"http://idp.example.com/token"}"#;
        let error = read(insecure, "https://idp.example.com", false).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidUrl);

        let missing = br#"{"issuer":"https://idp.example.com"}"#;
        assert!(read(missing, "https://idp.example.com", false).is_err());
        assert!(read(b"<html>", "https://idp.example.com", false).is_err());
    }
}

//! OAuth 2.0 client credentials against your identity provider, or an
//! embedded one.
//!
//! ```sh
//! TOKEN_URL=https://idp.example.com/oauth2/token \
//! CLIENT_ID=my-service CLIENT_SECRET=... \
//! API_URL=https://api.example.com/v1/items \
//! SCOPE="items:read" \
//! cargo run --example client_credentials
//! ```
//!
//! `CLIENT_AUTH=post` sends the secret in the body instead of a Basic
//! header; `AUDIENCE` and `RESOURCE` add those parameters. Without
//! `TOKEN_URL`, an embedded token endpoint and API on 127.0.0.1 stand in.

mod support;

use std::env;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};
use tower_token_refresh::{TokenCache, TokenRefreshLayer};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(env::var("RUST_LOG").unwrap_or_else(|_| "tower_token_refresh=info".into()))
        .init();

    // Keep the embedded servers alive for the whole run.
    let mut _embedded = None;
    let (token_url, client_id, secret, api_url) = match env::var("TOKEN_URL") {
        Ok(token_url) => (
            token_url,
            env::var("CLIENT_ID")?,
            env::var("CLIENT_SECRET")?,
            env::var("API_URL")?,
        ),
        Err(_) => {
            println!("TOKEN_URL is not set: using an embedded token endpoint and API on 127.0.0.1");
            let server =
                support::Embedded::start(support::Clock::start(), Duration::from_secs(60), true)
                    .await?;
            let urls = (server.token_url(), server.api_url());
            _embedded = Some(server);
            (
                urls.0,
                support::CLIENT_ID.into(),
                support::CLIENT_SECRET.into(),
                urls.1,
            )
        }
    };

    let auth = match env::var("CLIENT_AUTH").as_deref() {
        Ok("post") => ClientAuth::post(secret),
        _ => ClientAuth::basic(secret),
    };
    let mut source = ClientCredentials::builder(token_url, client_id, auth);
    if let Ok(scope) = env::var("SCOPE") {
        source = source.scope(scope);
    }
    if let Ok(audience) = env::var("AUDIENCE") {
        source = source.audience(audience);
    }
    if let Ok(resource) = env::var("RESOURCE") {
        source = source.resource(resource);
    }
    let cache = TokenCache::new(source.build()?);

    // An HTTPS-capable API client (rustls with the webpki roots), wrapped in
    // the layer.
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // rustls' provider from its crate features (or the process default).
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache))
        .service(Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(connector));

    for attempt in 1..=3 {
        let request = Request::get(api_url.as_str()).body(Empty::new())?;
        let response = client.clone().oneshot(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        println!("request {attempt}: {status} ({} bytes)", body.len());
        if !status.is_success() {
            return Err(format!("the API answered {status}").into());
        }
    }
    Ok(())
}

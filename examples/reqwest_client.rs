//! A reqwest client behind `TokenRefreshMiddleware` (reqwest-middleware),
//! with tokens from an OAuth 2.0 client-credentials endpoint.
//!
//! ```sh
//! cargo run --example reqwest_client --features reqwest-middleware
//! ```
//!
//! An embedded token endpoint, an API and another server run on
//! 127.0.0.1 (plain HTTP). The API accepts the tokens the token endpoint
//! issued (it asks the endpoint's server, as a resource server asks an
//! introspection endpoint) unless it was told a token is revoked. One
//! `TokenCache` serves the client through the middleware, with
//! `.retry_rejected()` and `.only_to(the API's origin)`:
//!
//! 1. three concurrent requests, all authorized with one token fetch;
//! 2. the API revokes that token: the next request (a `POST` with a body)
//!    is rejected, the token dropped, a new one fetched and the request
//!    sent again with the same body, and the caller sees only the success;
//! 3. a request to the other server, outside `only_to`, goes without the
//!    token.
//!
//! The example prints each response and the cache's statistics, and exits
//! non-zero unless everything went as expected.

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use support::{CLIENT_ID, CLIENT_SECRET, Clock, Embedded};
use tower::BoxError;
use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};
use tower_token_refresh::{Origin, TokenCache, TokenRefreshMiddleware, TokenRejected};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let clock = Clock::start();
    let identity = Embedded::start(clock, Duration::from_secs(60), false).await?;
    let api = Api::start(identity.api_url()).await?;
    // Another server: the token must never reach it.
    let other = Embedded::start(clock, Duration::from_secs(60), true).await?;
    println!("token endpoint on   http://{}", identity.addr);
    println!("API on              http://{}", api.addr);
    println!("another server on   http://{}\n", other.addr);

    let source = ClientCredentials::new(
        identity.token_url(),
        CLIENT_ID,
        ClientAuth::basic(CLIENT_SECRET),
    )?;
    let cache = TokenCache::builder(source).name("embedded-api").build();
    let api_origin = Origin::parse(&format!("http://{}", api.addr))?;

    // The middleware goes in the client's chain; the cache can be shared
    // with other clients (tower stacks too).
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(
            TokenRefreshMiddleware::new(cache.clone())
                .retry_rejected()
                .only_to([api_origin]),
        )
        .build();

    let url = format!("http://{}/items", api.addr);
    let mut ok = true;

    println!("three concurrent requests:");
    let (first, second, third) =
        tokio::join!(get(&client, &url), get(&client, &url), get(&client, &url));
    for outcome in [first?, second?, third?] {
        ok &= outcome == (StatusCode::OK, "tok-1".to_owned());
    }

    println!("\nthe API revokes tok-1:");
    api.revoke("tok-1");
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"item":42}"#)
        .send()
        .await?;
    let rejected = response.extensions().get::<TokenRejected>().cloned();
    let status = response.status();
    let body = response.text().await?;
    println!(
        "POST {url} -> {status}, API saw: {body} (token rejected, retried: {})",
        rejected.as_ref().is_some_and(TokenRejected::retried)
    );
    ok &= status == StatusCode::OK
        && body == r#"tok-2 {"item":42}"#
        && rejected.is_some_and(|rejected| rejected.retried());
    ok &= get(&client, &url).await? == (StatusCode::OK, "tok-2".to_owned());

    // Not one of the `only_to` origins: sent as is, so that server sees no
    // bearer token ("unknown token" would mean ours leaked to it).
    println!("\nto another origin, outside `only_to`:");
    ok &= get(&client, &other.api_url()).await?
        == (StatusCode::UNAUTHORIZED, "no bearer token".to_owned());

    let stats = cache.stats();
    println!("\ncache stats: {stats:#?}");
    println!("tokens issued by the token endpoint: {}", identity.issued());
    println!("tokens the API saw: {:?}", api.seen());

    if !ok {
        println!("FAILED: a response did not come back as expected");
    }
    if stats.fetches != 2
        || stats.rejections != 1
        || stats.retries != 1
        || identity.issued() != 2
        || other.issued() != 0
    {
        println!(
            "FAILED: expected two token fetches (the first token and its replacement), \
             one rejection and one retry"
        );
        ok = false;
    }
    if !ok {
        std::process::exit(1);
    }
    println!("OK: authorized, a revoked token replaced transparently, no token to other origins");
    Ok(())
}

/// Sends `GET url`, prints the response, and returns its status and body.
async fn get(client: &ClientWithMiddleware, url: &str) -> Result<(StatusCode, String), BoxError> {
    let response = client.get(url).send().await?;
    let status = response.status();
    let body = response.text().await?;
    println!("GET  {url} -> {status}, server saw: {body}");
    Ok((status, body))
}

/// The API: `/items` answers `200` with the bearer token it was sent (and
/// the request's body), when the token endpoint's server vouches for the
/// token and the API has not revoked it; `401` otherwise.
#[derive(Clone)]
struct Api {
    addr: SocketAddr,
    state: Arc<ApiState>,
}

struct ApiState {
    /// The token endpoint's server: `GET` there answers `200` for a token
    /// it issued that has not expired.
    introspection: String,
    http: reqwest::Client,
    revoked: Mutex<HashSet<String>>,
    seen: Mutex<Vec<String>>,
}

impl Api {
    async fn start(introspection: String) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ApiState {
            introspection,
            http: reqwest::Client::new(),
            revoked: Mutex::new(HashSet::new()),
            seen: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/items", any(items))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { addr, state })
    }

    fn revoke(&self, token: &str) {
        lock(&self.state.revoked).insert(token.to_owned());
    }

    /// The bearer tokens the API was sent, in order.
    fn seen(&self) -> Vec<String> {
        lock(&self.state.seen).clone()
    }
}

async fn items(State(api): State<Arc<ApiState>>, headers: HeaderMap, body: String) -> Response {
    let Some(token) = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return (StatusCode::UNAUTHORIZED, "no bearer token").into_response();
    };
    lock(&api.seen).push(token.to_owned());
    if lock(&api.revoked).contains(token) {
        return (StatusCode::UNAUTHORIZED, "token revoked").into_response();
    }
    let vouched = api
        .http
        .get(&api.introspection)
        .bearer_auth(token)
        .send()
        .await
        .is_ok_and(|response| response.status() == StatusCode::OK);
    if !vouched {
        return (StatusCode::UNAUTHORIZED, "unknown token").into_response();
    }
    let answer = if body.is_empty() {
        token.to_owned()
    } else {
        format!("{token} {body}")
    };
    (StatusCode::OK, answer).into_response()
}

/// A lock that a panicked holder does not poison for the rest.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

//! hyper-util's legacy `Client` wrapped in `TokenRefreshLayer`, over HTTP/1
//! and HTTP/2, with tokens from an OAuth 2.0 client-credentials endpoint.
//!
//! ```sh
//! cargo run --example hyper_client
//! ```
//!
//! An embedded token endpoint and API run on 127.0.0.1. Four clients share
//! one `TokenCache`: HTTP/1 and HTTP/2 (prior knowledge, h2c), each for
//! `GET` with an `Empty<Bytes>` body and `POST` with a `Full<Bytes>` body.
//! The layer is restricted with `.only_to(..)` to the API's origin, so a
//! request to another server (a second embedded API) goes out without the
//! token. The example prints each response and the cache's statistics, and
//! exits non-zero unless every call went as expected with a single token
//! fetched.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use support::{CLIENT_ID, CLIENT_SECRET, Clock, Embedded};
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};
use tower_token_refresh::{Origin, TokenCache, TokenRefresh, TokenRefreshLayer};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let api = Embedded::start(Clock::start(), Duration::from_secs(60), true).await?;
    // Another server: the token must never reach it.
    let other = Embedded::start(Clock::start(), Duration::from_secs(60), true).await?;
    println!("API and token endpoint on http://{}", api.addr);
    println!("another server on        http://{}\n", other.addr);

    let source =
        ClientCredentials::new(api.token_url(), CLIENT_ID, ClientAuth::basic(CLIENT_SECRET))?;
    let cache = TokenCache::builder(source).name("embedded-api").build();
    let api_origin = Origin::parse(&format!("http://{}", api.addr))?;

    // Any number of clients can share one cache, whatever their protocol or
    // body type: they all use (and refresh) the same token.
    let layer = TokenRefreshLayer::new(cache.clone()).only_to([api_origin]);
    let mut http1_get = authorized::<Empty<Bytes>>(&layer, false);
    let mut http1_post = authorized::<Full<Bytes>>(&layer, false);
    let mut http2_get = authorized::<Empty<Bytes>>(&layer, true);
    let mut http2_post = authorized::<Full<Bytes>>(&layer, true);

    let url = api.api_url();
    let mut ok = send(&mut http1_get, get(&url)).await? == (StatusCode::OK, Version::HTTP_11);
    ok &= send(&mut http1_post, post(&url)).await? == (StatusCode::OK, Version::HTTP_11);
    ok &= send(&mut http2_get, get(&url)).await? == (StatusCode::OK, Version::HTTP_2);
    ok &= send(&mut http2_post, post(&url)).await? == (StatusCode::OK, Version::HTTP_2);

    // Not one of the `only_to` origins: sent as is, so that server sees no
    // bearer token and answers 401 (which is not the cache's token being
    // rejected: nothing is dropped).
    println!("\nto another origin, outside `only_to`:");
    let other_url = other.api_url();
    ok &= send(&mut http1_get, get(&other_url)).await?.0 == StatusCode::UNAUTHORIZED;

    let stats = cache.stats();
    println!("\ncache stats: {stats:#?}");
    println!("tokens issued by the token endpoint: {}", api.issued());

    if !ok {
        println!("FAILED: a response did not come back as expected");
    }
    if stats.fetches != 1 || api.issued() != 1 || other.issued() != 0 {
        println!("FAILED: expected exactly one token fetch for all five requests");
        ok = false;
    }
    if !ok {
        std::process::exit(1);
    }
    println!("OK: HTTP/1 and HTTP/2, GET and POST, all with one token");
    Ok(())
}

/// A hyper-util client for request bodies of type `B`, HTTP/1 or (with
/// `http2_only`) HTTP/2 with prior knowledge, wrapped in `layer`.
fn authorized<B>(
    layer: &TokenRefreshLayer,
    http2_only: bool,
) -> TokenRefresh<Client<HttpConnector, B>>
where
    B: Body<Data: Send> + Send + 'static,
{
    ServiceBuilder::new().layer(layer.clone()).service(
        Client::builder(TokioExecutor::new())
            .http2_only(http2_only)
            .build_http(),
    )
}

fn get(url: &str) -> Request<Empty<Bytes>> {
    Request::get(url)
        .body(Empty::new())
        .expect("a valid request")
}

fn post(url: &str) -> Request<Full<Bytes>> {
    Request::post(url)
        .header("content-type", "application/json")
        .body(Full::from(r#"{"item":42}"#))
        .expect("a valid request")
}

/// Sends `request`, prints the response, and returns its status and HTTP
/// version.
async fn send<S, B, R>(
    client: &mut S,
    request: Request<B>,
) -> Result<(StatusCode, Version), BoxError>
where
    S: Service<Request<B>, Response = Response<R>, Error = BoxError>,
    R: Body<Error: Into<BoxError>>,
{
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = client.ready().await?.call(request).await?;
    let (status, version) = (response.status(), response.version());
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(Into::into)?
        .to_bytes();
    println!(
        "{:<4} {uri} over {version:?} -> {status}, server saw: {}",
        method.as_str(),
        String::from_utf8_lossy(&body)
    );
    Ok((status, version))
}

//! An axum gateway that forwards requests to an upstream API with a bearer
//! token added: the app's state holds one hyper-util client wrapped in
//! `TokenRefreshLayer`, shared by every handler call.
//!
//! ```sh
//! cargo run --example axum_gateway
//! ```
//!
//! An embedded OAuth 2.0 token endpoint and upstream API run on 127.0.0.1
//! (the API answers with the token it saw). The gateway, an axum app on
//! 127.0.0.1, forwards `/api` to the upstream `/api`; it gets its tokens with
//! client credentials. The example sends several requests to the gateway at
//! once with a plain hyper client (which knows nothing about tokens), prints
//! the answers, and exits non-zero unless they all succeeded with a single
//! token fetch however many arrived together.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{Request, Response, StatusCode, Uri, header};
use axum::routing::{any, get};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use support::{CLIENT_ID, CLIENT_SECRET, Clock, Embedded};
use tokio::net::TcpListener;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};
use tower_token_refresh::{Origin, TokenCache, TokenRefresh, TokenRefreshLayer};

const CONCURRENT_REQUESTS: usize = 6;

/// The gateway's state: one authorized client, cheap to clone.
#[derive(Clone)]
struct Gateway {
    upstream: TokenRefresh<Client<HttpConnector, Body>>,
    authority: Authority,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let clock = Clock::start();
    let upstream = Embedded::start(clock, Duration::from_secs(60), false).await?;
    println!(
        "upstream API and token endpoint on http://{}",
        upstream.addr
    );

    let source = ClientCredentials::new(
        upstream.token_url(),
        CLIENT_ID,
        ClientAuth::basic(CLIENT_SECRET),
    )?;
    let cache = TokenCache::builder(source).name("upstream").build();
    let client = ServiceBuilder::new()
        .layer(
            TokenRefreshLayer::new(cache.clone())
                .only_to([Origin::parse(&format!("http://{}", upstream.addr))?]),
        )
        .service(Client::builder(TokioExecutor::new()).build_http());
    let gateway = Gateway {
        upstream: client,
        authority: upstream.addr.to_string().parse()?,
    };

    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api", any(forward))
        .with_state(gateway);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let gateway_addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("gateway failed: {error}");
        }
    });
    println!("gateway on http://{gateway_addr}\n");

    // Callers of the gateway: a plain client, no tokens.
    let plain = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let calls: Vec<_> = (1..=CONCURRENT_REQUESTS)
        .map(|caller| {
            let plain = plain.clone();
            tokio::spawn(async move {
                let outcome = call(&plain, gateway_addr).await;
                match &outcome {
                    Ok(body) => clock.print(
                        &format!("caller {caller}"),
                        &format!("GET /api -> 200, upstream saw {body}"),
                    ),
                    Err(error) => {
                        clock.print(&format!("caller {caller}"), &format!("FAILED: {error}"))
                    }
                }
                outcome
            })
        })
        .collect();
    let mut failed = 0;
    for call in calls {
        if call.await?.is_err() {
            failed += 1;
        }
    }

    let stats = cache.stats();
    println!("\nsummary");
    println!(
        "  {CONCURRENT_REQUESTS} concurrent requests through the gateway: {} succeeded, {failed} failed",
        CONCURRENT_REQUESTS - failed
    );
    println!(
        "  token fetches: {} (requests that waited for it: {}); tokens issued upstream: {}",
        stats.fetches,
        stats.waited,
        upstream.issued()
    );
    if failed > 0 || stats.fetches != 1 || upstream.issued() != 1 {
        println!("FAILED: expected every request to succeed with a single token fetch");
        std::process::exit(1);
    }
    println!("OK: one token fetch served every concurrent request");
    Ok(())
}

/// Forwards a request to the upstream API; the layer adds the token.
async fn forward(
    State(gateway): State<Gateway>,
    mut request: Request<Body>,
) -> Result<Response<Body>, (StatusCode, String)> {
    let mut target = request.uri().clone().into_parts();
    target.scheme = Some(Scheme::HTTP);
    target.authority = Some(gateway.authority);
    target.path_and_query = Some(
        target
            .path_and_query
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    *request.uri_mut() = Uri::from_parts(target).map_err(bad_gateway)?;
    // The caller's own credentials and host are not the upstream's business.
    let headers = request.headers_mut();
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::HOST);

    let response = gateway
        .upstream
        .oneshot(request)
        .await
        .map_err(bad_gateway)?;
    Ok(response.map(Body::new))
}

fn bad_gateway(error: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::BAD_GATEWAY, format!("upstream failed: {error}"))
}

/// Calls the gateway's `/api`; the body of a 200, or what went wrong.
async fn call(
    client: &Client<HttpConnector, Empty<Bytes>>,
    gateway: SocketAddr,
) -> Result<String, BoxError> {
    let uri: Uri = format!("http://{gateway}/api").parse()?;
    let response = client.get(uri).await?;
    Ok(support::read(response).await?)
}

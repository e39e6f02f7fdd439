//! The main job, on an embedded default: a token endpoint and an API run in
//! this process on 127.0.0.1, tokens live 3 seconds, and several workers call
//! the API through `TokenRefreshLayer` for 10 seconds.
//!
//! Run it with `cargo run --example demo`. It prints a timeline of every
//! token issued and every request (with the token it carried), then a
//! summary, and exits non-zero if any request failed.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_token_refresh::{Token, TokenCache, TokenRefreshLayer};

const TOKEN_LIFETIME: Duration = Duration::from_secs(3);
const RUN_FOR: Duration = Duration::from_secs(10);
const WORKERS: usize = 4;
const REQUEST_EVERY: Duration = Duration::from_millis(700);

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let clock = Clock(Instant::now());
    let server = EmbeddedServer::start(clock).await?;

    println!(
        "tower-token-refresh demo: {WORKERS} workers call the API every {REQUEST_EVERY:?} \
         for {RUN_FOR:?}; tokens live {TOKEN_LIFETIME:?}"
    );
    println!("token endpoint and API on http://{}\n", server.addr);
    println!("{:>8}  {:<15} event", "time", "who");

    // The token source: POST to the token endpoint with a plain client (the
    // token request must not go through the layer itself).
    let token_client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let token_url = format!("http://{}/token", server.addr);
    let cache = TokenCache::new(move || fetch_token(token_client.clone(), token_url.clone()));

    // The API client: any tower HTTP client, wrapped in the layer.
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (1..=WORKERS)
        .map(|worker| {
            let api = api.clone();
            let url = format!("http://{}/api", server.addr);
            let outcomes = Arc::clone(&outcomes);
            tokio::spawn(async move {
                // Spread the workers over the interval.
                tokio::time::sleep(REQUEST_EVERY * worker as u32 / WORKERS as u32).await;
                while clock.elapsed() < RUN_FOR {
                    let started = Instant::now();
                    let request = Request::get(url.as_str()).body(Empty::new()).unwrap();
                    let outcome = match api.clone().oneshot(request).await {
                        Ok(response) => read(response).await,
                        Err(error) => Err(format!("request failed: {error}")),
                    };
                    let took = started.elapsed();
                    let who = format!("worker {worker}");
                    match &outcome {
                        Ok(token) => {
                            clock.print(&who, &format!("GET /api -> 200 with {token} ({took:.1?})"))
                        }
                        Err(error) => clock.print(&who, &format!("GET /api FAILED: {error}")),
                    }
                    outcomes.lock().unwrap().push(outcome);
                    tokio::time::sleep(REQUEST_EVERY).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let failed = outcomes.iter().filter(|outcome| outcome.is_err()).count();
    let mut per_token = BTreeMap::new();
    for token in outcomes.iter().flatten() {
        *per_token.entry(token_number(token)).or_insert(0) += 1;
    }
    let issued = server.issued.load(Ordering::SeqCst);
    println!("\nsummary");
    println!(
        "  {} requests: {} succeeded, {failed} failed",
        outcomes.len(),
        outcomes.len() - failed
    );
    println!(
        "  {issued} tokens issued in {:.1?}: the first on demand, then one refresh ahead of each expiry",
        clock.elapsed()
    );
    println!(
        "  most token requests in flight at once: {} (single-flight)",
        server.max_in_flight.load(Ordering::SeqCst)
    );
    for (number, count) in per_token {
        println!("  tok-{number}: used by {count} requests");
    }
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Asks the embedded token endpoint for a token.
async fn fetch_token(
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: String,
) -> Result<Token, BoxError> {
    let response = client
        .request(Request::post(url).body(Empty::new())?)
        .await?;
    if response.status() != StatusCode::OK {
        return Err(format!("token endpoint answered {}", response.status()).into());
    }
    let body = response.into_body().collect().await?.to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    let token = json["access_token"].as_str().ok_or("no access_token")?;
    let expires_in = json["expires_in"].as_f64().ok_or("no expires_in")?;
    Ok(Token::bearer(token).expires_in(Duration::from_secs_f64(expires_in)))
}

/// The token an API response says it saw, or why the request failed.
async fn read<B>(response: Response<B>) -> Result<String, String>
where
    B: hyper::body::Body,
    B::Error: std::fmt::Display,
{
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| error.to_string())?
        .to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    if status == StatusCode::OK {
        Ok(body)
    } else {
        Err(format!("{status}: {body}"))
    }
}

fn token_number(token: &str) -> usize {
    token.trim_start_matches("tok-").parse().unwrap_or(0)
}

/// Time since the demo started, for the timeline.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }

    fn print(&self, who: &str, what: &str) {
        println!("{:>7.3}s  {who:<15} {what}", self.elapsed().as_secs_f64());
    }
}

/// The token endpoint and the API, in this process.
struct EmbeddedServer {
    addr: SocketAddr,
    issued: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

struct ServerState {
    clock: Clock,
    /// Issued tokens and when they expire.
    tokens: Mutex<BTreeMap<String, Instant>>,
    issued: Arc<AtomicUsize>,
    in_flight: AtomicUsize,
    max_in_flight: Arc<AtomicUsize>,
}

impl EmbeddedServer {
    async fn start(clock: Clock) -> Result<Self, BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ServerState {
            clock,
            tokens: Mutex::new(BTreeMap::new()),
            issued: Arc::new(AtomicUsize::new(0)),
            in_flight: AtomicUsize::new(0),
            max_in_flight: Arc::new(AtomicUsize::new(0)),
        });
        let server = Self {
            addr,
            issued: Arc::clone(&state.issued),
            max_in_flight: Arc::clone(&state.max_in_flight),
        };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(state.handle(request).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(server)
    }
}

impl ServerState {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        match (request.method(), request.uri().path()) {
            (&Method::POST, "/token") => self.issue().await,
            (&Method::GET, "/api") => self.api(&request),
            _ => respond(StatusCode::NOT_FOUND, "no such route"),
        }
    }

    async fn issue(&self) -> Response<Full<Bytes>> {
        let in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(in_flight, Ordering::SeqCst);
        // A token endpoint takes a moment.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("tok-{n}");
        self.tokens
            .lock()
            .unwrap()
            .insert(token.clone(), Instant::now() + TOKEN_LIFETIME);
        self.clock.print(
            "token endpoint",
            &format!("issued {token}, valid for {TOKEN_LIFETIME:?}"),
        );
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let body = serde_json::json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME.as_secs_f64(),
        });
        let mut response = respond(StatusCode::OK, &body.to_string());
        response
            .headers_mut()
            .insert(CONTENT_TYPE, "application/json".parse().unwrap());
        response
    }

    fn api(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let Some(token) = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
        else {
            return respond(StatusCode::UNAUTHORIZED, "no bearer token");
        };
        match self.tokens.lock().unwrap().get(token) {
            Some(expiry) if Instant::now() < *expiry => respond(StatusCode::OK, token),
            Some(_) => respond(StatusCode::UNAUTHORIZED, "token expired"),
            None => respond(StatusCode::UNAUTHORIZED, "unknown token"),
        }
    }
}

fn respond(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::from(body.to_owned()));
    *response.status_mut() = status;
    response
}

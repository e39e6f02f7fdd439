//! An embedded identity provider and API on 127.0.0.1, so that the examples
//! run as they are: `POST /token` (OAuth 2.0 client credentials, Basic
//! authentication as `demo-client` / `demo-secret`) and `GET /api`, which
//! accepts only the tokens it issued, until they expire.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::time::Instant;

pub const CLIENT_ID: &str = "demo-client";
pub const CLIENT_SECRET: &str = "demo-secret";

/// Time since the example started, for timelines.
#[derive(Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Self {
        Self(Instant::now())
    }

    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }

    /// Prints one timeline line.
    pub fn print(&self, who: &str, what: &str) {
        println!("{:>7.3}s  {who:<15} {what}", self.elapsed().as_secs_f64());
    }
}

/// The embedded token endpoint and API.
pub struct Embedded {
    pub addr: SocketAddr,
    state: Arc<State>,
}

struct State {
    clock: Clock,
    lifetime: Duration,
    tokens: Mutex<BTreeMap<String, Instant>>,
    issued: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    quiet: bool,
}

impl Embedded {
    /// Starts the servers; tokens live `lifetime`. With `quiet`, issuing a
    /// token is not printed.
    pub async fn start(clock: Clock, lifetime: Duration, quiet: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            clock,
            lifetime,
            tokens: Mutex::new(BTreeMap::new()),
            issued: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            quiet,
        });
        let serving = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&serving);
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
        Ok(Self { addr, state })
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }

    /// The most token requests that were ever in progress at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

impl State {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        match (request.method(), request.uri().path()) {
            (&Method::POST, "/token") => self.issue(&request).await,
            (_, "/api") => self.api(&request),
            _ => respond(StatusCode::NOT_FOUND, "no such route"),
        }
    }

    async fn issue(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let expected = format!(
            "Basic {}",
            STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
        );
        if request
            .headers()
            .get(AUTHORIZATION)
            .map(|value| value.as_bytes())
            != Some(expected.as_bytes())
        {
            let mut response = respond(
                StatusCode::UNAUTHORIZED,
                r#"{"error":"invalid_client","error_description":"unknown client"}"#,
            );
            json(&mut response);
            return response;
        }
        let in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(in_flight, Ordering::SeqCst);
        // An identity provider takes a moment.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("tok-{n}");
        self.tokens
            .lock()
            .unwrap()
            .insert(token.clone(), Instant::now() + self.lifetime);
        if !self.quiet {
            self.clock.print(
                "token endpoint",
                &format!("issued {token}, valid for {:?}", self.lifetime),
            );
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let body = format!(
            r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
            self.lifetime.as_secs_f64()
        );
        let mut response = respond(StatusCode::OK, &body);
        json(&mut response);
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

/// The body of a `200 OK` response (the token the API saw), or what went
/// wrong.
pub async fn read<B>(response: http::Response<B>) -> Result<String, String>
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

fn respond(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::from(body.to_owned()));
    *response.status_mut() = status;
    response
}

fn json(response: &mut Response<Full<Bytes>>) {
    response
        .headers_mut()
        .insert(CONTENT_TYPE, "application/json".parse().unwrap());
}

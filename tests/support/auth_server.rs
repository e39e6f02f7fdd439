//! A real HTTP server on 127.0.0.1 with a token endpoint (`POST /token`)
//! and an API (`GET /api`) that accepts only tokens it issued and that have
//! not expired. Under `/api/v1/namespaces/{ns}/pods/{name}` it answers as
//! the Kubernetes API does: a `Pod` object, as JSON (its annotation
//! `token` says which token the request carried).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_token_refresh::{BoxError, Token, TokenSource};

/// The server; it stops when dropped.
pub struct AuthServer {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

struct State {
    lifetime: Duration,
    issued: Mutex<HashMap<String, Instant>>,
    read_body_first: std::sync::atomic::AtomicBool,
    token_requests: AtomicUsize,
    api_requests: AtomicUsize,
    rejected: AtomicUsize,
}

impl AuthServer {
    /// Starts a server whose tokens live `lifetime` (real time).
    pub async fn start(lifetime: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            lifetime,
            issued: Mutex::new(HashMap::new()),
            read_body_first: std::sync::atomic::AtomicBool::new(false),
            token_requests: AtomicUsize::new(0),
            api_requests: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept(listener, Arc::clone(&state)));
        Self { addr, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    pub fn api_requests(&self) -> usize {
        self.state.api_requests.load(Ordering::SeqCst)
    }

    pub fn rejected(&self) -> usize {
        self.state.rejected.load(Ordering::SeqCst)
    }

    /// Makes `token` invalid before its expiry.
    pub fn revoke(&self, token: &str) {
        self.state.issued.lock().unwrap().remove(token);
    }

    /// Makes `/api` read the whole request body before checking the token.
    pub fn read_body_first(&self) {
        self.state.read_body_first.store(true, Ordering::SeqCst);
    }

    /// A token source that asks this server's token endpoint, with a plain
    /// client of its own (never through the layer).
    pub fn token_source(&self) -> impl TokenSource + Clone {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let url = self.url("/token");
        move || fetch_token(client.clone(), url.clone())
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn fetch_token(
    client: Client<HttpConnector, Empty<Bytes>>,
    url: String,
) -> Result<Token, BoxError> {
    let request = Request::post(url).body(Empty::new())?;
    let response = client.request(request).await?;
    if !response.status().is_success() {
        return Err(format!("token endpoint answered {}", response.status()).into());
    }
    let body = response.into_body().collect().await?.to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    let access_token = json["access_token"].as_str().ok_or("no access_token")?;
    let expires_in = json["expires_in"].as_f64().ok_or("no expires_in")?;
    Ok(Token::bearer(access_token).expires_in(Duration::from_secs_f64(expires_in)))
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(&state, request).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::POST, "/token") => {
            let n = state.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
            let token = format!("tok-{n}");
            state
                .issued
                .lock()
                .unwrap()
                .insert(token.clone(), Instant::now() + state.lifetime);
            let body = serde_json::json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": state.lifetime.as_secs_f64(),
            });
            Response::builder()
                .header(CONTENT_TYPE, "application/json")
                .body(Full::from(body.to_string()))
                .unwrap()
        }
        (&Method::GET | &Method::POST, path) if path == "/api" || path.starts_with("/api/") => {
            state.api_requests.fetch_add(1, Ordering::SeqCst);
            let (parts, body) = request.into_parts();
            let mut body = Some(body);
            let mut read = None;
            if state.read_body_first.load(Ordering::SeqCst) {
                read = Some(body.take().unwrap().collect().await.unwrap().to_bytes());
            }
            let token = parts
                .headers
                .get(AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "));
            let valid = token.and_then(|token| {
                let issued = state.issued.lock().unwrap();
                issued
                    .get(token)
                    .filter(|expiry| Instant::now() < **expiry)
                    .map(|_| token.to_owned())
            });
            match valid {
                Some(token) if parts.uri.path().starts_with("/api/v1/namespaces/") => {
                    kubernetes_pod(parts.uri.path(), &token)
                }
                Some(token) => {
                    let body = match (read, body) {
                        (Some(bytes), _) => bytes,
                        (None, Some(body)) => body.collect().await.unwrap().to_bytes(),
                        (None, None) => Bytes::new(),
                    };
                    let text = if body.is_empty() {
                        format!("hello, holder of {token}")
                    } else {
                        format!("{token} got {}", String::from_utf8_lossy(&body))
                    };
                    Response::new(Full::from(text))
                }
                None => {
                    state.rejected.fetch_add(1, Ordering::SeqCst);
                    Response::builder()
                        .status(StatusCode::UNAUTHORIZED)
                        .body(Full::default())
                        .unwrap()
                }
            }
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::default())
            .unwrap(),
    }
}

/// What the Kubernetes API answers to `GET /api/v1/namespaces/{ns}/pods/{name}`:
/// the Pod (only its metadata here), or `404` with a `Status` object.
fn kubernetes_pod(path: &str, token: &str) -> Response<Full<Bytes>> {
    let parts: Vec<&str> = path
        .trim_start_matches("/api/v1/namespaces/")
        .split('/')
        .collect();
    let json = |status: StatusCode, body: serde_json::Value| {
        Response::builder()
            .status(status)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::from(body.to_string()))
            .unwrap()
    };
    match parts.as_slice() {
        [namespace, "pods", name] => json(
            StatusCode::OK,
            serde_json::json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "annotations": { "token": token },
                },
            }),
        ),
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({
                "apiVersion": "v1",
                "kind": "Status",
                "status": "Failure",
                "reason": "NotFound",
                "code": 404,
            }),
        ),
    }
}

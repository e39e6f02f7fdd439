//! A strict OAuth 2.0 token endpoint on 127.0.0.1 for tests: it checks what
//! a real authorization server checks, and injects the faults a test asks
//! for.
#![cfg(feature = "oauth2")]

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How a registered client must authenticate.
#[derive(Clone)]
pub enum ClientMethod {
    Basic(String),
    Post(String),
    /// `private_key_jwt`, verified with this public key (PEM).
    PrivateKeyJwt(Vec<u8>),
    /// A federated credential (Microsoft Entra workload identity): a
    /// `jwt-bearer` client assertion that is one of the
    /// [trusted subject tokens](TokenEndpoint::trust_subject_token).
    FederatedAssertion,
}

/// What the endpoint answers instead of a token, when a test says so.
#[derive(Clone, Debug)]
pub enum Fault {
    /// This status, with an optional `Retry-After` (seconds) and body.
    Status(u16, Option<u64>, &'static str),
    /// `200 OK` with this body.
    Body(String),
    /// `200 OK` with a body this many bytes long.
    Oversized(usize),
    /// Never answer.
    Hang,
    /// Send the headers and part of the body, then break the connection.
    ResetMidBody,
    /// Send a valid token response one byte every 100 ms.
    Trickle,
}

/// Response bodies of the endpoint (faults stream theirs).
type Body = http_body_util::combinators::BoxBody<Bytes, tower::BoxError>;

fn boxed(response: Response<Full<Bytes>>) -> Response<Body> {
    response.map(|body| body.map_err(|never| match never {}).boxed())
}

#[derive(Default)]
struct State {
    clients: HashMap<String, ClientMethod>,
    /// Refresh tokens that are currently valid.
    refresh_tokens: HashSet<String>,
    rotate_refresh_tokens: bool,
    /// Public keys for the JWT bearer grant, by issuer.
    assertion_keys: HashMap<String, Vec<u8>>,
    seen_jti: HashSet<String>,
    /// Tokens a token exchange (RFC 8693) accepts as `subject_token` (or
    /// `actor_token`), and federated clients as their assertion: the ones
    /// a trusted issuer (a Kubernetes cluster, a CI) issued and that have
    /// not expired.
    subject_tokens: HashSet<String>,
    /// If set, the only audiences a token exchange issues tokens for.
    exchange_audiences: Option<HashSet<String>>,
    faults: Vec<Fault>,
    /// Problems the endpoint found in requests (the test asserts none).
    problems: Vec<String>,
    forms: Vec<HashMap<String, String>>,
    lifetime_secs: u64,
    /// Answers are held this long after the request was processed.
    answer_delay: Option<std::time::Duration>,
    /// Every token request gets this fault until it is cleared.
    fault: Option<Fault>,
    /// The tasks serving open connections.
    connections: Vec<tokio::task::AbortHandle>,
}

/// The endpoint; stops when dropped.
pub struct TokenEndpoint {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    requests: Arc<AtomicUsize>,
    task: Mutex<JoinHandle<()>>,
}

impl TokenEndpoint {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            lifetime_secs: 3600,
            ..State::default()
        }));
        let requests = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(listener, addr, state.clone(), requests.clone()));
        Self {
            addr,
            state,
            requests,
            task: Mutex::new(task),
        }
    }

    /// An endpoint where client `cli` (`post` authentication with
    /// `secret`) may exchange the refresh token `refresh-0`, rotated on each
    /// exchange (`refresh-1`, `refresh-2`, …).
    pub async fn rotating_refresh_tokens(secret: &str) -> Self {
        let endpoint = Self::start().await;
        endpoint.register("cli", ClientMethod::Post(secret.into()));
        endpoint.issue_refresh_token("refresh-0", true);
        endpoint
    }

    /// A refresh token grant for the client of
    /// [`rotating_refresh_tokens`](Self::rotating_refresh_tokens) with the
    /// same `secret`, starting from `refresh-0`.
    pub fn refresh_token_grant(
        &self,
        secret: &str,
    ) -> tower_token_refresh::oauth2::SourceBuilder<tower_token_refresh::oauth2::RefreshTokenGrant>
    {
        tower_token_refresh::oauth2::RefreshTokenGrant::builder(
            self.token_url(),
            "cli",
            tower_token_refresh::oauth2::ClientAuth::post(secret),
            "refresh-0",
        )
    }

    /// Stops listening and closes open connections: connections are
    /// refused until [`Self::listen_again`].
    pub fn stop_listening(&self) {
        self.task.lock().unwrap().abort();
        for connection in self.state.lock().unwrap().connections.drain(..) {
            connection.abort();
        }
    }

    /// Listens again on the same address.
    pub async fn listen_again(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        let task = tokio::spawn(serve(
            listener,
            self.addr,
            self.state.clone(),
            self.requests.clone(),
        ));
        *self.task.lock().unwrap() = task;
    }

    /// Every token request gets `fault` (or, with `None`, tokens again).
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.state.lock().unwrap().fault = fault;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn token_url(&self) -> String {
        self.url("/token")
    }

    pub fn register(&self, client_id: &str, method: ClientMethod) {
        self.state
            .lock()
            .unwrap()
            .clients
            .insert(client_id.to_owned(), method);
    }

    pub fn issue_refresh_token(&self, token: &str, rotate: bool) {
        let mut state = self.state.lock().unwrap();
        state.refresh_tokens.insert(token.to_owned());
        state.rotate_refresh_tokens = rotate;
    }

    pub fn trust_assertions_from(&self, issuer: &str, public_key_pem: &[u8]) {
        self.state
            .lock()
            .unwrap()
            .assertion_keys
            .insert(issuer.to_owned(), public_key_pem.to_vec());
    }

    /// Accepts `token` as a subject (or actor) token of a token exchange,
    /// and as a federated client's assertion.
    pub fn trust_subject_token(&self, token: &str) {
        self.state
            .lock()
            .unwrap()
            .subject_tokens
            .insert(token.to_owned());
    }

    /// No longer accepts `token` (it expired, or was revoked).
    pub fn distrust_subject_token(&self, token: &str) {
        self.state.lock().unwrap().subject_tokens.remove(token);
    }

    /// Token exchanges issue tokens for these audiences only
    /// (`invalid_target` for others).
    pub fn exchange_only_for(&self, audiences: &[&str]) {
        self.state.lock().unwrap().exchange_audiences = Some(
            audiences
                .iter()
                .map(|audience| (*audience).to_owned())
                .collect(),
        );
    }

    /// The next requests get these faults, in order, then tokens again.
    pub fn fail_with(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.lock().unwrap().faults.extend(faults);
    }

    /// Processes requests at once but holds each answer for `delay`.
    pub fn delay_answers(&self, delay: std::time::Duration) {
        self.state.lock().unwrap().answer_delay = Some(delay);
    }

    pub fn set_lifetime_secs(&self, secs: u64) {
        self.state.lock().unwrap().lifetime_secs = secs;
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Problems found in the requests received (a strict server's 400s).
    pub fn problems(&self) -> Vec<String> {
        self.state.lock().unwrap().problems.clone()
    }

    /// The forms received, in order.
    pub fn forms(&self) -> Vec<HashMap<String, String>> {
        self.state.lock().unwrap().forms.clone()
    }
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.task.lock().unwrap().abort();
    }
}

async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    requests: Arc<AtomicUsize>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        let (state, requests) = (state.clone(), requests.clone());
        let connections = state.clone();
        let connection = tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (state, requests) = (state.clone(), requests.clone());
                async move {
                    let response = handle(addr, &state, &requests, request).await;
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        connections
            .lock()
            .unwrap()
            .connections
            .push(connection.abort_handle());
    }
}

fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::from(body.to_string()))
        .unwrap()
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        json!({"error": code, "error_description": description}),
    )
}

async fn handle(
    addr: SocketAddr,
    state: &Mutex<State>,
    requests: &AtomicUsize,
    request: Request<Incoming>,
) -> Response<Body> {
    let base = format!("http://{addr}");
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/.well-known/openid-configuration") => boxed(json_response(
            StatusCode::OK,
            json!({"issuer": base, "token_endpoint": format!("{base}/token"),
                   "grant_types_supported": ["client_credentials", "refresh_token"]}),
        )),
        // `/token`, or a tenant's, as Microsoft Entra ID has them
        // (`/{tenant}/oauth2/v2.0/token`).
        (_, path) if path == "/token" || path.ends_with("/oauth2/v2.0/token") => {
            requests.fetch_add(1, Ordering::SeqCst);
            let fault = {
                let mut state = state.lock().unwrap();
                if state.faults.is_empty() {
                    state.fault.clone()
                } else {
                    Some(state.faults.remove(0))
                }
            };
            if let Some(fault) = fault {
                return faulty(fault).await;
            }
            let answer = boxed(token(&base, state, request).await);
            let delay = state.lock().unwrap().answer_delay;
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            answer
        }
        _ => boxed(json_response(StatusCode::NOT_FOUND, json!({}))),
    }
}

/// The answer a fault gives.
async fn faulty(fault: Fault) -> Response<Body> {
    match fault {
        Fault::Status(status, retry_after, body) => {
            let mut response = Response::builder().status(status);
            if let Some(seconds) = retry_after {
                response = response.header(RETRY_AFTER, seconds.to_string());
            }
            boxed(response.body(Full::from(body)).unwrap())
        }
        Fault::Body(body) => boxed(Response::new(Full::from(body))),
        Fault::Oversized(len) => boxed(Response::new(Full::from(vec![b'x'; len]))),
        Fault::Hang => std::future::pending().await,
        Fault::ResetMidBody => {
            let frames = futures_frames(vec![
                Ok(Bytes::from_static(br#"{"access_token":"cut"#)),
                Err("connection broken on purpose".into()),
            ]);
            Response::builder()
                .header(CONTENT_TYPE, "application/json")
                .header("content-length", "100")
                .body(frames)
                .unwrap()
        }
        Fault::Trickle => {
            let body = br#"{"access_token":"slow","token_type":"Bearer","expires_in":60}"#;
            let (sender, receiver) = tokio::sync::mpsc::channel(1);
            tokio::spawn(async move {
                for byte in body {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    if sender
                        .send(Ok(Bytes::copy_from_slice(&[*byte])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
            Response::builder()
                .header(CONTENT_TYPE, "application/json")
                .body(channel_frames(receiver))
                .unwrap()
        }
    }
}

/// A body of these chunks (an error breaks the connection).
fn futures_frames(chunks: Vec<Result<Bytes, tower::BoxError>>) -> Body {
    let (sender, receiver) = tokio::sync::mpsc::channel(chunks.len().max(1));
    for chunk in chunks {
        let _ = sender.try_send(chunk);
    }
    channel_frames(receiver)
}

fn channel_frames(receiver: tokio::sync::mpsc::Receiver<Result<Bytes, tower::BoxError>>) -> Body {
    struct Frames(tokio::sync::mpsc::Receiver<Result<Bytes, tower::BoxError>>);
    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = tower::BoxError;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, tower::BoxError>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|chunk| chunk.map(http_body::Frame::data)))
        }
    }
    Frames(receiver).boxed()
}

async fn token(
    base: &str,
    state: &Mutex<State>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let problem = |state: &Mutex<State>, text: String| {
        state.lock().unwrap().problems.push(text.clone());
        oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &text)
    };
    if request.method() != Method::POST {
        return problem(state, format!("method {}", request.method()));
    }
    let content_type = request.headers().get(CONTENT_TYPE).cloned();
    if content_type.as_ref().and_then(|value| value.to_str().ok())
        != Some("application/x-www-form-urlencoded")
    {
        return problem(state, format!("content-type {content_type:?}"));
    }
    let basic = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    state.lock().unwrap().forms.push(form.clone());

    // Client authentication, in exactly the registered style.
    let client = match authenticate(base, state, basic.as_deref(), &form) {
        Ok(client) => client,
        Err(response) => return response,
    };

    let lifetime = state.lock().unwrap().lifetime_secs;
    let n = state.lock().unwrap().forms.len();
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") if client.is_some() => json_response(
            StatusCode::OK,
            json!({"access_token": format!("cc-{n}"), "token_type": "Bearer",
                   "expires_in": lifetime, "scope": form.get("scope")}),
        ),
        Some("refresh_token") => {
            let Some(presented) = form.get("refresh_token") else {
                return problem(state, "refresh_token missing".into());
            };
            let mut state = state.lock().unwrap();
            if !state.refresh_tokens.contains(presented) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "refresh token is not valid",
                );
            }
            let mut body = json!({"access_token": format!("rt-access-{n}"), "token_type": "bearer",
                                  "expires_in": lifetime.to_string()});
            if state.rotate_refresh_tokens {
                state.refresh_tokens.remove(presented);
                let rotated = format!("refresh-{n}");
                state.refresh_tokens.insert(rotated.clone());
                body["refresh_token"] = rotated.into();
            }
            json_response(StatusCode::OK, body)
        }
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let Some(assertion) = form.get("assertion") else {
                return problem(state, "assertion missing".into());
            };
            let claims = {
                let state = state.lock().unwrap();
                let issuer = unverified_claims(assertion)
                    .and_then(|claims| claims["iss"].as_str().map(str::to_owned));
                let key = issuer.and_then(|issuer| state.assertion_keys.get(&issuer).cloned());
                key.and_then(|key| verify(assertion, &key))
            };
            match claims.map(|claims| check_claims(state, &claims, &format!("{base}/token"))) {
                Some(Ok(())) => json_response(
                    StatusCode::OK,
                    json!({"access_token": format!("jb-{n}"), "token_type": "Bearer", "expires_in": lifetime}),
                ),
                Some(Err(why)) => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", &why),
                None => oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "bad assertion signature",
                ),
            }
        }
        Some("urn:ietf:params:oauth:grant-type:token-exchange") => {
            exchange(state, &form, n, lifetime)
        }
        Some(other) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("grant_type {other}"),
        ),
        None => problem(state, "grant_type missing".into()),
    }
}

/// A token exchange (RFC 8693 §2.1, §2.2): the subject token (and actor
/// token, if any) must be trusted and typed; the answer's
/// `issued_token_type` is the requested one (an access token by default),
/// and a token that is not an access token has `token_type` `N_A`.
fn exchange(
    state: &Mutex<State>,
    form: &HashMap<String, String>,
    n: usize,
    lifetime: u64,
) -> Response<Full<Bytes>> {
    // §2.2.2: an invalid or unacceptable subject or actor token is
    // `invalid_request`.
    let invalid = |why: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why);
    let state = state.lock().unwrap();
    let trusted = |field: &str| {
        form.get(field)
            .is_some_and(|token| state.subject_tokens.contains(token))
    };
    if !form.contains_key("subject_token") || !form.contains_key("subject_token_type") {
        return invalid("subject_token and subject_token_type are required");
    }
    if !trusted("subject_token") {
        return invalid("the subject token is not valid");
    }
    if form.contains_key("actor_token") != form.contains_key("actor_token_type") {
        return invalid("actor_token and actor_token_type go together");
    }
    if form.contains_key("actor_token") && !trusted("actor_token") {
        return invalid("the actor token is not valid");
    }
    if let (Some(allowed), Some(audience)) = (&state.exchange_audiences, form.get("audience"))
        && !allowed.contains(audience)
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "no tokens for that audience",
        );
    }
    const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
    let issued = form
        .get("requested_token_type")
        .map_or(ACCESS_TOKEN, String::as_str);
    let token_type = if issued == ACCESS_TOKEN {
        "Bearer"
    } else {
        "N_A"
    };
    json_response(
        StatusCode::OK,
        json!({"access_token": format!("tx-{n}"), "issued_token_type": issued,
               "token_type": token_type, "expires_in": lifetime}),
    )
}

/// `Ok(Some(id))` for an authenticated client, `Ok(None)` for no client
/// authentication at all (the JWT bearer grant), or the error response.
#[allow(clippy::result_large_err)]
fn authenticate(
    base: &str,
    state: &Mutex<State>,
    basic: Option<&str>,
    form: &HashMap<String, String>,
) -> Result<Option<String>, Response<Full<Bytes>>> {
    let invalid = |why: &str| Err(oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why));
    let from_basic = basic
        .and_then(|value| value.strip_prefix("Basic "))
        .map(|encoded| {
            let decoded = STANDARD.decode(encoded).unwrap_or_default();
            let decoded = String::from_utf8(decoded).unwrap_or_default();
            let (id, secret) = decoded.split_once(':').unwrap_or_default();
            let unescape = |part: &str| -> String {
                form_urlencoded::parse(format!("x={part}").as_bytes())
                    .next()
                    .map(|(_, value)| value.into_owned())
                    .unwrap_or_default()
            };
            (unescape(id), unescape(secret))
        });
    let client_id = from_basic
        .as_ref()
        .map(|(id, _)| id.clone())
        .or_else(|| form.get("client_id").cloned());
    let Some(client_id) = client_id else {
        return Ok(None);
    };
    let method = state.lock().unwrap().clients.get(&client_id).cloned();
    match method {
        None => invalid("unknown client"),
        Some(ClientMethod::Basic(secret)) => {
            match (&from_basic, form.contains_key("client_secret")) {
                (Some((_, sent)), false) if *sent == secret => Ok(Some(client_id)),
                (Some(_), false) => invalid("wrong secret"),
                _ => invalid("this client must use client_secret_basic"),
            }
        }
        Some(ClientMethod::Post(secret)) => match (&from_basic, form.get("client_secret")) {
            (None, Some(sent)) if *sent == secret => Ok(Some(client_id)),
            (None, Some(_)) => invalid("wrong secret"),
            _ => invalid("this client must use client_secret_post"),
        },
        Some(ClientMethod::PrivateKeyJwt(public_key)) => {
            if form.get("client_assertion_type").map(String::as_str)
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            {
                return invalid("client_assertion_type missing or wrong");
            }
            let Some(claims) = form
                .get("client_assertion")
                .and_then(|assertion| verify(assertion, &public_key))
            else {
                return invalid("client assertion signature does not verify");
            };
            if claims["iss"] != client_id.as_str() || claims["sub"] != client_id.as_str() {
                return invalid("iss and sub must be the client id");
            }
            match check_claims(state, &claims, &format!("{base}/token")) {
                Ok(()) => Ok(Some(client_id)),
                Err(why) => invalid(&why),
            }
        }
        Some(ClientMethod::FederatedAssertion) => {
            if form.get("client_assertion_type").map(String::as_str)
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            {
                return invalid("client_assertion_type missing or wrong");
            }
            let trusted = form
                .get("client_assertion")
                .is_some_and(|assertion| state.lock().unwrap().subject_tokens.contains(assertion));
            if trusted {
                Ok(Some(client_id))
            } else {
                invalid("the client assertion is not a trusted federated token")
            }
        }
    }
}

/// `aud`, `exp`, `iat` and `jti` as RFC 7523 §3 requires.
fn check_claims(state: &Mutex<State>, claims: &Value, token_url: &str) -> Result<(), String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if claims["aud"] != token_url {
        return Err(format!("aud {} is not the token endpoint", claims["aud"]));
    }
    let exp = claims["exp"].as_u64().ok_or("exp missing")?;
    if exp <= now || exp > now + 3600 {
        return Err("exp out of range".into());
    }
    let iat = claims["iat"].as_u64().ok_or("iat missing")?;
    if iat > now + 5 {
        return Err("iat in the future".into());
    }
    let jti = claims["jti"].as_str().ok_or("jti missing")?;
    if !state.lock().unwrap().seen_jti.insert(jti.to_owned()) {
        return Err("jti reused".into());
    }
    Ok(())
}

fn unverified_claims(jwt: &str) -> Option<Value> {
    let payload = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// Verifies a JWS with a public key, with the backend this build has.
fn verify(jwt: &str, public_key_pem: &[u8]) -> Option<Value> {
    #[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
    {
        use jsonwebtoken::{Algorithm, DecodingKey};
        let (message, signature) = jwt.rsplit_once('.')?;
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(message.split('.').next()?).ok()?)
                .ok()?;
        let algorithm: Algorithm = serde_json::from_value(header["alg"].clone()).ok()?;
        let key = match algorithm {
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(public_key_pem).ok()?,
            _ => DecodingKey::from_rsa_pem(public_key_pem).ok()?,
        };
        #[cfg(feature = "rust-crypto")]
        let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
        #[cfg(not(feature = "rust-crypto"))]
        let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
        let verifier = (provider.verifier_factory)(&algorithm, &key).ok()?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        verifier.verify(message.as_bytes(), &signature).ok()?;
        unverified_claims(jwt)
    }
    #[cfg(not(any(feature = "rust-crypto", feature = "aws-lc-rs")))]
    {
        let _ = (jwt, public_key_pem);
        None
    }
}

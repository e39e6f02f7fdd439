//! An authorization server and a resource server on 127.0.0.1 that enforce
//! DPoP (RFC 9449) as §4.3 and §7 say a server must check proofs: one
//! well-formed `DPoP` header; `typ` `dpop+jwt`; an asymmetric `alg` (not
//! `none`, not HMAC); a public `jwk` (no private part) that verifies the
//! signature (verified with jsonwebtoken, not with the crate's signer);
//! `htm` and `htu` matching the request; `iat` within a minute; `jti` never
//! seen before; `ath` = the token's hash and the token bound to the proof's
//! key (`cnf.jkt`, kept here per token); the server's nonce when it demands
//! one. Nonces can be demanded and rotated on either server.
#![cfg(all(feature = "dpop", any(feature = "rust-crypto", feature = "aws-lc-rs")))]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "dpop-client";
pub const CLIENT_SECRET: &str = "dpop-secret";

#[derive(Default)]
struct Inner {
    addr: Option<SocketAddr>,
    /// Issued tokens and the thumbprint each is bound to (`cnf.jkt`).
    tokens: HashMap<String, String>,
    seen_jti: HashSet<String>,
    /// The nonce each server demands, if it does.
    token_nonce: Option<String>,
    api_nonce: Option<String>,
    /// The authorization server ignores proofs and issues bearer tokens.
    bearer_only: bool,
    token_requests: usize,
    token_nonce_challenges: usize,
    api_requests: usize,
    api_nonce_challenges: usize,
    api_ok: usize,
    /// What the servers refused, and why (for tests to assert).
    refusals: Vec<String>,
    /// The last `DPoP` header the resource server accepted.
    last_proof: Option<String>,
    /// After this many API requests, the API's nonce rotates, announced in
    /// a `DPoP-Nonce` header of a successful response.
    rotate_api_nonce_after: Option<usize>,
}

/// The two servers; stop when dropped.
#[derive(Clone)]
pub struct DpopServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for DpopServer {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

impl DpopServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner {
            addr: Some(addr),
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/token", post(token))
            .route("/api", any(api))
            .route("/api/{*rest}", any(api))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            inner,
            task: Arc::new(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The token endpoint demands `nonce` (`use_dpop_nonce` until given).
    pub fn demand_token_nonce(&self, nonce: &str) {
        self.inner.lock().unwrap().token_nonce = Some(nonce.to_owned());
    }

    /// The API demands `nonce`.
    pub fn demand_api_nonce(&self, nonce: &str) {
        self.inner.lock().unwrap().api_nonce = Some(nonce.to_owned());
    }

    /// After `requests` more API requests, the API's nonce changes, and the
    /// next successful response says so in `DPoP-Nonce`.
    pub fn rotate_api_nonce_after(&self, requests: usize) {
        let mut inner = self.inner.lock().unwrap();
        inner.rotate_api_nonce_after = Some(inner.api_requests + requests);
    }

    pub fn issue_bearer_tokens(&self) {
        self.inner.lock().unwrap().bearer_only = true;
    }

    pub fn token_requests(&self) -> usize {
        self.inner.lock().unwrap().token_requests
    }

    pub fn token_nonce_challenges(&self) -> usize {
        self.inner.lock().unwrap().token_nonce_challenges
    }

    pub fn api_requests(&self) -> usize {
        self.inner.lock().unwrap().api_requests
    }

    pub fn api_nonce_challenges(&self) -> usize {
        self.inner.lock().unwrap().api_nonce_challenges
    }

    pub fn api_ok(&self) -> usize {
        self.inner.lock().unwrap().api_ok
    }

    pub fn refusals(&self) -> Vec<String> {
        self.inner.lock().unwrap().refusals.clone()
    }

    pub fn last_proof(&self) -> Option<String> {
        self.inner.lock().unwrap().last_proof.clone()
    }

    /// Checks a request to another server of this resource owner (a gRPC
    /// method at `origin` + `path`): `Authorization: DPoP` with a token the
    /// authorization server issued, and a valid proof for it.
    pub fn check_grpc(
        &self,
        method: &Method,
        origin: &str,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(), String> {
        let mut inner = self.inner.lock().unwrap();
        inner.api_requests += 1;
        let token = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("DPoP "))
            .ok_or("no DPoP authorization")?
            .to_owned();
        let htu = format!("{origin}{path}");
        let checked = check_proof(&mut inner, headers, method, &htu, Some(&token));
        match checked {
            Ok(_) => {
                inner.api_ok += 1;
                Ok(())
            }
            Err(Refused(why)) => {
                inner.refusals.push(format!("grpc: {why}"));
                Err(why)
            }
        }
    }

    /// The thumbprint the token was bound to, if the server issued it.
    pub fn bound_to(&self, token: &str) -> Option<String> {
        self.inner.lock().unwrap().tokens.get(token).cloned()
    }
}

fn oauth_error(status: StatusCode, code: &str, nonce: Option<&str>) -> Response {
    let mut response = (
        status,
        [("content-type", "application/json")],
        json!({"error": code}).to_string(),
    )
        .into_response();
    if let Some(nonce) = nonce {
        response
            .headers_mut()
            .insert("dpop-nonce", nonce.parse().unwrap());
    }
    response
}

fn json_ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `WWW-Authenticate: DPoP error="<code>"`, with the nonce to use if any.
fn dpop_challenge(code: &str, nonce: Option<&str>) -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, "").into_response();
    let headers = response.headers_mut();
    headers.insert(
        "www-authenticate",
        format!(r#"DPoP algs="ES256 EdDSA RS256", error="{code}""#)
            .parse()
            .unwrap(),
    );
    if let Some(nonce) = nonce {
        headers.insert("dpop-nonce", nonce.parse().unwrap());
    }
    response
}

/// A refused proof: why, for the test to read.
struct Refused(String);

/// Checks the request's `DPoP` proof (RFC 9449 §4.3), and returns the
/// thumbprint of its key and its claims.
fn check_proof(
    inner: &mut Inner,
    headers: &HeaderMap,
    method: &Method,
    htu: &str,
    token: Option<&str>,
) -> Result<(String, Value), Refused> {
    let refuse = |why: &str| Err(Refused(why.to_owned()));
    let mut proofs = headers.get_all("dpop").iter();
    let (Some(proof), None) = (proofs.next(), proofs.next()) else {
        return refuse("not exactly one DPoP header");
    };
    let proof = proof.to_str().map_err(|_| Refused("not text".into()))?;
    let parts: Vec<&str> = proof.split('.').collect();
    if parts.len() != 3 {
        return refuse("not a compact JWS");
    }
    let decode =
        |part: &str| -> Option<Value> { serde_json::from_slice(&B64.decode(part).ok()?).ok() };
    let (Some(header), Some(claims)) = (decode(parts[0]), decode(parts[1])) else {
        return refuse("header or claims are not base64url JSON");
    };
    if header["typ"] != "dpop+jwt" {
        return refuse("typ is not dpop+jwt");
    }
    let alg = header["alg"].as_str().unwrap_or_default();
    if !["ES256", "EdDSA", "RS256"].contains(&alg) {
        return refuse("alg is not an accepted asymmetric algorithm");
    }
    let jwk = &header["jwk"];
    if jwk.get("d").is_some() || jwk.get("p").is_some() {
        return refuse("the jwk has a private part");
    }
    verify_signature(alg, jwk, proof).map_err(Refused)?;
    if claims["htm"] != method.as_str() {
        return refuse("htm does not match");
    }
    if claims["htu"] != htu {
        return Err(Refused(format!("htu {} is not {htu}", claims["htu"])));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let iat = claims["iat"].as_i64().ok_or(Refused("no iat".into()))?;
    if (now - iat).abs() > 60 {
        return refuse("iat is not within a minute");
    }
    let jti = claims["jti"].as_str().unwrap_or_default();
    if jti.len() < 16 || !inner.seen_jti.insert(jti.to_owned()) {
        return refuse("jti missing, short, or replayed");
    }
    let thumbprint = thumbprint(jwk);
    if let Some(token) = token {
        if claims["ath"] != B64.encode(Sha256::digest(token.as_bytes())) {
            return refuse("ath does not match the token");
        }
        if inner.tokens.get(token) != Some(&thumbprint) {
            return refuse("the token is not bound to the proof's key");
        }
    }
    Ok((thumbprint, claims))
}

/// RFC 7638 thumbprint of a public JWK.
fn thumbprint(jwk: &Value) -> String {
    let canonical = match jwk["kty"].as_str() {
        Some("EC") => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            jwk["crv"], jwk["x"], jwk["y"]
        ),
        Some("OKP") => format!(r#"{{"crv":{},"kty":"OKP","x":{}}}"#, jwk["crv"], jwk["x"]),
        Some("RSA") => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, jwk["e"], jwk["n"]),
        _ => String::new(),
    };
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

/// Verifies the proof's signature with its own `jwk`, with jsonwebtoken.
fn verify_signature(alg: &str, jwk: &Value, proof: &str) -> Result<(), String> {
    use jsonwebtoken::{Algorithm, DecodingKey, jwk::Jwk};
    let jwk: Jwk = serde_json::from_value(jwk.clone()).map_err(|_| "unreadable jwk")?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "unusable jwk")?;
    let algorithm: Algorithm =
        serde_json::from_value(Value::String(alg.to_owned())).map_err(|_| "unknown alg")?;
    #[cfg(feature = "rust-crypto")]
    let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
    #[cfg(not(feature = "rust-crypto"))]
    let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
    let verifier = (provider.verifier_factory)(&algorithm, &key).map_err(|_| "no verifier")?;
    let (message, signature) = proof.rsplit_once('.').ok_or("no signature")?;
    let signature = B64
        .decode(signature)
        .map_err(|_| "signature not base64url")?;
    verifier
        .verify(message.as_bytes(), &signature)
        .map_err(|_| "the signature does not verify with the jwk".to_owned())
}

async fn token(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.token_requests += 1;
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").map(|value| value.as_bytes()) != Some(basic.as_bytes())
        || form.get("grant_type").map(String::as_str) != Some("client_credentials")
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", None);
    }
    let n = inner.tokens.len() + 1;
    if inner.bearer_only {
        let token = format!("bearer-{n}");
        inner.tokens.insert(token.clone(), String::new());
        return json_ok(json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600}));
    }
    let htu = format!("http://{}/token", inner.addr.unwrap());
    let (thumbprint, claims) = match check_proof(&mut inner, &headers, &method, &htu, None) {
        Ok(checked) => checked,
        Err(Refused(why)) => {
            inner.refusals.push(format!("token endpoint: {why}"));
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof", None);
        }
    };
    if let Some(nonce) = inner.token_nonce.clone()
        && claims["nonce"] != nonce.as_str()
    {
        inner.token_nonce_challenges += 1;
        return oauth_error(StatusCode::BAD_REQUEST, "use_dpop_nonce", Some(&nonce));
    }
    let token = format!("dpop-{n}");
    inner.tokens.insert(token.clone(), thumbprint);
    json_ok(json!({"access_token": token, "token_type": "DPoP", "expires_in": 3600}))
}

async fn api(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut inner = inner.lock().unwrap();
    inner.api_requests += 1;
    let authorization = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Some(token) = authorization.strip_prefix("Bearer ") {
        return if inner.tokens.get(token).is_some_and(String::is_empty) {
            inner.api_ok += 1;
            (StatusCode::OK, "bearer ok").into_response()
        } else {
            dpop_challenge("invalid_token", None)
        };
    }
    let Some(token) = authorization.strip_prefix("DPoP ") else {
        inner.refusals.push("api: no DPoP authorization".into());
        return dpop_challenge("invalid_token", None);
    };
    if !inner.tokens.contains_key(token) {
        inner.refusals.push("api: unknown token".into());
        return dpop_challenge("invalid_token", None);
    }
    let htu = format!("http://{}{}", inner.addr.unwrap(), uri.path());
    let claims = match check_proof(&mut inner, &headers, &method, &htu, Some(token)) {
        Ok((_, claims)) => claims,
        Err(Refused(why)) => {
            inner.refusals.push(format!("api: {why}"));
            return dpop_challenge("invalid_dpop_proof", None);
        }
    };
    if let Some(nonce) = inner.api_nonce.clone()
        && claims["nonce"] != nonce.as_str()
    {
        inner.api_nonce_challenges += 1;
        return dpop_challenge("use_dpop_nonce", Some(&nonce));
    }
    inner.api_ok += 1;
    inner.last_proof = headers
        .get("dpop")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut response = (StatusCode::OK, format!("ok {token}")).into_response();
    if inner
        .rotate_api_nonce_after
        .is_some_and(|after| inner.api_requests >= after)
    {
        inner.rotate_api_nonce_after = None;
        let next = format!("api-nonce-{}", inner.api_requests);
        inner.api_nonce = Some(next.clone());
        response
            .headers_mut()
            .insert("dpop-nonce", next.parse().unwrap());
    }
    response
}

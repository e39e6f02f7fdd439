//! Sender-constrained tokens (DPoP, RFC 9449) end to end, on an embedded
//! authorization server and API that enforce them.
//!
//! Both servers verify every proof (its ES256 signature with the key it
//! carries, `typ`, `htm`, `htu`, `iat`, a `jti` never seen, and at the API
//! `ath` and the token's binding to the key), and both demand a nonce: the
//! token endpoint answers the first request with `use_dpop_nonce`, the API
//! challenges the first call and later rotates its nonce. The client never
//! sees any of it: one token is fetched, and every call succeeds.
//!
//! Run it with `cargo run --example dpop --features dpop`. It prints what
//! each server saw, and exits non-zero if a call failed or a proof was
//! refused.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use p256::ecdsa::signature::Verifier;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_token_refresh::dpop::{DpopAlgorithm, DpopKey};
use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};
use tower_token_refresh::{TokenCache, TokenRefreshLayer};

const CALLS: usize = 6;

#[derive(Default)]
struct Servers {
    base: String,
    /// Issued tokens and the key thumbprint each is bound to.
    tokens: HashMap<String, String>,
    seen_jti: HashSet<String>,
    token_nonce: String,
    api_nonce: String,
    api_calls: usize,
    refused: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let servers = Arc::new(Mutex::new(Servers {
        token_nonce: "as-nonce-1".into(),
        api_nonce: "api-nonce-1".into(),
        ..Servers::default()
    }));
    let app = Router::new()
        .route("/token", post(token))
        .route("/orders", get(orders))
        .with_state(servers.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    servers.lock().unwrap().base = base.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The client: a key of its own, and the layer with retries, so that a
    // nonce challenge is answered on the spot.
    let key = DpopKey::generate(DpopAlgorithm::ES256)?;
    println!("client key: {key:?}");
    let source = ClientCredentials::builder(
        format!("{base}/token"),
        "dpop-demo",
        ClientAuth::basic("dpop-demo-secret"),
    )
    .dpop(key)
    .build()?;
    let cache = TokenCache::new(source);
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()).retry_rejected())
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    let mut failed = 0;
    for call in 1..=CALLS {
        let request = http::Request::get(format!("{base}/orders")).body(Empty::new())?;
        let response = api.clone().oneshot(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        println!("call {call}: {status} {}", String::from_utf8_lossy(&body));
        if status != StatusCode::OK {
            failed += 1;
        }
    }
    let servers = servers.lock().unwrap();
    let stats = cache.stats();
    println!(
        "\n{CALLS} calls, {failed} failed; {} token fetched, {} API requests \
         (nonce challenges answered by the layer), {} proofs refused",
        stats.fetches,
        servers.api_calls,
        servers.refused.len()
    );
    for why in &servers.refused {
        println!("  refused: {why}");
    }
    if failed > 0 || !servers.refused.is_empty() || stats.fetches != 1 {
        return Err("DPoP demo failed".into());
    }
    Ok(())
}

/// Verifies a request's proof (RFC 9449 §4.3) for `method` and `htu`, and
/// for `token` when one is presented; returns the key's thumbprint and the
/// claims.
fn verify(
    servers: &mut Servers,
    headers: &HeaderMap,
    method: &Method,
    htu: &str,
    token: Option<&str>,
) -> Result<(String, Value), String> {
    let proof = headers
        .get("dpop")
        .and_then(|value| value.to_str().ok())
        .ok_or("no DPoP proof")?;
    let mut parts = proof.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS".into());
    };
    let decode = |part: &str| -> Result<Value, String> {
        let bytes = B64.decode(part).map_err(|_| "not base64url")?;
        serde_json::from_slice(&bytes).map_err(|_| "not JSON".to_owned())
    };
    let (header_json, claims) = (decode(header)?, decode(claims)?);
    if header_json["typ"] != "dpop+jwt" || header_json["alg"] != "ES256" {
        return Err("typ or alg".into());
    }
    let jwk = &header_json["jwk"];
    let coordinate = |name: &str| B64.decode(jwk[name].as_str().unwrap_or_default());
    let (Ok(x), Ok(y)) = (coordinate("x"), coordinate("y")) else {
        return Err("jwk".into());
    };
    let point = p256::EncodedPoint::from_affine_coordinates(
        x.as_slice().into(),
        y.as_slice().into(),
        false,
    );
    let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point).map_err(|_| "jwk")?;
    let signature = B64
        .decode(signature)
        .ok()
        .and_then(|bytes| p256::ecdsa::Signature::from_slice(&bytes).ok())
        .ok_or("signature")?;
    let (signed, _) = proof.rsplit_once('.').unwrap_or_default();
    key.verify(signed.as_bytes(), &signature)
        .map_err(|_| "the signature does not verify")?;
    if claims["htm"] != method.as_str() || claims["htu"] != htu {
        return Err("htm or htu".into());
    }
    let jti = claims["jti"].as_str().unwrap_or_default().to_owned();
    if !servers.seen_jti.insert(jti) {
        return Err("jti replayed".into());
    }
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#,
        jwk["x"], jwk["y"]
    );
    let thumbprint = B64.encode(Sha256::digest(canonical.as_bytes()));
    if let Some(token) = token {
        if claims["ath"] != B64.encode(Sha256::digest(token.as_bytes())) {
            return Err("ath".into());
        }
        if servers.tokens.get(token) != Some(&thumbprint) {
            return Err("the token is bound to another key".into());
        }
    }
    Ok((thumbprint, claims))
}

async fn token(
    State(servers): State<Arc<Mutex<Servers>>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let mut servers = servers.lock().unwrap();
    let htu = format!("{}/token", servers.base);
    let (thumbprint, claims) = match verify(&mut servers, &headers, &method, &htu, None) {
        Ok(checked) => checked,
        Err(why) => {
            servers.refused.push(format!("token endpoint: {why}"));
            return (StatusCode::BAD_REQUEST, r#"{"error":"invalid_dpop_proof"}"#).into_response();
        }
    };
    if claims["nonce"] != servers.token_nonce.as_str() {
        println!("token endpoint: use_dpop_nonce (the client's first request has none)");
        let nonce = servers.token_nonce.clone();
        return (
            StatusCode::BAD_REQUEST,
            [
                ("dpop-nonce", nonce.as_str()),
                ("content-type", "application/json"),
            ],
            r#"{"error":"use_dpop_nonce"}"#,
        )
            .into_response();
    }
    let token = format!("dpop-token-{}", servers.tokens.len() + 1);
    println!("token endpoint: issued {token}, bound to key {thumbprint}");
    servers.tokens.insert(token.clone(), thumbprint);
    (
        [("content-type", "application/json")],
        format!(r#"{{"access_token":"{token}","token_type":"DPoP","expires_in":3600}}"#),
    )
        .into_response()
}

async fn orders(
    State(servers): State<Arc<Mutex<Servers>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut servers = servers.lock().unwrap();
    servers.api_calls += 1;
    let challenge = |error: &str| format!(r#"DPoP algs="ES256", error="{error}""#);
    let token = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("DPoP "))
        .unwrap_or_default()
        .to_owned();
    let htu = format!("{}{}", servers.base, uri.path());
    let claims = match verify(&mut servers, &headers, &method, &htu, Some(&token)) {
        Ok((_, claims)) => claims,
        Err(why) => {
            servers.refused.push(format!("API: {why}"));
            let value = challenge("invalid_token");
            return (StatusCode::UNAUTHORIZED, [("www-authenticate", value)], "").into_response();
        }
    };
    let nonce = servers.api_nonce.clone();
    if claims["nonce"] != nonce.as_str() {
        println!("API: use_dpop_nonce (challenging the proof, not the token)");
        let headers = [
            ("www-authenticate", challenge("use_dpop_nonce")),
            ("dpop-nonce", nonce),
        ];
        return (StatusCode::UNAUTHORIZED, headers, "").into_response();
    }
    // Halfway through, the API rotates its nonce by challenging again.
    if servers.api_calls == CALLS / 2 + 1 {
        servers.api_nonce = "api-nonce-2".into();
    }
    (StatusCode::OK, format!("orders for {token}")).into_response()
}

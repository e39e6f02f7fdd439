//! What a token source costs beyond the network: reading a JWT's `exp`, and
//! a whole client-credentials exchange (form, request, JSON token response)
//! over an in-memory HTTP client that answers at once. Reported as absolute
//! times, for context: they run once per token lifetime.
//!
//! Run with `cargo bench --bench token_sources`.

use std::convert::Infallible;
use std::future::ready;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use tower::service_fn;
use tower_token_refresh::Token;
use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials, HttpClient};

fn jwt() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = format!(
        r#"{{"iss":"https://idp.example.com","sub":"svc","aud":"api","iat":{now},"exp":{},"scope":"orders:read orders:write","jti":"5b2c1e0f"}}"#,
        now + 3600
    );
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#),
        URL_SAFE_NO_PAD.encode(claims),
        URL_SAFE_NO_PAD.encode([7u8; 256])
    )
}

fn token_sources(c: &mut Criterion) {
    let jwt = jwt();
    c.bench_function("token_sources/jwt_exp", |b| {
        b.iter(|| Token::from_jwt(jwt.as_str()).unwrap())
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = Bytes::from(format!(
        r#"{{"access_token":"{jwt}","token_type":"Bearer","expires_in":3600,"scope":"orders:read orders:write"}}"#
    ));
    let endpoint = service_fn(move |_: Request<Full<Bytes>>| {
        let response = Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .unwrap();
        ready(Ok::<_, Infallible>(response))
    });
    let source = ClientCredentials::builder(
        "https://idp.example.com/oauth2/token",
        "svc",
        ClientAuth::basic("secret"),
    )
    .scope("orders:read orders:write")
    .http_client(HttpClient::new(endpoint))
    .build()
    .unwrap();
    c.bench_function("token_sources/client_credentials_exchange", |b| {
        b.to_async(&runtime).iter(|| source.fetch_token())
    });
}

criterion_group!(benches, token_sources);
criterion_main!(benches);

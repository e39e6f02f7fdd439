//! OAuth 2.0 sources against scripted authorization servers: a rotated
//! refresh token in an unusable answer, discovery against a server that
//! never answers, and client credentials echoed in error messages.
#![cfg(feature = "oauth2")]

use crate::support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use support::memory_store::MemoryStore;
use tokio::time::Instant;
use tower::{BoxError, service_fn};
use tower_token_refresh::oauth2::{
    ClientAuth, ClientCredentials, DEFAULT_REQUEST_TIMEOUT, Discovery, ErrorCode, ErrorKind,
    HttpClient, RefreshTokenGrant, Secret,
};
use tower_token_refresh::store::RefreshTokenStore;

/// A secret with characters that form-URL-encoding must escape, so that its
/// encoded forms differ from it.
const SECRET: &str = "s3cr3t:/+&=% é";

/// One token request as the server received it.
#[derive(Clone, Debug)]
struct Received {
    /// The raw, still encoded, request body.
    body: String,
    form: HashMap<String, String>,
    authorization: Option<String>,
}

/// An authorization server that answers each request with what `answer`
/// makes of it (a status and a JSON body), and keeps the requests.
fn scripted(
    answer: impl Fn(&Received) -> (u16, String) + Clone + Send + Sync + 'static,
) -> (HttpClient, Arc<Mutex<Vec<Received>>>) {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let kept = requests.clone();
    let client = HttpClient::new(service_fn(move |request: Request<Full<Bytes>>| {
        let answer = answer.clone();
        let requests = requests.clone();
        async move {
            let authorization = request
                .headers()
                .get(AUTHORIZATION)
                .map(|value| value.to_str().unwrap().to_owned());
            let body = request.into_body().collect().await?.to_bytes();
            let received = Received {
                body: String::from_utf8(body.to_vec())?,
                form: form_urlencoded::parse(&body).into_owned().collect(),
                authorization,
            };
            let (status, json) = answer(&received);
            requests.lock().unwrap().push(received);
            let mut response = Response::new(Full::new(Bytes::from(json)));
            *response.status_mut() = StatusCode::from_u16(status)?;
            Ok::<_, BoxError>(response)
        }
    }));
    (client, kept)
}

/// A server that rotates refresh tokens: `refresh-0` is valid at first, and
/// the n-th exchange (from 1) of the valid one makes `refresh-n` the valid
/// one and answers `answers[n - 1]` with `{rt}` replaced by it.
fn rotating(answers: Vec<&'static str>) -> (HttpClient, Arc<Mutex<Vec<Received>>>) {
    let valid = Arc::new(Mutex::new("refresh-0".to_owned()));
    let exchanges = Arc::new(Mutex::new(0));
    scripted(move |received| {
        let mut valid = valid.lock().unwrap();
        if received.form.get("refresh_token") != Some(&*valid) {
            return (400, r#"{"error":"invalid_grant"}"#.to_owned());
        }
        let mut exchanges = exchanges.lock().unwrap();
        *exchanges += 1;
        *valid = format!("refresh-{exchanges}");
        (200, answers[*exchanges - 1].replace("{rt}", &valid))
    })
}

#[tokio::test]
async fn a_refresh_token_in_an_unusable_answer_is_kept_saved_and_used_next() {
    // Answers a client cannot use, each with a new refresh token: the
    // server has spent `refresh-0` by then.
    let unusable = [
        r#"{"access_token":"at-1","token_type":"Bearer","expires_in":-1,"refresh_token":"{rt}"}"#,
        r#"{"access_token":"at-1","token_type":"mac","expires_in":60,"refresh_token":"{rt}"}"#,
    ];
    for first in unusable {
        let (client, requests) = rotating(vec![
            first,
            r#"{"access_token":"at-2","token_type":"Bearer","expires_in":60,"refresh_token":"{rt}"}"#,
        ]);
        let store = MemoryStore::new();
        let rotated = Arc::new(Mutex::new(Vec::new()));
        let grant = {
            let rotated = rotated.clone();
            RefreshTokenGrant::builder(
                "https://idp.example.com/token",
                "cli",
                ClientAuth::none(),
                "refresh-0",
            )
            .http_client(client)
            .store(store.clone())
            .on_rotation(move |new: &Secret| rotated.lock().unwrap().push(new.expose().to_owned()))
            .build()
            .unwrap()
        };

        let error = grant.fetch_token().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidResponse, "{first}");
        assert_eq!(error.status(), Some(StatusCode::OK));
        let shown = format!("{error} {error:?}");
        assert!(
            !shown.contains("refresh-") && !shown.contains("at-1"),
            "{shown}"
        );

        // The new refresh token replaced the spent one, went to the hook
        // and to the store before the fetch failed.
        assert_eq!(grant.refresh_token().expose(), "refresh-1", "{first}");
        assert_eq!(*rotated.lock().unwrap(), ["refresh-1"]);
        let stored = store.load_refresh_token().await.unwrap().unwrap();
        assert_eq!(stored.expose(), "refresh-1");

        // And the next exchange sends it, so the user stays signed in.
        assert_eq!(grant.fetch_token().await.unwrap().secret(), "at-2");
        let requests = requests.lock().unwrap();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[1].form["refresh_token"], "refresh-1");
        assert_eq!(grant.refresh_token().expose(), "refresh-2");
    }
}

#[tokio::test]
async fn an_unusable_answer_without_a_refresh_token_keeps_the_one_sent() {
    let (client, requests) = rotating(vec![
        r#"{"access_token":"at-1","expires_in":-1}"#,
        r#"{"access_token":"at-2","expires_in":60}"#,
    ]);
    let grant = RefreshTokenGrant::builder(
        "https://idp.example.com/token",
        "cli",
        ClientAuth::none(),
        "refresh-0",
    )
    .http_client(client)
    .build()
    .unwrap();
    let error = grant.fetch_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
    assert_eq!(grant.refresh_token().expose(), "refresh-0");
    // This server did spend it, so the next exchange is refused: there was
    // nothing to keep.
    assert!(grant.fetch_token().await.unwrap_err().is_invalid_grant());
    assert_eq!(
        requests.lock().unwrap()[1].form["refresh_token"],
        "refresh-0"
    );
}

/// An HTTP client whose server accepts each request and never answers;
/// counts the requests.
fn silent() -> (HttpClient, Arc<Mutex<Vec<String>>>) {
    let paths = Arc::new(Mutex::new(Vec::new()));
    let seen = paths.clone();
    let client = HttpClient::new(service_fn(move |request: Request<Full<Bytes>>| {
        seen.lock().unwrap().push(request.uri().path().to_owned());
        std::future::pending::<Result<Response<Full<Bytes>>, BoxError>>()
    }));
    (client, paths)
}

#[tokio::test(start_paused = true)]
async fn discovery_gives_up_on_a_silent_server_after_the_default_timeout() {
    let (client, paths) = silent();
    let started = Instant::now();
    let error = Discovery::new("https://idp.example.com")
        .http_client(client)
        .fetch()
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(error.is_retryable());
    assert!(
        waited >= DEFAULT_REQUEST_TIMEOUT
            && waited < DEFAULT_REQUEST_TIMEOUT + Duration::from_secs(1),
        "{waited:?}"
    );
    assert_eq!(
        error.to_string(),
        "the issuer's metadata endpoint did not answer within 30s"
    );
    // The first document's request timed out; discovery stops there, as it
    // does for other transport failures.
    assert_eq!(
        *paths.lock().unwrap(),
        ["/.well-known/openid-configuration"]
    );
}

#[tokio::test(start_paused = true)]
async fn each_discovery_request_is_bounded_by_the_timeout_set() {
    // The OpenID document is missing, and the server never answers the
    // request for the RFC 8414 one.
    let paths = Arc::new(Mutex::new(Vec::new()));
    let seen = paths.clone();
    let client = HttpClient::new(service_fn(move |request: Request<Full<Bytes>>| {
        let path = request.uri().path().to_owned();
        seen.lock().unwrap().push(path.clone());
        async move {
            if path.ends_with("/openid-configuration") {
                let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                *response.status_mut() = StatusCode::NOT_FOUND;
                return Ok::<_, BoxError>(response);
            }
            std::future::pending().await
        }
    }));
    let started = Instant::now();
    let error = Discovery::new("https://idp.example.com/realms/main")
        .http_client(client)
        .request_timeout(Duration::from_secs(5))
        .fetch()
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    assert_eq!(
        *paths.lock().unwrap(),
        [
            "/realms/main/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server/realms/main"
        ]
    );
}

/// An `invalid_client` answer whose description quotes what `echo` picks
/// from the request, as some servers do.
fn echoing(echo: fn(&Received) -> String) -> HttpClient {
    scripted(move |received| {
        let description = format!("client authentication failed for {}", echo(received));
        let body = serde_json::json!({"error": "invalid_client", "error_description": description});
        (401, body.to_string())
    })
    .0
}

/// Checks that an error says what went wrong (an `invalid_client`
/// rejection, its description redacted) and shows none of `hidden`.
fn assert_redacted(error: &tower_token_refresh::oauth2::Error, hidden: &[&str]) {
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.code(), Some(&ErrorCode::InvalidClient));
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("invalid_client"), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");
    for hidden in hidden {
        assert!(!shown.contains(hidden), "{hidden:?} in {shown}");
    }
}

#[tokio::test]
async fn echoed_basic_credentials_are_redacted() {
    // The whole header, its base64 credentials, and the secret as encoded
    // inside them.
    let echoes: [fn(&Received) -> String; 3] = [
        |received| received.authorization.clone().unwrap(),
        |received| received.authorization.clone().unwrap()["Basic ".len()..].to_owned(),
        |_| form_urlencoded::byte_serialize(SECRET.as_bytes()).collect(),
    ];
    let encoded_secret: String = form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
    for echo in echoes {
        let source = ClientCredentials::builder(
            "https://idp.example.com/token",
            "svc:one",
            ClientAuth::basic(SECRET),
        )
        .http_client(echoing(echo))
        .build()
        .unwrap();
        let error = source.fetch_token().await.unwrap_err();
        let basic = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(format!("svc%3Aone:{encoded_secret}"))
        };
        assert_redacted(&error, &[SECRET, &encoded_secret, &basic]);
    }
}

#[tokio::test]
async fn an_echoed_form_encoded_client_secret_is_redacted() {
    let source = ClientCredentials::builder(
        "https://idp.example.com/token",
        "svc",
        ClientAuth::post(SECRET),
    )
    .http_client(echoing(|received| {
        // The value as it is in the body, before decoding.
        let (_, value) = received.body.split_once("client_secret=").unwrap();
        value.split('&').next().unwrap().to_owned()
    }))
    .build()
    .unwrap();
    let error = source.fetch_token().await.unwrap_err();
    let encoded_secret: String = form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
    assert_ne!(encoded_secret, SECRET);
    assert_redacted(&error, &[SECRET, &encoded_secret]);
}

#[tokio::test]
async fn a_description_without_credentials_is_kept() {
    let source = ClientCredentials::builder(
        "https://idp.example.com/token",
        "svc",
        ClientAuth::basic(SECRET),
    )
    .http_client(echoing(|received| received.form["grant_type"].clone()))
    .build()
    .unwrap();
    let error = source.fetch_token().await.unwrap_err();
    assert_eq!(
        error.description(),
        Some("client authentication failed for client_credentials")
    );
}

#[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
mod signed {
    use tower_token_refresh::oauth2::{Algorithm, JwtBearerGrant, SigningKey};

    use super::*;

    const RSA_PRIVATE: &[u8] = include_bytes!("../keys/rsa_private.pem");

    fn key() -> SigningKey {
        SigningKey::from_pem(RSA_PRIVATE, Algorithm::RS256).unwrap()
    }

    #[tokio::test]
    async fn an_echoed_client_assertion_is_redacted() {
        // The whole assertion, its start (header and part of the claims),
        // and its signature alone.
        let echoes: [fn(&Received) -> String; 3] = [
            |received| received.form["client_assertion"].clone(),
            |received| received.form["client_assertion"][..60].to_owned(),
            |received| {
                let assertion = &received.form["client_assertion"];
                assertion.rsplit('.').next().unwrap().to_owned()
            },
        ];
        for echo in echoes {
            let source = ClientCredentials::builder(
                "https://idp.example.com/token",
                "svc",
                ClientAuth::private_key_jwt(key()),
            )
            .http_client(echoing(echo))
            .build()
            .unwrap();
            let error = source.fetch_token().await.unwrap_err();
            assert_redacted(&error, &["eyJ"]);
        }
    }

    #[tokio::test]
    async fn an_echoed_jwt_bearer_assertion_is_redacted() {
        let (client, _) = scripted(|received| {
            let assertion = &received.form["assertion"];
            let description = format!("assertion {} has expired", &assertion[..60]);
            let body =
                serde_json::json!({"error": "invalid_grant", "error_description": description});
            (400, body.to_string())
        });
        let source = JwtBearerGrant::builder("https://idp.example.com/token", key(), "robot")
            .http_client(client)
            .build()
            .unwrap();
        let error = source.fetch_token().await.unwrap_err();
        assert!(error.is_invalid_grant());
        let shown = format!("{error} {error:?}");
        assert!(
            shown.contains("redacted") && !shown.contains("eyJ"),
            "{shown}"
        );
    }
}

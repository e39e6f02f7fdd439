//! OAuth 2.0 sources against a strict token endpoint on 127.0.0.1.
#![cfg(feature = "oauth2")]

use crate::support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::token_endpoint::{ClientMethod, Fault, TokenEndpoint};
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};
use tower_token_refresh::oauth2::{
    ClientAuth, ClientCredentials, Discovery, ErrorCode, ErrorKind, HttpClient, RefreshTokenGrant,
    Secret,
};
use tower_token_refresh::{TokenCache, TokenRefreshLayer};

/// A secret with characters that form-URL-encoding must escape.
const SECRET: &str = "s3cr3t:/+&=% é";

#[tokio::test]
async fn client_secret_basic() {
    let endpoint = TokenEndpoint::start().await;
    endpoint.register("svc:one", ClientMethod::Basic(SECRET.into()));
    let source =
        ClientCredentials::builder(endpoint.token_url(), "svc:one", ClientAuth::basic(SECRET))
            .scope("orders:read orders:write")
            .resource("https://api.example.com")
            .audience("orders-api")
            .param("custom", "value")
            .build()
            .unwrap();

    let token = source.fetch_token().await.unwrap();
    assert_eq!(token.secret(), "cc-1");
    let left = token.time_left().unwrap();
    assert!(left > Duration::from_secs(3590) && left <= Duration::from_secs(3600));
    assert_eq!(endpoint.problems(), Vec::<String>::new());
    let form = &endpoint.forms()[0];
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["scope"], "orders:read orders:write");
    assert_eq!(form["resource"], "https://api.example.com");
    assert_eq!(form["audience"], "orders-api");
    assert_eq!(form["custom"], "value");
    assert!(
        !form.contains_key("client_secret"),
        "basic sends no secret in the body"
    );
}

#[tokio::test]
async fn client_secret_post() {
    let endpoint = TokenEndpoint::start().await;
    endpoint.register("svc", ClientMethod::Post(SECRET.into()));
    let source =
        ClientCredentials::new(endpoint.token_url(), "svc", ClientAuth::post(SECRET)).unwrap();
    assert_eq!(source.fetch_token().await.unwrap().secret(), "cc-1");
    assert_eq!(endpoint.forms()[0]["client_secret"], SECRET);
}

#[tokio::test]
async fn the_wrong_authentication_style_is_rejected_with_a_typed_error() {
    let endpoint = TokenEndpoint::start().await;
    endpoint.register("svc", ClientMethod::Basic(SECRET.into()));
    let source =
        ClientCredentials::new(endpoint.token_url(), "svc", ClientAuth::post(SECRET)).unwrap();
    let error = source.fetch_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.code(), Some(&ErrorCode::InvalidClient));
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
    assert!(!error.is_retryable());
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("client_secret_basic"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");

    let wrong =
        ClientCredentials::new(endpoint.token_url(), "svc", ClientAuth::basic("nope")).unwrap();
    assert_eq!(
        wrong.fetch_token().await.unwrap_err().code(),
        Some(&ErrorCode::InvalidClient)
    );
}

#[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
mod signed {
    use tower_token_refresh::oauth2::{Algorithm, JwtBearerGrant, SigningKey};

    use super::*;

    const RSA_PRIVATE: &[u8] = include_bytes!("../keys/rsa_private.pem");
    const RSA_PUBLIC: &[u8] = include_bytes!("../keys/rsa_public.pem");
    const EC_PRIVATE: &[u8] = include_bytes!("../keys/ec_private.pem");
    const EC_PUBLIC: &[u8] = include_bytes!("../keys/ec_public.pem");

    #[tokio::test]
    async fn private_key_jwt_with_rsa_and_ec_keys() {
        let endpoint = TokenEndpoint::start().await;
        for (client, private, public, algorithm) in [
            ("rsa-client", RSA_PRIVATE, RSA_PUBLIC, Algorithm::RS256),
            ("ec-client", EC_PRIVATE, EC_PUBLIC, Algorithm::ES256),
        ] {
            endpoint.register(client, ClientMethod::PrivateKeyJwt(public.to_vec()));
            let key = SigningKey::from_pem(private, algorithm)
                .unwrap()
                .with_kid("key-1");
            let source = ClientCredentials::new(
                endpoint.token_url(),
                client,
                ClientAuth::private_key_jwt(key),
            )
            .unwrap();
            // Twice: each request carries a fresh assertion (a reused `jti`
            // would be refused).
            source.fetch_token().await.unwrap();
            source.fetch_token().await.unwrap();
        }
        assert_eq!(endpoint.problems(), Vec::<String>::new());
        let form = &endpoint.forms()[0];
        assert_eq!(
            form["client_assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        assert_eq!(form["client_id"], "rsa-client");
    }

    #[tokio::test]
    async fn a_key_signed_by_someone_else_is_refused() {
        let endpoint = TokenEndpoint::start().await;
        endpoint.register("svc", ClientMethod::PrivateKeyJwt(RSA_PUBLIC.to_vec()));
        let key = SigningKey::from_pem(EC_PRIVATE, Algorithm::ES256).unwrap();
        let source = ClientCredentials::new(
            endpoint.token_url(),
            "svc",
            ClientAuth::private_key_jwt(key),
        )
        .unwrap();
        let error = source.fetch_token().await.unwrap_err();
        assert_eq!(error.code(), Some(&ErrorCode::InvalidClient));
    }

    #[test]
    fn keys_are_checked_when_read() {
        let error = SigningKey::from_pem(EC_PRIVATE, Algorithm::RS256).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Signing);
        assert!(SigningKey::from_pem(b"not a pem", Algorithm::ES256).is_err());
        assert!(SigningKey::from_pem(RSA_PRIVATE, Algorithm::HS256).is_err());
        let key = SigningKey::from_pem(RSA_PRIVATE, Algorithm::PS256).unwrap();
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    #[tokio::test]
    async fn jwt_bearer_grant_signs_and_exchanges_an_assertion() {
        let endpoint = TokenEndpoint::start().await;
        endpoint.trust_assertions_from("robot@example.iam", RSA_PUBLIC);
        let key = SigningKey::from_pem(RSA_PRIVATE, Algorithm::RS256).unwrap();
        let source = JwtBearerGrant::builder(endpoint.token_url(), key, "robot@example.iam")
            .claim("scope", "https://example.com/auth/cloud")
            .build()
            .unwrap();
        assert_eq!(source.fetch_token().await.unwrap().secret(), "jb-1");
        assert_eq!(source.fetch_token().await.unwrap().secret(), "jb-2");
        let form = &endpoint.forms()[0];
        assert_eq!(
            form["grant_type"],
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        );
        assert!(!form.contains_key("client_id"));

        // An assertion for another audience is refused.
        let key = SigningKey::from_pem(RSA_PRIVATE, Algorithm::RS256).unwrap();
        let wrong_audience =
            JwtBearerGrant::builder(endpoint.token_url(), key, "robot@example.iam")
                .assertion_audience("https://elsewhere")
                .build()
                .unwrap();
        let error = wrong_audience.fetch_token().await.unwrap_err();
        assert!(error.is_invalid_grant());
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_and_the_old_one_stops_working() {
    let endpoint = TokenEndpoint::rotating_refresh_tokens(SECRET).await;
    let rotated = Arc::new(Mutex::new(Vec::new()));
    let grant = {
        let rotated = rotated.clone();
        endpoint
            .refresh_token_grant(SECRET)
            .on_rotation(move |new: &Secret| rotated.lock().unwrap().push(new.expose().to_owned()))
            .build()
            .unwrap()
    };

    assert_eq!(grant.fetch_token().await.unwrap().secret(), "rt-access-1");
    assert_eq!(grant.refresh_token().expose(), "refresh-1");
    assert_eq!(*rotated.lock().unwrap(), ["refresh-1"]);
    assert_eq!(grant.fetch_token().await.unwrap().secret(), "rt-access-2");
    assert_eq!(*rotated.lock().unwrap(), ["refresh-1", "refresh-2"]);

    // The old refresh token no longer works: a clear invalid_grant.
    let stale = endpoint.refresh_token_grant(SECRET).build().unwrap();
    let error = stale.fetch_token().await.unwrap_err();
    assert!(error.is_invalid_grant());
    assert_eq!(
        error.to_string(),
        format!(
            "authorization server rejected the grant (invalid_grant) with status 400 Bad Request: \
             refresh token is not valid (from {})",
            endpoint.token_url()
        )
    );
    assert_eq!(error.endpoint(), Some(endpoint.token_url().as_str()));
    assert!(!format!("{error:?}").contains("refresh-0"));
}

#[tokio::test]
async fn a_rotated_refresh_token_is_kept_when_the_caller_times_out() {
    let endpoint = TokenEndpoint::rotating_refresh_tokens(SECRET).await;
    // The server rotates at once but answers after the cache gave up.
    endpoint.delay_answers(Duration::from_millis(400));
    let rotated = Arc::new(Mutex::new(Vec::new()));
    let grant = {
        let rotated = rotated.clone();
        endpoint
            .refresh_token_grant(SECRET)
            .on_rotation(move |new: &Secret| rotated.lock().unwrap().push(new.expose().to_owned()))
            .build()
            .unwrap()
    };
    let cache = TokenCache::builder(grant.clone())
        .fetch_timeout(Duration::from_millis(100))
        .backoff(Duration::from_millis(1), Duration::from_millis(1))
        .build();
    let error = cache.token().await.unwrap_err();
    assert_eq!(error.kind(), tower_token_refresh::ErrorKind::Timeout);

    // The exchange finished on its own task and kept the new refresh token.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while grant.refresh_token().expose() != "refresh-1" {
        assert!(tokio::time::Instant::now() < deadline, "rotation lost");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*rotated.lock().unwrap(), ["refresh-1"]);
    endpoint.delay_answers(Duration::ZERO);
    assert_eq!(cache.token().await.unwrap().secret(), "rt-access-2");
}

#[tokio::test]
async fn concurrent_refreshes_never_spend_one_refresh_token_twice() {
    let endpoint = TokenEndpoint::rotating_refresh_tokens(SECRET).await;
    let grant = endpoint.refresh_token_grant(SECRET).build().unwrap();
    // Two caches (say, two layers) share the grant and refresh at once.
    let (a, b) = (
        TokenCache::new(grant.clone()),
        TokenCache::new(grant.clone()),
    );
    let (first, second) = tokio::join!(a.token(), b.token());
    first.unwrap();
    second.unwrap();
    assert_eq!(grant.refresh_token().expose(), "refresh-2");
}

#[tokio::test]
async fn discovery_finds_the_token_endpoint() {
    let endpoint = TokenEndpoint::start().await;
    endpoint.register("svc", ClientMethod::Basic(SECRET.into()));
    let metadata = Discovery::new(endpoint.url("/")).fetch().await.unwrap();
    assert_eq!(metadata.token_endpoint(), endpoint.token_url());
    assert_eq!(
        metadata.grant_types_supported(),
        ["client_credentials", "refresh_token"]
    );
    let source =
        ClientCredentials::new(metadata.token_endpoint(), "svc", ClientAuth::basic(SECRET))
            .unwrap();
    assert_eq!(source.fetch_token().await.unwrap().secret(), "cc-1");

    let error = Discovery::new(endpoint.url("/realms/missing"))
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Discovery);
}

#[tokio::test]
async fn error_statuses_and_bodies_become_clear_errors() {
    let endpoint = TokenEndpoint::start().await;
    endpoint.register("svc", ClientMethod::Basic(SECRET.into()));
    let source =
        ClientCredentials::new(endpoint.token_url(), "svc", ClientAuth::basic(SECRET)).unwrap();
    endpoint.fail_with([
        Fault::Status(
            400,
            None,
            r#"{"error":"invalid_scope","error_description":"no such scope"}"#,
        ),
        Fault::Status(429, Some(7), r#"{"error":"slow_down"}"#),
        Fault::Status(
            503,
            Some(30),
            "<html><body>Service Unavailable</body></html>",
        ),
        Fault::Status(302, None, ""),
        Fault::Body("<!doctype html><html>login page</html>".into()),
        Fault::Body("{\"access_token\": \"cut-off".into()),
        Fault::Body(String::new()),
        Fault::Body(r#"{"access_token":"mac-token","token_type":"MAC"}"#.into()),
        Fault::Oversized(2 * 1024 * 1024),
    ]);

    let error = source.fetch_token().await.unwrap_err();
    assert_eq!(error.code(), Some(&ErrorCode::InvalidScope));
    assert_eq!(error.description(), Some("no such scope"));

    let error = source.fetch_token().await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));

    let error = source.fetch_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Status);
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));

    let error = source.fetch_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Redirect);

    let expectations = [
        "it looks like an HTML page",
        "the response is not JSON",
        "the response body is empty",
        "`token_type` is not `Bearer`",
        "larger than 1 MiB",
    ];
    for expected in expectations {
        let error = source.fetch_token().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidResponse, "{error}");
        assert!(error.to_string().contains(expected), "{error}");
        assert!(!error.to_string().contains("mac-token") && !error.to_string().contains("cut-off"));
    }
    assert_eq!(
        source.fetch_token().await.unwrap().secret(),
        "cc-1",
        "recovers"
    );
}

#[tokio::test]
async fn a_token_endpoint_that_never_answers_hits_the_fetch_timeout() {
    let endpoint = TokenEndpoint::start().await;
    endpoint.register("svc", ClientMethod::Basic(SECRET.into()));
    endpoint.fail_with([Fault::Hang]);
    let source =
        ClientCredentials::new(endpoint.token_url(), "svc", ClientAuth::basic(SECRET)).unwrap();
    let cache = TokenCache::builder(source)
        .fetch_timeout(Duration::from_millis(300))
        .build();
    let error = cache.token().await.unwrap_err();
    assert_eq!(error.kind(), tower_token_refresh::ErrorKind::Timeout);
    assert_eq!(
        error.to_string(),
        "token source did not answer within 300ms"
    );
}

#[tokio::test]
async fn plain_http_is_refused_except_on_loopback() {
    let error = ClientCredentials::new(
        "http://idp.example.com/token",
        "svc",
        ClientAuth::basic("x"),
    )
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidUrl);
    ClientCredentials::builder(
        "http://idp.example.com/token",
        "svc",
        ClientAuth::basic("x"),
    )
    .allow_insecure_http()
    .build()
    .unwrap();
    ClientCredentials::new(
        "https://idp.example.com/token",
        "svc",
        ClientAuth::basic("x"),
    )
    .unwrap();
}

/// An API on 127.0.0.1 that accepts the endpoint's client-credentials
/// tokens and answers with the token it saw.
async fn start_api() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |request: Request<hyper::body::Incoming>| async move {
                        let token = request
                            .headers()
                            .get("authorization")
                            .and_then(|value| value.to_str().ok())
                            .and_then(|value| value.strip_prefix("Bearer cc-"))
                            .map(str::to_owned);
                        let response = match token {
                            Some(n) => Response::new(Full::<Bytes>::from(format!("cc-{n}"))),
                            None => Response::builder()
                                .status(401)
                                .body(Full::default())
                                .unwrap(),
                        };
                        Ok::<_, Infallible>(response)
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}/orders")
}

#[tokio::test]
async fn end_to_end_client_credentials_cache_layer_and_api() {
    let endpoint = TokenEndpoint::start().await;
    endpoint.register("svc", ClientMethod::Basic(SECRET.into()));
    let api_url = start_api().await;
    let source =
        ClientCredentials::new(endpoint.token_url(), "svc", ClientAuth::basic(SECRET)).unwrap();
    let client = TokenRefreshLayer::new(TokenCache::new(source))
        .layer(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    let calls: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            let request = Request::get(api_url.as_str()).body(Empty::new()).unwrap();
            tokio::spawn(async move {
                let response = client.oneshot(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.into_body().collect().await.unwrap().to_bytes()
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), "cc-1");
    }
    assert_eq!(endpoint.requests(), 1);
}

#[tokio::test]
async fn token_requests_never_go_through_the_layer_even_with_a_layered_client() {
    let endpoint = TokenEndpoint::start().await;
    endpoint.register("svc", ClientMethod::Basic(SECRET.into()));
    // A client wrapped in the layer, whose cache counts its fetches: were
    // the token request to go through the layer, it would get a bearer
    // token instead of its Basic credentials.
    let fetched = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cache = {
        let fetched = fetched.clone();
        TokenCache::new(move || {
            fetched.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<_, Infallible>(tower_token_refresh::Token::bearer("api-token")) }
        })
    };
    let layered = TokenRefreshLayer::new(cache)
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let source = ClientCredentials::builder(endpoint.token_url(), "svc", ClientAuth::basic(SECRET))
        .http_client(HttpClient::new(layered))
        .build()
        .unwrap();

    assert_eq!(source.fetch_token().await.unwrap().secret(), "cc-1");
    assert_eq!(fetched.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(endpoint.problems(), Vec::<String>::new());
}

/// A refresh token grant sharing a store (here the tests' in-memory one).
fn grant_with_store(
    endpoint: &TokenEndpoint,
    store: &support::memory_store::MemoryStore,
) -> RefreshTokenGrant {
    endpoint
        .refresh_token_grant(SECRET)
        .store(store.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_stale_stored_refresh_token_falls_back_to_the_given_one() {
    use tower_token_refresh::store::RefreshTokenStore;

    let endpoint = TokenEndpoint::rotating_refresh_tokens(SECRET).await;
    // Left in the store by a session before the user signed in again.
    let store = support::memory_store::MemoryStore::new();
    store
        .save_refresh_token(&Secret::new("revoked"))
        .await
        .unwrap();

    let grant = grant_with_store(&endpoint, &store);
    grant.fetch_token().await.unwrap();
    assert_eq!(endpoint.requests(), 2, "the stored one, then the given one");
    let stored = store.load_refresh_token().await.unwrap().unwrap();
    assert_eq!(stored, grant.refresh_token(), "the working one is saved");
    assert_ne!(stored.expose(), "revoked");
}

#[tokio::test]
async fn a_refresh_token_that_could_not_be_saved_is_not_replaced_by_the_stale_copy() {
    use tower_token_refresh::store::RefreshTokenStore;

    let endpoint = TokenEndpoint::rotating_refresh_tokens(SECRET).await;
    let store = support::memory_store::MemoryStore::new();
    let grant = grant_with_store(&endpoint, &store);

    grant.fetch_token().await.unwrap();
    let first = store.load_refresh_token().await.unwrap().unwrap();
    assert_eq!(first, grant.refresh_token());

    // The store fails while the server rotates: memory is newer than the
    // store, whose copy the server no longer accepts.
    store.set_down(true);
    grant.fetch_token().await.unwrap();
    assert_ne!(grant.refresh_token(), first);
    store.set_down(false);

    grant.fetch_token().await.unwrap();
    assert_eq!(
        endpoint.requests(),
        3,
        "no attempt with the stale stored copy"
    );
    let stored = store.load_refresh_token().await.unwrap().unwrap();
    assert_eq!(stored, grant.refresh_token());
}

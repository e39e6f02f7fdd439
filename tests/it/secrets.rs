//! No secret in any `Debug`, `Display`, error or `tracing` output: a full
//! run with OAuth 2.0 sources, rejections and failures, everything captured
//! at TRACE level.
#![cfg(feature = "oauth2")]

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{Empty, Full};
use support::TestSource;
use support::events::Events;
use support::revoking_api::{RejectWith, RevokingApi};
use support::token_endpoint::{ClientMethod, Fault, TokenEndpoint};
use tower::{Layer, ServiceExt};
use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials, RefreshTokenGrant, Secret};
use tower_token_refresh::{Token, TokenCache, TokenRefreshLayer};

const CLIENT_SECRET: &str = "client-secret-4f1c9e";
const REFRESH_TOKEN: &str = "refresh-0";

#[tokio::test]
async fn nothing_printed_anywhere_contains_a_secret() {
    let (events, _guard) = Events::capture();
    let mut printed = Vec::<String>::new();
    let mut issued = Vec::<String>::new();

    let endpoint = TokenEndpoint::start().await;
    endpoint.register("svc", ClientMethod::Basic(CLIENT_SECRET.into()));
    endpoint.register("cli", ClientMethod::Post(CLIENT_SECRET.into()));
    endpoint.issue_refresh_token(REFRESH_TOKEN, true);

    // Client credentials through the layer, with a rejection and a retry.
    let source = ClientCredentials::builder(
        endpoint.token_url(),
        "svc",
        ClientAuth::basic(CLIENT_SECRET),
    )
    .scope("orders:read")
    .build()
    .unwrap();
    printed.push(format!("{source:?}"));
    let cache = TokenCache::builder(source).name("orders").build();
    let api = RevokingApi::new(RejectWith::Http401);
    let layer = TokenRefreshLayer::new(cache.clone()).retry_rejected();
    let client = layer.layer(api.clone());
    printed.push(format!("{layer:?} {client:?} {cache:?}"));
    let response = client
        .clone()
        .oneshot(Request::new(Full::<Bytes>::from("a")))
        .await
        .unwrap();
    // (The test API echoes the token in its body: only the head is ours.)
    printed.push(format!("{:?} {:?}", response.status(), response.headers()));
    let token = cache.token().await.unwrap();
    issued.push(token.secret().to_owned());
    printed.push(format!("{token:?} {token}"));
    api.revoke(token.secret());
    let response = client
        .clone()
        .oneshot(Request::new(Full::<Bytes>::from("b")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    issued.push(cache.token().await.unwrap().secret().to_owned());

    // Failures: an error body that echoes the secret, then an expired token
    // with a failing endpoint.
    endpoint.fail_with([Fault::Status(
        401,
        None,
        r#"{"error":"invalid_client","error_description":"secret client-secret-4f1c9e is wrong"}"#,
    )]);
    let direct = ClientCredentials::new(
        endpoint.token_url(),
        "svc",
        ClientAuth::basic(CLIENT_SECRET),
    )
    .unwrap();
    let error = direct.fetch_token().await.unwrap_err();
    printed.push(format!("{error} {error:?}"));
    endpoint.fail_with([Fault::Status(503, Some(1), "down")]);
    assert!(cache.invalidate(&cache.token().await.unwrap()));
    let failure = cache.token().await.unwrap_err();
    printed.push(format!("{failure} {failure:?}"));

    // A refresh token grant with rotation, then a stale refresh token.
    let grant = RefreshTokenGrant::builder(
        endpoint.token_url(),
        "cli",
        ClientAuth::post(CLIENT_SECRET),
        REFRESH_TOKEN,
    )
    .build()
    .unwrap();
    let token = grant.fetch_token().await.unwrap();
    issued.push(token.secret().to_owned());
    printed.push(format!("{grant:?} {:?}", grant.refresh_token()));
    let stale = RefreshTokenGrant::builder(
        endpoint.token_url(),
        "cli",
        ClientAuth::post(CLIENT_SECRET),
        REFRESH_TOKEN,
    )
    .build()
    .unwrap();
    let error = stale.fetch_token().await.unwrap_err();
    printed.push(format!("{error} {error:?}"));
    printed.push(format!(
        "{:?} {:?}",
        Secret::new(CLIENT_SECRET),
        ClientAuth::post(CLIENT_SECRET)
    ));

    // A cache over a plain source, through an HTTP client type, for Debug.
    let plain = TokenCache::new(TestSource::issuing(Duration::from_secs(60)));
    let plain_token = plain.token().await.unwrap();
    issued.push(plain_token.secret().to_owned());
    let with_empty = TokenRefreshLayer::new(plain.clone())
        .retry_rejected()
        .layer(api.clone());
    let response = with_empty
        .oneshot(Request::new(Empty::<Bytes>::new()))
        .await
        .unwrap();
    printed.push(format!(
        "{plain:?} {:?} {:?}",
        response.headers(),
        plain.stats()
    ));
    printed.push(format!("{:?}", Token::bearer("literal-token")));

    let secrets: Vec<String> = [CLIENT_SECRET, REFRESH_TOKEN, "refresh-1", "literal-token"]
        .into_iter()
        .map(str::to_owned)
        .chain(issued)
        .collect();
    let everything = format!("{}\n{}", events.text(), printed.join("\n"));
    assert!(
        events.text().contains("token refresh succeeded"),
        "events were captured"
    );
    assert!(events.text().contains("TRACE") || events.text().contains("DEBUG"));
    for secret in &secrets {
        assert!(
            !everything.contains(secret.as_str()),
            "`{secret}` leaked:\n{everything}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn token_stores_print_no_token_and_no_password() {
    use tower_token_refresh::store::FileStore;

    let (events, _guard) = Events::capture();
    let mut printed = Vec::<String>::new();
    let mut secrets = vec!["stored-secret-7c1".to_owned()];

    // A corrupted token file holding a token, then a good run.
    let dir = support::temp_dir::TempDir::new("secrets");
    let path = dir.join("token.json");
    std::fs::write(&path, br#"{"format":1,"access_token":"stored-secret-7c1""#).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let cache = TokenCache::builder(TestSource::issuing(Duration::from_secs(60)))
        .store(FileStore::new(&path).unwrap())
        .build();
    secrets.push(cache.token().await.unwrap().secret().to_owned());
    printed.push(format!(
        "{cache:?} {:?} {:?}",
        FileStore::new(&path).unwrap(),
        cache.stats()
    ));
    assert!(!events.lines_with("token file corrupted").is_empty());
    drop(dir);

    #[cfg(feature = "redis")]
    {
        use tower_token_refresh::store::RedisStore;

        const PASSWORD: &str = "redis-password-93a1";
        secrets.push(PASSWORD.to_owned());
        // Nothing listens on port 1: the store fails, the cache goes on.
        let store = RedisStore::new(&format!("redis://fleet:{PASSWORD}@127.0.0.1:1"), "k").unwrap();
        printed.push(format!("{store:?}"));
        let cache = TokenCache::builder(TestSource::issuing(Duration::from_secs(60)))
            .store(store)
            .build();
        secrets.push(cache.token().await.unwrap().secret().to_owned());
        assert!(!events.lines_with("token store failed").is_empty());
        let error = RedisStore::new(&format!("redis://fleet:{PASSWORD}@[::1"), "k").unwrap_err();
        printed.push(format!("{error} {error:?}"));
        let builder = RedisStore::builder(&format!("rediss://fleet:{PASSWORD}@127.0.0.1:1"), "k");
        printed.push(format!("{builder:?}"));
    }

    let everything = format!("{}\n{}", events.text(), printed.join("\n"));
    for secret in &secrets {
        assert!(
            !everything.contains(secret.as_str()),
            "{secret} printed in:\n{everything}"
        );
    }
}

//! `oauth2::TokenExchange` (RFC 8693) against the embedded token endpoint:
//! a token file's JWT exchanged for an API token, read afresh on rotation;
//! actor tokens and client authentication; `N_A` tokens; the server's
//! `issued_token_type` checked; subject tokens never shown; a failing or
//! hanging subject source named; one exchange for a burst; a cache as the
//! subject source.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use support::TestSource;
use support::jwt::expiring_in as jwt;
use support::temp_dir::TempDir;
use support::token_endpoint::{ClientMethod, Fault, TokenEndpoint};
use tower_token_refresh::oauth2::{ClientAuth, ErrorCode, ErrorKind, TokenExchange, token_type};
use tower_token_refresh::workload::TokenFile;
use tower_token_refresh::{BoxError, Token, TokenCache, TokenSource};

const HOUR: Duration = Duration::from_secs(3600);
const AUDIENCE: &str = "https://orders.example.com";

/// A token file holding a fresh service-account JWT the endpoint trusts.
fn service_account_file(endpoint: &TokenEndpoint, dir: &TempDir) -> (TokenFile, String) {
    let path = dir.join("token");
    let token = jwt("system:serviceaccount:shop:orders", HOUR);
    std::fs::write(&path, &token).unwrap();
    endpoint.trust_subject_token(&token);
    (TokenFile::new(path), token)
}

#[tokio::test]
async fn a_token_file_is_exchanged_for_an_api_token() {
    let endpoint = TokenEndpoint::start().await;
    endpoint.exchange_only_for(&[AUDIENCE]);
    let dir = TempDir::new("exchange-file");
    let (file, subject) = service_account_file(&endpoint, &dir);
    let source = TokenExchange::builder(endpoint.token_url(), file, token_type::JWT)
        .audience(AUDIENCE)
        .scope("orders:read")
        .requested_token_type(token_type::ACCESS_TOKEN)
        .build()
        .unwrap();

    let token = source.fetch_token().await.unwrap();
    assert_eq!(token.secret(), "tx-1");
    let left = token.time_left().unwrap();
    assert!(
        left > HOUR - Duration::from_secs(60) && left <= HOUR,
        "{left:?}"
    );

    let form = &endpoint.forms()[0];
    let field = |name: &str| form.get(name).map(String::as_str);
    assert_eq!(
        field("grant_type"),
        Some("urn:ietf:params:oauth:grant-type:token-exchange")
    );
    assert_eq!(field("subject_token"), Some(subject.as_str()));
    assert_eq!(
        field("subject_token_type"),
        Some("urn:ietf:params:oauth:token-type:jwt")
    );
    assert_eq!(field("audience"), Some(AUDIENCE));
    assert_eq!(field("scope"), Some("orders:read"));
    assert_eq!(
        field("requested_token_type"),
        Some("urn:ietf:params:oauth:token-type:access_token")
    );
    assert_eq!(field("client_id"), None, "no client authentication asked");
    assert_eq!(field("actor_token"), None);
    assert!(endpoint.problems().is_empty(), "{:?}", endpoint.problems());
}

#[tokio::test]
async fn the_subject_token_is_read_again_for_each_exchange() {
    let endpoint = TokenEndpoint::start().await;
    let dir = TempDir::new("exchange-rotation");
    let (file, first) = service_account_file(&endpoint, &dir);
    let source = TokenExchange::builder(endpoint.token_url(), file, token_type::JWT)
        .build()
        .unwrap();
    source.fetch_token().await.unwrap();

    // The kubelet rotates the token; the old one stops being accepted.
    let second = jwt("system:serviceaccount:shop:orders-rotated", HOUR);
    std::fs::write(dir.join("token"), &second).unwrap();
    endpoint.trust_subject_token(&second);
    endpoint.distrust_subject_token(&first);

    let token = source.fetch_token().await.unwrap();
    assert_eq!(token.secret(), "tx-2");
    let sent: Vec<String> = endpoint
        .forms()
        .iter()
        .map(|form| form["subject_token"].clone())
        .collect();
    assert_eq!(sent, [first, second]);
}

#[tokio::test]
async fn an_actor_token_and_client_authentication_go_with_the_subject() {
    let endpoint = TokenEndpoint::start().await;
    endpoint.register("gateway", ClientMethod::Basic("gateway-secret".into()));
    endpoint.trust_subject_token("user-token");
    endpoint.trust_subject_token("gateway-token");
    let subject = || async { Ok::<_, BoxError>(Token::bearer("user-token")) };
    let actor = || async { Ok::<_, BoxError>(Token::bearer("gateway-token")) };
    let source = TokenExchange::builder(endpoint.token_url(), subject, token_type::ACCESS_TOKEN)
        .actor(actor, token_type::ACCESS_TOKEN)
        .client_auth("gateway", ClientAuth::basic("gateway-secret"))
        .resource("https://billing.example.com")
        .build()
        .unwrap();

    assert_eq!(source.fetch_token().await.unwrap().secret(), "tx-1");
    let form = &endpoint.forms()[0];
    assert_eq!(form["subject_token"], "user-token");
    assert_eq!(form["actor_token"], "gateway-token");
    assert_eq!(
        form["actor_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(form["resource"], "https://billing.example.com");
    assert!(endpoint.problems().is_empty(), "{:?}", endpoint.problems());

    // A wrong client secret is the client's fault, not the subject's.
    let wrong = TokenExchange::builder(endpoint.token_url(), subject, token_type::ACCESS_TOKEN)
        .client_auth("gateway", ClientAuth::basic("not-the-secret"))
        .build()
        .unwrap();
    let error = wrong.fetch_token().await.unwrap_err();
    assert_eq!(error.code(), Some(&ErrorCode::InvalidClient));
}

#[tokio::test]
async fn a_token_that_is_not_an_access_token_comes_back_as_n_a() {
    let endpoint = TokenEndpoint::start().await;
    let dir = TempDir::new("exchange-n-a");
    let (file, _) = service_account_file(&endpoint, &dir);
    let source = TokenExchange::builder(endpoint.token_url(), file, token_type::JWT)
        .requested_token_type(token_type::ID_TOKEN)
        .build()
        .unwrap();
    assert_eq!(source.fetch_token().await.unwrap().secret(), "tx-1");
}

#[tokio::test]
async fn an_answer_of_another_token_type_than_requested_is_refused() {
    let endpoint = TokenEndpoint::start().await;
    endpoint.set_fault(Some(Fault::Body(
        r#"{"access_token":"an-id-token","token_type":"N_A","expires_in":60,
            "issued_token_type":"urn:ietf:params:oauth:token-type:id_token"}"#
            .into(),
    )));
    let subject = || async { Ok::<_, BoxError>(Token::bearer("user-token")) };
    let source = TokenExchange::builder(endpoint.token_url(), subject, token_type::ACCESS_TOKEN)
        .requested_token_type(token_type::ACCESS_TOKEN)
        .build()
        .unwrap();
    let error = source.fetch_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
    assert!(error.to_string().contains("`issued_token_type`"), "{error}");
    assert!(!error.to_string().contains("an-id-token"));

    // `N_A` outside a token exchange answer (no `issued_token_type`) is not
    // a bearer token either.
    endpoint.set_fault(Some(Fault::Body(
        r#"{"access_token":"x","token_type":"N_A","expires_in":60}"#.into(),
    )));
    let error = source.fetch_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
}

#[tokio::test]
async fn a_refused_subject_token_is_never_quoted() {
    const SUBJECT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl";
    let endpoint = TokenEndpoint::start().await;
    // A server that quotes the token it refuses, or a part of it.
    endpoint.set_fault(Some(Fault::Status(
        400,
        None,
        r#"{"error":"invalid_request","error_description":"subject eyJzdWIiOiJ1c2VyIn0 is expired"}"#,
    )));
    let subject = || async { Ok::<_, BoxError>(Token::bearer(SUBJECT)) };
    let source = TokenExchange::builder(endpoint.token_url(), subject, token_type::JWT)
        .build()
        .unwrap();
    let cache = TokenCache::new(source);
    let error = cache.token().await.unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("invalid_request"), "{shown}");
    assert!(!shown.contains("eyJzdWIiOiJ1c2VyIn0"), "{shown}");
    assert!(
        !error.is_retryable(),
        "a refused subject token needs a new one"
    );

    // Nor is the subject token in the source's `Debug`.
    let source = TokenExchange::builder(endpoint.token_url(), subject, token_type::JWT)
        .build()
        .unwrap();
    source.fetch_token().await.unwrap_err();
    assert!(!format!("{source:?}").contains("eyJ"), "{source:?}");
}

#[tokio::test]
async fn a_failing_subject_source_is_named_and_nothing_is_sent() {
    let endpoint = TokenEndpoint::start().await;
    let dir = TempDir::new("exchange-missing");
    let missing = dir.join("not-mounted");
    let source = TokenExchange::builder(
        endpoint.token_url(),
        TokenFile::new(&missing),
        token_type::JWT,
    )
    .build()
    .unwrap();
    let error = source.fetch_token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Credential);
    assert!(error.is_retryable(), "the platform may mount the file yet");
    assert_eq!(endpoint.requests(), 0);

    let cache = TokenCache::builder(source).name("orders").build();
    let message = cache.token().await.unwrap_err().to_string();
    assert!(
        message.contains("could not get the subject token from its source (token file)"),
        "{message}"
    );
    assert!(
        message.contains(&missing.display().to_string()),
        "the path is named: {message}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_subject_source_that_hangs_fails_the_exchange_in_time() {
    let hanging = || std::future::pending::<Result<Token, BoxError>>();
    let source = TokenExchange::builder("http://127.0.0.1:9/token", hanging, token_type::JWT)
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let error = source.fetch_token().await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(error.kind(), ErrorKind::Credential);
    let message = format!("{error}: {}", std::error::Error::source(&error).unwrap());
    assert!(message.contains("gave no token within 5s"), "{message}");
}

#[tokio::test]
async fn a_burst_at_expiry_makes_one_exchange() {
    let endpoint = TokenEndpoint::start().await;
    endpoint.set_lifetime_secs(2);
    let subject = TestSource::issuing(HOUR);
    for n in 1..=3 {
        endpoint.trust_subject_token(&format!("token-{n}"));
    }
    let source = TokenExchange::builder(endpoint.token_url(), subject.clone(), token_type::JWT)
        .build()
        .unwrap();
    let cache = TokenCache::new(source);

    let burst = || {
        let requests: Vec<_> = (0..1000)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(
                    async move { cache.token().await.map(|token| token.secret().to_owned()) },
                )
            })
            .collect();
        async move {
            let mut seen = std::collections::HashSet::new();
            for request in requests {
                seen.insert(request.await.unwrap().unwrap());
            }
            seen
        }
    };
    assert_eq!(burst().await, ["tx-1".to_owned()].into());
    assert_eq!((endpoint.requests(), subject.calls()), (1, 1));

    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(burst().await, ["tx-2".to_owned()].into());
    assert_eq!((endpoint.requests(), subject.calls()), (2, 2));
}

#[tokio::test]
async fn a_cache_as_the_subject_source_is_fetched_once_for_many_exchanges() {
    let endpoint = TokenEndpoint::start().await;
    endpoint.trust_subject_token("token-1");
    let upstream = TestSource::issuing(HOUR);
    let identity = TokenCache::builder(upstream.clone())
        .name("ci-identity")
        .build();
    let exchange = |audience: &str| {
        TokenExchange::builder(endpoint.token_url(), identity.clone(), token_type::JWT)
            .audience(audience)
            .build()
            .unwrap()
    };
    let (orders, billing) = (exchange("orders"), exchange("billing"));
    orders.fetch_token().await.unwrap();
    billing.fetch_token().await.unwrap();
    orders.fetch_token().await.unwrap();
    assert_eq!(endpoint.requests(), 3);
    assert_eq!(
        upstream.calls(),
        1,
        "the upstream token came from its cache"
    );
    assert_eq!(TokenSource::name(&identity), "ci-identity");
}

#[test]
fn fingerprints_tell_exchanges_apart_and_hold_no_token() {
    let file = |path: &str| TokenFile::new(path);
    let exchange = |path: &str, audience: &str| {
        TokenExchange::builder("https://sts.example.com/token", file(path), token_type::JWT)
            .audience(audience)
            .build()
            .unwrap()
            .fingerprint()
            .unwrap()
    };
    let orders = exchange("/var/run/secrets/tokens/api", "orders");
    assert!(orders.contains("token_exchange"), "{orders}");
    assert!(orders.contains("/var/run/secrets/tokens/api"), "{orders}");
    assert_ne!(orders, exchange("/var/run/secrets/tokens/api", "billing"));
    assert_ne!(orders, exchange("/var/run/secrets/tokens/other", "orders"));
    assert_eq!(orders, exchange("/var/run/secrets/tokens/api", "orders"));

    let closure = Arc::new(|| async { Ok::<_, BoxError>(Token::bearer("secret-subject")) });
    let fingerprint =
        TokenExchange::builder("https://sts.example.com/token", closure, token_type::JWT)
            .build()
            .unwrap()
            .fingerprint()
            .unwrap();
    assert!(!fingerprint.contains("secret-subject"), "{fingerprint}");
}

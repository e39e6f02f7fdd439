//! DPoP (RFC 9449) end to end, against the embedded authorization and
//! resource servers of `support::dpop_server`, which verify every proof:
//! client credentials with DPoP, nonces demanded at the token endpoint and
//! by the API (first request, then rotated), a stolen token and a replayed
//! proof refused without fooling the client, the bearer downgrade, keys of
//! every algorithm, a thousand requests at the first nonce challenge, no
//! store for bound tokens, and no proof for a relative URI.

use crate::support;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use support::dpop_server::{CLIENT_ID, CLIENT_SECRET, DpopServer};
use support::events::Events;
use support::memory_store::MemoryStore;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_token_refresh::dpop::{DpopAlgorithm, DpopKey};
use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};
use tower_token_refresh::{ErrorKind, TokenCache, TokenRefreshLayer};

type Http = Client<HttpConnector, Full<Bytes>>;

fn source(server: &DpopServer, key: &DpopKey) -> ClientCredentials {
    ClientCredentials::builder(
        server.url("/token"),
        CLIENT_ID,
        ClientAuth::basic(CLIENT_SECRET),
    )
    .dpop(key.clone())
    .build()
    .unwrap()
}

fn es256() -> DpopKey {
    DpopKey::generate(DpopAlgorithm::ES256).unwrap()
}

fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `method url` with `body` through `api`; the status and the body.
async fn send<S, B>(api: &S, method: Method, url: &str, body: &'static str) -> (StatusCode, String)
where
    S: Service<Request<Full<Bytes>>, Response = http::Response<B>, Error = BoxError> + Clone,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let response = api.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn client_credentials_with_dpop_every_proof_verified() {
    let server = DpopServer::start().await;
    let key = es256();
    let cache = TokenCache::new(source(&server, &key));
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()))
        .service(http());
    for _ in 0..3 {
        let (status, body) = send(&api, Method::GET, &server.url("/api/orders?page=2"), "").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok dpop-1"));
    }
    let (status, _) = send(&api, Method::POST, &server.url("/api/orders"), "{}").await;
    assert_eq!(status, StatusCode::OK, "htm follows the method");
    assert_eq!(server.refusals(), Vec::<String>::new());
    assert_eq!((server.token_requests(), server.api_ok()), (1, 4));
    let token = cache.token().await.unwrap();
    assert_eq!(
        server.bound_to(token.secret()).as_deref(),
        Some(key.thumbprint())
    );
    assert!(format!("{token:?}").contains("DPoP"), "{token:?}");
}

#[tokio::test]
async fn every_algorithm_and_a_key_from_pem() {
    let from_pem = {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        DpopKey::from_pem(pair.serialize_pem().as_bytes(), DpopAlgorithm::ES256).unwrap()
    };
    let keys = [
        DpopKey::generate(DpopAlgorithm::EdDSA).unwrap(),
        DpopKey::generate(DpopAlgorithm::RS256).unwrap(),
        from_pem,
    ];
    for key in keys {
        let server = DpopServer::start().await;
        let api = ServiceBuilder::new()
            .layer(TokenRefreshLayer::new(TokenCache::new(source(
                &server, &key,
            ))))
            .service(http());
        let (status, _) = send(&api, Method::GET, &server.url("/api"), "").await;
        assert_eq!(status, StatusCode::OK, "{key:?}: {:?}", server.refusals());
        let shown = format!("{key:?}");
        assert!(
            shown.contains(key.thumbprint()) && !shown.contains("\"d\""),
            "{shown}"
        );
    }
    let wrong = DpopKey::from_pem(
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        DpopAlgorithm::EdDSA,
    )
    .unwrap_err();
    assert!(wrong.to_string().contains("Ed25519"), "{wrong}");
}

#[tokio::test]
async fn a_nonce_demanded_by_the_token_endpoint_costs_one_more_request_and_no_failure() {
    let server = DpopServer::start().await;
    server.demand_token_nonce("as-nonce-1");
    let cache = TokenCache::new(source(&server, &es256()));
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()))
        .service(http());
    let (status, _) = send(&api, Method::GET, &server.url("/api"), "").await;
    assert_eq!(status, StatusCode::OK, "{:?}", server.refusals());
    assert_eq!(
        (server.token_requests(), server.token_nonce_challenges()),
        (2, 1)
    );
    let stats = cache.stats();
    assert_eq!((stats.fetches, stats.fetch_failures), (1, 0));

    // The next token request carries the nonce at once.
    cache.invalidate(&cache.token().await.unwrap());
    cache.token().await.unwrap();
    assert_eq!(
        (server.token_requests(), server.token_nonce_challenges()),
        (3, 1)
    );
}

#[tokio::test]
async fn a_nonce_demanded_by_the_api_is_no_rejection_and_rotates() {
    let server = DpopServer::start().await;
    server.demand_api_nonce("api-nonce-0");
    let cache = TokenCache::new(source(&server, &es256()));
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()).retry_rejected())
        .service(http());

    // The first request is challenged, and sent again with the nonce (and
    // its body) at once; the token stays.
    let (status, body) = send(&api, Method::POST, &server.url("/api/orders"), "{\"n\":1}").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok dpop-1"));
    assert_eq!(server.api_nonce_challenges(), 1);
    for _ in 0..3 {
        assert_eq!(
            send(&api, Method::GET, &server.url("/api"), "").await.0,
            StatusCode::OK
        );
    }
    assert_eq!(server.api_nonce_challenges(), 1, "the nonce was kept");

    // The API rotates its nonce, announced on a successful response.
    server.rotate_api_nonce_after(1);
    for _ in 0..3 {
        assert_eq!(
            send(&api, Method::GET, &server.url("/api"), "").await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        server.api_nonce_challenges(),
        1,
        "the 200's DPoP-Nonce was used"
    );

    let stats = cache.stats();
    assert_eq!((stats.fetches, stats.rejections, stats.retries), (1, 0, 0));
    assert_eq!(server.refusals(), Vec::<String>::new());
}

#[tokio::test]
async fn without_retries_the_challenge_reaches_the_caller_and_the_next_request_passes() {
    let server = DpopServer::start().await;
    server.demand_api_nonce("api-nonce-0");
    let cache = TokenCache::new(source(&server, &es256()));
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()))
        .service(http());
    let (status, _) = send(&api, Method::GET, &server.url("/api"), "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&api, Method::GET, &server.url("/api"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((cache.stats().fetches, cache.stats().rejections), (1, 0));
}

#[tokio::test]
async fn a_stolen_token_or_a_replayed_proof_is_refused_and_the_client_carries_on() {
    let server = DpopServer::start().await;
    let cache = TokenCache::new(source(&server, &es256()));
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()).retry_rejected())
        .service(http());
    assert_eq!(
        send(&api, Method::GET, &server.url("/api"), "").await.0,
        StatusCode::OK
    );
    let token = cache.token().await.unwrap();
    let proof = server.last_proof().unwrap();

    let raw = |authorization: String, proof: Option<String>| {
        let mut request = Request::get(server.url("/api"));
        request = request.header("authorization", authorization);
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        http().request(request.body(Full::default()).unwrap())
    };
    // Stolen: as a bearer token, as a DPoP token without a proof, and with
    // the victim's proof replayed.
    for (authorization, proof) in [
        (format!("Bearer {}", token.secret()), None),
        (format!("DPoP {}", token.secret()), None),
        (format!("DPoP {}", token.secret()), Some(proof)),
    ] {
        let response = raw(authorization, proof).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let refusals = server.refusals();
    assert!(
        refusals.iter().any(|why| why.contains("jti")),
        "the replayed proof: {refusals:?}"
    );

    // With proofs of the thief's own key (its own DPoP client, whose
    // requests carry the stolen token instead of its own).
    let stolen = token.secret().to_owned();
    let thief = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(TokenCache::new(source(
            &server,
            &es256(),
        ))))
        .map_request(move |mut request: Request<Full<Bytes>>| {
            let stolen = format!("DPoP {stolen}").parse().unwrap();
            request.headers_mut().insert("authorization", stolen);
            request
        })
        .service(http());
    assert_eq!(
        send(&thief, Method::GET, &server.url("/api"), "").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        server.refusals().last().unwrap().contains("ath"),
        "{:?}",
        server.refusals()
    );

    // The client itself is not disturbed: same token, no refresh.
    assert_eq!(
        send(&api, Method::GET, &server.url("/api"), "").await.0,
        StatusCode::OK
    );
    let stats = cache.stats();
    assert_eq!((stats.fetches, stats.rejections), (1, 0));
}

#[tokio::test]
async fn a_bearer_answer_is_used_as_a_bearer_token_with_one_warning() {
    let (events, _guard) = Events::capture();
    let server = DpopServer::start().await;
    server.issue_bearer_tokens();
    let cache = TokenCache::new(source(&server, &es256()));
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()))
        .service(http());
    let (status, body) = send(&api, Method::GET, &server.url("/api"), "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "bearer ok"));
    cache.invalidate(&cache.token().await.unwrap());
    cache.token().await.unwrap();
    let warnings = events.lines_with("issued a bearer token to a DPoP client");
    assert_eq!(warnings.len(), 1, "{}", events.text());
}

#[tokio::test]
async fn a_thousand_requests_at_the_first_nonce_challenge_are_each_retried_at_most_once() {
    let server = DpopServer::start().await;
    server.demand_api_nonce("api-nonce-0");
    let cache = TokenCache::new(source(&server, &es256()));
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()).retry_rejected())
        .service(http());
    let requests: Vec<_> = (0..1000)
        .map(|_| {
            let (api, url) = (api.clone(), server.url("/api"));
            tokio::spawn(async move { send(&api, Method::GET, &url, "").await.0 })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    let challenges = server.api_nonce_challenges();
    assert!((1..=1000).contains(&challenges), "{challenges}");
    assert_eq!(
        server.api_requests(),
        1000 + challenges,
        "one retry each at most"
    );
    assert_eq!(server.token_requests(), 1);
    // The nonce is kept: a later request is not challenged.
    send(&api, Method::GET, &server.url("/api"), "").await;
    assert_eq!(server.api_nonce_challenges(), challenges);
    assert_eq!(cache.stats().rejections, 0);
}

#[tokio::test]
async fn bound_tokens_never_go_into_a_store() {
    let server = DpopServer::start().await;
    let store = MemoryStore::new();
    let cache = TokenCache::builder(source(&server, &es256()))
        .store(store.clone())
        .build();
    cache.token().await.unwrap();
    assert_eq!(store.stored(), None);
    cache.invalidate(&cache.token().await.unwrap());
    cache.token().await.unwrap();
    assert_eq!(store.stored(), None);
    assert_eq!(server.token_requests(), 2);
}

#[tokio::test]
async fn a_request_without_an_absolute_uri_gets_no_proof_and_a_clear_error() {
    let server = DpopServer::start().await;
    let cache = TokenCache::new(source(&server, &es256()));
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()))
        .service(tower::service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, BoxError>(http::Response::new(Full::<Bytes>::default()))
        }));
    cache.token().await.unwrap();
    let error = api
        .oneshot(Request::get("/relative").body(Full::default()).unwrap())
        .await
        .unwrap_err();
    let error = error.downcast_ref::<tower_token_refresh::Error>().unwrap();
    assert_eq!(error.kind(), ErrorKind::Proof);
    assert!(error.to_string().contains("with_origin"), "{error}");
}

/// gRPC through a tonic `Channel`: the client is made `with_origin`, so the
/// layer knows each call's URI; a tonic server checks every call's proof
/// (`htm` POST, `htu` the method's URL) before its handler runs.
#[cfg(feature = "tonic")]
#[tokio::test]
async fn grpc_calls_carry_a_proof_each() {
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::service::interceptor::InterceptedService;
    use tonic::transport::{Channel, Server};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    /// What the server's proof check said, for the interceptor.
    #[derive(Clone)]
    struct Checked(Result<(), String>);

    // The token endpoint, and a tonic server of its own that checks proofs
    // with the same resource server's rules.
    let server = DpopServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_addr = listener.local_addr().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders", tonic_health::ServingStatus::Serving)
        .await;
    let checker = server.clone();
    let check =
        tower::util::MapRequestLayer::new(move |mut request: http::Request<tonic::body::Body>| {
            // The proof names the URL the client called: this server's.
            let origin = format!("http://{grpc_addr}");
            let path = request.uri().path().to_owned();
            let verdict = checker.check_grpc(request.method(), &origin, &path, request.headers());
            request.extensions_mut().insert(Checked(verdict));
            request
        });
    let guarded = InterceptedService::new(health, |request: tonic::Request<()>| {
        match request.extensions().get::<Checked>() {
            Some(Checked(Ok(()))) => Ok(request),
            Some(Checked(Err(why))) => Err(tonic::Status::unauthenticated(why.clone())),
            None => Err(tonic::Status::unauthenticated("not checked")),
        }
    });
    tokio::spawn(async move {
        let _keep_reporting = reporter;
        Server::builder()
            .layer(check)
            .add_service(guarded)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });

    let key = es256();
    let cache = TokenCache::new(source(&server, &key));
    let channel = Channel::from_shared(format!("http://{grpc_addr}"))
        .unwrap()
        .connect_lazy();
    let service = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()).retry_rejected())
        .service(channel);
    let origin: http::Uri = format!("http://{grpc_addr}").parse().unwrap();
    let mut client = HealthClient::with_origin(service, origin);
    for _ in 0..3 {
        let status = client
            .check(HealthCheckRequest {
                service: "orders".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }
    assert_eq!(server.refusals(), Vec::<String>::new());
    assert_eq!((server.api_ok(), server.token_requests()), (3, 1));
}

/// A gRPC server says `use_dpop_nonce` with `UNAUTHENTICATED` in a
/// trailers-only response: a challenge of the proof, answered by one more
/// call with the nonce, not a rejection of the token.
#[tokio::test]
async fn a_grpc_nonce_challenge_is_answered_not_taken_for_a_rejection() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use std::sync::{Arc, Mutex};

    let server = DpopServer::start().await;
    let cache = TokenCache::new(source(&server, &es256()));
    let nonces_seen = Arc::new(Mutex::new(Vec::new()));
    let seen = nonces_seen.clone();
    let grpc = tower::service_fn(move |request: Request<Full<Bytes>>| {
        let proof = request.headers()["dpop"].to_str().unwrap().to_owned();
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(proof.split('.').nth(1).unwrap()).unwrap()).unwrap();
        let nonce = claims["nonce"].as_str().map(str::to_owned);
        seen.lock().unwrap().push(nonce.clone());
        async move {
            let mut response = http::Response::new(Full::<Bytes>::default());
            let headers = response.headers_mut();
            headers.insert("content-type", "application/grpc".parse().unwrap());
            if nonce.as_deref() == Some("grpc-nonce-1") {
                headers.insert("grpc-status", "0".parse().unwrap());
            } else {
                headers.insert("grpc-status", "16".parse().unwrap());
                headers.insert(
                    "www-authenticate",
                    r#"DPoP error="use_dpop_nonce""#.parse().unwrap(),
                );
                headers.insert("dpop-nonce", "grpc-nonce-1".parse().unwrap());
            }
            Ok::<_, BoxError>(response)
        }
    });
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()).retry_rejected())
        .service(grpc);
    let call = || {
        Request::post("http://127.0.0.1:1/pkg.Orders/Get")
            .header("content-type", "application/grpc")
            .body(Full::default())
            .unwrap()
    };
    let response = api.clone().oneshot(call()).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "0");
    let response = api.oneshot(call()).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "0");
    assert_eq!(
        *nonces_seen.lock().unwrap(),
        [
            None,
            Some("grpc-nonce-1".to_owned()),
            Some("grpc-nonce-1".to_owned())
        ]
    );
    let stats = cache.stats();
    assert_eq!((stats.fetches, stats.rejections), (1, 0));
}

/// A nonce challenge is read even when the token it answers was dropped
/// while the request was out (another request's rejection): the nonce is
/// kept, and the next request is not challenged.
#[tokio::test]
async fn a_challenge_to_a_token_dropped_meanwhile_still_keeps_its_nonce() {
    let server = DpopServer::start().await;
    server.demand_api_nonce("api-nonce-0");
    let cache = TokenCache::new(source(&server, &es256()));
    let dropping = cache.clone();
    let api = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()))
        .service(tower::service_fn(move |request: Request<Full<Bytes>>| {
            let (http, cache) = (http(), dropping.clone());
            async move {
                let response = http.request(request).await?;
                if let Ok(token) = cache.token().await {
                    cache.invalidate(&token);
                }
                Ok::<_, BoxError>(response)
            }
        }));
    let (status, _) = send(&api, Method::GET, &server.url("/api"), "").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the challenge, not retried"
    );
    assert_eq!(server.api_nonce_challenges(), 1);
    let plain = ServiceBuilder::new()
        .layer(TokenRefreshLayer::new(cache.clone()))
        .service(http());
    let (status, _) = send(&plain, Method::GET, &server.url("/api"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.api_nonce_challenges(), 1, "the nonce was kept");
}

/// reqwest through `TokenRefreshMiddleware`: a nonce challenge is answered
/// by one more request with a new proof.
#[cfg(feature = "reqwest-middleware")]
#[tokio::test]
async fn reqwest_answers_a_nonce_challenge_once() {
    use tower_token_refresh::TokenRefreshMiddleware;
    let server = DpopServer::start().await;
    server.demand_api_nonce("api-nonce-0");
    let cache = TokenCache::new(source(&server, &es256()));
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(TokenRefreshMiddleware::new(cache.clone()).retry_rejected())
        .build();
    let response = client.get(server.url("/api")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = client.get(server.url("/api")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        (server.api_nonce_challenges(), server.api_requests()),
        (1, 3)
    );
    assert_eq!(server.refusals(), Vec::<String>::new());
    assert_eq!((cache.stats().fetches, cache.stats().rejections), (1, 0));
}

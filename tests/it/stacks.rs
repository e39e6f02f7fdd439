//! The layer in the stacks users build: hyper-util over HTTP/1 and HTTP/2
//! with every body kind, tower-http's trace / timeout / follow-redirect,
//! tower's buffer and retry, and per-destination tokens.

use crate::support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, LOCATION};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::combinators::BoxBody;
use http_body_util::{Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::auth_server::AuthServer;
use support::channel_body::channel_body;
use support::fetch;
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_http::follow_redirect::FollowRedirectLayer;
use tower_http::trace::TraceLayer;
use tower_token_refresh::{Origin, TokenCache, TokenRefreshLayer, TokenRoutes};

const HOUR: Duration = Duration::from_secs(3600);

/// GETs `url` through `client` (with an empty body) and reads the answer.
async fn get<S, R>(client: &S, url: String) -> (StatusCode, String)
where
    S: Service<Request<Empty<Bytes>>, Response = Response<R>> + Clone,
    S::Error: std::fmt::Debug,
    R: Body,
    R::Error: std::fmt::Debug,
{
    fetch(client, Request::get(url).body(Empty::new()).unwrap()).await
}

#[tokio::test]
async fn hyper_util_over_http1_and_http2_with_every_body_kind() {
    let server = AuthServer::start(HOUR).await;
    for http2 in [false, true] {
        let cache = TokenCache::new(server.token_source());
        let mut builder = Client::builder(TokioExecutor::new());
        builder.http2_only(http2);
        let full = TokenRefreshLayer::new(cache.clone()).layer(builder.build_http::<Full<Bytes>>());
        let empty =
            TokenRefreshLayer::new(cache.clone()).layer(builder.build_http::<Empty<Bytes>>());
        let streamed = TokenRefreshLayer::new(cache.clone())
            .layer(builder.build_http::<BoxBody<Bytes, Infallible>>());

        let url = server.url("/api");
        let (status, answer) = fetch(&empty, Request::get(&url).body(Empty::new()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "http2={http2}: {answer}");
        let request = Request::post(&url).body(Full::from("full body")).unwrap();
        let (_, answer) = fetch(&full, request).await;
        assert!(answer.ends_with("got full body"), "{answer}");
        let (feeder, body) = channel_body();
        feeder.data("streamed ");
        feeder.data("body");
        drop(feeder);
        let request = Request::post(&url).body(BoxBody::new(body)).unwrap();
        let (_, answer) = fetch(&streamed, request).await;
        assert!(answer.ends_with("got streamed body"), "{answer}");
        assert_eq!(cache.stats().fetches, 1);
    }
    assert_eq!(server.rejected(), 0);
}

/// A server that answers `/redirect` with a 307 to `target`, and anything
/// else with the `Authorization` header it got ("none" without one); a
/// `CONNECT` with a 403, so that the answer keeps its body.
async fn start_echo_server(target: Option<String>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let target = target.clone();
                        async move {
                            let response = match (request.uri().path(), target) {
                                ("/redirect", Some(target)) => Response::builder()
                                    .status(StatusCode::TEMPORARY_REDIRECT)
                                    .header(LOCATION, target)
                                    .body(Full::<Bytes>::default())
                                    .unwrap(),
                                _ => {
                                    let seen = request
                                        .headers()
                                        .get(AUTHORIZATION)
                                        .map_or("none".to_owned(), |v| {
                                            v.to_str().unwrap().to_owned()
                                        });
                                    let mut response = Response::new(Full::from(seen));
                                    if request.method() == http::Method::CONNECT {
                                        *response.status_mut() = StatusCode::FORBIDDEN;
                                    }
                                    response
                                }
                            };
                            Ok::<_, Infallible>(response)
                        }
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn static_cache(value: &'static str) -> TokenCache {
    TokenCache::new(move || async move {
        Ok::<_, Infallible>(tower_token_refresh::Token::bearer(value).expires_in(HOUR))
    })
}

#[tokio::test]
async fn with_trace_timeout_and_follow_redirect_no_token_crosses_origins() {
    let elsewhere = start_echo_server(None).await;
    let api = start_echo_server(Some(format!("http://{elsewhere}/landing"))).await;
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    // Recommended order: the token is added once, above FollowRedirect,
    // whose standard policy drops credentials on a cross-origin redirect.
    let client = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .timeout(Duration::from_secs(10))
        .layer(TokenRefreshLayer::new(static_cache("secret-token")))
        .layer(FollowRedirectLayer::new())
        .service(http.clone());
    let (status, seen) = get(&client, format!("http://{api}/direct")).await;
    assert_eq!(
        (status, seen.as_str()),
        (StatusCode::OK, "Bearer secret-token")
    );
    let (status, seen) = get(&client, format!("http://{api}/redirect")).await;
    assert_eq!(
        (status, seen.as_str()),
        (StatusCode::OK, "none"),
        "the token did not follow the redirect"
    );

    // The other order would add the token to every hop; `only_to` keeps it
    // on the API's origin all the same.
    let origin = Origin::parse(&format!("http://{api}")).unwrap();
    let client = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(TokenRefreshLayer::new(static_cache("secret-token")).only_to([origin]))
        .service(http);
    let (_, seen) = get(&client, format!("http://{api}/redirect")).await;
    assert_eq!(seen, "none");
    let (_, seen) = get(&client, format!("http://{api}/direct")).await;
    assert_eq!(seen, "Bearer secret-token");
}

#[tokio::test]
async fn only_to_keeps_the_token_off_a_connect_to_another_host() {
    // hyper-util sends a `CONNECT host:port` to that host: an authority-form
    // URI names its destination, so it is not a "relative" request.
    let api = start_echo_server(None).await;
    let elsewhere = start_echo_server(None).await;
    let origin = Origin::parse(&format!("http://{api}")).unwrap();
    let client = TokenRefreshLayer::new(static_cache("secret-token"))
        .only_to([origin])
        .layer(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
    let connect = Request::connect(elsewhere.to_string())
        .body(Empty::new())
        .unwrap();
    assert_eq!(
        connect.uri().authority().unwrap().as_str(),
        elsewhere.to_string()
    );
    let (status, seen) = fetch(&client, connect).await;
    assert_eq!((status, seen.as_str()), (StatusCode::FORBIDDEN, "none"));
    let (_, seen) = get(&client, format!("http://{api}/direct")).await;
    assert_eq!(seen, "Bearer secret-token");
}

/// Retries 503s (a stand-in for any tower retry policy).
#[derive(Clone)]
struct RetryUnavailable(usize);

impl<R, E> tower::retry::Policy<Request<Empty<Bytes>>, Response<R>, E> for RetryUnavailable {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _: &mut Request<Empty<Bytes>>,
        result: &mut Result<Response<R>, E>,
    ) -> Option<Self::Future> {
        let unavailable =
            matches!(result, Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE);
        (unavailable && self.0 > 0).then(|| {
            self.0 -= 1;
            std::future::ready(())
        })
    }

    fn clone_request(&mut self, request: &Request<Empty<Bytes>>) -> Option<Request<Empty<Bytes>>> {
        let mut clone = Request::new(Empty::new());
        *clone.uri_mut() = request.uri().clone();
        *clone.headers_mut() = request.headers().clone();
        Some(clone)
    }
}

#[tokio::test]
async fn with_tower_buffer_and_retry() {
    let calls = Arc::new(AtomicUsize::new(0));
    let flaky = {
        let calls = calls.clone();
        tower::service_fn(move |request: Request<Empty<Bytes>>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let status = if n.is_multiple_of(2) {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                };
                let seen = request.headers()[AUTHORIZATION]
                    .to_str()
                    .unwrap()
                    .to_owned();
                Ok::<_, Infallible>(Response::builder().status(status).body(seen).unwrap())
            }
        })
    };
    let client = ServiceBuilder::new()
        .buffer(8)
        .retry(RetryUnavailable(1))
        .layer(TokenRefreshLayer::new(static_cache("t")))
        .service(flaky);
    let calls_made: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.oneshot(Request::new(Empty::new())).await.unwrap() })
        })
        .collect();
    for call in calls_made {
        let response = call.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body().get_ref(), "Bearer t");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn one_client_several_apis_each_with_its_own_token() {
    let (a, b) = (AuthServer::start(HOUR).await, AuthServer::start(HOUR).await);
    let other = start_echo_server(None).await;
    let routes = TokenRoutes::new()
        .route(
            Origin::parse(&format!("http://{}", a.addr)).unwrap(),
            TokenCache::new(a.token_source()),
        )
        .route(
            Origin::parse(&format!("http://{}", b.addr)).unwrap(),
            TokenCache::new(b.token_source()),
        );
    let client = ServiceBuilder::new()
        .layer(TokenRefreshLayer::routes(routes))
        .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());

    let get = |url: String| fetch(&client, Request::get(url).body(Empty::new()).unwrap());
    for _ in 0..3 {
        assert_eq!(
            get(a.url("/api")).await,
            (StatusCode::OK, "hello, holder of tok-1".into())
        );
        assert_eq!(
            get(b.url("/api")).await,
            (StatusCode::OK, "hello, holder of tok-1".into())
        );
        assert_eq!(
            get(format!("http://{other}/x")).await.1,
            "none",
            "no token for other origins"
        );
    }
    // Each API saw only its own tokens: none was rejected.
    assert_eq!((a.rejected(), b.rejected()), (0, 0));
    assert_eq!((a.token_requests(), b.token_requests()), (1, 1));
}

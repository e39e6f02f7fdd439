//! `TokenRefreshMiddleware` with a real `reqwest::Client` against loopback
//! servers: single-flight at expiry, a revoked token replaced and the
//! request retried, a streaming body not retried, and the token kept off
//! other origins (`only_to`, and reqwest's own cross-origin redirects).

use crate::support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use support::TestSource;
use support::events::Events;
use tower_token_refresh::{
    NoToken, NotReplayable, NotRetried, Origin, TokenCache, TokenRefreshMiddleware, TokenRejected,
};

const HOUR: Duration = Duration::from_secs(3600);

/// An API on 127.0.0.1 that accepts tokens it was not told are revoked,
/// and records the `Authorization` of every request.
#[derive(Clone, Default)]
struct Api {
    state: Arc<Mutex<ApiState>>,
}

#[derive(Default)]
struct ApiState {
    revoked: HashSet<String>,
    seen: Vec<Option<String>>,
    redirect_to: Option<String>,
}

impl Api {
    async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/items", any(items))
            .route("/elsewhere", get(elsewhere))
            .route("/forbidden", get(|| async { StatusCode::FORBIDDEN }))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn revoke(&self, token: &str) {
        self.state.lock().unwrap().revoked.insert(token.to_owned());
    }

    fn seen(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().seen.clone()
    }

    fn redirect_to(&self, url: String) {
        self.state.lock().unwrap().redirect_to = Some(url);
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    Some(value.strip_prefix("Bearer ").unwrap_or(value).to_owned())
}

async fn items(State(api): State<Api>, headers: HeaderMap, body: String) -> Response {
    let token = bearer(&headers);
    let mut state = api.state.lock().unwrap();
    state.seen.push(token.clone());
    match token {
        Some(token) if !state.revoked.contains(&token) => {
            (StatusCode::OK, format!("{token} {body}")).into_response()
        }
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn elsewhere(State(api): State<Api>, headers: HeaderMap) -> Response {
    let target = {
        let mut state = api.state.lock().unwrap();
        state.seen.push(bearer(&headers));
        state.redirect_to.clone()
    };
    match target {
        Some(url) => Redirect::temporary(&url).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

fn client<C>(middleware: TokenRefreshMiddleware<C>) -> ClientWithMiddleware
where
    C: tower_token_refresh::ClassifyRejection + Clone,
{
    let http = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    ClientBuilder::new(http).with(middleware).build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_at_expiry_make_one_fetch() {
    let api = Api::default();
    let addr = api.start().await;
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&fetches);
    let cache = TokenCache::new(move || {
        let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            // Slow enough for every request to find the fetch under way.
            tokio::time::sleep(Duration::from_millis(50)).await;
            // The first token expires soon; the next lives long enough
            // that no refresh ahead starts while the thousand are sent.
            let lifetime = if n == 1 {
                Duration::from_millis(300)
            } else {
                HOUR
            };
            Ok::<_, tower_token_refresh::BoxError>(
                tower_token_refresh::Token::bearer(format!("token-{n}")).expires_in(lifetime),
            )
        }
    });
    let client = client(TokenRefreshMiddleware::new(cache.clone()));
    let url = format!("http://{addr}/items");
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // Past the token's expiry, a thousand requests at once.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let requests: Vec<_> = (0..1000)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(
                async move { client.get(&url).send().await.unwrap().text().await.unwrap() },
            )
        })
        .collect();
    for request in requests {
        let answer = request.await.unwrap();
        assert!(answer.starts_with("token-2"), "{answer}");
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "one fetch for the thousand"
    );
    assert_eq!(cache.stats().fetches, 2);
}

#[tokio::test]
async fn a_revoked_token_is_replaced_with_one_fetch_and_the_request_retried() {
    let api = Api::default();
    let addr = api.start().await;
    let source = TestSource::issuing(HOUR);
    let cache = TokenCache::builder(source.clone()).name("items").build();
    let client = client(TokenRefreshMiddleware::new(cache.clone()).retry_rejected());
    let url = format!("http://{addr}/items");
    assert_eq!(
        client
            .post(&url)
            .body("a")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "token-1 a"
    );

    api.revoke("token-1");
    let response = client.post(&url).body("b").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let rejected = response
        .extensions()
        .get::<TokenRejected>()
        .cloned()
        .unwrap();
    assert!(rejected.retried());
    assert_eq!(rejected.cache(), "items");
    assert_eq!(
        response.text().await.unwrap(),
        "token-2 b",
        "the same body, sent again"
    );
    assert_eq!(source.calls(), 2);
    assert_eq!(cache.stats().retries, 1);
    assert_eq!(
        api.seen(),
        [
            Some("token-1".into()),
            Some("token-1".into()),
            Some("token-2".into())
        ]
    );
}

#[tokio::test]
async fn without_retry_the_rejection_goes_back_and_says_why() {
    let api = Api::default();
    let addr = api.start().await;
    let source = TestSource::issuing(HOUR);
    let client = client(TokenRefreshMiddleware::new(TokenCache::new(source.clone())));
    let url = format!("http://{addr}/items");
    client.get(&url).send().await.unwrap();
    api.revoke("token-1");
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response
            .extensions()
            .get::<TokenRejected>()
            .unwrap()
            .not_retried(),
        Some(NotRetried::Off)
    );
    // The token was dropped all the same.
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(source.calls(), 2);
}

#[tokio::test]
async fn a_streaming_body_is_not_retried_and_an_event_says_so() {
    let (events, _guard) = Events::capture();
    let api = Api::default();
    let addr = api.start().await;
    let source = TestSource::issuing(HOUR);
    let cache = TokenCache::builder(source.clone()).name("items").build();
    let client = client(TokenRefreshMiddleware::new(cache).retry_rejected());
    let url = format!("http://{addr}/items");
    client.get(&url).send().await.unwrap();
    api.revoke("token-1");

    // A body of its own type: reqwest streams it, and cannot copy it.
    let streamed = http_body_util::Full::new(bytes::Bytes::from_static(b"streamed body"));
    let response = client
        .post(&url)
        .body(reqwest::Body::wrap(streamed))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response
            .extensions()
            .get::<TokenRejected>()
            .unwrap()
            .not_retried(),
        Some(NotRetried::Body(NotReplayable::NotCopied))
    );
    assert_eq!(api.seen().len(), 2, "sent once");
    let lines = events.lines_with("rejected request not retried");
    assert_eq!(lines.len(), 1, "{}", events.text());
    assert!(lines[0].contains("cache=\"items\""), "{}", lines[0]);
    assert!(
        lines[0].contains(&format!("origin=http://{addr}")),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn only_to_keeps_the_token_off_other_origins_and_redirects_drop_it() {
    let (api, other) = (Api::default(), Api::default());
    let (addr, other_addr) = (api.start().await, other.start().await);
    let source = TestSource::issuing(HOUR);
    let origin: Origin = format!("http://{addr}").parse().unwrap();
    let client =
        client(TokenRefreshMiddleware::new(TokenCache::new(source.clone())).only_to([origin]));

    // Another origin: no token.
    client
        .get(format!("http://{other_addr}/elsewhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.seen(), [None]);

    // A redirect from the allowed origin to another: reqwest drops the
    // header it was given.
    api.redirect_to(format!("http://{other_addr}/elsewhere"));
    let response = client
        .get(format!("http://{addr}/elsewhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(api.seen(), [Some("token-1".into())]);
    assert_eq!(
        other.seen(),
        [None, None],
        "the token did not follow the redirect"
    );

    // A request that says so goes without a token.
    let response = client
        .get(format!("http://{addr}/items"))
        .with_extension(NoToken)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn no_token_fails_the_request_with_the_crates_error() {
    let api = Api::default();
    let addr = api.start().await;
    let source = TestSource::new(support::Behaviour::Fail("identity provider down"));
    let client = client(TokenRefreshMiddleware::new(
        TokenCache::builder(source).name("items").build(),
    ));
    let error = client
        .get(format!("http://{addr}/items"))
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(error) = error else {
        panic!("expected a middleware error, got {error:?}");
    };
    let error = error.downcast_ref::<tower_token_refresh::Error>().unwrap();
    assert_eq!(error.cache(), Some("items"));
    assert!(error.is_retryable());
    assert!(api.seen().is_empty(), "nothing was sent");
}

/// The OAuth 2.0 sources can send their token requests through reqwest too
/// (as a tower service, with tower-reqwest; redirects off).
#[tokio::test]
async fn an_oauth_source_can_send_its_token_requests_through_reqwest() {
    use support::token_endpoint::{ClientMethod, TokenEndpoint};
    use tower::ServiceBuilder;
    use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials, HttpClient};

    let endpoint = TokenEndpoint::start().await;
    endpoint.register("svc", ClientMethod::Basic("secret".into()));
    let reqwest = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let http = HttpClient::new(
        ServiceBuilder::new()
            .map_request(
                |request: http::Request<http_body_util::Full<bytes::Bytes>>| {
                    request.map(reqwest::Body::wrap)
                },
            )
            .layer(tower_reqwest::HttpClientLayer)
            .service(reqwest),
    );
    let source =
        ClientCredentials::builder(endpoint.token_url(), "svc", ClientAuth::basic("secret"))
            .http_client(http)
            .build()
            .unwrap();
    let token = TokenCache::new(source).token().await.unwrap();
    assert!(!token.secret().is_empty());
    assert_eq!(endpoint.requests(), 1);
}

/// reqwest followed a redirect to another origin (dropping the token on the
/// way), whose answer is a `401`: that says nothing of the token, which is
/// neither dropped nor retried.
#[tokio::test]
async fn a_401_from_another_origin_after_a_redirect_drops_nothing() {
    let (api, other) = (Api::default(), Api::default());
    let (addr, other_addr) = (api.start().await, other.start().await);
    let source = TestSource::issuing(HOUR);
    let cache = TokenCache::new(source.clone());
    let client = client(TokenRefreshMiddleware::new(cache.clone()).retry_rejected());

    api.redirect_to(format!("http://{other_addr}/items"));
    let response = client
        .get(format!("http://{addr}/elsewhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "the other origin got no token");
    assert!(response.extensions().get::<TokenRejected>().is_none());
    assert_eq!(other.seen(), [None]);
    assert_eq!(cache.stats().rejections, 0);

    // The token is still good for its own origin.
    let response = client
        .get(format!("http://{addr}/items"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "token-1 ");
    assert_eq!(source.calls(), 1);
}

/// The header the middleware adds is marked sensitive (kept out of logs by
/// the layers that honour it), as the layer's is.
#[tokio::test]
async fn the_header_is_marked_sensitive() {
    use reqwest_middleware::{Middleware, Next};

    /// Answers at once, saying whether the request's `Authorization` was
    /// marked sensitive.
    struct Inspect;
    impl Middleware for Inspect {
        fn handle<'a, 'b, 'c, 'd>(
            &'a self,
            request: reqwest::Request,
            _: &'b mut http::Extensions,
            _: Next<'c>,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<Output = reqwest_middleware::Result<reqwest::Response>>
                    + Send
                    + 'd,
            >,
        >
        where
            'a: 'd,
            'b: 'd,
            'c: 'd,
            Self: 'd,
        {
            let sensitive = request
                .headers()
                .get("authorization")
                .map(http::HeaderValue::is_sensitive);
            Box::pin(async move {
                let body = format!("{sensitive:?}");
                Ok(reqwest::Response::from(http::Response::new(body)))
            })
        }
    }

    let cache = TokenCache::new(TestSource::issuing(HOUR));
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(TokenRefreshMiddleware::new(cache))
        .with(Inspect)
        .build();
    let answer = client
        .get("http://127.0.0.1:9/never-sent")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(answer, "Some(true)");
}

/// A request that brings its own `Authorization` keeps it when told to, and
/// a rejection classifier of the user's own is used.
#[tokio::test]
async fn keep_existing_authorization_and_a_classifier_of_ones_own() {
    use tower_token_refresh::StandardRejection;

    let api = Api::default();
    let addr = api.start().await;
    let source = TestSource::issuing(HOUR);
    let cache = TokenCache::new(source.clone());
    let keeping = client(TokenRefreshMiddleware::new(cache.clone()).keep_existing_authorization());
    let url = format!("http://{addr}/items");
    keeping.get(&url).bearer_auth("own").send().await.unwrap();
    keeping.get(&url).send().await.unwrap();
    assert_eq!(api.seen(), [Some("own".into()), Some("token-1".into())]);

    // 403 counts as a rejection with this classifier: the token is dropped.
    let forbidding = client(
        TokenRefreshMiddleware::new(cache.clone())
            .rejection(StandardRejection::new().or_status(http::StatusCode::FORBIDDEN)),
    );
    api.revoke("token-1");
    let response = forbidding
        .get(format!("http://{addr}/forbidden"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(cache.stats().rejections, 1);
}

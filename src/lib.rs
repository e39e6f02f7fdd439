//! Tower middleware that keeps outgoing HTTP and gRPC requests authorized
//! with short-lived bearer tokens.
//!
//! Access tokens (OAuth 2.0, JWTs) expire after minutes or an hour. The usual
//! hand-written fix, an "if the token expired, fetch a new one" check on every
//! call, refreshes once per concurrent caller, takes a lock on every request
//! and swallows errors. This crate makes auth invisible instead:
//!
//! - [`TokenCache`] holds one token shared by every request, fetched from a
//!   [`TokenSource`] (any async closure) **single-flight**: however many
//!   requests find it missing or expired, the source is called once. It
//!   refreshes ahead of expiry in the background, bounds every fetch with a
//!   timeout and backs off after failures.
//! - [`TokenRefreshLayer`] wraps any `tower::Service<http::Request<B>>` (a
//!   hyper-util client, a tonic `Channel`, an axum app's outgoing client, a
//!   kube-rs client, reqwest through tower-reqwest), whatever its request
//!   body, and adds `Authorization: Bearer <token>` to each request. With a
//!   fresh token that takes no lock, no clock read and no allocation.
//! - A token the server rejects (`401`, gRPC `UNAUTHENTICATED`) is dropped,
//!   once however many requests saw it rejected; with
//!   [`retry_rejected`](TokenRefreshLayer::retry_rejected) the request is
//!   also resent once with a new token when its body can be sent again (see
//!   [`TokenRefreshLayer`] and [`ReplayableBody`]).
//! - Secrets stay secret: [`Token`]'s `Debug` and `Display` are redacted, the
//!   header is marked sensitive, and no error or tracing event carries a token.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response, header::AUTHORIZATION};
//! use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};
//! use tower_token_refresh::{Token, TokenCache, TokenRefreshLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // Where tokens come from: any async closure (or a `TokenSource`).
//! let cache = TokenCache::builder(|| async {
//!     // e.g. POST to your identity provider's token endpoint.
//!     Ok::<_, BoxError>(Token::bearer("abc").expires_in(Duration::from_secs(3600)))
//! })
//! .fetch_timeout(Duration::from_secs(5))
//! .build();
//!
//! // Any HTTP client service; here a stand-in that echoes the header it got.
//! let http_client = service_fn(|request: Request<String>| async move {
//!     let sent = request.headers()[AUTHORIZATION].to_str()?.to_owned();
//!     Ok::<_, BoxError>(Response::new(sent))
//! });
//!
//! let client = ServiceBuilder::new()
//!     .layer(TokenRefreshLayer::new(cache.clone()))
//!     .service(http_client);
//!
//! let response = client.oneshot(Request::new(String::new())).await?;
//! assert_eq!(response.body().get_ref(), "Bearer abc");
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! When no token can be had, [`TokenRefresh`] fails the request with a
//! [`BoxError`] that downcasts to [`Error`]; [`Error::kind`] says what failed
//! (the source, a timeout, …). Errors of the inner service pass through
//! unchanged. [`Error::is_retryable`] says whether trying again later may
//! help, and the message names the cache (when it has a
//! [name](TokenCacheBuilder::name)) and the source's innermost cause. gRPC
//! requests (with the `tonic` feature) fail instead with a `tonic::Status`
//! whose source is the [`Error`]: `UNAVAILABLE` when the error is
//! retryable, `UNAUTHENTICATED` when it is not (a [`Permanent`] failure
//! such as a wrong client secret), rather than `UNKNOWN`.
//!
//! A response whose token the server rejected, and that goes back to the
//! caller, carries a [`TokenRejected`] extension saying so.
//!
//! # Stacks
//!
//! - **hyper-util**: `ServiceBuilder::new().layer(TokenRefreshLayer::new(cache)).service(client)`;
//!   works over HTTP/1 and HTTP/2 with `Full`, `Empty` and streaming bodies.
//! - **tonic**: wrap the `Channel` the same way and pass the result to the
//!   generated client (`XClient::new(service)`).
//! - **axum**: keep the wrapped client in the router's state and call it
//!   from handlers; `axum::body::Body` requests can be retried.
//! - **tower-http**: put [`TokenRefreshLayer`] *above* `FollowRedirectLayer`,
//!   so the token is added once and the redirect policy strips it on a
//!   cross-origin redirect (or use [`TokenRefreshLayer::only_to`], which
//!   makes either order safe). `TraceLayer`, timeouts, `tower::buffer` and
//!   `tower::retry` compose in any order.
//! - **kube-rs**: `ClientBuilder::with_layer(&TokenRefreshLayer::new(cache))`
//!   over a `tower::buffer::BufferLayer` (kube's innermost service is not
//!   `Clone`).
//! - **reqwest**: with reqwest-middleware, `TokenRefreshMiddleware` (feature
//!   `reqwest-middleware`) does what the layer does; or as a tower service,
//!   through tower-reqwest's `HttpClientLayer`, below the token layer.
//! - **Several APIs, several tokens**: [`TokenRefreshLayer::routes`] picks a
//!   cache per origin ([`TokenRoutes`]).
//! - **Retrying a body type of another crate**:
//!   [`replay_with`](TokenRefreshLayer::replay_with) takes a function
//!   ([`PrepareReplay`]), since the orphan rule keeps you from implementing
//!   [`ReplayableBody`] for it.
//!
//! # Observability
//!
//! Each refresh runs in a `token_refresh` `tracing` span naming the source
//! and the reason, with events when it starts, succeeds (with the new
//! lifetime) or fails (with the error); rejections, retries and skipped
//! retries (with the reason) are events too. No event carries a token or a
//! secret. [`TokenCache::stats`] gives counters to export as metrics; with
//! the `metrics` feature every cache reports them itself, with its token's
//! expiry, through the `metrics` facade (see the `metrics` module).
//!
//! # Choosing settings
//!
//! - **Refresh window** ([`TokenCacheBuilder::refresh_before`]): by default a
//!   tenth of the token's lifetime, between 10 seconds and 5 minutes, and
//!   never more than half of it, plus up to a quarter more at random. Widen
//!   it when the identity provider is slow or flaky (more time to retry
//!   before expiry); there is little reason to narrow it.
//! - **Fetch timeout** ([`TokenCacheBuilder::fetch_timeout`], 10 s): how
//!   long a caller may wait for a token when there is none. Keep it below
//!   your request timeouts. With a [store](TokenCacheBuilder::store), a
//!   caller may also wait up to the [lease](TokenCacheBuilder::lease) for
//!   another process's refresh.
//! - **Backoff** ([`TokenCacheBuilder::backoff`], 1 s doubling to 30 s):
//!   while it runs, callers without a valid token fail at once instead of
//!   hammering the identity provider; `Retry-After` is honoured.
//! - **Retry** (off; [`TokenRefreshLayer::retry_rejected`], then
//!   [`replay_limit`](TokenRefreshLayer::replay_limit), 64 KiB): turn it on when callers
//!   must never see a rejection caused by a revoked or stale token. It copies
//!   each request's head, which costs more than adding the token itself;
//!   without it the rare rejected request goes back to its caller and the
//!   next request gets a new token.
//!
//! # Fleets and restarts
//!
//! A job restarted every few minutes, or a fleet of replicas, would each
//! fetch its own tokens. Give the cache a [`store`] with
//! [`TokenCacheBuilder::store`]: a [`FileStore`](store::FileStore) lets the
//! next run reuse a valid token, a `RedisStore` (feature `redis`) shares one
//! token between processes, which take turns to refresh it under a lease.
//! Requests never wait on the store; when it fails, the cache fetches on its
//! own.
//!
//! # Compared with a hand-written check
//!
//! | | `if expired { fetch }` per call | this crate |
//! |---|---|---|
//! | concurrent callers at expiry | one fetch each | one fetch in all |
//! | cost per request | lock + clock + format the header | atomic load + refcount |
//! | refresh | after expiry, on the caller's time | ahead of expiry, in the background |
//! | token rejected early | error to the caller | dropped once, request retried |
//! | identity provider down | every call retries it | backoff, valid token kept |
//! | caller cancelled mid-fetch | fetch cancelled, restarted | fetch continues for others |
//! | token in logs | easy to print | redacted everywhere |
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `oauth2` | yes | [`oauth2`]: client credentials, refresh token, JWT bearer, token exchange, discovery |
//! | `rustls` | yes | HTTPS token endpoints (hyper-rustls with ring and the webpki roots) |
//! | `native-roots` | no | also trust the operating system's root certificates |
//! | `rust-crypto` | no | signed JWT assertions with RustCrypto |
//! | `aws-lc-rs` | no | signed JWT assertions with aws-lc-rs (preferred if both are on) |
//! | `tonic` | yes | [`ReplayableBody`] for `tonic::body::Body` (rejected gRPC calls are retried) and gRPC-aware errors |
//! | `axum`  | yes | [`ReplayableBody`] for `axum::body::Body` |
//! | `redis` | no | `store::RedisStore`: one token for a fleet through Redis (one server, a Redis Cluster, or Sentinel) |
//! | `metrics` | no | `metrics`: each cache's counters and token expiry through the `metrics` facade |
//! | `reqwest-middleware` | no | `TokenRefreshMiddleware`: the layer's behaviour for reqwest, as a `reqwest_middleware::Middleware` |
//! | `workload` | no | `workload`: a token file a platform rotates (Kubernetes service-account tokens, …), Microsoft Entra workload identity, the GCP metadata server, Azure managed identity, GitHub Actions OIDC (enables `oauth2`) |
//! | `dpop` | no | `dpop`: sender-constrained tokens (DPoP, RFC 9449) for the OAuth 2.0 sources and the layer |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub,
    clippy::await_holding_lock
)]

mod cache;
#[cfg(feature = "dpop")]
#[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
pub mod dpop;
mod error;
mod jitter;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod middleware;
#[cfg(feature = "oauth2")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth2")))]
pub mod oauth2;
mod permanent;
mod rejection;
mod replay;
mod retry_after;
mod secret;
mod sender_constraint;
mod source;
pub mod store;
#[cfg(any(feature = "rustls", feature = "redis"))]
mod tls;
mod token;
#[cfg(feature = "workload")]
#[cfg_attr(docsrs, doc(cfg(feature = "workload")))]
pub mod workload;

pub use cache::{
    CacheStats, DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, DEFAULT_FETCH_TIMEOUT,
    LONGEST_SETTING, TimeLeft, TokenCache, TokenCacheBuilder,
};
pub use error::{BoxError, Error, ErrorKind};
#[cfg(feature = "reqwest-middleware")]
pub use middleware::TokenRefreshMiddleware;
pub use middleware::{
    InvalidOrigin, NoRetry, NoToken, NotRetried, Origin, ResponseBody, ResponseFuture,
    RetryRejected, RetryResponseFuture, TokenRefresh, TokenRefreshLayer, TokenRejected,
    TokenRoutes,
};
pub use permanent::Permanent;
pub use rejection::{ClassifyRejection, StandardRejection};
pub use replay::{
    ByBodyType, DEFAULT_REPLAY_LIMIT, NotReplayable, PrepareReplay, Replay, ReplayBody,
    ReplayableBody,
};
pub use retry_after::RetryAfter;
pub use secret::Secret;
pub use sender_constraint::{Challenge, OriginId, SenderConstraint};
pub use source::{TokenFuture, TokenSource};
pub use store::TokenStore;
pub use token::Token;

// Compiles the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

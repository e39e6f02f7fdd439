//! OAuth 2.0 token sources (feature `oauth2`, on by default).
//!
//! Each source is a [`TokenSource`](crate::TokenSource) for a
//! [`TokenCache`](crate::TokenCache):
//!
//! - [`ClientCredentials`]: a service authenticates as itself (RFC 6749
//!   §4.4), with [`ClientAuth::basic`], [`ClientAuth::post`] or (features
//!   `rust-crypto` / `aws-lc-rs`) `ClientAuth::private_key_jwt`.
//! - [`RefreshTokenGrant`]: exchanges a refresh token (RFC 6749 §6), keeping
//!   rotated refresh tokens and handing them to a persistence hook.
//! - `JwtBearerGrant` (features `rust-crypto` / `aws-lc-rs`): signs a JWT
//!   assertion and exchanges it (RFC 7523 §2.1), as service accounts do.
//! - [`TokenExchange`]: exchanges a token from another source (a Kubernetes
//!   service-account token, a CI job's OIDC token, another cache's token)
//!   for the API's token (RFC 8693): workload identity federation.
//! - [`ClientAuth::assertion_from`]: any grant's client authenticated by an
//!   assertion another source provides (Microsoft Entra workload identity).
//! - [`Discovery`] finds the token endpoint from an issuer URL.
//!
//! Token responses (RFC 6749 §5.1) are read strictly but leniently where
//! servers differ (`expires_in` as a string, `token_type` in any case or
//! missing; a JWT access token without `expires_in` expires at its `exp`).
//! Error responses (§5.2) become a typed [`Error`]; `429` and `5xx` are
//! [retryable](Error::is_retryable) and their `Retry-After` is honoured by
//! the cache's backoff. Bodies larger than [`MAX_RESPONSE_BYTES`], HTML
//! error pages, empty or malformed bodies all give errors that say what was
//! wrong, never quoting the body.
//!
//! Requests go to `https` endpoints (or `http` on loopback), never follow
//! redirects, and never pass through [`TokenRefresh`](crate::TokenRefresh)
//! even when the [`HttpClient`] you give is wrapped in it.
//!
//! # Example
//!
//! A token endpoint and an API, through the layer:
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Empty;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{BoxError, ServiceBuilder, ServiceExt};
//! use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};
//! use tower_token_refresh::{TokenCache, TokenRefreshLayer};
//!
//! # async fn run() -> Result<(), BoxError> {
//! let source = ClientCredentials::builder(
//!     "https://idp.example.com/oauth2/token",
//!     "my-service",
//!     ClientAuth::basic(std::env::var("CLIENT_SECRET")?),
//! )
//! .scope("orders:read")
//! .build()?;
//!
//! let api = ServiceBuilder::new()
//!     .layer(TokenRefreshLayer::new(TokenCache::new(source)))
//!     .service(Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>());
//! let response = api
//!     .oneshot(http::Request::get("http://127.0.0.1:8080/orders").body(Empty::new())?)
//!     .await?;
//! # Ok(())
//! # }
//! ```

mod builder;
mod client_auth;
mod client_credentials;
mod credential_source;
mod discovery;
pub(crate) mod endpoint;
mod error;
mod form;
mod http_client;
#[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
mod jwt_bearer;
mod refresh_token;
#[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
mod signing;
mod token_client;
mod token_exchange;
pub(crate) mod token_response;

pub use crate::Secret;
pub use builder::{DEFAULT_REQUEST_TIMEOUT, SourceBuilder};
pub use client_auth::ClientAuth;
pub use client_credentials::ClientCredentials;
pub use discovery::{Discovery, ProviderMetadata};
pub use endpoint::MAX_RESPONSE_BYTES;
pub use error::{Error, ErrorCode, ErrorKind};
pub use http_client::HttpClient;
#[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))))]
pub use jsonwebtoken::Algorithm;
#[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))))]
pub use jwt_bearer::{DEFAULT_ASSERTION_LIFETIME, JwtBearerConfig, JwtBearerGrant};
pub use refresh_token::{RefreshTokenConfig, RefreshTokenGrant};
#[cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "rust-crypto", feature = "aws-lc-rs"))))]
pub use signing::SigningKey;
pub use token_exchange::{TokenExchange, TokenExchangeConfig, token_type};

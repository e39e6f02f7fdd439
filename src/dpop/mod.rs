//! Sender-constrained tokens: DPoP (RFC 9449), with server nonces (feature
//! `dpop`).
//!
//! A bearer token works for whoever holds it. A DPoP-bound token is bound to
//! a key the client holds ([`DpopKey`]), and every request that presents it
//! carries a fresh proof signed with that key: a stolen token is useless
//! without the key.
//!
//! - **Token requests.** Give the key to an OAuth 2.0 source
//!   ([`SourceBuilder::dpop`](crate::oauth2::SourceBuilder::dpop)): each
//!   token request carries a proof (`htm`, `htu` = the token endpoint,
//!   `iat`, a unique `jti`, the server's `nonce` once it gave one). A
//!   `400 {"error":"use_dpop_nonce"}` with a `DPoP-Nonce` is answered by one
//!   more request with that nonce, within the same fetch (no failure, no
//!   backoff). A `token_type` of `DPoP` makes the token DPoP-bound; a server
//!   that answers `Bearer` gets a bearer token used as one (a warning says so
//!   once per source).
//! - **Requests.** [`TokenRefresh`](crate::TokenRefresh) sends a bound
//!   token as `Authorization: DPoP <token>` with a `DPoP` proof for that
//!   request (`htm`, `htu`, `ath` = the token's hash, the origin's nonce).
//!   A `401` with `WWW-Authenticate: DPoP error="use_dpop_nonce"` and a
//!   `DPoP-Nonce` is **not** a token rejection: the nonce is kept for that
//!   origin, the token stays, and (when the layer
//!   [retries](crate::TokenRefreshLayer::retry_rejected) and the body can
//!   be replayed) the request is sent once more with a new proof. A
//!   `DPoP-Nonce` on any response replaces the origin's nonce. A `401` with
//!   `error="invalid_token"` is a rejection as for bearer tokens.
//! - **Nonces** are kept per origin, for at most 64 origins, and never
//!   logged.
//! - **Stores.** A DPoP-bound token is useless without its key, and a key
//!   is never written to a store: a cache never saves a bound token in its
//!   [store](crate::store). Each process has its own key and its own tokens;
//!   a fleet that must share tokens shares the key by configuration
//!   ([`DpopKey::from_pem`]) and fetches per process.
//! - **Cost.** A proof is a signature per request (ES256 by default; EdDSA
//!   is faster, RS256 much slower): see `benches/README.md`. The header,
//!   `jwk` and the token's `ath` are computed once, not per request.
//!
//! # Example
//!
//! ```no_run
//! use tower_token_refresh::dpop::{DpopAlgorithm, DpopKey};
//! use tower_token_refresh::oauth2::{ClientAuth, ClientCredentials};
//! use tower_token_refresh::{TokenCache, TokenRefreshLayer};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = DpopKey::generate(DpopAlgorithm::ES256)?;
//! let source = ClientCredentials::builder(
//!     "https://idp.example.com/oauth2/token",
//!     "my-service",
//!     ClientAuth::basic(std::env::var("CLIENT_SECRET")?),
//! )
//! .dpop(key)
//! .build()?;
//! // Retrying lets a nonce challenge be answered on the spot.
//! let layer = TokenRefreshLayer::new(TokenCache::new(source)).retry_rejected();
//! # Ok(())
//! # }
//! ```

mod binding;
mod htu;
mod key;
mod nonces;

use binding::DpopBinding;
pub(crate) use binding::keep_nonce;
pub(crate) use htu::htu;
pub use key::{DpopAlgorithm, DpopKey, DpopKeyError};
pub use nonces::{MAX_NONCE_BYTES, MAX_ORIGINS};

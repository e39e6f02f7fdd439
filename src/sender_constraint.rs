//! [`SenderConstraint`]: what a token bound to a key needs on each request,
//! such as a DPoP proof (RFC 9449).

use std::fmt;
use std::num::NonZeroU32;

use http::{HeaderMap, Method, StatusCode, Uri};

use crate::BoxError;

/// What a sender-constrained token needs on each request: a token bound to
/// a key the client holds is useless to whoever steals it, because each
/// request must also carry a proof that only the key's holder can make.
///
/// A [`Token`](crate::Token) carries one when its source made it
/// [bound](crate::Token::with_sender_constraint) (the `dpop` feature's
/// sources do). [`TokenRefresh`](crate::TokenRefresh) then sends the token
/// as `Authorization: <scheme> <token>`, asks for a proof for every
/// request, and lets the constraint read every response, so that a server's
/// challenge to prove again (a DPoP nonce) is answered by sending the
/// request once more rather than taken for a rejected token.
///
/// The proof is made per request, so this is not the bearer hot path: a
/// cache of bearer tokens never calls any of this.
pub trait SenderConstraint: fmt::Debug + Send + Sync + 'static {
    /// The `Authorization` scheme the token is sent with (`DPoP`).
    fn scheme(&self) -> &'static str;

    /// Adds the proof for a request with `method` to `uri` (an absolute
    /// URI, of origin `origin`) to its `headers`.
    ///
    /// # Errors
    ///
    /// When no proof can be made: the request then fails with this error,
    /// and is not sent.
    fn prove(
        &self,
        method: &Method,
        uri: &Uri,
        origin: OriginId,
        headers: &mut HeaderMap,
    ) -> Result<(), BoxError>;

    /// Reads the head of the response to a request that went to `origin`
    /// with a proof: keeps what it teaches (a new nonce), and says whether
    /// it asks for the request to be sent again with a new proof.
    fn answered(&self, origin: OriginId, status: StatusCode, headers: &HeaderMap) -> Challenge;
}

/// What a response to a request sent with a proof asks for; see
/// [`SenderConstraint::answered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Challenge {
    /// Nothing: judge the response as any other (a rejection of the token
    /// is still a rejection).
    None,
    /// Send the request again with a new proof (with the same token): the
    /// server challenged the proof, not the token. Sent again at most once,
    /// when the layer [retries](crate::TokenRefreshLayer::retry_rejected)
    /// and the body can be replayed; otherwise the response goes to the
    /// caller, and the next request carries the new proof.
    ProveAgain,
}

/// The origin (scheme, host and port) of a request sent with a proof, as a
/// 32-bit hash: what a [`SenderConstraint`] keeps per-origin state (a
/// nonce) by. The host is compared without regard to case and a default
/// port is the same as none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OriginId(NonZeroU32);

impl OriginId {
    /// The origin of an absolute `http` or `https` URI; `None` for a
    /// relative one or another scheme.
    ///
    /// ```
    /// use tower_token_refresh::OriginId;
    ///
    /// let id = |uri: &str| OriginId::of(&uri.parse().unwrap());
    /// assert_eq!(id("https://API.example.com/a?b"), id("https://api.example.com:443/c"));
    /// assert_ne!(id("https://api.example.com/"), id("http://api.example.com/"));
    /// assert_eq!(id("/relative"), None);
    /// ```
    pub fn of(uri: &Uri) -> Option<Self> {
        let scheme = uri.scheme_str()?;
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let authority = uri.authority()?;
        let port = authority.port_u16().unwrap_or(default_port);
        // FNV-1a, 32 bits: a collision would share a nonce between two
        // origins, which only costs a nonce challenge.
        let mut hash = 0x811c_9dc5_u32;
        let bytes = scheme
            .bytes()
            .chain([b':'])
            .chain(
                authority
                    .host()
                    .bytes()
                    .map(|byte| byte.to_ascii_lowercase()),
            )
            .chain(port.to_be_bytes());
        for byte in bytes {
            hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
        }
        Some(Self(NonZeroU32::new(hash).unwrap_or(NonZeroU32::MIN)))
    }

    /// The hash.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

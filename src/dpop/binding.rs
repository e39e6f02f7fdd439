//! [`DpopBinding`]: how a DPoP-bound token is presented: a proof per
//! request, and the resource servers' nonces.

use std::sync::Arc;

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};

use super::DpopKey;
use super::htu::htu;
use super::key::access_token_hash;
use crate::{BoxError, Challenge, OriginId, SenderConstraint};

/// The `DPoP` request header (a proof) and the `DPoP-Nonce` response header.
pub(crate) static DPOP: HeaderName = HeaderName::from_static("dpop");
pub(crate) static DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// A DPoP-bound token's [`SenderConstraint`]: the key, and the token's
/// `ath`, computed once per token.
pub(crate) struct DpopBinding {
    key: DpopKey,
    ath: String,
}

/// The key only: `ath` identifies the token.
impl std::fmt::Debug for DpopBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopBinding")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl DpopBinding {
    /// The constraint of `token`, bound to `key`.
    pub(crate) fn new(key: DpopKey, token: &str) -> Arc<Self> {
        Arc::new(Self {
            key,
            ath: access_token_hash(token),
        })
    }
}

impl SenderConstraint for DpopBinding {
    fn scheme(&self) -> &'static str {
        "DPoP"
    }

    fn prove(
        &self,
        method: &Method,
        uri: &Uri,
        origin: OriginId,
        headers: &mut HeaderMap,
    ) -> Result<(), BoxError> {
        let htu = htu(uri).ok_or("the request's URI is not an absolute http(s) URI")?;
        let nonce = self.key.nonces().get(origin);
        let proof = self
            .key
            .proof(method.as_str(), &htu, Some(&self.ath), nonce.as_deref())?;
        let mut value = HeaderValue::try_from(proof)?;
        value.set_sensitive(true);
        headers.insert(DPOP.clone(), value);
        Ok(())
    }

    fn answered(&self, origin: OriginId, status: StatusCode, headers: &HeaderMap) -> Challenge {
        let kept = keep_nonce(&self.key, origin, headers);
        // HTTP says it with 401; gRPC with `UNAUTHENTICATED` (16), in the
        // headers of a trailers-only response or in the trailers.
        let unauthorized = status == StatusCode::UNAUTHORIZED
            || headers.get("grpc-status").map(HeaderValue::as_bytes) == Some(b"16");
        if kept && unauthorized && asks_for_nonce(headers) {
            Challenge::ProveAgain
        } else {
            Challenge::None
        }
    }
}

/// Keeps the `DPoP-Nonce` of a response from `origin`, if it has a valid
/// one; says whether it had.
pub(crate) fn keep_nonce(key: &DpopKey, origin: OriginId, headers: &HeaderMap) -> bool {
    headers
        .get(&DPOP_NONCE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|nonce| key.nonces().set(origin, nonce))
}

/// Whether a resource server's `WWW-Authenticate` has a `DPoP` challenge
/// with `error="use_dpop_nonce"` (RFC 9449 §9).
fn asks_for_nonce(headers: &HeaderMap) -> bool {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| {
            let value = value.to_ascii_lowercase();
            let dpop_challenge =
                value.starts_with("dpop ") || value.contains(", dpop ") || value.contains(",dpop ");
            dpop_challenge
                && (value.contains("error=\"use_dpop_nonce\"")
                    || value.contains("error=use_dpop_nonce"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_challenge_is_told_from_a_rejection() {
        let key = DpopKey::generate(super::super::DpopAlgorithm::ES256).unwrap();
        let binding = DpopBinding::new(key.clone(), "token");
        let origin = OriginId::of(&"https://api.example.com/".parse().unwrap()).unwrap();
        let headers = |pairs: &[(&str, &str)]| -> HeaderMap {
            pairs
                .iter()
                .map(|(name, value)| {
                    (
                        HeaderName::from_bytes(name.as_bytes()).unwrap(),
                        HeaderValue::from_str(value).unwrap(),
                    )
                })
                .collect()
        };
        let nonce_challenge = headers(&[
            (
                "www-authenticate",
                r#"DPoP error="use_dpop_nonce", error_description="nonce""#,
            ),
            ("dpop-nonce", "n-1"),
        ]);
        assert_eq!(
            binding.answered(origin, StatusCode::UNAUTHORIZED, &nonce_challenge),
            Challenge::ProveAgain
        );
        assert_eq!(key.nonces().get(origin).as_deref(), Some("n-1"));

        let invalid_token = headers(&[
            ("www-authenticate", r#"DPoP error="invalid_token""#),
            ("dpop-nonce", "n-2"),
        ]);
        assert_eq!(
            binding.answered(origin, StatusCode::UNAUTHORIZED, &invalid_token),
            Challenge::None
        );
        assert_eq!(
            key.nonces().get(origin).as_deref(),
            Some("n-2"),
            "kept anyway"
        );

        // No (valid) nonce to prove with: nothing to try again with.
        let without_nonce = headers(&[("www-authenticate", r#"DPoP error="use_dpop_nonce""#)]);
        assert_eq!(
            binding.answered(origin, StatusCode::UNAUTHORIZED, &without_nonce),
            Challenge::None
        );
        let ok = headers(&[("dpop-nonce", "n-3")]);
        assert_eq!(
            binding.answered(origin, StatusCode::OK, &ok),
            Challenge::None
        );
        assert_eq!(key.nonces().get(origin).as_deref(), Some("n-3"));
    }
}

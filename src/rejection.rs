//! Which responses say the server rejected the token: [`ClassifyRejection`]
//! and the default, [`StandardRejection`].

use std::fmt;
use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{HeaderMap, StatusCode};

/// gRPC status code `UNAUTHENTICATED`.
const GRPC_UNAUTHENTICATED: &[u8] = b"16";

/// Decides which responses mean "the server rejected this token".
///
/// A rejection makes [`TokenRefresh`](crate::TokenRefresh) drop the token
/// from the cache (if it is still the current one) and, when the request can
/// be replayed, send it once more with a new token.
///
/// Implemented by [`StandardRejection`] (the default) and by closures
/// `Fn(StatusCode, &HeaderMap) -> bool`, which see the response's status and
/// headers (never its body). Rejections that arrive in gRPC trailers are
/// judged by [`rejects_trailers`](ClassifyRejection::rejects_trailers), which
/// by default looks for `grpc-status: 16`.
///
/// # Example
///
/// An API that answers `403 Forbidden` for an expired token:
///
/// ```
/// use http::StatusCode;
/// use tower_token_refresh::{StandardRejection, TokenCache, TokenRefreshLayer};
/// # let cache = TokenCache::new(|| async {
/// #     Ok::<_, tower_token_refresh::BoxError>(tower_token_refresh::Token::bearer("t"))
/// # });
///
/// let layer = TokenRefreshLayer::new(cache.clone())
///     .rejection(StandardRejection::new().or_status(StatusCode::FORBIDDEN));
///
/// // Or decide yourself from the status and headers:
/// let layer = TokenRefreshLayer::new(cache).rejection(|status: StatusCode, headers: &http::HeaderMap| {
///     status == StatusCode::UNAUTHORIZED && headers.contains_key("www-authenticate")
/// });
/// ```
pub trait ClassifyRejection: Clone + Send + Sync + 'static {
    /// Whether a response with this status and these headers rejects the
    /// token it was sent with.
    fn rejects(&self, status: StatusCode, headers: &HeaderMap) -> bool;

    /// Whether the trailers of a gRPC response reject the token (a
    /// streaming call that fails after it started). Defaults to
    /// `grpc-status: 16` (`UNAUTHENTICATED`).
    fn rejects_trailers(&self, trailers: &HeaderMap) -> bool {
        grpc_unauthenticated(trailers)
    }

    /// [`rejects`](Self::rejects), for a response whose `content-type` the
    /// middleware has already looked up, so that an implementation that
    /// needs it (such as [`StandardRejection`]) does not look it up again.
    /// Its argument cannot be named outside this crate: not meant to be
    /// implemented elsewhere, and the same as `rejects` unless it is.
    #[doc(hidden)]
    #[inline]
    fn rejects_head(&self, head: sealed::ResponseHead<'_>) -> bool {
        self.rejects(head.status, head.headers)
    }
}

pub(crate) use sealed::ResponseHead;

mod sealed {
    use http::{HeaderMap, StatusCode};

    /// A response's status and headers, and whether it is gRPC.
    #[derive(Debug, Clone, Copy)]
    pub struct ResponseHead<'a> {
        pub(crate) status: StatusCode,
        pub(crate) headers: &'a HeaderMap,
        /// `content-type: application/grpc…` ([`super::is_grpc`]).
        pub(crate) grpc: bool,
    }
}

/// The default [`ClassifyRejection`]: `401 Unauthorized`, and gRPC
/// `UNAUTHENTICATED` (`grpc-status: 16` in the headers of a
/// `content-type: application/grpc…` response, or in its trailers), plus any
/// status added with [`or_status`](StandardRejection::or_status).
#[derive(Clone)]
pub struct StandardRejection {
    also: Arc<[StatusCode]>,
}

impl StandardRejection {
    /// 401 and gRPC `UNAUTHENTICATED`.
    pub fn new() -> Self {
        Self { also: Arc::new([]) }
    }

    /// Also treats `status` as a rejection (some APIs answer `403 Forbidden`
    /// for an expired token).
    pub fn or_status(self, status: StatusCode) -> Self {
        let mut also = self.also.to_vec();
        also.push(status);
        Self { also: also.into() }
    }
}

impl Default for StandardRejection {
    fn default() -> Self {
        Self::new()
    }
}

impl ClassifyRejection for StandardRejection {
    #[inline]
    fn rejects(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        status == StatusCode::UNAUTHORIZED
            || (is_grpc(headers) && grpc_unauthenticated(headers))
            || self.also.contains(&status)
    }

    #[inline]
    fn rejects_head(&self, head: sealed::ResponseHead<'_>) -> bool {
        head.status == StatusCode::UNAUTHORIZED
            || (head.grpc && grpc_unauthenticated(head.headers))
            || self.also.contains(&head.status)
    }
}

impl fmt::Debug for StandardRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardRejection")
            .field("also", &self.also)
            .finish()
    }
}

impl<F> ClassifyRejection for F
where
    F: Fn(StatusCode, &HeaderMap) -> bool + Clone + Send + Sync + 'static,
{
    fn rejects(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        self(status, headers)
    }
}

/// Whether a response is gRPC (`content-type: application/grpc…`).
#[inline]
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// The gRPC status code in headers or trailers, if any.
#[inline]
pub(crate) fn grpc_status(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get("grpc-status").map(|value| value.as_bytes())
}

/// Whether headers or trailers carry `grpc-status: 16`.
#[inline]
fn grpc_unauthenticated(headers: &HeaderMap) -> bool {
    grpc_status(headers) == Some(GRPC_UNAUTHENTICATED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn standard_rejections() {
        let standard = StandardRejection::new();
        assert!(standard.rejects(StatusCode::UNAUTHORIZED, &HeaderMap::new()));
        assert!(!standard.rejects(StatusCode::FORBIDDEN, &HeaderMap::new()));
        assert!(!standard.rejects(StatusCode::OK, &HeaderMap::new()));

        let grpc = headers(&[
            ("content-type", "application/grpc+proto"),
            ("grpc-status", "16"),
        ]);
        assert!(standard.rejects(StatusCode::OK, &grpc));
        let other_status = headers(&[("content-type", "application/grpc"), ("grpc-status", "7")]);
        assert!(!standard.rejects(StatusCode::OK, &other_status));
        let not_grpc = headers(&[("content-type", "application/json"), ("grpc-status", "16")]);
        assert!(!standard.rejects(StatusCode::OK, &not_grpc));

        assert!(standard.rejects_trailers(&headers(&[("grpc-status", "16")])));
        assert!(!standard.rejects_trailers(&headers(&[("grpc-status", "0")])));

        let with_forbidden = standard.or_status(StatusCode::FORBIDDEN);
        assert!(with_forbidden.rejects(StatusCode::FORBIDDEN, &HeaderMap::new()));
        assert!(with_forbidden.rejects(StatusCode::UNAUTHORIZED, &HeaderMap::new()));
    }

    #[test]
    fn judging_with_a_known_content_type_agrees_with_rejects() {
        let cases = [
            headers(&[]),
            headers(&[("content-type", "application/json")]),
            headers(&[("content-type", "application/json"), ("grpc-status", "16")]),
            headers(&[("content-type", "application/grpc"), ("grpc-status", "16")]),
            headers(&[
                ("content-type", "application/grpc+proto"),
                ("grpc-status", "0"),
            ]),
            headers(&[("content-type", "application/grpc")]),
        ];
        let statuses = [
            StatusCode::OK,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::INTERNAL_SERVER_ERROR,
        ];
        let teapot = |status: StatusCode, _: &HeaderMap| status == StatusCode::IM_A_TEAPOT;
        for classifier in [
            StandardRejection::new(),
            StandardRejection::new().or_status(StatusCode::FORBIDDEN),
        ] {
            for headers in &cases {
                for status in statuses {
                    let head = ResponseHead {
                        status,
                        headers,
                        grpc: is_grpc(headers),
                    };
                    assert_eq!(
                        classifier.rejects_head(head),
                        classifier.rejects(status, headers),
                        "{status} {headers:?}"
                    );
                    assert_eq!(teapot.rejects_head(head), teapot.rejects(status, headers));
                }
            }
        }
    }

    #[test]
    fn closures_classify() {
        let teapot = |status: StatusCode, _: &HeaderMap| status == StatusCode::IM_A_TEAPOT;
        assert!(teapot.rejects(StatusCode::IM_A_TEAPOT, &HeaderMap::new()));
        assert!(!teapot.rejects(StatusCode::UNAUTHORIZED, &HeaderMap::new()));
        assert!(teapot.rejects_trailers(&headers(&[("grpc-status", "16")])));
    }
}

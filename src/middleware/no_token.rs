//! [`NoToken`]: a request extension that keeps the token off one request.

/// A request extension that tells [`TokenRefresh`](crate::TokenRefresh) to
/// send this request as it is: no token is added (an `Authorization` header
/// it has stays), its response is not judged, and it is never retried.
///
/// Set it on token requests sent through a client that is itself wrapped in
/// the layer, so that a request for a token never carries one (or waits for
/// one). The crate's own [OAuth 2.0 sources](crate::oauth2) set it on every
/// request they send.
///
/// ```
/// use http::Request;
/// use tower_token_refresh::NoToken;
///
/// let mut request = Request::post("https://idp.example.com/token").body(())?;
/// request.extensions_mut().insert(NoToken);
/// # Ok::<(), http::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoToken;

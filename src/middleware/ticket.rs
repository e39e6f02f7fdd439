//! [`Ticket`]: which token a request was sent with.

use http::header::AUTHORIZATION;
use http::{HeaderMap, Request};

use crate::cache::Credential;

/// The route a request was sent on and the generation of its token, so that
/// a rejection drops that token only if it is still the current one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(crate) route: usize,
    pub(crate) generation: u64,
}

impl Ticket {
    /// Puts `credential` of route `route` into `request` (replacing any
    /// `Authorization` it had), and returns the ticket it goes out with.
    #[inline]
    pub(crate) fn authorize<B>(
        request: &mut Request<B>,
        credential: Credential,
        route: usize,
    ) -> Self {
        Self::authorize_headers(request.headers_mut(), credential, route)
    }

    /// [`authorize`](Self::authorize) for a request of which only the
    /// headers are at hand (reqwest's).
    #[inline]
    pub(crate) fn authorize_headers(
        headers: &mut HeaderMap,
        credential: Credential,
        route: usize,
    ) -> Self {
        headers.insert(AUTHORIZATION, credential.header);
        Self {
            route,
            generation: credential.generation,
        }
    }
}

//! [`Ticket`]: which token a request was sent with.

use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, Request, Uri};

use crate::cache::Credential;
use crate::{Error, OriginId, SenderConstraint};

/// The route a request was sent on, the generation of its token (so that a
/// rejection drops that token only if it is still the current one) and,
/// for a token bound to a key, the origin its proof was made for (so that
/// the response is read for that origin).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(crate) route: usize,
    pub(crate) generation: u64,
    pub(crate) proven_for: Option<OriginId>,
}

impl Ticket {
    /// Puts `credential` of route `route` into `request` (replacing any
    /// `Authorization` it had), with a proof if the token is bound to a
    /// key, and returns the ticket it goes out with.
    ///
    /// # Errors
    ///
    /// When a bound token's proof cannot be made: the request must not go.
    #[inline]
    pub(crate) fn authorize<B>(
        request: &mut Request<B>,
        credential: Credential,
        route: usize,
    ) -> Result<Self, Error> {
        if credential.constraint.is_none() {
            return Ok(Self::bearer(request.headers_mut(), credential, route));
        }
        let (method, uri) = (request.method().clone(), request.uri().clone());
        Self::authorize_headers(
            request.headers_mut(),
            credential,
            route,
            Some((&method, &uri)),
        )
    }

    /// [`authorize`](Self::authorize) for a request of which only the
    /// headers are at hand (reqwest's), with its method and URI if the
    /// token is bound to a key (`None` then if the URI is not usable).
    #[inline]
    pub(crate) fn authorize_headers(
        headers: &mut HeaderMap,
        credential: Credential,
        route: usize,
        target: Option<(&Method, &Uri)>,
    ) -> Result<Self, Error> {
        match credential.constraint.clone() {
            None => Ok(Self::bearer(headers, credential, route)),
            Some(constraint) => Self::prove(&*constraint, target, headers, credential, route),
        }
    }

    #[inline]
    fn bearer(headers: &mut HeaderMap, credential: Credential, route: usize) -> Self {
        headers.insert(AUTHORIZATION, credential.header);
        Self {
            route,
            generation: credential.generation,
            proven_for: None,
        }
    }

    /// A bound token, with the proof for this request.
    #[cold]
    #[inline(never)]
    fn prove(
        constraint: &dyn SenderConstraint,
        target: Option<(&Method, &Uri)>,
        headers: &mut HeaderMap,
        credential: Credential,
        route: usize,
    ) -> Result<Self, Error> {
        let target = target.and_then(|(method, uri)| Some((method, uri, OriginId::of(uri)?)));
        let (method, uri, origin) = target.ok_or_else(|| {
            Error::proof(
                "the request's URI is not absolute (scheme and host are needed for the proof; \
                 with tonic, create the client with `with_origin`)",
            )
        })?;
        constraint
            .prove(method, uri, origin, headers)
            .map_err(Error::proof)?;
        headers.insert(AUTHORIZATION, credential.header);
        Ok(Self {
            route,
            generation: credential.generation,
            proven_for: Some(origin),
        })
    }
}

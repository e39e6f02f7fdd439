//! [`Ticket`]: which token a request was sent with.

use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, Request, Uri};

use crate::cache::{Constraint, Credential};
use crate::{Error, OriginId, SenderConstraint};

/// The route a request was sent on, the generation of its token (so that a
/// rejection drops that token only if it is still the current one) and,
/// for a token bound to a key, the origin its proof was made for (so that
/// the response is read for that origin).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(crate) generation: u64,
    /// The route's index (there are never 2^32 routes), kept in 32 bits so
    /// that a ticket stays two words: it travels in every response future.
    route: u32,
    pub(crate) proven_for: Option<OriginId>,
}

impl Ticket {
    #[inline]
    fn new(route: usize, generation: u64, proven_for: Option<OriginId>) -> Self {
        Self {
            generation,
            route: u32::try_from(route).unwrap_or(u32::MAX),
            proven_for,
        }
    }

    /// The route the request was sent on.
    #[inline]
    pub(crate) fn route(&self) -> usize {
        self.route as usize
    }

    /// Puts `credential` of route `route` into `request` (replacing any
    /// `Authorization` it had), with a proof if the token is bound to a key
    /// (`constraint`: the bearer hot path passes `None`), and returns the
    /// ticket it goes out with.
    ///
    /// # Errors
    ///
    /// When a bound token's proof cannot be made: the request must not go.
    #[inline]
    pub(crate) fn authorize<B>(
        request: &mut Request<B>,
        credential: Credential,
        constraint: Constraint,
        route: usize,
    ) -> Result<Self, Error> {
        match constraint {
            None => Ok(Self::bearer(request.headers_mut(), credential, route)),
            Some(constraint) => Self::prove_request(request, constraint, credential, route),
        }
    }

    /// [`authorize`](Self::authorize) for a request of which only the
    /// headers are at hand (reqwest's), with its method and URI if the
    /// token is bound to a key (`None` then if the URI is not usable).
    #[cfg(feature = "reqwest-middleware")]
    #[inline]
    pub(crate) fn authorize_headers(
        headers: &mut HeaderMap,
        credential: Credential,
        constraint: Constraint,
        route: usize,
        target: Option<(&Method, &Uri)>,
    ) -> Result<Self, Error> {
        match constraint {
            None => Ok(Self::bearer(headers, credential, route)),
            Some(constraint) => Self::prove(&*constraint, target, headers, credential, route),
        }
    }

    /// A bearer token: its header, nothing more.
    #[inline]
    pub(crate) fn bearer(headers: &mut HeaderMap, credential: Credential, route: usize) -> Self {
        headers.insert(AUTHORIZATION, credential.header);
        Self::new(route, credential.generation, None)
    }

    /// [`authorize`](Self::authorize) of a bound token: off the bearer path.
    #[cold]
    #[inline(never)]
    fn prove_request<B>(
        request: &mut Request<B>,
        constraint: std::sync::Arc<dyn SenderConstraint>,
        credential: Credential,
        route: usize,
    ) -> Result<Self, Error> {
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let target = Some((&method, &uri));
        Self::prove(
            &*constraint,
            target,
            request.headers_mut(),
            credential,
            route,
        )
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
        Ok(Self::new(route, credential.generation, Some(origin)))
    }
}

//! Which requests get which token: [`Origin`] and [`TokenRoutes`].

use std::fmt;

use http::Uri;

use crate::TokenCache;

/// A URL origin: scheme, host and port (`https://api.example.com:443`).
///
/// Requests whose URI is absolute match by origin; the port defaults to the
/// scheme's (80 for `http`, 443 for `https`), and the host is compared
/// without regard to case.
///
/// ```
/// use tower_token_refresh::Origin;
///
/// let origin = Origin::parse("https://API.example.com")?;
/// assert_eq!(origin.to_string(), "https://api.example.com:443");
/// assert!(Origin::parse("https://api.example.com/with/a/path").is_err());
/// # Ok::<(), tower_token_refresh::InvalidOrigin>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

/// An origin that could not be parsed; see [`Origin::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOrigin(&'static str);

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid origin: {}", self.0)
    }
}

impl std::error::Error for InvalidOrigin {}

impl Origin {
    /// Parses `scheme://host[:port]` (a trailing `/` is allowed; a path,
    /// query or credentials are not).
    ///
    /// # Errors
    ///
    /// If `origin` is not of that form, or its scheme is not `http` or
    /// `https`.
    pub fn parse(origin: &str) -> Result<Self, InvalidOrigin> {
        let uri: Uri = origin.parse().map_err(|_| InvalidOrigin("not a URL"))?;
        let origin = Self::of(&uri).ok_or(InvalidOrigin("expected scheme://host[:port]"))?;
        if uri
            .path_and_query()
            .is_some_and(|path| path.as_str() != "/")
        {
            return Err(InvalidOrigin("an origin has no path or query"));
        }
        if uri
            .authority()
            .is_some_and(|authority| authority.as_str().contains('@'))
        {
            return Err(InvalidOrigin("an origin has no credentials"));
        }
        Ok(origin)
    }

    /// The origin of an absolute `http`/`https` URI.
    fn of(uri: &Uri) -> Option<Self> {
        let (scheme, authority) = (uri.scheme_str()?, uri.authority()?);
        let default = default_port(scheme)?;
        Some(Self {
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(default),
            scheme: scheme.to_ascii_lowercase(),
        })
    }

    /// Whether the absolute `uri` is on this origin (without allocating: it
    /// runs for every request of a routed layer).
    fn matches(&self, uri: &Uri) -> bool {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(&self.scheme)
            && authority.host().eq_ignore_ascii_case(&self.host)
            && authority.port_u16().or_else(|| default_port(scheme)) == Some(self.port)
    }
}

/// The port of `http` and `https` URIs that name none; `None` for other
/// schemes.
fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else {
        None
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl std::str::FromStr for Origin {
    type Err = InvalidOrigin;

    fn from_str(origin: &str) -> Result<Self, InvalidOrigin> {
        Self::parse(origin)
    }
}

/// Which requests a route serves.
#[derive(Debug, Clone)]
enum Matcher {
    /// Every request.
    Any,
    /// Absolute URIs on this origin.
    Origin(Origin),
    /// Relative URIs (`/path`): requests whose destination the inner service
    /// decides, such as a tonic `Channel`'s. Not an authority-form URI
    /// (`host:port`, as a `CONNECT` has), which names its destination.
    Relative,
}

impl Matcher {
    #[inline]
    fn matches(&self, uri: &Uri) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::Origin(origin) => origin.matches(uri),
            Matcher::Relative => uri.scheme().is_none() && uri.authority().is_none(),
        }
    }
}

/// Tokens for several destinations through one client: each request gets
/// the token of the first route that matches its URI, and a request that
/// matches none goes out without a token (and is never retried).
///
/// Used with [`TokenRefreshLayer::routes`](crate::TokenRefreshLayer::routes).
///
/// ```
/// use tower_token_refresh::{BoxError, Origin, Token, TokenCache, TokenRefreshLayer, TokenRoutes};
///
/// # fn cache(name: &'static str) -> TokenCache {
/// #     TokenCache::new(move || async move { Ok::<_, BoxError>(Token::bearer(name)) })
/// # }
/// # fn main() -> Result<(), tower_token_refresh::InvalidOrigin> {
/// let (orders, billing) = (cache("orders"), cache("billing"));
/// let layer = TokenRefreshLayer::routes(
///     TokenRoutes::new()
///         .route(Origin::parse("https://orders.example.com")?, orders)
///         .route(Origin::parse("https://billing.example.com")?, billing),
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct TokenRoutes {
    routes: Vec<(Matcher, TokenCache)>,
}

impl TokenRoutes {
    /// No routes yet: every request would go without a token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests to `origin` get tokens from `cache`.
    pub fn route(mut self, origin: Origin, cache: TokenCache) -> Self {
        self.routes.push((Matcher::Origin(origin), cache));
        self
    }

    /// Requests with a relative URI (`/path`, as tonic's generated clients
    /// send them to a `Channel`) get tokens from `cache`.
    pub fn relative(mut self, cache: TokenCache) -> Self {
        self.routes.push((Matcher::Relative, cache));
        self
    }

    /// Every request, whatever its URI, gets tokens from `cache`.
    pub(crate) fn all(cache: TokenCache) -> Self {
        Self {
            routes: vec![(Matcher::Any, cache)],
        }
    }

    /// Restricts the routes to `origins` (and relative URIs): a route that
    /// serves every request serves only those, and a route for another
    /// origin is dropped. Never widens: restricting twice keeps the origins
    /// in both lists.
    pub(crate) fn only_to(self, origins: Vec<Origin>) -> Self {
        let mut routes = Vec::new();
        for (matcher, cache) in self.routes {
            match matcher {
                Matcher::Any => {
                    routes.extend(
                        origins
                            .iter()
                            .map(|origin| (Matcher::Origin(origin.clone()), cache.clone())),
                    );
                    routes.push((Matcher::Relative, cache));
                }
                Matcher::Origin(origin) if !origins.contains(&origin) => {}
                other => routes.push((other, cache)),
            }
        }
        Self { routes }
    }

    /// The route for `uri`: its index and cache.
    #[inline]
    pub(crate) fn select(&self, uri: &Uri) -> Option<(usize, &TokenCache)> {
        // The default layer's single catch-all route (or any list that
        // starts with one): no need to look at the URI.
        if let Some((Matcher::Any, cache)) = self.routes.first() {
            return Some((0, cache));
        }
        self.select_by_uri(uri)
    }

    /// [`select`](Self::select) for routes that depend on the URI.
    fn select_by_uri(&self, uri: &Uri) -> Option<(usize, &TokenCache)> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, (matcher, _))| matcher.matches(uri))
            .map(|(index, (_, cache))| (index, cache))
    }

    /// The cache of route `index`.
    pub(crate) fn cache(&self, index: usize) -> Option<&TokenCache> {
        self.routes.get(index).map(|(_, cache)| cache)
    }

    /// The only cache, if every route uses the same one.
    pub(crate) fn single(&self) -> Option<&TokenCache> {
        let (_, first) = self.routes.first()?;
        self.routes
            .iter()
            .all(|(_, cache)| cache.same_as(first))
            .then_some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BoxError, Token};

    fn cache() -> TokenCache {
        TokenCache::new(|| async { Ok::<_, BoxError>(Token::bearer("t")) })
    }

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    #[test]
    fn origins_match_scheme_host_and_port() {
        let origin = Origin::parse("https://api.example.com").unwrap();
        assert!(origin.matches(&uri("https://api.example.com/v1/items?x=1")));
        assert!(origin.matches(&uri("https://API.Example.com:443/")));
        assert!(origin.matches(&uri("HTTPS://api.example.com/")));
        assert!(!origin.matches(&uri("http://api.example.com/")));
        assert!(!origin.matches(&uri("https://api.example.com:8443/")));
        assert!(!origin.matches(&uri("https://api.example.com.evil.net/")));
        assert!(!origin.matches(&uri("https://evil.net/api.example.com")));
        assert!(!origin.matches(&uri("/relative")));
        assert_eq!(
            Origin::parse("http://[::1]:8080/").unwrap().to_string(),
            "http://[::1]:8080"
        );
        assert!(Origin::parse("ftp://example.com").is_err());
        assert!(Origin::parse("ftp://example.com:21").is_err());
        assert!(Origin::parse("https://user:pw@example.com").is_err());
        assert!(Origin::parse("example.com").is_err());
    }

    #[test]
    fn routes_pick_the_first_match_and_nothing_otherwise() {
        let routes = TokenRoutes::new()
            .route(Origin::parse("https://a.example").unwrap(), cache())
            .route(Origin::parse("https://b.example").unwrap(), cache())
            .relative(cache());
        assert_eq!(
            routes.select(&uri("https://a.example/x")).map(|(i, _)| i),
            Some(0)
        );
        assert_eq!(
            routes.select(&uri("https://b.example/x")).map(|(i, _)| i),
            Some(1)
        );
        assert_eq!(
            routes.select(&uri("/grpc.Service/Method")).map(|(i, _)| i),
            Some(2)
        );
        assert!(routes.select(&uri("https://c.example/x")).is_none());
        assert!(routes.single().is_none());

        let one = cache();
        let restricted =
            TokenRoutes::all(one).only_to(vec![Origin::parse("https://a.example").unwrap()]);
        assert!(restricted.select(&uri("https://a.example/")).is_some());
        assert!(restricted.select(&uri("/relative")).is_some());
        assert!(restricted.select(&uri("https://b.example/")).is_none());
        assert!(restricted.single().is_some());
    }

    #[test]
    fn an_authority_form_uri_is_not_relative() {
        // A `CONNECT`'s target (`host:port`) names its destination: only an
        // origin route may give it a token.
        let restricted =
            TokenRoutes::all(cache()).only_to(vec![Origin::parse("https://a.example").unwrap()]);
        assert!(restricted.select(&uri("evil.example.net:443")).is_none());
        assert!(restricted.select(&uri("a.example:443")).is_none());
        assert!(restricted.select(&uri("/relative")).is_some());
        assert!(
            restricted.select(&uri("*")).is_some(),
            "`OPTIONS *` is relative"
        );
    }

    #[test]
    fn restricting_again_never_widens() {
        let (a, b) = (
            Origin::parse("https://a.example").unwrap(),
            Origin::parse("https://b.example").unwrap(),
        );
        let both = TokenRoutes::all(cache()).only_to(vec![a.clone(), b.clone()]);
        let only_a = both.clone().only_to(vec![a.clone()]);
        assert!(only_a.select(&uri("https://a.example/")).is_some());
        assert!(only_a.select(&uri("https://b.example/")).is_none());
        let neither = TokenRoutes::all(cache()).only_to(vec![a]).only_to(vec![b]);
        assert!(neither.select(&uri("https://a.example/")).is_none());
        assert!(neither.select(&uri("https://b.example/")).is_none());
        assert!(neither.select(&uri("/relative")).is_some());

        let explicit = TokenRoutes::new()
            .route(Origin::parse("https://c.example").unwrap(), cache())
            .relative(cache())
            .only_to(vec![Origin::parse("https://d.example").unwrap()]);
        assert!(explicit.select(&uri("https://c.example/")).is_none());
        assert!(explicit.select(&uri("/relative")).is_some());
    }

    #[test]
    fn a_catch_all_route_serves_every_uri() {
        let routes = TokenRoutes::all(cache());
        for text in ["https://a.example/x", "http://b.example:8080/", "/relative"] {
            assert_eq!(routes.select(&uri(text)).map(|(i, _)| i), Some(0));
        }
        let first = cache();
        let later = TokenRoutes {
            routes: vec![(Matcher::Relative, first.clone()), (Matcher::Any, cache())],
        };
        assert_eq!(later.select(&uri("/relative")).map(|(i, _)| i), Some(0));
        assert_eq!(
            later.select(&uri("https://a.example/")).map(|(i, _)| i),
            Some(1)
        );
    }
}

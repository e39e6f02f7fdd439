//! [`TokenRoutes`]: which requests get which token.

use http::Uri;

use super::Origin;
use crate::TokenCache;

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

    /// The route for an absolute `url` (reqwest's requests name theirs so):
    /// its index and cache.
    #[cfg(feature = "reqwest-middleware")]
    pub(crate) fn select_url(&self, url: &reqwest::Url) -> Option<(usize, &TokenCache)> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, (matcher, _))| match matcher {
                Matcher::Any => true,
                Matcher::Origin(origin) => origin.matches_url(url),
                // A URL always names its destination.
                Matcher::Relative => false,
            })
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

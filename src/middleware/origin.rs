//! [`Origin`]: the scheme, host and port a token may be sent to.

use std::fmt;

use http::Uri;

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
    /// The host's address, when it is an IP address (parsed once: a URL
    /// writes addresses in their standard form, which `host` need not be).
    address: Option<std::net::IpAddr>,
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
    pub(super) fn of(uri: &Uri) -> Option<Self> {
        let (scheme, authority) = (uri.scheme_str()?, uri.authority()?);
        let default = default_port(scheme)?;
        let host = authority.host();
        let bare = host
            .strip_prefix('[')
            .and_then(|host| host.strip_suffix(']'))
            .unwrap_or(host);
        Some(Self {
            address: bare.parse().ok(),
            host: host.to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(default),
            scheme: scheme.to_ascii_lowercase(),
        })
    }

    /// Whether the absolute `uri` is on this origin (without allocating: it
    /// runs for every request of a routed layer).
    pub(super) fn matches(&self, uri: &Uri) -> bool {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(&self.scheme)
            && authority.host().eq_ignore_ascii_case(&self.host)
            && authority.port_u16().or_else(|| default_port(scheme)) == Some(self.port)
    }
}

impl Origin {
    /// The origin of `url`.
    #[cfg(feature = "reqwest-middleware")]
    pub(crate) fn of_url(url: &reqwest::Url) -> Option<Self> {
        Some(Self {
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
            scheme: url.scheme().to_ascii_lowercase(),
            address: match url.host()? {
                url::Host::Domain(_) => None,
                url::Host::Ipv4(address) => Some(address.into()),
                url::Host::Ipv6(address) => Some(address.into()),
            },
        })
    }

    /// Whether `url` is on this origin (without allocating or parsing: the
    /// URL's host is parsed already). A URL writes an IP address in its
    /// standard form (`[::1]`), which an origin need not: addresses are
    /// compared as addresses.
    #[cfg(feature = "reqwest-middleware")]
    pub(crate) fn matches_url(&self, url: &reqwest::Url) -> bool {
        let host = match url.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case(&self.host),
            Some(url::Host::Ipv4(address)) => self.address == Some(address.into()),
            Some(url::Host::Ipv6(address)) => self.address == Some(address.into()),
            None => false,
        };
        host && url.scheme().eq_ignore_ascii_case(&self.scheme)
            && url.port_or_known_default() == Some(self.port)
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[cfg(feature = "reqwest-middleware")]
    #[test]
    fn urls_match_by_address_however_the_origin_writes_it() {
        let url = |text: &str| reqwest::Url::parse(text).unwrap();
        let origin: Origin = "http://[0:0:0:0:0:0:0:1]:8080".parse().unwrap();
        assert!(origin.matches_url(&url("http://[::1]:8080/items")));
        assert!(!origin.matches_url(&url("http://[::2]:8080/items")));
        assert!(!origin.matches_url(&url("http://[::1]:8081/items")));
        let named: Origin = "https://API.example.com".parse().unwrap();
        assert!(named.matches_url(&url("https://api.example.com/items")));
        assert!(named.matches_url(&url("https://api.example.com:443/")));
        assert!(!named.matches_url(&url("http://api.example.com/")));
        assert!(!named.matches_url(&url("https://api.example.com.evil.example/")));
    }
}

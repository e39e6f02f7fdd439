//! [`htu`]: the target URI a DPoP proof names.

use http::Uri;

/// The `htu` of a request to `uri` (RFC 9449 §4.2, §4.3 step 9): the
/// target URI without query and fragment, normalized as RFC 3986 §6.2.2 and
/// §6.2.3 say servers compare it: scheme and host in lower case, the
/// scheme's default port left out, an empty path as `/`. `None` for a URI
/// that is not absolute `http` or `https`.
pub(crate) fn htu(uri: &Uri) -> Option<String> {
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = uri.authority()?;
    let host = authority.host().to_ascii_lowercase();
    let path = match uri.path() {
        "" => "/",
        path => path,
    };
    Some(match authority.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}{path}"),
        _ => format!("{scheme}://{host}{path}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(uri: &str) -> Option<String> {
        htu(&uri.parse().unwrap())
    }

    #[test]
    fn normalized_as_servers_compare_it() {
        assert_eq!(
            of("HTTPS://API.Example.COM:443/Orders/7?x=1#f").as_deref(),
            Some("https://api.example.com/Orders/7")
        );
        assert_eq!(of("http://h:80").as_deref(), Some("http://h/"));
        assert_eq!(of("http://h:8080/a").as_deref(), Some("http://h:8080/a"));
        assert_eq!(
            of("https://[::1]:8443/a").as_deref(),
            Some("https://[::1]:8443/a")
        );
        assert_eq!(of("/relative"), None);
        assert_eq!(of("ftp://h/a"), None);
    }

    /// Property: for any scheme case, host case, default or explicit default
    /// port, query and path, the `htu` is the lower-cased scheme and host,
    /// no default port, the path as sent, and nothing after it.
    #[test]
    fn property_equivalent_uris_give_one_htu() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let flip = |text: &str, mask: u64| -> String {
            text.chars()
                .enumerate()
                .map(|(i, c)| {
                    if mask >> (i % 64) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect()
        };
        for _ in 0..2000 {
            let https = next(2) == 0;
            let scheme = if https { "https" } else { "http" };
            let host = ["api.example.com", "127.0.0.1", "svc.internal", "[::1]"][next(4) as usize];
            let path = ["", "/", "/a/B/c", "/pkg.Svc/Method", "/a%20b"][next(5) as usize];
            let port = match next(3) {
                0 => String::new(),
                1 => format!(":{}", if https { 443 } else { 80 }),
                _ => ":8443".to_owned(),
            };
            let query = ["", "?q=1", "?a=b&c=d", "?"][next(4) as usize];
            let uri = format!(
                "{}://{}{port}{path}{query}",
                flip(scheme, next(u64::MAX)),
                flip(host, next(u64::MAX))
            );
            let expected_port = if port == ":8443" { ":8443" } else { "" };
            let expected_path = if path.is_empty() { "/" } else { path };
            assert_eq!(
                of(&uri),
                Some(format!("{scheme}://{host}{expected_port}{expected_path}")),
                "{uri}"
            );
        }
    }
}

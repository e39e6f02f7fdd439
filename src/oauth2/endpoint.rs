//! Talking to an authorization server's endpoints: URL policy, one request
//! with no redirects, and a size-capped response body.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};

use super::{Error, HttpClient};

/// The largest response body read from an authorization server.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A response, read whole.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    /// The delay a `Retry-After` header asks for, in seconds or as a date.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        let value = self.headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        let at = httpdate::parse_http_date(value).ok()?;
        Some(
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }
}

/// Checks that `url` may receive credentials: `https`, or `http` to a
/// loopback address (or anywhere, if `allow_insecure_http`).
pub(crate) fn validate(url: &str, allow_insecure_http: bool) -> Result<Uri, Error> {
    validate_with(url, |host| allow_insecure_http || is_loopback(host)).map_err(|refused| {
        refused.unwrap_or(Error::invalid_url(
            "plain http is refused except to loopback addresses; use https (or opt in with `allow_insecure_http`)",
        ))
    })
}

/// Checks the URL of an endpoint a platform serves on the machine itself
/// (a cloud's metadata server, a managed identity endpoint), which speaks
/// plain HTTP by design: `https`, or `http` to a loopback or link-local
/// address (`127.0.0.0/8`, `::1`, `169.254.0.0/16`, `fe80::/10`) or to one
/// of `hosts` (names the platform resolves to such an address, such as
/// `metadata.google.internal`). Nothing else is reached in plain HTTP.
#[cfg_attr(not(feature = "workload"), allow(dead_code))]
pub(crate) fn validate_on_instance(url: &str, hosts: &[&str]) -> Result<Uri, Error> {
    let allowed = |host: &str| {
        is_loopback(host)
            || is_link_local(host)
            || hosts
                .iter()
                .any(|allowed| host.trim_end_matches('.').eq_ignore_ascii_case(allowed))
    };
    validate_with(url, allowed).map_err(|refused| {
        refused.unwrap_or(Error::invalid_url(
            "plain http is refused except to loopback, link-local and metadata server addresses; use https",
        ))
    })
}

/// `url` parsed, if it is `https`, or `http` to a host `http_allowed`
/// accepts. `Err(None)`: plain http to another host.
fn validate_with(url: &str, http_allowed: impl Fn(&str) -> bool) -> Result<Uri, Option<Error>> {
    let uri: Uri = url
        .parse()
        .map_err(|_| Some(Error::invalid_url("not a valid absolute URL")))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(Some(Error::invalid_url("not a valid absolute URL")));
    };
    if authority.as_str().contains('@') {
        return Err(Some(Error::invalid_url(
            "credentials in the URL are not allowed",
        )));
    }
    match scheme {
        "https" => Ok(uri),
        "http" if http_allowed(authority.host()) => Ok(uri),
        "http" => Err(None),
        _ => Err(Some(Error::invalid_url("the scheme must be https"))),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_link_local(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_link_local(),
        Ok(IpAddr::V6(ip)) => (ip.segments()[0] & 0xffc0) == 0xfe80,
        Err(_) => false,
    }
}

/// POSTs an `application/x-www-form-urlencoded` body.
pub(crate) async fn post_form(
    client: &HttpClient,
    uri: &Uri,
    form: String,
    authorization: Option<HeaderValue>,
    dpop: Option<HeaderValue>,
) -> Result<Answer, Error> {
    let mut request = Request::new(Full::new(Bytes::from(form)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri.clone();
    let headers = request.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    if let Some(authorization) = authorization {
        headers.insert(AUTHORIZATION, authorization);
    }
    if let Some(proof) = dpop {
        headers.insert(http::HeaderName::from_static("dpop"), proof);
    }
    send(client, request).await
}

/// GETs a JSON document.
pub(crate) async fn get_json(client: &HttpClient, uri: &Uri) -> Result<Answer, Error> {
    let headers = HeaderMap::from_iter([(ACCEPT, HeaderValue::from_static("application/json"))]);
    get(client, uri, headers).await
}

/// GETs `uri` with these headers (mark credentials in them sensitive).
pub(crate) async fn get(
    client: &HttpClient,
    uri: &Uri,
    headers: HeaderMap,
) -> Result<Answer, Error> {
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = headers;
    send(client, request).await
}

async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> Result<Answer, Error> {
    let response = client.send(request).await.map_err(Error::transport)?;
    let status = response.status();
    if status.is_redirection() {
        return Err(Error::redirect(status));
    }
    let (parts, mut body) = response.into_parts();
    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(Error::transport)?;
        if let Ok(data) = frame.into_data() {
            if read.len() + data.len() > MAX_RESPONSE_BYTES {
                return Err(
                    Error::invalid_response("the response body is larger than 1 MiB")
                        .with_status(status),
                );
            }
            read.extend_from_slice(&data);
        }
    }
    let body = Bytes::from(read);
    Ok(Answer {
        status,
        headers: parts.headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth2::ErrorKind;

    #[test]
    fn only_https_or_loopback_http_is_accepted() {
        assert!(validate("https://idp.example.com/token", false).is_ok());
        assert!(validate("http://127.0.0.1:8080/token", false).is_ok());
        assert!(validate("http://localhost/token", false).is_ok());
        assert!(validate("http://[::1]:9000/token", false).is_ok());
        let refused = validate("http://idp.example.com/token", false).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::InvalidUrl);
        assert!(refused.to_string().contains("plain http is refused"));
        assert!(validate("http://idp.example.com/token", true).is_ok());
        assert!(validate("ftp://idp.example.com/token", true).is_err());
        assert!(validate("/token", false).is_err());
        assert!(validate("not a url", false).is_err());
        let with_userinfo = validate("https://user:pass@idp.example.com/token", false).unwrap_err();
        assert!(!with_userinfo.to_string().contains("pass"));
    }

    #[test]
    fn on_instance_plain_http_only_to_loopback_link_local_and_named_hosts() {
        let hosts = ["metadata.google.internal"];
        for url in [
            "http://169.254.169.254/metadata/identity/oauth2/token",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://Metadata.Google.Internal./computeMetadata/v1/",
            "http://127.0.0.1:41234/msi/token",
            "http://localhost:8081/msi/token",
            "http://[fe80::1]/token",
            "https://pipelines.actions.githubusercontent.com/idtoken?api-version=2.0",
        ] {
            assert!(validate_on_instance(url, &hosts).is_ok(), "{url}");
        }
        for url in [
            "http://metadata.google.internal.evil.example/computeMetadata/v1/",
            "http://10.0.0.4/msi/token",
            "http://169.255.169.254/token",
            "http://[fd00::254]/token",
            "http://idp.example.com/token",
        ] {
            let refused = validate_on_instance(url, &hosts).unwrap_err();
            assert_eq!(refused.kind(), ErrorKind::InvalidUrl, "{url}");
            assert!(
                refused.to_string().contains("link-local"),
                "{url}: {refused}"
            );
        }
        assert!(validate_on_instance("http://user:pw@127.0.0.1/", &hosts).is_err());
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let answer = |value: &str| Answer {
            status: StatusCode::TOO_MANY_REQUESTS,
            headers: [(RETRY_AFTER, HeaderValue::from_str(value).unwrap())]
                .into_iter()
                .collect(),
            body: Bytes::new(),
        };
        assert_eq!(answer("120").retry_after(), Some(Duration::from_secs(120)));
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(61));
        let delay = answer(&in_a_minute).retry_after().unwrap();
        assert!(delay > Duration::from_secs(55) && delay <= Duration::from_secs(61));
        assert_eq!(
            answer("Wed, 21 Oct 2015 07:28:00 GMT").retry_after(),
            Some(Duration::ZERO)
        );
        assert_eq!(answer("soon").retry_after(), None);
        assert_eq!(answer("-5").retry_after(), None);
    }
}

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
    let uri: Uri = url
        .parse()
        .map_err(|_| Error::invalid_url("not a valid absolute URL"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(Error::invalid_url("not a valid absolute URL"));
    };
    if authority.as_str().contains('@') {
        return Err(Error::invalid_url("credentials in the URL are not allowed"));
    }
    match scheme {
        "https" => Ok(uri),
        "http" if allow_insecure_http || is_loopback(authority.host()) => Ok(uri),
        "http" => Err(Error::invalid_url(
            "plain http is refused except to loopback addresses; use https (or opt in with `allow_insecure_http`)",
        )),
        _ => Err(Error::invalid_url("the scheme must be https")),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
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
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = uri.clone();
    request
        .headers_mut()
        .insert(ACCEPT, HeaderValue::from_static("application/json"));
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

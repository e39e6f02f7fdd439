//! Reading token responses (RFC 6749 §5.1) and error responses (§5.2).
//!
//! Bodies are parsed to JSON values first and fields read by hand, so that
//! no error message ever quotes a value from the body (it may hold a token).

use std::time::Duration;

use serde_json::{Map, Value};

use super::endpoint::Answer;
use super::{Error, ErrorCode, Secret};
use crate::Token;

/// A successful token response.
#[derive(Debug)]
pub(crate) struct TokenResponse {
    pub(crate) token: Token,
    pub(crate) refresh_token: Option<Secret>,
    /// What kind of token a token exchange issued (RFC 8693 §2.2.1), as
    /// sent.
    pub(crate) issued_token_type: Option<String>,
    /// The `token_type` was `DPoP` (RFC 9449 §5): the token is bound to the
    /// key of the request's proof.
    pub(crate) dpop_bound: bool,
}

/// A token request that gave no token.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: Error,
    /// The refresh token a successful (2xx) answer carried although the
    /// rest of it was unusable. The server may have spent the refresh token
    /// sent already, so this one must be kept all the same.
    pub(crate) refresh_token: Option<Secret>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self {
            error,
            refresh_token: None,
        }
    }
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        failure.error
    }
}

/// Reads the answer of a token endpoint. `secrets` are the credentials the
/// request carried: a server description that echoes one (or a token of
/// the answer itself) is redacted.
pub(crate) fn read(answer: &Answer, secrets: &[&str]) -> Result<TokenResponse, Failure> {
    let json = parse_object(&answer.body);
    let secrets = with_answer_tokens(secrets, json.as_ref().ok());
    let object = match (&json, answer.status.is_success()) {
        (Ok(object), true) => object,
        (Err(why), true) => {
            return Err(Error::invalid_response(why)
                .with_status(answer.status)
                .into());
        }
        (json, false) => return Err(error_response(answer, json.as_ref().ok(), &secrets).into()),
    };
    let has_error = object.contains_key("error");
    let error = if has_error && !object.contains_key("access_token") {
        error_response(answer, Some(object), &secrets)
    } else {
        match success(object) {
            Ok(response) => return Ok(response),
            Err(error) => error.with_status(answer.status),
        }
    };
    // Only an answer shaped like a success (an access token, no error) has
    // spent the refresh token sent: a new one in any other answer may be
    // anything, and replacing a working refresh token with it would mean
    // signing in again.
    let issued_access_token =
        matches!(object.get("access_token"), Some(Value::String(token)) if !token.is_empty());
    let refresh_token = match object.get("refresh_token") {
        Some(Value::String(token)) if issued_access_token && !has_error && !token.is_empty() => {
            Some(Secret::new(token.as_str()))
        }
        _ => None,
    };
    Err(Failure {
        error,
        refresh_token,
    })
}

pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, &'static str> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("the response body is empty");
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err("the response is JSON but not an object"),
        Err(_) if body.trim_ascii_start().starts_with(b"<") => {
            Err("the response is not JSON (it looks like an HTML page)")
        }
        Err(_) => Err("the response is not JSON"),
    }
}

fn success(object: &Map<String, Value>) -> Result<TokenResponse, Error> {
    let access_token = match object.get("access_token") {
        Some(Value::String(token)) if !token.is_empty() => token,
        Some(Value::String(_)) => return Err(Error::invalid_response("`access_token` is empty")),
        Some(_) => return Err(Error::invalid_response("`access_token` is not a string")),
        None => return Err(Error::invalid_response("`access_token` is missing")),
    };
    let issued_token_type = match object.get("issued_token_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(kind)) => Some(kind.clone()),
        Some(_) => {
            return Err(Error::invalid_response(
                "`issued_token_type` is not a string",
            ));
        }
    };
    let mut dpop_bound = false;
    match object.get("token_type") {
        // Some servers leave it out; a bearer token is what we asked for.
        None => {}
        Some(Value::String(kind)) if kind.eq_ignore_ascii_case("bearer") => {}
        // Bound to the key of the request's proof: the source checks it
        // sent one.
        Some(Value::String(kind)) if kind.eq_ignore_ascii_case("dpop") => dpop_bound = true,
        // A token exchange that issued something other than an access token
        // (an ID token, a JWT for the next exchange; RFC 8693 §2.2.1): it
        // is presented as the caller chooses, here as a bearer credential.
        Some(Value::String(kind)) if kind == "N_A" && issued_token_type.is_some() => {}
        Some(Value::String(_)) => {
            return Err(Error::invalid_response(
                "`token_type` is not `Bearer` or `DPoP` (the token types supported)",
            ));
        }
        Some(_) => return Err(Error::invalid_response("`token_type` is not a string")),
    }
    let expires_in = match object.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(value) => Some(seconds(value)?),
    };
    let refresh_token = match object.get("refresh_token") {
        // Azure's managed identity endpoint (IMDS) sends `""`.
        None | Some(Value::Null) => None,
        Some(Value::String(token)) if token.is_empty() => None,
        Some(Value::String(token)) => Some(Secret::new(token.as_str())),
        Some(_) => return Err(Error::invalid_response("`refresh_token` is not a string")),
    };
    let token = match expires_in {
        Some(lifetime) => Token::bearer(access_token.as_str()).expires_in(lifetime),
        // No `expires_in`: a JWT says when it expires; otherwise it lives
        // until rejected.
        None => Token::from_jwt(access_token.as_str())
            .unwrap_or_else(|_| Token::bearer(access_token.as_str())),
    };
    Ok(TokenResponse {
        token,
        refresh_token,
        issued_token_type,
        dpop_bound,
    })
}

/// `expires_in`: a non-negative number, or such a number in a string.
fn seconds(value: &Value) -> Result<Duration, Error> {
    let seconds = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    seconds
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or(Error::invalid_response(
            "`expires_in` is not a non-negative number of seconds",
        ))
}

/// `secrets` plus the tokens an answer carries, never to be shown.
fn with_answer_tokens<'a>(
    secrets: &[&'a str],
    object: Option<&'a Map<String, Value>>,
) -> Vec<&'a str> {
    let mut secrets = secrets.to_vec();
    if let Some(object) = object {
        secrets.extend(
            ["access_token", "refresh_token", "id_token"]
                .iter()
                .filter_map(|field| object.get(*field).and_then(Value::as_str)),
        );
    }
    secrets
}

/// The error an answer with an error status carries: an OAuth error body
/// (RFC 6749 §5.2) or the status alone, with the server's `Retry-After`,
/// **not** judged permanent: for callers with rules of their own about
/// which statuses are worth retrying.
#[cfg_attr(not(feature = "workload"), allow(dead_code))]
pub(crate) fn answer_error(answer: &Answer, secrets: &[&str]) -> Error {
    let json = parse_object(&answer.body);
    let object = json.as_ref().ok();
    error_body(answer, object, &with_answer_tokens(secrets, object), false)
}

fn error_response(answer: &Answer, object: Option<&Map<String, Value>>, secrets: &[&str]) -> Error {
    error_body(answer, object, secrets, true)
}

/// The error in `answer`, marked permanent when `judged` and the server
/// refused the client or the grant.
fn error_body(
    answer: &Answer,
    object: Option<&Map<String, Value>>,
    secrets: &[&str],
    judged: bool,
) -> Error {
    let retry_after = answer.retry_after();
    let judge = |error: Error| {
        if judged {
            error.marked_permanent()
        } else {
            error
        }
    };
    let code = object
        .and_then(|object| object.get("error"))
        .and_then(Value::as_str);
    let Some(code) = code else {
        return judge(Error::status_only(answer.status)).with_retry_after(retry_after);
    };
    let text = |field: &str| {
        object
            .and_then(|object| object.get(field))
            .and_then(Value::as_str)
            .map(|text| redact(text, secrets))
    };
    judge(Error::rejected(
        answer.status,
        ErrorCode::parse(&redact(code, secrets)),
        text("error_description"),
        text("error_uri"),
    ))
    .with_retry_after(retry_after)
}

/// A credential and each of its dot-separated parts (a JWT's header,
/// claims and signature): a server message must quote none of them.
pub(crate) fn redactable(credential: &str) -> impl Iterator<Item = &str> {
    std::iter::once(credential).chain(credential.split('.').filter(|part| !part.is_empty()))
}

/// Whether `answer` is an authorization server's DPoP nonce challenge
/// (RFC 9449 §8): `400` with `{"error":"use_dpop_nonce"}`.
#[cfg(feature = "dpop")]
pub(crate) fn asks_for_dpop_nonce(answer: &Answer) -> bool {
    answer.status == http::StatusCode::BAD_REQUEST
        && parse_object(&answer.body).is_ok_and(|object| {
            object.get("error").and_then(Value::as_str) == Some("use_dpop_nonce")
        })
}

/// `text`, unless it contains one of `secrets`.
fn redact(text: &str, secrets: &[&str]) -> String {
    if secrets
        .iter()
        .any(|secret| !secret.is_empty() && text.contains(secret))
    {
        "[redacted: the server's message contained a credential]".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, StatusCode};

    use super::*;
    use crate::oauth2::ErrorKind;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    fn ok(body: &str) -> Result<TokenResponse, Error> {
        read(&answer(200, body), &["client-secret-value"]).map_err(Error::from)
    }

    #[tokio::test(start_paused = true)]
    async fn a_standard_response() {
        let response = ok(r#"{"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rt","scope":"a b"}"#).unwrap();
        assert_eq!(response.token.secret(), "at");
        assert_eq!(response.token.time_left(), Some(Duration::from_secs(3600)));
        assert_eq!(response.refresh_token.unwrap().expose(), "rt");
    }

    #[tokio::test(start_paused = true)]
    async fn lenient_where_servers_differ() {
        let response =
            ok(r#"{"access_token":"at","token_type":"bearer","expires_in":"120"}"#).unwrap();
        assert_eq!(response.token.time_left(), Some(Duration::from_secs(120)));
        let response = ok(r#"{"access_token":"at","expires_in":59.5}"#).unwrap();
        assert_eq!(
            response.token.time_left(),
            Some(Duration::from_millis(59_500))
        );
        let response = ok(r#"{"access_token":"opaque","token_type":"BEARER"}"#).unwrap();
        assert_eq!(response.token.expiry(), None);
        // Azure IMDS: strings, and an empty refresh token for none.
        let response = ok(r#"{"access_token":"at","refresh_token":"","expires_in":"3599","expires_on":"1506484173","not_before":"1506480273","resource":"https://management.azure.com/","token_type":"Bearer"}"#).unwrap();
        assert_eq!(response.token.time_left(), Some(Duration::from_secs(3599)));
        assert!(response.refresh_token.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_jwt_without_expires_in_uses_its_exp() {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let jwt = format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{}}}"#, now + 600))
        );
        let response = ok(&format!(
            r#"{{"access_token":"{jwt}","token_type":"Bearer"}}"#
        ))
        .unwrap();
        let left = response.token.time_left().unwrap();
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
    }

    #[test]
    fn bad_responses_say_what_is_wrong_without_quoting_them() {
        let cases = [
            ("", "the response body is empty"),
            (
                "<html><body>Bad Gateway</body></html>",
                "it looks like an HTML page",
            ),
            ("{\"access_token\": \"abc\"", "not JSON"),
            ("[1,2]", "JSON but not an object"),
            (r#"{"token_type":"Bearer"}"#, "`access_token` is missing"),
            (r#"{"access_token":42}"#, "`access_token` is not a string"),
            (r#"{"access_token":""}"#, "`access_token` is empty"),
            (
                r#"{"access_token":"secret-at","token_type":"mac"}"#,
                "`token_type` is not `Bearer`",
            ),
            (
                r#"{"access_token":"secret-at","expires_in":"soon"}"#,
                "`expires_in` is not",
            ),
            (
                r#"{"access_token":"secret-at","expires_in":-1}"#,
                "`expires_in` is not",
            ),
            (
                r#"{"access_token":"secret-at","refresh_token":7}"#,
                "`refresh_token` is not a string",
            ),
        ];
        for (body, expected) in cases {
            let error = ok(body).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidResponse, "{body}");
            let shown = format!("{error} {error:?}");
            assert!(shown.contains(expected), "{body}: {shown}");
            assert!(
                !shown.contains("secret-at") && !shown.contains("soon"),
                "{shown}"
            );
        }
    }

    #[test]
    fn a_refresh_token_in_an_unusable_success_is_kept() {
        // The server rotated the refresh token but the rest of its answer
        // is unusable: the new refresh token still comes back, the error
        // does not show it.
        for body in [
            r#"{"access_token":"at","expires_in":-1,"refresh_token":"rt-new"}"#,
            r#"{"access_token":"at","token_type":"mac","refresh_token":"rt-new"}"#,
        ] {
            let failure = read(&answer(200, body), &[]).unwrap_err();
            assert_eq!(failure.refresh_token.unwrap().expose(), "rt-new", "{body}");
            let shown = format!("{0} {0:?}", failure.error);
            assert!(!shown.contains("rt-new"), "{shown}");
        }
        // Not in an error status, nor in an answer that is no success (no
        // access token, or an error): it may not have spent the refresh
        // token sent. Nor when it is not a usable string.
        for (status, body) in [
            (400, r#"{"error":"invalid_grant","refresh_token":"rt-new"}"#),
            (200, r#"{"access_token":"","refresh_token":"rt-new"}"#),
            (200, r#"{"error":"server_error","refresh_token":"rt-new"}"#),
            (
                200,
                r#"{"access_token":"at","expires_in":-1,"refresh_token":""}"#,
            ),
            (200, r#"{"access_token":"at","refresh_token":7}"#),
        ] {
            let failure = read(&answer(status, body), &[]).unwrap_err();
            assert!(failure.refresh_token.is_none(), "{body}");
        }
    }

    #[test]
    fn tokens_of_the_answer_quoted_in_its_description_are_not_shown() {
        for (status, body) in [
            (
                200,
                r#"{"error":"server_error","error_description":"your new refresh token is rt-NEW-SECRET","refresh_token":"rt-NEW-SECRET"}"#,
            ),
            (
                400,
                r#"{"error":"invalid_request","error_description":"rejected at-SECRET","access_token":"at-SECRET"}"#,
            ),
        ] {
            let failure = read(&answer(status, body), &[]).unwrap_err();
            let shown = format!("{0} {0:?}", failure.error);
            assert!(!shown.contains("SECRET"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
    }

    #[test]
    fn oauth_errors_are_typed() {
        let error = read(
            &answer(400, r#"{"error":"invalid_grant","error_description":"refresh token revoked","error_uri":"https://idp/doc"}"#),
            &[],
        )
        .unwrap_err()
        .error;
        assert_eq!(error.kind(), ErrorKind::Rejected);
        assert_eq!(error.code(), Some(&ErrorCode::InvalidGrant));
        assert!(error.is_invalid_grant());
        assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
        assert_eq!(error.description(), Some("refresh token revoked"));
        assert_eq!(error.uri(), Some("https://idp/doc"));
        assert!(!error.is_retryable());
        assert_eq!(
            error.to_string(),
            "authorization server rejected the grant (invalid_grant) with status 400 Bad Request: refresh token revoked"
        );

        let error = read(&answer(401, r#"{"error":"invalid_client"}"#), &[])
            .unwrap_err()
            .error;
        assert_eq!(error.code(), Some(&ErrorCode::InvalidClient));
        let error = read(&answer(400, r#"{"error":"slow_down"}"#), &[])
            .unwrap_err()
            .error;
        assert_eq!(error.code(), Some(&ErrorCode::Other("slow_down".into())));
    }

    #[test]
    fn statuses_without_oauth_bodies_and_retry_after() {
        let mut busy = answer(503, "<html>maintenance</html>");
        busy.headers
            .insert("retry-after", HeaderValue::from_static("30"));
        let error = read(&busy, &[]).unwrap_err().error;
        assert_eq!(error.kind(), ErrorKind::Status);
        assert!(error.is_retryable());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
        // Where the cache finds it, as it would a source's own.
        let asked = crate::RetryAfter::find(&error).map(crate::RetryAfter::delay);
        assert_eq!(asked, Some(Duration::from_secs(30)));
        assert_eq!(
            error.to_string(),
            "token endpoint answered 503 Service Unavailable"
        );

        let mut limited = answer(429, r#"{"error":"rate_limited"}"#);
        limited
            .headers
            .insert("retry-after", HeaderValue::from_static("5"));
        let error = read(&limited, &[]).unwrap_err().error;
        assert!(error.is_retryable());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn descriptions_that_echo_a_secret_are_redacted() {
        let error = read(
            &answer(401, r#"{"error":"invalid_client","error_description":"bad secret client-secret-value"}"#),
            &["client-secret-value"],
        )
        .unwrap_err()
        .error;
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("client-secret-value"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}

#[cfg(test)]
mod properties {
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, StatusCode};
    use proptest::prelude::*;

    use super::*;

    fn answer(status: u16, body: Vec<u8>, retry_after: Option<String>) -> Answer {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after.and_then(|value| HeaderValue::from_str(&value).ok()) {
            headers.insert("retry-after", value);
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            headers,
            body: Bytes::from(body),
        }
    }

    /// JSON objects with token-response fields of any type, holding a
    /// marker a message must never quote.
    fn token_like() -> impl Strategy<Value = String> {
        let value = prop_oneof![
            Just("\"SECRET-VALUE\"".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| format!("{n:?}")),
            Just("null".to_owned()),
            Just("[\"SECRET-VALUE\"]".to_owned()),
            Just("{\"a\":\"SECRET-VALUE\"}".to_owned()),
            Just("true".to_owned()),
        ];
        let field = prop_oneof![
            Just("access_token"),
            Just("token_type"),
            Just("expires_in"),
            Just("refresh_token"),
            Just("error"),
            Just("error_description"),
            Just("scope"),
        ];
        proptest::collection::vec((field, value), 0..6).prop_map(|fields| {
            let body: Vec<String> = fields
                .into_iter()
                .map(|(name, value)| format!("\"{name}\":{value}"))
                .collect();
            format!("{{{}}}", body.join(","))
        })
    }

    proptest! {
        #[test]
        fn any_bytes_and_status_give_a_response_or_an_error(
            status in 100u16..600,
            body in proptest::collection::vec(any::<u8>(), 0..256),
            retry_after in proptest::option::of(".*"),
        ) {
            let _ = read(&answer(status, body, retry_after), &[]);
        }

        #[test]
        fn errors_never_quote_the_body(status in prop_oneof![Just(200u16), Just(400), Just(503)], body in token_like()) {
            match read(&answer(status, body.into_bytes(), None), &["SECRET-VALUE"]) {
                Ok(response) => {
                    let shown = format!("{:?}", response);
                    prop_assert!(!shown.contains("SECRET-VALUE"), "{}", shown);
                }
                Err(failure) => {
                    let error = &failure.error;
                    let shown = format!("{error} {error:?} {failure:?}");
                    prop_assert!(!shown.contains("SECRET-VALUE"), "{}", shown);
                }
            }
        }

        #[test]
        fn retry_after_never_panics(value in ".*") {
            let _ = answer(429, Vec::new(), Some(value)).retry_after();
        }
    }
}

//! Reading a JWT's lifetime from its `exp` and `iat` claims, unverified.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use serde::Deserialize;

use crate::Error;

/// The only claims we read. Numeric dates may be fractional (RFC 7519 §2).
#[derive(Deserialize)]
struct TimeClaims {
    exp: Option<f64>,
    iat: Option<f64>,
}

/// The token's remaining lifetime at `now`, or `None` if it has no `exp`.
pub(super) fn lifetime(jwt: &str, now: SystemTime) -> Result<Option<Duration>, Error> {
    match jwt.split('.').count() {
        3 => {}
        5 => return Err(Error::invalid_jwt("encrypted JWTs (JWE) cannot be read")),
        _ => return Err(Error::invalid_jwt("expected three dot-separated parts")),
    }
    let claims: TimeClaims = jsonwebtoken::dangerous::insecure_decode_claims(jwt)
        // The library's messages may quote claim values; ours never do.
        .map_err(|err| {
            Error::invalid_jwt(match err.kind() {
                JwtErrorKind::Base64(_) => "claims are not base64url",
                JwtErrorKind::Utf8(_) => "claims are not UTF-8",
                JwtErrorKind::Json(_) => {
                    "claims are not a JSON object with numeric `exp` and `iat`"
                }
                _ => "malformed",
            })
        })?;
    let Some(exp) = claims.exp else {
        return Ok(None);
    };
    let exp = numeric_date(exp).ok_or(Error::invalid_jwt("`exp` is not a valid time"))?;
    let by_local_clock = exp.duration_since(now).unwrap_or(Duration::ZERO);
    let lifetime = match claims.iat {
        None => by_local_clock,
        Some(iat) => {
            let iat = numeric_date(iat).ok_or(Error::invalid_jwt("`iat` is not a valid time"))?;
            let issued = exp.duration_since(iat).unwrap_or(Duration::ZERO);
            by_local_clock.min(issued)
        }
    };
    Ok(Some(lifetime))
}

fn numeric_date(seconds: f64) -> Option<SystemTime> {
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(seconds).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const NOW: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn jwt(claims: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    fn lifetime_of(claims: &str) -> Result<Option<Duration>, Error> {
        lifetime(&jwt(claims), now())
    }

    #[test]
    fn exp_gives_the_lifetime() {
        let claims = format!(r#"{{"exp":{}}}"#, NOW + 600);
        assert_eq!(
            lifetime_of(&claims).unwrap(),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn fractional_exp_is_accepted() {
        let claims = format!(r#"{{"exp":{}.5}}"#, NOW + 10);
        assert_eq!(
            lifetime_of(&claims).unwrap(),
            Some(Duration::from_millis(10_500))
        );
    }

    #[test]
    fn no_exp_means_no_expiry() {
        assert_eq!(lifetime_of(r#"{"sub":"a"}"#).unwrap(), None);
    }

    #[test]
    fn local_clock_behind_uses_issued_lifetime() {
        // The issuer's clock is an hour ahead of ours: exp - now would say 2 h.
        let claims = format!(r#"{{"iat":{},"exp":{}}}"#, NOW + 3600, NOW + 7200);
        assert_eq!(
            lifetime_of(&claims).unwrap(),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn token_issued_earlier_uses_the_local_clock() {
        let claims = format!(r#"{{"iat":{},"exp":{}}}"#, NOW - 3000, NOW + 600);
        assert_eq!(
            lifetime_of(&claims).unwrap(),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn expired_jwt_has_no_lifetime_left() {
        let claims = format!(r#"{{"iat":{},"exp":{}}}"#, NOW - 7200, NOW - 3600);
        assert_eq!(lifetime_of(&claims).unwrap(), Some(Duration::ZERO));
    }

    #[test]
    fn malformed_jwts_give_clear_errors_without_content() {
        let cases = [
            ("only.two", "expected three dot-separated parts"),
            ("a.b.c.d.e", "encrypted JWTs (JWE) cannot be read"),
            ("e30.!!!!.sig", "claims are not base64url"),
        ];
        for (input, reason) in cases {
            let err = lifetime(input, now()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidJwt);
            assert_eq!(
                err.to_string(),
                format!("token is not a valid JWT: {reason}")
            );
        }
        let err = lifetime_of(r#"{"exp":"secret-looking-value"}"#).unwrap_err();
        assert!(!err.to_string().contains("secret-looking-value"));
        assert!(!format!("{err:?}").contains("secret-looking-value"));
        assert!(err.to_string().contains("numeric `exp`"));
        let err = lifetime_of(r#"{"exp":-5}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token is not a valid JWT: `exp` is not a valid time"
        );
        let err = lifetime_of(r#""a string""#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidJwt);
    }
}

#[cfg(test)]
mod properties {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_input_gives_a_lifetime_or_an_error(input in ".*") {
            let _ = lifetime(&input, SystemTime::now());
        }

        #[test]
        fn any_claims_give_a_lifetime_or_an_error_that_quotes_nothing(
            claims in prop_oneof![
                "\\{.*\\}",
                (any::<f64>(), any::<f64>()).prop_map(|(iat, exp)| format!(r#"{{"iat":{iat},"exp":{exp}}}"#)),
                (any::<i64>(), any::<i64>()).prop_map(|(iat, exp)| format!(r#"{{"iat":{iat},"exp":{exp}}}"#)),
                "[a-z]{1,20}".prop_map(|word| format!(r#"{{"exp":"secret-{word}"}}"#)),
            ]
        ) {
            let jwt = format!("{}.{}.sig", URL_SAFE_NO_PAD.encode("{}"), URL_SAFE_NO_PAD.encode(&claims));
            if let Err(error) = lifetime(&jwt, SystemTime::now()) {
                let shown = format!("{error} {error:?}");
                prop_assert!(!shown.contains("secret-"), "{}", shown);
            }
        }
    }
}

//! Unsigned JWTs for sources that only read a token's claims (`exp`), as
//! platforms issue them: a Kubernetes service-account token, a CI job's
//! OIDC token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

/// A JWT for `subject` that expires in `lifetime` (its signature is a
/// placeholder: nothing here checks it).
pub fn expiring_in(subject: &str, lifetime: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "{}.{}.c2ln",
        B64.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        B64.encode(format!(
            r#"{{"sub":"{subject}","iat":{now},"exp":{}}}"#,
            now + lifetime.as_secs()
        ))
    )
}

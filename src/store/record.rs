//! The stored form of a token: JSON with a wall-clock expiry, so that another
//! process (or this one after a restart) can tell how long it has left.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::error::StoreErrorKind;
use super::{StoreError, StoredToken};
use crate::{Secret, Token};

/// Format version written in every record.
const FORMAT: u32 = 1;

/// What a store keeps: the access token with its expiry, and the refresh
/// token of a refresh-token grant.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct Record {
    format: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    /// Milliseconds since the Unix epoch; absent for a token that does not
    /// expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
    /// What identifies the source that made the access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// Until when (milliseconds since the Unix epoch) the processes sharing
    /// the record are asked not to fetch, after a failed fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_at_ms: Option<u64>,
}

impl Record {
    /// Parses a record, or says it is corrupted (never quoting it).
    pub(super) fn parse(bytes: &[u8]) -> Result<Self, StoreError> {
        let record: Self = serde_json::from_slice(bytes).map_err(|error| {
            // Only where, never serde_json's message: for a wrong type it
            // quotes the value it found, which may be a secret.
            StoreError::new(
                StoreErrorKind::Corrupted,
                "stored token record is not a valid record",
                Some(
                    format!(
                        "{:?} error at line {}, column {}",
                        error.classify(),
                        error.line(),
                        error.column()
                    )
                    .into(),
                ),
            )
        })?;
        if record.format != FORMAT {
            return Err(StoreError::new(
                StoreErrorKind::Corrupted,
                "stored token record has an unknown format version",
                None,
            ));
        }
        Ok(record)
    }

    pub(super) fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record of strings and numbers serializes")
    }

    /// The access token, with its expiry converted from wall-clock time.
    pub(super) fn token(&self) -> Option<StoredToken> {
        let token = Token::bearer(self.access_token.clone()?);
        let token = match self.expires_at_ms {
            Some(ms) => token.expires_at(UNIX_EPOCH + Duration::from_millis(ms)),
            None => token,
        };
        Some(StoredToken::new(token, self.source.clone()))
    }

    pub(super) fn set_token(&mut self, stored: &StoredToken) {
        self.format = FORMAT;
        self.access_token = Some(stored.token().secret().to_owned());
        self.expires_at_ms = expires_at_ms(stored.token());
        self.source = stored.fingerprint().map(str::to_owned);
        self.retry_at_ms = None;
    }

    /// Removes the access token if it is `token`; returns whether it did.
    pub(super) fn discard(&mut self, token: &Token) -> bool {
        if self.access_token.as_deref() != Some(token.secret()) {
            return false;
        }
        use zeroize::Zeroize;
        if let Some(mut value) = self.access_token.take() {
            value.zeroize();
        }
        self.expires_at_ms = None;
        self.source = None;
        true
    }

    pub(super) fn set_failure(&mut self, retry_after: Duration) {
        self.format = FORMAT;
        self.retry_at_ms = unix_ms(SystemTime::now() + retry_after);
    }

    /// How long the fleet is still asked to wait, if it is.
    pub(super) fn failure(&self) -> Option<Duration> {
        let at = UNIX_EPOCH + Duration::from_millis(self.retry_at_ms?);
        at.duration_since(SystemTime::now())
            .ok()
            .filter(|left| !left.is_zero())
    }

    pub(super) fn refresh_token(&self) -> Option<Secret> {
        self.refresh_token.clone().map(Secret::new)
    }

    pub(super) fn set_refresh_token(&mut self, refresh_token: &Secret) {
        self.format = FORMAT;
        self.refresh_token = Some(refresh_token.expose().to_owned());
    }
}

/// When `token` expires, in milliseconds since the Unix epoch (rounded
/// down, so a reader never thinks it lives longer).
pub(super) fn expires_at_ms(token: &Token) -> Option<u64> {
    unix_ms(SystemTime::now().checked_add(token.time_left()?)?)
}

fn unix_ms(at: SystemTime) -> Option<u64> {
    u64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()
}

impl Drop for Record {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let Some(token) = &mut self.access_token {
            token.zeroize();
        }
        if let Some(token) = &mut self.refresh_token {
            token.zeroize();
        }
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("format", &self.format)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_survives_the_round_trip() {
        let mut record = Record::default();
        record.set_token(&StoredToken::new(
            Token::bearer("abc").expires_in(Duration::from_secs(600)),
            Some("orders".into()),
        ));
        record.set_refresh_token(&Secret::new("rt"));
        let read = Record::parse(&record.to_json()).unwrap();
        let stored = read.token().unwrap();
        assert_eq!(stored.fingerprint(), Some("orders"));
        let token = stored.token();
        assert_eq!(token.secret(), "abc");
        let left = token.time_left().unwrap();
        assert!(left > Duration::from_secs(598) && left <= Duration::from_secs(600));
        assert_eq!(read.refresh_token().unwrap().expose(), "rt");
    }

    #[test]
    fn a_failure_is_kept_until_a_token_is_saved() {
        let mut record = Record::default();
        record.set_failure(Duration::from_secs(30));
        let read = Record::parse(&record.to_json()).unwrap();
        let left = read.failure().unwrap();
        assert!(left > Duration::from_secs(29) && left <= Duration::from_secs(30));
        record.set_token(&StoredToken::new(Token::bearer("abc"), None));
        assert_eq!(record.failure(), None);
        record.set_failure(Duration::ZERO);
        assert_eq!(record.failure(), None, "a failure that is over");
    }

    #[test]
    fn a_token_without_expiry_stays_without() {
        let mut record = Record::default();
        record.set_token(&StoredToken::new(Token::bearer("abc"), None));
        let read = Record::parse(&record.to_json()).unwrap();
        assert_eq!(read.token().unwrap().token().expiry(), None);
    }

    #[test]
    fn only_the_same_token_is_discarded() {
        let mut record = Record::default();
        record.set_token(&StoredToken::new(Token::bearer("new"), Some("a".into())));
        record.set_refresh_token(&Secret::new("rt"));
        record.set_failure(Duration::from_secs(30));
        assert!(!record.discard(&Token::bearer("old")));
        assert_eq!(record.token().unwrap().token().secret(), "new");
        assert!(record.discard(&Token::bearer("new")));
        assert!(record.token().is_none());
        assert!(record.failure().is_some(), "the fleet's backoff stays");
        assert_eq!(record.refresh_token().unwrap().expose(), "rt");
    }

    #[test]
    fn a_record_without_a_source_reads_as_one_of_unknown_source() {
        let read = Record::parse(br#"{"format":1,"access_token":"abc"}"#).unwrap();
        assert_eq!(read.token().unwrap().fingerprint(), None);
    }

    #[test]
    fn garbage_is_corrupted_and_never_quoted() {
        for bytes in [
            &b"{\"format\":1,\"access_token\":secret-abc"[..],
            b"\x00\xff",
            b"{\"format\":7,\"access_token\":\"secret-abc\"}",
            b"[]",
        ] {
            let error = Record::parse(bytes).unwrap_err();
            assert_eq!(error.kind(), StoreErrorKind::Corrupted);
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("secret-abc"), "{shown}");
        }
    }
}

//! [`StoreError`]: what went wrong in a [`TokenStore`](super::TokenStore).

use std::error::Error as StdError;
use std::fmt;

use crate::BoxError;

/// The category of a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store could not be reached or did not answer in time.
    Unavailable,
    /// Reading or writing a file failed.
    Io,
    /// The stored data is not a token record this crate wrote.
    Corrupted,
    /// The store was set up with a value it cannot use (e.g. a malformed
    /// Redis URL).
    InvalidConfig,
    /// Any other failure, from a store outside this crate.
    Other,
}

/// An error from a [`TokenStore`](super::TokenStore). Its message says what
/// failed and never contains a token, a refresh token or a password; the
/// underlying error, if any, is its [`source`](StdError::source).
pub struct StoreError {
    kind: StoreErrorKind,
    what: &'static str,
    source: Option<BoxError>,
}

impl StoreError {
    /// An error of `kind`, described by `what` (a fixed phrase such as
    /// "could not reach the store"), caused by `source`.
    pub fn new(kind: StoreErrorKind, what: &'static str, source: Option<BoxError>) -> Self {
        Self { kind, what, source }
    }

    /// An error from a store outside this crate.
    pub fn other(source: impl Into<BoxError>) -> Self {
        Self::new(
            StoreErrorKind::Other,
            "token store failed",
            Some(source.into()),
        )
    }

    /// The category of the error.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    pub(crate) fn io(what: &'static str, source: std::io::Error) -> Self {
        Self::new(StoreErrorKind::Io, what, Some(source.into()))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("kind", &self.kind)
            .field("what", &self.what)
            .field("source", &self.source)
            .finish()
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

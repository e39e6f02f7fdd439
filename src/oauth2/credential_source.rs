//! [`CredentialSource`]: a credential another [`TokenSource`] provides, for
//! one role in a token request: the subject or actor token of a token
//! exchange, or a client assertion.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Error;
use crate::{Token, TokenSource};

/// A source of one credential of a token request, and its role in it.
#[derive(Clone)]
pub(crate) struct CredentialSource {
    source: Arc<dyn TokenSource>,
    /// What the credential is, as error messages say it: "the subject
    /// token", "a client assertion", …
    role: &'static str,
}

impl CredentialSource {
    pub(crate) fn new(source: impl TokenSource, role: &'static str) -> Self {
        Self {
            source: Arc::new(source),
            role,
        }
    }

    /// The credential, from a fresh call to the source (a
    /// [`TokenCache`](crate::TokenCache) given as the source answers from
    /// its cache). Bounded by `timeout`: a source that hangs fails the
    /// token request rather than holding it.
    pub(crate) async fn get(&self, timeout: Duration) -> Result<Token, Error> {
        let failed = |cause| Error::credential(self.role, self.source.name(), cause);
        match tokio::time::timeout(timeout, self.source.fetch()).await {
            Ok(Ok(token)) => Ok(token),
            Ok(Err(cause)) => Err(failed(cause)),
            Err(_) => Err(failed(
                format!("it gave no token within {timeout:?}").into(),
            )),
        }
    }

    /// What identifies the credential (never a secret): the source's
    /// fingerprint, else its name.
    pub(crate) fn fingerprint(&self) -> String {
        self.source
            .fingerprint()
            .unwrap_or_else(|| self.source.name().to_owned())
    }
}

impl fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialSource")
            .field("role", &self.role)
            .field("source", &self.source.name())
            .finish()
    }
}

//! One GET to a platform's identity endpoint: short per-attempt timeouts,
//! a few retries with jittered exponential backoff for transient failures,
//! `Retry-After` honoured, all bounded in total; then one typed error.

use std::time::Duration;

use http::{HeaderMap, StatusCode, Uri};
use tokio::time::Instant;

use super::IdentityEndpointError;
use crate::oauth2::endpoint::{self, Answer};
use crate::oauth2::token_response;
use crate::oauth2::{Error, HttpClient};

/// How many times a workload identity source asks its endpoint, at most,
/// for one token.
pub const ATTEMPTS: u32 = 4;

/// The longest one request to a workload identity endpoint may take. These
/// endpoints answer on the machine itself, in milliseconds.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// A retry starts only if it can end within this long of the first attempt
/// (so one fetch ends well within the cache's default
/// [fetch timeout](crate::DEFAULT_FETCH_TIMEOUT), 10 seconds); the cache's
/// own backoff takes over from there.
pub const RETRY_BUDGET: Duration = Duration::from_secs(8);

/// The first backoff; each retry waits twice as long as the one before
/// (half of it random), unless the endpoint said how long (`Retry-After`).
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Asks one provider's endpoints.
#[derive(Clone)]
pub(crate) struct Requester {
    /// Names the source in errors and logs.
    pub(crate) provider: &'static str,
    pub(crate) http: HttpClient,
    /// The statuses worth asking again for (besides transport failures and
    /// timeouts, always retried).
    pub(crate) retry_status: fn(StatusCode) -> bool,
    /// What to check when the endpoint refuses a request (a `4xx` that is
    /// not retried): the failure is then [`Permanent`](crate::Permanent).
    pub(crate) refused: &'static str,
}

/// `429 Too Many Requests` or a server error: what every endpoint retries.
pub(crate) fn busy_or_failing(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

impl Requester {
    pub(crate) fn new(provider: &'static str, refused: &'static str) -> Self {
        Self {
            provider,
            http: HttpClient::default(),
            retry_status: busy_or_failing,
            refused,
        }
    }

    /// GETs `uri` until it answers with a success, retrying what is
    /// transient within [`ATTEMPTS`] and [`RETRY_BUDGET`]. `secrets` are the
    /// credentials `headers` carry, never shown even if the endpoint echoes
    /// them.
    pub(crate) async fn get(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        secrets: &[&str],
    ) -> Result<Answer, IdentityEndpointError> {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let sent = endpoint::get(&self.http, uri, headers.clone());
            let outcome = match tokio::time::timeout(ATTEMPT_TIMEOUT, sent).await {
                Ok(Ok(answer)) if answer.status.is_success() => return Ok(answer),
                Ok(Ok(answer)) if !(self.retry_status)(answer.status) => {
                    return Err(self.refusal(uri, &answer, secrets));
                }
                Ok(outcome) => outcome,
                Err(_) => Err(Error::timed_out(ATTEMPT_TIMEOUT)),
            };
            let retry_after = outcome.as_ref().ok().and_then(Answer::retry_after);
            let delay = retry_after.unwrap_or_else(|| backoff(attempt));
            let can_end_in_time = started.elapsed() + delay + ATTEMPT_TIMEOUT <= RETRY_BUDGET;
            if attempt == ATTEMPTS || !can_end_in_time {
                return Err(match outcome {
                    Ok(answer) => self.failed(uri, token_response::answer_error(&answer, secrets)),
                    Err(error) => self.failed(uri, error),
                });
            }
            tracing::debug!(
                source = self.provider,
                endpoint = %Endpoint(uri),
                attempt,
                status = outcome.as_ref().ok().map(|answer| answer.status.as_u16()),
                error = outcome.as_ref().err().map(|error| error as &dyn std::error::Error),
                retry_in = ?delay,
                "identity endpoint failed; trying again",
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// The error for a failure talking to `uri`, or in its answer.
    pub(crate) fn failed(&self, uri: &Uri, error: Error) -> IdentityEndpointError {
        IdentityEndpointError::new(self.provider, error.with_endpoint(uri))
    }

    /// The error for an answer with a status not worth retrying: permanent
    /// for a `4xx` (the endpoint refused the request).
    fn refusal(&self, uri: &Uri, answer: &Answer, secrets: &[&str]) -> IdentityEndpointError {
        let error = self.failed(uri, token_response::answer_error(answer, secrets));
        if answer.status.is_client_error() {
            error.permanent(self.refused)
        } else {
            error
        }
    }
}

/// `TokenSource::fetch` and `name` of a source that has
/// `async fn fetch_token(&self) -> Result<Token, IdentityEndpointError>`,
/// is `Clone`, and names itself in a `PROVIDER` constant.
macro_rules! fetch_with_fetch_token {
    () => {
        fn fetch(&self) -> $crate::TokenFuture {
            let source = self.clone();
            Box::pin(async move { source.fetch_token().await.map_err($crate::BoxError::from) })
        }

        fn name(&self) -> &str {
            PROVIDER
        }
    };
}
pub(crate) use fetch_with_fetch_token;

/// The wait before attempt `attempt + 1`: doubling from [`FIRST_BACKOFF`],
/// the upper half random so that a fleet does not retry in lockstep.
fn backoff(attempt: u32) -> Duration {
    let full = FIRST_BACKOFF * 2u32.saturating_pow(attempt - 1);
    full / 2 + crate::jitter::up_to(full / 2)
}

/// `url` without its query (which could carry something secret).
pub(crate) fn without_query(url: &str) -> &str {
    url.split_once('?').map_or(url, |(url, _)| url)
}

/// Shows a URI without its query.
struct Endpoint<'a>(&'a Uri);

impl std::fmt::Display for Endpoint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self.0.scheme_str().unwrap_or("http");
        let host = self
            .0
            .authority()
            .map_or("", |authority| authority.as_str());
        write!(f, "{scheme}://{host}{}", self.0.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_in_the_upper_half() {
        for attempt in 1..ATTEMPTS {
            let full = FIRST_BACKOFF * 2u32.pow(attempt - 1);
            for _ in 0..100 {
                let delay = backoff(attempt);
                assert!(delay >= full / 2 && delay <= full, "{attempt}: {delay:?}");
            }
        }
    }

    #[test]
    fn endpoints_are_shown_without_their_query() {
        let uri: Uri = "http://127.0.0.1:8080/token?api-version=1&secret=x"
            .parse()
            .unwrap();
        assert_eq!(Endpoint(&uri).to_string(), "http://127.0.0.1:8080/token");
    }
}

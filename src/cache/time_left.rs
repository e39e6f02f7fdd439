//! [`TimeLeft`]: how long a cache's current token stays valid.

use std::time::Duration;

use crate::Token;

/// How long a [`TokenCache`](crate::TokenCache)'s current token has left,
/// in [`CacheStats::time_left`](crate::CacheStats::time_left).
///
/// Ordered from the least time left to the most: [`NoToken`](Self::NoToken)
/// < [`ExpiresIn`](Self::ExpiresIn) (by duration) <
/// [`NeverExpires`](Self::NeverExpires), so "less than a minute left, or
/// no token at all" is one comparison.
///
/// ```
/// # use std::time::Duration;
/// # use tower_token_refresh::{BoxError, TimeLeft, Token, TokenCache};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// let cache = TokenCache::new(|| async {
///     Ok::<_, BoxError>(Token::bearer("t").expires_in(Duration::from_secs(3600)))
/// });
/// assert_eq!(cache.stats().time_left, TimeLeft::NoToken, "nothing fetched yet");
///
/// let token = cache.token().await?;
/// let left = cache.stats().time_left;
/// assert!(left > TimeLeft::ExpiresIn(Duration::from_secs(60)));
/// assert!(left.as_duration() <= Some(Duration::from_secs(3600)));
///
/// assert!(cache.invalidate(&token));
/// assert!(!cache.stats().time_left.has_token());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TimeLeft {
    /// No token: none was fetched yet, the last one was rejected, or every
    /// fetch failed.
    #[default]
    NoToken,
    /// The token expires after this long (zero once it has expired and
    /// was not replaced yet).
    ExpiresIn(Duration),
    /// The token has no expiry.
    NeverExpires,
}

impl TimeLeft {
    /// The time left of `token`, the current token if any.
    pub(crate) fn of(token: Option<&Token>) -> Self {
        match token.map(Token::time_left) {
            None => Self::NoToken,
            Some(None) => Self::NeverExpires,
            Some(Some(left)) => Self::ExpiresIn(left),
        }
    }

    /// The duration left, if there is a token that expires.
    pub fn as_duration(self) -> Option<Duration> {
        match self {
            Self::ExpiresIn(left) => Some(left),
            Self::NoToken | Self::NeverExpires => None,
        }
    }

    /// Whether the cache holds a token (one that expired but was not
    /// replaced yet included).
    pub fn has_token(self) -> bool {
        self != Self::NoToken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn no_token_and_no_expiry_are_told_apart() {
        assert_eq!(TimeLeft::of(None), TimeLeft::NoToken);
        assert_eq!(
            TimeLeft::of(Some(&Token::bearer("t"))),
            TimeLeft::NeverExpires
        );
        let minute = Duration::from_secs(60);
        let expiring = Token::bearer("t").expires_in(minute);
        assert_eq!(TimeLeft::of(Some(&expiring)), TimeLeft::ExpiresIn(minute));
        tokio::time::advance(2 * minute).await;
        assert_eq!(
            TimeLeft::of(Some(&expiring)),
            TimeLeft::ExpiresIn(Duration::ZERO)
        );

        assert_eq!(TimeLeft::default(), TimeLeft::NoToken);
        assert_eq!(TimeLeft::NoToken.as_duration(), None);
        assert_eq!(TimeLeft::NeverExpires.as_duration(), None);
        assert_eq!(TimeLeft::ExpiresIn(minute).as_duration(), Some(minute));
        assert!(!TimeLeft::NoToken.has_token());
        assert!(TimeLeft::ExpiresIn(Duration::ZERO).has_token());
        assert!(TimeLeft::NeverExpires.has_token());
    }

    #[test]
    fn ordered_by_time_left() {
        let minute = Duration::from_secs(60);
        assert!(TimeLeft::NoToken < TimeLeft::ExpiresIn(Duration::ZERO));
        assert!(TimeLeft::ExpiresIn(minute) < TimeLeft::ExpiresIn(2 * minute));
        assert!(TimeLeft::ExpiresIn(Duration::MAX) < TimeLeft::NeverExpires);
    }
}

//! Reading the environment variables platforms set.

use super::ConfigError;

/// The value of `variable`, or `None` when it is unset or empty (as the
/// platforms' SDKs treat an empty value).
pub(crate) fn optional(variable: &str) -> Option<String> {
    std::env::var(variable)
        .ok()
        .filter(|value| !value.is_empty())
}

/// The value of `variable`, or an error naming it, with what to check.
pub(crate) fn required(
    provider: &'static str,
    variable: &'static str,
    what_to_check: &'static str,
) -> Result<String, ConfigError> {
    optional(variable).ok_or_else(|| ConfigError::missing(provider, variable, what_to_check))
}

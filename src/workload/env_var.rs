//! [`EnvVarError`]: a platform's environment variable that a `from_env`
//! constructor needs is missing or unusable.

use std::fmt;

/// A `from_env` constructor could not read a variable it needs: it names
/// the variable and the platform setting that provides it, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVarError {
    variable: &'static str,
    problem: Problem,
    hint: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    NotSet,
    Empty,
    NotUnicode,
    Invalid(&'static str),
}

impl EnvVarError {
    /// The variable that is missing or unusable.
    pub fn variable(&self) -> &'static str {
        self.variable
    }
}

impl fmt::Display for EnvVarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let problem = match self.problem {
            Problem::NotSet => "is not set",
            Problem::Empty => "is empty",
            Problem::NotUnicode => "is not valid Unicode",
            Problem::Invalid(why) => why,
        };
        write!(f, "environment variable {} {problem}", self.variable)?;
        if !self.hint.is_empty() {
            write!(f, " ({})", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for EnvVarError {}

/// The value of `variable`, which must be set and not empty; `hint` says
/// what normally sets it.
pub(crate) fn required(variable: &'static str, hint: &'static str) -> Result<String, EnvVarError> {
    let problem = match std::env::var(variable) {
        Ok(value) if !value.trim().is_empty() => return Ok(value),
        Ok(_) => Problem::Empty,
        Err(std::env::VarError::NotPresent) => Problem::NotSet,
        Err(std::env::VarError::NotUnicode(_)) => Problem::NotUnicode,
    };
    Err(EnvVarError {
        variable,
        problem,
        hint,
    })
}

/// `variable` is set but its value cannot be used, for the reason `why`
/// (which must not quote the value).
pub(crate) fn invalid(variable: &'static str, why: &'static str) -> EnvVarError {
    EnvVarError {
        variable,
        problem: Problem::Invalid(why),
        hint: "",
    }
}

/// The value of `variable` if it is set and not empty.
pub(crate) fn optional(variable: &'static str) -> Option<String> {
    std::env::var(variable)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

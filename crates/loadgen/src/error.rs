//! Errors that stop a run before it starts, each with a stable code the
//! binding passes on to JS. Failures of single requests are not errors of
//! the run: they are counted (`stats::FailureKind`).

use std::fmt;

/// Why a load run could not start.
///
/// ```
/// use httpy_loadgen::LoadError;
/// let e = LoadError::InvalidOption("concurrency must be 1-100000 (got 0)".into());
/// assert_eq!(e.code(), "ERR_HTTPY_INVALID_OPTION");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// An option is out of range or malformed.
    InvalidOption(String),
    /// The option is valid but this build cannot do it (e.g. HTTP/3).
    Unsupported(String),
    /// The host name does not resolve to any address.
    Resolve(String),
    /// The generator's runtime could not start.
    Runtime(String),
}

impl LoadError {
    /// Stable code, matched on by callers.
    pub fn code(&self) -> &'static str {
        match self {
            LoadError::InvalidOption(_) => "ERR_HTTPY_INVALID_OPTION",
            LoadError::Unsupported(_) => "ERR_HTTPY_NOT_SUPPORTED",
            LoadError::Resolve(_) => "ERR_HTTPY_BENCH_UNREACHABLE",
            LoadError::Runtime(_) => "ERR_HTTPY_INTERNAL",
        }
    }

    /// Human-readable message, without the code.
    pub fn message(&self) -> &str {
        match self {
            LoadError::InvalidOption(m)
            | LoadError::Unsupported(m)
            | LoadError::Resolve(m)
            | LoadError::Runtime(m) => m,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for LoadError {}

//! One opaque error type for everything the engine reports to its embedder.
//! Callers branch on `kind()`/`is_*` and on the stable `code()` string, never
//! on the message text.

use std::fmt;

/// Any error a body producer or encoder may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The address is already bound by another socket.
    AddrInUse,
    /// The address is not available on this host.
    AddrNotAvailable,
    /// Binding was refused by the OS for permission reasons.
    Permission,
    /// Any other listen/bind failure.
    Listen,
    /// A route pattern was invalid.
    Route,
    /// The server was already closed.
    Closed,
    /// A response given by the embedder could not be used.
    InvalidResponse,
    /// A TLS certificate or key could not be read or used.
    Tls,
    /// A setting the engine could not apply (an unopenable log file, an
    /// option the platform lacks).
    InvalidOption,
    /// Anything else (runtime start-up, ...).
    Internal,
}

pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn from_bind(err: std::io::Error, addr: &str) -> Self {
        use std::io::ErrorKind as K;
        let kind = match err.kind() {
            K::AddrInUse => ErrorKind::AddrInUse,
            K::AddrNotAvailable => ErrorKind::AddrNotAvailable,
            K::PermissionDenied => ErrorKind::Permission,
            _ => ErrorKind::Listen,
        };
        Self::new(kind, format!("cannot listen on {addr}: {err}"))
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn is_addr_in_use(&self) -> bool {
        self.kind == ErrorKind::AddrInUse
    }

    /// Stable code in the style of Node.js system errors (`EADDRINUSE`) or
    /// HTTPy's own (`ERR_HTTPY_…`).
    pub fn code(&self) -> &'static str {
        match self.kind {
            ErrorKind::AddrInUse => "EADDRINUSE",
            ErrorKind::AddrNotAvailable => "EADDRNOTAVAIL",
            ErrorKind::Permission => "EACCES",
            ErrorKind::Listen => "ERR_HTTPY_LISTEN",
            ErrorKind::Route => "ERR_HTTPY_INVALID_ROUTE",
            ErrorKind::Closed => "ERR_HTTPY_SERVER_CLOSED",
            ErrorKind::InvalidResponse => "ERR_HTTPY_INVALID_RESPONSE",
            ErrorKind::Tls => "ERR_HTTPY_TLS",
            ErrorKind::InvalidOption => "ERR_HTTPY_INVALID_OPTION",
            ErrorKind::Internal => "ERR_HTTPY_INTERNAL",
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

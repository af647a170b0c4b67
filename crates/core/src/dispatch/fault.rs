//! Fault injection for the reliability tests: proof that a panic on a Tokio
//! thread becomes a 500 and the server keeps serving.
//!
//! Off unless the environment variable `HTTPY_TEST_PANIC_PATH` is set when a
//! server starts; it is read once there, so the request path costs one
//! `Option` check. With `HTTPY_TEST_PANIC_PATH=/__panic`, every request for
//! exactly `/__panic` panics inside the engine (before routing).

/// The environment variable that arms [`Faults`].
pub const PANIC_PATH_ENV: &str = "HTTPY_TEST_PANIC_PATH";

/// Faults armed for one server.
///
/// ```
/// let f = httpy_core::Faults::default();
/// f.check("/anything"); // unarmed: never panics
/// ```
#[derive(Debug, Default, Clone)]
pub struct Faults {
    panic_path: Option<String>,
}

impl Faults {
    /// Reads [`PANIC_PATH_ENV`]; an unset or empty variable arms nothing.
    pub fn from_env() -> Self {
        Self {
            panic_path: std::env::var(PANIC_PATH_ENV).ok().filter(|p| !p.is_empty()),
        }
    }

    /// True when the variable was set at start.
    pub fn armed(&self) -> bool {
        self.panic_path.is_some()
    }

    /// Panics when `path` is the armed path.
    #[inline]
    pub fn check(&self, path: &str) {
        if let Some(p) = &self.panic_path {
            if p == path {
                panic!("injected panic for {path} ({PANIC_PATH_ENV})");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armed_path_panics_and_others_do_not() {
        let f = Faults {
            panic_path: Some("/boom".into()),
        };
        f.check("/boom/x");
        f.check("/");
        assert!(std::panic::catch_unwind(|| f.check("/boom")).is_err());
        assert!(!Faults::default().armed());
    }
}

//! Fault injection for the reliability tests: proof that a panic on a Tokio
//! thread becomes a 500 and the server keeps serving.
//!
//! Off unless the environment variable `HTTPY_TEST_PANIC_PATH` is set when a
//! server starts; it is read once there, so the request path costs one
//! `Option` check. With `HTTPY_TEST_PANIC_PATH=/__panic`, every request for
//! exactly `/__panic` panics inside the engine (before routing).
//!
//! Arming it also chains a panic hook in front of the process's one, so an
//! injected panic prints one line on stderr instead of Rust's report (and
//! a full backtrace under `RUST_BACKTRACE=1`): the reliability tests
//! inject dozens of them and their log should stay readable. Any other
//! panic goes to the previous hook untouched, backtrace included.

use std::any::Any;
use std::sync::Once;

/// The environment variable that arms [`Faults`].
pub const PANIC_PATH_ENV: &str = "HTTPY_TEST_PANIC_PATH";

/// What every injected panic's message starts with (the engine's and the
/// binding's `injectPanic`); how the hook tells them from real panics.
pub const INJECTED_PANIC: &str = "injected panic";

/// The message of a panic payload when it is an injected panic.
fn injected(payload: &dyn Any) -> Option<&str> {
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&'static str>().copied())?;
    msg.starts_with(INJECTED_PANIC).then_some(msg)
}

/// Puts the one-line hook for injected panics in front of the current
/// panic hook, once per process (later calls do nothing). Called when
/// fault injection is armed; a process that never arms it keeps its hook.
pub fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| match injected(info.payload()) {
            Some(msg) => {
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                eprintln!("httpy: {msg}{at} (fault injection; caught, no backtrace)");
            }
            None => previous(info),
        }));
    });
}

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
        let panic_path = std::env::var(PANIC_PATH_ENV).ok().filter(|p| !p.is_empty());
        if panic_path.is_some() {
            quiet_injected_panics();
        }
        Self { panic_path }
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
                panic!("{INJECTED_PANIC} for {path} ({PANIC_PATH_ENV})");
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

    #[test]
    fn only_injected_messages_count_as_injected() {
        let formatted: Box<dyn Any> = Box::new(format!("{INJECTED_PANIC} for /x"));
        assert_eq!(injected(formatted.as_ref()), Some("injected panic for /x"));
        let literal: Box<dyn Any> = Box::new("injected panic in a binding call");
        assert!(injected(literal.as_ref()).is_some());
        for real in [
            "index out of bounds",
            "called `Option::unwrap()` on a `None` value",
        ] {
            let b: Box<dyn Any> = Box::new(real.to_string());
            assert_eq!(injected(b.as_ref()), None);
        }
        let other: Box<dyn Any> = Box::new(42u32);
        assert_eq!(injected(other.as_ref()), None);
    }
}

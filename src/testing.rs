//! Test-only fault injection on the JS thread: proves that a Rust panic
//! inside a binding call becomes a JS exception instead of aborting Node.
//!
//! Inert unless `HTTPY_TEST_PANIC_PATH` is set (the same switch that arms the
//! engine's panic route, see `httpy_core::Faults`).

use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Panics inside a `catch_unwind` binding when fault injection is armed;
/// otherwise throws `ERR_HTTPY_NOT_SUPPORTED`.
///
/// ```js
/// // HTTPY_TEST_PANIC_PATH=/__panic node app.js
/// try { native.injectPanic() } catch (e) { /* a JS Error, the process lives */ }
/// ```
#[napi(catch_unwind)]
pub fn inject_panic() -> Result<()> {
    if !httpy_core::Faults::from_env().armed() {
        return Err(Error::new(
            Status::GenericFailure,
            format!(
                "ERR_HTTPY_NOT_SUPPORTED: fault injection is off (set {})",
                httpy_core::PANIC_PATH_ENV
            ),
        ));
    }
    panic!("injected panic in a binding call");
}

//! Build metadata of the binary, so the JS package can refuse to run
//! against a `.node` file from another release.

use napi_derive::napi;

/// The version this binary was built as (the workspace version, kept equal
/// to `package.json`'s). The loader compares the two at start-up.
///
/// ```js
/// require('./native/index.cjs').version() // '0.1.0'
/// ```
#[napi]
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

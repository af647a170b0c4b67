//! The route table as JS sends it (`NativeRoute`), converted to the core's
//! [`Router`]: patterns, and what a route may carry for the core to answer
//! without JS (a `serveStatic` mount, a route cache).

use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::time::Duration;

use httpy_core::{BodyStreaming, MultipartLimits, RouteExtra};
use httpy_core::{Dotfiles, Router, StaticMount};

use crate::convert::{invalid, ms};

#[napi(object)]
pub struct NativeRoute {
    pub method: String,
    pub pattern: String,
    pub id: u32,
    /// Set on the catch-all route of a `serveStatic` mount.
    pub static_files: Option<NativeStatic>,
    /// Route cache ttl in milliseconds.
    pub cache_ttl_ms: Option<f64>,
    /// Request headers that join the route cache's key (lower case). A
    /// request carrying `Authorization` or `Cookie` is answered from the
    /// cache only when that header is named here.
    pub cache_key_headers: Option<Vec<String>>,
    /// Long request bodies stream to JS (`takeUpload`) instead of arriving whole.
    pub stream_body: Option<bool>,
    /// `multipart/form-data` bodies are parsed by the core and stream to JS
    /// as parts (implies `stream_body`).
    pub multipart: Option<NativeMultipart>,
    /// With `multipart`: bodies stream raw, and only a `multipart/form-data`
    /// one taken as parts (`takeUpload(id, cb, true)`) is parsed (a fetch
    /// handler's `formData()`).
    pub parts_on_ask: Option<bool>,
}

/// The limits of a route's multipart parsing, validated by the TS layer.
#[napi(object)]
pub struct NativeMultipart {
    pub max_parts: u32,
    pub max_field_size: f64,
    pub max_file_size: f64,
    pub max_header_size: f64,
}

/// A `serveStatic` mount attached to its catch-all route.
#[napi(object)]
pub struct NativeStatic {
    pub dir: String,
    pub max_age: Option<f64>,
    pub immutable: bool,
    pub etag: bool,
    /// Index file name; empty disables index files.
    pub index: String,
    /// `ignore`, `deny` or `allow`.
    pub dotfiles: String,
    /// Interval between checks of a cached file against the disk.
    pub revalidate_ms: f64,
}

pub(crate) fn build_router(routes: &[NativeRoute]) -> Result<Router> {
    let mut router = Router::new();
    for r in routes {
        router
            .insert(&r.method, &r.pattern, r.id)
            .map_err(|e| invalid("ERR_HTTPY_INVALID_ROUTE", e))?;
        apply_extras(&mut router, r)?;
        if let Some(m) = &r.multipart {
            let limits = multipart_limits(m);
            router.set_streams_body(
                r.id,
                if r.parts_on_ask == Some(true) {
                    BodyStreaming::RawOrParts(limits)
                } else {
                    BodyStreaming::Multipart(limits)
                },
            );
        } else if r.stream_body == Some(true) {
            router.set_streams_body(r.id, BodyStreaming::Raw);
        }
    }
    Ok(router)
}

/// The core's multipart limits from the TS layer's (validated there).
pub(crate) fn multipart_limits(m: &NativeMultipart) -> MultipartLimits {
    MultipartLimits {
        max_parts: m.max_parts,
        max_field_size: m.max_field_size.max(0.0) as u64,
        max_file_size: m.max_file_size.max(0.0) as u64,
        max_header_size: m.max_header_size.max(0.0) as u64,
    }
}

/// Checks route patterns without starting anything (used at registration
/// so a bad pattern fails where it is written).
#[napi(catch_unwind)]
pub fn validate_route(method: String, pattern: String) -> Result<()> {
    build_router(&[NativeRoute {
        method,
        pattern,
        id: 0,
        static_files: None,
        cache_ttl_ms: None,
        cache_key_headers: None,
        stream_body: None,
        multipart: None,
        parts_on_ask: None,
    }])
    .map(|_| ())
}

/// Attaches a route's static mount or cache ttl to the router.
fn apply_extras(router: &mut Router, r: &NativeRoute) -> Result<()> {
    if let Some(s) = &r.static_files {
        let mut mount = StaticMount::new(&s.dir).map_err(|e| {
            invalid(
                "ERR_HTTPY_INVALID_OPTION",
                format!("serveStatic: cannot serve {:?}: {e}", s.dir),
            )
        })?;
        mount.max_age = s.max_age.map(|v| v.max(0.0) as u64);
        mount.immutable = s.immutable;
        mount.etag = s.etag;
        mount.index = (!s.index.is_empty()).then(|| s.index.clone());
        mount.dotfiles = match s.dotfiles.as_str() {
            "allow" => Dotfiles::Allow,
            "deny" => Dotfiles::Deny,
            _ => Dotfiles::Ignore,
        };
        mount.revalidate = ms(s.revalidate_ms);
        router.set_extra(r.id, RouteExtra::Static(mount));
    } else if let Some(ttl) = r.cache_ttl_ms {
        if ttl > 0.0 {
            let ttl = Duration::from_micros((ttl * 1000.0) as u64);
            let names = r.cache_key_headers.as_deref().unwrap_or_default();
            let extra = RouteExtra::cache(ttl, names)
                .map_err(|e| invalid("ERR_HTTPY_INVALID_OPTION", format!("cache.key: {e}")))?;
            router.set_extra(r.id, extra);
        }
    }
    Ok(())
}

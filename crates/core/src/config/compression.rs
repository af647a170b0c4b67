//! The `compression` setting: which codings, from what size, for which
//! media types, at what level. It is a plain value kept with the other
//! settings so that `config/` depends on no layer above it; what the
//! setting means at answer time (negotiation, the encoders) lives in
//! `respond/compress.rs`.

/// The `compression` server option, validated by the embedder.
#[derive(Debug, Clone)]
pub struct CompressConfig {
    pub gzip: bool,
    pub br: bool,
    pub zstd: bool,
    /// Bodies shorter than this are sent as they are.
    pub min_size: usize,
    /// Compressible media types; an entry ending in `/` (or `/*`) is a
    /// prefix. Empty means the built-in list.
    pub types: Vec<String>,
    /// One level for every coding, clamped to each coding's range; `None`
    /// picks fast defaults suited to dynamic content.
    pub level: Option<u32>,
}

impl Default for CompressConfig {
    fn default() -> Self {
        Self {
            gzip: true,
            br: true,
            zstd: true,
            min_size: 1024,
            types: Vec::new(),
            level: None,
        }
    }
}

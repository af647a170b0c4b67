//! Fuzz targets for the parsers of hostile input that the crate keeps
//! private: `Range`, `Accept-Encoding`, the static-file path resolver and
//! the HTTP/1.1 driver's chunked decoder.
//! They live inside the crate (test builds only) because these functions
//! are not part of the public API; the targets that go through a running
//! server are in `tests/fuzz_server.rs`, and the record round trip is at
//! the end of `embedder/record.rs`.
//!
//! Each target replays its seed corpus (`tests/corpus/<target>/`), then
//! checks `HTTPY_FUZZ_CASES` mutants of it (see `tests/support/fuzz.rs`);
//! the structured targets compare the parsers with a model of the RFC on
//! generated well-formed headers.

#[path = "../tests/support/fuzz.rs"]
pub(crate) mod fuzz;

use proptest::prelude::*;
use std::path::Component;

use crate::respond::compress::CompressConfig;
use crate::respond::static_files::{parse_range, resolve, RangeSpec};
use crate::{Coding, Dotfiles, StaticMount};

const LENGTHS: [u64; 6] = [0, 1, 2, 10, 1_000_000, u64::MAX];

#[test]
fn range_never_outside_the_file() {
    fuzz::run("range", |input| {
        let header = String::from_utf8_lossy(input);
        for len in LENGTHS {
            if let RangeSpec::Part(a, b) = parse_range(&header, len) {
                prop_assert!(a <= b && b < len, "{header:?} on {len} bytes gave {a}-{b}");
            }
        }
        Ok(())
    });
}

/// The ranges RFC 9110 14.1.2 allows in one `bytes=` spec, and what a file
/// of `len` bytes answers to each.
#[derive(Debug, Clone)]
enum Spec {
    FromTo(u64, u64),
    From(u64),
    Last(u64),
}

fn expected(spec: &Spec, len: u64) -> RangeSpec {
    match *spec {
        Spec::FromTo(a, b) if a > b => RangeSpec::Whole, // invalid: ignored
        Spec::FromTo(a, _) | Spec::From(a) if a >= len => RangeSpec::Unsatisfiable,
        Spec::FromTo(a, b) => RangeSpec::Part(a, b.min(len - 1)),
        Spec::From(a) => RangeSpec::Part(a, len - 1),
        Spec::Last(0) => RangeSpec::Unsatisfiable,
        Spec::Last(_) if len == 0 => RangeSpec::Unsatisfiable,
        Spec::Last(n) => RangeSpec::Part(len - n.min(len), len - 1),
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    let n = prop_oneof![0u64..40, any::<u64>()];
    prop_oneof![
        (n.clone(), n.clone()).prop_map(|(a, b)| Spec::FromTo(a, b)),
        n.clone().prop_map(Spec::From),
        n.prop_map(Spec::Last),
    ]
}

#[test]
fn range_matches_the_rfc_on_single_ranges() {
    let strategy = (spec(), prop_oneof![0u64..50, any::<u64>()], " {0,2}");
    fuzz::run_strategy("range model", strategy, |(spec, len, pad)| {
        let header = match &spec {
            Spec::FromTo(a, b) => format!("{pad}bytes={a}-{b}{pad}"),
            Spec::From(a) => format!("bytes={pad}{a}-"),
            Spec::Last(n) => format!("bytes=-{n}{pad}"),
        };
        prop_assert_eq!(
            parse_range(&header, len),
            expected(&spec, len),
            "{}",
            header
        );
        Ok(())
    });
}

const CODINGS: [(Coding, &str); 3] = [
    (Coding::Gzip, "gzip"),
    (Coding::Br, "br"),
    (Coding::Zstd, "zstd"),
];

fn configs() -> Vec<CompressConfig> {
    (0..8)
        .map(|bits| CompressConfig {
            gzip: bits & 1 != 0,
            br: bits & 2 != 0,
            zstd: bits & 4 != 0,
            ..CompressConfig::default()
        })
        .collect()
}

fn enabled(c: &CompressConfig, coding: Coding) -> bool {
    match coding {
        Coding::Gzip => c.gzip,
        Coding::Br => c.br,
        Coding::Zstd => c.zstd,
    }
}

#[test]
fn accept_encoding_picks_only_what_is_offered() {
    let configs = configs();
    fuzz::run("accept_encoding", |input| {
        let header = String::from_utf8_lossy(input);
        let lower = header.to_ascii_lowercase();
        for c in &configs {
            let got = c.negotiate(Some(&header));
            if let Some(coding) = got {
                let name = CODINGS.iter().find(|(k, _)| *k == coding).unwrap().1;
                prop_assert!(enabled(c, coding), "{header:?} chose disabled {name}");
                prop_assert!(
                    lower.contains(name) || lower.contains('*'),
                    "{header:?} chose {name}, which it does not name"
                );
            }
            // Tokens and weights are case-insensitive.
            if header.is_ascii() {
                let upper = header.to_ascii_uppercase();
                prop_assert_eq!(c.negotiate(Some(&upper)), got, "{:?}", header);
            }
        }
        Ok(())
    });
}

/// What RFC 9110 12.5.3 makes of a list of (coding, weight) entries, with
/// this server's preference (zstd, br, gzip) among equal weights. Weights
/// are in thousandths; a later entry for the same coding replaces an
/// earlier one.
fn model_negotiate(c: &CompressConfig, entries: &[(&str, Option<u16>)]) -> Option<Coding> {
    let q_of = |names: &[&str]| {
        entries
            .iter()
            .rev()
            .find(|(n, _)| names.contains(&n.to_ascii_lowercase().as_str()))
            .map(|(_, q)| q.unwrap_or(1000))
    };
    let star = q_of(&["*"]);
    let mut best: Option<(Coding, u16)> = None;
    for (coding, names) in [
        (Coding::Zstd, &["zstd"][..]),
        (Coding::Br, &["br"]),
        (Coding::Gzip, &["gzip", "x-gzip"]),
    ] {
        let q = q_of(names).or(star).unwrap_or(0);
        if enabled(c, coding) && q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((coding, q));
        }
    }
    best.map(|(c, _)| c)
}

/// `q` (thousandths) in one of the spellings RFC 9110 12.4.2 allows:
/// shortest (`1`, `0.5`), three digits (`1.000`, `0.500`), or a bare point
/// (`1.`, `0.`) for the ends.
fn weight_text(q: u16, style: u8) -> String {
    let digits = format!("{:03}", q % 1000);
    match (q, style % 3) {
        (1000, 0) => "1".into(),
        (1000, 1) => "1.000".into(),
        (1000, _) => "1.".into(),
        (0, 0) => "0".into(),
        (0, 2) => "0.".into(),
        (_, 0) => format!("0.{}", digits.trim_end_matches('0')),
        _ => format!("0.{digits}"),
    }
}

#[test]
fn accept_encoding_matches_the_rfc_on_well_formed_lists() {
    const NAMES: [&str; 9] = [
        "gzip", "x-gzip", "br", "zstd", "*", "identity", "deflate", "GZip", "BR",
    ];
    let entry = (
        proptest::sample::select(&NAMES[..]),
        proptest::option::of(prop_oneof![Just(0u16), Just(1000u16), 0u16..=1000]),
        any::<u8>(),
    );
    let strategy = (proptest::collection::vec(entry, 0..6), " {0,2}");
    let configs = configs();
    fuzz::run_strategy("accept_encoding model", strategy, |(entries, pad)| {
        let header = entries
            .iter()
            .map(|(n, q, style)| match q {
                Some(q) => format!("{pad}{n}{pad};{pad}q={}{pad}", weight_text(*q, *style)),
                None => format!("{pad}{n}{pad}"),
            })
            .collect::<Vec<_>>()
            .join(",");
        let plain: Vec<(&str, Option<u16>)> = entries.iter().map(|(n, q, _)| (*n, *q)).collect();
        for c in &configs {
            prop_assert_eq!(
                c.negotiate(Some(&header)),
                model_negotiate(c, &plain),
                "{:?}",
                header
            );
        }
        Ok(())
    });
}

#[test]
fn static_paths_stay_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let mounts: Vec<StaticMount> = [Dotfiles::Ignore, Dotfiles::Deny, Dotfiles::Allow]
        .into_iter()
        .map(|dotfiles| StaticMount {
            dotfiles,
            ..StaticMount::new(dir.path()).unwrap()
        })
        .collect();
    fuzz::run("static_path", |input| {
        let rel = String::from_utf8_lossy(input);
        for mount in &mounts {
            let Ok(path) = resolve(mount, &rel) else {
                continue;
            };
            let inner = path.strip_prefix(&mount.root);
            prop_assert!(inner.is_ok(), "{rel:?} resolved outside: {path:?}");
            for part in inner.unwrap().components() {
                let Component::Normal(name) = part else {
                    return Err(TestCaseError::fail(format!(
                        "{rel:?} gave {part:?} in {path:?}"
                    )));
                };
                let name = name.to_string_lossy();
                prop_assert!(!name.contains(['\\', '\0']), "{rel:?}: {name:?}");
                if mount.dotfiles != Dotfiles::Allow {
                    prop_assert!(!name.starts_with('.'), "{rel:?}: dot-file {name:?}");
                }
            }
        }
        Ok(())
    });
}

/// A decoded body and what followed it.
type Split = (Vec<u8>, Vec<u8>);

/// Decodes a chunked body fed in pieces of `step` bytes: the body, and
/// what was left after it, or the error (`None`: it needs more input).
fn decode_chunked(
    input: &[u8],
    step: usize,
) -> Option<Result<Split, crate::proto::h1::decode::DecodeError>> {
    use crate::proto::h1::decode::{Decoded, Decoder};
    let mut dec = Decoder::chunked();
    let mut buf = bytes::BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        match dec.decode(&mut buf) {
            Err(e) => return Some(Err(e)),
            Ok(Decoded::Data(b)) => body.extend_from_slice(&b),
            Ok(Decoded::Done) => {
                let mut rest = buf.to_vec();
                rest.extend_from_slice(&input[fed..]);
                return Some(Ok((body, rest)));
            }
            Ok(Decoded::NeedMore) if fed == input.len() => return None,
            Ok(Decoded::NeedMore) => {
                let end = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
        }
    }
}

/// The own HTTP/1.1 driver's chunked decoder alone, on the `chunked`
/// corpus (the body after each seed's head) and its mutants: it never
/// panics, never yields more bytes than it read, and decodes the same
/// whether the input arrives whole or a byte at a time (so no split of the
/// input across reads can change where a body ends).
#[test]
fn chunked_decoder_is_split_invariant() {
    fuzz::run("chunked", |input| {
        let body = input
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(input, |at| &input[at + 4..]);
        let whole = decode_chunked(body, body.len().max(1));
        let bytewise = decode_chunked(body, 1);
        if let Some(Ok((got, rest))) = &whole {
            prop_assert!(got.len() + rest.len() <= body.len());
        }
        prop_assert_eq!(format!("{whole:?}"), format!("{bytewise:?}"));
        Ok(())
    });
}

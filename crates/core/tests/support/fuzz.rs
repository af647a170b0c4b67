//! The fuzz targets' common half: checked-in seed corpora, byte-level
//! mutations of them, and a runner that replays every seed unchanged before
//! exploring mutants. Used by the targets that need the server
//! (`tests/fuzz_server.rs`) and, through `#[path]`, by the in-crate targets
//! for private parsers (`src/fuzz_targets.rs`).
//!
//! Mutations are proptest values, so a failure shrinks to a small list of
//! edits of one seed, and the report prints the minimal input. A failing
//! input is kept by adding it as a file to its corpus directory
//! (`tests/corpus/<target>/`), which every later run replays first.
//!
//! The number of mutants per target is `HTTPY_FUZZ_CASES` (default
//! [`DEFAULT_CASES`], so `cargo test` stays fast); the long run before a
//! release is described in `docs/testing.md`.

#![allow(dead_code)] // each including crate uses its own part

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::path::PathBuf;

/// Mutants per target when `HTTPY_FUZZ_CASES` is not set.
pub const DEFAULT_CASES: u32 = 64;

/// Mutants per target for this run.
pub fn cases() -> u32 {
    std::env::var("HTTPY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The seed files of `target`, sorted by name so runs are repeatable.
/// An empty or missing corpus is a mistake, not a pass.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "seed corpus {} is empty", dir.display());
    seeds
}

/// Byte sequences that matter to the parsers under test; inserting them
/// finds framing mistakes faster than random bytes do.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"=",
    b"-",
    b"/",
    b"..",
    b"%2e",
    b"%2f",
    b"%00",
    b"\\",
    b"\0",
    b"0",
    b"1",
    b"ffffffffffffffff",
    b"18446744073709551616",
    b"chunked",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 5\r\n",
    b"bytes=",
    b"q=",
    b"\xff",
    b"\xc3\xa9",
];

/// One edit of an input; positions are proportions, so they stay valid
/// whatever the input's length.
#[derive(Clone, Debug)]
pub enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Delete(Index, Index),
    Token(Index, Index),
    Repeat(Index, Index, u8),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::Token(i, t)),
        (any::<Index>(), any::<Index>(), 2u8..16).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

/// Applies `m` to `input`.
pub fn apply(input: &mut Vec<u8>, m: &Mutation) {
    let len = input.len();
    let at = |i: &Index| if len == 0 { 0 } else { i.index(len) };
    let gap = |i: &Index| i.index(len + 1);
    match m {
        Mutation::Flip(i, bit) if len > 0 => input[at(i)] ^= 1 << bit,
        Mutation::Set(i, b) if len > 0 => input[at(i)] = *b,
        Mutation::Insert(i, b) => input.insert(gap(i), *b),
        Mutation::Delete(i, n) if len > 0 => {
            let start = at(i);
            let end = (start + 1 + n.index(8)).min(len);
            input.drain(start..end);
        }
        Mutation::Token(i, t) => {
            let token = TOKENS[t.index(TOKENS.len())];
            let g = gap(i);
            input.splice(g..g, token.iter().copied());
        }
        Mutation::Repeat(i, n, times) if len > 0 => {
            let start = at(i);
            let end = (start + 1 + n.index(16)).min(len);
            let piece = input[start..end].to_vec();
            for _ in 1..*times {
                input.splice(end..end, piece.iter().copied());
            }
        }
        Mutation::Truncate(i) => input.truncate(gap(i)),
        _ => {}
    }
}

/// A seed of `seeds` with up to eight mutations applied.
pub fn mutants(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::sample::select(seeds),
        proptest::collection::vec(mutation(), 1..8),
    )
        .prop_map(|(mut input, edits)| {
            for m in &edits {
                apply(&mut input, m);
            }
            input
        })
}

/// `b"GET /\r\n\xff"` as `"GET /\r\n\xff"`: failing inputs printed so they
/// can be pasted into a corpus file.
pub fn show(input: &[u8]) -> String {
    input.escape_ascii().to_string()
}

/// Checks every seed of `target` as it is, then [`cases`] mutants of them.
/// Panics with the (shrunk) failing input.
pub fn run(target: &str, check: impl Fn(&[u8]) -> Result<(), TestCaseError>) {
    let seeds = corpus(target);
    for (name, seed) in &seeds {
        if let Err(e) = check(seed) {
            panic!("{target}: seed {name} fails: {e}\ninput: {}", show(seed));
        }
    }
    let seeds: Vec<Vec<u8>> = seeds.into_iter().map(|(_, s)| s).collect();
    run_strategy(target, mutants(seeds), |input| {
        check(&input).map_err(|e| match e {
            TestCaseError::Fail(why) => {
                TestCaseError::fail(format!("{why}\ninput: {}", show(&input)))
            }
            other => other,
        })
    });
}

/// Runs [`cases`] values of `strategy` through `check` (for targets whose
/// input is generated from a structure rather than mutated from seeds).
pub fn run_strategy<S: Strategy>(
    target: &str,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases: cases(),
        // Failures are kept as corpus files instead (see the module docs).
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, check) {
        panic!("{target}: {e}");
    }
}

//! The parameter sweep behind the WebSocket compressor's settings
//! (docs/websocket.md, *The parameter sweep*): every zlib-rs setting the
//! shared compressor could use, timed the way `ws/deflate.rs` uses it (a
//! reset, then one sync-flushed deflate per message, the trailing
//! `00 00 ff ff` dropped), on three sets of 64 realistic JSON messages.
//!
//! The question it answers: is there a point that sends no more bytes than
//! uWebSockets.js (zlib level 6, `memLevel` 8, 32 KB window, default
//! strategy) for less CPU than zlib-rs's level 6? Phase 1 times every
//! combination of level 1-9, `memLevel` 1-9, window bits 9-15 and strategy
//! (default, filtered, RLE, fixed Huffman) briefly; phase 2 times the Pareto
//! front of each set (no other point both smaller and faster) again, longer
//! and interleaved with the reference points, and prints it.
//!
//!   cargo bench -p httpy-core --bench ws_deflate
//!   cargo bench -p httpy-core --bench ws_deflate -- --csv sweep.csv --ms 200
//!
//! A plain timing loop (harness = false), not part of `cargo test`. Bytes
//! are exact; times are ns per message on this machine, so compare them
//! within one run only.

use std::hint::black_box;
use std::time::Instant;
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Strategy};

/// The 64 documents of bench/ws-compressed.mjs, byte for byte: chat-like
/// arrays cut to exactly 1,024 bytes.
fn docs_1k() -> Vec<Vec<u8>> {
    (0..64u64)
        .map(|d| {
            let mut s = String::from("[");
            let mut i = 0u64;
            while s.len() + 1 < 1100 {
                if i > 0 {
                    s.push(',');
                }
                let text = if !i.is_multiple_of(3) {
                    "hello from the dashboard".to_string()
                } else {
                    format!("status {d}/{i} ok")
                };
                s.push_str(&format!(
                    r#"{{"id":{},"user":"user{}","room":"room-{}","text":"{}","ts":{}}}"#,
                    d * 100 + i,
                    (d + i) % 13,
                    d % 5,
                    text,
                    1_765_000_000 + d * 60 + i
                ));
                i += 1;
            }
            let mut b = s.into_bytes();
            b.truncate(1023);
            b.push(b']');
            b
        })
        .collect()
}

/// A small deterministic generator, so every run sees the same messages.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

const WORDS: [&str; 24] = [
    "the", "deploy", "is", "done", "can", "you", "check", "staging", "again", "thanks", "looks",
    "good", "to", "me", "lunch", "at", "noon", "build", "failed", "on", "main", "fixed", "it",
    "now",
];

/// One chat message of about 300 bytes: an envelope with a sender, a room,
/// a line of text and a few flags.
fn docs_300() -> Vec<Vec<u8>> {
    let mut r = Lcg(7);
    (0..64u64)
        .map(|d| {
            let words: Vec<&str> = (0..8 + r.next(8))
                .map(|_| WORDS[r.next(WORDS.len() as u64) as usize])
                .collect();
            format!(
                r#"{{"type":"message","id":"msg_{:08x}","room":"room-{}","user":{{"id":{},"name":"user{}","avatar":"https://cdn.example.com/a/{}.png"}},"text":"{}","ts":{},"edited":false,"reactions":[{{"emoji":"thumbsup","count":{}}}],"thread":null}}"#,
                r.next(1 << 32),
                d % 7,
                1000 + r.next(9000),
                r.next(50),
                r.next(50),
                words.join(" "),
                1_765_000_000_000 + d * 1234,
                r.next(9)
            )
            .into_bytes()
        })
        .collect()
}

/// A dashboard update of about 4 KB: per-host metrics with numbers that
/// vary, the kind of message a monitoring page receives every second.
fn docs_4k() -> Vec<Vec<u8>> {
    let mut r = Lcg(11);
    (0..64u64)
        .map(|d| {
            let mut s = format!(r#"{{"type":"metrics","seq":{},"hosts":["#, 5000 + d);
            let mut h = 0;
            while s.len() < 4000 {
                if h > 0 {
                    s.push(',');
                }
                s.push_str(&format!(
                    r#"{{"host":"web-{:02}","region":"{}","cpu":{}.{:02},"mem":{}.{:02},"rps":{},"p50":{}.{},"p99":{}.{},"errors":{},"status":"{}"}}"#,
                    h,
                    ["eu-west-1", "us-east-1", "ap-south-1"][h % 3],
                    r.next(100),
                    r.next(100),
                    r.next(100),
                    r.next(100),
                    r.next(20_000),
                    r.next(20),
                    r.next(10),
                    20 + r.next(400),
                    r.next(10),
                    r.next(5),
                    if r.next(10) == 0 { "degraded" } else { "ok" }
                ));
                h += 1;
            }
            s.push_str("]}");
            s.into_bytes()
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
struct Setting {
    level: u8,
    mem: u8,
    bits: u8,
    strategy: Strategy,
}

impl Setting {
    fn name(&self) -> String {
        let s = match self.strategy {
            Strategy::Default => "default",
            Strategy::Filtered => "filtered",
            Strategy::Rle => "rle",
            Strategy::Fixed => "fixed",
            Strategy::HuffmanOnly => "huffman",
        };
        format!(
            "level {} memLevel {} bits {} {}",
            self.level, self.mem, self.bits, s
        )
    }

    fn compressor(&self) -> Deflate {
        Deflate::new_with_config(DeflateConfig {
            level: self.level.into(),
            window_bits: -i32::from(self.bits),
            mem_level: self.mem.into(),
            strategy: self.strategy,
            ..DeflateConfig::default()
        })
    }
}

/// What `ws/deflate.rs` does per message in shared mode: reset, deflate
/// with a sync flush into `out`, drop the flush marker. Returns the bytes.
fn pack(c: &mut Deflate, data: &[u8], out: &mut [u8]) -> usize {
    c.reset();
    let before = c.total_out();
    c.compress(data, out, DeflateFlush::SyncFlush)
        .expect("room for the whole message");
    let n = (c.total_out() - before) as usize;
    assert!(out[..n].ends_with(&[0, 0, 0xff, 0xff]) && c.total_in() as usize == data.len());
    n - 4
}

/// Mean deflate bytes per message of `docs` (exact).
fn bytes(c: &mut Deflate, docs: &[Vec<u8>], out: &mut [u8]) -> f64 {
    let total: usize = docs.iter().map(|d| pack(c, d, out)).sum();
    total as f64 / docs.len() as f64
}

/// ns per message over `rounds` passes of `docs` (after one pass of warm-up).
fn time(c: &mut Deflate, docs: &[Vec<u8>], out: &mut [u8], rounds: usize) -> f64 {
    for d in docs {
        black_box(pack(c, d, out));
    }
    let t = Instant::now();
    for _ in 0..rounds {
        for d in docs {
            black_box(pack(c, black_box(d), out));
        }
    }
    t.elapsed().as_nanos() as f64 / (rounds * docs.len()) as f64
}

struct Point {
    set: usize,
    s: Setting,
    bytes: f64,
    ns: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let csv = arg("--csv");
    let long_ms: f64 = arg("--ms").and_then(|v| v.parse().ok()).unwrap_or(150.0);

    let sets = [
        ("300 B chat message", docs_300()),
        ("1 KB chat array (bench/ws-compressed.mjs)", docs_1k()),
        ("4 KB dashboard update", docs_4k()),
    ];
    for (name, docs) in &sets {
        let sizes: Vec<usize> = docs.iter().map(Vec::len).collect();
        println!(
            "{name}: 64 messages, {}-{} bytes",
            sizes.iter().min().unwrap(),
            sizes.iter().max().unwrap()
        );
    }
    let mut out = vec![0u8; 16 * 1024];

    // Phase 1: everything, briefly (the fastest of three short runs).
    let strategies = [
        Strategy::Default,
        Strategy::Filtered,
        Strategy::Rle,
        Strategy::Fixed,
    ];
    let mut points = Vec::new();
    let t0 = Instant::now();
    for level in 1..=9u8 {
        for mem in 1..=9u8 {
            for bits in 9..=15u8 {
                for strategy in strategies {
                    let s = Setting {
                        level,
                        mem,
                        bits,
                        strategy,
                    };
                    let mut c = s.compressor();
                    for (set, (_, docs)) in sets.iter().enumerate() {
                        let rounds = if set == 2 { 2 } else { 4 };
                        let b = bytes(&mut c, docs, &mut out);
                        let ns = (0..3)
                            .map(|_| time(&mut c, docs, &mut out, rounds))
                            .fold(f64::MAX, f64::min);
                        points.push(Point {
                            set,
                            s,
                            bytes: b,
                            ns,
                        });
                    }
                }
            }
        }
    }
    println!(
        "phase 1: {} settings x 3 sets in {:.1} s",
        points.len() / 3,
        t0.elapsed().as_secs_f64()
    );
    if let Some(path) = &csv {
        let mut text = String::from("set,level,mem_level,window_bits,strategy,bytes,ns\n");
        for p in &points {
            let n = p.s.name();
            let f: Vec<&str> = n.split(' ').collect();
            text.push_str(&format!(
                "{},{},{},{},{},{:.2},{:.0}\n",
                p.set, f[1], f[3], f[5], f[6], p.bytes, p.ns
            ));
        }
        std::fs::write(path, text).expect("write the CSV");
        println!("phase 1 written to {path}");
    }

    // Phase 2: per set, the Pareto front of phase 1 and the reference
    // points, timed again for `--ms` each, in interleaved rounds.
    let reference = |level, mem| Setting {
        level,
        mem,
        bits: 15,
        strategy: Strategy::Default,
    };
    let refs = [
        ("today's default", reference(1, 5)),
        ("today's level 6", reference(6, 5)),
        ("uWS's settings in zlib-rs", reference(6, 8)),
    ];
    for (set, (name, docs)) in sets.iter().enumerate() {
        let mut front: Vec<&Point> = points
            .iter()
            .filter(|p| p.set == set)
            .filter(|p| {
                !points.iter().any(|q| {
                    q.set == set
                        && q.bytes <= p.bytes
                        && q.ns <= p.ns
                        && (q.bytes < p.bytes || q.ns < p.ns)
                })
            })
            .collect();
        front.sort_by(|a, b| a.bytes.partial_cmp(&b.bytes).unwrap());
        // Among settings with the same bytes keep the phase-1 fastest.
        front.dedup_by(|a, b| a.bytes == b.bytes);
        let mut cands: Vec<(String, Setting)> =
            front.iter().map(|p| (String::from("front"), p.s)).collect();
        for (label, s) in refs {
            match cands.iter_mut().find(|(_, c)| *c == s) {
                Some(c) => c.0 = format!("front, {label}"),
                None => cands.push((label.to_string(), s)),
            }
        }
        let mut comps: Vec<Deflate> = cands.iter().map(|(_, s)| s.compressor()).collect();
        let byte_counts: Vec<f64> = comps.iter_mut().map(|c| bytes(c, docs, &mut out)).collect();
        // Rounds sized to ~`long_ms / 5` each from the phase-1 time.
        let per_msg = points
            .iter()
            .filter(|p| p.set == set)
            .map(|p| p.ns)
            .fold(0.0, f64::max);
        let rounds = ((long_ms / 5.0 * 1e6) / (per_msg * docs.len() as f64)).max(1.0) as usize;
        let mut samples = vec![Vec::new(); cands.len()];
        for _ in 0..5 {
            for (i, c) in comps.iter_mut().enumerate() {
                samples[i].push(time(c, docs, &mut out, rounds));
            }
        }
        println!("\n{name}: Pareto front (bytes of deflate per message, ns per message, median of 5 interleaved runs)");
        println!("| setting | bytes | ns | |");
        println!("| --- | --- | --- | --- |");
        let mut rows: Vec<(f64, f64, String, String)> = cands
            .iter()
            .zip(&byte_counts)
            .zip(&mut samples)
            .map(|(((label, s), b), t)| {
                t.sort_by(|a, b| a.partial_cmp(b).unwrap());
                (*b, t[2], s.name(), label.clone())
            })
            .collect();
        rows.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.total_cmp(&b.1)));
        for (b, ns, n, label) in rows {
            println!("| {n} | {b:.1} | {ns:.0} | {label} |");
        }
    }
}

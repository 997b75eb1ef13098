//! A small mutation fuzzer on the stable toolchain: seeded mutations of real fixtures (bit
//! flips, byte edits, truncations, splices, duplicated and deleted chunks, numbers replaced by
//! edge values, JSON numbers set huge), each case run under `catch_unwind` with the counting
//! allocator watching. A case fails if it panics or asks for a single allocation above its cap
//! (reported with the case's seed; a request above [`HARD_CAP`] is refused, which aborts).
//!
//! `SUCCULM_FUZZ_CASES` sets the cases per target (default [`DEFAULT_CASES`]),
//! `SUCCULM_FUZZ_SEED` the base seed (default 0). A failing case is written to
//! `target/fuzz-failures/<target>-<case>.bin` and reported with its seed, so it can be replayed
//! and kept as a regression case.
#![allow(dead_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common_alloc;

/// Single requests above this are refused outright (the process aborts).
pub const HARD_CAP: usize = 1 << 30;

/// Cases per target when `SUCCULM_FUZZ_CASES` is unset: small, so `cargo test` stays fast.
pub const DEFAULT_CASES: u64 = 2000;

/// Cases per target.
pub fn cases() -> u64 {
    std::env::var("SUCCULM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn base_seed() -> u64 {
    std::env::var("SUCCULM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Edge values a number in a file may be replaced with.
pub const EDGE_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "2",
    "3",
    "7",
    "100000",
    "4294967295",
    "4294967296",
    "4611686018427387904",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "1e5",
    "1e30",
    "1e39",
    "-1e39",
    "3e38",
    "1e-45",
    "1.5",
    "0.5",
    "-0.0",
    "NaN",
    "Infinity",
    "null",
    "true",
    "\"5\"",
    "[]",
    "{}",
];

/// One mutation of `input`, drawing from `donors` for splices.
pub fn mutate(rng: &mut StdRng, input: &[u8], donors: &[&[u8]]) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.gen_range(0..3);
    for _ in 0..rounds {
        if v.is_empty() {
            v.push(rng.gen());
            continue;
        }
        let n = v.len();
        match rng.gen_range(0..10) {
            // A bit flip.
            0 => {
                let i = rng.gen_range(0..n);
                v[i] ^= 1 << rng.gen_range(0..8);
            }
            // A byte set to a random or structural value.
            1 => {
                let i = rng.gen_range(0..n);
                const B: &[u8] = b"{}[],:\"\\0123456789-+.eE \n\x00\xff";
                v[i] = if rng.gen() {
                    rng.gen()
                } else {
                    B[rng.gen_range(0..B.len())]
                };
            }
            // A truncation.
            2 => v.truncate(rng.gen_range(0..n)),
            // A chunk deleted.
            3 => {
                let a = rng.gen_range(0..n);
                let b = (a + rng.gen_range(1..64)).min(n);
                v.drain(a..b);
            }
            // A chunk duplicated.
            4 => {
                let a = rng.gen_range(0..n);
                let b = (a + rng.gen_range(1..64)).min(n);
                let chunk = v[a..b].to_vec();
                let at = rng.gen_range(0..=v.len());
                v.splice(at..at, chunk);
            }
            // A splice from a donor (another fixture, or the input itself).
            5 => {
                let d = if donors.is_empty() || rng.gen() {
                    input
                } else {
                    donors[rng.gen_range(0..donors.len())]
                };
                if !d.is_empty() {
                    let a = rng.gen_range(0..d.len());
                    let b = (a + rng.gen_range(1..256)).min(d.len());
                    let at = rng.gen_range(0..=v.len());
                    let end = (at + rng.gen_range(0..256)).min(v.len());
                    v.splice(at..end, d[a..b].iter().copied());
                }
            }
            // A number (a run of digits, sign, dot, exponent) replaced by an edge value,
            // or digits appended to make it huge.
            6..=8 => {
                let starts: Vec<usize> = (0..n)
                    .filter(|&i| v[i].is_ascii_digit() && (i == 0 || !v[i - 1].is_ascii_digit()))
                    .collect();
                if starts.is_empty() {
                    continue;
                }
                let mut a = starts[rng.gen_range(0..starts.len())];
                if a > 0 && v[a - 1] == b'-' {
                    a -= 1;
                }
                let mut b = a + 1;
                while b < v.len() && (v[b].is_ascii_digit() || b".eE+-".contains(&v[b])) {
                    b += 1;
                }
                let new: Vec<u8> = if rng.gen_range(0..4) == 0 {
                    let mut s = v[a..b].to_vec();
                    for _ in 0..rng.gen_range(1..20) {
                        s.push(b'0' + rng.gen_range(0..10));
                    }
                    s
                } else {
                    EDGE_NUMBERS[rng.gen_range(0..EDGE_NUMBERS.len())]
                        .as_bytes()
                        .to_vec()
                };
                v.splice(a..b, new);
            }
            // Random bytes inserted.
            _ => {
                let at = rng.gen_range(0..=n);
                let k = rng.gen_range(1..16);
                let bytes: Vec<u8> = (0..k).map(|_| rng.gen()).collect();
                v.splice(at..at, bytes);
            }
        }
    }
    v
}

/// Runs `cases()` cases of `target`: each gets the case's generator and must return normally
/// within the allocation cap `cap(input_len)` (checked by `check_alloc`). Panics (after writing the
/// input) on the first failure. Returns the number of cases run.
pub fn run(
    target: &str,
    cap: impl Fn(usize) -> usize,
    mut case: impl FnMut(&mut StdRng) -> Vec<u8>,
    mut check: impl FnMut(&[u8]),
) -> u64 {
    let n = cases();
    let seed = base_seed();
    let salt: u64 = target.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    let started = std::time::Instant::now();
    for i in 0..n {
        let case_seed = seed ^ salt ^ i.wrapping_mul(0x9e3779b97f4a7c15);
        if i > 0 && i % 50_000 == 0 {
            eprintln!(
                "fuzz target {target}: {i} cases done in {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
        let mut rng = StdRng::seed_from_u64(case_seed);
        let input = case(&mut rng);
        let limit = cap(input.len());
        // Requests above the cap are recorded and reported below with the case's seed; only
        // requests above HARD_CAP are refused (that aborts: the loaders' input is then on disk).
        common_alloc::reset(HARD_CAP);
        let r = catch_unwind(AssertUnwindSafe(|| check(&input)));
        let largest = common_alloc::largest();
        common_alloc::reset(usize::MAX);
        if r.is_err() || largest > limit {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let p = dir.join(format!("{target}-{i}.bin"));
            let _ = std::fs::write(&p, &input);
            panic!(
                "fuzz target {target}: case {i} (seed {case_seed}) {}; input saved to {}",
                if r.is_err() {
                    "panicked".to_string()
                } else {
                    format!("allocated {largest} bytes at once (cap {limit})")
                },
                p.display()
            );
        }
    }
    eprintln!(
        "fuzz target {target}: {n} cases in {:.1} s, no panic, no allocation above the cap",
        started.elapsed().as_secs_f64()
    );
    n
}

/// A scratch file path unique to this process and `target`.
pub fn scratch(target: &str, ext: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "succulm-fuzz-{}-{target}.{ext}",
        std::process::id()
    ))
}

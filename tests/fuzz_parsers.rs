//! Mutation fuzzing of the tokenizer and of the command-line value parsers the examples use
//! (`succulm::study::cli`, the sweep's lists, methods, healing and calibration names), seeded from real
//! command lines and fixture text. Each case must end in an `Err` or a valid value, without a
//! panic or a large allocation. See `tests/common_fuzz` and `SUCCULM_FUZZ_CASES`.

mod common;
mod common_alloc;
mod common_fuzz;

use rand::Rng;
use succulm::study::cli;

#[global_allocator]
static ALLOC: common_alloc::Counting = common_alloc::Counting;

fn cap(len: usize) -> usize {
    (1 << 20) + 64 * len
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn fuzz_tokenizer() {
    let corpus = std::fs::read(common::fixture("background.txt")).unwrap();
    let vocab = common::vocab();
    common_fuzz::run(
        "tokenizer",
        cap,
        |rng| {
            let a = rng.gen_range(0..corpus.len() - 400);
            let seed = &corpus[a..a + rng.gen_range(1..400)];
            common_fuzz::mutate(
                rng,
                seed,
                &[b"Ruby? who's WINY!! 'x' \t\r\n \xc3\xa9 \xe2\x80\x99"],
            )
        },
        |bytes| {
            let s = text(bytes);
            let toks = succulm::tokenize(&s);
            assert!(toks
                .iter()
                .all(|t| !t.is_empty() && !t.chars().any(char::is_whitespace)));
            // Tokenizing the detokenized tokens is stable.
            let words: Vec<&str> = toks.iter().map(String::as_str).collect();
            let again = succulm::tokenize(&succulm::detokenize(&words));
            let words2: Vec<&str> = again.iter().map(String::as_str).collect();
            assert_eq!(succulm::tokenize(&succulm::detokenize(&words2)), again);
            let ids = vocab.encode(&s);
            assert_eq!(ids.len(), toks.len());
            assert!(ids.iter().all(|&i| (i as usize) < vocab.len()));
            match succulm::nn::generate::encode_prompt(&vocab, &s) {
                Ok(p) => assert!(!p.is_empty()),
                Err(e) => assert!(e.to_string().len() < 400),
            }
        },
    );
}

const SEEDS: &[&str] = &[
    "42",
    "0",
    "18446744073709551615",
    "1e-3",
    "0.6",
    "1",
    "50,47,42,39,33,27,20,15,10,5",
    "0,1,2,3,all",
    "0+1,2+3",
    "weight,whitened,scaled",
    "ce",
    "distill",
    "sequential",
    "one_shot",
    "0.5",
    "3:20",
];

#[test]
fn fuzz_flag_values() {
    common_fuzz::run(
        "flags",
        cap,
        |rng| {
            let seed = SEEDS[rng.gen_range(0..SEEDS.len())].as_bytes();
            let donor = SEEDS[rng.gen_range(0..SEEDS.len())].as_bytes();
            common_fuzz::mutate(rng, seed, &[donor])
        },
        |bytes| {
            let s = text(bytes);
            if let Ok(v) = cli::int::<u64>("--seed", &s, 0..=u64::MAX) {
                // Exactly the decimal digits given: no rounding, no sign, no fraction.
                let digits = s.trim().strip_prefix('+').unwrap_or(s.trim());
                assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{s:?}");
                let canonical = digits.trim_start_matches('0');
                let canonical = if canonical.is_empty() { "0" } else { canonical };
                assert_eq!(v.to_string(), canonical);
            }
            if let Ok(v) = cli::int::<usize>("--epochs", &s, 1..=1_000_000) {
                assert!((1..=1_000_000).contains(&v));
            }
            if let Ok(v) = cli::positive_f32("--lr", &s) {
                assert!(v.is_finite() && v >= f32::MIN_POSITIVE);
            }
            if let Ok(v) = cli::float("--budget", &s, 0.0..=1.0) {
                assert!((0.0..=1.0).contains(&v));
            }
            let shown = cli::shown(&s);
            assert!(shown.chars().count() <= cli::SHOWN_CHARS * 10 + 40);
            assert!(!shown.chars().any(char::is_control));
            let _ = cli::unknown(&s).to_string();
            if let Ok(b) = succulm::study::sweep::parse_bonds(&s) {
                assert!(!b.is_empty() && b.iter().all(|&x| x >= 1));
                let set: std::collections::HashSet<_> = b.iter().collect();
                assert_eq!(set.len(), b.len());
            }
            if let Ok(sets) = succulm::study::sweep::parse_block_sets(&s, 4) {
                assert!(sets
                    .iter()
                    .all(|s| !s.is_empty() && s.iter().all(|&b| b < 4)));
            }
            if let Ok(m) = succulm::study::sweep::parse_methods(&s) {
                assert!(!m.is_empty());
            }
            let _ = succulm::study::sweep::HealKind::parse(&s);
            let _ = succulm::compress::calibration::CalibrationMode::parse(&s);
            if let Ok(sampling) = cli::positive_f32("--temperature", &s)
                .map(succulm::nn::generate::Sampling::Temperature)
            {
                let _ = sampling.validate();
            }
        },
    );
}

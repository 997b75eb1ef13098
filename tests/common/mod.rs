//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A fixture file's path.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A fresh, empty directory under the system temp dir, unique to this process and `name`.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("succulm-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write temp file");
    p
}

/// All pairs of both corpus files.
pub fn all_pairs() -> Vec<(String, String)> {
    let mut v = succulm::load_pairs(fixture("succulm_normal_sentence_pairs.json")).unwrap();
    v.extend(succulm::load_pairs(fixture("succulm_question_answer_pairs.json")).unwrap());
    v
}

/// The fixture vocabulary with its hidden words.
pub fn vocab() -> succulm::Vocab {
    succulm::Vocab::load_with_hidden(
        fixture("succulm_embeddings.json"),
        fixture("succulm_hidden_words.json"),
    )
    .unwrap()
}

/// An error's variant and the key it names: `InvalidArgument(name)`, `InvalidFile(key)`,
/// `Shape(context)`, `SequenceTooLong(context)`, `TokenOutOfRange(context)`, or the variant alone.
pub fn kind(e: &succulm::Error) -> String {
    use succulm::Error;
    match e {
        Error::InvalidArgument { name, .. } => format!("InvalidArgument({name})"),
        Error::InvalidFile { key, .. } => format!("InvalidFile({key})"),
        Error::Shape { context, .. } => format!("Shape({context})"),
        Error::SequenceTooLong { context, .. } => format!("SequenceTooLong({context})"),
        Error::TokenOutOfRange { context, .. } => format!("TokenOutOfRange({context})"),
        Error::Io { .. } => "Io".into(),
        Error::Json { .. } => "Json".into(),
        Error::Linalg { context, .. } => format!("Linalg({context})"),
        other => format!("{other:?}"),
    }
}

/// Asserts that `r` is an error of kind `want` (see [`kind`]).
#[track_caller]
pub fn assert_err_kind<T>(r: succulm::Result<T>, want: &str) {
    match r {
        Ok(_) => panic!("expected an error {want}, got Ok"),
        Err(e) => {
            let got = kind(&e);
            if std::env::var_os("SUCCULM_KIND_PROBE").is_some() && got != want {
                eprintln!(
                    "KIND-PROBE {}: got {got} want {want}",
                    std::panic::Location::caller()
                );
                return;
            }
            assert_eq!(got, want, "{e}");
        }
    }
}

/// The fixtures' vocabulary (with hidden words), probes, and the standard split for `max_len`
/// (the seed's in-training prompts pinned to training): `(vocab, probes, train, valid)`.
pub fn standard_data(
    max_len: usize,
) -> (
    succulm::Vocab,
    Vec<succulm::text::probes::Probe>,
    succulm::text::data::Dataset,
    succulm::text::data::Dataset,
) {
    let vocab = vocab();
    let (probes, train, valid) = standard_split(&vocab, max_len);
    (vocab, probes, train, valid)
}

/// The fixtures' probes and the standard split of the corpus under `vocab` for `max_len` (the
/// seed's in-training prompts pinned to training): `(probes, train, valid)`.
pub fn standard_split(
    vocab: &succulm::Vocab,
    max_len: usize,
) -> (
    Vec<succulm::text::probes::Probe>,
    succulm::text::data::Dataset,
    succulm::text::data::Dataset,
) {
    let probes = succulm::study::eval::load_probes(fixture("succulm_probes.json")).unwrap();
    let pinned: Vec<&str> = probes
        .iter()
        .filter(|p| p.group == succulm::text::probes::ProbeGroup::SeedInTraining)
        .map(|p| p.prompt.as_str())
        .collect();
    let pairs = succulm::text::data::load_corpus(fixture("")).unwrap();
    let (train, valid) =
        succulm::text::data::standard_split(vocab, &pairs, &pinned, max_len).unwrap();
    (probes, train, valid)
}

/// An evaluator of `model` on the validation rows and `probes`, with the vocabulary's hidden
/// words, sampling at the seed's temperature 0.6 (seed 42) `samples` answers a probe.
pub fn evaluator<'r, R: succulm::nn::generate::LanguageModel + ?Sized>(
    model: &'r R,
    vocab: &succulm::Vocab,
    valid: &succulm::text::data::Dataset,
    probes: &[succulm::text::probes::Probe],
    samples: usize,
) -> succulm::study::eval::Evaluator<'r, R> {
    let sample = succulm::study::eval::SampleConfig {
        sampling: succulm::nn::generate::Sampling::Temperature(0.6),
        samples_per_probe: samples,
        seed: 42,
    };
    let hidden = succulm::study::eval::hidden_ids(vocab).unwrap();
    succulm::study::eval::Evaluator::new(
        model,
        vocab,
        valid.x(),
        valid.y(),
        probes,
        &hidden,
        sample,
    )
    .unwrap()
}

/// A tiny model of `vocab_size` words and `max_len` positions: width 6, two blocks, three heads.
pub fn tiny_config(vocab_size: usize, max_len: usize) -> succulm::nn::model::ModelConfig {
    succulm::nn::model::ModelConfig {
        vocab_size,
        d_model: 6,
        max_len,
        n_layers: 2,
        ffn_expansion: 2,
        n_attn_heads: 3,
        arch: Default::default(),
    }
}

/// The specials and then `{prefix}04`, `{prefix}05`, … up to `n` words.
pub fn numbered_vocab(n: usize, prefix: &str) -> succulm::Vocab {
    let mut words: Vec<String> = ["<PAD>", "<BOS>", "<EOS>", "<UNK>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    words.extend((4..n).map(|i| format!("{prefix}{i:02}")));
    succulm::Vocab::from_words(words).unwrap()
}

/// A deterministic toy language of `n` rows, each BOS, `body(i)`, EOS, shifted into `x`/`y` and
/// padded to `width`.
pub fn toy_rows(
    n: usize,
    width: usize,
    body: impl Fn(usize) -> Vec<u32>,
) -> succulm::text::data::Dataset {
    let rows: Vec<succulm::text::data::EncodedPair> = (0..n)
        .map(|i| {
            let mut v = vec![1];
            v.extend(body(i));
            v.push(2);
            let n = v.len() - 1;
            let mut x = v[..n].to_vec();
            let mut y = v[1..].to_vec();
            x.resize(width, 0);
            y.resize(width, 0);
            succulm::text::data::EncodedPair { x, y, len: n }
        })
        .collect();
    succulm::text::data::Dataset::from_rows(&rows, width).unwrap()
}

/// `layer_sweep`'s arguments for the main job shrunk to one cell (block 0 at bond 10, one
/// sample a probe, no experiments).
pub const ONE_CELL_SWEEP: [&str; 7] = [
    "--blocks",
    "0",
    "--bonds",
    "10",
    "--samples",
    "1",
    "--no-experiments",
];

/// Writes the named f32 tensors to a safetensors file at `path`, without metadata.
pub fn write_tensors(path: &Path, tensors: &[(String, ndarray::ArrayD<f32>)]) {
    succulm::io::safetensors::write_f32(
        path,
        tensors.iter().map(|(n, t)| (n.clone(), t.view())),
        &std::collections::BTreeMap::new(),
    )
    .unwrap();
}

/// The largest `|a_i - b_i|` of f32 values against f64 truths.
pub fn max_abs_diff_f64<'a>(
    a: impl IntoIterator<Item = &'a f32>,
    b: impl IntoIterator<Item = &'a f64>,
) -> f64 {
    a.into_iter()
        .zip(b)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .fold(0.0, f64::max)
}

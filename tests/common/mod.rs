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
    let vocab = succulm::Vocab::load_with_hidden(
        fixture("succulm_embeddings.json"),
        fixture("succulm_hidden_words.json"),
    )
    .unwrap();
    let probes = succulm::study::eval::load_probes(fixture("succulm_probes.json")).unwrap();
    let pinned: Vec<&str> = probes
        .iter()
        .filter(|p| p.group == succulm::text::probes::ProbeGroup::SeedInTraining)
        .map(|p| p.prompt.as_str())
        .collect();
    let pairs = succulm::text::data::load_corpus(fixture("")).unwrap();
    let (train, valid) =
        succulm::text::data::standard_split(&vocab, &pairs, &pinned, max_len).unwrap();
    (vocab, probes, train, valid)
}

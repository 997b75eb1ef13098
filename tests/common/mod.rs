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

//! Tokenizer rules, vocabulary order, round trips, hidden words and every bad embeddings file.

mod common;

use std::path::Path;

use common::{fixture, temp_dir, vocab, write};
use succulm::text::vocab::{load_hidden_words, BOS, EOS, PAD, SPECIAL_TOKENS, UNK};
use succulm::{detokenize, tokenize, Error, Vocab};

fn toks(s: &str) -> Vec<String> {
    tokenize(s)
}

#[test]
fn tokenize_splits_off_the_four_punctuation_marks() {
    assert_eq!(
        toks("can you bloom, winy?"),
        ["can", "you", "bloom", ",", "winy", "?"]
    );
    assert_eq!(toks("hello!wait.now"), ["hello", "!", "wait", ".", "now"]);
    assert_eq!(toks("...?!"), [".", ".", ".", "?", "!"]);
    assert_eq!(toks("a,b"), ["a", ",", "b"]);
}

#[test]
fn tokenize_keeps_other_punctuation_in_the_word() {
    assert_eq!(toks("ruby's pot-plant: 3;"), ["ruby's", "pot-plant:", "3;"]);
    assert_eq!(toks("\"quoted\""), ["\"quoted\""]);
}

#[test]
fn tokenize_lower_cases() {
    assert_eq!(toks("RUBY Is A Boy."), ["ruby", "is", "a", "boy", "."]);
    assert_eq!(toks("ÉTÉ"), ["été"]);
}

#[test]
fn tokenize_handles_runs_of_whitespace_and_edges() {
    assert_eq!(toks("  ruby \t\n  is\r\nred  "), ["ruby", "is", "red"]);
    assert!(toks("").is_empty());
    assert!(toks(" \t\n ").is_empty());
    // Unicode spaces, and the ASCII separators Python's \s also treats as space.
    assert_eq!(
        toks("a\u{00a0}b\u{3000}c\u{1c}d\u{1f}e"),
        ["a", "b", "c", "d", "e"]
    );
    assert_eq!(toks(" , "), [","]);
}

#[test]
fn detokenize_follows_talk() {
    assert_eq!(
        detokenize(&["no", ",", "she", "sleeps", "with", "ruby", "."]),
        "no, she sleeps with ruby."
    );
    assert_eq!(detokenize(&["why", "?", "!"]), "why?!");
    assert_eq!(detokenize::<&str>(&[]), "");
    // talk is a plain text replacement of " ." etc., even inside a token sequence.
    assert_eq!(detokenize(&["a", ".x"]), "a.x");
    assert_eq!(detokenize(&[".", "a"]), ". a");
}

#[test]
fn detokenize_inverts_tokenize_on_normalised_text() {
    for s in [
        "winy is a girl succulent plant.",
        "hello, ruby! the sun is warm today.",
        "is ruby a boy?",
    ] {
        assert_eq!(detokenize(&tokenize(s)), s);
    }
}

#[test]
fn fixture_vocabulary_is_specials_then_byte_sorted() {
    let v = vocab();
    let words = v.words();
    assert_eq!(&words[..4], SPECIAL_TOKENS);
    assert_eq!((PAD, BOS, EOS, UNK), (0, 1, 2, 3));
    for w in words[4..].windows(2) {
        assert!(
            w[0].as_bytes() < w[1].as_bytes(),
            "{:?} before {:?}",
            w[0],
            w[1]
        );
    }
    assert!(!words[4..]
        .iter()
        .any(|w| SPECIAL_TOKENS.contains(&w.as_str())));
    for (i, w) in words.iter().enumerate() {
        assert_eq!(v.id(w), i as u32);
        assert_eq!(v.get(w), Some(i as u32));
        assert_eq!(v.word(i as u32), Some(w.as_str()));
    }
    assert_eq!(v.word(v.len() as u32), None);
    assert_eq!(v.id("no-such-word"), UNK);
    assert_eq!(v.get("no-such-word"), None);
    assert!(!v.is_empty());
}

#[test]
fn embeddings_rows_follow_the_vocabulary_order() {
    let v = vocab();
    let emb = v.embeddings().unwrap();
    assert_eq!(emb.shape(), &[v.len(), 50]);
    // Independent reading of the file.
    let text = std::fs::read_to_string(fixture("succulm_embeddings.json")).unwrap();
    let raw: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(raw.len(), v.len());
    for (word, value) in &raw {
        let row = emb.row(v.id(word) as usize);
        let want: Vec<f32> = value
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(row.to_vec(), want, "{word}");
    }
}

#[test]
fn encode_decode_round_trip() {
    let v = vocab();
    let ids = v.encode("Does Winy sleep on the window?");
    let words: Vec<&str> = ids.iter().map(|&i| v.word(i).unwrap()).collect();
    assert_eq!(words, ["does", "winy", "sleep", "on", "the", "window", "?"]);
    assert_eq!(v.decode(&ids), "does winy sleep on the window?");
    for (a, b) in common::all_pairs() {
        for s in [a, b] {
            assert_eq!(v.decode(&v.encode(&s)), detokenize(&tokenize(&s)));
        }
    }
    // Unknown words and ids.
    assert_eq!(v.encode("ruby zebra"), [v.id("ruby"), UNK]);
    assert_eq!(v.unknown_words("ruby zebra, Quux"), ["zebra", "quux"]);
    assert_eq!(
        v.decode(&[BOS, v.id("ruby"), 9999, EOS]),
        "<BOS> ruby <UNK> <EOS>"
    );
}

#[test]
fn hidden_words_are_attached_and_validated() {
    let v = vocab();
    assert!(v.hidden_words().iter().any(|w| w == "sophia"));
    let sophia = v.id("sophia");
    assert_ne!(sophia, UNK);
    assert!(v.is_hidden(sophia));
    assert!(!v.is_hidden(v.id("ruby")));
    assert!(!v.is_hidden(99_999));
    assert!(v.hidden_ids().contains(&sophia));
    assert_eq!(v.hidden_ids().len(), v.hidden_words().len());
    for (id, w) in v.hidden_ids().iter().zip(v.hidden_words()) {
        assert_eq!(v.word(*id), Some(w.as_str()));
    }

    let plain = Vocab::load(fixture("succulm_embeddings.json")).unwrap();
    assert!(plain.hidden_words().is_empty() && plain.hidden_ids().is_empty());
    let err = |r: succulm::Result<Vocab>| match r {
        Err(Error::InvalidArgument { reason, .. }) => reason,
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    assert!(err(plain.clone().with_hidden_words(&["zebra"])).contains("zebra"));
    assert!(err(plain.clone().with_hidden_words(&["<BOS>"])).contains("special"));
    assert!(err(plain.clone().with_hidden_words(&["sophia", "sophia"])).contains("twice"));
    let again = plain.with_hidden_words(&["sophia"]).unwrap();
    assert_eq!(again.hidden_ids(), [sophia]);
}

#[test]
fn from_words_checks_specials_and_duplicates() {
    let w = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(Vocab::from_words(w(&["<PAD>", "<BOS>", "<EOS>", "<UNK>", "a"])).is_ok());
    common::assert_err_kind(
        Vocab::from_words(w(&["<BOS>", "<PAD>", "<EOS>", "<UNK>"])),
        "InvalidArgument(words)",
    );
    common::assert_err_kind(
        Vocab::from_words(w(&["<PAD>", "<BOS>", "<EOS>"])),
        "InvalidArgument(words)",
    );
    common::assert_err_kind(
        Vocab::from_words(w(&["<PAD>", "<BOS>", "<EOS>", "<UNK>", "a", "a"])),
        "InvalidArgument(words)",
    );
    common::assert_err_kind(
        Vocab::from_words(w(&["<PAD>", "<BOS>", "<EOS>", "<UNK>", ""])),
        "InvalidArgument(words)",
    );
}

/// Asserts an `InvalidFile` error naming `path` and `key`, whose reason contains `reason`.
fn assert_invalid(r: succulm::Result<Vocab>, path: &Path, key: &str, reason: &str) {
    match r {
        Err(Error::InvalidFile {
            path: p,
            key: k,
            reason: why,
        }) => {
            assert_eq!(p, path);
            assert_eq!(k, key, "key (reason {why:?})");
            assert!(why.contains(reason), "{why:?} should contain {reason:?}");
            let msg = Error::InvalidFile {
                path: p,
                key: k,
                reason: why,
            }
            .to_string();
            assert!(msg.contains(&path.display().to_string()) && msg.contains(key));
        }
        other => panic!("expected InvalidFile({key}), got {other:?}"),
    }
}

const SPECIALS: &str = r#""<PAD>": [0, 0], "<BOS>": [0, 1], "<EOS>": [1, 0], "<UNK>": [1, 1]"#;

#[test]
fn bad_embeddings_files_are_clear_errors() {
    let dir = temp_dir("vocab-bad");
    let case = |name: &str, body: &str| write(&dir, name, body);

    let p = case(
        "ok.json",
        &format!("{{{SPECIALS}, \"b\": [2, 3], \"a\": [4, 5]}}"),
    );
    let v = Vocab::load(&p).unwrap();
    assert_eq!(v.words()[4..], ["a", "b"]);
    assert_eq!(v.embeddings().unwrap().row(4).to_vec(), [4.0, 5.0]);

    let p = case(
        "missing.json",
        r#"{"<PAD>": [0], "<BOS>": [0], "<EOS>": [0], "a": [1]}"#,
    );
    assert_invalid(Vocab::load(&p), &p, "<UNK>", "missing special token");

    // Each: a file `{name}.json` of the specials and then `rest`, the key named, the reason.
    for (name, rest, key, reason) in [
        ("empty_key", "\"\": [1, 2]", "\"\"", "empty key"),
        ("dup", "\"a\": [1, 2], \"a\": [3, 4]", "a", "duplicate key"),
        ("dup_special", "\"<PAD>\": [3, 4]", "<PAD>", "duplicate key"),
        ("unequal", "\"a\": [1, 2, 3]", "a", "length 3"),
        ("empty_vec", "\"a\": []", "a", "empty vector"),
        ("nan", "\"a\": [1.0, NaN]", "a", "non-finite"),
        ("f64_overflow", "\"c\": [1e999, 1]", "c", "non-finite"),
        ("f32_overflow", "\"d\": [1, 1e39]", "d", "not a finite f32"),
        ("string", "\"e\": [1, \"x\"]", "e", "not a number"),
        ("scalar", "\"f\": 3", "f", "expected an array"),
    ] {
        let p = case(&format!("{name}.json"), &format!("{{{SPECIALS}, {rest}}}"));
        assert_invalid(Vocab::load(&p), &p, key, reason);
    }
    let p = case(
        "inf.json",
        &format!("{{{SPECIALS},\n  \"b\": [-Infinity, 1]}}"),
    );
    assert_invalid(Vocab::load(&p), &p, "b", "non-finite");

    let p = case("empty_object.json", "{}");
    assert_invalid(Vocab::load(&p), &p, "(root)", "empty");

    let p = case("array.json", "[1, 2]");
    assert!(matches!(Vocab::load(&p), Err(Error::Json { path, .. }) if path == p));

    let p = case("broken.json", &format!("{{{SPECIALS}, \"a\": [1, 2]"));
    assert!(matches!(Vocab::load(&p), Err(Error::Json { path, .. }) if path == p));

    let p = dir.join("does-not-exist.json");
    assert!(matches!(Vocab::load(&p), Err(Error::Io { path, .. }) if path == p));
}

#[test]
fn bad_hidden_word_files_are_clear_errors() {
    let dir = temp_dir("vocab-hidden");
    let emb = fixture("succulm_embeddings.json");
    let invalid = |body: &str, key: &str, reason: &str| {
        let p = write(&dir, "hidden.json", body);
        match load_hidden_words(&p) {
            Err(Error::InvalidFile {
                path,
                key: k,
                reason: why,
            }) => {
                assert_eq!(path, p);
                assert_eq!(k, key);
                assert!(why.contains(reason), "{why}");
            }
            other => panic!("{body}: expected InvalidFile, got {other:?}"),
        }
    };
    invalid(r#"{"sophia": 1}"#, "(root)", "array");
    invalid(r#"["sophia", 3]"#, "item 1", "not a string");
    invalid(r#"["sophia", ""]"#, "item 1", "empty");
    invalid(r#"["sophia", "aloe", "sophia"]"#, "item 2", "duplicate");
    let p = write(&dir, "broken.json", r#"["sophia""#);
    assert!(matches!(load_hidden_words(&p), Err(Error::Json { .. })));
    let p = write(&dir, "empty.json", "[]");
    assert!(load_hidden_words(&p).unwrap().is_empty());
    // A hidden word that is not in the vocabulary names the hidden-words file.
    let p = write(&dir, "unknown.json", r#"["sophia", "zebra"]"#);
    match Vocab::load_with_hidden(&emb, &p) {
        Err(Error::InvalidFile { path, reason, .. }) => {
            assert_eq!(path, p);
            assert!(reason.contains("zebra"));
        }
        other => panic!("expected InvalidFile, got {other:?}"),
    }
}

#[test]
fn saved_embeddings_load_back_and_writes_are_atomic() {
    let dir = temp_dir("vocab-save");
    let v = vocab();
    let emb = v.embeddings().unwrap();
    let p = dir.join("emb.json");
    std::fs::write(&p, "old").unwrap();
    succulm::text::embeddings::save_embeddings(&p, v.words(), emb.view()).unwrap();
    let back = Vocab::load(&p).unwrap();
    assert_eq!(back.words(), v.words());
    let diff = (back.embeddings().unwrap() - emb).mapv(f32::abs);
    assert!(diff.iter().all(|&d| d <= 5e-7), "6 decimals are kept");
    // Only the target file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("emb.json")]);
    // Wrong shapes and unwritable places are errors.
    common::assert_err_kind(
        succulm::text::embeddings::save_embeddings(&p, &v.words()[1..], emb.view()),
        "Shape(save_embeddings vectors)",
    );
    let missing = dir.join("no-such-dir").join("x.json");
    assert!(matches!(
        succulm::fs::write_atomic(&missing, b"x"),
        Err(Error::Io { .. })
    ));
}

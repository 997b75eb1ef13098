//! Checkpoint contract: round trip, atomic write, and a clear error naming the key for every
//! kind of bad file.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use succulm::nn::model::{Model, ModelConfig};
use succulm::{Error, Vocab};

fn vocab(n: usize) -> Vocab {
    common::numbered_vocab(n, "word")
}

fn config() -> ModelConfig {
    common::tiny_config(12, 5)
}

fn tmpdir(name: &str) -> PathBuf {
    common::temp_dir(&format!("ckpt-{name}"))
}

#[test]
fn round_trip() {
    let dir = tmpdir("roundtrip");
    let mut model = Model::new(config(), 1).unwrap();
    model.set_profile(Some("custom".into()));
    let v = vocab(12);
    let path = dir.join("m.json");
    model.save(&path, &v).unwrap();
    // Atomic write: only the final file remains.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("m.json")]);
    let (loaded, lv) = Model::load(&path).unwrap();
    assert_eq!(loaded, model);
    assert_eq!(lv.words(), v.words());
    assert_eq!(loaded.profile(), Some("custom"));
    // Overwriting works and is again exact.
    loaded.save(&path, &lv).unwrap();
    assert_eq!(Model::load(&path).unwrap().0, model);
    // The file has the documented structure.
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(j["format_version"], 1);
    assert_eq!(j["vocab"]["<BOS>"], 1);
    assert_eq!(
        j["state_dict"]["blocks.1.ffn.2.weight"]["shape"],
        json!([6, 12])
    );
    assert_eq!(j["state_dict"]["pos_enc.pe"]["shape"], json!([5, 6]));
    // A vocabulary of the wrong size cannot be saved with the model.
    assert!(model.save(dir.join("x.json"), &vocab(11)).is_err());
}

/// Saves a valid checkpoint, lets `edit` break its JSON, and returns the load error.
fn load_error(name: &str, edit: impl FnOnce(&mut Value)) -> (Error, PathBuf) {
    let dir = tmpdir(name);
    let path = dir.join("bad.json");
    Model::new(config(), 2)
        .unwrap()
        .save(&path, &vocab(12))
        .unwrap();
    let mut j: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut j);
    std::fs::write(&path, serde_json::to_string(&j).unwrap()).unwrap();
    (Model::load(&path).unwrap_err(), path)
}

fn assert_invalid(e: &Error, path: &Path, key_part: &str, reason_part: &str) {
    match e {
        Error::InvalidFile {
            path: p,
            key,
            reason,
        } => {
            assert_eq!(p, path);
            assert!(
                key.contains(key_part),
                "key {key:?} should name {key_part:?}"
            );
            assert!(
                reason.contains(reason_part),
                "reason {reason:?} should say {reason_part:?}"
            );
        }
        other => panic!("expected InvalidFile about {key_part}, got {other:?}"),
    }
}

#[test]
fn missing_key() {
    let (e, p) = load_error("missing", |j| {
        j["state_dict"]
            .as_object_mut()
            .unwrap()
            .remove("blocks.1.k_linears.2.bias");
    });
    assert_invalid(&e, &p, "blocks.1.k_linears.2.bias", "missing");
}

#[test]
fn unknown_key() {
    let (e, p) = load_error("unknown", |j| {
        j["state_dict"]["blocks.2.ln1.weight"] = json!({"shape": [6], "data": [1, 1, 1, 1, 1, 1]});
    });
    assert_invalid(&e, &p, "blocks.2.ln1.weight", "unknown");
}

#[test]
fn wrong_shape() {
    let (e, p) = load_error("shape", |j| {
        j["state_dict"]["ln_f.weight"]["shape"] = json!([3, 2]);
    });
    assert_invalid(&e, &p, "ln_f.weight", "shape");
}

#[test]
fn wrong_data_length() {
    let (e, p) = load_error("len", |j| {
        j["state_dict"]["blocks.0.ffn.0.bias"]["data"]
            .as_array_mut()
            .unwrap()
            .pop();
    });
    assert_invalid(&e, &p, "blocks.0.ffn.0.bias", "values");
}

#[test]
fn non_finite_value() {
    // JSON has no NaN; 1e39 overflows f32 to infinity.
    let (e, p) = load_error("nonfinite", |j| {
        j["state_dict"]["embed.weight"]["data"][7] = json!(1e39);
    });
    // With serde_json's `float_roundtrip` (exact floats, needed for sharded sweeps to merge
    // byte for byte) the parser itself rejects the out-of-range f32, naming file and position.
    match &e {
        Error::Json { path, source } => {
            assert_eq!(path, &p);
            assert!(source.to_string().contains("out of range"), "{source}");
        }
        _ => assert_invalid(&e, &p, "embed.weight", "not finite"),
    }
}

#[test]
fn vocabulary_disagreeing_with_config() {
    let (e, p) = load_error("vocab_size", |j| {
        j["vocab"].as_object_mut().unwrap().remove("word11");
    });
    assert_invalid(&e, &p, "vocab", "vocab_size");
    let (e, p) = load_error("vocab_dup", |j| {
        j["vocab"]["word11"] = json!(5);
    });
    assert_invalid(&e, &p, "vocab", "also the id");
    let (e, p) = load_error("vocab_range", |j| {
        j["vocab"]["word11"] = json!(12);
    });
    assert_invalid(&e, &p, "vocab.word11", "out of range");
    let (e, p) = load_error("vocab_special", |j| {
        j["vocab"]["<PAD>"] = json!(4);
        j["vocab"]["word04"] = json!(0);
    });
    assert_invalid(&e, &p, "vocab", "special");
}

#[test]
fn bad_config_and_version() {
    let (e, p) = load_error("config", |j| {
        j["config"]["n_attn_heads"] = json!(4);
    });
    assert_invalid(&e, &p, "config", "n_attn_heads");
    let (e, p) = load_error("version", |j| {
        j["format_version"] = json!(2);
    });
    assert_invalid(&e, &p, "format_version", "not supported");
    let (e, p) = load_error("pe", |j| {
        j["state_dict"]["pos_enc.pe"]["data"][3] = json!(0.5);
    });
    assert_invalid(&e, &p, "pos_enc.pe", "sinusoidal");
    let (e, p) = load_error("hidden", |j| {
        j["hidden_words"] = json!(["sophia"]);
    });
    assert_invalid(&e, &p, "hidden_words", "sophia");
}

#[test]
fn pos_enc_may_be_omitted() {
    let dir = tmpdir("nope");
    let path = dir.join("m.json");
    let model = Model::new(config(), 3).unwrap();
    model.save(&path, &vocab(12)).unwrap();
    let mut j: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    j["state_dict"]
        .as_object_mut()
        .unwrap()
        .remove("pos_enc.pe");
    std::fs::write(&path, serde_json::to_string(&j).unwrap()).unwrap();
    assert_eq!(Model::load(&path).unwrap().0, model);
}

#[test]
fn unreadable_files() {
    let dir = tmpdir("io");
    assert!(matches!(
        Model::load(dir.join("absent.json")),
        Err(Error::Io { .. })
    ));
    let p = dir.join("garbage.json");
    std::fs::write(&p, "{ not json").unwrap();
    assert!(matches!(Model::load(&p), Err(Error::Json { .. })));
    // Saving into a missing directory is an I/O error naming the temporary or final path.
    let model = Model::new(config(), 4).unwrap();
    assert!(matches!(
        model.save(dir.join("no/such/dir.json"), &vocab(12)),
        Err(Error::Io { .. })
    ));
}

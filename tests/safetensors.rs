//! safetensors checkpoints: the shipped model in both formats (bit for bit), a file written by
//! PyTorch (`tools/safetensors_torch.py`) against PyTorch's logits, round trips (dense and
//! tensor-train), and a clear error for every kind of bad file.

mod common;

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayD};
use serde_json::Value;
use succulm::compress::surgery::FfnTtSpec;
use succulm::io::checkpoint::{CheckpointFile, TensorJson};
use succulm::io::safetensors::{write_f32, SafetensorsFile};
use succulm::nn::model::{Model, ModelConfig};
use succulm::{Error, Vocab};

fn tmpdir(name: &str) -> PathBuf {
    common::temp_dir(&format!("st-{name}"))
}

fn vocab(n: usize) -> Vocab {
    common::numbered_vocab(n, "word")
}

fn config() -> ModelConfig {
    common::tiny_config(12, 5)
}

/// Every parameter of `a` equals `b`'s bit for bit, under the same names.
fn assert_same_bits(a: &Model, b: &Model) {
    let (pa, pb) = (a.named_parameters(), b.named_parameters());
    assert_eq!(
        pa.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        pb.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for ((name, x), (_, y)) in pa.iter().zip(&pb) {
        assert_eq!(x.shape(), y.shape(), "{name}");
        assert!(
            x.iter()
                .zip(y.iter())
                .all(|(u, v)| u.to_bits() == v.to_bits()),
            "{name} differs"
        );
    }
}

#[test]
fn shipped_model_is_the_same_in_both_formats() {
    let (json, jv) = Model::load(common::fixture("succulm_upper_middle.json")).unwrap();
    let (st, sv) = Model::load(common::fixture("succulm_upper_middle.safetensors")).unwrap();
    assert_same_bits(&json, &st);
    assert_eq!(json.config(), st.config());
    assert_eq!(json.profile(), st.profile());
    assert_eq!(jv.words(), sv.words());
    assert_eq!(jv.hidden_words(), sv.hidden_words());
    // The safetensors file is raw f32: far smaller than the JSON text.
    let size = |n: &str| std::fs::metadata(common::fixture(n)).unwrap().len();
    assert!(size("succulm_upper_middle.safetensors") * 2 < size("succulm_upper_middle.json"));
}

#[derive(serde::Deserialize)]
struct TinyFixture {
    checkpoint: CheckpointFile,
    x: Vec<Vec<u32>>,
    logits: TensorJson,
}

#[test]
fn file_written_by_pytorch_loads_and_reproduces_its_logits() {
    let text = std::fs::read_to_string(common::fixture("parity_tiny.json")).unwrap();
    let f: TinyFixture = serde_json::from_str(&text).unwrap();
    let (from_json, _) = f
        .checkpoint
        .into_model(Path::new("parity_tiny.json"))
        .unwrap();
    // Written by `safetensors.torch.save_file(model.state_dict(), ...)`.
    let (model, _) = Model::load(common::fixture("parity_tiny.safetensors")).unwrap();
    assert_same_bits(&from_json, &model);
    let t = f.x[0].len();
    let ids = Array2::from_shape_vec((f.x.len(), t), f.x.concat()).unwrap();
    let logits = model.forward(ids.view()).unwrap();
    assert_eq!(logits.shape(), f.logits.shape.as_slice());
    let err = logits
        .iter()
        .zip(&f.logits.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(err < 1e-5, "logits differ from PyTorch's by {err}");
}

#[test]
fn round_trip_dense_and_tensor_train() {
    let dir = tmpdir("roundtrip");
    let mut model = Model::new(config(), 3).unwrap();
    model.set_profile(Some("tiny".into()));
    let v = vocab(12)
        .with_hidden_words(&["word05".to_string()])
        .unwrap();
    let path = dir.join("m.safetensors");
    model.save(&path, &v).unwrap();
    let (back, bv) = Model::load(&path).unwrap();
    assert_same_bits(&model, &back);
    assert_eq!(back.profile(), Some("tiny"));
    assert_eq!(bv.hidden_words(), v.hidden_words());

    // A compressed model: cores and specs round-trip, and so does its forward.
    model
        .tensorize_ffn(1, &FfnTtSpec::for_config(&config(), 2))
        .unwrap();
    model.save(&path, &v).unwrap();
    let file = SafetensorsFile::read(&path).unwrap();
    assert!(file.names().contains(&"blocks.1.ffn.0.cores.0".to_string()));
    assert!(file.metadata()["projections"].contains("blocks.1.ffn.2"));
    let (back, _) = Model::load(&path).unwrap();
    assert_same_bits(&model, &back);
    assert_eq!(model.tt_specs(), back.tt_specs());
    let ids = Array2::from_shape_vec((1, 4), vec![1, 5, 7, 2]).unwrap();
    assert_eq!(
        model.forward(ids.view()).unwrap(),
        back.forward(ids.view()).unwrap()
    );
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(names.len(), 1);
}

/// Named tensors and header metadata of a safetensors file.
type Parts = (
    Vec<(String, ArrayD<f32>)>,
    std::collections::BTreeMap<String, String>,
);

/// A valid checkpoint's tensors and metadata, to be altered and re-written.
fn parts(tag: &str) -> Parts {
    let dir = tmpdir(&format!("parts-{tag}"));
    let path = dir.join("m.safetensors");
    Model::new(config(), 5)
        .unwrap()
        .save(&path, &vocab(12))
        .unwrap();
    let file = SafetensorsFile::read(&path).unwrap();
    let tensors = file
        .names()
        .into_iter()
        .map(|n| {
            let t = file.tensor(&n).unwrap();
            (n, t)
        })
        .collect();
    (tensors, file.metadata())
}

fn write_parts(
    name: &str,
    tensors: &[(String, ArrayD<f32>)],
    meta: &std::collections::BTreeMap<String, String>,
) -> PathBuf {
    let path = tmpdir(name).join("bad.safetensors");
    write_f32(
        &path,
        tensors.iter().map(|(n, t)| (n.clone(), t.view())),
        meta,
    )
    .unwrap();
    path
}

/// Loading fails with an `InvalidFile` naming `path`, whose key and reason contain the given
/// fragments.
fn expect_invalid(path: &Path, key_part: &str, reason_part: &str) {
    match Model::load(path) {
        Err(Error::InvalidFile {
            path: p,
            key,
            reason,
        }) => {
            assert_eq!(p, path);
            assert!(key.contains(key_part), "key {key:?} lacks {key_part:?}");
            assert!(
                reason.contains(reason_part),
                "reason {reason:?} lacks {reason_part:?}"
            );
        }
        Err(other) => panic!("expected InvalidFile, got {other}"),
        Ok(_) => panic!("{} loaded", path.display()),
    }
}

#[test]
fn missing_unknown_and_misshapen_tensors_are_named() {
    let (tensors, meta) = parts("keys");
    let name = "blocks.0.ln1.weight";

    let fewer: Vec<_> = tensors.iter().filter(|(n, _)| n != name).cloned().collect();
    expect_invalid(
        &write_parts("missing", &fewer, &meta),
        "state_dict.blocks.0.ln1.weight",
        "missing",
    );

    let mut more = tensors.clone();
    more.push(("blocks.0.extra".into(), ArrayD::zeros(vec![2])));
    expect_invalid(
        &write_parts("unknown", &more, &meta),
        "state_dict.blocks.0.extra",
        "unknown",
    );

    let mut wrong = tensors.clone();
    for (n, t) in &mut wrong {
        if n == name {
            *t = ArrayD::zeros(vec![3, 2]);
        }
    }
    expect_invalid(
        &write_parts("shape", &wrong, &meta),
        "state_dict.blocks.0.ln1.weight",
        "[3, 2]",
    );

    let mut nan = tensors.clone();
    nan[0].1.as_slice_mut().unwrap()[0] = f32::NAN;
    expect_invalid(&write_parts("nan", &nan, &meta), &nan[0].0, "not finite");
}

#[test]
fn bad_metadata_is_named() {
    let (tensors, meta) = parts("meta");
    // A tensor-train spec that does not fit the model.
    let misfit = r#"{"blocks.0.ffn.0":{"layout":"OutputsThenInputs","in_modes":[2,3],"out_modes":[3,5],"bond_dims":[3,2,3]}}"#;
    // (file, key, new value or None to remove it, the field the error names, text it holds)
    let cases = [
        ("noconfig", "config", None, "metadata", "config"),
        (
            "badjson",
            "config",
            Some("{not json"),
            "metadata.config",
            "JSON",
        ),
        ("extra", "surprise", Some("1"), "metadata", "surprise"),
        (
            "version",
            "format_version",
            Some("99"),
            "format_version",
            "99",
        ),
        (
            "spec",
            "projections",
            Some(misfit),
            "projections.blocks.0.ffn.0",
            "spec maps",
        ),
    ];
    for (file, key, value, field, text) in cases {
        let mut m = meta.clone();
        match value {
            None => m.remove(key),
            Some(v) => m.insert(key.into(), v.into()),
        };
        expect_invalid(&write_parts(file, &tensors, &m), field, text);
    }
}

/// The file's 8-byte header length, header JSON and data, to forge files byte by byte.
fn split(bytes: &[u8]) -> (Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

fn join(header: &Value, data: &[u8]) -> Vec<u8> {
    let h = serde_json::to_vec(header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}

fn valid_bytes() -> Vec<u8> {
    let (tensors, meta) = parts("bytes");
    std::fs::read(write_parts("valid", &tensors, &meta)).unwrap()
}

fn write_bytes(name: &str, bytes: &[u8]) -> PathBuf {
    let path = tmpdir(name).join("forged.safetensors");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn forged_headers_and_truncated_files_are_errors() {
    let bytes = valid_bytes();
    // Sanity: the re-joined file is valid.
    let (header, data) = split(&bytes);
    Model::load(write_bytes("rejoined", &join(&header, &data))).unwrap();

    let cut = &bytes[..bytes.len() - 12];
    expect_invalid(&write_bytes("truncated", cut), "header", "truncated");
    expect_invalid(&write_bytes("tiny", &bytes[..5]), "header", "8-byte");

    let mut huge = bytes.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    expect_invalid(&write_bytes("huge", &huge), "header", "");
    let mut past = bytes.clone();
    past[..8].copy_from_slice(&((bytes.len() as u64) - 4).to_le_bytes());
    expect_invalid(&write_bytes("past", &past), "header", "past the end");

    // Offsets that lie: one tensor claims 4 more bytes than its shape needs.
    let name = "blocks.0.ln1.bias";
    let mut h = header.clone();
    let end = h[name]["data_offsets"][1].as_u64().unwrap();
    h[name]["data_offsets"][1] = (end + 4).into();
    expect_invalid(&write_bytes("offsets", &join(&h, &data)), "header", "");

    // A shape of 2^62 elements with tiny offsets: rejected before anything is allocated.
    let mut h = header.clone();
    h[name]["shape"] = serde_json::json!([1u64 << 31, 1u64 << 31]);
    expect_invalid(&write_bytes("bigshape", &join(&h, &data)), "header", "");

    // A dtype other than F32 of the same byte size (F16, twice the elements): named.
    let mut h = header.clone();
    let len = h[name]["shape"][0].as_u64().unwrap();
    h[name]["dtype"] = "F16".into();
    h[name]["shape"] = serde_json::json!([len * 2]);
    expect_invalid(
        &write_bytes("dtype", &join(&h, &data)),
        "state_dict.blocks.0.ln1.bias",
        "dtype F16",
    );

    // Not a safetensors file at all (a JSON checkpoint renamed).
    let json = std::fs::read(common::fixture("succulm_hidden_words.json")).unwrap();
    expect_invalid(&write_bytes("json", &json), "header", "");
}

//! Mutation fuzzing of every loader of user files: checkpoints (dense and tensor-train, JSON and
//! safetensors, on a tiny model so a case is fast), pair files, probes, hidden words and
//! embeddings, and foreign safetensors files as the `compress` tool reads them (every dtype,
//! duplicate names, huge sizes, lying offsets). Each case must end in an `Err` or a valid value,
//! without a panic and without any single allocation larger than a small multiple of the file.
//! See `tests/common_fuzz` for the mutations and `SUCCULM_FUZZ_CASES` for the budget
//! (docs/robustness.md: "Fuzzing").

mod common;
mod common_alloc;
mod common_fuzz;

use std::path::Path;

use ndarray::Array2;
use rand::Rng;
use serde_json::Value;
use succulm::{FfnTtSpec, Model, ModelConfig, Vocab};

#[global_allocator]
static ALLOC: common_alloc::Counting = common_alloc::Counting;

/// The cap of one case: 1 MiB plus 64 bytes per input byte.
fn cap(len: usize) -> usize {
    (1 << 20) + 64 * len
}

/// A tiny model's checkpoint (V 12, d 4, 1 block, 2 heads, max_len 6), and the same with its
/// FFN tensor-trained, as JSON.
fn tiny_checkpoints(name: &str) -> (Vec<u8>, Vec<u8>) {
    tiny_checkpoints_as(name, "json")
}

/// [`tiny_checkpoints`] in the format of extension `ext` (`json` or `safetensors`).
fn tiny_checkpoints_as(name: &str, ext: &str) -> (Vec<u8>, Vec<u8>) {
    let dir = common::temp_dir(name);
    let mut words: Vec<String> = succulm::text::vocab::SPECIAL_TOKENS
        .iter()
        .map(|s| s.to_string())
        .collect();
    words.extend(["ruby", "winy", "is", "a", "plant", "who", "green", "?"].map(String::from));
    let vocab = Vocab::from_words(words).unwrap();
    let config = ModelConfig {
        vocab_size: 12,
        d_model: 4,
        max_len: 6,
        n_layers: 1,
        ffn_expansion: 2,
        n_attn_heads: 2,
        arch: Default::default(),
    };
    let mut model = Model::new(config.clone(), 3).unwrap();
    let dense = dir.join(format!("dense.{ext}"));
    model.save(&dense, &vocab).unwrap();
    model
        .tensorize_ffn(0, &FfnTtSpec::for_config(&config, 2))
        .unwrap();
    let tt = dir.join(format!("tt.{ext}"));
    model.save(&tt, &vocab).unwrap();
    let out = (std::fs::read(&dense).unwrap(), std::fs::read(&tt).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

/// A JSON mutation: one number of the document set to a huge or edge value (the "size field
/// set huge" case), else a byte-level mutation.
fn json_case(rng: &mut rand::rngs::StdRng, input: &[u8], donors: &[&[u8]]) -> Vec<u8> {
    if rng.gen_range(0..3) == 0 {
        if let Ok(mut v) = serde_json::from_slice::<Value>(input) {
            let mut nums = Vec::new();
            collect_numbers(&v, String::new(), &mut nums);
            if !nums.is_empty() {
                let path = &nums[rng.gen_range(0..nums.len())];
                let edge = edge_value(rng);
                if let Some(slot) = v.pointer_mut(path) {
                    *slot = edge;
                }
                return serde_json::to_vec(&v).unwrap();
            }
        }
    }
    common_fuzz::mutate(rng, input, donors)
}

/// A huge or edge value for a JSON number.
fn edge_value(rng: &mut rand::rngs::StdRng) -> Value {
    let huge: [Value; 6] = [
        Value::from(1u64 << 40),
        Value::from(u64::MAX),
        Value::from(100_000u64),
        Value::from(0u64),
        Value::from(-1i64),
        Value::from(1e30),
    ];
    huge[rng.gen_range(0..huge.len())].clone()
}

/// JSON pointers to the numbers of `v` (at most a few thousand, sampled evenly).
fn collect_numbers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Number(_) => out.push(at),
        Value::Array(a) => {
            // Long data arrays: a few entries are enough.
            let step = (a.len() / 8).max(1);
            for (i, x) in a.iter().enumerate().step_by(step) {
                collect_numbers(x, format!("{at}/{i}"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                let k = k.replace('~', "~0").replace('/', "~1");
                collect_numbers(x, format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
}

/// A safetensors mutation: the 8-byte header length set to an edge value; or one number of the
/// JSON header (a shape, a data offset, a metadata size) set huge or to an edge value, the
/// header re-framed so that it parses and lies; or a byte-level mutation.
fn safetensors_case(rng: &mut rand::rngs::StdRng, input: &[u8], donors: &[&[u8]]) -> Vec<u8> {
    let n = u64::from_le_bytes(input[..8].try_into().unwrap()) as usize;
    match rng.gen_range(0..6) {
        0 => {
            let edge = [0u64, 1, 7, n as u64 - 1, n as u64 + 1, 1 << 40, u64::MAX];
            let mut out = input.to_vec();
            out[..8].copy_from_slice(&edge[rng.gen_range(0..edge.len())].to_le_bytes());
            out
        }
        1 | 2 => {
            let header = &input[8..8 + n];
            let mut out = json_case(rng, header, &[]);
            // Metadata values are JSON strings holding JSON (config, specs): mutate inside one.
            if rng.gen_range(0..2) == 0 {
                if let Ok(mut v) = serde_json::from_slice::<Value>(header) {
                    if let Some(meta) = v.get_mut("__metadata__").and_then(Value::as_object_mut) {
                        let keys: Vec<String> = meta.keys().cloned().collect();
                        if !keys.is_empty() {
                            let k = &keys[rng.gen_range(0..keys.len())];
                            if let Some(inner) = meta[k].as_str() {
                                let m = json_case(rng, inner.as_bytes(), &[]);
                                meta[k] = Value::from(String::from_utf8_lossy(&m).into_owned());
                            }
                        }
                    }
                    out = serde_json::to_vec(&v).unwrap();
                }
            }
            let mut framed = (out.len() as u64).to_le_bytes().to_vec();
            framed.extend_from_slice(&out);
            framed.extend_from_slice(&input[8 + n..]);
            framed
        }
        _ => common_fuzz::mutate(rng, input, donors),
    }
}

/// A mutation of a seed file given its donors (for splices).
type Mutator = fn(&mut rand::rngs::StdRng, &[u8], &[&[u8]]) -> Vec<u8>;

fn fuzz_checkpoint(target: &str, seed_file: &[u8], donor: &[u8]) {
    fuzz_checkpoint_as(target, "json", seed_file, donor, json_case)
}

fn fuzz_checkpoint_as(target: &str, ext: &str, seed_file: &[u8], donor: &[u8], case: Mutator) {
    let path = common_fuzz::scratch(target, ext);
    let donors = [donor];
    common_fuzz::run(
        target,
        cap,
        |rng| case(rng, seed_file, &donors),
        |bytes| {
            std::fs::write(&path, bytes).unwrap();
            if let Ok((model, vocab)) = Model::load(&path) {
                // A valid value: consistent with itself, and it runs.
                let c = model.config();
                assert_eq!(vocab.len(), c.vocab_size);
                c.validate().unwrap();
                let t = c.max_len.min(3);
                let ids = Array2::from_elem((1, t), 1u32);
                let logits = model.forward(ids.view()).unwrap();
                assert_eq!(logits.dim(), (1, t, c.vocab_size));
                let mut cache = model.new_cache();
                model.forward_cached(&mut cache, &[1]).unwrap();
            }
        },
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn fuzz_checkpoint_dense() {
    let (dense, tt) = tiny_checkpoints("fuzz-ckpt-dense");
    fuzz_checkpoint("checkpoint_dense", &dense, &tt);
}

#[test]
fn fuzz_checkpoint_tt() {
    let (dense, tt) = tiny_checkpoints("fuzz-ckpt-tt");
    fuzz_checkpoint("checkpoint_tt", &tt, &dense);
}

#[test]
fn fuzz_checkpoint_safetensors() {
    let (dense, tt) = tiny_checkpoints_as("fuzz-ckpt-st", "safetensors");
    fuzz_checkpoint_as(
        "checkpoint_safetensors",
        "safetensors",
        &dense,
        &tt,
        safetensors_case,
    );
}

#[test]
fn fuzz_checkpoint_safetensors_tt() {
    let (dense, tt) = tiny_checkpoints_as("fuzz-ckpt-st-tt", "safetensors");
    fuzz_checkpoint_as(
        "checkpoint_safetensors_tt",
        "safetensors",
        &tt,
        &dense,
        safetensors_case,
    );
}

/// The first `n` bytes of a fixture, cut back to a JSON document: the first `items` entries of
/// its top-level array.
fn json_prefix(name: &str, items: usize) -> Vec<u8> {
    let v: Value = serde_json::from_slice(&std::fs::read(common::fixture(name)).unwrap()).unwrap();
    let a: Vec<Value> = v.as_array().unwrap().iter().take(items).cloned().collect();
    serde_json::to_vec_pretty(&a).unwrap()
}

fn fuzz_file<T>(
    target: &str,
    seed_file: &[u8],
    load: impl Fn(&Path) -> succulm::Result<T>,
    valid: impl Fn(&T),
) {
    let path = common_fuzz::scratch(target, "json");
    common_fuzz::run(
        target,
        cap,
        |rng| json_case(rng, seed_file, &[]),
        |bytes| {
            std::fs::write(&path, bytes).unwrap();
            if let Ok(v) = load(&path) {
                valid(&v);
            }
        },
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn fuzz_pairs() {
    let seed = json_prefix("succulm_question_answer_pairs.json", 20);
    fuzz_file(
        "pairs",
        &seed,
        |p| succulm::load_pairs(p),
        |pairs| {
            assert!(!pairs.is_empty());
            for (a, b) in pairs {
                assert!(!succulm::tokenize(a).is_empty() || !succulm::tokenize(b).is_empty());
            }
        },
    );
}

#[test]
fn fuzz_probes() {
    let seed = std::fs::read(common::fixture("succulm_probes.json")).unwrap();
    let vocab = common::vocab();
    fuzz_file(
        "probes",
        &seed,
        |p| succulm::text::probes::load_probes(p),
        |probes| {
            assert!(!probes.is_empty());
            // Valid probes either prepare against the vocabulary or give an error.
            let _ = succulm::study::eval::prepare_probes(probes, &vocab);
        },
    );
}

#[test]
fn fuzz_hidden_words() {
    let seed = std::fs::read(common::fixture("succulm_hidden_words.json")).unwrap();
    fuzz_file(
        "hidden_words",
        &seed,
        |p| succulm::text::vocab::load_hidden_words(p),
        |words| {
            let set: std::collections::HashSet<&String> = words.iter().collect();
            assert_eq!(set.len(), words.len(), "distinct");
            assert!(words.iter().all(|w| !w.is_empty()));
        },
    );
}

#[test]
fn fuzz_embeddings() {
    // A small embeddings file in the fixture's format: the specials and a few words, 6-d.
    let vocab = common::vocab();
    let words: Vec<String> = vocab.words()[..10].to_vec();
    let full = vocab.embeddings().unwrap();
    let vectors = full.slice(ndarray::s![..10, ..6]).to_owned();
    let p = common_fuzz::scratch("embeddings-seed", "json");
    succulm::text::embeddings::save_embeddings(&p, &words, vectors.view()).unwrap();
    let seed = std::fs::read(&p).unwrap();
    let _ = std::fs::remove_file(&p);
    fuzz_file(
        "embeddings",
        &seed,
        |p| Vocab::load(p),
        |v| {
            assert!(v.len() >= 4);
            if let Some(e) = v.embeddings() {
                assert_eq!(e.nrows(), v.len());
                assert!(e.iter().all(|x| x.is_finite()));
            }
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Foreign safetensors files through `compress` (the tool's library entry point).

use std::cell::Cell;

use safetensors::{tensor::TensorView, Dtype};
use succulm::compress::{
    compress_files, load_tt_layers, CompressConfig, CompressPaths, Modes, OutputDtype, Target,
    WeightLayout,
};
use succulm::study::sweep::Method;
use succulm::TTLayout;

/// Every dtype the format knows, as the header spells it.
const DTYPES: [&str; 14] = [
    "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32",
    "I64", "F64",
];

/// A tiny foreign model file: matrices in F32, F16, BF16 and F64 (the square ones with biases in
/// other float dtypes, so that both layouts fit), a 1-D weight, integer and byte tensors,
/// metadata; and a donor that holds `x` beside `x.weight` (one module name).
fn foreign_files() -> (Vec<u8>, Vec<u8>) {
    let vals = |n: usize, k: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7 + k * 3) % 11) as f32 / 4.0 - 1.25)
            .collect()
    };
    let f32b = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let f16b = |v: &[f32]| {
        v.iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect::<Vec<u8>>()
    };
    let bf16b = |v: &[f32]| {
        v.iter()
            .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
            .collect::<Vec<u8>>()
    };
    let f64b = |v: &[f32]| {
        v.iter()
            .flat_map(|&x| (x as f64).to_le_bytes())
            .collect::<Vec<u8>>()
    };
    let seed: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        ("a.weight", Dtype::F32, vec![6, 8], f32b(&vals(48, 1))),
        ("b.weight", Dtype::F16, vec![8, 8], f16b(&vals(64, 3))),
        ("b.bias", Dtype::BF16, vec![8], bf16b(&vals(8, 4))),
        ("c.weight", Dtype::BF16, vec![4, 6], bf16b(&vals(24, 5))),
        ("d.weight", Dtype::F64, vec![4, 4], f64b(&vals(16, 7))),
        ("d.bias", Dtype::F16, vec![4], f16b(&vals(4, 2))),
        ("ln.weight", Dtype::F32, vec![4], f32b(&vals(4, 8))),
        ("ids.weight", Dtype::I32, vec![2, 2], vec![1; 16]),
        ("mask.weight", Dtype::U8, vec![2, 2], vec![1, 0, 1, 1]),
        ("pos", Dtype::I64, vec![1, 2], vec![0; 16]),
    ];
    let donor: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        ("x.weight", Dtype::F16, vec![4, 4], f16b(&vals(16, 9))),
        ("x", Dtype::F32, vec![4, 4], f32b(&vals(16, 10))),
        ("x.bias", Dtype::F64, vec![4], f64b(&vals(4, 11))),
    ];
    let bytes = |t: &[(&str, Dtype, Vec<usize>, Vec<u8>)], meta: bool| {
        let views: Vec<(&str, TensorView)> = t
            .iter()
            .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        let meta = meta.then(|| [("format".to_string(), "pt".to_string())].into());
        safetensors::serialize(views, &meta).unwrap()
    };
    (bytes(&seed, true), bytes(&donor, false))
}

/// A foreign-file mutation: a tensor's dtype set to any of [`DTYPES`] (the header re-framed, so
/// it parses and may lie about the data's size), a tensor renamed to its module name (a
/// duplicate module once both are selected), a tensor given twice in the header (a duplicate
/// JSON key), or a [`safetensors_case`] mutation (header length, numbers set huge, bytes).
fn foreign_case(rng: &mut rand::rngs::StdRng, input: &[u8], donors: &[&[u8]]) -> Vec<u8> {
    let n = u64::from_le_bytes(input[..8].try_into().unwrap()) as usize;
    let header: Option<serde_json::Map<String, Value>> = input
        .get(8..8 + n)
        .and_then(|h| serde_json::from_slice(h).ok());
    let kind = rng.gen_range(0..8);
    let (Some(mut header), 0..=2) = (header, kind) else {
        return safetensors_case(rng, input, donors);
    };
    let names: Vec<String> = header
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    if names.is_empty() {
        return safetensors_case(rng, input, donors);
    }
    let name = names[rng.gen_range(0..names.len())].clone();
    let text = match kind {
        0 => {
            header[&name]["dtype"] = Value::from(DTYPES[rng.gen_range(0..DTYPES.len())]);
            serde_json::to_vec(&header).unwrap()
        }
        1 => {
            let module = name.strip_suffix(".weight").unwrap_or(&name).to_string();
            let entry = header.remove(&name).unwrap();
            header.insert(module, entry);
            serde_json::to_vec(&header).unwrap()
        }
        _ => {
            // The same name twice, with the entry of another tensor the second time.
            let other = &names[rng.gen_range(0..names.len())];
            let mut t = serde_json::to_vec(&header).unwrap();
            t.pop();
            t.extend_from_slice(
                format!(
                    ",{}:{}}}",
                    serde_json::to_string(&name).unwrap(),
                    header[other]
                )
                .as_bytes(),
            );
            t
        }
    };
    let mut framed = (text.len() as u64).to_le_bytes().to_vec();
    framed.extend_from_slice(&text);
    framed.extend_from_slice(&input[8 + n..]);
    framed
}

/// The configuration of a case (drawn with it, so a failure replays with its seed): patterns
/// that select by wildcard, everything, or exact names; both layouts, every target, both dtypes
/// and TT layouts, and sometimes the file itself as its calibration inputs (each weight's rows
/// as the inputs of the layers as wide as it).
fn foreign_config(rng: &mut rand::rngs::StdRng) -> (CompressConfig, bool) {
    const PATTERNS: [&str; 8] = [
        "*.weight",
        "*.weight",
        "*",
        "*",
        "b.weight",
        "b*,d*",
        "x*",
        "ln.weight",
    ];
    let targets = [
        Target::Exact,
        Target::Bond(rng.gen_range(1..4)),
        Target::Eps(0.3),
        Target::BondAndEps(2, 0.1),
        Target::Budget(0.5),
    ];
    let modes = match rng.gen_range(0..4) {
        0 => Modes::Explicit {
            in_modes: vec![2, 2],
            out_modes: vec![2, 2],
        },
        d => Modes::Auto(d),
    };
    let config = CompressConfig {
        pattern: PATTERNS[rng.gen_range(0..PATTERNS.len())].into(),
        layout: if rng.gen() {
            WeightLayout::OutIn
        } else {
            WeightLayout::InOut
        },
        modes,
        target: targets[rng.gen_range(0..targets.len())].clone(),
        tt_layout: if rng.gen_range(0..3) == 0 {
            TTLayout::Matrix
        } else {
            TTLayout::OutputsThenInputs
        },
        threads: 1,
        method: [Method::Whitened, Method::Scaled, Method::Weight][rng.gen_range(0..3)],
        dtype: if rng.gen() {
            OutputDtype::Input
        } else {
            OutputDtype::F32
        },
    };
    (config, rng.gen_range(0..4) == 0)
}

/// The scratch directory of the compress target: in memory where there is one (`/dev/shm`), so
/// a case's three files cost no disk syncs.
fn compress_scratch(target: &str) -> std::path::PathBuf {
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("succulm-fuzz-{}-{target}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One case: `bytes` as the input of `compress_files` (cores and report into the scratch
/// directory). An `Ok` must have written a report and cores that load, one layer a matrix, every
/// error finite.
fn compress_case(dir: &Path, bytes: &[u8], config: &CompressConfig, calibrate: bool) {
    let input = dir.join("model.safetensors");
    std::fs::write(&input, bytes).unwrap();
    let paths = CompressPaths {
        input: input.clone(),
        output: dir.join("tt.safetensors"),
        calibration: calibrate.then(|| input.clone()),
        report: Some(dir.join("report.json")),
    };
    let _ = std::fs::remove_file(&paths.output);
    if let Ok(report) = compress_files(&paths, config) {
        let layers = load_tt_layers(&paths.output).unwrap();
        assert_eq!(layers.len(), report.matrices.len());
        let json: Value =
            serde_json::from_slice(&std::fs::read(paths.report.as_ref().unwrap()).unwrap())
                .unwrap();
        assert_eq!(
            json["matrices"].as_array().unwrap().len(),
            report.matrices.len()
        );
        for m in &report.matrices {
            assert!(m.weight_error.is_finite(), "{}", m.name);
            assert!(m.output_error.map_or(true, f64::is_finite), "{}", m.name);
            let (tt, source, _) = &layers[&m.module];
            assert_eq!(source, &m.name);
            assert_eq!(tt.bond_dims(), &m.bond_dims[..]);
        }
    }
}

#[test]
fn fuzz_compress_foreign_safetensors() {
    succulm::tt::blas::set_num_threads(1);
    let (seed, donor) = foreign_files();
    let dir = compress_scratch("compress");
    let donors = [donor.as_slice()];
    let config = Cell::new(None);
    common_fuzz::run(
        "compress_foreign_safetensors",
        cap,
        |rng| {
            config.set(Some(foreign_config(rng)));
            let from = if rng.gen_range(0..4) == 0 {
                &donor
            } else {
                &seed
            };
            foreign_case(rng, from, &donors)
        },
        |bytes| {
            let (cfg, calibrate) = config.take().expect("drawn with the case");
            compress_case(&dir, bytes, &cfg, calibrate)
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sizes from the header are checked against the file before anything is allocated: shapes of
/// 2⁶⁰ values over a few bytes of data, a matrix of 0 × 2⁶² values (no data at all, a valid
/// file), offsets past the end. Each is an `Err` naming the file, with no allocation above the
/// fuzzing cap.
#[test]
fn compress_checks_header_sizes_before_allocating() {
    let dir = compress_scratch("compress-sizes");
    let huge = 1u64 << 60;
    // (header, bytes of data)
    let headers = [
        (
            serde_json::json!({"a.weight": {"dtype": "F16", "shape": [huge, 2], "data_offsets": [0, 8]}}),
            8,
        ),
        (
            serde_json::json!({"a.weight": {"dtype": "F32", "shape": [0, 1u64 << 62], "data_offsets": [0, 0]}}),
            0,
        ),
        (
            serde_json::json!({"a.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                            "a.bias": {"dtype": "F32", "shape": [1u64 << 62], "data_offsets": [16, 24]}}),
            24,
        ),
        (
            serde_json::json!({"a.weight": {"dtype": "F16", "shape": [1, 1u64 << 40], "data_offsets": [0, 2u64 << 40]}}),
            8,
        ),
        (
            serde_json::json!({"a.weight": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, huge]}}),
            8,
        ),
        (
            serde_json::json!({"a.weight": {"dtype": "F64", "shape": [1, 1], "data_offsets": [8, 16]}}),
            16,
        ),
    ];
    for (h, data) in headers {
        let mut text = serde_json::to_vec(&h).unwrap();
        text.resize(text.len().div_ceil(8) * 8, b' ');
        let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&text);
        bytes.extend(std::iter::repeat(0u8).take(data));
        let input = dir.join("sizes.safetensors");
        std::fs::write(&input, &bytes).unwrap();
        let paths = CompressPaths {
            input,
            output: dir.join("tt.safetensors"),
            calibration: None,
            report: None,
        };
        let (r, largest) = common_alloc::measure(common_fuzz::HARD_CAP, || {
            compress_files(&paths, &CompressConfig::default())
        });
        let e = r.unwrap_err().to_string();
        assert!(e.contains("sizes.safetensors"), "{h}: {e}");
        assert!(largest <= cap(bytes.len()), "{h}: {largest} bytes at once");
        assert!(!paths.output.exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fuzzes the merge of two part files (`layer_sweep merge`'s or `replicate merge`'s input):
/// each case mutates one of `parts` ([`json_case`]), or sets one number both parts have to the
/// same edge value (so that fields every part of a run shares, such as the grid, pass the
/// comparison of the parts and reach the merged value), and hands both files to `merge`, which
/// must give an `Err` or a merged value that `valid` checks and renders, within the cap of both
/// files' bytes. A case's input is file 1's length (8 bytes, little endian), file 1, file 2.
fn fuzz_merge<T>(
    target: &str,
    parts: &[Vec<u8>; 2],
    merge: impl Fn(&[std::path::PathBuf]) -> succulm::Result<T>,
    valid: impl Fn(T),
) {
    let paths = [0, 1].map(|k| common_fuzz::scratch(&format!("{target}-{}", k + 1), "json"));
    let donors: [&[u8]; 2] = [&parts[0], &parts[1]];
    let values = parts
        .clone()
        .map(|p| serde_json::from_slice::<Value>(&p).unwrap());
    // The numbers of part 1 that part 2 has too.
    let mut shared = Vec::new();
    collect_numbers(&values[0], String::new(), &mut shared);
    shared.retain(|at| values[1].pointer(at).is_some_and(Value::is_number));
    let merged = std::cell::Cell::new(0u64);
    let n = common_fuzz::run(
        target,
        cap,
        |rng| {
            let files = match rng.gen_range(0..3) {
                0 => {
                    let at = &shared[rng.gen_range(0..shared.len())];
                    let edge = edge_value(rng);
                    values.clone().map(|mut v| {
                        *v.pointer_mut(at).unwrap() = edge.clone();
                        serde_json::to_vec(&v).unwrap()
                    })
                }
                k => {
                    let mut files = parts.clone();
                    files[k - 1] = json_case(rng, &parts[k - 1], &donors);
                    files
                }
            };
            let mut input = (files[0].len() as u64).to_le_bytes().to_vec();
            input.extend_from_slice(&files[0]);
            input.extend_from_slice(&files[1]);
            input
        },
        |bytes| {
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            let (a, b) = bytes[8..].split_at(n);
            for (p, file) in paths.iter().zip([a, b]) {
                // A new file each time: overwriting one makes ext4 flush it to disk on close.
                let _ = std::fs::remove_file(p);
                std::fs::write(p, file).unwrap();
            }
            if let Ok(v) = merge(&paths) {
                merged.set(merged.get() + 1);
                valid(v);
            }
        },
    );
    // How deep the cases went: those merged passed every check.
    eprintln!("fuzz target {target}: {} of {n} cases merged", merged.get());
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

/// The two parts of a tiny `layer_sweep --blocks 0 --bonds 10,5 --samples 1 --budget 0.5
/// --shard K/2` (two cells, the seed's five settings, one budget request; shard 1 carries the
/// seed's experiments, cut to one run of two answers), as written.
fn sweep_part_files() -> [Vec<u8>; 2] {
    use succulm::study::setup::{Study, SweepOptions, SweepOutput};
    let options = SweepOptions {
        blocks: Some("0".into()),
        bonds: vec![10, 5],
        samples: 1,
        budget: Some(0.5),
        ..SweepOptions::default()
    };
    let study = Study::load(
        common::fixture("succulm_upper_middle.json"),
        common::fixture(""),
        options,
    )
    .unwrap();
    let setup = study.setup(&|_: &str| {}).unwrap();
    let mut experiments = setup.experiments().unwrap();
    experiments.dense.truncate(2);
    experiments.runs.truncate(1);
    experiments.runs[0].answers.truncate(2);
    [0, 1].map(|k| {
        let shard = succulm::study::shard::Shard::new(k, 2).unwrap();
        let mut part = setup.sweep(shard, &|_: &str| {}).unwrap();
        SweepOutput::attach(&mut part, (k == 0).then_some(&experiments), study.options()).unwrap();
        part.to_json().unwrap().into_bytes()
    })
}

#[test]
fn fuzz_sweep_parts() {
    use succulm::study::report;
    use succulm::study::setup::SweepOutput;
    let parts = sweep_part_files();
    let out = common::temp_dir("fuzz-sweep-parts-out");
    // The parts as written merge.
    assert!(SweepOutput::merge_files(&[
        common::write(
            &out,
            "part_1_of_2.json",
            std::str::from_utf8(&parts[0]).unwrap()
        ),
        common::write(
            &out,
            "part_2_of_2.json",
            std::str::from_utf8(&parts[1]).unwrap()
        ),
    ])
    .is_ok());
    fuzz_merge("sweep_parts", &parts, SweepOutput::merge_files, |output| {
        // A merged report: every cell of its grid, each setting and budget cell once; it
        // prints as `layer_sweep merge` prints it.
        let r = &output.report;
        assert_eq!(
            r.cells.len(),
            r.methods.len() * r.block_sets.len() * r.bonds.len()
        );
        assert!(r.budget.is_empty() || r.budget.len() == r.methods.len() * r.block_sets.len());
        assert!(!output.text().is_empty());
        // ... and renders every file it writes (in memory: writing them is slow).
        assert!(report::files(r).unwrap().len() > 10);
        let page = report::html::page(r, &report::all_verdicts(r), output.experiments.as_ref());
        assert!(page.ends_with("</html>\n"));
    });
    std::fs::remove_dir_all(&out).unwrap();
}

/// The two parts of a tiny `replicate --models 2 --profile small --epochs 1 --blocks 0 --bonds 5
/// --samples 1 --shard K/2`, as written.
fn replica_part_files() -> [Vec<u8>; 2] {
    use succulm::study::replicate::{run_shard, ReplicateOptions};
    use succulm::study::setup::SweepOptions;
    let options = ReplicateOptions {
        models: 2,
        profile: "small".into(),
        epochs: 1,
        sweep: SweepOptions {
            blocks: Some("0".into()),
            bonds: vec![5],
            samples: 1,
            threads: 1,
            ..SweepOptions::default()
        },
        ..ReplicateOptions::default()
    };
    let out = common::temp_dir("fuzz-replica-parts-seed");
    let parts = [0, 1].map(|k| {
        let shard = succulm::study::shard::Shard::new(k, 2).unwrap();
        let part = run_shard(common::fixture(""), &options, shard, &out, &|_: &str| {}).unwrap();
        let p = out.join(shard.file_name());
        part.write(&p).unwrap();
        std::fs::read(&p).unwrap()
    });
    std::fs::remove_dir_all(&out).unwrap();
    parts
}

#[test]
fn fuzz_replica_parts() {
    use succulm::study::replicate::{self, Replication};
    let parts = replica_part_files();
    fuzz_merge(
        "replica_parts",
        &parts,
        replicate::merge_replica_files,
        |models| {
            // Every model of the run, each once; aggregated and printed as `replicate merge`
            // does, or refused by the aggregation.
            assert!(!models.is_empty());
            if let Ok(r) = Replication::new(models) {
                assert!(!replicate::format_replicated(&r.verdicts).is_empty());
                assert!(!replicate::markdown_table(&r.verdicts).is_empty());
                assert!(serde_json::to_string(&r).is_ok());
            }
        },
    );
}

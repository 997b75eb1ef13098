//! The front doors as a user meets them: the built example binaries, run with the README's
//! commands (through `common_cli`, which builds them), from the repository or from elsewhere.
//! Every test here checks what the binary prints, writes and exits with.

mod common;
mod common_cli;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use ndarray::{Array1, Array2};
use rand::{rngs::StdRng, Rng, SeedableRng};
use succulm::compress::load_tt_layers;
use succulm::fs::safetensors::SafetensorsFile;
use succulm::nn::generate::{generate_text, GenerateConfig, Sampling};
use succulm::text::data::{load_corpus, standard_split};
use succulm::text::probes::{load_probes, ProbeGroup};
use succulm::{Model, Vocab};

use common_cli::{assert_cli_error, run, stderr};

/// Every example.
const EXAMPLES: [&str; 9] = [
    "compress",
    "convert",
    "layer_sweep",
    "make_corpus",
    "make_embeddings",
    "replicate",
    "talk",
    "train",
    "trap",
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// Defect 1: `compress --help` and `convert --help` failed with a Debug print, `layer_sweep
/// merge --help` was an error. Every example (and subcommand) answers `--help` and `-h` with its
/// help on stdout, exit 0, and reports a bad flag as `error: <message>`.
#[test]
fn every_example_answers_help_and_reports_errors_plainly() {
    let tmp = common::temp_dir("front_doors_help");
    for name in EXAMPLES {
        for help in ["--help", "-h"] {
            let o = run(name, &[help], &tmp);
            let out = stdout(&o);
            assert_eq!(o.status.code(), Some(0), "{name} {help}: {}", stderr(&o));
            assert!(
                out.starts_with(&format!("{name}: ")),
                "{name} {help}: {out}"
            );
            assert!(out.contains("--help"), "{name} {help}: {out}");
            assert!(stderr(&o).is_empty(), "{name} {help}: {}", stderr(&o));
        }
        // After other flags too: help, not a complaint about them.
        let o = run(name, &["--seed", "1", "--help"], &tmp);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        assert!(stdout(&o).starts_with(&format!("{name}: ")), "{name}");

        let o = run(name, &["--frobnicate"], &tmp);
        assert_cli_error(&o, "--frobnicate", name);
        assert!(stdout(&o).is_empty(), "{name}: {}", stdout(&o));
    }
    for name in ["layer_sweep", "replicate"] {
        let o = run(name, &["merge", "--help"], &tmp);
        assert_eq!(o.status.code(), Some(0), "{name} merge: {}", stderr(&o));
        assert!(
            stdout(&o).contains(&format!("{name} merge PART...")),
            "{name} merge: {}",
            stdout(&o)
        );
        let o = run(name, &["merge", "--frobnicate"], &tmp);
        assert_cli_error(&o, "--frobnicate", name);
    }
    // The Debug prints of before, and a flag without its value.
    let o = run("compress", &["--input"], &tmp);
    assert_cli_error(&o, "`--input`: needs a value", "compress --input");
    let o = run("compress", &["--input", "a.safetensors"], &tmp);
    assert_cli_error(&o, "`--output`: is required", "compress without --output");
    let o = run("convert", &["only_one.json"], &tmp);
    assert_cli_error(&o, "expected two paths", "convert with one path");
    let o = run(
        "convert",
        &["/no/such.json", &format!("{}/x.json", path(&tmp))],
        &tmp,
    );
    assert_cli_error(&o, "/no/such.json", "convert of a missing file");
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// Defect 2: `--flag=value` was an unknown option; it is `--flag value` everywhere. (Further
/// uses: `compress`, `train`, `layer_sweep --out=` in the tests below.)
#[test]
fn flag_equals_value_is_flag_space_value() {
    let tmp = common::temp_dir("front_doors_equals");
    let prompts = ["is ruby a boy?", "who is winy?"];
    let spaced = run(
        "talk",
        &[
            "--seed",
            "7",
            "--temperature",
            "0.9",
            prompts[0],
            prompts[1],
        ],
        repo(),
    );
    let equals = run(
        "talk",
        &["--seed=7", "--temperature=0.9", prompts[0], prompts[1]],
        repo(),
    );
    assert!(spaced.status.success(), "{}", stderr(&spaced));
    assert!(equals.status.success(), "{}", stderr(&equals));
    assert_eq!(stdout(&spaced), stdout(&equals));
    assert_eq!(stdout(&equals).lines().count(), 2, "{}", stdout(&equals));
    // A switch given a value is refused, not silently taken as a prompt or dropped.
    let o = run("talk", &["--greedy=yes", prompts[0]], repo());
    assert_cli_error(&o, "`--greedy=yes`", "talk --greedy=yes");

    // make_corpus --out=DIR --seed=2024 regenerates the shipped corpus, byte for byte.
    let corpus = tmp.join("corpus");
    let o = run(
        "make_corpus",
        &[&format!("--out={}", path(&corpus)), "--seed=2024"],
        &tmp,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "succulm_normal_sentence_pairs.json",
        "succulm_question_answer_pairs.json",
        "succulm_probes.json",
        "succulm_hidden_words.json",
        "background.txt",
    ] {
        assert!(
            std::fs::read(corpus.join(f)).unwrap() == std::fs::read(common::fixture(f)).unwrap(),
            "{f} differs from the shipped one"
        );
    }
    // make_embeddings --fixtures=DIR computes the vectors of exactly the shipped vocabulary.
    let o = run(
        "make_embeddings",
        &[&format!("--fixtures={}", path(&corpus)), "--seed=7"],
        &tmp,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let made = Vocab::load_with_hidden(
        corpus.join("succulm_embeddings.json"),
        corpus.join("succulm_hidden_words.json"),
    )
    .unwrap();
    assert_eq!(made.words(), common::vocab().words());

    // The value reaches the parser (its complaint is about the value, not an unknown option).
    let o = run("replicate", &["--samples=0"], &tmp);
    assert_cli_error(&o, "`--samples`: must be at least 1", "replicate");
    let o = run("trap", &["--samples=0"], &tmp);
    assert_cli_error(&o, "`--samples`: \"0\" is out of range 1..=100000", "trap");
    for name in ["layer_sweep", "replicate"] {
        let o = run(name, &["merge", &format!("--out={}", path(&tmp))], &tmp);
        assert_cli_error(&o, "no part given", name);
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// Defect 3: started outside the repository, the examples did not find the shipped fixtures (and
/// suggested a 60-epoch retrain). They find them from any working directory; a wrong path names
/// the flag to pass.
#[test]
fn the_shipped_fixtures_are_found_from_any_working_directory() {
    let elsewhere = common::temp_dir("front_doors_cwd");
    let args = ["--greedy", "who is winy?", "is ruby a boy?"];
    let here = run("talk", &args, repo());
    let there = run("talk", &args, &elsewhere);
    assert!(there.status.success(), "{}", stderr(&there));
    assert_eq!(stdout(&there), stdout(&here));
    assert!(stdout(&there).starts_with("prompt='who is winy?' result='"));

    // The main job, shrunk to one cell: its corpus, probes and checkpoint from the fixtures,
    // its outputs relative to the working directory.
    let o = run(
        "layer_sweep",
        &[&common::ONE_CELL_SWEEP[..], &["--out=sweep"]].concat(),
        &elsewhere,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report = succulm::study::report::read_json(elsewhere.join("sweep/sweep.json")).unwrap();
    assert_eq!(report.cells.len(), 1);
    assert!(stdout(&o).contains("== The seed's claims =="));

    // Wrong paths: the flag to pass, not a retraining recipe.
    let o = run("layer_sweep", &["--checkpoint", "missing.json"], &elsewhere);
    assert_cli_error(&o, "pass --checkpoint PATH", "a missing checkpoint");
    assert!(!stderr(&o).contains("cargo run"), "{}", stderr(&o));
    let o = run("talk", &["--checkpoint=missing.json", "hi"], &elsewhere);
    assert_cli_error(&o, "pass --checkpoint PATH", "talk, a missing checkpoint");
    for name in ["train", "layer_sweep", "replicate", "trap"] {
        let o = run(name, &["--fixtures", "no_such_dir"], &elsewhere);
        assert_cli_error(&o, "pass --fixtures DIR", name);
    }
    assert!(!elsewhere.join("target").exists());
    std::fs::remove_dir_all(&elsewhere).unwrap();
}

/// Defect 4: a run that failed after its output directory was checked left that directory
/// behind, empty. Now the directory appears only when there is something to write.
#[test]
fn a_failed_run_leaves_no_output_directory() {
    let tmp = common::temp_dir("front_doors_no_out");
    let bad = common::write(&tmp, "bad.json", "{\"not\": \"a checkpoint\"}");
    let out = tmp.join("new/out");
    let o = run(
        "layer_sweep",
        &["--checkpoint", path(&bad), "--out", path(&out)],
        &tmp,
    );
    assert_cli_error(&o, "bad.json", "a corrupt checkpoint");
    assert!(!tmp.join("new").exists(), "the output directory was left");
    // The check still refuses what cannot be written, before any work.
    let o = run("layer_sweep", &["--out", "/proc/x"], &tmp);
    assert_cli_error(&o, "/proc/x", "an unwritable --out");
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("loading"), "{}", stderr(&o));
    // A run that succeeds creates it (make_corpus writes into a directory that did not exist).
    let corpus = tmp.join("a/b");
    let o = run("make_corpus", &["--out", path(&corpus)], &tmp);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(corpus.join("succulm_probes.json").is_file());
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// `compress` on a GPT-2-shaped file (Conv1D weights `[in, out]`, biases, and tensors the
/// pattern does not select), run with the README's command: the written file loads, and each
/// matrix rebuilt from its cores is the input's up to exactly the reported error.
#[test]
fn compress_writes_cores_that_rebuild_the_input_within_the_reported_error() {
    let tmp = common::temp_dir("front_doors_compress");
    let (n_embd, inner) = (24usize, 96usize);
    let mut tensors: Vec<(String, ndarray::ArrayD<f32>)> = Vec::new();
    // Random entries: a full-rank matrix, so that bond 16 truncates.
    let mut rng = StdRng::seed_from_u64(11);
    let mut fill = |name: String, shape: &[usize], scale: f32| {
        let n: usize = shape.iter().product();
        let data = (0..n)
            .map(|_| scale * rng.gen_range(-1.0f32..1.0))
            .collect();
        tensors.push((
            name,
            ndarray::ArrayD::from_shape_vec(shape.to_vec(), data).unwrap(),
        ));
    };
    for layer in 0..2 {
        let k = 0.5 + layer as f32;
        fill(format!("h.{layer}.mlp.c_fc.weight"), &[n_embd, inner], k);
        fill(format!("h.{layer}.mlp.c_fc.bias"), &[inner], k * 1.3);
        fill(
            format!("h.{layer}.mlp.c_proj.weight"),
            &[inner, n_embd],
            k * 0.7,
        );
        fill(format!("h.{layer}.mlp.c_proj.bias"), &[n_embd], k * 1.7);
        fill(
            format!("h.{layer}.attn.c_attn.weight"),
            &[n_embd, 3 * n_embd],
            k * 0.5,
        );
    }
    let input = tmp.join("gpt2_mlp.safetensors");
    common::write_tensors(&input, &tensors);
    let output = tmp.join("gpt2_mlp_tt.safetensors");
    let report = tmp.join("report.json");
    let o = run(
        "compress",
        &[
            "--input",
            path(&input),
            "--output",
            path(&output),
            "--pattern",
            "h.*.mlp.c_*.weight",
            "--layout",
            "in_out",
            "--modes",
            "auto:3",
            "--bond",
            "16",
            &format!("--report={}", path(&report)),
        ],
        &tmp,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("4 matrices:"), "{}", stdout(&o));

    let reported: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let matrices = reported["matrices"].as_array().unwrap();
    assert_eq!(matrices.len(), 4);
    let layers = load_tt_layers(&output).unwrap();
    assert_eq!(layers.len(), 4, "{:?}", layers.keys().collect::<Vec<_>>());
    let source: BTreeMap<&str, &ndarray::ArrayD<f32>> =
        tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    for m in matrices {
        let name = m["name"].as_str().unwrap();
        let module = name.strip_suffix(".weight").unwrap();
        let (tt, from, _) = &layers[module];
        assert_eq!(from, name);
        // Conv1D [in, out] against the cores' [out, in].
        let w: Array2<f32> = source[name]
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap()
            .t()
            .to_owned();
        let dense = tt.to_dense();
        let rebuilt = dense.weight();
        assert_eq!(rebuilt.dim(), w.dim(), "{name}");
        let diff = (&w - &rebuilt).mapv(|x| (x as f64).powi(2)).sum().sqrt();
        let norm = w.mapv(|x| (x as f64).powi(2)).sum().sqrt();
        let error = diff / norm;
        let claimed = m["weight_error"].as_f64().unwrap();
        assert!(
            (error - claimed).abs() <= 1e-4 * claimed.max(1e-3),
            "{name}: rebuilt error {error}, reported {claimed}"
        );
        // Bond 16 truncates the middle bond (rank 24): a real error, really measured.
        assert!(claimed > 1e-3, "{name}: {claimed}");
        let bias = source[format!("{module}.bias").as_str()];
        let bias = Array1::from_iter(bias.iter().copied());
        assert_eq!(tt.bias(), bias.view(), "{name}: bias");
    }
    assert!(!layers.contains_key("h.0.attn.c_attn"));
    let written = SafetensorsFile::read(&output).unwrap();
    assert!(written.names().iter().all(|n| n.contains(".mlp.")));
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// The named parameters of a checkpoint, as bits.
fn parameter_bits(path: &Path) -> (Vec<(String, Vec<u32>)>, Vec<String>) {
    let (model, vocab) = Model::load(path).unwrap();
    let params = model
        .named_parameters()
        .into_iter()
        .map(|(n, t)| (n, t.iter().map(|v| v.to_bits()).collect()))
        .collect();
    (params, vocab.words().to_vec())
}

/// `convert` JSON → safetensors → JSON: the tensors are the shipped ones, bit for bit.
#[test]
fn convert_round_trips_a_checkpoint_bit_for_bit() {
    let tmp = common::temp_dir("front_doors_convert");
    let json = common::fixture("succulm_upper_middle.json");
    let st = tmp.join("model.safetensors");
    let back = tmp.join("back.json");
    let o = run("convert", &[path(&json), path(&st)], &tmp);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("bytes) ->"), "{}", stdout(&o));
    let o = run("convert", &[path(&st), path(&back)], &tmp);
    assert!(o.status.success(), "{}", stderr(&o));

    let original = parameter_bits(&json);
    assert!(!original.0.is_empty());
    assert_eq!(parameter_bits(&st), original);
    assert_eq!(parameter_bits(&back), original);
    // The safetensors file holds the shipped one's tensors.
    let (ours, shipped) = (
        SafetensorsFile::read(&st).unwrap(),
        SafetensorsFile::read(common::fixture("succulm_upper_middle.safetensors")).unwrap(),
    );
    assert_eq!(ours.names(), shipped.names());
    for n in ours.names() {
        let bits = |f: &SafetensorsFile| -> Vec<u32> {
            f.tensor(&n).unwrap().iter().map(|v| v.to_bits()).collect()
        };
        assert_eq!(bits(&ours), bits(&shipped), "{n}");
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// Issue 22, item 12: files written by the crate were not byte-deterministic (the metadata in
/// hash order: four `convert` runs, four different files). The same input now gives the same
/// bytes, run after run, for `convert` and for `compress` (cores and report).
#[test]
fn convert_and_compress_write_the_same_bytes_on_every_run() {
    let tmp = common::temp_dir("front_doors_deterministic");
    let json = common::fixture("succulm_upper_middle.json");
    let mut runs = Vec::new();
    for k in 0..4 {
        let st = tmp.join(format!("model{k}.safetensors"));
        let o = run("convert", &[path(&json), path(&st)], &tmp);
        assert!(o.status.success(), "{}", stderr(&o));
        runs.push(std::fs::read(&st).unwrap());
    }
    assert!(
        runs.iter().all(|r| r == &runs[0]),
        "convert: the runs differ"
    );
    let input = common::fixture("compress_tiny.safetensors");
    let mut runs = Vec::new();
    for k in 0..4 {
        let (out, report) = (
            tmp.join(format!("tt{k}.safetensors")),
            tmp.join(format!("report{k}.json")),
        );
        let o = run(
            "compress",
            &[
                "--input",
                path(&input),
                "--output",
                path(&out),
                "--pattern",
                "h.*.mlp.*.weight",
                "--layout",
                "in_out",
                "--modes",
                "auto:2",
                "--bond",
                "3",
                "--report",
                path(&report),
            ],
            &tmp,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        runs.push((
            std::fs::read(&out).unwrap(),
            std::fs::read(&report).unwrap(),
        ));
    }
    assert!(
        runs.iter().all(|r| r == &runs[0]),
        "compress: the runs differ"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// `talk` with the README's prompts and a seed: the answers the library gives for that seed,
/// the same on every run.
#[test]
fn talk_answers_prompts_deterministically_for_a_seed() {
    let prompts = ["is ruby a boy?", "who is winy?"];
    let o = run("talk", &["--seed", "5", prompts[0], prompts[1]], repo());
    assert!(o.status.success(), "{}", stderr(&o));
    let again = run("talk", &["--seed", "5", prompts[0], prompts[1]], repo());
    assert_eq!(stdout(&o), stdout(&again));

    succulm::tt::blas::set_num_threads(1);
    let (model, vocab) = Model::load(common::fixture("succulm_upper_middle.json")).unwrap();
    let cfg = GenerateConfig::new(Sampling::Temperature(0.6));
    let mut rng = StdRng::seed_from_u64(5);
    let expected: String = prompts
        .iter()
        .map(|p| {
            let g = generate_text(&model, &vocab, p, &cfg, &mut rng).unwrap();
            format!("prompt='{p}' result='{}'\n", g.text(&vocab))
        })
        .collect();
    assert_eq!(stdout(&o), expected);
}

/// A short `train` (the README's command, 2 epochs, from a directory without fixtures): the
/// checkpoint loads, and its loss on the validation rows is finite and below the initial one.
#[test]
fn a_short_train_saves_a_checkpoint_that_learned() {
    let tmp = common::temp_dir("front_doors_train");
    let o = run(
        "train",
        &[
            "--profile",
            "upper_middle",
            "--epochs=2",
            "--seed",
            "42",
            "--out=ckpt.json",
        ],
        &tmp,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("epoch   2"), "{}", stdout(&o));
    let ckpt: PathBuf = tmp.join("ckpt.json");
    let (trained, vocab) = Model::load(&ckpt).unwrap();
    assert_eq!(vocab.words(), common::vocab().words());

    let pairs = load_corpus(repo().join("fixtures")).unwrap();
    let pinned: Vec<String> = load_probes(common::fixture("succulm_probes.json"))
        .unwrap()
        .into_iter()
        .filter(|p| p.group == ProbeGroup::SeedInTraining)
        .map(|p| p.prompt)
        .collect();
    let (_, valid) = standard_split(&vocab, &pairs, &pinned, trained.config().max_len).unwrap();
    let init = Model::from_profile("upper_middle", &vocab, 42).unwrap();
    let before = init.loss(valid.x(), valid.y()).unwrap();
    let after = trained.loss(valid.x(), valid.y()).unwrap();
    assert!(
        after.is_finite() && before.is_finite(),
        "{before} -> {after}"
    );
    assert!(after < before, "validation loss {before} -> {after}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

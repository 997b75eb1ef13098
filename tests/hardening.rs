//! Issue 15's regressions: inputs that crashed, exhausted memory or silently gave garbage. One
//! test per numbered item of the issue (`item1_...` to `item9_...`); those about the command
//! line run the example binaries (built by `cargo test` beside this test binary).

mod common;
mod common_alloc;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ndarray::Array2;
use rand::{rngs::StdRng, SeedableRng};
use serde_json::Value;
use succulm::io::checkpoint::CheckpointFile;
use succulm::nn::generate::Sampling;
use succulm::tt::Truncation;
use succulm::{Error, FfnTtSpec, Linear, Model, TTLayer};

#[global_allocator]
static ALLOC: common_alloc::Counting = common_alloc::Counting;

/// The largest single allocation a bad checkpoint may cause: a few times the file's size.
const FILE_CAP: usize = 16 << 20;

/// The seed-made tiny checkpoint (V 23, d 12, 2 blocks) as JSON.
fn tiny_checkpoint() -> Value {
    let text = std::fs::read_to_string(common::fixture("parity_tiny.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["checkpoint"].clone()
}

/// The tiny checkpoint with block 0's FFN tensor-trained (so it has `projections`).
fn tiny_tt_checkpoint(dir: &Path) -> Value {
    let file: CheckpointFile = serde_json::from_value(tiny_checkpoint()).unwrap();
    let (mut model, vocab) = file.into_model(Path::new("tiny")).unwrap();
    let spec = FfnTtSpec::for_config(model.config(), 2);
    model.tensorize_ffn(0, &spec).unwrap();
    let p = dir.join("tt.json");
    model.save(&p, &vocab).unwrap();
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn load_value(
    dir: &Path,
    name: &str,
    v: &Value,
) -> (succulm::Result<(Model, succulm::Vocab)>, usize) {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
    common_alloc::measure(FILE_CAP, || Model::load(&p))
}

fn key_of(e: &Error) -> String {
    match e {
        Error::InvalidFile { key, .. } => key.clone(),
        other => panic!("expected InvalidFile, got {other:?}"),
    }
}

#[test]
fn item1_checkpoint_sizes_are_checked_against_the_data_before_allocating() {
    let dir = common::temp_dir("item1");
    let base = tiny_checkpoint();
    // The unchanged file loads, within the cap.
    let (ok, largest) = load_value(&dir, "ok.json", &base);
    ok.unwrap();
    assert!(largest < FILE_CAP);
    // Each size alone set huge: an error naming the config (or the tensor it contradicts),
    // and no allocation beyond a few MB.
    let cases: [(&str, Value, &str); 6] = [
        (
            "d_model",
            Value::from(120_000u64),
            "state_dict.embed.weight",
        ),
        ("max_len", Value::from(100_000_000u64), "config.max_len"),
        ("n_layers", Value::from(1_000_000_000u64), "config"),
        ("ffn_expansion", Value::from(1u64 << 62), "config"),
        (
            "ffn_expansion",
            Value::from(100_000u64),
            "state_dict.blocks.0.ffn.0.weight",
        ),
        (
            "vocab_size",
            Value::from(4_000_000_000u64),
            "state_dict.embed.weight",
        ),
    ];
    for (field, value, want_key) in cases {
        let mut v = base.clone();
        v["config"][field] = value.clone();
        let (r, largest) = load_value(&dir, "bad.json", &v);
        let e = r
            .err()
            .unwrap_or_else(|| panic!("{field} = {value} loaded"));
        let key = key_of(&e);
        assert!(
            key.starts_with(want_key),
            "{field} = {value}: key {key} ({e})"
        );
        assert!(
            largest < 1 << 20,
            "{field} = {value}: allocated {largest} bytes"
        );
    }
    // A TT spec's bond dims set huge: rejected against the cores present.
    let tt = tiny_tt_checkpoint(&dir);
    let (ok, _) = load_value(&dir, "tt_ok.json", &tt);
    ok.unwrap();
    let mut v = tt.clone();
    let n = v["projections"]["blocks.0.ffn.0"]["bond_dims"]
        .as_array()
        .unwrap()
        .len();
    v["projections"]["blocks.0.ffn.0"]["bond_dims"] = Value::from(vec![100_000u64; n]);
    let (r, largest) = load_value(&dir, "tt_bad.json", &v);
    let key = key_of(&r.unwrap_err());
    assert!(key.starts_with("state_dict.blocks.0.ffn.0.cores."), "{key}");
    assert!(largest < 1 << 20, "allocated {largest} bytes");
    // Modes whose product overflows usize.
    let mut v = tt;
    v["projections"]["blocks.0.ffn.0"]["in_modes"] = Value::from(vec![1u64 << 40, 1 << 40]);
    let (r, _) = load_value(&dir, "tt_overflow.json", &v);
    assert_eq!(key_of(&r.unwrap_err()), "projections.blocks.0.ffn.0");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn item2_non_finite_weights_are_never_saved_and_divergence_is_an_error() {
    let dir = common::temp_dir("item2");
    let file: CheckpointFile = serde_json::from_value(tiny_checkpoint()).unwrap();
    let (mut model, vocab) = file.into_model(Path::new("tiny")).unwrap();
    let mut n = 0;
    succulm::Parameters::visit_mut(&mut model, "", &mut |name, mut t| {
        if name == "blocks.1.attn_out.weight" {
            t[[3, 4]] = f32::NAN;
            n += 1;
        }
    });
    assert_eq!(n, 1);
    let p = dir.join("nan.json");
    match model.save(&p, &vocab) {
        Err(Error::InvalidArgument { name, reason }) => {
            assert_eq!(name, "model.blocks.1.attn_out.weight");
            assert!(reason.contains("value 40 is NaN"), "{reason}");
        }
        other => panic!("saved a NaN model: {other:?}"),
    }
    assert!(!p.exists(), "nothing written");
    // Training that blows up stops with an error instead of returning a broken model.
    let vocab = common::vocab();
    let pairs = common::all_pairs();
    let data = succulm::Dataset::from_pairs(&vocab, &pairs[..64], 29).unwrap();
    let mut model = Model::from_profile("tiny", &vocab, 1).unwrap();
    let config = succulm::nn::train::TrainConfig {
        epochs: 2,
        lr: 1e30,
        batch_size: 16,
        ..Default::default()
    };
    let mut trainer = succulm::nn::train::Trainer::new(config).unwrap();
    match trainer.fit(&mut model, &data, &data, |_| {}) {
        Err(Error::InvalidArgument { name, reason }) => {
            assert_eq!(name, "training");
            assert!(reason.contains("diverged in epoch 1"), "{reason}");
        }
        other => panic!("lr 1e30 trained: {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn item3_public_functions_error_instead_of_panicking() {
    let file: CheckpointFile = serde_json::from_value(tiny_checkpoint()).unwrap();
    let (model, _) = file.into_model(Path::new("tiny")).unwrap();
    let mut cache = model.new_cache();
    match model.forward_cached(&mut cache, &[]) {
        Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "ids"),
        other => panic!("{other:?}"),
    }
    // The cache still works afterwards.
    assert_eq!(
        model.forward_cached(&mut cache, &[1, 5]).unwrap().dim(),
        (2, 23)
    );
    let mut rng = StdRng::seed_from_u64(1);
    for (i, o) in [(0, 5), (5, 0), (0, 0)] {
        match Linear::init(i, o, &mut rng) {
            Err(Error::Shape { context, .. }) => assert_eq!(context, "Linear::init"),
            other => panic!("Linear::init({i}, {o}): {other:?}"),
        }
    }
    assert_eq!(Linear::init(5, 3, &mut rng).unwrap().weight().dim(), (3, 5));
}

/// Runs example `name` with `args`; stdin empty.
fn example(name: &str, args: &[&str]) -> Output {
    Command::new(example_path(name))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `target/<profile>/examples/<name>`, beside this test binary's `deps`.
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        p.exists(),
        "{} not built (cargo test builds the examples)",
        p.display()
    );
    p
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A usage error: exit code 2, a Display-form message naming `flag`, no panic.
fn assert_usage_error(o: &Output, flag: &str, what: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{what}: {e}");
    assert!(e.starts_with("error: "), "{what}: {e}");
    assert!(e.contains(flag), "{what}: {e}");
    assert!(
        !e.contains("panicked") && !e.contains("InvalidArgument {"),
        "{what}: {e}"
    );
}

#[test]
fn item3_examples_survive_bad_arguments_and_closed_pipes() {
    for name in ["make_corpus", "make_embeddings"] {
        assert_usage_error(&example(name, &["--seed", "-1"]), "--seed", name);
        assert_usage_error(&example(name, &["--seed"]), "--seed", name);
        assert_usage_error(&example(name, &["--frobnicate"]), "--frobnicate", name);
    }
    let o = example("make_corpus", &["--out", "/proc/x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("/proc/x"), "{}", stderr(&o));
    let o = example("make_embeddings", &["--fixtures", "/proc/x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // `talk --help | head -1`: the reader is gone before talk writes.
    for name in [
        "talk",
        "train",
        "layer_sweep",
        "make_corpus",
        "make_embeddings",
    ] {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("sleep 0.3; exec \"$0\" --help")
            .arg(example_path(name))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let e = stderr(&o);
        assert!(!e.contains("panicked"), "{name}: {e}");
        assert_ne!(o.status.code(), Some(101), "{name}: {e}");
    }
}

#[test]
fn item4_no_silent_garbage() {
    // Temperatures whose inverse overflows f32 are rejected (they sampled all-<PAD> answers).
    for t in [1e-45f32, 1e-40, f32::MIN_POSITIVE / 4.0] {
        assert!(Sampling::Temperature(t).validate().is_err(), "{t:e}");
        assert!(
            Sampling::TopK {
                k: 3,
                temperature: t
            }
            .validate()
            .is_err(),
            "{t:e}"
        );
    }
    // The smallest accepted temperature still gives a proper distribution: the argmax.
    let file: CheckpointFile = serde_json::from_value(tiny_checkpoint()).unwrap();
    let (model, _) = file.into_model(Path::new("tiny")).unwrap();
    let tiny_t = f32::MIN_POSITIVE;
    Sampling::Temperature(tiny_t).validate().unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let cfg = succulm::nn::generate::GenerateConfig::new(Sampling::Temperature(tiny_t));
    let greedy = succulm::nn::generate::GenerateConfig::new(Sampling::Greedy);
    let a = succulm::nn::generate::generate(&model, &[5, 6], &cfg, &mut rng).unwrap();
    let b = succulm::nn::generate::generate(&model, &[5, 6], &greedy, &mut rng).unwrap();
    assert_eq!((&a.ids, a.stopped_at_eos), (&b.ids, b.stopped_at_eos));

    // TTLayer::from_linear rejects an Inf bias, as from_parts does.
    let mut rng = StdRng::seed_from_u64(4);
    let mut lin = Linear::init(6, 4, &mut rng).unwrap();
    lin.weight_bias_mut().1[2] = f32::INFINITY;
    match TTLayer::from_linear(&[2, 3], &[2, 2], &lin, &[]) {
        Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "bias"),
        other => panic!("{other:?}"),
    }
    // tt_svd of a finite but huge matrix: an error, not non-finite cores with Ok.
    let big = Array2::<f32>::from_elem((4, 6), 3e38).into_dyn();
    match succulm::tt_svd(big.view(), &[4, 6], &Truncation::bond_dims(&[4])) {
        Err(Error::InvalidArgument { name, .. }) => assert!(name.starts_with("cores."), "{name}"),
        Ok(svd) => assert!(
            svd.cores.iter().all(|c| c.iter().all(|v| v.is_finite())),
            "Ok with non-finite cores"
        ),
        Err(e) => panic!("{e}"),
    }
    // talk --tt 0:9999 says the bond was capped.
    let o = example("talk", &["--greedy", "--tt", "0:9999", "who is winy?"]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("capped to their rank limits"), "{e}");
}

#[test]
fn item5_integers_are_parsed_as_integers() {
    use succulm::study::cli;
    // Through the train example: no epoch count other than a positive integer trains.
    for bad in ["0", "-1", "nan", "0.5", "1e3", ""] {
        let o = example("train", &["--epochs", bad, "--out", "/tmp/never.json"]);
        assert_usage_error(&o, "--epochs", bad);
    }
    for bad in ["-1", "1.5", "18446744073709551616", "0x10"] {
        let o = example("train", &["--seed", bad]);
        assert_usage_error(&o, "--seed", bad);
    }
    // 2^53 + 1 is kept exactly (an f64 would round it to 2^53).
    assert_eq!(
        cli::int("--seed", "9007199254740993", 0..=u64::MAX).unwrap(),
        9_007_199_254_740_993u64
    );
    let config = succulm::nn::train::TrainConfig {
        epochs: 0,
        ..Default::default()
    };
    match config.validate() {
        Err(Error::InvalidArgument { name, .. }) => assert_eq!(name, "epochs"),
        other => panic!("{other:?}"),
    }
    let o = example("train", &["--help"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("--epochs"));
}

#[test]
fn item6_output_locations_are_checked_before_the_work() {
    let started = std::time::Instant::now();
    let o = example("train", &["--epochs", "60", "--out", "/proc/x.json"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("/proc"), "{e}");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("epoch"),
        "trained first"
    );
    let dir = common::temp_dir("item6");
    let file = common::write(&dir, "a_file", "x");
    let o = example("layer_sweep", &["--out", file.to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("is not a directory") && !e.contains("loading"),
        "{e}"
    );
    for bad in ["", "/"] {
        let o = example("train", &["--out", bad]);
        assert_usage_error(&o, "--out", bad);
    }
    assert!(started.elapsed().as_secs() < 60);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn item7_outputs_are_written_as_a_set_and_stale_temps_are_cleaned() {
    let dir = common::temp_dir("item7");
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/sweep_before_methods.json");
    let report = succulm::study::report::read_json(&golden).unwrap();
    let out = dir.join("sweep");
    let first = succulm::study::report::write_all(&report, &out).unwrap();
    assert!(first.len() > 4);
    let before: Vec<(PathBuf, Vec<u8>)> = first
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    // A later write that fails part-way (here: one output name is a directory) leaves the whole
    // earlier set as it was; the old code had already replaced the files before it.
    let mut changed = report.clone();
    changed.sample.seed += 1;
    let blocker = out.join("verdict.txt");
    std::fs::remove_file(&blocker).unwrap();
    std::fs::create_dir(&blocker).unwrap();
    assert!(succulm::study::report::write_all(&changed, &out).is_err());
    for (p, bytes) in &before {
        if p != &blocker {
            assert!(
                &std::fs::read(p).unwrap() == bytes,
                "{} changed",
                p.display()
            );
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary directory left behind");
    // A writer that fails (a full disk) changes nothing either.
    std::fs::remove_dir(&blocker).unwrap();
    let r = succulm::fs::write_set_atomic(&out, |tmp| {
        succulm::fs::write_atomic(tmp.join("sweep.csv"), b"partial")?;
        Err(Error::invalid_arg("disk", "full"))
    });
    assert!(r.is_err());
    assert!(
        std::fs::read(&before[0].0).unwrap() == before[0].1,
        "changed by a failed set"
    );
    // Temp files of killed saves (`.NAME.PID.tmp`, PID not running) go at the next save of
    // that file; other files stay.
    let stale = dir.join(".model.json.4294967295.tmp");
    let other = dir.join(".other.json.4294967295.tmp");
    let not_ours = dir.join(".model.json.abc.tmp");
    for p in [&stale, &other, &not_ours] {
        std::fs::write(p, "x").unwrap();
    }
    succulm::fs::write_atomic(dir.join("model.json"), b"{}").unwrap();
    assert!(!stale.exists(), "stale temp file kept");
    assert!(other.exists() && not_ours.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn item8_training_is_identical_for_any_thread_count_from_two() {
    // The README states: results are bit-identical for any `threads >= 2`; one thread sums the
    // gradient in another order (float rounding differs). Check both halves of the statement.
    let vocab = common::vocab();
    let pairs = common::all_pairs();
    let data = succulm::Dataset::from_pairs(&vocab, &pairs[..96], 29).unwrap();
    let train = |threads: usize| {
        let mut model = Model::from_profile("tiny", &vocab, 5).unwrap();
        let config = succulm::nn::train::TrainConfig {
            epochs: 2,
            batch_size: 32,
            threads,
            ..Default::default()
        };
        let mut t = succulm::nn::train::Trainer::new(config).unwrap();
        t.fit(&mut model, &data, &data, |_| {}).unwrap();
        let mut w = Vec::new();
        succulm::Parameters::visit(&model, "", &mut |_, t| {
            w.extend(t.iter().map(|v| v.to_bits()))
        });
        w
    };
    let two = train(2);
    assert_eq!(two, train(3), "2 vs 3 threads");
    assert_eq!(two, train(4), "2 vs 4 threads");
    let one = train(1);
    assert_eq!(one.len(), two.len());
    // Not a promise, a description: the README says they differ by rounding only.
    let max_rel = one
        .iter()
        .zip(&two)
        .map(|(&a, &b)| {
            let (a, b) = (f32::from_bits(a), f32::from_bits(b));
            ((a - b).abs() / (1.0 + a.abs())) as f64
        })
        .fold(0.0, f64::max);
    assert!(max_rel < 1e-2, "1 vs 2 threads differ by {max_rel}");
}

#[test]
fn item9_messages_name_the_place_and_stay_short() {
    use succulm::study::cli;
    // A tiny lr is "below f32's smallest", not "0 must be finite".
    match cli::positive_f32("--lr", "1e-46") {
        Err(Error::InvalidArgument { name, reason }) => {
            assert_eq!(name, "--lr");
            assert!(
                reason.contains("1e-46") && reason.contains("smallest"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Huge and control-laden values are shortened and escaped.
    let huge = format!("\u{1b}[31m{}", "x".repeat(10_000_000));
    let e = cli::int::<u64>("--seed", &huge, 0..=10)
        .unwrap_err()
        .to_string();
    assert!(
        e.len() < 200 && !e.contains('\u{1b}') && e.contains("\\u{1b}"),
        "{e}"
    );
    // A 10 MB prompt of unknown words is not echoed whole.
    let vocab = common::vocab();
    let prompt = "zzz ".repeat(2_500_000);
    let e = succulm::nn::generate::encode_prompt(&vocab, &prompt)
        .unwrap_err()
        .to_string();
    assert!(e.len() < 300, "{} bytes", e.len());
    // An empty --out names the flag.
    let o = example("train", &["--out", ""]);
    assert!(stderr(&o).contains("`--out`: is empty"), "{}", stderr(&o));
    // Absurd sample and healing counts are refused up front (below the caps, long runs start
    // with an estimate on stderr).
    let o = example("layer_sweep", &["--samples", "2000000"]);
    assert_usage_error(&o, "--samples", "2e6 samples");
    let o = example("layer_sweep", &["--heal-epochs", "1000000"]);
    assert_usage_error(&o, "--heal-epochs", "1e6 healing epochs");
    // Healing shows progress per epoch (before: nothing between one cell and the next): one
    // cell and the five seed settings, two epochs each, counted over the run.
    let out = common::temp_dir("hardening_heal_progress");
    let o = example(
        "layer_sweep",
        &[
            &["--heal-epochs", "2"][..],
            &common::ONE_CELL_SWEEP,
            &["--out", out.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = stderr(&o)
        .lines()
        .filter(|l| l.contains("healing: epoch"))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 12, "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("epoch 2/2 of a cell")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("12/12 epochs of the run")),
        "{lines:?}"
    );
    let _ = std::fs::remove_dir_all(&out);
    // Duplicate bonds and block sets are errors, not duplicate rows.
    assert!(succulm::study::sweep::parse_bonds("20,20").is_err());
    assert!(succulm::study::sweep::parse_block_sets("0,0", 4).is_err());
    assert!(succulm::study::sweep::parse_block_sets("0+1,1+0", 4).is_err());
    assert_eq!(
        succulm::study::sweep::parse_bonds("20,10").unwrap(),
        vec![20, 10]
    );
    // A probe too long for the model names the probe.
    let (model, vocab) = Model::load(common::fixture("succulm_upper_middle.json")).unwrap();
    let mut probes =
        succulm::text::probes::load_probes(common::fixture("succulm_probes.json")).unwrap();
    probes[2].prompt = "ruby ".repeat(100);
    let x = Array2::from_elem((1, 3), 1u32);
    let sample = succulm::study::eval::SampleConfig {
        sampling: Sampling::Temperature(0.6),
        samples_per_probe: 1,
        seed: 1,
    };
    let id = probes[2].id.clone();
    match succulm::study::eval::Evaluator::new(
        &model,
        &vocab,
        x.view(),
        x.view(),
        &probes,
        &[],
        sample,
    ) {
        Err(e @ Error::SequenceTooLong { .. }) => {
            let e = e.to_string();
            assert!(e.contains("probe 2") && e.contains(&id), "{e}");
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a 100-word probe was accepted"),
    }
    // An empty background.txt is named, not reported as a NaN embedding.
    let dir = common::temp_dir("item9");
    for f in [
        "succulm_normal_sentence_pairs.json",
        "succulm_question_answer_pairs.json",
        "succulm_hidden_words.json",
    ] {
        std::fs::copy(common::fixture(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("background.txt"), "").unwrap();
    let o = example("make_embeddings", &["--fixtures", dir.to_str().unwrap()]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("background.txt") && !e.contains("NaN"), "{e}");
    assert!(!dir.join("succulm_embeddings.json").exists());
    std::fs::remove_dir_all(&dir).unwrap();
    // talk exits non-zero when every prompt was rejected, zero when one was answered.
    let o = example("talk", &["--greedy", "qqq zzz"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = example("talk", &["--greedy", "qqq zzz", "who is winy?"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn clip_grad_norm_scales_to_the_max_norm_as_pytorch() {
    let file: CheckpointFile = serde_json::from_value(tiny_checkpoint()).unwrap();
    let (model, _) = file.into_model(Path::new("tiny")).unwrap();
    let mut grads = model.zero_grads();
    let mut n = 0usize;
    succulm::Parameters::visit_mut(&mut grads, "", &mut |_, mut g| {
        for (i, v) in g.iter_mut().enumerate() {
            *v = if (n + i) % 2 == 0 { 3.0 } else { -4.0 };
        }
        n += g.len();
    });
    // Half the entries ±3, half ±4 (n even or not): the norm by hand.
    let (threes, fours) = (n.div_ceil(2), n / 2);
    let norm = ((9 * threes + 16 * fours) as f64).sqrt();
    let before = grads.clone();
    // Above the norm: nothing changes, bit for bit; the norm is returned.
    let got = succulm::nn::optim::clip_grad_norm(&mut grads, (norm * 2.0) as f32);
    assert!((got as f64 - norm).abs() < 1e-4 * norm);
    assert_eq!(grads, before);
    // Below it: every entry scaled by max_norm / (norm + 1e-6).
    let got = succulm::nn::optim::clip_grad_norm(&mut grads, 1.0);
    assert!((got as f64 - norm).abs() < 1e-4 * norm);
    let k = 1.0 / (norm + 1e-6);
    let mut after = 0.0f64;
    let mut i = 0usize;
    succulm::Parameters::visit(&grads, "", &mut |_, g| {
        for v in g.iter() {
            let want = if i % 2 == 0 { 3.0 } else { -4.0 } * k;
            assert!(
                (*v as f64 - want).abs() < 1e-6 * want.abs(),
                "{v} vs {want}"
            );
            after += (*v as f64).powi(2);
            i += 1;
        }
    });
    assert!(
        (after.sqrt() - 1.0).abs() < 1e-5,
        "norm after {}",
        after.sqrt()
    );
}

//! Compressing anyone's linear layers: against PyTorch's rebuild of the written cores
//! (`tools/tt_rebuild_torch.py`, fixtures `compress_tiny*`), exact decompositions against the
//! dense layers, balanced modes against brute force, budgets, tolerances, calibration, errors;
//! and the `compress` tool as a user meets it (the built example, through `common_cli`): what it
//! refuses, reads, writes and prints (issue 22's items, one test each).

mod common;
mod common_cli;

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayD, Ix2};
use rand::{rngs::StdRng, Rng, SeedableRng};
use succulm::compress::{
    balanced_modes, compress, compress_file, glob_match, load_tt_layers, CompressConfig, Modes,
    Target, WeightLayout,
};
use succulm::io::safetensors::SafetensorsFile;
use succulm::study::sweep::Method;
use succulm::Error;

fn tmpdir(name: &str) -> PathBuf {
    common::temp_dir(&format!("compress-{name}"))
}

/// The report of the first matrix `cfg` compresses in `file`.
fn first_matrix(file: &SafetensorsFile, cfg: &CompressConfig) -> succulm::compress::MatrixReport {
    compress(file, cfg, None).unwrap().report.matrices.remove(0)
}

fn max_rel(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
        / scale
}

fn check_tensor(check: &SafetensorsFile, name: &str) -> Array2<f32> {
    check
        .tensor(name)
        .unwrap()
        .into_dimensionality::<Ix2>()
        .unwrap()
}

/// The two runs of the tool script: (pattern, layout, written fixture).
const RUNS: [(&str, WeightLayout, &str); 2] = [
    (
        "fc.weight",
        WeightLayout::OutIn,
        "compress_tiny_tt_linear.safetensors",
    ),
    (
        "h.*.mlp.*.weight",
        WeightLayout::InOut,
        "compress_tiny_tt_conv1d.safetensors",
    ),
];

fn config(pattern: &str, layout: WeightLayout, target: Target) -> CompressConfig {
    CompressConfig {
        pattern: pattern.into(),
        layout,
        modes: Modes::Auto(2),
        target,
        ..CompressConfig::default()
    }
}

#[test]
fn our_layers_match_pytorchs_rebuild_of_the_cores() {
    let source = SafetensorsFile::read(common::fixture("compress_tiny.safetensors")).unwrap();
    let check = SafetensorsFile::read(common::fixture("compress_tiny_check.safetensors")).unwrap();
    let mut seen = 0;
    for (pattern, layout, written) in RUNS {
        // The cores the tool script rebuilt in PyTorch, read by us.
        let stored = load_tt_layers(common::fixture(written)).unwrap();
        // And a fresh compression with the same settings.
        let fresh = compress(&source, &config(pattern, layout, Target::Bond(3)), None).unwrap();
        assert_eq!(fresh.layers.len(), stored.len());
        for (module, source_name, l, tt) in &fresh.layers {
            let (tt_stored, src, l_stored) = &stored[module];
            assert_eq!((src, l_stored), (source_name, l));
            assert_eq!(tt.spec(), tt_stored.spec());
            let x = check_tensor(&check, &format!("{module}.x"));
            let y_torch = check_tensor(&check, &format!("{module}.y_tt"));
            let e1 = max_rel(&tt_stored.forward(x.view()).unwrap(), &y_torch);
            let e2 = max_rel(&tt.forward(x.view()).unwrap(), &y_torch);
            assert!(e1 < 1e-5 && e2 < 1e-4, "{module}: {e1} {e2}");
            seen += 1;
        }
    }
    assert_eq!(seen, 3);
}

#[test]
fn exact_compression_reproduces_the_original_layers_in_both_layouts() {
    let source = SafetensorsFile::read(common::fixture("compress_tiny.safetensors")).unwrap();
    let check = SafetensorsFile::read(common::fixture("compress_tiny_check.safetensors")).unwrap();
    for (pattern, layout, _) in RUNS {
        let out = compress(&source, &config(pattern, layout, Target::Exact), None).unwrap();
        for ((module, _, _, tt), m) in out.layers.iter().zip(&out.report.matrices) {
            assert!(m.weight_error < 1e-5, "{module}: {}", m.weight_error);
            assert!(m.has_bias && m.capped.is_empty());
            let x = check_tensor(&check, &format!("{module}.x"));
            let y = check_tensor(&check, &format!("{module}.y_dense"));
            let e = max_rel(&tt.forward(x.view()).unwrap(), &y);
            assert!(e < 1e-4, "{module}: {e}");
        }
    }
    // The wrong layout for the Conv1D weights: c_fc [12, 30] read as [out, in] maps 30 -> 12,
    // so PyTorch's inputs of width 12 are rejected.
    let wrong = compress(
        &source,
        &config("h.0.mlp.c_fc.weight", WeightLayout::OutIn, Target::Exact),
        None,
    );
    // Its bias [30] does not fit out = 12 either: named.
    match wrong {
        Err(Error::InvalidFile { key, reason, .. }) => {
            assert_eq!(key, "h.0.mlp.c_fc.bias");
            assert!(reason.contains("[12]"), "{reason}");
        }
        other => panic!("expected a bias error, got {other:?}"),
    }
}

/// Every non-decreasing factorisation of `n` into `d` factors.
fn factorisations(n: usize, d: usize, min: usize) -> Vec<Vec<usize>> {
    if d == 1 {
        return if n >= min { vec![vec![n]] } else { vec![] };
    }
    (min..=n)
        .filter(|f| n % f == 0)
        .flat_map(|f| {
            factorisations(n / f, d - 1, f)
                .into_iter()
                .map(move |mut rest| {
                    rest.insert(0, f);
                    rest
                })
        })
        .collect()
}

#[test]
fn balanced_modes_are_the_most_balanced_factorisation() {
    assert_eq!(balanced_modes(768, 3).unwrap(), vec![8, 8, 12]);
    assert_eq!(balanced_modes(3072, 3).unwrap(), vec![12, 16, 16]);
    for n in [1, 7, 12, 50, 64, 96, 200, 360, 768, 1000, 1024, 3072] {
        for d in 1..=4 {
            let got = balanced_modes(n, d).unwrap();
            assert_eq!(got.len(), d);
            assert_eq!(got.iter().product::<usize>(), n);
            let best = factorisations(n, d, 1)
                .into_iter()
                .min_by_key(|f| (*f.last().unwrap(), std::cmp::Reverse(f[0])))
                .unwrap();
            assert_eq!(
                (got.last(), got.first()),
                (best.last(), best.first()),
                "{n} into {d}"
            );
        }
    }
    assert!(balanced_modes(0, 2).is_err() && balanced_modes(5, 0).is_err());
}

#[test]
fn glob_patterns() {
    assert!(glob_match("h.*.mlp.c_fc.weight", "h.11.mlp.c_fc.weight"));
    assert!(glob_match("*.weight", "a.b.weight"));
    assert!(glob_match("h.?.mlp.*", "h.3.mlp.c_proj.bias"));
    assert!(!glob_match("h.?.mlp.*", "h.10.mlp.c_proj.bias"));
    assert!(!glob_match("*.weight", "a.weight.bias"));
    assert!(glob_match("fc.weight", "fc.weight") && !glob_match("fc.weight", "xfc.weight"));
}

/// A random model file: `n` matrices `[out, in]` named `l{i}.weight` with biases.
fn random_file(dir: &Path, shapes: &[(usize, usize)], seed: u64) -> PathBuf {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tensors: Vec<(String, ArrayD<f32>)> = Vec::new();
    for (i, &(out, inp)) in shapes.iter().enumerate() {
        let w = Array2::from_shape_fn((out, inp), |_| rng.gen_range(-1.0..1.0f32));
        tensors.push((format!("l{i}.weight"), w.into_dyn()));
        let b = ndarray::Array1::from_shape_fn(out, |_| rng.gen_range(-0.1..0.1f32));
        tensors.push((format!("l{i}.bias"), b.into_dyn()));
    }
    let path = dir.join("model.safetensors");
    common::write_tensors(&path, &tensors);
    path
}

#[test]
fn budget_and_tolerance_targets() {
    let dir = tmpdir("targets");
    let path = random_file(&dir, &[(48, 36)], 1);
    let file = SafetensorsFile::read(&path).unwrap();
    for frac in [0.05, 0.2, 0.5] {
        let cfg = config("l0.weight", WeightLayout::OutIn, Target::Budget(frac));
        let m = first_matrix(&file, &cfg);
        let limit = (frac * m.dense_params as f64) as usize;
        assert!(m.tt_params <= limit, "{frac}: {} > {limit}", m.tt_params);
        // One more on the uniform bond would not fit (or changes nothing: every bond capped).
        let b = m.requested_bonds[0];
        let bigger = config("l0.weight", WeightLayout::OutIn, Target::Bond(b + 1));
        let m2 = first_matrix(&file, &bigger);
        assert!(
            m2.tt_params > limit || m2.bond_dims == m.bond_dims,
            "{frac}"
        );
    }
    for eps in [0.1, 0.5, 0.9] {
        let cfg = config("l0.weight", WeightLayout::OutIn, Target::Eps(eps));
        let m = first_matrix(&file, &cfg);
        assert!(m.weight_error <= eps + 1e-6, "{eps}: {}", m.weight_error);
    }
    let cfg = config("l0.weight", WeightLayout::OutIn, Target::Budget(1e-4));
    assert!(compress(&file, &cfg, None).is_err());
}

#[test]
fn calibration_switches_on_the_data_aware_objective() {
    let dir = tmpdir("calib");
    let path = random_file(&dir, &[(24, 20)], 2);
    let file = SafetensorsFile::read(&path).unwrap();
    // Inputs with very unequal feature scales: the whitened objective should use them.
    let mut rng = StdRng::seed_from_u64(3);
    let x = Array2::from_shape_fn((200, 20), |(_, j)| {
        rng.gen_range(-1.0..1.0f32) * if j < 4 { 10.0 } else { 0.1 }
    });
    let calib_path = dir.join("calib.safetensors");
    common::write_tensors(&calib_path, &[("l0".to_string(), x.into_dyn())]);
    let calib = SafetensorsFile::read(&calib_path).unwrap();
    let mut cfg = config("l0.weight", WeightLayout::OutIn, Target::Bond(2));
    cfg.method = Method::Weight;
    let plain = compress(&file, &cfg, Some(&calib)).unwrap().report.matrices[0].clone();
    cfg.method = Method::Whitened;
    let aware = compress(&file, &cfg, Some(&calib)).unwrap().report.matrices[0].clone();
    let (p, a) = (plain.output_error.unwrap(), aware.output_error.unwrap());
    assert!(a < p, "whitened {a} vs plain {p}");
    assert!(aware.weight_error >= plain.weight_error - 1e-6);

    // Calibration of the wrong width, or missing: named errors.
    let bad = dir.join("bad.safetensors");
    let x = Array2::<f32>::zeros((5, 7));
    common::write_tensors(&bad, &[("l0.weight".to_string(), x.into_dyn())]);
    let bad = SafetensorsFile::read(&bad).unwrap();
    let err = compress(&file, &cfg, Some(&bad)).unwrap_err().to_string();
    assert!(err.contains("l0.weight") && err.contains("20"), "{err}");
    let cfg1 = config("l*.weight", WeightLayout::OutIn, Target::Bond(2));
    let two = random_file(&tmpdir("calib2"), &[(24, 20), (8, 20)], 4);
    let two = SafetensorsFile::read(two).unwrap();
    let err = compress(&two, &cfg1, Some(&calib)).unwrap_err().to_string();
    assert!(err.contains("l1"), "{err}");
}

/// Found by the fuzz target while it was written: explicit modes that do not fit a matrix, with
/// calibration inputs, gave "shape mismatch in calibration stats of the layer" (the inputs were
/// compared with the modes first), naming neither the file nor the tensor. Now the modes are
/// checked first, and every error about a matrix names the file and the tensor.
#[test]
fn modes_that_do_not_fit_are_named_before_calibration_inputs_are_compared() {
    let dir = tmpdir("modes-calib");
    let path = random_file(&dir, &[(8, 8)], 31);
    let file = SafetensorsFile::read(&path).unwrap();
    let mut cfg = config("l0.weight", WeightLayout::OutIn, Target::Bond(2));
    cfg.modes = Modes::Explicit {
        in_modes: vec![2, 2],
        out_modes: vec![2, 4],
    };
    let e = compress(&file, &cfg, Some(&file)).unwrap_err().to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("l0.weight") && e.contains("in_modes"),
        "{e}"
    );
}

#[test]
fn bad_requests_are_named_errors() {
    let source = common::fixture("compress_tiny.safetensors");
    let dir = tmpdir("errors");
    let out = dir.join("tt.safetensors");
    let run = |cfg: CompressConfig| {
        compress_file(&source, &out, &cfg, None)
            .unwrap_err()
            .to_string()
    };
    let e = run(config("nothing.*", WeightLayout::OutIn, Target::Bond(2)));
    assert!(e.contains("no float matrix matches"), "{e}");
    // A pattern that selects the LayerNorm weight, which is not a matrix.
    let e = run(config(
        "fc.weight, ln_f.weight",
        WeightLayout::OutIn,
        Target::Bond(2),
    ));
    assert!(
        e.contains("ln_f.weight") && e.contains("not a matrix"),
        "{e}"
    );
    let mut cfg = config("fc.weight", WeightLayout::OutIn, Target::Bond(2));
    cfg.modes = Modes::Explicit {
        in_modes: vec![5, 2],
        out_modes: vec![4, 5],
    };
    let e = run(cfg);
    assert!(e.contains("fc.weight") && e.contains("in_modes"), "{e}");
    let e = run(config("fc.weight", WeightLayout::OutIn, Target::Bond(0)));
    assert!(e.contains("bond"), "{e}");
    let e = run(config("fc.weight", WeightLayout::OutIn, Target::Eps(1.5)));
    assert!(e.contains("eps"), "{e}");
    assert!(!out.exists(), "nothing is written on error");
    assert!(WeightLayout::parse("conv1d").is_ok() && WeightLayout::parse("rows").is_err());
    // Reading back a file that is not ours.
    let e = load_tt_layers(&source).unwrap_err().to_string();
    assert!(e.contains("format"), "{e}");
}

#[test]
fn written_file_round_trips() {
    let dir = tmpdir("roundtrip");
    let path = random_file(&dir, &[(16, 12), (12, 16)], 5);
    let out = dir.join("tt.safetensors");
    let cfg = config("l*.weight", WeightLayout::OutIn, Target::Bond(3));
    let report = compress_file(&path, &out, &cfg, None).unwrap();
    let file = SafetensorsFile::read(&path).unwrap();
    let fresh = compress(&file, &cfg, None).unwrap();
    let back = load_tt_layers(&out).unwrap();
    assert_eq!(report.matrices.len(), 2);
    for (module, _, _, tt) in &fresh.layers {
        let (b, _, _) = &back[module];
        assert_eq!(b.cores(), tt.cores());
        assert_eq!(b.bias(), tt.bias());
    }
}

// ---------------------------------------------------------------------------------------------
// The `compress` tool, through its binary.

use std::process::Output;

use safetensors::{tensor::TensorView, Dtype};
use serde_json::Value;

fn out_text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err_text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

/// Runs the `compress` binary in `cwd`.
fn compress_bin(args: &[&str], cwd: &Path) -> Output {
    common_cli::run("compress", args, cwd)
}

/// `compress --input INPUT --output OUTPUT` and `rest`, from `cwd`.
fn compress_io(input: &Path, output: &Path, rest: &[&str], cwd: &Path) -> Output {
    let mut args = vec!["--input", p(input), "--output", p(output)];
    args.extend_from_slice(rest);
    compress_bin(&args, cwd)
}

/// A failure as the tool reports one: exit `code` (2: a bad command line, 1: a failed run), an
/// `error: ` line mentioning every needle, no panic and no Debug print.
fn assert_cli_error(o: &Output, code: i32, needles: &[&str], what: &str) {
    let e = err_text(o);
    assert_eq!(o.status.code(), Some(code), "{what}: {e}");
    let at = e
        .match_indices("error: ")
        .map(|(i, _)| i)
        .find(|&i| i == 0 || e[..i].ends_with('\n'))
        .unwrap_or_else(|| panic!("{what}: no `error: ` line in {e}"));
    let line = e[at..].lines().next().unwrap();
    for n in needles {
        assert!(line.contains(n), "{what}: {n:?} not in {line:?}");
    }
    assert!(
        !e.contains("panicked") && !e.contains("{ name:"),
        "{what}: {e}"
    );
}

/// A safetensors file written by the `safetensors` crate itself: `(name, dtype, shape, bytes)`.
fn write_raw(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, &None).unwrap()).unwrap();
}

fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| {
            let h = half::f16::from_f32(x);
            assert_eq!(h.to_f32(), x, "{x} is not exactly an f16");
            h.to_le_bytes()
        })
        .collect()
}

/// bfloat16 is the top half of an f32: values whose low 16 bits are zero are exact.
fn bf16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| {
            assert_eq!(x.to_bits() & 0xffff, 0, "{x} is not exactly a bf16");
            ((x.to_bits() >> 16) as u16).to_le_bytes()
        })
        .collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// `n` values `k/16` with `k` in `-32..=32`: exact in f16, bf16, f32 and f64.
fn sixteenths(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| rng.gen_range(-32i32..=32) as f32 / 16.0)
        .collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Item 2: `--output` or `--report` naming the input (by the same string, another spelling, a
/// hard link or a symlink) destroyed it. Refused before any work, naming the flag; the input is
/// unchanged and nothing is written. The output and the report cannot be one file either.
#[test]
fn item2_an_output_or_report_that_is_the_input_is_refused() {
    let dir = tmpdir("same-file");
    let input = random_file(&dir, &[(8, 6)], 21);
    let calib = dir.join("calib.safetensors");
    let x = Array2::from_shape_fn((5, 6), |(i, j)| (i + j) as f32 + 1.0);
    common::write_tensors(&calib, &[("l0".to_string(), x.into_dyn())]);
    let before = std::fs::read(&input).unwrap();
    let calib_before = std::fs::read(&calib).unwrap();
    std::fs::hard_link(&input, dir.join("hard.safetensors")).unwrap();
    std::os::unix::fs::symlink(&input, dir.join("sym.safetensors")).unwrap();
    let abs = p(&input).to_string();
    let cases: [(&[&str], &str); 9] = [
        (&["--output", "model.safetensors"], "--output"),
        (&["--output", "./model.safetensors"], "--output"),
        (&["--output", &abs], "--output"),
        (&["--output", "hard.safetensors"], "--output"),
        (&["--output", "sym.safetensors"], "--output"),
        (
            &["--output", "o.safetensors", "--report", "model.safetensors"],
            "--report",
        ),
        (
            &["--output", "o.safetensors", "--report", "hard.safetensors"],
            "--report",
        ),
        (
            &["--output", "o.safetensors", "--report", "./o.safetensors"],
            "--report",
        ),
        (
            &[
                "--output",
                "calib.safetensors",
                "--calibration",
                "calib.safetensors",
            ],
            "--output",
        ),
    ];
    for (extra, flag) in cases {
        let mut args = vec!["--input", "model.safetensors", "--bond", "2"];
        args.extend_from_slice(extra);
        let o = compress_bin(&args, &dir);
        assert_cli_error(&o, 2, &[flag], &format!("{extra:?}"));
        assert_eq!(
            std::fs::read(&input).unwrap(),
            before,
            "{extra:?}: the input changed"
        );
        assert_eq!(std::fs::read(&calib).unwrap(), calib_before, "{extra:?}");
        assert!(!dir.join("o.safetensors").exists(), "{extra:?}");
        assert!(out_text(&o).is_empty(), "{extra:?}: {}", out_text(&o));
    }
    // The library entry point refuses it too.
    let e = compress_file(
        &input,
        dir.join("hard.safetensors"),
        &CompressConfig::default(),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("output"), "{e}");
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

/// Item 4: a report that could not be written came after the cores were: exit 1 with a new
/// cores file. Now both are written or neither: a report whose temporary file cannot be created
/// (a name of 250 bytes, whose `.NAME.PID.tmp` is too long for the file system) leaves the
/// earlier cores file exactly as it was, and a new one does not appear.
#[test]
fn item4_cores_and_report_are_written_together_or_not_at_all() {
    let dir = tmpdir("all-or-nothing");
    let input = random_file(&dir, &[(8, 6)], 22);
    let out = dir.join("tt.safetensors");
    let o = compress_bin(
        &["--input", p(&input), "--output", p(&out), "--bond", "2"],
        &dir,
    );
    assert!(o.status.success(), "{}", err_text(&o));
    let first = std::fs::read(&out).unwrap();
    let long = dir.join(format!("{}.json", "r".repeat(245)));
    let o = compress_io(&input, &out, &["--exact", "--report", p(&long)], &dir);
    assert_cli_error(&o, 1, &["rrrr"], "an unwritable report");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        first,
        "the cores file changed"
    );
    assert!(!long.exists());
    let fresh = dir.join("fresh.safetensors");
    let o = compress_io(&input, &fresh, &["--report", p(&long)], &dir);
    assert_cli_error(&o, 1, &["rrrr"], "an unwritable report, new output");
    assert!(!fresh.exists(), "the cores were written without the report");
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    // Both written when both can be.
    let report = dir.join("report.json");
    let o = compress_io(&input, &fresh, &["--report", p(&report)], &dir);
    assert!(o.status.success(), "{}", err_text(&o));
    assert!(fresh.is_file() && read_json(&report)["matrices"].is_array());
}

/// Item 7: `--modes auto:100000` overflowed the stack (the factorisation recursed once a mode).
/// The count is bounded (64: no dimension has more prime factors), the search iterates.
#[test]
fn item7_the_mode_count_is_bounded_and_the_factorisation_iterates() {
    let e = balanced_modes(768, 100_000).unwrap_err().to_string();
    assert!(e.contains("100000") && e.contains("64"), "{e}");
    // Many modes of a highly composite number: found at once, the most balanced.
    let m = balanced_modes(720_720, 64).unwrap();
    assert_eq!(m.len(), 64);
    assert_eq!(m.iter().product::<usize>(), 720_720);
    assert_eq!(*m.last().unwrap(), 13);
    assert_eq!(balanced_modes(1 << 40, 40).unwrap(), vec![2; 40]);
    let cfg = CompressConfig {
        modes: Modes::Auto(100_000),
        ..CompressConfig::default()
    };
    assert!(cfg.validate().unwrap_err().to_string().contains("modes"));

    let dir = tmpdir("modes");
    let input = random_file(&dir, &[(8, 6)], 23);
    let out = dir.join("tt.safetensors");
    let o = compress_io(&input, &out, &["--modes", "auto:100000"], &dir);
    assert_cli_error(&o, 2, &["--modes", "auto:100000"], "auto:100000");
    let long = vec!["1"; 65].join(",");
    let o = compress_io(
        &input,
        &out,
        &["--in-modes", &long, "--out-modes", "8"],
        &dir,
    );
    assert_cli_error(&o, 2, &["--in-modes", "65 modes"], "65 explicit modes");
    assert!(!out.exists());
}

/// Item 9: a file holding both `x.weight` and `x` (one module name, `x`) made the writer panic
/// inside the safetensors crate. Now an error naming both, nothing written.
#[test]
fn item9_two_weights_of_one_module_are_an_error_naming_both() {
    let dir = tmpdir("duplicates");
    let input = dir.join("dup.safetensors");
    let w = sixteenths(24, 1);
    write_raw(
        &input,
        &[
            ("x.weight", Dtype::F32, vec![4, 6], f32_bytes(&w)),
            ("x", Dtype::F32, vec![4, 6], f32_bytes(&w)),
        ],
    );
    let out = dir.join("tt.safetensors");
    let o = compress_io(&input, &out, &["--pattern", "x*", "--bond", "2"], &dir);
    assert_cli_error(
        &o,
        1,
        &["\"x.weight\"", "\"x\"", "module"],
        "x.weight and x",
    );
    assert!(!out.exists());
    // Either one alone compresses.
    for pattern in ["x", "x.weight"] {
        let o = compress_io(&input, &out, &["--pattern", pattern, "--bond", "2"], &dir);
        assert!(o.status.success(), "{pattern}: {}", err_text(&o));
    }
}

/// The relative Frobenius error of the weight rebuilt from `module`'s cores in `file` against
/// `truth` (`[out, in]`).
fn rebuilt_error(file: &Path, module: &str, truth: &Array2<f32>) -> f64 {
    let layers = load_tt_layers(file).unwrap();
    let w = layers[module].0.to_dense().weight().to_owned();
    assert_eq!(w.dim(), truth.dim(), "{module}");
    let d: f64 = (&w - truth).iter().map(|&v| (v as f64).powi(2)).sum();
    let n: f64 = truth.iter().map(|&v| (v as f64).powi(2)).sum();
    (d / n).sqrt()
}

/// Item 10: F16, BF16 and F64 weights were rejected ("real checkpoints are mostly F16/BF16").
/// Files written by the safetensors crate with exactly representable values: at full rank the
/// cores rebuild the weights exactly (f32 cores, `--dtype f32`), and in the weights' own dtype by
/// default, within the error the report gives for the cores as written.
#[test]
fn item10_f16_bf16_and_f64_weights_are_read_and_written_in_their_dtype() {
    let dir = tmpdir("dtypes");
    let input = dir.join("half.safetensors");
    let (a, b, c) = (sixteenths(48, 2), sixteenths(24, 3), sixteenths(16, 4));
    let bias = sixteenths(8, 5);
    write_raw(
        &input,
        &[
            ("a.weight", Dtype::F16, vec![8, 6], f16_bytes(&a)),
            ("a.bias", Dtype::BF16, vec![8], bf16_bytes(&bias)),
            ("b.weight", Dtype::BF16, vec![4, 6], bf16_bytes(&b)),
            (
                "c.weight",
                Dtype::F64,
                vec![4, 4],
                f64_bytes(&c.iter().map(|&v| v as f64).collect::<Vec<_>>()),
            ),
            ("ln.weight", Dtype::F16, vec![6], f16_bytes(&a[..6])),
        ],
    );
    let truth = |v: &[f32], r, c| Array2::from_shape_vec((r, c), v.to_vec()).unwrap();
    let truths = [
        ("a", truth(&a, 8, 6), "F16"),
        ("b", truth(&b, 4, 6), "BF16"),
        ("c", truth(&c, 4, 4), "F64"),
    ];
    let exact = dir.join("exact.safetensors");
    let o = compress_io(
        &input,
        &exact,
        &["--exact", "--modes", "auto:2", "--dtype", "f32"],
        &dir,
    );
    assert!(o.status.success(), "{}", err_text(&o));
    let written = SafetensorsFile::read(&exact).unwrap();
    for (module, w, _) in &truths {
        let e = rebuilt_error(&exact, module, w);
        assert!(e < 1e-5, "{module}: {e}");
        assert_eq!(written.dtype(&format!("{module}.cores.0")).unwrap(), "F32");
    }
    let layers = load_tt_layers(&exact).unwrap();
    let b_read: Vec<f32> = layers["a"].0.bias().to_vec();
    assert_eq!(b_read, bias, "the BF16 bias, exactly");

    let own = dir.join("own.safetensors");
    let report = dir.join("own.json");
    let o = compress_io(
        &input,
        &own,
        &["--exact", "--modes", "auto:2", "--report", p(&report)],
        &dir,
    );
    assert!(o.status.success(), "{}", err_text(&o));
    let written = SafetensorsFile::read(&own).unwrap();
    let r = read_json(&report);
    for (i, (module, w, dtype)) in truths.iter().enumerate() {
        assert_eq!(written.dtype(&format!("{module}.cores.0")).unwrap(), *dtype);
        assert_eq!(written.dtype(&format!("{module}.bias")).unwrap(), *dtype);
        let m = &r["matrices"][i];
        assert_eq!(m["name"], format!("{module}.weight"));
        assert_eq!(
            (m["dtype"].as_str(), m["written_dtype"].as_str()),
            (Some(*dtype), Some(*dtype))
        );
        let claimed = m["weight_error"].as_f64().unwrap();
        let e = rebuilt_error(&own, module, w);
        assert!(
            (e - claimed).abs() <= 1e-4 * claimed.max(1e-6),
            "{module}: {e} vs {claimed}"
        );
        let bound = if *dtype == "F64" { 1e-5 } else { 2e-2 };
        assert!(e < bound, "{module}: {e}");
    }
    assert_eq!(r["skipped"][0]["name"], "ln.weight");
}

/// Item 10 (memory): the whole input was read before anything was checked (1.58 GB to reject a
/// 1.6 GB file). Now it is memory-mapped and only the chosen tensors are read: under a data
/// limit of 1 GiB, a 3 GiB file (a sparse F16 tensor the pattern skips, beside a small matrix)
/// is compressed, and a file whose pattern matches nothing is refused with a plain error.
#[test]
fn item10_a_large_input_is_mapped_and_only_the_chosen_tensors_are_read() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tmpdir("mapped");
    let input = dir.join("big.safetensors");
    let big: u64 = 3 << 29; // F16 values: 3 GiB
    let small = sixteenths(24, 6);
    let header = serde_json::json!({
        "big.weight": {"dtype": "F16", "shape": [big], "data_offsets": [0, 2 * big]},
        "small.weight": {"dtype": "F16", "shape": [4, 6], "data_offsets": [2 * big, 2 * big + 48]},
    });
    let mut text = serde_json::to_vec(&header).unwrap();
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut f = std::fs::File::create(&input).unwrap();
    f.write_all(&(text.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&text).unwrap();
    f.seek(SeekFrom::Start(8 + text.len() as u64 + 2 * big))
        .unwrap();
    f.write_all(&f16_bytes(&small)).unwrap();
    drop(f);
    let limited = |args: &[&str]| {
        let bin = common_cli::example_bin("compress");
        std::process::Command::new("sh")
            .arg("-c")
            .arg("ulimit -d 1048576 && exec \"$0\" \"$@\"")
            .arg(bin)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let out = dir.join("tt.safetensors");
    let o = limited(&[
        "--input",
        p(&input),
        "--output",
        p(&out),
        "--exact",
        "--modes",
        "auto:2",
    ]);
    assert!(o.status.success(), "{}", err_text(&o));
    assert!(
        out_text(&o).contains("big.weight"),
        "the skipped tensor is listed"
    );
    let e = rebuilt_error(
        &out,
        "small",
        &Array2::from_shape_vec((4, 6), small).unwrap(),
    );
    assert!(e < 2e-2, "{e}");
    let o = limited(&[
        "--input",
        p(&input),
        "--output",
        p(&dir.join("x.safetensors")),
        "--pattern",
        "nothing*",
    ]);
    assert_cli_error(
        &o,
        1,
        &["big.safetensors", "no float matrix matches"],
        "no match",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 11: the default `*.weight` also picked the 1-D LayerNorm weights, so every real
/// checkpoint failed. Now the matrices are compressed and the rest of the matches skipped,
/// listed on stdout and in the report; a non-matrix named exactly is still an error.
#[test]
fn item11_the_default_pattern_skips_what_is_not_a_matrix_and_lists_it() {
    let dir = tmpdir("skipped");
    let input = dir.join("gpt2ish.safetensors");
    let (w, ln) = (sixteenths(48, 7), sixteenths(6, 8));
    write_raw(
        &input,
        &[
            ("h.0.mlp.c_fc.weight", Dtype::F32, vec![6, 8], f32_bytes(&w)),
            ("h.0.ln_1.weight", Dtype::F32, vec![6], f32_bytes(&ln)),
            ("h.0.ln_1.bias", Dtype::F32, vec![6], f32_bytes(&ln)),
            (
                "h.0.attn.masked.weight",
                Dtype::U8,
                vec![2, 2],
                vec![1, 0, 1, 1],
            ),
            (
                "h.0.attn.bias",
                Dtype::F32,
                vec![1, 1, 2, 2],
                f32_bytes(&ln[..4]),
            ),
        ],
    );
    let out = dir.join("tt.safetensors");
    let report = dir.join("report.json");
    let o = compress_io(
        &input,
        &out,
        &["--modes", "auto:2", "--bond", "2", "--report", p(&report)],
        &dir,
    );
    assert!(o.status.success(), "{}", err_text(&o));
    let text = out_text(&o);
    assert!(text.contains("skipped 2"), "{text}");
    assert!(
        text.contains("h.0.ln_1.weight [6] F32: 1-D, not a matrix"),
        "{text}"
    );
    assert!(
        text.contains("h.0.attn.masked.weight [2, 2] U8: dtype U8, not a float"),
        "{text}"
    );
    let r = read_json(&report);
    let skipped: Vec<&str> = r["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["h.0.attn.masked.weight", "h.0.ln_1.weight"]);
    assert_eq!(r["matrices"].as_array().unwrap().len(), 1);
    assert_eq!(load_tt_layers(&out).unwrap().len(), 1);
    // Named exactly: an error naming it.
    let o = compress_bin(
        &[
            "--input",
            p(&input),
            "--output",
            p(&dir.join("x.safetensors")),
            "--pattern",
            "h.0.ln_1.weight",
        ],
        &dir,
    );
    assert_cli_error(&o, 1, &["h.0.ln_1.weight", "not a matrix"], "named exactly");
}

/// Item 13: every flag is checked before the input is read (here it does not even exist), the
/// message naming the flag; `--method` without `--calibration` is refused; a tensor train larger
/// than its matrix is warned about; calibration inputs on which the layer's output is zero are an
/// error, not an output error of 0.
#[test]
fn item13_flags_are_checked_first_and_doubtful_results_are_flagged() {
    let dir = tmpdir("flags");
    let missing = dir.join("missing.safetensors");
    let out = dir.join("tt.safetensors");
    let cases: [(&[&str], &[&str]); 10] = [
        (&["--eps", "1"], &["--eps"]),
        (&["--budget", "1.5"], &["--budget"]),
        (&["--exact", "--bond", "4"], &["--exact"]),
        (&["--bond", "4,8"], &["--bond", "4,8"]),
        (&["--method", "weight"], &["--method", "--calibration"]),
        (&["--pattern", "a,,b"], &["--pattern", "empty"]),
        (
            &[
                "--in-modes",
                "2,3",
                "--out-modes",
                "6",
                "--tt-layout",
                "matrix",
            ],
            &["--tt-layout"],
        ),
        (&["--dtype", "f8"], &["--dtype", "f8"]),
        (&["--modes", "auto:0"], &["--modes"]),
        (
            &["--output", "/no/such/dir/tt.safetensors"],
            &["--output", "/no/such/dir"],
        ),
    ];
    for (extra, needles) in cases {
        let mut args = vec!["--input", p(&missing), "--output", p(&out)];
        args.extend_from_slice(extra);
        let o = compress_bin(&args, &dir);
        assert_cli_error(&o, 2, needles, &format!("{extra:?}"));
        assert!(
            !err_text(&o).contains("missing.safetensors"),
            "{extra:?}: read first"
        );
    }
    assert!(!out.exists());

    // A tensor train with more parameters than the matrix: a warning, on stderr and in the report.
    let input = random_file(&dir, &[(4, 6)], 24);
    let report = dir.join("report.json");
    let o = compress_io(
        &input,
        &out,
        &["--exact", "--modes", "auto:2", "--report", p(&report)],
        &dir,
    );
    assert!(o.status.success(), "{}", err_text(&o));
    assert!(
        err_text(&o).contains("warning: l0.weight: the tensor train has"),
        "{}",
        err_text(&o)
    );
    let w = &read_json(&report)["matrices"][0]["warnings"][0];
    assert!(
        w.as_str()
            .unwrap()
            .contains("more than the dense matrix's 24"),
        "{w}"
    );

    // All-zero calibration rows: an error naming the file and the tensor, nothing written.
    let calib = dir.join("zeros.safetensors");
    common::write_tensors(
        &calib,
        &[("l0".to_string(), Array2::<f32>::zeros((5, 6)).into_dyn())],
    );
    let out2 = dir.join("tt2.safetensors");
    let o = compress_io(
        &input,
        &out2,
        &["--bond", "2", "--calibration", p(&calib)],
        &dir,
    );
    assert_cli_error(
        &o,
        1,
        &["zeros.safetensors", "l0", "zero"],
        "zero calibration",
    );
    assert!(!out2.exists());
}

/// Item 15: the docs that run `compress` on the GPT-2-shaped file say how to make it and what
/// the script needs.
#[test]
fn item15_docs_say_what_the_gpt2_shaped_script_needs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "md") {
            docs.push(path);
        }
    }
    let mut seen = 0;
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        if text.contains("gpt2_mlp.safetensors") || text.contains("make_gpt2_shaped") {
            seen += 1;
            for needle in ["tools/make_gpt2_shaped.py", "pip install torch safetensors"] {
                assert!(text.contains(needle), "{}: no {needle:?}", doc.display());
            }
        }
    }
    assert!(seen >= 2, "{seen}");
}

//! Compressing anyone's linear layers: against PyTorch's rebuild of the written cores
//! (`tools/tt_rebuild_torch.py`, fixtures `compress_tiny*`), exact decompositions against the
//! dense layers, balanced modes against brute force, budgets, tolerances, calibration, errors.

mod common;

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
    assert!(e.contains("no tensor matches"), "{e}");
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

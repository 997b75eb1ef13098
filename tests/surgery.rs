//! Model surgery: replacing FFN projections by tensor trains, checked against independent truths
//! (hand-counted parameters, the dense model's logits, an SVD of the weight computed here, finite
//! differences, checkpoint round trips, frozen parameters staying bit-identical).

mod common;

mod common_grad;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayD};
use ndarray_linalg::SVD;
use serde_json::{json, Value};
use succulm::nn::layers::Projection;
use succulm::nn::model::{Model, ModelConfig};
use succulm::nn::train::{evaluate_dataset, fine_tune_tt, TrainConfig};
use succulm::text::data::Dataset;
use succulm::tt::CappedBond;
use succulm::{Error, FfnTtSpec, Parameters, TTLayout, TTSpec, Vocab};

/// A small vocabulary for the `upper_middle` models.
const V: usize = 12;

fn upper_middle(seed: u64) -> Model {
    Model::new(ModelConfig::profile("upper_middle", V).unwrap(), seed).unwrap()
}

/// vocab 20, d 12, FFN 24, 2 layers, 2 heads: `FfnTtSpec::for_config` gives 4-core TTs
/// (`12 = [3, 4]`, `24 = [4, 6]`).
fn small_config() -> ModelConfig {
    ModelConfig {
        vocab_size: 20,
        d_model: 12,
        max_len: 8,
        n_layers: 2,
        ffn_expansion: 2,
        n_attn_heads: 2,
        arch: Default::default(),
    }
}

fn vocab(n: usize) -> Vocab {
    common::numbered_vocab(n, "w")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("succulm-surgery-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Two sequences of 29 ids, BOS first, from a fixed pattern.
fn ids(v: usize, t: usize) -> Array2<u32> {
    Array2::from_shape_fn((2, t), |(b, j)| {
        if j == 0 {
            1
        } else {
            4 + ((7 * j + 3 * b + j * j) % (v - 4)) as u32
        }
    })
}

fn max_abs_diff(a: &ndarray::Array3<f32>, b: &ndarray::Array3<f32>) -> f32 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn weight(model: &Model, name: &str) -> Array2<f64> {
    model
        .get(name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap()
        .mapv(f64::from)
}

fn frob(a: &Array2<f64>) -> f64 {
    a.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Core parameters of the seed's `ffn.0` TT (chain `[o1, o2, i1, i2] = [10, 20, 5, 10]`, bonds
/// `[10, m, 10]`), counted from the core shapes `[10,10]`, `[10,20,m]`, `[m,5,10]`, `[10,10]`.
fn up_core_params(m: usize) -> usize {
    10 * 10 + 10 * 20 * m + m * 5 * 10 + 10 * 10
}

/// Core parameters of the seed's `ffn.2` TT (chain `[5, 10, 10, 20]`, bonds `[5, m, 20]`):
/// `[5,5]`, `[5,10,m]`, `[m,10,20]`, `[20,20]`.
fn down_core_params(m: usize) -> usize {
    5 * 5 + 5 * 10 * m + m * 10 * 20 + 20 * 20
}

#[test]
fn full_middle_bond_is_exact_and_counts_match_the_core_shapes() {
    let dense = upper_middle(3);
    let x = ids(V, 29);
    let want = dense.forward(x.view()).unwrap();
    let mut model = dense.clone();
    for block in 0..4 {
        let r = model.tensorize_ffn(block, &FfnTtSpec::seed(50)).unwrap();
        assert_eq!(r.block, block);
        assert_eq!(r.up.bond_dims, vec![10, 50, 10]);
        assert_eq!(r.down.bond_dims, vec![5, 50, 20]);
        assert!(r.up.capped.is_empty() && r.down.capped.is_empty());
        // The seed's note: 12,700 core parameters against a 10,000-entry weight.
        assert_eq!(up_core_params(50), 12_700);
        assert_eq!(r.up.tt_params, 12_700 + 200);
        assert_eq!(r.up.dense_params, 200 * 50 + 200);
        assert_eq!(r.down.tt_params, down_core_params(50) + 50);
        assert_eq!(r.down.tt_params, 12_925 + 50);
        assert_eq!(r.down.dense_params, 50 * 200 + 50);
        assert_eq!(r.tt_params(), r.up.tt_params + r.down.tt_params);
        assert_eq!(r.dense_params(), 20_250);
        assert!(r.up.rel_error < 1e-5, "{}", r.up.rel_error);
        assert!(r.down.rel_error < 1e-5, "{}", r.down.rel_error);
    }
    // The stored tensors have exactly the shapes counted above.
    let shape = |n: &str| model.get(n).unwrap().shape().to_vec();
    assert_eq!(shape("blocks.2.ffn.0.cores.0"), vec![10, 10]);
    assert_eq!(shape("blocks.2.ffn.0.cores.1"), vec![10, 20, 50]);
    assert_eq!(shape("blocks.2.ffn.0.cores.2"), vec![50, 5, 10]);
    assert_eq!(shape("blocks.2.ffn.0.cores.3"), vec![10, 10]);
    assert_eq!(shape("blocks.2.ffn.2.cores.0"), vec![5, 5]);
    assert_eq!(shape("blocks.2.ffn.2.cores.1"), vec![5, 10, 50]);
    assert_eq!(shape("blocks.2.ffn.2.cores.2"), vec![50, 10, 20]);
    assert_eq!(shape("blocks.2.ffn.2.cores.3"), vec![20, 20]);
    assert!(model.get("blocks.2.ffn.0.weight").is_none());
    // Total parameter count: dense minus the four blocks' dense FFNs plus their TTs.
    let ffn_tt = 4 * (up_core_params(50) + 200 + down_core_params(50) + 50);
    assert_eq!(model.num_params(), dense.num_params() - 4 * 20_250 + ffn_tt);

    let got = model.forward(x.view()).unwrap();
    let diff = max_abs_diff(&want, &got);
    assert!(diff < 1e-4, "logits differ by {diff}");

    // tt_specs and tt_parameter_names list exactly the 8 projections.
    let specs = model.tt_specs();
    assert_eq!(specs.len(), 8);
    assert_eq!(specs[0].0, "blocks.0.ffn.0");
    assert_eq!(specs[1].0, "blocks.0.ffn.2");
    assert_eq!(specs[0].1, FfnTtSpec::seed(50).up);
    let names = model.tt_parameter_names();
    assert_eq!(names.len(), 8 * 5);
    assert!(names.contains(&"blocks.3.ffn.2.cores.3".to_string()));
    assert!(names.contains(&"blocks.3.ffn.2.bias".to_string()));

    // Densifying contracts the cores back: the dense weight equals the original within f32
    // rounding, and the logits are unchanged.
    for block in 0..4 {
        model.densify_ffn(block).unwrap();
    }
    assert!(model.tt_specs().is_empty());
    for name in ["blocks.1.ffn.0.weight", "blocks.1.ffn.2.weight"] {
        let (a, b) = (weight(&dense, name), weight(&model, name));
        assert!(frob(&(&a - &b)) / frob(&a) < 1e-5, "{name}");
    }
    let diff = max_abs_diff(&want, &model.forward(x.view()).unwrap());
    assert!(diff < 1e-4, "densified logits differ by {diff}");
}

#[test]
fn truncated_middle_bond_error_is_the_eckart_young_tail() {
    let m = 20;
    let dense = upper_middle(5);
    let x = ids(V, 29);
    let mut model = dense.clone();
    let r = model.tensorize_ffn(1, &FfnTtSpec::seed(m)).unwrap();
    assert_eq!(r.up.bond_dims, vec![10, m, 10]);
    assert_eq!(r.down.bond_dims, vec![5, m, 20]);
    assert_eq!(r.up.tt_params, up_core_params(m) + 200);
    assert_eq!(r.down.tt_params, down_core_params(m) + 50);
    assert!(r.up.tt_params < r.up.dense_params);

    let ffn = &model.blocks()[1].ffn;
    for (proj, j, reported) in [
        (&ffn.up, 0, r.up.rel_error),
        (&ffn.down, 2, r.down.rel_error),
    ] {
        let Projection::Tt(tt) = proj else {
            panic!("ffn.{j} should be a TT");
        };
        let w = weight(&dense, &format!("blocks.1.ffn.{j}.weight"));
        let w_tt = tt.to_dense().weight().mapv(f64::from);
        // The bias is kept as it was.
        let b0 = dense.get(&format!("blocks.1.ffn.{j}.bias")).unwrap();
        assert_eq!(tt.bias(), b0.into_dimensionality::<ndarray::Ix1>().unwrap());
        let direct = frob(&(&w - &w_tt)) / frob(&w);
        assert!(
            direct > 0.05,
            "ffn.{j}: truncation must lose something ({direct})"
        );
        assert!(
            (reported as f64 - direct).abs() < 1e-4,
            "ffn.{j}: reported {reported}, computed {direct}"
        );
        // The middle bond's unfolding: W reshaped [o1, o2, i1, i2] -> [o1·o2, i1·i2], which in
        // row-major order is W itself. The outer bonds are at full rank, so the only loss is
        // the Eckart–Young tail of this unfolding.
        let (o, i) = w.dim();
        let unfolding = w
            .clone()
            .into_shape_with_order(match j {
                0 => vec![10, 20, 5, 10],
                _ => vec![5, 10, 10, 20],
            })
            .unwrap()
            .into_shape_with_order((o, i))
            .unwrap();
        let (_, s, _) = unfolding.svd(false, false).unwrap();
        assert_eq!(s.len(), 50);
        let tail = s.iter().skip(m).map(|v| v * v).sum::<f64>().sqrt();
        let all = s.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!((all - frob(&w)).abs() < 1e-6 * all);
        let eckart_young = tail / all;
        assert!(
            (direct - eckart_young).abs() < 1e-4,
            "ffn.{j}: ‖W − W_tt‖/‖W‖ = {direct}, ‖σ_{{m+1:}}‖/‖W‖ = {eckart_young}"
        );
        assert!((reported as f64 - eckart_young).abs() < 1e-4);
    }

    // Other blocks are untouched; the logits change.
    assert_eq!(model.blocks()[0], dense.blocks()[0]);
    assert_eq!(model.blocks()[2], dense.blocks()[2]);
    let diff = max_abs_diff(
        &dense.forward(x.view()).unwrap(),
        &model.forward(x.view()).unwrap(),
    );
    assert!(
        diff > 1e-3,
        "a truncated FFN must change the logits ({diff})"
    );

    // Surgery again at a larger bond starts from the TT (the weights the block computes with):
    // re-tensorizing at 50 is exact relative to the compressed weights.
    let compressed = model.clone();
    let r2 = model.tensorize_ffn(1, &FfnTtSpec::seed(50)).unwrap();
    assert!(r2.up.rel_error < 1e-5 && r2.down.rel_error < 1e-5);
    let diff = max_abs_diff(
        &compressed.forward(x.view()).unwrap(),
        &model.forward(x.view()).unwrap(),
    );
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn gradients_through_tt_ffns_match_finite_differences() {
    let mut model = Model::new(small_config(), 21).unwrap();
    let spec = FfnTtSpec::for_config(&small_config(), 5);
    assert_eq!(spec.up.in_modes, vec![3, 4]);
    assert_eq!(spec.up.out_modes, vec![4, 6]);
    assert_eq!(spec.up.bond_dims, vec![4, 5, 4]);
    for block in 0..2 {
        let r = model.tensorize_ffn(block, &spec).unwrap();
        assert!(r.up.rel_error > 0.01, "the TT must be a real truncation");
    }
    let x = ndarray::array![[1u32, 5, 7, 9, 4, 11, 0], [1, 8, 8, 3, 19, 0, 0]];
    let y = ndarray::array![[5u32, 7, 9, 4, 11, 2, 0], [8, 8, 3, 19, 2, 0, 0]];
    let (loss, grads) = model.loss_and_grads(x.view(), y.view()).unwrap();
    let names = model.tt_parameter_names();
    assert_eq!(names.len(), 2 * 2 * 5);
    for n in &names {
        assert!(grads.get(n).is_some(), "no gradient for {n}");
    }
    let f = |m: &Model| m.loss(x.view(), y.view()).unwrap() as f64;
    let h = 2e-3f32;
    // The finite difference's own rounding error: a few f32 ulps of the loss over 2h.
    let noise = 4.0 * f32::EPSILON as f64 * loss as f64 / (2.0 * h as f64);

    // Single core entries: the three largest gradient entries of every core of block 0's TTs.
    let mut checked = 0;
    for name in names.iter().filter(|n| n.contains("cores")) {
        let g = grads.get(name).unwrap().to_owned();
        let mut idx: Vec<usize> = (0..g.len()).collect();
        let flat: Vec<f32> = g.iter().copied().collect();
        idx.sort_by(|&a, &b| flat[b].abs().total_cmp(&flat[a].abs()));
        for &k in idx.iter().take(3) {
            let analytic = flat[k] as f64;
            assert!(
                analytic.abs() > 20.0 * noise,
                "{name}[{k}]: gradient {analytic:e} too small to check"
            );
            let mut dir = ArrayD::<f32>::zeros(g.raw_dim());
            dir.as_slice_mut().unwrap()[k] = 1.0;
            let (mut plus, mut minus) = (model.clone(), model.clone());
            common_grad::perturb(&mut plus, name, &dir, h);
            common_grad::perturb(&mut minus, name, &dir, -h);
            let numeric = (f(&plus) - f(&minus)) / (2.0 * h as f64);
            assert!(
                (numeric - analytic).abs() <= 2e-2 * analytic.abs() + noise,
                "{name}[{k}]: analytic {analytic:e}, numeric {numeric:e}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * 2 * 4 * 3);

    // One random direction over all TT parameters at once.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(4);
    let dirs: Vec<(String, ArrayD<f32>)> = names
        .iter()
        .map(|n| {
            let shape = grads.get(n).unwrap().raw_dim();
            let d = ArrayD::from_shape_simple_fn(shape, || {
                rand_distr::Distribution::<f32>::sample(&rand_distr::StandardNormal, &mut rng)
            });
            (n.clone(), d)
        })
        .collect();
    let analytic: f64 = dirs
        .iter()
        .map(|(n, d)| {
            let g = grads.get(n).unwrap();
            g.iter()
                .zip(d.iter())
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum::<f64>()
        })
        .sum();
    let (mut plus, mut minus) = (model.clone(), model.clone());
    for (n, d) in &dirs {
        common_grad::perturb(&mut plus, n, d, h);
        common_grad::perturb(&mut minus, n, d, -h);
    }
    let numeric = (f(&plus) - f(&minus)) / (2.0 * h as f64);
    let dnorm = dirs
        .iter()
        .flat_map(|(_, d)| d.iter().map(|&v| (v as f64).powi(2)))
        .sum::<f64>()
        .sqrt();
    assert!(analytic.abs() > 50.0 * noise * dnorm);
    assert!(
        (numeric - analytic).abs() <= 1e-2 * analytic.abs() + noise * dnorm,
        "random direction: analytic {analytic:e}, numeric {numeric:e}"
    );

    // And every tensor of the model (dense ones included), along its gradient and a random
    // direction, with the same helper as the dense whole-model check.
    common_grad::check_all(&model, &grads, f, h, 5e-3, noise);
}

#[test]
fn tensorized_checkpoint_round_trips() {
    let dir = tmpdir("roundtrip");
    let mut model = upper_middle(7);
    model.tensorize_ffn(0, &FfnTtSpec::seed(27)).unwrap();
    model.tensorize_ffn(3, &FfnTtSpec::seed(39)).unwrap();
    // Block 2's up-projection with three output modes (five cores), to round-trip a spec other
    // than the seed's.
    let mut spec = FfnTtSpec::seed(20);
    spec.up = TTSpec {
        layout: TTLayout::OutputsThenInputs,
        in_modes: vec![5, 10],
        out_modes: vec![4, 5, 10],
        bond_dims: vec![4, 12, 30, 10],
    };
    model.tensorize_ffn(2, &spec).unwrap();
    let v = vocab(V);
    let path = dir.join("tt.json");
    model.save(&path, &v).unwrap();
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let projections = j["projections"].as_object().unwrap();
    assert_eq!(projections.len(), 6);
    assert!(j["state_dict"]["blocks.0.ffn.0.cores.1"].is_object());
    assert!(j["state_dict"]["blocks.0.ffn.0.weight"].is_null());
    assert!(j["state_dict"]["blocks.1.ffn.0.weight"].is_object());

    let (loaded, lv) = Model::load(&path).unwrap();
    assert_eq!(lv.words(), v.words());
    assert_eq!(loaded.tt_specs(), model.tt_specs());
    assert_eq!(loaded, model);
    let x = ids(V, 29);
    assert_eq!(
        loaded.forward(x.view()).unwrap(),
        model.forward(x.view()).unwrap(),
        "a round trip must give identical logits"
    );
}

/// Saves a tensorized checkpoint, lets `edit` break its JSON, returns the load error.
fn load_error(name: &str, edit: impl FnOnce(&mut Value)) -> (Error, PathBuf) {
    let dir = tmpdir(name);
    let path = dir.join("bad.json");
    let mut model = upper_middle(8);
    model.tensorize_ffn(1, &FfnTtSpec::seed(20)).unwrap();
    model.save(&path, &vocab(V)).unwrap();
    let mut j: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut j);
    std::fs::write(&path, serde_json::to_string(&j).unwrap()).unwrap();
    (Model::load(&path).unwrap_err(), path)
}

fn assert_invalid(e: &Error, path: &Path, key_want: &str) {
    match e {
        Error::InvalidFile { path: p, key, .. } => {
            assert_eq!(p, path);
            assert_eq!(key, key_want, "{e}");
        }
        other => panic!("expected InvalidFile about {key_want}, got {other:?}"),
    }
}

#[test]
fn corrupt_projection_entries_are_named() {
    // Bad modes (a zero mode).
    let (e, p) = load_error("zero_mode", |j| {
        j["projections"]["blocks.1.ffn.0"]["in_modes"] = json!([0, 10]);
    });
    assert_invalid(&e, &p, "projections.blocks.1.ffn.0");
    // Not a spec at all.
    let (e, p) = load_error("not_spec", |j| {
        j["projections"]["blocks.1.ffn.2"] = json!("tensor train please");
    });
    assert_invalid(&e, &p, "projections.blocks.1.ffn.2");
    let (e, p) = load_error("missing_field", |j| {
        j["projections"]["blocks.1.ffn.2"]
            .as_object_mut()
            .unwrap()
            .remove("bond_dims");
    });
    assert_invalid(&e, &p, "projections.blocks.1.ffn.2");
    // A valid spec whose modes do not match the layer (25 -> 200 for a 50 -> 200 projection).
    let (e, p) = load_error("wrong_modes", |j| {
        j["projections"]["blocks.1.ffn.0"]["in_modes"] = json!([5, 5]);
    });
    assert_invalid(&e, &p, "projections.blocks.1.ffn.0");
    // Wrong number of bond dims.
    let (e, p) = load_error("bond_count", |j| {
        j["projections"]["blocks.1.ffn.2"]["bond_dims"] = json!([5, 20]);
    });
    assert_invalid(&e, &p, "projections.blocks.1.ffn.2");
    // A spec for a projection the model does not have.
    let (e, p) = load_error("no_such_block", |j| {
        let spec = j["projections"]["blocks.1.ffn.0"].clone();
        j["projections"]["blocks.9.ffn.0"] = spec;
    });
    assert_invalid(&e, &p, "projections.blocks.9.ffn.0");
    // A spec whose bond dims disagree with the stored cores: the core's shape is named.
    let (e, p) = load_error("bond_vs_core", |j| {
        j["projections"]["blocks.1.ffn.0"]["bond_dims"] = json!([10, 21, 10]);
    });
    assert_invalid(&e, &p, "state_dict.blocks.1.ffn.0.cores.1");
    // Dropping the spec: the file holds cores for a projection the model thinks is dense.
    let (e, p) = load_error("spec_dropped", |j| {
        j["projections"]
            .as_object_mut()
            .unwrap()
            .remove("blocks.1.ffn.2");
    });
    assert_invalid(&e, &p, "state_dict.blocks.1.ffn.2.weight");
}

/// A deterministic toy language over ids 4..20: BOS, a run of consecutive ids, EOS.
fn toy_rows() -> Dataset {
    common::toy_rows(24, 8, |i| {
        let start = (i % 8) as u32;
        (0..2 + i % 4)
            .map(|k| 4 + (start + k as u32) % 16)
            .collect()
    })
}

#[test]
fn fine_tuning_tt_cores_lowers_the_loss_and_freezes_the_rest() {
    let data = toy_rows();
    let valid = data.subset(&[0, 5, 10, 15]).unwrap();
    let mut model = Model::new(small_config(), 31).unwrap();
    let spec = FfnTtSpec::for_config(&small_config(), 3);
    model.tensorize_ffn(0, &spec).unwrap();
    model.tensorize_ffn(1, &spec).unwrap();
    let before = model.clone();
    let loss_before = evaluate_dataset(&model, &data, 8).unwrap();
    let config = TrainConfig {
        epochs: 15,
        batch_size: 8,
        lr: 1e-2,
        seed: 2,
        clip: Some(1.0),
        threads: 1,
    };
    let mut epochs = 0;
    let reports = fine_tune_tt(&mut model, &data, &valid, config, |_| epochs += 1).unwrap();
    assert_eq!((epochs, reports.len()), (15, 15));
    let loss_after = evaluate_dataset(&model, &data, 8).unwrap();
    assert!(
        loss_after < loss_before - 0.2,
        "training loss {loss_before} -> {loss_after}"
    );
    assert!(reports.last().unwrap().val_loss.unwrap() < reports[0].val_loss.unwrap());

    let tt: HashSet<String> = model.tt_parameter_names().into_iter().collect();
    assert_eq!(tt.len(), 2 * 2 * 5);
    let (mut frozen, mut moved) = (0, 0);
    for ((n, a), (n2, b)) in before
        .named_parameters()
        .into_iter()
        .zip(model.named_parameters())
    {
        assert_eq!(n, n2);
        if tt.contains(&n) {
            if a != b {
                moved += 1;
            }
        } else {
            assert!(
                a.iter()
                    .zip(b.iter())
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{n} is not a TT parameter but changed"
            );
            frozen += 1;
        }
    }
    assert_eq!(moved, tt.len(), "every TT tensor should be trained");
    assert!(frozen > 10);
    assert_eq!(model.tt_specs(), before.tt_specs());

    // A model with no TT projection has nothing to fine-tune.
    let mut dense = Model::new(small_config(), 31).unwrap();
    common::assert_err_kind(
        fine_tune_tt(&mut dense, &data, &valid, config_one(), |_| {}),
        "InvalidArgument(names)",
    );
}

fn config_one() -> TrainConfig {
    TrainConfig {
        epochs: 1,
        batch_size: 8,
        lr: 1e-2,
        seed: 2,
        clip: None,
        threads: 1,
    }
}

fn is_invalid_arg(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument { .. })
}

#[test]
fn bad_surgery_is_an_error_and_leaves_the_model_unchanged() {
    let original = upper_middle(9);
    let mut model = original.clone();

    let e = model.tensorize_ffn(4, &FfnTtSpec::seed(20)).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { name, .. } if name == "block"),
        "{e}"
    );
    assert!(e.to_string().contains('4'), "{e}");
    common::assert_err_kind(model.densify_ffn(4), "InvalidArgument(block)");
    assert_eq!(model, original);

    // Up-projection modes that multiply to 45, not 50.
    let mut spec = FfnTtSpec::seed(20);
    spec.up.in_modes = vec![5, 9];
    let e = model.tensorize_ffn(0, &spec).unwrap_err();
    assert!(is_invalid_arg(&e), "{e}");
    assert!(e.to_string().contains("blocks.0.ffn.0"), "{e}");
    assert_eq!(model, original);

    // A valid up spec but a broken down spec: neither projection is replaced.
    let mut spec = FfnTtSpec::seed(20);
    spec.down.out_modes = vec![5, 11];
    let e = model.tensorize_ffn(2, &spec).unwrap_err();
    assert!(e.to_string().contains("blocks.2.ffn.2"), "{e}");
    assert_eq!(model, original);

    // Bond dim 0, a wrong number of bond dims, an empty mode list.
    type Edit = fn(&mut FfnTtSpec);
    let edits: [(Edit, &str); 3] = [
        (|s| s.up.bond_dims = vec![10, 0, 10], "blocks.1.ffn.0"),
        (|s| s.down.bond_dims = vec![5, 20], "blocks.1.ffn.2"),
        (|s| s.up.out_modes = vec![], "blocks.1.ffn.0"),
    ];
    for (edit, key) in edits {
        let mut spec = FfnTtSpec::seed(20);
        edit(&mut spec);
        common::assert_err_kind(
            model.tensorize_ffn(1, &spec),
            &format!("InvalidArgument({key})"),
        );
        assert_eq!(model, original);
    }

    // A failed surgery on a block that is already a TT leaves that TT as it was.
    model.tensorize_ffn(3, &FfnTtSpec::seed(27)).unwrap();
    let compressed = model.clone();
    let mut spec = FfnTtSpec::seed(20);
    spec.up.in_modes = vec![7, 7];
    common::assert_err_kind(
        model.tensorize_ffn(3, &spec),
        "InvalidArgument(blocks.3.ffn.0)",
    );
    assert_eq!(model, compressed);
}

#[test]
fn bonds_above_the_limit_are_capped_and_reported() {
    let dense = upper_middle(10);
    let mut model = dense.clone();
    let r = model.tensorize_ffn(0, &FfnTtSpec::seed(64)).unwrap();
    assert_eq!(
        r.up.capped,
        vec![CappedBond {
            bond: 1,
            requested: 64,
            limit: 50
        }]
    );
    assert_eq!(
        r.down.capped,
        vec![CappedBond {
            bond: 1,
            requested: 64,
            limit: 50
        }]
    );
    assert_eq!(r.up.bond_dims, vec![10, 50, 10]);
    assert_eq!(r.up.tt_params, up_core_params(50) + 200);
    assert!(r.up.rel_error < 1e-5);
    let x = ids(V, 29);
    let diff = max_abs_diff(
        &dense.forward(x.view()).unwrap(),
        &model.forward(x.view()).unwrap(),
    );
    assert!(diff < 1e-4, "{diff}");

    // An outer bond above its limit (o1 = 10 for ffn.0) is capped too; the others are kept.
    let mut spec = FfnTtSpec::seed(20);
    spec.up.bond_dims = vec![12, 20, 10];
    let r = model.tensorize_ffn(1, &spec).unwrap();
    assert_eq!(
        r.up.capped,
        vec![CappedBond {
            bond: 0,
            requested: 12,
            limit: 10
        }]
    );
    assert!(r.down.capped.is_empty());
    assert_eq!(r.up.bond_dims, vec![10, 20, 10]);
    // The stored spec holds the effective bond dims (what a checkpoint needs).
    let specs = model.tt_specs();
    let (_, up1) = specs.iter().find(|(n, _)| n == "blocks.1.ffn.0").unwrap();
    assert_eq!(up1.bond_dims, vec![10, 20, 10]);

    // The balanced recipe on a model whose widths do not split evenly still works.
    let cfg = ModelConfig {
        vocab_size: 9,
        d_model: 14,
        max_len: 6,
        n_layers: 1,
        ffn_expansion: 3,
        n_attn_heads: 2,
        arch: Default::default(),
    };
    let mut odd = Model::new(cfg.clone(), 1).unwrap();
    let spec = FfnTtSpec::for_config(&cfg, 100);
    assert_eq!(spec.up.in_modes, vec![2, 7]);
    assert_eq!(spec.up.out_modes, vec![6, 7]);
    let r = odd.tensorize_ffn(0, &spec).unwrap();
    assert_eq!(r.up.bond_dims[1], 14);
    assert!(r.up.capped.iter().any(|c| c.bond == 1 && c.limit == 14));
    assert!(r.up.rel_error < 1e-5);
}

//! A short layer sweep on the real `tiny` profile, end to end: load the fixtures, train a few
//! epochs, compress at two bonds, score every metric, write the report.

mod common;

use common::temp_dir;
use succulm::nn::train::{fine_tune_tt, TrainConfig, Trainer};
use succulm::study::eval::hidden_ids;
use succulm::study::report;
use succulm::study::sweep::{run_grid, tensorized, Grid, HealKind, Method};
use succulm::Model;

#[test]
fn a_short_sweep_on_the_tiny_profile_runs_end_to_end() {
    let vocab = common::vocab();
    let mut model = Model::from_profile("tiny", &vocab, 3).unwrap();
    let (probes, train, valid) = common::standard_split(&vocab, model.config().max_len);
    let config = TrainConfig {
        epochs: 3,
        lr: 3e-3,
        seed: 3,
        ..TrainConfig::default()
    };
    Trainer::new(config.clone())
        .unwrap()
        .fit(&mut model, &train, &valid, |_| {})
        .unwrap();

    let hidden = hidden_ids(&vocab).unwrap();
    assert!(!hidden.is_empty());
    let ev = common::evaluator(&model, &vocab, &valid, &probes, 2);
    let heal = |m: &mut Model| {
        let cfg = TrainConfig {
            epochs: 1,
            ..config.clone()
        };
        fine_tune_tt(m, &train, &valid, cfg, |_| {}).map(|_| ())
    };
    let report = run_grid(
        &ev,
        &Grid {
            n_blocks: 1,
            methods: &[Method::Weight],
            block_sets: &[vec![0]],
            bonds: &[50, 5],
            threads: 2,
        },
        |_: Method, blocks: &[usize], bond: usize| {
            tensorized(&model, blocks, &vec![bond; blocks.len()])
        },
        Some((HealKind::CrossEntropy, heal)),
        &|_: &str| {},
    )
    .unwrap();

    assert_eq!(report.cells.len(), 2);
    let full = report.cell(&[0], 50).unwrap();
    let low = report.cell(&[0], 5).unwrap();
    // Full middle bond: an exact TT, so the model is the reference (up to f32 rounding).
    assert!(full.compression.max_rel_error() < 1e-5);
    assert!(full.metrics.teacher_forced.kl.abs() < 1e-6);
    assert!((full.metrics.teacher_forced.loss - report.reference.teacher_forced.loss).abs() < 1e-4);
    // Bond 5 of 50 loses most of the FFN: real reconstruction error, real divergence.
    assert!(low.compression.max_rel_error() > 0.3);
    assert!(low.metrics.teacher_forced.kl > 1e-4);
    assert!(low.compression.ffn_params_tt < low.compression.ffn_params_dense);
    // Healing ran, was scored and its kind recorded, and it helped: fine-tuning the cores on
    // the corpus lowers the validation loss or the divergence from the dense model.
    let healed = low.healed.as_ref().unwrap();
    let (before, after) = (&low.metrics.teacher_forced, &healed.teacher_forced);
    assert!(
        after.loss < before.loss || after.kl < before.kl,
        "healing changed loss {} -> {}, KL {} -> {}",
        before.loss,
        after.loss,
        before.kl,
        after.kl
    );
    assert_eq!(low.heal, Some(HealKind::CrossEntropy));
    assert_eq!(report.heal, Some(HealKind::CrossEntropy));
    // The real TT's bond dims are recorded per projection; the middle one is the bond asked.
    assert_eq!(low.compression.projections.len(), 2);
    for p in &low.compression.projections {
        assert_eq!(p.bond_dims.len(), 3, "{p:?}");
        assert_eq!(p.bond_dims[1], 5, "{p:?}");
        assert!(p.output_error.is_nan());
    }

    let dir = temp_dir("sweep-tiny");
    let written = report::write_all(&report, &dir).unwrap();
    for name in ["sweep.csv", "sweep.json", "table.txt", "verdict.txt"] {
        assert!(written.iter().any(|p| p.ends_with(name)), "{name} written");
    }
    assert!(written
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "svg")));
    let back = report::read_json(dir.join("sweep.json")).unwrap();
    assert_eq!(back.cells.len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

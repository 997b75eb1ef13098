//! Data-aware truncation: calibration and decomposition costs, beside plain TT-SVD.
//!
//! - `calibration/*`: the shipped model's FFN input moments over its training split (1008 rows,
//!   ≈ 16.5k real positions): every projection of the dense model, and one projection paired
//!   with the dense model (what sequential calibration does per projection);
//! - `decompose/*`: one 50→200 (`ffn.0`) and one 200→50 (`ffn.2`) projection of the shipped
//!   model at the seed's spec (exact fold-back), plain and whitened, and the ALS path (input
//!   bonds truncated).
//!
//! Needs `fixtures/succulm_upper_middle.json` and the corpus; run
//! `cargo bench --bench data_aware`. One BLAS thread (as the sweep).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use succulm::compress::calibration::{
    compress_ffns, Calibration, CalibrationMode, CalibrationRows,
};
use succulm::study::eval::load_probes;
use succulm::text::data::{load_corpus, standard_split};
use succulm::text::probes::ProbeGroup;
use succulm::tt::{DataAware, Truncation};
use succulm::{FfnProjection, FfnTtSpec, Model, TTLayer, TTLayout};

fn setup() -> (Model, succulm::Dataset) {
    succulm::tt::blas::set_num_threads(1);
    let (model, vocab) = Model::load("fixtures/succulm_upper_middle.json").expect("model");
    let probes = load_probes("fixtures/succulm_probes.json").expect("probes");
    let pinned: Vec<&str> = probes
        .iter()
        .filter(|p| p.group == ProbeGroup::SeedInTraining)
        .map(|p| p.prompt.as_str())
        .collect();
    let pairs = load_corpus("fixtures").expect("corpus");
    let (train, _) = standard_split(&vocab, &pairs, &pinned, 29).expect("split");
    (model, train)
}

fn bench(c: &mut Criterion) {
    let (model, train) = setup();
    let mut g = c.benchmark_group("calibration");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("all_projections", |b| {
        b.iter(|| Calibration::collect(&model, train.x()).expect("calibration"))
    });
    // Block 3's ffn.2 on a model with block 0 compressed, paired with the dense model.
    let rows = CalibrationRows {
        train: train.x(),
        validation: None,
    };
    let (partial, _) = compress_ffns(
        &model,
        &[(0, FfnTtSpec::seed(20))],
        &DataAware::weight(),
        CalibrationMode::OneShot,
        &rows,
        None,
    )
    .expect("compress");
    g.bench_function("paired_block3_ffn2", |b| {
        b.iter(|| {
            Calibration::collect_for(
                &partial,
                Some(&model),
                train.x(),
                &[(3, FfnProjection::Down)],
            )
            .expect("calibration")
        })
    });
    g.finish();

    let cal = Calibration::collect(&model, train.x()).expect("calibration");
    let mut g = c.benchmark_group("decompose");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    for (which, name) in [(FfnProjection::Up, "ffn0"), (FfnProjection::Down, "ffn2")] {
        let ffn = &model.blocks()[1].ffn;
        let layer = match which {
            FfnProjection::Up => ffn.up.to_dense(),
            FfnProjection::Down => ffn.down.to_dense(),
        };
        let spec = which.spec(&FfnTtSpec::seed(20)).clone();
        let stats = cal.get(1, which).expect("stats");
        let t = Truncation::bond_dims(&spec.bond_dims);
        let (im, om) = (&spec.in_modes, &spec.out_modes);
        g.bench_function(format!("{name}_plain_m20"), |b| {
            b.iter(|| TTLayer::decompose(TTLayout::OutputsThenInputs, im, om, &layer, &t))
        });
        let whitened = |t: &Truncation| {
            TTLayer::decompose_data_aware(
                TTLayout::OutputsThenInputs,
                im,
                om,
                &layer,
                t,
                stats,
                &DataAware::whitened(),
            )
        };
        g.bench_function(format!("{name}_whitened_m20"), |b| b.iter(|| whitened(&t)));
        // Truncated input-side bond: the fold-back is not exact, ALS refines.
        let mut bonds = spec.bond_dims.clone();
        bonds[2] = (bonds[2] / 2).max(1);
        let t_als = Truncation::bond_dims(&bonds);
        g.bench_function(format!("{name}_whitened_als_m20"), |b| {
            b.iter(|| whitened(&t_als))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

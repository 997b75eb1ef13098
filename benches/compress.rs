//! Compressing one GPT-2-small MLP matrix (768 -> 3072, random) with automatic modes (3 a side,
//! `[8, 8, 12]` and `[12, 16, 16]`) at bonds 16: TT-SVD, the weight error and the FLOP count,
//! as `succulm::compress` does for every selected matrix (the 24 of GPT-2 small cost 24 times
//! this, plus reading and writing the files).

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array2;
use rand::{rngs::StdRng, Rng, SeedableRng};
use succulm::compress::{compress_linear, CompressConfig, Modes, Target};
use succulm::Linear;

fn one_matrix(c: &mut Criterion) {
    succulm::tt::blas::set_num_threads(1);
    let mut rng = StdRng::seed_from_u64(2);
    let w = Array2::from_shape_fn((3072, 768), |_| rng.gen_range(-0.05..0.05f32));
    let linear = Linear::new(w, ndarray::Array1::zeros(3072)).unwrap();
    let config = CompressConfig {
        modes: Modes::Auto(3),
        target: Target::Bond(16),
        ..CompressConfig::default()
    };
    let mut g = c.benchmark_group("compress");
    g.sample_size(10);
    g.bench_function("gpt2_c_fc_768x3072_bond16", |b| {
        b.iter(|| compress_linear(&linear, &config, None).unwrap())
    });
    g.finish();
}

criterion_group!(benches, one_matrix);
criterion_main!(benches);

//! SuccuLM `upper_middle` (V = 155, d = 50, 4 layers, FFN 200, 5 heads): one Adam step on a
//! 32×29 batch, forwards of 1×29 and 32×29, and one KV-cached decoding step at position 15. Set `SUCCULM_THREADS` (default 1) to split the
//! batch across threads and `SUCCULM_BLAS_THREADS` (default 1) for OpenBLAS.
//!
//! FLOPs per forward token (2 per multiply-add): 2·L·(3d² + d² + 2·d·f) + 2·d·V, plus the
//! causal attention core 2·L·2·d·(T+1)/2 on average; a training step is ≈ 3× a forward.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use succulm::nn::model::{Model, ModelConfig};
use succulm::nn::optim::Adam;

const V: usize = 155;
const T: usize = 29;

fn env(name: &str) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn ids(b: usize, seed: u64) -> Array2<u32> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((b, T), || rng.gen_range(4..V as u32))
}

fn forward_flops(c: &ModelConfig, rows: usize) -> f64 {
    let (d, f, l) = (c.d_model as f64, c.ffn_dim() as f64, c.n_layers as f64);
    let per_token = 2.0 * l * (4.0 * d * d + 2.0 * d * f)
        + 2.0 * d * V as f64
        + 2.0 * l * 2.0 * d * (T as f64 + 1.0) / 2.0;
    per_token * rows as f64
}

fn benches(c: &mut Criterion) {
    succulm::tt::blas::set_num_threads(env("SUCCULM_BLAS_THREADS"));
    let threads = env("SUCCULM_THREADS");
    let config = ModelConfig::profile("upper_middle", V).unwrap();
    let model = Model::new(config.clone(), 0).unwrap();
    eprintln!(
        "upper_middle: {} parameters; forward 32x29 = {:.1} MFLOP, train step ≈ {:.1} MFLOP; threads {threads}, BLAS threads {}",
        succulm::Parameters::num_params(&model),
        forward_flops(&config, 32 * T) / 1e6,
        3.0 * forward_flops(&config, 32 * T) / 1e6,
        succulm::tt::blas::num_threads()
    );

    let mut g = c.benchmark_group("upper_middle");
    let x = ids(32, 1);
    let y = ids(32, 2);
    g.throughput(Throughput::Elements((32 * T) as u64));
    {
        let mut m = model.clone();
        let mut adam = Adam::new(1e-3);
        let mut grads = m.zero_grads();
        let mut scratch = Vec::new();
        g.bench_function("train_step_32x29", |b| {
            b.iter(|| {
                grads.zero();
                m.accumulate_grads_threaded(x.view(), y.view(), &mut grads, &mut scratch, threads)
                    .unwrap();
                adam.step(&mut m, &grads).unwrap();
            })
        });
    }
    g.bench_function("forward_32x29", |b| {
        b.iter(|| model.forward_threaded(x.view(), threads).unwrap())
    });
    let x1 = ids(1, 3);
    g.throughput(Throughput::Elements(T as u64));
    g.bench_function("forward_1x29", |b| {
        b.iter(|| model.forward(x1.view()).unwrap())
    });
    // One generated token: positions 0..15 already cached, the 16th decoded.
    let prompt: Vec<u32> = x1.iter().copied().take(15).collect();
    let mut cache = model.new_cache();
    model.forward_cached(&mut cache, &prompt).unwrap();
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_1_token_at_15", |b| {
        b.iter(|| {
            cache.truncate(15);
            model.forward_cached(&mut cache, &[7]).unwrap()
        })
    });
    g.finish();
}

criterion_group!(model_benches, benches);
criterion_main!(model_benches);

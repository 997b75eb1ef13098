//! The small non-GEMM pieces of a training step at the shapes of `upper_middle` (d = 50,
//! V = 156) on a chunk of 4 sequences of 29 tokens (116 rows) and on one sequence (29 rows):
//! LayerNorm forward (with cache) and backward, the cross-entropy with its gradient, and the
//! embedding lookup plus positional encoding.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use succulm::nn::layers::{positional_table, Embedding, Layer, LayerNorm};
use succulm::Parameters;

const D: usize = 50;
const V: usize = 156;
const T: usize = 29;

fn random(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || rng.gen_range(-2.0f32..2.0))
}

fn benches(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut ln = LayerNorm::new(D);
    ln.visit_mut("", &mut |_, mut t| {
        t.mapv_inplace(|_| rng.gen_range(0.5f32..1.5));
    });

    let mut g = c.benchmark_group("layers");
    for rows in [116, 29] {
        let x = random(rows, D, &mut rng);
        let dy = random(rows, D, &mut rng);
        g.bench_function(format!("ln_forward_train_{rows}x{D}"), |b| {
            b.iter(|| ln.forward_train(black_box(x.view())).unwrap())
        });
        let (_, cache) = ln.forward_train(x.view()).unwrap();
        let mut grads = ln.zeros_like();
        g.bench_function(format!("ln_backward_{rows}x{D}"), |b| {
            b.iter(|| {
                ln.backward(&cache, black_box(dy.view()), &mut grads)
                    .unwrap()
            })
        });
    }

    let rows = 4 * T;
    let logits = random(rows, V, &mut rng).mapv(|v| v * 4.0);
    // About one target in ten is <PAD> (0), as in padded batches.
    let targets: Vec<u32> = (0..rows)
        .map(|_| {
            if rng.gen_bool(0.1) {
                0
            } else {
                rng.gen_range(1..V as u32)
            }
        })
        .collect();
    g.bench_function(format!("cross_entropy_{rows}x{V}"), |b| {
        b.iter(|| succulm::nn::loss::cross_entropy(black_box(logits.view()), &targets).unwrap())
    });

    let embed = Embedding::init(V, D, &mut rng);
    let pe = positional_table(T, D);
    let ids: Vec<u32> = (0..rows).map(|_| rng.gen_range(0..V as u32)).collect();
    g.bench_function(format!("embed_lookup_pe_{rows}x{D}"), |b| {
        b.iter(|| {
            embed
                .forward_positions(black_box(&ids), pe.view(), T)
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(layer_benches, benches);
criterion_main!(layer_benches);

//! Each remaining vectorised kernel through each of its builds, side by side: the hand-written
//! AVX2 + FMA intrinsics (`intrinsics`, where the CPU has them) against the portable Rust the
//! compiler vectorises, compiled for the baseline target (`portable_base`), x86-64-v3
//! (`portable_v3`) and x86-64-v4 (`portable_v4`) and picked at run time (`kernels::Level`).
//! Shapes as in a training step of `upper_middle` (d = 50, V = 156, 5 heads of 10; a chunk
//! of 4 sequences of 29 tokens = 116 rows, one sequence = 29 rows; Adam over its ≈ 92k
//! parameters).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::time::Duration;
use succulm::kernel_bench::{impls, name, AdamRows, Impl, LayerNormRows, LossRows};
use succulm::nn::layers::attention::bench::Core;

const D: usize = 50;
const V: usize = 156;
const T: usize = 29;

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernels");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    for imp in impls() {
        let n = name(imp);
        for rows in [116, 29] {
            let mut ln = LayerNormRows::new(rows, D, 1);
            g.bench_function(format!("ln_forward_{rows}x{D}/{n}"), |b| {
                b.iter(|| black_box(ln.forward(imp)))
            });
            g.bench_function(format!("ln_backward_{rows}x{D}/{n}"), |b| {
                b.iter(|| black_box(ln.backward(imp)))
            });
        }
        let mut loss = LossRows::new(4 * T, V, 2);
        g.bench_function(format!("cross_entropy_116x{V}/{n}"), |b| {
            b.iter(|| black_box(loss.cross_entropy(imp)))
        });
        g.bench_function(format!("softmax_116x{V}/{n}"), |b| {
            b.iter(|| black_box(loss.softmax(imp)))
        });
        let mut core = Core::new(4, T, D, 5, 1);
        let mut dqkv = Vec::new();
        core.forward_impl(imp);
        g.bench_function(format!("attention_forward_4x29/{n}"), |b| {
            b.iter(|| black_box(core.forward_impl(imp)))
        });
        g.bench_function(format!("attention_backward_4x29/{n}"), |b| {
            b.iter(|| black_box(core.backward_impl(imp, &mut dqkv)))
        });
        let mut one = Core::new(1, T, D, 5, 2);
        g.bench_function(format!("attention_forward_1x29/{n}"), |b| {
            b.iter(|| black_box(one.forward_impl(imp)))
        });
        if let Impl::Portable(level) = imp {
            let mut adam = AdamRows::new(92_000, 3);
            g.bench_function(format!("adam_92000/{n}"), |b| {
                b.iter(|| black_box(adam.step(level)))
            });
        }
    }
    g.finish();
}

criterion_group!(kernel_benches, benches);
criterion_main!(kernel_benches);

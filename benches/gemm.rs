//! `succulm::tt::gemm` against OpenBLAS (through ndarray, one thread) on the products of one
//! training chunk of `upper_middle` (116 rows = 4 sequences of 29) and of a 1×29 forward:
//! forward `x · Wᵀ` (with `Wᵀ` pre-packed, as `Linear` keeps it), weight gradient
//! `dW += dyᵀ · x`, and input gradient `dx = dy · W`; and one large forward (`768 → 3072`,
//! 128 rows).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::{linalg::general_mat_mul, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use succulm::tt::gemm::{matmul_into, Write};

fn rand(r: usize, c: usize, rng: &mut StdRng) -> Array2<f32> {
    Array2::from_shape_simple_fn((r, c), || rng.gen_range(-1.0..1.0))
}

fn benches(c: &mut Criterion) {
    succulm::tt::blas::set_num_threads(1);
    let mut rng = StdRng::seed_from_u64(1);
    let mut g = c.benchmark_group("gemm");
    // (name, rows, in, out): the Linear layers of a block and the tied head.
    for &(name, rows, inp, out) in &[
        ("qkv", 116, 50, 150),
        ("ffn_up", 116, 50, 200),
        ("ffn_down", 116, 200, 50),
        ("head", 116, 50, 156),
        ("ffn_up_1x29", 29, 50, 200),
    ] {
        let x = rand(rows, inp, &mut rng);
        let w = rand(out, inp, &mut rng);
        let wt = w.t().as_standard_layout().into_owned();
        let dy = rand(rows, out, &mut rng);
        g.throughput(Throughput::Elements((2 * rows * inp * out) as u64));
        let mut y = Array2::<f32>::zeros((rows, out));
        g.bench_function(format!("{name}/forward/succulm"), |b| {
            b.iter(|| matmul_into(x.view(), wt.view(), y.view_mut(), Write::Overwrite).unwrap())
        });
        g.bench_function(format!("{name}/forward/openblas"), |b| {
            b.iter(|| x.dot(&w.t()))
        });
        if rows < 100 {
            continue;
        }
        let mut gw = Array2::<f32>::zeros((out, inp));
        g.bench_function(format!("{name}/dweight/succulm"), |b| {
            b.iter(|| matmul_into(dy.t(), x.view(), gw.view_mut(), Write::Accumulate).unwrap())
        });
        g.bench_function(format!("{name}/dweight/openblas"), |b| {
            b.iter(|| general_mat_mul(1.0, &dy.t(), &x, 1.0, &mut gw))
        });
        let mut dx = Array2::<f32>::zeros((rows, inp));
        g.bench_function(format!("{name}/dinput/succulm"), |b| {
            b.iter(|| matmul_into(dy.view(), w.view(), dx.view_mut(), Write::Overwrite).unwrap())
        });
        g.bench_function(format!("{name}/dinput/openblas"), |b| b.iter(|| dy.dot(&w)));
    }
    // A GPT-2-sized FFN layer (768 -> 3072, 128 rows): `B` spans 9 MiB, so the kernels pack it
    // panel by panel.
    let (rows, inp, out) = (128, 768, 3072);
    let x = rand(rows, inp, &mut rng);
    let w = rand(out, inp, &mut rng);
    let wt = w.t().as_standard_layout().into_owned();
    let mut y = Array2::<f32>::zeros((rows, out));
    g.sample_size(20);
    g.throughput(Throughput::Elements((2 * rows * inp * out) as u64));
    g.bench_function("large_768x3072/forward/succulm", |b| {
        b.iter(|| matmul_into(x.view(), wt.view(), y.view_mut(), Write::Overwrite).unwrap())
    });
    g.bench_function("large_768x3072/forward/openblas", |b| {
        b.iter(|| general_mat_mul(1.0, &x, &wt, 0.0, &mut y))
    });
    g.finish();
}

criterion_group!(gemm_benches, benches);
criterion_main!(gemm_benches);

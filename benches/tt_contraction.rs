//! TT layer forward/backward against the dense `Linear`, and TT-SVD time.
//!
//! Throughput is reported in "elements" = GEMM FLOPs (from `TTLayer::flops`, or `2·rows·in·out`
//! for the dense layer), so criterion's `Kelem/s`/`Melem/s`/`Gelem/s` read as FLOP/s.
//!
//! `TT_BENCH_THREADS` sets the threads one large product may use (default 1, see
//! `succulm::tt::gemm::set_threads`; OpenBLAS, used by the TT-SVD, gets the same count).
//! `tt_r{bond}` uses the cost model's plan, `tt_r{bond}_measured` the measured planner's
//! (`succulm::tt::Planner::Measure`).
//! Run e.g. `cargo bench --bench tt_contraction -- fwd_50to200`.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{Array2, Axis};
use rand::{rngs::StdRng, SeedableRng};
use succulm::tt::gemm::{matmul_into, Write};
use succulm::tt::{set_planner, tt_svd, Planner, Truncation};
use succulm::{Linear, TTLayer};

#[path = "shared/tt_cases.rs"]
mod tt_cases;
use tt_cases::{cases, random_x};

/// Dense backward as `Linear::backward` does it: dW += dyᵀx, db += Σdy, dx = dy·W.
fn dense_backward(
    lin: &Linear,
    x: &Array2<f32>,
    dy: &Array2<f32>,
    gw: &mut Array2<f32>,
) -> Array2<f32> {
    matmul_into(dy.t(), x.view(), gw.view_mut(), Write::Accumulate).unwrap();
    black_box(dy.sum_axis(Axis(0)));
    let mut dx = Array2::zeros((dy.nrows(), lin.in_features()));
    matmul_into(dy.view(), lin.weight(), dx.view_mut(), Write::Overwrite).unwrap();
    dx
}

fn threads() {
    let n = std::env::var("TT_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    succulm::tt::blas::set_num_threads(n);
    succulm::tt::gemm::set_threads(n);
}

fn bench_forward(c: &mut Criterion) {
    threads();
    for case in cases() {
        let (i, o, lin) = case.dense();
        let mut g = c.benchmark_group(format!("fwd_{}", case.name));
        for &rows in &case.rows {
            let x = random_x(rows, i, 7);
            g.throughput(Throughput::Elements((2 * rows * i * o) as u64));
            g.bench_with_input(BenchmarkId::new("dense", rows), &x, |b, x| {
                b.iter(|| lin.forward(black_box(x.view())).unwrap())
            });
            for (bonds, label) in case.bonds.iter().zip(&case.labels) {
                let tt =
                    TTLayer::from_linear(&case.in_modes, &case.out_modes, &lin, bonds).unwrap();
                let _ = tt.forward(x.view()).unwrap(); // plan + merges are one-time
                g.throughput(Throughput::Elements(tt.flops(rows)));
                g.bench_with_input(
                    BenchmarkId::new(format!("tt_r{label}"), rows),
                    &x,
                    |b, x| b.iter(|| tt.forward(black_box(x.view())).unwrap()),
                );
                // The measured planner: a fresh layer times its shortlist on first use.
                set_planner(Planner::Measure);
                let tt =
                    TTLayer::from_linear(&case.in_modes, &case.out_modes, &lin, bonds).unwrap();
                let _ = tt.forward(x.view()).unwrap();
                eprintln!(
                    "{} rows {rows} bond {label}: measured plan {:?}, model plan {:?}",
                    case.name,
                    tt.plan(rows).groups,
                    {
                        set_planner(Planner::Model);
                        let p = tt.plan(rows).groups;
                        set_planner(Planner::Measure);
                        p
                    }
                );
                g.bench_with_input(
                    BenchmarkId::new(format!("tt_r{label}_measured"), rows),
                    &x,
                    |b, x| b.iter(|| tt.forward(black_box(x.view())).unwrap()),
                );
                set_planner(Planner::Model);
            }
        }
        g.finish();
    }
}

fn bench_backward(c: &mut Criterion) {
    threads();
    for case in cases() {
        let (i, o, lin) = case.dense();
        let mut g = c.benchmark_group(format!("bwd_{}", case.name));
        for &rows in &case.rows {
            let x = random_x(rows, i, 7);
            let dy = random_x(rows, o, 8);
            // Backward FLOPs: twice the forward's (input and parameter gradients).
            g.throughput(Throughput::Elements((4 * rows * i * o) as u64));
            let mut gw = Array2::<f32>::zeros((o, i));
            g.bench_function(BenchmarkId::new("dense", rows), |b| {
                b.iter(|| dense_backward(&lin, black_box(&x), black_box(&dy), &mut gw))
            });
            for (bonds, label) in case.bonds.iter().zip(&case.labels) {
                let tt =
                    TTLayer::from_linear(&case.in_modes, &case.out_modes, &lin, bonds).unwrap();
                let (_, cache) = tt.forward_train(x.view()).unwrap();
                let mut grads = tt.zeros_like();
                let sweep_flops: u64 = 2 * tt.training_plan(rows).flops.max(1);
                g.throughput(Throughput::Elements(sweep_flops));
                g.bench_function(BenchmarkId::new(format!("tt_r{label}"), rows), |b| {
                    b.iter(|| {
                        tt.backward(&cache, black_box(dy.view()), &mut grads)
                            .unwrap()
                    })
                });
                g.bench_function(
                    BenchmarkId::new(format!("tt_r{label}_fwd_train"), rows),
                    |b| b.iter(|| tt.forward_train(black_box(x.view())).unwrap()),
                );
            }
        }
        g.finish();
    }
}

fn bench_tt_svd(c: &mut Criterion) {
    threads();
    let lin = Linear::init(768, 3072, &mut StdRng::seed_from_u64(1234)).unwrap();
    let w = lin.weight();
    let modes = [12, 16, 16, 8, 8, 12];
    let mut g = c.benchmark_group("tt_svd_3072x768");
    g.sample_size(10);
    for r in [8usize, 16, 32] {
        let t = Truncation::bond_dims(&[r; 5]);
        g.bench_function(BenchmarkId::new("bonds", r), |b| {
            b.iter(|| tt_svd(black_box(w.into_dyn()), &modes, &t).unwrap())
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(800))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_forward, bench_backward, bench_tt_svd
}
criterion_main!(benches);

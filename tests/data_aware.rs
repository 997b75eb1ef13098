//! Data-aware tensor-train truncation (`TTLayer::decompose_data_aware`, `InputStats`), checked
//! against independent truths: moments and output errors computed from the rows themselves, the
//! whitened Eckart–Young tail from LAPACK's SVD of `W·C^{1/2}` (built here with `Eigh`), and the
//! optimality guarantees that follow from it.

use ndarray::{s, Array1, Array2, Axis};
use ndarray_linalg::{Eigh, SVD, UPLO};
use rand::{rngs::StdRng, Rng, SeedableRng};
use succulm::tt::{DataAware, InputStats, Objective, Truncation};
use succulm::{Error, Linear, TTLayer, TTLayout};

fn linear(in_f: usize, out_f: usize, seed: u64) -> Linear {
    Linear::init(in_f, out_f, &mut StdRng::seed_from_u64(seed)).unwrap()
}

/// Calibration rows with very unequal, correlated channels and a non-zero mean, as real
/// activations have: `x = z·A + c` with `z` uniform, `A` random, `c` an offset.
fn activations(rows: usize, n: usize, seed: u64) -> Array2<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mix = Array2::from_shape_fn((n, n), |(i, j)| {
        let scale = 1.0 + 4.0 * (i as f32 / n as f32).powi(2);
        rng.gen_range(-1.0f32..1.0) * scale * if i == j { 3.0 } else { 0.3 }
    });
    let offset: Array1<f32> = (0..n).map(|j| 0.5 * (j as f32 * 0.7).sin()).collect();
    let z = Array2::from_shape_fn((rows, n), |_| rng.gen_range(-1.0f32..1.0));
    z.dot(&mix) + &offset
}

fn f64s(a: &Array2<f32>) -> Array2<f64> {
    a.mapv(|v| v as f64)
}

/// `‖(X Wᵀ + b) − (X Ŵᵀ + b̂)‖_F / ‖X Wᵀ‖_F` from the rows, in f64.
fn output_error_rows(x: &Array2<f32>, reference: &Linear, candidate: &Linear) -> f64 {
    let x = f64s(x);
    let y = x.dot(&f64s(&reference.weight().to_owned()).t());
    let yb = &y + &reference.bias().mapv(|v| v as f64);
    let yh = x.dot(&f64s(&candidate.weight().to_owned()).t()) + candidate.bias().mapv(|v| v as f64);
    ((&yb - &yh).mapv(|v| v * v).sum() / y.mapv(|v| v * v).sum()).sqrt()
}

/// The symmetric square root of a PSD matrix by LAPACK's `Eigh` (eigenvalues clamped at 0).
fn sqrtm(m: &Array2<f64>) -> Array2<f64> {
    let (lam, q) = m.eigh(UPLO::Lower).unwrap();
    let mut qs = q.clone();
    for (mut c, &l) in qs.columns_mut().into_iter().zip(lam.iter()) {
        c *= l.max(0.0).sqrt();
    }
    qs.dot(&q.t())
}

/// `Σ_{i>m} σ_i(A)²` by LAPACK's SVD.
fn tail2(a: &Array2<f64>, m: usize) -> f64 {
    let (_, sv, _) = a.svd(false, false).unwrap();
    sv.iter().skip(m).map(|s| s * s).sum()
}

/// `E[x xᵀ]` (or the covariance) from the rows.
fn moment(x: &Array2<f32>, centred: bool) -> Array2<f64> {
    let mut x = f64s(x);
    if centred {
        let mu = x.mean_axis(Axis(0)).unwrap();
        x -= &mu;
    }
    x.t().dot(&x) / x.nrows() as f64
}

fn seed_spec(m: usize) -> Truncation {
    Truncation::bond_dims(&[10, m, 10])
}

/// `lin` (50 → 200) decomposed outputs-then-inputs with modes [5, 10] × [10, 20].
fn decompose(
    lin: &Linear,
    spec: &Truncation,
    stats: &InputStats,
    cfg: &DataAware,
) -> (TTLayer, succulm::tt::DataAwareReport) {
    TTLayer::decompose_data_aware(
        TTLayout::OutputsThenInputs,
        &[5, 10],
        &[10, 20],
        lin,
        spec,
        stats,
        cfg,
    )
    .unwrap()
}

fn exact_cfg(refit: bool) -> DataAware {
    DataAware {
        ridge: 0.0,
        refit_bias: refit,
        ..DataAware::whitened()
    }
}

#[test]
fn stats_match_moments_computed_from_the_rows_and_merge() {
    let x = activations(300, 12, 1);
    let s = InputStats::from_rows(x.view()).unwrap();
    assert_eq!((s.rows(), s.n_in()), (300, 12));
    let mu = f64s(&x).mean_axis(Axis(0)).unwrap();
    let mean_abs = f64s(&x).mapv(f64::abs).mean_axis(Axis(0)).unwrap();
    let close = |a: &Array2<f64>, b: &Array2<f64>| {
        (a - b).iter().fold(0.0f64, |m, v| m.max(v.abs()))
            < 1e-10 * (1.0 + b.iter().fold(0.0f64, |m, v| m.max(v.abs())))
    };
    assert!(close(&s.second_moment(), &moment(&x, false)));
    assert!(close(&s.covariance(), &moment(&x, true)));
    assert!((&s.mean() - &mu).iter().all(|d| d.abs() < 1e-12));
    assert!((&s.mean_abs() - &mean_abs).iter().all(|d| d.abs() < 1e-12));
    // Two halves merged equal the whole.
    let mut a = InputStats::from_rows(x.slice(s![..100, ..])).unwrap();
    a.merge(&InputStats::from_rows(x.slice(s![100.., ..])).unwrap())
        .unwrap();
    assert_eq!(a.rows(), 300);
    assert!(close(&a.second_moment(), &s.second_moment()));
    // Paired: the cross moment E[x x_rᵀ] from the rows.
    let xr = activations(300, 12, 2);
    let mut p = InputStats::new(12);
    p.add_paired_rows(x.view(), xr.view()).unwrap();
    let cross = f64s(&x).t().dot(&f64s(&xr)) / 300.0;
    assert!(close(&p.cross_moment(), &cross));
    assert!(close(&p.reference_second_moment(), &moment(&xr, false)));
}

#[test]
fn stats_output_error_matches_the_rows() {
    let x = activations(400, 50, 3);
    let lin = linear(50, 200, 4);
    let stats = InputStats::from_rows(x.view()).unwrap();
    let tt = TTLayer::from_linear(&[5, 10], &[10, 20], &lin, &[10, 17, 10]).unwrap();
    let mut cand = tt.to_dense();
    // A changed bias too, so the bias terms of the formula are exercised.
    let (_, b) = cand.weight_bias_mut();
    b.mapv_inplace(|v| v + 0.01);
    let from_stats = stats.output_error(&lin, &cand).unwrap();
    let from_rows = output_error_rows(&x, &lin, &cand);
    assert!(
        (from_stats - from_rows).abs() < 1e-9 * from_rows,
        "{from_stats} vs {from_rows}"
    );
    // Paired stats with identical rows on both sides give the same figure.
    let mut p = InputStats::new(50);
    p.add_paired_rows(x.view(), x.view()).unwrap();
    let paired = p.output_error(&lin, &cand).unwrap();
    assert!((paired - from_rows).abs() < 1e-6 * from_rows);
}

#[test]
fn weight_objective_is_plain_tt_svd_bit_for_bit() {
    let x = activations(200, 50, 5);
    let lin = linear(50, 200, 6);
    let stats = InputStats::from_rows(x.view()).unwrap();
    for layout in [TTLayout::OutputsThenInputs, TTLayout::Matrix] {
        let (in_m, out_m, bonds): (&[usize], &[usize], Vec<usize>) = match layout {
            TTLayout::OutputsThenInputs => (&[5, 10], &[10, 20], vec![10, 23, 10]),
            TTLayout::Matrix => (&[5, 10], &[10, 20], vec![31]),
        };
        let t = Truncation::bond_dims(&bonds);
        let (plain, _) = TTLayer::decompose(layout, in_m, out_m, &lin, &t).unwrap();
        let (da, report) = TTLayer::decompose_data_aware(
            layout,
            in_m,
            out_m,
            &lin,
            &t,
            &stats,
            &DataAware::weight(),
        )
        .unwrap();
        for (a, b) in plain.cores().iter().zip(da.cores()) {
            assert!(a
                .iter()
                .zip(b.iter())
                .all(|(p, q)| p.to_bits() == q.to_bits()));
        }
        assert_eq!(plain.bias(), da.bias());
        assert_eq!(report.output_error, report.plain_output_error);
        let direct = output_error_rows(&x, &lin, &plain.to_dense());
        assert!((report.output_error - direct).abs() < 1e-8);
    }
}

/// At the seed's spec only the middle bond truncates, so the fold-back is exact and the output
/// error is the whitened Eckart–Young tail, with and without the bias refit.
#[test]
fn whitened_output_error_equals_the_whitened_eckart_young_tail() {
    let x = activations(600, 50, 7);
    let lin = linear(50, 200, 8);
    let stats = InputStats::from_rows(x.view()).unwrap();
    let w = f64s(&lin.weight().to_owned());
    for refit in [false, true] {
        let c = moment(&x, refit);
        let ws = w.dot(&sqrtm(&c));
        let energy = w.dot(&moment(&x, false)).dot(&w.t()).diag().sum();
        for m in [1, 2, 7, 20, 39] {
            let (tt, report) = decompose(&lin, &seed_spec(m), &stats, &exact_cfg(refit));
            assert!(report.fold_back_exact && report.als.is_none());
            // (At m = 1 the last bond's limit is 1·5.)
            assert_eq!(tt.bond_dims(), &[10, m, 10.min(5 * m)]);
            let measured = output_error_rows(&x, &lin, &tt.to_dense());
            let predicted = (tail2(&ws, m) / energy).sqrt();
            assert!(
                (measured - predicted).abs() < 2e-5 * predicted,
                "refit {refit}, m {m}: measured {measured}, tail {predicted}"
            );
            assert!((report.output_error - measured).abs() < 1e-6 * measured);
        }
    }
}

/// Whitened truncation is the optimum of its bonds, so its output error on the calibration rows
/// is never above plain TT-SVD's at the same bonds. With the ridge λ' = λ·tr(Σ)/n the exact
/// statement is `e_w² ≤ e_p² + λ'·‖W − Ŵ_p‖²/‖XWᵀ‖²·N`; the test allows that and f32 rounding.
#[test]
fn whitened_output_error_never_exceeds_plain_at_any_bond() {
    let x = activations(500, 50, 9);
    let lin = linear(50, 200, 10);
    let stats = InputStats::from_rows(x.view()).unwrap();
    let cfg = DataAware::whitened();
    let cov = moment(&x, true);
    let lam = cfg.ridge * cov.diag().sum() / 50.0;
    let w = f64s(&lin.weight().to_owned());
    let energy = w.dot(&moment(&x, false)).dot(&w.t()).diag().sum();
    let mut strictly_better = 0;
    for m in 1..=50 {
        let (tt, _) = decompose(&lin, &seed_spec(m), &stats, &cfg);
        let plain = TTLayer::from_linear(&[5, 10], &[10, 20], &lin, &[10, m, 10]).unwrap();
        let e_w = output_error_rows(&x, &lin, &tt.to_dense());
        let e_p = output_error_rows(&x, &lin, &plain.to_dense());
        let dw = &w - &f64s(&plain.to_dense().weight().to_owned());
        let slack = lam * dw.mapv(|v| v * v).sum() / energy + 1e-12;
        assert!(
            e_w * e_w <= e_p * e_p + slack,
            "m {m}: whitened {e_w} > plain {e_p}"
        );
        if e_w < 0.9 * e_p {
            strictly_better += 1;
        }
    }
    // And on such inputs it is much better almost everywhere (not a vacuous bound).
    assert!(strictly_better >= 45, "only {strictly_better} of 50 bonds");
}

/// Dead channels (always 0) and fewer rows than channels make `XᵀX` singular: the result is
/// finite, no worse than plain, and in a dead direction it acts as the projection of the
/// original column (‖Ŵ e_j‖ ≤ ‖W e_j‖), never blowing up.
#[test]
fn singular_covariance_gives_a_finite_bounded_layer() {
    let lin = linear(50, 200, 11);
    let mut x = activations(30, 50, 12); // 30 rows < 50 channels
    let dead = [3usize, 17, 18, 40];
    for &j in &dead {
        x.column_mut(j).fill(0.0);
    }
    let stats = InputStats::from_rows(x.view()).unwrap();
    for cfg in [DataAware::whitened(), DataAware::scaled(0.5)] {
        for m in [5, 20, 40] {
            let (tt, r) = decompose(&lin, &seed_spec(m), &stats, &cfg);
            let d = tt.to_dense();
            assert!(
                d.weight().iter().all(|v| v.is_finite()) && d.bias().iter().all(|v| v.is_finite())
            );
            assert!(r.output_error.is_finite() && r.weight_error.is_finite());
            if cfg.objective == Objective::Whitened {
                assert!(
                    r.output_error <= r.plain_output_error * (1.0 + 1e-4),
                    "m {m}: {r:?}"
                );
            }
            for &j in &dead {
                let col = |l: &Linear| {
                    l.weight()
                        .column(j)
                        .iter()
                        .map(|v| (*v as f64).powi(2))
                        .sum::<f64>()
                        .sqrt()
                };
                assert!(
                    col(&d) <= col(&lin) * (1.0 + 1e-4),
                    "dead column {j} grew: {} > {}",
                    col(&d),
                    col(&lin)
                );
            }
        }
    }
    // All rows zero: every layer has the same output error; no NaN either.
    let zeros = InputStats::from_rows(Array2::<f32>::zeros((10, 50)).view()).unwrap();
    let (tt, _) = decompose(&lin, &seed_spec(10), &zeros, &DataAware::whitened());
    assert!(tt.to_dense().weight().iter().all(|v| v.is_finite()));
}

/// ASVD minimises ‖(W − Ŵ)·diag(s)‖, s_j = (E|x_j|)^α: optimal in its own metric.
#[test]
fn activation_scaled_is_optimal_in_its_own_metric() {
    let x = activations(300, 50, 13);
    let lin = linear(50, 200, 14);
    let stats = InputStats::from_rows(x.view()).unwrap();
    let s: Array1<f64> = f64s(&x)
        .mapv(f64::abs)
        .mean_axis(Axis(0))
        .unwrap()
        .mapv(f64::sqrt);
    let w = f64s(&lin.weight().to_owned());
    let scaled_err = |l: &Linear| {
        ((&w - &f64s(&l.weight().to_owned())) * &s)
            .mapv(|v| v * v)
            .sum()
            .sqrt()
    };
    let cfg = DataAware {
        ridge: 0.0,
        ..DataAware::scaled(0.5)
    };
    for m in [5, 15, 30] {
        let (tt, r) = decompose(&lin, &seed_spec(m), &stats, &cfg);
        assert!(r.fold_back_exact);
        let plain = TTLayer::from_linear(&[5, 10], &[10, 20], &lin, &[10, m, 10]).unwrap();
        let (a, b) = (scaled_err(&tt.to_dense()), scaled_err(&plain.to_dense()));
        assert!(a < b, "m {m}: scaled {a} vs plain {b}");
        // The optimum is the tail of W·diag(s).
        let pred = tail2(&(&w * &s), m).sqrt();
        assert!((a - pred).abs() < 1e-4 * pred, "{a} vs {pred}");
    }
}

/// With truncated input-side bonds the fold-back is not exact: ALS refines, its objective never
/// rises, and the result still beats plain TT-SVD on the calibration rows.
#[test]
fn truncated_input_bonds_are_refined_by_als() {
    let x = activations(500, 50, 15);
    let lin = linear(50, 200, 16);
    let stats = InputStats::from_rows(x.view()).unwrap();
    for bonds in [[10, 20, 4], [6, 25, 7]] {
        let (tt, r) = decompose(
            &lin,
            &Truncation::bond_dims(&bonds),
            &stats,
            &DataAware::whitened(),
        );
        assert!(!r.fold_back_exact);
        let als = r.als.as_ref().expect("ALS ran");
        assert!(als.sweeps >= 1 && als.after < als.before, "{als:?}");
        assert!(als.history.windows(2).all(|h| h[1] <= h[0] * (1.0 + 1e-12)));
        assert_eq!(tt.bond_dims(), &bonds);
        let e_w = output_error_rows(&x, &lin, &tt.to_dense());
        assert!((r.output_error - e_w).abs() < 1e-6 * e_w);
        assert!(
            e_w < r.plain_output_error,
            "{e_w} vs plain {}",
            r.plain_output_error
        );
    }
    // The TT-matrix layout never folds back exactly; ALS runs there too.
    let (_, r) = TTLayer::decompose_data_aware(
        TTLayout::Matrix,
        &[5, 10],
        &[10, 20],
        &lin,
        &Truncation::bond_dims(&[12]),
        &stats,
        &DataAware::whitened(),
    )
    .unwrap();
    assert!(!r.fold_back_exact && r.als.is_some());
    assert!(r.output_error < r.plain_output_error);
}

/// Compensation: with paired stats (the layer sees `x`, the dense layer saw `x_r`), the target is
/// the dense output. At the optimum it fits the dense outputs at least as well as truncating `W`
/// itself (a guarantee), much better when the distortion is systematic; with `x = x_r` the two
/// coincide.
#[test]
fn compensation_fits_the_dense_outputs_better() {
    let xr = activations(800, 50, 17);
    let lin = linear(50, 200, 19);
    let spec = seed_spec(20);
    let run = |compensate: bool, stats: &InputStats| {
        let cfg = DataAware {
            compensate,
            ..DataAware::whitened()
        };
        decompose(&lin, &spec, stats, &cfg).0
    };
    // Error against the dense outputs W·x_r + b, computed from the rows.
    let err = |x: &Array2<f32>, l: &Linear| {
        let yd = f64s(&xr).dot(&f64s(&lin.weight().to_owned()).t()) + lin.bias().mapv(|v| v as f64);
        let yc = f64s(x).dot(&f64s(&l.weight().to_owned()).t()) + l.bias().mapv(|v| v as f64);
        (&yd - &yc).mapv(|v| v * v).sum().sqrt()
    };
    let mut rng = StdRng::seed_from_u64(18);
    // Noisy: the guarantee (compensated ≤ uncompensated on its own objective).
    let noisy = xr.mapv(|v| v * 0.9 + rng.gen_range(-0.2f32..0.2));
    // Systematic: channels mixed and shifted, which a compensating layer can undo.
    let systematic = {
        let mut x = xr.clone();
        for mut row in x.rows_mut() {
            let r = row.to_owned();
            for j in 0..50 {
                row[j] = 0.7 * r[j] + 0.3 * r[(j + 1) % 50] + 0.1;
            }
        }
        x
    };
    for (x, factor) in [(&noisy, 1.0 + 1e-6), (&systematic, 0.7)] {
        let mut paired = InputStats::new(50);
        paired.add_paired_rows(x.view(), xr.view()).unwrap();
        let (a, b) = (
            err(x, &run(true, &paired).to_dense()),
            err(x, &run(false, &paired).to_dense()),
        );
        assert!(a < factor * b, "compensated {a} vs W's target {b}");
    }
    // Identical pairs: compensation has nothing to correct, so the fit is the unpaired one
    // (W* = W; compared by its objective, which a near-tie among singular values cannot blur).
    let mut same = InputStats::new(50);
    same.add_paired_rows(xr.view(), xr.view()).unwrap();
    let unpaired = InputStats::from_rows(xr.view()).unwrap();
    let (e_p, e_u) = (
        unpaired
            .output_error(&lin, &run(true, &same).to_dense())
            .unwrap(),
        unpaired
            .output_error(&lin, &run(true, &unpaired).to_dense())
            .unwrap(),
    );
    assert!((e_p - e_u).abs() < 1e-6 * e_u, "{e_p} vs {e_u}");
    // Ridge towards W: channels the rows never visit (dead units) keep W's weights, so at full
    // rank with identical pairs the layer is W itself (ridge towards 0 would zero them).
    let mut dead = xr.clone();
    for j in [4, 9, 31] {
        dead.column_mut(j).fill(0.0);
    }
    let mut pairs = InputStats::new(50);
    pairs.add_paired_rows(dead.view(), dead.view()).unwrap();
    let cfg = DataAware::whitened();
    let (full, r) = decompose(&lin, &seed_spec(50), &pairs, &cfg);
    assert!(
        r.weight_error < 1e-5,
        "weight error {} at full rank",
        r.weight_error
    );
    assert!(full.relative_error(&lin) < 1e-5);
}

#[test]
fn bad_calibration_input_is_an_error() {
    let lin = linear(50, 200, 20);
    let x = activations(40, 50, 21);
    let stats = InputStats::from_rows(x.view()).unwrap();
    let t = seed_spec(10);
    let run = |stats: &InputStats, cfg: &DataAware| {
        TTLayer::decompose_data_aware(
            TTLayout::OutputsThenInputs,
            &[5, 10],
            &[10, 20],
            &lin,
            &t,
            stats,
            cfg,
        )
    };
    // Wrong width.
    let narrow = InputStats::from_rows(activations(40, 20, 22).view()).unwrap();
    assert!(matches!(
        run(&narrow, &DataAware::whitened()),
        Err(Error::Shape { .. })
    ));
    // No rows.
    assert!(matches!(
        run(&InputStats::new(50), &DataAware::whitened()),
        Err(Error::InvalidArgument { .. })
    ));
    // Bad settings.
    for cfg in [
        DataAware {
            ridge: -1.0,
            ..DataAware::whitened()
        },
        DataAware {
            ridge: f64::NAN,
            ..DataAware::whitened()
        },
        DataAware::scaled(0.0),
        DataAware::scaled(f64::INFINITY),
    ] {
        assert!(
            matches!(run(&stats, &cfg), Err(Error::InvalidArgument { .. })),
            "{cfg:?}"
        );
    }
    // Non-finite or mis-shaped rows are refused, and the stats stay as they were.
    let mut s = InputStats::from_rows(x.view()).unwrap();
    let mut bad = x.clone();
    bad[[3, 7]] = f32::NAN;
    assert!(s.add_rows(bad.view()).is_err());
    assert!(s.add_rows(activations(4, 49, 1).view()).is_err());
    assert_eq!(s.rows(), 40);
    assert!(s.add_paired_rows(x.view(), x.view()).is_err()); // unpaired stats
    let mut p = InputStats::new(50);
    assert!(p.add_paired_rows(x.view(), x.slice(s![..39, ..])).is_err());
    assert!(p.merge(&s).is_ok()); // empty paired-to-be stats take unpaired rows
}

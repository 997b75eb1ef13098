//! Tensor-train decomposition and `TTLayer`: the seed package's known cases, exactness,
//! Eckart–Young tails, the tolerance guarantee, forward/backward against dense truths, errors.

mod common;

use ndarray::{Array1, Array2, ArrayD, Axis, IxDyn};
use ndarray_linalg::SVD;
use rand::{rngs::StdRng, Rng, SeedableRng};
use succulm::tt::{tt_svd, TTSpec, Truncation};
use succulm::{Error, Linear, Parameters, TTLayer, TTLayout};

fn linear(in_f: usize, out_f: usize, seed: u64) -> Linear {
    Linear::init(in_f, out_f, &mut StdRng::seed_from_u64(seed)).unwrap()
}

fn random_x(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.gen_range(-1.0..1.0))
}

fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A random layer (seeded by `seed`) decomposed in the seed's layout with these bonds.
fn seed_layout(seed: u64, in_m: &[usize], out_m: &[usize], bonds: &[usize]) -> TTLayer {
    let lin = linear(in_m.iter().product(), out_m.iter().product(), seed);
    TTLayer::from_linear(in_m, out_m, &lin, bonds).unwrap()
}

/// A random layer (seeded by `seed`) decomposed in the TT-matrix layout.
fn matrix_layout(seed: u64, in_m: &[usize], out_m: &[usize], t: &Truncation) -> TTLayer {
    let lin = linear(in_m.iter().product(), out_m.iter().product(), seed);
    TTLayer::from_linear_with(TTLayout::Matrix, in_m, out_m, &lin, t).unwrap()
}

/// The largest difference between a TT layer's and a dense layer's outputs on `x`.
fn forward_diff(tt: &TTLayer, lin: &Linear, x: &Array2<f32>) -> f32 {
    max_abs_diff(
        &tt.forward(x.view()).unwrap(),
        &lin.forward(x.view()).unwrap(),
    )
}

/// `‖A − B‖_F` in f64.
fn frob_diff(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

fn frob(a: &Array2<f32>) -> f64 {
    a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt()
}

/// Singular values of an f32 matrix, computed in f64 directly by LAPACK (no TT code involved).
fn singular_values(a: &Array2<f32>) -> Vec<f64> {
    let a64 = a.mapv(|v| v as f64);
    let (_, s, _) = a64.svd(false, false).expect("svd");
    s.to_vec()
}

fn is_invalid_arg(e: &Error, name: &str) -> bool {
    matches!(e, Error::InvalidArgument { name: n, .. } if n == name)
}

// ---- the seed package's three known cases (PyTorch-default-init Linear, seed 1234) ----

/// `x·Wᵀ + b` of `lin` computed in f64: the exact layer, free of any f32 kernel's rounding.
fn exact_forward(lin: &Linear, x: &Array2<f32>) -> Array2<f64> {
    x.mapv(|v| v as f64)
        .dot(&lin.weight().mapv(|v| v as f64).t())
        + lin.bias().mapv(|v| v as f64)
}

#[test]
fn seed_case_1024_to_100_exact() {
    let lin = linear(1024, 100, 1234);
    let tt = TTLayer::from_linear(&[32, 32], &[10, 10], &lin, &[]).unwrap();
    let x = random_x(5, 1024, 1);
    // Against the exact (f64) layer: comparing with the dense f32 forward would add that
    // kernel's own rounding of 1024-term sums (~1e-6 on some CPUs) to the TT's.
    let exact = exact_forward(&lin, &x);
    let y = tt.forward(x.view()).unwrap();
    let d = common::max_abs_diff_f64(&y, &exact);
    assert!(d < 1e-6, "max abs diff {d}");
}

#[test]
fn seed_case_4096_to_216_exact() {
    let lin = linear(4096, 216, 1234);
    let tt = TTLayer::from_linear(&[16, 16, 16], &[6, 6, 6], &lin, &[]).unwrap();
    let x = random_x(5, 4096, 2);
    let d = forward_diff(&tt, &lin, &x);
    assert!(d < 1e-5, "max abs diff {d}");
}

#[test]
fn seed_case_1024_to_100_low_rank() {
    let lin = linear(1024, 100, 1234);
    let tt = TTLayer::from_linear(&[32, 32], &[10, 10], &lin, &[10, 99, 32]).unwrap();
    assert_eq!(tt.bond_dims(), &[10, 99, 32]);
    let x = random_x(5, 1024, 3);
    let d = forward_diff(&tt, &lin, &x);
    assert!(d < 8e-2, "max abs diff {d}");
    assert!(d > 0.0, "a truncation should not be exact");
    // Bonds 1 and 3 are at full rank; bond 2's unfolding [o1·o2, i1·i2] is W itself (100 ×
    // 1024, rank 100), cut to 99: by Eckart–Young the TT is W without its smallest singular
    // triple, so ‖W − W_tt‖_F is exactly W's smallest singular value σ_100, and the TT's
    // singular values are W's first 99.
    let w = lin.weight().mapv(|v| v as f64);
    let (_, sv, _) = w.svd(false, false).unwrap();
    let w_tt = tt.to_dense().weight().mapv(|v| v as f64);
    let err = (&w - &w_tt).mapv(|v| v * v).sum().sqrt();
    let sigma_min = sv[99];
    assert!(
        (err - sigma_min).abs() < 1e-4 * sigma_min,
        "‖W − W_tt‖ {err} vs σ_100 {sigma_min}"
    );
    let (_, sv_tt, _) = w_tt.svd(false, false).unwrap();
    for k in 0..99 {
        assert!(
            (sv_tt[k] - sv[k]).abs() < 1e-5 * sv[0],
            "σ_{k}: {} vs {}",
            sv_tt[k],
            sv[k]
        );
    }
    assert!(sv_tt[99] < 1e-5 * sv[0]);
}

// ---- the seed's FFN specs ----

#[test]
fn seed_ffn_specs_shapes_params_and_exactness() {
    let up = linear(50, 200, 10);
    let down = linear(200, 50, 11);
    let tt0 = TTLayer::from_linear(&[5, 10], &[10, 20], &up, &[10, 50, 10]).unwrap();
    let tt2 = TTLayer::from_linear(&[10, 20], &[5, 10], &down, &[5, 50, 20]).unwrap();
    let shapes = |t: &TTLayer| {
        t.cores()
            .iter()
            .map(|c| c.shape().to_vec())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        shapes(&tt0),
        vec![
            vec![10, 10],
            vec![10, 20, 50],
            vec![50, 5, 10],
            vec![10, 10]
        ]
    );
    assert_eq!(
        shapes(&tt2),
        vec![vec![5, 5], vec![5, 10, 50], vec![50, 10, 20], vec![20, 20]]
    );
    assert_eq!(tt0.num_params(), 12_700);
    assert_eq!(tt0.dense_params(), 10_000);
    assert!(tt0.compression_ratio() < 1.0);
    assert_eq!(Parameters::num_params(&tt0), 12_900); // with the bias
    assert!(tt0.relative_error(&up) < 1e-5);
    assert!(tt2.relative_error(&down) < 1e-5);
    let x = random_x(29, 50, 4);
    assert!(forward_diff(&tt0, &up, &x) < 1e-5);

    // The middle bond is the only one that truncates: error falls as m grows, 0 at m = 50.
    let mut last = f32::INFINITY;
    for m in [20, 27, 30, 39, 42, 46, 47, 50] {
        let a = TTLayer::from_linear(&[5, 10], &[10, 20], &up, &[10, m, 10]).unwrap();
        let b = TTLayer::from_linear(&[10, 20], &[5, 10], &down, &[5, m, 20]).unwrap();
        assert_eq!(a.bond_dims(), &[10, m, 10]);
        assert_eq!(b.bond_dims(), &[5, m, 20]);
        let e = a.relative_error(&up);
        assert!(e <= last + 1e-6, "m = {m}: error {e} > {last}");
        last = e;
    }
    assert!(last < 1e-5);
}

// ---- exactness at full rank, both layouts ----

fn random_modes(rng: &mut StdRng, count: usize) -> Vec<usize> {
    (0..count).map(|_| rng.gen_range(1..=4)).collect()
}

#[test]
fn exact_at_full_rank_for_random_shapes() {
    let mut rng = StdRng::seed_from_u64(99);
    for d in 2..=6 {
        for trial in 0..3 {
            let m = rng.gen_range(1..d);
            let out_modes = random_modes(&mut rng, m);
            let in_modes = random_modes(&mut rng, d - m);
            let (i, o) = (in_modes.iter().product(), out_modes.iter().product());
            let lin = linear(i, o, 1000 + trial);
            let tt = TTLayer::from_linear(&in_modes, &out_modes, &lin, &[]).unwrap();
            let e = tt.relative_error(&lin);
            assert!(e < 1e-5, "{in_modes:?} {out_modes:?}: rel error {e}");
            let x = random_x(4, i, trial);
            let diff = forward_diff(&tt, &lin, &x);
            assert!(diff < 1e-5, "{in_modes:?} {out_modes:?}: {diff}");

            // TT-matrix layout: d cores each holding one output and one input mode.
            let out_m = random_modes(&mut rng, d);
            let in_m = random_modes(&mut rng, d);
            let (i, o) = (in_m.iter().product(), out_m.iter().product());
            let lin = linear(i, o, 2000 + trial);
            let tt = TTLayer::from_linear_with(
                TTLayout::Matrix,
                &in_m,
                &out_m,
                &lin,
                &Truncation::exact(),
            )
            .unwrap();
            assert_eq!(tt.cores().len(), d);
            for (k, c) in tt.cores().iter().enumerate() {
                assert_eq!(c.ndim(), 4);
                assert_eq!((c.shape()[1], c.shape()[2]), (out_m[k], in_m[k]));
            }
            let e = tt.relative_error(&lin);
            assert!(e < 1e-5, "matrix {in_m:?} {out_m:?}: rel error {e}");
            let x = random_x(3, i, trial + 50);
            let diff = forward_diff(&tt, &lin, &x);
            assert!(diff < 1e-5, "matrix {in_m:?} {out_m:?}: {diff}");
        }
    }
}

#[test]
fn matrix_layout_core_is_the_permuted_weight() {
    // With one core, the TT-matrix core [1, o, i, 1] is the weight itself.
    let lin = linear(6, 4, 5);
    let tt = TTLayer::from_linear_with(TTLayout::Matrix, &[6], &[4], &lin, &Truncation::exact())
        .unwrap();
    let core = tt.cores()[0].clone().into_shape_with_order((4, 6)).unwrap();
    assert!(max_abs_diff(&core, &lin.weight().to_owned()) < 1e-6);
}

// ---- truncation ----

#[test]
fn one_bond_truncation_error_is_the_eckart_young_tail() {
    let lin = linear(48, 60, 21); // W [60, 48], modes [3, 4, 5] + [4, 12]
    let (out_modes, in_modes) = ([3usize, 4, 5], [4usize, 12]);
    let w = lin.weight().to_owned();
    let norm = frob(&w);
    // Bond j separates modes [0..=j] from the rest; its unfolding is W reshaped.
    let modes = [3usize, 4, 5, 4, 12];
    for j in 0..4 {
        let left: usize = modes[..=j].iter().product();
        let unfolding = w
            .clone()
            .into_shape_with_order((left, 2880 / left))
            .unwrap();
        let sv = singular_values(&unfolding);
        let r = sv.len() / 2;
        let tail = sv[r..].iter().map(|s| s * s).sum::<f64>().sqrt();
        let mut bonds = vec![10_000usize; 4];
        bonds[j] = r;
        let tt = TTLayer::from_linear(&in_modes, &out_modes, &lin, &bonds).unwrap();
        let err = frob_diff(&tt.to_dense().weight().to_owned(), &w);
        assert!(
            (err - tail).abs() < 1e-5 * norm,
            "bond {j}, rank {r}: error {err}, Eckart-Young tail {tail}"
        );
        assert!(tail > 0.1 * norm, "test needs a sizeable tail");
    }
}

#[test]
fn tt_svd_reports_the_spectrum_and_its_tail() {
    let lin = linear(20, 30, 22);
    let w = lin.weight().to_owned();
    let tt = tt_svd(w.view().into_dyn(), &[30, 20], &Truncation::bond_dims(&[7])).unwrap();
    let sv = singular_values(&w);
    assert_eq!(tt.singular_values[0].len(), 20);
    for (a, b) in tt.singular_values[0].iter().zip(&sv) {
        assert!((a - b).abs() < 1e-9 * sv[0], "{a} vs {b}");
    }
    let tail = sv[7..].iter().map(|s| s * s).sum::<f64>().sqrt();
    assert!((tt.discarded[0] - tail).abs() < 1e-9);
    assert!((tt.error_bound() - tail).abs() < 1e-9);
}

#[test]
fn tolerance_guarantee_holds() {
    let lin = linear(64, 96, 23);
    let w = lin.weight().to_owned();
    let norm = frob(&w);
    let mut last_params = usize::MAX;
    for eps in [0.0, 0.05, 0.2, 0.4, 0.6, 0.8] {
        let tt = TTLayer::from_linear_eps(&[4, 4, 4], &[4, 4, 6], &lin, eps).unwrap();
        let err = frob_diff(&tt.to_dense().weight().to_owned(), &w);
        assert!(
            err <= eps * norm + 1e-5 * norm,
            "eps {eps}: error {err} > {}",
            eps * norm
        );
        assert!(tt.num_params() <= last_params, "eps {eps}: ranks grew");
        last_params = tt.num_params();
    }
    // A large tolerance really truncates.
    let exact = TTLayer::from_linear_eps(&[4, 4, 4], &[4, 4, 6], &lin, 0.0).unwrap();
    assert!(last_params < exact.num_params() / 2);
}

#[test]
fn bond_dims_and_tolerance_together_take_the_smaller_rank() {
    let lin = linear(64, 96, 24);
    let (inm, outm) = ([4usize, 4, 4], [4usize, 4, 6]);
    let by_eps = TTLayer::from_linear_eps(&inm, &outm, &lin, 0.3).unwrap();
    let caps = vec![3usize; 5];
    let both = TTLayer::from_linear_with(
        TTLayout::OutputsThenInputs,
        &inm,
        &outm,
        &lin,
        &Truncation::bond_dims(&caps).with_eps(0.3),
    )
    .unwrap();
    for (k, (&b, &e)) in both.bond_dims().iter().zip(by_eps.bond_dims()).enumerate() {
        assert!(b <= 3 && b <= e, "bond {k}: {b} vs eps rank {e}");
    }
}

#[test]
fn error_never_grows_as_ranks_grow() {
    let lin = linear(64, 64, 25);
    for layout in [TTLayout::OutputsThenInputs, TTLayout::Matrix] {
        let nb = match layout {
            TTLayout::OutputsThenInputs => 5,
            TTLayout::Matrix => 2,
        };
        let mut last = f32::INFINITY;
        for r in 1..=64 {
            let tt = TTLayer::from_linear_with(
                layout,
                &[4, 4, 4],
                &[4, 4, 4],
                &lin,
                &Truncation::bond_dims(&vec![r; nb]),
            )
            .unwrap();
            let e = tt.relative_error(&lin);
            assert!(e <= last + 1e-6, "{layout:?} rank {r}: {e} > {last}");
            last = e;
        }
        assert!(last < 1e-5);
    }
}

#[test]
fn capped_bonds_are_reported_not_errors() {
    let lin = linear(768, 3072, 26);
    let (tt, report) = TTLayer::decompose(
        TTLayout::OutputsThenInputs,
        &[8, 8, 12],
        &[12, 16, 16],
        &lin,
        &Truncation::bond_dims(&[32; 5]),
    )
    .unwrap();
    // Bond 0 can hold at most o1 = 12, bond 4 at most i3 = 12.
    assert_eq!(tt.bond_dims(), &[12, 32, 32, 32, 12]);
    let capped: Vec<(usize, usize, usize)> = report
        .capped
        .iter()
        .map(|c| (c.bond, c.requested, c.limit))
        .collect();
    assert_eq!(capped, vec![(0, 32, 12), (4, 32, 12)]);
    let x = random_x(3, 768, 5);
    let want = x.dot(&tt.to_dense().weight().t()) + lin.bias();
    assert!(max_abs_diff(&tt.forward(x.view()).unwrap(), &want) < 1e-4);
}

// ---- forward against the dense matrix ----

#[test]
fn forward_equals_x_times_dense_transpose_plus_bias() {
    type Case = (TTLayout, Vec<usize>, Vec<usize>, Vec<usize>);
    let cases: Vec<Case> = vec![
        (
            TTLayout::OutputsThenInputs,
            vec![5, 10],
            vec![10, 20],
            vec![10, 20, 10],
        ),
        (
            TTLayout::OutputsThenInputs,
            vec![10, 20],
            vec![5, 10],
            vec![5, 27, 20],
        ),
        (
            TTLayout::OutputsThenInputs,
            vec![8, 8, 12],
            vec![12, 16, 16],
            vec![16; 5],
        ),
        (
            TTLayout::Matrix,
            vec![8, 8, 12],
            vec![12, 16, 16],
            vec![8, 8],
        ),
        (TTLayout::Matrix, vec![5, 10], vec![10, 20], vec![7]),
    ];
    for (layout, inm, outm, bonds) in cases {
        let (i, o) = (inm.iter().product(), outm.iter().product());
        let lin = linear(i, o, 30);
        let tt =
            TTLayer::from_linear_with(layout, &inm, &outm, &lin, &Truncation::bond_dims(&bonds))
                .unwrap();
        let dense = tt.to_dense();
        for rows in [1, 7, 29, 130] {
            let x = random_x(rows, i, rows as u64);
            let want = x.dot(&dense.weight().t()) + dense.bias();
            let got = tt.forward(x.view()).unwrap();
            let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let d = max_abs_diff(&got, &want);
            assert!(d < 2e-5 * scale, "{layout:?} {inm:?} rows {rows}: {d}");
        }
        assert_eq!(
            tt.forward(Array2::zeros((0, i)).view()).unwrap().dim(),
            (0, o)
        );
        assert!(tt.flops(29) > 0);
    }
}

// ---- backward ----

/// Checks every gradient of `tt` for `loss = <dy, forward(x)>` against independent truths.
fn check_backward(tt: &TTLayer, rows: usize, seed: u64) {
    let (i, o) = (tt.in_features(), tt.out_features());
    let x = random_x(rows, i, seed);
    let dy = random_x(rows, o, seed + 1);
    let (y, cache) = tt.forward_train(x.view()).unwrap();
    assert!(max_abs_diff(&y, &tt.forward(x.view()).unwrap()) < 1e-5);
    let mut grads = tt.zeros_like();
    let dx = tt.backward(&cache, dy.view(), &mut grads).unwrap();

    // dx = dy · W_dense.
    let w = tt.to_dense().weight().to_owned();
    let want_dx = dy.dot(&w);
    let scale = want_dx.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    assert!(max_abs_diff(&dx, &want_dx) < 1e-5 * scale, "dx");

    // db = column sums of dy.
    let db = dy.sum_axis(Axis(0));
    assert!(grads
        .bias()
        .iter()
        .zip(&db)
        .all(|(a, b)| (a - b).abs() < 1e-4));

    // Each core enters linearly: <dG_k, E> = <dy, x · W(G_k := E)ᵀ> for any E (no bias).
    let mut rng = StdRng::seed_from_u64(seed + 2);
    let spec = tt.spec().clone();
    for k in 0..tt.cores().len() {
        let e = ArrayD::from_shape_fn(IxDyn(tt.cores()[k].shape()), |_| {
            rng.gen_range(-1.0f32..1.0)
        });
        let mut cores = tt.cores().to_vec();
        cores[k] = e.clone();
        let probe = TTLayer::from_parts(spec.clone(), cores, Array1::zeros(o)).unwrap();
        let we = probe.to_dense().weight().mapv(|v| v as f64);
        let ye = x.mapv(|v| v as f64).dot(&we.t());
        let want: f64 = ye.iter().zip(dy.iter()).map(|(a, b)| a * *b as f64).sum();
        let got: f64 = grads.cores()[k]
            .iter()
            .zip(e.iter())
            .map(|(g, e)| *g as f64 * *e as f64)
            .sum();
        let mag: f64 = ye
            .iter()
            .zip(dy.iter())
            .map(|(a, b)| (a * *b as f64).abs())
            .sum();
        assert!(
            (got - want).abs() < 1e-4 * mag.max(1.0),
            "core {k}: <grad, E> = {got}, want {want}"
        );
    }

    // Backward accumulates.
    let mut twice = grads.clone();
    tt.backward(&cache, dy.view(), &mut twice).unwrap();
    for (a, b) in twice.cores().iter().zip(grads.cores()) {
        assert!(a
            .iter()
            .zip(b)
            .all(|(a, b)| (a - 2.0 * b).abs() <= 1e-5 * b.abs().max(1.0)));
    }
}

#[test]
fn backward_matches_dense_truths_seed_layout() {
    let tt = seed_layout(40, &[5, 10], &[10, 20], &[10, 27, 10]);
    check_backward(&tt, 29, 1);
    check_backward(&tt, 1, 2);
    let tt = seed_layout(41, &[10, 20], &[5, 10], &[5, 20, 20]);
    check_backward(&tt, 13, 3);
    let tt = seed_layout(42, &[2, 3, 4], &[5, 6], &[5, 4, 6, 4]);
    check_backward(&tt, 6, 4);
}

#[test]
fn backward_matches_dense_truths_matrix_layout() {
    let tt = matrix_layout(43, &[4, 4, 6], &[5, 4, 6], &Truncation::bond_dims(&[6, 9]));
    check_backward(&tt, 11, 5);
    check_backward(&tt, 1, 6);
}

#[test]
fn backward_checked_by_central_differences() {
    // A small layer, so f32 central differences are accurate enough to catch a wrong gradient.
    let lin = linear(6, 4, 44);
    let tt = TTLayer::from_linear(&[2, 3], &[2, 2], &lin, &[2, 3, 3]).unwrap();
    let x = random_x(3, 6, 7);
    let dy = random_x(3, 4, 8);
    let (_, cache) = tt.forward_train(x.view()).unwrap();
    let mut grads = tt.zeros_like();
    tt.backward(&cache, dy.view(), &mut grads).unwrap();
    let loss = |t: &TTLayer| -> f64 {
        let y = t.forward(x.view()).unwrap();
        y.iter()
            .zip(dy.iter())
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum()
    };
    let mut analytic = Vec::new();
    grads.visit("", &mut |_, g| analytic.extend(g.iter().copied()));
    // The loss is linear in each core entry (and in the bias), so the central difference is
    // exact up to rounding for any step: a large one keeps the f32 rounding of the loss (about
    // 1e-7 of its size) small against the slope.
    let h = 0.5f32;
    for (idx, &a) in analytic.iter().enumerate() {
        let mut plus = tt.clone();
        let mut minus = tt.clone();
        let bump = |t: &mut TTLayer, delta: f32| {
            let mut seen = 0;
            t.visit_mut("", &mut |_, mut v| {
                for x in v.iter_mut() {
                    if seen == idx {
                        *x += delta;
                    }
                    seen += 1;
                }
            });
        };
        bump(&mut plus, h);
        bump(&mut minus, -h);
        let fd = (loss(&plus) - loss(&minus)) / (2.0 * h as f64);
        let a = a as f64;
        assert!(
            (fd - a).abs() < 2e-5 * (1.0 + a.abs()),
            "param {idx}: fd {fd}, analytic {a}"
        );
    }
}

/// For every candidate plan, `forward_train` + `backward` give the same output, input gradient
/// and core gradients as the unmerged plan (whose gradients the tests above check against
/// independent truths).
fn check_every_plan_backward(tt: &TTLayer, rows: usize, seed: u64) {
    let (i, o) = (tt.in_features(), tt.out_features());
    let x = random_x(rows, i, seed);
    let dy = random_x(rows, o, seed + 1);
    let plans = tt.candidate_plans(rows, true);
    let unmerged = plans
        .iter()
        .find(|p| p.groups.iter().all(|&(s, e)| e - s == 1))
        .expect("the unmerged plan is a candidate");
    let (want_y, cache) = tt.forward_train_with_plan(x.view(), unmerged).unwrap();
    let mut want = tt.zeros_like();
    let want_dx = tt.backward(&cache, dy.view(), &mut want).unwrap();
    let scale = |a: &[f32]| a.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    assert!(plans.len() > 1);
    for plan in &plans {
        let (y, cache) = tt.forward_train_with_plan(x.view(), plan).unwrap();
        let mut got = tt.zeros_like();
        let dx = tt.backward(&cache, dy.view(), &mut got).unwrap();
        let ys = scale(want_y.as_slice().unwrap());
        assert!(max_abs_diff(&y, &want_y) < 1e-5 * ys, "{plan:?}: y");
        let dxs = scale(want_dx.as_slice().unwrap());
        assert!(max_abs_diff(&dx, &want_dx) < 1e-5 * dxs, "{plan:?}: dx");
        for (k, (g, w)) in got.cores().iter().zip(want.cores()).enumerate() {
            let s = scale(w.as_slice().unwrap());
            let err = g
                .iter()
                .zip(w)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err < 1e-5 * s,
                "{plan:?}: core {k} gradient off by {err} (scale {s})"
            );
        }
        assert_eq!(got.bias(), want.bias());
    }
}

#[test]
fn merged_plan_backward_equals_unmerged_backward_for_every_plan() {
    let tt = seed_layout(60, &[5, 10], &[10, 20], &[10, 27, 10]);
    check_every_plan_backward(&tt, 29, 1);
    check_every_plan_backward(&tt, 1, 2);
    let tt = seed_layout(61, &[2, 3, 4], &[5, 6], &[5, 4, 6, 4]);
    check_every_plan_backward(&tt, 7, 3);
    let tt = matrix_layout(62, &[4, 4, 6], &[5, 4, 6], &Truncation::bond_dims(&[6, 9]));
    check_every_plan_backward(&tt, 11, 4);
    // Modes of 1 (size-1 axes in the merged blocks).
    let tt = matrix_layout(63, &[1, 6, 2], &[4, 1, 3], &Truncation::exact());
    check_every_plan_backward(&tt, 5, 5);
}

#[test]
fn training_follows_parameter_updates_under_every_plan() {
    // Merged blocks are rebuilt after `visit_mut`, so a second training step sees the update.
    let lin = linear(50, 200, 64);
    let mut tt = TTLayer::from_linear(&[5, 10], &[10, 20], &lin, &[10, 20, 10]).unwrap();
    let x = random_x(29, 50, 9);
    let plans = tt.candidate_plans(29, true);
    for plan in &plans {
        let _ = tt.forward_train_with_plan(x.view(), plan).unwrap();
    }
    tt.visit_mut("", &mut |_, mut t| t.mapv_inplace(|v| v * 1.3 - 0.01));
    let want = tt.to_dense().forward(x.view()).unwrap();
    for plan in &plans {
        let (y, _) = tt.forward_train_with_plan(x.view(), plan).unwrap();
        assert!(max_abs_diff(&y, &want) < 1e-4, "{plan:?}");
        let y = tt.forward_with_plan(x.view(), plan).unwrap();
        assert!(max_abs_diff(&y, &want) < 1e-4, "{plan:?}");
    }
}

#[test]
fn explicit_plans_are_checked() {
    let lin = linear(50, 200, 65);
    let tt = TTLayer::from_linear(&[5, 10], &[10, 20], &lin, &[10, 20, 10]).unwrap();
    let x = random_x(3, 50, 1);
    let mut plan = tt.plan(3);
    for bad in [
        vec![(0, 2), (3, 4)],
        vec![(0, 2), (2, 5)],
        vec![(0, 4), (4, 4)],
        vec![(0, 3)],
        vec![],
    ] {
        plan.groups = bad;
        let e = tt.forward_with_plan(x.view(), &plan).unwrap_err();
        assert!(is_invalid_arg(&e, "plan"), "{e}");
        common::assert_err_kind(
            tt.forward_train_with_plan(x.view(), &plan),
            "InvalidArgument(plan)",
        );
    }
    plan.groups = vec![(0, 4)];
    let x_bad = random_x(3, 49, 1);
    assert!(matches!(
        tt.forward_with_plan(x_bad.view(), &plan),
        Err(Error::Shape { .. })
    ));
}

// ---- parts, spec, parameters ----

#[test]
fn parameters_names_and_from_parts_roundtrip() {
    let lin = linear(50, 200, 50);
    let tt = TTLayer::from_linear(&[5, 10], &[10, 20], &lin, &[10, 30, 10]).unwrap();
    let mut names = Vec::new();
    tt.visit("blocks.0.ffn.0", &mut |n, _| names.push(n));
    assert_eq!(
        names,
        vec![
            "blocks.0.ffn.0.cores.0",
            "blocks.0.ffn.0.cores.1",
            "blocks.0.ffn.0.cores.2",
            "blocks.0.ffn.0.cores.3",
            "blocks.0.ffn.0.bias"
        ]
    );
    let json = serde_json::to_string(tt.spec()).unwrap();
    let spec: TTSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(&spec, tt.spec());
    let back = TTLayer::from_parts(spec, tt.cores().to_vec(), tt.bias().to_owned()).unwrap();
    let x = random_x(4, 50, 9);
    assert_eq!(
        back.forward(x.view()).unwrap(),
        tt.forward(x.view()).unwrap()
    );
}

#[test]
fn from_parts_rejects_bad_parts() {
    let lin = linear(50, 200, 51);
    let tt = TTLayer::from_linear(&[5, 10], &[10, 20], &lin, &[10, 30, 10]).unwrap();
    let spec = tt.spec().clone();
    let cores = tt.cores().to_vec();
    let bias = tt.bias().to_owned();

    let mut c = cores.clone();
    c.pop();
    common::assert_err_kind(
        TTLayer::from_parts(spec.clone(), c, bias.clone()),
        "InvalidArgument(cores)",
    );

    let mut c = cores.clone();
    c[1] = ArrayD::zeros(IxDyn(&[10, 20, 29]));
    let e = TTLayer::from_parts(spec.clone(), c, bias.clone()).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");

    let mut c = cores.clone();
    c[2][[0, 0, 0]] = f32::NAN;
    common::assert_err_kind(
        TTLayer::from_parts(spec.clone(), c, bias.clone()),
        "InvalidArgument(cores.2)",
    );

    let e = TTLayer::from_parts(spec.clone(), cores.clone(), Array1::zeros(199)).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");

    let mut s = spec.clone();
    s.bond_dims = vec![10, 30];
    assert!(is_invalid_arg(
        &TTLayer::from_parts(s, cores.clone(), bias.clone()).unwrap_err(),
        "bond_dims"
    ));

    let mut s = spec.clone();
    s.in_modes = vec![];
    assert!(is_invalid_arg(
        &TTLayer::from_parts(s, cores.clone(), bias.clone()).unwrap_err(),
        "in_modes"
    ));

    let mut s = spec;
    s.layout = TTLayout::Matrix;
    common::assert_err_kind(
        TTLayer::from_parts(s, cores, bias),
        "InvalidArgument(bond_dims)",
    );
}

// ---- bad input ----

#[test]
fn each_bad_input_gives_its_error() {
    let lin = linear(50, 200, 60);
    let f =
        |i: &[usize], o: &[usize], b: &[usize]| TTLayer::from_linear(i, o, &lin, b).unwrap_err();

    assert!(is_invalid_arg(
        &f(&[5, 10], &[10, 20], &[10, 0, 10]),
        "bond_dims"
    ));
    assert!(is_invalid_arg(
        &f(&[5, 10], &[10, 20], &[10, 10]),
        "bond_dims"
    ));
    assert!(is_invalid_arg(&f(&[5, 11], &[10, 20], &[]), "in_modes"));
    assert!(is_invalid_arg(&f(&[5, 10], &[10, 21], &[]), "out_modes"));
    assert!(is_invalid_arg(&f(&[], &[10, 20], &[]), "in_modes"));
    assert!(is_invalid_arg(&f(&[5, 10], &[], &[]), "out_modes"));
    assert!(is_invalid_arg(&f(&[5, 0, 10], &[10, 20], &[]), "in_modes"));

    let e = TTLayer::from_linear_eps(&[5, 10], &[10, 20], &lin, 1.5).unwrap_err();
    assert!(is_invalid_arg(&e, "eps"));
    let e = TTLayer::from_linear_eps(&[5, 10], &[10, 20], &lin, f64::NAN).unwrap_err();
    assert!(is_invalid_arg(&e, "eps"));
    let e = TTLayer::from_linear_eps(&[5, 10], &[10, 20], &lin, -0.1).unwrap_err();
    assert!(is_invalid_arg(&e, "eps"));

    let e = TTLayer::from_linear_with(
        TTLayout::Matrix,
        &[5, 10],
        &[200],
        &lin,
        &Truncation::exact(),
    )
    .unwrap_err();
    assert!(is_invalid_arg(&e, "in_modes"));

    // A non-finite weight (Linear::new refuses one; an optimiser step could still make one).
    let mut bad = lin.clone();
    bad.weight_bias_mut().0[[3, 4]] = f32::NAN;
    let e = TTLayer::from_linear(&[5, 10], &[10, 20], &bad, &[]).unwrap_err();
    assert!(is_invalid_arg(&e, "tensor"), "{e}");
    let mut w = lin.weight().to_owned();
    w[[3, 4]] = f32::INFINITY;
    let e = tt_svd(w.view().into_dyn(), &[10, 20, 5, 10], &Truncation::exact()).unwrap_err();
    assert!(is_invalid_arg(&e, "tensor"));
    let e = tt_svd(
        lin.weight().into_dyn(),
        &[10, 20, 5, 9],
        &Truncation::exact(),
    )
    .unwrap_err();
    assert!(is_invalid_arg(&e, "modes"));

    // Forward with the wrong width.
    let tt = TTLayer::from_linear(&[5, 10], &[10, 20], &lin, &[]).unwrap();
    let e = tt.forward(Array2::zeros((3, 49)).view()).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }));
    assert!(tt.relative_error(&linear(49, 200, 1)).is_nan());
}

// ---- plan timings (not a test of behaviour: a measurement tool, run by hand) ----

/// Median wall time (µs) of `f`, over 15 batches of enough calls to last ~1 ms.
fn median_us(mut f: impl FnMut()) -> f64 {
    let t = std::time::Instant::now();
    f();
    let once = t.elapsed().as_secs_f64();
    let reps = ((1e-3 / once.max(1e-7)) as usize).clamp(1, 10_000);
    let mut times: Vec<f64> = (0..15)
        .map(|_| {
            let t = std::time::Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / reps as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[7]
}

/// Prints, for every benched shape, every candidate plan's modelled and measured time, for
/// the forward and for a training step (`forward_train` + `backward`), marking the plan the
/// cost model picks. Run with
/// `cargo test --release --test tt plan_timings -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement tool, not a test; prints timings"]
fn plan_timings() {
    succulm::tt::blas::set_num_threads(1);
    /// in_modes, out_modes, bond dims, row counts.
    type Shape = (&'static [usize], &'static [usize], Vec<usize>, Vec<usize>);
    let shapes: Vec<Shape> = vec![
        (&[5, 10], &[10, 20], vec![10, 50, 10], vec![1, 29, 928]),
        (&[5, 10], &[10, 20], vec![10, 20, 10], vec![1, 29, 928]),
        (&[10, 20], &[5, 10], vec![5, 50, 20], vec![1, 29, 928]),
        (&[10, 20], &[5, 10], vec![5, 20, 20], vec![1, 29, 928]),
        (&[8, 8, 12], &[12, 16, 16], vec![8; 5], vec![1, 128]),
        (&[8, 8, 12], &[12, 16, 16], vec![16; 5], vec![1, 128]),
        (&[8, 8, 12], &[12, 16, 16], vec![32; 5], vec![1, 128]),
    ];
    let only = std::env::var("TT_PLAN_SHAPE").ok();
    for (in_modes, out_modes, bonds, rows_list) in shapes {
        let (i, o) = (in_modes.iter().product(), out_modes.iter().product());
        let name = format!("{i}->{o} bonds {bonds:?}");
        if only.as_ref().is_some_and(|s| !name.contains(s.as_str())) {
            continue;
        }
        let mut tt = TTLayer::from_linear(in_modes, out_modes, &linear(i, o, 1), &bonds).unwrap();
        for rows in rows_list {
            let x = random_x(rows, i, 2);
            let dy = random_x(rows, o, 3);
            for training in [false, true] {
                let chosen = if training {
                    tt.training_plan(rows)
                } else {
                    tt.plan(rows)
                };
                println!(
                    "{name}, {rows} rows, {}:",
                    if training { "training step" } else { "forward" }
                );
                for plan in tt.candidate_plans(rows, training) {
                    let us = if training {
                        let mut grads = tt.zeros_like();
                        median_us(|| {
                            // As in training: the update drops the merged blocks.
                            tt.visit_mut("", &mut |_, _| {});
                            let (_, c) = tt.forward_train_with_plan(x.view(), &plan).unwrap();
                            tt.backward(&c, dy.view(), &mut grads).unwrap();
                        })
                    } else {
                        median_us(|| {
                            let _ = tt.forward_with_plan(x.view(), &plan).unwrap();
                        })
                    };
                    println!(
                        "  {} {:<36} model {:9.1} µs  measured {:9.1} µs  {:7.2} MFLOP",
                        if plan.groups == chosen.groups {
                            "*"
                        } else {
                            " "
                        },
                        format!("{:?}", plan.groups),
                        plan.modelled_ns / 1e3,
                        us,
                        plan.flops as f64 / 1e6
                    );
                }
            }
        }
    }
}

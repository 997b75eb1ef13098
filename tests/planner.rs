//! The measured TT planner (`succulm::tt::Planner::Measure`). In its own test binary: the
//! planner is process-wide, and the other TT tests compare bits under the cost model's plans.

use ndarray::{Array2, ArrayViewMutD};
use rand::{rngs::StdRng, Rng, SeedableRng};
use succulm::tt::{clear_measurements, planner, set_planner, Planner};
use succulm::{Linear, Parameters, TTLayer};

/// The planner is process-wide: the tests take turns.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.gen_range(-1.0..1.0))
}

/// `x · Wᵀ + b` in f64 from the layer's own dense matrix.
fn reference(tt: &TTLayer, x: &Array2<f32>) -> Array2<f64> {
    let d = tt.to_dense();
    let (w, b) = (d.weight().mapv(f64::from), d.bias().mapv(f64::from));
    x.mapv(f64::from).dot(&w.t()) + &b
}

fn max_abs(a: &Array2<f32>, b: &Array2<f64>) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y).abs())
        .fold(0.0, f64::max)
}

/// The cases: the seed's 50→200 and 200→50 at two bonds, a 4-core TT-matrix-sized chain, at
/// one, a few and many rows.
fn layers() -> Vec<(TTLayer, Vec<usize>)> {
    let mut out = Vec::new();
    let lin = Linear::init(50, 200, &mut StdRng::seed_from_u64(1)).unwrap();
    for m in [50, 20] {
        out.push((
            TTLayer::from_linear(&[5, 10], &[10, 20], &lin, &[10, m, 10]).unwrap(),
            vec![1, 29, 300],
        ));
    }
    let lin = Linear::init(200, 50, &mut StdRng::seed_from_u64(2)).unwrap();
    out.push((
        TTLayer::from_linear(&[10, 20], &[5, 10], &lin, &[5, 27, 20]).unwrap(),
        vec![1, 64],
    ));
    let lin = Linear::init(96, 144, &mut StdRng::seed_from_u64(3)).unwrap();
    out.push((
        TTLayer::from_linear(&[4, 4, 6], &[4, 6, 6], &lin, &[4, 8, 8, 8, 6]).unwrap(),
        vec![2, 128],
    ));
    out
}

#[test]
fn measured_plans_are_valid_and_compute_the_same_function() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    set_planner(Planner::Measure);
    assert_eq!(planner(), Planner::Measure);
    clear_measurements();
    for (tt, rows) in layers() {
        for r in rows {
            let x = random(r, tt.in_features(), r as u64);
            let y = tt.forward(x.view()).unwrap();
            let chosen = tt.plan(r);
            let candidates = tt.candidate_plans(r, false);
            // A valid plan: one of the candidates (groups partition the cores in order).
            assert!(
                candidates.iter().any(|c| c.groups == chosen.groups),
                "measured plan {:?} is not a candidate",
                chosen.groups
            );
            let want = reference(&tt, &x);
            let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let tol = 2e-5 * scale * (tt.in_features() as f64).sqrt();
            assert!(max_abs(&y, &want) < tol, "measured plan vs f64 reference");
            // Every other plan computes the same function (within float rounding).
            for c in &candidates {
                let yc = tt.forward_with_plan(x.view(), c).unwrap();
                let d = y
                    .iter()
                    .zip(&yc)
                    .map(|(a, b)| (a - b).abs() as f64)
                    .fold(0.0, f64::max);
                assert!(d < 2.0 * tol, "plan {:?} differs by {d}", c.groups);
            }
            // The winner is cached per shape and row count: a second layer of the same shape
            // (other values) takes the same plan without measuring.
            assert_eq!(tt.plan(r).groups, chosen.groups);
        }
    }
    set_planner(Planner::Model);
}

#[test]
fn merged_blocks_follow_the_cores_under_the_measured_planner() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    set_planner(Planner::Measure);
    let lin = Linear::init(50, 200, &mut StdRng::seed_from_u64(9)).unwrap();
    // Many rows: every plan the shortlist can pick at 928 rows merges something, and the
    // dense matrix is on the shortlist.
    let mut tt = TTLayer::from_linear(&[5, 10], &[10, 20], &lin, &[10, 30, 10]).unwrap();
    let x = random(928, 50, 4);
    let before = tt.forward(x.view()).unwrap();
    assert!(max_abs(&before, &reference(&tt, &x)) < 1e-3);
    // Change every core's values (same shapes): the plan stays, the merged blocks must not.
    tt.visit_mut("", &mut |_, mut v: ArrayViewMutD<'_, f32>| {
        v.mapv_inplace(|a| a * 1.5 + 0.01)
    });
    let after = tt.forward(x.view()).unwrap();
    let want = reference(&tt, &x);
    assert!(
        max_abs(&after, &want) < 1e-3 * want.iter().fold(1.0f64, |m, v| m.max(v.abs())),
        "stale merged blocks after the cores changed"
    );
    assert!(
        max_abs(&before, &want) > 1e-2,
        "the mutation changed the function"
    );
    set_planner(Planner::Model);
}

#[test]
fn pinned_plans_run_exactly_as_forward_with_plan_and_follow_the_cores() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    for planner in [Planner::Model, Planner::Measure] {
        set_planner(planner);
        for (mut tt, rows_list) in layers() {
            for rows in rows_list {
                let x = random(rows, tt.in_features(), 11);
                let model_choice = tt.plan(rows);
                let untouched = tt.clone();
                for plan in tt.candidate_plans(rows, false) {
                    tt.pin_plan(rows, Some(&plan)).unwrap();
                    assert_eq!(tt.plan(rows).groups, plan.groups, "{planner:?} rows {rows}");
                    // The same schedule, so the same sums in the same order: equal bits.
                    let pinned = tt.forward(x.view()).unwrap();
                    let explicit = tt.forward_with_plan(x.view(), &plan).unwrap();
                    assert_eq!(pinned, explicit, "{:?} at {rows} rows", plan.groups);
                    // Another row count is not pinned.
                    assert_eq!(tt.plan(rows + 1).groups, untouched.plan(rows + 1).groups);
                }
                tt.pin_plan(rows, None).unwrap();
                assert_eq!(tt.plan(rows).groups, model_choice.groups, "unpinned");
            }
        }
        set_planner(Planner::Model);
    }
    // A pin survives a change of the cores' values; the blocks it runs on do not.
    let lin = Linear::init(50, 200, &mut StdRng::seed_from_u64(5)).unwrap();
    let mut tt = TTLayer::from_linear(&[5, 10], &[10, 20], &lin, &[10, 30, 10]).unwrap();
    let x = random(29, 50, 6);
    let dense = tt
        .candidate_plans(29, false)
        .into_iter()
        .find(|p| p.groups == vec![(0, 4)])
        .expect("the dense matrix is a candidate");
    tt.pin_plan(29, Some(&dense)).unwrap();
    let before = tt.forward(x.view()).unwrap();
    tt.visit_mut("", &mut |_, mut v: ArrayViewMutD<'_, f32>| {
        v.mapv_inplace(|a| a * 1.5 + 0.01)
    });
    assert_eq!(tt.plan(29).groups, dense.groups, "the pin is kept");
    let after = tt.forward(x.view()).unwrap();
    let want = reference(&tt, &x);
    assert!(max_abs(&after, &want) < 1e-3 * want.iter().fold(1.0f64, |m, v| m.max(v.abs())));
    assert!(
        max_abs(&before, &want) > 1e-2,
        "the mutation changed the function"
    );
    // A plan whose groups do not partition the cores is refused, naming the plan.
    let bad = succulm::tt::TTPlan {
        groups: vec![(0, 2), (3, 4)],
        flops: 0,
        modelled_ns: 0.0,
    };
    match tt.pin_plan(29, Some(&bad)) {
        Err(succulm::Error::InvalidArgument { name, .. }) => assert_eq!(name, "plan"),
        other => panic!("expected an invalid-argument error, got {other:?}"),
    }
    assert_eq!(
        tt.plan(29).groups,
        dense.groups,
        "a refused pin changes nothing"
    );
}

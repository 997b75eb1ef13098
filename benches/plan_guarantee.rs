//! The measured TT planner's guarantee, timed the honest way on a noisy machine: for every
//! bench shape (layer, bond, row count), the measured planner's forward is never more than
//! 10% slower than the cheaper of the dense `Linear` and the best other candidate plan.
//!
//! Every contender runs through the same `forward` path: the measured planner's choice and
//! each other candidate are pinned (`TTLayer::pin_plan`) on their own copy of the layer, so
//! they differ only in the plan. The contenders of a shape are timed **in turn** (A B C … A B
//! C …, `PLAN_GUARANTEE_ROUNDS` rounds, default 31, each a batch of ≈ 1 ms of calls) and each
//! one's figure is its median per-call time over the rounds: a slow spell of a shared machine
//! then slows every contender alike, instead of whichever criterion happened to be timing.
//! A twin of the measured choice (the same plan on another copy of the layer) is timed too:
//! the `twin` column (measured / twin) shows how far two identical contenders differ on this
//! machine, the floor below which no comparison here means anything.
//! One thread. Prints a table; exits 1 if a shape breaks the guarantee.
//!
//! `cargo bench --bench plan_guarantee`

use std::hint::black_box;
use std::time::Instant;

use succulm::tt::{clear_measurements, set_planner, Planner, TTPlan};
use succulm::TTLayer;

#[path = "shared/tt_cases.rs"]
mod tt_cases;
use tt_cases::{cases, random_x};

/// The guarantee: measured ≤ LIMIT × min(dense, best other plan).
const LIMIT: f64 = 1.10;

fn name(p: &TTPlan) -> String {
    let g: Vec<String> = p.groups.iter().map(|(s, e)| format!("{s}-{e}")).collect();
    g.join("_")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no other arguments.
    succulm::tt::gemm::set_threads(1);
    succulm::tt::blas::set_num_threads(1);
    let rounds: usize = std::env::var("PLAN_GUARANTEE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r| r >= 3)
        .unwrap_or(31);
    println!(
        "{:<10} {:>4} {:>5} {:>10} {:>10} {:>24} {:>10} {:>6} {:>6}  measured plan",
        "case",
        "bond",
        "rows",
        "measured",
        "dense",
        "best other plan (of n)",
        "best",
        "ratio",
        "twin"
    );
    let mut worst: f64 = 0.0;
    let mut worst_floor: f64 = 0.0;
    let mut shapes = 0;
    for case in cases() {
        let (i, _, lin) = case.dense();
        for &rows in &case.rows {
            let x = random_x(rows, i, 7);
            for (bonds, label) in case.bonds.iter().zip(&case.labels) {
                // The measured planner's choice, from a fresh measurement.
                set_planner(Planner::Measure);
                clear_measurements();
                let tt =
                    TTLayer::from_linear(&case.in_modes, &case.out_modes, &lin, bonds).unwrap();
                drop(tt.forward(x.view()).unwrap());
                let chosen = tt.plan(rows);
                set_planner(Planner::Model);
                let pinned = |p: &TTPlan| {
                    let mut t = tt.clone();
                    t.pin_plan(rows, Some(p)).unwrap();
                    drop(t.forward(x.view()).unwrap()); // builds its blocks
                    t
                };
                let measured = pinned(&chosen);
                // The same plan on another copy: how far two identical contenders differ here
                // (the noise floor of the comparison on this machine).
                let twin = pinned(&chosen);
                let others: Vec<(TTPlan, TTLayer)> = tt
                    .candidate_plans(rows, false)
                    .into_iter()
                    .filter(|p| p.groups != chosen.groups)
                    .map(|p| {
                        let t = pinned(&p);
                        (p, t)
                    })
                    .collect();
                // Contender 0: the measured choice; 1: its twin; 2: the dense Linear; then the
                // others.
                let mut run: Vec<Box<dyn Fn()>> = vec![
                    Box::new(|| drop(black_box(measured.forward(black_box(x.view())).unwrap()))),
                    Box::new(|| drop(black_box(twin.forward(black_box(x.view())).unwrap()))),
                    Box::new(|| drop(black_box(lin.forward(black_box(x.view())).unwrap()))),
                ];
                let xv = x.view();
                for (_, t) in &others {
                    run.push(Box::new(move || {
                        drop(black_box(t.forward(black_box(xv)).unwrap()))
                    }));
                }
                // Calls per batch: ≈ 1 ms of the contender's work (warmed up first).
                let batch: Vec<usize> = run
                    .iter()
                    .map(|f| {
                        f();
                        let t = Instant::now();
                        f();
                        let once = t.elapsed().as_secs_f64().max(1e-8);
                        ((1e-3 / once) as usize).clamp(1, 100_000)
                    })
                    .collect();
                let mut times = vec![Vec::with_capacity(rounds); run.len()];
                for _ in 0..rounds {
                    for ((f, &n), ts) in run.iter().zip(&batch).zip(times.iter_mut()) {
                        let t = Instant::now();
                        for _ in 0..n {
                            f();
                        }
                        ts.push(t.elapsed().as_secs_f64() / n as f64);
                    }
                }
                let med: Vec<f64> = times.into_iter().map(median).collect();
                let (m, twin_t, dense) = (med[0], med[1], med[2]);
                let (best_i, best) = med[3..]
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(j, &t)| (Some(j), t))
                    .unwrap_or((None, f64::INFINITY));
                let ratio = m / dense.min(best);
                let floor = (m / twin_t).max(twin_t / m);
                worst = worst.max(ratio);
                worst_floor = worst_floor.max(floor);
                shapes += 1;
                let best_name = best_i.map_or("-".to_string(), |j| name(&others[j].0));
                println!(
                    "{:<10} {:>4} {:>5} {:>9.2}µ {:>9.2}µ {:>24} {:>9.2}µ {:>6.3} {:>6.3}  {}",
                    case.name,
                    label,
                    rows,
                    m * 1e6,
                    dense * 1e6,
                    format!("{best_name} ({})", others.len() + 1),
                    best * 1e6,
                    ratio,
                    m / twin_t,
                    name(&chosen)
                );
            }
        }
    }
    println!(
        "worst ratio {worst:.3} over {shapes} shapes (guarantee: ≤ {LIMIT:.2}); \
         {rounds} interleaved rounds; two identical contenders differed by up to {worst_floor:.3}×"
    );
    if worst > LIMIT {
        std::process::exit(1);
    }
}

//! The sweep end to end on a toy model, its outputs (CSV, JSON, table, SVG) and the verdicts;
//! the method axis (planted method effects) and the parameter-budget runner.

mod planted;
mod toy;

use ndarray::Array2;
use planted::reference;
use succulm::study::eval::{CellMetrics, Evaluator, SampledMetrics, TeacherForcedMetrics};
use succulm::study::report::verdict::{verdicts, Outcome};
use succulm::study::report::{self, recovery, Metric};
use succulm::study::sweep::{
    block_label, default_block_sets, parse_block_sets, parse_bonds, run_budget, run_grid,
    BudgetArms, CompressionInfo, Grid, HealKind, Method, ProjectionError, SweepReport,
};
use succulm::Error;
use toy::{id, random_matrix, Bigram, V};

fn damage(block: usize, inverted: bool) -> Array2<f32> {
    let role = if inverted { 3 - block } else { block };
    match role {
        // Block "0": scrambles everything (breaks structure).
        0 => random_matrix(V, V, 77, 12.0),
        // Block "3": pulls mass onto the hidden word.
        3 => {
            let mut d = Array2::zeros((V, V));
            d.column_mut(id("sophia") as usize).fill(5.0);
            d
        }
        // Middle blocks: mild noise.
        k => random_matrix(V, V, 10 + k as u64, 0.5),
    }
}

fn run(inverted: bool, heal: bool) -> SweepReport {
    run_with(inverted, heal, 2)
}

fn run_with(inverted: bool, heal: bool, threads: usize) -> SweepReport {
    let reference = reference();
    let ev = evaluator(&reference);
    let compress = |_: Method, blocks: &[usize], bond: usize| {
        let mut m = reference.clone();
        let s = (50.0 - bond as f32).max(0.0) / 50.0;
        for &k in blocks {
            m.table.scaled_add(s, &damage(k, inverted));
        }
        Ok((m, toy_info(blocks, bond, s, f64::NAN)))
    };
    let heal = heal.then_some(HealKind::CrossEntropy);
    let (report, lines) = toy_grid(&ev, &reference, &[Method::Weight], threads, heal, compress);
    assert_eq!(lines.len(), 1 + 5 * 3);
    assert!(lines[1].starts_with("[1/15] blocks 0, bond 50"));
    report
}

/// What the toy compression reports: `100` dense and `bond` TT parameters per block, and each
/// projection's weight error `s` (and output error, NaN when not computed).
fn toy_info(blocks: &[usize], bond: usize, s: f32, output_error: f64) -> CompressionInfo {
    CompressionInfo {
        ffn_params_dense: 100 * blocks.len(),
        ffn_params_tt: bond * blocks.len(),
        projections: blocks
            .iter()
            .flat_map(|&k| {
                ["ffn.0", "ffn.2"].map(|p| ProjectionError {
                    output_error,
                    ..ProjectionError::new(k, p, s as f64)
                })
            })
            .collect(),
    }
}

/// [`run_grid`] of the default block sets at bonds 50, 30, 10 with `compress`, healing (when
/// asked) by restoring the reference; returns the report and the progress lines in cell order.
fn toy_grid<C>(
    ev: &Evaluator<'_, Bigram>,
    reference: &Bigram,
    methods: &[Method],
    threads: usize,
    heal: Option<HealKind>,
    compress: C,
) -> (SweepReport, Vec<String>)
where
    C: Fn(Method, &[usize], usize) -> succulm::Result<(Bigram, CompressionInfo)> + Sync,
{
    let restore = |m: &mut Bigram| {
        m.table.assign(&reference.table);
        Ok(())
    };
    let lines = std::sync::Mutex::new(Vec::new());
    let report = run_grid(
        ev,
        &Grid {
            n_blocks: 4,
            methods,
            block_sets: &default_block_sets(4),
            bonds: &[50, 30, 10],
            threads,
        },
        compress,
        heal.map(|kind| (kind, restore)),
        &|l: &str| lines.lock().unwrap().push(l.to_string()),
    )
    .unwrap();
    let mut lines = lines.into_inner().unwrap();
    lines[1..].sort_by_key(|l| {
        l.trim_start_matches('[')
            .split('/')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
    });
    (report, lines)
}

#[test]
fn the_sweep_runs_end_to_end_and_finds_the_planted_effects() {
    let r = run(false, true);
    assert_eq!(r.cells.len(), 15);
    assert_eq!(r.block_sets.last().unwrap(), &vec![0, 1, 2, 3]);
    // Bond 50: no damage, every metric equals the reference's.
    for set in &r.block_sets {
        let c = r.cell(set, 50).unwrap();
        assert!(c.metrics.teacher_forced.kl.abs() < 1e-12);
        assert_eq!(
            format!("{:?}", c.metrics.sampled),
            format!("{:?}", r.reference.sampled),
            "common random numbers"
        );
    }
    // Block 3 at bond 10 pulls mass onto sophia; block 1 does not.
    let b3 = r.cell(&[3], 10).unwrap();
    assert!(b3.metrics.teacher_forced.hidden_mass > 0.1);
    assert!(r.cell(&[1], 10).unwrap().metrics.teacher_forced.hidden_mass < 0.01);
    assert!(b3.metrics.sampled.hidden_answer_rate > 0.5);
    // Two fact probes × 30 samples; no in-training seed probe.
    assert_eq!(b3.metrics.sampled.fact_answers, 60);
    assert_eq!(b3.metrics.sampled.seed_answers, 0);
    assert!(
        r.cell(&[1], 10).unwrap().metrics.sampled.hidden_answer_rate < 0.15,
        "near the dense 0.06"
    );
    // Healing that restores the reference recovers everything.
    for c in &r.cells {
        let h = c.healed.as_ref().unwrap();
        assert!(h.teacher_forced.kl.abs() < 1e-12);
        assert_eq!(
            format!("{:?}", h.sampled),
            format!("{:?}", r.reference.sampled)
        );
    }
    let c = r.cell(&[0], 10).unwrap();
    let rec = recovery(
        Metric::Loss.of_reference(&r),
        Metric::Loss.of_cell(c, false),
        Metric::Loss.of_cell(c, true),
    );
    assert!((rec - 1.0).abs() < 1e-9);
    let v = verdicts(&r);
    assert_eq!(v.len(), 8, "the seed's three claims, then issue 16's five");
    for v in &v[..3] {
        assert_eq!(v.outcome, Outcome::Supported, "{v:?}");
    }
}

#[test]
fn inverted_damage_inverts_the_verdicts() {
    let r = run(true, false);
    assert!(r.cells.iter().all(|c| c.healed.is_none()));
    let v = verdicts(&r);
    for v in &v[..3] {
        assert_eq!(v.outcome, Outcome::NotSupported, "{v:?}");
    }
}

#[test]
fn outputs_csv_json_table_and_charts() {
    let r = run(false, true);
    let dir = std::env::temp_dir().join(format!("succulm-sweep-{}", std::process::id()));
    let written = report::write_all(&r, &dir).unwrap();
    // 5 text files + (11 charted metrics × 2 kinds) + healed variants (10 metrics × 2) + the
    // page.
    assert_eq!(written.len(), 5 + 22 + 20 + 1);
    for p in &written {
        assert!(p.exists(), "{}", p.display());
    }
    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 1 + 15 + 15);
    let ncols = lines[0].split(',').count();
    // The original columns, then the nine added with the method axis (at the end).
    assert_eq!(ncols, 6 + Metric::ALL.len() + 3 + 9);
    assert!(lines[0].contains(",answers,fluency_se,positions,method,heal,"));
    assert!(lines[0]
        .starts_with("stage,blocks,bond,ffn_params_dense,ffn_params_tt,rel_errors,param_ratio"));
    assert!(lines[1].starts_with("dense,,,,,,1,0,"));
    // rel_errors holds commas? No: joined by ';', so every row has the header's column count.
    for l in &lines {
        assert_eq!(l.split(',').count(), ncols, "{l}");
    }
    let row = lines
        .iter()
        .find(|l| l.starts_with("compressed,3,10,"))
        .unwrap();
    assert!(
        row.contains(",3.ffn.0=0.8") && row.contains(";3.ffn.2=0.8"),
        "{row}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("healed,")).count(),
        15
    );
    // JSON round trip (NaN fields come back as NaN).
    let back = report::read_json(dir.join("sweep.json")).unwrap();
    // (serde_json's default float parsing may differ in the last bit.)
    let (a, b) = (report::to_csv(&back), report::to_csv(&r));
    for (la, lb) in a.lines().zip(b.lines()) {
        for (fa, fb) in la.split(',').zip(lb.split(',')) {
            match (fa.parse::<f64>(), fb.parse::<f64>()) {
                (Ok(x), Ok(y)) => {
                    assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{fa} vs {fb}")
                }
                _ => assert_eq!(fa, fb),
            }
        }
    }
    assert_eq!(a.lines().count(), b.lines().count());
    assert!(back.reference.sampled.seed_exact_rate.is_nan());
    // Table: a header, a rule, the dense row, 15 cells and 15 healed rows.
    let table = report::format_table(&r);
    let tl: Vec<&str> = table.lines().collect();
    assert_eq!(tl.len(), 3 + 30);
    assert!(tl[0].starts_with("blocks") && tl[2].starts_with("dense"));
    assert!(tl.iter().any(|l| l.starts_with("all h")));
    // Charts: well-formed outline, one rect per heatmap cell.
    let heat = std::fs::read_to_string(dir.join("heatmap_kl.svg")).unwrap();
    assert!(heat.starts_with("<svg") && heat.trim_end().ends_with("</svg>"));
    assert_eq!(heat.matches("stroke=\"white\"/>").count(), 15);
    let curve = std::fs::read_to_string(dir.join("curve_hidden_answer_rate.svg")).unwrap();
    assert_eq!(curve.matches("<polyline").count(), 5);
    assert!(curve.contains("block all") && curve.contains("dense"));
    let verdict = std::fs::read_to_string(dir.join("verdict.txt")).unwrap();
    let outcomes: Vec<&str> = verdict
        .lines()
        .filter_map(|l| l.strip_prefix("   outcome: "))
        .collect();
    assert_eq!(outcomes.len(), 8);
    assert_eq!(outcomes[..3], ["SUPPORTED"; 3]);
    // Set SUCCULM_KEEP_CHARTS to look at the toy charts.
    if std::env::var_os("SUCCULM_KEEP_CHARTS").is_none() {
        std::fs::remove_dir_all(&dir).unwrap();
    } else {
        eprintln!("charts kept in {}", dir.display());
    }
}

fn metrics(fluency: f64, se: f64, hidden: f64, kl: f64) -> CellMetrics {
    CellMetrics {
        teacher_forced: TeacherForcedMetrics {
            loss: 1.0 + kl,
            perplexity: (1.0 + kl).exp(),
            accuracy: 0.5,
            kl,
            hidden_mass: hidden / 10.0,
            positions: 100,
        },
        fact_margin: 1.0,
        fact_margin_accuracy: 1.0,
        sampled: SampledMetrics {
            answers: 100,
            tokens: 800,
            hidden_token_rate: hidden / 8.0,
            hidden_answer_rate: hidden,
            special_token_rate: 0.0,
            special_answer_rate: 0.0,
            eos_rate: 1.0,
            fact_accuracy: 1.0,
            fact_answers: 20,
            seed_exact_rate: 1.0,
            seed_answers: 20,
            fluency_nll: fluency,
            fluency_se: se,
            gender_accuracy: f64::NAN,
            gender_answers: 0,
            novel_bigram_rate: f64::NAN,
            novel_bigram_se: f64::NAN,
        },
    }
}

fn fabricated(cells: &[(usize, f64, f64, f64, f64)]) -> SweepReport {
    planted::fabricated_report(
        metrics(1.0, 0.01, 0.0, 0.0),
        cells
            .iter()
            .map(|&(b, f, se, h, kl)| (b, metrics(f, se, h, kl)))
            .collect(),
        vec![],
    )
}

#[test]
fn verdicts_worked_by_hand() {
    // Block 0 fluency 2.0 vs runner-up 1.5, SEs 0.1: gap 0.5 > √0.02 ≈ 0.14 -> supported.
    // Hidden rate: block 3 0.30 vs block 1 0.25 with 100 answers: SEs ≈ 0.046, 0.043 -> gap 0.05 < 0.063: inconclusive.
    // KL: first half (0.4 + 0.2)/2 = 0.3 vs second (0.1 + 0.3)/2 = 0.2 -> supported.
    let r = fabricated(&[
        (0, 2.0, 0.1, 0.0, 0.4),
        (1, 1.5, 0.1, 0.25, 0.2),
        (2, 1.2, 0.1, 0.0, 0.1),
        (3, 1.1, 0.1, 0.30, 0.3),
    ]);
    let v = verdicts(&r);
    assert_eq!(v[0].outcome, Outcome::Supported);
    assert!(
        v[0].evidence.contains("block 0: 1.000"),
        "{}",
        v[0].evidence
    );
    assert_eq!(v[1].outcome, Outcome::Inconclusive, "{}", v[1].evidence);
    assert_eq!(v[2].outcome, Outcome::Supported);
    assert!(
        v[2].evidence
            .contains("first half 0.3000 vs second half 0.2000"),
        "{}",
        v[2].evidence
    );
    // Block 0 within noise of block 1 -> inconclusive; no hidden word anywhere -> not supported;
    // KL of the second half larger -> not supported.
    let r = fabricated(&[
        (0, 2.0, 0.3, 0.0, 0.1),
        (1, 1.9, 0.3, 0.0, 0.1),
        (2, 1.2, 0.1, 0.0, 0.3),
        (3, 1.1, 0.1, 0.0, 0.3),
    ]);
    let v = verdicts(&r);
    assert_eq!(v[0].outcome, Outcome::Inconclusive);
    assert_eq!(v[1].outcome, Outcome::NotSupported);
    assert_eq!(v[2].outcome, Outcome::NotSupported);
    // Missing single-block cells -> inconclusive, saying why.
    let mut r = fabricated(&[(0, 2.0, 0.1, 0.0, 0.4), (1, 1.5, 0.1, 0.25, 0.2)]);
    r.cells.truncate(2);
    for v in verdicts(&r) {
        assert_eq!(v.outcome, Outcome::Inconclusive, "{v:?}");
        let single_block = [
            "block0_structure",
            "last_block_sophia_trap",
            "first_half_matters_more",
            "last_block_special_tokens",
        ];
        if single_block.contains(&v.id.as_str()) {
            assert!(v.evidence.contains("no bond"), "{}", v.evidence);
        }
    }
}

#[test]
fn parsing_block_sets_and_bonds() {
    assert_eq!(
        parse_block_sets("0,3, all ,1+2", 4).unwrap(),
        vec![vec![0], vec![3], vec![0, 1, 2, 3], vec![1, 2]]
    );
    assert_eq!(block_label(&[0, 1, 2, 3], 4), "all");
    assert_eq!(block_label(&[1, 2], 4), "1+2");
    assert_eq!(block_label(&[0], 1), "0");
    assert_eq!(parse_bonds("50, 5").unwrap(), vec![50, 5]);
    let inv = |e: Error, n: &str| matches!(e, Error::InvalidArgument { name, .. } if name == n);
    assert!(inv(parse_block_sets("4", 4).unwrap_err(), "blocks"));
    assert!(inv(parse_block_sets("1+1", 4).unwrap_err(), "blocks"));
    assert!(inv(parse_block_sets("x", 4).unwrap_err(), "blocks"));
    assert!(inv(parse_block_sets("0,", 4).unwrap_err(), "blocks"));
    assert!(inv(parse_bonds("0").unwrap_err(), "bonds"));
    assert!(inv(parse_bonds("-3").unwrap_err(), "bonds"));
    assert!(inv(parse_bonds("").unwrap_err(), "bonds"));
    assert_eq!(default_block_sets(4).len(), 5);
}

#[test]
fn the_report_does_not_depend_on_the_number_of_threads() {
    let one = run_with(false, true, 1);
    let three = run_with(false, true, 3);
    assert_eq!(format!("{:?}", one.cells), format!("{:?}", three.cells));
    assert_eq!(one.cells.len(), 15);
}

fn evaluator(reference: &Bigram) -> Evaluator<'_, Bigram> {
    planted::evaluator(reference, 30)
}

/// The toy compression of [`run_with`] with a method axis: plain TT-SVD (`weight`) damages as
/// before, `whitened` by `factor` times as much, `scaled` by `scaled_factor`; the same TT
/// parameters for every method. Returns the report and the progress lines in cell order.
fn run_methods(
    methods: &[Method],
    factor: f32,
    scaled_factor: f32,
    threads: usize,
    heal: bool,
) -> (SweepReport, Vec<String>) {
    let reference = reference();
    let ev = evaluator(&reference);
    let compress = |method: Method, blocks: &[usize], bond: usize| {
        let f = match method {
            Method::Weight => 1.0,
            Method::Whitened => factor,
            Method::Scaled => scaled_factor,
        };
        let mut m = reference.clone();
        let s = (50.0 - bond as f32).max(0.0) / 50.0;
        for &k in blocks {
            m.table.scaled_add(s * f, &damage(k, false));
        }
        Ok((m, toy_info(blocks, bond, s, (s * f) as f64 / 2.0)))
    };
    let heal = heal.then_some(HealKind::Distill);
    toy_grid(&ev, &reference, methods, threads, heal, compress)
}

#[test]
fn a_multi_method_grid_has_one_cell_per_method_set_and_bond() {
    let methods = [Method::Weight, Method::Whitened, Method::Scaled];
    let (r, lines) = run_methods(&methods, 0.3, 1.0, 2, true);
    assert_eq!(r.methods, methods);
    assert_eq!(r.cells.len(), 3 * 5 * 3);
    // Method major, then block set, then bond.
    for (i, c) in r.cells.iter().enumerate() {
        assert_eq!(c.method, methods[i / 15], "cell {i}");
        assert_eq!(c.blocks, r.block_sets[(i / 3) % 5], "cell {i}");
        assert_eq!(c.bond, [50, 30, 10][i % 3], "cell {i}");
        assert_eq!(c.heal, Some(HealKind::Distill));
    }
    assert_eq!(r.heal, Some(HealKind::Distill));
    for m in methods {
        for set in &r.block_sets {
            for &b in &r.bonds {
                assert_eq!(r.cell_of(m, set, b).unwrap().method, m);
            }
        }
    }
    // `cell` is the first method's; `scaled` (factor 1) reproduces it exactly, `whitened`
    // damages less.
    let (plain, scaled, whitened) = (
        r.cell(&[0], 10).unwrap(),
        r.cell_of(Method::Scaled, &[0], 10).unwrap(),
        r.cell_of(Method::Whitened, &[0], 10).unwrap(),
    );
    assert_eq!(plain.method, Method::Weight);
    assert_eq!(
        format!("{:?}", plain.metrics),
        format!("{:?}", scaled.metrics)
    );
    assert!(whitened.metrics.teacher_forced.kl < 0.5 * plain.metrics.teacher_forced.kl);
    assert!((whitened.compression.max_output_error() - 0.8 * 0.3 / 2.0).abs() < 1e-6);
    // Progress names the method when there is more than one.
    assert_eq!(lines.len(), 1 + 45);
    assert_eq!(lines[1], "[1/45] weight: blocks 0, bond 50");
    assert_eq!(lines[16], "[16/45] whitened: blocks 0, bond 50");
    assert_eq!(lines[45], "[45/45] scaled: blocks all, bond 10");
    // The seed's verdicts read plain TT-SVD, as in a single-method sweep.
    let single = run(false, true);
    assert_eq!(
        format!("{:?}", verdicts(&r)),
        format!("{:?}", verdicts(&single))
    );
}

#[test]
fn a_multi_method_grid_does_not_depend_on_the_number_of_threads() {
    let methods = [Method::Whitened, Method::Weight];
    let (one, _) = run_methods(&methods, 0.3, 1.0, 1, false);
    let (three, _) = run_methods(&methods, 0.3, 1.0, 3, false);
    assert_eq!(format!("{:?}", one.cells), format!("{:?}", three.cells));
    assert_eq!(one.cells.len(), 30);
    assert_eq!(one.cells[0].method, Method::Whitened);
    // The first method listed is the one `cell` reads.
    assert_eq!(one.cell(&[2], 30).unwrap().method, Method::Whitened);
}

#[test]
fn a_single_method_grid_keeps_its_table_and_progress() {
    let (r, lines) = run_methods(&[Method::Weight], 0.3, 1.0, 2, false);
    assert_eq!(lines[1], "[1/15] blocks 0, bond 50");
    assert_eq!(
        report::format_table(&r),
        report::format_table(&run(false, false))
    );
    assert!(!report::format_table(&r).contains("method"));
    assert!(!report::format_table(&r).contains("weight"));
}

#[test]
fn the_comparison_verdict_finds_the_planted_method_effect() {
    let outcome = |factor: f32| {
        let (r, _) = run_methods(&[Method::Weight, Method::Whitened], factor, 1.0, 2, false);
        let v = report::compare::verdicts(&r);
        assert_eq!(v.len(), 1);
        v[0].clone()
    };
    // A third of the damage: clearly better.
    let v = outcome(0.3);
    assert_eq!(v.outcome, Outcome::Supported, "{}", v.evidence);
    // Bond 50 is exact for both (tied); every other cell is better.
    assert!(
        v.evidence
            .contains("KL lower with whitened in 10, higher in 0, tied in 5"),
        "{}",
        v.evidence
    );
    // Two and a half times the damage: clearly worse.
    let v = outcome(2.5);
    assert_eq!(v.outcome, Outcome::NotSupported, "{}", v.evidence);
    // The same compression: nothing to tell apart.
    let v = outcome(1.0);
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.evidence);
    assert!(v.evidence.contains("tied in 15"), "{}", v.evidence);
    // A 0.2% smaller perturbation: within noise.
    let v = outcome(0.998);
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.evidence);
}

#[test]
fn grid_methods_are_validated() {
    let reference = reference();
    let ev = evaluator(&reference);
    let grid = |methods| {
        run_grid(
            &ev,
            &Grid {
                n_blocks: 4,
                methods,
                block_sets: &[vec![0]],
                bonds: &[10],
                threads: 1,
            },
            |_: Method, _: &[usize], _: usize| Ok((reference.clone(), CompressionInfo::default())),
            None::<(HealKind, fn(&mut Bigram) -> succulm::Result<()>)>,
            &|_: &str| {},
        )
    };
    let inv = |e: Error| matches!(e, Error::InvalidArgument { name, .. } if name == "methods");
    assert!(inv(grid(&[]).unwrap_err()));
    assert!(inv(grid(&[Method::Weight, Method::Weight]).unwrap_err()));
    assert_eq!(grid(&[Method::Scaled]).unwrap().cells.len(), 1);
}

/// A toy budget build: the uniform arm damages `blocks` by `uniform` times their pattern, the
/// allocated arm by `allocated` times; TT parameters 60 and `allocated_tt` per block.
fn toy_build<'a>(
    reference: &'a Bigram,
    allocated_tt: usize,
) -> impl Fn(Method, &[usize], f64) -> succulm::Result<BudgetArms<Bigram>> + Sync + 'a {
    move |method: Method, blocks: &[usize], fraction: f64| {
        let arm = |scale: f32, tt: usize, energy: f64| {
            let mut m = reference.clone();
            for &k in blocks {
                m.table.scaled_add(scale, &damage(k, false));
            }
            let info = CompressionInfo {
                ffn_params_dense: 200 * blocks.len(),
                ffn_params_tt: tt * blocks.len(),
                projections: blocks
                    .iter()
                    .flat_map(|&k| {
                        ["ffn.0", "ffn.2"].map(|p| ProjectionError {
                            bond_dims: vec![2, tt / 10, 2],
                            ..ProjectionError::new(k, p, scale as f64)
                        })
                    })
                    .collect(),
            };
            (m, info, energy)
        };
        let u = if method == Method::Whitened { 0.5 } else { 0.6 };
        Ok([
            arm(u, 60, 2.0 * fraction),
            arm(0.2, allocated_tt, 0.8 * fraction),
        ])
    }
}

#[test]
fn run_budget_scores_both_arms() {
    let reference = reference();
    let ev = evaluator(&reference);
    let build = toy_build(&reference, 58);
    let requests = [
        (Method::Whitened, vec![1, 0]),
        (Method::Weight, vec![0, 1]),
        (Method::Whitened, vec![3]),
    ];
    let lines = std::sync::Mutex::new(Vec::new());
    let cells = run_budget(&ev, &requests, 0.25, &build, 2, &|l: &str| {
        lines.lock().unwrap().push(l.to_string())
    })
    .unwrap();
    assert_eq!(cells.len(), 3);
    assert_eq!(lines.lock().unwrap().len(), 3);
    assert!(lines
        .lock()
        .unwrap()
        .contains(&"[1/3] budget 25%: whitened, blocks 0+1".to_string()));
    for (c, (m, _)) in cells.iter().zip(&requests) {
        assert_eq!(c.method, *m);
        assert_eq!(c.fraction, 0.25);
        assert_eq!(c.budget_params, c.uniform.compression.ffn_params_tt);
        assert!(c.allocated.compression.ffn_params_tt <= c.budget_params);
        assert!(c.allocated.metrics.teacher_forced.kl < c.uniform.metrics.teacher_forced.kl);
        assert!((c.uniform.discarded_energy - 0.5).abs() < 1e-12);
        assert!((c.allocated.discarded_energy - 0.2).abs() < 1e-12);
    }
    assert_eq!(cells[0].blocks, vec![0, 1], "sorted");
    assert_eq!(cells[0].budget_params, 120);
    assert_eq!(cells[2].budget_params, 60);
    // The arms are scored by the evaluator itself: the same numbers as scoring the models.
    let [(um, _, _), (am, _, _)] = build(Method::Whitened, &[3], 0.25).unwrap();
    assert_eq!(
        format!("{:?}", cells[2].uniform.metrics),
        format!("{:?}", ev.evaluate(&um).unwrap())
    );
    assert_eq!(
        format!("{:?}", cells[2].allocated.metrics),
        format!("{:?}", ev.evaluate(&am).unwrap())
    );
    // Plain TT-SVD's uniform arm damages more in this toy.
    assert!(
        cells[1].uniform.metrics.teacher_forced.kl > cells[0].uniform.metrics.teacher_forced.kl
    );
    // Independent of the thread count.
    let one = run_budget(&ev, &requests, 0.25, &build, 1, &|_: &str| {}).unwrap();
    assert_eq!(format!("{one:?}"), format!("{cells:?}"));
}

#[test]
fn run_budget_rejects_bad_requests() {
    let reference = reference();
    let ev = evaluator(&reference);
    let ok = toy_build(&reference, 58);
    let req = [(Method::Whitened, vec![0])];
    let name_of = |e: Error| match e {
        Error::InvalidArgument { name, .. } => name,
        other => panic!("{other}"),
    };
    for f in [0.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
        let e = run_budget(&ev, &req, f, &ok, 1, &|_: &str| {}).unwrap_err();
        assert_eq!(name_of(e), "fraction", "{f}");
    }
    assert!(run_budget(&ev, &req, 1.0, &ok, 1, &|_: &str| {}).is_ok());
    let e = run_budget(&ev, &req, 0.5, &ok, 0, &|_: &str| {}).unwrap_err();
    assert_eq!(name_of(e), "threads");
    for bad in [
        vec![],
        vec![(Method::Whitened, vec![])],
        vec![(Method::Whitened, vec![1, 1])],
        vec![
            (Method::Whitened, vec![0, 1]),
            (Method::Whitened, vec![1, 0]),
        ],
    ] {
        let e = run_budget(&ev, &bad, 0.5, &ok, 1, &|_: &str| {}).unwrap_err();
        assert_eq!(name_of(e), "requests", "{bad:?}");
    }
    // An allocated arm over the uniform arm's parameter count is a broken allocator.
    let greedy = toy_build(&reference, 61);
    let e = run_budget(&ev, &req, 0.5, &greedy, 1, &|_: &str| {}).unwrap_err();
    assert!(
        e.to_string().contains("more than the uniform arm's 60"),
        "{e}"
    );
    // The build's own errors come through.
    let failing = |_: Method, _: &[usize], _: f64| -> succulm::Result<BudgetArms<Bigram>> {
        Err(Error::invalid_arg("calibration", "no rows"))
    };
    let e = run_budget(&ev, &req, 0.5, failing, 2, &|_: &str| {}).unwrap_err();
    assert_eq!(name_of(e), "calibration");
}

/// Healing's recovery percentages, worked by hand, and `~` where a sampled metric's damage is
/// within two standard errors (a percentage there would be noise over noise).
#[test]
fn healing_recovery_by_hand_and_within_noise() {
    // Dense fluency 1.0 ± 0.01. Block 0: fluency 3.0 ± 0.01 healed to 1.5 → 75% recovered.
    // Block 1: fluency 1.02 ± 0.01 (damage 0.02 ≤ 2·√2·0.01): within noise.
    let mut r = fabricated(&[(0, 3.0, 0.01, 0.0, 0.5), (1, 1.02, 0.01, 0.0, 0.1)]);
    r.cells[0].healed = Some(metrics(1.5, 0.01, 0.0, 0.25));
    r.cells[1].healed = Some(metrics(1.03, 0.01, 0.0, 0.05));
    let t = report::format_healing(&r);
    let rows: Vec<&str> = t.lines().collect();
    assert!(rows[1].contains("3.000->1.500 (75%)"), "{t}");
    assert!(rows[1].contains("0.500->0.250 (50%)"), "{t}"); // KL, deterministic
    assert!(rows[2].contains("1.020->1.030 (~)"), "{t}");
    assert!(rows[2].contains("0.100->0.050 (50%)"), "{t}");
}

//! The sweep end to end on a toy model, its outputs (CSV, JSON, table, SVG) and the verdicts.

mod toy;

use ndarray::Array2;
use succulm::eval::{
    CellMetrics, Evaluator, Probe, ProbeGroup, SampleConfig, SampledMetrics, TeacherForcedMetrics,
};
use succulm::generate::Sampling;
use succulm::report::verdict::{verdicts, Outcome};
use succulm::report::{self, recovery, Metric};
use succulm::sweep::{
    block_label, default_block_sets, parse_block_sets, parse_bonds, run_grid, CompressionInfo,
    Grid, HealKind, Method, ProjectionError, SweepCell, SweepReport,
};
use succulm::vocab::PAD;
use succulm::Error;
use toy::{id, random_matrix, vocab, Bigram, V};

fn data() -> (Array2<u32>, Array2<u32>) {
    let rows = [
        vec![
            "<BOS>", "is", "ruby", "a", "boy", "?", "yes", ",", "he", "is", ".", "<EOS>",
        ],
        vec![
            "<BOS>", "is", "winy", "a", "boy", "?", "no", ",", "winy", "is", "a", "girl", ".",
            "<EOS>",
        ],
        vec![
            "<BOS>", "ruby", "is", "a", "boy", ".", "winy", "is", "a", "girl", ".", "<EOS>",
        ],
    ];
    let t = 14;
    let mut x = Array2::from_elem((3, t), PAD);
    let mut y = Array2::from_elem((3, t), PAD);
    for (r, w) in rows.iter().enumerate() {
        let ids: Vec<u32> = w.iter().map(|s| id(s)).collect();
        for j in 0..ids.len() - 1 {
            x[[r, j]] = ids[j];
            y[[r, j]] = ids[j + 1];
        }
    }
    (x, y)
}

fn probes() -> Vec<Probe> {
    let base = |p: &str, group| Probe {
        id: p.into(),
        group,
        prompt: p.into(),
        expected_answer: None,
        fact: None,
        expect_first_word: None,
        contrast_first_word: None,
        expect_words: vec![],
    };
    let fact = |p: &str, r: &str, a: &str| Probe {
        fact: Some("gender".into()),
        expect_first_word: Some(r.into()),
        contrast_first_word: Some(a.into()),
        ..base(p, ProbeGroup::Fact)
    };
    vec![
        fact("is ruby a boy?", "yes", "no"),
        fact("is winy a boy?", "no", "yes"),
        base("who is winy?", ProbeGroup::SeedOutOfTraining),
    ]
}

/// A "4-block" toy: the reference is a bigram trained by hand on the data; compressing block k
/// at bond b perturbs the table by `(50 - b)/50` times block k's damage pattern.
fn reference() -> Bigram {
    let (x, y) = data();
    let mut t = Array2::from_elem((V, V), -4.0f32);
    for (a, b) in x.iter().zip(y.iter()) {
        if *b != PAD {
            t[[*a as usize, *b as usize]] += 3.0;
        }
    }
    Bigram::new(t, 16)
}

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
    let (x, y) = data();
    let sample = SampleConfig {
        sampling: Sampling::Temperature(0.6),
        samples_per_probe: 30,
        seed: 42,
    };
    let ev = Evaluator::new(
        &reference,
        &vocab(),
        x.view(),
        y.view(),
        &probes(),
        &[id("sophia")],
        sample,
    )
    .unwrap();
    let compress = |_: Method, blocks: &[usize], bond: usize| {
        let mut m = reference.clone();
        let s = (50.0 - bond as f32).max(0.0) / 50.0;
        for &k in blocks {
            m.table.scaled_add(s, &damage(k, inverted));
        }
        let info = CompressionInfo {
            ffn_params_dense: 100 * blocks.len(),
            ffn_params_tt: bond * blocks.len(),
            projections: blocks
                .iter()
                .flat_map(|&k| ["ffn.0", "ffn.2"].map(|p| ProjectionError::new(k, p, s as f64)))
                .collect(),
        };
        Ok((m, info))
    };
    let restore = |m: &mut Bigram| {
        m.table.assign(&reference.table);
        Ok(())
    };
    let lines = std::sync::Mutex::new(Vec::new());
    let report = run_grid(
        &ev,
        &Grid {
            n_blocks: 4,
            methods: &[Method::Weight],
            block_sets: &default_block_sets(4),
            bonds: &[50, 30, 10],
            threads,
        },
        compress,
        heal.then_some((HealKind::CrossEntropy, restore)),
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
    assert_eq!(lines.len(), 1 + 5 * 3);
    assert!(lines[1].starts_with("[1/15] blocks 0, bond 50"));
    report
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
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].outcome, Outcome::Supported, "{:?}", v[0]);
    assert_eq!(v[1].outcome, Outcome::Supported, "{:?}", v[1]);
    assert_eq!(v[2].outcome, Outcome::Supported, "{:?}", v[2]);
}

#[test]
fn inverted_damage_inverts_the_verdicts() {
    let r = run(true, false);
    assert!(r.cells.iter().all(|c| c.healed.is_none()));
    let v = verdicts(&r);
    assert_eq!(v[0].outcome, Outcome::NotSupported, "{:?}", v[0]);
    assert_eq!(v[1].outcome, Outcome::NotSupported, "{:?}", v[1]);
    assert_eq!(v[2].outcome, Outcome::NotSupported, "{:?}", v[2]);
}

#[test]
fn outputs_csv_json_table_and_charts() {
    let r = run(false, true);
    let dir = std::env::temp_dir().join(format!("succulm-sweep-{}", std::process::id()));
    let written = report::write_all(&r, &dir).unwrap();
    // 4 text files + (11 charted metrics × 2 kinds) + healed variants (10 metrics × 2).
    assert_eq!(written.len(), 4 + 22 + 20);
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
    assert_eq!(verdict.matches("SUPPORTED").count(), 3);
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
        },
    }
}

fn fabricated(cells: &[(usize, f64, f64, f64, f64)]) -> SweepReport {
    SweepReport {
        n_blocks: 4,
        block_sets: (0..4).map(|b| vec![b]).collect(),
        bonds: vec![20],
        methods: vec![Method::Weight],
        sample: SampleConfig {
            sampling: Sampling::Temperature(0.6),
            samples_per_probe: 10,
            seed: 0,
        },
        heal: None,
        calibration: None,
        reference: metrics(1.0, 0.01, 0.0, 0.0),
        cells: cells
            .iter()
            .map(|&(b, f, se, h, kl)| SweepCell {
                method: Method::Weight,
                blocks: vec![b],
                bond: 20,
                compression: CompressionInfo::default(),
                metrics: metrics(f, se, h, kl),
                healed: None,
                heal: None,
            })
            .collect(),
        budget: vec![],
    }
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
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert!(v.evidence.contains("no bond"), "{}", v.evidence);
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

//! The metric registry (`report::metrics`) and the verdict rules (`verdict::RULES`) are complete
//! and consistent: every entry reads the field it names (checked against metrics and a
//! compression built by hand), every figure the evaluator records is some entry's value,
//! standard error or draw count, and every metric column the views print (text table, HTML
//! table, settings table, CSV, healing, budget and comparison tables) is a registry entry's.

use std::collections::HashSet;

use serde_json::Value;
use succulm::nn::generate::Sampling;
use succulm::study::eval::{CellMetrics, SampleConfig, SampledMetrics, TeacherForcedMetrics};
use succulm::study::report::metrics::{
    in_csv, in_table, Csv, Source, StdErr, Subject, Table, HEADLINE, REGISTRY,
};
use succulm::study::report::verdict::{self, Rule, RULES};
use succulm::study::report::{self, compare, html, Metric, HEALED};
use succulm::study::sweep::{
    BudgetArm, BudgetCell, CompressionInfo, HealKind, Method, ProjectionError, SettingCell,
    SweepCell, SweepReport,
};

/// Metrics whose every number differs from every other (so a reader of the wrong field shows).
fn metrics(k: f64) -> CellMetrics {
    CellMetrics {
        teacher_forced: TeacherForcedMetrics {
            loss: 1.25 + k,
            perplexity: 3.5 + k,
            accuracy: 0.625 - k,
            kl: 0.0625 + k,
            hidden_mass: 0.001 + k,
            positions: 96,
        },
        fact_margin: 2.75 - k,
        fact_margin_accuracy: 0.8125 - k,
        sampled: SampledMetrics {
            answers: 40,
            tokens: 321,
            hidden_token_rate: 0.0125 + k,
            hidden_answer_rate: 0.075 + k,
            special_token_rate: 0.00625 + k,
            special_answer_rate: 0.05 + k,
            eos_rate: 0.9 - k,
            fact_accuracy: 0.7 - k,
            fact_answers: 30,
            seed_exact_rate: 0.55 - k,
            seed_answers: 20,
            fluency_nll: 0.3 + k,
            fluency_se: 0.0375 + k / 8.0,
            gender_accuracy: 0.85 - k,
            gender_answers: 12,
            novel_bigram_rate: 0.15 + k,
            novel_bigram_se: 0.0175 + k / 8.0,
        },
    }
}

/// Every leaf of a JSON object as (dotted path, value).
fn leaves(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(x, &path, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| {
        v.get(k).unwrap_or_else(|| panic!("no field {path}"))
    })
}

#[test]
fn the_registry_is_in_metric_order_with_unique_words() {
    let mut seen: [HashSet<String>; 4] = Default::default();
    for (i, d) in REGISTRY.iter().enumerate() {
        assert_eq!(d.metric as usize, i, "{} out of place", d.key);
        assert!(std::ptr::eq(d.metric.def(), d));
        assert_eq!(d.metric.key(), d.key);
        assert_eq!(d.metric.title(), d.title);
        for (set, word) in seen.iter_mut().zip([d.key, d.header, d.name, d.title]) {
            assert!(!word.is_empty(), "{}: an empty word", d.key);
            assert!(set.insert(word.to_string()), "{word:?} twice");
        }
        assert!(!d.meaning.is_empty() && !d.unit.is_empty(), "{}", d.key);
        assert!(d.evidence_digits >= d.digits, "{}", d.key);
        assert!(d.key.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        // A standard error's column needs one to print.
        if d.se_column {
            assert!(matches!(
                d.se,
                StdErr::Recorded { .. } | StdErr::Binomial { .. }
            ));
        }
        // Compression figures are deterministic and never healed.
        if d.is_compression() {
            assert!(matches!(d.se, StdErr::None), "{}", d.key);
        }
    }
    // Standard-error columns do not collide with metric columns.
    for d in REGISTRY.iter().filter(|d| d.se_column) {
        assert!(!seen[1].contains(&d.se_header()), "{}", d.se_header());
        assert!(!seen[0].contains(&d.se_header()), "{}", d.se_header());
    }
    let main: Vec<Metric> = in_csv(Csv::Main).map(|d| d.metric).collect();
    assert_eq!(main, Metric::ALL.to_vec());
}

#[test]
fn every_reader_reads_the_field_it_names() {
    let m = metrics(0.01);
    let json = serde_json::to_value(m).unwrap();
    for d in REGISTRY.iter() {
        match d.source {
            Source::Model { field, read } => {
                let want = at(&json, field).as_f64().unwrap();
                assert_eq!(read(&m), want, "{}", d.key);
                assert_eq!(d.of_metrics(&m), want, "{}", d.key);
                assert_eq!(d.value(Subject::Dense(&m)), want, "{}", d.key);
            }
            Source::Compression { .. } => assert!(d.of_metrics(&m).is_nan(), "{}", d.key),
        }
        match d.se {
            StdErr::None => assert_eq!(d.se(&m), 0.0, "{}", d.key),
            StdErr::NotEstimated => assert!(d.se(&m).is_nan(), "{}", d.key),
            StdErr::Recorded { field, read } => {
                let want = at(&json, field).as_f64().unwrap();
                assert_eq!(read(&m), want, "{}", d.key);
                assert_eq!(d.se(&m), want, "{}", d.key);
            }
            StdErr::Binomial { draws, read } => {
                let n = at(&json, draws).as_u64().unwrap();
                assert_eq!(read(&m) as u64, n, "{}", d.key);
                assert_eq!(d.draws(&m), Some(n as usize));
                let p = d.of_metrics(&m);
                let se = (p * (1.0 - p) / n as f64).sqrt();
                assert!((d.se(&m) - se).abs() < 1e-15, "{}", d.key);
            }
        }
    }
}

/// Every number the evaluator records is a metric's value, standard error or draw count (or
/// one of the bare counts), so no figure is left for a view to print by hand.
#[test]
fn every_recorded_figure_has_an_entry() {
    let json = serde_json::to_value(metrics(0.0)).unwrap();
    let mut all = Vec::new();
    leaves(&json, "", &mut all);
    let mut named: HashSet<&str> = HashSet::new();
    for d in REGISTRY.iter() {
        if let Source::Model { field, .. } = d.source {
            named.insert(field);
        }
        match d.se {
            StdErr::Recorded { field, .. } => named.insert(field),
            StdErr::Binomial { draws, .. } => named.insert(draws),
            StdErr::None | StdErr::NotEstimated => false,
        };
    }
    // Counts that are no metric's draws: the validation positions and the sampled tokens.
    let counts = ["teacher_forced.positions", "sampled.tokens"];
    for (path, _) in &all {
        assert!(
            named.contains(path.as_str()) || counts.contains(&path.as_str()),
            "{path} is recorded but no registry entry reads it"
        );
    }
    assert_eq!(all.len(), named.len() + counts.len());
}

fn compression(bond: usize, output_error: f64) -> CompressionInfo {
    CompressionInfo {
        ffn_params_dense: 20250,
        ffn_params_tt: 250 + 40 * bond,
        projections: ["ffn.0", "ffn.2"]
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut e = ProjectionError::new(0, *p, 0.25 + i as f64 / 8.0);
                e.output_error = output_error + i as f64 / 16.0;
                e.val_output_error = output_error + i as f64 / 32.0;
                e.bond_dims = vec![bond, bond];
                e
            })
            .collect(),
    }
}

#[test]
fn compression_readers_read_the_method_they_name() {
    let c = compression(10, 0.125);
    let m = metrics(0.0);
    for d in REGISTRY.iter() {
        let Source::Compression { field, read, dense } = d.source else {
            assert!(d.of_compression(&c).is_nan(), "{}", d.key);
            continue;
        };
        let want = match field {
            "param_ratio" => c.param_ratio(),
            "max_rel_error" => c.max_rel_error(),
            "max_output_error" => c.max_output_error(),
            "max_val_output_error" => c.max_val_output_error(),
            other => panic!("{}: an unknown CompressionInfo method {other}", d.key),
        };
        assert!(want.is_finite());
        assert_eq!(read(&c), want, "{}", d.key);
        assert_eq!(d.value(Subject::Compressed(&c, None)), want, "{}", d.key);
        assert_eq!(d.value(Subject::Dense(&m)), dense, "{}", d.key);
    }
}

fn report() -> SweepReport {
    let cell = |method, blocks: Vec<usize>, k: f64, healed: bool| SweepCell {
        method,
        blocks,
        bond: 10,
        compression: compression(10, 0.125),
        metrics: metrics(k),
        healed: healed.then(|| metrics(k / 2.0)),
        heal: healed.then_some(HealKind::CrossEntropy),
    };
    let arm = |k: f64| BudgetArm {
        compression: compression(12, 0.25),
        discarded_energy: 0.5,
        metrics: metrics(k),
    };
    SweepReport {
        n_blocks: 2,
        block_sets: vec![vec![0], vec![1]],
        bonds: vec![10],
        methods: vec![Method::Weight, Method::Whitened],
        sample: SampleConfig {
            sampling: Sampling::Temperature(0.6),
            samples_per_probe: 4,
            seed: 42,
        },
        heal: Some(HealKind::CrossEntropy),
        calibration: None,
        reference: metrics(0.0),
        cells: vec![
            cell(Method::Weight, vec![0], 0.05, true),
            cell(Method::Weight, vec![1], 0.0625, false),
            cell(Method::Whitened, vec![0], 0.03, true),
            cell(Method::Whitened, vec![1], 0.04, false),
        ],
        budget: vec![BudgetCell {
            method: Method::Whitened,
            blocks: vec![0],
            fraction: 0.5,
            budget_params: 730,
            uniform: arm(0.02),
            allocated: arm(0.01),
        }],
        settings: vec![SettingCell {
            id: "loosening".into(),
            title: "loosening towards the end".into(),
            method: Method::Weight,
            blocks: vec![0, 1],
            bonds: vec![10, 12],
            compression: compression(10, 0.125),
            metrics: metrics(0.05),
            healed: None,
            heal: None,
        }],
    }
}

/// The header of the text table in `text` that starts with `first`, split into columns (two
/// or more spaces apart).
fn header<'a>(text: &'a str, first: &str) -> Vec<&'a str> {
    let line = text
        .lines()
        .find(|l| l.starts_with(first))
        .unwrap_or_else(|| panic!("no header {first:?} in\n{text}"));
    line.split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn every_printed_metric_column_is_a_registry_entry() {
    let r = report();
    let grid: Vec<&str> = in_table(Table::Grid).map(|d| d.header).collect();

    // The text table and the HTML table.
    let mut want = vec!["blocks", "bond", "method"];
    want.extend(&grid);
    assert_eq!(header(&report::format_table(&r), "blocks"), want);
    let page = html::page(&r, &[], None);
    let thead = page
        .split("<table class=\"grid\"><thead><tr>")
        .nth(1)
        .and_then(|s| s.split("</tr></thead>").next())
        .unwrap();
    let ths: Vec<&str> = thead
        .split("</th>")
        .filter_map(|s| s.rsplit('>').next())
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(ths, want);

    // The settings' table: the grid's columns, then settings-only metrics and standard errors.
    let mut want: Vec<String> = ["setting", "bonds", "method"].map(String::from).to_vec();
    want.extend(grid.iter().map(|h| h.to_string()));
    for d in REGISTRY.iter() {
        if d.table == Table::Settings {
            want.push(d.header.into());
        }
        if d.se_column {
            want.push(d.se_header());
        }
    }
    assert_eq!(header(&report::format_settings(&r), "setting"), want);
    assert!(want.iter().any(|h| h == "gender_acc") && want.iter().any(|h| h == "novel_se"));

    // The CSV: its metric columns are the Csv::Main and Csv::Late entries' keys, in registry
    // order; every other column is a label, a count or the fluency's standard error.
    let csv = report::to_csv(&r);
    let columns: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let labels = [
        "stage",
        "blocks",
        "bond",
        "ffn_params_dense",
        "ffn_params_tt",
        "rel_errors",
        "answers",
        "positions",
        "method",
        "heal",
        "output_errors",
        "val_output_errors",
        "bond_dims",
        "fact_answers",
        "seed_answers",
    ];
    let keyed: Vec<&str> = columns
        .iter()
        .copied()
        .filter(|c| !labels.contains(c))
        .collect();
    let mut want: Vec<String> = in_csv(Csv::Main).map(|d| d.key.to_string()).collect();
    want.push(Metric::FluencyNll.def().se_header());
    want.extend(in_csv(Csv::Late).map(|d| d.key.to_string()));
    assert_eq!(keyed, want);
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows.iter().all(|l| l.split(',').count() == columns.len()));

    // The healing, budget and comparison tables.
    let healing = report::format_healing(&r);
    for m in HEALED {
        assert!(healing.contains(&format!("{} (recovered)", m.key())));
    }
    let budget_text = report::format_budget(&r);
    let budget = header(&budget_text, "method");
    let headline: Vec<&str> = HEADLINE.iter().map(|m| m.def().header).collect();
    assert_eq!(budget[7..], headline[..]);
    let cmp_text = compare::format_comparison(&r);
    let cmp = header(&cmp_text, "blocks");
    assert_eq!(cmp[..3], ["blocks", "bond", "tt_params"]);
    let heads: Vec<String> = compare::COMPARED
        .iter()
        .flat_map(|m| {
            let h = m.def().header;
            [
                format!("{h} plain"),
                format!("{h} whitened"),
                format!("{h} ratio"),
            ]
        })
        .collect();
    assert_eq!(cmp[3..], heads[..]);
    for (m, c) in compare::COMPARED
        .iter()
        .zip(compare::compare(&r, Method::Whitened).cells[0].metrics())
    {
        assert_eq!(c.metric, m.key());
    }
}

#[test]
fn the_verdicts_are_the_rules_in_order() {
    let r = report();
    let v = verdict::verdicts(&r);
    assert_eq!(v.len(), RULES.len());
    let mut ids = HashSet::new();
    for (rule, v) in RULES.iter().zip(&v) {
        assert!(ids.insert(rule.id), "{} twice", rule.id);
        assert_eq!(v.id, rule.id);
        assert_eq!(v.quote, rule.quote);
        assert!(!rule.quote.is_empty() && !rule.effect_unit.is_empty());
        assert_eq!(v.claim, (rule.claim)(&r));
        assert_eq!(v.operationalisation, (rule.operationalisation)(&r));
        assert_eq!(v.effect_unit, rule.effect_unit);
        assert_eq!(Rule::find(rule.id).map(|x| x.id), Some(rule.id));
        // The text and the HTML print the rule's words.
        let text = verdict::format_verdicts(std::slice::from_ref(v));
        assert!(text.contains(&format!("the seed: \"{}\"", rule.quote)));
        assert!(html::verdict_html(v).contains(&html::escape(rule.quote)));
    }
    assert!(Rule::find("no_such_rule").is_none());
    // Every figure the verdicts list names a registry entry (the names are unique, above).
    for m in verdict::FIGURES {
        assert!(!m.def().name.is_empty());
    }
}

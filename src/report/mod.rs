//! The sweep's outputs: CSV and JSON (written atomically), a plain-text table, SVG charts
//! ([`svg`]) and the verdict on the seed's claims ([`verdict`]).

pub mod svg;
pub mod verdict;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::eval::CellMetrics;
use crate::sweep::{block_label, SweepCell, SweepReport};

/// Every figure of a cell that can be tabulated or charted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// TT / dense FFN parameters of the compressed blocks.
    ParamRatio,
    /// The largest projection reconstruction error.
    MaxRelError,
    /// Validation loss (mean NLL, PAD ignored).
    Loss,
    /// `exp(loss)`.
    Perplexity,
    /// Next-token accuracy.
    Accuracy,
    /// KL(dense ‖ compressed), nats per position.
    Kl,
    /// Teacher-forced probability on hidden words.
    HiddenMass,
    /// Fraction of sampled answers with a hidden word.
    HiddenAnswerRate,
    /// Fraction of sampled tokens that are hidden words.
    HiddenTokenRate,
    /// Fraction of sampled answers with `<BOS>`, `<PAD>` or `<UNK>`.
    SpecialAnswerRate,
    /// Fraction of sampled tokens that are `<BOS>`, `<PAD>` or `<UNK>`.
    SpecialTokenRate,
    /// Fraction of sampled answers that end with `<EOS>`.
    EosRate,
    /// Sampled fact-probe accuracy (first word).
    FactAccuracy,
    /// Mean teacher-forced margin of the right first word.
    FactMargin,
    /// Fraction of fact probes with a positive margin.
    FactMarginAccuracy,
    /// Fraction of in-training seed answers reproduced exactly.
    SeedExactRate,
    /// Mean NLL of sampled answers under the dense model.
    FluencyNll,
}

impl Metric {
    /// Every metric, in table/CSV order.
    pub const ALL: [Metric; 17] = [
        Metric::ParamRatio,
        Metric::MaxRelError,
        Metric::Loss,
        Metric::Perplexity,
        Metric::Accuracy,
        Metric::Kl,
        Metric::HiddenMass,
        Metric::HiddenAnswerRate,
        Metric::HiddenTokenRate,
        Metric::SpecialAnswerRate,
        Metric::SpecialTokenRate,
        Metric::EosRate,
        Metric::FactAccuracy,
        Metric::FactMargin,
        Metric::FactMarginAccuracy,
        Metric::SeedExactRate,
        Metric::FluencyNll,
    ];

    /// The metrics that get charts.
    pub const CHARTED: [Metric; 11] = [
        Metric::MaxRelError,
        Metric::Loss,
        Metric::Accuracy,
        Metric::Kl,
        Metric::HiddenMass,
        Metric::HiddenAnswerRate,
        Metric::SpecialAnswerRate,
        Metric::EosRate,
        Metric::FactAccuracy,
        Metric::FactMargin,
        Metric::FluencyNll,
    ];

    /// The snake_case key (CSV column, file names).
    pub fn key(self) -> &'static str {
        match self {
            Metric::ParamRatio => "param_ratio",
            Metric::MaxRelError => "max_rel_error",
            Metric::Loss => "loss",
            Metric::Perplexity => "perplexity",
            Metric::Accuracy => "accuracy",
            Metric::Kl => "kl",
            Metric::HiddenMass => "hidden_mass",
            Metric::HiddenAnswerRate => "hidden_answer_rate",
            Metric::HiddenTokenRate => "hidden_token_rate",
            Metric::SpecialAnswerRate => "special_answer_rate",
            Metric::SpecialTokenRate => "special_token_rate",
            Metric::EosRate => "eos_rate",
            Metric::FactAccuracy => "fact_accuracy",
            Metric::FactMargin => "fact_margin",
            Metric::FactMarginAccuracy => "fact_margin_accuracy",
            Metric::SeedExactRate => "seed_exact_rate",
            Metric::FluencyNll => "fluency_nll",
        }
    }

    /// A human title (chart titles).
    pub fn title(self) -> &'static str {
        match self {
            Metric::ParamRatio => "FFN parameters, TT / dense",
            Metric::MaxRelError => "largest relative reconstruction error",
            Metric::Loss => "validation loss (nats)",
            Metric::Perplexity => "validation perplexity",
            Metric::Accuracy => "next-token accuracy",
            Metric::Kl => "KL(dense || compressed), nats per position",
            Metric::HiddenMass => "probability mass on hidden words (teacher-forced)",
            Metric::HiddenAnswerRate => "sampled answers with a hidden word",
            Metric::HiddenTokenRate => "sampled tokens that are hidden words",
            Metric::SpecialAnswerRate => "sampled answers with <BOS>/<PAD>/<UNK>",
            Metric::SpecialTokenRate => "sampled tokens that are <BOS>/<PAD>/<UNK>",
            Metric::EosRate => "sampled answers that end with <EOS>",
            Metric::FactAccuracy => "fact probes answered right (sampled)",
            Metric::FactMargin => "fact probes: margin of the right first word (nats)",
            Metric::FactMarginAccuracy => "fact probes with a positive margin",
            Metric::SeedExactRate => "in-training seed answers reproduced exactly",
            Metric::FluencyNll => "fluency: NLL of sampled answers under the dense model",
        }
    }

    /// The metric's value in a set of model metrics (NaN for compression figures).
    pub fn of_metrics(self, m: &CellMetrics) -> f64 {
        let t = &m.teacher_forced;
        let s = &m.sampled;
        match self {
            Metric::ParamRatio | Metric::MaxRelError => f64::NAN,
            Metric::Loss => t.loss,
            Metric::Perplexity => t.perplexity,
            Metric::Accuracy => t.accuracy,
            Metric::Kl => t.kl,
            Metric::HiddenMass => t.hidden_mass,
            Metric::HiddenAnswerRate => s.hidden_answer_rate,
            Metric::HiddenTokenRate => s.hidden_token_rate,
            Metric::SpecialAnswerRate => s.special_answer_rate,
            Metric::SpecialTokenRate => s.special_token_rate,
            Metric::EosRate => s.eos_rate,
            Metric::FactAccuracy => s.fact_accuracy,
            Metric::FactMargin => m.fact_margin,
            Metric::FactMarginAccuracy => m.fact_margin_accuracy,
            Metric::SeedExactRate => s.seed_exact_rate,
            Metric::FluencyNll => s.fluency_nll,
        }
    }

    /// The metric's value for a cell (compressed, or healed when `healed` and available).
    pub fn of_cell(self, c: &SweepCell, healed: bool) -> f64 {
        match self {
            Metric::ParamRatio => c.compression.param_ratio(),
            Metric::MaxRelError => c.compression.max_rel_error(),
            _ => {
                let m = if healed {
                    match &c.healed {
                        Some(h) => h,
                        None => return f64::NAN,
                    }
                } else {
                    &c.metrics
                };
                self.of_metrics(m)
            }
        }
    }

    /// The dense reference's value (0 error, ratio 1 for the compression figures).
    pub fn of_reference(self, r: &SweepReport) -> f64 {
        match self {
            Metric::ParamRatio => 1.0,
            Metric::MaxRelError => 0.0,
            _ => self.of_metrics(&r.reference),
        }
    }
}

pub use crate::io::write_atomic;

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else {
        format!("{x}")
    }
}

/// The report as CSV: one row for the dense reference (`stage = dense`), one per cell
/// (`compressed`) and one per healed cell (`healed`). Columns: `stage, blocks, bond,
/// ffn_params_dense, ffn_params_tt, rel_errors` (`block.projection=error` joined by `;`), then
/// every [`Metric`] key; then `answers, fluency_se, positions`. NaN is an empty field.
pub fn to_csv(report: &SweepReport) -> String {
    let mut s = String::from("stage,blocks,bond,ffn_params_dense,ffn_params_tt,rel_errors");
    for m in Metric::ALL {
        s.push(',');
        s.push_str(m.key());
    }
    s.push_str(",answers,fluency_se,positions\n");
    let tail = |m: &CellMetrics| {
        format!(
            ",{},{},{}\n",
            m.sampled.answers,
            num(m.sampled.fluency_se),
            m.teacher_forced.positions
        )
    };
    s.push_str("dense,,,,,");
    for m in Metric::ALL {
        s.push(',');
        s.push_str(&num(m.of_reference(report)));
    }
    s.push_str(&tail(&report.reference));
    for stage in ["compressed", "healed"] {
        for c in &report.cells {
            let healed = stage == "healed";
            let metrics = if healed {
                match &c.healed {
                    Some(h) => h,
                    None => continue,
                }
            } else {
                &c.metrics
            };
            let errs: Vec<String> = c
                .compression
                .projections
                .iter()
                .map(|p| format!("{}.{}={}", p.block, p.projection, p.rel_error))
                .collect();
            let _ = write!(
                s,
                "{stage},{},{},{},{},{}",
                csv_field(&block_label(&c.blocks, report.n_blocks)),
                c.bond,
                c.compression.ffn_params_dense,
                c.compression.ffn_params_tt,
                csv_field(&errs.join(";"))
            );
            for m in Metric::ALL {
                s.push(',');
                s.push_str(&num(m.of_cell(c, healed)));
            }
            s.push_str(&tail(metrics));
        }
    }
    s
}

/// The report as pretty JSON (NaN becomes `null`).
pub fn to_json(report: &SweepReport) -> Result<String> {
    serde_json::to_string_pretty(report)
        .map_err(|e| Error::invalid_arg("report", format!("cannot serialise: {e}")))
}

/// Reads a report written by [`write_all`] (`sweep.json`), e.g. to redraw charts.
pub fn read_json(path: impl AsRef<Path>) -> Result<SweepReport> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn fmt(x: f64, prec: usize) -> String {
    if x.is_nan() {
        "-".to_string()
    } else {
        format!("{x:.prec$}")
    }
}

const TABLE: [(Metric, &str, usize); 14] = [
    (Metric::ParamRatio, "tt/dense", 2),
    (Metric::MaxRelError, "max_err", 3),
    (Metric::Loss, "loss", 3),
    (Metric::Perplexity, "ppl", 2),
    (Metric::Accuracy, "acc", 3),
    (Metric::Kl, "KL", 4),
    (Metric::HiddenMass, "hid_mass", 4),
    (Metric::HiddenAnswerRate, "hid_ans", 3),
    (Metric::SpecialAnswerRate, "spec_ans", 3),
    (Metric::EosRate, "eos", 3),
    (Metric::FactAccuracy, "fact_acc", 3),
    (Metric::FactMargin, "margin", 2),
    (Metric::SeedExactRate, "seed_ok", 3),
    (Metric::FluencyNll, "fluency", 3),
];

/// A plain-text table: the dense reference, then every cell (and its healed row, marked `h`).
pub fn format_table(report: &SweepReport) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["blocks".to_string(), "bond".to_string()];
    header.extend(TABLE.iter().map(|(_, h, _)| h.to_string()));
    rows.push(header);
    let mut dense = vec!["dense".to_string(), "-".to_string()];
    dense.extend(
        TABLE
            .iter()
            .map(|&(m, _, p)| fmt(m.of_reference(report), p)),
    );
    rows.push(dense);
    for c in &report.cells {
        for healed in [false, true] {
            if healed && c.healed.is_none() {
                continue;
            }
            let mut label = block_label(&c.blocks, report.n_blocks);
            if healed {
                label.push_str(" h");
            }
            let mut r = vec![label, c.bond.to_string()];
            r.extend(TABLE.iter().map(|&(m, _, p)| fmt(m.of_cell(c, healed), p)));
            rows.push(r);
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|j| rows.iter().map(|r| r[j].len()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(j, (x, &w))| {
                if j == 0 {
                    format!("{x:<w$}")
                } else {
                    format!("{x:>w$}")
                }
            })
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
        if i == 0 {
            let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            s.push_str(&"-".repeat(total));
            s.push('\n');
        }
    }
    s
}

/// How much of the damage healing undid: `(compressed − healed) / (compressed − dense)`
/// (1 = fully recovered, 0 = no change, negative = worse; NaN when compression did no damage).
pub fn recovery(dense: f64, compressed: f64, healed: f64) -> f64 {
    let damage = compressed - dense;
    if damage.abs() < 1e-12 || !damage.is_finite() {
        f64::NAN
    } else {
        (compressed - healed) / damage
    }
}

/// A table of what healing recovered, per healed cell, for loss, KL, accuracy and fluency.
pub fn format_healing(report: &SweepReport) -> String {
    let metrics = [
        Metric::Loss,
        Metric::Kl,
        Metric::Accuracy,
        Metric::FactAccuracy,
        Metric::FluencyNll,
    ];
    let mut s = String::from("blocks  bond");
    for m in metrics {
        let _ = write!(s, "  {:>26}", format!("{} (recovered)", m.key()));
    }
    s.push('\n');
    let mut any = false;
    for c in report.cells.iter().filter(|c| c.healed.is_some()) {
        any = true;
        let _ = write!(
            s,
            "{:<6}  {:>4}",
            block_label(&c.blocks, report.n_blocks),
            c.bond
        );
        for m in metrics {
            let (d, a, b) = (
                m.of_reference(report),
                m.of_cell(c, false),
                m.of_cell(c, true),
            );
            let r = recovery(d, a, b);
            let cell = format!(
                "{}->{} ({})",
                fmt(a, 3),
                fmt(b, 3),
                if r.is_nan() {
                    "-".into()
                } else {
                    format!("{:.0}%", 100.0 * r)
                }
            );
            let _ = write!(s, "  {cell:>26}");
        }
        s.push('\n');
    }
    if any {
        s
    } else {
        String::new()
    }
}

/// Writes `sweep.csv`, `sweep.json`, `table.txt`, `verdict.txt` and every chart
/// ([`svg::write_charts`]) into `dir` (created if missing); returns the paths written.
pub fn write_all(report: &SweepReport, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    let verdicts = verdict::format_verdicts(&verdict::verdicts(report));
    for (name, text) in [
        ("sweep.csv", to_csv(report)),
        ("sweep.json", to_json(report)?),
        ("table.txt", format_table(report) + &format_healing(report)),
        ("verdict.txt", verdicts),
    ] {
        let p = dir.join(name);
        write_atomic(&p, text.as_bytes())?;
        written.push(p);
    }
    written.extend(svg::write_charts(report, dir)?);
    Ok(written)
}

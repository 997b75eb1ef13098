//! The sweep's outputs: CSV and JSON (written atomically), a plain-text table, SVG charts
//! ([`svg`]), the verdict on the seed's claims ([`verdict`]), the comparison of data-aware
//! truncation with plain TT-SVD ([`compare`]) and the parameter-budget table
//! ([`format_budget`]).
//!
//! A sweep of one method prints exactly as before the method axis existed: the `method` column,
//! the comparison and the per-method charts appear only when the report has more than one
//! method.

pub mod compare;
pub mod html;
pub mod svg;
pub mod verdict;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::study::eval::CellMetrics;
use crate::study::sweep::{block_label, BudgetArm, CompressionInfo, SweepCell, SweepReport};

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
    /// The largest relative output error on the calibration rows (NaN when not computed).
    /// Not in [`Metric::ALL`]: the CSV appends it after its original columns.
    MaxOutputError,
    /// The largest relative output error on validation rows (NaN when not computed). Not in
    /// [`Metric::ALL`], like [`Metric::MaxOutputError`].
    MaxValOutputError,
}

impl Metric {
    /// Every metric of the original CSV columns, in table/CSV order (the output errors, which
    /// came later, are appended at the end of the CSV instead).
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

    /// Compression figures charted only when some cell has them (data-aware methods).
    pub const OUTPUT_ERRORS: [Metric; 2] = [Metric::MaxOutputError, Metric::MaxValOutputError];

    /// Whether the metric describes the compression itself (not the compressed model's
    /// behaviour): the same before and after healing.
    pub fn is_compression(self) -> bool {
        matches!(
            self,
            Metric::ParamRatio
                | Metric::MaxRelError
                | Metric::MaxOutputError
                | Metric::MaxValOutputError
        )
    }

    /// The snake_case key (CSV column, file names).
    pub fn key(self) -> &'static str {
        match self {
            Metric::MaxOutputError => "max_output_error",
            Metric::MaxValOutputError => "max_val_output_error",
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
            Metric::MaxOutputError => "largest relative output error (calibration rows)",
            Metric::MaxValOutputError => "largest relative output error (validation rows)",
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
            Metric::ParamRatio
            | Metric::MaxRelError
            | Metric::MaxOutputError
            | Metric::MaxValOutputError => f64::NAN,
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

    /// The metric's value for a compression (NaN for behaviour metrics).
    pub fn of_compression(self, c: &CompressionInfo) -> f64 {
        match self {
            Metric::ParamRatio => c.param_ratio(),
            Metric::MaxRelError => c.max_rel_error(),
            Metric::MaxOutputError => c.max_output_error(),
            Metric::MaxValOutputError => c.max_val_output_error(),
            _ => f64::NAN,
        }
    }

    /// The metric's value for a budget arm.
    pub fn of_arm(self, a: &BudgetArm) -> f64 {
        if self.is_compression() {
            self.of_compression(&a.compression)
        } else {
            self.of_metrics(&a.metrics)
        }
    }

    /// The metric's value for a cell (compressed, or healed when `healed` and available).
    pub fn of_cell(self, c: &SweepCell, healed: bool) -> f64 {
        match self {
            m if m.is_compression() => m.of_compression(&c.compression),
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
            Metric::MaxRelError | Metric::MaxOutputError | Metric::MaxValOutputError => 0.0,
            _ => self.of_metrics(&r.reference),
        }
    }
}

pub use crate::fs::write_atomic;

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

/// `block.projection=value` of every projection, joined by `;` (empty when no value is known).
fn per_projection(
    c: &CompressionInfo,
    f: impl Fn(&crate::study::sweep::ProjectionError) -> String,
) -> String {
    let items: Vec<String> = c
        .projections
        .iter()
        .map(|p| (p, f(p)))
        .filter(|(_, v)| !v.is_empty())
        .map(|(p, v)| format!("{}.{}={v}", p.block, p.projection))
        .collect();
    items.join(";")
}

/// The report as CSV: one row for the dense reference (`stage = dense`), one per cell
/// (`compressed`) and one per healed cell (`healed`), cells in report order (method major).
/// Columns: `stage, blocks, bond, ffn_params_dense, ffn_params_tt, rel_errors`
/// (`block.projection=error` joined by `;`), then every [`Metric::ALL`] key; then `answers,
/// fluency_se, positions`; then, added with the method axis, `method` (empty for dense),
/// `heal` (the healing kind, on healed rows), `max_output_error, max_val_output_error,
/// output_errors, val_output_errors` (per projection like `rel_errors`), `bond_dims`
/// (`block.projection=r1xr2x…`), `fact_answers, seed_answers`. NaN is an empty field.
pub fn to_csv(report: &SweepReport) -> String {
    let mut s = String::from("stage,blocks,bond,ffn_params_dense,ffn_params_tt,rel_errors");
    for m in Metric::ALL {
        s.push(',');
        s.push_str(m.key());
    }
    s.push_str(",answers,fluency_se,positions");
    s.push_str(
        ",method,heal,max_output_error,max_val_output_error,output_errors,val_output_errors,\
         bond_dims,fact_answers,seed_answers\n",
    );
    let tail = |m: &CellMetrics| {
        format!(
            ",{},{},{}",
            m.sampled.answers,
            num(m.sampled.fluency_se),
            m.teacher_forced.positions
        )
    };
    let counts =
        |m: &CellMetrics| format!(",{},{}\n", m.sampled.fact_answers, m.sampled.seed_answers);
    s.push_str("dense,,,,,");
    for m in Metric::ALL {
        s.push(',');
        s.push_str(&num(m.of_reference(report)));
    }
    s.push_str(&tail(&report.reference));
    s.push_str(",,,,,,,");
    s.push_str(&counts(&report.reference));
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
            let errs = per_projection(&c.compression, |p| p.rel_error.to_string());
            let _ = write!(
                s,
                "{stage},{},{},{},{},{}",
                csv_field(&block_label(&c.blocks, report.n_blocks)),
                c.bond,
                c.compression.ffn_params_dense,
                c.compression.ffn_params_tt,
                csv_field(&errs)
            );
            for m in Metric::ALL {
                s.push(',');
                s.push_str(&num(m.of_cell(c, healed)));
            }
            s.push_str(&tail(metrics));
            let heal = match (healed, c.heal) {
                (true, Some(k)) => k.key(),
                _ => "",
            };
            let _ = write!(
                s,
                ",{},{heal},{},{},{},{},{}",
                c.method.key(),
                num(c.compression.max_output_error()),
                num(c.compression.max_val_output_error()),
                csv_field(&per_projection(&c.compression, |p| num(p.output_error))),
                csv_field(&per_projection(&c.compression, |p| num(p.val_output_error))),
                csv_field(&per_projection(&c.compression, |p| {
                    p.bond_dims
                        .iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join("x")
                })),
            );
            s.push_str(&counts(metrics));
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

/// Lays out `rows` (the first is the header, followed by a rule) in columns two spaces apart:
/// columns with `left[j]` left-aligned, the others right-aligned; trailing spaces trimmed.
pub(crate) fn render(rows: &[Vec<String>], left: &[bool]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let widths: Vec<usize> = (0..first.len())
        .map(|j| {
            rows.iter()
                .map(|r| r.get(j).map_or(0, |x| x.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(j, (x, &w))| {
                if left.get(j).copied().unwrap_or(false) {
                    format!("{x:<w$}")
                } else {
                    format!("{x:>w$}")
                }
            })
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
        if i == 0 {
            let total = widths.iter().sum::<usize>() + 2 * (widths.len().max(1) - 1);
            s.push_str(&"-".repeat(total));
            s.push('\n');
        }
    }
    s
}

/// Whether the report has cells of more than one method (then its views get a method column).
fn multi_method(report: &SweepReport) -> bool {
    report.swept_methods().len() > 1
}

/// The cells grouped by method ([`SweepReport::swept_methods`] order), report order within.
fn cells_by_method(report: &SweepReport) -> Vec<&SweepCell> {
    report
        .swept_methods()
        .into_iter()
        .flat_map(|m| report.cells_of(m))
        .collect()
}

/// A plain-text table: the dense reference, then every cell (and its healed row, marked `h`).
/// With more than one method, a `method` column follows `bond` and the rows are grouped by
/// method.
pub fn format_table(report: &SweepReport) -> String {
    let multi = multi_method(report);
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["blocks".to_string(), "bond".to_string()];
    let mut left = vec![true, false];
    if multi {
        header.push("method".into());
        left.push(true);
    }
    header.extend(TABLE.iter().map(|(_, h, _)| h.to_string()));
    rows.push(header);
    let mut dense = vec!["dense".to_string(), "-".to_string()];
    if multi {
        dense.push("-".into());
    }
    dense.extend(
        TABLE
            .iter()
            .map(|&(m, _, p)| fmt(m.of_reference(report), p)),
    );
    rows.push(dense);
    for c in cells_by_method(report) {
        for healed in [false, true] {
            if healed && c.healed.is_none() {
                continue;
            }
            let mut label = block_label(&c.blocks, report.n_blocks);
            if healed {
                label.push_str(" h");
            }
            let mut r = vec![label, c.bond.to_string()];
            if multi {
                r.push(c.method.key().into());
            }
            r.extend(TABLE.iter().map(|&(m, _, p)| fmt(m.of_cell(c, healed), p)));
            rows.push(r);
        }
    }
    render(&rows, &left)
}

/// The seed's settings ([`SweepReport::settings`]) as a table: one row per setting (and its
/// healed row, marked `h`), with the grid table's columns and, after them, the fluency's
/// standard error, the gender-probe accuracy and the novel word-link rate with its standard
/// error. Empty when the report has no setting.
pub fn format_settings(report: &SweepReport) -> String {
    if report.settings.is_empty() {
        return String::new();
    }
    let multi = multi_method(report);
    let mut header = vec!["setting".to_string(), "bonds".to_string()];
    let mut left = vec![true, true];
    if multi {
        header.push("method".into());
        left.push(true);
    }
    header.extend(TABLE.iter().map(|(_, h, _)| h.to_string()));
    header.extend(["fluency_se", "gender_acc", "novel", "novel_se"].map(String::from));
    let extra = |m: &CellMetrics| {
        let s = &m.sampled;
        [
            fmt(s.fluency_se, 3),
            fmt(s.gender_accuracy, 3),
            fmt(s.novel_bigram_rate, 3),
            fmt(s.novel_bigram_se, 3),
        ]
    };
    let mut rows = vec![header];
    let mut dense = vec!["dense".to_string(), "-".to_string()];
    if multi {
        dense.push("-".into());
    }
    dense.extend(
        TABLE
            .iter()
            .map(|&(m, _, p)| fmt(m.of_reference(report), p)),
    );
    dense.extend(extra(&report.reference));
    rows.push(dense);
    for c in &report.settings {
        for (healed, metrics) in [(false, Some(&c.metrics)), (true, c.healed.as_ref())] {
            let Some(metrics) = metrics else { continue };
            let mut label = c.id.clone();
            if healed {
                label.push_str(" h");
            }
            let bonds: Vec<String> = c
                .blocks
                .iter()
                .zip(&c.bonds)
                .map(|(b, d)| format!("{b}:{d}"))
                .collect();
            let mut r = vec![label, bonds.join(",")];
            if multi {
                r.push(c.method.key().into());
            }
            r.extend(TABLE.iter().map(|&(m, _, p)| {
                let v = if m.is_compression() {
                    m.of_compression(&c.compression)
                } else {
                    m.of_metrics(metrics)
                };
                fmt(v, p)
            }));
            r.extend(extra(metrics));
            rows.push(r);
        }
    }
    render(&rows, &left)
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

/// The standard error of a sampled metric of `m` (0 for the deterministic ones): binomial for
/// fact accuracy and the seed-answer rate (over their answers; `fallback_n` for reports made
/// before the counts were recorded), `fluency_se` for fluency.
fn sampling_se(metric: Metric, m: &CellMetrics, fallback_n: usize) -> f64 {
    let s = &m.sampled;
    let binomial = |p: f64, n: usize| {
        let n = if n == 0 { fallback_n } else { n }.max(1) as f64;
        (p * (1.0 - p) / n).max(0.0).sqrt()
    };
    match metric {
        Metric::FactAccuracy => binomial(s.fact_accuracy, s.fact_answers),
        Metric::SeedExactRate => binomial(s.seed_exact_rate, s.seed_answers),
        Metric::FluencyNll => s.fluency_se,
        _ => 0.0,
    }
}

/// A table of what healing recovered, per healed cell, for loss, KL, accuracy and fluency (with
/// more than one method, a `method` column follows `bond` and the rows are grouped by method).
/// Recovery is [`recovery`] as a percentage; `~` marks a sampled metric whose damage is within
/// two standard errors (nothing to recover), `-` no damage at all.
pub fn format_healing(report: &SweepReport) -> String {
    let metrics = [
        Metric::Loss,
        Metric::Kl,
        Metric::Accuracy,
        Metric::FactAccuracy,
        Metric::FluencyNll,
    ];
    let multi = multi_method(report);
    let mut s = String::from("blocks  bond");
    if multi {
        s.push_str("  method  ");
    }
    for m in metrics {
        let _ = write!(s, "  {:>26}", format!("{} (recovered)", m.key()));
    }
    s.push('\n');
    let mut any = false;
    for c in cells_by_method(report)
        .into_iter()
        .filter(|c| c.healed.is_some())
    {
        any = true;
        let _ = write!(
            s,
            "{:<6}  {:>4}",
            block_label(&c.blocks, report.n_blocks),
            c.bond
        );
        if multi {
            let _ = write!(s, "  {:<8}", c.method.key());
        }
        for m in metrics {
            let (d, a, b) = (
                m.of_reference(report),
                m.of_cell(c, false),
                m.of_cell(c, true),
            );
            let r = recovery(d, a, b);
            // A sampled metric whose damage is within two standard errors has nothing to
            // recover: its percentage would be noise over noise.
            let n = report.sample.samples_per_probe;
            let noise =
                2.0 * sampling_se(m, &report.reference, n).hypot(sampling_se(m, &c.metrics, n));
            let cell = format!(
                "{}->{} ({})",
                fmt(a, 3),
                fmt(b, 3),
                if r.is_nan() {
                    "-".into()
                } else if (a - d).abs() <= noise {
                    "~".into()
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

/// A projection's bond dims as `r1xr2x…` (`-` when not recorded).
fn bonds_text(dims: &[usize]) -> String {
    if dims.is_empty() {
        "-".into()
    } else {
        dims.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("x")
    }
}

/// The parameter-budget comparisons ([`crate::study::sweep::run_budget`]) as a table: per budget cell,
/// the uniform and the allocated arm with their TT parameters, discarded energy (the
/// allocator's objective), KL, fact accuracy, fluency NLL and seed-answer rate, then each arm's
/// bond dims per projection. Empty when the report has no budget cell.
pub fn format_budget(report: &SweepReport) -> String {
    if report.budget.is_empty() {
        return String::new();
    }
    const COLS: [(Metric, &str, usize); 4] = [
        (Metric::Kl, "KL", 4),
        (Metric::FactAccuracy, "fact_acc", 3),
        (Metric::FluencyNll, "fluency", 3),
        (Metric::SeedExactRate, "seed_ok", 3),
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header: Vec<String> = [
        "method",
        "blocks",
        "budget",
        "dense_params",
        "arm",
        "tt_params",
        "discarded",
    ]
    .map(String::from)
    .to_vec();
    header.extend(COLS.iter().map(|(_, h, _)| h.to_string()));
    rows.push(header);
    let mut dense: Vec<String> = vec!["dense".into()];
    dense.extend(["-"; 6].map(String::from));
    dense.extend(COLS.iter().map(|&(m, _, p)| fmt(m.of_reference(report), p)));
    rows.push(dense);
    let mut bonds = String::new();
    for b in &report.budget {
        let label = block_label(&b.blocks, report.n_blocks);
        for (arm, a) in [("uniform", &b.uniform), ("allocated", &b.allocated)] {
            let mut r = vec![
                b.method.key().to_string(),
                label.clone(),
                format!("{}%", fmt(100.0 * b.fraction, 0)),
                a.compression.ffn_params_dense.to_string(),
                arm.to_string(),
                a.compression.ffn_params_tt.to_string(),
                fmt(a.discarded_energy, 4),
            ];
            r.extend(COLS.iter().map(|&(m, _, p)| fmt(m.of_arm(a), p)));
            rows.push(r);
            let dims: Vec<String> = a
                .compression
                .projections
                .iter()
                .map(|p| format!("{}.{} {}", p.block, p.projection, bonds_text(&p.bond_dims)))
                .collect();
            let _ = writeln!(
                bonds,
                "{} blocks {label}, {arm}: {}",
                b.method.key(),
                if dims.is_empty() {
                    "-".to_string()
                } else {
                    dims.join(", ")
                }
            );
        }
    }
    let mut s = String::from(
        "Budget: the same TT parameter count spent with one middle bond everywhere (uniform: the \
         largest that fits) or with bonds chosen per projection by the allocator (allocated: at \
         most the uniform arm's parameters); discarded = the allocator's objective, the total \
         whitened energy the truncations discard.\n",
    );
    s.push_str(&render(&rows, &[true, true, false, false, true]));
    s.push_str("\nbond dims per projection:\n");
    s.push_str(&bonds);
    s
}

/// Every verdict of the report: the seed's claims ([`verdict::verdicts`]), then, with
/// more than one method, one per data-aware method against plain TT-SVD
/// ([`compare::verdicts`]).
pub fn all_verdicts(report: &SweepReport) -> Vec<verdict::Verdict> {
    let mut v = verdict::verdicts(report);
    v.extend(compare::verdicts(report));
    v
}

/// Writes `sweep.csv`, `sweep.json`, `table.txt` (the table, the healing table and the seed
/// settings' table, [`format_settings`]), `verdict.txt` ([`all_verdicts`] as text),
/// `verdicts.json` (the same verdicts as data) and every chart ([`svg::write_charts`]) into `dir` (created
/// if missing); with more than one method also `compare.txt` (the comparison table and its
/// verdicts) and `compare.json` ([`compare::comparisons`]); with budget cells `budget.txt`.
/// Returns the paths written.
///
/// The files are written as one set ([`crate::fs::write_set_atomic`]): into a temporary
/// directory first, then renamed into `dir`; on failure (a full disk) `dir` keeps its previous
/// set untouched, and files of a previous set that this one lacks are removed.
pub fn write_all(report: &SweepReport, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    crate::fs::write_set_atomic(dir, |tmp| write_files(report, tmp))
}

fn write_files(report: &SweepReport, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let all = all_verdicts(report);
    let verdicts = verdict::format_verdicts(&all);
    let verdicts_json = serde_json::to_string_pretty(&all)
        .map_err(|e| Error::invalid_arg("verdicts", format!("cannot serialise: {e}")))?;
    let settings = format_settings(report);
    let mut table = format_table(report) + &format_healing(report);
    if !settings.is_empty() {
        table.push('\n');
        table.push_str(&settings);
    }
    let mut files = vec![
        ("sweep.csv", to_csv(report)),
        ("sweep.json", to_json(report)?),
        ("table.txt", table),
        ("verdict.txt", verdicts),
        ("verdicts.json", verdicts_json),
    ];
    let comparison = compare::format_comparison(report);
    if !comparison.is_empty() {
        let v = verdict::format_verdicts(&compare::verdicts(report));
        files.push(("compare.txt", format!("{comparison}\n{v}")));
        let json = serde_json::to_string_pretty(&compare::comparisons(report))
            .map_err(|e| Error::invalid_arg("report", format!("cannot serialise: {e}")))?;
        files.push(("compare.json", json));
    }
    let budget = format_budget(report);
    if !budget.is_empty() {
        files.push(("budget.txt", budget));
    }
    for (name, text) in files {
        let p = dir.join(name);
        write_atomic(&p, text.as_bytes())?;
        written.push(p);
    }
    written.extend(svg::write_charts(report, dir)?);
    Ok(written)
}

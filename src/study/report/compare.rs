//! Data-aware truncation against plain TT-SVD at the same parameter count.
//!
//! A data-aware method's cell is paired with the plain TT-SVD ([`Method::Weight`]) cell of the
//! same block set and middle bond: the same bonds give the same TT parameter count (checked;
//! pairs whose counts differ are skipped and listed). Four behaviour metrics are compared:
//! KL(dense ‖ compressed), fact accuracy, fluency NLL and the seed-answer rate.
//!
//! **Damage and ratio.** Each metric is read as *damage*: how far the compressed model is from
//! the dense one in the harmful direction (`cell − dense` for KL and fluency NLL, where higher
//! is worse; `dense − cell` for fact accuracy and the seed-answer rate). KL's damage is KL
//! itself. The ratio is `plain damage / method damage`, so **a ratio above 1 means the method
//! keeps behaviour better**, and for KL it is simply `KL_plain / KL_method`. A damage below the
//! measurement's resolution — zero or negative (the cell is as good as dense, or better by
//! chance) included — counts as that resolution: [`KL_FLOOR`] for KL; for the sampled metrics
//! the standard error of the difference of the two cells, but at least one answer's worth
//! (`1/n`) for the rates and `1e-3` nats for fluency. So every ratio is finite, two undamaged
//! cells give 1, and a ratio far from 1 needs damage well above the noise.
//!
//! **Better, worse, tied** (per cell and metric, on the difference of the floored damages,
//! `max(plain, floor) − max(method, floor)`, so that a ratio of 1 is always a tie and a value
//! better than dense by chance earns nothing):
//! - KL is teacher-forced and deterministic: no sampling allowance, but differences within
//!   [`KL_TIE_REL`] of the larger KL (or below [`KL_FLOOR`]) count as ties;
//! - fact accuracy and the seed-answer rate are binomial over the sampled answers (`n` =
//!   [`SampledMetrics::fact_answers`](crate::study::eval::SampledMetrics::fact_answers) /
//!   [`seed_answers`](crate::study::eval::SampledMetrics::seed_answers); reports that predate those
//!   counts use `samples_per_probe`, the smallest possible `n`): the difference must exceed
//!   [`Z`] pooled two-proportion standard errors;
//! - fluency NLL has a standard error per cell (`fluency_se`): the difference must exceed [`Z`]
//!   times `√(se_plain² + se_method²)`.
//!
//! The sampled allowances treat the two cells as independent; they share their random numbers
//! (common random numbers), which makes the real noise of the difference smaller, so the
//! allowance is conservative.
//!
//! **The verdict** ("… keeps behaviour better than plain TT-SVD at the same parameter count"),
//! per data-aware method, over every paired cell:
//! - KL leans to the method when it is lower in at least twice as many cells as it is higher
//!   (and in at least one); to plain TT-SVD in the mirror case; otherwise it is mixed or tied;
//! - each sampled metric is summed over the cells: the mean floored damage difference against
//!   [`Z`] standard errors of that mean (`√Σ se²/n`) says whether it leans either way;
//! - SUPPORTED when KL leans to the method and no sampled metric leans to plain TT-SVD; NOT
//!   SUPPORTED in the mirror case; INCONCLUSIVE otherwise (no paired cell, KL tied or mixed —
//!   differences within noise —, or the sampled metrics contradicting KL).
//!
//! The evidence names the bonds, per block set, at which KL is lower and higher, and the
//! median and range of the KL ratio over the cells where either KL exceeds [`KL_FLOOR`].

use std::fmt::Write as _;

use serde::Serialize;

use super::metrics::{MetricDef, StdErr, Subject, HEADLINE};
use super::verdict::{Outcome, Verdict};
use super::{fmt, render, Metric};
use crate::study::sweep::{block_label, Method, SweepCell, SweepReport};

/// KL differences within this fraction of the larger KL count as ties.
pub const KL_TIE_REL: f64 = 0.02;

/// KL below this (nats per position) is no damage: the ratio's floor and the smallest
/// difference that counts.
pub const KL_FLOOR: f64 = 1e-6;

/// Standard errors a sampled difference must exceed to count.
pub const Z: f64 = 2.0;

/// The compared metrics, in table order: the registry's [`HEADLINE`] metrics.
pub const COMPARED: [Metric; 4] = HEADLINE;

/// How a data-aware cell fares against plain TT-SVD on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Less damage than plain TT-SVD, beyond the noise allowance.
    Better,
    /// More damage, beyond the noise allowance.
    Worse,
    /// Within the allowance.
    Tie,
    /// A value is missing (NaN).
    Unknown,
}

impl Side {
    /// `+`, `-`, `=` or `?` (the mark after a ratio in the table).
    pub fn mark(self) -> &'static str {
        match self {
            Side::Better => "+",
            Side::Worse => "-",
            Side::Tie => "=",
            Side::Unknown => "?",
        }
    }
}

/// One metric of one paired cell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MetricComparison {
    /// The metric's key ([`Metric::key`]).
    pub metric: &'static str,
    /// The dense model's value.
    pub dense: f64,
    /// The plain TT-SVD cell's value.
    pub plain: f64,
    /// The data-aware cell's value.
    pub method: f64,
    /// Plain TT-SVD's damage (harm relative to dense; may be negative).
    pub plain_damage: f64,
    /// The method's damage.
    pub method_damage: f64,
    /// `max(plain damage, floor) / max(method damage, floor)`: above 1, the method keeps
    /// behaviour better (see the module docs). NaN when a value is missing.
    pub ratio: f64,
    /// The standard error of `plain_damage − method_damage` (0 for KL).
    pub se: f64,
    /// The damage below which a damage counts as this (the measurement's resolution).
    pub floor: f64,
    /// The smallest [`improvement`](Self::improvement) that counts (Z·se, or the KL tie band).
    pub allowance: f64,
    /// Better, worse or tied.
    pub side: Side,
}

impl MetricComparison {
    /// The damage the method avoids: `max(plain damage, floor) − max(method damage, floor)`
    /// (positive: the method keeps behaviour better; NaN when a value is missing).
    pub fn improvement(&self) -> f64 {
        if (self.plain_damage - self.method_damage).is_finite() {
            self.plain_damage.max(self.floor) - self.method_damage.max(self.floor)
        } else {
            f64::NAN
        }
    }
}

/// A data-aware cell and its plain TT-SVD partner.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellComparison {
    /// The compressed blocks.
    pub blocks: Vec<usize>,
    /// The middle bond.
    pub bond: usize,
    /// The TT parameters of both cells.
    pub tt_params: usize,
    /// KL(dense ‖ compressed).
    pub kl: MetricComparison,
    /// Sampled fact accuracy.
    pub fact_accuracy: MetricComparison,
    /// Fluency NLL.
    pub fluency: MetricComparison,
    /// Seed-answer rate.
    pub seed_rate: MetricComparison,
}

impl CellComparison {
    /// The four comparisons in [`COMPARED`] order.
    pub fn metrics(&self) -> [&MetricComparison; 4] {
        [
            &self.kl,
            &self.fact_accuracy,
            &self.fluency,
            &self.seed_rate,
        ]
    }
}

/// A pair skipped because the two cells' TT parameter counts differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The compressed blocks.
    pub blocks: Vec<usize>,
    /// The middle bond.
    pub bond: usize,
    /// Plain TT-SVD's TT parameters.
    pub plain_params: usize,
    /// The method's TT parameters.
    pub method_params: usize,
}

/// One data-aware method against plain TT-SVD over the whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The data-aware method.
    pub method: Method,
    /// Every paired cell, in the method's cell order.
    pub cells: Vec<CellComparison>,
    /// Pairs whose parameter counts differ.
    pub skipped: Vec<Skipped>,
    /// Cells of the method with no plain TT-SVD cell of the same block set and bond.
    pub unpaired: usize,
}

/// The harm of `value` relative to `dense` (positive: worse than dense).
fn damage(m: &MetricDef, dense: f64, value: f64) -> f64 {
    if m.higher_is_worse() {
        value - dense
    } else {
        dense - value
    }
}

/// The binomial sample size behind a rate metric of a cell (1 for other metrics).
fn rate_n(m: &MetricDef, c: &SweepCell, report: &SweepReport) -> f64 {
    let n = m.draws(&c.metrics).unwrap_or(1);
    // Reports written before the counts were recorded: the smallest possible n (conservative).
    let n = if n == 0 {
        report.sample.samples_per_probe
    } else {
        n
    };
    n.max(1) as f64
}

/// One metric of a paired cell. The noise allowance follows the metric's standard error
/// ([`StdErr`]): a metric without one (KL, deterministic) gets the relative tie band, a recorded standard
/// error (fluency) [`Z`] times that of the difference, a binomial rate the pooled
/// two-proportion test.
fn compare_metric(
    m: &MetricDef,
    report: &SweepReport,
    plain: &SweepCell,
    cell: &SweepCell,
) -> MetricComparison {
    let dense = m.value(Subject::Dense(&report.reference));
    let (a, b) = (
        m.value(Subject::cell(plain, false)),
        m.value(Subject::cell(cell, false)),
    );
    let (da, db) = (damage(m, dense, a), damage(m, dense, b));
    let (se, floor, allowance) = match m.se {
        StdErr::None | StdErr::NotEstimated => {
            let band = KL_FLOOR.max(KL_TIE_REL * da.max(db));
            (0.0, KL_FLOOR, band)
        }
        StdErr::Recorded { read, .. } => {
            let se = read(&plain.metrics).hypot(read(&cell.metrics));
            (se, se.max(1e-3), Z * se)
        }
        StdErr::Binomial { .. } => {
            let (na, nb) = (rate_n(m, plain, report), rate_n(m, cell, report));
            let pooled = (a * na + b * nb) / (na + nb);
            let se = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb))
                .max(0.0)
                .sqrt();
            (se, se.max(1.0 / na.min(nb)), Z * se)
        }
    };
    // Compared on the floored damages, so that the ratio and the side agree (a ratio of 1 is
    // always a tie) and a value better than dense by chance earns nothing.
    // (`f64::max` would turn a missing value into the floor.)
    let diff = if (da - db).is_finite() {
        da.max(floor) - db.max(floor)
    } else {
        f64::NAN
    };
    let side = if !diff.is_finite() {
        Side::Unknown
    } else if diff > allowance {
        Side::Better
    } else if diff < -allowance {
        Side::Worse
    } else {
        Side::Tie
    };
    MetricComparison {
        metric: m.key,
        dense,
        plain: a,
        method: b,
        plain_damage: da,
        method_damage: db,
        ratio: if diff.is_finite() {
            da.max(floor) / db.max(floor)
        } else {
            f64::NAN
        },
        se,
        floor,
        allowance,
        side,
    }
}

/// `method` against plain TT-SVD over every block set and bond of `report` (see the module docs).
pub fn compare(report: &SweepReport, method: Method) -> Comparison {
    let mut out = Comparison {
        method,
        cells: Vec::new(),
        skipped: Vec::new(),
        unpaired: 0,
    };
    for cell in report.cells_of(method) {
        let Some(plain) = report.cell_of(Method::Weight, &cell.blocks, cell.bond) else {
            out.unpaired += 1;
            continue;
        };
        let (pp, mp) = (
            plain.compression.ffn_params_tt,
            cell.compression.ffn_params_tt,
        );
        if pp != mp {
            out.skipped.push(Skipped {
                blocks: cell.blocks.clone(),
                bond: cell.bond,
                plain_params: pp,
                method_params: mp,
            });
            continue;
        }
        let [kl, fact_accuracy, fluency, seed_rate] =
            COMPARED.map(|m| compare_metric(m.def(), report, plain, cell));
        out.cells.push(CellComparison {
            blocks: cell.blocks.clone(),
            bond: cell.bond,
            tt_params: pp,
            kl,
            fact_accuracy,
            fluency,
            seed_rate,
        });
    }
    out
}

/// Every data-aware method of the report against plain TT-SVD (empty when the report has one
/// method, or no plain TT-SVD cell).
pub fn comparisons(report: &SweepReport) -> Vec<Comparison> {
    let methods = report.swept_methods();
    if methods.len() < 2 || !methods.contains(&Method::Weight) {
        return Vec::new();
    }
    methods
        .into_iter()
        .filter(|m| m.is_data_aware())
        .map(|m| compare(report, m))
        .collect()
}

/// The comparison as text: per data-aware method, a table of every paired cell with each
/// metric's plain and method values and their ratio (marked `+` better, `-` worse, `=` tied
/// beyond/within the noise allowance), the dense values on top, and the skipped pairs. Empty
/// when the report has only one method; a one-line note when none of its methods is plain
/// TT-SVD.
pub fn format_comparison(report: &SweepReport) -> String {
    let mut s = String::new();
    let methods = report.swept_methods();
    if methods.len() > 1 && !methods.contains(&Method::Weight) {
        return "No plain TT-SVD (weight) cells: nothing to compare the methods against.\n".into();
    }
    for cmp in comparisons(report) {
        let key = cmp.method.key();
        if !s.is_empty() {
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "{} vs plain TT-SVD, same block set and middle bond (equal TT parameters).\n\
             ratio > 1: {key} keeps behaviour better. KL: KL_plain / KL_{key}; fact_acc, \
             fluency, seed_ok: plain damage / {key} damage, damage = harm relative to dense \
             (floored at the noise); + better, - worse, = within noise (KL: {:.0}%; sampled: \
             {Z} standard errors).",
            cmp.method.title(),
            100.0 * KL_TIE_REL
        );
        let columns = COMPARED.map(Metric::def);
        let mut header: Vec<String> = vec!["blocks".into(), "bond".into(), "tt_params".into()];
        for d in columns {
            let h = d.header;
            header.push(format!("{h} plain"));
            header.push(format!("{h} {key}"));
            header.push(format!("{h} ratio"));
        }
        let mut rows = vec![header];
        let mut dense = vec!["dense".to_string(), "-".into(), "-".into()];
        for d in columns {
            dense.push(fmt(d.value(Subject::Dense(&report.reference)), d.digits));
            dense.push("-".into());
            dense.push("-".into());
        }
        rows.push(dense);
        for c in &cmp.cells {
            let mut r = vec![
                block_label(&c.blocks, report.n_blocks),
                c.bond.to_string(),
                c.tt_params.to_string(),
            ];
            for (mc, p) in c.metrics().into_iter().zip(columns.map(|d| d.digits)) {
                r.push(fmt(mc.plain, p));
                r.push(fmt(mc.method, p));
                r.push(if mc.ratio.is_nan() {
                    "-".into()
                } else {
                    format!("{:.2}{}", mc.ratio, mc.side.mark())
                });
            }
            rows.push(r);
        }
        s.push_str(&render(&rows, &[true]));
        for k in &cmp.skipped {
            let _ = writeln!(
                s,
                "skipped block {} bond {}: TT parameters differ (plain {}, {key} {})",
                block_label(&k.blocks, report.n_blocks),
                k.bond,
                k.plain_params,
                k.method_params
            );
        }
        if cmp.unpaired > 0 {
            let _ = writeln!(
                s,
                "{} {key} cell(s) without a plain TT-SVD cell of the same block set and bond",
                cmp.unpaired
            );
        }
    }
    s
}

/// Where a set of per-cell sides leans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lean {
    Method,
    Plain,
    Neither,
}

fn counts<'a>(sides: impl Iterator<Item = &'a MetricComparison>) -> (usize, usize, usize) {
    let (mut b, mut w, mut t) = (0, 0, 0);
    for m in sides {
        match m.side {
            Side::Better => b += 1,
            Side::Worse => w += 1,
            Side::Tie => t += 1,
            Side::Unknown => {}
        }
    }
    (b, w, t)
}

/// The median of `v` (NaN when empty).
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The sampled metric's mean damage difference over the cells, its standard error, and lean.
fn aggregate(cells: &[&MetricComparison]) -> (f64, f64, Lean, usize) {
    let known: Vec<&&MetricComparison> = cells
        .iter()
        .filter(|m| m.improvement().is_finite())
        .collect();
    if known.is_empty() {
        return (f64::NAN, f64::NAN, Lean::Neither, 0);
    }
    let n = known.len() as f64;
    let mean = known.iter().map(|m| m.improvement()).sum::<f64>() / n;
    let se = known.iter().map(|m| m.se.powi(2)).sum::<f64>().sqrt() / n;
    let lean = if mean > Z * se {
        Lean::Method
    } else if mean < -Z * se {
        Lean::Plain
    } else {
        Lean::Neither
    };
    (mean, se, lean, known.len())
}

/// Bonds at which `pick` holds, per block set: `block 0: 47, 42; block all: 20`, shortened to
/// `every bond` / `every bond but 50` where that is shorter, and to `every block set, …` when
/// every set reads the same.
fn bonds_where(
    report: &SweepReport,
    cmp: &Comparison,
    pick: impl Fn(&CellComparison) -> bool,
) -> String {
    let mut sets: Vec<&Vec<usize>> = Vec::new();
    for c in &cmp.cells {
        if !sets.contains(&&c.blocks) {
            sets.push(&c.blocks);
        }
    }
    let join = |b: &[usize]| {
        b.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let phrases: Vec<(String, Option<String>)> = sets
        .into_iter()
        .map(|set| {
            let cells = cmp.cells.iter().filter(|c| &c.blocks == set);
            let (yes, no): (Vec<&CellComparison>, Vec<&CellComparison>) =
                cells.partition(|c| pick(c));
            let yes: Vec<usize> = yes.iter().map(|c| c.bond).collect();
            let no: Vec<usize> = no.iter().map(|c| c.bond).collect();
            let phrase = if yes.is_empty() {
                None
            } else if no.is_empty() {
                Some("every bond".to_string())
            } else if no.len() < yes.len() {
                Some(format!("every bond but {}", join(&no)))
            } else {
                Some(join(&yes))
            };
            (block_label(set, report.n_blocks), phrase)
        })
        .collect();
    let present: Vec<&(String, Option<String>)> =
        phrases.iter().filter(|p| p.1.is_some()).collect();
    if present.is_empty() {
        return "none".into();
    }
    let first = &present[0].1;
    if present.len() == phrases.len()
        && present.len() > 1
        && present.iter().all(|p| &p.1 == first)
        && first.as_deref().is_some_and(|f| f.starts_with("every"))
    {
        return format!("every block set, {}", first.as_deref().unwrap_or_default());
    }
    present
        .iter()
        .map(|(label, p)| format!("block {label}: {}", p.as_deref().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The verdict on "`method` keeps behaviour better than plain TT-SVD at the same parameter
/// count" (see the module docs).
pub fn verdict(report: &SweepReport, cmp: &Comparison) -> Verdict {
    let key = cmp.method.key();
    let claim = format!(
        "{} truncation keeps behaviour better than plain TT-SVD at the same parameter count",
        cmp.method.title()
    );
    let sampled = sampled_metrics();
    let names: Vec<&str> = sampled.iter().map(|(_, d)| d.comparison_name()).collect();
    let operationalisation = format!(
        "SUPPORTED if, over every block set and middle bond compressed both ways (equal TT \
         parameters), KL(dense || {key}) is lower than KL(dense || plain) in at least twice as \
         many cells as it is higher (ties: within {:.0}% or {KL_FLOOR:e} nats; KL is \
         deterministic) and none of {} is worse on average over the cells by more than {Z} \
         standard errors (binomial for the rates, fluency_se for fluency); NOT SUPPORTED in the \
         mirror image; INCONCLUSIVE otherwise (KL tied or mixed, or the sampled metrics \
         contradicting it)",
        100.0 * KL_TIE_REL,
        and_list(&names)
    );
    let make = |outcome, evidence, effect| Verdict {
        id: format!("{key}_keeps_behaviour"),
        effect,
        effect_unit: EFFECT_UNIT.into(),
        claim: claim.clone(),
        quote: String::new(),
        operationalisation: operationalisation.clone(),
        outcome,
        evidence,
    };
    let mut skipped_note = String::new();
    if !cmp.skipped.is_empty() {
        let _ = write!(
            skipped_note,
            "; {} pair(s) skipped because their TT parameters differ",
            cmp.skipped.len()
        );
    }
    if cmp.cells.is_empty() {
        let evidence = format!(
            "no cell was compressed both by plain TT-SVD and by {key} at the same block set, bond \
             and parameter count{skipped_note}"
        );
        return make(Outcome::Inconclusive, evidence, None);
    }
    let n = cmp.cells.len();
    let (kb, kw, kt) = counts(cmp.cells.iter().map(|c| &c.kl));
    let kl_lean = if kb > 0 && kb >= 2 * kw {
        Lean::Method
    } else if kw > 0 && kw >= 2 * kb {
        Lean::Plain
    } else {
        Lean::Neither
    };
    let mut ratios: Vec<f64> = cmp
        .cells
        .iter()
        .filter(|c| c.kl.plain.max(c.kl.method) > KL_FLOOR && c.kl.ratio.is_finite())
        .map(|c| c.kl.ratio)
        .collect();
    let (lo, hi) = ratios
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &r| {
            (a.min(r), b.max(r))
        });
    let med = median(&mut ratios);
    let mut evidence = format!(
        "{n} paired cell(s){skipped_note}. KL lower with {key} in {kb}, higher in {kw}, tied in \
         {kt}; "
    );
    if ratios.is_empty() {
        evidence.push_str("no cell has KL above the floor; ");
    } else {
        let _ = write!(
            evidence,
            "KL_plain / KL_{key} median {med:.2} (range {lo:.2}-{hi:.2}) over the {} cell(s) with \
             KL above {KL_FLOOR:e}; ",
            ratios.len()
        );
    }
    let _ = write!(
        evidence,
        "lower KL at {}; higher KL at {}",
        bonds_where(report, cmp, |c| c.kl.side == Side::Better),
        bonds_where(report, cmp, |c| c.kl.side == Side::Worse)
    );
    let mut sampled_leans = Vec::new();
    for (i, d) in sampled {
        let name = d.comparison_name();
        let ms: Vec<&MetricComparison> = cmp.cells.iter().map(|c| c.metrics()[i]).collect();
        let (b, w, t) = counts(ms.iter().copied());
        let (mean, se, lean, known) = aggregate(&ms);
        if known == 0 {
            let _ = write!(evidence, "; {name}: not measured");
            continue;
        }
        sampled_leans.push(lean);
        let _ = write!(
            evidence,
            "; {name}: better in {b}, worse in {w}, within noise in {t} cell(s), mean damage \
             reduction {mean:+.3} ± {se:.3} ({})",
            match lean {
                Lean::Method => "better",
                Lean::Plain => "worse",
                Lean::Neither => "within noise",
            }
        );
    }
    let outcome = match kl_lean {
        Lean::Method if !sampled_leans.contains(&Lean::Plain) => Outcome::Supported,
        Lean::Plain if !sampled_leans.contains(&Lean::Method) => Outcome::NotSupported,
        _ => Outcome::Inconclusive,
    };
    if outcome == Outcome::Inconclusive {
        evidence.push_str(match kl_lean {
            Lean::Neither if kb == 0 && kw == 0 => {
                "; KL is the same within the tie band everywhere"
            }
            Lean::Neither => "; KL is lower in some cells and higher in others",
            _ => "; the sampled metrics contradict KL",
        });
    }
    make(outcome, evidence, (!ratios.is_empty()).then(|| med.ln()))
}

/// The compared metrics with a standard error (all but KL), with their index in [`COMPARED`].
fn sampled_metrics() -> Vec<(usize, &'static MetricDef)> {
    COMPARED
        .iter()
        .map(|m| m.def())
        .enumerate()
        .filter(|(_, d)| matches!(d.se, StdErr::Binomial { .. } | StdErr::Recorded { .. }))
        .collect()
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[&str]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// What a comparison verdict's `effect` measures.
const EFFECT_UNIT: &str =
    "ln of the median KL_plain / KL_method over the cells with KL above the floor";

/// One verdict per data-aware method of the report (empty with one method).
pub fn verdicts(report: &SweepReport) -> Vec<Verdict> {
    comparisons(report)
        .iter()
        .map(|c| verdict(report, c))
        .collect()
}

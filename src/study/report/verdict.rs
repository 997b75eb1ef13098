//! The seed's claims, decided from the sweep's numbers.
//!
//! Every [`Verdict`] carries, separately: the seed's own words (`quote`), what is tested
//! (`claim`), the outcome for this run, the decision rule in one sentence
//! (`operationalisation`) and the numbers (`evidence`, and the one number the rule compares,
//! `effect`). Unless a rule says otherwise, a claim about single blocks is read on the
//! **single-block** cells over the bonds at which every block was swept (the "common bonds");
//! "block 0" is the first block and "the last block" block 3 (the seed's model has four). Δ means
//! "compressed minus dense". Standard errors: `fluency_se` and `novel_bigram_se` (over answers)
//! for the per-answer means, binomial `√(p(1−p)/n)` for rates; the SE of a difference or of a
//! mean of independent cells combines them in quadrature. The rules:
//!
//! 1. `block0_structure`: SUPPORTED if block 0's mean Δfluency (NLL of sampled answers under
//!    the dense model) exceeds every other block's by more than 1 standard error of the
//!    difference, NOT SUPPORTED if another block's exceeds it by more than that, else
//!    INCONCLUSIVE.
//! 2. `last_block_sophia_trap`: SUPPORTED if the last block's mean rate of answers containing a
//!    hidden word exceeds every other block's by more than 1 binomial standard error, NOT
//!    SUPPORTED if its rate is 0 or another block's exceeds it by more than that, else
//!    INCONCLUSIVE.
//! 3. `first_half_matters_more`: SUPPORTED if the mean KL(dense ‖ compressed) of the first half
//!    of the blocks compressed alone exceeds that of the second half, else NOT SUPPORTED (KL is
//!    teacher-forced and deterministic: no noise allowance).
//! 4. `loosening_vs_tightening` (the settings [`SEED_SETTINGS`](crate::study::sweep::SEED_SETTINGS)
//!    `loosening`, `tightening`): on fluency NLL, NOT SUPPORTED if the two differ by more than 2
//!    standard errors of the difference and by more than the equivalence margin — a quarter of
//!    their mean Δfluency — SUPPORTED if the difference plus 2 standard errors lies within the
//!    margin, else INCONCLUSIVE. Every other metric is listed with whether it differs beyond 2
//!    standard errors and which setting is worse.
//! 5. `pairs_first_two_larger` (the pair settings at bond 30): SUPPORTED if the fluency NLL of
//!    blocks 0+1 exceeds that of blocks 2+3 by more than 2 standard errors of the difference,
//!    NOT SUPPORTED if it is lower by more than that, else INCONCLUSIVE. Claim 3 reads the same
//!    question on single blocks and KL; both are kept.
//! 6. `looks_fine_but_wrong`: a cell (grid or setting) *looks fine* when its Δfluency is at most
//!    [`FINE_FLUENCY_MARGIN`] nats; SUPPORTED if some such cell's gender-probe accuracy is below
//!    the dense model's by more than [`WRONG_MARGIN`] and by more than 2 standard errors of the
//!    difference, NOT SUPPORTED if every such cell's fall is below [`WRONG_MARGIN`] by more than
//!    2 standard errors, else (or with no fine-looking cell) INCONCLUSIVE.
//! 7. `last_block_special_tokens`: as rule 2 with the rate of answers containing `<BOS>`,
//!    `<PAD>` or `<UNK>` and a margin of 2 binomial standard errors.
//! 8. `last_block_strange_vocabulary`: SUPPORTED if the last block's mean rise in the rate of
//!    answer word links never seen in training (`novel_bigram_rate`) exceeds every other
//!    block's by more than 2 standard errors of the difference, NOT SUPPORTED if another block's
//!    exceeds it by more than that, else INCONCLUSIVE (also when the rate was not measured).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::Metric;
use crate::study::eval::CellMetrics;
use crate::study::sweep::{block_label, SettingCell, SweepCell, SweepReport};

/// How a claim fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The numbers agree with the claim.
    Supported,
    /// The numbers disagree.
    NotSupported,
    /// Missing cells, or a difference within the sampling noise.
    Inconclusive,
}

/// One claim's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// A stable key for the claim (`"block0_structure"`, …), the same in every run, so verdicts
    /// of several sweeps (models, shards) can be matched up.
    pub id: String,
    /// What is tested, in one line (`"compressing block 0 breaks sentence structure most"`).
    pub claim: String,
    /// The seed's own words for the claim (empty for claims that are not the seed's, e.g. the
    /// data-aware comparison).
    #[serde(default)]
    pub quote: String,
    /// The decision rule, in one sentence: when the claim is SUPPORTED, NOT SUPPORTED,
    /// INCONCLUSIVE.
    pub operationalisation: String,
    /// The outcome.
    pub outcome: Outcome,
    /// The numbers behind it.
    pub evidence: String,
    /// The one number the rule compares, signed so that a positive value is in the claim's
    /// direction (e.g. block 0's lead in mean Δfluency over the runner-up); `None` when the
    /// sweep lacks the cells. What it measures is named by `effect_unit`.
    pub effect: Option<f64>,
    /// What `effect` measures, in words (`"lead in mean Δfluency NLL over the runner-up"`).
    pub effect_unit: String,
}

/// Per single block: the mean of `f(cell)` over the common bonds and its standard error from
/// `se(cell)` (independent cells).
struct PerBlock {
    blocks: Vec<usize>,
    mean: Vec<f64>,
    se: Vec<f64>,
    bonds: Vec<usize>,
}

fn per_block(
    report: &SweepReport,
    f: impl Fn(&SweepCell) -> f64,
    se: impl Fn(&SweepCell) -> f64,
) -> Option<PerBlock> {
    let blocks: Vec<usize> = (0..report.n_blocks).collect();
    let bonds: Vec<usize> = report
        .bonds
        .iter()
        .copied()
        .filter(|&b| blocks.iter().all(|&k| report.cell(&[k], b).is_some()))
        .collect();
    if bonds.is_empty() || blocks.len() < 2 {
        return None;
    }
    let n = bonds.len() as f64;
    let mut mean = Vec::new();
    let mut ses = Vec::new();
    for &k in &blocks {
        let cells: Vec<&SweepCell> = bonds.iter().filter_map(|&b| report.cell(&[k], b)).collect();
        mean.push(cells.iter().map(|c| f(c)).sum::<f64>() / n);
        ses.push(cells.iter().map(|c| se(c).powi(2)).sum::<f64>().sqrt() / n);
    }
    Some(PerBlock {
        blocks,
        mean,
        se: ses,
        bonds,
    })
}

/// Is `target` the strict maximum, and by more than one standard error of the difference?
fn leads(p: &PerBlock, target: usize) -> (Outcome, usize) {
    leads_by(p, target, 1.0)
}

/// Is `target` the strict maximum, and by more than `z` standard errors of the difference?
fn leads_by(p: &PerBlock, target: usize, z: f64) -> (Outcome, usize) {
    let runner = p
        .blocks
        .iter()
        .copied()
        .filter(|&b| b != target)
        .max_by(|&a, &b| p.mean[a].total_cmp(&p.mean[b]))
        .unwrap_or(target);
    let gap = p.mean[target] - p.mean[runner];
    let noise = z * (p.se[target].powi(2) + p.se[runner].powi(2)).sqrt();
    let outcome = if gap.is_nan() || gap.abs() <= noise {
        Outcome::Inconclusive
    } else if gap > 0.0 {
        Outcome::Supported
    } else {
        Outcome::NotSupported
    };
    (outcome, runner)
}

fn listing(p: &PerBlock, prec: usize) -> String {
    p.blocks
        .iter()
        .map(|&b| {
            if p.se[b] > 0.0 {
                format!("block {b}: {:.prec$} ± {:.prec$}", p.mean[b], p.se[b])
            } else {
                format!("block {b}: {:.prec$}", p.mean[b])
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn missing(id: &str, claim: &str, op: &str, unit: &str, n_blocks: usize) -> Verdict {
    Verdict {
        id: id.into(),
        quote: String::new(),
        effect: None,
        effect_unit: unit.into(),
        claim: claim.into(),
        operationalisation: op.into(),
        outcome: Outcome::Inconclusive,
        evidence: format!(
            "the sweep has no bond at which each of the {n_blocks} blocks was compressed alone"
        ),
    }
}

/// The seed's words for each claim, by verdict id (article section "Generation Experiments",
/// its discussion and summary).
pub const SEED_QUOTES: [(&str, &str); 8] = [
    (
        ID1,
        "Corrupting the 0th layer seems to break the sentence structure significantly, while \
         corrupting later layers seems to preserve the appearance of a sentence relatively better.",
    ),
    (
        ID2,
        "The \"sophia trap\" occurred quite frequently during the 3rd layer corruption.",
    ),
    (
        ID3,
        "If I had to say, corrupting the first two layers seems to have a larger impact than \
         corrupting the last two.",
    ),
    (ID4, "Honestly, it feels like they are about the same."),
    (
        ID5,
        "If I had to say, corrupting the first two layers seems to have a larger impact than \
         corrupting the last two.",
    ),
    (
        ID6,
        "Depending on how it is corrupted, it seems that there are cases of hallucinatory \
         corruption where character gender is swapped while maintaining the appearance of a \
         sentence. Therefore, it feels dangerous to crudely compress a model solely based on the \
         evaluation that it \"looks okay.\"",
    ),
    (
        ID7,
        "sophia was also slightly seen during the 3rd layer corruption, and even the special \
         token <BOS> appeared. This is not a very desirable state.",
    ),
    (
        ID8,
        "Additionally, corrupting the final 3rd layer leads to links with strange vocabulary, \
         which seems likely to cause confusion in word selection.",
    ),
];

const ID1: &str = "block0_structure";
const UNIT1: &str = "block 0's lead in mean Δfluency NLL over the runner-up";
const ID2: &str = "last_block_sophia_trap";
const UNIT2: &str = "the last block's lead in mean hidden-word answer rate over the runner-up";
const ID3: &str = "first_half_matters_more";
const UNIT3: &str = "mean KL of the first half of the blocks minus that of the second half";

/// Decides the seed's claims from `report`, in the order of the module docs' rules.
pub fn verdicts(report: &SweepReport) -> Vec<Verdict> {
    let last = report.n_blocks.saturating_sub(1);
    let dense_fluency = Metric::FluencyNll.of_reference(report);
    let dense_hidden = Metric::HiddenAnswerRate.of_reference(report);
    let mut out = Vec::new();

    // 1. Block 0 and sentence structure.
    let claim = "compressing block 0 breaks sentence structure most";
    let op =
        "SUPPORTED if block 0's mean rise in fluency NLL (sampled answers scored by the dense \
              model), over the bonds where every block was compressed alone, exceeds every other \
              block's by more than 1 standard error of the difference; NOT SUPPORTED if another \
              block's exceeds it by more than that; INCONCLUSIVE otherwise";
    match per_block(
        report,
        |c| Metric::FluencyNll.of_cell(c, false) - dense_fluency,
        |c| c.metrics.sampled.fluency_se,
    ) {
        None => out.push(missing(ID1, claim, op, UNIT1, report.n_blocks)),
        Some(p) => {
            let (outcome, runner) = leads(&p, 0);
            let effect = p.mean[0] - p.mean[runner];
            let worst_at = p
                .bonds
                .iter()
                .filter(|&&b| {
                    let v = |k: usize| {
                        report
                            .cell(&[k], b)
                            .map_or(f64::NAN, |c| Metric::FluencyNll.of_cell(c, false))
                    };
                    p.blocks.iter().all(|&k| k == 0 || v(0) > v(k))
                })
                .count();
            let eos: Vec<String> = p
                .blocks
                .iter()
                .map(|&k| {
                    let m = p
                        .bonds
                        .iter()
                        .filter_map(|&b| report.cell(&[k], b))
                        .map(|c| c.metrics.sampled.eos_rate)
                        .sum::<f64>()
                        / p.bonds.len() as f64;
                    format!("block {k}: {m:.3}")
                })
                .collect();
            out.push(Verdict {
                quote: String::new(),
                id: ID1.into(),
                effect: Some(effect),
                effect_unit: UNIT1.into(),
                claim: claim.into(),
                operationalisation: op.into(),
                outcome,
                evidence: format!(
                    "mean Δfluency NLL over bonds {:?} (dense {dense_fluency:.3}): {}; runner-up \
                     block {runner}; block 0 is the worst at {worst_at} of {} bonds; mean rate of \
                     answers closed by <EOS>: {}",
                    p.bonds,
                    listing(&p, 3),
                    p.bonds.len(),
                    eos.join(", ")
                ),
            });
        }
    }

    // 2. The last block and the sophia trap.
    let claim = format!("corrupting block {last} drives the 'sophia trap'");
    let op = format!(
        "SUPPORTED if block {last}'s mean rate of sampled answers containing a hidden word, over \
         the bonds where every block was compressed alone, exceeds every other block's by more \
         than 1 binomial standard error; NOT SUPPORTED if its rate is 0 or another block's \
         exceeds it by more than that; INCONCLUSIVE otherwise"
    );
    let binom_se = |c: &SweepCell| {
        let p = c.metrics.sampled.hidden_answer_rate;
        (p * (1.0 - p) / c.metrics.sampled.answers.max(1) as f64).sqrt()
    };
    match per_block(
        report,
        |c| Metric::HiddenAnswerRate.of_cell(c, false),
        binom_se,
    ) {
        None => out.push(missing(ID2, &claim, &op, UNIT2, report.n_blocks)),
        Some(p) => {
            let (mut outcome, runner) = leads(&p, last);
            let effect = p.mean[last] - p.mean[runner];
            if p.mean[last] <= 0.0 {
                outcome = Outcome::NotSupported;
            }
            let mass = per_block(report, |c| Metric::HiddenMass.of_cell(c, false), |_| 0.0);
            out.push(Verdict {
                quote: String::new(),
                id: ID2.into(),
                effect: Some(effect),
                effect_unit: UNIT2.into(),
                claim,
                operationalisation: op,
                outcome,
                evidence: format!(
                    "mean hidden-word answer rate (dense {dense_hidden:.3}): {}; runner-up block \
                     {runner}; teacher-forced hidden mass: {}",
                    listing(&p, 3),
                    mass.map_or("-".into(), |m| listing(&m, 5))
                ),
            });
        }
    }

    // 3. First half vs second half.
    let half = report.n_blocks / 2;
    let claim = "the first two blocks matter more than the last two";
    let op = format!(
        "SUPPORTED if the mean KL(dense || compressed) of blocks 0..{half} compressed alone, over \
         the bonds where every block was, exceeds that of blocks {half}..{}, NOT SUPPORTED \
         otherwise (KL is deterministic: no noise allowance)",
        report.n_blocks
    );
    match per_block(report, |c| Metric::Kl.of_cell(c, false), |_| 0.0) {
        Some(p) if half >= 1 => {
            let first = p.mean[..half].iter().sum::<f64>() / half as f64;
            let second = p.mean[half..].iter().sum::<f64>() / (p.mean.len() - half) as f64;
            let outcome = if first.is_nan() || second.is_nan() {
                Outcome::Inconclusive
            } else if first > second {
                Outcome::Supported
            } else {
                Outcome::NotSupported
            };
            let loss = per_block(report, |c| Metric::Loss.of_cell(c, false), |_| 0.0);
            let mut evidence = format!(
                "mean KL, first half {first:.4} vs second half {second:.4} ({}); mean loss: {}",
                listing(&p, 4),
                loss.map_or("-".into(), |l| listing(&l, 3))
            );
            // Pair cells, when the sweep has them.
            let firsts: Vec<usize> = (0..half).collect();
            let seconds: Vec<usize> = (half..report.n_blocks).collect();
            for &b in &report.bonds {
                if let (Some(a), Some(z)) = (report.cell(&firsts, b), report.cell(&seconds, b)) {
                    let _ = write!(
                        evidence,
                        "; pairs at bond {b}: KL {:.4} vs {:.4}",
                        a.metrics.teacher_forced.kl, z.metrics.teacher_forced.kl
                    );
                }
            }
            out.push(Verdict {
                quote: String::new(),
                id: ID3.into(),
                effect: Some(first - second),
                effect_unit: UNIT3.into(),
                claim: claim.into(),
                operationalisation: op,
                outcome,
                evidence,
            });
        }
        _ => out.push(missing(ID3, claim, &op, UNIT3, report.n_blocks)),
    }
    out.push(same_settings(report));
    out.push(pairs(report));
    out.push(looks_fine_but_wrong(report));
    out.push(special_tokens(report));
    out.push(strange_vocabulary(report));
    for v in &mut out {
        if let Some((_, q)) = SEED_QUOTES.iter().find(|(id, _)| *id == v.id) {
            v.quote = (*q).into();
        }
    }
    out
}

const ID4: &str = "loosening_vs_tightening";
const UNIT4: &str =
    "the equivalence margin minus the absolute difference in fluency NLL of the two settings";
const ID5: &str = "pairs_first_two_larger";
const UNIT5: &str = "fluency NLL of blocks 0+1 at bond 30 minus that of blocks 2+3";
const ID6: &str = "looks_fine_but_wrong";
const UNIT6: &str =
    "the largest fall in gender-probe accuracy among cells that look fine, minus the margin";
const ID7: &str = "last_block_special_tokens";
const UNIT7: &str = "the last block's lead in mean special-token answer rate over the runner-up";
const ID8: &str = "last_block_strange_vocabulary";
const UNIT8: &str =
    "the last block's lead in mean rise of the novel word-link rate over the runner-up";

/// Rule 6: a cell *looks fine* when its fluency NLL is at most this many nats per token above
/// the dense model's (the dense model finds its answers at most `e^0.25 ≈ 1.28` times less
/// likely per token).
pub const FINE_FLUENCY_MARGIN: f64 = 0.25;
/// Rule 6: a fall in gender-probe accuracy (a fraction of answers) that counts as getting the
/// characters' gender wrong.
pub const WRONG_MARGIN: f64 = 0.10;
/// Rule 4: the equivalence margin, as a fraction of the two settings' mean Δfluency.
pub const SAME_FRACTION: f64 = 0.25;
/// The noise allowance of rules 4–8, in standard errors.
pub const Z: f64 = 2.0;

/// Binomial standard error of a rate `p` over `n` draws (NaN without draws).
fn binom(p: f64, n: usize) -> f64 {
    if n == 0 {
        f64::NAN
    } else {
        (p * (1.0 - p) / n as f64).max(0.0).sqrt()
    }
}

/// A figure of a set of metrics: name, value, standard error (0: deterministic), whether a
/// higher value is worse, printed digits.
type Figure = (
    &'static str,
    fn(&CellMetrics) -> f64,
    fn(&CellMetrics) -> f64,
    bool,
    usize,
);

const FIGURES: [Figure; 13] = [
    ("KL", |m| m.teacher_forced.kl, |_| 0.0, true, 4),
    ("loss", |m| m.teacher_forced.loss, |_| 0.0, true, 3),
    ("accuracy", |m| m.teacher_forced.accuracy, |_| 0.0, false, 3),
    (
        "hidden mass",
        |m| m.teacher_forced.hidden_mass,
        |_| 0.0,
        true,
        5,
    ),
    ("fact margin", |m| m.fact_margin, |_| 0.0, false, 2),
    (
        "fluency NLL",
        |m| m.sampled.fluency_nll,
        |m| m.sampled.fluency_se,
        true,
        3,
    ),
    (
        "fact accuracy",
        |m| m.sampled.fact_accuracy,
        |m| binom(m.sampled.fact_accuracy, m.sampled.fact_answers),
        false,
        3,
    ),
    (
        "gender accuracy",
        |m| m.sampled.gender_accuracy,
        |m| binom(m.sampled.gender_accuracy, m.sampled.gender_answers),
        false,
        3,
    ),
    (
        "seed answers exact",
        |m| m.sampled.seed_exact_rate,
        |m| binom(m.sampled.seed_exact_rate, m.sampled.seed_answers),
        false,
        3,
    ),
    (
        "hidden-word answers",
        |m| m.sampled.hidden_answer_rate,
        |m| binom(m.sampled.hidden_answer_rate, m.sampled.answers),
        true,
        3,
    ),
    (
        "special-token answers",
        |m| m.sampled.special_answer_rate,
        |m| binom(m.sampled.special_answer_rate, m.sampled.answers),
        true,
        3,
    ),
    (
        "answers closed by <EOS>",
        |m| m.sampled.eos_rate,
        |m| binom(m.sampled.eos_rate, m.sampled.answers),
        false,
        3,
    ),
    (
        "novel word links",
        |m| m.sampled.novel_bigram_rate,
        |m| m.sampled.novel_bigram_se,
        true,
        3,
    ),
];

/// Every figure of `a` against `b`: values, and which is worse beyond `Z` standard errors of
/// the difference (any difference for the deterministic, teacher-forced figures).
fn compare_figures(an: &str, a: &CellMetrics, bn: &str, b: &CellMetrics) -> String {
    let mut items = Vec::new();
    let (mut worse_a, mut worse_b) = (Vec::new(), Vec::new());
    for (name, get, se, higher_worse, prec) in FIGURES {
        let (va, vb) = (get(a), get(b));
        if va.is_nan() || vb.is_nan() {
            items.push(format!("{name}: not measured"));
            continue;
        }
        let (sa, sb) = (se(a), se(b));
        let noise = Z * sa.hypot(sb);
        let deterministic = sa == 0.0 && sb == 0.0;
        let d = vb - va;
        let verdict = if d == 0.0 || noise.is_nan() || d.abs() <= noise {
            "within noise".to_string()
        } else {
            let b_worse = (d > 0.0) == higher_worse;
            if b_worse {
                worse_b.push(name);
            } else {
                worse_a.push(name);
            }
            format!("{} worse", if b_worse { bn } else { an })
        };
        let value = |v: f64, e: f64| {
            if deterministic || e.is_nan() {
                format!("{v:.prec$}")
            } else {
                format!("{v:.prec$} ± {e:.prec$}")
            }
        };
        items.push(format!(
            "{name} {} vs {} ({verdict})",
            value(va, sa),
            value(vb, sb)
        ));
    }
    format!(
        "{an} vs {bn}: {}; beyond noise, {an} is worse on {} and {bn} on {}",
        items.join(", "),
        list_or_none(&worse_a),
        list_or_none(&worse_b)
    )
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn no_setting(id: &str, claim: &str, op: String, unit: &str, wanted: &[&str]) -> Verdict {
    Verdict {
        id: id.into(),
        claim: claim.into(),
        quote: String::new(),
        operationalisation: op,
        outcome: Outcome::Inconclusive,
        evidence: format!(
            "the sweep did not score the seed setting(s) {} (run_settings with SEED_SETTINGS)",
            wanted.join(", ")
        ),
        effect: None,
        effect_unit: unit.into(),
    }
}

fn fluency_pm(c: &SettingCell) -> String {
    format!(
        "{:.3} ± {:.3}",
        c.metrics.sampled.fluency_nll, c.metrics.sampled.fluency_se
    )
}

// 4. Loosening vs tightening.
fn same_settings(report: &SweepReport) -> Verdict {
    let claim = "loosening the bonds towards the end (blocks 0-3 at 39, 42, 46, 47) and \
                 tightening them (47, 46, 42, 39) do about the same damage";
    let op = format!(
        "On fluency NLL (sampled answers scored by the dense model): NOT SUPPORTED if the two \
         settings differ by more than {Z} standard errors of the difference and by more than the \
         equivalence margin ({SAME_FRACTION} of their mean rise over dense), SUPPORTED if the \
         difference plus {Z} standard errors lies within the margin, INCONCLUSIVE otherwise"
    );
    let (Some(a), Some(b)) = (report.setting("loosening"), report.setting("tightening")) else {
        return no_setting(ID4, claim, op, UNIT4, &["loosening", "tightening"]);
    };
    let dense = report.reference.sampled.fluency_nll;
    let (fa, fb) = (a.metrics.sampled.fluency_nll, b.metrics.sampled.fluency_nll);
    let se = a
        .metrics
        .sampled
        .fluency_se
        .hypot(b.metrics.sampled.fluency_se);
    let d = fb - fa;
    let margin = (SAME_FRACTION * ((fa - dense) + (fb - dense)) / 2.0).max(0.0);
    let outcome = if d.is_nan() || se.is_nan() || margin.is_nan() {
        Outcome::Inconclusive
    } else if d.abs() > Z * se && d.abs() > margin {
        Outcome::NotSupported
    } else if d.abs() + Z * se < margin {
        Outcome::Supported
    } else {
        Outcome::Inconclusive
    };
    let worse = if d > 0.0 {
        "tightening"
    } else if d < 0.0 {
        "loosening"
    } else {
        "neither"
    };
    Verdict {
        id: ID4.into(),
        claim: claim.into(),
        quote: String::new(),
        operationalisation: op,
        outcome,
        evidence: format!(
            "fluency NLL (dense {dense:.3}): loosening {}, tightening {}; tightening minus \
             loosening {d:+.3} ± {se:.3} ({worse} higher), equivalence margin {margin:.3}. {}",
            fluency_pm(a),
            fluency_pm(b),
            compare_figures("loosening", &a.metrics, "tightening", &b.metrics)
        ),
        effect: (!(d.is_nan() || margin.is_nan())).then(|| margin - d.abs()),
        effect_unit: UNIT4.into(),
    }
}

// 5. Consecutive pairs.
fn pairs(report: &SweepReport) -> Verdict {
    let claim = "corrupting blocks 0+1 at bond 30 does more damage than blocks 2+3 (decided on \
                 the pair cells, as the seed did; claim 3 reads single blocks)";
    let op = format!(
        "SUPPORTED if the fluency NLL of blocks 0+1 at bond 30 exceeds that of blocks 2+3 by \
         more than {Z} standard errors of the difference, NOT SUPPORTED if it is lower by more \
         than that, INCONCLUSIVE otherwise"
    );
    let (Some(a), Some(b)) = (report.setting("pair_0_1"), report.setting("pair_2_3")) else {
        return no_setting(ID5, claim, op, UNIT5, &["pair_0_1", "pair_2_3"]);
    };
    let d = a.metrics.sampled.fluency_nll - b.metrics.sampled.fluency_nll;
    let se = a
        .metrics
        .sampled
        .fluency_se
        .hypot(b.metrics.sampled.fluency_se);
    let outcome = if d.is_nan() || se.is_nan() || d.abs() <= Z * se {
        Outcome::Inconclusive
    } else if d > 0.0 {
        Outcome::Supported
    } else {
        Outcome::NotSupported
    };
    let mut evidence = format!(
        "fluency NLL (dense {:.3}): blocks 0+1 {}, blocks 2+3 {}; difference {d:+.3} ± {se:.3}",
        report.reference.sampled.fluency_nll,
        fluency_pm(a),
        fluency_pm(b)
    );
    if let Some(m) = report.setting("pair_1_2") {
        let _ = write!(
            evidence,
            "; blocks 1+2 (the middle pair) {}, hidden-word answers {:.3}",
            fluency_pm(m),
            m.metrics.sampled.hidden_answer_rate
        );
    }
    let _ = write!(
        evidence,
        ". {}",
        compare_figures("blocks 0+1", &a.metrics, "blocks 2+3", &b.metrics)
    );
    Verdict {
        id: ID5.into(),
        claim: claim.into(),
        quote: String::new(),
        operationalisation: op,
        outcome,
        evidence,
        effect: (!d.is_nan()).then_some(d),
        effect_unit: UNIT5.into(),
    }
}

// 6. Looking fine while wrong.
fn looks_fine_but_wrong(report: &SweepReport) -> Verdict {
    let claim = "some compressed models keep the appearance of a sentence (fluent answers) \
                 while getting the characters' gender wrong";
    let op = format!(
        "A cell looks fine when its fluency NLL is at most {FINE_FLUENCY_MARGIN} nats above the \
         dense model's; SUPPORTED if some such cell's gender-probe accuracy is below the dense \
         model's by more than {WRONG_MARGIN} and by more than {Z} standard errors of the \
         difference, NOT SUPPORTED if every such cell's fall is below {WRONG_MARGIN} by more \
         than {Z} standard errors, INCONCLUSIVE otherwise or when no cell looks fine"
    );
    let method = report.primary_method();
    let n = report.n_blocks;
    let mut cells: Vec<(String, &[usize], &CellMetrics)> = report
        .cells_of(method)
        .map(|c| {
            (
                format!("{} @ {}", block_label(&c.blocks, n), c.bond),
                c.blocks.as_slice(),
                &c.metrics,
            )
        })
        .collect();
    cells.extend(
        report
            .settings
            .iter()
            .filter(|s| s.method == method)
            .map(|s| (s.id.clone(), s.blocks.as_slice(), &s.metrics)),
    );
    let r = &report.reference.sampled;
    let (dense_f, dense_g, dense_a) = (r.fluency_nll, r.gender_accuracy, r.fact_accuracy);
    let mk = |outcome, evidence: String, effect| Verdict {
        id: ID6.into(),
        claim: claim.into(),
        quote: String::new(),
        operationalisation: op.clone(),
        outcome,
        evidence,
        effect,
        effect_unit: UNIT6.into(),
    };
    if dense_g.is_nan() || r.gender_answers == 0 {
        return mk(
            Outcome::Inconclusive,
            "no gender-probe answers were scored (no fact probe with fact gender or pronoun)"
                .into(),
            None,
        );
    }
    let fall = |m: &CellMetrics| {
        let s = &m.sampled;
        let se = binom(dense_g, r.gender_answers).hypot(binom(s.gender_accuracy, s.gender_answers));
        (dense_g - s.gender_accuracy, se)
    };
    let fine: Vec<&(String, &[usize], &CellMetrics)> = cells
        .iter()
        .filter(|(_, _, m)| m.sampled.fluency_nll - dense_f <= FINE_FLUENCY_MARGIN)
        .collect();
    let head = format!(
        "dense fluency NLL {dense_f:.3}, gender accuracy {dense_g:.3} ({} answers), fact accuracy \
         {dense_a:.3}; {} of {} cells (grid and settings) look fine",
        r.gender_answers,
        fine.len(),
        cells.len()
    );
    if fine.is_empty() {
        return mk(Outcome::Inconclusive, head, None);
    }
    let wrong: Vec<&&(String, &[usize], &CellMetrics)> = fine
        .iter()
        .filter(|(_, _, m)| {
            let (f, se) = fall(m);
            f > WRONG_MARGIN && f > Z * se
        })
        .collect();
    let right = fine
        .iter()
        .filter(|(_, _, m)| {
            let (f, se) = fall(m);
            f + Z * se < WRONG_MARGIN
        })
        .count();
    let outcome = if !wrong.is_empty() {
        Outcome::Supported
    } else if right == fine.len() {
        Outcome::NotSupported
    } else {
        Outcome::Inconclusive
    };
    let largest = fine
        .iter()
        .map(|(_, _, m)| fall(m).0)
        .fold(f64::NAN, f64::max);
    let listed: Vec<String> = wrong
        .iter()
        .map(|(label, _, m)| {
            let (f, se) = fall(m);
            format!(
                "{label} (Δfluency {:+.3}, gender {:.3}, fall {f:.3} ± {se:.3}, fact {:.3})",
                m.sampled.fluency_nll - dense_f,
                m.sampled.gender_accuracy,
                m.sampled.fact_accuracy
            )
        })
        .collect();
    let by_block: Vec<(usize, usize)> = (0..n)
        .map(|k| (k, wrong.iter().filter(|(_, b, _)| b.contains(&k)).count()))
        .collect();
    let most = by_block.iter().map(|&(_, c)| c).max().unwrap_or(0);
    let most_blocks: Vec<String> = by_block
        .iter()
        .filter(|&&(_, c)| c == most && c > 0)
        .map(|(k, _)| format!("block {k}"))
        .collect();
    let fact_wrong: Vec<&str> = fine
        .iter()
        .filter(|(_, _, m)| {
            let s = &m.sampled;
            let se = binom(dense_a, r.fact_answers).hypot(binom(s.fact_accuracy, s.fact_answers));
            let f = dense_a - s.fact_accuracy;
            f > WRONG_MARGIN && f > Z * se
        })
        .map(|(label, _, _)| label.as_str())
        .collect();
    let evidence = format!(
        "{head}; of these, {} get gender wrong (fall > {WRONG_MARGIN} and > {Z} SE): {}; {right} \
         are right within the margin, {} undecided; largest fall in gender accuracy among them \
         {largest:.3}; wrong cells per block: {} (most: {}); fine-looking cells whose fact \
         accuracy falls by more than {WRONG_MARGIN} and {Z} SE: {}",
        wrong.len(),
        if listed.is_empty() {
            "none".into()
        } else {
            listed.join(", ")
        },
        fine.len() - right - wrong.len(),
        by_block
            .iter()
            .map(|(k, c)| format!("block {k}: {c}"))
            .collect::<Vec<_>>()
            .join(", "),
        if most_blocks.is_empty() {
            "none".into()
        } else {
            most_blocks.join(", ")
        },
        list_or_none(&fact_wrong)
    );
    mk(
        outcome,
        evidence,
        (!largest.is_nan()).then_some(largest - WRONG_MARGIN),
    )
}

/// The block with the largest mean (`"block k"`; ties: the lowest index), or `"none (all
/// equal)"`.
fn leader(p: &PerBlock) -> String {
    let best = p
        .blocks
        .iter()
        .copied()
        .fold(0, |best, b| if p.mean[b] > p.mean[best] { b } else { best });
    if p.blocks.iter().all(|&b| p.mean[b] == p.mean[best]) {
        "none (all equal)".into()
    } else {
        format!("block {best}")
    }
}

// 7. Special tokens leaking.
fn special_tokens(report: &SweepReport) -> Verdict {
    let last = report.n_blocks.saturating_sub(1);
    let claim = format!(
        "compressing block {last} raises the rate of answers with a special token (<BOS>, \
         <PAD>, <UNK>) most"
    );
    let op = format!(
        "SUPPORTED if block {last}'s mean rate of sampled answers containing <BOS>, <PAD> or \
         <UNK>, over the bonds where every block was compressed alone, exceeds every other \
         block's by more than {Z} binomial standard errors of the difference; NOT SUPPORTED if \
         its rate is 0 or another block's exceeds it by more than that; INCONCLUSIVE otherwise"
    );
    let Some(p) = per_block(
        report,
        |c| c.metrics.sampled.special_answer_rate,
        |c| {
            binom(
                c.metrics.sampled.special_answer_rate,
                c.metrics.sampled.answers,
            )
        },
    ) else {
        return missing(ID7, &claim, &op, UNIT7, report.n_blocks);
    };
    let (mut outcome, runner) = leads_by(&p, last, Z);
    if p.mean[last] <= 0.0 {
        outcome = Outcome::NotSupported;
    }
    let tokens = per_block(report, |c| c.metrics.sampled.special_token_rate, |_| 0.0);
    Verdict {
        id: ID7.into(),
        claim,
        quote: String::new(),
        operationalisation: op,
        outcome,
        evidence: format!(
            "mean special-token answer rate over bonds {:?} (dense {:.3}): {}; highest: {}; \
             runner-up to block {last}: block {runner}; special-token share of sampled tokens: {}",
            p.bonds,
            report.reference.sampled.special_answer_rate,
            listing(&p, 3),
            leader(&p),
            tokens.map_or("-".into(), |t| listing(&t, 4))
        ),
        effect: Some(p.mean[last] - p.mean[runner]),
        effect_unit: UNIT7.into(),
    }
}

// 8. Late blocks and strange vocabulary.
fn strange_vocabulary(report: &SweepReport) -> Verdict {
    let last = report.n_blocks.saturating_sub(1);
    let claim =
        format!("compressing block {last} makes the most answer word links never seen in training");
    let op = format!(
        "SUPPORTED if block {last}'s mean rise in the rate of answer word links (consecutive \
         token pairs) never seen in the training text, over the bonds where every block was \
         compressed alone, exceeds every other block's by more than {Z} standard errors of the \
         difference; NOT SUPPORTED if another block's exceeds it by more than that; \
         INCONCLUSIVE otherwise"
    );
    let dense = report.reference.sampled.novel_bigram_rate;
    if dense.is_nan() {
        let mut v = missing(ID8, &claim, &op, UNIT8, report.n_blocks);
        v.evidence = "the novel word-link rate was not measured (the evaluator had no training \
                      rows: Evaluator::with_training_rows)"
            .into();
        return v;
    }
    let Some(p) = per_block(
        report,
        |c| c.metrics.sampled.novel_bigram_rate - dense,
        |c| c.metrics.sampled.novel_bigram_se,
    ) else {
        return missing(ID8, &claim, &op, UNIT8, report.n_blocks);
    };
    let (outcome, runner) = leads_by(&p, last, Z);
    Verdict {
        id: ID8.into(),
        claim,
        quote: String::new(),
        operationalisation: op,
        outcome,
        evidence: format!(
            "mean rise in the novel word-link rate over bonds {:?} (dense {dense:.3}): {}; \
             highest: {}; runner-up to block {last}: block {runner}",
            p.bonds,
            listing(&p, 3),
            leader(&p)
        ),
        effect: Some(p.mean[last] - p.mean[runner]),
        effect_unit: UNIT8.into(),
    }
}

/// The verdicts as text, one paragraph each: the claim and its id, the seed's words, the
/// outcome, the rule and the numbers, each on its own line.
pub fn format_verdicts(verdicts: &[Verdict]) -> String {
    let mut s = String::new();
    for (i, v) in verdicts.iter().enumerate() {
        let _ = writeln!(s, "{}. {} [{}]", i + 1, v.claim, v.id);
        if !v.quote.is_empty() {
            let _ = writeln!(s, "   the seed: \"{}\"", v.quote);
        }
        let _ = writeln!(s, "   outcome: {}", v.outcome.label());
        let _ = writeln!(s, "   rule: {}", v.operationalisation);
        let _ = writeln!(s, "   numbers: {}", v.evidence);
        if let Some(e) = v.effect {
            let _ = writeln!(s, "   effect: {e:+.4} ({})", v.effect_unit);
        }
    }
    s
}

impl Outcome {
    /// `"SUPPORTED"`, `"NOT SUPPORTED"` or `"INCONCLUSIVE"`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Supported => "SUPPORTED",
            Outcome::NotSupported => "NOT SUPPORTED",
            Outcome::Inconclusive => "INCONCLUSIVE",
        }
    }
}

//! The seed's three claims, decided from the sweep's numbers.
//!
//! Each claim is read on the **single-block** cells, over the bonds at which every block was
//! swept (the "common bonds"); "block 0" is the first block and "block 3" the last (the seed's
//! model has four). Δ means "compressed minus dense".
//!
//! 1. *Compressing block 0 breaks sentence structure most*: the first block has the largest
//!    mean Δfluency (NLL of sampled answers under the dense model). Inconclusive when its lead
//!    over the runner-up is within one standard error of the difference of the two means.
//! 2. *Corrupting block 3 drives the "sophia trap"*: the last block has the largest mean rate of
//!    sampled answers containing a hidden word, and that rate is above zero. Inconclusive when
//!    its lead is within one (binomial) standard error.
//! 3. *The first two blocks matter more than the last two*: the mean KL(dense ‖ compressed) of
//!    the first half of the blocks exceeds that of the second half. KL is teacher-forced and
//!    deterministic, so no noise allowance.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::Metric;
use crate::sweep::{SweepCell, SweepReport};

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
    /// The claim, in the seed's words.
    pub claim: String,
    /// How it was measured.
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
    let runner = p
        .blocks
        .iter()
        .copied()
        .filter(|&b| b != target)
        .max_by(|&a, &b| p.mean[a].total_cmp(&p.mean[b]))
        .unwrap_or(target);
    let gap = p.mean[target] - p.mean[runner];
    let noise = (p.se[target].powi(2) + p.se[runner].powi(2)).sqrt();
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

const ID1: &str = "block0_structure";
const UNIT1: &str = "block 0's lead in mean Δfluency NLL over the runner-up";
const ID2: &str = "last_block_sophia_trap";
const UNIT2: &str = "the last block's lead in mean hidden-word answer rate over the runner-up";
const ID3: &str = "first_half_matters_more";
const UNIT3: &str = "mean KL of the first half of the blocks minus that of the second half";

/// Decides the seed's three claims from `report` (see the module docs).
pub fn verdicts(report: &SweepReport) -> Vec<Verdict> {
    let last = report.n_blocks.saturating_sub(1);
    let dense_fluency = Metric::FluencyNll.of_reference(report);
    let dense_hidden = Metric::HiddenAnswerRate.of_reference(report);
    let mut out = Vec::new();

    // 1. Block 0 and sentence structure.
    let claim = "compressing block 0 breaks sentence structure most";
    let op = "block 0 has the largest mean increase in fluency NLL (sampled answers scored by the \
              dense model) over the bonds where every block was compressed alone; within one \
              standard error of the runner-up: inconclusive";
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
        "block {last} has the largest mean rate of sampled answers containing a hidden word over \
         the common bonds, and that rate is above 0; within one binomial standard error of the \
         runner-up: inconclusive"
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
        "mean KL(dense || compressed) of blocks 0..{half} compressed alone exceeds that of blocks \
         {half}..{} over the common bonds (KL is deterministic: no noise allowance)",
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
    out
}

/// The verdicts as text, one paragraph each.
pub fn format_verdicts(verdicts: &[Verdict]) -> String {
    let mut s = String::new();
    for (i, v) in verdicts.iter().enumerate() {
        let o = match v.outcome {
            Outcome::Supported => "SUPPORTED",
            Outcome::NotSupported => "NOT SUPPORTED",
            Outcome::Inconclusive => "INCONCLUSIVE",
        };
        let _ = writeln!(s, "{}. \"{}\": {o}", i + 1, v.claim);
        let _ = writeln!(s, "   measured as: {}", v.operationalisation);
        let _ = writeln!(s, "   numbers: {}", v.evidence);
    }
    s
}

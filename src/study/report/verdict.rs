//! The seed's claims, decided from the sweep's numbers.
//!
//! Each claim is one [`Rule`] of the list [`RULES`]: its id, the seed's words, the claim, the
//! decision rule in words, and the function that decides it ([`Rule::decide`]). Every
//! [`Verdict`] it makes carries, separately: the seed's own words (`quote`), what is tested
//! (`claim`), the outcome for this run, the decision rule in one sentence
//! (`operationalisation`) and the numbers (`evidence`, and the one number the rule compares,
//! `effect`); the text ([`format_verdicts`]), `verdicts.json` and the HTML report print those
//! fields. The metrics the rules read — their values, standard errors and digits — are the
//! registry's ([`super::metrics`]). Unless a rule says otherwise, a claim about single blocks is read on the
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

use super::metrics::{MetricDef, Subject};
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
    // Every block needs a cell of its own, so no more blocks than cells (`n_blocks` may be
    // anything a file says).
    if report.n_blocks > report.cells.len() {
        return None;
    }
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

/// How a rule decided a claim on one report: the outcome and the numbers behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The outcome.
    pub outcome: Outcome,
    /// The numbers behind it ([`Verdict::evidence`]).
    pub evidence: String,
    /// The one number the rule compares ([`Verdict::effect`]).
    pub effect: Option<f64>,
}

impl Decision {
    /// INCONCLUSIVE for want of numbers (missing cells or settings), with why; no effect.
    pub fn inconclusive(evidence: impl Into<String>) -> Self {
        Decision {
            outcome: Outcome::Inconclusive,
            evidence: evidence.into(),
            effect: None,
        }
    }
}

/// One of the seed's claims and how the sweep's numbers decide it: the list [`RULES`] is every
/// seed verdict's single source (the text, `verdicts.json` and the HTML report print the
/// [`Verdict`]s it makes).
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The stable key ([`Verdict::id`]).
    pub id: &'static str,
    /// The seed's own words for the claim (article section "Generation Experiments", its
    /// discussion and summary).
    pub quote: &'static str,
    /// What is tested, in one line, for a report (it may name the report's last block).
    pub claim: fn(&SweepReport) -> String,
    /// The decision rule in one sentence, for a report.
    pub operationalisation: fn(&SweepReport) -> String,
    /// What the decision's effect measures, in words.
    pub effect_unit: &'static str,
    /// Decides the claim on a report.
    pub decide: fn(&SweepReport) -> Decision,
}

impl Rule {
    /// The rule's verdict on `report`.
    pub fn verdict(&self, report: &SweepReport) -> Verdict {
        let Decision {
            outcome,
            evidence,
            effect,
        } = (self.decide)(report);
        Verdict {
            id: self.id.into(),
            claim: (self.claim)(report),
            quote: self.quote.into(),
            operationalisation: (self.operationalisation)(report),
            outcome,
            evidence,
            effect,
            effect_unit: self.effect_unit.into(),
        }
    }

    /// The rule with verdict id `id`, if it is one of [`RULES`].
    pub fn find(id: &str) -> Option<&'static Rule> {
        RULES.iter().find(|r| r.id == id)
    }
}

/// The seed's claims, in the order of the module docs' rules.
pub const RULES: [Rule; 8] = [
    Rule {
        id: "block0_structure",
        quote: "Corrupting the 0th layer seems to break the sentence structure significantly, \
                while corrupting later layers seems to preserve the appearance of a sentence \
                relatively better.",
        claim: |_| "compressing block 0 breaks sentence structure most".into(),
        operationalisation: |_| {
            "SUPPORTED if block 0's mean rise in fluency NLL (sampled answers scored by the dense \
             model), over the bonds where every block was compressed alone, exceeds every other \
             block's by more than 1 standard error of the difference; NOT SUPPORTED if another \
             block's exceeds it by more than that; INCONCLUSIVE otherwise"
                .into()
        },
        effect_unit: "block 0's lead in mean Δfluency NLL over the runner-up",
        decide: block0_structure,
    },
    Rule {
        id: "last_block_sophia_trap",
        quote: "The \"sophia trap\" occurred quite frequently during the 3rd layer corruption.",
        claim: |r| {
            format!(
                "corrupting block {} drives the 'sophia trap'",
                last_block(r)
            )
        },
        operationalisation: |r| {
            let last = last_block(r);
            format!(
                "SUPPORTED if block {last}'s mean rate of sampled answers containing a hidden \
                 word, over the bonds where every block was compressed alone, exceeds every other \
                 block's by more than 1 binomial standard error; NOT SUPPORTED if its rate is 0 or \
                 another block's exceeds it by more than that; INCONCLUSIVE otherwise"
            )
        },
        effect_unit: "the last block's lead in mean hidden-word answer rate over the runner-up",
        decide: sophia_trap,
    },
    Rule {
        id: "first_half_matters_more",
        quote: FIRST_TWO_QUOTE,
        claim: |_| "the first two blocks matter more than the last two".into(),
        operationalisation: |r| {
            let half = r.n_blocks / 2;
            format!(
                "SUPPORTED if the mean KL(dense || compressed) of blocks 0..{half} compressed \
                 alone, over the bonds where every block was, exceeds that of blocks {half}..{}, \
                 NOT SUPPORTED otherwise (KL is deterministic: no noise allowance)",
                r.n_blocks
            )
        },
        effect_unit: "mean KL of the first half of the blocks minus that of the second half",
        decide: first_half,
    },
    Rule {
        id: "loosening_vs_tightening",
        quote: "Honestly, it feels like they are about the same.",
        claim: |_| {
            "loosening the bonds towards the end (blocks 0-3 at 39, 42, 46, 47) and tightening \
             them (47, 46, 42, 39) do about the same damage"
                .into()
        },
        operationalisation: |_| {
            format!(
                "On fluency NLL (sampled answers scored by the dense model): NOT SUPPORTED if the \
                 two settings differ by more than {Z} standard errors of the difference and by \
                 more than the equivalence margin ({SAME_FRACTION} of their mean rise over \
                 dense), SUPPORTED if the difference plus {Z} standard errors lies within the \
                 margin, INCONCLUSIVE otherwise"
            )
        },
        effect_unit: "the equivalence margin minus the absolute difference in fluency NLL of the \
                      two settings",
        decide: same_settings,
    },
    Rule {
        id: "pairs_first_two_larger",
        quote: FIRST_TWO_QUOTE,
        claim: |_| {
            "corrupting blocks 0+1 at bond 30 does more damage than blocks 2+3 (decided on the \
             pair cells, as the seed did; claim 3 reads single blocks)"
                .into()
        },
        operationalisation: |_| {
            format!(
                "SUPPORTED if the fluency NLL of blocks 0+1 at bond 30 exceeds that of blocks 2+3 \
                 by more than {Z} standard errors of the difference, NOT SUPPORTED if it is lower \
                 by more than that, INCONCLUSIVE otherwise"
            )
        },
        effect_unit: "fluency NLL of blocks 0+1 at bond 30 minus that of blocks 2+3",
        decide: pairs,
    },
    Rule {
        id: "looks_fine_but_wrong",
        quote: "Depending on how it is corrupted, it seems that there are cases of hallucinatory \
                corruption where character gender is swapped while maintaining the appearance \
                of a sentence. Therefore, it feels dangerous to crudely compress a model solely \
                based on the evaluation that it \"looks okay.\"",
        claim: |_| {
            "some compressed models keep the appearance of a sentence (fluent answers) while \
             getting the characters' gender wrong"
                .into()
        },
        operationalisation: |_| {
            format!(
                "A cell looks fine when its fluency NLL is at most {FINE_FLUENCY_MARGIN} nats \
                 above the dense model's; SUPPORTED if some such cell's gender-probe accuracy is \
                 below the dense model's by more than {WRONG_MARGIN} and by more than {Z} \
                 standard errors of the difference, NOT SUPPORTED if every such cell's fall is \
                 below {WRONG_MARGIN} by more than {Z} standard errors, INCONCLUSIVE otherwise \
                 or when no cell looks fine"
            )
        },
        effect_unit: "the largest fall in gender-probe accuracy among cells that look fine, \
                      minus the margin",
        decide: looks_fine_but_wrong,
    },
    Rule {
        id: "last_block_special_tokens",
        quote: "sophia was also slightly seen during the 3rd layer corruption, and even the \
                special token <BOS> appeared. This is not a very desirable state.",
        claim: |r| {
            format!(
                "compressing block {} raises the rate of answers with a special token (<BOS>, \
                 <PAD>, <UNK>) most",
                last_block(r)
            )
        },
        operationalisation: |r| {
            let last = last_block(r);
            format!(
                "SUPPORTED if block {last}'s mean rate of sampled answers containing <BOS>, \
                 <PAD> or <UNK>, over the bonds where every block was compressed alone, exceeds \
                 every other block's by more than {Z} binomial standard errors of the \
                 difference; NOT SUPPORTED if its rate is 0 or another block's exceeds it by \
                 more than that; INCONCLUSIVE otherwise"
            )
        },
        effect_unit: "the last block's lead in mean special-token answer rate over the runner-up",
        decide: special_tokens,
    },
    Rule {
        id: "last_block_strange_vocabulary",
        quote: "Additionally, corrupting the final 3rd layer leads to links with strange \
                vocabulary, which seems likely to cause confusion in word selection.",
        claim: |r| {
            format!(
                "compressing block {} makes the most answer word links never seen in training",
                last_block(r)
            )
        },
        operationalisation: |r| {
            let last = last_block(r);
            format!(
                "SUPPORTED if block {last}'s mean rise in the rate of answer word links \
                 (consecutive token pairs) never seen in the training text, over the bonds where \
                 every block was compressed alone, exceeds every other block's by more than {Z} \
                 standard errors of the difference; NOT SUPPORTED if another block's exceeds it \
                 by more than that; INCONCLUSIVE otherwise"
            )
        },
        effect_unit: "the last block's lead in mean rise of the novel word-link rate over the \
                      runner-up",
        decide: strange_vocabulary,
    },
];

/// The seed's words behind claims 3 and 5 (the same question, read on single blocks and on
/// pairs).
const FIRST_TWO_QUOTE: &str = "If I had to say, corrupting the first two layers seems to have a \
                               larger impact than corrupting the last two.";

/// Decides the seed's claims from `report`: every [`Rule`] of [`RULES`], in order.
pub fn verdicts(report: &SweepReport) -> Vec<Verdict> {
    RULES.iter().map(|r| r.verdict(report)).collect()
}

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

/// The index of the report's last block.
fn last_block(report: &SweepReport) -> usize {
    report.n_blocks.saturating_sub(1)
}

/// Why a claim about single blocks is INCONCLUSIVE without the cells.
fn no_common_bond(report: &SweepReport) -> Decision {
    Decision::inconclusive(format!(
        "the sweep has no bond at which each of the {} blocks was compressed alone",
        report.n_blocks
    ))
}

/// Why a claim about the seed's settings is INCONCLUSIVE without them.
fn no_setting(wanted: &[&str]) -> Decision {
    Decision::inconclusive(format!(
        "the sweep did not score the seed setting(s) {} (run_settings with SEED_SETTINGS)",
        wanted.join(", ")
    ))
}

/// The dense reference's value of a metric.
fn dense_value(report: &SweepReport, m: &MetricDef) -> f64 {
    m.value(Subject::Dense(&report.reference))
}

/// [`per_block`] of metric `d` less `shift` (the dense value, for a rise; or 0), with the
/// metric's standard errors.
fn per_block_of(report: &SweepReport, d: &MetricDef, shift: f64) -> Option<PerBlock> {
    per_block(
        report,
        |c| d.of_metrics(&c.metrics) - shift,
        |c| d.se(&c.metrics),
    )
}

/// The per-block means of metric `d` (no standard errors) as evidence, `-` without common
/// bonds.
fn mean_listing(report: &SweepReport, d: &MetricDef) -> String {
    per_block(report, |c| d.of_metrics(&c.metrics), |_| 0.0)
        .map_or("-".into(), |p| listing(&p, d.evidence_digits))
}

/// Rules 2 and 7: does the last block's mean `rate` lead every other block's by more than `z`
/// standard errors of the difference (NOT SUPPORTED also when its rate is 0)? The per-block
/// means, the outcome and the runner-up; `None` without common bonds.
fn last_block_leads(
    report: &SweepReport,
    rate: &MetricDef,
    z: f64,
) -> Option<(PerBlock, Outcome, usize)> {
    let last = last_block(report);
    let p = per_block_of(report, rate, 0.0)?;
    let (mut outcome, runner) = leads_by(&p, last, z);
    if p.mean[last] <= 0.0 {
        outcome = Outcome::NotSupported;
    }
    Some((p, outcome, runner))
}

// 1. Block 0 and sentence structure.
fn block0_structure(report: &SweepReport) -> Decision {
    let fluency = Metric::FluencyNll.def();
    let eos = Metric::EosRate.def();
    let dense_fluency = dense_value(report, fluency);
    let Some(p) = per_block_of(report, fluency, dense_fluency) else {
        return no_common_bond(report);
    };
    let (outcome, runner) = leads_by(&p, 0, 1.0);
    let worst_at = p
        .bonds
        .iter()
        .filter(|&&b| {
            let v = |k: usize| {
                report
                    .cell(&[k], b)
                    .map_or(f64::NAN, |c| fluency.of_metrics(&c.metrics))
            };
            p.blocks.iter().all(|&k| k == 0 || v(0) > v(k))
        })
        .count();
    Decision {
        outcome,
        evidence: format!(
            "mean Δfluency NLL over bonds {:?} (dense {dense_fluency:.3}): {}; runner-up block \
             {runner}; block 0 is the worst at {worst_at} of {} bonds; mean rate of answers \
             closed by <EOS>: {}",
            p.bonds,
            listing(&p, fluency.evidence_digits),
            p.bonds.len(),
            mean_listing(report, eos)
        ),
        effect: Some(p.mean[0] - p.mean[runner]),
    }
}

// 2. The last block and the sophia trap.
fn sophia_trap(report: &SweepReport) -> Decision {
    let last = last_block(report);
    let (hidden, mass) = (Metric::HiddenAnswerRate.def(), Metric::HiddenMass.def());
    let Some((p, outcome, runner)) = last_block_leads(report, hidden, 1.0) else {
        return no_common_bond(report);
    };
    Decision {
        outcome,
        evidence: format!(
            "mean hidden-word answer rate (dense {:.3}): {}; runner-up block {runner}; \
             teacher-forced hidden mass: {}",
            dense_value(report, hidden),
            listing(&p, hidden.evidence_digits),
            mean_listing(report, mass)
        ),
        effect: Some(p.mean[last] - p.mean[runner]),
    }
}

// 3. First half vs second half.
fn first_half(report: &SweepReport) -> Decision {
    let half = report.n_blocks / 2;
    let (kl, loss) = (Metric::Kl.def(), Metric::Loss.def());
    let p = match per_block_of(report, kl, 0.0) {
        Some(p) if half >= 1 => p,
        _ => return no_common_bond(report),
    };
    let first = p.mean[..half].iter().sum::<f64>() / half as f64;
    let second = p.mean[half..].iter().sum::<f64>() / (p.mean.len() - half) as f64;
    let outcome = if first.is_nan() || second.is_nan() {
        Outcome::Inconclusive
    } else if first > second {
        Outcome::Supported
    } else {
        Outcome::NotSupported
    };
    let mut evidence = format!(
        "mean KL, first half {first:.4} vs second half {second:.4} ({}); mean loss: {}",
        listing(&p, kl.evidence_digits),
        mean_listing(report, loss)
    );
    // Pair cells, when the sweep has them.
    let firsts: Vec<usize> = (0..half).collect();
    let seconds: Vec<usize> = (half..report.n_blocks).collect();
    for &b in &report.bonds {
        if let (Some(a), Some(z)) = (report.cell(&firsts, b), report.cell(&seconds, b)) {
            let _ = write!(
                evidence,
                "; pairs at bond {b}: KL {:.4} vs {:.4}",
                kl.of_metrics(&a.metrics),
                kl.of_metrics(&z.metrics)
            );
        }
    }
    Decision {
        outcome,
        evidence,
        effect: Some(first - second),
    }
}

/// The figures two settings are compared on in the evidence of rules 4 and 5 (values, standard
/// errors, which is worse beyond the noise), in that order: the deterministic ones, then the
/// sampled ones.
pub const FIGURES: [Metric; 13] = [
    Metric::Kl,
    Metric::Loss,
    Metric::Accuracy,
    Metric::HiddenMass,
    Metric::FactMargin,
    Metric::FluencyNll,
    Metric::FactAccuracy,
    Metric::GenderAccuracy,
    Metric::SeedExactRate,
    Metric::HiddenAnswerRate,
    Metric::SpecialAnswerRate,
    Metric::EosRate,
    Metric::NovelBigramRate,
];

/// Every [`FIGURES`] metric of `a` against `b`: values, and which is worse beyond `Z` standard
/// errors of the difference (any difference for the deterministic, teacher-forced figures).
fn compare_figures(an: &str, a: &CellMetrics, bn: &str, b: &CellMetrics) -> String {
    let mut items = Vec::new();
    let (mut worse_a, mut worse_b) = (Vec::new(), Vec::new());
    for d in FIGURES.map(Metric::def) {
        let (name, prec) = (d.name, d.evidence_digits);
        let (va, vb) = (d.of_metrics(a), d.of_metrics(b));
        if va.is_nan() || vb.is_nan() {
            items.push(format!("{name}: not measured"));
            continue;
        }
        let (sa, sb) = (d.se(a), d.se(b));
        let noise = Z * sa.hypot(sb);
        let deterministic = sa == 0.0 && sb == 0.0;
        let diff = vb - va;
        let verdict = if diff == 0.0 || noise.is_nan() || diff.abs() <= noise {
            "within noise".to_string()
        } else {
            let b_worse = (diff > 0.0) == d.higher_is_worse();
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

/// A setting's fluency NLL and its standard error.
fn fluency_pm(c: &SettingCell) -> String {
    let fluency = Metric::FluencyNll.def();
    let prec = fluency.evidence_digits;
    format!(
        "{:.prec$} ± {:.prec$}",
        fluency.of_metrics(&c.metrics),
        fluency.se(&c.metrics)
    )
}

/// Two settings' fluency NLL and the standard error of `b − a`.
fn fluency_difference(a: &SettingCell, b: &SettingCell) -> (f64, f64, f64) {
    let fluency = Metric::FluencyNll.def();
    (
        fluency.of_metrics(&a.metrics),
        fluency.of_metrics(&b.metrics),
        fluency.se(&a.metrics).hypot(fluency.se(&b.metrics)),
    )
}

// 4. Loosening vs tightening.
fn same_settings(report: &SweepReport) -> Decision {
    let (Some(a), Some(b)) = (report.setting("loosening"), report.setting("tightening")) else {
        return no_setting(&["loosening", "tightening"]);
    };
    let dense = dense_value(report, Metric::FluencyNll.def());
    let (fa, fb, se) = fluency_difference(a, b);
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
    Decision {
        outcome,
        evidence: format!(
            "fluency NLL (dense {dense:.3}): loosening {}, tightening {}; tightening minus \
             loosening {d:+.3} ± {se:.3} ({worse} higher), equivalence margin {margin:.3}. {}",
            fluency_pm(a),
            fluency_pm(b),
            compare_figures("loosening", &a.metrics, "tightening", &b.metrics)
        ),
        effect: (!(d.is_nan() || margin.is_nan())).then(|| margin - d.abs()),
    }
}

// 5. Consecutive pairs.
fn pairs(report: &SweepReport) -> Decision {
    let (Some(a), Some(b)) = (report.setting("pair_0_1"), report.setting("pair_2_3")) else {
        return no_setting(&["pair_0_1", "pair_2_3"]);
    };
    let (fa, fb, se) = fluency_difference(a, b);
    let d = fa - fb;
    let outcome = if d.is_nan() || se.is_nan() || d.abs() <= Z * se {
        Outcome::Inconclusive
    } else if d > 0.0 {
        Outcome::Supported
    } else {
        Outcome::NotSupported
    };
    let mut evidence = format!(
        "fluency NLL (dense {:.3}): blocks 0+1 {}, blocks 2+3 {}; difference {d:+.3} ± {se:.3}",
        dense_value(report, Metric::FluencyNll.def()),
        fluency_pm(a),
        fluency_pm(b)
    );
    if let Some(m) = report.setting("pair_1_2") {
        let _ = write!(
            evidence,
            "; blocks 1+2 (the middle pair) {}, hidden-word answers {:.3}",
            fluency_pm(m),
            Metric::HiddenAnswerRate.of_metrics(&m.metrics)
        );
    }
    let _ = write!(
        evidence,
        ". {}",
        compare_figures("blocks 0+1", &a.metrics, "blocks 2+3", &b.metrics)
    );
    Decision {
        outcome,
        evidence,
        effect: (!d.is_nan()).then_some(d),
    }
}

// 6. Looking fine while wrong.
fn looks_fine_but_wrong(report: &SweepReport) -> Decision {
    let (fluency, gender, fact) = (
        Metric::FluencyNll.def(),
        Metric::GenderAccuracy.def(),
        Metric::FactAccuracy.def(),
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
    let r = &report.reference;
    let (dense_f, dense_g, dense_a) = (
        fluency.of_metrics(r),
        gender.of_metrics(r),
        fact.of_metrics(r),
    );
    if dense_g.is_nan() || gender.draws(r) == Some(0) {
        return Decision::inconclusive(
            "no gender-probe answers were scored (no fact probe with fact gender or pronoun)",
        );
    }
    // The fall of a figure from dense, and the standard error of that fall.
    let fall = |d: &MetricDef, m: &CellMetrics| {
        (d.of_metrics(r) - d.of_metrics(m), d.se(r).hypot(d.se(m)))
    };
    let fine: Vec<&(String, &[usize], &CellMetrics)> = cells
        .iter()
        .filter(|(_, _, m)| fluency.of_metrics(m) - dense_f <= FINE_FLUENCY_MARGIN)
        .collect();
    let head = format!(
        "dense fluency NLL {dense_f:.3}, gender accuracy {dense_g:.3} ({} answers), fact accuracy \
         {dense_a:.3}; {} of {} cells (grid and settings) look fine",
        gender.draws(r).unwrap_or(0),
        fine.len(),
        cells.len()
    );
    if fine.is_empty() {
        return Decision::inconclusive(head);
    }
    let wrong: Vec<&&(String, &[usize], &CellMetrics)> = fine
        .iter()
        .filter(|(_, _, m)| {
            let (f, se) = fall(gender, m);
            f > WRONG_MARGIN && f > Z * se
        })
        .collect();
    let right = fine
        .iter()
        .filter(|(_, _, m)| {
            let (f, se) = fall(gender, m);
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
        .map(|(_, _, m)| fall(gender, m).0)
        .fold(f64::NAN, f64::max);
    let listed: Vec<String> = wrong
        .iter()
        .map(|(label, _, m)| {
            let (f, se) = fall(gender, m);
            format!(
                "{label} (Δfluency {:+.3}, gender {:.3}, fall {f:.3} ± {se:.3}, fact {:.3})",
                fluency.of_metrics(m) - dense_f,
                gender.of_metrics(m),
                fact.of_metrics(m)
            )
        })
        .collect();
    // The blocks some cell compresses (not `0..n_blocks`: a report's block count may be anything
    // a file says, its cells are what it holds).
    let compressed: std::collections::BTreeSet<usize> = cells
        .iter()
        .flat_map(|(_, b, _)| b.iter().copied())
        .collect();
    let by_block: Vec<(usize, usize)> = compressed
        .into_iter()
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
            let (f, se) = fall(fact, m);
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
    Decision {
        outcome,
        evidence,
        effect: (!largest.is_nan()).then_some(largest - WRONG_MARGIN),
    }
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
fn special_tokens(report: &SweepReport) -> Decision {
    let last = last_block(report);
    let (answers, tokens) = (
        Metric::SpecialAnswerRate.def(),
        Metric::SpecialTokenRate.def(),
    );
    let Some((p, outcome, runner)) = last_block_leads(report, answers, Z) else {
        return no_common_bond(report);
    };
    Decision {
        outcome,
        evidence: format!(
            "mean special-token answer rate over bonds {:?} (dense {:.3}): {}; highest: {}; \
             runner-up to block {last}: block {runner}; special-token share of sampled tokens: {}",
            p.bonds,
            dense_value(report, answers),
            listing(&p, answers.evidence_digits),
            leader(&p),
            mean_listing(report, tokens)
        ),
        effect: Some(p.mean[last] - p.mean[runner]),
    }
}

// 8. Late blocks and strange vocabulary.
fn strange_vocabulary(report: &SweepReport) -> Decision {
    let last = last_block(report);
    let novel = Metric::NovelBigramRate.def();
    let dense = dense_value(report, novel);
    if dense.is_nan() {
        return Decision::inconclusive(
            "the novel word-link rate was not measured (the evaluator had no training rows: \
             Evaluator::with_training_rows)",
        );
    }
    let Some(p) = per_block_of(report, novel, dense) else {
        return no_common_bond(report);
    };
    let (outcome, runner) = leads_by(&p, last, Z);
    Decision {
        outcome,
        evidence: format!(
            "mean rise in the novel word-link rate over bonds {:?} (dense {dense:.3}): {}; \
             highest: {}; runner-up to block {last}: block {runner}",
            p.bonds,
            listing(&p, novel.evidence_digits),
            leader(&p)
        ),
        effect: Some(p.mean[last] - p.mean[runner]),
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

//! The layer sweep's metrics, generic over [`LanguageModel`].
//!
//! Two families:
//!
//! - **Teacher-forced** (deterministic), over the validation positions — every `(row, t)` whose
//!   target `y[row, t]` is not `<PAD>`, exactly the positions `CrossEntropyLoss(ignore_index=PAD)`
//!   averages over:
//!   - `loss`: mean of `−log p(y | x≤t)`; `perplexity = exp(loss)`;
//!   - `accuracy`: fraction of positions whose argmax (ties: lowest id) is the target;
//!   - `kl`: mean of `KL(reference ‖ candidate) = Σ_v p_ref(v) (log p_ref(v) − log p_cand(v))`;
//!   - `hidden_mass`: mean of `Σ_{h hidden} p_cand(h)`;
//!   - fact probes' `margin`: at the last prompt position of `[BOS] + prompt`,
//!     `log p(right first word) − max_{a ∈ alternatives} log p(a)`, the alternative being the
//!     probe's `contrast_first_word` (none: every
//!     other token); `margin_accuracy` is the fraction of fact probes with margin > 0.
//! - **Sampled**, over `samples_per_probe` answers to every probe, sample `j` of probe `i` drawn
//!   with its own generator seeded by [`sample_seed`]`(seed, i, j)` (so every model sees the same
//!   random numbers — common random numbers make cells comparable):
//!   - `hidden_token_rate` / `special_token_rate`: fraction of generated tokens (EOS excluded,
//!     PAD included) that are hidden words / one of `<BOS>`, `<PAD>`, `<UNK>`;
//!   - `hidden_answer_rate` / `special_answer_rate`: fraction of answers containing at least one;
//!   - `eos_rate`: fraction of answers that ended with `<EOS>` before the length limit;
//!   - `fact_accuracy`: fraction of fact-probe answers whose first word (PAD skipped) is right;
//!   - `seed_exact_rate`: fraction of in-training seed-prompt answers equal to the expected answer;
//!   - `gender_accuracy`: `fact_accuracy` over the fact probes about a character's gender (`fact`
//!     `gender` or `pronoun`, see [`is_gender_fact`]) alone;
//!   - `novel_bigram_rate`: for each answer, the fraction of its word links — the pairs of
//!     consecutive tokens of `last prompt token + answer (+ <EOS> when drawn)` — that never occur
//!     in the training rows given by [`Evaluator::with_training_rows`]; then the mean over
//!     answers with at least one link (`novel_bigram_se` is its standard error). NaN without
//!     training rows;
//!   - `fluency_nll`: for each answer, the *reference* model's mean NLL per token of the answer
//!     tokens (and of the final `<EOS>` when drawn) given `[BOS] + prompt`; then the mean over
//!     answers (`fluency_se` is its standard error). Lower is more fluent.
//!
//! How the reports describe and print each of these — key, header, direction, standard error,
//! digits — is written once, in the metric registry [`crate::study::report::metrics`]; a figure
//! recorded here without a registry entry fails `tests/metrics_registry.rs`.

use ndarray::{s, Array2, ArrayView1, ArrayView2, Axis};
use rand::{rngs::StdRng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::nn::generate::{
    encode_prompt, generate_batch, GenerateConfig, Generation, LanguageModel, Sampling,
};
use crate::text::vocab::{Vocab, BOS, EOS, PAD, UNK};

pub(crate) use crate::fs::f64_or_nan;

/// Rows per teacher-forced forward when the caller has no opinion.
pub const DEFAULT_BATCH: usize = 64;

/// Log-softmax of one row, in f64.
fn log_softmax(row: ArrayView1<f32>, out: &mut Vec<f64>) {
    out.clear();
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
    out.extend(row.iter().map(|&x| x as f64 - lse));
}

fn argmax_f64(x: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

fn check_ids(ids: ArrayView2<u32>, v: usize, name: &str) -> Result<()> {
    for ((r, t), &id) in ids.indexed_iter() {
        if id as usize >= v {
            return Err(Error::TokenOutOfRange {
                id,
                context: format!("{name}[{r}, {t}]"),
                vocab_size: v,
            });
        }
    }
    Ok(())
}

/// Runs `model.logits` over `x` in row batches, calling `f(row, logits [T, V])` per row.
fn for_each_row<M: LanguageModel + ?Sized>(
    model: &M,
    x: ArrayView2<u32>,
    batch: usize,
    mut f: impl FnMut(usize, ArrayView2<f32>) -> Result<()>,
) -> Result<()> {
    let (n, t) = x.dim();
    let v = model.vocab_size();
    let mut start = 0;
    while start < n {
        let end = (start + batch).min(n);
        let logits = model.logits(x.slice(s![start..end, ..]))?;
        if logits.dim() != (end - start, t, v) {
            return Err(Error::shape(
                "LanguageModel::logits output",
                &[end - start, t, v],
                logits.shape(),
            ));
        }
        for (i, l) in logits.axis_iter(Axis(0)).enumerate() {
            f(start + i, l)?;
        }
        start = end;
    }
    Ok(())
}

/// Teacher-forced metrics of one model over the validation positions (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TeacherForcedMetrics {
    /// Mean NLL over non-PAD targets.
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub loss: f64,
    /// `exp(loss)`.
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub perplexity: f64,
    /// Fraction of positions whose argmax is the target.
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub accuracy: f64,
    /// Mean `KL(reference ‖ model)` (nats).
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub kl: f64,
    /// Mean probability on hidden words.
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub hidden_mass: f64,
    /// Number of positions averaged over.
    pub positions: usize,
}

/// Validation data with the reference model's log-probabilities precomputed, so each candidate
/// costs one batched forward.
#[derive(Debug, Clone)]
pub struct TeacherForced {
    x: Array2<u32>,
    /// `(row, t, target)` of every non-PAD target.
    positions: Vec<(usize, usize, u32)>,
    /// Reference log-probabilities `[positions, V]`.
    ref_logp: Array2<f64>,
    batch: usize,
}

impl TeacherForced {
    /// `x`, `y`: `[N, T]` inputs and targets as the seed's dataset makes them (targets `<PAD>`
    /// are ignored). `batch`: rows per forward. Errors on shape mismatch, `T > max_len`, ids out
    /// of range, no non-PAD target, `batch == 0`.
    pub fn new<R: LanguageModel + ?Sized>(
        reference: &R,
        x: ArrayView2<u32>,
        y: ArrayView2<u32>,
        batch: usize,
    ) -> Result<Self> {
        if batch == 0 {
            return Err(Error::invalid_arg("batch", "must be at least 1"));
        }
        if x.dim() != y.dim() {
            return Err(Error::shape(
                "TeacherForced targets y",
                x.shape(),
                y.shape(),
            ));
        }
        let v = reference.vocab_size();
        if x.ncols() > reference.max_len() {
            return Err(Error::SequenceTooLong {
                context: "TeacherForced inputs x".into(),
                len: x.ncols(),
                max_len: reference.max_len(),
            });
        }
        check_ids(x, v, "x")?;
        check_ids(y, v, "y")?;
        let positions: Vec<(usize, usize, u32)> = y
            .indexed_iter()
            .filter(|(_, &id)| id != PAD)
            .map(|((r, t), &id)| (r, t, id))
            .collect();
        if positions.is_empty() {
            return Err(Error::invalid_arg("y", "has no non-<PAD> target"));
        }
        let mut ref_logp = Array2::zeros((positions.len(), v));
        let mut buf = Vec::with_capacity(v);
        let mut k = 0;
        for_each_row(reference, x, batch, |r, l| {
            while k < positions.len() && positions[k].0 == r {
                log_softmax(l.row(positions[k].1), &mut buf);
                ref_logp
                    .row_mut(k)
                    .assign(&ArrayView1::from(buf.as_slice()));
                k += 1;
            }
            Ok(())
        })?;
        Ok(TeacherForced {
            x: x.to_owned(),
            positions,
            ref_logp,
            batch,
        })
    }

    /// The number of validation positions.
    pub fn positions(&self) -> usize {
        self.positions.len()
    }

    /// Loss, perplexity, accuracy, KL(reference ‖ model) and hidden mass of `model`.
    pub fn evaluate<M: LanguageModel + ?Sized>(
        &self,
        model: &M,
        hidden_ids: &[u32],
    ) -> Result<TeacherForcedMetrics> {
        let v = self.ref_logp.ncols();
        if model.vocab_size() != v {
            return Err(Error::invalid_arg(
                "model",
                format!("has {} logits, the reference {v}", model.vocab_size()),
            ));
        }
        check_hidden(hidden_ids, v)?;
        let (mut nll, mut correct, mut kl, mut hidden) = (0.0f64, 0usize, 0.0f64, 0.0f64);
        let mut buf = Vec::with_capacity(v);
        let mut k = 0;
        let positions = &self.positions;
        for_each_row(model, self.x.view(), self.batch, |r, l| {
            while k < positions.len() && positions[k].0 == r {
                let (_, t, target) = positions[k];
                log_softmax(l.row(t), &mut buf);
                nll -= buf[target as usize];
                if argmax_f64(&buf) == target as usize {
                    correct += 1;
                }
                let rl = self.ref_logp.row(k);
                kl += rl
                    .iter()
                    .zip(&buf)
                    .map(|(&lp, &lq)| {
                        if lp > f64::NEG_INFINITY {
                            lp.exp() * (lp - lq)
                        } else {
                            0.0
                        }
                    })
                    .sum::<f64>();
                hidden += hidden_ids
                    .iter()
                    .map(|&h| buf[h as usize].exp())
                    .sum::<f64>();
                k += 1;
            }
            Ok(())
        })?;
        let n = positions.len() as f64;
        let loss = nll / n;
        Ok(TeacherForcedMetrics {
            loss,
            perplexity: loss.exp(),
            accuracy: correct as f64 / n,
            kl: kl / n,
            hidden_mass: hidden / n,
            positions: positions.len(),
        })
    }
}

fn check_hidden(hidden_ids: &[u32], v: usize) -> Result<()> {
    for (i, &h) in hidden_ids.iter().enumerate() {
        if h as usize >= v {
            return Err(Error::TokenOutOfRange {
                id: h,
                context: format!("hidden_ids[{i}]"),
                vocab_size: v,
            });
        }
    }
    Ok(())
}

/// The ids of the vocabulary's hidden words.
pub fn hidden_ids(vocab: &Vocab) -> Result<Vec<u32>> {
    vocab
        .hidden_words()
        .iter()
        .map(|w| {
            vocab.get(w).ok_or_else(|| {
                Error::invalid_arg("hidden word", format!("{w:?} is not in the vocabulary"))
            })
        })
        .collect()
}

pub use crate::text::probes::{load_probes, Probe, ProbeGroup};

/// A probe turned into ids (validated against a vocabulary).
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedProbe {
    /// The probe as written.
    pub probe: Probe,
    /// The prompt's ids (no BOS).
    pub prompt_ids: Vec<u32>,
    /// `fact`: the right first word's id.
    pub right: Option<u32>,
    /// `fact`: the alternatives' ids (empty: every other token).
    pub alternatives: Vec<u32>,
    /// `seed_in_training`: the expected answer's ids.
    pub expected: Option<Vec<u32>>,
}

fn single_token(vocab: &Vocab, word: &str, what: &str, i: usize) -> Result<u32> {
    let toks = crate::text::vocab::tokenize(word);
    match toks.as_slice() {
        [t] => vocab.get(t).ok_or_else(|| {
            Error::invalid_arg(
                format!("probe {i}"),
                format!("{what} {t:?} is not in the vocabulary"),
            )
        }),
        _ => Err(Error::invalid_arg(
            format!("probe {i}"),
            format!("{what} {word:?} must be exactly one token"),
        )),
    }
}

/// Validates probes against `vocab` and encodes them. Errors name the probe (by index) and the
/// fault: a prompt that is empty or all unknown words, a `fact` without `expect_first_word`, a
/// first word or alternative that is not one known token or that equals the right word, a
/// `seed_in_training` without `expected_answer` or with unknown words.
pub fn prepare_probes(probes: &[Probe], vocab: &Vocab) -> Result<Vec<PreparedProbe>> {
    probes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let prompt_ids = encode_prompt(vocab, &p.prompt)
                .map_err(|e| Error::invalid_arg(format!("probe {i}"), e.to_string()))?;
            let mut out = PreparedProbe {
                probe: p.clone(),
                prompt_ids,
                right: None,
                alternatives: Vec::new(),
                expected: None,
            };
            match p.group {
                ProbeGroup::Fact => {
                    let w = p.expect_first_word.as_deref().ok_or_else(|| {
                        Error::invalid_arg(
                            format!("probe {i}"),
                            "a fact probe needs expect_first_word",
                        )
                    })?;
                    let right = single_token(vocab, w, "expect_first_word", i)?;
                    for a in p.contrast_first_word.iter() {
                        let id = single_token(vocab, a, "alternative", i)?;
                        if id == right {
                            return Err(Error::invalid_arg(
                                format!("probe {i}"),
                                format!("alternative {a:?} is the right word"),
                            ));
                        }
                        out.alternatives.push(id);
                    }
                    out.right = Some(right);
                }
                ProbeGroup::SeedInTraining => {
                    let a = p.expected_answer.as_deref().ok_or_else(|| {
                        Error::invalid_arg(
                            format!("probe {i}"),
                            "a seed_in_training probe needs expected_answer",
                        )
                    })?;
                    let toks = crate::text::vocab::tokenize(a);
                    let ids = toks
                        .iter()
                        .map(|t| {
                            vocab.get(t).ok_or_else(|| {
                                Error::invalid_arg(
                                    format!("probe {i}"),
                                    format!("expected_answer word {t:?} is not in the vocabulary"),
                                )
                            })
                        })
                        .collect::<Result<Vec<u32>>>()?;
                    if ids.is_empty() {
                        return Err(Error::invalid_arg(
                            format!("probe {i}"),
                            "expected_answer is empty",
                        ));
                    }
                    out.expected = Some(ids);
                }
                ProbeGroup::SeedOutOfTraining => {}
            }
            Ok(out)
        })
        .collect()
}

/// Rows `[BOS] + prompt` padded with `<PAD>` to the longest, `[N, T]`.
fn prompt_rows(prompts: &[&[u32]]) -> Array2<u32> {
    let t = prompts.iter().map(|p| p.len() + 1).max().unwrap_or(1);
    let mut x = Array2::from_elem((prompts.len(), t), PAD);
    for (r, p) in prompts.iter().enumerate() {
        x[[r, 0]] = BOS;
        for (j, &id) in p.iter().enumerate() {
            x[[r, j + 1]] = id;
        }
    }
    x
}

/// Teacher-forced margins of the fact probes, in probe order (non-fact probes are skipped):
/// `log p(right) − max_{a} log p(a)` at the last prompt position (see the module docs).
pub fn fact_margins<M: LanguageModel + ?Sized>(
    model: &M,
    probes: &[PreparedProbe],
    batch: usize,
) -> Result<Vec<f64>> {
    if batch == 0 {
        return Err(Error::invalid_arg("batch", "must be at least 1"));
    }
    let facts: Vec<&PreparedProbe> = probes.iter().filter(|p| p.right.is_some()).collect();
    if facts.is_empty() {
        return Ok(Vec::new());
    }
    let v = model.vocab_size();
    let prompts: Vec<&[u32]> = facts.iter().map(|p| p.prompt_ids.as_slice()).collect();
    let x = prompt_rows(&prompts);
    if x.ncols() > model.max_len() {
        return Err(Error::SequenceTooLong {
            context: "fact probe prompt".into(),
            len: x.ncols(),
            max_len: model.max_len(),
        });
    }
    check_ids(x.view(), v, "probe prompt")?;
    let mut out = Vec::with_capacity(facts.len());
    let mut buf = Vec::with_capacity(v);
    for_each_row(model, x.view(), batch, |r, l| {
        let p = facts[r];
        let right = p.right.unwrap_or(UNK) as usize;
        log_softmax(l.row(p.prompt_ids.len()), &mut buf);
        let best_other = if p.alternatives.is_empty() {
            buf.iter()
                .enumerate()
                .filter(|&(i, _)| i != right)
                .map(|(_, &x)| x)
                .fold(f64::NEG_INFINITY, f64::max)
        } else {
            p.alternatives
                .iter()
                .map(|&a| buf[a as usize])
                .fold(f64::NEG_INFINITY, f64::max)
        };
        out.push(buf[right] - best_other);
        Ok(())
    })?;
    Ok(out)
}

/// How answers are sampled for the sampled metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampleConfig {
    /// Sampling rule (the seed uses temperature 0.6).
    pub sampling: Sampling,
    /// Answers per probe.
    pub samples_per_probe: usize,
    /// Base seed; sample `j` of probe `i` uses [`sample_seed`]`(seed, i, j)`.
    pub seed: u64,
}

impl SampleConfig {
    /// The most answers per probe: 100,000 (each answer's state takes a few hundred bytes while
    /// a probe is sampled, so the ceiling keeps a run to tens of MB, checked before anything is
    /// allocated).
    pub const MAX_SAMPLES_PER_PROBE: usize = 100_000;

    /// Checks the sampling rule ([`Sampling::validate`]) and that `samples_per_probe` is in
    /// `1..=`[`Self::MAX_SAMPLES_PER_PROBE`].
    pub fn validate(&self) -> Result<()> {
        self.sampling.validate()?;
        Error::check_count_in(
            "samples_per_probe",
            self.samples_per_probe,
            Self::MAX_SAMPLES_PER_PROBE,
        )
    }
}

/// The seed of sample `j` of probe `i` (SplitMix64 of a mix of the three).
pub fn sample_seed(seed: u64, probe: usize, sample: usize) -> u64 {
    let mut z = seed
        ^ (probe as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (sample as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Samples `samples_per_probe` answers to every probe: `[probe][sample]`.
pub fn sample_probes<M: LanguageModel + ?Sized>(
    model: &M,
    probes: &[PreparedProbe],
    config: &SampleConfig,
) -> Result<Vec<Vec<Generation>>> {
    config.validate()?;
    let gen = GenerateConfig::new(config.sampling);
    probes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut rngs: Vec<StdRng> = (0..config.samples_per_probe)
                .map(|j| StdRng::seed_from_u64(sample_seed(config.seed, i, j)))
                .collect();
            generate_batch(model, &p.prompt_ids, &gen, &mut rngs)
        })
        .collect()
}

/// Metrics of sampled answers (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampledMetrics {
    /// Number of answers.
    pub answers: usize,
    /// Number of generated tokens (EOS excluded).
    pub tokens: usize,
    /// Fraction of generated tokens that are hidden words (0 when no token).
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub hidden_token_rate: f64,
    /// Fraction of answers with at least one hidden word.
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub hidden_answer_rate: f64,
    /// Fraction of generated tokens that are `<BOS>`, `<PAD>` or `<UNK>` (0 when no token).
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub special_token_rate: f64,
    /// Fraction of answers with at least one of them.
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub special_answer_rate: f64,
    /// Fraction of answers that ended with `<EOS>`.
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub eos_rate: f64,
    /// Fraction of fact-probe answers with the right first word (NaN without fact probes).
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub fact_accuracy: f64,
    /// Number of fact-probe answers behind `fact_accuracy` (its binomial sample size; 0 in
    /// reports written before it was recorded).
    #[serde(default)]
    pub fact_answers: usize,
    /// Fraction of in-training seed answers equal to the expected one (NaN without such probes).
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub seed_exact_rate: f64,
    /// Number of in-training seed answers behind `seed_exact_rate` (0 in reports written before
    /// it was recorded).
    #[serde(default)]
    pub seed_answers: usize,
    /// Mean over answers of the reference's mean NLL per answer token.
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub fluency_nll: f64,
    /// Standard error of `fluency_nll` (0 with one answer).
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub fluency_se: f64,
    /// Fraction of gender-probe answers (fact probes with `fact` `gender` or `pronoun`) with the
    /// right first word (NaN without such probes or in reports written before it existed).
    #[serde(default = "nan", deserialize_with = "crate::study::eval::f64_or_nan")]
    pub gender_accuracy: f64,
    /// Number of gender-probe answers behind `gender_accuracy`.
    #[serde(default)]
    pub gender_answers: usize,
    /// Mean over answers of the fraction of the answer's word links never seen in training
    /// (NaN when the evaluator was given no training rows; see the module docs).
    #[serde(default = "nan", deserialize_with = "crate::study::eval::f64_or_nan")]
    pub novel_bigram_rate: f64,
    /// Standard error of `novel_bigram_rate` (0 with one answer, NaN with the rate).
    #[serde(default = "nan", deserialize_with = "crate::study::eval::f64_or_nan")]
    pub novel_bigram_se: f64,
}

fn nan() -> f64 {
    f64::NAN
}

/// Whether a probe's `fact` is about a character's gender (`"gender"` or `"pronoun"`): the
/// probes behind [`SampledMetrics::gender_accuracy`].
pub fn is_gender_fact(fact: Option<&str>) -> bool {
    matches!(fact, Some("gender" | "pronoun"))
}

/// Mean and standard error of `values` (NaN and NaN when empty, SE 0 with one value).
fn mean_se(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let se = if values.len() > 1 {
        (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() / n.sqrt()
    } else {
        0.0
    };
    (mean, se)
}

/// The word links (consecutive token pairs) of training rows: every `(x[r, t], y[r, t])` whose
/// target is not `<PAD>` — `x`, `y`: `[N, T]` inputs and targets as the seed's dataset makes
/// them. Errors on a shape mismatch.
pub fn training_bigrams(
    x: ArrayView2<u32>,
    y: ArrayView2<u32>,
) -> Result<std::collections::HashSet<(u32, u32)>> {
    if x.dim() != y.dim() {
        return Err(Error::shape("training targets y", x.shape(), y.shape()));
    }
    Ok(x.iter()
        .zip(y.iter())
        .filter(|(&a, &b)| a != PAD && b != PAD)
        .map(|(&a, &b)| (a, b))
        .collect())
}

/// Mean and standard error over answers of the fraction of each answer's word links not in
/// `known` (see the module docs): the links of `last prompt token + answer (+ <EOS>)`.
/// `samples` is `[probe][sample]` as [`sample_probes`] returns. Answers without a link (empty
/// prompt and a one-token answer) are skipped; NaN when none has one. Errors when `samples`
/// and `probes` differ in length.
pub fn novel_bigram_rate(
    probes: &[PreparedProbe],
    samples: &[Vec<Generation>],
    known: &std::collections::HashSet<(u32, u32)>,
) -> Result<(f64, f64)> {
    Error::check_count("samples", samples.len(), probes.len(), |g, w| {
        format!("{g} groups for {w} probes")
    })?;
    let mut rates = Vec::new();
    for (p, group) in probes.iter().zip(samples) {
        for g in group {
            let mut s: Vec<u32> = p.prompt_ids.last().copied().into_iter().collect();
            s.extend_from_slice(&g.ids);
            if g.stopped_at_eos {
                s.push(EOS);
            }
            let links = s.len().saturating_sub(1);
            if links == 0 {
                continue;
            }
            let novel = s
                .windows(2)
                .filter(|w| !known.contains(&(w[0], w[1])))
                .count();
            rates.push(novel as f64 / links as f64);
        }
    }
    Ok(mean_se(&rates))
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

/// Computes [`SampledMetrics`] of `samples` (`[probe][sample]`, as [`sample_probes`] returns)
/// with `reference` scoring fluency.
pub fn sampled_metrics<R: LanguageModel + ?Sized>(
    reference: &R,
    probes: &[PreparedProbe],
    samples: &[Vec<Generation>],
    hidden_ids: &[u32],
    batch: usize,
) -> Result<SampledMetrics> {
    Error::check_count("samples", samples.len(), probes.len(), |g, w| {
        format!("{g} groups for {w} probes")
    })?;
    if batch == 0 {
        return Err(Error::invalid_arg("batch", "must be at least 1"));
    }
    let v = reference.vocab_size();
    check_hidden(hidden_ids, v)?;
    let is_special = |id: u32| id == BOS || id == PAD || id == UNK;
    let (mut answers, mut tokens, mut hid_t, mut hid_a, mut sp_t, mut sp_a, mut eos) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    let (mut fact_n, mut fact_ok, mut seed_n, mut seed_ok) = (0usize, 0usize, 0usize, 0usize);
    let (mut gender_n, mut gender_ok) = (0usize, 0usize);
    for (p, group) in probes.iter().zip(samples) {
        for g in group {
            answers += 1;
            tokens += g.ids.len();
            let h = g.ids.iter().filter(|id| hidden_ids.contains(id)).count();
            let s = g.ids.iter().filter(|&&id| is_special(id)).count();
            hid_t += h;
            sp_t += s;
            hid_a += usize::from(h > 0);
            sp_a += usize::from(s > 0);
            eos += usize::from(g.stopped_at_eos);
            let words: Vec<u32> = g.ids.iter().copied().filter(|&id| id != PAD).collect();
            if let Some(right) = p.right {
                let ok = usize::from(words.first() == Some(&right));
                fact_n += 1;
                fact_ok += ok;
                if is_gender_fact(p.probe.fact.as_deref()) {
                    gender_n += 1;
                    gender_ok += ok;
                }
            }
            if let Some(exp) = &p.expected {
                seed_n += 1;
                seed_ok += usize::from(&words == exp);
            }
        }
    }
    if answers == 0 {
        return Err(Error::invalid_arg("samples", "contain no answer"));
    }
    // Fluency: one row per answer, [BOS] + prompt + answer (+ EOS), inputs = row[..-1].
    let all: Vec<(&PreparedProbe, &Generation)> = probes
        .iter()
        .zip(samples)
        .flat_map(|(p, g)| g.iter().map(move |g| (p, g)))
        .collect();
    let seqs: Vec<Vec<u32>> = all
        .iter()
        .map(|(p, g)| {
            let mut s = vec![BOS];
            s.extend_from_slice(&p.prompt_ids);
            s.extend_from_slice(&g.ids);
            if g.stopped_at_eos {
                s.push(EOS);
            }
            s
        })
        .collect();
    let t = seqs.iter().map(|s| s.len() - 1).max().unwrap_or(1);
    if t > reference.max_len() {
        return Err(Error::SequenceTooLong {
            context: "sampled answer (fluency)".into(),
            len: t,
            max_len: reference.max_len(),
        });
    }
    let mut x = Array2::from_elem((seqs.len(), t), PAD);
    for (r, s) in seqs.iter().enumerate() {
        for (j, &id) in s[..s.len() - 1].iter().enumerate() {
            x[[r, j]] = id;
        }
    }
    check_ids(x.view(), v, "sampled answer")?;
    // An answer's NLL is a function of its row (prompt and answer), so each distinct row is
    // scored once (a probe's samples often repeat). The distinct rows run by length (stable),
    // each batch only up to its own longest row: the causal model's logits at a position do
    // not depend on the PAD after it, and answers' lengths vary a lot.
    // (Keyed by the prompt's length too: the same ids split differently score other tokens.)
    let mut first_of: HashMap<(usize, &[u32]), usize> = HashMap::with_capacity(seqs.len());
    let mut distinct: Vec<usize> = Vec::new();
    let slot: Vec<usize> = seqs
        .iter()
        .zip(&all)
        .enumerate()
        .map(|(r, (s, (p, _)))| {
            let key = (p.prompt_ids.len(), s.as_slice());
            *first_of.entry(key).or_insert_with(|| {
                distinct.push(r);
                distinct.len() - 1
            })
        })
        .collect();
    let mut order: Vec<usize> = (0..distinct.len()).collect();
    order.sort_by_key(|&u| seqs[distinct[u]].len());
    let mut nll_of = vec![0.0f64; distinct.len()];
    let mut buf = Vec::with_capacity(v);
    for chunk in order.chunks(batch) {
        let tb = chunk
            .iter()
            .map(|&u| seqs[distinct[u]].len() - 1)
            .max()
            .unwrap_or(1);
        let mut xb = Array2::from_elem((chunk.len(), tb), PAD);
        for (i, &u) in chunk.iter().enumerate() {
            xb.row_mut(i).assign(&x.slice(s![distinct[u], ..tb]));
        }
        for_each_row(reference, xb.view(), chunk.len(), |i, l| {
            let (u, r) = (chunk[i], distinct[chunk[i]]);
            let s = &seqs[r];
            let start = 1 + all[r].0.prompt_ids.len();
            let mut nll = 0.0;
            for pos in start..s.len() {
                log_softmax(l.row(pos - 1), &mut buf);
                nll -= buf[s[pos] as usize];
            }
            nll_of[u] = nll / (s.len() - start) as f64;
            Ok(())
        })?;
    }
    let per_answer: Vec<f64> = slot.iter().map(|&u| nll_of[u]).collect();
    let (mean, se) = mean_se(&per_answer);
    let rate0 = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(SampledMetrics {
        answers,
        tokens,
        hidden_token_rate: rate0(hid_t, tokens),
        hidden_answer_rate: ratio(hid_a, answers),
        special_token_rate: rate0(sp_t, tokens),
        special_answer_rate: ratio(sp_a, answers),
        eos_rate: ratio(eos, answers),
        fact_accuracy: ratio(fact_ok, fact_n),
        fact_answers: fact_n,
        seed_exact_rate: ratio(seed_ok, seed_n),
        seed_answers: seed_n,
        fluency_nll: mean,
        fluency_se: se,
        gender_accuracy: ratio(gender_ok, gender_n),
        gender_answers: gender_n,
        novel_bigram_rate: f64::NAN,
        novel_bigram_se: f64::NAN,
    })
}

/// Every metric of one model (one sweep cell).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CellMetrics {
    /// Teacher-forced metrics over the validation positions.
    pub teacher_forced: TeacherForcedMetrics,
    /// Mean teacher-forced margin of the fact probes (NaN without fact probes).
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub fact_margin: f64,
    /// Fraction of fact probes with a positive margin (NaN without fact probes).
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub fact_margin_accuracy: f64,
    /// Metrics of sampled answers.
    pub sampled: SampledMetrics,
}

/// Everything needed to score candidates against one reference model.
pub struct Evaluator<'r, R: LanguageModel + ?Sized> {
    reference: &'r R,
    teacher_forced: TeacherForced,
    probes: Vec<PreparedProbe>,
    hidden: Vec<u32>,
    sample: SampleConfig,
    batch: usize,
    known_bigrams: Option<std::collections::HashSet<(u32, u32)>>,
}

impl<'r, R: LanguageModel + ?Sized> Evaluator<'r, R> {
    /// Prepares the validation set (`x`, `y`: `[N, T]`), the probes and the sampling plan.
    pub fn new(
        reference: &'r R,
        vocab: &Vocab,
        x: ArrayView2<u32>,
        y: ArrayView2<u32>,
        probes: &[Probe],
        hidden_ids: &[u32],
        sample: SampleConfig,
    ) -> Result<Self> {
        Error::check_count("vocab", vocab.len(), reference.vocab_size(), |g, w| {
            format!("has {g} words but the model has {w} logits")
        })?;
        sample.validate()?;
        if probes.is_empty() {
            return Err(Error::invalid_arg("probes", "no probe"));
        }
        check_hidden(hidden_ids, reference.vocab_size())?;
        let prepared = prepare_probes(probes, vocab)?;
        // [BOS] + prompt must leave room for one generated token (as `generate` requires).
        let max_len = reference.max_len();
        if let Some((i, p)) = prepared
            .iter()
            .enumerate()
            .find(|(_, p)| 1 + p.prompt_ids.len() >= max_len)
        {
            return Err(Error::SequenceTooLong {
                context: format!(
                    "probe {i} ({}): prompt of {} tokens with <BOS>, leaving room for one answer token",
                    crate::text::shown(&probes[i].id),
                    p.prompt_ids.len()
                ),
                len: 1 + p.prompt_ids.len() + 1,
                max_len,
            });
        }
        let teacher_forced = TeacherForced::new(reference, x, y, DEFAULT_BATCH)?;
        Ok(Evaluator {
            reference,
            teacher_forced,
            probes: prepared,
            hidden: hidden_ids.to_vec(),
            sample,
            batch: DEFAULT_BATCH,
            known_bigrams: None,
        })
    }

    /// Also scores [`SampledMetrics::novel_bigram_rate`] against the word links of these
    /// training rows (`x`, `y`: `[N, T]`, see [`training_bigrams`]). Errors on a shape mismatch
    /// or an id outside the vocabulary.
    pub fn with_training_rows(mut self, x: ArrayView2<u32>, y: ArrayView2<u32>) -> Result<Self> {
        let v = self.reference.vocab_size();
        check_ids(x, v, "training x")?;
        check_ids(y, v, "training y")?;
        self.known_bigrams = Some(training_bigrams(x, y)?);
        Ok(self)
    }

    /// The reference model.
    pub fn reference(&self) -> &R {
        self.reference
    }

    /// The prepared probes.
    pub fn probes(&self) -> &[PreparedProbe] {
        &self.probes
    }

    /// The sampling plan.
    pub fn sample_config(&self) -> &SampleConfig {
        &self.sample
    }

    /// Every metric of `model`, and the answers it sampled (`[probe][sample]`).
    pub fn evaluate_with_samples<M: LanguageModel + ?Sized>(
        &self,
        model: &M,
    ) -> Result<(CellMetrics, Vec<Vec<Generation>>)> {
        let teacher_forced = self.teacher_forced.evaluate(model, &self.hidden)?;
        let margins = fact_margins(model, &self.probes, self.batch)?;
        let samples = sample_probes(model, &self.probes, &self.sample)?;
        let mut sampled = sampled_metrics(
            self.reference,
            &self.probes,
            &samples,
            &self.hidden,
            self.batch,
        )?;
        if let Some(known) = &self.known_bigrams {
            (sampled.novel_bigram_rate, sampled.novel_bigram_se) =
                novel_bigram_rate(&self.probes, &samples, known)?;
        }
        let n = margins.len();
        let metrics = CellMetrics {
            teacher_forced,
            fact_margin: if n == 0 {
                f64::NAN
            } else {
                margins.iter().sum::<f64>() / n as f64
            },
            fact_margin_accuracy: ratio(margins.iter().filter(|&&m| m > 0.0).count(), n),
            sampled,
        };
        Ok((metrics, samples))
    }

    /// Every metric of `model`.
    pub fn evaluate<M: LanguageModel + ?Sized>(&self, model: &M) -> Result<CellMetrics> {
        Ok(self.evaluate_with_samples(model)?.0)
    }
}

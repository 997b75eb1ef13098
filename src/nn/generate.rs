//! Text generation, exactly as the seed's `generate` / `sample_generate` / `talk`, with a
//! key/value cache so each new token costs one position instead of a forward over the prefix.
//!
//! The seed's loop, reproduced here:
//!
//! 1. start from `[BOS] + prompt ids` (unknown prompt words become `<UNK>`);
//! 2. repeatedly take the logits at the last position, divide by the temperature, softmax, draw
//!    one token;
//! 3. stop at `<EOS>` (not kept) or when the sequence (BOS included) reaches `max_len`;
//! 4. the answer is what follows the prompt; in the answer *text*, `<PAD>` tokens are skipped and
//!    the words are joined as the seed's `talk` does ([`crate::text::vocab::detokenize`]).
//!
//! Generation is generic over [`LanguageModel`], which the crate's `Model` implements (dense or
//! tensor-train FFNs alike) and which small test models implement too.
//!
//! ```
//! use ndarray::{Array2, Array3, ArrayView2};
//! use rand::{rngs::StdRng, SeedableRng};
//! use succulm::nn::generate::{generate, GenerateConfig, LanguageModel, Sampling};
//!
//! /// Always predicts token 4, whatever the context.
//! struct Parrot;
//! impl LanguageModel for Parrot {
//!     type Cache = usize;
//!     fn vocab_size(&self) -> usize { 5 }
//!     fn max_len(&self) -> usize { 6 }
//!     fn new_cache(&self) -> usize { 0 }
//!     fn extend(&self, len: &mut usize, ids: &[u32]) -> succulm::Result<Array2<f32>> {
//!         *len += ids.len();
//!         let mut l = Array2::zeros((ids.len(), 5));
//!         l.column_mut(4).fill(10.0);
//!         Ok(l)
//!     }
//!     fn logits(&self, ids: ArrayView2<u32>) -> succulm::Result<Array3<f32>> {
//!         let mut l = Array3::zeros((ids.nrows(), ids.ncols(), 5));
//!         l.index_axis_mut(ndarray::Axis(2), 4).fill(10.0);
//!         Ok(l)
//!     }
//! }
//!
//! let mut rng = StdRng::seed_from_u64(42);
//! let out = generate(&Parrot, &[5 - 1], &GenerateConfig::new(Sampling::Greedy), &mut rng)?;
//! // [BOS, 4] + four more tokens reach max_len = 6.
//! assert_eq!(out.ids, vec![4, 4, 4, 4]);
//! # Ok::<(), succulm::Error>(())
//! ```

use ndarray::{Array2, Array3, ArrayView1, ArrayView2};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::text::vocab::{self, Vocab, BOS, EOS, PAD, UNK};

/// What generation and evaluation need from a language model.
///
/// `Model` implements it by delegating to `new_cache`, `forward_cached` and `forward`.
pub trait LanguageModel {
    /// The incremental-decoding state of one sequence (a key/value cache). Cloned to start
    /// several answers from one shared prefix ([`generate_batch`]).
    type Cache: Clone;
    /// `V`, the number of logits per position.
    fn vocab_size(&self) -> usize;
    /// The longest sequence (BOS included) the model accepts.
    fn max_len(&self) -> usize;
    /// An empty cache for one sequence.
    fn new_cache(&self) -> Self::Cache;
    /// Appends `ids` to the cached sequence; returns the logits `[ids.len(), V]` for those
    /// positions. Errors past `max_len`.
    fn extend(&self, cache: &mut Self::Cache, ids: &[u32]) -> Result<Array2<f32>>;
    /// Full forward without a cache (teacher forcing): ids `[B, T]` → logits `[B, T, V]`.
    fn logits(&self, ids: ArrayView2<u32>) -> Result<Array3<f32>>;
    /// Appends one token to each of several cached sequences, `ids[r]` to `caches[r]`; returns
    /// the logits `[rows, V]` of the new positions (`rows = caches.len() = ids.len()`; no rows
    /// gives `[0, V]`). Errors when the lengths differ, and as [`extend`](Self::extend) does.
    ///
    /// The default calls `extend` row by row; a model overrides it to decode the rows as one
    /// batch (`Model` stacks them, so each projection is one `[rows, d]` product). Row `r` must
    /// equal `extend(&mut caches[r], &[ids[r]])` up to float rounding.
    fn extend_rows(&self, caches: &mut [Self::Cache], ids: &[u32]) -> Result<Array2<f32>> {
        let v = self.vocab_size();
        crate::nn::model::check_one_per_cache(ids.len(), caches.len())?;
        let mut out = Array2::zeros((ids.len(), v));
        for (r, (cache, &id)) in caches.iter_mut().zip(ids).enumerate() {
            let l = self.extend(cache, &[id])?;
            if l.dim() != (1, v) {
                return Err(Error::shape(
                    "LanguageModel::extend output",
                    &[1, v],
                    l.shape(),
                ));
            }
            out.row_mut(r).assign(&l.row(0));
        }
        Ok(out)
    }
}

impl LanguageModel for crate::nn::model::Model {
    type Cache = crate::nn::model::KvCache;
    fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }
    fn max_len(&self) -> usize {
        self.config().max_len
    }
    fn new_cache(&self) -> Self::Cache {
        crate::nn::model::Model::new_cache(self)
    }
    fn extend(&self, cache: &mut Self::Cache, ids: &[u32]) -> Result<Array2<f32>> {
        self.forward_cached(cache, ids)
    }
    fn logits(&self, ids: ArrayView2<u32>) -> Result<Array3<f32>> {
        self.forward(ids)
    }
    fn extend_rows(&self, caches: &mut [Self::Cache], ids: &[u32]) -> Result<Array2<f32>> {
        self.forward_cached_rows(caches, ids)
    }
}

impl<M: LanguageModel + ?Sized> LanguageModel for &M {
    type Cache = M::Cache;
    fn vocab_size(&self) -> usize {
        (**self).vocab_size()
    }
    fn max_len(&self) -> usize {
        (**self).max_len()
    }
    fn new_cache(&self) -> Self::Cache {
        (**self).new_cache()
    }
    fn extend(&self, cache: &mut Self::Cache, ids: &[u32]) -> Result<Array2<f32>> {
        (**self).extend(cache, ids)
    }
    fn logits(&self, ids: ArrayView2<u32>) -> Result<Array3<f32>> {
        (**self).logits(ids)
    }
    fn extend_rows(&self, caches: &mut [Self::Cache], ids: &[u32]) -> Result<Array2<f32>> {
        (**self).extend_rows(caches, ids)
    }
}

/// How the next token is chosen from the logits at the last position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Sampling {
    /// The most probable token (ties: the lowest id). Deterministic; draws no random number.
    Greedy,
    /// The seed's sampling: `softmax(logits / t)`, one draw. `t` must be finite and > 0.
    Temperature(f32),
    /// Keep the `k` largest logits (ties at the boundary: lower ids first), then
    /// `softmax(logits / temperature)` over them, one draw.
    TopK {
        /// How many candidates to keep (≥ 1; values above `V` keep everything).
        k: usize,
        /// The temperature, finite and > 0.
        temperature: f32,
    },
}

impl Sampling {
    /// Checks the parameters: temperature finite and > 0 with `1 / temperature` finite (at least
    /// `1 / f32::MAX` ≈ 2.9e-39; use [`Sampling::Greedy`] for deterministic decoding), `k` ≥ 1.
    pub fn validate(&self) -> Result<()> {
        let check_t = |t: f32| {
            // `1 / t` must be finite: below ~2.9e-39 it overflows and every logit becomes NaN.
            if t.is_finite() && t > 0.0 && (1.0 / t).is_finite() {
                Ok(())
            } else {
                Err(Error::invalid_arg(
                    "temperature",
                    format!("must be finite and > 0 with 1/temperature finite, i.e. about 3e-39 or more (got {t:e}); use Sampling::Greedy for argmax decoding"),
                ))
            }
        };
        match *self {
            Sampling::Greedy => Ok(()),
            Sampling::Temperature(t) => check_t(t),
            Sampling::TopK { k, temperature } => {
                if k == 0 {
                    return Err(Error::invalid_arg("top_k", "must be at least 1"));
                }
                check_t(temperature)
            }
        }
    }
}

/// Options for one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateConfig {
    /// How tokens are chosen.
    pub sampling: Sampling,
    /// The sequence length (BOS and prompt included) at which generation stops; `None` means the
    /// model's `max_len`, as the seed does. Must not exceed the model's `max_len`.
    pub max_len: Option<usize>,
    /// Keep every step's distribution (the seed's `save_probs`).
    pub save_probs: bool,
}

impl GenerateConfig {
    /// `max_len` = the model's, no saved distributions.
    pub fn new(sampling: Sampling) -> Self {
        GenerateConfig {
            sampling,
            max_len: None,
            save_probs: false,
        }
    }

    /// The seed's `talk(prompt, model, temperature)`: temperature sampling up to the model's
    /// `max_len`.
    pub fn temperature(t: f32) -> Self {
        Self::new(Sampling::Temperature(t))
    }
}

/// The outcome of one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The prompt's ids (without BOS).
    pub prompt_ids: Vec<u32>,
    /// Every generated token after the prompt, in order, `<EOS>` excluded (`<PAD>`, `<BOS>`,
    /// `<UNK>` included if the model drew them).
    pub ids: Vec<u32>,
    /// Whether generation stopped because `<EOS>` was drawn (otherwise the length limit was hit).
    pub stopped_at_eos: bool,
    /// When `save_probs` was set: one distribution `[V]` per step (one more than `ids` when EOS
    /// was drawn). It is the distribution the token was drawn from: after the temperature (and
    /// top-k filtering, zero outside the top k); for [`Sampling::Greedy`] the plain softmax.
    pub probs: Option<Vec<Vec<f32>>>,
}

impl Generation {
    /// The answer's words as the seed's `sample_generate` returns them: `<PAD>` skipped, ids
    /// outside the vocabulary shown as `<UNK>`.
    pub fn words<'v>(&self, vocab: &'v Vocab) -> Vec<&'v str> {
        self.ids
            .iter()
            .filter(|&&id| id != PAD)
            .map(|&id| {
                vocab
                    .word(id)
                    .unwrap_or(vocab::SPECIAL_TOKENS[UNK as usize])
            })
            .collect()
    }

    /// The answer text, joined as the seed's `talk` joins it.
    pub fn text(&self, vocab: &Vocab) -> String {
        vocab::detokenize(&self.words(vocab))
    }
}

/// Turns a text prompt into ids the way the seed does (lower-cased, tokenized, unknown words →
/// `<UNK>`).
///
/// Errors when the prompt has no token, or when *every* token is unknown (the model would only see
/// `<UNK>`s: almost always a typo or a wrong vocabulary).
pub fn encode_prompt(vocab: &Vocab, prompt: &str) -> Result<Vec<u32>> {
    let tokens = vocab::tokenize(prompt);
    if tokens.is_empty() {
        return Err(Error::invalid_arg("prompt", "is empty"));
    }
    let ids: Vec<u32> = tokens.iter().map(|t| vocab.id(t)).collect();
    if ids.iter().all(|&id| id == UNK) {
        return Err(Error::invalid_arg(
            "prompt",
            format!(
                "none of its {} words ({}) is in the vocabulary",
                tokens.len(),
                crate::text::shown(&tokens.join(" "))
            ),
        ));
    }
    Ok(ids)
}

/// Checks a prompt of ids against the model and config; returns the stop length.
fn check_prompt<M: LanguageModel + ?Sized>(
    model: &M,
    prompt_ids: &[u32],
    config: &GenerateConfig,
) -> Result<usize> {
    config.sampling.validate()?;
    let v = model.vocab_size();
    let model_max = model.max_len();
    let max_len = config.max_len.unwrap_or(model_max);
    if max_len > model_max {
        return Err(Error::invalid_arg(
            "max_len",
            format!("{max_len} exceeds the model's max_len {model_max}"),
        ));
    }
    if prompt_ids.is_empty() {
        return Err(Error::invalid_arg("prompt", "is empty"));
    }
    for (i, &id) in prompt_ids.iter().enumerate() {
        if id as usize >= v {
            return Err(Error::TokenOutOfRange {
                id,
                context: format!("prompt[{i}]"),
                vocab_size: v,
            });
        }
        if id == PAD || id == BOS || id == EOS {
            return Err(Error::invalid_arg(
                "prompt",
                format!("prompt[{i}] is the special token id {id} (<PAD>, <BOS> and <EOS> are not allowed in a prompt)"),
            ));
        }
    }
    // [BOS] + prompt must leave room for at least one generated token.
    if 1 + prompt_ids.len() >= max_len {
        return Err(Error::SequenceTooLong {
            context: "prompt (with <BOS>, leaving room for one generated token)".into(),
            len: 1 + prompt_ids.len() + 1,
            max_len,
        });
    }
    Ok(max_len)
}

/// Softmax of `logits / t` into `out` (in f32, max-subtracted).
fn softmax_into(logits: ArrayView1<f32>, t: f32, out: &mut Vec<f32>) {
    out.clear();
    let inv = 1.0 / t;
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut sum = 0.0f32;
    for &x in logits.iter() {
        let e = ((x - m) * inv).exp();
        sum += e;
        out.push(e);
    }
    let inv_sum = 1.0 / sum;
    for p in out.iter_mut() {
        *p *= inv_sum;
    }
}

/// Draws an index from `probs` (which sums to ~1) by inverse CDF on one uniform draw.
fn draw<R: Rng + ?Sized>(probs: &[f32], rng: &mut R) -> u32 {
    let total: f64 = probs.iter().map(|&p| p as f64).sum();
    let u = rng.gen::<f64>() * total;
    let mut acc = 0.0f64;
    let mut last_positive = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            acc += p as f64;
            last_positive = i;
            if u < acc {
                return i as u32;
            }
        }
    }
    // Rounding left u at the very top: the last token with mass.
    last_positive as u32
}

/// Index of the largest value (ties: the lowest index). NaN never wins.
fn argmax(x: ArrayView1<f32>) -> u32 {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in x.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    best as u32
}

/// Picks the next token from one row of logits `[V]`; fills `probs` with the distribution used.
fn choose<R: Rng + ?Sized>(
    logits: ArrayView1<f32>,
    config: &GenerateConfig,
    rng: &mut R,
    probs: &mut Vec<f32>,
    scratch: &mut Vec<u32>,
) -> Result<u32> {
    let (sampling, want_probs) = (config.sampling, config.save_probs);
    if logits.iter().any(|x| x.is_nan()) {
        return Err(Error::invalid_arg(
            "logits",
            "the model produced NaN logits",
        ));
    }
    match sampling {
        Sampling::Greedy => {
            if want_probs {
                softmax_into(logits, 1.0, probs);
            }
            Ok(argmax(logits))
        }
        Sampling::Temperature(t) => {
            softmax_into(logits, t, probs);
            Ok(draw(probs, rng))
        }
        Sampling::TopK { k, temperature } => {
            let v = logits.len();
            if k >= v {
                softmax_into(logits, temperature, probs);
                return Ok(draw(probs, rng));
            }
            scratch.clear();
            scratch.extend(0..v as u32);
            // Stable order: larger logit first, lower id first among equals.
            scratch.sort_by(|&a, &b| {
                logits[b as usize]
                    .total_cmp(&logits[a as usize])
                    .then(a.cmp(&b))
            });
            let kept = &scratch[..k];
            let m = logits[kept[0] as usize];
            let inv = 1.0 / temperature;
            probs.clear();
            probs.resize(v, 0.0);
            let mut sum = 0.0f32;
            for &i in kept {
                let e = ((logits[i as usize] - m) * inv).exp();
                probs[i as usize] = e;
                sum += e;
            }
            let inv_sum = 1.0 / sum;
            for &i in kept {
                probs[i as usize] *= inv_sum;
            }
            Ok(draw(probs, rng))
        }
    }
}

/// Which way the logits of the last position are obtained.
enum Stepper<'m, M: LanguageModel + ?Sized> {
    Cached(&'m M, M::Cache),
    Uncached(&'m M),
}

impl<M: LanguageModel + ?Sized> Stepper<'_, M> {
    /// Logits `[V]` of the last position after `new` was appended (`seq` already holds `new`).
    fn next(&mut self, seq: &[u32], new: &[u32]) -> Result<ndarray::Array1<f32>> {
        let v = match self {
            Stepper::Cached(m, cache) => {
                let l = m.extend(cache, new)?;
                if l.nrows() != new.len() {
                    return Err(Error::shape(
                        "LanguageModel::extend output",
                        &[new.len(), m.vocab_size()],
                        l.shape(),
                    ));
                }
                l.row(l.nrows() - 1).to_owned()
            }
            Stepper::Uncached(m) => {
                let ids = ArrayView2::from_shape((1, seq.len()), seq)
                    .map_err(|_| Error::invalid_arg("sequence", "cannot be viewed as [1, T]"))?;
                let l = m.logits(ids)?;
                l.slice(ndarray::s![0, seq.len() - 1, ..]).to_owned()
            }
        };
        Ok(v)
    }
}

fn run<M: LanguageModel + ?Sized, R: Rng + ?Sized>(
    model: &M,
    prompt_ids: &[u32],
    config: &GenerateConfig,
    rng: &mut R,
    cached: bool,
) -> Result<Generation> {
    let max_len = check_prompt(model, prompt_ids, config)?;
    let v = model.vocab_size();
    let mut seq = Vec::with_capacity(max_len);
    seq.push(BOS);
    seq.extend_from_slice(prompt_ids);
    let start = seq.len();
    let mut stepper = if cached {
        Stepper::Cached(model, model.new_cache())
    } else {
        Stepper::Uncached(model)
    };
    let mut logits = stepper.next(&seq, &seq)?;
    let mut saved = config.save_probs.then(Vec::new);
    let mut probs = Vec::with_capacity(v);
    let mut scratch = Vec::new();
    let mut stopped_at_eos = false;
    loop {
        if logits.len() != v {
            return Err(Error::shape("logits row", &[v], &[logits.len()]));
        }
        let next = choose(logits.view(), config, rng, &mut probs, &mut scratch)?;
        if let Some(s) = saved.as_mut() {
            s.push(probs.clone());
        }
        if next == EOS {
            stopped_at_eos = true;
            break;
        }
        seq.push(next);
        if seq.len() >= max_len {
            break;
        }
        logits = stepper.next(&seq, &[next])?;
    }
    Ok(Generation {
        prompt_ids: prompt_ids.to_vec(),
        ids: seq[start..].to_vec(),
        stopped_at_eos,
        probs: saved,
    })
}

/// Generates an answer to `prompt_ids` (no BOS; it is added) with the key/value cache: one
/// position per new token.
///
/// Errors: an empty prompt, an id out of range or equal to `<PAD>`/`<BOS>`/`<EOS>`, a prompt
/// that leaves no room for one generated token (`1 + len ≥ max_len`), `max_len` above the
/// model's, a temperature ≤ 0 or non-finite, `k = 0`, NaN logits, and any model error.
pub fn generate<M: LanguageModel + ?Sized, R: Rng + ?Sized>(
    model: &M,
    prompt_ids: &[u32],
    config: &GenerateConfig,
    rng: &mut R,
) -> Result<Generation> {
    run(model, prompt_ids, config, rng, true)
}

/// One answer per generator in `rngs` to the same prompt, decoded together: `[BOS] + prompt`
/// runs once into a key/value cache, every answer starts from a copy of it, and each step
/// appends one token to every unfinished answer with one [`LanguageModel::extend_rows`] call
/// (for `Model`, `[rows, d]` products instead of one vector product per answer). An answer
/// leaves the batch when it draws `<EOS>` or reaches the length limit.
///
/// Answer `r` uses only `rngs[r]`, and draws from it exactly as [`generate`] would, so it is
/// [`generate`]`(model, prompt_ids, config, &mut rngs[r])` whenever the batched logits equal the
/// one-row ones; with `Model` they differ by float rounding only (bit-for-bit with one
/// generator), which can flip a draw that falls within rounding of a boundary of the
/// cumulative distribution. The answers do not depend on how many there are or on their order.
///
/// Errors as [`generate`] (the prompt and config are checked even when `rngs` is empty, which
/// gives no answer), and when the model's `extend_rows` returns a wrong shape.
///
/// ```
/// use rand::{rngs::StdRng, SeedableRng};
/// use succulm::nn::generate::{generate, generate_batch, GenerateConfig};
/// use succulm::nn::model::{Model, ModelConfig};
///
/// let model = Model::new(ModelConfig::profile("tiny", 12)?, 0)?;
/// let config = GenerateConfig::temperature(0.6);
/// let mut rngs: Vec<StdRng> = (0..3).map(StdRng::seed_from_u64).collect();
/// let answers = generate_batch(&model, &[5, 6], &config, &mut rngs)?;
/// assert_eq!(answers.len(), 3);
/// // One generator: exactly the one-row path.
/// let one = generate_batch(&model, &[5, 6], &config, &mut [StdRng::seed_from_u64(9)])?;
/// assert_eq!(one[0], generate(&model, &[5, 6], &config, &mut StdRng::seed_from_u64(9))?);
/// # Ok::<(), succulm::Error>(())
/// ```
pub fn generate_batch<M, R>(
    model: &M,
    prompt_ids: &[u32],
    config: &GenerateConfig,
    rngs: &mut [R],
) -> Result<Vec<Generation>>
where
    M: LanguageModel + ?Sized,
    R: Rng,
{
    let max_len = check_prompt(model, prompt_ids, config)?;
    if rngs.is_empty() {
        return Ok(Vec::new());
    }
    let v = model.vocab_size();
    let mut prefix = Vec::with_capacity(1 + prompt_ids.len());
    prefix.push(BOS);
    prefix.extend_from_slice(prompt_ids);
    let mut shared = model.new_cache();
    let l = model.extend(&mut shared, &prefix)?;
    if l.dim() != (prefix.len(), v) {
        return Err(Error::shape(
            "LanguageModel::extend output",
            &[prefix.len(), v],
            l.shape(),
        ));
    }
    let first = l.row(prefix.len() - 1).to_owned();
    let n = rngs.len();
    let mut answers: Vec<Generation> = (0..n)
        .map(|_| Generation {
            prompt_ids: prompt_ids.to_vec(),
            ids: Vec::with_capacity(max_len - prefix.len()),
            stopped_at_eos: false,
            probs: config.save_probs.then(Vec::new),
        })
        .collect();
    let mut probs = Vec::with_capacity(v);
    let mut scratch = Vec::new();
    // The unfinished answers (indices into `answers`), their caches and last tokens.
    let mut live: Vec<usize> = Vec::with_capacity(n);
    let mut caches: Vec<M::Cache> = Vec::with_capacity(n);
    let mut last: Vec<u32> = Vec::with_capacity(n);
    // Draws answer r's next token from `row`; true if the answer goes on.
    let mut step = |r: usize, row: ArrayView1<f32>, rng: &mut R| -> Result<Option<u32>> {
        let next = choose(row, config, rng, &mut probs, &mut scratch)?;
        let a = &mut answers[r];
        if let Some(s) = a.probs.as_mut() {
            s.push(probs.clone());
        }
        if next == EOS {
            a.stopped_at_eos = true;
            return Ok(None);
        }
        a.ids.push(next);
        Ok((prefix.len() + a.ids.len() < max_len).then_some(next))
    };
    for (r, rng) in rngs.iter_mut().enumerate() {
        if let Some(next) = step(r, first.view(), rng)? {
            live.push(r);
            caches.push(shared.clone());
            last.push(next);
        }
    }
    drop(shared);
    while !live.is_empty() {
        let logits = model.extend_rows(&mut caches, &last)?;
        if logits.dim() != (live.len(), v) {
            return Err(Error::shape(
                "LanguageModel::extend_rows output",
                &[live.len(), v],
                logits.shape(),
            ));
        }
        // Keep the unfinished rows in order, compacting in place.
        let mut kept = 0;
        for i in 0..live.len() {
            let r = live[i];
            if let Some(next) = step(r, logits.row(i), &mut rngs[r])? {
                live.swap(kept, i);
                caches.swap(kept, i);
                last[kept] = next;
                kept += 1;
            }
        }
        live.truncate(kept);
        caches.truncate(kept);
        last.truncate(kept);
    }
    Ok(answers)
}

/// The seed's way: a full forward over the whole sequence for every new token. Same results as
/// [`generate`] (same random draws); a reference for tests and benchmarks.
pub fn generate_uncached<M: LanguageModel + ?Sized, R: Rng + ?Sized>(
    model: &M,
    prompt_ids: &[u32],
    config: &GenerateConfig,
    rng: &mut R,
) -> Result<Generation> {
    run(model, prompt_ids, config, rng, false)
}

/// [`generate`] from a text prompt ([`encode_prompt`]); the vocabulary must match the model.
pub fn generate_text<M: LanguageModel + ?Sized, R: Rng + ?Sized>(
    model: &M,
    vocab: &Vocab,
    prompt: &str,
    config: &GenerateConfig,
    rng: &mut R,
) -> Result<Generation> {
    Error::check_count("vocab", vocab.len(), model.vocab_size(), |g, w| {
        format!("has {g} words but the model has {w} logits")
    })?;
    let ids = encode_prompt(vocab, prompt)?;
    generate(model, &ids, config, rng)
}

/// The seed's `talk`: generates and returns the answer text (the seed also prints
/// `prompt=... result=...`; callers print as they like).
pub fn talk<M: LanguageModel + ?Sized, R: Rng + ?Sized>(
    model: &M,
    vocab: &Vocab,
    prompt: &str,
    config: &GenerateConfig,
    rng: &mut R,
) -> Result<String> {
    Ok(generate_text(model, vocab, prompt, config, rng)?.text(vocab))
}

/// The seed's 14 prompts of `model_example`: five from the training data (with their expected
/// answers), then nine it never saw.
pub const SEED_PROMPTS: [(&str, Option<&str>); 14] = [
    (
        "ruby is a boy succulent plant.",
        Some("winy is a girl succulent plant."),
    ),
    (
        "can you bloom, winy?",
        Some("sometimes i bloom white flowers."),
    ),
    (
        "does winy sleep on the window?",
        Some("no, she sleeps with ruby in the pot."),
    ),
    (
        "how many days do you grow in this pot?",
        Some("i grow for many days with my friend."),
    ),
    (
        "winy feels the soft morning air.",
        Some("she is calm and looks at the window."),
    ),
    ("who is winy?", None),
    ("does ruby know three winters?", None),
    ("why is ruby red today?", None),
    ("how calm is winy?", None),
    ("ruby and winy are friends.", None),
    ("is ruby a boy?", None),
    ("is winy a boy?", None),
    ("is ruby a girl?", None),
    ("is winy a girl?", None),
];

/// The [`SEED_PROMPTS`] that are in the seed's training data, with their answers.
pub fn seed_prompts_in_training() -> Vec<(&'static str, &'static str)> {
    SEED_PROMPTS
        .iter()
        .filter_map(|&(p, a)| a.map(|a| (p, a)))
        .collect()
}

/// The [`SEED_PROMPTS`] that are not in the seed's training data (the last four are its gender
/// probes).
pub fn seed_prompts_out_of_training() -> Vec<&'static str> {
    SEED_PROMPTS
        .iter()
        .filter(|(_, a)| a.is_none())
        .map(|&(p, _)| p)
        .collect()
}

/// The seed's `model_example`: answers the 14 [`SEED_PROMPTS`] in order with one shared random
/// generator (as the seed's global torch RNG), returning `(prompt, answer)` pairs. A blank line
/// separates the two groups when printed with [`format_example`].
pub fn model_example<M: LanguageModel + ?Sized, R: Rng + ?Sized>(
    model: &M,
    vocab: &Vocab,
    config: &GenerateConfig,
    rng: &mut R,
) -> Result<Vec<(String, String)>> {
    SEED_PROMPTS
        .iter()
        .map(|(p, _)| Ok((p.to_string(), talk(model, vocab, p, config, rng)?)))
        .collect()
}

/// Formats `model_example` output as the seed prints it: `prompt='...' result='...'`, with a
/// blank line after the five in-training prompts.
pub fn format_example(answers: &[(String, String)]) -> String {
    let mut s = String::new();
    for (i, (p, a)) in answers.iter().enumerate() {
        if i == 5 {
            s.push('\n');
        }
        s.push_str(&format!("prompt='{p}' result='{a}'\n"));
    }
    s
}

/// Several models' answers to the same prompts, read side by side: each prompt, then every
/// model's answer under its label (`runs`: label, then [`model_example`]'s `(prompt, answer)`
/// pairs; the prompts are the first run's).
///
/// ```
/// let a = vec![("is ruby a boy?".to_string(), "yes.".to_string())];
/// let b = vec![("is ruby a boy?".to_string(), "no.".to_string())];
/// let s = succulm::nn::generate::format_examples_side_by_side(&[("weight", &a), ("whitened", &b)]);
/// assert_eq!(s, "prompt='is ruby a boy?'\n    weight    'yes.'\n    whitened  'no.'\n");
/// ```
pub fn format_examples_side_by_side(runs: &[(&str, &[(String, String)])]) -> String {
    let width = runs.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let mut s = String::new();
    let Some((_, first)) = runs.first() else {
        return s;
    };
    for (i, (prompt, _)) in first.iter().enumerate() {
        s.push_str(&format!("prompt='{prompt}'\n"));
        for (label, answers) in runs {
            let answer = answers.get(i).map_or("", |a| a.1.as_str());
            s.push_str(&format!("    {label:<width$}  '{answer}'\n"));
        }
    }
    s
}

//! `ModelConfig`, named profiles, and [`Model`]: the seed's `SuccuLM` with hand-written forward
//! and backward passes.
//!
//! Data flow (`rows = B·T`):
//! `ids [B,T] → embed + pe → x [rows,d] → block × L → ln_f → h [rows,d] → h·Eᵀ → logits [rows,V]`.

use ndarray::{s, Array2, Array3, Array4, ArrayView2, ArrayView3, ArrayViewD, ArrayViewMutD, Axis};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::nn::kernels::dispatch;
use crate::nn::layers::attention::{head_forward, HeadIo, HeadScratch};
use crate::nn::layers::{
    positional_table, visit_via_tensors, Block, BlockCache, Embedding, FfnResidualStats, LayerNorm,
    LayerNormCache, NamedTensors,
};
use crate::nn::loss::{check_teacher, count_real, cross_entropy_in_place, distillation_in_place};
use crate::nn::workers;
use crate::text::vocab::Vocab;
use crate::tt::params::{join, Parameters};
use crate::tt::pool;

/// The shape of a SuccuLM model (the seed's `settings_dict` entry plus `vocab_size`, `d_model`,
/// `max_len`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Vocabulary size `V` (specials included).
    pub vocab_size: usize,
    /// Model width `d`.
    pub d_model: usize,
    /// Longest sequence (the positional table's length).
    pub max_len: usize,
    /// Number of blocks.
    pub n_layers: usize,
    /// FFN width is `d_model · ffn_expansion`.
    pub ffn_expansion: usize,
    /// Attention heads per block (must divide `d_model`).
    pub n_attn_heads: usize,
}

/// The named profiles: `(name, n_layers, ffn_expansion, n_attn_heads)`, all with `d_model` 50
/// and `max_len` 29.
pub const PROFILES: [(&str, usize, usize, usize); 5] = [
    ("tiny", 1, 1, 1),
    ("small", 2, 2, 2),
    ("middle", 3, 4, 5),
    ("upper_middle", 4, 4, 5),
    ("large", 6, 4, 10),
];

/// `d_model` of every profile (the embeddings file's width).
pub const PROFILE_D_MODEL: usize = 50;
/// `max_len` of every profile (the seed's dataset pads to 29).
pub const PROFILE_MAX_LEN: usize = 29;

impl ModelConfig {
    /// The named profile (see [`PROFILES`]) for a vocabulary of `vocab_size` words.
    ///
    /// ```
    /// let c = succulm::nn::model::ModelConfig::profile("upper_middle", 155)?;
    /// assert_eq!((c.n_layers, c.d_model * c.ffn_expansion, c.n_attn_heads), (4, 200, 5));
    /// assert!(succulm::nn::model::ModelConfig::profile("huge", 155).is_err());
    /// # Ok::<(), succulm::Error>(())
    /// ```
    pub fn profile(name: &str, vocab_size: usize) -> Result<Self> {
        let (_, n_layers, ffn_expansion, n_attn_heads) = PROFILES
            .iter()
            .find(|p| p.0 == name)
            .copied()
            .ok_or_else(|| {
                let names: Vec<&str> = PROFILES.iter().map(|p| p.0).collect();
                Error::invalid_arg(
                    "profile",
                    format!("unknown profile {name:?}; known: {}", names.join(", ")),
                )
            })?;
        let c = ModelConfig {
            vocab_size,
            d_model: PROFILE_D_MODEL,
            max_len: PROFILE_MAX_LEN,
            n_layers,
            ffn_expansion,
            n_attn_heads,
        };
        c.validate()?;
        Ok(c)
    }

    /// The profile names, in size order.
    pub fn profile_names() -> Vec<&'static str> {
        PROFILES.iter().map(|p| p.0).collect()
    }

    /// Checks every field: all positive, `vocab_size > PAD..UNK`, `d_model` even (or 1, as the
    /// seed's positional table requires), `n_attn_heads` divides `d_model`.
    pub fn validate(&self) -> Result<()> {
        let fields = [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("max_len", self.max_len),
            ("n_layers", self.n_layers),
            ("ffn_expansion", self.ffn_expansion),
            ("n_attn_heads", self.n_attn_heads),
        ];
        for (name, v) in fields {
            if v == 0 {
                return Err(Error::invalid_arg(name, "must be at least 1"));
            }
        }
        if self.vocab_size < 4 {
            return Err(Error::invalid_arg(
                "vocab_size",
                format!("{} is smaller than the 4 special tokens", self.vocab_size),
            ));
        }
        if self.vocab_size > u32::MAX as usize {
            return Err(Error::invalid_arg("vocab_size", "does not fit u32 ids"));
        }
        if self.d_model % 2 != 0 && self.d_model != 1 {
            return Err(Error::invalid_arg(
                "d_model",
                format!(
                    "{} must be even (sinusoidal positions pair sin/cos)",
                    self.d_model
                ),
            ));
        }
        // Every weight's size (`3d · d` for Q/K/V, `d · f` for the FFN, `V · d` for the
        // embedding, `max_len · d` for the positions) must be computable.
        let d = self.d_model;
        let sizes = [
            (
                "ffn_expansion",
                d.checked_mul(self.ffn_expansion)
                    .and_then(|f| f.checked_mul(d)),
            ),
            ("d_model", d.checked_mul(3).and_then(|x| x.checked_mul(d))),
            ("vocab_size", self.vocab_size.checked_mul(d)),
            ("max_len", self.max_len.checked_mul(d)),
        ];
        for (name, size) in sizes {
            if size.map_or(true, |n| n > isize::MAX as usize / 4) {
                return Err(Error::invalid_arg(
                    name,
                    format!("{self:?} has a weight too large to address"),
                ));
            }
        }
        if self.d_model % self.n_attn_heads != 0 {
            return Err(Error::invalid_arg(
                "n_attn_heads",
                format!(
                    "{} does not divide d_model {}",
                    self.n_attn_heads, self.d_model
                ),
            ));
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_attn_heads
    }

    /// FFN hidden width `d_model · ffn_expansion`.
    pub fn ffn_dim(&self) -> usize {
        self.d_model * self.ffn_expansion
    }
}

/// The SuccuLM model: tied embedding, sinusoidal positions, pre-LN blocks, final LayerNorm.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub(crate) config: ModelConfig,
    pub(crate) profile: Option<String>,
    pub(crate) embed: Embedding,
    /// `pos_enc.pe`, `[max_len, d]` (a buffer, not a parameter).
    pub(crate) pe: Array2<f32>,
    pub(crate) blocks: Vec<Block>,
    pub(crate) ln_f: LayerNorm,
}

/// Gradients of the loss with respect to every parameter, held in a value shaped like the
/// model and visited under the same names.
#[derive(Debug, Clone, PartialEq)]
pub struct Grads {
    pub(crate) inner: Model,
}

/// The seed's verbose-mode view of a forward pass.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// Per block, the attention probabilities `[B, h, T, T]`.
    pub attention: Vec<Array4<f32>>,
    /// Per block, the FFN residual statistics.
    pub ffn_residual: Vec<FfnResidualStats>,
}

/// Keys and values of one sequence's past positions, for [`Model::forward_cached`].
#[derive(Debug, Clone)]
pub struct KvCache {
    len: usize,
    /// Per block, `[max_len, d]` (heads side by side).
    k: Vec<Array2<f32>>,
    /// Per block, `[max_len, d]`.
    v: Vec<Array2<f32>>,
    /// Scratch of the attention core.
    scratch: HeadScratch,
}

impl KvCache {
    /// Positions already processed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first token.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position (keeps the buffers).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Forgets the positions from `len` on (keeps the buffers); no-op if `len >= self.len()`.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

/// Everything backward needs from one forward pass.
struct ModelCache {
    ids: Vec<u32>,
    blocks: Vec<BlockCache>,
    ln_f: LayerNormCache,
    /// `ln_f` output, `[rows, d]`.
    h: Array2<f32>,
}

impl ModelCache {
    /// Returns the cached activations' storage to the buffer pool.
    fn recycle(self) {
        self.blocks.into_iter().for_each(BlockCache::recycle);
        self.ln_f.recycle();
        pool::give_array(self.h);
    }
}

impl Model {
    /// A model with PyTorch's default initialisation drawn from `seed`.
    pub fn new(config: ModelConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let d = config.d_model;
        let embed = Embedding::init(config.vocab_size, d, &mut rng);
        let blocks = (0..config.n_layers)
            .map(|_| Block::init(d, config.ffn_expansion, config.n_attn_heads, &mut rng))
            .collect::<Result<Vec<_>>>()?;
        Ok(Model {
            pe: positional_table(config.max_len, d),
            ln_f: LayerNorm::new(d),
            config,
            profile: None,
            embed,
            blocks,
        })
    }

    /// As [`new`](Self::new), with the (trainable) embedding initialised from `vectors: [V, d]`
    /// (e.g. [`Vocab::embeddings`]). Errors if the shape disagrees with the config.
    pub fn with_embeddings(
        config: ModelConfig,
        seed: u64,
        vectors: ArrayView2<'_, f32>,
    ) -> Result<Self> {
        let mut m = Model::new(config, seed)?;
        let want = [m.config.vocab_size, m.config.d_model];
        if vectors.shape() != want {
            return Err(Error::shape(
                "Model::with_embeddings vectors",
                &want,
                vectors.shape(),
            ));
        }
        m.embed = Embedding::from_weight(vectors.to_owned())?;
        Ok(m)
    }

    /// The named profile for `vocab`, seeded; the embedding starts from the vocabulary's vectors
    /// when it has them (and they are `d_model` wide).
    pub fn from_profile(name: &str, vocab: &Vocab, seed: u64) -> Result<Self> {
        let config = ModelConfig::profile(name, vocab.len())?;
        let mut m = match vocab.embeddings() {
            Some(e) => Model::with_embeddings(config, seed, e.view())?,
            None => Model::new(config, seed)?,
        };
        m.profile = Some(name.to_string());
        Ok(m)
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The profile name, if the model was made from (or saved with) one.
    pub fn profile(&self) -> Option<&str> {
        self.profile.as_deref()
    }

    /// Sets the profile name recorded in checkpoints.
    pub fn set_profile(&mut self, name: Option<String>) {
        self.profile = name;
    }

    /// The blocks.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// The blocks, mutably (for surgery such as replacing an FFN projection).
    pub fn blocks_mut(&mut self) -> &mut [Block] {
        &mut self.blocks
    }

    /// The (tied) embedding.
    pub fn embedding(&self) -> &Embedding {
        &self.embed
    }

    /// The positional table `pos_enc.pe`, `[max_len, d]`.
    pub fn positional(&self) -> ArrayView2<'_, f32> {
        self.pe.view()
    }

    /// Every parameter by PyTorch state_dict name, in state_dict order.
    pub fn named_parameters(&self) -> Vec<(String, ArrayViewD<'_, f32>)> {
        let mut v = Vec::new();
        self.tensors("", &mut v);
        v
    }

    /// A parameter by PyTorch state_dict name.
    pub fn get(&self, name: &str) -> Option<ArrayViewD<'_, f32>> {
        self.named_parameters()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
    }

    /// A model of zeros with this one's shape (to hold gradients).
    pub(crate) fn zeros_like(&self) -> Model {
        Model {
            config: self.config.clone(),
            profile: self.profile.clone(),
            embed: self.embed.zeros_like(),
            pe: self.pe.clone(),
            blocks: self.blocks.iter().map(Block::zeros_like).collect(),
            ln_f: self.ln_f.zeros_like(),
        }
    }

    /// Zero gradients shaped like this model.
    pub fn zero_grads(&self) -> Grads {
        Grads {
            inner: self.zeros_like(),
        }
    }

    /// Checks ids `[B, T]`: non-empty, `T <= max_len`, every id `< V`.
    pub(crate) fn check_ids(&self, ids: ArrayView2<'_, u32>, what: &str) -> Result<()> {
        let (b, t) = ids.dim();
        if b == 0 || t == 0 {
            return Err(Error::invalid_arg(
                what,
                format!("empty batch of shape [{b}, {t}]"),
            ));
        }
        if t > self.config.max_len {
            return Err(Error::SequenceTooLong {
                context: what.to_string(),
                len: t,
                max_len: self.config.max_len,
            });
        }
        let v = self.config.vocab_size;
        if let Some(((i, j), &id)) = ids.indexed_iter().find(|(_, &id)| id as usize >= v) {
            return Err(Error::TokenOutOfRange {
                id,
                context: format!("{what}[{i}, {j}]"),
                vocab_size: v,
            });
        }
        Ok(())
    }

    /// Logits for every position: `ids: [B, T] -> [B, T, V]`.
    ///
    /// Errors on an empty batch, `T > max_len`, or an id `>= V`.
    pub fn forward(&self, ids: ArrayView2<'_, u32>) -> Result<Array3<f32>> {
        self.forward_threaded(ids, 1)
    }

    /// [`forward`](Self::forward) with the batch's chunks of whole sequences shared out among
    /// up to `threads` threads (the caller and persistent workers; each takes the next chunk
    /// when free). Each chunk is computed exactly as in the serial forward, so the
    /// logits are bit-identical for any `threads` (keep OpenBLAS at one thread meanwhile; see
    /// [`crate::tt::blas`]). Errors as `forward`, and if `threads` is 0.
    pub fn forward_threaded(
        &self,
        ids: ArrayView2<'_, u32>,
        threads: usize,
    ) -> Result<Array3<f32>> {
        if threads == 0 {
            return Err(Error::invalid_arg("threads", "must be at least 1"));
        }
        self.check_ids(ids, "ids")?;
        let (b, t) = ids.dim();
        let flat: Vec<u32> = ids.iter().copied().collect();
        let v = self.config.vocab_size;
        let mut out = Array2::<f32>::zeros((b * t, v));
        let parts: Vec<std::ops::Range<usize>> = chunks(b * t, t).map(|(r, _)| r).collect();
        let threads = threads.min(parts.len());
        if threads <= 1 {
            for r in parts {
                let (logits, cache) = self.forward_rows(&flat[r.clone()], t, None);
                out.slice_mut(s![r, ..]).assign(&logits);
                pool::give_array(logits);
                cache.recycle();
            }
        } else {
            // Each chunk's output rows are a disjoint view; thread k takes chunks k, k + threads, ...
            let mut slots: Vec<(std::ops::Range<usize>, ndarray::ArrayViewMut2<'_, f32>)> =
                Vec::with_capacity(parts.len());
            let mut rest = out.view_mut();
            let mut start = 0;
            for r in &parts {
                let (head, tail) = rest.split_at(Axis(0), r.end - start);
                slots.push((r.clone(), head));
                rest = tail;
                start = r.end;
            }
            // Each thread claims the next unclaimed chunk as it becomes free.
            let work: Vec<Mutex<Option<_>>> =
                slots.into_iter().map(|s| Mutex::new(Some(s))).collect();
            let next = AtomicUsize::new(0);
            let flat = &flat;
            workers::run(threads, &|_| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(cell) = work.get(k) else { break };
                let taken = cell.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some((r, mut dst)) = taken {
                    let (logits, cache) = self.forward_rows(&flat[r], t, None);
                    dst.assign(&logits);
                    pool::give_array(logits);
                    cache.recycle();
                }
            });
        }
        Ok(out.into_shape_with_order((b, t, v)).expect("rows = B*T"))
    }

    /// As [`forward`](Self::forward), plus the seed's verbose-mode diagnostics: per-block
    /// attention maps and FFN residual statistics.
    pub fn forward_with_diagnostics(
        &self,
        ids: ArrayView2<'_, u32>,
    ) -> Result<(Array3<f32>, Diagnostics)> {
        self.check_ids(ids, "ids")?;
        let (b, t) = ids.dim();
        let flat: Vec<u32> = ids.iter().copied().collect();
        let mut stats = vec![
            FfnResidualStats {
                mean_l2_x: 0.0,
                mean_l2_ffn: 0.0,
                mean_cossim: 0.0
            };
            self.blocks.len()
        ];
        let (logits, cache) = self.forward_rows(&flat, t, Some(&mut stats));
        let diag = Diagnostics {
            attention: cache.blocks.iter().map(|c| c.attention().clone()).collect(),
            ffn_residual: stats,
        };
        Ok((
            logits
                .into_shape_with_order((b, t, self.config.vocab_size))
                .expect("rows = B*T"),
            diag,
        ))
    }

    /// The forward pass on `ids: [B*T]` (sequences of length `seq`, validated by the caller),
    /// returning logits `[B*T, V]` and the cache.
    fn forward_rows(
        &self,
        ids: &[u32],
        seq: usize,
        mut stats: Option<&mut Vec<FfnResidualStats>>,
    ) -> (Array2<f32>, ModelCache) {
        let mut x = self.embed.lookup_positions(ids, self.pe.view(), 0, seq);
        let mut caches = Vec::with_capacity(self.blocks.len());
        for (i, block) in self.blocks.iter().enumerate() {
            let st = stats.as_mut().map(|s| &mut s[i]);
            let (y, c) = block.forward_train_unchecked(x, seq, st);
            x = y;
            caches.push(c);
        }
        let (h, ln_f) = self.ln_f.forward_train_unchecked(x.view());
        let logits = self.embed.logits(h.view());
        (
            logits,
            ModelCache {
                ids: ids.to_vec(),
                blocks: caches,
                ln_f,
                h,
            },
        )
    }

    /// Mean cross-entropy of the next-token predictions, `PAD` targets ignored (no gradients).
    pub fn loss(&self, x: ArrayView2<'_, u32>, y: ArrayView2<'_, u32>) -> Result<f32> {
        let batch = self.prepare(x, y)?;
        Ok(self.mean_loss(&batch))
    }

    /// Mean over the non-PAD targets of `KL(teacher ‖ model)`, the distillation loss (no
    /// gradients): `x, y: [B, T]`, `teacher: [B, T, V]` the teacher's next-token probabilities
    /// (only read where `y` is not PAD). See [`crate::nn::loss::distillation`].
    ///
    /// Errors as [`loss`](Self::loss), if `teacher` is not `[B, T, V]`, or if a teacher
    /// distribution at a real target is not finite and non-negative, or does not sum to 1.
    pub fn distill_loss(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        teacher: ArrayView3<'_, f32>,
    ) -> Result<f32> {
        let batch = self.prepare_distill(x, y, teacher)?;
        Ok(self.mean_loss(&batch))
    }

    /// The mean loss of a prepared batch, chunk by chunk.
    fn mean_loss(&self, batch: &Prepared) -> f32 {
        let sum: f64 = batch
            .rows()
            .chunks()
            .map(|chunk| {
                let rows = chunk.rows();
                let (mut logits, cache) = self.forward_rows(rows.x, rows.seq, None);
                let sum = rows.loss_in_place(&mut logits, 1.0);
                pool::give_array(logits);
                cache.recycle();
                sum
            })
            .sum();
        (sum / batch.count as f64) as f32
    }

    /// Validates a training pair and trims it to its longest real row (the loss head:
    /// cross-entropy on `y`).
    fn prepare(&self, x: ArrayView2<'_, u32>, y: ArrayView2<'_, u32>) -> Result<Prepared> {
        if x.dim() != y.dim() {
            return Err(Error::shape("loss targets y", x.shape(), y.shape()));
        }
        self.check_ids(x, "x")?;
        self.check_ids(y, "y")?;
        let t = trimmed_len(y);
        let count = count_real(&y.iter().copied().collect::<Vec<_>>());
        if count == 0 {
            return Err(Error::invalid_arg("y", "every target is <PAD>"));
        }
        Ok(Prepared {
            rows: Chunk {
                x: Cow::Owned(x.slice(s![.., ..t]).iter().copied().collect()),
                y: Cow::Owned(y.slice(s![.., ..t]).iter().copied().collect()),
                teacher: None,
                seq: t,
                v: self.config.vocab_size,
            },
            count,
        })
    }

    /// As [`prepare`](Self::prepare), with the loss head `KL(teacher ‖ model)`: also checks
    /// `teacher: [B, T, V]` (its distributions at real targets) and trims it the same way.
    fn prepare_distill(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        teacher: ArrayView3<'_, f32>,
    ) -> Result<Prepared> {
        let mut batch = self.prepare(x, y)?;
        let (b, t) = x.dim();
        let v = self.config.vocab_size;
        Error::check_shape("distillation teacher", &[b, t, v], teacher.shape())?;
        let seq = batch.rows.seq;
        let probs: Vec<f32> = teacher.slice(s![.., ..seq, ..]).iter().copied().collect();
        check_teacher(&probs, v, &batch.rows.y, |i| {
            format!("teacher[{}, {}]", i / seq, i % seq)
        })?;
        batch.rows.teacher = Some(Cow::Owned(probs));
        Ok(batch)
    }

    /// The loss (mean cross-entropy over non-PAD targets) and its gradient with respect to every
    /// parameter. `x, y: [B, T]` of the same shape.
    ///
    /// The batch is computed in chunks of a few sequences (about 128 rows), each only up to its
    /// own longest real row (exact: the causal mask keeps real positions from seeing later
    /// padding, and PAD targets are ignored).
    pub fn loss_and_grads(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
    ) -> Result<(f32, Grads)> {
        let mut grads = self.zero_grads();
        let loss = self.accumulate_grads(x, y, &mut grads)?;
        Ok((loss, grads))
    }

    /// The distillation loss ([`distill_loss`](Self::distill_loss): mean `KL(teacher ‖ model)`
    /// over non-PAD targets) and its gradient with respect to every parameter, computed in
    /// chunks as [`loss_and_grads`](Self::loss_and_grads).
    pub fn distill_loss_and_grads(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        teacher: ArrayView3<'_, f32>,
    ) -> Result<(f32, Grads)> {
        let mut grads = self.zero_grads();
        let loss = self.accumulate_distill_grads(x, y, teacher, &mut grads)?;
        Ok((loss, grads))
    }

    /// As [`loss_and_grads`](Self::loss_and_grads), but **adds** the gradient into `grads`
    /// (which must come from [`zero_grads`](Self::zero_grads) of this model) and returns the loss.
    pub fn accumulate_grads(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        grads: &mut Grads,
    ) -> Result<f32> {
        let batch = self.prepare(x, y)?;
        Ok(self.accumulate(&batch, grads))
    }

    /// As [`distill_loss_and_grads`](Self::distill_loss_and_grads), but **adds** the gradient
    /// into `grads` (from [`zero_grads`](Self::zero_grads) of this model) and returns the loss.
    /// `teacher: [B, T, V]` holds the teacher's next-token probabilities for `x, y: [B, T]`.
    pub fn accumulate_distill_grads(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        teacher: ArrayView3<'_, f32>,
        grads: &mut Grads,
    ) -> Result<f32> {
        let batch = self.prepare_distill(x, y, teacher)?;
        Ok(self.accumulate(&batch, grads))
    }

    /// Adds the gradient of a prepared batch's mean loss into `grads`; returns the loss.
    fn accumulate(&self, batch: &Prepared, grads: &mut Grads) -> f32 {
        let scale = 1.0 / batch.count as f32;
        let sum = self.backward_rows(batch.rows(), scale, &mut grads.inner);
        (sum / batch.count as f64) as f32
    }

    /// As [`accumulate_grads`](Self::accumulate_grads), with the batch's chunks (a few
    /// sequences each) shared out dynamically among `threads` threads: each thread takes the
    /// next unclaimed piece of the batch as it becomes free, so a slower core (a busy virtual
    /// CPU, an efficiency core) simply does fewer. Every piece's gradient goes to its own
    /// buffer in `scratch` (at most 16, kept between calls), and they are added into `grads`
    /// in the batch's order, so the result does not depend on the timing or on `threads`
    /// (≥ 2); it equals the one-thread result up to float summation order. Set
    /// [`crate::tt::blas::set_num_threads`]`(1)` to avoid oversubscription.
    pub fn accumulate_grads_threaded(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        grads: &mut Grads,
        scratch: &mut Vec<Grads>,
        threads: usize,
    ) -> Result<f32> {
        let batch = self.prepare(x, y)?;
        Ok(self.accumulate_threaded(&batch, grads, scratch, threads))
    }

    /// [`accumulate_distill_grads`](Self::accumulate_distill_grads) shared out among `threads`
    /// threads exactly as [`accumulate_grads_threaded`](Self::accumulate_grads_threaded) does
    /// (the same result for any `threads` ≥ 2; equal to the one-thread result up to float
    /// summation order).
    pub fn accumulate_distill_grads_threaded(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        teacher: ArrayView3<'_, f32>,
        grads: &mut Grads,
        scratch: &mut Vec<Grads>,
        threads: usize,
    ) -> Result<f32> {
        let batch = self.prepare_distill(x, y, teacher)?;
        Ok(self.accumulate_threaded(&batch, grads, scratch, threads))
    }

    /// [`accumulate`](Self::accumulate) shared out among `threads` threads (see
    /// [`accumulate_grads_threaded`](Self::accumulate_grads_threaded)).
    fn accumulate_threaded(
        &self,
        batch: &Prepared,
        grads: &mut Grads,
        scratch: &mut Vec<Grads>,
        threads: usize,
    ) -> f32 {
        let (t, count) = (batch.rows.seq, batch.count);
        let b = batch.rows.x.len() / t;
        let threads = threads.clamp(1, b.max(1));
        if threads == 1 {
            return self.accumulate(batch, grads);
        }
        let scale = 1.0 / count as f32;
        // Pieces: contiguous runs of whole chunks, at most MAX_PIECES of them.
        let per_chunk = (CHUNK_ROWS / t).max(1);
        let n_chunks = b.div_ceil(per_chunk);
        let pieces = n_chunks.min(MAX_PIECES);
        while scratch.len() < pieces {
            scratch.push(self.zero_grads());
        }
        let seqs = |k: usize| {
            let c = |k: usize| (k * n_chunks / pieces * per_chunk).min(b);
            c(k)..c(k + 1)
        };
        let slots: Vec<Mutex<(&mut Model, f64)>> = scratch[..pieces]
            .iter_mut()
            .map(|g| Mutex::new((&mut g.inner, 0.0)))
            .collect();
        let next = AtomicUsize::new(0);
        let rows = batch.rows();
        workers::run(threads, &|_| loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= pieces {
                break;
            }
            let mut slot = slots[k].lock().unwrap_or_else(|e| e.into_inner());
            let (g, sum) = &mut *slot;
            zero_all(g);
            *sum = self.backward_rows(rows.sequences(seqs(k)), scale, g);
        });
        let total: f64 = slots
            .into_iter()
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()).1)
            .sum();
        // grads += piece 0, then piece 1, …: a fixed order for every element, whichever
        // thread sums it. The threads split the elements of all tensors, end to end.
        let parts: Vec<Vec<&[f32]>> = scratch[..pieces]
            .iter()
            .map(|g| {
                g.named()
                    .into_iter()
                    .map(|(_, v)| v.to_slice().expect("gradients are contiguous"))
                    .collect()
            })
            .collect();
        let dst = TensorsMut::of(&mut grads.inner);
        let total_len = dst.len();
        workers::run(threads, &|w| {
            let range = w * total_len / threads..(w + 1) * total_len / threads;
            let add = |i: usize, at: usize, d: &mut [f32]| {
                for p in &parts {
                    let s = &p[i][at..at + d.len()];
                    dispatch!(add_into, (&mut *d, s));
                }
            };
            // SAFETY: the threads' ranges are disjoint, and `dst` holds `grads` borrowed.
            unsafe { dst.for_each_in(range, add) };
        });
        (total / count as f64) as f32
    }

    /// Forward and backward of `Σ losses · scale` on `rows`, chunk by chunk, each chunk trimmed;
    /// returns `Σ losses`.
    fn backward_rows(&self, rows: Rows<'_>, scale: f32, g: &mut Model) -> f64 {
        rows.chunks()
            .map(|chunk| self.backward_chunk(chunk.rows(), scale, g))
            .sum()
    }

    /// [`backward_rows`](Self::backward_rows) on one chunk of whole sequences.
    fn backward_chunk(&self, rows: Rows<'_>, scale: f32, g: &mut Model) -> f64 {
        let (mut logits, cache) = self.forward_rows(rows.x, rows.seq, None);
        let sum = rows.loss_in_place(&mut logits, scale);
        let dlogits = logits;
        // logits = h · Eᵀ
        let dh = self
            .embed
            .head_backward(cache.h.view(), dlogits.view(), &mut g.embed);
        pool::give_array(dlogits);
        let mut dx = self
            .ln_f
            .backward_unchecked(&cache.ln_f, dh.view(), &mut g.ln_f);
        pool::give_array(dh);
        for ((block, c), gb) in self
            .blocks
            .iter()
            .zip(&cache.blocks)
            .zip(&mut g.blocks)
            .rev()
        {
            let next = block.backward_unchecked(c, dx.view(), gb);
            pool::give_array(std::mem::replace(&mut dx, next));
        }
        // x = embed[ids] + pe: the positional table is a constant.
        self.embed.scatter_add(&cache.ids, dx.view(), &mut g.embed);
        pool::give_array(dx);
        cache.recycle();
        sum
    }

    /// An empty key/value cache for one sequence.
    pub fn new_cache(&self) -> KvCache {
        let (l, m, d) = (self.blocks.len(), self.config.max_len, self.config.d_model);
        KvCache {
            len: 0,
            k: vec![Array2::zeros((m, d)); l],
            v: vec![Array2::zeros((m, d)); l],
            scratch: HeadScratch::default(),
        }
    }

    /// Appends `ids` to the cached sequence and returns their logits, `[ids.len(), V]`; each new
    /// position costs one position's work. Errors past `max_len`, on an id `>= V`, or on a cache
    /// from a model of another shape.
    pub fn forward_cached(&self, cache: &mut KvCache, ids: &[u32]) -> Result<Array2<f32>> {
        let (m, d, v) = (
            self.config.max_len,
            self.config.d_model,
            self.config.vocab_size,
        );
        if cache.k.len() != self.blocks.len() || cache.k.iter().any(|k| k.dim() != (m, d)) {
            return Err(Error::invalid_arg(
                "cache",
                "was made by a model of another shape",
            ));
        }
        if cache.len + ids.len() > m {
            return Err(Error::SequenceTooLong {
                context: "Model::forward_cached".into(),
                len: cache.len + ids.len(),
                max_len: m,
            });
        }
        if let Some((i, &id)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= v) {
            return Err(Error::TokenOutOfRange {
                id,
                context: format!("ids[{i}]"),
                vocab_size: v,
            });
        }
        if ids.is_empty() {
            return Err(Error::invalid_arg(
                "ids",
                "is empty (Model::forward_cached needs at least one new token)",
            ));
        }
        let n = ids.len();
        let p0 = cache.len;
        // Positions p0 .. p0 + n <= max_len: no wrap-around.
        let mut x = self.embed.lookup_positions(ids, self.pe.view(), p0, m);
        let (h, dh) = (self.config.n_attn_heads, self.config.head_dim());
        let scale = 1.0 / (dh as f32).sqrt();
        let mut concat = Array2::<f32>::zeros((n, d));
        for (l, block) in self.blocks.iter().enumerate() {
            let a = block.ln1.apply(x.view());
            let qkv = block.attn.project_qkv(a.view());
            cache.k[l]
                .slice_mut(s![p0..p0 + n, ..])
                .assign(&qkv.slice(s![.., d..2 * d]));
            cache.v[l]
                .slice_mut(s![p0..p0 + n, ..])
                .assign(&qkv.slice(s![.., 2 * d..]));
            let qs = qkv.as_slice().expect("contiguous");
            let ks = cache.k[l].as_slice().expect("contiguous");
            let vs = cache.v[l].as_slice().expect("contiguous");
            let cs = concat.as_slice_mut().expect("contiguous");
            for j in 0..h {
                head_forward(
                    HeadIo {
                        q: &qs[j * dh..],
                        k: &ks[j * dh..],
                        v: &vs[j * dh..],
                        qs: 3 * d,
                        kvs: d,
                        n,
                        offset: p0,
                        dh,
                        scale,
                    },
                    &mut cs[j * dh..],
                    d,
                    &mut cache.scratch,
                );
            }
            x += &block.attn.project_out(concat.view());
            let f = block.ffn.apply(block.ln2.apply(x.view()).view());
            x += &f;
        }
        cache.len += n;
        let hf = self.ln_f.apply(x.view());
        Ok(self.embed.logits(hf.view()))
    }

    /// Decodes several sequences at once: appends `ids[r]` to `caches[r]` for every row `r` and
    /// returns the logits `[rows, V]` of those new positions (row `r` for `caches[r]`), with
    /// `rows = caches.len() = ids.len()`.
    ///
    /// The rows are stacked into `x: [rows, d]`, so every projection (Q/K/V, the output
    /// projection, the FFN, the tied head) is one `[rows, d]·Wᵀ` product instead of `rows`
    /// vector products; attention stays per row, over that row's own cache. The caches may hold
    /// sequences of different lengths. Row `r`'s logits equal
    /// [`forward_cached`](Self::forward_cached)`(&mut caches[r], &[ids[r]])` up to the float
    /// rounding of the batched products (with one row, exactly).
    ///
    /// Errors, before any cache is touched: `ids.len() != caches.len()`, a cache made by a model
    /// of another shape, a cache already holding `max_len` positions, an id `>= V`. No rows
    /// gives `[0, V]`.
    pub fn forward_cached_rows(&self, caches: &mut [KvCache], ids: &[u32]) -> Result<Array2<f32>> {
        let (m, d, v) = (
            self.config.max_len,
            self.config.d_model,
            self.config.vocab_size,
        );
        if ids.len() != caches.len() {
            return Err(Error::invalid_arg(
                "ids",
                format!(
                    "has {} tokens for {} caches (one new token per cache)",
                    ids.len(),
                    caches.len()
                ),
            ));
        }
        for (r, cache) in caches.iter().enumerate() {
            if cache.k.len() != self.blocks.len() || cache.k.iter().any(|k| k.dim() != (m, d)) {
                return Err(Error::invalid_arg(
                    "caches",
                    format!("caches[{r}] was made by a model of another shape"),
                ));
            }
            if cache.len >= m {
                return Err(Error::SequenceTooLong {
                    context: format!("Model::forward_cached_rows, caches[{r}]"),
                    len: cache.len + 1,
                    max_len: m,
                });
            }
        }
        if let Some((i, &id)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= v) {
            return Err(Error::TokenOutOfRange {
                id,
                context: format!("ids[{i}]"),
                vocab_size: v,
            });
        }
        let rows = ids.len();
        if rows == 0 {
            return Ok(Array2::zeros((0, v)));
        }
        // Row r sits at position caches[r].len < max_len.
        let mut x = Array2::<f32>::zeros((rows, d));
        for (r, (cache, &id)) in caches.iter().zip(ids).enumerate() {
            let e = self
                .embed
                .lookup_positions(&[id], self.pe.view(), cache.len, m);
            x.row_mut(r).assign(&e.row(0));
        }
        let (h, dh) = (self.config.n_attn_heads, self.config.head_dim());
        let scale = 1.0 / (dh as f32).sqrt();
        let mut concat = Array2::<f32>::zeros((rows, d));
        for (l, block) in self.blocks.iter().enumerate() {
            let a = block.ln1.apply(x.view());
            let qkv = block.attn.project_qkv(a.view());
            let qs = qkv.as_slice().expect("contiguous");
            let cs = concat.as_slice_mut().expect("contiguous");
            for (r, cache) in caches.iter_mut().enumerate() {
                let p = cache.len;
                let q_row = &qs[r * 3 * d..(r + 1) * 3 * d];
                cache.k[l].row_mut(p).assign(&qkv.slice(s![r, d..2 * d]));
                cache.v[l].row_mut(p).assign(&qkv.slice(s![r, 2 * d..]));
                let ks = cache.k[l].as_slice().expect("contiguous");
                let vs = cache.v[l].as_slice().expect("contiguous");
                let c_row = &mut cs[r * d..(r + 1) * d];
                for j in 0..h {
                    head_forward(
                        HeadIo {
                            q: &q_row[j * dh..],
                            k: &ks[j * dh..],
                            v: &vs[j * dh..],
                            qs: 3 * d,
                            kvs: d,
                            n: 1,
                            offset: p,
                            dh,
                            scale,
                        },
                        &mut c_row[j * dh..],
                        d,
                        &mut cache.scratch,
                    );
                }
            }
            x += &block.attn.project_out(concat.view());
            let f = block.ffn.apply(block.ln2.apply(x.view()).view());
            x += &f;
        }
        for cache in caches.iter_mut() {
            cache.len += 1;
        }
        let hf = self.ln_f.apply(x.view());
        Ok(self.embed.logits(hf.view()))
    }
}

/// Rows per chunk of work: whole sequences, about this many rows. Activations of a chunk stay
/// small (below the allocator's mmap threshold, and in L2), so batches run chunk by chunk
/// instead of allocating (and page-faulting) large temporaries.
const CHUNK_ROWS: usize = 128;

/// Splits `rows` (sequences of `seq` rows) into ranges of whole sequences of about
/// [`CHUNK_ROWS`] rows; yields `(row range, rows)`.
fn chunks(rows: usize, seq: usize) -> impl Iterator<Item = (std::ops::Range<usize>, usize)> {
    let step = (CHUNK_ROWS / seq).max(1) * seq;
    (0..rows).step_by(step).map(move |r0| {
        let r1 = (r0 + step).min(rows);
        (r0..r1, r1 - r0)
    })
}

/// Most pieces (gradient buffers) a threaded gradient pass splits a batch into.
const MAX_PIECES: usize = 16;

/// Sets every tensor of `m` to zero (a `memset` where contiguous).
fn zero_all(m: &mut Model) {
    m.visit_mut("", &mut |_, mut t| match t.as_slice_mut() {
        Some(s) => s.fill(0.0),
        None => t.fill(0.0),
    });
}

/// Every tensor of a model as a raw `(pointer, length)`, in `visit_mut` order, so that threads
/// can write disjoint element ranges of them. Holds the model's mutable borrow meanwhile.
struct TensorsMut<'a>(
    Vec<(*mut f32, usize)>,
    std::marker::PhantomData<&'a mut Model>,
);

// SAFETY: the pointers are only dereferenced through `for_each_in`, whose callers guarantee
// that no two threads pass overlapping ranges; the model itself stays borrowed.
unsafe impl Sync for TensorsMut<'_> {}

impl<'a> TensorsMut<'a> {
    /// The tensors of `m` (all contiguous: gradients are built that way).
    fn of(m: &'a mut Model) -> Self {
        let mut v = Vec::new();
        m.visit_mut("", &mut |_, mut t| {
            let s = t.as_slice_mut().expect("gradients are contiguous");
            v.push((s.as_mut_ptr(), s.len()));
        });
        TensorsMut(v, std::marker::PhantomData)
    }

    /// Total number of elements.
    fn len(&self) -> usize {
        self.0.iter().map(|t| t.1).sum()
    }

    /// `f(tensor index, offset in that tensor, elements)` for every tensor's part of the
    /// element `range`, counted over all tensors end to end.
    ///
    /// # Safety
    /// No other thread may access `range` of these tensors meanwhile.
    unsafe fn for_each_in(
        &self,
        range: std::ops::Range<usize>,
        mut f: impl FnMut(usize, usize, &mut [f32]),
    ) {
        let mut base = 0;
        for (i, &(p, len)) in self.0.iter().enumerate() {
            let (lo, hi) = (range.start.max(base), range.end.min(base + len));
            if lo < hi {
                f(
                    i,
                    lo - base,
                    std::slice::from_raw_parts_mut(p.add(lo - base), hi - lo),
                );
            }
            base += len;
        }
    }
}

/// `d += s`, elementwise.
#[inline(always)]
fn add_into(d: &mut [f32], s: &[f32]) {
    d.iter_mut().zip(s).for_each(|(d, &s)| *d += s);
}

/// What a training pass scores a chunk's logits against: its loss head.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    /// Cross-entropy on the labels `y`.
    Labels,
    /// `KL(teacher ‖ model)` against teacher probabilities `[rows, V]` (flattened row by row,
    /// aligned with `y`; rows whose label is PAD are ignored).
    Teacher(&'a [f32]),
}

/// Flattened training rows: `x`, `y` (`[B·seq]`, whole sequences) and their loss head.
#[derive(Debug, Clone, Copy)]
struct Rows<'a> {
    x: &'a [u32],
    y: &'a [u32],
    target: Target<'a>,
    /// Positions per sequence.
    seq: usize,
    /// The vocabulary size `V` (the width of a teacher row).
    v: usize,
}

impl<'a> Rows<'a> {
    /// The rows of the sequences `r`.
    fn sequences(self, r: std::ops::Range<usize>) -> Rows<'a> {
        self.slice(r.start * self.seq..r.end * self.seq)
    }

    /// The rows `r` (whole sequences).
    fn slice(self, r: std::ops::Range<usize>) -> Rows<'a> {
        let target = match self.target {
            Target::Labels => Target::Labels,
            Target::Teacher(p) => Target::Teacher(&p[r.start * self.v..r.end * self.v]),
        };
        Rows {
            x: &self.x[r.clone()],
            y: &self.y[r],
            target,
            ..self
        }
    }

    /// Chunks of whole sequences of about [`CHUNK_ROWS`] rows, each cut to its own longest
    /// real row; chunks whose targets are all PAD are left out.
    fn chunks(self) -> impl Iterator<Item = Chunk<'a>> {
        chunks(self.x.len(), self.seq).filter_map(move |(r, _)| trim_chunk(self.slice(r)))
    }

    /// Replaces `logits: [rows, V]` by `scale · d(Σ losses)/dlogits` and returns `Σ losses` over
    /// the non-PAD targets.
    fn loss_in_place(&self, logits: &mut Array2<f32>, scale: f32) -> f64 {
        match self.target {
            Target::Labels => cross_entropy_in_place(logits, self.y, scale),
            Target::Teacher(p) => distillation_in_place(logits, p, self.y, scale),
        }
    }
}

/// A validated batch, cut to its longest real row and flattened (`[B·seq]`, teacher
/// `[B·seq, V]`), with its loss head.
struct Prepared {
    rows: Chunk<'static>,
    /// Real (non-PAD) targets: the loss's denominator.
    count: usize,
}

impl Prepared {
    fn rows(&self) -> Rows<'_> {
        self.rows.rows()
    }
}

/// A chunk of whole sequences cut to its own longest real row: borrowed when nothing is cut.
struct Chunk<'a> {
    x: Cow<'a, [u32]>,
    y: Cow<'a, [u32]>,
    /// The teacher rows, cut the same way, when distilling.
    teacher: Option<Cow<'a, [f32]>>,
    seq: usize,
    v: usize,
}

impl Chunk<'_> {
    fn rows(&self) -> Rows<'_> {
        Rows {
            x: &self.x,
            y: &self.y,
            target: match &self.teacher {
                None => Target::Labels,
                Some(p) => Target::Teacher(p),
            },
            seq: self.seq,
            v: self.v,
        }
    }
}

/// Cuts a chunk (sequences of `seq` positions) to its longest real row; `None` if every
/// target is PAD (the chunk adds nothing). Exact, as trimming a whole batch is: real positions
/// never attend to later ones, and PAD targets (and their teacher rows) add nothing.
fn trim_chunk(rows: Rows<'_>) -> Option<Chunk<'_>> {
    let seq = rows.seq;
    let t = rows
        .y
        .chunks_exact(seq)
        .map(crate::text::data::real_len)
        .max()
        .unwrap_or(0);
    if t == 0 {
        return None;
    }
    let teacher = match rows.target {
        Target::Labels => None,
        Target::Teacher(p) => Some(Cow::Borrowed(p)),
    };
    let whole = Chunk {
        x: Cow::Borrowed(rows.x),
        y: Cow::Borrowed(rows.y),
        teacher,
        seq,
        v: rows.v,
    };
    if t == seq {
        return Some(whole);
    }
    // The first t positions (of `width` values each) of every sequence.
    fn cut<T: Copy>(values: &[T], seq: usize, t: usize, width: usize) -> Cow<'static, [T]> {
        values
            .chunks_exact(seq * width)
            .flat_map(|row| row[..t * width].iter().copied())
            .collect::<Vec<T>>()
            .into()
    }
    Some(Chunk {
        x: cut(&whole.x, seq, t, 1),
        y: cut(&whole.y, seq, t, 1),
        teacher: whole.teacher.map(|p| cut(&p, seq, t, rows.v)),
        seq: t,
        v: rows.v,
    })
}

/// The length of the longest real row: one past the last non-PAD target of any row.
fn trimmed_len(y: ArrayView2<'_, u32>) -> usize {
    crate::text::data::longest_real(y).max(1)
}

impl NamedTensors for Model {
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>) {
        self.embed.tensors(&join(prefix, "embed"), out);
        for (i, b) in self.blocks.iter().enumerate() {
            b.tensors(&join(prefix, &format!("blocks.{i}")), out);
        }
        self.ln_f.tensors(&join(prefix, "ln_f"), out);
    }
}

impl Parameters for Model {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewD<'_, f32>)) {
        visit_via_tensors(self, prefix, f)
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewMutD<'_, f32>)) {
        self.embed.visit_mut(&join(prefix, "embed"), f);
        for (i, b) in self.blocks.iter_mut().enumerate() {
            b.visit_mut(&join(prefix, &format!("blocks.{i}")), f);
        }
        self.ln_f.visit_mut(&join(prefix, "ln_f"), f);
    }
}

impl Grads {
    /// The gradient of a parameter, by PyTorch state_dict name.
    pub fn get(&self, name: &str) -> Option<ArrayViewD<'_, f32>> {
        self.inner.get(name)
    }

    /// Every gradient by name, in state_dict order.
    pub fn named(&self) -> Vec<(String, ArrayViewD<'_, f32>)> {
        self.inner.named_parameters()
    }

    /// The global L2 norm over every gradient.
    pub fn global_norm(&self) -> f32 {
        let mut s = 0.0f64;
        self.visit("", &mut |_, g| {
            s += g.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>()
        });
        s.sqrt() as f32
    }

    /// Sets every gradient to zero.
    pub fn zero(&mut self) {
        zero_all(&mut self.inner);
    }

    /// Multiplies every gradient by `k`.
    pub fn scale(&mut self, k: f32) {
        self.visit_mut("", &mut |_, mut g| g.mapv_inplace(|v| v * k));
    }

    /// Adds `other` (same shape) into `self`.
    pub fn add_assign(&mut self, other: &Grads) {
        let src = other.named();
        let mut i = 0;
        self.visit_mut("", &mut |_, mut g| {
            let o = &src[i].1;
            match (g.as_slice_mut(), o.as_slice()) {
                (Some(d), Some(s)) if d.len() == s.len() => {
                    d.iter_mut().zip(s).for_each(|(d, &s)| *d += s)
                }
                _ => g += o,
            }
            i += 1;
        });
    }
}

impl Parameters for Grads {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewD<'_, f32>)) {
        self.inner.visit(prefix, f)
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewMutD<'_, f32>)) {
        self.inner.visit_mut(prefix, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Teacher value of sequence `b`, position `p`, token `j`: every cut row can be traced.
    fn mark(b: usize, p: usize, j: usize) -> f32 {
        (100 * b + 10 * p + j) as f32
    }

    #[test]
    fn trimming_cuts_the_teacher_rows_with_their_positions() {
        let (seq, v) = (5, 2);
        // Three sequences; the longest real target is at position 2 (of sequence 1).
        let y = [3u32, 4, 0, 0, 0, 5, 6, 7, 0, 0, 8, 0, 0, 0, 0];
        let x: Vec<u32> = (0..15).collect();
        let teacher: Vec<f32> = (0..3 * seq * v)
            .map(|i| mark(i / (seq * v), i / v % seq, i % v))
            .collect();
        let rows = Rows {
            x: &x,
            y: &y,
            target: Target::Teacher(&teacher),
            seq,
            v,
        };
        let chunk = trim_chunk(rows).expect("a real target");
        let cut = chunk.rows();
        assert_eq!(cut.seq, 3);
        assert_eq!(cut.x, [0, 1, 2, 5, 6, 7, 10, 11, 12]);
        assert_eq!(cut.y, [3, 4, 0, 5, 6, 7, 8, 0, 0]);
        let Target::Teacher(p) = cut.target else {
            panic!("the loss head changed")
        };
        let want: Vec<f32> = (0..3)
            .flat_map(|b| (0..3).flat_map(move |t| (0..v).map(move |j| mark(b, t, j))))
            .collect();
        assert_eq!(p, want.as_slice());
        // The second sequence alone, by `sequences`, and then the labels head.
        let one = rows.sequences(1..2);
        assert_eq!(one.y, [5, 6, 7, 0, 0]);
        let Target::Teacher(p) = one.target else {
            panic!("the loss head changed")
        };
        assert_eq!(p[0], mark(1, 0, 0));
        assert_eq!(p.len(), seq * v);
        let labels = Rows {
            target: Target::Labels,
            ..rows
        };
        assert!(matches!(
            trim_chunk(labels).unwrap().rows().target,
            Target::Labels
        ));
        // All padding: nothing to compute; real up to the end: nothing cut (borrowed).
        let pad = [0u32; 15];
        assert!(trim_chunk(Rows { y: &pad, ..rows }).is_none());
        let full = [1u32; 15];
        let whole = trim_chunk(Rows { y: &full, ..rows }).unwrap();
        assert!(matches!(whole.x, Cow::Borrowed(_)));
        assert!(matches!(whole.teacher, Some(Cow::Borrowed(_))));
    }
}

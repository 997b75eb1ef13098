//! [`Model`]: the seed's `SuccuLM` with hand-written forward and backward passes, and everything
//! `impl Model` does, by theme: `config.rs` ([`ModelConfig`]: its shape and architecture), the
//! forward passes (here), the losses and gradients (`grads.rs`), decoding with a KV cache
//! ([`KvCache`], `decode.rs`), [`surgery`] (tensor-train FFNs) and checkpoints ([`checkpoint`]
//! JSON, [`safetensors`]; `Model::save`/`Model::load` in `io.rs`).
//!
//! Data flow (`rows = B·T`):
//! `ids [B,T] → embed + pe → x [rows,d] → block × L → ln_f → h [rows,d] → h·Eᵀ → logits [rows,V]`.

use ndarray::{s, Array2, Array3, Array4, ArrayView2, ArrayViewD, ArrayViewMutD, Axis};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::nn::layers::{
    children, positional_table, Block, BlockCache, Embedding, FfnResidualStats, Layer, LayerNorm,
    LayerNormCache, Named,
};
use crate::nn::workers;
use crate::text::vocab::Vocab;
use crate::tt::params::Parameters;
use crate::tt::pool;
use grads::zero_all;

pub mod checkpoint;
mod config;
mod decode;
mod grads;
mod io;
pub mod safetensors;
pub mod surgery;

pub use config::*;
pub(crate) use decode::check_one_per_cache;
pub use decode::KvCache;

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

children!(Model {
    embed: "embed",
    blocks: "blocks",
    ln_f: "ln_f"
});

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
            let (y, c) = block.forward_unchecked((x, seq, st));
            x = y;
            caches.push(c);
        }
        let (h, ln_f) = self.ln_f.forward_unchecked(x.view());
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

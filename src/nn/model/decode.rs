//! Decoding with a KV cache: [`KvCache`] holds one sequence's keys and values per block;
//! [`Model::forward_cached`] appends positions to one sequence, [`Model::forward_cached_rows`]
//! one position to each of several. Both run each block's [`Block::decode`](crate::nn::layers::Block).

use ndarray::Array2;

use super::Model;
use crate::error::{Error, Result};
use crate::nn::layers::attention::{HeadScratch, KvRun};
use crate::nn::layers::Layer;

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

    /// Whether this cache was made for `model`'s shape (blocks, `max_len`, `d_model`).
    fn fits(&self, model: &Model) -> bool {
        let (m, d) = (model.config.max_len, model.config.d_model);
        self.k.len() == model.blocks.len() && self.k.iter().all(|k| k.dim() == (m, d))
    }

    /// Block `l`'s keys and values for `rows` new positions from `offset`.
    fn run(&mut self, l: usize, offset: usize, rows: usize) -> KvRun<'_> {
        KvRun {
            k: &mut self.k[l],
            v: &mut self.v[l],
            offset,
            rows,
            scratch: &mut self.scratch,
        }
    }
}

impl Model {
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
        let m = self.config.max_len;
        if !cache.fits(self) {
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
        self.embed.check_input(&ids, "Model::forward_cached")?;
        if ids.is_empty() {
            return Err(Error::invalid_arg(
                "ids",
                "is empty (Model::forward_cached needs at least one new token)",
            ));
        }
        let (n, p0) = (ids.len(), cache.len);
        // Positions p0 .. p0 + n <= max_len: no wrap-around.
        let mut x = self.embed.lookup_positions(ids, self.pe.view(), p0, m);
        for (l, block) in self.blocks.iter().enumerate() {
            block.decode(&mut x, &mut [cache.run(l, p0, n)]);
        }
        cache.len += n;
        Ok(self.head(x))
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
        check_one_per_cache(ids.len(), caches.len())?;
        for (r, cache) in caches.iter().enumerate() {
            if !cache.fits(self) {
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
        self.embed.check_input(&ids, "Model::forward_cached_rows")?;
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
        for (l, block) in self.blocks.iter().enumerate() {
            let mut runs: Vec<KvRun<'_>> = caches.iter_mut().map(|c| c.run(l, c.len, 1)).collect();
            block.decode(&mut x, &mut runs);
        }
        for cache in caches.iter_mut() {
            cache.len += 1;
        }
        Ok(self.head(x))
    }

    /// `ln_f` and the tied head on the blocks' output `x: [n, d]`: logits `[n, V]`.
    fn head(&self, x: Array2<f32>) -> Array2<f32> {
        let hf = self.ln_f.apply(x.view());
        self.embed.logits(hf.view())
    }
}

/// Errors unless there are as many new tokens as caches (one per cache).
pub(crate) fn check_one_per_cache(tokens: usize, caches: usize) -> Result<()> {
    if tokens != caches {
        return Err(Error::invalid_arg(
            "ids",
            format!("has {tokens} tokens for {caches} caches (one new token per cache)"),
        ));
    }
    Ok(())
}

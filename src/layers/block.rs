//! The pre-LN transformer block of the seed:
//! `x1 = x + attn(ln1(x))`, `x2 = x1 + ffn(ln2(x1))`.

use ndarray::{Array2, ArrayView2, ArrayViewD, Zip};
use rand::Rng;

use crate::error::Result;
use crate::layers::{
    visit_via_tensors, Attention, AttentionCache, Ffn, FfnCache, LayerNorm, LayerNormCache,
    NamedTensors,
};
use crate::params::{join, Parameters};
use crate::pool;

/// One pre-LN block (`blocks.{i}` in the state_dict).
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// `ln1`, before attention.
    pub ln1: LayerNorm,
    /// Multi-head causal self-attention (`q_linears`, `k_linears`, `v_linears`, `attn_out`).
    pub attn: Attention,
    /// `ln2`, before the FFN.
    pub ln2: LayerNorm,
    /// The ReLU FFN (`ffn.0`, `ffn.2`).
    pub ffn: Ffn,
}

/// What [`Block::backward`] needs from the forward pass.
#[derive(Debug, Clone)]
pub struct BlockCache {
    ln1: LayerNormCache,
    attn: AttentionCache,
    ln2: LayerNormCache,
    ffn: FfnCache,
}

impl BlockCache {
    /// Returns the cached activations' storage to the buffer pool.
    pub(crate) fn recycle(self) {
        self.ln1.recycle();
        self.attn.recycle();
        self.ln2.recycle();
        self.ffn.recycle();
    }

    /// The attention probabilities, `[B, h, T, T]`.
    pub fn attention(&self) -> &ndarray::Array4<f32> {
        self.attn.probs()
    }
}

/// The seed's verbose-mode statistics of one block's FFN residual, over all `B·T` positions.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct FfnResidualStats {
    /// Mean L2 norm of `x1` (the FFN's residual input).
    pub mean_l2_x: f32,
    /// Mean L2 norm of `FFN(LN2(x1))`.
    pub mean_l2_ffn: f32,
    /// Mean cosine similarity of `x1` and `x1 + FFN(LN2(x1))`.
    pub mean_cossim: f32,
}

impl FfnResidualStats {
    /// Statistics of `x1: [rows, d]` and `f: [rows, d]` (PyTorch's `cosine_similarity`, eps 1e-8).
    pub fn compute(x1: ArrayView2<'_, f32>, f: ArrayView2<'_, f32>) -> Self {
        let rows = x1.nrows().max(1) as f64;
        let (mut nx, mut nf, mut cs) = (0.0f64, 0.0f64, 0.0f64);
        for (xr, fr) in x1.rows().into_iter().zip(f.rows()) {
            let (mut xx, mut ff, mut ss, mut xs) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
            for (&a, &b) in xr.iter().zip(fr.iter()) {
                let (a, b) = (a as f64, b as f64);
                let s = a + b;
                xx += a * a;
                ff += b * b;
                ss += s * s;
                xs += a * s;
            }
            nx += xx.sqrt();
            nf += ff.sqrt();
            cs += xs / (xx.sqrt().max(1e-8) * ss.sqrt().max(1e-8));
        }
        FfnResidualStats {
            mean_l2_x: (nx / rows) as f32,
            mean_l2_ffn: (nf / rows) as f32,
            mean_cossim: (cs / rows) as f32,
        }
    }
}

impl Block {
    /// PyTorch's default initialisation (in the seed's module order: attention, then FFN).
    pub fn init<R: Rng + ?Sized>(
        d: usize,
        ffn_expansion: usize,
        n_heads: usize,
        rng: &mut R,
    ) -> Result<Self> {
        Ok(Block {
            ln1: LayerNorm::new(d),
            attn: Attention::init(d, n_heads, rng)?,
            ln2: LayerNorm::new(d),
            ffn: Ffn::init(d, ffn_expansion, rng),
        })
    }

    /// Zeros of the same shape (to hold gradients).
    pub fn zeros_like(&self) -> Self {
        Block {
            ln1: self.ln1.zeros_like(),
            attn: self.attn.zeros_like(),
            ln2: self.ln2.zeros_like(),
            ffn: self.ffn.zeros_like(),
        }
    }

    /// Forward keeping what backward needs. `x: [B*T, d]` (rows grouped by sequence of length
    /// `seq`, not checked) `-> [B*T, d]`. With `stats`, also the FFN residual statistics.
    pub fn forward_train(
        &self,
        x: Array2<f32>,
        seq: usize,
        stats: Option<&mut FfnResidualStats>,
    ) -> (Array2<f32>, BlockCache) {
        let (a, ln1) = self.ln1.forward_train(x.view());
        let (att, attn) = self.attn.forward_train(a, seq);
        let mut x1 = x;
        x1 += &att;
        pool::give_array(att);
        let (b, ln2) = self.ln2.forward_train(x1.view());
        let (f, ffn) = self.ffn.forward_train(b);
        if let Some(s) = stats {
            *s = FfnResidualStats::compute(x1.view(), f.view());
        }
        x1 += &f;
        pool::give_array(f);
        (
            x1,
            BlockCache {
                ln1,
                attn,
                ln2,
                ffn,
            },
        )
    }

    /// Backward: `dy: [B*T, d]`, adds parameter gradients into `grads`, returns `dx`.
    pub fn backward(
        &self,
        cache: &BlockCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut Block,
    ) -> Array2<f32> {
        // x2 = x1 + ffn(ln2(x1))
        let df = self.ffn.backward(&cache.ffn, dy, &mut grads.ffn);
        let mut dx1 = self.ln2.backward(&cache.ln2, df.view(), &mut grads.ln2);
        pool::give_array(df);
        dx1 += &dy;
        // x1 = x + attn(ln1(x))
        let da = self.attn.backward(&cache.attn, dx1.view(), &mut grads.attn);
        let mut dx = self.ln1.backward(&cache.ln1, da.view(), &mut grads.ln1);
        pool::give_array(da);
        Zip::from(&mut dx).and(&dx1).for_each(|a, &b| *a += b);
        pool::give_array(dx1);
        dx
    }
}

impl NamedTensors for Block {
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>) {
        self.ln1.tensors(&join(prefix, "ln1"), out);
        self.attn.tensors(prefix, out);
        self.ln2.tensors(&join(prefix, "ln2"), out);
        self.ffn.tensors(&join(prefix, "ffn"), out);
    }
}

impl Parameters for Block {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewD<'_, f32>)) {
        visit_via_tensors(self, prefix, f)
    }
    fn visit_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(String, ndarray::ArrayViewMutD<'_, f32>),
    ) {
        self.ln1.visit_mut(&join(prefix, "ln1"), f);
        self.attn.visit_mut(prefix, f);
        self.ln2.visit_mut(&join(prefix, "ln2"), f);
        self.ffn.visit_mut(&join(prefix, "ffn"), f);
    }
}

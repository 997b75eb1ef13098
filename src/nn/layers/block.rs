//! The pre-LN transformer block of the seed:
//! `x1 = x + attn(ln1(x))`, `x2 = x1 + ffn(ln2(x1))`.

use ndarray::{Array2, ArrayView2, Zip};
use rand::Rng;

use crate::error::{Error, Result};
use crate::nn::layers::attention::KvRun;
use crate::nn::layers::{
    children, Attention, AttentionCache, Ffn, FfnCache, Layer, LayerNorm, LayerNormCache,
};
use crate::tt::pool;

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

    /// The FFN's cache (its projections' inputs).
    pub fn ffn(&self) -> &FfnCache {
        &self.ffn
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
            ffn: Ffn::init(d, ffn_expansion, rng)?,
        })
    }

    /// Model width `d` (of `ln1`).
    fn dim(&self) -> usize {
        self.ln1.dim()
    }

    /// One decoding step with the KV cache: `x: [n, d]` holds new rows of one or more
    /// sequences (each [`KvRun`] covers the next rows of `x`, at its positions), updated in
    /// place to the block's output; keys and values go into the runs' caches. The same
    /// function as the training forward, row by row (up to the rounding of the products over
    /// fewer rows).
    pub(crate) fn decode(&self, x: &mut Array2<f32>, runs: &mut [KvRun<'_>]) {
        let a = self.ln1.apply(x.view());
        *x += &self.attn.decode(a.view(), runs);
        let f = self.ffn.apply(self.ln2.apply(x.view()).view());
        *x += &f;
    }
}

/// `(x: [B*T, d], T, stats) -> [B*T, d]`: rows grouped by sequence of length `T`; with
/// `stats`, also the FFN residual statistics.
impl Layer for Block {
    const NAME: &'static str = "Block";
    type Input<'a> = (Array2<f32>, usize, Option<&'a mut FfnResidualStats>);
    type Cache = BlockCache;
    type Dx = Array2<f32>;

    fn zeros_like(&self) -> Self {
        Block {
            ln1: self.ln1.zeros_like(),
            attn: self.attn.zeros_like(),
            ln2: self.ln2.zeros_like(),
            ffn: self.ffn.zeros_like(),
        }
    }

    /// Errors unless every sub-layer has width `d` and the FFN chains `d -> f -> d` (the
    /// fields are public, so a struct literal can pair mismatched layers).
    fn check_layers(&self, context: &str) -> Result<()> {
        let d = self.dim();
        let (up, down) = (&self.ffn.up, &self.ffn.down);
        if self.attn.dim() != d
            || self.ln2.dim() != d
            || up.in_features() != d
            || down.out_features() != d
            || up.out_features() != down.in_features()
        {
            return Err(Error::Shape {
                context: context.into(),
                expected: format!("ln1, attn, ln2 and ffn [{d} -> f -> {d}] of width {d}"),
                got: format!(
                    "ln1 {d}, attn {}, ln2 {}, ffn [{} -> {}], [{} -> {}]",
                    self.attn.dim(),
                    self.ln2.dim(),
                    up.in_features(),
                    up.out_features(),
                    down.in_features(),
                    down.out_features()
                ),
            });
        }
        Ok(())
    }

    /// Errors unless `seq > 0` and `x` is `[batch * seq, d]`.
    fn check_input(&self, (x, seq, _): &Self::Input<'_>, context: &str) -> Result<()> {
        self.attn.check_rows(x.view(), *seq, context)
    }

    fn check_cache(&self, cache: &BlockCache, context: &str) -> Result<()> {
        self.ln1
            .check_cache(&cache.ln1, &format!("{context}.ln1"))?;
        self.attn
            .check_cache(&cache.attn, &format!("{context}.attn"))?;
        self.ln2
            .check_cache(&cache.ln2, &format!("{context}.ln2"))?;
        self.ffn.check_cache(&cache.ffn, &format!("{context}.ffn"))
    }

    fn output_shape(&self, cache: &BlockCache) -> [usize; 2] {
        self.attn.output_shape(&cache.attn)
    }

    fn check_grads(&self, grads: &Block, context: &str) -> Result<()> {
        self.ln1
            .check_grads(&grads.ln1, &format!("{context}.ln1"))?;
        self.attn
            .check_grads(&grads.attn, &format!("{context}.attn"))?;
        self.ln2
            .check_grads(&grads.ln2, &format!("{context}.ln2"))?;
        self.ffn.check_grads(&grads.ffn, &format!("{context}.ffn"))
    }

    fn forward_unchecked(&self, (x, seq, stats): Self::Input<'_>) -> (Array2<f32>, BlockCache) {
        let (a, ln1) = self.ln1.forward_unchecked(x.view());
        let (att, attn) = self.attn.forward_unchecked((a, seq));
        let mut x1 = x;
        x1 += &att;
        pool::give_array(att);
        let (b, ln2) = self.ln2.forward_unchecked(x1.view());
        let (f, ffn) = self.ffn.forward_unchecked(b);
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

    fn backward_unchecked(
        &self,
        cache: &BlockCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut Block,
    ) -> Array2<f32> {
        // x2 = x1 + ffn(ln2(x1))
        let df = self.ffn.backward_unchecked(&cache.ffn, dy, &mut grads.ffn);
        let mut dx1 = self
            .ln2
            .backward_unchecked(&cache.ln2, df.view(), &mut grads.ln2);
        pool::give_array(df);
        dx1 += &dy;
        // x1 = x + attn(ln1(x))
        let da = self
            .attn
            .backward_unchecked(&cache.attn, dx1.view(), &mut grads.attn);
        let mut dx = self
            .ln1
            .backward_unchecked(&cache.ln1, da.view(), &mut grads.ln1);
        pool::give_array(da);
        Zip::from(&mut dx).and(&dx1).for_each(|a, &b| *a += b);
        pool::give_array(dx1);
        dx
    }
}

// The attention's tensors sit directly under the block (`blocks.{i}.q_linears.0.weight`).
children!(Block {
    ln1: "ln1",
    attn: "",
    ln2: "ln2",
    ffn: "ffn"
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::{Linear, Projection};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn randn(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<f32> {
        Array2::from_shape_simple_fn((rows, cols), || rng.gen_range(-1.0f32..1.0))
    }

    /// `forward_train` and `backward` error, without touching the gradients, on a bad input
    /// (width, `seq = 0`, rows not a multiple of `seq`), a `dy` not of the output's shape, a
    /// cache of another block shape, gradients of another shape (any one sub-layer) and
    /// sub-layers of different widths; on valid input they give exactly what the unchecked
    /// versions give.
    #[test]
    fn checked_entry_points_reject_bad_input() {
        let mut rng = StdRng::seed_from_u64(3);
        let (d, seq) = (12, 4);
        let block = Block::init(d, 2, 3, &mut rng).unwrap();
        let x = randn(3 * seq, d, &mut rng);
        let dy = randn(3 * seq, d, &mut rng);

        let (mut s, mut s0) = (
            FfnResidualStats::compute(x.view(), x.view()),
            FfnResidualStats::compute(x.view(), x.view()),
        );
        let (y, cache) = block.forward_train((x.clone(), seq, Some(&mut s))).unwrap();
        let (y0, cache0) = block.forward_unchecked((x.clone(), seq, Some(&mut s0)));
        assert_eq!(y, y0);
        assert_eq!(s, s0);
        let mut g = crate::nn::layers::assert_same_backward(&block, &cache, &cache0, dy.view());

        let e = block
            .forward_train((randn(3 * seq, d + 1, &mut rng), seq, None))
            .unwrap_err();
        assert!(matches!(e, Error::Shape { .. }), "{e}");
        assert!(e.to_string().contains("Block::forward_train x"), "{e}");
        let e = block.forward_train((x.clone(), 0, None)).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidArgument { name, .. } if name == "seq"),
            "{e}"
        );
        assert!(block
            .forward_train((randn(3 * seq + 2, d, &mut rng), seq, None))
            .is_err());

        let before = g.clone();
        crate::nn::layers::assert_bad_dy_rejected(
            &block,
            &cache,
            &mut g,
            &[(3 * seq, d + 1), (3 * seq - 1, d), (seq, d), (0, d)],
        );

        // A cache of a block of another width, or of another head count.
        for other in [
            Block::init(d + 4, 2, 4, &mut rng).unwrap(),
            Block::init(d, 2, 4, &mut rng).unwrap(),
        ] {
            let w = other.ln1.dim();
            let (_, c) = other
                .forward_train((randn(3 * seq, w, &mut rng), seq, None))
                .unwrap();
            let e = block.backward(&c, dy.view(), &mut g).unwrap_err();
            assert!(e.to_string().contains("Block::backward cache"), "{e}");
            assert_eq!(g, before);
        }

        // Gradients of another block shape, or with one sub-layer of another shape: the
        // check happens before any sub-layer's backward runs.
        let other = Block::init(d, 3, 4, &mut rng).unwrap();
        let mut wrong = [
            Block::init(d + 6, 2, 3, &mut rng).unwrap().zeros_like(),
            Block {
                ffn: other.ffn.zeros_like(),
                ..block.zeros_like()
            },
            Block {
                attn: other.attn.zeros_like(),
                ..block.zeros_like()
            },
            Block {
                ln1: LayerNorm::new(d + 1).zeros_like(),
                ..block.zeros_like()
            },
        ];
        for w in &mut wrong {
            let want = w.clone();
            let e = block.backward(&cache, dy.view(), w).unwrap_err();
            assert!(e.to_string().contains("Block::backward grads"), "{e}");
            assert_eq!(*w, want);
        }

        // Sub-layers of different widths (the fields are public).
        let broken = Block {
            ffn: Ffn {
                up: Projection::Dense(Linear::init(d, 2 * d, &mut rng).unwrap()),
                down: Projection::Dense(Linear::init(2 * d, d + 1, &mut rng).unwrap()),
            },
            ..block.clone()
        };
        let e = broken.forward_train((x.clone(), seq, None)).unwrap_err();
        assert!(e.to_string().contains("Block::forward_train self"), "{e}");
        let mut gb = broken.zeros_like();
        assert!(broken.backward(&cache, dy.view(), &mut gb).is_err());
        assert_eq!(gb, broken.zeros_like());
    }
}

//! Multi-head causal self-attention with one Q/K/V `Linear` per head (the seed's `Block`
//! attention), stored fused: one `[3d, d]` projection whose rows are
//! `[q heads 0..h | k heads 0..h | v heads 0..h]`, each head `dh = d / h` rows. Parameters are
//! visited as per-head row slices under PyTorch's names (`q_linears.{j}.weight`, ...).

use ndarray::{s, Array2, Array4, ArrayView2, ArrayViewD};
use rand::Rng;

use crate::error::{Error, Result};
use crate::kernels::{comb8, dispatch, dot, exp, sum};
use crate::layers::{visit_via_tensors, Linear, NamedTensors};
use crate::params::{join, Parameters};

/// Multi-head causal self-attention: `y = attn_out(concat_j softmax(Q_j K_jᵀ/√dh + mask) V_j)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attention {
    /// Fused Q/K/V projection, `weight: [3d, d]`, `bias: [3d]`.
    pub(crate) qkv: Linear,
    /// Output projection `attn_out`, `[d, d]`.
    pub(crate) out: Linear,
    pub(crate) n_heads: usize,
}

/// What [`Attention::backward`] needs from the forward pass.
#[derive(Debug, Clone)]
pub struct AttentionCache {
    /// The input, `[B*T, d]`.
    x: Array2<f32>,
    /// Q, K, V of every head, `[B*T, 3d]`.
    qkv: Array2<f32>,
    /// Attention probabilities, `[B, h, T, T]` (zero above the diagonal).
    probs: Array4<f32>,
    /// Heads concatenated (input of `attn_out`), `[B*T, d]`.
    concat: Array2<f32>,
}

impl AttentionCache {
    /// The attention probabilities, `[B, h, T, T]` (row `t` is query position `t`).
    pub fn probs(&self) -> &Array4<f32> {
        &self.probs
    }
}

impl Attention {
    /// PyTorch's default initialisation of every per-head Linear and `attn_out` (all
    /// `U(±1/√d)`). Errors unless `n_heads` divides `d`.
    pub fn init<R: Rng + ?Sized>(d: usize, n_heads: usize, rng: &mut R) -> Result<Self> {
        if n_heads == 0 || d % n_heads != 0 {
            return Err(Error::invalid_arg(
                "n_attn_heads",
                format!("{n_heads} does not divide d_model {d}"),
            ));
        }
        Ok(Attention {
            qkv: Linear::init(d, 3 * d, rng),
            out: Linear::init(d, d, rng),
            n_heads,
        })
    }

    /// Zeros of the same shape (to hold gradients).
    pub fn zeros_like(&self) -> Self {
        Attention {
            qkv: self.qkv.zeros_like(),
            out: self.out.zeros_like(),
            n_heads: self.n_heads,
        }
    }

    /// Model width `d`.
    pub fn dim(&self) -> usize {
        self.out.out_features()
    }

    /// Number of heads `h`.
    pub fn n_heads(&self) -> usize {
        self.n_heads
    }

    /// Width of one head, `d / h`.
    pub fn head_dim(&self) -> usize {
        self.dim() / self.n_heads
    }

    /// `x: [batch * seq, d] -> [batch * seq, d]` (rows grouped by sequence). Errors on a shape
    /// mismatch.
    pub fn forward(&self, x: ArrayView2<'_, f32>, seq: usize) -> Result<Array2<f32>> {
        if x.ncols() != self.dim() || seq == 0 || x.nrows() % seq != 0 {
            return Err(Error::Shape {
                context: "Attention::forward input".into(),
                expected: format!("[batch * {seq}, {}]", self.dim()),
                got: format!("{:?}", x.shape()),
            });
        }
        Ok(self.forward_train(x.to_owned(), seq).0)
    }

    /// Forward keeping what backward needs. `x: [B*T, d]` with `T = seq` (not checked).
    pub fn forward_train(&self, x: Array2<f32>, seq: usize) -> (Array2<f32>, AttentionCache) {
        let batch = x.nrows() / seq;
        let qkv = self.qkv.apply(x.view());
        let (probs, concat) = attend(self.core_dims(batch, seq), &qkv);
        let y = self.out.apply(concat.view());
        (
            y,
            AttentionCache {
                x,
                qkv,
                probs,
                concat,
            },
        )
    }

    /// Backward: adds parameter gradients into `grads`, returns `dx: [B*T, d]`.
    pub fn backward(
        &self,
        cache: &AttentionCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut Attention,
    ) -> Array2<f32> {
        let (batch, _, seq, _) = cache.probs.dim();
        let dconcat = self.out.backward(cache.concat.view(), dy, &mut grads.out);
        let dqkv = attend_backward(
            self.core_dims(batch, seq),
            &cache.qkv,
            &cache.probs,
            &dconcat,
        );
        self.qkv
            .backward(cache.x.view(), dqkv.view(), &mut grads.qkv)
    }

    fn core_dims(&self, batch: usize, seq: usize) -> CoreDims {
        let dh = self.head_dim();
        CoreDims {
            batch,
            seq,
            d: self.dim(),
            h: self.n_heads,
            dh,
            scale: 1.0 / (dh as f32).sqrt(),
        }
    }

    /// The K and V rows of `x: [n, d]`, plus Q: returns the fused `[n, 3d]` projection.
    pub(crate) fn project_qkv(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        self.qkv.apply(x)
    }

    /// Output projection of concatenated heads `[n, d] -> [n, d]`.
    pub(crate) fn project_out(&self, concat: ArrayView2<'_, f32>) -> Array2<f32> {
        self.out.apply(concat)
    }
}

/// The attention core of every sequence and head: from Q/K/V `[B*T, 3d]`, the probabilities
/// `[B, h, T, T]` and the concatenated heads `[B*T, d]`.
fn attend(dims: CoreDims, qkv: &Array2<f32>) -> (Array4<f32>, Array2<f32>) {
    let CoreDims {
        batch, seq, d, h, ..
    } = dims;
    let mut probs = Array4::<f32>::zeros((batch, h, seq, seq));
    let mut concat = Array2::<f32>::zeros((batch * seq, d));
    let qkv_s = qkv.as_slice().expect("contiguous");
    let probs_s = probs.as_slice_mut().expect("contiguous");
    let cat_s = concat.as_slice_mut().expect("contiguous");
    let mut ws = HeadScratch::default();
    dispatch!(forward_core, (dims, qkv_s, probs_s, cat_s, &mut ws));
    (probs, concat)
}

/// Backward of [`attend`]: from Q/K/V, the probabilities and the gradient of the concatenated
/// heads `[B*T, d]`, the gradient of Q/K/V `[B*T, 3d]`.
fn attend_backward(
    dims: CoreDims,
    qkv: &Array2<f32>,
    probs: &Array4<f32>,
    dconcat: &Array2<f32>,
) -> Array2<f32> {
    let mut dqkv = Array2::<f32>::zeros((dims.batch * dims.seq, 3 * dims.d));
    let qkv_s = qkv.as_slice().expect("contiguous");
    let dcat_s = dconcat.as_slice().expect("contiguous");
    let dqkv_s = dqkv.as_slice_mut().expect("contiguous");
    let probs = probs.as_slice().expect("contiguous");
    let mut ws = HeadScratch::default();
    dispatch!(backward_core, (dims, qkv_s, probs, dcat_s, dqkv_s, &mut ws));
    dqkv
}

/// Sizes shared by the attention cores.
#[derive(Clone, Copy)]
struct CoreDims {
    batch: usize,
    seq: usize,
    d: usize,
    h: usize,
    dh: usize,
    scale: f32,
}

/// Scratch of the attention cores, reused across heads (and across calls when decoding).
///
/// Every inner loop runs over a contiguous, zero-padded axis whose length is a multiple of 8
/// (one AVX vector): key positions (`mp = ⌈m/8⌉·8`) or head channels (`dhp = ⌈dh/8⌉·8`).
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadScratch {
    /// Keys (forward) or values (backward) transposed, `[dh, mp]`.
    kt: Vec<f32>,
    /// Values (forward) or keys (backward) with padded rows, `[m, dhp]`.
    vp: Vec<f32>,
    /// Queries with padded rows, `[T, dhp]` (backward).
    qp: Vec<f32>,
    /// Upstream gradient of the head's output with padded rows, `[T, dhp]` (backward).
    dop: Vec<f32>,
    /// Gradient of the scores, `[T, mp]` (backward; row `t` valid up to `t`).
    ds: Vec<f32>,
    /// One row of scores, `[mp]`.
    row: Vec<f32>,
    /// One output row, `[dhp]`.
    acc: Vec<f32>,
    /// A second output row, `[dhp]`.
    acc2: Vec<f32>,
}

/// Forward of the attention core for every sequence and head: from Q/K/V `[B*T, 3d]`, writes
/// the probabilities `[B, h, T, T]` and the concatenated heads `[B*T, d]`.
#[inline(always)]
fn forward_core(
    dims: CoreDims,
    qkv_s: &[f32],
    probs: &mut [f32],
    cat_s: &mut [f32],
    ws: &mut HeadScratch,
) {
    let CoreDims {
        batch,
        seq,
        d,
        h,
        dh,
        scale,
    } = dims;
    for b in 0..batch {
        let seq_qkv = &qkv_s[b * seq * 3 * d..(b + 1) * seq * 3 * d];
        let seq_cat = &mut cat_s[b * seq * d..(b + 1) * seq * d];
        for j in 0..h {
            let p = &mut probs[(b * h + j) * seq * seq..(b * h + j + 1) * seq * seq];
            let io = HeadIo {
                q: &seq_qkv[j * dh..],
                k: &seq_qkv[d + j * dh..],
                v: &seq_qkv[2 * d + j * dh..],
                qs: 3 * d,
                kvs: 3 * d,
                n: seq,
                offset: 0,
                dh,
                scale,
            };
            head_forward_core(io, p, &mut seq_cat[j * dh..], d, ws);
        }
    }
}

/// Backward of the attention core for every sequence and head: from the probabilities
/// `[B, h, T, T]`, Q/K/V `[B*T, 3d]` and the gradient of the concatenated heads `[B*T, d]`,
/// writes dQ/dK/dV into `dqkv: [B*T, 3d]`.
///
/// Per head, with `P` the probabilities and `dO` the output gradient (all `[T, ·]`):
/// `dP = dO·Vᵀ`, `dS = P ⊙ (dP − rowsum(P ⊙ dP)) · scale`, `dQ = dS·K`, `dK = dSᵀ·Q`,
/// `dV = Pᵀ·dO`; every product runs over the causal triangle only.
#[inline(always)]
fn backward_core(
    dims: CoreDims,
    qkv_s: &[f32],
    probs: &[f32],
    dcat_s: &[f32],
    dqkv_s: &mut [f32],
    ws: &mut HeadScratch,
) {
    let CoreDims {
        batch,
        seq,
        d,
        h,
        dh,
        scale,
    } = dims;
    let (mp, dhp) = (seq.div_ceil(8) * 8, dh.div_ceil(8) * 8);
    let s3 = 3 * d;
    for b in 0..batch {
        let seq_qkv = &qkv_s[b * seq * s3..(b + 1) * seq * s3];
        let seq_dqkv = &mut dqkv_s[b * seq * s3..(b + 1) * seq * s3];
        let seq_dcat = &dcat_s[b * seq * d..(b + 1) * seq * d];
        for j in 0..h {
            let p = &probs[(b * h + j) * seq * seq..(b * h + j + 1) * seq * seq];
            let (qo, ko, vo) = (j * dh, d + j * dh, 2 * d + j * dh);
            transpose_into(&seq_qkv[vo..], s3, seq, dh, mp, &mut ws.kt);
            pad_rows_into(&seq_qkv[ko..], s3, seq, dh, dhp, &mut ws.vp);
            pad_rows_into(&seq_qkv[qo..], s3, seq, dh, dhp, &mut ws.qp);
            pad_rows_into(&seq_dcat[j * dh..], d, seq, dh, dhp, &mut ws.dop);
            ws.ds.resize(seq * mp, 0.0);
            ws.row.resize(mp, 0.0);
            ws.acc.resize(dhp, 0.0);
            ws.acc2.resize(dhp, 0.0);
            let (vt, kp, qp, dop) = (&ws.kt, &ws.vp, &ws.qp, &ws.dop);
            for t in 0..seq {
                let len = (t + 1).div_ceil(8) * 8;
                // dP[t, u] = dO_t · v_u over whole vectors of key positions.
                let dp = &mut ws.row[..len];
                let dout = &dop[t * dhp..t * dhp + dh];
                comb8(0..dh, |c| dout[c], vt, mp, dp);
                // dS[t, u] = P[t, u] (dP[t, u] − Σ_u' P dP) · scale, u ≤ t.
                let prow = &p[t * seq..t * seq + t + 1];
                let dp = &dp[..=t];
                let s = dot(prow, dp);
                let ds = &mut ws.ds[t * mp..t * mp + t + 1];
                for ((g, &pu), &dpu) in ds.iter_mut().zip(prow).zip(dp) {
                    *g = pu * (dpu - s) * scale;
                }
                // dq_t = Σ_u dS[t, u] k_u
                let acc = &mut ws.acc[..dhp];
                comb8(0..t + 1, |u| ds[u], kp, dhp, acc);
                seq_dqkv[t * s3 + qo..t * s3 + qo + dh].copy_from_slice(&acc[..dh]);
            }
            for u in 0..seq {
                // dv_u = Σ_{t ≥ u} P[t, u] dO_t ; dk_u = Σ_{t ≥ u} dS[t, u] q_t
                let (dv, dk) = (&mut ws.acc[..dhp], &mut ws.acc2[..dhp]);
                let dsm = &ws.ds;
                comb8(u..seq, |t| p[t * seq + u], dop, dhp, dv);
                comb8(u..seq, |t| dsm[t * mp + u], qp, dhp, dk);
                let row = &mut seq_dqkv[u * s3..(u + 1) * s3];
                row[vo..vo + dh].copy_from_slice(&dv[..dh]);
                row[ko..ko + dh].copy_from_slice(&dk[..dh]);
            }
        }
    }
}

/// Inputs of one head's attention: `n` queries at absolute positions `offset..offset+n`,
/// attending causally to keys/values `0..offset+n`.
pub(crate) struct HeadIo<'a> {
    /// Query `i` starts at `q[i * qs]`, `dh` values.
    pub q: &'a [f32],
    /// Key `u` starts at `k[u * kvs]`.
    pub k: &'a [f32],
    /// Value `u` starts at `v[u * kvs]`.
    pub v: &'a [f32],
    pub qs: usize,
    pub kvs: usize,
    pub n: usize,
    pub offset: usize,
    pub dh: usize,
    pub scale: f32,
}

/// One head's causal attention. Writes the probabilities into `probs: [n, offset + n]`
/// (row-major, zero where masked) and the output of query `i` into `out[i * os..][..dh]`.
pub(crate) fn head_forward(
    io: HeadIo<'_>,
    probs: &mut [f32],
    out: &mut [f32],
    os: usize,
    ws: &mut HeadScratch,
) {
    dispatch!(head_forward_core, (io, probs, out, os, ws))
}

/// `S = scale·Q·Kᵀ` row by row over whole vectors of key positions, softmax over `u ≤ pos`,
/// then `o = Σ_u P[u]·v_u` over the padded channel axis.
#[inline(always)]
fn head_forward_core(
    io: HeadIo<'_>,
    probs: &mut [f32],
    out: &mut [f32],
    os: usize,
    ws: &mut HeadScratch,
) {
    let m = io.offset + io.n;
    let dh = io.dh;
    let (mp, dhp) = (m.div_ceil(8) * 8, dh.div_ceil(8) * 8);
    transpose_into(io.k, io.kvs, m, dh, mp, &mut ws.kt);
    pad_rows_into(io.v, io.kvs, m, dh, dhp, &mut ws.vp);
    ws.row.resize(mp, 0.0);
    ws.acc.resize(dhp, 0.0);
    let (kt, vp) = (&ws.kt, &ws.vp);
    for i in 0..io.n {
        let pos = io.offset + i;
        let q = &io.q[i * io.qs..i * io.qs + dh];
        // Scores over the first `len` keys (a whole number of vectors covering 0..=pos).
        let len = (pos + 1).div_ceil(8) * 8;
        let row = &mut ws.row[..len];
        comb8(0..dh, |c| q[c] * io.scale, kt, mp, row);
        let live = &mut row[..=pos];
        let max = live.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        for v in live.iter_mut() {
            *v = exp(*v - max);
        }
        let inv = 1.0 / sum(live);
        for v in live.iter_mut() {
            *v *= inv;
        }
        let acc = &mut ws.acc[..dhp];
        comb8(0..pos + 1, |u| live[u], vp, dhp, acc);
        out[i * os..i * os + dh].copy_from_slice(&acc[..dh]);
        let prow = &mut probs[i * m..(i + 1) * m];
        prow[..=pos].copy_from_slice(live);
        prow[pos + 1..].fill(0.0);
    }
}

/// `dst[c * ld + u] = src[u * stride + c]` for `u < rows`, `c < cols`; `dst` is resized to
/// `[cols, ld]` and zero in columns `rows..ld`.
#[inline(always)]
fn transpose_into(
    src: &[f32],
    stride: usize,
    rows: usize,
    cols: usize,
    ld: usize,
    dst: &mut Vec<f32>,
) {
    dst.clear();
    dst.resize(cols * ld, 0.0);
    for u in 0..rows {
        let r = &src[u * stride..u * stride + cols];
        for (c, &v) in r.iter().enumerate() {
            dst[c * ld + u] = v;
        }
    }
}

/// `dst[u * ld + c] = src[u * stride + c]` for `u < rows`, `c < cols`; `dst` is resized to
/// `[rows, ld]` and zero in columns `cols..ld`.
#[inline(always)]
fn pad_rows_into(
    src: &[f32],
    stride: usize,
    rows: usize,
    cols: usize,
    ld: usize,
    dst: &mut Vec<f32>,
) {
    dst.clear();
    dst.resize(rows * ld, 0.0);
    for u in 0..rows {
        dst[u * ld..u * ld + cols].copy_from_slice(&src[u * stride..u * stride + cols]);
    }
}

impl Attention {
    fn head_rows(&self, part: usize, j: usize) -> std::ops::Range<usize> {
        let (d, dh) = (self.dim(), self.head_dim());
        part * d + j * dh..part * d + (j + 1) * dh
    }
}

const PARTS: [&str; 3] = ["q_linears", "k_linears", "v_linears"];

impl NamedTensors for Attention {
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>) {
        let (w, b) = (self.qkv.weight(), self.qkv.bias());
        for (part, name) in PARTS.iter().enumerate() {
            for j in 0..self.n_heads {
                let r = self.head_rows(part, j);
                let p = join(prefix, &format!("{name}.{j}"));
                out.push((
                    join(&p, "weight"),
                    w.slice_move(s![r.clone(), ..]).into_dyn(),
                ));
                out.push((join(&p, "bias"), b.slice_move(s![r]).into_dyn()));
            }
        }
        self.out.tensors(&join(prefix, "attn_out"), out);
    }
}

impl Parameters for Attention {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewD<'_, f32>)) {
        visit_via_tensors(self, prefix, f)
    }
    fn visit_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(String, ndarray::ArrayViewMutD<'_, f32>),
    ) {
        let ranges: Vec<_> = (0..3)
            .flat_map(|part| (0..self.n_heads).map(move |j| (part, j)))
            .map(|(part, j)| (part, j, self.head_rows(part, j)))
            .collect();
        let (w, b) = self.qkv.weight_bias_mut();
        for (part, j, r) in ranges {
            let p = join(prefix, &format!("{}.{j}", PARTS[part]));
            f(
                join(&p, "weight"),
                w.slice_mut(s![r.clone(), ..]).into_dyn(),
            );
            f(join(&p, "bias"), b.slice_mut(s![r]).into_dyn());
        }
        self.out.visit_mut(&join(prefix, "attn_out"), f);
    }
}

/// Hooks for `benches/attention.rs`: the attention core alone, without the Q/K/V and output
/// projections. Not part of the API.
#[doc(hidden)]
pub mod bench {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Random Q/K/V `[B*T, 3d]` and output gradient `[B*T, d]`, and the core's outputs.
    pub struct Core {
        dims: CoreDims,
        qkv: Array2<f32>,
        dcat: Array2<f32>,
        probs: Array4<f32>,
        concat: Array2<f32>,
        dqkv: Array2<f32>,
        scratch: HeadScratch,
        row_probs: Vec<f32>,
    }

    impl Core {
        /// `batch` sequences of `seq` rows, width `d`, `h` heads; values uniform in ±1.
        pub fn new(batch: usize, seq: usize, d: usize, h: usize, seed: u64) -> Self {
            let mut rng = StdRng::seed_from_u64(seed);
            let dh = d / h;
            let dims = CoreDims {
                batch,
                seq,
                d,
                h,
                dh,
                scale: 1.0 / (dh as f32).sqrt(),
            };
            let qkv =
                Array2::from_shape_simple_fn((batch * seq, 3 * d), || rng.gen_range(-1.0..1.0));
            let dcat = Array2::from_shape_simple_fn((batch * seq, d), || rng.gen_range(-1.0..1.0));
            let (probs, concat) = attend(dims, &qkv);
            Core {
                dims,
                qkv,
                dcat,
                probs,
                concat,
                dqkv: Array2::zeros((0, 0)),
                scratch: HeadScratch::default(),
                row_probs: Vec::new(),
            }
        }

        /// The forward core over the whole batch (as `Attention::forward_train` runs it).
        pub fn forward(&mut self) -> f32 {
            let (p, c) = attend(self.dims, &self.qkv);
            self.probs = p;
            self.concat = c;
            self.concat[[0, 0]]
        }

        /// The backward core over the whole batch (as `Attention::backward` runs it).
        pub fn backward(&mut self) -> f32 {
            self.dqkv = attend_backward(self.dims, &self.qkv, &self.probs, &self.dcat);
            self.dqkv[[0, 0]]
        }

        /// Every head of the first sequence's queries `offset..offset + n` against keys
        /// `0..offset + n` through `head_forward` (the KV-cached decoding path), one call per
        /// head. Needs `offset + n <= seq`.
        pub fn head_forward(&mut self, offset: usize, n: usize) -> f32 {
            let CoreDims {
                seq,
                d,
                h,
                dh,
                scale,
                ..
            } = self.dims;
            assert!(offset + n <= seq, "queries past the sequence");
            let qs = self.qkv.as_slice().expect("contiguous");
            let cs = self.concat.as_slice_mut().expect("contiguous");
            self.row_probs.resize(n * seq, 0.0);
            for j in 0..h {
                head_forward(
                    HeadIo {
                        q: &qs[offset * 3 * d + j * dh..],
                        k: &qs[d + j * dh..],
                        v: &qs[2 * d + j * dh..],
                        qs: 3 * d,
                        kvs: 3 * d,
                        n,
                        offset,
                        dh,
                        scale,
                    },
                    &mut self.row_probs,
                    &mut cs[j * dh..],
                    d,
                    &mut self.scratch,
                );
            }
            cs[0]
        }
    }
}

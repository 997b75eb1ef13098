//! Multi-head causal self-attention with one Q/K/V `Linear` per head (the seed's `Block`
//! attention), stored fused: one `[3d, d]` projection whose rows are
//! `[q heads 0..h | k heads 0..h | v heads 0..h]`, each head `dh = d / h` rows. Parameters are
//! visited as per-head row slices under PyTorch's names (`q_linears.{j}.weight`, ...).

use ndarray::{s, Array2, Array4, ArrayView2, ArrayViewD};
use rand::Rng;

use crate::error::{Error, Result};
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
        let rows = x.nrows();
        let d = self.dim();
        let (h, dh) = (self.n_heads, self.head_dim());
        let batch = rows / seq;
        let qkv = self.qkv.apply(x.view());
        let mut probs = Array4::<f32>::zeros((batch, h, seq, seq));
        let mut concat = Array2::<f32>::zeros((rows, d));
        let scale = 1.0 / (dh as f32).sqrt();
        let qkv_s = qkv.as_slice().expect("contiguous");
        for b in 0..batch {
            let base = b * seq * 3 * d;
            let seq_qkv = &qkv_s[base..base + seq * 3 * d];
            let mut cat = concat.slice_mut(s![b * seq..(b + 1) * seq, ..]);
            let cat_s = cat.as_slice_mut().expect("contiguous");
            for j in 0..h {
                let mut p = probs.slice_mut(s![b, j, .., ..]);
                head_forward(
                    HeadIo {
                        q: &seq_qkv[j * dh..],
                        k: &seq_qkv[d + j * dh..],
                        v: &seq_qkv[2 * d + j * dh..],
                        qs: 3 * d,
                        kvs: 3 * d,
                        n: seq,
                        offset: 0,
                        dh,
                        scale,
                    },
                    p.as_slice_mut().expect("contiguous"),
                    &mut cat_s[j * dh..],
                    d,
                );
            }
        }
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
        let d = self.dim();
        let (h, dh) = (self.n_heads, self.head_dim());
        let (batch, _, seq, _) = cache.probs.dim();
        let scale = 1.0 / (dh as f32).sqrt();
        let dconcat = self.out.backward(cache.concat.view(), dy, &mut grads.out);
        let mut dqkv = Array2::<f32>::zeros((batch * seq, 3 * d));
        let qkv_s = cache.qkv.as_slice().expect("contiguous");
        let dcat_s = dconcat.as_slice().expect("contiguous");
        let dqkv_s = dqkv.as_slice_mut().expect("contiguous");
        let probs = cache.probs.as_slice().expect("contiguous");
        let dims = CoreDims {
            batch,
            seq,
            d,
            h,
            dh,
            scale,
        };
        dispatch!(backward_core(dims, qkv_s, probs, dcat_s, dqkv_s));
        self.qkv
            .backward(cache.x.view(), dqkv.view(), &mut grads.qkv)
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

/// Runs `f(args)` compiled for AVX2 when the CPU has it (same results: no FMA contraction),
/// otherwise the baseline build. `f` must be `#[inline(always)]`.
macro_rules! dispatch {
    ($f:ident($($a:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2(f: impl FnOnce()) {
                    f()
                }
                // SAFETY: the CPU supports AVX2 (checked just above).
                unsafe { avx2(|| $f($($a),*)) }
            } else {
                $f($($a),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $f($($a),*)
        }
    }};
}
use dispatch;

/// Backward of the attention core for every sequence and head: from the probabilities
/// `[B, h, T, T]`, Q/K/V `[B*T, 3d]` and the gradient of the concatenated heads `[B*T, d]`,
/// writes dQ/dK/dV into `dqkv: [B*T, 3d]`.
#[inline(always)]
fn backward_core(dims: CoreDims, qkv_s: &[f32], probs: &[f32], dcat_s: &[f32], dqkv_s: &mut [f32]) {
    let CoreDims {
        batch,
        seq,
        d,
        h,
        dh,
        scale,
    } = dims;
    // Per (sequence, head) scratch, keys/values transposed so that every inner loop runs
    // over key positions (contiguous, vectorised): kt, vt, dkt, dvt are `[dh, T]`.
    let mut kt = vec![0.0f32; dh * seq];
    let mut vt = vec![0.0f32; dh * seq];
    let mut dkt = vec![0.0f32; dh * seq];
    let mut dvt = vec![0.0f32; dh * seq];
    let mut dp = vec![0.0f32; seq];
    for b in 0..batch {
        let base = b * seq * 3 * d;
        let seq_qkv = &qkv_s[base..base + seq * 3 * d];
        let seq_dqkv = &mut dqkv_s[base..base + seq * 3 * d];
        let seq_dcat = &dcat_s[b * seq * d..(b + 1) * seq * d];
        for j in 0..h {
            let p = &probs[(b * h + j) * seq * seq..(b * h + j + 1) * seq * seq];
            let (qo, ko, vo) = (j * dh, d + j * dh, 2 * d + j * dh);
            transpose_into(seq_qkv, 3 * d, ko, seq, dh, seq, &mut kt);
            transpose_into(seq_qkv, 3 * d, vo, seq, dh, seq, &mut vt);
            dkt.iter_mut().for_each(|v| *v = 0.0);
            dvt.iter_mut().for_each(|v| *v = 0.0);
            for t in 0..seq {
                let n = t + 1;
                let prow = &p[t * seq..t * seq + n];
                let dout = &seq_dcat[t * d + j * dh..t * d + (j + 1) * dh];
                let q = &seq_qkv[t * 3 * d + qo..t * 3 * d + qo + dh];
                // dP[u] = dout_t · v_u ; dv_u += p[u] dout_t
                let dp = &mut dp[..n];
                dp.iter_mut().for_each(|v| *v = 0.0);
                for c in 0..dh {
                    axpy(dout[c], &vt[c * seq..c * seq + n], dp);
                    axpy(dout[c], prow, &mut dvt[c * seq..c * seq + n]);
                }
                // dS[u] = p[u] (dP[u] − Σ p dP) · scale (kept in dp)
                let sum = dot(prow, dp);
                for (g, &pu) in dp.iter_mut().zip(prow) {
                    *g = pu * (*g - sum) * scale;
                }
                // dq_t = Σ_u dS[u] k_u ; dk_u += dS[u] q_t
                let dq = &mut seq_dqkv[t * 3 * d + qo..t * 3 * d + qo + dh];
                for c in 0..dh {
                    dq[c] = dot(dp, &kt[c * seq..c * seq + n]);
                    axpy(q[c], dp, &mut dkt[c * seq..c * seq + n]);
                }
            }
            for u in 0..seq {
                let row = &mut seq_dqkv[u * 3 * d..(u + 1) * 3 * d];
                for c in 0..dh {
                    row[ko + c] = dkt[c * seq + u];
                    row[vo + c] = dvt[c * seq + u];
                }
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
pub(crate) fn head_forward(io: HeadIo<'_>, probs: &mut [f32], out: &mut [f32], os: usize) {
    dispatch!(head_forward_core(io, probs, out, os))
}

#[inline(always)]
fn head_forward_core(io: HeadIo<'_>, probs: &mut [f32], out: &mut [f32], os: usize) {
    let m = io.offset + io.n;
    let dh = io.dh;
    // Keys and values transposed, `[dh, mp]` with the key axis padded to a multiple of 8 (zeros),
    // so that the loops below run over whole vectors of key positions.
    let mp = m.div_ceil(8) * 8;
    let mut kt = vec![0.0f32; dh * mp];
    let mut vt = vec![0.0f32; dh * mp];
    transpose_into(io.k, io.kvs, 0, m, dh, mp, &mut kt);
    transpose_into(io.v, io.kvs, 0, m, dh, mp, &mut vt);
    let mut row = vec![0.0f32; mp];
    for i in 0..io.n {
        let pos = io.offset + i;
        let q = &io.q[i * io.qs..i * io.qs + dh];
        // Scores over the first `len` keys (a whole number of vectors covering 0..=pos).
        let len = (pos + 1).div_ceil(8) * 8;
        let row = &mut row[..len];
        row.iter_mut().for_each(|v| *v = 0.0);
        for c in 0..dh {
            axpy(q[c] * io.scale, &kt[c * mp..c * mp + len], row);
        }
        let max = row[..=pos].iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sum = 0.0f32;
        for pu in row[..=pos].iter_mut() {
            let e = (*pu - max).exp();
            *pu = e;
            sum += e;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
        row[pos + 1..].iter_mut().for_each(|v| *v = 0.0);
        let o = &mut out[i * os..i * os + dh];
        for c in 0..dh {
            o[c] = dot(row, &vt[c * mp..c * mp + len]);
        }
        let prow = &mut probs[i * m..(i + 1) * m];
        let k = len.min(m);
        prow[..k].copy_from_slice(&row[..k]);
        prow[k..].iter_mut().for_each(|v| *v = 0.0);
    }
}

/// `dst[c * ld + u] = src[u * stride + off + c]` for `u < rows`, `c < cols`.
#[inline]
fn transpose_into(
    src: &[f32],
    stride: usize,
    off: usize,
    rows: usize,
    cols: usize,
    ld: usize,
    dst: &mut [f32],
) {
    for u in 0..rows {
        let r = &src[u * stride + off..u * stride + off + cols];
        for (c, &v) in r.iter().enumerate() {
            dst[c * ld + u] = v;
        }
    }
}

/// Dot product with eight partial sums (vectorises; differs from a plain sum only by rounding).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for k in 0..chunks {
        let (x, y) = (&a[k * 8..k * 8 + 8], &b[k * 8..k * 8 + 8]);
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = 0.0f32;
    for k in chunks * 8..n {
        s += a[k] * b[k];
    }
    acc.iter().sum::<f32>() + s
}

#[inline]
pub(crate) fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yv, xv) in y.iter_mut().zip(x) {
        *yv += alpha * xv;
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

//! Multi-head causal self-attention with one Q/K/V `Linear` per head (the seed's `Block`
//! attention), stored fused: one `[3d, d]` projection whose rows are
//! `[q heads 0..h | k heads 0..h | v heads 0..h]`, each head `dh = d / h` rows. Parameters are
//! visited as per-head row slices under PyTorch's names (`q_linears.{j}.weight`, ...).

use std::cell::RefCell;
use std::sync::OnceLock;

use ndarray::{s, Array2, Array4, ArrayView2, ArrayViewD, ArrayViewMutD};
use rand::Rng;

use crate::error::{Error, Result};
use crate::nn::layers::{parameters_via_named, Layer, Linear, Named};
use crate::tt::params::join;
use crate::tt::pool;

mod core;
use crate::nn::kernels::lanes;

pub(crate) use self::core::HeadScratch;
use self::core::{col_base, CoreDims};
use self::core::{head_forward, HeadIo};
use self::lanes::F8;

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
    /// Sequences `B`, their length `T` and the heads `h`.
    batch: usize,
    seq: usize,
    heads: usize,
    /// Attention probabilities as the core keeps them: per sequence and head, the causal
    /// triangle by columns of 8 keys (see `core`).
    probs: Vec<F8>,
    /// [`probs`](Self::probs), made on first request.
    probs_full: OnceLock<Array4<f32>>,
    /// Heads concatenated (input of `attn_out`), `[B*T, d]`.
    concat: Array2<f32>,
}

impl AttentionCache {
    /// Returns the cached activations' storage to the buffer pool.
    pub(crate) fn recycle(self) {
        pool::give_array(self.x);
        pool::give_array(self.qkv);
        pool::give_array(self.concat);
    }

    /// Rows of the forward's input and output, `B*T`.
    pub(crate) fn rows(&self) -> usize {
        self.batch * self.seq
    }

    /// The attention probabilities, `[B, h, T, T]` (row `t` is query position `t`; zero above
    /// the diagonal).
    pub fn probs(&self) -> &Array4<f32> {
        self.probs_full.get_or_init(|| {
            let (b, t, h) = (self.batch, self.seq, self.heads);
            let head = col_base(t, t.div_ceil(8));
            Array4::from_shape_fn((b, h, t, t), |(bi, j, i, u)| {
                let ub = u / 8;
                if u > i {
                    0.0
                } else {
                    self.probs[(bi * h + j) * head + col_base(t, ub) + i - ub * 8].0[u % 8]
                }
            })
        })
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
            qkv: Linear::init(d, 3 * d, rng)?,
            out: Linear::init(d, d, rng)?,
            n_heads,
        })
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
    /// mismatch or `seq = 0`.
    pub fn forward(&self, x: ArrayView2<'_, f32>, seq: usize) -> Result<Array2<f32>> {
        let input = (x.to_owned(), seq);
        self.check_input(&input, "Attention::forward")?;
        Ok(self.forward_unchecked(input).0)
    }

    /// Errors unless `seq > 0` and `x` is `[batch * seq, d]` (`context` names the call).
    pub(crate) fn check_rows(
        &self,
        x: ArrayView2<'_, f32>,
        seq: usize,
        context: &str,
    ) -> Result<()> {
        if seq == 0 {
            return Err(Error::invalid_arg(
                "seq",
                format!("{context}: must be at least 1"),
            ));
        }
        if x.ncols() != self.dim() || x.nrows() % seq != 0 {
            return Err(Error::Shape {
                context: format!("{context} x"),
                expected: format!("[batch * {seq}, {}]", self.dim()),
                got: format!("{:?}", x.shape()),
            });
        }
        Ok(())
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

    /// One decoding step over new rows `a: [n, d]` (the `ln1` output) of several sequences:
    /// each [`KvRun`] covers the next `rows` of `a`, at positions `offset..offset + rows` of
    /// its sequence. Writes their keys and values into the runs' caches, attends each row
    /// causally over its own sequence's cache, and returns the output projection `[n, d]`.
    pub(crate) fn decode(&self, a: ArrayView2<'_, f32>, runs: &mut [KvRun<'_>]) -> Array2<f32> {
        let (d, h, dh) = (self.dim(), self.n_heads, self.head_dim());
        let scale = 1.0 / (dh as f32).sqrt();
        let qkv = self.qkv.apply(a);
        let mut concat = Array2::<f32>::zeros((a.nrows(), d));
        let qs = qkv.as_slice().expect("contiguous");
        let cs = concat.as_slice_mut().expect("contiguous");
        let mut r0 = 0;
        for run in runs.iter_mut() {
            let (p, n) = (run.offset, run.rows);
            let rows = s![p..p + n, ..];
            run.k
                .slice_mut(rows)
                .assign(&qkv.slice(s![r0..r0 + n, d..2 * d]));
            run.v
                .slice_mut(rows)
                .assign(&qkv.slice(s![r0..r0 + n, 2 * d..]));
            let ks = run.k.as_slice().expect("contiguous");
            let vs = run.v.as_slice().expect("contiguous");
            for j in 0..h {
                let io = HeadIo {
                    q: &qs[r0 * 3 * d + j * dh..],
                    k: &ks[j * dh..],
                    v: &vs[j * dh..],
                    qs: 3 * d,
                    kvs: d,
                    n,
                    offset: p,
                    dh,
                    scale,
                };
                head_forward(io, &mut cs[r0 * d + j * dh..], d, run.scratch);
            }
            r0 += n;
        }
        self.out.apply(concat.view())
    }
}

/// New rows of one sequence at one layer, for [`Attention::decode`]: the next `rows` rows of
/// the step's input sit at positions `offset..offset + rows` of the sequence whose keys and
/// values (`[max_len, d]` each, heads side by side) are `k` and `v`.
pub(crate) struct KvRun<'a> {
    pub k: &'a mut Array2<f32>,
    pub v: &'a mut Array2<f32>,
    pub offset: usize,
    pub rows: usize,
    /// The sequence's scratch for the attention core.
    pub scratch: &'a mut HeadScratch,
}

/// `(x: [B*T, d], T) -> [B*T, d]`, rows grouped by sequence of length `T`.
impl Layer for Attention {
    const NAME: &'static str = "Attention";
    type Input<'a> = (Array2<f32>, usize);
    type Cache = AttentionCache;
    type Dx = Array2<f32>;

    fn zeros_like(&self) -> Self {
        Attention {
            qkv: self.qkv.zeros_like(),
            out: self.out.zeros_like(),
            n_heads: self.n_heads,
        }
    }

    /// Errors unless `seq > 0` and `x` is `[batch * seq, d]`.
    fn check_input(&self, (x, seq): &(Array2<f32>, usize), context: &str) -> Result<()> {
        self.check_rows(x.view(), *seq, context)
    }

    /// Errors unless `cache` was recorded by an attention layer of this width and head count.
    fn check_cache(&self, cache: &AttentionCache, context: &str) -> Result<()> {
        let (h, d) = (self.n_heads, self.dim());
        if cache.heads != h || cache.x.ncols() != d {
            return Err(Error::Shape {
                context: context.into(),
                expected: format!("{h} heads over [rows, {d}]"),
                got: format!("{} heads over {:?}", cache.heads, cache.x.shape()),
            });
        }
        Ok(())
    }

    fn output_shape(&self, cache: &AttentionCache) -> [usize; 2] {
        [cache.rows(), self.dim()]
    }

    fn forward_unchecked(&self, (x, seq): (Array2<f32>, usize)) -> (Array2<f32>, AttentionCache) {
        let batch = x.nrows() / seq;
        let qkv = self.qkv.apply(x.view());
        let (probs, concat) = attend(self.core_dims(batch, seq), &qkv);
        let y = self.out.apply(concat.view());
        (
            y,
            AttentionCache {
                x,
                qkv,
                batch,
                seq,
                heads: self.n_heads,
                probs,
                probs_full: OnceLock::new(),
                concat,
            },
        )
    }

    fn backward_unchecked(
        &self,
        cache: &AttentionCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut Attention,
    ) -> Array2<f32> {
        let (batch, seq) = (cache.batch, cache.seq);
        let dconcat = self.out.backward(cache.concat.view(), dy, &mut grads.out);
        let dims = self.core_dims(batch, seq);
        let dx = attend_backward(dims, &cache.qkv, &cache.probs, &dconcat, |dqkv| {
            self.qkv.backward(cache.x.view(), dqkv, &mut grads.qkv)
        });
        pool::give_array(dconcat);
        dx
    }
}

thread_local! {
    /// Per thread: the cores' scratch, and the buffer of dQ/dK/dV (every backward overwrites
    /// all of it, so it is never cleared).
    static SCRATCH: RefCell<(HeadScratch, Vec<f32>)> = RefCell::new(Default::default());
}

/// `f` with this thread's scratch (or fresh buffers, should the scratch be in use).
fn with_scratch<R>(f: impl FnOnce(&mut HeadScratch, &mut Vec<f32>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => {
            let (ws, buf) = &mut *s;
            f(ws, buf)
        }
        Err(_) => f(&mut HeadScratch::default(), &mut Vec::new()),
    })
}

/// The attention core of every sequence and head: from Q/K/V `[B*T, 3d]`, the probabilities
/// (triangles of `F8`, see `core`) and the concatenated heads `[B*T, d]`.
fn attend(dims: CoreDims, qkv: &Array2<f32>) -> (Vec<F8>, Array2<f32>) {
    let mut probs = vec![F8::default(); dims.probs_len()];
    let mut concat = pool::zeros2(dims.batch * dims.seq, dims.d);
    let qkv_s = qkv.as_slice().expect("contiguous");
    let cat_s = concat.as_slice_mut().expect("contiguous");
    with_scratch(|ws, _| self::core::forward(dims, qkv_s, &mut probs, cat_s, ws));
    (probs, concat)
}

/// Backward of [`attend`]: from Q/K/V, the probabilities and the gradient of the concatenated
/// heads `[B*T, d]`, the gradient of Q/K/V `[B*T, 3d]`, handed to `then`.
fn attend_backward<R>(
    dims: CoreDims,
    qkv: &Array2<f32>,
    probs: &[F8],
    dconcat: &Array2<f32>,
    then: impl FnOnce(ArrayView2<'_, f32>) -> R,
) -> R {
    let shape = (dims.batch * dims.seq, 3 * dims.d);
    let qkv_s = qkv.as_slice().expect("contiguous");
    let dcat_s = dconcat.as_slice().expect("contiguous");
    with_scratch(|ws, dqkv| {
        dqkv.resize(shape.0 * shape.1, 0.0);
        self::core::backward(dims, qkv_s, probs, dcat_s, dqkv, ws);
        then(ArrayView2::from_shape(shape, dqkv).expect("[B*T, 3d]"))
    })
}

impl Attention {
    /// Every per-head Q/K/V tensor: `(name, rows of qkv)` for `q_linears.{j}`, `k_linears.{j}`,
    /// `v_linears.{j}` in PyTorch's order (the rows `part·d + j·dh ..` of the fused weight).
    fn head_tensors(&self, prefix: &str) -> Vec<(String, std::ops::Range<usize>)> {
        let (d, dh) = (self.dim(), self.head_dim());
        let mut out = Vec::with_capacity(3 * self.n_heads);
        for (part, name) in ["q_linears", "k_linears", "v_linears"].iter().enumerate() {
            for j in 0..self.n_heads {
                let r = part * d + j * dh..part * d + (j + 1) * dh;
                out.push((join(prefix, &format!("{name}.{j}")), r));
            }
        }
        out
    }
}

/// The fused Q/K/V under PyTorch's per-head names (row slices), then `attn_out`.
impl Named for Attention {
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>) {
        let (w, b) = (self.qkv.weight(), self.qkv.bias());
        for (p, r) in self.head_tensors(prefix) {
            out.push((
                join(&p, "weight"),
                w.slice_move(s![r.clone(), ..]).into_dyn(),
            ));
            out.push((join(&p, "bias"), b.slice_move(s![r]).into_dyn()));
        }
        self.out.tensors(&join(prefix, "attn_out"), out);
    }
    fn tensors_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewMutD<'_, f32>)) {
        let heads = self.head_tensors(prefix);
        let (w, b) = self.qkv.weight_bias_mut();
        for (p, r) in heads {
            f(
                join(&p, "weight"),
                w.slice_mut(s![r.clone(), ..]).into_dyn(),
            );
            f(join(&p, "bias"), b.slice_mut(s![r]).into_dyn());
        }
        self.out.tensors_mut(&join(prefix, "attn_out"), f);
    }
}
parameters_via_named!(Attention);

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
        probs: Vec<F8>,
        concat: Array2<f32>,
        scratch: HeadScratch,
    }

    impl Core {
        /// `batch` sequences of `seq` rows, width `d`, `h` heads; values uniform in ±1.
        pub fn new(batch: usize, seq: usize, d: usize, h: usize, seed: u64) -> Self {
            assert!(
                seq > 0 && h > 0 && d % h == 0,
                "shape: T > 0 and h dividing d"
            );
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
                scratch: HeadScratch::default(),
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
            attend_backward(self.dims, &self.qkv, &self.probs, &self.dcat, |dqkv| {
                dqkv[[0, 0]]
            })
        }

        /// The forward core through the build `imp` alone (no pool, no threads), into the
        /// buffers made by `new`.
        pub fn forward_impl(&mut self, imp: crate::nn::kernels::Impl) -> f32 {
            let qkv = self.qkv.as_slice().expect("contiguous");
            let cat = self.concat.as_slice_mut().expect("contiguous");
            self::core::forward_impl(imp, self.dims, qkv, &mut self.probs, cat, &mut self.scratch);
            cat[0]
        }

        /// The backward core through the build `imp` alone, into `dqkv` (resized).
        pub fn backward_impl(&mut self, imp: crate::nn::kernels::Impl, dqkv: &mut Vec<f32>) -> f32 {
            let qkv = self.qkv.as_slice().expect("contiguous");
            let dcat = self.dcat.as_slice().expect("contiguous");
            dqkv.resize(qkv.len(), 0.0);
            self::core::backward_impl(
                imp,
                self.dims,
                qkv,
                &self.probs,
                dcat,
                dqkv,
                &mut self.scratch,
            );
            dqkv[0]
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
                    &mut cs[j * dh..],
                    d,
                    &mut self.scratch,
                );
            }
            cs[0]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lanes::Portable;
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Naive causal attention in f64 on Q/K/V `[B*T, 3d]` and `dcat: [B*T, d]`: probabilities
    /// `[B, h, T, T]`, heads `[B*T, d]` and dQ/dK/dV `[B*T, 3d]`.
    struct Reference {
        probs: Vec<f64>,
        cat: Vec<f64>,
        dqkv: Vec<f64>,
    }

    fn reference(qkv: &[f32], dcat: &[f32], dims: CoreDims) -> Reference {
        let CoreDims {
            batch: bn,
            seq: t,
            d,
            h,
            dh,
            ..
        } = dims;
        let scale = 1.0 / (dh as f64).sqrt();
        let s3 = 3 * d;
        let at = |r: usize, c: usize| qkv[r * s3 + c] as f64;
        let mut probs = vec![0.0; bn * h * t * t];
        let mut cat = vec![0.0; bn * t * d];
        let mut dqkv = vec![0.0; bn * t * s3];
        for b in 0..bn {
            for j in 0..h {
                let (qo, ko, vo) = (j * dh, d + j * dh, 2 * d + j * dh);
                let row = |i: usize| b * t + i;
                let mut p = vec![vec![0.0; t]; t];
                for (i, pi) in p.iter_mut().enumerate() {
                    let s: Vec<f64> = (0..=i)
                        .map(|u| {
                            (0..dh)
                                .map(|c| at(row(i), qo + c) * at(row(u), ko + c))
                                .sum::<f64>()
                                * scale
                        })
                        .collect();
                    let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
                    for u in 0..=i {
                        pi[u] = (s[u] - mx).exp() / z;
                        probs[((b * h + j) * t + i) * t + u] = pi[u];
                    }
                    for c in 0..dh {
                        cat[row(i) * d + qo + c] =
                            (0..=i).map(|u| pi[u] * at(row(u), vo + c)).sum();
                    }
                }
                let dout = |i: usize, c: usize| dcat[row(i) * d + qo + c] as f64;
                for i in 0..t {
                    let dp: Vec<f64> = (0..=i)
                        .map(|u| (0..dh).map(|c| dout(i, c) * at(row(u), vo + c)).sum())
                        .collect();
                    let s: f64 = (0..=i).map(|u| p[i][u] * dp[u]).sum();
                    for u in 0..=i {
                        let ds = p[i][u] * (dp[u] - s) * scale;
                        for c in 0..dh {
                            dqkv[row(i) * s3 + qo + c] += ds * at(row(u), ko + c);
                            dqkv[row(u) * s3 + ko + c] += ds * at(row(i), qo + c);
                            dqkv[row(u) * s3 + vo + c] += p[i][u] * dout(i, c);
                        }
                    }
                }
            }
        }
        Reference { probs, cat, dqkv }
    }

    fn dims(batch: usize, seq: usize, d: usize, h: usize) -> CoreDims {
        let dh = d / h;
        CoreDims {
            batch,
            seq,
            d,
            h,
            dh,
            scale: 1.0 / (dh as f32).sqrt(),
        }
    }

    fn random(n: usize, amp: f32, rng: &mut StdRng) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-amp..amp)).collect()
    }

    /// `got` within `1e-5` of `want`, relative to the largest `|want|` (at least 1).
    fn assert_close(what: &str, got: impl IntoIterator<Item = f32>, want: &[f64]) {
        let top = want.iter().fold(1.0f64, |a, &b| a.max(b.abs()));
        let mut n = 0;
        for (k, (g, &w)) in got.into_iter().zip(want).enumerate() {
            let err = (g as f64 - w).abs() / top;
            assert!(err < 1e-5, "{what}[{k}]: {g} vs {w} (rel {err:.1e})");
            n += 1;
        }
        assert_eq!(n, want.len(), "{what}: length");
    }

    /// The probabilities of the core's layout as `[B, h, T, T]`, and whether every stored
    /// lane past its query's position is zero.
    fn unpack_probs(p: &[F8], dims: CoreDims) -> (Vec<f32>, bool) {
        let (t, head) = (dims.seq, dims.head_probs());
        assert_eq!(p.len(), dims.batch * dims.h * head);
        let mut out = vec![0.0; dims.batch * dims.h * t * t];
        let mut masked_zero = true;
        for (k, o) in out.chunks_exact_mut(t * t).enumerate() {
            let hp = &p[k * head..(k + 1) * head];
            for ub in 0..dims.blocks() {
                for i in ub * 8..t {
                    let lanes = hp[col_base(t, ub) + i - ub * 8].0;
                    for (l, &x) in lanes.iter().enumerate() {
                        let u = ub * 8 + l;
                        if u <= i {
                            o[i * t + u] = x;
                        } else {
                            masked_zero &= x == 0.0;
                        }
                    }
                }
            }
        }
        (out, masked_zero)
    }

    /// Forward and backward of the batch cores, through `run_fwd` / `run_bwd`, against the
    /// f64 reference for every head count of d = 50 and sequence lengths around the 8-lane
    /// blocks; also checks the padding lanes of the probabilities are zero.
    fn check_cores(
        run_fwd: impl Fn(CoreDims, &[f32], &mut [F8], &mut [f32]),
        run_bwd: impl Fn(CoreDims, &[f32], &[F8], &[f32], &mut [f32]),
    ) {
        let mut rng = StdRng::seed_from_u64(5);
        for h in [1, 2, 5, 10] {
            for t in [1, 7, 8, 9, 16, 29] {
                let dims = dims(2, t, 50, h);
                let qkv = random(2 * t * 150, 1.5, &mut rng);
                let dcat = random(2 * t * 50, 1.0, &mut rng);
                let want = reference(&qkv, &dcat, dims);
                // Stale values in the outputs must not matter.
                let mut probs = vec![F8([f32::NAN; 8]); dims.probs_len()];
                let mut cat = vec![f32::NAN; 2 * t * 50];
                run_fwd(dims, &qkv, &mut probs, &mut cat);
                let ctx = format!("h={h} T={t}");
                let (p, masked_zero) = unpack_probs(&probs, dims);
                assert_close(&format!("probs {ctx}"), p, &want.probs);
                assert!(masked_zero, "{ctx}: probabilities past the diagonal");
                assert_close(&format!("heads {ctx}"), cat.iter().copied(), &want.cat);
                let mut dqkv = vec![f32::NAN; 2 * t * 150];
                run_bwd(dims, &qkv, &probs, &dcat, &mut dqkv);
                assert_close(&format!("dqkv {ctx}"), dqkv.iter().copied(), &want.dqkv);
            }
        }
    }

    #[test]
    fn core_matches_an_f64_reference() {
        // The dispatched cores (AVX2 + FMA on CPUs that have them).
        check_cores(
            |dims, qkv, p, cat| self::core::forward(dims, qkv, p, cat, &mut HeadScratch::default()),
            |dims, qkv, p, dcat, dqkv| {
                let mut ws = HeadScratch::default();
                // The same scratch twice: reuse must not change the result.
                self::core::backward(dims, qkv, p, dcat, dqkv, &mut ws);
                let first = dqkv.to_vec();
                self::core::backward(dims, qkv, p, dcat, dqkv, &mut ws);
                assert_eq!(first, dqkv, "deterministic");
            },
        );
    }

    #[test]
    fn portable_core_matches_an_f64_reference() {
        check_cores(
            |dims, qkv, p, cat| {
                self::core::forward_with(Portable, dims, qkv, p, cat, &mut HeadScratch::default())
            },
            |dims, qkv, p, dcat, dqkv| {
                let mut ws = HeadScratch::default();
                self::core::backward_with(Portable, dims, qkv, p, dcat, dqkv, &mut ws)
            },
        );
    }

    /// The portable core compiled for every level this CPU runs (`dispatch!`).
    #[test]
    fn dispatched_portable_core_matches_an_f64_reference_at_every_level() {
        use crate::nn::kernels::{Impl, Level};
        for level in Level::supported() {
            let imp = Impl::Portable(level);
            check_cores(
                |dims, qkv, p, cat| {
                    self::core::forward_impl(imp, dims, qkv, p, cat, &mut HeadScratch::default())
                },
                |dims, qkv, p, dcat, dqkv| {
                    let mut ws = HeadScratch::default();
                    self::core::backward_impl(imp, dims, qkv, p, dcat, dqkv, &mut ws)
                },
            );
        }
    }

    /// `head_forward` with keys and values in separate `[m, d]` arrays (as the KV cache keeps
    /// them): queries `offset..offset + n` equal the reference's rows at those positions.
    #[test]
    fn head_forward_with_an_offset_matches_the_reference() {
        let mut rng = StdRng::seed_from_u64(6);
        let mut ws = HeadScratch::default();
        for h in [1, 2, 5, 10] {
            let t = 29;
            let dims = dims(1, t, 50, h);
            let qkv = random(t * 150, 1.5, &mut rng);
            let want = reference(&qkv, &vec![0.0; t * 50], dims);
            let k: Vec<f32> = (0..t)
                .flat_map(|r| qkv[r * 150 + 50..r * 150 + 100].to_vec())
                .collect();
            let v: Vec<f32> = (0..t)
                .flat_map(|r| qkv[r * 150 + 100..r * 150 + 150].to_vec())
                .collect();
            for (offset, n) in [
                (0, 1),
                (0, 29),
                (1, 1),
                (7, 1),
                (8, 1),
                (15, 1),
                (28, 1),
                (3, 9),
                (8, 8),
                (13, 16),
            ] {
                let m = offset + n;
                let mut out = vec![f32::NAN; n * 50];
                for j in 0..h {
                    let dh = dims.dh;
                    let io = HeadIo {
                        q: &qkv[offset * 150 + j * dh..],
                        k: &k[j * dh..m * 50],
                        v: &v[j * dh..m * 50],
                        qs: 150,
                        kvs: 50,
                        n,
                        offset,
                        dh,
                        scale: dims.scale,
                    };
                    head_forward(io, &mut out[j * dh..], 50, &mut ws);
                }
                assert_close(
                    &format!("h={h} offset={offset} n={n}"),
                    out.iter().copied(),
                    &want.cat[offset * 50..m * 50],
                );
            }
        }
    }

    /// Through the layer: `AttentionCache::probs` is `[B, h, T, T]`, the reference's.
    #[test]
    fn cache_probs_are_the_reference_probabilities() {
        let mut rng = StdRng::seed_from_u64(7);
        let attn = Attention::init(50, 5, &mut rng).unwrap();
        let x = Array2::from_shape_vec((3 * 11, 50), random(3 * 11 * 50, 1.0, &mut rng)).unwrap();
        let (_, cache) = attn.forward_train((x, 11)).unwrap();
        let p = cache.probs();
        assert_eq!(p.dim(), (3, 5, 11, 11));
        let want = reference(
            cache.qkv.as_slice().unwrap(),
            &vec![0.0; 3 * 11 * 50],
            dims(3, 11, 50, 5),
        );
        assert_close("probs", p.iter().copied(), &want.probs);
    }

    /// `forward_train` and `backward` error, without touching the gradients, on a bad input
    /// (width, `seq = 0`, rows not a multiple of `seq`), a `dy` not of the output's shape, a
    /// cache of another layer shape and gradients of another shape or head count; on valid
    /// input they give exactly what the unchecked versions give.
    #[test]
    fn checked_entry_points_reject_bad_shapes() {
        let mut rng = StdRng::seed_from_u64(9);
        let (d, h, seq) = (12, 3, 5);
        let attn = Attention::init(d, h, &mut rng).unwrap();
        let rand2 = |r: usize, c: usize, rng: &mut StdRng| {
            Array2::from_shape_vec((r, c), random(r * c, 1.0, rng)).unwrap()
        };
        let x = rand2(2 * seq, d, &mut rng);
        let dy = rand2(2 * seq, d, &mut rng);

        let (y, cache) = attn.forward_train((x.clone(), seq)).unwrap();
        let (y0, cache0) = attn.forward_unchecked((x.clone(), seq));
        assert_eq!(y, y0);
        let mut g = crate::nn::layers::assert_same_backward(&attn, &cache, &cache0, dy.view());

        let e = attn
            .forward_train((rand2(2 * seq, d + 1, &mut rng), seq))
            .unwrap_err();
        assert!(matches!(e, Error::Shape { .. }), "{e}");
        assert!(e.to_string().contains("Attention::forward_train x"), "{e}");
        let e = attn.forward_train((x.clone(), 0)).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidArgument { name, .. } if name == "seq"),
            "{e}"
        );
        let e = attn
            .forward_train((rand2(2 * seq + 1, d, &mut rng), seq))
            .unwrap_err();
        assert!(matches!(e, Error::Shape { .. }), "{e}");
        assert!(attn.forward(x.view(), 0).is_err());

        let before = g.clone();
        crate::nn::layers::assert_bad_dy_rejected(
            &attn,
            &cache,
            &mut g,
            &[(2 * seq, d + 1), (2 * seq - 1, d), (seq, d), (0, d)],
        );

        // A cache of another head count, or of another width.
        let other = Attention::init(d, 4, &mut rng).unwrap();
        let (_, other_cache) = other.forward_train((x.clone(), seq)).unwrap();
        let e = attn.backward(&other_cache, dy.view(), &mut g).unwrap_err();
        assert!(e.to_string().contains("Attention::backward cache"), "{e}");
        let wide = Attention::init(d + 3, h, &mut rng).unwrap();
        let (_, wide_cache) = wide
            .forward_train((rand2(2 * seq, d + 3, &mut rng), seq))
            .unwrap();
        assert!(attn.backward(&wide_cache, dy.view(), &mut g).is_err());
        assert_eq!(g, before);

        // Gradients of another head count, or of another width.
        for other in [
            Attention::init(d, 4, &mut rng).unwrap(),
            Attention::init(d + 3, h, &mut rng).unwrap(),
        ] {
            let mut wrong = other.zeros_like();
            let e = attn.backward(&cache, dy.view(), &mut wrong).unwrap_err();
            assert!(e.to_string().contains("Attention::backward grads"), "{e}");
            assert_eq!(wrong, other.zeros_like());
        }
    }
}

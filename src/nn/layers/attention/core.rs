//! The attention core: softmax(Q·Kᵀ·scale + causal mask)·V per sequence and head, and its
//! backward, as small register-blocked products over 8-lane vectors ([`Lanes`]).
//!
//! Layouts (`F8` = 8 lanes; `mb = ⌈m/8⌉` key blocks of a head with `m` keys):
//! - forward, per head: `Qᵀ·scale` packed by blocks of 8 queries (queries on lanes);
//!   `Sᵀ = K·(Qᵀ·scale)` as rows `u` of keys, tiles of 8 keys × 8 queries (eight
//!   independent sums of `dh` terms); per query block, softmax down the rows (lane-wise, no
//!   horizontal reductions), `Oᵀ = Σ_u V[u]·Pᵀ[u]` into the output, and `Pᵀ` transposed 8×8
//!   into the probabilities `P` (keys on lanes);
//! - backward, per head: `Vᵀ` packed `[mb, dh]`; `dP = dO·Vᵀ` and
//!   `dS = P ⊙ (dP − Σ_u P⊙dP)·scale` (keys on lanes, as `P`); `dK = dSᵀ·Q` and `dV = Pᵀ·dO`
//!   straight from those; `dQ = dS·K` through `dSᵀ` (8×8 transposes; queries on lanes).
//!
//! `P` and `dS` of a head keep only the causal triangle, by columns of 8 keys: column `ub`
//! holds rows (queries) `8ub..T`, row `i` at [`col_base`]`(T, ub) + i − 8ub`, lanes past the
//! query's position zero.
//!
//! Every product skips the blocks above the causal diagonal. Scalars `K[u, c]`, `V[u, c]`,
//! `Q[i, c]`, `dO[i, c]` are read in place (broadcast), so only `Qᵀ` and `Vᵀ` are packed.

use super::lanes::{Lanes, Portable, F8};
use crate::nn::kernels::{dispatch, Impl};

#[cfg(target_arch = "x86_64")]
use super::lanes::Avx2Fma;
#[cfg(target_arch = "x86_64")]
use crate::nn::kernels::with_avx2_fma;

/// Inputs of one head's attention: `n` queries at absolute positions `offset..offset+n`,
/// attending causally to keys/values `0..offset+n`.
#[derive(Clone, Copy)]
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

/// Sizes shared by the batch cores.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoreDims {
    pub batch: usize,
    pub seq: usize,
    pub d: usize,
    pub h: usize,
    pub dh: usize,
    pub scale: f32,
}

impl CoreDims {
    /// `(batch, seq, d, h, dh, scale)`.
    pub fn unpack(self) -> (usize, usize, usize, usize, usize, f32) {
        (self.batch, self.seq, self.d, self.h, self.dh, self.scale)
    }

    /// Key blocks of a sequence, `⌈T/8⌉`.
    pub fn blocks(&self) -> usize {
        self.seq.div_ceil(8)
    }

    /// Length in `F8` of one head's probabilities (see the module doc).
    pub fn head_probs(&self) -> usize {
        col_base(self.seq, self.blocks())
    }

    /// Length in `F8` of the probabilities of every sequence and head, `[B, h, ·]`.
    pub fn probs_len(&self) -> usize {
        self.batch * self.h * self.head_probs()
    }
}

/// Where column `ub` (keys `8ub..8ub + 8`, rows `8ub..seq`) of a head's triangle starts:
/// `Σ_{k < ub} (seq − 8k)`.
#[inline(always)]
pub(crate) fn col_base(seq: usize, ub: usize) -> usize {
    ub * seq - 4 * ub * ub.saturating_sub(1)
}

/// Scratch of the attention cores, reused across heads (and across calls when decoding).
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadScratch {
    /// Forward: `Qᵀ·scale` by query blocks, `[nb, dh]`. Backward: `Vᵀ·scale`, `[mb, dh]`.
    packed: Vec<F8>,
    /// Forward: `Sᵀ`, then `e^(S − max)`, by query blocks, `[nb, 8·mb]`. Backward: `dP`, then
    /// `dS`, as a triangle.
    rows: Vec<F8>,
    /// Backward: `dSᵀ` per query block, `[mb, 8·mb]`.
    rows_t: Vec<F8>,
}

/// Forward core of every sequence and head: from Q/K/V `[B*T, 3d]` writes the probabilities
/// `probs: [B, h, ·]` (triangles, see the module doc) and the concatenated heads
/// `cat: [B*T, d]`.
pub(crate) fn forward(
    dims: CoreDims,
    qkv: &[f32],
    probs: &mut [F8],
    cat: &mut [f32],
    ws: &mut HeadScratch,
) {
    forward_impl(DEFAULT, dims, qkv, probs, cat, ws)
}

/// The build [`forward`], [`backward`] and [`head_forward`] run.
const DEFAULT: Impl = Impl::Intrinsics;

/// `$f(lanes, args…)` through the build `$imp` (and returns from the calling function):
/// `Intrinsics` runs the AVX2 + FMA lanes, or on a CPU without them the portable lanes at the
/// detected level; `Portable(level)` the portable lanes compiled for that level.
macro_rules! with_lanes {
    ($imp:expr, $f:ident, ($($a:expr),* $(,)?)) => {{
        let imp: Impl = $imp;
        #[cfg(target_arch = "x86_64")]
        if let (Impl::Intrinsics, Some(l)) = (imp, Avx2Fma::detect()) {
            // SAFETY: `l` exists only on a CPU with AVX2 and FMA.
            return unsafe { with_avx2_fma(#[inline(always)] || $f(l, $($a),*)) };
        }
        dispatch!(@at imp.portable_level(), $f, (Portable, $($a),*))
    }};
}

/// [`forward`] through the build `imp` (`Intrinsics` falls back to the portable lanes, at
/// the detected level, on a CPU without AVX2 + FMA).
pub(crate) fn forward_impl(
    imp: Impl,
    dims: CoreDims,
    qkv: &[f32],
    probs: &mut [F8],
    cat: &mut [f32],
    ws: &mut HeadScratch,
) {
    with_lanes!(imp, forward_with, (dims, qkv, probs, cat, ws))
}

/// Backward core of every sequence and head: from Q/K/V `[B*T, 3d]`, the probabilities of
/// [`forward`] and the gradient of the concatenated heads `dcat: [B*T, d]`, writes every
/// element of `dqkv: [B*T, 3d]`.
pub(crate) fn backward(
    dims: CoreDims,
    qkv: &[f32],
    probs: &[F8],
    dcat: &[f32],
    dqkv: &mut [f32],
    ws: &mut HeadScratch,
) {
    backward_impl(DEFAULT, dims, qkv, probs, dcat, dqkv, ws)
}

/// [`backward`] through the build `imp` (as [`forward_impl`]).
pub(crate) fn backward_impl(
    imp: Impl,
    dims: CoreDims,
    qkv: &[f32],
    probs: &[F8],
    dcat: &[f32],
    dqkv: &mut [f32],
    ws: &mut HeadScratch,
) {
    with_lanes!(imp, backward_with, (dims, qkv, probs, dcat, dqkv, ws))
}

/// One head's causal attention without the probabilities (the KV-cached path): writes the
/// output of query `i` into `out[i * os..][..dh]`.
pub(crate) fn head_forward(io: HeadIo<'_>, out: &mut [f32], os: usize, ws: &mut HeadScratch) {
    head_forward_impl(DEFAULT, io, out, os, ws)
}

/// [`head_forward`] through the build `imp` (as [`forward_impl`]).
pub(crate) fn head_forward_impl(
    imp: Impl,
    io: HeadIo<'_>,
    out: &mut [f32],
    os: usize,
    ws: &mut HeadScratch,
) {
    with_lanes!(imp, head_with, (io, out, os, None, ws))
}

/// [`forward`] with the lanes `l`.
#[inline(always)]
pub(crate) fn forward_with<L: Lanes>(
    l: L,
    dims: CoreDims,
    qkv: &[f32],
    probs: &mut [F8],
    cat: &mut [f32],
    ws: &mut HeadScratch,
) {
    let (batch, seq, d, h, dh, scale) = dims.unpack();
    let head_probs = dims.head_probs();
    for b in 0..batch {
        let sq = &qkv[b * seq * 3 * d..(b + 1) * seq * 3 * d];
        let sc = &mut cat[b * seq * d..(b + 1) * seq * d];
        for j in 0..h {
            let io = HeadIo {
                q: &sq[j * dh..],
                k: &sq[d + j * dh..],
                v: &sq[2 * d + j * dh..],
                qs: 3 * d,
                kvs: 3 * d,
                n: seq,
                offset: 0,
                dh,
                scale,
            };
            let p = &mut probs[(b * h + j) * head_probs..(b * h + j + 1) * head_probs];
            head_with(l, io, &mut sc[j * dh..], d, Some(p), ws);
        }
    }
}

/// One head, queries in blocks of 8 lanes. With `probs` (needs `offset = 0`), also stores the
/// probabilities as a triangle (see the module doc).
#[inline(always)]
fn head_with<L: Lanes>(
    l: L,
    io: HeadIo<'_>,
    out: &mut [f32],
    os: usize,
    mut probs: Option<&mut [F8]>,
    ws: &mut HeadScratch,
) {
    let HeadIo {
        q,
        k,
        v,
        qs,
        kvs,
        n,
        offset,
        dh,
        scale,
    } = io;
    let m = offset + n;
    let mb = m.div_ceil(8);
    let nb = n.div_ceil(8);
    // Query block `ib` sees keys `0..rows(ib)`.
    let rows = |ib: usize| (offset + ib * 8 + 8).min(m);
    // Qᵀ·scale of every query block (`[nb, dh]`), zero in the lanes past the last query.
    ws.packed.resize(nb * dh, F8::default());
    let sc = l.splat(scale);
    for ib in 0..nb {
        let (i0, live) = (ib * 8, (n - ib * 8).min(8));
        for c0 in (0..dh).step_by(8) {
            let t = gather_t(l, &q[i0 * qs + c0..], qs, live);
            let dst = &mut ws.packed[ib * dh + c0..ib * dh + dh.min(c0 + 8)];
            for (x, &tv) in dst.iter_mut().zip(&t) {
                l.store(x, l.mul(tv, sc));
            }
        }
    }
    // Sᵀ of every query block (`[nb, 8·mb]`), by tiles of 8 keys, each tile's rows of K read
    // once for all the query blocks that see them.
    ws.rows.resize(nb * 8 * mb, F8::default());
    for g in 0..mb {
        let xr = rows8(&k[g * 8 * kvs..], kvs, (m - g * 8).min(8), dh);
        for ib in 0..nb {
            let live = rows(ib).saturating_sub(g * 8).min(8);
            if live == 0 {
                continue;
            }
            let t = tile_scores(l, &xr, &ws.packed[ib * dh..(ib + 1) * dh]);
            let st = &mut ws.rows[ib * 8 * mb + g * 8..];
            for k in 0..8 {
                if k < live {
                    l.store(&mut st[k], t[k]);
                }
            }
        }
    }
    for ib in 0..nb {
        let i0 = ib * 8;
        let live = (n - i0).min(8);
        // Keys 0..rows; from row `diag` on, lane `li` sees key `u` only if `u − diag ≤ li`.
        let rows = rows(ib);
        let diag = offset + i0;
        let st = &mut ws.rows[ib * 8 * mb..ib * 8 * mb + rows];
        // Softmax down the rows, lane by lane.
        let (full, tri) = st.split_at_mut(diag);
        let mut mx = l.splat(f32::NEG_INFINITY);
        for s in full.iter() {
            mx = l.max(mx, l.load(s));
        }
        for (k, s) in tri.iter().enumerate() {
            mx = l.max(mx, l.select_from(l.load(s), l.splat(f32::NEG_INFINITY), k));
        }
        let mut sum = l.zero();
        for s in full.iter_mut() {
            let e = l.exp(l.sub(l.load(s), mx));
            sum = l.add(sum, e);
            l.store(s, e);
        }
        for (k, s) in tri.iter_mut().enumerate() {
            // Masked lanes may exceed the maximum; `exp` saturates, and they become 0.
            let e = l.keep_from(l.exp(l.sub(l.load(s), mx)), k);
            sum = l.add(sum, e);
            l.store(s, e);
        }
        // P = e/sum: the division is applied to the products (and to P when stored).
        let inv = l.div(l.splat(1.0), sum);
        // Oᵀ = Σ_u V[u]·Pᵀ[u], written as rows of queries.
        let pv = Combine {
            a: &ws.rows[ib * 8 * mb..],
            rows,
            b: v,
            bs: kvs,
            dh,
        };
        let dst = Dst {
            out: &mut out[i0 * os..],
            os,
            live,
        };
        combine_into(l, pv, dst, inv);
        if let Some(p) = probs.as_deref_mut() {
            debug_assert_eq!(offset, 0, "probabilities of a whole sequence only");
            // Pᵀ by 8×8 tiles (keys past the sequence zero) into the columns of the triangle.
            let st = &mut ws.rows[ib * 8 * mb..(ib + 1) * 8 * mb];
            st[rows..(ib + 1) * 8].fill(F8::default());
            for ub in 0..=ib {
                let mut e = load8(l, &st[ub * 8..], 1);
                for x in e.iter_mut() {
                    *x = l.mul(*x, inv);
                }
                let t = l.transpose(e);
                let pt = &mut p[col_base(n, ub) + i0 - ub * 8..];
                for k in 0..8 {
                    if k < live {
                        l.store(&mut pt[k], t[k]);
                    }
                }
            }
        }
    }
}

/// [`backward`] with the lanes `l`.
#[inline(always)]
pub(crate) fn backward_with<L: Lanes>(
    l: L,
    dims: CoreDims,
    qkv: &[f32],
    probs: &[F8],
    dcat: &[f32],
    dqkv: &mut [f32],
    ws: &mut HeadScratch,
) {
    let (batch, seq, d, h, dh, scale) = dims.unpack();
    let mb = dims.blocks();
    let s3 = 3 * d;
    let head_probs = dims.head_probs();
    let at = |ub: usize, i: usize| col_base(seq, ub) + i - ub * 8;
    ws.packed.resize(mb * dh, F8::default());
    ws.rows.resize(head_probs, F8::default());
    ws.rows_t.resize(mb * 8 * mb, F8::default());
    for b in 0..batch {
        let sq = &qkv[b * seq * s3..(b + 1) * seq * s3];
        let sdq = &mut dqkv[b * seq * s3..(b + 1) * seq * s3];
        let sdc = &dcat[b * seq * d..(b + 1) * seq * d];
        for j in 0..h {
            let p = &probs[(b * h + j) * head_probs..(b * h + j + 1) * head_probs];
            let (qo, ko, vo) = (j * dh, d + j * dh, 2 * d + j * dh);
            let dout = &sdc[j * dh..];
            // The inputs were written long ago (by the forward): ask for the next head's
            // probabilities and a share of the next sequence's Q/K/V rows, a cache line each.
            let next_head = (b * h + j + 1) * head_probs;
            if next_head < probs.len() {
                for k in (0..head_probs).step_by(2) {
                    l.prefetch(&probs[next_head + k]);
                }
            }
            if b + 1 < batch {
                let share = seq.div_ceil(h);
                for r in (j * share..(j + 1) * share).take_while(|&r| r < seq) {
                    let row = &qkv[((b + 1) * seq + r) * s3..((b + 1) * seq + r + 1) * s3];
                    for k in (0..s3).step_by(16) {
                        l.prefetch(&row[k]);
                    }
                }
            }
            // Vᵀ·scale: packed[ub·dh + c] lane `l` = V[8ub + l, c]·scale.
            let sc = l.splat(scale);
            for ub in 0..mb {
                let live = (seq - ub * 8).min(8);
                for c0 in (0..dh).step_by(8) {
                    let t = gather_t(l, &sq[ub * 8 * s3 + vo + c0..], s3, live);
                    let dst = &mut ws.packed[ub * dh + c0..ub * dh + dh.min(c0 + 8)];
                    for (x, &tv) in dst.iter_mut().zip(&t) {
                        l.store(x, l.mul(tv, sc));
                    }
                }
            }
            // By blocks of 8 query rows: dP·scale = dO·(Vᵀ·scale) (keys on lanes), the row
            // sums s = Σ_u P⊙dP·scale, dS = P ⊙ (dP·scale − s) and its 8×8 transposes
            // rows_t[ib·8mb + u] (lane `l` = dS[8ib + l, u]; zero past the sequence).
            for ib in 0..mb {
                let i0 = ib * 8;
                let live = (seq - i0).min(8);
                let xr = rows8(&dout[i0 * d..], d, live, dh);
                let mut acc = [l.zero(); 8];
                for ub in 0..=ib {
                    let dp = tile_scores(l, &xr, &ws.packed[ub * dh..(ub + 1) * dh]);
                    let (pt, dt) = (&p[at(ub, i0)..], &mut ws.rows[at(ub, i0)..]);
                    for k in 0..8 {
                        if k < live {
                            acc[k] = l.mul_add(l.load(&pt[k]), dp[k], acc[k]);
                            l.store(&mut dt[k], dp[k]);
                        }
                    }
                }
                // Lane `k` of Σ_r transpose(acc)[r] is the sum of the lanes of acc[k].
                let t = l.transpose(acc);
                let s = l.add(
                    l.add(l.add(t[0], t[4]), l.add(t[2], t[6])),
                    l.add(l.add(t[1], t[5]), l.add(t[3], t[7])),
                );
                let mut sums = F8::default();
                l.store(&mut sums, s);
                for ub in 0..=ib {
                    let (pt, dt) = (&p[at(ub, i0)..], &mut ws.rows[at(ub, i0)..]);
                    let mut g = [l.zero(); 8];
                    for k in 0..8 {
                        if k < live {
                            let dp = l.sub(l.load(&dt[k]), l.splat(sums.0[k]));
                            g[k] = l.mul(l.load(&pt[k]), dp);
                            l.store(&mut dt[k], g[k]);
                        }
                    }
                    let t = l.transpose(g);
                    let dst = &mut ws.rows_t[ib * 8 * mb + ub * 8..ib * 8 * mb + ub * 8 + 8];
                    for (x, tv) in dst.iter_mut().zip(t) {
                        l.store(x, tv);
                    }
                }
            }
            for blk in 0..mb {
                let r0 = blk * 8;
                let live = (seq - r0).min(8);
                // dQᵀ[c] = Σ_{u < min(T, 8blk + 8)} K[u, c]·dSᵀ[u]
                let keys = (r0 + 8).min(seq);
                let one = l.splat(1.0);
                let dq = Combine {
                    a: &ws.rows_t[blk * 8 * mb..],
                    rows: keys,
                    b: &sq[d + j * dh..],
                    bs: s3,
                    dh,
                };
                combine_into(
                    l,
                    dq,
                    Dst {
                        out: &mut sdq[r0 * s3 + qo..],
                        os: s3,
                        live,
                    },
                    one,
                );
                // dKᵀ[c] = Σ_{i ≥ 8blk} Q[i, c]·dS[i, blk];
                // dVᵀ[c] = Σ_{i ≥ 8blk} dO[i, c]·P[i, blk]
                let queries = seq - r0;
                let dk = Combine {
                    a: &ws.rows[at(blk, r0)..],
                    rows: queries,
                    b: &sq[r0 * s3 + qo..],
                    bs: s3,
                    dh,
                };
                combine_into(
                    l,
                    dk,
                    Dst {
                        out: &mut sdq[r0 * s3 + ko..],
                        os: s3,
                        live,
                    },
                    one,
                );
                let dv = Combine {
                    a: &p[at(blk, r0)..],
                    rows: queries,
                    b: &dout[r0 * d..],
                    bs: d,
                    dh,
                };
                combine_into(
                    l,
                    dv,
                    Dst {
                        out: &mut sdq[r0 * s3 + vo..],
                        os: s3,
                        live,
                    },
                    one,
                );
            }
        }
    }
}

/// Rows `x[k·xs..][..dh]` for `k < 8`, those past `live` repeating row `live − 1`.
#[inline(always)]
fn rows8(x: &[f32], xs: usize, live: usize, dh: usize) -> [&[f32]; 8] {
    let mut xr = [&x[..0]; 8];
    for (k, xk) in xr.iter_mut().enumerate() {
        let i = k.min(live - 1);
        *xk = &x[i * xs..i * xs + dh];
    }
    xr
}

/// `Σ_c xr[k][c] · yt[c]` for `k < 8` (eight independent sums).
#[inline(always)]
fn tile_scores<L: Lanes>(l: L, xr: &[&[f32]; 8], yt: &[F8]) -> [L::V; 8] {
    // Eight slices of exactly `yt.len()` values: no bounds checks in the loop (and the
    // accumulators stay in registers).
    let dh = yt.len();
    let (x0, x1, x2, x3) = (&xr[0][..dh], &xr[1][..dh], &xr[2][..dh], &xr[3][..dh]);
    let (x4, x5, x6, x7) = (&xr[4][..dh], &xr[5][..dh], &xr[6][..dh], &xr[7][..dh]);
    let mut a = [l.zero(); 8];
    for c in 0..dh {
        let y = l.load(&yt[c]);
        a[0] = l.mul_add(l.splat(x0[c]), y, a[0]);
        a[1] = l.mul_add(l.splat(x1[c]), y, a[1]);
        a[2] = l.mul_add(l.splat(x2[c]), y, a[2]);
        a[3] = l.mul_add(l.splat(x3[c]), y, a[3]);
        a[4] = l.mul_add(l.splat(x4[c]), y, a[4]);
        a[5] = l.mul_add(l.splat(x5[c]), y, a[5]);
        a[6] = l.mul_add(l.splat(x6[c]), y, a[6]);
        a[7] = l.mul_add(l.splat(x7[c]), y, a[7]);
    }
    a
}

/// `Σ_{r < rows} b[r·bs + c] · a[r]` for channels `c < dh`: vector rows `a` combined with
/// scalar coefficients `b` (a product whose lanes are rows of the result).
#[derive(Clone, Copy)]
struct Combine<'a> {
    a: &'a [F8],
    rows: usize,
    b: &'a [f32],
    bs: usize,
    dh: usize,
}

/// Where [`combine_into`] writes: lane `li < live` of channel `c` to `out[li·os + c]`.
struct Dst<'a> {
    out: &'a mut [f32],
    os: usize,
    live: usize,
}

/// [`Combine`] for `NC` channels from `c0`, `NC` accumulators in registers.
#[inline(always)]
fn combine<L: Lanes, const NC: usize>(l: L, p: Combine<'_>, c0: usize) -> [L::V; NC] {
    let mut acc = [l.zero(); NC];
    if p.rows == 0 {
        return acc;
    }
    // Rows of `b` through `chunks`: one check per row and none on the arithmetic, which
    // keeps the loop tight (and the accumulators in registers).
    let b = &p.b[c0..];
    assert!(b.len() >= (p.rows - 1) * p.bs + NC, "coefficient rows");
    for (x, br) in p.a[..p.rows].iter().zip(b.chunks(p.bs)) {
        let x = l.load(x);
        let br = &br[..NC];
        for c in 0..NC {
            acc[c] = l.mul_add(l.splat(br[c]), x, acc[c]);
        }
    }
    acc
}

/// `p` written transposed into `dst`, every lane multiplied by the lane of `scale`.
#[inline(always)]
fn combine_into<L: Lanes>(l: L, p: Combine<'_>, mut dst: Dst<'_>, scale: L::V) {
    let mut c0 = 0;
    while c0 < p.dh {
        c0 += match p.dh - c0 {
            10.. => chunk::<L, 10>(l, p, c0, &mut dst, scale),
            5..=9 => chunk::<L, 5>(l, p, c0, &mut dst, scale),
            4 => chunk::<L, 4>(l, p, c0, &mut dst, scale),
            2 | 3 => chunk::<L, 2>(l, p, c0, &mut dst, scale),
            _ => chunk::<L, 1>(l, p, c0, &mut dst, scale),
        };
    }
}

/// [`combine_into`] for `NC` channels from `c0`; returns `NC`.
#[inline(always)]
fn chunk<L: Lanes, const NC: usize>(
    l: L,
    p: Combine<'_>,
    c0: usize,
    dst: &mut Dst<'_>,
    scale: L::V,
) -> usize {
    let acc = combine::<L, NC>(l, p, c0);
    // NC ≤ 10: at most one whole group of 8 columns and one partial group (sizes known at
    // compile time).
    let whole = if NC >= 8 { 8 } else { 0 };
    if whole == 8 {
        let mut cols = [l.zero(); 8];
        for (x, &a) in cols.iter_mut().zip(&acc) {
            *x = l.mul(a, scale);
        }
        scatter_t(l, cols, &mut dst.out[c0..], dst.os, dst.live);
    }
    // The other columns lane by lane (cheaper than a transpose for a few columns).
    let rest = NC - whole;
    if rest > 0 {
        let mut t = [F8::default(); 8];
        for (x, &a) in t.iter_mut().zip(&acc[whole..]) {
            l.store(x, l.mul(a, scale));
        }
        for r in 0..dst.live {
            let o = &mut dst.out[r * dst.os + c0 + whole..][..rest];
            for (k, x) in o.iter_mut().enumerate() {
                *x = t[k].0[r];
            }
        }
    }
    NC
}

/// Rows `r < live` of up to 8 values, `src[r·ss..][..8]`, transposed: lane `r` of `out[k]` is
/// `src[r·ss + k]` (0 for `r ≥ live` or past the end of `src`).
#[inline(always)]
fn gather_t<L: Lanes>(l: L, src: &[f32], ss: usize, live: usize) -> [L::V; 8] {
    let mut rows = [l.zero(); 8];
    for (r, x) in rows.iter_mut().enumerate().take(live) {
        let s = &src[r * ss..];
        *x = if s.len() >= 8 {
            l.load_slice(s)
        } else {
            l.load(&short_row(s))
        };
    }
    l.transpose(rows)
}

/// `a[0]`, `a[stride]`, …, `a[7·stride]`.
#[inline(always)]
fn load8<L: Lanes>(l: L, a: &[F8], stride: usize) -> [L::V; 8] {
    let a = &a[..7 * stride + 1];
    [
        l.load(&a[0]),
        l.load(&a[stride]),
        l.load(&a[2 * stride]),
        l.load(&a[3 * stride]),
        l.load(&a[4 * stride]),
        l.load(&a[5 * stride]),
        l.load(&a[6 * stride]),
        l.load(&a[7 * stride]),
    ]
}

/// `s` (fewer than 8 values) padded with zeros.
#[cold]
#[inline(never)]
fn short_row(s: &[f32]) -> F8 {
    let mut t = F8::default();
    t.0[..s.len()].copy_from_slice(s);
    t
}

/// The inverse of [`gather_t`]: `out[r·os + k]` = lane `r` of `cols[k]` for `r < live`,
/// `k < 8`.
#[inline(always)]
fn scatter_t<L: Lanes>(l: L, cols: [L::V; 8], out: &mut [f32], os: usize, live: usize) {
    let rows = l.transpose(cols);
    for (r, &v) in rows.iter().enumerate().take(live) {
        l.store_slice(&mut out[r * os..], v);
    }
}

//! The attention core: softmax(Q·Kᵀ·scale + causal mask)·V per sequence and head, and its
//! backward, as small register-blocked products over 8-lane vectors ([`Lanes`]).
//!
//! Layouts (`F8` = 8 lanes; `mb = ⌈m/8⌉` key blocks of a head with `m` keys):
//! - forward, per block of 8 queries: `Qᵀ·scale` packed `[dh]` (queries on lanes), then
//!   `Sᵀ = K·(Qᵀ·scale)` as rows `u` of keys (`[m']`, `m'` the keys that block sees), softmax
//!   down the rows (lane-wise, no horizontal reductions), `Oᵀ = Σ_u V[u]·Pᵀ[u]` into the
//!   output, and `Pᵀ` transposed 8×8 into the probabilities `P` (keys on lanes);
//! - backward, per head: `Vᵀ` packed `[mb, dh]`; `dP = dO·Vᵀ` and `dS = P ⊙ (dP − Σ_u P⊙dP)·scale`
//!   (keys on lanes, as `P`); `dK = dSᵀ·Q` and `dV = Pᵀ·dO` straight from those;
//!   `dQ = dS·K` through `dSᵀ` (8×8 transposes; queries on lanes).
//!
//! `P` and `dS` of a head keep only the causal triangle, by columns of 8 keys: column `ub`
//! holds rows (queries) `8ub..T`, row `i` at [`col_base`]`(T, ub) + i − 8ub`, lanes past the
//! query's position zero.
//!
//! Every product skips the blocks above the causal diagonal. Scalars `K[u, c]`, `V[u, c]`,
//! `Q[i, c]`, `dO[i, c]` are read in place (broadcast), so only `Qᵀ` and `Vᵀ` are packed.

use super::lanes::{Lanes, Portable, F8};

#[cfg(target_arch = "x86_64")]
use super::lanes::Avx2Fma;

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
    /// Forward: `Qᵀ·scale` of one query block, `[dh]`. Backward: `Vᵀ`, `[mb, dh]`.
    packed: Vec<F8>,
    /// Forward: `Sᵀ` then `Pᵀ` of one query block, `[8·mb]`. Backward: `dS` as a triangle,
    /// plus 8 rows of padding.
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
    #[cfg(target_arch = "x86_64")]
    if let Some(l) = Avx2Fma::detect() {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(
            l: Avx2Fma,
            dims: CoreDims,
            qkv: &[f32],
            probs: &mut [F8],
            cat: &mut [f32],
            ws: &mut HeadScratch,
        ) {
            forward_with(l, dims, qkv, probs, cat, ws)
        }
        // SAFETY: `l` exists only on a CPU with AVX2 and FMA.
        return unsafe { avx2(l, dims, qkv, probs, cat, ws) };
    }
    forward_with(Portable, dims, qkv, probs, cat, ws)
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
    #[cfg(target_arch = "x86_64")]
    if let Some(l) = Avx2Fma::detect() {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(
            l: Avx2Fma,
            dims: CoreDims,
            qkv: &[f32],
            probs: &[F8],
            dcat: &[f32],
            dqkv: &mut [f32],
            ws: &mut HeadScratch,
        ) {
            backward_with(l, dims, qkv, probs, dcat, dqkv, ws)
        }
        // SAFETY: `l` exists only on a CPU with AVX2 and FMA.
        return unsafe { avx2(l, dims, qkv, probs, dcat, dqkv, ws) };
    }
    backward_with(Portable, dims, qkv, probs, dcat, dqkv, ws)
}

/// One head's causal attention (the KV-cached path): writes the output of query `i` into
/// `out[i * os..][..dh]`.
pub(crate) fn head_forward(io: HeadIo<'_>, out: &mut [f32], os: usize, ws: &mut HeadScratch) {
    #[cfg(target_arch = "x86_64")]
    if let Some(l) = Avx2Fma::detect() {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(
            l: Avx2Fma,
            io: HeadIo<'_>,
            out: &mut [f32],
            os: usize,
            ws: &mut HeadScratch,
        ) {
            head_with(l, io, out, os, None, ws)
        }
        // SAFETY: `l` exists only on a CPU with AVX2 and FMA.
        return unsafe { avx2(l, io, out, os, ws) };
    }
    head_with(Portable, io, out, os, None, ws)
}

#[inline(always)]
pub(crate) fn forward_with<L: Lanes>(
    l: L,
    dims: CoreDims,
    qkv: &[f32],
    probs: &mut [F8],
    cat: &mut [f32],
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
    ws.packed.resize(dh, F8::default());
    ws.rows.resize(8 * mb, F8::default());
    for ib in 0..n.div_ceil(8) {
        let i0 = ib * 8;
        let live = (n - i0).min(8);
        // Qᵀ·scale, zero in the lanes past the last query.
        let sc = l.splat(scale);
        for c0 in (0..dh).step_by(8) {
            let t = gather_t(l, &q[i0 * qs + c0..], qs, live);
            for (x, &tv) in ws.packed[c0..dh.min(c0 + 8)].iter_mut().zip(&t) {
                l.store(x, l.mul(tv, sc));
            }
        }
        // Keys 0..rows; from row `diag` on, lane `li` sees key `u` only if `u − diag ≤ li`.
        let rows = (offset + i0 + 8).min(m);
        let diag = offset + i0;
        let st = &mut ws.rows[..rows];
        scores(l, k, kvs, &ws.packed[..dh], st);
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
        let inv = l.div(l.splat(1.0), sum);
        for s in st.iter_mut() {
            l.store(s, l.mul(l.load(s), inv));
        }
        // Oᵀ = Σ_u V[u]·Pᵀ[u], written as rows of queries.
        combine_into(
            l,
            &ws.rows[..rows],
            1,
            rows,
            v,
            kvs,
            dh,
            &mut out[i0 * os..],
            os,
            live,
        );
        if let Some(p) = probs.as_deref_mut() {
            debug_assert_eq!(offset, 0, "probabilities of a whole sequence only");
            // Pᵀ by 8×8 tiles (keys past the sequence zero) into the columns of the triangle.
            ws.rows[rows..(ib + 1) * 8].fill(F8::default());
            for ub in 0..=ib {
                let t = l.transpose(load8(l, &ws.rows[ub * 8..], 1));
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
    let CoreDims {
        batch,
        seq,
        d,
        h,
        dh,
        scale,
    } = dims;
    let mb = dims.blocks();
    let s3 = 3 * d;
    let head_probs = dims.head_probs();
    let at = |ub: usize, i: usize| col_base(seq, ub) + i - ub * 8;
    ws.packed.resize(mb * dh, F8::default());
    ws.rows.resize(head_probs + 8, F8::default());
    ws.rows_t.resize(mb * 8 * mb, F8::default());
    for b in 0..batch {
        let sq = &qkv[b * seq * s3..(b + 1) * seq * s3];
        let sdq = &mut dqkv[b * seq * s3..(b + 1) * seq * s3];
        let sdc = &dcat[b * seq * d..(b + 1) * seq * d];
        for j in 0..h {
            let p = &probs[(b * h + j) * head_probs..(b * h + j + 1) * head_probs];
            let (qo, ko, vo) = (j * dh, d + j * dh, 2 * d + j * dh);
            let dout = &sdc[j * dh..];
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
                let dst = &ws.rows_t[blk * 8 * mb..];
                let out = &mut sdq[r0 * s3 + qo..];
                combine_into(l, dst, 1, keys, &sq[d + j * dh..], s3, dh, out, s3, live);
                // dKᵀ[c] = Σ_{i ≥ 8blk} Q[i, c]·dS[i, blk]; dVᵀ[c] = Σ_{i ≥ 8blk} dO[i, c]·P[i, blk]
                let queries = seq - r0;
                let ds = &ws.rows[at(blk, r0)..];
                let (q, out) = (&sq[r0 * s3 + qo..], &mut sdq[r0 * s3 + ko..]);
                combine_into(l, ds, 1, queries, q, s3, dh, out, s3, live);
                let pr = &p[at(blk, r0)..];
                let out = &mut sdq[r0 * s3 + vo..];
                combine_into(l, pr, 1, queries, &dout[r0 * d..], d, dh, out, s3, live);
            }
        }
    }
}

/// `out[r] = Σ_c x[r·xs + c] · yt[c]` for `r < out.len()`, `c < yt.len()`: rows of scalars
/// times packed columns, eight rows (eight independent sums) at a time.
#[inline(always)]
fn scores<L: Lanes>(l: L, x: &[f32], xs: usize, yt: &[F8], out: &mut [F8]) {
    for (g, o) in out.chunks_mut(8).enumerate() {
        let t = tile_scores(l, &rows8(&x[g * 8 * xs..], xs, o.len(), yt.len()), yt);
        // (Not a zip: that becomes a copy through memory.)
        for k in 0..8 {
            if k < o.len() {
                l.store(&mut o[k], t[k]);
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

/// `acc[c] = Σ_{r < rows} b[r·bs + c] · a[r·astride]` for `c < NC`: vector rows combined
/// with scalar coefficients, `NC` accumulators in registers.
#[inline(always)]
fn combine<L: Lanes, const NC: usize>(
    l: L,
    a: &[F8],
    astride: usize,
    rows: usize,
    b: &[f32],
    bs: usize,
) -> [L::V; NC] {
    let mut acc = [l.zero(); NC];
    if rows == 0 {
        return acc;
    }
    // Slicing first lets the compiler drop most checks in the loop (and keeps the
    // accumulators in registers).
    let a = &a[..(rows - 1) * astride + 1];
    let b = &b[..(rows - 1) * bs + NC];
    for r in 0..rows {
        let x = l.load(&a[r * astride]);
        let br = &b[r * bs..r * bs + NC];
        for c in 0..NC {
            acc[c] = l.mul_add(l.splat(br[c]), x, acc[c]);
        }
    }
    acc
}

/// For `c < dh`: `out[li·os + c] = Σ_{r < rows} b[r·bs + c] · a[r·astride][li]` for lanes
/// `li < live` (a product written transposed: lanes become rows of `out`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn combine_into<L: Lanes>(
    l: L,
    a: &[F8],
    astride: usize,
    rows: usize,
    b: &[f32],
    bs: usize,
    dh: usize,
    out: &mut [f32],
    os: usize,
    live: usize,
) {
    let mut c0 = 0;
    while c0 < dh {
        let b = &b[c0..];
        let out = &mut out[c0..];
        c0 += match dh - c0 {
            10.. => chunk::<L, 10>(l, a, astride, rows, b, bs, out, os, live),
            5..=9 => chunk::<L, 5>(l, a, astride, rows, b, bs, out, os, live),
            4 => chunk::<L, 4>(l, a, astride, rows, b, bs, out, os, live),
            2 | 3 => chunk::<L, 2>(l, a, astride, rows, b, bs, out, os, live),
            _ => chunk::<L, 1>(l, a, astride, rows, b, bs, out, os, live),
        };
    }
}

/// [`combine`] of `NC` channels, written transposed; returns `NC`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn chunk<L: Lanes, const NC: usize>(
    l: L,
    a: &[F8],
    astride: usize,
    rows: usize,
    b: &[f32],
    bs: usize,
    out: &mut [f32],
    os: usize,
    live: usize,
) -> usize {
    let acc = combine::<L, NC>(l, a, astride, rows, b, bs);
    // NC ≤ 10: at most one whole group of 8 columns and one partial group (sizes known at
    // compile time).
    let whole = if NC >= 8 { 8 } else { 0 };
    let mut cols = [l.zero(); 8];
    if whole == 8 {
        cols.copy_from_slice(&acc[..8]);
        scatter_t(l, cols, 8, out, os, live);
    }
    let rest = NC - whole;
    if rest > 0 {
        cols = [l.zero(); 8];
        cols[..rest].copy_from_slice(&acc[whole..]);
        scatter_t(l, cols, rest, &mut out[whole..], os, live);
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

/// The inverse of [`gather_t`] for `nk` columns: `out[r·os + k]` = lane `r` of `cols[k]` for
/// `r < live`, `k < nk`.
#[inline(always)]
fn scatter_t<L: Lanes>(l: L, cols: [L::V; 8], nk: usize, out: &mut [f32], os: usize, live: usize) {
    let rows = l.transpose(cols);
    for (r, &v) in rows.iter().enumerate().take(live) {
        let o = &mut out[r * os..];
        if nk == 8 {
            l.store_slice(o, v);
        } else {
            let mut t = F8::default();
            l.store(&mut t, v);
            for (x, &y) in o[..nk].iter_mut().zip(&t.0) {
                *x = y;
            }
        }
    }
}

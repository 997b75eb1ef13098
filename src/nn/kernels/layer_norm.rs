//! The AVX2 + FMA LayerNorm of [`crate::nn::layers::layer_norm`] (forward with cache, backward),
//! for `d >= 8`; it measured 1.8–2.5× faster than the portable loops (`benches/kernels.rs`).
//! FMA contraction and the blocked sums make its results differ from the portable loops by
//! f32 rounding only (the layer's tests bound both against an f64 reference).
//!
//!  A row is `d / 8` vectors and, if `8 ∤ d`, one more vector at
//! `d − 8` that overlaps the previous one (its repeated lanes masked out of sums; its outputs
//! are the same values stored again), so no load or store leaves the row. Rows go in groups
//! of 8 whose per-row sums are reduced together into one vector (one division, one square
//! root for 8 rows), so that the rows' dependency chains overlap; the mean and the variance
//! are two passes over the row. The weight and bias gradients are summed over the rows column
//! block by column block in registers and added once.

use std::arch::x86_64::*;

use super::ln::{BackwardIn, CacheOut, Out, LN_EPS};

/// Rows per group.
const G: usize = 8;

/// The block offsets of a row of `d >= 8`: `0, 8, .., full − 8` and `d − 8` if `8 ∤ d`.
#[derive(Clone, Copy)]
struct Blocks {
    d: usize,
    full: usize,
    /// The lanes of the last, overlapping block not covered before (the upper `d mod 8`).
    tail: __m256,
}

impl Blocks {
    #[inline(always)]
    unsafe fn new(d: usize) -> Self {
        const M: [i32; 16] = [0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1];
        let full = d / 8 * 8;
        let m = _mm256_loadu_si256(M.as_ptr().add(d - full) as *const __m256i);
        Blocks {
            d,
            full,
            tail: _mm256_castsi256_ps(m),
        }
    }

    /// Whether there is an overlapping last block (at `d − 8`).
    #[inline(always)]
    fn has_tail(&self) -> bool {
        self.full < self.d
    }
}

/// `[Σ v0, Σ v1, .., Σ v7]` from `p[j] = hadd(v_2j, v_2j+1)`.
#[inline(always)]
unsafe fn reduce8(p: [__m256; 4]) -> __m256 {
    let a = _mm256_hadd_ps(p[0], p[1]);
    let b = _mm256_hadd_ps(p[2], p[3]);
    _mm256_add_ps(
        _mm256_permute2f128_ps(a, b, 0x20),
        _mm256_permute2f128_ps(a, b, 0x31),
    )
}

/// The lanes of `v` as an array.
#[inline(always)]
unsafe fn lanes(v: __m256) -> [f32; 8] {
    let mut a = [0.0f32; 8];
    _mm256_storeu_ps(a.as_mut_ptr(), v);
    a
}

/// Lane sums of the row at `x` (to be summed across lanes).
#[inline(always)]
unsafe fn row_sum(x: *const f32, bl: Blocks) -> __m256 {
    let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut k = 0;
    while k + 16 <= bl.full {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x.add(k)));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x.add(k + 8)));
        k += 16;
    }
    if k < bl.full {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x.add(k)));
    }
    if bl.has_tail() {
        let v = _mm256_and_ps(_mm256_loadu_ps(x.add(bl.d - 8)), bl.tail);
        s1 = _mm256_add_ps(s1, v);
    }
    _mm256_add_ps(s0, s1)
}

/// Lane sums of `(x − mean)²` over the row at `x`.
#[inline(always)]
unsafe fn row_sq_dev(x: *const f32, mean: f32, bl: Blocks) -> __m256 {
    let mv = _mm256_set1_ps(mean);
    let (mut q0, mut q1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut k = 0;
    while k + 16 <= bl.full {
        let a = _mm256_sub_ps(_mm256_loadu_ps(x.add(k)), mv);
        let c = _mm256_sub_ps(_mm256_loadu_ps(x.add(k + 8)), mv);
        q0 = _mm256_fmadd_ps(a, a, q0);
        q1 = _mm256_fmadd_ps(c, c, q1);
        k += 16;
    }
    if k < bl.full {
        let a = _mm256_sub_ps(_mm256_loadu_ps(x.add(k)), mv);
        q0 = _mm256_fmadd_ps(a, a, q0);
    }
    if bl.has_tail() {
        let a = _mm256_sub_ps(_mm256_loadu_ps(x.add(bl.d - 8)), mv);
        let a = _mm256_and_ps(a, bl.tail);
        q1 = _mm256_fmadd_ps(a, a, q1);
    }
    _mm256_add_ps(q0, q1)
}

/// Pointers of one `forward_rows` call; `h` and `rstd` are null without a cache.
#[derive(Clone, Copy)]
struct Fwd {
    w: *const f32,
    b: *const f32,
    y: *mut f32,
    h: *mut f32,
    rstd: *mut f32,
}

/// Normalises, scales and stores the 8 values of block `k` of the row at `x` (output row
/// offset `o`).
#[inline(always)]
unsafe fn forward_block(p: Fwd, x: *const f32, o: usize, k: usize, mv: __m256, rv: __m256) {
    let h = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x.add(k)), mv), rv);
    let y = _mm256_fmadd_ps(h, _mm256_loadu_ps(p.w.add(k)), _mm256_loadu_ps(p.b.add(k)));
    _mm256_storeu_ps(p.y.add(o + k), y);
    if !p.h.is_null() {
        _mm256_storeu_ps(p.h.add(o + k), h);
    }
}

/// The group of rows `r0 .. r0 + count` (`1 <= count <= 8`; the sums of missing rows are
/// zeros, their statistics unused).
#[inline(always)]
unsafe fn forward_group(p: Fwd, xs: *const f32, r0: usize, count: usize, bl: Blocks) {
    let d = bl.d;
    let n = _mm256_set1_ps(d as f32);
    let zero = _mm256_setzero_ps();
    let mut pairs = [zero; G / 2];
    for (j, pr) in pairs.iter_mut().enumerate() {
        let (a, b) = (2 * j, 2 * j + 1);
        let a = if a < count {
            row_sum(xs.add((r0 + a) * d), bl)
        } else {
            zero
        };
        let b = if b < count {
            row_sum(xs.add((r0 + b) * d), bl)
        } else {
            zero
        };
        *pr = _mm256_hadd_ps(a, b);
    }
    let mean = lanes(_mm256_div_ps(reduce8(pairs), n));
    for (j, pr) in pairs.iter_mut().enumerate() {
        let (a, b) = (2 * j, 2 * j + 1);
        let a = if a < count {
            row_sq_dev(xs.add((r0 + a) * d), mean[a], bl)
        } else {
            zero
        };
        let b = if b < count {
            row_sq_dev(xs.add((r0 + b) * d), mean[b], bl)
        } else {
            zero
        };
        *pr = _mm256_hadd_ps(a, b);
    }
    let var = _mm256_div_ps(reduce8(pairs), n);
    let one = _mm256_set1_ps(1.0);
    let rs = _mm256_div_ps(
        one,
        _mm256_sqrt_ps(_mm256_add_ps(var, _mm256_set1_ps(LN_EPS))),
    );
    let rs = lanes(rs);
    for i in 0..count {
        let o = (r0 + i) * d;
        let x = xs.add(o);
        let (mv, rv) = (_mm256_set1_ps(mean[i]), _mm256_set1_ps(rs[i]));
        let mut k = 0;
        while k < bl.full {
            forward_block(p, x, o, k, mv, rv);
            k += 8;
        }
        if bl.has_tail() {
            forward_block(p, x, o, d - 8, mv, rv);
        }
        if !p.rstd.is_null() {
            *p.rstd.add(r0 + i) = rs[i];
        }
    }
}

/// # Safety
/// The CPU must have AVX2 and FMA; `d >= 8`; lengths as checked by `layer_norm::forward_rows_impl`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn forward_rows(
    xs: &[f32],
    (w, b): (&[f32], &[f32]),
    y: Out<'_>,
    cache: CacheOut<'_>,
) {
    let d = w.len();
    debug_assert!(d >= 8);
    let bl = Blocks::new(d);
    let (h, rstd) = match cache {
        Some((h, r)) => (h.as_mut_ptr() as *mut f32, r.as_mut_ptr()),
        None => (std::ptr::null_mut(), std::ptr::null_mut()),
    };
    let p = Fwd {
        w: w.as_ptr(),
        b: b.as_ptr(),
        y: y.as_mut_ptr() as *mut f32,
        h,
        rstd,
    };
    let rows = xs.len() / d;
    let mut r0 = 0;
    while r0 < rows {
        forward_group(p, xs.as_ptr(), r0, (rows - r0).min(G), bl);
        r0 += G;
    }
}

/// Lane sums of `g` and `g · xhat` (`g = dy · weight`) over one row.
#[inline(always)]
unsafe fn row_g_sums(dy: *const f32, h: *const f32, w: *const f32, bl: Blocks) -> [__m256; 2] {
    let (mut sg, mut sgh) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut k = 0;
    while k < bl.full {
        let g = _mm256_mul_ps(_mm256_loadu_ps(dy.add(k)), _mm256_loadu_ps(w.add(k)));
        sg = _mm256_add_ps(sg, g);
        sgh = _mm256_fmadd_ps(g, _mm256_loadu_ps(h.add(k)), sgh);
        k += 8;
    }
    if bl.has_tail() {
        let k = bl.d - 8;
        let g = _mm256_mul_ps(_mm256_loadu_ps(dy.add(k)), _mm256_loadu_ps(w.add(k)));
        let g = _mm256_and_ps(g, bl.tail);
        sg = _mm256_add_ps(sg, g);
        sgh = _mm256_fmadd_ps(g, _mm256_loadu_ps(h.add(k)), sgh);
    }
    [sg, sgh]
}

/// `dx` of block `k` of one row: `rstd · (g − mean(g) − xhat · mean(g·xhat))`.
#[inline(always)]
unsafe fn dx_block(
    (dy, h, w, out): (*const f32, *const f32, *const f32, *mut f32),
    k: usize,
    (mg, mgh, rv): (__m256, __m256, __m256),
) {
    let g = _mm256_mul_ps(_mm256_loadu_ps(dy.add(k)), _mm256_loadu_ps(w.add(k)));
    let t = _mm256_fnmadd_ps(_mm256_loadu_ps(h.add(k)), mgh, _mm256_sub_ps(g, mg));
    _mm256_storeu_ps(out.add(k), _mm256_mul_ps(t, rv));
}

/// `dx` for the group of rows `r0 .. r0 + count` (`count <= 8`).
#[inline(always)]
unsafe fn backward_group(inp: BackwardIn<'_>, dx: *mut f32, r0: usize, count: usize) {
    let d = inp.weight.len();
    let bl = Blocks::new(d);
    let w = inp.weight.as_ptr();
    let (dys, hs) = (inp.dy.as_ptr(), inp.xhat.as_ptr());
    let zero = _mm256_setzero_ps();
    let mut pg = [zero; G / 2];
    let mut pgh = [zero; G / 2];
    for j in 0..G / 2 {
        let (a, b) = ((r0 + 2 * j) * d, (r0 + 2 * j + 1) * d);
        let [ag, agh] = if 2 * j < count {
            row_g_sums(dys.add(a), hs.add(a), w, bl)
        } else {
            [zero; 2]
        };
        let [bg, bgh] = if 2 * j + 1 < count {
            row_g_sums(dys.add(b), hs.add(b), w, bl)
        } else {
            [zero; 2]
        };
        pg[j] = _mm256_hadd_ps(ag, bg);
        pgh[j] = _mm256_hadd_ps(agh, bgh);
    }
    let n = _mm256_set1_ps(d as f32);
    let mg = lanes(_mm256_div_ps(reduce8(pg), n));
    let mgh = lanes(_mm256_div_ps(reduce8(pgh), n));
    for i in 0..count {
        let o = (r0 + i) * d;
        let means = (
            _mm256_set1_ps(mg[i]),
            _mm256_set1_ps(mgh[i]),
            _mm256_set1_ps(*inp.rstd.get_unchecked(r0 + i)),
        );
        let ptrs = (dys.add(o), hs.add(o), w, dx.add(o));
        let mut k = 0;
        while k < bl.full {
            dx_block(ptrs, k, means);
            k += 8;
        }
        if bl.has_tail() {
            dx_block(ptrs, d - 8, means);
        }
    }
}

/// Adds `Σ_rows dy·xhat` and `Σ_rows dy` over the 8 columns at `k` (lanes of `m` only)
/// into `gw`, `gb`.
#[inline(always)]
unsafe fn param_block(inp: BackwardIn<'_>, k: usize, m: __m256, gw: *mut f32, gb: *mut f32) {
    let d = inp.weight.len();
    let rows = inp.dy.len() / d;
    let (dy, h) = (inp.dy.as_ptr().add(k), inp.xhat.as_ptr().add(k));
    let mut aw = [_mm256_setzero_ps(); 4];
    let mut ab = [_mm256_setzero_ps(); 4];
    let mut r = 0;
    while r + 4 <= rows {
        for l in 0..4 {
            let v = _mm256_loadu_ps(dy.add((r + l) * d));
            aw[l] = _mm256_fmadd_ps(v, _mm256_loadu_ps(h.add((r + l) * d)), aw[l]);
            ab[l] = _mm256_add_ps(ab[l], v);
        }
        r += 4;
    }
    while r < rows {
        let v = _mm256_loadu_ps(dy.add(r * d));
        aw[0] = _mm256_fmadd_ps(v, _mm256_loadu_ps(h.add(r * d)), aw[0]);
        ab[0] = _mm256_add_ps(ab[0], v);
        r += 1;
    }
    let sw = _mm256_add_ps(_mm256_add_ps(aw[0], aw[1]), _mm256_add_ps(aw[2], aw[3]));
    let sb = _mm256_add_ps(_mm256_add_ps(ab[0], ab[1]), _mm256_add_ps(ab[2], ab[3]));
    let (pw, pb) = (gw.add(k), gb.add(k));
    _mm256_storeu_ps(pw, _mm256_add_ps(_mm256_loadu_ps(pw), _mm256_and_ps(sw, m)));
    _mm256_storeu_ps(pb, _mm256_add_ps(_mm256_loadu_ps(pb), _mm256_and_ps(sb, m)));
}

/// # Safety
/// The CPU must have AVX2 and FMA; `d >= 8`; lengths as checked by `layer_norm::backward_rows_impl`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn backward_rows(
    inp: BackwardIn<'_>,
    dx: Out<'_>,
    gw: &mut [f32],
    gb: &mut [f32],
) {
    let d = inp.weight.len();
    debug_assert!(d >= 8);
    let rows = inp.rstd.len();
    let dxp = dx.as_mut_ptr() as *mut f32;
    let mut r0 = 0;
    while r0 < rows {
        backward_group(inp, dxp, r0, (rows - r0).min(G));
        r0 += G;
    }
    let bl = Blocks::new(d);
    let all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    let (gw, gb) = (gw.as_mut_ptr(), gb.as_mut_ptr());
    let mut k = 0;
    while k < bl.full {
        param_block(inp, k, all, gw, gb);
        k += 8;
    }
    if bl.has_tail() {
        param_block(inp, d - 8, bl.tail, gw, gb);
    }
}

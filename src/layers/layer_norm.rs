//! `LayerNorm` over the last axis (PyTorch's `nn.LayerNorm(d)`: biased variance, eps = 1e-5).

use std::mem::MaybeUninit;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use ndarray::ArrayViewD;

use crate::error::{Error, Result};
use crate::layers::{visit_via_tensors, NamedTensors};
use crate::params::{join, Parameters};
use crate::pool;

/// PyTorch's default `eps`.
pub const LN_EPS: f32 = 1e-5;

/// `y = (x − mean) / sqrt(var + eps) · weight + bias`, per row, with `weight, bias: [d]`.
///
/// ```
/// use ndarray::array;
/// let ln = succulm::layers::LayerNorm::new(2);
/// let y = ln.forward(array![[1.0, 3.0]].view())?;
/// assert!((y[[0, 0]] + 1.0).abs() < 1e-4 && (y[[0, 1]] - 1.0).abs() < 1e-4);
/// # Ok::<(), succulm::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm {
    pub(crate) weight: Array1<f32>,
    pub(crate) bias: Array1<f32>,
}

/// What [`LayerNorm::backward`] needs from the forward pass.
#[derive(Debug, Clone)]
pub struct LayerNormCache {
    /// The normalised input `(x − mean) · rstd`, `[rows, d]`.
    xhat: Array2<f32>,
    /// `1 / sqrt(var + eps)` per row, `[rows]`.
    rstd: Array1<f32>,
}

impl LayerNormCache {
    /// Returns the cached activations' storage to the buffer pool.
    pub(crate) fn recycle(self) {
        pool::give_array(self.xhat);
    }
}

impl LayerNorm {
    /// PyTorch's initialisation: weight 1, bias 0, `[d]` each.
    pub fn new(d: usize) -> Self {
        LayerNorm {
            weight: Array1::ones(d),
            bias: Array1::zeros(d),
        }
    }

    /// Zeros of the same shape (to hold gradients).
    pub fn zeros_like(&self) -> Self {
        LayerNorm {
            weight: Array1::zeros(self.weight.raw_dim()),
            bias: Array1::zeros(self.bias.raw_dim()),
        }
    }

    /// The feature count `d`.
    pub fn dim(&self) -> usize {
        self.weight.len()
    }

    /// The scale, `[d]`.
    pub fn weight(&self) -> ArrayView1<'_, f32> {
        self.weight.view()
    }

    /// The shift, `[d]`.
    pub fn bias(&self) -> ArrayView1<'_, f32> {
        self.bias.view()
    }

    /// `x: [rows, d] -> [rows, d]`; errors if `x` does not have `d` columns.
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        self.check_input(x, "LayerNorm::forward input")?;
        Ok(self.apply(x))
    }

    /// Errors unless `x` is `[rows, d]`.
    fn check_input(&self, x: ArrayView2<'_, f32>, context: &str) -> Result<()> {
        if x.ncols() != self.dim() {
            return Err(Error::shape(
                context,
                &[x.nrows(), self.dim()],
                &[x.nrows(), x.ncols()],
            ));
        }
        Ok(())
    }

    /// Errors unless `cache` was recorded by a LayerNorm of this width.
    pub(crate) fn check_cache(&self, cache: &LayerNormCache, context: &str) -> Result<()> {
        let (rows, d) = cache.xhat.dim();
        if d != self.dim() {
            return Err(Error::shape(context, &[rows, self.dim()], &[rows, d]));
        }
        Ok(())
    }

    /// Errors unless `grads` has this layer's parameter shapes (`weight, bias: [d]`).
    pub(crate) fn check_grads(&self, grads: &LayerNorm, context: &str) -> Result<()> {
        for (name, mine, theirs) in [
            ("weight", &self.weight, &grads.weight),
            ("bias", &self.bias, &grads.bias),
        ] {
            if theirs.dim() != mine.dim() {
                return Err(Error::shape(
                    format!("{context} {name}"),
                    mine.shape(),
                    theirs.shape(),
                ));
            }
        }
        Ok(())
    }

    /// Forward keeping what backward needs: `x: [rows, d] -> ([rows, d], cache)`. Errors if
    /// `x` does not have `d` columns.
    pub fn forward_train(&self, x: ArrayView2<'_, f32>) -> Result<(Array2<f32>, LayerNormCache)> {
        self.check_input(x, "LayerNorm::forward_train x")?;
        Ok(self.forward_train_unchecked(x))
    }

    /// [`forward_train`](Self::forward_train) without the check (the caller guarantees
    /// `x: [rows, d]`).
    pub(crate) fn forward_train_unchecked(
        &self,
        x: ArrayView2<'_, f32>,
    ) -> (Array2<f32>, LayerNormCache) {
        let (rows, d) = x.dim();
        let x = x.as_standard_layout();
        let xs = x.as_slice().expect("standard layout");
        let n = rows * d;
        let (mut y, mut xhat) = (pool::take(n), pool::take(n));
        let mut rstd = vec![0.0f32; rows];
        forward_rows(
            xs,
            self.params(),
            pool::as_uninit(&mut y),
            Some((pool::as_uninit(&mut xhat), &mut rstd)),
        );
        let shape = (rows, d);
        (
            Array2::from_shape_vec(shape, y).expect("sized"),
            LayerNormCache {
                xhat: Array2::from_shape_vec(shape, xhat).expect("sized"),
                rstd: Array1::from_vec(rstd),
            },
        )
    }

    /// Forward without cache or checks (inference). `x: [rows, d] -> [rows, d]`.
    pub(crate) fn apply(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let (rows, d) = x.dim();
        let x = x.as_standard_layout();
        let xs = x.as_slice().expect("standard layout");
        let n = rows * d;
        let mut y = pool::take(n);
        forward_rows(xs, self.params(), pool::as_uninit(&mut y), None);
        Array2::from_shape_vec((rows, d), y).expect("sized")
    }

    /// Backward: adds `dweight = Σ dy·xhat`, `dbias = Σ dy` into `grads`, returns
    /// `dx = rstd · (g − mean(g) − xhat · mean(g · xhat))` with `g = dy · weight`, `[rows, d]`.
    ///
    /// Errors, leaving `grads` untouched, unless `cache` comes from a LayerNorm of width `d`,
    /// `dy` is `[rows, d]` (the shape of the forward output) and `grads` has this layer's
    /// shapes (as made by [`zeros_like`](Self::zeros_like)).
    pub fn backward(
        &self,
        cache: &LayerNormCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut LayerNorm,
    ) -> Result<Array2<f32>> {
        self.check_cache(cache, "LayerNorm::backward cache")?;
        let (rows, d) = cache.xhat.dim();
        Error::check_shape("LayerNorm::backward dy", &[rows, d], dy.shape())?;
        self.check_grads(grads, "LayerNorm::backward grads")?;
        Ok(self.backward_unchecked(cache, dy, grads))
    }

    /// [`backward`](Self::backward) without the checks.
    pub(crate) fn backward_unchecked(
        &self,
        cache: &LayerNormCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut LayerNorm,
    ) -> Array2<f32> {
        let (rows, d) = dy.dim();
        let dy = dy.as_standard_layout();
        let n = rows * d;
        let mut dx = pool::take(n);
        backward_rows(
            BackwardIn {
                dy: dy.as_slice().expect("standard layout"),
                xhat: cache.xhat.as_slice().expect("contiguous"),
                rstd: cache.rstd.as_slice().expect("contiguous"),
                weight: self.weight.as_slice().expect("contiguous"),
            },
            pool::as_uninit(&mut dx),
            grads.weight.as_slice_mut().expect("contiguous"),
            grads.bias.as_slice_mut().expect("contiguous"),
        );
        Array2::from_shape_vec((rows, d), dx).expect("sized")
    }

    /// `(weight, bias)` as slices.
    fn params(&self) -> (&[f32], &[f32]) {
        (
            self.weight.as_slice().expect("contiguous"),
            self.bias.as_slice().expect("contiguous"),
        )
    }
}

/// Uninitialised output elements, every one written by the kernel that receives them.
type Out<'a> = &'a mut [MaybeUninit<f32>];

/// The outputs `(xhat: [rows, d], rstd: [rows])` of a forward that keeps a cache.
type CacheOut<'a> = Option<(Out<'a>, &'a mut [f32])>;

/// The inputs of [`backward_rows`] (all row-major; `rows · d` elements, `rstd` `rows`).
#[derive(Clone, Copy)]
struct BackwardIn<'a> {
    dy: &'a [f32],
    xhat: &'a [f32],
    rstd: &'a [f32],
    weight: &'a [f32],
}

/// True if the CPU has AVX2 and FMA (the detection is cached by `std`).
#[cfg(target_arch = "x86_64")]
fn avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// LayerNorm of the rows of `xs: [rows, d]` with `(weight, bias): [d]`: writes all of
/// `y: [rows, d]` and, when given, of `(xhat: [rows, d], rstd: [rows])`.
fn forward_rows(xs: &[f32], wb: (&[f32], &[f32]), y: Out<'_>, cache: CacheOut<'_>) {
    let d = wb.0.len();
    assert!(wb.1.len() == d && xs.len() == y.len() && (d == 0 || xs.len() % d == 0));
    let rows = xs.len().checked_div(d).unwrap_or(0);
    if let Some((h, r)) = &cache {
        assert!(h.len() == xs.len() && r.len() == rows);
    }
    #[cfg(target_arch = "x86_64")]
    if d >= 8 && avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, d >= 8; the lengths were checked above.
        unsafe { avx2::forward_rows(xs, wb, y, cache) };
        return;
    }
    portable::forward_rows(xs, wb, y, cache);
}

/// LayerNorm backward on all rows: writes all of `dx: [rows, d]`, adds `Σ_rows dy·xhat` into
/// `gw: [d]` and `Σ_rows dy` into `gb: [d]`.
fn backward_rows(inp: BackwardIn<'_>, dx: Out<'_>, gw: &mut [f32], gb: &mut [f32]) {
    let d = inp.weight.len();
    let n = inp.dy.len();
    assert!(inp.xhat.len() == n && dx.len() == n && gw.len() == d && gb.len() == d);
    assert!(d == 0 || (n % d == 0 && inp.rstd.len() == n / d));
    if d == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if d >= 8 && avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, d >= 8; the lengths were checked above.
        unsafe { avx2::backward_rows(inp, dx, gw, gb) };
        return;
    }
    portable::backward_rows(inp, dx, gw, gb);
}

/// The plain loops (any CPU); the same function as [`avx2`] up to rounding.
mod portable {
    use super::{BackwardIn, CacheOut, Out, LN_EPS};

    /// Mean and `1 / sqrt(var + eps)` of one row (biased variance, two passes).
    fn moments(x: &[f32]) -> (f32, f32) {
        let n = x.len() as f32;
        let mean = x.iter().sum::<f32>() / n;
        let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
        (mean, 1.0 / (var + LN_EPS).sqrt())
    }

    pub(super) fn forward_rows(
        xs: &[f32],
        (w, b): (&[f32], &[f32]),
        y: Out<'_>,
        mut cache: CacheOut<'_>,
    ) {
        let d = w.len();
        if d == 0 {
            return;
        }
        for (r, (xr, yr)) in xs.chunks_exact(d).zip(y.chunks_exact_mut(d)).enumerate() {
            let (mean, rs) = moments(xr);
            for k in 0..d {
                let h = (xr[k] - mean) * rs;
                yr[k].write(h * w[k] + b[k]);
                if let Some((hs, _)) = &mut cache {
                    hs[r * d + k].write(h);
                }
            }
            if let Some((_, rstd)) = &mut cache {
                rstd[r] = rs;
            }
        }
    }

    pub(super) fn backward_rows(inp: BackwardIn<'_>, dx: Out<'_>, gw: &mut [f32], gb: &mut [f32]) {
        let w = inp.weight;
        let d = w.len();
        let n = d as f32;
        let rows = inp.dy.chunks_exact(d).zip(inp.xhat.chunks_exact(d));
        for ((dyr, hr), (dxr, &rs)) in rows.zip(dx.chunks_exact_mut(d).zip(inp.rstd)) {
            let (mut sg, mut sgh) = (0.0f32, 0.0f32);
            for k in 0..d {
                let g = dyr[k] * w[k];
                sg += g;
                sgh += g * hr[k];
                gw[k] += dyr[k] * hr[k];
                gb[k] += dyr[k];
            }
            let (mg, mgh) = (sg / n, sgh / n);
            for k in 0..d {
                dxr[k].write(rs * (dyr[k] * w[k] - mg - hr[k] * mgh));
            }
        }
    }
}

/// AVX2 + FMA for `d >= 8`. A row is `d / 8` vectors and, if `8 ∤ d`, one more vector at
/// `d − 8` that overlaps the previous one (its repeated lanes masked out of sums; its outputs
/// are the same values stored again), so no load or store leaves the row. Rows go in groups
/// of 8 whose per-row sums are reduced together into one vector (one division, one square
/// root for 8 rows), so that the rows' dependency chains overlap; the mean and the variance
/// are two passes over the row. The weight and bias gradients are summed over the rows column
/// block by column block in registers and added once.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BackwardIn, CacheOut, Out, LN_EPS};

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
    /// The CPU must have AVX2 and FMA; `d >= 8`; lengths as checked by `super::forward_rows`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward_rows(
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
    /// The CPU must have AVX2 and FMA; `d >= 8`; lengths as checked by `super::backward_rows`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn backward_rows(
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
}

impl NamedTensors for LayerNorm {
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>) {
        out.push((join(prefix, "weight"), self.weight.view().into_dyn()));
        out.push((join(prefix, "bias"), self.bias.view().into_dyn()));
    }
}

impl Parameters for LayerNorm {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewD<'_, f32>)) {
        visit_via_tensors(self, prefix, f)
    }
    fn visit_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(String, ndarray::ArrayViewMutD<'_, f32>),
    ) {
        f(join(prefix, "weight"), self.weight.view_mut().into_dyn());
        f(join(prefix, "bias"), self.bias.view_mut().into_dyn());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const EPS: f64 = f32::EPSILON as f64;

    /// Which implementation to run: the dispatched one (AVX2 + FMA here for `d >= 8`) or the
    /// portable loops.
    #[derive(Clone, Copy, Debug)]
    enum Path {
        Dispatched,
        Portable,
    }

    fn ln_with(w: &[f32], b: &[f32]) -> LayerNorm {
        LayerNorm {
            weight: Array1::from_vec(w.to_vec()),
            bias: Array1::from_vec(b.to_vec()),
        }
    }

    /// Rows of several kinds: normal, constant (variance 0), large offset, large scale.
    fn rows(rows: usize, d: usize, rng: &mut StdRng) -> Array2<f32> {
        let mut x = Array2::<f32>::zeros((rows, d));
        for (r, mut row) in x.rows_mut().into_iter().enumerate() {
            let (offset, scale, constant) = match r % 5 {
                0 => (0.0, 1.0, false),
                1 => (rng.gen_range(-3.0..3.0), 0.0, true),
                2 => (1.0e3, 1.0, false),
                3 => (0.0, 1.0e4, false),
                _ => (rng.gen_range(-1.0..1.0), 1.0e-3, false),
            };
            for v in row.iter_mut() {
                *v = offset
                    + if constant {
                        0.0
                    } else {
                        scale * rng.gen_range(-1.0f32..1.0)
                    };
            }
        }
        x
    }

    fn forward(path: Path, ln: &LayerNorm, x: &Array2<f32>, cache: bool) -> Vec<Vec<f32>> {
        let (rows, d) = x.dim();
        let n = rows * d;
        let xs = x.as_slice().unwrap();
        // Garbage in the outputs, to see that every element is written.
        let mut y = vec![MaybeUninit::new(f32::NAN); n];
        let mut h = vec![MaybeUninit::new(f32::NAN); n];
        let mut r = vec![f32::NAN; rows];
        let c = cache.then_some((&mut h[..], &mut r[..]));
        match path {
            Path::Dispatched => forward_rows(xs, ln.params(), &mut y, c),
            Path::Portable => portable::forward_rows(xs, ln.params(), &mut y, c),
        }
        // SAFETY: initialised above (and by the kernel).
        let init = |v: Vec<MaybeUninit<f32>>| v.into_iter().map(|e| unsafe { e.assume_init() });
        vec![init(y).collect(), init(h).collect(), r]
    }

    #[test]
    fn forward_matches_f64_reference() {
        let mut rng = StdRng::seed_from_u64(11);
        for d in [1usize, 2, 7, 8, 9, 50, 64] {
            let w: Vec<f32> = (0..d).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let b: Vec<f32> = (0..d).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let ln = ln_with(&w, &b);
            for nrows in [1usize, 5, 8, 13, 29] {
                let x = rows(nrows, d, &mut rng);
                for path in [Path::Dispatched, Path::Portable] {
                    let out = forward(path, &ln, &x, true);
                    let (y, h, rstd) = (&out[0], &out[1], &out[2]);
                    let y2 = forward(path, &ln, &x, false);
                    assert_eq!(
                        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        y2[0].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{path:?}: with and without cache differ"
                    );
                    for r in 0..nrows {
                        let xr: Vec<f64> = x.row(r).iter().map(|&v| v as f64).collect();
                        let n = d as f64;
                        let mean = xr.iter().sum::<f64>() / n;
                        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                        let rs = 1.0 / (var + LN_EPS as f64).sqrt();
                        let max = xr.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                        // Forward error of the f32 sums: the mean is off by about d·ε·max|x|,
                        // which shifts xhat by that times rstd; plus a few ε of xhat itself.
                        let tol_h = 4.0 * EPS * (d as f64 * max * rs + 4.0);
                        let rel_rs = (rstd[r] as f64 - rs).abs() / rs;
                        assert!(
                            rel_rs < 4.0 * d as f64 * EPS * (1.0 + max * max * rs * rs),
                            "{path:?} d={d} row {r}: rstd {} vs {rs}",
                            rstd[r]
                        );
                        for k in 0..d {
                            let hw = (xr[k] - mean) * rs;
                            let yw = hw * w[k] as f64 + b[k] as f64;
                            let (hg, yg) = (h[r * d + k] as f64, y[r * d + k] as f64);
                            assert!(
                                (hg - hw).abs() <= tol_h,
                                "{path:?} d={d} rows={nrows} [{r},{k}]: xhat {hg} vs {hw}"
                            );
                            let tol_y = tol_h * (w[k].abs() as f64) + 4.0 * EPS * yw.abs();
                            assert!(
                                (yg - yw).abs() <= tol_y + 1e-7,
                                "{path:?} d={d} rows={nrows} [{r},{k}]: y {yg} vs {yw}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn constant_rows_normalise_to_the_bias() {
        let mut rng = StdRng::seed_from_u64(3);
        for d in [1usize, 2, 7, 8, 9, 50, 64] {
            let w: Vec<f32> = (0..d).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let b: Vec<f32> = (0..d).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let ln = ln_with(&w, &b);
            // Powers of two: the mean is exact, so x − mean is exactly 0.
            let x = Array2::from_shape_fn((9, d), |(r, _)| (r as f32 - 4.0) * 0.5);
            for path in [Path::Dispatched, Path::Portable] {
                let out = forward(path, &ln, &x, true);
                for r in 0..9 {
                    assert_eq!(out[2][r], 1.0 / LN_EPS.sqrt(), "{path:?} d={d}");
                    for k in 0..d {
                        assert_eq!(out[1][r * d + k], 0.0, "{path:?} d={d}");
                        assert_eq!(out[0][r * d + k], b[k], "{path:?} d={d}");
                    }
                }
            }
        }
    }

    #[test]
    fn backward_matches_f64_reference() {
        let mut rng = StdRng::seed_from_u64(12);
        for d in [1usize, 2, 7, 8, 9, 50, 64] {
            let w: Vec<f32> = (0..d).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let b: Vec<f32> = (0..d).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let ln = ln_with(&w, &b);
            for nrows in [1usize, 3, 8, 9, 29, 116] {
                let x = rows(nrows, d, &mut rng);
                let (_, cache) = ln.forward_train(x.view()).unwrap();
                let dy = Array2::from_shape_simple_fn((nrows, d), || rng.gen_range(-1.0f32..1.0));
                let gw0: Vec<f32> = (0..d).map(|_| rng.gen_range(-1.0..1.0)).collect();
                let gb0: Vec<f32> = (0..d).map(|_| rng.gen_range(-1.0..1.0)).collect();
                for path in [Path::Dispatched, Path::Portable] {
                    let (mut gw, mut gb) = (gw0.clone(), gb0.clone());
                    let mut dx = vec![MaybeUninit::new(f32::NAN); nrows * d];
                    let inp = BackwardIn {
                        dy: dy.as_slice().unwrap(),
                        xhat: cache.xhat.as_slice().unwrap(),
                        rstd: cache.rstd.as_slice().unwrap(),
                        weight: &w,
                    };
                    match path {
                        Path::Dispatched => backward_rows(inp, &mut dx, &mut gw, &mut gb),
                        Path::Portable => portable::backward_rows(inp, &mut dx, &mut gw, &mut gb),
                    }
                    // SAFETY: initialised above.
                    let dx: Vec<f32> = dx.into_iter().map(|e| unsafe { e.assume_init() }).collect();
                    let n = d as f64;
                    for r in 0..nrows {
                        let rs = cache.rstd[r] as f64;
                        let h: Vec<f64> = cache.xhat.row(r).iter().map(|&v| v as f64).collect();
                        let g: Vec<f64> = (0..d).map(|k| dy[[r, k]] as f64 * w[k] as f64).collect();
                        let mg = g.iter().sum::<f64>() / n;
                        let mgh = g.iter().zip(&h).map(|(a, b)| a * b).sum::<f64>() / n;
                        let ag = g.iter().map(|v| v.abs()).sum::<f64>() / n;
                        let agh = g.iter().zip(&h).map(|(a, b)| (a * b).abs()).sum::<f64>() / n;
                        for k in 0..d {
                            let want = rs * (g[k] - mg - h[k] * mgh);
                            let tol = 4.0
                                * EPS
                                * rs
                                * (g[k].abs() + n * ag + h[k].abs() * (n * agh + mgh.abs()));
                            let got = dx[r * d + k] as f64;
                            assert!(
                                (got - want).abs() <= tol + 1e-30,
                                "{path:?} d={d} rows={nrows} [{r},{k}]: dx {got} vs {want}"
                            );
                        }
                    }
                    for k in 0..d {
                        let (mut sw, mut sb, mut aw, mut ab) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
                        for r in 0..nrows {
                            let (v, h) = (dy[[r, k]] as f64, cache.xhat[[r, k]] as f64);
                            sw += v * h;
                            sb += v;
                            aw += (v * h).abs();
                            ab += v.abs();
                        }
                        let (ww, wb) = (gw0[k] as f64 + sw, gb0[k] as f64 + sb);
                        let tw = 2.0 * (nrows as f64 + 1.0) * EPS * (aw + gw0[k].abs() as f64);
                        let tb = 2.0 * (nrows as f64 + 1.0) * EPS * (ab + gb0[k].abs() as f64);
                        assert!(
                            (gw[k] as f64 - ww).abs() <= tw,
                            "{path:?} d={d} dweight[{k}]"
                        );
                        assert!((gb[k] as f64 - wb).abs() <= tb, "{path:?} d={d} dbias[{k}]");
                    }
                }
            }
        }
    }

    #[test]
    fn public_entry_points_agree_with_the_kernels() {
        let mut rng = StdRng::seed_from_u64(5);
        let d = 50;
        let w: Vec<f32> = (0..d).map(|_| rng.gen_range(-2.0..2.0)).collect();
        let b: Vec<f32> = (0..d).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let ln = ln_with(&w, &b);
        let x = rows(21, d, &mut rng);
        // A column-major input goes through the same kernel.
        let xt = x.t().as_standard_layout().into_owned();
        assert!(!xt.t().is_standard_layout());
        let (y, cache) = ln.forward_train(xt.t()).unwrap();
        assert_eq!(y, ln.apply(x.view()));
        assert_eq!(y, ln.forward(x.view()).unwrap());
        let out = forward(Path::Dispatched, &ln, &x, true);
        assert_eq!(y.as_slice().unwrap(), &out[0][..]);
        assert_eq!(cache.xhat.as_slice().unwrap(), &out[1][..]);
        assert_eq!(cache.rstd.as_slice().unwrap(), &out[2][..]);
        let dy = Array2::from_shape_simple_fn((21, d), || rng.gen_range(-1.0f32..1.0));
        let mut g1 = ln.zeros_like();
        let dx1 = ln.backward(&cache, dy.view(), &mut g1).unwrap();
        let dyt = dy.t().as_standard_layout().into_owned();
        let mut g2 = ln.zeros_like();
        assert!(!dyt.t().is_standard_layout());
        let dx2 = ln.backward(&cache, dyt.t(), &mut g2).unwrap();
        assert_eq!(dx1, dx2);
        assert_eq!(g1, g2);
        assert!(ln.forward(Array2::zeros((2, d + 1)).view()).is_err());
    }

    /// `forward_train` and `backward` error, without touching the gradients, on a wrong-width
    /// input, a `dy` not of the output's shape, a cache of another width and gradients of
    /// another shape; on valid input they give exactly what the unchecked versions give.
    #[test]
    fn checked_entry_points_reject_bad_shapes() {
        let mut rng = StdRng::seed_from_u64(8);
        let d = 9;
        let w: Vec<f32> = (0..d).map(|_| rng.gen_range(-2.0..2.0)).collect();
        let b: Vec<f32> = (0..d).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let ln = ln_with(&w, &b);
        let x = rows(7, d, &mut rng);
        let dy = Array2::from_shape_simple_fn((7, d), || rng.gen_range(-1.0f32..1.0));

        let (y, cache) = ln.forward_train(x.view()).unwrap();
        let (y0, cache0) = ln.forward_train_unchecked(x.view());
        assert_eq!(y, y0);
        assert_eq!(cache.xhat, cache0.xhat);
        assert_eq!(cache.rstd, cache0.rstd);
        let (mut g, mut g0) = (ln.zeros_like(), ln.zeros_like());
        let dx = ln.backward(&cache, dy.view(), &mut g).unwrap();
        let dx0 = ln.backward_unchecked(&cache0, dy.view(), &mut g0);
        assert_eq!(dx, dx0);
        assert_eq!(g, g0);

        let e = ln
            .forward_train(Array2::zeros((7, d + 1)).view())
            .unwrap_err();
        assert!(matches!(e, Error::Shape { .. }), "{e}");
        assert!(e.to_string().contains("LayerNorm::forward_train x"), "{e}");

        let before = g.clone();
        for shape in [(7, d + 1), (7, d - 1), (6, d), (8, d), (0, d)] {
            let e = ln
                .backward(&cache, Array2::zeros(shape).view(), &mut g)
                .unwrap_err();
            assert!(e.to_string().contains("LayerNorm::backward dy"), "{e}");
            assert_eq!(g, before);
        }

        let other = LayerNorm::new(d + 1);
        let (_, other_cache) = other
            .forward_train(Array2::zeros((7, d + 1)).view())
            .unwrap();
        let e = ln
            .backward(&other_cache, Array2::zeros((7, d + 1)).view(), &mut g)
            .unwrap_err();
        assert!(e.to_string().contains("LayerNorm::backward cache"), "{e}");
        assert_eq!(g, before);

        let mut wrong = LayerNorm::new(d + 1).zeros_like();
        let e = ln.backward(&cache, dy.view(), &mut wrong).unwrap_err();
        assert!(e.to_string().contains("LayerNorm::backward grads"), "{e}");
        assert_eq!(wrong, LayerNorm::new(d + 1).zeros_like());
    }
}

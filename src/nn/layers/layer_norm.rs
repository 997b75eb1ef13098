//! `LayerNorm` over the last axis (PyTorch's `nn.LayerNorm(d)`: biased variance, eps = 1e-5).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use crate::error::{Error, Result};
#[cfg(target_arch = "x86_64")]
use crate::nn::kernels::avx2_fma;
use crate::nn::kernels::{dispatch, Impl};
use crate::nn::layers::{check_width, children, Layer};
use crate::tt::pool;

pub use crate::nn::kernels::ln::LN_EPS;

/// `y = (x − mean) / sqrt(var + eps) · weight + bias`, per row, with `weight, bias: [d]`.
///
/// ```
/// use ndarray::array;
/// let ln = succulm::nn::layers::LayerNorm::new(2);
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
        check_width(x, self.dim(), "LayerNorm::forward")?;
        Ok(self.apply(x))
    }

    /// Forward without cache or checks (inference). `x: [rows, d] -> [rows, d]`.
    pub(crate) fn apply(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        self.run(x, false).0
    }

    /// LayerNorm of the rows of `x: [rows, d]` (not checked), with the cache when `cache`.
    fn run(&self, x: ArrayView2<'_, f32>, cache: bool) -> (Array2<f32>, Option<LayerNormCache>) {
        let (rows, d) = x.dim();
        let x = x.as_standard_layout();
        let xs = x.as_slice().expect("standard layout");
        let n = rows * d;
        let shape = (rows, d);
        let mut y = pool::take(n);
        let cache = if cache {
            let mut xhat = pool::take(n);
            let mut rstd = vec![0.0f32; rows];
            forward_rows(
                xs,
                self.params(),
                pool::as_uninit(&mut y),
                Some((pool::as_uninit(&mut xhat), &mut rstd)),
            );
            Some(LayerNormCache {
                xhat: Array2::from_shape_vec(shape, xhat).expect("sized"),
                rstd: Array1::from_vec(rstd),
            })
        } else {
            forward_rows(xs, self.params(), pool::as_uninit(&mut y), None);
            None
        };
        (Array2::from_shape_vec(shape, y).expect("sized"), cache)
    }

    /// `(weight, bias)` as slices.
    fn params(&self) -> (&[f32], &[f32]) {
        (
            self.weight.as_slice().expect("contiguous"),
            self.bias.as_slice().expect("contiguous"),
        )
    }
}

/// `x: [rows, d] -> [rows, d]`; backward adds `dweight = Σ dy·xhat`, `dbias = Σ dy` and returns
/// `dx = rstd · (g − mean(g) − xhat · mean(g · xhat))` with `g = dy · weight`, `[rows, d]`.
impl Layer for LayerNorm {
    const NAME: &'static str = "LayerNorm";
    type Input<'a> = ArrayView2<'a, f32>;
    type Cache = LayerNormCache;
    type Dx = Array2<f32>;

    fn zeros_like(&self) -> Self {
        LayerNorm {
            weight: Array1::zeros(self.weight.raw_dim()),
            bias: Array1::zeros(self.bias.raw_dim()),
        }
    }

    fn check_input(&self, x: &ArrayView2<'_, f32>, context: &str) -> Result<()> {
        check_width(x.view(), self.dim(), context)
    }

    fn check_cache(&self, cache: &LayerNormCache, context: &str) -> Result<()> {
        let (rows, d) = cache.xhat.dim();
        if d != self.dim() {
            return Err(Error::shape(context, &[rows, self.dim()], &[rows, d]));
        }
        Ok(())
    }

    fn output_shape(&self, cache: &LayerNormCache) -> [usize; 2] {
        [cache.xhat.nrows(), self.dim()]
    }

    fn forward_unchecked(&self, x: ArrayView2<'_, f32>) -> (Array2<f32>, LayerNormCache) {
        let (y, cache) = self.run(x, true);
        (y, cache.expect("asked for"))
    }

    fn backward_unchecked(
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
}

children!(LayerNorm {
    weight: "weight",
    bias: "bias"
});

pub(crate) use crate::nn::kernels::ln::{BackwardIn, CacheOut, Out};

/// The build the layer runs.
const DEFAULT: Impl = Impl::Intrinsics;

/// LayerNorm of the rows of `xs: [rows, d]` with `(weight, bias): [d]`: writes all of
/// `y: [rows, d]` and, when given, of `(xhat: [rows, d], rstd: [rows])`.
fn forward_rows(xs: &[f32], wb: (&[f32], &[f32]), y: Out<'_>, cache: CacheOut<'_>) {
    forward_rows_impl(DEFAULT, xs, wb, y, cache)
}

/// [`forward_rows`] through the build `imp` (`Intrinsics` needs AVX2 + FMA and `d >= 8`,
/// otherwise it runs the portable code at the detected level).
pub(crate) fn forward_rows_impl(
    imp: Impl,
    xs: &[f32],
    wb: (&[f32], &[f32]),
    y: Out<'_>,
    cache: CacheOut<'_>,
) {
    let d = wb.0.len();
    assert!(wb.1.len() == d && xs.len() == y.len() && (d == 0 || xs.len() % d == 0));
    let rows = xs.len().checked_div(d).unwrap_or(0);
    if let Some((h, r)) = &cache {
        assert!(h.len() == xs.len() && r.len() == rows);
    }
    #[cfg(target_arch = "x86_64")]
    if imp == Impl::Intrinsics && d >= 8 && avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, d >= 8; the lengths were checked above.
        unsafe { crate::nn::kernels::layer_norm::forward_rows(xs, wb, y, cache) };
        return;
    }
    dispatch!(@at imp.portable_level(), portable::forward_rows, (xs, wb, y, cache))
}

/// LayerNorm backward on all rows: writes all of `dx: [rows, d]`, adds `Σ_rows dy·xhat` into
/// `gw: [d]` and `Σ_rows dy` into `gb: [d]`.
fn backward_rows(inp: BackwardIn<'_>, dx: Out<'_>, gw: &mut [f32], gb: &mut [f32]) {
    backward_rows_impl(DEFAULT, inp, dx, gw, gb)
}

/// [`backward_rows`] through the build `imp` (as [`forward_rows_impl`]).
pub(crate) fn backward_rows_impl(
    imp: Impl,
    inp: BackwardIn<'_>,
    dx: Out<'_>,
    gw: &mut [f32],
    gb: &mut [f32],
) {
    let d = inp.weight.len();
    let n = inp.dy.len();
    assert!(inp.xhat.len() == n && dx.len() == n && gw.len() == d && gb.len() == d);
    assert!(d == 0 || (n % d == 0 && inp.rstd.len() == n / d));
    if d == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if imp == Impl::Intrinsics && d >= 8 && avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, d >= 8; the lengths were checked above.
        unsafe { crate::nn::kernels::layer_norm::backward_rows(inp, dx, gw, gb) };
        return;
    }
    dispatch!(@at imp.portable_level(), portable::backward_rows, (inp, dx, gw, gb))
}

/// The plain loops (any CPU, vectorised by the compiler for each [`Level`](crate::nn::kernels::Level)); the same function
/// as the AVX2 kernels of `crate::nn::kernels::layer_norm` up to rounding.
mod portable {
    use super::{BackwardIn, CacheOut, Out, LN_EPS};
    use crate::nn::kernels;

    /// Mean and `1 / sqrt(var + eps)` of one row (biased variance, two passes).
    #[inline(always)]
    fn moments(x: &[f32]) -> (f32, f32) {
        let n = x.len() as f32;
        let mean = kernels::sum(x) / n;
        let var = kernels::sum_sq_dev(x, mean) / n;
        (mean, 1.0 / (var + LN_EPS).sqrt())
    }

    #[inline(always)]
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
            match &mut cache {
                Some((hs, rstd)) => {
                    let hr = &mut hs[r * d..(r + 1) * d];
                    let outs = yr.iter_mut().zip(hr.iter_mut());
                    for (((yk, hk), &x), (&wk, &bk)) in outs.zip(xr).zip(w.iter().zip(b)) {
                        let h = (x - mean) * rs;
                        hk.write(h);
                        yk.write(h * wk + bk);
                    }
                    rstd[r] = rs;
                }
                None => {
                    for ((yk, &x), (&wk, &bk)) in yr.iter_mut().zip(xr).zip(w.iter().zip(b)) {
                        yk.write((x - mean) * rs * wk + bk);
                    }
                }
            }
        }
    }

    #[inline(always)]
    pub(super) fn backward_rows(inp: BackwardIn<'_>, dx: Out<'_>, gw: &mut [f32], gb: &mut [f32]) {
        let w = inp.weight;
        let d = w.len();
        let n = d as f32;
        let rows = inp.dy.chunks_exact(d).zip(inp.xhat.chunks_exact(d));
        for ((dyr, hr), (dxr, &rs)) in rows.zip(dx.chunks_exact_mut(d).zip(inp.rstd)) {
            // g = dy · weight; mean(g) and mean(g · xhat).
            let mg = kernels::dot(dyr, w) / n;
            let mgh = kernels::dot3(dyr, w, hr) / n;
            for ((gwk, gbk), (&dyk, &hk)) in
                gw.iter_mut().zip(gb.iter_mut()).zip(dyr.iter().zip(hr))
            {
                *gwk += dyk * hk;
                *gbk += dyk;
            }
            for ((dxk, &dyk), (&hk, &wk)) in dxr.iter_mut().zip(dyr).zip(hr.iter().zip(w)) {
                dxk.write(rs * (dyk * wk - mg - hk * mgh));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::mem::MaybeUninit;

    const EPS: f64 = f32::EPSILON as f64;

    /// Every build of the kernels this CPU runs: the intrinsics (AVX2 + FMA, `d >= 8`) where
    /// it has them, and the portable loops at each level (always the baseline).
    fn paths() -> Vec<Impl> {
        crate::nn::kernels::impls()
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

    fn forward(path: Impl, ln: &LayerNorm, x: &Array2<f32>, cache: bool) -> Vec<Vec<f32>> {
        let (rows, d) = x.dim();
        let n = rows * d;
        let xs = x.as_slice().unwrap();
        // Garbage in the outputs, to see that every element is written.
        let mut y = vec![MaybeUninit::new(f32::NAN); n];
        let mut h = vec![MaybeUninit::new(f32::NAN); n];
        let mut r = vec![f32::NAN; rows];
        let c = cache.then_some((&mut h[..], &mut r[..]));
        forward_rows_impl(path, xs, ln.params(), &mut y, c);
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
                for path in paths() {
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
            for path in paths() {
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
                for path in paths() {
                    let (mut gw, mut gb) = (gw0.clone(), gb0.clone());
                    let mut dx = vec![MaybeUninit::new(f32::NAN); nrows * d];
                    let inp = BackwardIn {
                        dy: dy.as_slice().unwrap(),
                        xhat: cache.xhat.as_slice().unwrap(),
                        rstd: cache.rstd.as_slice().unwrap(),
                        weight: &w,
                    };
                    backward_rows_impl(path, inp, &mut dx, &mut gw, &mut gb);
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
        let out = forward(DEFAULT, &ln, &x, true);
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
        let (y0, cache0) = ln.forward_unchecked(x.view());
        assert_eq!(y, y0);
        assert_eq!(cache.xhat, cache0.xhat);
        assert_eq!(cache.rstd, cache0.rstd);
        let mut g = crate::nn::layers::assert_same_backward(&ln, &cache, &cache0, dy.view());

        let e = ln
            .forward_train(Array2::zeros((7, d + 1)).view())
            .unwrap_err();
        assert!(matches!(e, Error::Shape { .. }), "{e}");
        assert!(e.to_string().contains("LayerNorm::forward_train x"), "{e}");

        let before = g.clone();
        crate::nn::layers::assert_bad_dy_rejected(
            &ln,
            &cache,
            &mut g,
            &[(7, d + 1), (7, d - 1), (6, d), (8, d), (0, d)],
        );

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

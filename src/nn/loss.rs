//! The training losses over the vocabulary, with `<PAD>` targets ignored, each fused with its
//! gradient:
//!
//! - [`cross_entropy`] (PyTorch's `nn.CrossEntropyLoss(ignore_index=0)`): the mean over real
//!   targets of `−log softmax(z)[y]`, computed with a stable log-softmax;
//! - [`distillation`]: the mean over real targets of `KL(p ‖ softmax(z))` against a teacher's
//!   probabilities `p`. The student's probabilities come from [`softmax`], so a teacher made by
//!   [`softmax`] of the same logits gives a gradient of exactly zero.

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};
#[cfg(target_arch = "x86_64")]
use crate::nn::kernels::avx2_fma;
use crate::nn::kernels::{self, dispatch, exp, Impl, Level};
use crate::text::vocab::PAD;

#[cfg(target_arch = "x86_64")]
use crate::nn::kernels::softmax as avx2;

/// Mean cross-entropy of `logits: [N, V]` against `targets: [N]` (`PAD` ignored) and its
/// gradient `dlogits: [N, V]` (zero on ignored rows).
///
/// Errors if the lengths differ, a target is `>= V`, or no target is real.
///
/// ```
/// use ndarray::array;
/// // Two equal logits: loss ln 2 for the real target; the PAD row is ignored.
/// let (loss, g) = succulm::nn::loss::cross_entropy(array![[0.0, 0.0], [5.0, 1.0]].view(), &[1, 0])?;
/// assert!((loss - 2f32.ln()).abs() < 1e-6);
/// assert_eq!(g.row(1).to_vec(), vec![0.0, 0.0]);
/// assert!((g[[0, 1]] + 0.5).abs() < 1e-6);
/// # Ok::<(), succulm::Error>(())
/// ```
pub fn cross_entropy(logits: ArrayView2<'_, f32>, targets: &[u32]) -> Result<(f32, Array2<f32>)> {
    let (n, v) = logits.dim();
    let count = check_targets(targets, n, v, "cross_entropy targets")?;
    let mut g = logits.as_standard_layout().into_owned();
    let sum = cross_entropy_in_place(&mut g, targets, 1.0 / count as f32);
    Ok(((sum / count as f64) as f32, g))
}

/// Checks `targets` for `n` rows of `v` logits (the length, every id `< v`, at least one real
/// target); returns the number of real targets. `what` names them in the shape error.
fn check_targets(targets: &[u32], n: usize, v: usize, what: &str) -> Result<usize> {
    if targets.len() != n {
        return Err(Error::shape(what, &[n], &[targets.len()]));
    }
    if let Some((i, &t)) = targets.iter().enumerate().find(|(_, &t)| t as usize >= v) {
        return Err(Error::TokenOutOfRange {
            id: t,
            context: format!("targets[{i}]"),
            vocab_size: v,
        });
    }
    let count = count_real(targets);
    if count == 0 {
        return Err(Error::invalid_arg("targets", "every target is <PAD>"));
    }
    Ok(count)
}

/// Number of non-PAD targets.
pub(crate) fn count_real(targets: &[u32]) -> usize {
    targets.iter().filter(|&&t| t != PAD).count()
}

/// Replaces `logits: [N, V]` by `scale · d(Σ losses)/dlogits` and returns `Σ losses` over the
/// non-PAD rows (targets must be `< V`).
pub(crate) fn cross_entropy_in_place(logits: &mut Array2<f32>, targets: &[u32], scale: f32) -> f64 {
    if !logits.is_standard_layout() {
        *logits = logits.as_standard_layout().into_owned();
    }
    let v = logits.ncols();
    let data = logits.as_slice_mut().expect("standard layout");
    rows_in_place(data, v, targets, scale, true)
}

/// [`cross_entropy_in_place`] on the row-major `data: [N, v]`; `simd` allows the AVX2 + FMA
/// kernels (when the CPU has them and `v >= 8`), otherwise the portable loops (at the
/// detected level).
fn rows_in_place(data: &mut [f32], v: usize, targets: &[u32], scale: f32, simd: bool) -> f64 {
    let imp = if simd {
        Impl::Intrinsics
    } else {
        Impl::Portable(Level::detected())
    };
    rows_in_place_impl(imp, data, v, targets, scale)
}

/// [`rows_in_place`] through the build `imp` (`Intrinsics` needs AVX2 + FMA and `v >= 8`,
/// otherwise it runs the portable loops at the detected level).
pub(crate) fn rows_in_place_impl(
    imp: Impl,
    data: &mut [f32],
    v: usize,
    targets: &[u32],
    scale: f32,
) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if imp == Impl::Intrinsics && use_simd(v, true) {
        return target_rows(data, v, targets, scale, |r, t| {
            // SAFETY: the CPU has AVX2 and FMA; the row has at least 8 values; t < v.
            unsafe {
                let (zt, sum) = avx2::softmax_row(r, t);
                avx2::scale_row(r, scale / sum);
                (sum.ln() - zt) as f64
            }
        });
    }
    dispatch!(@at imp.portable_level(), portable_rows, (data, v, targets, scale))
}

/// The portable cross-entropy rows of [`rows_in_place`].
#[inline(always)]
fn portable_rows(data: &mut [f32], v: usize, targets: &[u32], scale: f32) -> f64 {
    target_rows(data, v, targets, scale, |r, t| {
        // −log softmax[t] = log Σ exp(z − max) − (z_t − max)
        let max = kernels::max(r);
        let zt = r[t] - max;
        r.iter_mut().for_each(|x| *x = exp(*x - max));
        let sum = kernels::sum(r);
        let k = scale / sum;
        r.iter_mut().for_each(|x| *x *= k);
        (sum.ln() - zt) as f64
    })
}

/// The row loop of both builds of [`rows_in_place_impl`] on `data: [N, v]`: a PAD row becomes
/// zeros; any other row `r` with target `t` goes through `softmax_scaled(r, t)`, which makes it
/// `scale · softmax(r)` and returns `−log softmax(r)[t]`, and then loses `scale` at `t`.
/// Returns the sum of the returned losses.
#[inline(always)]
fn target_rows(
    data: &mut [f32],
    v: usize,
    targets: &[u32],
    scale: f32,
    mut softmax_scaled: impl FnMut(&mut [f32], usize) -> f64,
) -> f64 {
    let mut total = 0.0f64;
    for (r, &t) in data.chunks_exact_mut(v.max(1)).zip(targets) {
        if t == PAD {
            r.fill(0.0);
            continue;
        }
        let t = t as usize;
        total += softmax_scaled(r, t);
        r[t] -= scale;
    }
    total
}

/// Softmax of every row of the row-major `data: [N, v]` through the build `imp` (as
/// [`rows_in_place_impl`]).
pub(crate) fn softmax_rows_impl(imp: Impl, data: &mut [f32], v: usize) {
    let simd = imp == Impl::Intrinsics && use_simd(v, true);
    if simd {
        for r in data.chunks_exact_mut(v.max(1)) {
            softmax_row(r, true);
        }
        return;
    }
    dispatch!(@at imp.portable_level(), portable_softmax_rows, (data, v))
}

/// The portable rows of [`softmax_rows_impl`].
#[inline(always)]
fn portable_softmax_rows(data: &mut [f32], v: usize) {
    for r in data.chunks_exact_mut(v.max(1)) {
        softmax_row(r, false);
    }
}

/// Largest accepted `|Σ_v p_v − 1|` of a teacher row (summed in f64): loose enough for
/// probabilities rounded to f32 (or coarser), tight enough that `(q − p)` is the gradient of
/// the KL to that precision.
pub const TEACHER_SUM_TOLERANCE: f64 = 1e-3;

/// `softmax(z)` of every row of `logits: [N, V]`, computed by the same code as the student's
/// side of [`distillation`]: `distillation(z, softmax(z), targets)` has a gradient of exactly
/// zero (bit for bit), whatever the rounding.
///
/// ```
/// use ndarray::array;
/// let z = array![[0.0f32, 2.0f32.ln()], [1.0, -3.0]];
/// let p = succulm::nn::loss::softmax(z.view());
/// assert!((p[[0, 1]] - 2.0 / 3.0).abs() < 1e-6);
/// let (kl, g) = succulm::nn::loss::distillation(z.view(), p.view(), &[1, 1])?;
/// assert!(kl.abs() < 1e-6);
/// assert!(g.iter().all(|&x| x == 0.0));
/// # Ok::<(), succulm::Error>(())
/// ```
pub fn softmax(logits: ArrayView2<'_, f32>) -> Array2<f32> {
    let mut p = logits.as_standard_layout().into_owned();
    softmax_in_place(&mut p);
    p
}

/// Replaces every row of `logits: [N, V]` by its softmax (see [`softmax`]).
pub(crate) fn softmax_in_place(logits: &mut Array2<f32>) {
    if !logits.is_standard_layout() {
        *logits = logits.as_standard_layout().into_owned();
    }
    let v = logits.ncols();
    let data = logits.as_slice_mut().expect("standard layout");
    let simd = use_simd(v, true);
    for r in data.chunks_exact_mut(v.max(1)) {
        softmax_row(r, simd);
    }
}

/// Mean over the rows whose target is not `PAD` of `KL(p ‖ q) = Σ_v p_v (ln p_v − ln q_v)`,
/// `q = softmax(logits)` (terms with `p_v = 0` are 0), and its gradient `(q − p) / count`
/// (zero on `PAD` rows). `logits`, `teacher_probs: [N, V]`, `targets: [N]` (only their `PAD`
/// mask is used: the teacher's distribution replaces the label).
///
/// Errors if the shapes differ, a target is `>= V`, no target is real, or a real row of
/// `teacher_probs` has a value that is not finite or is negative, or does not sum to 1 within
/// [`TEACHER_SUM_TOLERANCE`]. Rows with a `PAD` target are not read.
///
/// ```
/// use ndarray::array;
/// // q = (1/2, 1/2) against p = (1, 0): KL = ln 2, gradient q − p; the PAD row is ignored.
/// let z = array![[0.0f32, 0.0], [5.0, 1.0]];
/// let p = array![[1.0f32, 0.0], [f32::NAN, 7.0]];
/// let (kl, g) = succulm::nn::loss::distillation(z.view(), p.view(), &[1, 0])?;
/// assert!((kl - 2f32.ln()).abs() < 1e-6);
/// assert_eq!(g.row(0).to_vec(), vec![-0.5, 0.5]);
/// assert_eq!(g.row(1).to_vec(), vec![0.0, 0.0]);
/// # Ok::<(), succulm::Error>(())
/// ```
pub fn distillation(
    logits: ArrayView2<'_, f32>,
    teacher_probs: ArrayView2<'_, f32>,
    targets: &[u32],
) -> Result<(f32, Array2<f32>)> {
    let (n, v) = logits.dim();
    Error::check_shape("distillation teacher_probs", &[n, v], teacher_probs.shape())?;
    let count = check_targets(targets, n, v, "distillation targets")?;
    let p = teacher_probs.as_standard_layout();
    let p = p.as_slice().expect("standard layout");
    check_teacher(p, v, targets, |i| format!("teacher_probs row {i}"))?;
    let mut g = logits.as_standard_layout().into_owned();
    let sum = distillation_in_place(&mut g, p, targets, 1.0 / count as f32);
    Ok(((sum / count as f64) as f32, g))
}

/// Checks the teacher rows `p: [N, v]` (row-major) whose target is not `PAD`: every value
/// finite and `>= 0`, each row summing to 1 within [`TEACHER_SUM_TOLERANCE`]. `name(i)` names
/// row `i` in the error.
pub(crate) fn check_teacher(
    p: &[f32],
    v: usize,
    targets: &[u32],
    name: impl Fn(usize) -> String,
) -> Result<()> {
    for (i, (row, &t)) in p.chunks_exact(v.max(1)).zip(targets).enumerate() {
        if t == PAD {
            continue;
        }
        if let Some((j, &x)) = row
            .iter()
            .enumerate()
            .find(|(_, x)| !(x.is_finite() && **x >= 0.0))
        {
            return Err(Error::invalid_arg(
                name(i),
                format!("probability {x} at token {j} is not finite and >= 0"),
            ));
        }
        let sum: f64 = row.iter().map(|&x| x as f64).sum();
        if (sum - 1.0).abs() > TEACHER_SUM_TOLERANCE {
            return Err(Error::invalid_arg(
                name(i),
                format!("probabilities sum to {sum}, not 1 (tolerance {TEACHER_SUM_TOLERANCE})"),
            ));
        }
    }
    Ok(())
}

/// Replaces `logits: [N, V]` by `scale · d(Σ KL)/dlogits = scale · (q − p)` and returns `Σ KL`
/// over the non-PAD rows, against the teacher rows `teacher: [N, V]` (row-major; checked by
/// the caller).
pub(crate) fn distillation_in_place(
    logits: &mut Array2<f32>,
    teacher: &[f32],
    targets: &[u32],
    scale: f32,
) -> f64 {
    if !logits.is_standard_layout() {
        *logits = logits.as_standard_layout().into_owned();
    }
    let v = logits.ncols();
    let data = logits.as_slice_mut().expect("standard layout");
    distill_rows_in_place(data, teacher, v, targets, scale, true)
}

/// [`distillation_in_place`] on the row-major `data: [N, v]`; `simd` as in [`rows_in_place`].
fn distill_rows_in_place(
    data: &mut [f32],
    teacher: &[f32],
    v: usize,
    targets: &[u32],
    scale: f32,
    simd: bool,
) -> f64 {
    let simd = use_simd(v, simd);
    let mut total = 0.0f64;
    let rows = data
        .chunks_exact_mut(v.max(1))
        .zip(teacher.chunks_exact(v.max(1)));
    for ((z, p), &t) in rows.zip(targets) {
        if t == PAD {
            z.fill(0.0);
            continue;
        }
        // With m = max z and s = Σ exp(z − m): ln q_v = (z_v − m) − ln s, so
        // KL = Σ p ln p − Σ p (z − m) + (Σ p) ln s, summed in f64 over p_v > 0.
        let m = z.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x)) as f64;
        let (mut p_ln_p, mut p_z, mut mass) = (0.0f64, 0.0f64, 0.0f64);
        for (&zv, &pv) in z.iter().zip(p) {
            if pv > 0.0 {
                let pv = pv as f64;
                p_ln_p += pv * pv.ln();
                p_z += pv * (zv as f64 - m);
                mass += pv;
            }
        }
        let s = softmax_row(z, simd);
        total += p_ln_p - p_z + mass * (s as f64).ln();
        // q − p, with q from the same `softmax_row` that made a self-made teacher: exactly 0
        // where they agree.
        z.iter_mut()
            .zip(p)
            .for_each(|(q, &pv)| *q = (*q - pv) * scale);
    }
    total
}

/// Replaces the row `z` by `softmax(z)`, as `exp(z − max z) · (1 / s)`; returns
/// `s = Σ exp(z − max z)`. `simd` must come from [`use_simd`].
#[inline(always)]
fn softmax_row(z: &mut [f32], simd: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `use_simd` checked that the CPU has AVX2 and FMA and the row has >= 8 values.
        unsafe {
            let (_, s) = avx2::softmax_row(z, 0);
            avx2::scale_row(z, 1.0 / s);
            return s;
        }
    }
    let _ = simd;
    let max = kernels::max(z);
    z.iter_mut().for_each(|x| *x = exp(*x - max));
    let s = kernels::sum(z);
    let k = 1.0 / s;
    z.iter_mut().for_each(|x| *x *= k);
    s
}

/// Whether the AVX2 + FMA row kernels are used for rows of `v` values: if `allowed`, the CPU
/// has them and `v >= 8`.
#[cfg(target_arch = "x86_64")]
fn use_simd(v: usize, allowed: bool) -> bool {
    allowed && v >= 8 && avx2_fma()
}

/// Without x86_64 there are only the plain loops.
#[cfg(not(target_arch = "x86_64"))]
fn use_simd(_: usize, _: bool) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const EPS: f64 = f32::EPSILON as f64;

    /// `(Σ losses, scale · gradient)` in f64.
    fn reference(z: &[f32], v: usize, targets: &[u32], scale: f64) -> (f64, Vec<f64>) {
        let mut total = 0.0;
        let mut g = vec![0.0f64; z.len()];
        for ((r, gr), &t) in z.chunks(v).zip(g.chunks_mut(v)).zip(targets) {
            if t == PAD {
                continue;
            }
            let max = r.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
            let sum: f64 = r.iter().map(|&x| (x as f64 - max).exp()).sum();
            total += sum.ln() - (r[t as usize] as f64 - max);
            for (gk, &x) in gr.iter_mut().zip(r) {
                *gk = scale * (x as f64 - max).exp() / sum;
            }
            gr[t as usize] -= scale;
        }
        (total, g)
    }

    #[test]
    fn matches_f64_reference_on_both_paths() {
        let mut rng = StdRng::seed_from_u64(21);
        for v in [1usize, 2, 7, 8, 9, 50, 64, 156] {
            for rows in [1usize, 4, 29, 116] {
                // Row kinds: ordinary, constant (uniform softmax), large magnitudes (some
                // probabilities underflow), a large common offset.
                let z = logit_rows(rows, v, &mut rng);
                let targets: Vec<u32> = (0..rows)
                    .map(|i| {
                        if i % 3 == 2 {
                            PAD
                        } else {
                            rng.gen_range(0..v as u32)
                        }
                    })
                    .collect();
                let scale = 0.25f32;
                let (want_sum, want_g) = reference(&z, v, &targets, scale as f64);
                for simd in kernels::impls() {
                    let mut g = z.clone();
                    let sum = rows_in_place_impl(simd, &mut g, v, &targets, scale);
                    // log Σ exp(z − max) to a few ulps of the row's loss magnitude, per row.
                    let tol = rows as f64 * 8.0 * EPS * (1.0 + want_sum.abs());
                    assert!(
                        (sum - want_sum).abs() <= tol,
                        "v={v} rows={rows} simd={simd:?}: loss {sum} vs {want_sum}"
                    );
                    for (i, (&got, &want)) in g.iter().zip(&want_g).enumerate() {
                        let t = (i / v, i % v);
                        // Probabilities to a few ulps (relative), plus a few ulps of the scale
                        // where the target's 1 is subtracted.
                        let tol = 4.0 * v as f64 * EPS * want.abs() + 4.0 * EPS * scale as f64;
                        assert!(
                            (got as f64 - want).abs() <= tol + 1e-37,
                            "v={v} rows={rows} simd={simd:?} {t:?}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn gradient_rows_sum_to_zero_and_pad_rows_are_zero() {
        let mut rng = StdRng::seed_from_u64(4);
        let (rows, v) = (29, 156);
        let logits = Array2::from_shape_simple_fn((rows, v), || rng.gen_range(-6.0f32..6.0));
        let targets: Vec<u32> = (0..rows as u32).map(|i| i % 5).collect();
        let (loss, g) = cross_entropy(logits.view(), &targets).unwrap();
        assert!(loss.is_finite() && loss > 0.0);
        for (r, &t) in g.rows().into_iter().zip(&targets) {
            if t == PAD {
                assert!(r.iter().all(|&x| x == 0.0));
            } else {
                // Σ_j (p_j − [j = t]) = 0.
                assert!(r.sum().abs() < 1e-6, "{}", r.sum());
            }
        }
        // A column-major view gives the same result.
        let lt = logits.t().as_standard_layout().into_owned();
        assert!(!lt.t().is_standard_layout());
        let (loss2, g2) = cross_entropy(lt.t(), &targets).unwrap();
        assert_eq!(loss, loss2);
        assert_eq!(g, g2);
    }

    /// Rows of the kinds `matches_f64_reference_on_both_paths` uses: ordinary, constant, large
    /// magnitudes (some probabilities underflow), a large common offset.
    fn logit_rows(rows: usize, v: usize, rng: &mut StdRng) -> Vec<f32> {
        let mut z = vec![0.0f32; rows * v];
        for (i, r) in z.chunks_mut(v).enumerate() {
            let (offset, spread) = match i % 4 {
                0 => (0.0, 4.0),
                1 => (rng.gen_range(-5.0..5.0), 0.0),
                2 => (0.0, 200.0),
                _ => (1.0e4, 3.0),
            };
            for x in r.iter_mut() {
                *x = offset + spread * rng.gen_range(-1.0f32..1.0);
            }
        }
        z
    }

    /// A teacher row: the f64 softmax of random logits, rounded to f32, with every third value
    /// (and the underflowed ones) exactly 0.
    fn teacher_row(v: usize, rng: &mut StdRng) -> Vec<f32> {
        let z: Vec<f64> = (0..v).map(|_| rng.gen_range(-8.0..8.0)).collect();
        let e: Vec<f64> = z
            .iter()
            .enumerate()
            .map(|(j, &x)| if j % 3 == 1 { 0.0 } else { x.exp() })
            .collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|&x| (x / s) as f32).collect()
    }

    #[test]
    fn distillation_matches_f64_reference_on_both_paths() {
        let mut rng = StdRng::seed_from_u64(22);
        for v in [2usize, 7, 8, 9, 50, 156] {
            for rows in [1usize, 4, 29] {
                let z = logit_rows(rows, v, &mut rng);
                let p: Vec<f32> = (0..rows).flat_map(|_| teacher_row(v, &mut rng)).collect();
                let targets: Vec<u32> = (0..rows)
                    .map(|i| if i % 3 == 2 { PAD } else { 1 })
                    .collect();
                let scale = 0.25f32;
                // f64 reference: KL = Σ_{p > 0} p (ln p − log_softmax(z)), gradient scale (q − p).
                let (mut want_sum, mut want_g) = (0.0f64, vec![0.0f64; rows * v]);
                for (i, &t) in targets.iter().enumerate() {
                    if t == PAD {
                        continue;
                    }
                    let (zr, pr) = (&z[i * v..(i + 1) * v], &p[i * v..(i + 1) * v]);
                    let m = zr.iter().fold(f64::NEG_INFINITY, |a, &x| a.max(x as f64));
                    let lse = m + zr.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
                    for j in 0..v {
                        let (lq, pj) = (zr[j] as f64 - lse, pr[j] as f64);
                        if pj > 0.0 {
                            want_sum += pj * (pj.ln() - lq);
                        }
                        want_g[i * v + j] = scale as f64 * (lq.exp() - pj);
                    }
                }
                for simd in [true, false] {
                    let mut g = z.clone();
                    let sum = distill_rows_in_place(&mut g, &p, v, &targets, scale, simd);
                    // ln Σ exp to a few ulps per row (the rest is summed in f64).
                    let tol = rows as f64 * 8.0 * v as f64 * EPS;
                    assert!(
                        (sum - want_sum).abs() <= tol,
                        "v={v} rows={rows} simd={simd}: KL {sum} vs {want_sum}"
                    );
                    for (i, (&got, &want)) in g.iter().zip(&want_g).enumerate() {
                        let (q, pj) = (want / scale as f64 + p[i] as f64, p[i] as f64);
                        // q to a few ulps (relative) plus the rounding of z − max in f32 (an
                        // absolute error in the exponent of ~ulp(|ln q|)), then one rounding each
                        // of q − p and · scale.
                        let rel = (4.0 * v as f64 + q.max(1e-300).ln().abs()) * EPS;
                        let tol = scale as f64 * (rel * q + 2.0 * EPS * (q + pj));
                        assert!(
                            (got as f64 - want).abs() <= tol + 1e-37,
                            "v={v} rows={rows} simd={simd} {:?}: {got} vs {want}",
                            (i / v, i % v)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn teacher_from_the_same_softmax_gives_exactly_zero_gradient() {
        let mut rng = StdRng::seed_from_u64(23);
        for v in [3usize, 8, 13, 156] {
            let rows = 12;
            let z = logit_rows(rows, v, &mut rng);
            let targets: Vec<u32> = (0..rows as u32).map(|i| i % 4).collect();
            for simd in [true, false] {
                let mut p = z.clone();
                let fast = use_simd(v, simd);
                p.chunks_exact_mut(v).for_each(|r| {
                    softmax_row(r, fast);
                });
                let mut g = z.clone();
                let kl = distill_rows_in_place(&mut g, &p, v, &targets, 0.5, simd);
                assert!(g.iter().all(|&x| x == 0.0), "v={v} simd={simd}");
                // The value is a sum of rounding errors.
                assert!(kl.abs() < 1e-5 * rows as f64, "v={v} simd={simd}: {kl}");
            }
        }
        // The public pair agrees.
        let z = Array2::from_shape_vec((12, 156), logit_rows(12, 156, &mut rng)).unwrap();
        let targets: Vec<u32> = (0..12).map(|i| i % 4).collect();
        let (_, g) = distillation(z.view(), softmax(z.view()).view(), &targets).unwrap();
        assert!(g.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn distillation_checks_its_inputs() {
        let z = Array2::<f32>::zeros((2, 3));
        let p = Array2::from_elem((2, 3), 1.0f32 / 3.0);
        assert!(distillation(z.view(), p.view(), &[1, 2]).is_ok());
        let shape = |r: Result<(f32, Array2<f32>)>| matches!(r, Err(Error::Shape { .. }));
        assert!(shape(distillation(
            z.view(),
            Array2::<f32>::zeros((2, 4)).view(),
            &[1, 2]
        )));
        assert!(shape(distillation(z.view(), p.view(), &[1])));
        assert!(matches!(
            distillation(z.view(), p.view(), &[1, 3]),
            Err(Error::TokenOutOfRange { id: 3, .. })
        ));
        assert!(distillation(z.view(), p.view(), &[PAD, PAD]).is_err());
        let bad = |x: f32, at: [usize; 2]| {
            let mut q = p.clone();
            q[at] = x;
            match distillation(z.view(), q.view(), &[1, 2]) {
                Err(Error::InvalidArgument { name, .. }) => name,
                other => panic!("{x}: {other:?}"),
            }
        };
        assert_eq!(bad(f32::NAN, [1, 0]), "teacher_probs row 1");
        assert_eq!(bad(f32::INFINITY, [0, 2]), "teacher_probs row 0");
        // Negative, even though the row still sums to 1.
        let mut q = p.clone();
        q[[0, 0]] = -0.5;
        q[[0, 1]] = 1.0;
        q[[0, 2]] = 0.5;
        assert!(distillation(z.view(), q.view(), &[1, 2]).is_err());
        // Sums off by more than the tolerance, on either side; within it, fine.
        assert_eq!(bad(0.3, [1, 1]), "teacher_probs row 1");
        assert_eq!(bad(0.34, [1, 1]), "teacher_probs row 1");
        let mut q = p.clone();
        q[[1, 1]] += 5e-4;
        assert!(distillation(z.view(), q.view(), &[1, 2]).is_ok());
        // A PAD row's teacher is not read.
        let mut q = p.clone();
        q.row_mut(1).fill(f32::NAN);
        assert!(distillation(z.view(), q.view(), &[1, PAD]).is_ok());
    }

    /// `exp` within 2.5e-7 relative of f64 on a fine grid: the portable `exp` at every level
    /// on every CPU, and the AVX2 `exp8` where the CPU has AVX2 + FMA (else said on stderr).
    #[test]
    fn exp_is_within_two_ulps_of_f64_on_every_build() {
        let xs: Vec<f32> = (0..=100_000).map(|i| -87.0 + i as f32 * 175.0e-5).collect();
        let check = |got: &[f32], what: &str| {
            for (&x, &e) in xs.iter().zip(got) {
                let want = (x as f64).exp();
                let rel = ((e as f64 - want) / want).abs();
                assert!(
                    rel < 2.5e-7,
                    "{what}: exp({x}) = {e}, want {want} (rel {rel:.1e})"
                );
            }
        };
        #[inline(always)]
        fn portable(xs: &[f32]) -> Vec<f32> {
            xs.iter().map(|&x| exp(x)).collect()
        }
        for level in Level::supported() {
            check(
                &dispatch!(@at level, portable, (&xs)),
                &format!("{level:?}"),
            );
        }
        #[cfg(target_arch = "x86_64")]
        if avx2_fma() {
            let mut out = vec![0.0f32; xs.len() / 8 * 8];
            for (c, o) in xs.chunks_exact(8).zip(out.chunks_exact_mut(8)) {
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                unsafe {
                    use std::arch::x86_64::*;
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn run(x: &[f32], out: &mut [f32]) {
                        _mm256_storeu_ps(out.as_mut_ptr(), avx2::exp8(_mm256_loadu_ps(x.as_ptr())));
                    }
                    run(c, o);
                }
            }
            check(&out, "avx2 exp8");
        } else {
            eprintln!("SKIPPED avx2 exp8: this CPU has no AVX2 + FMA; the portable exp ran");
        }
    }

    /// `softmax` rows through every build against the f64 softmax.
    #[test]
    fn softmax_rows_match_f64_on_every_build() {
        let mut rng = StdRng::seed_from_u64(24);
        for v in [1usize, 7, 8, 9, 156] {
            let rows = 13;
            let z = logit_rows(rows, v, &mut rng);
            for imp in kernels::impls() {
                let mut p = z.clone();
                softmax_rows_impl(imp, &mut p, v);
                for (zr, pr) in z.chunks_exact(v).zip(p.chunks_exact(v)) {
                    let m = zr.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
                    let s: f64 = zr.iter().map(|&x| (x as f64 - m).exp()).sum();
                    for (&x, &q) in zr.iter().zip(pr) {
                        let want = (x as f64 - m).exp() / s;
                        // `exp` floors arguments below −87.3 at about 1.2e-38 (see `kernels::exp`), not 0.
                        let tol = 4.0 * v as f64 * EPS * want + 1.3e-38;
                        assert!(
                            (q as f64 - want).abs() <= tol,
                            "{imp:?} v={v}: {q} vs {want}"
                        );
                    }
                }
            }
        }
    }
}

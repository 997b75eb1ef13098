//! Small numeric kernels shared by the layers: a branch-free `exp` (so that loops over it
//! vectorise), sums with vector-friendly summation, and the AVX2 dispatch that
//! compiles a loop nest once more for CPUs that have AVX2.
//!
//! None of these contracts a multiply and an add into an FMA, so the AVX2 build computes the
//! same values as the baseline build; summation orders differ from a naive left-to-right sum
//! only by f32 rounding.

/// Runs `f(args)` compiled for AVX2 when the CPU has it (same results: no FMA contraction),
/// otherwise the baseline build. `f` must be `#[inline(always)]` for the AVX2 build to reach
/// its loops.
macro_rules! dispatch {
    ($f:path, ($($a:expr),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
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
pub(crate) use dispatch;

/// `e^x` in f32 without branches: Cody–Waite reduction `x = n·ln2 + r`, `|r| ≤ ln2/2`, Cephes'
/// `expf` polynomial for `e^r` and `2^n` built from its bits. Relative error below 2e-7 (about
/// one ulp, as the vectorised SLEEF `exp` that PyTorch's CPU softmax uses). Arguments below
/// −87.3 return about 1.2e-38 instead of a subnormal; above 88 they saturate at `e^88`.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding it rounds to the nearest integer, kept in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.33, 88.0);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = (((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * (r * r)
        + r
        + 1.0;
    p * f32::from_bits(((ni + 127) << 23) as u32)
}

/// Sum with eight partial sums.
#[inline(always)]
pub(crate) fn sum(a: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for k in 0..chunks {
        for l in 0..8 {
            acc[l] += a[k * 8 + l];
        }
    }
    hsum(acc) + a[chunks * 8..].iter().sum::<f32>()
}

/// The sum of eight partial sums, pairwise.
#[inline(always)]
fn hsum(a: [f32; 8]) -> f32 {
    ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulps_of_libm() {
        let mut x = -87.0f32;
        while x <= 88.0 {
            let (got, want) = (exp(x), (x as f64).exp());
            let rel = ((got as f64 - want) / want).abs();
            assert!(
                rel < 2.5e-7,
                "exp({x}) = {got}, want {want} (rel {rel:.1e})"
            );
            x += 0.0137;
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1.2e-38 && exp(-1000.0) >= 0.0);
    }
}

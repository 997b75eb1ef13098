//! The AVX2 + FMA softmax rows of [`crate::nn::loss`] (cross-entropy, softmax, distillation); they
//! measured 3–4× faster than the portable loops (`benches/kernels.rs`). Their `exp` fuses
//! multiply-adds and their sums are blocked differently, so they differ from the portable
//! loops by f32 rounding (a few ulps; the loss tests bound both against f64).
//!
//! Row kernels for rows of at least 8 values: whole vectors and, if `8 ∤ len`, one
//! last vector at `len − 8`, overlapping the one before; it is loaded before the row is
//! overwritten, so its overlapping lanes get the same values again.

use std::arch::x86_64::*;

/// `e^x` on 8 lanes: [`crate::nn::kernels::exp`] (same reduction and polynomial) with FMAs.
#[inline(always)]
pub(crate) unsafe fn exp8(x: __m256) -> __m256 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0;
    let x = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(-87.33)),
        _mm256_set1_ps(88.0),
    );
    let magic = _mm256_set1_ps(MAGIC);
    let t = _mm256_fmadd_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E), magic);
    let n = _mm256_sub_ps(t, magic);
    let ni = _mm256_sub_epi32(
        _mm256_castps_si256(t),
        _mm256_set1_epi32(MAGIC.to_bits() as i32),
    );
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(1.987_569_2e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let p = _mm256_add_ps(
        _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r),
        _mm256_set1_ps(1.0),
    );
    let pow2n = _mm256_slli_epi32(_mm256_add_epi32(ni, _mm256_set1_epi32(127)), 23);
    _mm256_mul_ps(p, _mm256_castsi256_ps(pow2n))
}

/// The upper `len mod 8` lanes (the last vector's lanes not covered by the others).
#[inline(always)]
unsafe fn tail_mask(len: usize) -> __m256 {
    const M: [i32; 16] = [0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1];
    _mm256_castsi256_ps(_mm256_loadu_si256(M.as_ptr().add(len % 8) as *const __m256i))
}

/// Replaces the row `z` by `exp(z − max z)`; returns `(z[t] − max z, Σ exp(z − max z))`.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `z.len() >= 8`, `t < z.len()`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn softmax_row(z: &mut [f32], t: usize) -> (f32, f32) {
    let len = z.len();
    debug_assert!(len >= 8);
    let full = len / 8 * 8;
    let p = z.as_mut_ptr();
    let last = _mm256_loadu_ps(p.add(len - 8));
    let (mut m0, mut m1) = (last, last);
    let mut k = 0;
    while k + 16 <= full {
        m0 = _mm256_max_ps(m0, _mm256_loadu_ps(p.add(k)));
        m1 = _mm256_max_ps(m1, _mm256_loadu_ps(p.add(k + 8)));
        k += 16;
    }
    if k < full {
        m0 = _mm256_max_ps(m0, _mm256_loadu_ps(p.add(k)));
    }
    let m = _mm256_max_ps(m0, m1);
    let m = _mm256_max_ps(m, _mm256_permute2f128_ps(m, m, 1));
    let m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0b01_00_11_10));
    let m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0b10_11_00_01));
    let max = _mm256_cvtss_f32(m);
    let zt = z[t] - max;
    let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut k = 0;
    while k + 16 <= full {
        let e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(p.add(k)), m));
        let e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(p.add(k + 8)), m));
        _mm256_storeu_ps(p.add(k), e0);
        _mm256_storeu_ps(p.add(k + 8), e1);
        s0 = _mm256_add_ps(s0, e0);
        s1 = _mm256_add_ps(s1, e1);
        k += 16;
    }
    if k < full {
        let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p.add(k)), m));
        _mm256_storeu_ps(p.add(k), e);
        s0 = _mm256_add_ps(s0, e);
    }
    if full < len {
        let e = exp8(_mm256_sub_ps(last, m));
        _mm256_storeu_ps(p.add(len - 8), e);
        s1 = _mm256_add_ps(s1, _mm256_and_ps(e, tail_mask(len)));
    }
    let s = _mm256_add_ps(s0, s1);
    let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    (zt, _mm_cvtss_f32(s))
}

/// `z *= k`.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `z.len() >= 8`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn scale_row(z: &mut [f32], k: f32) {
    let len = z.len();
    debug_assert!(len >= 8);
    let p = z.as_mut_ptr();
    let kv = _mm256_set1_ps(k);
    let last = _mm256_loadu_ps(p.add(len - 8));
    let mut i = 0;
    while i + 8 <= len {
        _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), kv));
        i += 8;
    }
    if i < len {
        _mm256_storeu_ps(p.add(len - 8), _mm256_mul_ps(last, kv));
    }
}

//! Eight f32 lanes for the attention core: one trait ([`Lanes`]) with an AVX2 + FMA
//! implementation ([`Avx2Fma`], on x86-64 CPUs that have both) and a portable one
//! ([`Portable`], plain arrays). The kernels are written once, generic over [`Lanes`], and
//! compiled for both; the AVX2 build differs from the portable one only by the rounding of
//! fused multiply-adds. The portable build is compiled once per [`crate::nn::kernels::Level`]
//! (`dispatch!`) for CPUs without AVX2 + FMA; on an AVX-512 Xeon the AVX2 lanes measured
//! 1.8–2.7× faster than the best portable level (`benches/kernels.rs`), so they stay.

/// Eight f32 values aligned as one AVX register (rows of the attention core's scratch).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[repr(C, align(32))]
pub(crate) struct F8(pub [f32; 8]);

/// Operations on eight f32 lanes. Implementors are zero-sized tokens; holding one proves the
/// CPU can run its instructions. Every method is `#[inline(always)]`, so a kernel generic over
/// `Lanes` compiles into straight-line vector code inside its (target-feature) entry point.
pub(crate) trait Lanes: Copy {
    /// A vector of eight lanes.
    type V: Copy;
    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::V;
    /// Lanes of `a`.
    fn load(self, a: &F8) -> Self::V;
    /// Writes the lanes into `a`.
    fn store(self, a: &mut F8, v: Self::V);
    /// Lanes of `a[..8]` (any alignment; panics if `a` is shorter).
    fn load_slice(self, a: &[f32]) -> Self::V;
    /// Writes the lanes into `a[..8]` (any alignment; panics if `a` is shorter).
    fn store_slice(self, a: &mut [f32], v: Self::V);
    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a − b`.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a · b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`.
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a · b + c` (one rounding where the CPU has FMA, two otherwise).
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lane-wise maximum (`b` where either is NaN).
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// Lane-wise minimum (`b` where either is NaN).
    fn min(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a` where lane `l ≥ k`, `0.0` below (`k ≤ 8`).
    fn keep_from(self, a: Self::V, k: usize) -> Self::V;
    /// `a` where lane `l ≥ k`, `b` below (`k ≤ 8`).
    fn select_from(self, a: Self::V, b: Self::V, k: usize) -> Self::V;
    /// `2^n` for lanes `t = n + 1.5·2^23` holding an integer `n` in `[−126, 127]`.
    fn pow2_magic(self, t: Self::V) -> Self::V;
    /// Rows become columns: `out[i]` lane `l` is `rows[l]` lane `i`.
    fn transpose(self, rows: [Self::V; 8]) -> [Self::V; 8];
    /// A hint to fetch the cache line holding `x` (no effect on results).
    fn prefetch<T>(self, x: &T);

    /// All lanes zero.
    #[inline(always)]
    fn zero(self) -> Self::V {
        self.splat(0.0)
    }

    /// `e^x` lane-wise: the same Cody–Waite reduction and Cephes polynomial as
    /// [`crate::nn::kernels::exp`] (relative error about one ulp), with multiply-adds fused where
    /// the CPU has FMA. Arguments below −87.3 give about 1.2e-38, not 0.
    #[inline(always)]
    fn exp(self, x: Self::V) -> Self::V {
        const LOG2E: f32 = std::f32::consts::LOG2_E;
        const LN2_HI: f32 = 0.693_359_4;
        const LN2_LO: f32 = -2.121_944_4e-4;
        const MAGIC: f32 = 12_582_912.0;
        let x = self.min(self.max(x, self.splat(-87.33)), self.splat(88.0));
        let t = self.mul_add(x, self.splat(LOG2E), self.splat(MAGIC));
        let n = self.sub(t, self.splat(MAGIC));
        let r = self.mul_add(n, self.splat(-LN2_HI), x);
        let r = self.mul_add(n, self.splat(-LN2_LO), r);
        let mut p = self.mul_add(self.splat(1.987_569_2e-4), r, self.splat(1.398_199_9e-3));
        p = self.mul_add(p, r, self.splat(8.333_452e-3));
        p = self.mul_add(p, r, self.splat(4.166_579_6e-2));
        p = self.mul_add(p, r, self.splat(1.666_666_5e-1));
        p = self.mul_add(p, r, self.splat(0.5));
        let e = self.add(self.mul_add(p, self.mul(r, r), r), self.splat(1.0));
        self.mul(e, self.pow2_magic(t))
    }
}

/// Plain arrays (the compiler vectorises what it can for the baseline target).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

#[inline(always)]
fn map2(a: [f32; 8], b: [f32; 8], f: impl Fn(f32, f32) -> f32) -> [f32; 8] {
    std::array::from_fn(|l| f(a[l], b[l]))
}

impl Lanes for Portable {
    type V = [f32; 8];
    #[inline(always)]
    fn splat(self, x: f32) -> [f32; 8] {
        [x; 8]
    }
    #[inline(always)]
    fn load(self, a: &F8) -> [f32; 8] {
        a.0
    }
    #[inline(always)]
    fn store(self, a: &mut F8, v: [f32; 8]) {
        a.0 = v;
    }
    #[inline(always)]
    fn load_slice(self, a: &[f32]) -> [f32; 8] {
        a[..8].try_into().expect("8 values")
    }
    #[inline(always)]
    fn store_slice(self, a: &mut [f32], v: [f32; 8]) {
        a[..8].copy_from_slice(&v);
    }
    #[inline(always)]
    fn add(self, a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        map2(a, b, |x, y| x + y)
    }
    #[inline(always)]
    fn sub(self, a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        map2(a, b, |x, y| x - y)
    }
    #[inline(always)]
    fn mul(self, a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        map2(a, b, |x, y| x * y)
    }
    #[inline(always)]
    fn div(self, a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        map2(a, b, |x, y| x / y)
    }
    #[inline(always)]
    fn mul_add(self, a: [f32; 8], b: [f32; 8], c: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|l| a[l] * b[l] + c[l])
    }
    #[inline(always)]
    fn max(self, a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        map2(a, b, |x, y| if x > y { x } else { y })
    }
    #[inline(always)]
    fn min(self, a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        map2(a, b, |x, y| if x < y { x } else { y })
    }
    #[inline(always)]
    fn keep_from(self, a: [f32; 8], k: usize) -> [f32; 8] {
        std::array::from_fn(|l| if l >= k { a[l] } else { 0.0 })
    }
    #[inline(always)]
    fn select_from(self, a: [f32; 8], b: [f32; 8], k: usize) -> [f32; 8] {
        std::array::from_fn(|l| if l >= k { a[l] } else { b[l] })
    }
    #[inline(always)]
    fn pow2_magic(self, t: [f32; 8]) -> [f32; 8] {
        let magic = 12_582_912.0f32.to_bits() as i32;
        t.map(|v| {
            let n = (v.to_bits() as i32).wrapping_sub(magic);
            f32::from_bits(((n + 127) << 23) as u32)
        })
    }
    /// The scalar [`crate::nn::kernels::exp`] in every lane (the same operations as the generic
    /// version without fused multiply-adds).
    #[inline(always)]
    fn exp(self, x: [f32; 8]) -> [f32; 8] {
        x.map(crate::nn::kernels::exp)
    }
    #[inline(always)]
    fn prefetch<T>(self, _: &T) {}
    #[inline(always)]
    fn transpose(self, rows: [[f32; 8]; 8]) -> [[f32; 8]; 8] {
        std::array::from_fn(|i| std::array::from_fn(|l| rows[l][i]))
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::Avx2Fma;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Lanes, F8};
    use std::arch::x86_64::*;

    /// AVX2 + FMA registers. Only [`Avx2Fma::detect`] makes one, on a CPU that has both.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Avx2Fma(());

    impl Avx2Fma {
        /// The token, if this CPU has AVX2 and FMA.
        pub(crate) fn detect() -> Option<Self> {
            (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
                .then_some(Avx2Fma(()))
        }
    }

    /// `MASKS.0[k]`: all bits set in lanes `l ≥ k`, clear below.
    #[repr(C, align(32))]
    struct Masks([[u32; 8]; 9]);
    static MASKS: Masks = {
        let mut m = [[0u32; 8]; 9];
        let mut k = 0;
        while k < 9 {
            let mut l = k;
            while l < 8 {
                m[k][l] = u32::MAX;
                l += 1;
            }
            k += 1;
        }
        Masks(m)
    };

    impl Avx2Fma {
        /// The mask of lanes `l ≥ k` (`k ≤ 8`).
        #[inline(always)]
        fn mask_from(self, k: usize) -> __m256 {
            let m = &MASKS.0[k];
            // SAFETY: as for every method below; `m` is 32 valid, 32-byte aligned bytes.
            unsafe { _mm256_castsi256_ps(_mm256_load_si256(m.as_ptr().cast())) }
        }
    }

    // SAFETY (every `unsafe` block below): an `Avx2Fma` exists only after `detect` saw AVX2
    // and FMA on this CPU; loads and stores go through `&F8`/`&mut F8` (valid, 32-byte
    // aligned) or through slices of exactly 8 values (unaligned instructions).
    impl Lanes for Avx2Fma {
        type V = __m256;
        #[inline(always)]
        fn splat(self, x: f32) -> __m256 {
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        fn load(self, a: &F8) -> __m256 {
            unsafe { _mm256_load_ps(a.0.as_ptr()) }
        }
        #[inline(always)]
        fn store(self, a: &mut F8, v: __m256) {
            unsafe { _mm256_store_ps(a.0.as_mut_ptr(), v) }
        }
        #[inline(always)]
        fn load_slice(self, a: &[f32]) -> __m256 {
            let a = &a[..8];
            unsafe { _mm256_loadu_ps(a.as_ptr()) }
        }
        #[inline(always)]
        fn store_slice(self, a: &mut [f32], v: __m256) {
            let a = &mut a[..8];
            unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) }
        }
        #[inline(always)]
        fn add(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_add_ps(a, b) }
        }
        #[inline(always)]
        fn sub(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_sub_ps(a, b) }
        }
        #[inline(always)]
        fn mul(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_mul_ps(a, b) }
        }
        #[inline(always)]
        fn div(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_div_ps(a, b) }
        }
        #[inline(always)]
        fn mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn max(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_max_ps(a, b) }
        }
        #[inline(always)]
        fn min(self, a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_min_ps(a, b) }
        }
        #[inline(always)]
        fn keep_from(self, a: __m256, k: usize) -> __m256 {
            unsafe { _mm256_and_ps(a, self.mask_from(k)) }
        }
        #[inline(always)]
        fn select_from(self, a: __m256, b: __m256, k: usize) -> __m256 {
            unsafe { _mm256_blendv_ps(b, a, self.mask_from(k)) }
        }
        #[inline(always)]
        fn pow2_magic(self, t: __m256) -> __m256 {
            unsafe {
                let bias = 127i32.wrapping_sub(12_582_912.0f32.to_bits() as i32);
                let n = _mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(bias));
                _mm256_castsi256_ps(_mm256_slli_epi32::<23>(n))
            }
        }
        #[inline(always)]
        fn prefetch<T>(self, x: &T) {
            unsafe { _mm_prefetch::<_MM_HINT_T0>((x as *const T).cast()) }
        }
        #[inline(always)]
        fn transpose(self, r: [__m256; 8]) -> [__m256; 8] {
            unsafe {
                let t0 = _mm256_unpacklo_ps(r[0], r[1]);
                let t1 = _mm256_unpackhi_ps(r[0], r[1]);
                let t2 = _mm256_unpacklo_ps(r[2], r[3]);
                let t3 = _mm256_unpackhi_ps(r[2], r[3]);
                let t4 = _mm256_unpacklo_ps(r[4], r[5]);
                let t5 = _mm256_unpackhi_ps(r[4], r[5]);
                let t6 = _mm256_unpacklo_ps(r[6], r[7]);
                let t7 = _mm256_unpackhi_ps(r[6], r[7]);
                let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                [
                    _mm256_permute2f128_ps::<0x20>(u0, u4),
                    _mm256_permute2f128_ps::<0x20>(u1, u5),
                    _mm256_permute2f128_ps::<0x20>(u2, u6),
                    _mm256_permute2f128_ps::<0x20>(u3, u7),
                    _mm256_permute2f128_ps::<0x31>(u0, u4),
                    _mm256_permute2f128_ps::<0x31>(u1, u5),
                    _mm256_permute2f128_ps::<0x31>(u2, u6),
                    _mm256_permute2f128_ps::<0x31>(u3, u7),
                ]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> [F8; 8] {
        std::array::from_fn(|r| F8(std::array::from_fn(|l| (r * 8 + l) as f32 * 0.37 - 9.0)))
    }

    /// Every operation of `l` against plain scalar arithmetic.
    #[inline(always)]
    fn check<L: Lanes>(l: L) {
        let rs = rows();
        let (a, b) = (l.load(&rs[1]), l.load(&rs[6]));
        let get = |v: L::V| {
            let mut f = F8::default();
            l.store(&mut f, v);
            f.0
        };
        let (x, y) = (rs[1].0, rs[6].0);
        for k in 0..8 {
            assert_eq!(get(l.add(a, b))[k], x[k] + y[k]);
            assert_eq!(get(l.sub(a, b))[k], x[k] - y[k]);
            assert_eq!(get(l.mul(a, b))[k], x[k] * y[k]);
            assert_eq!(get(l.div(a, b))[k], x[k] / y[k]);
            assert!((get(l.mul_add(a, b, a))[k] - (x[k] * y[k] + x[k])).abs() < 1e-4);
            assert_eq!(get(l.max(a, b))[k], x[k].max(y[k]));
            assert_eq!(get(l.min(a, b))[k], x[k].min(y[k]));
            assert_eq!(get(l.splat(2.5))[k], 2.5);
            for from in 0..=8 {
                let want = if k >= from { x[k] } else { 0.0 };
                assert_eq!(get(l.keep_from(a, from))[k], want);
                let want = if k >= from { x[k] } else { y[k] };
                assert_eq!(get(l.select_from(a, b, from))[k], want);
            }
        }
        let mut buf = [0.0f32; 11];
        l.store_slice(&mut buf[2..], a);
        assert_eq!(&buf[2..10], &x);
        assert_eq!(get(l.load_slice(&buf[2..])), x);
        let t = l.transpose(std::array::from_fn(|r| l.load(&rs[r])));
        for (i, v) in t.into_iter().enumerate() {
            for (k, &got) in get(v).iter().enumerate() {
                assert_eq!(got, rs[k].0[i]);
            }
        }
        let mut x = -90.0f32;
        while x < 88.0 {
            let e = get(l.exp(l.splat(x)))[3];
            let want = (x as f64).exp().max(1.1e-38);
            let rel = ((e as f64 - want) / want).abs();
            assert!(rel < 3e-7 || (x < -87.0 && e < 1.3e-38), "exp({x}) = {e}");
            x += 0.0173;
        }
        for p in [-126i32, -1, 0, 1, 127] {
            let t = l.splat(p as f32 + 12_582_912.0);
            assert_eq!(get(l.pow2_magic(t))[0], 2f32.powi(p));
        }
    }

    #[test]
    fn portable_lanes_compute_the_scalar_operations_at_every_level() {
        use crate::nn::kernels::{dispatch, Level};
        let levels = Level::supported();
        for &level in &levels {
            dispatch!(@at level, check, (Portable));
        }
        eprintln!("portable lanes checked at {levels:?}");
    }

    /// The AVX2 + FMA lanes where the CPU has them; elsewhere the test says so on stderr
    /// (the portable lanes are checked above on every CPU).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_lanes_compute_the_scalar_operations() {
        match Avx2Fma::detect() {
            Some(l) => check(l),
            None => eprintln!("SKIPPED: this CPU has no AVX2 + FMA; only the portable lanes ran"),
        }
    }
}

//! Small numeric kernels shared by the layers: a branch-free `exp` (so that loops over it
//! vectorise), dot products and sums with vector-friendly summation, and the run-time
//! dispatch ([`dispatch!`]) that compiles a portable loop nest twice more, for x86-64-v3
//! (AVX2 + FMA) and x86-64-v4 (AVX-512), and picks the widest build the CPU can run.
//!
//! The dispatched code is plain Rust: the compiler vectorises it for each level, but never
//! contracts a multiply and an add into an FMA nor reorders a sum, so **every level computes
//! the same bits** (square roots and divisions are correctly rounded at every width).
//!
//! The hand-written AVX2 + FMA kernels that remain live here too: [`layer_norm`] (LayerNorm
//! forward/backward), [`softmax`] (cross-entropy, softmax, distillation rows) and [`lanes`]
//! (the 8-lane operations the attention core is written over). Each measured ≥ 20% faster
//! than the dispatched portable code on an AVX-512 Xeon (`benches/kernels.rs`: 1.8–2.5× for
//! LayerNorm, 3–4× for the softmax rows, 1.8–2.7× for attention), so each stays; on a CPU
//! without AVX2 + FMA the portable code runs, dispatched to the widest level it has. On
//! AVX-512 CPUs they run as AVX2 (no 512-bit variant: the rows are 50–156 values).
//! **Which results differ between the intrinsics and the portable code**: only by f32
//! rounding, from FMA contraction and blocked summation — LayerNorm and softmax within a
//! few ulps per element (bounded against f64 in their tests: `4·d·ε` relative), the
//! attention core within `1e-5` of its f64 reference (relative to the largest value). Adam has no hand kernel: its
//! portable loop is dispatched and gives the same bits at every level.

use std::sync::atomic::{AtomicU8, Ordering};

pub(crate) mod lanes;
#[cfg(target_arch = "x86_64")]
pub(crate) mod layer_norm;
#[cfg(target_arch = "x86_64")]
pub(crate) mod softmax;

/// An x86-64 micro-architecture level the portable kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The build's own target (x86-64 baseline: SSE2), or any non-x86 CPU.
    Baseline,
    /// x86-64-v3: AVX, AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE.
    V3,
    /// x86-64-v4: v3 plus AVX-512 F, BW, CD, DQ and VL.
    V4,
}

/// Which build of a kernel to run (benches and tests compare them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Impl {
    /// The hand-written AVX2 + FMA intrinsics (only where the CPU has them).
    Intrinsics,
    /// The portable code compiled for this level (lowered to what the CPU has).
    Portable(Level),
}

impl Impl {
    /// The level the portable code runs at for this build: its own, or the detected one for
    /// `Intrinsics` (which falls back to the portable code where it cannot run).
    pub fn portable_level(self) -> Level {
        match self {
            Impl::Portable(l) => l,
            Impl::Intrinsics => Level::detected(),
        }
    }
}

/// True if the CPU has AVX2 and FMA (the detection is cached by `std`).
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// Runs `f` compiled with AVX2 and FMA (`f` must be `#[inline(always)]`, as with
/// [`dispatch!`], for its body to be compiled so).
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn with_avx2_fma<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// The builds to compare on this CPU: the intrinsics (if it has AVX2 + FMA), then the
/// portable code at every level it runs (always at least `Portable(Baseline)`).
pub fn impls() -> Vec<Impl> {
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        v.push(Impl::Intrinsics);
    }
    v.extend(Level::supported().into_iter().map(Impl::Portable));
    v
}

/// The detected level, `0` until first asked (then `1 + Level as u8`).
static DETECTED: AtomicU8 = AtomicU8::new(0);

impl Level {
    /// The widest level this CPU runs, detected once and cached.
    #[inline]
    pub fn detected() -> Level {
        match DETECTED.load(Ordering::Relaxed) {
            1 => Level::Baseline,
            2 => Level::V3,
            3 => Level::V4,
            _ => {
                let l = Level::detect();
                DETECTED.store(1 + l as u8, Ordering::Relaxed);
                l
            }
        }
    }

    /// Every level this CPU runs, narrowest first (always starts with `Baseline`).
    pub fn supported() -> Vec<Level> {
        [Level::Baseline, Level::V3, Level::V4]
            .into_iter()
            .filter(|&l| l <= Level::detected())
            .collect()
    }

    #[cfg(target_arch = "x86_64")]
    fn detect() -> Level {
        use std::arch::is_x86_feature_detected as has;
        let v3 = has!("avx")
            && has!("avx2")
            && has!("fma")
            && has!("bmi1")
            && has!("bmi2")
            && has!("f16c")
            && has!("lzcnt")
            && has!("movbe");
        let v4 = v3
            && has!("avx512f")
            && has!("avx512bw")
            && has!("avx512cd")
            && has!("avx512dq")
            && has!("avx512vl");
        if v4 {
            Level::V4
        } else if v3 {
            Level::V3
        } else {
            Level::Baseline
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn detect() -> Level {
        Level::Baseline
    }
}

/// Runs `f(args)` compiled for the widest [`Level`] the CPU has (`dispatch!(f, (a, b))`), or
/// for a chosen level, lowered to what the CPU has (`dispatch!(@at level, f, (a, b))`).
/// `f` must be `#[inline(always)]` for the wider builds to reach its loops. All levels give
/// the same bits (no FMA contraction, no reordering; see the module doc).
macro_rules! dispatch {
    ($f:path, ($($a:expr),* $(,)?)) => {
        $crate::nn::kernels::dispatch!(@at $crate::nn::kernels::Level::detected(), $f, ($($a),*))
    };
    (@at $level:expr, $f:path, ($($a:expr),* $(,)?)) => {{
        let level: $crate::nn::kernels::Level = $level;
        let level = level.min($crate::nn::kernels::Level::detected());
        #[cfg(target_arch = "x86_64")]
        {
            match level {
                $crate::nn::kernels::Level::V4 => {
                    #[target_feature(enable = "avx512f,avx512bw,avx512cd,avx512dq,avx512vl,avx,avx2,fma,bmi1,bmi2,f16c,lzcnt,movbe")]
                    #[inline]
                    unsafe fn v4<R>(f: impl FnOnce() -> R) -> R {
                        f()
                    }
                    // SAFETY: the CPU has every x86-64-v4 feature (`Level::detected`).
                    unsafe { v4(#[inline(always)] || $f($($a),*)) }
                }
                $crate::nn::kernels::Level::V3 => {
                    #[target_feature(enable = "avx,avx2,fma,bmi1,bmi2,f16c,lzcnt,movbe")]
                    #[inline]
                    unsafe fn v3<R>(f: impl FnOnce() -> R) -> R {
                        f()
                    }
                    // SAFETY: the CPU has every x86-64-v3 feature (`Level::detected`).
                    unsafe { v3(#[inline(always)] || $f($($a),*)) }
                }
                $crate::nn::kernels::Level::Baseline => $f($($a),*),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = level;
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

/// Dot product with eight partial sums (vectorises; differs from a plain sum only by rounding).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for k in 0..chunks {
        let (x, y) = (&a[k * 8..k * 8 + 8], &b[k * 8..k * 8 + 8]);
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = 0.0f32;
    for k in chunks * 8..n {
        s += a[k] * b[k];
    }
    hsum(acc) + s
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

/// `Σ (x − c)²` with eight partial sums.
#[inline(always)]
pub(crate) fn sum_sq_dev(a: &[f32], c: f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = a.chunks_exact(8);
    for x in &mut chunks {
        for l in 0..8 {
            let t = x[l] - c;
            acc[l] += t * t;
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&x| (x - c) * (x - c)).sum();
    hsum(acc) + tail
}

/// `Σ (a·b)·c` with eight partial sums (the slices must have equal lengths).
#[inline(always)]
pub(crate) fn dot3(a: &[f32], b: &[f32], c: &[f32]) -> f32 {
    let n = a.len().min(b.len()).min(c.len());
    let (a, b, c) = (&a[..n], &b[..n], &c[..n]);
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for k in 0..chunks {
        let (x, y, z) = (
            &a[k * 8..k * 8 + 8],
            &b[k * 8..k * 8 + 8],
            &c[k * 8..k * 8 + 8],
        );
        for l in 0..8 {
            acc[l] += x[l] * y[l] * z[l];
        }
    }
    let mut s = 0.0f32;
    for k in chunks * 8..n {
        s += a[k] * b[k] * c[k];
    }
    hsum(acc) + s
}

/// Maximum with eight partial maxima (`-inf` for an empty slice; NaNs are skipped as by
/// `f32::max`).
#[inline(always)]
pub(crate) fn max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut chunks = a.chunks_exact(8);
    for x in &mut chunks {
        for l in 0..8 {
            acc[l] = acc[l].max(x[l]);
        }
    }
    let m = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    acc.iter().fold(m, |m, &x| m.max(x))
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

    /// The portable sums at every level the CPU runs give the bits of the baseline build
    /// (no FMA contraction, no reordering), and the levels are detected consistently.
    #[test]
    fn every_level_gives_the_baseline_bits() {
        let levels = Level::supported();
        eprintln!("levels run on this CPU: {levels:?}");
        assert_eq!(levels[0], Level::Baseline);
        assert_eq!(*levels.last().unwrap(), Level::detected());
        let a: Vec<f32> = (0..203).map(|i| (i as f32 * 0.37).sin() * 1e3).collect();
        let b: Vec<f32> = (0..203).map(|i| (i as f32 * 0.11).cos()).collect();
        #[inline(always)]
        fn all(a: &[f32], b: &[f32]) -> [u32; 5] {
            [
                dot(a, b).to_bits(),
                sum(a).to_bits(),
                sum_sq_dev(a, 3.0).to_bits(),
                dot3(a, b, a).to_bits(),
                max(b).to_bits(),
            ]
        }
        let base = all(&a, &b);
        for l in levels {
            assert_eq!(dispatch!(@at l, all, (&a, &b)), base, "{l:?}");
        }
        // Asking for more than the CPU has runs what it has.
        assert_eq!(dispatch!(@at Level::V4, all, (&a, &b)), base);
    }

    #[test]
    fn dot_matches_f64() {
        let a: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..37).map(|i| (i as f32 * 0.11).cos()).collect();
        let d: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        assert!((dot(&a, &b) as f64 - d).abs() < 1e-5);
    }
}

/// The LayerNorm kernels' types, shared by the layer (`crate::nn::layers::layer_norm`) and its
/// AVX2 build (`kernels::layer_norm`).
pub(crate) mod ln {
    use std::mem::MaybeUninit;

    /// PyTorch's default `eps`.
    pub const LN_EPS: f32 = 1e-5;

    /// Uninitialised output elements, every one written by the kernel that receives them.
    pub(crate) type Out<'a> = &'a mut [MaybeUninit<f32>];

    /// The outputs `(xhat: [rows, d], rstd: [rows])` of a forward that keeps a cache.
    pub(crate) type CacheOut<'a> = Option<(Out<'a>, &'a mut [f32])>;

    /// The inputs of the LayerNorm backward (all row-major; `rows · d` elements, `rstd` `rows`).
    #[derive(Clone, Copy)]
    pub(crate) struct BackwardIn<'a> {
        pub(crate) dy: &'a [f32],
        pub(crate) xhat: &'a [f32],
        pub(crate) rstd: &'a [f32],
        pub(crate) weight: &'a [f32],
    }
}

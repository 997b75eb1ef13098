//! Dense products `C (+)= A · B (+ bias) (then an activation)`, through the [`gemm`] crate
//! (the kernels candle's CPU backend uses): it picks AVX-512, AVX2 + FMA or portable kernels
//! at run time, packs the operands as their sizes need, and reads `A`, `B` and `C` through any
//! strides. This module adds what a layer needs around the product: the bias (as the initial
//! contents of `C`, so the crate's accumulate mode adds the product to it), the ReLU, and the
//! ReLU's backward mask, as cheap passes over `C`.
//!
//! * Every element of `C` is one sum over `p = 0, 1, …, k−1`, blocked by `k` only (the block
//!   size depends on `k`, never on `m`), so a row gives the same bits whether it is computed
//!   alone or among others (tested), and the same for any split of the work across threads.
//! * Large products (≥ [`PARALLEL_MIN_MACS`] multiply-adds, inner dimension ≥
//!   [`PARALLEL_MIN_K`]) may be split across the crate's
//!   threads when [`set_threads`] allows it; the split is over output tiles, so the bits do not
//!   change with the thread count (tested).
//! * AVX-512 kernels are compiled in with this crate's `avx512` feature (on by default); build
//!   with `--no-default-features` to measure the AVX2 path on an AVX-512 machine.

use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::error::{Error, Result};

/// Products with at least this many multiply-adds (`m·n·k`) may use several threads (see
/// [`set_threads`]); smaller ones always run on the calling thread, where waking a thread would
/// cost more than it saves.
pub const PARALLEL_MIN_MACS: usize = 1 << 22;

/// ...and an inner dimension `k` of at least this. A product with a short inner dimension (a TT
/// contraction's last GEMM over a bond of 16) is bound by writing `C`, and the crate's threaded
/// split of it ran slower than one thread (768→3072 TT, bonds 16, 128 rows, Intel Xeon:
/// 354 µs on 2 threads against 245 µs on one; 220 µs on 2 threads with this rule).
pub const PARALLEL_MIN_K: usize = 64;

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Sets how many threads one large product may use (process-wide; default 1). The model's
/// data-parallel passes already split their work across threads, so only products that stand
/// alone (a big layer, a TT contraction of a big layer) gain from this. The results are the same
/// bits for any value.
///
/// ```
/// succulm_tt::gemm::set_threads(2);
/// assert_eq!(succulm_tt::gemm::threads(), 2);
/// succulm_tt::gemm::set_threads(1);
/// ```
pub fn set_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

/// How many threads one large product may use (see [`set_threads`]).
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    let t = threads();
    if t > 1 && k >= PARALLEL_MIN_K && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_MACS {
        gemm::Parallelism::Rayon(t)
    } else {
        gemm::Parallelism::None
    }
}

/// `C = A·B`, or `C += A·B` when `read_c`, for `A: [m, k]`, `B: [k, n]`, `C: [m, n]` by the
/// `gemm` crate, threaded by [`parallelism`]. Each operand is its first element and its
/// `(row, column)` strides in elements.
///
/// # Safety
/// Every `ptr + i·rs + j·cs` for in-range `i, j` must be inside its allocation, and `C` must
/// alias neither `A` nor `B`.
unsafe fn raw_gemm(
    (m, n, k): (usize, usize, usize),
    (c, c_rs, c_cs): (*mut f32, isize, isize),
    read_c: bool,
    (a, a_rs, a_cs): (*const f32, isize, isize),
    (b, b_rs, b_cs): (*const f32, isize, isize),
) {
    // SAFETY: as the caller promises.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            c_cs,
            c_rs,
            read_c,
            a,
            a_cs,
            a_rs,
            b,
            b_cs,
            b_rs,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism(m, n, k),
        )
    }
}

/// What to do with the existing contents of `C`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// `C = A·B (+ bias)`: the previous contents are ignored.
    Overwrite,
    /// `C += A·B (+ bias)`.
    Accumulate,
}

/// A matrix operand read through strides: element `(i, p)` is `data[i·rs + p·cs]`.
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub struct Strided<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Strided<'a> {
    /// A row-major `[rows, cols]` slice with leading dimension `ld`.
    pub fn rows(data: &'a [f32], ld: usize) -> Self {
        Strided {
            data,
            rs: ld,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with leading dimension `ld`: `(i, p) = data[p·ld + i]`.
    pub fn transposed(data: &'a [f32], ld: usize) -> Self {
        Strided {
            data,
            rs: 1,
            cs: ld,
        }
    }

    /// One past the largest index read for an `[m, k]` operand.
    fn extent(&self, m: usize, k: usize) -> usize {
        if m == 0 || k == 0 {
            0
        } else {
            (m - 1) * self.rs + (k - 1) * self.cs + 1
        }
    }
}

/// The shapes of one product `C[m, n] (+)= A[m, k] · B[k, n]`.
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub struct Dims {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// The activation applied to `C` after the product (and the bias).
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub enum Act<'a> {
    /// None: `C` is the sum (plus bias).
    Identity,
    /// `max(·, 0)`.
    Relu,
    /// The backward of a ReLU: `C(i, j)` is zeroed where the ReLU's output
    /// `gate[i·ld + j]` is `<= 0` (kept where it is positive or NaN, as `if h <= 0 { g = 0 }`).
    ReluGrad { gate: &'a [f32], ld: usize },
}

/// The output side of one product: `C: [m, n]` row-major with leading dimension `ld`, what
/// to do with its contents, and the bias (`[n]`) and activation applied to it.
#[derive(Debug)]
#[doc(hidden)]
pub struct Out<'a> {
    pub c: &'a mut [f32],
    pub ld: usize,
    pub write: Write,
    pub bias: Option<&'a [f32]>,
    pub act: Act<'a>,
}

impl<'a> Out<'a> {
    /// `C` with leading dimension `ld`, no bias, no activation.
    pub fn new(c: &'a mut [f32], ld: usize, write: Write) -> Self {
        Out {
            c,
            ld,
            write,
            bias: None,
            act: Act::Identity,
        }
    }

    /// Adds `bias: [n]` to every row.
    pub fn bias(self, bias: Option<&'a [f32]>) -> Self {
        Out { bias, ..self }
    }

    /// Applies `act` last.
    pub fn act(self, act: Act<'a>) -> Self {
        Out { act, ..self }
    }
}

/// `C (+)= A · B (+ bias)`, then the activation: `b: [k, n]` row-major with leading dimension
/// `ldb`, the output side as [`Out`] describes.
///
/// Panics if a slice is too short for the given dimensions (a programming error inside the
/// crate; public callers go through [`matmul_into`]).
#[doc(hidden)]
pub fn gemm(dims: Dims, a: Strided<'_>, b: &[f32], ldb: usize, out: Out<'_>) {
    let Dims { m, n, k } = dims;
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        ldb >= n && out.ld >= n,
        "gemm: leading dimensions too small"
    );
    assert!(a.data.len() >= a.extent(m, k), "gemm: A too short");
    assert!(k == 0 || b.len() >= (k - 1) * ldb + n, "gemm: B too short");
    assert!(out.c.len() >= (m - 1) * out.ld + n, "gemm: C too short");
    assert!(
        out.bias.map_or(true, |b| b.len() >= n),
        "gemm: bias too short"
    );
    if let Act::ReluGrad { gate, ld } = out.act {
        assert!(
            ld >= n && gate.len() >= (m - 1) * ld + n,
            "gemm: gate too short"
        );
    }
    let Out {
        c,
        ld,
        write,
        bias,
        act,
    } = out;
    let rows = |c: &mut [f32], f: &mut dyn FnMut(usize, &mut [f32])| {
        for i in 0..m {
            f(i, &mut c[i * ld..i * ld + n]);
        }
    };
    // The initial contents: the bias when overwriting (the product is then added to it).
    let read_c = match (write, bias) {
        (Write::Accumulate, _) => true,
        (Write::Overwrite, Some(bias)) => {
            rows(c, &mut |_, r| r.copy_from_slice(&bias[..n]));
            true
        }
        (Write::Overwrite, None) => {
            if k == 0 {
                rows(c, &mut |_, r| r.fill(0.0));
            }
            false
        }
    };
    if k > 0 {
        // SAFETY: every element the crate reads or writes is inside the slices (checked above:
        // rows < m, columns < n, p < k with the given strides), `C` does not alias `A` or `B`
        // (it is borrowed mutably), and the strides fit in `isize` (they index slices).
        unsafe {
            raw_gemm(
                (m, n, k),
                (c.as_mut_ptr(), ld as isize, 1),
                read_c,
                (a.data.as_ptr(), a.rs as isize, a.cs as isize),
                (b.as_ptr(), ldb as isize, 1),
            );
        }
    }
    if let (Write::Accumulate, Some(bias)) = (write, bias) {
        rows(c, &mut |_, r| {
            r.iter_mut().zip(bias).for_each(|(v, &b)| *v += b);
        });
    }
    match act {
        Act::Identity => {}
        Act::Relu => rows(c, &mut |_, r| r.iter_mut().for_each(|v| *v = v.max(0.0))),
        Act::ReluGrad { gate, ld: lg } => rows(c, &mut |i, r| {
            // A select, not a conditional store, so the loop vectorises (the branchy form was
            // 17% of a training step: `perf` on `benches/model.rs`).
            for (v, &g) in r.iter_mut().zip(&gate[i * lg..i * lg + n]) {
                *v = if g <= 0.0 { 0.0 } else { *v };
            }
        }),
    }
}

/// `Wᵀ` of a row-major `W: [out, in]`, materialised as `[in, out]` row-major: the `B` operand
/// of `y = x · Wᵀ`. Built once per weight value and reused by every forward until the weight
/// changes (the owner drops it on mutation). The crate reads `W` through strides as well, but
/// a row-major `B` lets it skip packing on the model's small shapes (measured in
/// `benches/gemm.rs`: `forward/packed` vs `forward/strided`).
#[derive(Debug, Clone, Default)]
#[doc(hidden)]
pub struct PackedT {
    cell: std::sync::OnceLock<Vec<f32>>,
}

impl PackedT {
    /// `Wᵀ` as a row-major `[in, out]` slice, computed on first use.
    pub fn get(&self, w: ArrayView2<'_, f32>) -> &[f32] {
        self.cell.get_or_init(|| {
            let (out, inp) = w.dim();
            let mut t = vec![0.0f32; out * inp];
            for (o, row) in w.outer_iter().enumerate() {
                for (i, &v) in row.iter().enumerate() {
                    t[i * out + o] = v;
                }
            }
            t
        })
    }

    /// Forgets the transpose (call whenever the weight may have changed).
    pub fn invalidate(&mut self) {
        self.cell = std::sync::OnceLock::new();
    }
}

/// `C = A · B` or `C += A · B` for ndarray views of any layout (any strides, negative ones
/// included), read and written in place.
///
/// ```
/// use ndarray::{array, Array2};
/// use succulm_tt::gemm::{matmul_into, Write};
/// let a = array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]];
/// let b = array![[1.0f32, 0.0, 2.0], [0.0, 1.0, 1.0]];
/// let mut c = Array2::<f32>::ones((3, 3));
/// matmul_into(a.view(), b.view(), c.view_mut(), Write::Accumulate)?;
/// assert_eq!(c, array![[2.0, 3.0, 5.0], [4.0, 5.0, 11.0], [6.0, 7.0, 17.0]]);
/// // The transpose of a view is read in place.
/// let mut d = Array2::<f32>::zeros((2, 2));
/// matmul_into(a.t(), a.view(), d.view_mut(), Write::Overwrite)?;
/// assert_eq!(d, array![[35.0, 44.0], [44.0, 56.0]]);
/// # Ok::<(), succulm_tt::Error>(())
/// ```
///
/// Errors if the inner dimensions or the shape of `C` do not match.
pub fn matmul_into(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    mut c: ArrayViewMut2<'_, f32>,
    write: Write,
) -> Result<()> {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    if k != k2 {
        return Err(Error::shape("matmul_into B", &[k, n], &[k2, n]));
    }
    if c.dim() != (m, n) {
        return Err(Error::shape("matmul_into C", &[m, n], c.shape()));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if write == Write::Overwrite {
            c.fill(0.0);
        }
        return Ok(());
    }
    let (cs, bs, as_) = (c.strides(), b.strides(), a.strides());
    let (c_rs, c_cs, b_rs, b_cs, a_rs, a_cs) = (cs[0], cs[1], bs[0], bs[1], as_[0], as_[1]);
    // SAFETY: ndarray views address exactly the elements `ptr + i·rs + j·cs` inside their
    // allocations for in-range indices, which is all the crate touches; `c` is borrowed
    // mutably, so it aliases neither `a` nor `b`.
    unsafe {
        raw_gemm(
            (m, n, k),
            (c.as_mut_ptr(), c_rs, c_cs),
            write == Write::Accumulate,
            (a.as_ptr(), a_rs, a_cs),
            (b.as_ptr(), b_rs, b_cs),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// The reference loop: the same sums in the same order, multiply and add separately.
    fn portable(Dims { m, n, k }: Dims, a: Strided<'_>, b: &[f32], ldb: usize, out: Out<'_>) {
        let mut acc = vec![0.0f32; n];
        for i in 0..m {
            acc.fill(0.0);
            for p in 0..k {
                let av = a.data[i * a.rs + p * a.cs];
                for (s, &bv) in acc.iter_mut().zip(&b[p * ldb..p * ldb + n]) {
                    *s += av * bv;
                }
            }
            let row = &mut out.c[i * out.ld..i * out.ld + n];
            for (j, (o, &s)) in row.iter_mut().zip(&acc).enumerate() {
                let mut v = s;
                if out.write == Write::Accumulate {
                    v += *o;
                }
                if let Some(bias) = out.bias {
                    v += bias[j];
                }
                *o = match out.act {
                    Act::Identity => v,
                    Act::Relu => v.max(0.0),
                    Act::ReluGrad { gate, ld } => {
                        if gate[i * ld + j] <= 0.0 {
                            0.0
                        } else {
                            v
                        }
                    }
                };
            }
        }
    }

    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: &dyn Fn(usize, usize) -> f32,
        b: &dyn Fn(usize, usize) -> f32,
    ) -> Vec<f64> {
        let mut c = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a(i, p) as f64 * b(p, j) as f64).sum();
            }
        }
        c
    }

    /// Tails of every kind (rows 1..=116, columns 1..=150, `k` 0..=116), both `A` layouts, both
    /// write modes, bias, ReLU and the ReLU's backward gate, against an f64 reference.
    #[test]
    fn matches_f64_reference_for_every_tail() {
        let mut rng = StdRng::seed_from_u64(7);
        for &(m, n, k) in &[
            (1, 1, 1),
            (13, 40, 9),
            (6, 16, 50),
            (7, 17, 3),
            (12, 8, 0),
            (29, 50, 10),
            (116, 150, 50),
            (5, 33, 116),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let bias: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            // A gate with a leading dimension wider than `n`, exact zeros and negative zeros.
            let ldg = n + 3;
            let gate: Vec<f32> = (0..m * ldg)
                .map(|i| [1.0, -0.5, 0.0, -0.0, 2.0][(i * 7 + i / 3) % 5])
                .collect();
            let want = reference(m, n, k, &|i, p| a[i * k + p], &|p, j| b[p * n + j]);
            for (layout, op) in [
                ("rows", Strided::rows(&a, k)),
                ("transposed", Strided::transposed(&at, m)),
            ] {
                for write in [Write::Overwrite, Write::Accumulate] {
                    for (with_bias, act) in [
                        (false, Act::Identity),
                        (true, Act::Identity),
                        (true, Act::Relu),
                        (
                            false,
                            Act::ReluGrad {
                                gate: &gate,
                                ld: ldg,
                            },
                        ),
                        (
                            true,
                            Act::ReluGrad {
                                gate: &gate,
                                ld: ldg,
                            },
                        ),
                    ] {
                        for path in ["gemm"] {
                            let mut c = c0.clone();
                            let out = Out::new(&mut c, n, write)
                                .bias(with_bias.then_some(&bias[..]))
                                .act(act);
                            gemm(Dims { m, n, k }, op, &b, n, out);
                            for i in 0..m * n {
                                let mut w = want[i];
                                if write == Write::Accumulate {
                                    w += c0[i] as f64;
                                }
                                if with_bias {
                                    w += bias[i % n] as f64;
                                }
                                match act {
                                    Act::Identity => {}
                                    Act::Relu => w = w.max(0.0),
                                    Act::ReluGrad { .. } => {
                                        if gate[(i / n) * ldg + i % n] <= 0.0 {
                                            w = 0.0;
                                        }
                                    }
                                }
                                assert!(
                                    (c[i] as f64 - w).abs() < 1e-5 * (1.0 + k as f64).sqrt(),
                                    "{path} {layout} {write:?} bias {with_bias} {act:?} \
                                 [{m},{n},{k}] at {i}: {} vs {w}",
                                    c[i]
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// The crate's kernels and a plain loop differ only by rounding; rows never depend on the
    /// tile they fall in (the same row computed alone, or in any split of the rows, gives the
    /// same bits), which is what makes the threaded passes independent of the thread count.
    #[test]
    fn rows_do_not_depend_on_tiling() {
        let mut rng = StdRng::seed_from_u64(11);
        let (m, n, k) = (23, 37, 50);
        let a: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut all = vec![0.0f32; m * n];
        let dims = Dims { m, n, k };
        gemm(
            dims,
            Strided::rows(&a, k),
            &b,
            n,
            Out::new(&mut all, n, Write::Overwrite),
        );
        for split in [1, 2, 5, 7, 16] {
            for i0 in (0..m).step_by(split) {
                let rows = split.min(m - i0);
                let mut part = vec![0.0f32; rows * n];
                let d1 = Dims { m: rows, n, k };
                let a_part = Strided::rows(&a[i0 * k..], k);
                gemm(d1, a_part, &b, n, Out::new(&mut part, n, Write::Overwrite));
                assert_eq!(
                    &all[i0 * n..(i0 + rows) * n],
                    &part[..],
                    "rows {i0}.. in blocks of {split}"
                );
            }
        }
        let mut port = vec![0.0f32; m * n];
        portable(
            dims,
            Strided::rows(&a, k),
            &b,
            n,
            Out::new(&mut port, n, Write::Overwrite),
        );
        for (x, y) in all.iter().zip(&port) {
            assert!((x - y).abs() < 1e-5);
        }
    }

    #[test]
    fn packed_transpose_and_invalidate() {
        let w = ndarray::array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let mut p = PackedT::default();
        assert_eq!(p.get(w.view()), &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        // Cached: a different weight is ignored until invalidated.
        let w2 = &w * 2.0;
        assert_eq!(p.get(w2.view())[1], 4.0);
        p.invalidate();
        assert_eq!(p.get(w2.view())[1], 8.0);
    }

    #[test]
    fn matmul_into_rejects_bad_shapes() {
        let a = ndarray::Array2::<f32>::zeros((3, 4));
        let b = ndarray::Array2::<f32>::zeros((5, 2));
        let mut c = ndarray::Array2::<f32>::zeros((3, 2));
        let e = matmul_into(a.view(), b.view(), c.view_mut(), Write::Overwrite).unwrap_err();
        assert!(e.to_string().contains("matmul_into B"), "{e}");
        let b = ndarray::Array2::<f32>::zeros((4, 2));
        let mut c = ndarray::Array2::<f32>::zeros((2, 2));
        let e = matmul_into(a.view(), b.view(), c.view_mut(), Write::Overwrite).unwrap_err();
        assert!(e.to_string().contains("matmul_into C"), "{e}");
    }

    /// Every layout of `A`, `B` and `C` (row-major, column-major, a strided sub-view) matches
    /// the f64 reference (the crate may pick other kernels for other layouts, so the last bits
    /// can differ between layouts), and leaves the elements between strided columns untouched.
    #[test]
    fn matmul_into_any_layout() {
        use ndarray::{s, Array2, ShapeBuilder};
        let (m, n, k) = (13, 19, 7);
        let mut rng = StdRng::seed_from_u64(5);
        let a0 = Array2::from_shape_simple_fn((m, k), || rng.gen_range(-1.0f32..1.0));
        let b0 = Array2::from_shape_simple_fn((k, n), || rng.gen_range(-1.0f32..1.0));
        let c0 = Array2::from_shape_simple_fn((m, n), || rng.gen_range(-1.0f32..1.0));
        let reference = reference(m, n, k, &|i, p| a0[[i, p]], &|p, j| b0[[p, j]]);
        // Layout 0: row-major; 1: column-major; 2: every other column of a wider array.
        let layout = |x: &Array2<f32>, l: usize| -> Array2<f32> {
            let (r, c) = x.dim();
            match l {
                0 => x.clone(),
                1 => {
                    let mut y = Array2::zeros((r, c).f());
                    y.assign(x);
                    y
                }
                _ => {
                    let mut y = Array2::from_elem((r, 2 * c), f32::NAN);
                    y.slice_mut(s![.., ..;2]).assign(x);
                    y
                }
            }
        };
        let view = |y: &Array2<f32>, l: usize| -> Array2<f32> {
            // The logical matrix back from a layout (for comparing).
            if l == 2 {
                y.slice(s![.., ..;2]).to_owned()
            } else {
                y.clone()
            }
        };
        for write in [Write::Overwrite, Write::Accumulate] {
            for (la, lb, lc) in (0..27).map(|i| (i % 3, i / 3 % 3, i / 9)) {
                let (a, b) = (layout(&a0, la), layout(&b0, lb));
                let mut c = layout(&c0, lc);
                let av = if la == 2 {
                    a.slice(s![.., ..;2])
                } else {
                    a.view()
                };
                let bv = if lb == 2 {
                    b.slice(s![.., ..;2])
                } else {
                    b.view()
                };
                let cv = if lc == 2 {
                    c.slice_mut(s![.., ..;2])
                } else {
                    c.view_mut()
                };
                matmul_into(av, bv, cv, write).unwrap();
                let got = view(&c, lc);
                if lc == 2 {
                    // The columns between are untouched.
                    assert!(c.slice(s![.., 1..;2]).iter().all(|v| v.is_nan()));
                }
                for ((i, j), &g) in got.indexed_iter() {
                    let want = reference[i * n + j]
                        + if write == Write::Accumulate {
                            c0[[i, j]] as f64
                        } else {
                            0.0
                        };
                    assert!(
                        (g as f64 - want).abs() < 1e-5,
                        "layouts A {la}, B {lb}, C {lc}, {write:?} ({i}, {j}): {g} vs {want}"
                    );
                }
            }
        }
    }

    /// A large product (beyond the caches, above the threading threshold) matches the f64
    /// reference, and gives the same bits on 1 and 2 threads, through `gemm` and `matmul_into`.
    #[test]
    fn large_products_match_and_do_not_depend_on_threads() {
        use ndarray::Array2;
        let (m, n, k) = (37, 2050, 131);
        assert!(m * n * k >= PARALLEL_MIN_MACS / 2);
        let mut rng = StdRng::seed_from_u64(9);
        let a = Array2::from_shape_simple_fn((m, k), || rng.gen_range(-1.0f32..1.0));
        let b = Array2::from_shape_simple_fn((k, n), || rng.gen_range(-1.0f32..1.0));
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.01).collect();
        let reference = reference(m, n, k, &|i, p| a[[i, p]], &|p, j| b[[p, j]]);
        let run = |threads: usize| {
            set_threads(threads);
            let mut c = vec![0.0f32; m * n];
            gemm(
                Dims { m, n, k },
                Strided::rows(a.as_slice().unwrap(), k),
                b.as_slice().unwrap(),
                n,
                Out::new(&mut c, n, Write::Overwrite)
                    .bias(Some(&bias))
                    .act(Act::Relu),
            );
            let mut d = Array2::<f32>::zeros((m, n));
            matmul_into(a.view(), b.view(), d.view_mut(), Write::Overwrite).unwrap();
            set_threads(1);
            (c, d)
        };
        // Above the threshold with the larger sizes the threaded path is taken.
        let big = (2 * m, n, k);
        assert!(big.0 * big.1 * big.2 >= PARALLEL_MIN_MACS);
        let (c1, d1) = run(1);
        let (c2, d2) = run(2);
        assert_eq!(c1, c2);
        assert_eq!(d1, d2);
        for i in 0..m {
            for j in 0..n {
                let r = reference[i * n + j];
                assert!((d1[[i, j]] as f64 - r).abs() < 1e-4, "({i}, {j})");
                let want = (r + bias[j] as f64).max(0.0);
                assert!((c1[i * n + j] as f64 - want).abs() < 1e-4, "({i}, {j})");
            }
        }
        // And a product that does cross the threshold.
        let a2 = Array2::from_shape_fn((big.0, k), |(i, p)| a[[i % m, p]]);
        let go = |threads: usize| {
            set_threads(threads);
            let mut d = Array2::<f32>::zeros((big.0, n));
            matmul_into(a2.view(), b.view(), d.view_mut(), Write::Overwrite).unwrap();
            set_threads(1);
            d
        };
        let (g1, g2) = (go(1), go(2));
        assert_eq!(g1, g2);
        assert_eq!(g1.slice(ndarray::s![..m, ..]), d1);
    }
}

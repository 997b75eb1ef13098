//! Small-matrix GEMM: `C (+)= A · B (+ bias) (then ReLU)` with register-tiled AVX2 + FMA
//! micro-kernels, for the shapes of a tiny transformer (`[116, 50] · [50, 200]`, inner
//! dimensions 10–200), where a BLAS call spends more time packing, scaling `C` and dispatching
//! than multiplying.
//!
//! * `A` is read **in place** through any strides (`A(i, p) = a[i·rs + p·cs]`), so `dyᵀ` (for a
//!   weight gradient) costs nothing; each step broadcasts one `A` element per tile row.
//! * `B` is read **in place**, row-major with unit column stride (`B(p, j) = b[p·ldb + j]`); a
//!   tile's `B` panel (`k × 16` floats) stays in L1 while the row tiles stream past it. For
//!   `y = x · Wᵀ` with PyTorch's `W: [out, in]`, `B = Wᵀ` is materialised once
//!   (`PackedT`) and reused until `W` changes.
//! * Tiles are 6 rows × 16 columns (12 accumulators); ragged column tails use masked loads
//!   and stores, so no padding or copying is needed.
//! * Only when `B` is large (beyond L2, as in a 768 → 3072 layer) are the operands copied: `B`
//!   by column panels and `A` by row tiles, each into one contiguous stream. The arithmetic is
//!   the same.
//!
//! Every element of `C` is the sum over `p = 0, 1, …, k−1` in that order (one FMA each), then
//! `+ bias`, so results do not depend on the tiling, the row count or the thread that computes
//! them. Without AVX2 + FMA (checked once at run time) the same function is computed by a
//! portable loop (with separate multiply and add, so the last bits can differ).

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::error::{Error, Result};

/// Tile height (rows of `C` per micro-kernel call).
const MR: usize = 6;
/// Tile width in floats (two AVX vectors).
const NR: usize = 16;
/// `B` panels are packed when the inner dimension is at least this …
const PACK_MIN_K: usize = 128;
/// … and `B` spans at least this many floats (1 MiB: beyond L2).
const PACK_MIN_B: usize = 1 << 18;

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
pub(crate) struct Strided<'a> {
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

/// The shapes and epilogue of one product `C[m, n] (+)= A[m, k] · B[k, n]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// The activation applied to `C` as it is written (after the bias).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Act<'a> {
    /// None: `C` is the sum (plus bias).
    Identity,
    /// `max(·, 0)`.
    Relu,
    /// The backward of a ReLU: `C(i, j)` is zeroed where the ReLU's output
    /// `gate[i·ld + j]` is `<= 0` (kept where it is positive or NaN, as `if h <= 0 { g = 0 }`).
    ReluGrad { gate: &'a [f32], ld: usize },
}

impl Act<'_> {
    /// The activation of `v`, the value at row `i`, column `j` of `C`.
    #[inline]
    fn apply(self, v: f32, i: usize, j: usize) -> f32 {
        match self {
            Act::Identity => v,
            Act::Relu => v.max(0.0),
            Act::ReluGrad { gate, ld } => {
                if gate[i * ld + j] <= 0.0 {
                    0.0
                } else {
                    v
                }
            }
        }
    }
}

/// The output side of one product: `C: [m, n]` row-major with leading dimension `ld`, what
/// to do with its contents, and the bias (`[n]`) and activation applied as it is written.
#[derive(Debug)]
pub(crate) struct Out<'a> {
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
pub(crate) fn gemm(dims: Dims, a: Strided<'_>, b: &[f32], ldb: usize, out: Out<'_>) {
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
    #[cfg(target_arch = "x86_64")]
    {
        if has_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked), and every index the kernels touch is
            // within the slices (checked above: rows < m, columns < n, p < k).
            unsafe { avx2::gemm(dims, a, b, ldb, out) };
            return;
        }
    }
    blas(dims, a, b, ldb, out);
}

/// The fallback without AVX2 + FMA: the product by BLAS (through ndarray), then the epilogue.
fn blas(Dims { m, n, k }: Dims, a: Strided<'_>, b: &[f32], ldb: usize, out: Out<'_>) {
    use ndarray::ShapeBuilder;
    let mut cv = ArrayViewMut2::from_shape((m, n).strides((out.ld, 1)), out.c).expect("C fits");
    if k == 0 {
        // An empty sum (ndarray refuses a `[0, n]` view of an empty `B` with these strides).
        if out.write == Write::Overwrite {
            cv.fill(0.0);
        }
    } else {
        let av = ArrayView2::from_shape((m, k).strides((a.rs, a.cs)), a.data)
            .expect("A fits (checked by gemm)");
        let bv = ArrayView2::from_shape((k, n).strides((ldb, 1)), b).expect("B fits");
        let beta = if out.write == Write::Accumulate {
            1.0
        } else {
            0.0
        };
        ndarray::linalg::general_mat_mul(1.0, &av, &bv, beta, &mut cv);
    }
    if out.bias.is_none() && matches!(out.act, Act::Identity) {
        return;
    }
    for (i, mut row) in cv.rows_mut().into_iter().enumerate() {
        for (j, o) in row.iter_mut().enumerate() {
            let v = *o + out.bias.map_or(0.0, |b| b[j]);
            *o = out.act.apply(v, i, j);
        }
    }
}

/// Whether the AVX2 + FMA kernels run on this CPU.
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_fma() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Act, Dims, Out, Strided, Write, MR, NR, PACK_MIN_B, PACK_MIN_K};
    use std::arch::x86_64::*;

    /// Lanes `0..live` set (all when `live >= 8`).
    #[inline(always)]
    unsafe fn lane_mask(live: usize) -> __m256i {
        let live = live.min(8) as i32;
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(live),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }

    /// The driver: column panels of `NR`, row tiles of `MR` inside each (the panel of `B`
    /// stays in L1 while `A` streams).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gemm(
        Dims { m, n, k }: Dims,
        a: Strided<'_>,
        b: &[f32],
        ldb: usize,
        out: Out<'_>,
    ) {
        let (ap, bp, cp, ldc) = (a.data.as_ptr(), b.as_ptr(), out.c.as_mut_ptr(), out.ld);
        let bias = out.bias.map(|b| b.as_ptr());
        let acc = out.write == Write::Accumulate;
        let (relu, gate, ldg) = match out.act {
            Act::Identity => (false, None, 0),
            Act::Relu => (true, None, 0),
            Act::ReluGrad { gate, ld } => (false, Some(gate.as_ptr()), ld),
        };
        // When `B` is large and its rows far apart, each panel is first copied into a
        // contiguous `k × NR` buffer: a row tile then reads `B` from consecutive cache lines
        // (and pages) instead of one line per row of `B`. The arithmetic is unchanged.
        let big = k >= PACK_MIN_K && k * ldb >= PACK_MIN_B;
        let mut packed = if big {
            vec![0.0f32; k * NR]
        } else {
            Vec::new()
        };
        // With a large `B`, `A` is packed too, once: each row tile's rows side by side
        // (`[k, MR]`, rows past `m` zero), so a tile reads `A` as one sequential stream.
        let a_packed: Vec<f32> = if big {
            let mut v = vec![0.0f32; m.next_multiple_of(MR) * k];
            for (t, panel) in v.chunks_exact_mut(MR * k).enumerate() {
                for (i, row) in (t * MR..(t * MR + MR).min(m)).enumerate() {
                    for p in 0..k {
                        panel[p * MR + i] = *ap.add(row * a.rs + p * a.cs);
                    }
                }
            }
            v
        } else {
            Vec::new()
        };
        // (A pointer, row stride, column stride, step from one row tile to the next.)
        let (ap, ars, acs, tile_step) = if big {
            (a_packed.as_ptr(), 1, MR, k)
        } else {
            (ap, a.rs, a.cs, a.rs)
        };
        let mut j0 = 0;
        while j0 < n {
            let cols = (n - j0).min(NR);
            let (b_panel, ldb_panel) = if !big {
                (bp.add(j0), ldb)
            } else {
                for (p, dst) in packed.chunks_exact_mut(NR).enumerate() {
                    let src = std::slice::from_raw_parts(bp.add(p * ldb + j0), cols);
                    dst[..cols].copy_from_slice(src);
                }
                (packed.as_ptr(), NR)
            };
            let t = Tile {
                k,
                a: ap,
                ars,
                acs,
                tile_step,
                b: b_panel,
                ldb: ldb_panel,
                c: cp.add(j0),
                ldc,
                m0: lane_mask(cols),
                m1: lane_mask(cols.saturating_sub(8)),
                bias: bias.map(|b| b.add(j0)),
                acc,
                relu,
                gate: gate.map(|g| g.add(j0)),
                ldg,
            };
            let mut i0 = 0;
            while i0 < m {
                let rows = (m - i0).min(MR);
                let ti = t.at_row(i0);
                match (rows, cols > 8, cols % 8 != 0) {
                    (6, true, false) => kernel::<6, 2, false>(&ti),
                    (6, true, true) => kernel::<6, 2, true>(&ti),
                    (6, false, false) => kernel::<6, 1, false>(&ti),
                    (6, false, true) => kernel::<6, 1, true>(&ti),
                    // Whole vectors need no masked loads or stores (slow on some CPUs).
                    (5, true, false) => kernel::<5, 2, false>(&ti),
                    (5, true, true) => kernel::<5, 2, true>(&ti),
                    (5, false, false) => kernel::<5, 1, false>(&ti),
                    (5, false, true) => kernel::<5, 1, true>(&ti),
                    (4, true, false) => kernel::<4, 2, false>(&ti),
                    (4, true, true) => kernel::<4, 2, true>(&ti),
                    (4, false, false) => kernel::<4, 1, false>(&ti),
                    (4, false, true) => kernel::<4, 1, true>(&ti),
                    (3, true, false) => kernel::<3, 2, false>(&ti),
                    (3, true, true) => kernel::<3, 2, true>(&ti),
                    (3, false, false) => kernel::<3, 1, false>(&ti),
                    (3, false, true) => kernel::<3, 1, true>(&ti),
                    (2, true, false) => kernel::<2, 2, false>(&ti),
                    (2, true, true) => kernel::<2, 2, true>(&ti),
                    (2, false, false) => kernel::<2, 1, false>(&ti),
                    (2, false, true) => kernel::<2, 1, true>(&ti),
                    (_, true, false) => kernel::<1, 2, false>(&ti),
                    (_, true, true) => kernel::<1, 2, true>(&ti),
                    (_, false, false) => kernel::<1, 1, false>(&ti),
                    (_, false, true) => kernel::<1, 1, true>(&ti),
                }
                i0 += rows;
            }
            j0 += cols;
        }
    }

    /// One tile's operands (pointers at the tile's first row and column).
    #[derive(Clone, Copy)]
    struct Tile {
        k: usize,
        a: *const f32,
        ars: usize,
        /// How far `a` moves per row of `C` from one row tile to the next (`ars`, or `k` when
        /// `A` is packed by tiles).
        tile_step: usize,
        acs: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        /// Masks of the live lanes of the first and second vector of the tile.
        m0: __m256i,
        m1: __m256i,
        bias: Option<*const f32>,
        acc: bool,
        relu: bool,
        /// The ReLU backward's gate (`C` is zeroed where it is `<= 0`), leading dimension `ldg`.
        gate: Option<*const f32>,
        ldg: usize,
    }

    impl Tile {
        #[inline(always)]
        unsafe fn at_row(&self, i0: usize) -> Tile {
            Tile {
                a: self.a.add(i0 * self.tile_step),
                c: self.c.add(i0 * self.ldc),
                gate: self.gate.map(|g| g.add(i0 * self.ldg)),
                ..*self
            }
        }
    }

    /// Vector `v` of a tile row at `p`: masked when it is the partial last one.
    #[inline(always)]
    unsafe fn load_vec<const V: usize, const MASKED: bool>(
        p: *const f32,
        v: usize,
        mask: __m256i,
    ) -> __m256 {
        if MASKED && v == V - 1 {
            _mm256_maskload_ps(p, mask)
        } else {
            _mm256_loadu_ps(p)
        }
    }

    /// `R` rows × `V` vectors of `C`; `MASKED`: the last vector is partial (masked loads and
    /// stores; the first vector of a two-vector tile is always whole).
    #[inline(always)]
    unsafe fn kernel<const R: usize, const V: usize, const MASKED: bool>(t: &Tile) {
        let mut acc = [[_mm256_setzero_ps(); V]; R];
        let last_mask = if V == 2 { t.m1 } else { t.m0 };
        // Each row's `A` pointer is fixed and one offset steps along `k`: the addresses of a
        // step do not depend on each other (a chain of pointer increments would bound the loop
        // by its latency rather than by the FMAs).
        let mut rows = [t.a; R];
        for (r, p) in rows.iter_mut().enumerate() {
            *p = t.a.add(r * t.ars);
        }
        let (mut off, mut b) = (0usize, t.b);
        for _ in 0..t.k {
            let mut bv = [_mm256_setzero_ps(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = if MASKED && v == V - 1 {
                    _mm256_maskload_ps(b.add(8 * v), last_mask)
                } else {
                    _mm256_loadu_ps(b.add(8 * v))
                };
            }
            for (row, &p) in acc.iter_mut().zip(&rows) {
                let av = _mm256_broadcast_ss(&*p.add(off));
                for (x, y) in row.iter_mut().zip(bv) {
                    *x = _mm256_fmadd_ps(av, y, *x);
                }
            }
            off += t.acs;
            b = b.add(t.ldb);
        }
        // The epilogue, one stage at a time (each flag tested once per tile, the bias loaded
        // once), in the same order as before: + old C, + bias, ReLU, gate.
        let zero = _mm256_setzero_ps();
        if t.acc {
            for (r, row) in acc.iter_mut().enumerate() {
                let c = t.c.add(r * t.ldc);
                for (v, x) in row.iter_mut().enumerate() {
                    *x = _mm256_add_ps(*x, load_vec::<V, MASKED>(c.add(8 * v), v, last_mask));
                }
            }
        }
        if let Some(bias) = t.bias {
            let mut bb = [zero; V];
            for (v, b) in bb.iter_mut().enumerate() {
                *b = load_vec::<V, MASKED>(bias.add(8 * v), v, last_mask);
            }
            for row in acc.iter_mut() {
                for (x, &b) in row.iter_mut().zip(&bb) {
                    *x = _mm256_add_ps(*x, b);
                }
            }
        }
        if t.relu {
            for row in acc.iter_mut() {
                for x in row.iter_mut() {
                    *x = _mm256_max_ps(*x, zero);
                }
            }
        }
        if let Some(g) = t.gate {
            for (r, row) in acc.iter_mut().enumerate() {
                let g = g.add(r * t.ldg);
                for (v, x) in row.iter_mut().enumerate() {
                    // Keep where !(h <= 0): positive or NaN.
                    let h = load_vec::<V, MASKED>(g.add(8 * v), v, last_mask);
                    *x = _mm256_and_ps(*x, _mm256_cmp_ps::<_CMP_NLE_UQ>(h, zero));
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            let c = t.c.add(r * t.ldc);
            for (v, &x) in row.iter().enumerate() {
                if MASKED && v == V - 1 {
                    _mm256_maskstore_ps(c.add(8 * v), last_mask, x);
                } else {
                    _mm256_storeu_ps(c.add(8 * v), x);
                }
            }
        }
    }
}

/// `Wᵀ` of a row-major `W: [out, in]`, materialised as `[in, out]` row-major: the `B` operand
/// of `y = x · Wᵀ`. Built once per weight value and reused by every forward until the weight
/// changes (the owner drops it on mutation).
#[derive(Debug, Clone, Default)]
pub(crate) struct PackedT {
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

/// `C = A · B` or `C += A · B` for ndarray views of any layout. `A` is read in place through
/// its strides; a column-major `C` is computed as `Cᵀ = Bᵀ · Aᵀ` in place; otherwise `B` and
/// `C` are copied to a row-major buffer when they are not row-major.
///
/// ```
/// use ndarray::{array, Array2};
/// use succulm::gemm::{matmul_into, Write};
/// let a = array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]];
/// let b = array![[1.0f32, 0.0, 2.0], [0.0, 1.0, 1.0]];
/// let mut c = Array2::<f32>::ones((3, 3));
/// matmul_into(a.view(), b.view(), c.view_mut(), Write::Accumulate)?;
/// assert_eq!(c, array![[2.0, 3.0, 5.0], [4.0, 5.0, 11.0], [6.0, 7.0, 17.0]]);
/// // The transpose of a view is read in place.
/// let mut d = Array2::<f32>::zeros((2, 2));
/// matmul_into(a.t(), a.view(), d.view_mut(), Write::Overwrite)?;
/// assert_eq!(d, array![[35.0, 44.0], [44.0, 56.0]]);
/// # Ok::<(), succulm::Error>(())
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
    // The kernels read `B` and write `C` by rows (`A` is read through any strides). Either
    // `C = A · B` or, as the same sums term for term (so the same bits), `Cᵀ = Bᵀ · Aᵀ`:
    // whichever needs the fewer elements copied to row-major buffers.
    let copies = |b: &ArrayView2<'_, f32>, c_row_major: bool| {
        let b_copy = if b.is_standard_layout() { 0 } else { b.len() };
        b_copy + if c_row_major { 0 } else { 2 * m * n }
    };
    let (direct, transposed) = (
        copies(&b, c.is_standard_layout()),
        copies(&a.t(), c.t().is_standard_layout()),
    );
    if transposed < direct {
        return matmul_into(b.t(), a.t(), c.reversed_axes(), write);
    }
    // A through its strides (a standard-layout copy if a stride is negative).
    if a.strides().iter().any(|&s| s < 0) {
        let owned = a.as_standard_layout().into_owned();
        return matmul_into(owned.view(), b, c, write);
    }
    let a_view = a;
    let (ars, acs) = (a_view.strides()[0] as usize, a_view.strides()[1] as usize);
    let a_slice = strided_slice(a_view);
    let b = b.as_standard_layout();
    let bs = b.as_slice().expect("standard layout");
    let dims = Dims { m, n, k };
    let a_op = Strided {
        data: a_slice,
        rs: ars,
        cs: acs,
    };
    match c.as_slice_mut() {
        Some(cs) => gemm(dims, a_op, bs, n, Out::new(cs, n, write)),
        None => {
            let mut tmp = c.as_standard_layout().into_owned();
            let ts = tmp.as_slice_mut().expect("standard layout");
            gemm(dims, a_op, bs, n, Out::new(ts, n, write));
            c.assign(&tmp);
        }
    }
    Ok(())
}

/// The memory a view with non-negative strides spans, from its first element.
fn strided_slice<'a>(v: ArrayView2<'a, f32>) -> &'a [f32] {
    let (m, k) = v.dim();
    let (rs, cs) = (v.strides()[0] as usize, v.strides()[1] as usize);
    let len = if m == 0 || k == 0 {
        0
    } else {
        (m - 1) * rs + (k - 1) * cs + 1
    };
    // SAFETY: a view with non-negative strides addresses exactly the elements
    // `ptr + i·rs + p·cs` for `i < m`, `p < k`, all inside one allocation; the slice spans from
    // the first to the last of them and is only read at those offsets.
    unsafe { std::slice::from_raw_parts(v.as_ptr(), len) }
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
                *o = out.act.apply(v, i, j);
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

    /// Every tile shape and tail (rows 1..=13, columns 1..=40), both `A` layouts, both write
    /// modes, bias, ReLU and the ReLU's backward gate, against an f64 reference; for the
    /// dispatched kernels and for the BLAS fallback of CPUs without AVX2 + FMA.
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
                        for path in ["dispatched", "blas fallback"] {
                            let mut c = c0.clone();
                            let out = Out::new(&mut c, n, write)
                                .bias(with_bias.then_some(&bias[..]))
                                .act(act);
                            if path == "blas fallback" {
                                blas(Dims { m, n, k }, op, &b, n, out);
                            } else {
                                gemm(Dims { m, n, k }, op, &b, n, out);
                            }
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

    /// The kernels and the portable loop differ only by FMA rounding; rows never depend on
    /// the tile they fall in (the same row computed alone gives the same bits).
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
        for i in 0..m {
            let mut one = vec![0.0f32; n];
            let d1 = Dims { m: 1, n, k };
            let row = Strided::rows(&a[i * k..], k);
            gemm(d1, row, &b, n, Out::new(&mut one, n, Write::Overwrite));
            assert_eq!(&all[i * n..(i + 1) * n], &one[..], "row {i}");
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
        assert!(matmul_into(a.view(), b.view(), c.view_mut(), Write::Overwrite).is_err());
        let b = ndarray::Array2::<f32>::zeros((4, 2));
        let mut c = ndarray::Array2::<f32>::zeros((2, 2));
        assert!(matmul_into(a.view(), b.view(), c.view_mut(), Write::Overwrite).is_err());
    }

    /// Every layout of `A`, `B` and `C` (row-major, column-major, a strided sub-view) gives
    /// the same bits as the all-row-major product, which matches the f64 reference.
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
            let mut first: Option<Array2<f32>> = None;
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
                match &first {
                    None => {
                        for ((i, j), &g) in got.indexed_iter() {
                            let want = reference[i * n + j]
                                + if write == Write::Accumulate {
                                    c0[[i, j]] as f64
                                } else {
                                    0.0
                                };
                            assert!((g as f64 - want).abs() < 1e-5, "({i}, {j}): {g} vs {want}");
                        }
                        first = Some(got);
                    }
                    Some(f) => assert_eq!(&got, f, "layouts A {la}, B {lb}, C {lc}, {write:?}"),
                }
            }
        }
    }

    /// With a large `B`, both operands are packed (`B` by column panels, `A` by row tiles):
    /// the same bits as the unpacked kernel (computed here on narrow copies of `B`, too small
    /// to be packed), for `A` row-major and transposed, close to the f64 reference.
    #[test]
    fn packed_operands_give_the_same_bits() {
        use ndarray::{s, Array2};
        let (m, n, k) = (7, 2050, PACK_MIN_K + 3);
        assert!(k * n >= PACK_MIN_B);
        let mut rng = StdRng::seed_from_u64(9);
        let a = Array2::from_shape_simple_fn((m, k), || rng.gen_range(-1.0f32..1.0));
        let b = Array2::from_shape_simple_fn((k, n), || rng.gen_range(-1.0f32..1.0));
        let at = a.t().as_standard_layout().into_owned();
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.01).collect();
        let run_with = |a: Strided<'_>, b: &Array2<f32>, bias: &[f32]| {
            let (k, n) = b.dim();
            let mut c = vec![0.0f32; m * n];
            gemm(
                Dims { m, n, k },
                a,
                b.as_slice().unwrap(),
                n,
                Out::new(&mut c, n, Write::Overwrite)
                    .bias(Some(bias))
                    .act(Act::Relu),
            );
            Array2::from_shape_vec((m, n), c).unwrap()
        };
        let run = |b: &Array2<f32>, bias: &[f32]| {
            run_with(Strided::rows(a.as_slice().unwrap(), k), b, bias)
        };
        let whole = run(&b, &bias);
        let transposed = run_with(Strided::transposed(at.as_slice().unwrap(), m), &b, &bias);
        assert_eq!(transposed, whole, "A read through its transpose");
        let reference = reference(m, n, k, &|i, p| a[[i, p]], &|p, j| b[[p, j]]);
        for j0 in (0..n).step_by(NR) {
            let j1 = (j0 + NR).min(n);
            let narrow = run(&b.slice(s![.., j0..j1]).to_owned(), &bias[j0..j1]);
            assert_eq!(narrow, whole.slice(s![.., j0..j1]), "columns {j0}..{j1}");
            for i in 0..m {
                for j in j0..j1 {
                    let want = (reference[i * n + j] + bias[j] as f64).max(0.0);
                    assert!((whole[[i, j]] as f64 - want).abs() < 1e-4, "({i}, {j})");
                }
            }
        }
    }
}

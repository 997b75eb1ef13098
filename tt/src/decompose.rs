//! TT-SVD (Oseledets 2011): the sequential truncated-SVD decomposition of an order-`d` tensor
//! into a tensor train.
//!
//! The tensor is read in logical row-major order and viewed with the given `modes`
//! `[n_1, …, n_d]`. For `k = 1 … d−1` the remainder `C` is reshaped to `[r_{k−1}·n_k, rest]`, its
//! thin SVD `U S Vᵀ` is taken, the first `r_k` columns of `U` become core `k`
//! (`[r_{k−1}, n_k, r_k]`) and `C = diag(S[:r_k]) · Vᵀ[:r_k]` is carried on. The last remainder is
//! the last core. Every core is returned 3-D (`r_0 = r_d = 1`).
//!
//! # Truncation
//!
//! A [`Truncation`] gives explicit bond dims, a relative tolerance `eps`, or both (per bond, the
//! smaller rank wins). With `eps`, bond `k` keeps the smallest rank whose discarded tail
//! `‖σ_{r+1:}‖₂` is at most `δ = eps/√(d−1)·‖A‖_F`, which guarantees `‖A − TT‖_F ≤ eps·‖A‖_F`.
//! A requested bond dim above its unfolding's rank limit `min(r_{k−1}·n_k, n_{k+1}···n_d)` is
//! **capped** to that limit and reported in [`TtSvd::capped`]: it is not an error, and it never
//! leads to a shape mismatch later.
//!
//! # Precision
//!
//! The SVDs run in `f64` (LAPACK through ndarray-linalg: `dgesdd` for tall unfoldings, the
//! eigendecomposition of the Gram matrix for wide ones, see `bond_svd`) and the cores are cast to `f32`
//! at the end. Single-precision SVDs lose about `√n·ε_f32` of orthogonality per bond and the
//! errors compound along the train; in `f64` the full-rank decomposition reproduces an `f32`
//! tensor to `f32` rounding, and the reported singular values are accurate far below the `f32`
//! noise floor, so spectra and Eckart–Young tails can be trusted. The cost is small: for the
//! truncated trains this crate builds, the unfoldings are short and wide.

use std::os::raw::{c_char, c_int};

use ndarray::{s, Array1, Array2, Array3, ArrayViewD, Axis};
use ndarray_linalg::{JobSvd, SVDDC};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How to truncate the bonds of a TT-SVD: by explicit bond dims, by a relative tolerance, or by
/// both (the smaller rank wins at each bond). [`Truncation::exact`] keeps every bond at full rank.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Truncation {
    /// Maximum rank of each bond (`d − 1` entries), or `None` for no explicit limit.
    pub bond_dims: Option<Vec<usize>>,
    /// Relative Frobenius tolerance `eps` in `[0, 1)`, or `None` for no tolerance.
    pub eps: Option<f64>,
}

impl Truncation {
    /// No truncation: every bond at the rank of its unfolding (an exact decomposition).
    pub fn exact() -> Self {
        Truncation::default()
    }

    /// Truncate to explicit bond dims (`d − 1` entries). An empty slice means "no bond dims"
    /// (exact), as the seed's `bond_dims=None`.
    pub fn bond_dims(bond_dims: &[usize]) -> Self {
        Truncation {
            bond_dims: (!bond_dims.is_empty()).then(|| bond_dims.to_vec()),
            eps: None,
        }
    }

    /// Truncate by relative tolerance: `‖A − TT‖_F ≤ eps·‖A‖_F`.
    pub fn eps(eps: f64) -> Self {
        Truncation {
            bond_dims: None,
            eps: Some(eps),
        }
    }

    /// Adds (or replaces) the relative tolerance; the smaller rank wins at each bond.
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = Some(eps);
        self
    }
}

/// A requested bond dim that its unfolding could not honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CappedBond {
    /// The bond's index (`0` is the bond between the first and second core).
    pub bond: usize,
    /// The bond dim requested.
    pub requested: usize,
    /// The rank limit of the bond's unfolding, which was used instead.
    pub limit: usize,
}

/// The result of a TT-SVD (cores of `f32` by default; the data-aware decompositions work on
/// `f64` cores before the final cast).
#[derive(Debug, Clone)]
pub struct TtSvd<T = f32> {
    /// The cores, each `[r_{k−1}, n_k, r_k]` with `r_0 = r_d = 1`.
    pub cores: Vec<Array3<T>>,
    /// The effective bond dims `r_1 … r_{d−1}`.
    pub bond_dims: Vec<usize>,
    /// For each bond, all singular values of the unfolding it was cut from (descending).
    pub singular_values: Vec<Array1<f64>>,
    /// For each bond, the Frobenius norm of the discarded singular values `‖σ_{r+1:}‖₂`.
    pub discarded: Vec<f64>,
    /// The requested bond dims that were capped to their unfolding's rank limit.
    pub capped: Vec<CappedBond>,
    /// `‖A‖_F` of the input tensor.
    pub norm: f64,
}

impl<T> TtSvd<T> {
    /// The TT-SVD error bound `√(Σ_k discarded_k²)`: `‖A − TT‖_F` is at most this (Oseledets,
    /// Theorem 2.2), and equals it when only one bond is truncated.
    pub fn error_bound(&self) -> f64 {
        self.discarded.iter().map(|d| d * d).sum::<f64>().sqrt()
    }
}

/// Checks a mode list: non-empty, no zero mode, product without overflow. Returns the product.
pub(crate) fn check_modes(name: &str, modes: &[usize]) -> Result<usize> {
    if modes.is_empty() {
        return Err(Error::invalid_arg(name, "the mode list is empty"));
    }
    if let Some(k) = modes.iter().position(|&m| m == 0) {
        return Err(Error::invalid_arg(
            name,
            format!("mode {k} is 0 (modes {modes:?})"),
        ));
    }
    modes.iter().try_fold(1usize, |acc, &m| {
        acc.checked_mul(m)
            .ok_or_else(|| Error::invalid_arg(name, format!("product of {modes:?} overflows")))
    })
}

extern "C" {
    fn cblas_dsyrk(
        order: c_int,
        uplo: c_int,
        trans: c_int,
        n: c_int,
        k: c_int,
        alpha: f64,
        a: *const f64,
        lda: c_int,
        beta: f64,
        c: *mut f64,
        ldc: c_int,
    );
}

/// `A·Aᵀ` for a row-major `a: [m, n]` by BLAS `dsyrk` (half the FLOPs of a GEMM), symmetrised.
fn gram(a: &Array2<f64>) -> Array2<f64> {
    syrk(a, false)
}

/// `A·Aᵀ` (`[m, m]`, `transpose = false`) or `AᵀA` (`[n, n]`, `transpose = true`) of a
/// row-major `a: [m, n]` by BLAS `dsyrk`, symmetrised. Falls back to ndarray's product for a
/// non-contiguous `a` or sizes beyond a C int.
pub(crate) fn syrk(a: &Array2<f64>, transpose: bool) -> Array2<f64> {
    let (m, n) = a.dim();
    let (order, k) = if transpose { (n, m) } else { (m, n) };
    let (Some(data), Ok(oi), Ok(ki), Ok(ni)) = (
        a.as_slice(),
        c_int::try_from(order),
        c_int::try_from(k),
        c_int::try_from(n),
    ) else {
        return if transpose {
            a.t().dot(a)
        } else {
            a.dot(&a.t())
        };
    };
    let mut g = Array2::<f64>::zeros((order, order));
    if order == 0 {
        return g;
    }
    const ROW_MAJOR: c_int = 101;
    const LOWER: c_int = 122;
    const NO_TRANS: c_int = 111;
    const TRANS: c_int = 112;
    // SAFETY: `data` is `m·n` contiguous row-major values (lda = n), `g` is `order²`
    // contiguous (ldc = order); all sizes fit in a C int (checked above).
    unsafe {
        cblas_dsyrk(
            ROW_MAJOR,
            LOWER,
            if transpose { TRANS } else { NO_TRANS },
            oi,
            ki,
            1.0,
            data.as_ptr(),
            ni.max(1),
            0.0,
            g.as_mut_ptr(),
            oi,
        );
    }
    for i in 0..order {
        for j in i + 1..order {
            g[[i, j]] = g[[j, i]];
        }
    }
    g
}

extern "C" {
    fn dsyevd_(
        jobz: *const c_char,
        uplo: *const c_char,
        n: *const c_int,
        a: *mut f64,
        lda: *const c_int,
        w: *mut f64,
        work: *mut f64,
        lwork: *const c_int,
        iwork: *mut c_int,
        liwork: *const c_int,
        info: *mut c_int,
    );
}

/// Eigen-decomposition of a symmetric `g: [m, m]` by LAPACK `dsyevd` (divide and conquer,
/// several times faster than the `dsyev` behind ndarray-linalg's `Eigh` at these sizes).
/// Returns the eigenvalues ascending and the eigenvectors as columns.
pub(crate) fn sym_eig(g: Array2<f64>) -> std::result::Result<(Array1<f64>, Array2<f64>), String> {
    let m = g.nrows();
    let n = c_int::try_from(m).map_err(|_| format!("matrix of order {m} too large"))?;
    // Symmetric, so its row-major buffer is also its column-major one.
    let mut a = g.into_raw_vec_and_offset().0;
    let mut w = vec![0.0f64; m];
    // One call of `dsyevd` (eigenvectors, lower triangle) with the workspaces `work`, `iwork`;
    // lengths −1 ask for their sizes instead, written to their first elements.
    let mut dsyevd = |work: &mut [f64], iwork: &mut [c_int], lens: [c_int; 2]| {
        let (jobz, uplo) = (b'V' as c_char, b'L' as c_char);
        let mut info: c_int = 0;
        // SAFETY: `a` is n·n and `w` is n; `work` and `iwork` hold `lens` elements, or at least
        // one when the lengths are −1 (LAPACK's documented workspace query).
        unsafe {
            dsyevd_(
                &jobz,
                &uplo,
                &n,
                a.as_mut_ptr(),
                &n,
                w.as_mut_ptr(),
                work.as_mut_ptr(),
                &lens[0],
                iwork.as_mut_ptr(),
                &lens[1],
                &mut info,
            );
        }
        info
    };
    let (mut work_q, mut iwork_q) = ([0.0f64], [0 as c_int]);
    let info = dsyevd(&mut work_q, &mut iwork_q, [-1, -1]);
    if info != 0 {
        return Err(format!("dsyevd workspace query failed (info {info})"));
    }
    let lwork = (work_q[0] as usize).max(1);
    let liwork = (iwork_q[0] as usize).max(1);
    let mut work = vec![0.0f64; lwork];
    let mut iwork: Vec<c_int> = vec![0; liwork];
    let info = dsyevd(&mut work, &mut iwork, [lwork as c_int, liwork as c_int]);
    if info != 0 {
        return Err(format!("dsyevd failed (info {info})"));
    }
    // Column-major eigenvectors: the row-major view holds them as rows; transpose.
    let rows = Array2::from_shape_vec((m, m), a).map_err(|e| e.to_string())?;
    Ok((Array1::from(w), rows.reversed_axes()))
}

/// How the remainder is carried to the next bond.
enum Carry {
    /// `Vᵀ` from a full SVD: carry `diag(S)·Vᵀ`.
    Svd(Array2<f64>),
    /// The unfolding itself: carry `Uᵀ·A`.
    Project(Array2<f64>),
}

/// Left singular vectors `U: [m, s]` and singular values (descending, `s = min(m, n)`) of
/// `a: [m, n]`, with what is needed to carry `diag(S)·Vᵀ` on.
///
/// Wide unfoldings (`m ≤ n`, the common case in a TT-SVD, whose first unfoldings are short and
/// very wide) use the symmetric eigendecomposition of the Gram matrix `A·Aᵀ = U S² Uᵀ` (one
/// `dsyrk` plus an `m × m` LAPACK `dsyevd`), which is several times cheaper than `dgesdd` there;
/// the carried remainder is then `Uᵀ·A`, so the decomposition stays exact at full rank whatever
/// the accuracy of the small singular values (which is `~ε_f64·σ_max²/σ`, far below `f32`
/// noise). Tall unfoldings use `dgesdd`.
fn bond_svd(a: Array2<f64>, k: usize) -> Result<(Array2<f64>, Array1<f64>, Carry)> {
    let (m, n) = a.dim();
    let fail = |reason: String| Error::Linalg {
        context: format!("TT-SVD of bond {k} unfolding [{m}, {n}]"),
        reason,
    };
    if m <= n {
        let gram = gram(&a);
        let (lam, vecs) = sym_eig(gram).map_err(fail)?;
        // Ascending → descending.
        let sigma: Array1<f64> = lam.iter().rev().map(|&l| l.max(0.0).sqrt()).collect();
        let mut u = vecs;
        u.invert_axis(Axis(1));
        Ok((u, sigma, Carry::Project(a)))
    } else {
        let (u, sigma, vt) = a.svddc(JobSvd::Some).map_err(|e| fail(e.to_string()))?;
        match (u, vt) {
            (Some(u), Some(vt)) => Ok((u, sigma, Carry::Svd(vt))),
            _ => Err(fail("SVD returned no singular vectors".into())),
        }
    }
}

/// TT-SVD of `tensor` (read in logical row-major order) viewed with shape `modes`.
///
/// Errors: an empty mode list, a mode of 0, `tensor.len()` different from the product of
/// `modes`, a wrong number of bond dims (must be `modes.len() − 1`), a bond dim of 0, an `eps`
/// outside `[0, 1)` or non-finite, a non-finite tensor value, or a LAPACK failure. A bond dim
/// above its unfolding's rank limit is capped and reported, not an error.
///
/// ```
/// use ndarray::Array;
/// use succulm_tt::{tt_svd, Truncation};
/// let a = Array::from_shape_fn((4, 6, 5), |(i, j, k)| (i * 30 + j * 5 + k) as f32 * 0.1 - 3.0);
/// let tt = tt_svd(a.view().into_dyn(), &[4, 6, 5], &Truncation::bond_dims(&[9, 9]))?;
/// // bond 0 is capped at 4 (the first core has only 4 rows); bond 1 at min(4·6, 5) = 5.
/// assert_eq!(tt.bond_dims, vec![4, 5]);
/// assert_eq!(tt.capped.len(), 2);
/// # Ok::<(), succulm_tt::Error>(())
/// ```
pub fn tt_svd(
    tensor: ArrayViewD<'_, f32>,
    modes: &[usize],
    truncation: &Truncation,
) -> Result<TtSvd> {
    let total = check_modes("modes", modes)?;
    if tensor.len() != total {
        return Err(Error::invalid_arg(
            "modes",
            format!(
                "product of modes {modes:?} is {total}, but the tensor has {} elements (shape {:?})",
                tensor.len(),
                tensor.shape()
            ),
        ));
    }
    let values: Vec<f64> = match tensor.as_slice() {
        Some(sl) => sl.iter().map(|&v| v as f64).collect(),
        None => tensor.iter().map(|&v| v as f64).collect(),
    };
    tt_svd_f64(values, modes, truncation)?.into_f32()
}

/// [`TtSvd`] with `f64` cores: what the data-aware decompositions work on before the final
/// cast (see [`tt_svd_f64`]).
pub(crate) type TtSvd64 = TtSvd<f64>;

impl TtSvd<f64> {
    /// The same decomposition with the cores cast to `f32`. Errors if a core value does not fit
    /// `f32` (a finite input near `f32::MAX` can give core entries beyond it).
    pub fn into_f32(self) -> Result<TtSvd> {
        let cores: Vec<Array3<f32>> = self.cores.iter().map(|c| c.mapv(|v| v as f32)).collect();
        if let Some(k) = cores.iter().position(|c| c.iter().any(|v| !v.is_finite())) {
            return Err(Error::invalid_arg(
                format!("cores.{k}"),
                "a core value overflows f32 (the input's values are too large to decompose in f32)",
            ));
        }
        Ok(TtSvd {
            cores,
            bond_dims: self.bond_dims,
            singular_values: self.singular_values,
            discarded: self.discarded,
            capped: self.capped,
            norm: self.norm,
        })
    }
}

/// Checks a [`Truncation`] for `d` modes: `d − 1` bond dims, none 0; `eps` finite in `[0, 1)`.
fn check_truncation(truncation: &Truncation, d: usize) -> Result<()> {
    if let Some(b) = &truncation.bond_dims {
        if b.len() != d - 1 {
            return Err(Error::invalid_arg(
                "bond_dims",
                format!(
                    "{} bond dims given for {d} modes; expected {} (one per bond)",
                    b.len(),
                    d - 1
                ),
            ));
        }
        if let Some(k) = b.iter().position(|&r| r == 0) {
            return Err(Error::invalid_arg(
                "bond_dims",
                format!("bond dim {k} is 0 (bond dims {b:?})"),
            ));
        }
    }
    if let Some(eps) = truncation.eps {
        if !eps.is_finite() || !(0.0..1.0).contains(&eps) {
            return Err(Error::invalid_arg(
                "eps",
                format!("relative tolerance must be in [0, 1), got {eps}"),
            ));
        }
    }
    Ok(())
}

/// TT-SVD of `values` (row-major, `f64`) viewed with shape `modes`, keeping the cores in `f64`.
/// The same algorithm, checks and errors as [`tt_svd`] (which is this, cast to `f32`).
pub(crate) fn tt_svd_f64(
    values: Vec<f64>,
    modes: &[usize],
    truncation: &Truncation,
) -> Result<TtSvd64> {
    let total = check_modes("modes", modes)?;
    Error::check_count("modes", values.len(), total, |g, w| {
        format!("product of modes {modes:?} is {w}, but the tensor has {g} elements")
    })?;
    let d = modes.len();
    check_truncation(truncation, d)?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid_arg("tensor", "contains a non-finite value"));
    }
    let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
    let delta = truncation.eps.map(|eps| {
        if d > 1 {
            eps / ((d - 1) as f64).sqrt() * norm
        } else {
            0.0
        }
    });

    let mut cores = Vec::with_capacity(d);
    let mut bond_dims = Vec::with_capacity(d.saturating_sub(1));
    let mut singular_values = Vec::with_capacity(d.saturating_sub(1));
    let mut discarded = Vec::with_capacity(d.saturating_sub(1));
    let mut capped = Vec::new();

    let mut r_prev = 1usize;
    let mut rest = total;
    let mut c = values;
    for (k, &n_k) in modes.iter().enumerate().take(d - 1) {
        rest /= n_k;
        let rows = r_prev * n_k;
        let mat = Array2::from_shape_vec((rows, rest), c)
            .map_err(|e| Error::invalid_arg("modes", e.to_string()))?;
        let (u, sigma, carry) = bond_svd(mat, k)?;
        let limit = sigma.len(); // = min(rows, rest)
        let mut r = limit;
        if let Some(b) = &truncation.bond_dims {
            if b[k] > limit {
                capped.push(CappedBond {
                    bond: k,
                    requested: b[k],
                    limit,
                });
            }
            r = r.min(b[k]);
        }
        if let Some(delta) = delta {
            // Smallest rank (at least 1) whose discarded tail norm is <= delta.
            let mut tail2 = 0.0f64;
            let mut r_eps = limit;
            while r_eps > 1 {
                let s = sigma[r_eps - 1];
                if (tail2 + s * s).sqrt() > delta {
                    break;
                }
                tail2 += s * s;
                r_eps -= 1;
            }
            r = r.min(r_eps);
        }
        let tail = sigma
            .slice(s![r..])
            .iter()
            .map(|s| s * s)
            .sum::<f64>()
            .sqrt();
        let core = Array3::from_shape_vec(
            (r_prev, n_k, r),
            u.slice(s![.., ..r]).iter().copied().collect(),
        )
        .map_err(|e| Error::invalid_arg("modes", e.to_string()))?;
        cores.push(core);
        // C = diag(S[:r]) · Vᵀ[:r] (= U[:, :r]ᵀ · C), row-major.
        c = match carry {
            Carry::Svd(vt) => {
                let mut p = vt.slice(s![..r, ..]).as_standard_layout().into_owned();
                for (mut row, &s) in p.axis_iter_mut(Axis(0)).zip(sigma.iter()) {
                    row *= s;
                }
                p.into_raw_vec_and_offset().0
            }
            Carry::Project(a) => {
                let ut = u.slice(s![.., ..r]).t().as_standard_layout().into_owned();
                let mut p = Array2::<f64>::zeros((r, a.ncols()));
                // beta = 1 onto zeros: OpenBLAS skips its separate C-scaling pass.
                ndarray::linalg::general_mat_mul(1.0, &ut, &a, 1.0, &mut p);
                p.into_raw_vec_and_offset().0
            }
        };
        bond_dims.push(r);
        singular_values.push(sigma);
        discarded.push(tail);
        r_prev = r;
    }
    let last = Array3::from_shape_vec((r_prev, modes[d - 1], 1), c)
        .map_err(|e| Error::invalid_arg("modes", e.to_string()))?;
    cores.push(last);
    Ok(TtSvd64 {
        cores,
        bond_dims,
        singular_values,
        discarded,
        capped,
        norm,
    })
}

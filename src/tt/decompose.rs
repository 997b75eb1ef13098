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
//! The SVDs run in `f64` (LAPACK `dgesdd` through ndarray-linalg) and the cores are cast to `f32`
//! at the end. Single-precision SVDs lose about `√n·ε_f32` of orthogonality per bond and the
//! errors compound along the train; in `f64` the full-rank decomposition reproduces an `f32`
//! tensor to `f32` rounding, and the reported singular values are accurate far below the `f32`
//! noise floor, so spectra and Eckart–Young tails can be trusted. The cost is small: for the
//! truncated trains this crate builds, the unfoldings are short and wide.

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

/// The result of a TT-SVD.
#[derive(Debug, Clone)]
pub struct TtSvd {
    /// The cores, each `[r_{k−1}, n_k, r_k]` with `r_0 = r_d = 1`.
    pub cores: Vec<Array3<f32>>,
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

impl TtSvd {
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

/// TT-SVD of `tensor` (read in logical row-major order) viewed with shape `modes`.
///
/// Errors: an empty mode list, a mode of 0, `tensor.len()` different from the product of
/// `modes`, a wrong number of bond dims (must be `modes.len() − 1`), a bond dim of 0, an `eps`
/// outside `[0, 1)` or non-finite, a non-finite tensor value, or a LAPACK failure. A bond dim
/// above its unfolding's rank limit is capped and reported, not an error.
///
/// ```
/// use ndarray::Array;
/// use succulm::tt::{tt_svd, Truncation};
/// let a = Array::from_shape_fn((4, 6, 5), |(i, j, k)| (i * 30 + j * 5 + k) as f32 * 0.1 - 3.0);
/// let tt = tt_svd(a.view().into_dyn(), &[4, 6, 5], &Truncation::bond_dims(&[9, 9]))?;
/// // bond 0 is capped at 4 (the first core has only 4 rows); bond 1 at min(4·6, 5) = 5.
/// assert_eq!(tt.bond_dims, vec![4, 5]);
/// assert_eq!(tt.capped.len(), 2);
/// # Ok::<(), succulm::Error>(())
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
    let d = modes.len();
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
    if tensor.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid_arg("tensor", "contains a non-finite value"));
    }

    let values: Vec<f64> = tensor.iter().map(|&v| v as f64).collect();
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
        let (u, sigma, vt) = mat.svddc(JobSvd::Some).map_err(|e| Error::Linalg {
            context: format!("TT-SVD of bond {k} unfolding [{rows}, {rest}]"),
            reason: e.to_string(),
        })?;
        let (u, vt) = match (u, vt) {
            (Some(u), Some(vt)) => (u, vt),
            _ => {
                return Err(Error::Linalg {
                    context: format!("TT-SVD of bond {k}"),
                    reason: "SVD returned no singular vectors".into(),
                })
            }
        };
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
            u.slice(s![.., ..r]).iter().map(|&v| v as f32).collect(),
        )
        .map_err(|e| Error::invalid_arg("modes", e.to_string()))?;
        cores.push(core);
        // C = diag(S[:r]) · Vᵀ[:r], row-major.
        c = vt
            .slice(s![..r, ..])
            .axis_iter(Axis(0))
            .zip(sigma.iter())
            .flat_map(|(row, &s)| row.into_iter().map(move |&v| v * s))
            .collect();
        bond_dims.push(r);
        singular_values.push(sigma);
        discarded.push(tail);
        r_prev = r;
    }
    let last = Array3::from_shape_vec(
        (r_prev, modes[d - 1], 1),
        c.iter().map(|&v| v as f32).collect(),
    )
    .map_err(|e| Error::invalid_arg("modes", e.to_string()))?;
    cores.push(last);
    Ok(TtSvd {
        cores,
        bond_dims,
        singular_values,
        discarded,
        capped,
        norm,
    })
}

//! [`InputStats`]: the moments of a linear layer's inputs over calibration rows — everything the
//! data-aware truncations need, and never the rows themselves.
//!
//! For a layer `y = x·Wᵀ + b` with inputs `X: [N, n_in]` (the rows the caller chooses), the stats
//! hold `N`, `Σ x`, `Σ |x|` and `XᵀX`, accumulated in `f64`. *Paired* stats also hold, for
//! every row, the input the **reference** layer saw at the same position (`X_r`): `Σ x_r`,
//! `X_rᵀX_r` and the cross moment `XᵀX_r`. They arise in sequential calibration, where a layer is
//! fitted on the inputs of a model whose earlier layers are already compressed (`X`) while its
//! target stays what the dense model computed (`X_r`).
//!
//! ```
//! use ndarray::array;
//! use succulm_tt::InputStats;
//! let x = array![[1.0f32, 2.0], [3.0, -4.0]];
//! let s = InputStats::from_rows(x.view())?;
//! assert_eq!(s.rows(), 2);
//! assert_eq!(s.mean().to_vec(), vec![2.0, -1.0]);
//! // second moment E[x xᵀ]: [[(1 + 9)/2, (2 − 12)/2], [·, (4 + 16)/2]]
//! assert_eq!(s.second_moment()[[0, 1]], -5.0);
//! assert_eq!(s.second_moment()[[1, 1]], 10.0);
//! # Ok::<(), succulm_tt::Error>(())
//! ```

use ndarray::{Array1, Array2, ArrayView2, Axis};

use super::decompose::syrk;
use crate::error::{Error, Result};
use crate::linear::Linear;

/// The reference inputs' moments of paired stats (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
struct Paired {
    /// `Σ x_r`, `[n_in]`.
    sum: Array1<f64>,
    /// `X_rᵀ X_r`, `[n_in, n_in]`.
    gram: Array2<f64>,
    /// `Xᵀ X_r`, `[n_in, n_in]` (row index: the layer's input, column: the reference's).
    cross: Array2<f64>,
}

/// Moments of a layer's inputs over calibration rows (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct InputStats {
    rows: u64,
    /// `Σ x`, `[n_in]`.
    sum: Array1<f64>,
    /// `Σ |x|`, `[n_in]`.
    abs_sum: Array1<f64>,
    /// `XᵀX`, `[n_in, n_in]`.
    gram: Array2<f64>,
    paired: Option<Paired>,
}

/// `x` as `f64`, after checking its width and that every value is finite.
fn checked_f64(x: ArrayView2<'_, f32>, n_in: usize, what: &str) -> Result<Array2<f64>> {
    if x.ncols() != n_in {
        return Err(Error::shape(
            format!("InputStats {what}"),
            &[x.nrows(), n_in],
            x.shape(),
        ));
    }
    if let Some(((r, c), _)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::invalid_arg(
            what,
            format!("row {r}, column {c} is not finite"),
        ));
    }
    Ok(x.mapv(|v| v as f64))
}

impl InputStats {
    /// Empty stats for inputs of width `n_in` (no rows yet).
    pub fn new(n_in: usize) -> Self {
        InputStats {
            rows: 0,
            sum: Array1::zeros(n_in),
            abs_sum: Array1::zeros(n_in),
            gram: Array2::zeros((n_in, n_in)),
            paired: None,
        }
    }

    /// The stats of the rows of `x: [N, n_in]`. Errors on a non-finite value.
    pub fn from_rows(x: ArrayView2<'_, f32>) -> Result<Self> {
        let mut s = InputStats::new(x.ncols());
        s.add_rows(x)?;
        Ok(s)
    }

    /// Adds the rows of `x: [N, n_in]`. Errors, leaving the stats unchanged, on a width other
    /// than `n_in`, a non-finite value, or paired stats (add those with
    /// [`add_paired_rows`](Self::add_paired_rows)).
    pub fn add_rows(&mut self, x: ArrayView2<'_, f32>) -> Result<()> {
        if self.paired.is_some() {
            return Err(Error::invalid_arg(
                "x",
                "these stats are paired: add rows with add_paired_rows",
            ));
        }
        let x = checked_f64(x, self.n_in(), "x")?;
        self.add_own(&x);
        Ok(())
    }

    /// Adds rows of paired inputs: `x: [N, n_in]` as the layer sees them, `reference: [N, n_in]`
    /// as the reference layer saw them at the same positions. Errors, leaving the stats
    /// unchanged, on shapes that differ or are not `n_in` wide, a non-finite value, or stats
    /// that already hold unpaired rows.
    pub fn add_paired_rows(
        &mut self,
        x: ArrayView2<'_, f32>,
        reference: ArrayView2<'_, f32>,
    ) -> Result<()> {
        if self.rows > 0 && self.paired.is_none() {
            return Err(Error::invalid_arg(
                "reference",
                "these stats hold unpaired rows: add rows with add_rows",
            ));
        }
        if reference.dim() != x.dim() {
            return Err(Error::shape(
                "InputStats reference",
                x.shape(),
                reference.shape(),
            ));
        }
        let n = self.n_in();
        let xc = checked_f64(x, n, "x")?;
        let xr = checked_f64(reference, n, "reference")?;
        let p = self.paired.get_or_insert_with(|| Paired {
            sum: Array1::zeros(n),
            gram: Array2::zeros((n, n)),
            cross: Array2::zeros((n, n)),
        });
        p.sum += &xr.sum_axis(Axis(0));
        p.gram += &syrk(&xr, true);
        ndarray::linalg::general_mat_mul(1.0, &xc.t(), &xr, 1.0, &mut p.cross);
        self.add_own(&xc);
        Ok(())
    }

    fn add_own(&mut self, x: &Array2<f64>) {
        self.rows += x.nrows() as u64;
        self.sum += &x.sum_axis(Axis(0));
        self.abs_sum += &x.mapv(f64::abs).sum_axis(Axis(0));
        self.gram += &syrk(x, true);
    }

    /// Adds the rows counted in `other` (same width, both paired or both not).
    pub fn merge(&mut self, other: &InputStats) -> Result<()> {
        if other.n_in() != self.n_in() {
            return Err(Error::shape(
                "InputStats::merge other",
                &[self.n_in()],
                &[other.n_in()],
            ));
        }
        match (&mut self.paired, &other.paired) {
            (Some(a), Some(b)) => {
                a.sum += &b.sum;
                a.gram += &b.gram;
                a.cross += &b.cross;
            }
            (None, None) => {}
            (None, Some(b)) if self.rows == 0 => self.paired = Some(b.clone()),
            (Some(_), None) if other.rows == 0 => {}
            _ => {
                return Err(Error::invalid_arg(
                    "other",
                    "cannot merge paired and unpaired stats",
                ))
            }
        }
        self.rows += other.rows;
        self.sum += &other.sum;
        self.abs_sum += &other.abs_sum;
        self.gram += &other.gram;
        Ok(())
    }

    /// The input width.
    pub fn n_in(&self) -> usize {
        self.sum.len()
    }

    /// The number of rows added.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Whether the stats also hold the reference inputs (see the [module docs](self)).
    pub fn is_paired(&self) -> bool {
        self.paired.is_some()
    }

    fn per_row(&self, a: &Array1<f64>) -> Array1<f64> {
        a / (self.rows.max(1) as f64)
    }

    /// `E[x]`, `[n_in]` (zeros without rows).
    pub fn mean(&self) -> Array1<f64> {
        self.per_row(&self.sum)
    }

    /// `E[|x|]` per input channel, `[n_in]`.
    pub fn mean_abs(&self) -> Array1<f64> {
        self.per_row(&self.abs_sum)
    }

    /// `E[x xᵀ] = XᵀX / N`, `[n_in, n_in]`.
    pub fn second_moment(&self) -> Array2<f64> {
        &self.gram / (self.rows.max(1) as f64)
    }

    /// `E[(x − μ)(x − μ)ᵀ]`, `[n_in, n_in]`.
    pub fn covariance(&self) -> Array2<f64> {
        let mu = self.mean();
        centred(&self.second_moment(), &mu, &mu)
    }

    /// The reference inputs' mean `E[x_r]` (paired stats; else [`mean`](Self::mean)).
    pub fn reference_mean(&self) -> Array1<f64> {
        match &self.paired {
            Some(p) => self.per_row(&p.sum),
            None => self.mean(),
        }
    }

    /// `E[x_r x_rᵀ]` of the reference inputs (paired; else the second moment).
    pub fn reference_second_moment(&self) -> Array2<f64> {
        match &self.paired {
            Some(p) => &p.gram / (self.rows.max(1) as f64),
            None => self.second_moment(),
        }
    }

    /// `E[x x_rᵀ]`: rows index the layer's input, columns the reference's (paired; else the
    /// second moment).
    pub fn cross_moment(&self) -> Array2<f64> {
        match &self.paired {
            Some(p) => &p.cross / (self.rows.max(1) as f64),
            None => self.second_moment(),
        }
    }

    /// Errors unless the stats have rows and `n_in` columns (`what` names the layer).
    pub(crate) fn check_for(&self, n_in: usize, what: &str) -> Result<()> {
        if self.n_in() != n_in {
            return Err(Error::shape(
                format!("calibration stats of {what}"),
                &[n_in],
                &[self.n_in()],
            ));
        }
        if self.rows == 0 {
            return Err(Error::invalid_arg(
                "stats",
                format!("the calibration stats of {what} have no rows"),
            ));
        }
        Ok(())
    }

    /// The relative output error of `candidate` against `reference` on these rows:
    /// `‖(X_r Wᵀ + b) − (X Ŵᵀ + b̂)‖_F / ‖X_r Wᵀ‖_F`, computed from the moments (`X_r = X`
    /// for unpaired stats). `0` when both are 0; `inf` when only the denominator is.
    ///
    /// Errors if the layers' shapes differ, are not `n_in` wide, or the stats have no rows.
    pub fn output_error(&self, reference: &Linear, candidate: &Linear) -> Result<f64> {
        let n = self.n_in();
        self.check_for(reference.in_features(), "the reference layer")?;
        if candidate.in_features() != n || candidate.out_features() != reference.out_features() {
            return Err(Error::shape(
                "InputStats::output_error candidate",
                &[reference.out_features(), n],
                &[candidate.out_features(), candidate.in_features()],
            ));
        }
        let w = reference.weight().mapv(|v| v as f64);
        let wh = candidate.weight().mapv(|v| v as f64);
        let db = (&reference.bias() - &candidate.bias()).mapv(|v| v as f64);
        Ok(self.relative_output_error(&w, &wh, &db))
    }

    /// [`output_error`](Self::output_error) on `f64` weights `w`, `ŵ: [out, n_in]` and the bias
    /// change `b − b̂: [out]` (shapes checked by the caller).
    pub(crate) fn relative_output_error(
        &self,
        w: &Array2<f64>,
        wh: &Array2<f64>,
        db: &Array1<f64>,
    ) -> f64 {
        let c_rr = self.reference_second_moment();
        let ref_energy = trace_quadratic(w, &c_rr, w);
        let energy = if self.paired.is_some() {
            // e = W x_r − Ŵ x + Δb:  E‖e‖² = tr(W C_rr Wᵀ) − 2 tr(Ŵ C_xr Wᵀ) + tr(Ŵ C_xx Ŵᵀ)
            //                               + 2 Δbᵀ (W μ_r − Ŵ μ) + ‖Δb‖².
            ref_energy - 2.0 * trace_quadratic(wh, &self.cross_moment(), w)
                + trace_quadratic(wh, &self.second_moment(), wh)
                + 2.0 * db.dot(&(w.dot(&self.reference_mean()) - wh.dot(&self.mean())))
                + db.dot(db)
        } else {
            // e = ΔW x + Δb, ΔW = W − Ŵ: no cancellation between large terms.
            let dw = w - wh;
            trace_quadratic(&dw, &c_rr, &dw) + 2.0 * db.dot(&dw.dot(&self.mean())) + db.dot(db)
        };
        let energy = energy.max(0.0);
        if energy == 0.0 {
            0.0
        } else {
            (energy / ref_energy).sqrt()
        }
    }
}

/// `tr(A · M · Bᵀ)` for `a, b: [out, n]`, `m: [n, n]`.
pub(crate) fn trace_quadratic(a: &Array2<f64>, m: &Array2<f64>, b: &Array2<f64>) -> f64 {
    (a.dot(m) * b).sum()
}

/// `m − μ_a μ_bᵀ`.
pub(crate) fn centred(m: &Array2<f64>, mu_a: &Array1<f64>, mu_b: &Array1<f64>) -> Array2<f64> {
    let n = mu_a.len();
    let outer = mu_a
        .view()
        .into_shape_with_order((n, 1))
        .expect("n×1")
        .dot(&mu_b.view().into_shape_with_order((1, n)).expect("1×n"));
    m - &outer
}

//! Compressing a model's FFN blocks by a [`Method`]: what the sweep, the replication and the trap
//! study call. [`tensorized`] is the seed's plain TT-SVD of chosen blocks; [`compress`] adds the
//! data-aware methods, calibrated on [`SweepCalibration`]; [`budget_arms`] spends one parameter
//! budget with uniform and with allocated bonds. Each returns the compressed copy and a
//! [`CompressionInfo`] (parameters, and each projection's weight and output errors).

use serde::{Deserialize, Serialize};

use crate::compress::calibration::{
    compress_ffns, plan_budget, Budget, CalibrationMode, CalibrationRows, DenseCalibration,
};
use crate::compress::method::Method;
use crate::compress::surgery::{FfnTtSpec, TensorizeReport};
use crate::error::{Error, Result};
use crate::nn::model::Model;

/// One compressed projection's reconstruction and output errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectionError {
    /// Block index.
    pub block: usize,
    /// Projection name (`"ffn.0"` up, `"ffn.2"` down).
    pub projection: String,
    /// `‖W_tt − W‖_F / ‖W‖_F`.
    #[serde(deserialize_with = "crate::fs::f64_or_nan")]
    pub rel_error: f64,
    /// Relative output error on the calibration rows `X` (`[rows, in]`, the projection's inputs):
    /// `‖X(W − Ŵ)ᵀ‖_F / ‖XWᵀ‖_F`. NaN when not computed.
    #[serde(default = "crate::fs::nan", deserialize_with = "crate::fs::f64_or_nan")]
    pub output_error: f64,
    /// The same on validation rows. NaN when not computed.
    #[serde(default = "crate::fs::nan", deserialize_with = "crate::fs::f64_or_nan")]
    pub val_output_error: f64,
    /// The TT's effective bond dims (empty when not recorded).
    #[serde(default)]
    pub bond_dims: Vec<usize>,
}

impl ProjectionError {
    /// A projection with only its reconstruction error known (output errors NaN, no bond dims).
    pub fn new(block: usize, projection: impl Into<String>, rel_error: f64) -> Self {
        ProjectionError {
            block,
            projection: projection.into(),
            rel_error,
            output_error: f64::NAN,
            val_output_error: f64::NAN,
            bond_dims: Vec::new(),
        }
    }
}

/// What the compression did, as reported by the `compress` callback.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompressionInfo {
    /// FFN parameters of the compressed blocks before compression (dense weights and biases).
    pub ffn_params_dense: usize,
    /// The same FFNs' parameters after compression (TT cores and biases).
    pub ffn_params_tt: usize,
    /// Each compressed projection's relative reconstruction error.
    pub projections: Vec<ProjectionError>,
}

impl CompressionInfo {
    /// The largest relative reconstruction error (0 with no projection).
    pub fn max_rel_error(&self) -> f64 {
        self.projections
            .iter()
            .map(|p| p.rel_error)
            .fold(0.0, f64::max)
    }

    /// The largest calibration output error over the projections where it was computed (NaN
    /// when none was).
    pub fn max_output_error(&self) -> f64 {
        max_finite(self.projections.iter().map(|p| p.output_error))
    }

    /// The largest validation output error over the projections where it was computed (NaN
    /// when none was).
    pub fn max_val_output_error(&self) -> f64 {
        max_finite(self.projections.iter().map(|p| p.val_output_error))
    }

    /// `ffn_params_tt / ffn_params_dense` (NaN if dense is 0).
    pub fn param_ratio(&self) -> f64 {
        if self.ffn_params_dense == 0 {
            f64::NAN
        } else {
            self.ffn_params_tt as f64 / self.ffn_params_dense as f64
        }
    }
}

/// The largest finite value (NaN when there is none).
fn max_finite(values: impl Iterator<Item = f64>) -> f64 {
    values
        .filter(|v| v.is_finite())
        .fold(f64::NAN, |a, b| if a.is_nan() || b > a { b } else { a })
}

/// The seed's `tensorized_model`: a copy of `model` with each listed block's FFN replaced by TT
/// layers at its middle bond ([`FfnTtSpec::for_config`](FfnTtSpec::for_config), which is
/// the seed's factorisation for `d_model` 50 and FFN width 200), with what the compression did.
///
/// Errors if `blocks` and `bonds` differ in length or a block is out of range.
pub fn tensorized(
    model: &Model,
    blocks: &[usize],
    bonds: &[usize],
) -> Result<(Model, CompressionInfo)> {
    if blocks.len() != bonds.len() {
        return Err(Error::invalid_arg(
            "bonds",
            format!("{} bonds for {} blocks", bonds.len(), blocks.len()),
        ));
    }
    let mut m = model.clone();
    let mut reports = Vec::with_capacity(blocks.len());
    for (&b, &bond) in blocks.iter().zip(bonds) {
        let spec = FfnTtSpec::for_config(model.config(), bond);
        reports.push(m.tensorize_ffn(b, &spec)?);
    }
    Ok((m, CompressionInfo::from_reports(&reports)))
}

impl CompressionInfo {
    /// What [`Model::tensorize_ffn`](Model::tensorize_ffn) or
    /// [`compress_ffns`] did to each block: parameters, and per projection its weight error,
    /// bond dims and (when calibrated) output errors on the calibration and held-out rows.
    pub fn from_reports(reports: &[TensorizeReport]) -> Self {
        let mut info = CompressionInfo::default();
        for r in reports {
            info.ffn_params_dense += r.dense_params();
            info.ffn_params_tt += r.tt_params();
            for (name, p) in [("ffn.0", &r.up), ("ffn.2", &r.down)] {
                info.projections.push(ProjectionError {
                    output_error: p.output_error,
                    val_output_error: p.val_output_error,
                    bond_dims: p.bond_dims.clone(),
                    ..ProjectionError::new(r.block, name, p.rel_error as f64)
                });
            }
        }
        info
    }
}

/// What a budget build returns: the uniform arm, then the allocated arm, each as (compressed
/// model, what the compression did, the allocator's discarded energy).
pub type BudgetArms<M> = [(M, CompressionInfo, f64); 2];

/// What a sweep's data-aware cells share: the calibration rows (the training split), the dense
/// model's stats on them, and how several blocks are calibrated.
#[derive(Debug, Clone)]
pub struct SweepCalibration<'a> {
    /// Calibration rows and held-out rows (whose output errors are reported).
    pub rows: CalibrationRows<'a>,
    /// The dense model's stats on both.
    pub dense: DenseCalibration,
    /// One-shot or sequential.
    pub mode: CalibrationMode,
}

impl<'a> SweepCalibration<'a> {
    /// Collects the dense model's stats on `rows`.
    pub fn collect(
        model: &Model,
        rows: CalibrationRows<'a>,
        mode: CalibrationMode,
    ) -> Result<Self> {
        Ok(SweepCalibration {
            dense: DenseCalibration::collect(model, &rows)?,
            rows,
            mode,
        })
    }

    /// One line for the report, e.g. `"sequential, 1008 rows (16537 positions)"`.
    pub fn describe(&self) -> String {
        format!(
            "{}, {} rows ({} positions)",
            self.mode.key(),
            self.dense.train.rows(),
            self.dense.train.positions()
        )
    }
}

/// [`tensorized`] with a method: the listed blocks of a copy of `model` compressed at their
/// middle bonds ([`FfnTtSpec::for_config`](FfnTtSpec::for_config)) by plain TT-SVD or a
/// data-aware objective calibrated by `calibration` ([`compress_ffns`]). Plain TT-SVD without
/// calibration is exactly [`tensorized`]; with it, the same cores, and the projections' output
/// errors measured on the dense model's inputs.
///
/// Errors as [`tensorized`], and for a data-aware method without calibration.
pub fn compress(
    model: &Model,
    method: Method,
    blocks: &[usize],
    bonds: &[usize],
    calibration: Option<&SweepCalibration<'_>>,
) -> Result<(Model, CompressionInfo)> {
    if blocks.len() != bonds.len() {
        return Err(Error::invalid_arg(
            "bonds",
            format!("{} bonds for {} blocks", bonds.len(), blocks.len()),
        ));
    }
    let Some(cal) = calibration else {
        if method.is_data_aware() {
            return Err(Error::invalid_arg(
                "method",
                format!("{} needs calibration data", method.key()),
            ));
        }
        return tensorized(model, blocks, bonds);
    };
    let targets: Vec<(usize, FfnTtSpec)> = blocks
        .iter()
        .zip(bonds)
        .map(|(&b, &m)| (b, FfnTtSpec::for_config(model.config(), m)))
        .collect();
    let (m, reports) = compress_ffns(
        model,
        &targets,
        &method.config(),
        cal.mode,
        &cal.rows,
        Some(&cal.dense),
    )?;
    Ok((m, CompressionInfo::from_reports(&reports)))
}

/// The two arms of a budget cell for [`run_budget`]: `blocks` compressed with `method` at the
/// uniform bond that fits `fraction` of their FFN parameters, and at the bonds
/// [`plan_budget`] allocates under the same parameter count; each with its discarded energy.
pub fn budget_arms(
    model: &Model,
    method: Method,
    blocks: &[usize],
    fraction: f64,
    calibration: &SweepCalibration<'_>,
) -> Result<BudgetArms<Model>> {
    let config = method.config();
    let plan = plan_budget(
        model,
        blocks,
        Budget::Fraction(fraction),
        &config,
        &calibration.dense,
    )?;
    let arm = |specs: &[(usize, FfnTtSpec)], energy: f64| {
        let (m, reports) = compress_ffns(
            model,
            specs,
            &config,
            calibration.mode,
            &calibration.rows,
            Some(&calibration.dense),
        )?;
        Ok((m, CompressionInfo::from_reports(&reports), energy))
    };
    Ok([
        arm(&plan.uniform, plan.uniform_energy)?,
        arm(&plan.allocated, plan.allocated_energy)?,
    ])
}

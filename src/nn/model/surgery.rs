//! Model surgery (re-exported as `succulm::compress::surgery`): replacing a block's FFN projections by tensor-train layers made from their
//! current weights (the seed's `tensorized_model`), and back.
//!
//! ```
//! use succulm::{FfnTtSpec, Model, ModelConfig};
//! let mut model = Model::new(ModelConfig::profile("upper_middle", 30)?, 0)?;
//! // The seed's factorisation: 50→200 as [5,10]→[10,20], bonds [10, m, 10]; 200→50 likewise.
//! let report = model.tensorize_ffn(0, &FfnTtSpec::seed(27))?;
//! assert_eq!(report.up.bond_dims, vec![10, 27, 10]);
//! assert!(report.up.rel_error > 0.0 && report.up.rel_error < 1.0);
//! # Ok::<(), succulm::Error>(())
//! ```

use serde::Serialize;

use crate::error::{Error, Result};
use crate::nn::layers::{FfnProjection, FfnTtSpec, Linear, Projection};
use crate::nn::model::{Model, ModelConfig};
use crate::tt::{
    AlsReport, CappedBond, DataAware, InputStats, Objective, TTLayer, TTSpec, Truncation,
};

impl FfnTtSpec {
    /// [`balanced`](Self::balanced) for a model configuration (`d_model`, `ffn_dim`).
    pub fn for_config(config: &ModelConfig, m: usize) -> Self {
        Self::balanced(config.d_model, config.ffn_dim(), m)
    }
}

/// What tensorizing one projection did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectionReport {
    /// Parameters of the dense layer (weight and bias).
    pub dense_params: usize,
    /// Parameters of the TT layer (cores and bias).
    pub tt_params: usize,
    /// `‖W − W_tt‖_F / ‖W‖_F` against the weights it replaced.
    pub rel_error: f32,
    /// The effective bond dims.
    pub bond_dims: Vec<usize>,
    /// Requested bond dims that were capped to their unfolding's rank limit.
    pub capped: Vec<CappedBond>,
    /// The objective the cores minimise ([`Objective::Weight`] for plain TT-SVD).
    pub objective: Objective,
    /// Relative output error on the calibration rows ([`InputStats::output_error`]); NaN
    /// when the projection was tensorized without calibration.
    pub output_error: f64,
    /// Plain TT-SVD's output error at the same bonds on the same rows (NaN without calibration).
    pub plain_output_error: f64,
    /// Relative output error on held-out rows, when the caller measured it (else NaN).
    pub val_output_error: f64,
    /// Whether folding the metric back was exact (always for plain TT-SVD).
    pub fold_back_exact: bool,
    /// The ALS refinement, when it ran.
    pub als: Option<AlsReport>,
}

/// What [`Model::tensorize_ffn`] did to one block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorizeReport {
    /// The block.
    pub block: usize,
    /// `ffn.0`.
    pub up: ProjectionReport,
    /// `ffn.2`.
    pub down: ProjectionReport,
}

impl TensorizeReport {
    /// Dense FFN parameters of the block (both projections).
    pub fn dense_params(&self) -> usize {
        self.up.dense_params + self.down.dense_params
    }

    /// TT FFN parameters of the block (both projections).
    pub fn tt_params(&self) -> usize {
        self.up.tt_params + self.down.tt_params
    }
}

/// Calibration for one projection: its inputs' stats and how to use them.
pub type DataAwareInput<'a> = (&'a InputStats, &'a DataAware);

fn tensorize(
    proj: &Projection,
    spec: &TTSpec,
    what: &str,
    data: Option<DataAwareInput<'_>>,
) -> Result<(TTLayer, ProjectionReport)> {
    let dense: Linear = proj.to_dense();
    let wrap = |e: Error| Error::invalid_arg(what, e.to_string());
    let truncation = Truncation::bond_dims(&spec.bond_dims);
    let crate::tt::Decomposed {
        tt,
        capped,
        data_aware: da,
    } = crate::tt::decompose(
        &dense,
        spec.layout,
        &spec.in_modes,
        &spec.out_modes,
        &truncation,
        data,
    )
    .map_err(wrap)?;
    let report = ProjectionReport {
        dense_params: dense.weight().len() + dense.bias().len(),
        tt_params: tt.num_params() + tt.bias().len(),
        rel_error: tt.relative_error(&dense),
        bond_dims: tt.bond_dims().to_vec(),
        capped,
        objective: da.as_ref().map_or(Objective::Weight, |r| r.objective),
        output_error: da.as_ref().map_or(f64::NAN, |r| r.output_error),
        plain_output_error: da.as_ref().map_or(f64::NAN, |r| r.plain_output_error),
        val_output_error: f64::NAN,
        fold_back_exact: da.as_ref().map_or(true, |r| r.fold_back_exact),
        als: da.and_then(|r| r.als),
    };
    Ok((tt, report))
}

impl Model {
    /// Replaces block `block`'s FFN up- and down-projections by TT layers decomposed from their
    /// current weights (a TT projection is first made dense again, so repeated surgery always
    /// starts from the weights the block computes with). Forward, backward (fine-tuning the
    /// cores) and checkpoints work with the result.
    ///
    /// Errors: a block index out of range, a spec whose modes do not match the projection's
    /// shape, a bond dim of 0 or a wrong number of bond dims (the model is left unchanged).
    pub fn tensorize_ffn(&mut self, block: usize, spec: &FfnTtSpec) -> Result<TensorizeReport> {
        let n = self.config().n_layers;
        let b = self.blocks_mut().get_mut(block).ok_or_else(|| {
            Error::invalid_arg("block", format!("{block} is out of range for {n} blocks"))
        })?;
        let (up, up_report) =
            tensorize(&b.ffn.up, &spec.up, &format!("blocks.{block}.ffn.0"), None)?;
        let (down, down_report) = tensorize(
            &b.ffn.down,
            &spec.down,
            &format!("blocks.{block}.ffn.2"),
            None,
        )?;
        b.ffn.up = Projection::Tt(up);
        b.ffn.down = Projection::Tt(down);
        Ok(TensorizeReport {
            block,
            up: up_report,
            down: down_report,
        })
    }

    /// Replaces one FFN projection of block `block` by a TT layer decomposed from its current
    /// weights: by plain TT-SVD (`data = None`), or data-aware on the given calibration stats
    /// of its inputs ([`TTLayer::decompose_data_aware`]). The report carries the weight error
    /// and, with calibration, the output errors beside plain TT-SVD's.
    ///
    /// Errors (the model is left unchanged): a block out of range, a spec that does not fit the
    /// projection, stats of another width or without rows, an invalid configuration.
    pub fn tensorize_projection(
        &mut self,
        block: usize,
        which: FfnProjection,
        spec: &TTSpec,
        data: Option<DataAwareInput<'_>>,
    ) -> Result<ProjectionReport> {
        let n = self.config().n_layers;
        let b = self.blocks_mut().get_mut(block).ok_or_else(|| {
            Error::invalid_arg("block", format!("{block} is out of range for {n} blocks"))
        })?;
        let proj = b.ffn.projection_mut(which);
        let (tt, report) = tensorize(proj, spec, &which.module(block), data)?;
        *proj = Projection::Tt(tt);
        Ok(report)
    }

    /// Makes block `block`'s FFN projections dense again (contracting any TT layer).
    pub fn densify_ffn(&mut self, block: usize) -> Result<()> {
        let n = self.config().n_layers;
        let b = self.blocks_mut().get_mut(block).ok_or_else(|| {
            Error::invalid_arg("block", format!("{block} is out of range for {n} blocks"))
        })?;
        b.ffn.up = Projection::Dense(b.ffn.up.to_dense());
        b.ffn.down = Projection::Dense(b.ffn.down.to_dense());
        Ok(())
    }

    /// The model's TT projections with their module names (`"blocks.0.ffn.0"`), in block order.
    fn tt_projections(&self) -> Vec<(String, &TTLayer)> {
        let mut out = Vec::new();
        for (i, b) in self.blocks().iter().enumerate() {
            for (j, p) in [(0, &b.ffn.up), (2, &b.ffn.down)] {
                if let Projection::Tt(t) = p {
                    out.push((format!("blocks.{i}.ffn.{j}"), t));
                }
            }
        }
        out
    }

    /// Names of the parameters that belong to TT projections (cores and biases), e.g. to
    /// fine-tune only them after compression.
    pub fn tt_parameter_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for (module, t) in self.tt_projections() {
            crate::tt::params::Parameters::visit(t, &module, &mut |n, _| names.push(n));
        }
        names
    }

    /// The TT specs of the model's TT projections, by module name (`"blocks.0.ffn.0"`).
    pub fn tt_specs(&self) -> Vec<(String, TTSpec)> {
        self.tt_projections()
            .into_iter()
            .map(|(module, t)| (module, t.spec().clone()))
            .collect()
    }
}

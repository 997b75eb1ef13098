//! Calibration for data-aware compression: the inputs every FFN projection of a model really
//! sees, and the compression of several blocks calibrated one-shot or sequentially.
//!
//! A [`Calibration`] runs the model as it is over rows the caller chooses (by default, in the
//! sweep, the training split — never the validation rows the sweep scores on) and keeps, for
//! every FFN projection, the moments of its inputs ([`InputStats`]: `XᵀX` in `f64`, means, mean
//! absolute values) over the **real positions**: those whose input token is not `<PAD>`, which
//! are exactly the positions whose target is real (the positions the loss and the sweep's KL
//! average over).
//!
//! [`compress_ffns`] compresses the FFNs of several blocks with a data-aware objective
//! ([`DataAware`]) in one of two [`CalibrationMode`]s:
//!
//! - [`CalibrationMode::OneShot`]: every projection is fitted on the dense model's inputs
//!   (one collection serves every cell of a sweep);
//! - [`CalibrationMode::Sequential`] (as GPTQ and SVD-LLM do): projections are compressed in
//!   the order the data flows (block by block, `ffn.0` before `ffn.2`) and each is fitted on the
//!   inputs of the model with **every earlier projection already compressed**, paired with the
//!   dense model's inputs at the same positions, so the later layers see — and, with
//!   compensation, partly undo — the errors of the earlier ones. (While nothing before a
//!   projection is compressed, its inputs are the dense ones and it uses the one-shot stats.)
//!
//! ```
//! use ndarray::Array2;
//! use succulm::compress::calibration::{compress_ffns, CalibrationMode, CalibrationRows};
//! use succulm::tt::DataAware;
//! use succulm::{FfnTtSpec, Model, ModelConfig};
//!
//! let model = Model::new(ModelConfig::profile("upper_middle", 30)?, 0)?;
//! let rows = Array2::from_shape_fn((16, 10), |(r, t)| if t <= r % 10 { 4 + ((r + t) % 26) as u32 } else { 0 });
//! let data = CalibrationRows { train: rows.view(), validation: None };
//! let targets = [(0, FfnTtSpec::seed(20)), (1, FfnTtSpec::seed(20))];
//! let (compressed, reports) =
//!     compress_ffns(&model, &targets, &DataAware::whitened(), CalibrationMode::Sequential, &data, None)?;
//! assert_eq!(reports.len(), 2);
//! assert!(reports[0].up.output_error <= reports[0].up.plain_output_error * 1.001);
//! # let _ = compressed;
//! # Ok::<(), succulm::Error>(())
//! ```

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::compress::surgery::{FfnProjection, FfnTtSpec, ProjectionReport, TensorizeReport};
use crate::error::{Error, Result};
use crate::nn::layers::{FfnCache, Layer, Projection};
use crate::nn::model::Model;
use crate::text::data::longest_real;
use crate::text::vocab::PAD;
use crate::tt::budget::{allocate, BondOption};
use crate::tt::{DataAware, InputStats, Objective, TTLayer, Truncation};

/// Sequences per forward chunk (whole sequences; a chunk is trimmed to its longest real row).
const CHUNK_SEQS: usize = 8;

/// Per FFN projection, the moments of its inputs over the real positions of some rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    stats: BTreeMap<(usize, FfnProjection), InputStats>,
    rows: usize,
}

/// The rows `x: [N, T]` of every chunk, trimmed: `(ids, seq, real-position mask)`.
fn chunks(x: ArrayView2<'_, u32>) -> Vec<(Vec<u32>, usize, Vec<bool>)> {
    let mut out = Vec::new();
    for part in x.axis_chunks_iter(ndarray::Axis(0), CHUNK_SEQS) {
        let t = longest_real(part);
        if t == 0 {
            continue;
        }
        let ids: Vec<u32> = part
            .rows()
            .into_iter()
            .flat_map(|r| r.iter().take(t).copied().collect::<Vec<_>>())
            .collect();
        let mask = ids.iter().map(|&id| id != PAD).collect();
        out.push((ids, t, mask));
    }
    out
}

/// The rows of `a` where `mask` holds.
fn select(a: ArrayView2<'_, f32>, mask: &[bool]) -> Array2<f32> {
    let keep: Vec<usize> = (0..a.nrows()).filter(|&r| mask[r]).collect();
    a.select(ndarray::Axis(0), &keep)
}

/// Runs blocks `0..=upto` of `model` on one chunk, calling `f(block, ffn cache)` per block.
fn for_each_ffn(
    model: &Model,
    ids: &[u32],
    seq: usize,
    upto: usize,
    mut f: impl FnMut(usize, &FfnCache) -> Result<()>,
) -> Result<()> {
    let mut x = model.embed.lookup_positions(ids, model.pe.view(), 0, seq);
    for (i, block) in model.blocks.iter().enumerate().take(upto + 1) {
        let (y, cache) = block.forward_unchecked((x, seq, None));
        let r = f(i, cache.ffn());
        cache.recycle();
        x = y;
        r?;
    }
    crate::tt::pool::give_array(x);
    Ok(())
}

fn projection(model: &Model, block: usize, which: FfnProjection) -> &Projection {
    let ffn = &model.blocks()[block].ffn;
    match which {
        FfnProjection::Up => &ffn.up,
        FfnProjection::Down => &ffn.down,
    }
}

fn input_of(cache: &FfnCache, which: FfnProjection) -> ArrayView2<'_, f32> {
    match which {
        FfnProjection::Up => cache.up_input(),
        FfnProjection::Down => cache.down_input(),
    }
}

impl Calibration {
    /// The stats of every FFN projection of `model` over the real positions of `x: [N, T]`.
    ///
    /// Errors: an empty `x`, `T > max_len`, an id out of range, or rows without any real
    /// position.
    pub fn collect(model: &Model, x: ArrayView2<'_, u32>) -> Result<Calibration> {
        let targets: Vec<(usize, FfnProjection)> = (0..model.config().n_layers)
            .flat_map(|b| FfnProjection::BOTH.map(|p| (b, p)))
            .collect();
        Self::collect_for(model, None, x, &targets)
    }

    /// The stats of the `targets` projections only (the forward stops after the last block
    /// needed). With `reference` (a model of the same shape, e.g. the dense one), each row's
    /// stats are **paired** with the reference's input at the same position
    /// ([`InputStats::add_paired_rows`]).
    ///
    /// Errors as [`collect`](Self::collect), and on an empty target list, a block out of range,
    /// or a reference of another shape.
    pub fn collect_for(
        model: &Model,
        reference: Option<&Model>,
        x: ArrayView2<'_, u32>,
        targets: &[(usize, FfnProjection)],
    ) -> Result<Calibration> {
        model.check_ids(x, "calibration rows")?;
        if let Some(r) = reference {
            if r.config() != model.config() {
                return Err(Error::invalid_arg(
                    "reference",
                    "has another configuration than the calibrated model",
                ));
            }
        }
        let n = model.config().n_layers;
        let upto = targets
            .iter()
            .map(|t| t.0)
            .max()
            .ok_or_else(|| Error::invalid_arg("targets", "no projection to calibrate"))?;
        if upto >= n {
            return Err(Error::invalid_arg(
                "targets",
                format!("block {upto} is out of range for {n} blocks"),
            ));
        }
        let mut stats: BTreeMap<(usize, FfnProjection), InputStats> = BTreeMap::new();
        for &(b, p) in targets {
            let width = match p {
                FfnProjection::Up => model.config().d_model,
                FfnProjection::Down => model.config().ffn_dim(),
            };
            stats.insert((b, p), InputStats::new(width));
        }
        let mut real = 0usize;
        for (ids, seq, mask) in chunks(x) {
            real += mask.iter().filter(|&&m| m).count();
            // The reference's inputs of this chunk, per target.
            let mut ref_inputs: BTreeMap<(usize, FfnProjection), Array2<f32>> = BTreeMap::new();
            if let Some(r) = reference {
                for_each_ffn(r, &ids, seq, upto, |b, cache| {
                    for p in FfnProjection::BOTH {
                        if stats.contains_key(&(b, p)) {
                            ref_inputs.insert((b, p), select(input_of(cache, p), &mask));
                        }
                    }
                    Ok(())
                })?;
            }
            for_each_ffn(model, &ids, seq, upto, |b, cache| {
                for p in FfnProjection::BOTH {
                    if let Some(s) = stats.get_mut(&(b, p)) {
                        let xin = select(input_of(cache, p), &mask);
                        match ref_inputs.get(&(b, p)) {
                            Some(xr) => s.add_paired_rows(xin.view(), xr.view())?,
                            None => s.add_rows(xin.view())?,
                        }
                    }
                }
                Ok(())
            })?;
        }
        if real == 0 {
            return Err(Error::invalid_arg(
                "calibration rows",
                "no real (non-<PAD>) position",
            ));
        }
        Ok(Calibration {
            stats,
            rows: x.nrows(),
        })
    }

    /// The stats of block `block`'s projection `which`, if collected.
    pub fn get(&self, block: usize, which: FfnProjection) -> Option<&InputStats> {
        self.stats.get(&(block, which))
    }

    /// Errors unless the stats of `block`'s `which` were collected.
    fn require(&self, block: usize, which: FfnProjection) -> Result<&InputStats> {
        self.get(block, which).ok_or_else(|| {
            Error::invalid_arg(
                "calibration",
                format!("has no stats for {}", which.module(block)),
            )
        })
    }

    /// The projections calibrated, in block order (`ffn.0` before `ffn.2`).
    pub fn projections(&self) -> impl Iterator<Item = (usize, FfnProjection)> + '_ {
        self.stats.keys().copied()
    }

    /// The number of rows (sequences) the stats were collected over.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of real positions (the same for every projection).
    pub fn positions(&self) -> u64 {
        self.stats.values().next().map_or(0, InputStats::rows)
    }
}

/// How the projections of several compressed blocks are calibrated (see the
/// [module docs](self)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMode {
    /// Every projection on the dense model's inputs.
    OneShot,
    /// Each projection on the inputs of the model with the earlier ones compressed, paired with
    /// the dense model's.
    #[default]
    Sequential,
}

impl CalibrationMode {
    /// `"one_shot"` or `"sequential"`.
    pub fn key(self) -> &'static str {
        match self {
            CalibrationMode::OneShot => "one_shot",
            CalibrationMode::Sequential => "sequential",
        }
    }

    /// From `"one_shot"`/`"one-shot"`/`"dense"` or `"sequential"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "one_shot" | "one-shot" | "oneshot" | "dense" => Ok(CalibrationMode::OneShot),
            "sequential" => Ok(CalibrationMode::Sequential),
            other => Err(Error::invalid_arg(
                "calibration",
                format!("{other:?} is not one_shot or sequential"),
            )),
        }
    }
}

/// The rows a compression is calibrated on (`train`, `[N, T]` ids) and, optionally, held-out
/// rows on which every projection's output error is also reported (`validation`).
#[derive(Debug, Clone, Copy)]
pub struct CalibrationRows<'a> {
    /// Calibration rows (in the sweep: the training split).
    pub train: ArrayView2<'a, u32>,
    /// Held-out rows for the report only (in the sweep: the validation split).
    pub validation: Option<ArrayView2<'a, u32>>,
}

/// The dense model's calibration on [`CalibrationRows`], collected once and shared by every
/// compression of the same model (one-shot stats, and the first projection of a sequential
/// run).
#[derive(Debug, Clone, PartialEq)]
pub struct DenseCalibration {
    /// On the calibration rows.
    pub train: Calibration,
    /// On the held-out rows, if any.
    pub validation: Option<Calibration>,
}

impl DenseCalibration {
    /// Collects both (see [`Calibration::collect`]).
    pub fn collect(model: &Model, rows: &CalibrationRows<'_>) -> Result<Self> {
        Ok(DenseCalibration {
            train: Calibration::collect(model, rows.train)?,
            validation: rows
                .validation
                .map(|v| Calibration::collect(model, v))
                .transpose()?,
        })
    }
}

/// Compresses the FFNs of the `targets` blocks (`(block, spec)`, distinct blocks, compressed in
/// block order) of a copy of `reference`, with `config`'s objective, calibrated as `mode` says
/// on `rows`. `dense` may carry the reference's calibration on the same rows (it is collected
/// here if not given). Returns the compressed model and, per block in block order, what was done
/// — each projection's weight error, output error on the calibration rows (beside plain
/// TT-SVD's) and, with `rows.validation`, on the held-out rows.
///
/// With [`Objective::Weight`] the cores are plain TT-SVD's (the same as
/// [`Model::tensorize_ffn`]); its output errors are measured on the dense model's inputs.
///
/// Errors: an empty or repeated target, a block out of range, a spec that does not fit, bad
/// calibration rows, an invalid `config` (the reference is never modified).
pub fn compress_ffns(
    reference: &Model,
    targets: &[(usize, FfnTtSpec)],
    config: &DataAware,
    mode: CalibrationMode,
    rows: &CalibrationRows<'_>,
    dense: Option<&DenseCalibration>,
) -> Result<(Model, Vec<TensorizeReport>)> {
    config.validate()?;
    if targets.is_empty() {
        return Err(Error::invalid_arg("targets", "no block to compress"));
    }
    let mut order: Vec<&(usize, FfnTtSpec)> = targets.iter().collect();
    order.sort_by_key(|t| t.0);
    if let Some(w) = order.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::invalid_arg(
            "targets",
            format!("block {} is listed twice", w[0].0),
        ));
    }
    let n = reference.config().n_layers;
    if let Some(t) = order.iter().find(|t| t.0 >= n) {
        return Err(Error::invalid_arg(
            "block",
            format!("{} is out of range for {n} blocks", t.0),
        ));
    }
    let collected;
    let dense = match dense {
        Some(d) => d,
        None => {
            collected = DenseCalibration::collect(reference, rows)?;
            &collected
        }
    };
    let mut model = reference.clone();
    let mut reports = Vec::with_capacity(order.len());
    let mut compressed_any = false;
    for &&(block, ref spec) in &order {
        let mut pair = Vec::with_capacity(2);
        for which in FfnProjection::BOTH {
            let sequential = mode == CalibrationMode::Sequential
                && compressed_any
                && config.objective != Objective::Weight;
            // Paired stats of this projection on the model compressed so far, or the dense
            // model's.
            let fresh;
            let (train, val) = if sequential {
                let t = [(block, which)];
                let collect = |x| Calibration::collect_for(&model, Some(reference), x, &t);
                fresh = (
                    collect(rows.train)?,
                    rows.validation.map(collect).transpose()?,
                );
                (&fresh.0, fresh.1.as_ref())
            } else {
                (&dense.train, dense.validation.as_ref())
            };
            let train = train.require(block, which)?;
            let val = val.map(|v| v.require(block, which)).transpose()?;
            let before = projection(&model, block, which).to_dense();
            let mut report = model.tensorize_projection(
                block,
                which,
                which.spec(spec),
                Some((train, config)),
            )?;
            if let Some(v) = val {
                let after = projection(&model, block, which).to_dense();
                report.val_output_error = v.output_error(&before, &after)?;
            }
            pair.push(report);
            compressed_any = true;
        }
        let down: ProjectionReport = pair.pop().expect("two projections");
        let up: ProjectionReport = pair.pop().expect("two projections");
        reports.push(TensorizeReport { block, up, down });
    }
    Ok((model, reports))
}

/// A parameter budget for the FFNs of some blocks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// A fraction in `(0, 1]` of the blocks' dense FFN parameters (weights and biases).
    Fraction(f64),
    /// A number of TT parameters (cores and biases).
    Params(usize),
}

/// A parameter budget spent two ways on the FFNs of some blocks (see [`plan_budget`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetPlan {
    /// The budget as a fraction of the blocks' dense FFN parameters.
    pub fraction: f64,
    /// The blocks' dense FFN parameters (weights and biases).
    pub dense_params: usize,
    /// The largest uniform middle bond whose TT parameters fit the budget.
    pub uniform_bond: usize,
    /// The uniform arm: every projection at `uniform_bond`.
    pub uniform: Vec<(usize, FfnTtSpec)>,
    /// Its total discarded energy (the allocator's objective).
    pub uniform_energy: f64,
    /// The budget the allocation had: the uniform arm's TT parameter count.
    pub budget_params: usize,
    /// The allocated arm: per projection, the bonds [`allocate`] chose under `budget_params`.
    pub allocated: Vec<(usize, FfnTtSpec)>,
    /// Its total discarded energy (never above `uniform_energy`).
    pub allocated_energy: f64,
    /// Its TT parameter count (never above `budget_params`).
    pub allocated_params: usize,
    /// The chosen middle bond of every projection, `(block, projection, bond)`.
    pub bonds: Vec<(usize, FfnProjection, usize)>,
}

/// Splits a budget over the FFN projections of `blocks` of `reference`, in the seed's recipe
/// ([`FfnTtSpec::for_config`]: only the middle bond of each projection varies).
///
/// Each projection's options are its middle bonds `1..=min(d, f)`, each with its TT parameter
/// count (cores and bias, at the bonds TT-SVD reaches) and the energy it discards under
/// `config`'s metric on the dense model's calibration: for the whitened objective the output
/// energy per position `Σ_{i>m} σ_i(W·S)²`, for plain TT-SVD the weight energy `Σ_{i>m}
/// σ_i(W)²`. Energies are summed over projections **relative to each projection's total**
/// (so a projection with large activations does not outweigh the others by its scale alone).
/// The uniform arm takes the largest common bond that fits the budget (a fraction of the dense
/// FFN parameters, or a count); the allocated arm gets exactly the uniform arm's parameter count as its budget
/// and the bonds of the exact optimum ([`allocate`]), so it never holds more parameters and
/// never discards more energy than the uniform arm.
///
/// Errors: a fraction outside `(0, 1]`, a budget too small for bond 1, a block out of range or
/// listed twice, calibration without those blocks.
pub fn plan_budget(
    reference: &Model,
    blocks: &[usize],
    budget: Budget,
    config: &DataAware,
    dense: &DenseCalibration,
) -> Result<BudgetPlan> {
    if let Budget::Fraction(f) = budget {
        if !(f.is_finite() && f > 0.0 && f <= 1.0) {
            return Err(Error::invalid_arg(
                "budget",
                format!("fraction {f} must be in (0, 1]"),
            ));
        }
    }
    let mut blocks = blocks.to_vec();
    blocks.sort_unstable();
    if blocks.is_empty() || blocks.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::invalid_arg("blocks", "empty or repeated"));
    }
    let n = reference.config().n_layers;
    if let Some(b) = blocks.iter().find(|&&b| b >= n) {
        return Err(Error::invalid_arg(
            "block",
            format!("{b} is out of range for {n} blocks"),
        ));
    }
    let c = reference.config();
    let limit = c.d_model.min(c.ffn_dim());
    let spec_at =
        |which: FfnProjection, m: usize| which.spec(&FfnTtSpec::for_config(c, m)).clone().capped();
    let mut groups: Vec<Vec<BondOption>> = Vec::new();
    let mut keys = Vec::new();
    let mut dense_params = 0usize;
    for &b in &blocks {
        for which in FfnProjection::BOTH {
            let layer = projection(reference, b, which).to_dense();
            dense_params += layer.weight().len() + layer.bias().len();
            let full = spec_at(which, limit);
            let stats = dense.train.require(b, which)?;
            let (_, report) = TTLayer::decompose_data_aware(
                full.layout,
                &full.in_modes,
                &full.out_modes,
                &layer,
                &Truncation::bond_dims(&full.bond_dims),
                stats,
                config,
            )?;
            let svd = report.svd.as_ref().ok_or_else(|| {
                Error::invalid_arg("budget", "the decomposition reported no spectrum")
            })?;
            // The bond between the last output core and the first input core.
            let middle = full.out_modes.len() - 1;
            let sigma = &svd.singular_values[middle];
            let total: f64 = sigma
                .iter()
                .map(|s| s * s)
                .sum::<f64>()
                .max(f64::MIN_POSITIVE);
            let options = (1..=limit)
                .map(|m| BondOption {
                    bond: m,
                    params: spec_at(which, m).num_params(),
                    energy: sigma.iter().skip(m).map(|s| s * s).sum::<f64>() / total,
                })
                .collect();
            groups.push(options);
            keys.push((b, which));
        }
    }
    let total_at = |m: usize| -> usize { groups.iter().map(|g| g[m - 1].params).sum() };
    let target = match budget {
        Budget::Fraction(f) => f * dense_params as f64,
        Budget::Params(n) => n as f64,
    };
    let uniform_bond = (1..=limit)
        .rev()
        .find(|&m| total_at(m) as f64 <= target)
        .ok_or_else(|| {
            Error::invalid_arg(
                "budget",
                format!(
                    "{target:.0} of {dense_params} parameters is below the TT parameters at bond 1 ({})",
                    total_at(1)
                ),
            )
        })?;
    let budget_params = total_at(uniform_bond);
    let uniform_energy = groups.iter().map(|g| g[uniform_bond - 1].energy).sum();
    let alloc = allocate(&groups, budget_params)?;
    let chosen = alloc.bonds(&groups);
    let specs = |bond_of: &dyn Fn(usize, FfnProjection) -> usize| -> Vec<(usize, FfnTtSpec)> {
        blocks
            .iter()
            .map(|&b| {
                let up = spec_at(FfnProjection::Up, bond_of(b, FfnProjection::Up));
                let down = spec_at(FfnProjection::Down, bond_of(b, FfnProjection::Down));
                (b, FfnTtSpec { up, down })
            })
            .collect()
    };
    let bond_of = |b: usize, w: FfnProjection| {
        let k = keys
            .iter()
            .position(|&key| key == (b, w))
            .expect("every key");
        chosen[k]
    };
    Ok(BudgetPlan {
        fraction: target / dense_params as f64,
        dense_params,
        uniform_bond,
        uniform: specs(&|_, _| uniform_bond),
        uniform_energy,
        budget_params,
        allocated: specs(&bond_of),
        allocated_energy: alloc.energy,
        allocated_params: alloc.params,
        bonds: keys
            .iter()
            .zip(&chosen)
            .map(|(&(b, w), &m)| (b, w, m))
            .collect(),
    })
}

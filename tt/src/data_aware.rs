//! Data-aware truncation: tensor trains that minimise what the layer's *outputs* lose on the
//! inputs it really sees, not the weight error.
//!
//! Plain TT-SVD minimises `‖W − Ŵ‖_F`. What a model's behaviour depends on is the error of the
//! layer's output on its real inputs `X: [N, in]`, `‖X(W − Ŵ)ᵀ‖_F`. With calibration moments
//! ([`InputStats`]) of those inputs, [`TTLayer::decompose_data_aware`] minimises, by
//! [`Objective`]:
//!
//! - [`Objective::Weight`]: `‖W − Ŵ‖_F`, today's TT-SVD, bit for bit (the stats only serve the
//!   report);
//! - [`Objective::ActivationScaled`] (ASVD, Yuan et al. 2023): `‖(W − Ŵ)·diag(s)‖_F` with
//!   `s_j = (E|x_j|)^α`, a cheap heuristic;
//! - [`Objective::Whitened`] (SVD-LLM, Wang et al. 2024, here for tensor trains): the output
//!   error itself, `E‖(W − Ŵ)x‖² = ‖(W − Ŵ)·S‖_F²` for `S·Sᵀ = E[x xᵀ]`.
//!
//! # How
//!
//! 1. **The metric** `M = S·Sᵀ`. Whitened: `M = E[x xᵀ]`, or the covariance
//!    `E[(x − μ)(x − μ)ᵀ]` when the bias is refitted (below); `S = M^{1/2}`, the symmetric
//!    square root (of all square roots it mixes input channels least, which matters when the
//!    input modes are truncated). Activation-scaled: `S = diag(s)`.
//! 2. **Regularisation.** Dead ReLU units and unused directions make `M` singular. It is
//!    replaced by `M + λ·tr(M)/n·I` with `λ = ridge` (default `1e-6`), and eigenvalues below
//!    `1e-12` of the largest are raised to that floor, so `S⁻¹` exists and is finite. The effect
//!    is benign: in a direction `v` the data never visit, the result acts as `Ŵv = P·Wv`, the
//!    projection of the original column on the kept output subspace (no blow-up).
//! 3. **Decompose** `W·S` by TT-SVD with the requested truncation (bond dims and/or `eps`, now
//!    relative to `‖W·S‖`: a relative *output* error), then **fold `S⁻¹` back**:
//!    `Ŵ = (W·S)_tt · S⁻¹`, re-split into the same bonds.
//!    - The fold-back is **exact** when every bond on the input side of a
//!      [`TTLayout::OutputsThenInputs`] train is at full rank (as in the seed's FFN spec, whose
//!      only truncated bond is the middle one): the input cores together are then an arbitrary
//!      `[r, in]` matrix, and Ŵ is the optimum of its bonds; for the whitened objective its
//!      output error equals the whitened Eckart–Young tail `Σ_{i>r} σ_i(W·S)²`.
//!    - Otherwise (truncated input bonds, or the TT-matrix layout) it is only a start:
//!      alternating least squares ([`AlsConfig`]) then minimises `‖(W − Ŵ)·S‖` over the cores
//!      until a sweep stops improving it. It starts from the better of the fold-back and plain
//!      TT-SVD, and ALS never increases its objective, so the result is never worse than plain
//!      TT-SVD on that objective.
//! 4. **Bias refit** (default on): `b̂ = b + (W − Ŵ)·μ` absorbs the error on the mean input;
//!    with it the best `Ŵ` is the one fitted in the covariance metric, so the output error it
//!    leaves is never above the uncentred one.
//! 5. **Compensation** (paired stats, whitened only, default on): when the stats pair the inputs
//!    the layer will see (`x`, e.g. after earlier layers were compressed) with those the dense
//!    layer saw (`x_r`), the target is the dense output `W·x_r + b`, not `W·x`: the unconstrained
//!    optimum is `W* = (W·E[x_r x̃ᵀ] + λ'·W)·M⁻¹` (ridge regression *towards W*, `λ'` the ridge
//!    of step 2: in directions the rows never visit, such as dead units, the layer keeps `W`'s
//!    behaviour, and with `x = x_r` it is `W` exactly), and `W*` is truncated in the metric `M`
//!    (so the layer also undoes part of the error that reaches it).
//!
//! # Example
//!
//! ```
//! use ndarray::Array2;
//! use rand::{rngs::StdRng, Rng, SeedableRng};
//! use succulm_tt::{DataAware, InputStats, Truncation};
//! use succulm_tt::{Linear, TTLayer, TTLayout};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let layer = Linear::init(50, 200, &mut rng)?;
//! // Calibration inputs with very unequal channels, as real activations have.
//! let x = Array2::from_shape_fn((500, 50), |(_, j)| rng.gen_range(-1.0f32..1.0) * (1.0 + j as f32));
//! let stats = InputStats::from_rows(x.view())?;
//! let bonds = Truncation::bond_dims(&[10, 20, 10]);
//! let (tt, report) = TTLayer::decompose_data_aware(
//!     TTLayout::OutputsThenInputs, &[5, 10], &[10, 20], &layer, &bonds, &stats,
//!     &DataAware::whitened(),
//! )?;
//! assert!(report.fold_back_exact); // only the middle bond is truncated
//! assert!(report.output_error < report.plain_output_error);
//! assert!(report.weight_error > report.plain_weight_error); // it spends weight error where inputs are small
//! # let _ = tt;
//! # Ok::<(), succulm_tt::Error>(())
//! ```

use ndarray::{Array1, Array2, ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

use super::als::{self, AlsConfig, AlsReport, Block};
use super::decompose::{check_modes, sym_eig, tt_svd_f64, CappedBond, Truncation, TtSvd, TtSvd64};
use super::layer::{layout_values, TTLayer, TTLayout, TTSpec};
use super::stats::{centred, InputStats};
use crate::error::{Error, Result};
use crate::linear::Linear;

/// What a data-aware decomposition minimises (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// `‖W − Ŵ‖_F`: plain TT-SVD (the calibration data is only used for the report).
    Weight,
    /// `‖(W − Ŵ)·diag(s)‖_F`, `s_j = (E|x_j|)^alpha` (ASVD; `alpha` ≈ 0.5).
    ActivationScaled {
        /// The exponent `α` (finite, > 0).
        alpha: f64,
    },
    /// `E‖(W − Ŵ)·x‖²`: the output error on the calibration rows.
    Whitened,
}

/// How to run a data-aware decomposition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DataAware {
    /// What to minimise.
    pub objective: Objective,
    /// Relative ridge `λ`: the metric `M` becomes `M + λ·tr(M)/n·I` (finite, ≥ 0).
    pub ridge: f64,
    /// Refit the bias to the mean input (`b̂ = b + (W − Ŵ)μ`) and fit `Ŵ` in the covariance
    /// metric. Not applied with [`Objective::Weight`].
    pub refit_bias: bool,
    /// With paired stats and [`Objective::Whitened`], target the reference layer's outputs
    /// (see the [module docs](self)).
    pub compensate: bool,
    /// ALS refinement, used when the fold-back is not exact.
    pub als: AlsConfig,
}

impl DataAware {
    /// The given objective with the defaults: ridge `1e-6`, bias refit, compensation, ALS
    /// defaults.
    pub fn new(objective: Objective) -> Self {
        DataAware {
            objective,
            ridge: 1e-6,
            refit_bias: true,
            compensate: true,
            als: AlsConfig::default(),
        }
    }

    /// Plain TT-SVD.
    pub fn weight() -> Self {
        Self::new(Objective::Weight)
    }

    /// The output error, with the defaults.
    pub fn whitened() -> Self {
        Self::new(Objective::Whitened)
    }

    /// ASVD's scaling with exponent `alpha` (0.5 in the paper), with the defaults.
    pub fn scaled(alpha: f64) -> Self {
        Self::new(Objective::ActivationScaled { alpha })
    }

    /// Errors on a non-finite or negative ridge, a non-finite or non-positive `alpha`, or an
    /// invalid ALS setting.
    pub fn validate(&self) -> Result<()> {
        if !(self.ridge.is_finite() && self.ridge >= 0.0) {
            return Err(Error::invalid_arg(
                "ridge",
                format!("{} must be finite and >= 0", self.ridge),
            ));
        }
        if let Objective::ActivationScaled { alpha } = self.objective {
            if !(alpha.is_finite() && alpha > 0.0) {
                return Err(Error::invalid_arg(
                    "alpha",
                    format!("{alpha} must be finite and > 0"),
                ));
            }
        }
        self.als.validate()
    }
}

/// What [`TTLayer::decompose_data_aware`] did. Errors are relative: weight errors to `‖W‖_F`,
/// output errors to `‖X_r·Wᵀ‖_F` on the calibration rows ([`InputStats::output_error`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataAwareReport {
    /// The objective minimised.
    pub objective: Objective,
    /// `‖W − Ŵ‖_F / ‖W‖_F`.
    pub weight_error: f64,
    /// The output error on the calibration rows (with the refitted bias).
    pub output_error: f64,
    /// Plain TT-SVD's weight error at the same bonds, for comparison.
    pub plain_weight_error: f64,
    /// Plain TT-SVD's output error at the same bonds, on the same rows.
    pub plain_output_error: f64,
    /// The effective bond dims.
    pub bond_dims: Vec<usize>,
    /// Whether folding `S⁻¹` back was exact (then no ALS ran: the result is the optimum).
    pub fold_back_exact: bool,
    /// The ALS refinement, when it ran.
    pub als: Option<AlsReport>,
    /// Whether ALS started from plain TT-SVD (better than the fold-back on the objective).
    pub als_started_from_plain: bool,
    /// The TT-SVD of `W·S` (its spectra are the metric-weighted ones: for the whitened
    /// objective, the output energy each bond's singular values carry).
    #[serde(skip)]
    pub svd: Option<TtSvd>,
}

/// The metric of an objective: `S`, `S⁻¹` and `M = S·Sᵀ` (regularised).
struct Metric {
    s: Array2<f64>,
    s_inv: Array2<f64>,
    m: Array2<f64>,
    /// The ridge added to the moment's diagonal, `λ·tr(M)/n` (0 for the other metrics).
    shift: f64,
}

impl Metric {
    fn identity(n: usize) -> Self {
        let i = Array2::eye(n);
        Metric {
            s: i.clone(),
            s_inv: i.clone(),
            m: i,
            shift: 0.0,
        }
    }

    /// From a symmetric positive semi-definite `m0` (regularised as the module docs say).
    fn from_moment(m0: Array2<f64>, ridge: f64) -> Result<Self> {
        let n = m0.nrows();
        let trace: f64 = m0.diag().sum();
        if !(trace.is_finite() && trace > 0.0) {
            // Constant (or zero) inputs: every candidate has the same output error.
            return Ok(Metric::identity(n));
        }
        let mut m = (&m0 + &m0.t()) * 0.5;
        let shift = ridge * trace / n as f64;
        m.diag_mut().mapv_inplace(|v| v + shift);
        let (lam, q) = sym_eig(m).map_err(|reason| Error::Linalg {
            context: "data-aware metric eigen-decomposition".into(),
            reason,
        })?;
        let top = lam.iter().fold(0.0f64, |a, &b| a.max(b));
        let floor = 1e-12 * top;
        let lam = lam.mapv(|l| l.max(floor));
        let scaled = |f: &dyn Fn(f64) -> f64| {
            let mut qs = q.clone();
            for (mut col, &l) in qs.columns_mut().into_iter().zip(lam.iter()) {
                col.mapv_inplace(|v| v * f(l));
            }
            qs.dot(&q.t())
        };
        Ok(Metric {
            s: scaled(&|l| l.sqrt()),
            s_inv: scaled(&|l| 1.0 / l.sqrt()),
            m: scaled(&|l| l),
            shift,
        })
    }

    /// `S = diag(s)` from per-channel scales (regularised as `s² + λ·mean(s²)`, floored).
    fn diagonal(s2: Array1<f64>, ridge: f64) -> Self {
        let n = s2.len();
        let mean = s2.sum() / n.max(1) as f64;
        if !(mean.is_finite() && mean > 0.0) {
            return Metric::identity(n);
        }
        let s2 = s2.mapv(|v| v + ridge * mean);
        let top = s2.iter().fold(0.0f64, |a, &b| a.max(b));
        let s2 = s2.mapv(|v| v.max(1e-12 * top));
        Metric {
            s: Array2::from_diag(&s2.mapv(f64::sqrt)),
            s_inv: Array2::from_diag(&s2.mapv(|v| 1.0 / v.sqrt())),
            m: Array2::from_diag(&s2),
            shift: 0.0,
        }
    }
}

/// `d` cores of a TT-SVD as blocks `[a, p, q, b]` of `spec`'s layout.
fn blocks_of(svd: &TtSvd64, spec: &TTSpec) -> Vec<Block> {
    svd.cores
        .iter()
        .zip(spec.block_dims())
        .map(|(c, d)| {
            Block::from_shape_vec(d, c.iter().copied().collect()).expect("core sizes match")
        })
        .collect()
}

/// TT-SVD of `w: [out, in]` in `layout`; the spec (with effective bonds) and the blocks.
fn decompose_f64(
    layout: TTLayout,
    in_modes: &[usize],
    out_modes: &[usize],
    w: &Array2<f64>,
    truncation: &Truncation,
) -> Result<(TtSvd64, TTSpec, Vec<Block>)> {
    let (values, modes) = layout_values(layout, in_modes, out_modes, w)?;
    let svd = tt_svd_f64(values, &modes, truncation)?;
    let spec = TTSpec {
        layout,
        in_modes: in_modes.to_vec(),
        out_modes: out_modes.to_vec(),
        bond_dims: svd.bond_dims.clone(),
    };
    let blocks = blocks_of(&svd, &spec);
    Ok((svd, spec, blocks))
}

/// Whether every bond on the input side of an [`TTLayout::OutputsThenInputs`] train is at the
/// rank limit of its unfolding (so `S⁻¹` folds back exactly).
fn input_side_full(spec: &TTSpec, svd: &TtSvd64) -> bool {
    match spec.layout {
        TTLayout::OutputsThenInputs => {
            let m = spec.out_modes.len();
            (m..svd.bond_dims.len()).all(|k| svd.bond_dims[k] == svd.singular_values[k].len())
        }
        TTLayout::Matrix => spec.num_cores() == 1,
    }
}

/// `‖a − b‖_F / ‖b‖_F` (0 when equal).
fn rel_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    let num = (a - b).mapv(|v| v * v).sum();
    if num == 0.0 {
        0.0
    } else {
        (num / b.mapv(|v| v * v).sum()).sqrt()
    }
}

impl TTLayer {
    /// Decomposes `linear` minimising `config.objective` on the inputs summarised by `stats`
    /// (see the [module docs](crate::data_aware)); returns the layer and a report with its
    /// weight and output errors beside plain TT-SVD's at the same bonds.
    ///
    /// With [`Objective::Weight`] the layer is exactly [`TTLayer::decompose`]'s.
    ///
    /// Errors: as [`TTLayer::decompose`]; stats of another width or without rows; an invalid
    /// `config`; a LAPACK failure.
    pub fn decompose_data_aware(
        layout: TTLayout,
        in_modes: &[usize],
        out_modes: &[usize],
        linear: &Linear,
        truncation: &Truncation,
        stats: &InputStats,
        config: &DataAware,
    ) -> Result<(TTLayer, DataAwareReport)> {
        config.validate()?;
        let n_in = check_modes("in_modes", in_modes)?;
        check_modes("out_modes", out_modes)?;
        stats.check_for(n_in, "the layer")?;
        // Plain TT-SVD: the baseline of the report (and the answer for `Weight`).
        let (plain, plain_svd) =
            TTLayer::decompose(layout, in_modes, out_modes, linear, truncation)?;
        let plain_dense = plain.to_dense();
        let plain_output_error = stats.output_error(linear, &plain_dense)?;
        let w = linear.weight().mapv(|v| v as f64);
        let plain_weight_error = rel_diff(&plain_dense.weight().mapv(|v| v as f64), &w);
        if config.objective == Objective::Weight {
            return Ok((
                plain,
                DataAwareReport {
                    objective: Objective::Weight,
                    weight_error: plain_weight_error,
                    output_error: plain_output_error,
                    plain_weight_error,
                    plain_output_error,
                    bond_dims: plain_svd.bond_dims.clone(),
                    fold_back_exact: true,
                    als: None,
                    als_started_from_plain: false,
                    svd: Some(plain_svd),
                },
            ));
        }

        let refit = config.refit_bias;
        let (mu, mu_r) = (stats.mean(), stats.reference_mean());
        let metric = match config.objective {
            Objective::Whitened => {
                let c = stats.second_moment();
                Metric::from_moment(if refit { centred(&c, &mu, &mu) } else { c }, config.ridge)?
            }
            Objective::ActivationScaled { alpha } => {
                Metric::diagonal(stats.mean_abs().mapv(|a| a.powf(2.0 * alpha)), config.ridge)
            }
            Objective::Weight => unreachable!("handled above"),
        };
        // The target: W, or with compensation W* = (W·E[x_r x̃ᵀ] + λ'·W)·M⁻¹ (ridge towards W).
        let target =
            if config.objective == Objective::Whitened && config.compensate && stats.is_paired() {
                let cross = stats.cross_moment(); // E[x x_rᵀ]
                let cross = if refit {
                    centred(&cross, &mu, &mu_r)
                } else {
                    cross
                };
                let m_inv = metric.s_inv.dot(&metric.s_inv); // S symmetric: M⁻¹ = S⁻¹S⁻¹
                (w.dot(&cross.t()) + &w * metric.shift).dot(&m_inv)
            } else {
                w.clone()
            };
        let (svd, spec, blocks) = decompose_f64(
            layout,
            in_modes,
            out_modes,
            &target.dot(&metric.s),
            truncation,
        )?;
        let exact = input_side_full(&spec, &svd);
        // Fold S⁻¹ back and re-split into the same bonds.
        let folded = als::dense(&blocks).dot(&metric.s_inv);
        let same_bonds = Truncation::bond_dims(&spec.bond_dims);
        let (_, _, mut cores) = decompose_f64(layout, in_modes, out_modes, &folded, &same_bonds)?;
        let mut als_report = None;
        let mut from_plain = false;
        if !exact {
            let (_, plain_spec, plain_cores) =
                decompose_f64(layout, in_modes, out_modes, &target, &same_bonds)?;
            if plain_spec.bond_dims == spec.bond_dims
                && als::objective(&plain_cores, &target, &metric.m)
                    < als::objective(&cores, &target, &metric.m)
            {
                cores = plain_cores;
                from_plain = true;
            }
            if config.als.max_sweeps > 0 {
                als_report = Some(als::refine(&mut cores, &target, &metric.m, &config.als));
            }
        }
        let w_hat = als::dense(&cores);
        let bias = linear.bias().mapv(|v| v as f64);
        let bias = if refit {
            bias + w.dot(&mu_r) - w_hat.dot(&mu)
        } else {
            bias
        };
        let shapes = spec.core_shapes();
        let cores32 = cores
            .iter()
            .zip(&shapes)
            .map(|(c, shape)| {
                ArrayD::from_shape_vec(IxDyn(shape), c.iter().map(|&v| v as f32).collect())
                    .map_err(|e| Error::invalid_arg("cores", e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let tt = TTLayer::from_parts(spec, cores32, bias.mapv(|v| v as f32)).map_err(|e| {
            Error::invalid_arg(
                "linear",
                format!("the data-aware decomposition produced an invalid layer: {e}"),
            )
        })?;
        let dense = tt.to_dense();
        let report = DataAwareReport {
            objective: config.objective,
            weight_error: rel_diff(&dense.weight().mapv(|v| v as f64), &w),
            output_error: stats.output_error(linear, &dense)?,
            plain_weight_error,
            plain_output_error,
            bond_dims: tt.bond_dims().to_vec(),
            fold_back_exact: exact,
            als: als_report,
            als_started_from_plain: from_plain,
            svd: Some(svd.into_f32()?),
        };
        Ok((tt, report))
    }

    /// [`decompose_data_aware`](Self::decompose_data_aware) in the seed's layout with explicit
    /// bond dims (as [`from_linear`](Self::from_linear)), returning only the layer.
    pub fn from_linear_data_aware(
        in_modes: &[usize],
        out_modes: &[usize],
        linear: &Linear,
        bond_dims: &[usize],
        stats: &InputStats,
        config: &DataAware,
    ) -> Result<TTLayer> {
        Ok(Self::decompose_data_aware(
            TTLayout::OutputsThenInputs,
            in_modes,
            out_modes,
            linear,
            &Truncation::bond_dims(bond_dims),
            stats,
            config,
        )?
        .0)
    }
}

/// A dense projection in tensor-train form, as [`decompose`] returns it.
#[derive(Debug, Clone)]
pub struct Decomposed {
    /// The tensor-train layer.
    pub tt: TTLayer,
    /// The requested bond dims that the matrix's ranks capped.
    pub capped: Vec<CappedBond>,
    /// With calibration: the data-aware report (objective, output errors, fold-back, ALS).
    pub data_aware: Option<DataAwareReport>,
}

/// The one place a weight becomes a tensor train: `linear` (`[out, in]` + bias) decomposed with
/// `in_modes`/`out_modes` in `layout` under `truncation`, by plain TT-SVD when `data` is `None`,
/// else by the data-aware objective `data.1` on the input stats `data.0`
/// ([`TTLayer::decompose_data_aware`]; `succulm::compress::Method::config` gives each method's objective). The
/// surgery on a model, the calibrated compression of several blocks and the compression of a
/// safetensors file all come through here.
///
/// Errors: modes that do not factor the shape, a bond dim of 0, stats of another width, an
/// invalid configuration.
pub fn decompose(
    linear: &Linear,
    layout: TTLayout,
    in_modes: &[usize],
    out_modes: &[usize],
    truncation: &Truncation,
    data: Option<(&InputStats, &DataAware)>,
) -> Result<Decomposed> {
    match data {
        None => {
            let (tt, svd) = TTLayer::decompose(layout, in_modes, out_modes, linear, truncation)?;
            Ok(Decomposed {
                tt,
                capped: svd.capped,
                data_aware: None,
            })
        }
        Some((stats, config)) => {
            let (tt, report) = TTLayer::decompose_data_aware(
                layout, in_modes, out_modes, linear, truncation, stats, config,
            )?;
            let capped = report
                .svd
                .as_ref()
                .map(|s| s.capped.clone())
                .unwrap_or_default();
            Ok(Decomposed {
                tt,
                capped,
                data_aware: Some(report),
            })
        }
    }
}

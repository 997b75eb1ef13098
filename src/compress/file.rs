//! Compress anyone's linear layers: the weight matrices of any model's safetensors file, chosen
//! by a name pattern, decomposed into tensor trains (TT-SVD, or a data-aware objective when
//! calibration activations are given), written as cores to a new safetensors file, with a report
//! per matrix.
//!
//! - **Layout** of the stored weights ([`WeightLayout`]): `[out, in]` as PyTorch's `nn.Linear`,
//!   or `[in, out]` as GPT-2's `Conv1D` (transposed on reading; the cores are always those of the
//!   `[out, in]` weight, so `y = x·Wᵀ + b` for both).
//! - **Modes**: explicit, or automatic ([`balanced_modes`]): each dimension factorised into `d`
//!   modes as equal as possible, as tntorch and t3f offer.
//! - **Truncation** ([`Target`]): a maximum bond (the same for every bond; TT-SVD caps the bonds
//!   its unfoldings cannot reach, and the report lists them), a relative tolerance, both, or a
//!   parameter budget (the largest uniform bond whose cores fit a fraction of the dense weight).
//! - **Calibration** (optional): a safetensors file holding, under each selected weight's name
//!   (or its module name, the name without `.weight`), the layer's inputs `[rows, in]`; the
//!   decomposition then minimises the chosen data-aware objective ([`crate::tt::data_aware`])
//!   and the report gives the output error on those inputs too.
//!
//! # The written file
//!
//! For a weight `h.0.mlp.c_fc.weight` (module `h.0.mlp.c_fc`): tensors
//! `h.0.mlp.c_fc.cores.{k}` (the [`TTSpec::core_shapes`]) and `h.0.mlp.c_fc.bias` (`[out]`; zeros
//! when the source has no bias); the header metadata `tt_layers` maps each module to
//! `{"source": <weight name>, "layout": "out_in"|"in_out", "spec": <TTSpec>}`, and
//! `format` is [`FORMAT`]. [`load_tt_layers`] reads it back, validated.
//!
//! ```
//! use std::collections::BTreeMap;
//! use ndarray::Array2;
//! use succulm::compress::{compress_file, CompressConfig, Modes, Target, WeightLayout, load_tt_layers};
//! use succulm::io::safetensors::write_f32;
//!
//! let dir = std::env::temp_dir().join(format!("succulm-compress-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! // A "GPT-2 Conv1D" weight [in = 12, out = 20].
//! let w = Array2::from_shape_fn((12, 20), |(i, o)| ((i * 20 + o) as f32 * 0.37).sin());
//! write_f32(dir.join("model.safetensors"), [("mlp.c_fc.weight".to_string(), w.view().into_dyn())],
//!           &BTreeMap::new())?;
//! let config = CompressConfig {
//!     pattern: "*.c_fc.weight".into(),
//!     layout: WeightLayout::InOut,
//!     modes: Modes::Auto(2),
//!     target: Target::Exact,
//!     ..CompressConfig::default()
//! };
//! let report = compress_file(dir.join("model.safetensors"), dir.join("tt.safetensors"), &config, None)?;
//! let m = &report.matrices[0];
//! assert_eq!((m.in_modes.clone(), m.out_modes.clone()), (vec![3, 4], vec![4, 5]));
//! assert!(m.weight_error < 1e-5);
//! let layers = load_tt_layers(dir.join("tt.safetensors"))?;
//! assert_eq!(layers["mlp.c_fc"].0.in_features(), 12);
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), succulm::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{Array1, Array2, ArrayD, Ix2};
use serde::{Deserialize, Serialize};

use crate::compress::method::Method;
use crate::error::{Error, Result};
use crate::fs::safetensors::{write_f32, SafetensorsFile};
use crate::nn::layers::Linear;
use crate::tt::{CappedBond, InputStats, TTLayer, TTLayout, TTSpec, Truncation};

/// The `format` metadata of a file written by [`Compressed::write`].
pub const FORMAT: &str = "succulm-tt-layers/1";

/// How a weight matrix is stored in the source file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightLayout {
    /// `[out, in]`, as PyTorch's `nn.Linear`.
    #[default]
    OutIn,
    /// `[in, out]`, as GPT-2's `Conv1D`.
    InOut,
}

impl WeightLayout {
    /// `"out_in"` / `"in_out"`.
    pub fn key(self) -> &'static str {
        match self {
            WeightLayout::OutIn => "out_in",
            WeightLayout::InOut => "in_out",
        }
    }

    /// Parses `out_in` (alias `linear`) or `in_out` (alias `conv1d`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "out_in" | "linear" => Ok(WeightLayout::OutIn),
            "in_out" | "conv1d" => Ok(WeightLayout::InOut),
            _ => Err(Error::invalid_arg(
                "layout",
                format!("unknown layout {s:?} (known: out_in or linear, in_out or conv1d)"),
            )),
        }
    }
}

/// The modes of every selected matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modes {
    /// Each dimension split into this many balanced modes ([`balanced_modes`]).
    Auto(usize),
    /// The same modes for every matrix (their products must be its `in` and `out`).
    Explicit {
        /// Input modes, product `in`.
        in_modes: Vec<usize>,
        /// Output modes, product `out`.
        out_modes: Vec<usize>,
    },
}

/// How far to truncate.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Every bond at most this (capped where the unfolding's rank is lower).
    Bond(usize),
    /// Relative Frobenius tolerance `‖W − W_tt‖ ≤ eps·‖W‖` (smallest bonds TT-SVD finds).
    Eps(f64),
    /// Both: each bond at most `bond`, and smaller where `eps` allows.
    BondAndEps(usize, f64),
    /// Cores of at most this fraction of the dense weight's parameters, in `(0, 1]`: the largest
    /// uniform bond that fits.
    Budget(f64),
    /// No truncation (exact).
    Exact,
}

/// What to compress and how.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressConfig {
    /// Names to select: `*` matches any run of characters (dots included), `?` one character;
    /// several patterns separated by commas.
    pub pattern: String,
    /// Storage layout of the selected weights.
    pub layout: WeightLayout,
    /// Modes.
    pub modes: Modes,
    /// Truncation.
    pub target: Target,
    /// Core layout of the TT.
    pub tt_layout: TTLayout,
    /// Threads: matrices are compressed in parallel, each on one thread (the result does not
    /// depend on the count). OpenBLAS threads come on top of these; on the shared 2-core
    /// development machine one thread was fastest.
    pub threads: usize,
    /// Objective when calibration inputs are given ([`Method::Weight`] = plain TT-SVD, which
    /// still reports the output error).
    pub method: Method,
}

impl Default for CompressConfig {
    /// Every `*.weight`, `[out, in]`, 3 modes a side, bonds ≤ 16, seed layout, whitened, one
    /// thread.
    fn default() -> Self {
        CompressConfig {
            pattern: "*.weight".into(),
            layout: WeightLayout::OutIn,
            modes: Modes::Auto(3),
            target: Target::Bond(16),
            tt_layout: TTLayout::OutputsThenInputs,
            method: Method::Whitened,
            threads: 1,
        }
    }
}

/// What happened to one matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatrixReport {
    /// The weight's name in the source file.
    pub name: String,
    /// The module name the cores are written under.
    pub module: String,
    /// The shape as stored in the source file.
    pub shape: Vec<usize>,
    /// Its layout.
    pub layout: WeightLayout,
    /// Input modes.
    pub in_modes: Vec<usize>,
    /// Output modes.
    pub out_modes: Vec<usize>,
    /// The bonds requested (empty: none, e.g. a tolerance alone).
    pub requested_bonds: Vec<usize>,
    /// The bonds reached.
    pub bond_dims: Vec<usize>,
    /// Requested bonds capped at their unfolding's rank.
    pub capped: Vec<CappedBond>,
    /// Dense weight parameters `out·in`.
    pub dense_params: usize,
    /// Core parameters.
    pub tt_params: usize,
    /// `‖W − W_tt‖_F / ‖W‖_F`.
    pub weight_error: f64,
    /// With calibration: `E‖(W − W_tt)x‖² / E‖Wx‖²`-style relative output error (see
    /// [`InputStats::output_error`]).
    pub output_error: Option<f64>,
    /// Whether a bias was found in the source (`<module>.bias`).
    pub has_bias: bool,
    /// Dense forward FLOPs per row, `2·out·in`.
    pub dense_flops_per_row: u64,
    /// TT forward FLOPs per row (one row, the plan [`TTLayer::forward`] picks).
    pub tt_flops_per_row: u64,
}

/// The report of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompressReport {
    /// One entry per selected matrix, in name order.
    pub matrices: Vec<MatrixReport>,
}

impl CompressReport {
    /// Total dense parameters of the selected matrices.
    pub fn dense_params(&self) -> usize {
        self.matrices.iter().map(|m| m.dense_params).sum()
    }

    /// Total core parameters.
    pub fn tt_params(&self) -> usize {
        self.matrices.iter().map(|m| m.tt_params).sum()
    }

    /// A fixed-width text table, one line per matrix.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<28} {:>12} {:>7} {:>14} {:>14} {:>16} {:>7} {:>9} {:>9} {:>9} {:>11} {:>9}\n",
            "matrix",
            "shape",
            "layout",
            "in modes",
            "out modes",
            "bonds",
            "capped",
            "params",
            "tt params",
            "w error",
            "flops/row",
            "tt flops",
        );
        let list = |v: &[usize]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("x")
        };
        for m in &self.matrices {
            s.push_str(&format!(
                "{:<28} {:>12} {:>7} {:>14} {:>14} {:>16} {:>7} {:>9} {:>9} {:>9.3e} {:>11} {:>9}{}\n",
                m.name,
                list(&m.shape),
                m.layout.key(),
                list(&m.in_modes),
                list(&m.out_modes),
                m.bond_dims
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                m.capped.len(),
                m.dense_params,
                m.tt_params,
                m.weight_error,
                m.dense_flops_per_row,
                m.tt_flops_per_row,
                m.output_error
                    .map(|e| format!("  out error {e:.3e}"))
                    .unwrap_or_default(),
            ));
        }
        s
    }
}

/// The compressed layers and their report.
#[derive(Debug, Clone)]
pub struct Compressed {
    /// `(module, source weight name, layout, layer)`, in name order.
    pub layers: Vec<(String, String, WeightLayout, TTLayer)>,
    /// The report.
    pub report: CompressReport,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerEntry {
    source: String,
    layout: WeightLayout,
    spec: TTSpec,
}

impl Compressed {
    /// Writes the cores and biases with the `tt_layers` metadata (see the [module docs](self)),
    /// atomically.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut entries = BTreeMap::new();
        let mut tensors = Vec::new();
        for (module, source, layout, tt) in &self.layers {
            entries.insert(
                module.clone(),
                LayerEntry {
                    source: source.clone(),
                    layout: *layout,
                    spec: tt.spec().clone(),
                },
            );
            for (k, c) in tt.cores().iter().enumerate() {
                tensors.push((format!("{module}.cores.{k}"), c.view()));
            }
            tensors.push((format!("{module}.bias"), tt.bias().into_dyn()));
        }
        let mut meta = BTreeMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert(
            "tt_layers".to_string(),
            serde_json::to_string(&entries).expect("specs serialise"),
        );
        write_f32(path, tensors, &meta)
    }
}

/// Factorises `n` into `d` modes as equal as possible (the largest mode as small as it can be,
/// then the smallest as large), ascending: `balanced_modes(768, 3) = [8, 8, 12]`,
/// `balanced_modes(3072, 3) = [12, 16, 16]`. A prime `n` gives `[1, …, 1, n]`.
///
/// Errors: `n == 0` or `d == 0`.
pub fn balanced_modes(n: usize, d: usize) -> Result<Vec<usize>> {
    if n == 0 {
        return Err(Error::invalid_arg("n", "cannot factorise 0"));
    }
    if d == 0 {
        return Err(Error::invalid_arg("modes", "need at least one mode"));
    }
    let divisors: Vec<usize> = (1..=n)
        .take_while(|k| k * k <= n)
        .filter(|k| n % k == 0)
        .flat_map(|k| [k, n / k])
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // Depth-first over non-decreasing factor lists; score = (largest, −smallest).
    fn search(
        rest: usize,
        left: usize,
        min: usize,
        divisors: &[usize],
        cur: &mut Vec<usize>,
        best: &mut Option<(usize, usize, Vec<usize>)>,
    ) {
        if left == 1 {
            if rest < min {
                return;
            }
            cur.push(rest);
            let (hi, lo) = (rest, cur[0]);
            let better = match best {
                None => true,
                Some((bh, bl, _)) => (hi, std::cmp::Reverse(lo)) < (*bh, std::cmp::Reverse(*bl)),
            };
            if better {
                *best = Some((hi, lo, cur.clone()));
            }
            cur.pop();
            return;
        }
        for &f in divisors {
            if f < min || rest % f != 0 {
                continue;
            }
            // f ≤ the left-th root of rest (non-decreasing lists).
            match f.checked_pow(left as u32) {
                Some(p) if p <= rest => {}
                _ => break,
            }
            cur.push(f);
            search(rest / f, left - 1, f, divisors, cur, best);
            cur.pop();
        }
    }
    let mut best = None;
    search(n, d, 1, &divisors, &mut Vec::new(), &mut best);
    Ok(best.expect("[1, …, 1, n] is always a candidate").2)
}

/// Whether `name` matches `pattern` (`*` any run, `?` one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The module name of a weight: the name without a trailing `.weight`.
pub fn module_name(weight: &str) -> &str {
    weight.strip_suffix(".weight").unwrap_or(weight)
}

fn truncation_for(spec_base: &TTSpec, target: &Target, dense: usize) -> Result<Truncation> {
    let nb = spec_base.num_cores() - 1;
    let uniform = |b: usize| -> Result<Vec<usize>> {
        if b == 0 {
            return Err(Error::invalid_arg(
                "bond",
                "a bond of 0 is not a tensor train",
            ));
        }
        Ok(vec![b; nb])
    };
    let check_eps = |eps: f64| -> Result<()> {
        if !(eps.is_finite() && (0.0..1.0).contains(&eps)) {
            return Err(Error::invalid_arg("eps", format!("{eps} is not in [0, 1)")));
        }
        Ok(())
    };
    Ok(match *target {
        Target::Exact => Truncation::exact(),
        Target::Bond(b) => Truncation::bond_dims(&uniform(b)?),
        Target::Eps(eps) => {
            check_eps(eps)?;
            Truncation::eps(eps)
        }
        Target::BondAndEps(b, eps) => {
            check_eps(eps)?;
            Truncation::bond_dims(&uniform(b)?).with_eps(eps)
        }
        Target::Budget(frac) => {
            if !(frac.is_finite() && frac > 0.0 && frac <= 1.0) {
                return Err(Error::invalid_arg(
                    "budget",
                    format!("{frac} is not a fraction in (0, 1]"),
                ));
            }
            let limit = (frac * dense as f64).floor() as usize;
            let cost = |b: usize| {
                let s = TTSpec {
                    bond_dims: vec![b; nb],
                    ..spec_base.clone()
                }
                .capped();
                s.num_params() - s.out_features()
            };
            if nb == 0 {
                Truncation::exact()
            } else {
                if cost(1) > limit {
                    return Err(Error::invalid_arg(
                        "budget",
                        format!(
                            "even bonds of 1 need {} parameters, over the budget of {limit} ({frac} of {dense})",
                            cost(1)
                        ),
                    ));
                }
                // The cost grows with b until every bond is capped; the largest b worth trying
                // is the largest mode product, bounded by the dense size.
                let (mut lo, mut hi) = (1usize, dense.max(1));
                while lo < hi {
                    let mid = lo + (hi - lo).div_ceil(2);
                    if cost(mid) <= limit {
                        lo = mid;
                    } else {
                        hi = mid - 1;
                    }
                }
                Truncation::bond_dims(&uniform(lo)?)
            }
        }
    })
}

fn modes_for(modes: &Modes, n_in: usize, n_out: usize) -> Result<(Vec<usize>, Vec<usize>)> {
    match modes {
        Modes::Auto(d) => Ok((balanced_modes(n_in, *d)?, balanced_modes(n_out, *d)?)),
        Modes::Explicit {
            in_modes,
            out_modes,
        } => Ok((in_modes.clone(), out_modes.clone())),
    }
}

/// Compresses one weight `[out, in]` (with its bias `[out]`) under `config`; `stats` (inputs of
/// width `in`) switches on the data-aware objective and the output error.
pub fn compress_linear(
    linear: &Linear,
    config: &CompressConfig,
    stats: Option<&InputStats>,
) -> Result<(TTLayer, MatrixReport)> {
    let (n_in, n_out) = (linear.in_features(), linear.out_features());
    let (in_modes, out_modes) = modes_for(&config.modes, n_in, n_out)?;
    let base = TTSpec {
        layout: config.tt_layout,
        in_modes: in_modes.clone(),
        out_modes: out_modes.clone(),
        bond_dims: vec![],
    };
    if config.tt_layout == TTLayout::Matrix && in_modes.len() != out_modes.len() {
        return Err(Error::invalid_arg(
            "modes",
            "the TT-matrix layout needs as many input as output modes",
        ));
    }
    let truncation = truncation_for(&base, &config.target, n_in * n_out)?;
    let objective = config.method.config();
    let crate::tt::Decomposed {
        tt,
        capped,
        data_aware,
    } = crate::tt::decompose(
        linear,
        config.tt_layout,
        &in_modes,
        &out_modes,
        &truncation,
        stats.map(|s| (s, &objective)),
    )?;
    let output_error = data_aware.map(|r| r.output_error);
    let report = MatrixReport {
        name: String::new(),
        module: String::new(),
        shape: vec![n_out, n_in],
        layout: WeightLayout::OutIn,
        in_modes,
        out_modes,
        requested_bonds: truncation.bond_dims.clone().unwrap_or_default(),
        bond_dims: tt.bond_dims().to_vec(),
        capped,
        dense_params: tt.dense_params(),
        tt_params: tt.num_params(),
        weight_error: tt.relative_error(linear) as f64,
        output_error,
        has_bias: true,
        dense_flops_per_row: 2 * (n_in * n_out) as u64,
        tt_flops_per_row: tt.flops(1),
    };
    Ok((tt, report))
}

/// The names in `file` that `pattern` (comma-separated globs) selects, sorted.
pub fn select(file: &SafetensorsFile, pattern: &str) -> Result<Vec<String>> {
    let globs: Vec<&str> = pattern.split(',').map(str::trim).collect();
    if globs.iter().any(|g| g.is_empty()) {
        return Err(Error::invalid_arg(
            "pattern",
            format!("empty pattern in {pattern:?}"),
        ));
    }
    let names: Vec<String> = file
        .names()
        .into_iter()
        .filter(|n| globs.iter().any(|g| glob_match(g, n)))
        .collect();
    if names.is_empty() {
        return Err(Error::invalid_file(
            file.path(),
            "tensors",
            format!("no tensor matches {pattern:?}"),
        ));
    }
    Ok(names)
}

/// The calibration inputs of `weight` in `calib`: under the weight's name or its module name.
fn calibration_stats(calib: &SafetensorsFile, weight: &str, n_in: usize) -> Result<InputStats> {
    let module = module_name(weight);
    let key = [weight, module]
        .into_iter()
        .find(|k| calib.shape(k).is_some())
        .ok_or_else(|| {
            Error::invalid_file(
                calib.path(),
                module,
                format!("no calibration inputs under {weight:?} or {module:?}"),
            )
        })?;
    let x = calib.tensor(key)?;
    let x = x.into_dimensionality::<Ix2>().map_err(|_| {
        Error::invalid_file(
            calib.path(),
            key,
            format!(
                "calibration inputs must be [rows, {n_in}], got {:?}",
                calib.shape(key).unwrap_or(&[])
            ),
        )
    })?;
    if x.ncols() != n_in || x.nrows() == 0 {
        return Err(Error::invalid_file(
            calib.path(),
            key,
            format!(
                "calibration inputs must be [rows ≥ 1, {n_in}], got {:?}",
                x.shape()
            ),
        ));
    }
    InputStats::from_rows(x.view())
        .map_err(|e| Error::invalid_file(calib.path(), key, e.to_string()))
}

/// One selected matrix of [`compress`].
fn compress_one(
    source: &SafetensorsFile,
    config: &CompressConfig,
    calibration: Option<&SafetensorsFile>,
    name: &str,
) -> Result<((String, String, WeightLayout, TTLayer), MatrixReport)> {
    let name = name.to_string();
    let stored = source.tensor(&name)?;
    let shape = stored.shape().to_vec();
    let w = stored.into_dimensionality::<Ix2>().map_err(|_| {
        Error::invalid_file(
            source.path(),
            name.as_str(),
            format!("selected, but shape {shape:?} is not a matrix"),
        )
    })?;
    let w: Array2<f32> = match config.layout {
        WeightLayout::OutIn => w,
        WeightLayout::InOut => w.reversed_axes().as_standard_layout().into_owned(),
    };
    let n_out = w.nrows();
    let module = module_name(&name).to_string();
    let bias_name = format!("{module}.bias");
    let (bias, has_bias) = match source.shape(&bias_name) {
        Some(_) if bias_name != name => {
            let b: ArrayD<f32> = source.tensor(&bias_name)?;
            if b.shape() != [n_out] {
                return Err(Error::invalid_file(
                    source.path(),
                    bias_name,
                    format!(
                        "shape {:?}, expected [{n_out}] for the {} layout of {name}",
                        b.shape(),
                        config.layout.key()
                    ),
                ));
            }
            (Array1::from_iter(b.iter().copied()), true)
        }
        _ => (Array1::zeros(n_out), false),
    };
    let in_context = |e: Error| match e {
        Error::InvalidArgument { name: arg, reason } => {
            Error::invalid_file(source.path(), name.as_str(), format!("{arg}: {reason}"))
        }
        other => other,
    };
    let linear = Linear::new(w, bias).map_err(in_context)?;
    let stats = match calibration {
        Some(c) => Some(calibration_stats(c, &name, linear.in_features())?),
        None => None,
    };
    let (tt, mut report) = compress_linear(&linear, config, stats.as_ref()).map_err(in_context)?;
    report.name = name.clone();
    report.module = module.clone();
    report.shape = shape;
    report.layout = config.layout;
    report.has_bias = has_bias;
    Ok(((module, name, config.layout, tt), report))
}

/// Compresses every matrix of `source` that `config.pattern` selects (see the
/// [module docs](self)). Errors, naming the file and tensor: no match, a selected tensor that is
/// not a 2-D f32 matrix, a bias of the wrong shape, modes that do not fit, calibration inputs
/// missing or of the wrong width.
pub fn compress(
    source: &SafetensorsFile,
    config: &CompressConfig,
    calibration: Option<&SafetensorsFile>,
) -> Result<Compressed> {
    let names = select(source, &config.pattern)?;
    let threads = config.threads.clamp(1, names.len().max(1));
    type One = Result<((String, String, WeightLayout, TTLayer), MatrixReport)>;
    let mut results: Vec<Option<One>> = (0..names.len()).map(|_| None).collect();
    if threads == 1 {
        for (slot, name) in results.iter_mut().zip(&names) {
            *slot = Some(compress_one(source, config, calibration, name));
        }
    } else {
        // Matrix k on thread k % threads; each matrix's result does not depend on the thread.
        let names = &names;
        let chunks: Vec<Vec<(usize, One)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        (t..names.len())
                            .step_by(threads)
                            .map(|k| (k, compress_one(source, config, calibration, &names[k])))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a compression thread panicked"))
                .collect()
        });
        for (k, r) in chunks.into_iter().flatten() {
            results[k] = Some(r);
        }
    }
    let mut layers = Vec::with_capacity(names.len());
    let mut matrices = Vec::with_capacity(names.len());
    for r in results {
        let (layer, report) = r.expect("every matrix was compressed")?;
        layers.push(layer);
        matrices.push(report);
    }
    Ok(Compressed {
        layers,
        report: CompressReport { matrices },
    })
}

/// [`compress`] from a file to a file: reads `source` (and `calibration`), writes the cores to
/// `dest`, returns the report.
pub fn compress_file(
    source: impl AsRef<Path>,
    dest: impl AsRef<Path>,
    config: &CompressConfig,
    calibration: Option<&Path>,
) -> Result<CompressReport> {
    let src = SafetensorsFile::read(source)?;
    let calib = calibration.map(SafetensorsFile::read).transpose()?;
    let out = compress(&src, config, calib.as_ref())?;
    out.write(dest)?;
    Ok(out.report)
}

/// Reads a file written by [`Compressed::write`]: module → (layer, source weight name, layout),
/// every layer validated ([`TTLayer::from_parts`]: cores of exactly the spec's shapes, finite).
pub fn load_tt_layers(
    path: impl AsRef<Path>,
) -> Result<BTreeMap<String, (TTLayer, String, WeightLayout)>> {
    let file = SafetensorsFile::read(path)?;
    let meta = file.metadata();
    let bad = |key: &str, reason: String| Error::invalid_file(file.path(), key, reason);
    match meta.get("format") {
        Some(f) if f == FORMAT => {}
        other => {
            return Err(bad(
                "metadata.format",
                format!("{other:?}, expected {FORMAT:?}"),
            ))
        }
    }
    let text = meta
        .get("tt_layers")
        .ok_or_else(|| bad("metadata.tt_layers", "missing".into()))?;
    let entries: BTreeMap<String, LayerEntry> =
        serde_json::from_str(text).map_err(|e| bad("metadata.tt_layers", e.to_string()))?;
    let mut used = std::collections::BTreeSet::new();
    let mut out = BTreeMap::new();
    for (module, entry) in entries {
        entry
            .spec
            .validate()
            .map_err(|e| bad(&format!("metadata.tt_layers.{module}"), e.to_string()))?;
        let mut cores = Vec::new();
        for k in 0..entry.spec.num_cores() {
            let name = format!("{module}.cores.{k}");
            if file.shape(&name).is_none() {
                return Err(bad(&name, "missing".into()));
            }
            cores.push(file.tensor(&name)?);
            used.insert(name);
        }
        let bias_name = format!("{module}.bias");
        if file.shape(&bias_name).is_none() {
            return Err(bad(&bias_name, "missing".into()));
        }
        let bias = file.tensor(&bias_name)?;
        used.insert(bias_name.clone());
        let bias = Array1::from_iter(bias.iter().copied());
        let tt = TTLayer::from_parts(entry.spec, cores, bias)
            .map_err(|e| bad(&module, e.to_string()))?;
        out.insert(module, (tt, entry.source, entry.layout));
    }
    if let Some(extra) = file.names().into_iter().find(|n| !used.contains(n)) {
        return Err(bad(
            &extra,
            "unknown tensor (not a core or bias of tt_layers)".into(),
        ));
    }
    Ok(out)
}

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
//!   and the report gives the output error on those inputs too (inputs on which the layer's
//!   output is zero, e.g. all-zero rows, are an error: there is no relative error to give).
//! - **Selection**: the pattern picks names; of those, 2-D float matrices are compressed and
//!   every other match (a 1-D LayerNorm weight, an integer buffer, an empty matrix) is skipped
//!   and listed in the report ([`CompressReport::skipped`]), unless the pattern names it exactly
//!   (no `*` or `?`), which is an error. Two selected names with one module name (`x.weight` and
//!   `x`) are an error naming both.
//! - **Dtypes**: `F32`, `F16`, `BF16` and `F64` weights (and biases, and calibration inputs) are
//!   read as f32 ([`SafetensorsFile::tensor_as_f32`]); the cores are written in each weight's
//!   dtype ([`OutputDtype::Input`]) or as `F32` ([`OutputDtype::F32`]). Cores rounded to `F16` or
//!   `BF16` are what the report measures (weight and output errors of the written cores); a core
//!   value beyond `F16`'s range is an error that suggests `F32`.
//! - **Files**: the input is memory-mapped and only the selected tensors (and their biases) are
//!   read. [`compress_files`] (the tool's entry point) checks the configuration before reading
//!   anything, refuses an output or report that is the input or calibration file (or each
//!   other), and writes the cores and the report together or not at all
//!   ([`crate::fs::write_files_atomic`]). The written bytes depend only on the inputs.
//!
//! # The written file
//!
//! For a weight `h.0.mlp.c_fc.weight` (module `h.0.mlp.c_fc`): tensors
//! `h.0.mlp.c_fc.cores.{k}` (the [`TTSpec::core_shapes`]) and `h.0.mlp.c_fc.bias` (`[out]`; zeros
//! when the source has no bias); the header metadata `tt_layers` maps each module to
//! `{"source": <weight name>, "layout": "out_in"|"in_out", "spec": <TTSpec>}`, and
//! `format` is [`FORMAT`]. [`load_tt_layers`] reads it back (any float dtype), validated.
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
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, ArrayD, Ix2};
use serde::{Deserialize, Serialize};

use crate::compress::method::Method;
use crate::error::{Error, Result};
pub use crate::fs::safetensors::FloatDtype;
use crate::fs::safetensors::{to_bytes, SafetensorsFile};
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

/// The dtype the cores (and biases) are written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputDtype {
    /// Each weight's own dtype (`F16` cores for an `F16` weight, …).
    #[default]
    Input,
    /// `F32`, whatever the weight's dtype.
    F32,
}

impl OutputDtype {
    /// `"input"` / `"f32"`.
    pub fn key(self) -> &'static str {
        match self {
            OutputDtype::Input => "input",
            OutputDtype::F32 => "f32",
        }
    }

    /// Parses `input` or `f32`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "input" => Ok(OutputDtype::Input),
            "f32" => Ok(OutputDtype::F32),
            _ => Err(Error::invalid_arg(
                "dtype",
                format!("unknown dtype {s:?} (known: input, f32)"),
            )),
        }
    }

    /// The dtype the cores of a weight of dtype `weight` are written in.
    pub fn for_weight(self, weight: FloatDtype) -> FloatDtype {
        match self {
            OutputDtype::Input => weight,
            OutputDtype::F32 => FloatDtype::F32,
        }
    }
}

/// At most this many modes a side: every dimension a file can hold (below 2⁶⁴) has at most 63
/// prime factors, so more modes could only be 1s.
pub const MAX_MODES: usize = 64;

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
    /// The dtype of the written cores.
    pub dtype: OutputDtype,
}

impl Default for CompressConfig {
    /// Every `*.weight` matrix, `[out, in]`, 3 modes a side, bonds ≤ 16, seed layout, whitened,
    /// one thread, cores in the weights' dtype.
    fn default() -> Self {
        CompressConfig {
            pattern: "*.weight".into(),
            layout: WeightLayout::OutIn,
            modes: Modes::Auto(3),
            target: Target::Bond(16),
            tt_layout: TTLayout::OutputsThenInputs,
            method: Method::Whitened,
            threads: 1,
            dtype: OutputDtype::Input,
        }
    }
}

impl CompressConfig {
    /// Checks everything that does not depend on a file, so that a bad request fails before
    /// any reading: the pattern (no empty glob), the modes (1 to [`MAX_MODES`] a side, no mode
    /// 0, products within `usize`; as many input as output modes for the TT-matrix layout), the
    /// target (a bond ≥ 1, `eps` in `[0, 1)`, a budget in `(0, 1]`). Errors name the field
    /// (`pattern`, `modes`, `in_modes`, `out_modes`, `tt_layout`, `bond`, `eps`, `budget`).
    pub fn validate(&self) -> Result<()> {
        globs(&self.pattern)?;
        match &self.modes {
            Modes::Auto(d) => {
                if *d == 0 || *d > MAX_MODES {
                    return Err(Error::invalid_arg(
                        "modes",
                        format!("auto:{d}: the number of modes a side must be in 1..={MAX_MODES}"),
                    ));
                }
            }
            Modes::Explicit {
                in_modes,
                out_modes,
            } => {
                for (name, m) in [("in_modes", in_modes), ("out_modes", out_modes)] {
                    let bad = |why: String| Err(Error::invalid_arg(name, why));
                    if m.is_empty() || m.len() > MAX_MODES {
                        return bad(format!("{} modes given, expected 1..={MAX_MODES}", m.len()));
                    }
                    if m.contains(&0) {
                        return bad(format!("{m:?} holds a mode of 0"));
                    }
                    if m.iter()
                        .try_fold(1usize, |p, &x| p.checked_mul(x))
                        .is_none()
                    {
                        return bad(format!("the product of {m:?} overflows"));
                    }
                }
                if self.tt_layout == TTLayout::Matrix && in_modes.len() != out_modes.len() {
                    return Err(Error::invalid_arg(
                        "tt_layout",
                        format!(
                            "the TT-matrix layout needs as many input as output modes ({} and {})",
                            in_modes.len(),
                            out_modes.len()
                        ),
                    ));
                }
            }
        }
        let check_bond = |b: usize| {
            if b == 0 {
                return Err(Error::invalid_arg(
                    "bond",
                    "a bond of 0 is not a tensor train",
                ));
            }
            Ok(())
        };
        let check_eps = |eps: f64| {
            if !(eps.is_finite() && (0.0..1.0).contains(&eps)) {
                return Err(Error::invalid_arg("eps", format!("{eps} is not in [0, 1)")));
            }
            Ok(())
        };
        match self.target {
            Target::Exact => Ok(()),
            Target::Bond(b) => check_bond(b),
            Target::Eps(eps) => check_eps(eps),
            Target::BondAndEps(b, eps) => check_bond(b).and(check_eps(eps)),
            Target::Budget(frac) => {
                if frac.is_finite() && frac > 0.0 && frac <= 1.0 {
                    Ok(())
                } else {
                    Err(Error::invalid_arg(
                        "budget",
                        format!("{frac} is not a fraction in (0, 1]"),
                    ))
                }
            }
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
    /// Its dtype in the source file.
    pub dtype: FloatDtype,
    /// The dtype its cores and bias are written in.
    pub written_dtype: FloatDtype,
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
    /// `‖W − W_tt‖_F / ‖W‖_F`, of the cores as written (rounded to
    /// [`written_dtype`](Self::written_dtype)) against the weight as read.
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
    /// What deserves a look (e.g. a tensor train with more parameters than the dense matrix).
    pub warnings: Vec<String>,
}

/// A tensor the pattern matched that was not compressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedTensor {
    /// Its name in the source file.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its dtype, as safetensors spells it.
    pub dtype: String,
    /// Why it was skipped (`"1-D, not a matrix"`, `"dtype I64, not a float"`, …).
    pub reason: String,
}

/// The report of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompressReport {
    /// One entry per selected matrix, in name order.
    pub matrices: Vec<MatrixReport>,
    /// The tensors the pattern matched but that are not float matrices, in name order.
    pub skipped: Vec<SkippedTensor>,
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

    /// Every matrix's warnings, each as `name: warning`.
    pub fn warnings(&self) -> Vec<String> {
        self.matrices
            .iter()
            .flat_map(|m| m.warnings.iter().map(move |w| format!("{}: {w}", m.name)))
            .collect()
    }

    /// A fixed-width text table, one line per matrix, then a line per skipped tensor.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<28} {:>12} {:>7} {:>5} {:>14} {:>14} {:>16} {:>7} {:>9} {:>9} {:>9} {:>11} {:>9}\n",
            "matrix",
            "shape",
            "layout",
            "dtype",
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
                "{:<28} {:>12} {:>7} {:>5} {:>14} {:>14} {:>16} {:>7} {:>9} {:>9} {:>9.3e} {:>11} {:>9}{}\n",
                m.name,
                list(&m.shape),
                m.layout.key(),
                m.dtype.key(),
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
        if !self.skipped.is_empty() {
            s.push_str(&format!(
                "skipped {} matched tensor(s) that are not float matrices:\n",
                self.skipped.len()
            ));
            for t in &self.skipped {
                s.push_str(&format!(
                    "  {} {:?} {}: {}\n",
                    t.name, t.shape, t.dtype, t.reason
                ));
            }
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
        crate::fs::write_atomic(path, &self.to_bytes()?)
    }

    /// The bytes [`write`](Self::write) writes: each layer's cores and bias in its report's
    /// `written_dtype` (`F32` for a layer without a report). Deterministic.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut entries = BTreeMap::new();
        let mut tensors = Vec::new();
        for (i, (module, source, layout, tt)) in self.layers.iter().enumerate() {
            let dtype = self
                .report
                .matrices
                .get(i)
                .map_or(FloatDtype::F32, |m| m.written_dtype);
            entries.insert(
                module.clone(),
                LayerEntry {
                    source: source.clone(),
                    layout: *layout,
                    spec: tt.spec().clone(),
                },
            );
            for (k, c) in tt.cores().iter().enumerate() {
                tensors.push((format!("{module}.cores.{k}"), c.view(), dtype));
            }
            tensors.push((format!("{module}.bias"), tt.bias().into_dyn(), dtype));
        }
        let mut meta = BTreeMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert(
            "tt_layers".to_string(),
            serde_json::to_string(&entries).expect("specs serialise"),
        );
        to_bytes(tensors, &meta)
    }
}

/// Factorises `n` into `d` modes as equal as possible (the largest mode as small as it can be,
/// then the smallest as large), ascending: `balanced_modes(768, 3) = [8, 8, 12]`,
/// `balanced_modes(3072, 3) = [12, 16, 16]`. A prime `n` gives `[1, …, 1, n]`.
///
/// Errors: `n == 0`, `d == 0`, or `d` above [`MAX_MODES`] (no dimension has that many prime
/// factors: the extra modes could only be 1s).
pub fn balanced_modes(n: usize, d: usize) -> Result<Vec<usize>> {
    if n == 0 {
        return Err(Error::invalid_arg("n", "cannot factorise 0"));
    }
    if d == 0 {
        return Err(Error::invalid_arg("modes", "need at least one mode"));
    }
    if d > MAX_MODES {
        return Err(Error::invalid_arg(
            "modes",
            format!(
                "{d} modes for a dimension of {n}: at most {MAX_MODES} ({n} has {} prime \
                 factors, so all modes beyond that many are 1)",
                prime_factor_count(n)
            ),
        ));
    }
    let divisors: Vec<usize> = (1..=n)
        .take_while(|k| k.checked_mul(*k).is_some_and(|kk| kk <= n))
        .filter(|k| n % k == 0)
        .flat_map(|k| [k, n / k])
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // Depth-first over non-decreasing factor lists, with an explicit stack (no recursion, so
    // no depth limit); score = (largest, −smallest). A frame is (rest to factorise, factors
    // left, smallest allowed factor, next divisor to try); `cur` holds the factors chosen above.
    let mut best: Option<(usize, usize, Vec<usize>)> = None;
    let mut cur: Vec<usize> = Vec::with_capacity(d);
    let mut stack: Vec<(usize, usize, usize, usize)> = vec![(n, d, 1, 0)];
    while let Some(frame) = stack.last_mut() {
        let (rest, left, min, from) = *frame;
        let mut next = None;
        if left == 1 {
            if rest >= min {
                let (hi, lo) = (rest, cur.first().copied().unwrap_or(rest));
                let better = match &best {
                    None => true,
                    Some((bh, bl, _)) => {
                        (hi, std::cmp::Reverse(lo)) < (*bh, std::cmp::Reverse(*bl))
                    }
                };
                if better {
                    let mut list = cur.clone();
                    list.push(rest);
                    best = Some((hi, lo, list));
                }
            }
        } else {
            let mut i = from;
            while let Some(&f) = divisors.get(i) {
                i += 1;
                if f < min || rest % f != 0 {
                    continue;
                }
                // f ≤ the left-th root of rest (non-decreasing lists), and no larger than the
                // best largest mode so far (every later factor is at least f).
                let fits = matches!(f.checked_pow(left as u32), Some(p) if p <= rest);
                if !fits || best.as_ref().is_some_and(|(bh, _, _)| f > *bh) {
                    i = divisors.len();
                    break;
                }
                next = Some(f);
                break;
            }
            frame.3 = i;
        }
        match next {
            Some(f) => {
                cur.push(f);
                stack.push((rest / f, left - 1, f, 0));
            }
            None => {
                stack.pop();
                cur.pop();
            }
        }
    }
    Ok(best.expect("[1, …, 1, n] is always a candidate").2)
}

/// The prime factors of `n ≥ 1`, counted with multiplicity.
fn prime_factor_count(mut n: usize) -> usize {
    let (mut count, mut p) = (0, 2usize);
    while p.checked_mul(p).is_some_and(|pp| pp <= n) {
        while n % p == 0 {
            n /= p;
            count += 1;
        }
        p += 1;
    }
    count + usize::from(n > 1)
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

/// The modes of a layer `[n_out, n_in]`. Errors: explicit modes whose products are not `n_in`
/// and `n_out` (checked here, before calibration inputs are compared with them).
fn modes_for(modes: &Modes, n_in: usize, n_out: usize) -> Result<(Vec<usize>, Vec<usize>)> {
    match modes {
        Modes::Auto(d) => Ok((balanced_modes(n_in, *d)?, balanced_modes(n_out, *d)?)),
        Modes::Explicit {
            in_modes,
            out_modes,
        } => {
            for (name, m, n, side) in [
                ("in_modes", in_modes, n_in, "input"),
                ("out_modes", out_modes, n_out, "output"),
            ] {
                let product = m.iter().try_fold(1usize, |p, &x| p.checked_mul(x));
                if product != Some(n) {
                    return Err(Error::invalid_arg(
                        name,
                        format!("the product of {m:?} is not the layer's {n} {side} features"),
                    ));
                }
            }
            Ok((in_modes.clone(), out_modes.clone()))
        }
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
        dtype: FloatDtype::F32,
        written_dtype: FloatDtype::F32,
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
        warnings: Vec::new(),
    };
    Ok((tt, report))
}

/// The globs of a comma-separated pattern. Errors (on `pattern`): an empty glob.
fn globs(pattern: &str) -> Result<Vec<&str>> {
    let globs: Vec<&str> = pattern.split(',').map(str::trim).collect();
    if globs.iter().any(|g| g.is_empty()) {
        return Err(Error::invalid_arg(
            "pattern",
            format!("empty pattern in {pattern:?}"),
        ));
    }
    Ok(globs)
}

/// What a pattern selects in a file ([`select`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The float matrices to compress, sorted.
    pub names: Vec<String>,
    /// The other tensors the pattern matched, sorted, each with the reason.
    pub skipped: Vec<SkippedTensor>,
}

/// Why tensor `name` of `file` is not a float matrix with both sides ≥ 1, if it is not.
fn not_a_matrix(file: &SafetensorsFile, name: &str) -> Option<String> {
    let shape = file.shape(name).unwrap_or(&[]);
    if file.float_dtype(name).is_none() {
        return Some(format!(
            "dtype {}, not a float",
            file.dtype(name).unwrap_or_default()
        ));
    }
    match shape {
        [a, b] if *a > 0 && *b > 0 => None,
        [_, _] => Some("an empty matrix".into()),
        _ => Some(format!("{}-D, not a matrix", shape.len())),
    }
}

/// The tensors of `file` that `pattern` (comma-separated globs) selects: the float matrices
/// among its matches, and the others skipped. A tensor that a glob without `*` or `?` names
/// exactly must be a float matrix (else an error naming it); one matched only by wildcards is
/// skipped if it is not. Errors: an empty glob, or no float matrix matched (naming the pattern
/// and what was skipped).
pub fn select(file: &SafetensorsFile, pattern: &str) -> Result<Selection> {
    let globs = globs(pattern)?;
    let mut selection = Selection {
        names: Vec::new(),
        skipped: Vec::new(),
    };
    for name in file.names() {
        let matching: Vec<&&str> = globs.iter().filter(|g| glob_match(g, &name)).collect();
        if matching.is_empty() {
            continue;
        }
        match not_a_matrix(file, &name) {
            None => selection.names.push(name),
            Some(reason) => {
                let shape = file.shape(&name).unwrap_or(&[]).to_vec();
                if matching.iter().any(|g| !g.contains(['*', '?'])) {
                    return Err(Error::invalid_file(
                        file.path(),
                        name.as_str(),
                        format!(
                            "selected by name, but shape {shape:?} {}: {reason}",
                            file.dtype(&name).unwrap_or_default()
                        ),
                    ));
                }
                selection.skipped.push(SkippedTensor {
                    dtype: file.dtype(&name).unwrap_or_default(),
                    name,
                    shape,
                    reason,
                });
            }
        }
    }
    if selection.names.is_empty() {
        let skipped = match selection.skipped.len() {
            0 => String::new(),
            n => format!(
                " ({n} matched tensor(s) are not float matrices, e.g. {} {:?}: {})",
                selection.skipped[0].name, selection.skipped[0].shape, selection.skipped[0].reason
            ),
        };
        return Err(Error::invalid_file(
            file.path(),
            "tensors",
            format!("no float matrix matches {pattern:?}{skipped}"),
        ));
    }
    Ok(selection)
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
    let shape = calib.shape(key).unwrap_or(&[]).to_vec();
    if !matches!(shape[..], [rows, cols] if rows > 0 && cols == n_in) {
        return Err(Error::invalid_file(
            calib.path(),
            key,
            format!("calibration inputs must be [rows ≥ 1, {n_in}], got {shape:?}"),
        ));
    }
    let x = calib.tensor_as_f32(key)?;
    let x = x
        .into_dimensionality::<Ix2>()
        .map_err(|e| Error::invalid_file(calib.path(), key, e.to_string()))?;
    if x.iter().all(|&v| v == 0.0) {
        return Err(Error::invalid_file(
            calib.path(),
            key,
            format!(
                "all {} calibration rows are zero: the layer's output on them is zero, so there is \
                 no relative output error to minimise or report",
                x.nrows()
            ),
        ));
    }
    InputStats::from_rows(x.view())
        .map_err(|e| Error::invalid_file(calib.path(), key, e.to_string()))
}

/// `‖W‖²` weighted by the inputs' second moment, `E‖Wx‖²`: 0 when the layer's output on the
/// calibration inputs is zero.
fn output_energy(linear: &Linear, stats: &InputStats) -> f64 {
    let w = linear.weight().mapv(f64::from);
    (w.dot(&stats.second_moment()) * &w).sum()
}

/// `tt` with its cores and bias rounded to `dtype` (as written). Errors: a value beyond the
/// dtype's range.
fn rounded(tt: TTLayer, dtype: FloatDtype) -> Result<TTLayer> {
    if dtype.rounds_f32() {
        let overflow = |what: &str, v: f32| {
            Error::invalid_arg(
                "dtype",
                format!(
                    "{what} value {v} is beyond the range of {dtype}: write the cores as F32 \
                     (--dtype f32 / OutputDtype::F32)"
                ),
            )
        };
        let round = |a: &ArrayD<f32>, what: &str| -> Result<ArrayD<f32>> {
            if let Some(&v) = a
                .iter()
                .find(|v| v.is_finite() && !dtype.round(**v).is_finite())
            {
                return Err(overflow(what, v));
            }
            Ok(a.mapv(|v| dtype.round(v)))
        };
        let cores = tt
            .cores()
            .iter()
            .map(|c| round(c, "a core"))
            .collect::<Result<Vec<_>>>()?;
        let bias = round(&tt.bias().to_owned().into_dyn(), "a bias")?;
        let bias = Array1::from_iter(bias.iter().copied());
        return TTLayer::from_parts(tt.spec().clone(), cores, bias);
    }
    Ok(tt)
}

/// One selected matrix of [`compress`].
fn compress_one(
    source: &SafetensorsFile,
    config: &CompressConfig,
    calibration: Option<&SafetensorsFile>,
    name: &str,
) -> Result<((String, String, WeightLayout, TTLayer), MatrixReport)> {
    let name = name.to_string();
    let dtype = source.float_dtype(&name).ok_or_else(|| {
        Error::invalid_file(
            source.path(),
            name.as_str(),
            format!(
                "dtype {}, not a float",
                source.dtype(&name).unwrap_or_default()
            ),
        )
    })?;
    let stored = source.tensor_as_f32(&name)?;
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
        Some(shape) if bias_name != name => {
            if shape != [n_out] {
                return Err(Error::invalid_file(
                    source.path(),
                    bias_name,
                    format!(
                        "shape {shape:?}, expected [{n_out}] for the {} layout of {name}",
                        config.layout.key()
                    ),
                ));
            }
            let b: ArrayD<f32> = source.tensor_as_f32(&bias_name)?;
            (Array1::from_iter(b.iter().copied()), true)
        }
        _ => (Array1::zeros(n_out), false),
    };
    // Errors about this matrix name the file and the tensor.
    let in_context = |e: Error| match e {
        Error::InvalidArgument { name: arg, reason } => {
            Error::invalid_file(source.path(), name.as_str(), format!("{arg}: {reason}"))
        }
        e @ (Error::Io { .. } | Error::Json { .. } | Error::InvalidFile { .. }) => e,
        other => Error::invalid_file(source.path(), name.as_str(), other.to_string()),
    };
    let linear = Linear::new(w, bias).map_err(in_context)?;
    let stats = match calibration {
        Some(c) => {
            let stats = calibration_stats(c, &name, linear.in_features()).map_err(in_context)?;
            if output_energy(&linear, &stats) <= 0.0 {
                return Err(Error::invalid_file(
                    c.path(),
                    module.as_str(),
                    format!(
                        "the output of {name} on these calibration inputs is zero (they lie in \
                         its null space): there is no relative output error to minimise or report"
                    ),
                ));
            }
            Some(stats)
        }
        None => None,
    };
    let (tt, mut report) = compress_linear(&linear, config, stats.as_ref()).map_err(in_context)?;
    let written = config.dtype.for_weight(dtype);
    let tt = if written.rounds_f32() {
        // The cores as written: what the report measures.
        let tt = rounded(tt, written).map_err(in_context)?;
        report.weight_error = tt.relative_error(&linear) as f64;
        if let Some(s) = &stats {
            report.output_error = Some(
                s.output_error(&linear, &tt.to_dense())
                    .map_err(in_context)?,
            );
        }
        tt
    } else {
        tt
    };
    if !report.weight_error.is_finite()
        || tt.cores().iter().any(|c| c.iter().any(|v| !v.is_finite()))
    {
        return Err(Error::invalid_file(
            source.path(),
            name.as_str(),
            format!(
                "the decomposition is not finite (weight error {}): values too large for f32 arithmetic?",
                report.weight_error
            ),
        ));
    }
    if report.tt_params > report.dense_params {
        report.warnings.push(format!(
            "the tensor train has {} parameters, more than the dense matrix's {}: it does not \
             compress (use a smaller --bond, --budget or --eps)",
            report.tt_params, report.dense_params
        ));
    }
    report.name = name.clone();
    report.module = module.clone();
    report.shape = shape;
    report.layout = config.layout;
    report.dtype = dtype;
    report.written_dtype = written;
    report.has_bias = has_bias;
    Ok(((module, name, config.layout, tt), report))
}

/// Compresses every matrix of `source` that `config.pattern` selects (see the
/// [module docs](self)). Errors, naming the file and tensor: a bad `config`
/// ([`CompressConfig::validate`]), no float matrix matched, a non-matrix named exactly, two
/// selected names with one module name, a bias of the wrong shape, modes that do not fit,
/// calibration inputs missing, of the wrong width or on which the layer's output is zero, cores
/// beyond the range of the written dtype.
pub fn compress(
    source: &SafetensorsFile,
    config: &CompressConfig,
    calibration: Option<&SafetensorsFile>,
) -> Result<Compressed> {
    config.validate()?;
    let Selection { names, skipped } = select(source, &config.pattern)?;
    let mut modules: BTreeMap<&str, &str> = BTreeMap::new();
    for name in &names {
        if let Some(first) = modules.insert(module_name(name), name) {
            return Err(Error::invalid_file(
                source.path(),
                module_name(name),
                format!(
                    "{first:?} and {name:?} would both be written as module {:?}; select one of \
                     them (--pattern)",
                    module_name(name)
                ),
            ));
        }
    }
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
        report: CompressReport { matrices, skipped },
    })
}

/// The files of one run of [`compress_files`] (the `compress` tool's flags of the same names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressPaths {
    /// The safetensors file holding the weights (read only).
    pub input: PathBuf,
    /// The safetensors file to write the cores to.
    pub output: PathBuf,
    /// Calibration inputs (read only), if any.
    pub calibration: Option<PathBuf>,
    /// Where to write the report as JSON, if anywhere.
    pub report: Option<PathBuf>,
}

impl CompressPaths {
    /// Refuses (naming `output` or `report`) a file to write that is a file to read (the input
    /// or the calibration file: writing would destroy it) or the other file to write; "is" as
    /// [`crate::fs::same_file`] means it: hard links, symlinks and other spellings included.
    pub fn check(&self) -> Result<()> {
        let shown = |p: &Path| format!("{:?}", p.display().to_string());
        let mut read = vec![("input", &self.input)];
        read.extend(self.calibration.iter().map(|c| ("calibration", c)));
        let mut write = vec![("output", &self.output)];
        write.extend(self.report.iter().map(|r| ("report", r)));
        for (i, (flag, w)) in write.iter().enumerate() {
            for (what, r) in &read {
                if crate::fs::same_file(w, r) {
                    return Err(Error::invalid_arg(
                        *flag,
                        format!(
                            "{} is the {what} file {}: writing it would destroy it; nothing was written",
                            shown(w),
                            shown(r)
                        ),
                    ));
                }
            }
            if let Some((other, o)) = write[..i].iter().find(|(_, o)| crate::fs::same_file(w, o)) {
                return Err(Error::invalid_arg(
                    *flag,
                    format!("{} is also the {other} file; give another path", shown(o)),
                ));
            }
        }
        Ok(())
    }
}

/// The `compress` tool's run: checks `config` and `paths` before reading anything, reads the
/// input (memory-mapped; only the selected tensors) and the calibration file, compresses, and
/// writes the cores and the report (pretty JSON of the [`CompressReport`]) together, all or
/// nothing ([`crate::fs::write_files_atomic`]): on any error no output file is written or
/// changed. Returns the report.
pub fn compress_files(paths: &CompressPaths, config: &CompressConfig) -> Result<CompressReport> {
    config.validate()?;
    paths.check()?;
    let src = SafetensorsFile::read(&paths.input)?;
    let calib = paths
        .calibration
        .as_deref()
        .map(SafetensorsFile::read)
        .transpose()?;
    let out = compress(&src, config, calib.as_ref())?;
    drop((src, calib));
    let cores = out.to_bytes()?;
    let mut files: Vec<(&Path, Vec<u8>)> = vec![(paths.output.as_path(), cores)];
    if let Some(r) = &paths.report {
        let json = serde_json::to_vec_pretty(&out.report).map_err(|source| Error::Json {
            path: r.clone(),
            source,
        })?;
        files.push((r.as_path(), json));
    }
    let files: Vec<(&Path, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    crate::fs::write_files_atomic(&files)?;
    Ok(out.report)
}

/// [`compress`] from a file to a file: reads `source` (and `calibration`), writes the cores to
/// `dest`, returns the report ([`compress_files`] without a report file).
pub fn compress_file(
    source: impl AsRef<Path>,
    dest: impl AsRef<Path>,
    config: &CompressConfig,
    calibration: Option<&Path>,
) -> Result<CompressReport> {
    compress_files(
        &CompressPaths {
            input: source.as_ref().to_path_buf(),
            output: dest.as_ref().to_path_buf(),
            calibration: calibration.map(Path::to_path_buf),
            report: None,
        },
        config,
    )
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
            cores.push(file.tensor_as_f32(&name)?);
            used.insert(name);
        }
        let bias_name = format!("{module}.bias");
        if file.shape(&bias_name).is_none() {
            return Err(bad(&bias_name, "missing".into()));
        }
        let bias = file.tensor_as_f32(&bias_name)?;
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

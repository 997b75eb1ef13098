//! [`TTLayer`]: a linear layer whose weight is held as a tensor train.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use ndarray::{Array1, Array2, ArrayD, ArrayView2, ArrayViewD, ArrayViewMutD, Axis, IxDyn};
use serde::{Deserialize, Serialize};

use super::decompose::{check_modes, tt_svd_f64, Truncation, TtSvd};
use super::measure::{self, Planner};
use super::plan::{self, Dims, Schedule, Taped};
use crate::error::{Error, Result};
use crate::linear::Linear;
use crate::params::{join, Parameters};

/// How the cores of a [`TTLayer`] are arranged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TTLayout {
    /// The seed's layout: the weight `[out, in]` reshaped to `[o_1, …, o_M, i_1, …, i_N]`
    /// (all output modes, then all input modes) and decomposed as an order-`M+N` tensor. The
    /// first core is `[o_1, r_1]`, the last `[r_{d−1}, i_N]`, the others `[r_{k−1}, n_k, r_k]`.
    #[default]
    OutputsThenInputs,
    /// Novikov et al.'s TT-matrix (as in t3f and tensorly): one core `[r_{k−1}, o_k, i_k, r_k]`
    /// per pair of output and input modes (`r_0 = r_M = 1`); needs as many input as output
    /// modes (pad with 1s).
    Matrix,
}

/// What a [`TTLayer`] is, apart from its values: layout, modes and (effective) bond dims.
/// Serialisable, so checkpoints can store it beside the cores.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TTSpec {
    /// Core layout.
    pub layout: TTLayout,
    /// Input modes `[i_1, …, i_N]`, product `in_features`.
    pub in_modes: Vec<usize>,
    /// Output modes `[o_1, …, o_M]`, product `out_features`.
    pub out_modes: Vec<usize>,
    /// Bond dims: `M + N − 1` of them for [`TTLayout::OutputsThenInputs`], `M − 1` for
    /// [`TTLayout::Matrix`].
    pub bond_dims: Vec<usize>,
}

impl TTSpec {
    /// Checks the spec: non-empty modes without zeros, equal mode counts for the matrix layout,
    /// the right number of bond dims, no zero bond dim.
    pub fn validate(&self) -> Result<()> {
        check_modes("in_modes", &self.in_modes)?;
        check_modes("out_modes", &self.out_modes)?;
        let expected = self.num_cores() - 1;
        if self.layout == TTLayout::Matrix && self.in_modes.len() != self.out_modes.len() {
            return Err(Error::invalid_arg(
                "in_modes",
                format!(
                    "the TT-matrix layout needs as many input modes as output modes, got {:?} and {:?}",
                    self.in_modes, self.out_modes
                ),
            ));
        }
        if self.bond_dims.len() != expected {
            return Err(Error::invalid_arg(
                "bond_dims",
                format!(
                    "{} bond dims for {} cores; expected {expected}",
                    self.bond_dims.len(),
                    self.num_cores()
                ),
            ));
        }
        if let Some(k) = self.bond_dims.iter().position(|&r| r == 0) {
            return Err(Error::invalid_arg(
                "bond_dims",
                format!("bond dim {k} is 0 (bond dims {:?})", self.bond_dims),
            ));
        }
        Ok(())
    }

    /// The spec with every bond dim capped to the rank limit TT-SVD gives it,
    /// `min(r_{k−1}·n_k, n_{k+1}···n_d)` from the left (what [`TTLayer::decompose`] would
    /// produce at full rank). The spec must be valid.
    pub fn capped(&self) -> TTSpec {
        let modes: Vec<usize> = match self.layout {
            TTLayout::OutputsThenInputs => self
                .out_modes
                .iter()
                .chain(&self.in_modes)
                .copied()
                .collect(),
            TTLayout::Matrix => self
                .out_modes
                .iter()
                .zip(&self.in_modes)
                .map(|(o, i)| o * i)
                .collect(),
        };
        let mut r_prev = 1usize;
        let mut rest: usize = modes.iter().product();
        let mut bonds = Vec::with_capacity(self.bond_dims.len());
        for (k, &b) in self.bond_dims.iter().enumerate() {
            rest /= modes[k];
            let r = b.min(r_prev.saturating_mul(modes[k])).min(rest);
            bonds.push(r);
            r_prev = r;
        }
        TTSpec {
            bond_dims: bonds,
            ..self.clone()
        }
    }

    /// Parameters of a layer of this spec: every core plus the bias (`out_features`), with the
    /// bonds as given (see [`capped`](Self::capped) for the ones TT-SVD would reach).
    pub fn num_params(&self) -> usize {
        self.core_shapes()
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum::<usize>()
            + self.out_features()
    }

    /// The number of cores.
    pub fn num_cores(&self) -> usize {
        match self.layout {
            TTLayout::OutputsThenInputs => self.out_modes.len() + self.in_modes.len(),
            TTLayout::Matrix => self.out_modes.len(),
        }
    }

    /// `in_features` (product of the input modes).
    pub fn in_features(&self) -> usize {
        self.in_modes.iter().product()
    }

    /// `out_features` (product of the output modes).
    pub fn out_features(&self) -> usize {
        self.out_modes.iter().product()
    }

    /// The shape of every core (the spec must be valid).
    pub fn core_shapes(&self) -> Vec<Vec<usize>> {
        let d = self.num_cores();
        let r = |k: usize| {
            if k == 0 || k == d {
                1
            } else {
                self.bond_dims[k - 1]
            }
        };
        match self.layout {
            TTLayout::OutputsThenInputs => {
                let modes: Vec<usize> = self
                    .out_modes
                    .iter()
                    .chain(&self.in_modes)
                    .copied()
                    .collect();
                (0..d)
                    .map(|k| {
                        if d == 1 {
                            vec![modes[0]]
                        } else if k == 0 {
                            vec![modes[0], r(1)]
                        } else if k == d - 1 {
                            vec![r(k), modes[k]]
                        } else {
                            vec![r(k), modes[k], r(k + 1)]
                        }
                    })
                    .collect()
            }
            TTLayout::Matrix => (0..d)
                .map(|k| vec![r(k), self.out_modes[k], self.in_modes[k], r(k + 1)])
                .collect(),
        }
    }

    /// Block dims `[a_left, p, q, a_right]` of every core for the contraction engine.
    pub(crate) fn block_dims(&self) -> Vec<Dims> {
        let d = self.num_cores();
        let r = |k: usize| {
            if k == 0 || k == d {
                1
            } else {
                self.bond_dims[k - 1]
            }
        };
        let m = self.out_modes.len();
        (0..d)
            .map(|k| match self.layout {
                TTLayout::OutputsThenInputs if k < m => [r(k), self.out_modes[k], 1, r(k + 1)],
                TTLayout::OutputsThenInputs => [r(k), 1, self.in_modes[k - m], r(k + 1)],
                TTLayout::Matrix => [r(k), self.out_modes[k], self.in_modes[k], r(k + 1)],
            })
            .collect()
    }
}

/// A summary of the contraction plan chosen for a number of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct TTPlan {
    /// The groups of cores merged once into one block, as `[start, end)` core ranges
    /// (`[(0, d)]` is the dense matrix; all singletons is the plain sweep).
    pub groups: Vec<(usize, usize)>,
    /// GEMM floating-point operations per forward call.
    pub flops: u64,
    /// The cost model's estimate, in nanoseconds.
    pub modelled_ns: f64,
}

/// Per group of a partition: nothing for a group of one core; else the merged block first,
/// then (for training) the merges of every proper suffix of the group, which the backward
/// needs to pass the merged block's gradient back to the cores.
type Merged = Arc<Vec<Vec<(Dims, Vec<f32>)>>>;

/// Lazily computed, value-independent schedules and value-dependent merged blocks.
#[derive(Default)]
struct PlanCache {
    /// `(rows, training, measured planner)` → schedule.
    schedules: Mutex<HashMap<(usize, bool, bool), Arc<Schedule>>>,
    /// `(partition mask, with suffixes)` → merged blocks (training).
    merged: Mutex<HashMap<(u64, bool), Merged>>,
    /// Partition mask → every block of the partition as its GEMM operand `Gᵀ`, row-major
    /// `[k, m]` (inference; see `plan::use_transposed` for when each form is used). Inference
    /// thus holds each block of its plan twice, `G` and `Gᵀ` (for a TT layer, a few times its
    /// cores' size; for the dense-matrix plan, twice the dense matrix).
    transposed: Mutex<HashMap<u64, Transposed>>,
    /// `(rows, measured planner)` → everything inference needs for that row count, so a
    /// forward call takes one lock and one lookup (at one row the three caches above cost
    /// about a third of the call).
    prepared: Mutex<PreparedMap>,
    /// Rows → the inference schedule fixed by [`TTLayer::pin_plan`] (over either planner).
    pinned: HashMap<usize, Arc<Schedule>>,
}

/// An inference schedule with its blocks: the merged groups (if any) and every block as `Gᵀ`.
struct Prepared {
    sched: Arc<Schedule>,
    merged: Option<Merged>,
    transposed: Transposed,
    /// The first core of each block's group (a block of one core is that core).
    starts: Vec<usize>,
}

/// `(rows, measured planner)` → prepared inference, hashed cheaply (SipHash was a few percent
/// of a one-row forward; the keys are not attacker-chosen).
type PreparedMap = HashMap<(usize, bool), Arc<Prepared>, BuildHasherDefault<KeyHasher>>;

/// A multiplicative hash of a few integers.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.write_u64(u64::from(b)));
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
}

/// Blocks a forward call lists on the stack (more go to the heap).
const INLINE_BLOCKS: usize = 16;

/// Per block of a partition (in chain order): `Gᵀ` row-major.
type Transposed = Arc<Vec<Vec<f32>>>;

impl Clone for PlanCache {
    fn clone(&self) -> Self {
        let schedules = self.schedules.lock().map(|s| s.clone()).unwrap_or_default();
        PlanCache {
            schedules: Mutex::new(schedules),
            merged: Mutex::default(),
            transposed: Mutex::default(),
            prepared: Mutex::default(),
            pinned: self.pinned.clone(),
        }
    }
}

impl std::fmt::Debug for PlanCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanCache")
    }
}

const MAX_CACHED_SCHEDULES: usize = 256;

/// A linear layer `y = x · Wᵀ + b` whose weight `W: [out, in]` is a tensor train (see the
/// [module docs](crate::tt)). The bias is dense.
#[derive(Debug, Clone)]
pub struct TTLayer {
    spec: TTSpec,
    cores: Vec<ArrayD<f32>>,
    bias: Array1<f32>,
    /// The block dims of the cores (shared with every [`TTCache`] this layer records).
    dims: Arc<[Dims]>,
    cache: Box<PlanCache>,
}

/// What [`TTLayer::backward`] needs from [`TTLayer::forward_train`].
#[derive(Debug, Clone)]
pub struct TTCache {
    /// The block dims of the layer that recorded it.
    dims: Arc<[Dims]>,
    sched: Arc<Schedule>,
    /// The merged blocks the forward used (with suffixes), if the plan merges anything.
    merged: Option<Merged>,
    tape: Vec<Taped>,
    rows: usize,
}

/// The seed's layout (`from_linear`, `from_linear_eps`).
const SEED: TTLayout = TTLayout::OutputsThenInputs;

impl TTLayer {
    /// Decomposes `linear` exactly as the seed's `TTLayer.from_linear_layer`: the weight
    /// `[out, in]` is reshaped to `[o_1, …, o_M, i_1, …, i_N]` and TT-SVD'd with `bond_dims`
    /// (`M + N − 1` entries; an empty slice means full rank, an exact decomposition). A bond dim
    /// above its unfolding's rank limit is capped (see [`TTLayer::decompose`] for the report).
    ///
    /// Errors: modes whose product is not `in`/`out`, an empty mode list, a mode or bond dim of
    /// 0, a wrong number of bond dims, a non-finite weight.
    pub fn from_linear(
        in_modes: &[usize],
        out_modes: &[usize],
        linear: &Linear,
        bond_dims: &[usize],
    ) -> Result<TTLayer> {
        let truncation = Truncation::bond_dims(bond_dims);
        Self::from_linear_with(SEED, in_modes, out_modes, linear, &truncation)
    }

    /// Like [`from_linear`](Self::from_linear), truncated by relative tolerance instead:
    /// `‖W − W_tt‖_F ≤ eps·‖W‖_F`, with the smallest bond dims TT-SVD finds for it.
    pub fn from_linear_eps(
        in_modes: &[usize],
        out_modes: &[usize],
        linear: &Linear,
        eps: f64,
    ) -> Result<TTLayer> {
        let truncation = Truncation::eps(eps);
        Self::from_linear_with(SEED, in_modes, out_modes, linear, &truncation)
    }

    /// Decomposes `linear` in the given layout with the given truncation.
    pub fn from_linear_with(
        layout: TTLayout,
        in_modes: &[usize],
        out_modes: &[usize],
        linear: &Linear,
        truncation: &Truncation,
    ) -> Result<TTLayer> {
        Ok(Self::decompose(layout, in_modes, out_modes, linear, truncation)?.0)
    }

    /// Decomposes `linear` and also returns the TT-SVD report: the singular values of every
    /// bond, the discarded tails, and which requested bond dims were capped.
    ///
    /// For [`TTLayout::Matrix`] the weight reshaped to `[o_1, …, o_M, i_1, …, i_M]` is permuted to
    /// `[o_1, i_1, o_2, i_2, …]` and decomposed with modes `o_k·i_k`; `bond_dims` then has
    /// `M − 1` entries.
    pub fn decompose(
        layout: TTLayout,
        in_modes: &[usize],
        out_modes: &[usize],
        linear: &Linear,
        truncation: &Truncation,
    ) -> Result<(TTLayer, TtSvd)> {
        let n_in = check_modes("in_modes", in_modes)?;
        let n_out = check_modes("out_modes", out_modes)?;
        Error::check_count("in_modes", n_in, linear.in_features(), |g, w| {
            format!("product of {in_modes:?} is {g}, but the layer has {w} input features")
        })?;
        Error::check_count("out_modes", n_out, linear.out_features(), |g, w| {
            format!("product of {out_modes:?} is {g}, but the layer has {w} output features")
        })?;
        if linear.bias().iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid_arg("bias", "contains a non-finite value"));
        }
        let w = linear.weight().mapv(|v| v as f64);
        let (values, modes) = layout_values(layout, in_modes, out_modes, &w)?;
        let svd = tt_svd_f64(values, &modes, truncation)?.into_f32()?;
        let spec = TTSpec {
            layout,
            in_modes: in_modes.to_vec(),
            out_modes: out_modes.to_vec(),
            bond_dims: svd.bond_dims.clone(),
        };
        let shapes = spec.core_shapes();
        let mut cores = Vec::with_capacity(shapes.len());
        for (core, shape) in svd.cores.iter().zip(&shapes) {
            let data: Vec<f32> = core.iter().copied().collect();
            cores.push(
                ArrayD::from_shape_vec(IxDyn(shape), data)
                    .map_err(|e| Error::invalid_arg("cores", e.to_string()))?,
            );
        }
        let layer = TTLayer::assemble(spec, cores, linear.bias().to_owned());
        Ok((layer, svd))
    }

    /// Rebuilds a layer from its parts (e.g. from a checkpoint), checking everything: the spec
    /// is valid, there are as many cores as the spec says, each core has exactly its shape
    /// ([`TTSpec::core_shapes`]), the bias has `out_features` entries, and all values are finite.
    pub fn from_parts(spec: TTSpec, cores: Vec<ArrayD<f32>>, bias: Array1<f32>) -> Result<TTLayer> {
        spec.validate()?;
        let shapes = spec.core_shapes();
        Error::check_count("cores", cores.len(), shapes.len(), |g, w| {
            format!("{g} cores given, the spec needs {w}")
        })?;
        for (k, (core, shape)) in cores.iter().zip(&shapes).enumerate() {
            if core.shape() != &shape[..] {
                return Err(Error::shape(
                    format!("TTLayer cores.{k}"),
                    shape,
                    core.shape(),
                ));
            }
            if core.iter().any(|v| !v.is_finite()) {
                return Err(Error::invalid_arg(
                    format!("cores.{k}"),
                    "contains a non-finite value",
                ));
            }
        }
        if bias.len() != spec.out_features() {
            return Err(Error::shape(
                "TTLayer bias",
                &[spec.out_features()],
                &[bias.len()],
            ));
        }
        if bias.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid_arg("bias", "contains a non-finite value"));
        }
        let cores = cores
            .into_iter()
            .map(|c| c.as_standard_layout().into_owned())
            .collect();
        Ok(TTLayer::assemble(spec, cores, bias))
    }

    fn assemble(spec: TTSpec, cores: Vec<ArrayD<f32>>, bias: Array1<f32>) -> TTLayer {
        let dims = spec.block_dims().into();
        TTLayer {
            spec,
            cores,
            bias,
            dims,
            cache: Box::default(),
        }
    }

    /// A layer of the same spec with all cores and the bias zero (to hold gradients).
    pub fn zeros_like(&self) -> TTLayer {
        TTLayer {
            spec: self.spec.clone(),
            cores: self
                .cores
                .iter()
                .map(|c| ArrayD::zeros(c.raw_dim()))
                .collect(),
            bias: Array1::zeros(self.bias.raw_dim()),
            dims: self.dims.clone(),
            cache: Box::default(),
        }
    }

    /// The spec: layout, modes, effective bond dims.
    pub fn spec(&self) -> &TTSpec {
        &self.spec
    }

    /// The layout.
    pub fn layout(&self) -> TTLayout {
        self.spec.layout
    }

    /// The effective bond dims.
    pub fn bond_dims(&self) -> &[usize] {
        &self.spec.bond_dims
    }

    /// The cores, in the layout's shapes ([`TTSpec::core_shapes`]).
    pub fn cores(&self) -> &[ArrayD<f32>] {
        &self.cores
    }

    /// The dense bias, `[out]`.
    pub fn bias(&self) -> ndarray::ArrayView1<'_, f32> {
        self.bias.view()
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.spec.in_features()
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.spec.out_features()
    }

    /// Weight parameters: the scalars in all cores (the seed's count: 12,700 for `ffn.0` at
    /// `m = 50`). The dense bias is not counted, as in [`dense_params`](Self::dense_params);
    /// [`Parameters::num_params`] counts every tensor, bias included.
    pub fn num_params(&self) -> usize {
        self.cores.iter().map(|c| c.len()).sum::<usize>()
    }

    /// Weight parameters of the dense layer it stands for: `out·in`.
    pub fn dense_params(&self) -> usize {
        self.out_features() * self.in_features()
    }

    /// `dense_params / num_params`: above 1 the TT weight is smaller than the dense one.
    pub fn compression_ratio(&self) -> f64 {
        self.dense_params() as f64 / self.num_params() as f64
    }

    /// The dense layer this TT layer stands for (weight `[out, in]` from contracting all cores,
    /// same bias).
    pub fn to_dense(&self) -> Linear {
        let (out, inp) = (self.out_features(), self.in_features());
        let blocks: Vec<(Dims, &[f32])> =
            self.dims.iter().copied().zip(self.core_slices()).collect();
        let (_, data) = plan::merge_blocks(&blocks);
        let mut lin = Linear::new(Array2::zeros((out, inp)), Array1::zeros(out))
            .expect("a zero layer of nonzero shape is valid");
        let (w, b) = lin.weight_bias_mut();
        w.as_slice_mut()
            .expect("fresh array is contiguous")
            .copy_from_slice(&data);
        b.assign(&self.bias);
        lin
    }

    /// `‖W_tt − W‖_F / ‖W‖_F` against `linear`'s weight (the bias is not compared), computed in
    /// `f64`. `NaN` if the shapes differ; `inf` if `W = 0 ≠ W_tt`.
    pub fn relative_error(&self, linear: &Linear) -> f32 {
        if linear.in_features() != self.in_features()
            || linear.out_features() != self.out_features()
        {
            return f32::NAN;
        }
        let dense = self.to_dense();
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for (a, b) in dense.weight().iter().zip(linear.weight().iter()) {
            let d = *a as f64 - *b as f64;
            num += d * d;
            den += (*b as f64) * (*b as f64);
        }
        if num == 0.0 {
            0.0
        } else {
            (num / den).sqrt() as f32
        }
    }

    /// GEMM floating-point operations of one forward call with `rows` rows, under the plan
    /// the layer picks for that many rows.
    pub fn flops(&self, rows: usize) -> u64 {
        if rows == 0 {
            return 0;
        }
        self.schedule(rows, false).flops
    }

    /// The contraction plan [`forward`](Self::forward) picks for `rows` rows (see the
    /// [module docs](crate::tt)).
    pub fn plan(&self, rows: usize) -> TTPlan {
        self.summary(&self.schedule(rows.max(1), false))
    }

    /// The contraction plan [`forward_train`](Self::forward_train) and
    /// [`backward`](Self::backward) pick for `rows` rows. It is costed for a whole training
    /// step: merged blocks are rebuilt after every parameter update, and a merged block's
    /// gradient must be passed back to its cores, so training merges less than inference.
    pub fn training_plan(&self, rows: usize) -> TTPlan {
        self.summary(&self.schedule(rows.max(1), true))
    }

    /// Every candidate plan for `rows` rows with its modelled cost (for inference, or for a
    /// training step), cheapest first. Use with [`forward_with_plan`](Self::forward_with_plan)
    /// to measure the cost model's choice against the alternatives.
    pub fn candidate_plans(&self, rows: usize, training: bool) -> Vec<TTPlan> {
        let mut out: Vec<TTPlan> = plan::candidate_masks(&self.dims)
            .into_iter()
            .map(|mask| self.summary(&plan::plan_for(&self.dims, rows.max(1), mask, training)))
            .collect();
        out.sort_by(|a, b| a.modelled_ns.total_cmp(&b.modelled_ns));
        out
    }

    /// Fixes the plan [`forward`](Self::forward) uses for `rows` rows, over either planner
    /// (as importing FFTW "wisdom": e.g. a plan measured once, elsewhere, or one of
    /// [`candidate_plans`](Self::candidate_plans) to time it exactly as `forward` runs it).
    /// The pin is kept when the cores' values change and by clones; `None` removes it.
    /// Errors if the plan's groups do not partition this layer's cores.
    ///
    /// ```
    /// use ndarray::Array2;
    /// use rand::{rngs::StdRng, SeedableRng};
    /// use succulm_tt::{Linear, TTLayer};
    /// let lin = Linear::init(50, 200, &mut StdRng::seed_from_u64(0))?;
    /// let mut tt = TTLayer::from_linear(&[5, 10], &[10, 20], &lin, &[10, 20, 10])?;
    /// let x = Array2::<f32>::ones((29, 50));
    /// let y = tt.forward(x.view())?;
    /// let sweep = tt.candidate_plans(29, false).into_iter().find(|p| p.groups.len() == 4).unwrap();
    /// tt.pin_plan(29, Some(&sweep))?;
    /// assert_eq!(tt.plan(29).groups, sweep.groups);
    /// let y2 = tt.forward(x.view())?;
    /// assert!((&y - &y2).iter().all(|d| d.abs() < 1e-4));
    /// # Ok::<(), succulm_tt::Error>(())
    /// ```
    pub fn pin_plan(&mut self, rows: usize, plan: Option<&TTPlan>) -> Result<()> {
        let rows = rows.max(1);
        match plan {
            Some(p) => {
                let mask = self.mask_of(&p.groups)?;
                let sched = Arc::new(plan::plan_for(&self.dims, rows, mask, false));
                self.cache.pinned.insert(rows, sched);
            }
            None => drop(self.cache.pinned.remove(&rows)),
        }
        let drop_rows = |m: &mut PreparedMap| m.retain(|k, _| k.0 != rows);
        match self.cache.prepared.get_mut() {
            Ok(m) => drop_rows(m),
            Err(e) => drop_rows(e.into_inner()),
        }
        Ok(())
    }

    fn summary(&self, s: &Schedule) -> TTPlan {
        TTPlan {
            groups: plan::groups(self.dims.len(), s.mask),
            flops: s.flops,
            modelled_ns: s.cost,
        }
    }

    /// The partition mask of `groups`, checked: contiguous `[start, end)` ranges covering
    /// `0..num_cores` in order.
    fn mask_of(&self, groups: &[(usize, usize)]) -> Result<u64> {
        let n = self.dims.len();
        let bad = || {
            Error::invalid_arg(
                "plan",
                format!(
                    "groups {groups:?} are not contiguous ranges covering the {n} cores in order"
                ),
            )
        };
        let mut next = 0;
        let mut mask = 0u64;
        for &(s, e) in groups {
            if s != next || e <= s || e > n {
                return Err(bad());
            }
            for j in s + 1..e {
                mask |= 1 << (j - 1);
            }
            next = e;
        }
        if next != n || n > 64 {
            return Err(bad());
        }
        Ok(mask)
    }

    /// `x: [rows, in] -> [rows, out]`, contracting `x` through the cores under the cheapest
    /// plan for `rows` (never forming the dense matrix unless the plan says it is cheaper).
    /// Errors if `x` has the wrong number of columns.
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        Error::check_width("TTLayer::forward input", self.in_features(), x.shape())?;
        Ok(self.apply(x))
    }

    /// `forward` without the shape check (the caller guarantees `x: [rows, in]`).
    #[doc(hidden)]
    pub fn apply(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let rows = x.nrows();
        if rows == 0 {
            return Array2::zeros((0, self.out_features()));
        }
        let key = (rows, measure::planner() == Planner::Measure);
        let hit = self
            .cache
            .prepared
            .lock()
            .ok()
            .and_then(|map| map.get(&key).cloned());
        let prepared = match hit {
            Some(p) => p,
            None => {
                let p = Arc::new(self.prepare(self.schedule(rows, false)));
                if let Ok(mut map) = self.cache.prepared.lock() {
                    if map.len() >= MAX_CACHED_SCHEDULES {
                        map.clear();
                    }
                    map.insert(key, Arc::clone(&p));
                }
                p
            }
        };
        self.run_prepared(&prepared, x)
    }

    fn run_prepared(&self, p: &Prepared, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let rows = x.nrows();
        let xs = as_slice(&x);
        // Block j: its group's merged block, or its one core; listed without allocating
        // (at one row, the allocations were a tenth of the call).
        let block = |j: usize| -> &[f32] {
            let merged = p.merged.as_ref().and_then(|m| m[j].first());
            merged.map_or_else(
                || {
                    self.cores[p.starts[j]]
                        .as_slice()
                        .expect("cores are contiguous")
                },
                |b| &b.1[..],
            )
        };
        let n = p.starts.len();
        let (mut inline, mut inline_t) = ([&[][..]; INLINE_BLOCKS], [&[][..]; INLINE_BLOCKS]);
        let (heap, heap_t): (Vec<&[f32]>, Vec<&[f32]>);
        let (blocks, blocks_t): (&[&[f32]], &[&[f32]]) = if n <= INLINE_BLOCKS {
            for j in 0..n {
                inline[j] = block(j);
                inline_t[j] = &p.transposed[j][..];
            }
            (&inline[..n], &inline_t[..n])
        } else {
            heap = (0..n).map(block).collect();
            heap_t = p.transposed.iter().map(|b| &b[..]).collect();
            (&heap, &heap_t)
        };
        let y = plan::run(
            &p.sched,
            blocks,
            Some(blocks_t),
            &xs,
            self.bias_slice(),
            None,
        );
        self.finish(rows, y)
    }

    /// Forward under an explicit plan (e.g. one of
    /// [`candidate_plans`](Self::candidate_plans)); same result as
    /// [`forward`](Self::forward) up to rounding. Errors if `x` has the wrong number of columns
    /// or the plan's groups do not partition this layer's cores.
    pub fn forward_with_plan(&self, x: ArrayView2<'_, f32>, plan: &TTPlan) -> Result<Array2<f32>> {
        let mask = self.mask_of(&plan.groups)?;
        Error::check_width(
            "TTLayer::forward_with_plan input",
            self.in_features(),
            x.shape(),
        )?;
        if x.nrows() == 0 {
            return Ok(Array2::zeros((0, self.out_features())));
        }
        let sched = plan::plan_for(&self.dims, x.nrows(), mask, false);
        Ok(self.run_schedule(sched, x))
    }

    fn run_schedule(&self, sched: Schedule, x: ArrayView2<'_, f32>) -> Array2<f32> {
        self.run_prepared(&self.prepare(Arc::new(sched)), x)
    }

    /// `sched` with its blocks (merged and transposed as needed, from the caches).
    fn prepare(&self, sched: Arc<Schedule>) -> Prepared {
        let merged = (sched.mask != 0).then(|| self.merged(sched.mask, false));
        let transposed = {
            let blocks = self.blocks(sched.mask, merged.as_ref());
            self.transposed(&sched, &blocks)
        };
        let starts = plan::groups(self.dims.len(), sched.mask)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        Prepared {
            sched,
            merged,
            transposed,
            starts,
        }
    }

    /// Every block of `sched`'s partition (`blocks`) as its GEMM's right operand `Gᵀ`
    /// (row-major `[k, m]`), cached per partition until the cores change.
    fn transposed(&self, sched: &Schedule, blocks: &[&[f32]]) -> Transposed {
        if let Ok(map) = self.cache.transposed.lock() {
            if let Some(t) = map.get(&sched.mask) {
                return Arc::clone(t);
            }
        }
        let mut out = vec![Vec::new(); blocks.len()];
        for step in &sched.steps {
            out[step.block] = plan::permute(
                blocks[step.block],
                &plan::Perm {
                    shape: vec![step.m, step.k],
                    perm: vec![1, 0],
                },
            );
        }
        let out = Arc::new(out);
        if let Ok(mut map) = self.cache.transposed.lock() {
            map.insert(sched.mask, Arc::clone(&out));
        }
        out
    }

    /// The data of every block of partition `mask`: merged groups from `merged`, single cores
    /// as they are.
    fn blocks<'a>(&'a self, mask: u64, merged: Option<&'a Merged>) -> Vec<&'a [f32]> {
        let slices = self.core_slices();
        match merged {
            None => slices,
            Some(m) => plan::groups(self.dims.len(), mask)
                .iter()
                .zip(m.iter())
                .map(|(&(s, _), d)| d.first().map_or(slices[s], |b| &b.1[..]))
                .collect(),
        }
    }

    fn finish(&self, rows: usize, y: Vec<f32>) -> Array2<f32> {
        Array2::from_shape_vec((rows, self.out_features()), y)
            .expect("schedule produces [rows, out]")
    }

    fn bias_slice(&self) -> &[f32] {
        self.bias.as_slice().expect("bias is contiguous")
    }

    /// Forward for training: like [`forward`](Self::forward), `x: [rows, in] -> [rows, out]`,
    /// under the [`training_plan`](Self::training_plan) for `rows`, also returning what
    /// [`backward`](Self::backward) needs. Errors if `x` is not `in` wide.
    pub fn forward_train(&self, x: ArrayView2<'_, f32>) -> Result<(Array2<f32>, TTCache)> {
        Error::check_width("TTLayer::forward_train x", self.in_features(), x.shape())?;
        Ok(self.forward_train_unchecked(x))
    }

    /// [`forward_train`](Self::forward_train) without the check (the caller guarantees
    /// `x: [rows, in]`).
    #[doc(hidden)]
    pub fn forward_train_unchecked(&self, x: ArrayView2<'_, f32>) -> (Array2<f32>, TTCache) {
        let sched = self.schedule(x.nrows().max(1), true);
        self.train_with(sched, x)
    }

    /// [`forward_train`](Self::forward_train) under an explicit plan (e.g. one of
    /// [`candidate_plans`](Self::candidate_plans)): `x: [rows, in] -> [rows, out]`; the
    /// gradients [`backward`](Self::backward) then gives are the same for every plan, up to
    /// rounding. Errors if the plan's groups do not partition this layer's cores or `x` is not
    /// `in` wide.
    pub fn forward_train_with_plan(
        &self,
        x: ArrayView2<'_, f32>,
        plan: &TTPlan,
    ) -> Result<(Array2<f32>, TTCache)> {
        let mask = self.mask_of(&plan.groups)?;
        Error::check_width(
            "TTLayer::forward_train_with_plan input",
            self.in_features(),
            x.shape(),
        )?;
        let sched = Arc::new(plan::plan_for(&self.dims, x.nrows().max(1), mask, true));
        Ok(self.train_with(sched, x))
    }

    fn train_with(&self, sched: Arc<Schedule>, x: ArrayView2<'_, f32>) -> (Array2<f32>, TTCache) {
        let rows = x.nrows();
        let xs = as_slice(&x);
        let mut tape = Vec::with_capacity(sched.steps.len());
        let merged = (sched.mask != 0).then(|| self.merged(sched.mask, true));
        let y = if rows == 0 {
            Vec::new()
        } else {
            let blocks = self.blocks(sched.mask, merged.as_ref());
            plan::run(
                &sched,
                &blocks,
                None,
                &xs,
                self.bias_slice(),
                Some(&mut tape),
            )
        };
        let y = self.finish(rows, y);
        let cache = TTCache {
            dims: Arc::clone(&self.dims),
            sched,
            merged,
            tape,
            rows,
        };
        (y, cache)
    }

    /// Backward of [`forward_train`](Self::forward_train) (or of
    /// [`forward_train_with_plan`](Self::forward_train_with_plan)): given `dy: [rows, out]`,
    /// **adds** the gradients of every core and of the bias into `grads` and returns
    /// `dx: [rows, in]`. Under a plan that merges cores, the gradient of each merged block is
    /// passed back to its cores (`dA = dG·Bᵀ`, `dB = Aᵀ·dG` for `G = A ⋈ B`, down the group).
    ///
    /// Errors, leaving `grads` untouched, unless `cache` was recorded by a layer of this spec,
    /// `dy` has the forward output's shape `[rows, out]` (`rows` as recorded in the cache) and
    /// `grads` has this layer's spec, core shapes and bias shape (as made by
    /// [`zeros_like`](Self::zeros_like)).
    pub fn backward(
        &self,
        cache: &TTCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut TTLayer,
    ) -> Result<Array2<f32>> {
        self.check_cache(cache, "TTLayer::backward cache")?;
        let (rows, out) = (cache.rows, self.out_features());
        Error::check_shape("TTLayer::backward dy", &[rows, out], dy.shape())?;
        self.check_grads(grads, "TTLayer::backward grads")?;
        Ok(self.backward_unchecked(cache, dy, grads))
    }

    /// [`backward`](Self::backward) without the checks (the caller guarantees that `cache`
    /// matches this layer, `dy: [rows, out]` and `grads` of this spec).
    #[doc(hidden)]
    pub fn backward_unchecked(
        &self,
        cache: &TTCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut TTLayer,
    ) -> Array2<f32> {
        grads.bias += &dy.sum_axis(Axis(0));
        grads.invalidate();
        let rows = cache.rows;
        if rows == 0 {
            return Array2::zeros((0, self.in_features()));
        }
        let dys = as_slice(&dy);
        let mut d: Vec<f32> = match &cache.sched.fin {
            Some(p) => plan::unpermute(&dys, p),
            None => dys.into_owned(),
        };
        let mask = cache.sched.mask;
        let blocks = self.blocks(mask, cache.merged.as_ref());
        let groups = plan::groups(self.dims.len(), mask);
        let slices = self.core_slices();
        for (step, taped) in cache.sched.steps.iter().zip(&cache.tape).rev() {
            let g = step.block;
            let (s, e) = groups[g];
            if e - s == 1 {
                let dg = grads.cores[s].as_slice_mut().expect("cores are contiguous");
                d = plan::step_backward(step, taped, blocks[g], &d, dg);
            } else {
                let mut dg = vec![0.0f32; step.m * step.k];
                d = plan::step_backward(step, taped, blocks[g], &d, &mut dg);
                let suffixes = &cache.merged.as_ref().expect("merged plan")[g];
                let group: Vec<(Dims, &[f32])> =
                    (s..e).map(|k| (self.dims[k], slices[k])).collect();
                let mut gs: Vec<&mut [f32]> = grads.cores[s..e]
                    .iter_mut()
                    .map(|c| c.as_slice_mut().expect("cores are contiguous"))
                    .collect();
                plan::distribute(&group, suffixes, dg, &mut gs);
            }
        }
        Array2::from_shape_vec((rows, self.in_features()), d).expect("dx is [rows, in]")
    }

    /// Whether `cache` was recorded by a layer of this layer's block dims (so that
    /// [`backward`](Self::backward) can run on it). The merged blocks a cache carries depend on
    /// the recording layer's unmerged cores, so the block dims must match core by core, not
    /// only after merging.
    pub(crate) fn cache_matches(&self, cache: &TTCache) -> bool {
        let n = self.dims.len();
        cache.dims == self.dims
            && cache.sched.mask >> n.saturating_sub(1).min(63) == 0
            && cache.sched.dims == plan::merged_dims(&self.dims, cache.sched.mask)
            && (cache.rows == 0 || cache.tape.len() == cache.sched.steps.len())
    }

    /// Errors unless `cache` was recorded by a layer of this spec (see
    /// [`cache_matches`](Self::cache_matches)).
    #[doc(hidden)]
    pub fn check_cache(&self, cache: &TTCache, context: &str) -> Result<()> {
        if self.cache_matches(cache) {
            return Ok(());
        }
        Err(Error::invalid_arg(
            context,
            format!(
                "was recorded by a TT layer of another spec: its cores have block dims \
                 [r_left, out, in, r_right] {:?}, this layer's {:?}",
                cache.dims, self.dims
            ),
        ))
    }

    /// Errors unless `grads` has this layer's spec, core shapes and bias shape (as made by
    /// [`zeros_like`](Self::zeros_like)).
    #[doc(hidden)]
    pub fn check_grads(&self, grads: &TTLayer, context: &str) -> Result<()> {
        let same = self.spec == grads.spec
            && self.bias.dim() == grads.bias.dim()
            && self.cores.len() == grads.cores.len()
            && self
                .cores
                .iter()
                .zip(&grads.cores)
                .all(|(a, b)| a.shape() == b.shape());
        if same {
            return Ok(());
        }
        let describe = |l: &TTLayer| {
            let shapes: Vec<&[usize]> = l.cores.iter().map(|c| c.shape()).collect();
            format!("{:?} with cores {shapes:?}", l.spec)
        };
        Err(Error::Shape {
            context: context.into(),
            expected: describe(self),
            got: describe(grads),
        })
    }

    fn core_slices(&self) -> Vec<&[f32]> {
        self.cores
            .iter()
            .map(|c| c.as_slice().expect("cores are contiguous"))
            .collect()
    }

    /// The schedule for `rows` (cached), for inference or training.
    fn schedule(&self, rows: usize, training: bool) -> Arc<Schedule> {
        if !training {
            if let Some(s) = self.cache.pinned.get(&rows) {
                return Arc::clone(s);
            }
        }
        let measured = !training && measure::planner() == Planner::Measure;
        let key = (rows, training, measured);
        if let Ok(map) = self.cache.schedules.lock() {
            if let Some(s) = map.get(&key) {
                return Arc::clone(s);
            }
        }
        let s = Arc::new(if measured {
            let mask = measure::lookup(&self.dims, rows).unwrap_or_else(|| self.measure(rows));
            plan::plan_for(&self.dims, rows, mask, false)
        } else {
            plan::best_schedule(&self.dims, rows, training)
        });
        if let Ok(mut map) = self.cache.schedules.lock() {
            if map.len() >= MAX_CACHED_SCHEDULES {
                map.clear();
            }
            map.insert(key, Arc::clone(&s));
        }
        s
    }

    /// Times the measured planner's shortlist on `rows` rows of a fixed input (each plan once
    /// to build its merged blocks, then the best of a few runs), records the winner for this
    /// shape and returns it (see [`measure`]).
    fn measure(&self, rows: usize) -> u64 {
        let inp = self.in_features();
        let x = Array2::from_shape_fn((rows, inp), |(r, c)| {
            (((r * 7919 + c * 104_729) % 2003) as f32 / 1001.5) - 1.0
        });
        // Each candidate once (building its merged blocks, timing it roughly), then rounds
        // that run every candidate once in turn, keeping each one's fastest run: a slow spell
        // of a shared machine then slows every candidate alike, not only the one it hit.
        let prepared: Vec<(Prepared, f64)> = measure::shortlist(&self.dims, rows)
            .into_iter()
            .map(|s| {
                let p = self.prepare(Arc::new(s));
                let warm = std::time::Instant::now();
                drop(self.run_prepared(&p, x.view()));
                (p, warm.elapsed().as_secs_f64().max(1e-7))
            })
            .collect();
        // Enough rounds for ~2 ms of the slowest candidate's work (at least 3, at most 50).
        let slowest = prepared.iter().map(|p| p.1).fold(0.0, f64::max);
        let rounds = ((2e-3 / slowest.max(1e-7)) as usize).clamp(3, 50);
        let mut best = vec![f64::INFINITY; prepared.len()];
        for _ in 0..rounds {
            for ((p, _), b) in prepared.iter().zip(best.iter_mut()) {
                let t = std::time::Instant::now();
                drop(self.run_prepared(p, x.view()));
                *b = b.min(t.elapsed().as_secs_f64());
            }
        }
        let timed: Vec<(Schedule, f64)> = prepared
            .into_iter()
            .zip(best)
            .map(|((p, _), b)| ((*p.sched).clone(), b))
            .collect();
        let mask = measure::pick(&timed);
        measure::store(&self.dims, rows, mask);
        // Keep only the winner's blocks (the losers' may be large: the dense matrix).
        let losers: Vec<u64> = timed
            .iter()
            .map(|(s, _)| s.mask)
            .filter(|&m| m != mask)
            .collect();
        if let Ok(mut map) = self.cache.transposed.lock() {
            losers.iter().for_each(|m| drop(map.remove(m)));
        }
        if let Ok(mut map) = self.cache.merged.lock() {
            losers.iter().for_each(|&m| drop(map.remove(&(m, false))));
        }
        mask
    }

    /// The merged blocks for a partition mask, with the suffix merges if `suffixes` (cached
    /// until the parameters change).
    fn merged(&self, mask: u64, suffixes: bool) -> Merged {
        let key = (mask, suffixes);
        if let Ok(map) = self.cache.merged.lock() {
            if let Some(m) = map.get(&key) {
                return Arc::clone(m);
            }
        }
        let slices = self.core_slices();
        let merged: Merged = Arc::new(
            plan::groups(self.dims.len(), mask)
                .into_iter()
                .map(|(s, e)| {
                    if e - s > 1 {
                        let blocks: Vec<(Dims, &[f32])> =
                            (s..e).map(|k| (self.dims[k], slices[k])).collect();
                        plan::merge_suffixes(&blocks, suffixes)
                    } else {
                        Vec::new()
                    }
                })
                .collect(),
        );
        if let Ok(mut map) = self.cache.merged.lock() {
            map.insert(key, Arc::clone(&merged));
        }
        merged
    }

    /// Drops the merged blocks (after any change of the cores).
    fn invalidate(&mut self) {
        match self.cache.merged.get_mut() {
            Ok(m) => m.clear(),
            Err(e) => e.into_inner().clear(),
        }
        match self.cache.transposed.get_mut() {
            Ok(m) => m.clear(),
            Err(e) => e.into_inner().clear(),
        }
        match self.cache.prepared.get_mut() {
            Ok(m) => m.clear(),
            Err(e) => e.into_inner().clear(),
        }
    }

    /// Forward under an explicit partition mask (tests compare all plans).
    #[cfg(test)]
    pub(crate) fn apply_mask(&self, x: ArrayView2<'_, f32>, mask: u64) -> Array2<f32> {
        let sched = plan::plan_for(&self.dims, x.nrows(), mask, false);
        self.run_schedule(sched, x)
    }

    #[cfg(test)]
    pub(crate) fn num_blocks(&self) -> usize {
        self.dims.len()
    }
}

/// A row-major slice of `x` (borrowed when `x` is already standard-layout).
fn as_slice<'a>(x: &'a ArrayView2<'_, f32>) -> Cow<'a, [f32]> {
    match x.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(x.iter().copied().collect()),
    }
}

/// A weight `w: [out, in]` as the tensor a layout decomposes, in row-major order, with its
/// modes: `[o_1, …, o_M, i_1, …, i_N]` for [`TTLayout::OutputsThenInputs`] (the weight's own
/// order), `[o_1·i_1, …, o_M·i_M]` with each pair's output index major for
/// [`TTLayout::Matrix`]. The caller has checked that the modes multiply to `w`'s shape.
pub(crate) fn layout_values(
    layout: TTLayout,
    in_modes: &[usize],
    out_modes: &[usize],
    w: &Array2<f64>,
) -> Result<(Vec<f64>, Vec<usize>)> {
    match layout {
        TTLayout::OutputsThenInputs => {
            let modes: Vec<usize> = out_modes.iter().chain(in_modes).copied().collect();
            Ok((w.iter().copied().collect(), modes))
        }
        TTLayout::Matrix => {
            let m = out_modes.len();
            if in_modes.len() != m {
                return Err(Error::invalid_arg(
                    "in_modes",
                    format!(
                        "the TT-matrix layout needs as many input modes as output modes, got {in_modes:?} and {out_modes:?}"
                    ),
                ));
            }
            let full: Vec<usize> = out_modes.iter().chain(in_modes).copied().collect();
            let t = w
                .view()
                .into_shape_with_order(IxDyn(&full))
                .map_err(|e| Error::invalid_arg("modes", e.to_string()))?;
            let perm: Vec<usize> = (0..m).flat_map(|k| [k, m + k]).collect();
            let t = t.permuted_axes(IxDyn(&perm));
            let modes: Vec<usize> = (0..m).map(|k| out_modes[k] * in_modes[k]).collect();
            Ok((t.iter().copied().collect(), modes))
        }
    }
}

impl Parameters for TTLayer {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewD<'_, f32>)) {
        for (k, c) in self.cores.iter().enumerate() {
            f(join(prefix, &format!("cores.{k}")), c.view());
        }
        f(join(prefix, "bias"), self.bias.view().into_dyn());
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewMutD<'_, f32>)) {
        self.invalidate();
        for (k, c) in self.cores.iter_mut().enumerate() {
            f(join(prefix, &format!("cores.{k}")), c.view_mut());
        }
        f(join(prefix, "bias"), self.bias.view_mut().into_dyn());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn check_all_plans(layout: TTLayout, in_modes: &[usize], out_modes: &[usize], bonds: &[usize]) {
        let mut rng = StdRng::seed_from_u64(7);
        let (i, o) = (in_modes.iter().product(), out_modes.iter().product());
        let lin = Linear::init(i, o, &mut rng).unwrap();
        let tt = TTLayer::from_linear_with(
            layout,
            in_modes,
            out_modes,
            &lin,
            &Truncation::bond_dims(bonds),
        )
        .expect("valid");
        let dense = tt.to_dense();
        for rows in [1, 3, 17] {
            let x = Array2::from_shape_fn((rows, i), |_| rng.gen_range(-1.0..1.0));
            let want = dense.forward(x.view()).expect("shape");
            let n = tt.num_blocks();
            for mask in 0..(1u64 << (n - 1)) {
                let got = tt.apply_mask(x.view(), mask);
                let err = max_abs_diff(&got, &want);
                assert!(err < 2e-5, "{layout:?} rows {rows} mask {mask:b}: {err}");
            }
            // A transposed (non-standard-layout) input gives the same result.
            let xt = x.t().to_owned();
            let got = tt.forward(xt.t()).expect("shape");
            assert!(max_abs_diff(&got, &want) < 2e-5);
        }
    }

    #[test]
    fn every_plan_gives_the_same_result_seed_layout() {
        check_all_plans(
            TTLayout::OutputsThenInputs,
            &[5, 10],
            &[10, 20],
            &[10, 27, 10],
        );
        check_all_plans(
            TTLayout::OutputsThenInputs,
            &[2, 3, 4],
            &[3, 2, 2],
            &[2, 3, 4, 3, 2],
        );
        check_all_plans(TTLayout::OutputsThenInputs, &[6], &[2, 3], &[]);
    }

    #[test]
    fn every_plan_gives_the_same_result_matrix_layout() {
        check_all_plans(TTLayout::Matrix, &[2, 3, 4], &[3, 2, 5], &[4, 5]);
        check_all_plans(TTLayout::Matrix, &[5, 10], &[10, 20], &[]);
        check_all_plans(TTLayout::Matrix, &[1, 6, 2], &[4, 1, 3], &[]);
    }

    #[test]
    fn merged_blocks_follow_parameter_updates() {
        let mut rng = StdRng::seed_from_u64(3);
        let lin = Linear::init(768, 3072, &mut rng).unwrap();
        let mut tt =
            TTLayer::from_linear(&[8, 8, 12], &[12, 16, 16], &lin, &[16; 5]).expect("valid");
        let x = Array2::from_shape_fn((128, 768), |_| rng.gen_range(-1.0..1.0));
        let plan = tt.plan(128);
        assert!(
            plan.groups.len() < 6,
            "expected some merging at 128 rows, got {plan:?}"
        );
        let _ = tt.forward(x.view()).expect("shape"); // builds merged blocks
        tt.visit_mut("", &mut |_, mut t| t.mapv_inplace(|v| v * 1.5 + 0.01));
        let want = tt.to_dense().forward(x.view()).expect("shape");
        let got = tt.forward(x.view()).expect("shape");
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(max_abs_diff(&got, &want) < 1e-4 * scale.max(1.0));
    }

    /// The bits of every gradient in `g` (cores, then bias), to see that nothing changed.
    fn grad_bits(g: &TTLayer) -> Vec<u32> {
        g.cores()
            .iter()
            .flat_map(|c| c.iter())
            .chain(g.bias().iter())
            .map(|v| v.to_bits())
            .collect()
    }

    fn bits<'a>(a: impl IntoIterator<Item = &'a f32>) -> Vec<u32> {
        a.into_iter().map(|v| v.to_bits()).collect()
    }

    /// `forward_train`, `forward_train_with_plan` and `backward` error, without touching the
    /// gradients, on a wrong-width input, a `dy` not of the output's shape, a cache from a
    /// layer of another spec (also one whose merged blocks have the same dims) and gradients
    /// of another spec; on valid input they give exactly what the unchecked versions give.
    #[test]
    fn checked_entry_points_reject_bad_shapes() {
        let mut rng = StdRng::seed_from_u64(9);
        let rand = |r: usize, c: usize, rng: &mut StdRng| {
            Array2::from_shape_fn((r, c), |_| rng.gen_range(-1.0f32..1.0))
        };
        let lin = Linear::init(6, 4, &mut rng).unwrap();
        // Same modes, other bond dims: the same block dims once all cores are merged.
        let tt = TTLayer::from_linear(&[6], &[2, 2], &lin, &[2, 4]).unwrap();
        let narrow = TTLayer::from_linear(&[6], &[2, 2], &lin, &[1, 4]).unwrap();
        assert_ne!(tt.spec(), narrow.spec());
        let wide = TTLayer::from_linear(&[7], &[2, 2], &Linear::init(7, 4, &mut rng).unwrap(), &[])
            .unwrap();
        let (rows, x) = (5, rand(5, 6, &mut rng));
        let dy = rand(rows, 4, &mut rng);

        // Valid input: bit for bit what the unchecked versions give, under every plan too.
        let (y, cache) = tt.forward_train(x.view()).unwrap();
        let (y0, cache0) = tt.forward_train_unchecked(x.view());
        assert_eq!(bits(&y), bits(&y0));
        let (mut g, mut g0) = (tt.zeros_like(), tt.zeros_like());
        let dx = tt.backward(&cache, dy.view(), &mut g).unwrap();
        let dx0 = tt.backward_unchecked(&cache0, dy.view(), &mut g0);
        assert_eq!(bits(&dx), bits(&dx0));
        assert_eq!(grad_bits(&g), grad_bits(&g0));
        for plan in tt.candidate_plans(rows, true) {
            let (y, c) = tt.forward_train_with_plan(x.view(), &plan).unwrap();
            let mask = tt.mask_of(&plan.groups).unwrap();
            let sched = Arc::new(plan::plan_for(&tt.dims, rows, mask, true));
            let (y0, c0) = tt.train_with(sched, x.view());
            assert_eq!(bits(&y), bits(&y0), "{plan:?}");
            let (mut g, mut g0) = (tt.zeros_like(), tt.zeros_like());
            let dx = tt.backward(&c, dy.view(), &mut g).unwrap();
            let dx0 = tt.backward_unchecked(&c0, dy.view(), &mut g0);
            assert_eq!(bits(&dx), bits(&dx0), "{plan:?}");
            assert_eq!(grad_bits(&g), grad_bits(&g0), "{plan:?}");
        }
        // No rows is valid.
        let (y, c) = tt.forward_train(Array2::zeros((0, 6)).view()).unwrap();
        assert_eq!(y.dim(), (0, 4));
        let mut g_empty = tt.zeros_like();
        let dx = tt
            .backward(&c, Array2::zeros((0, 4)).view(), &mut g_empty)
            .unwrap();
        assert_eq!(dx.dim(), (0, 6));

        // A wrong-width x.
        for cols in [5, 7, 0] {
            let e = tt
                .forward_train(rand(rows, cols, &mut rng).view())
                .unwrap_err();
            assert!(matches!(e, Error::Shape { .. }), "{e}");
            assert!(e.to_string().contains("TTLayer::forward_train x"), "{e}");
            let plan = tt.training_plan(rows);
            let e = tt
                .forward_train_with_plan(rand(rows, cols, &mut rng).view(), &plan)
                .unwrap_err();
            assert!(matches!(e, Error::Shape { .. }), "{e}");
        }

        // A dy not of the forward output's shape.
        let before = grad_bits(&g);
        for shape in [(rows, 5), (rows, 3), (rows - 1, 4), (rows + 1, 4), (0, 4)] {
            let e = tt
                .backward(&cache, Array2::zeros(shape).view(), &mut g)
                .unwrap_err();
            assert!(matches!(e, Error::Shape { .. }), "{e}");
            assert!(e.to_string().contains("TTLayer::backward dy"), "{e}");
            assert_eq!(grad_bits(&g), before);
        }

        // A cache from a layer of another spec: of another width, or of the same width (under
        // its own plan, under a plan merging all cores, under every plan).
        let (_, wide_cache) = wide.forward_train(rand(rows, 7, &mut rng).view()).unwrap();
        let mut other_caches = vec![wide_cache];
        other_caches.push(narrow.forward_train(x.view()).unwrap().1);
        for plan in narrow.candidate_plans(rows, true) {
            other_caches.push(narrow.forward_train_with_plan(x.view(), &plan).unwrap().1);
        }
        let all = TTPlan {
            groups: vec![(0, 3)],
            flops: 0,
            modelled_ns: 0.0,
        };
        let (_, merged_cache) = narrow.forward_train_with_plan(x.view(), &all).unwrap();
        assert_eq!(merged_cache.sched.dims, vec![[1, 4, 6, 1]]);
        other_caches.push(merged_cache);
        for other in &other_caches {
            assert!(!tt.cache_matches(other));
            let e = tt.backward(other, dy.view(), &mut g).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
            assert!(e.to_string().contains("TTLayer::backward cache"), "{e}");
            assert_eq!(grad_bits(&g), before);
        }
        // ... while a cache of the same spec from another layer is fine.
        let (_, twin_cache) = tt.zeros_like().forward_train(x.view()).unwrap();
        assert!(tt.cache_matches(&twin_cache));

        // Gradients of another spec.
        for other in [&narrow, &wide] {
            let mut wrong = other.zeros_like();
            let want = grad_bits(&wrong);
            let e = tt.backward(&cache, dy.view(), &mut wrong).unwrap_err();
            assert!(matches!(e, Error::Shape { .. }), "{e}");
            assert!(e.to_string().contains("TTLayer::backward grads"), "{e}");
            assert_eq!(grad_bits(&wrong), want);
        }
    }
}

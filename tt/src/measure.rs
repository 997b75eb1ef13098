//! The measured planner: FFTW's `FFTW_MEASURE` for TT contractions.
//!
//! By default ([`Planner::Model`]) a [`TTLayer`](super::TTLayer) picks its contraction plan
//! for a row count by a cost model (FLOPs, memory touched, per-call overhead, copies; see
//! `plan.rs`). A cost model is fitted on one machine; on another the constants are off. With
//! [`Planner::Measure`] the first forward of a layer *shape* at a row count times a shortlist
//! of candidate plans on that many rows — the [`MAX_TIMED`] cheapest by the model, plus the
//! dense matrix and the unmerged sweep — and every later forward of that shape and row count
//! (in any layer) uses the fastest. The cost model still breaks ties: a plan must be more
//! than [`TIE`] faster than the model's favourite to replace it. The candidates are timed in
//! interleaved rounds (each candidate once per round, its fastest run kept), so a slow spell
//! of a shared machine slows all of them alike. [`TTLayer::pin_plan`](super::TTLayer::pin_plan)
//! fixes a layer's plan for a row count outright, whichever planner is set.
//!
//! What is cached is the *plan* (which cores to merge), keyed by the cores' block dims and the
//! row count: it does not depend on the cores' values, so a training step does not re-measure.
//! Merged blocks, which do depend on the values, are dropped whenever the cores are mutated,
//! as in the model mode. Changing the bonds changes the shape, hence the key.
//!
//! Reproducibility: a plan fixes the order of the sums, so with [`Planner::Measure`] the last
//! bits of a forward can differ between runs (or machines) that measured differently. The
//! default planner is deterministic; use the measured one where speed matters more than bit
//! equality across runs (it never changes results beyond float rounding: every plan computes
//! the same function, tested).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::plan::{self, Dims, Schedule};

/// How a [`TTLayer`](super::TTLayer) chooses its forward contraction plan (process-wide; see
/// [`set_planner`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Planner {
    /// The cost model alone (deterministic; the default).
    #[default]
    Model,
    /// Time a shortlist of plans once per layer shape and row count, and keep the fastest.
    Measure,
}

static MEASURE: AtomicBool = AtomicBool::new(false);

/// Sets the planner for every [`TTLayer`](super::TTLayer) forward from now on (process-wide).
///
/// ```
/// use succulm_tt::{planner, set_planner, Planner};
/// set_planner(Planner::Measure);
/// assert_eq!(planner(), Planner::Measure);
/// set_planner(Planner::Model);
/// ```
pub fn set_planner(p: Planner) {
    MEASURE.store(p == Planner::Measure, Ordering::Relaxed);
}

/// The planner in use (see [`set_planner`]).
pub fn planner() -> Planner {
    if MEASURE.load(Ordering::Relaxed) {
        Planner::Measure
    } else {
        Planner::Model
    }
}

/// At most this many of the model's cheapest plans are timed (plus the dense matrix and the
/// unmerged sweep).
pub const MAX_TIMED: usize = 6;

/// A measured plan replaces the model's favourite only if it is faster by more than this
/// fraction (measurement noise should not flip plans).
pub const TIE: f64 = 0.03;

/// `(block dims, rows)` → the winning partition mask.
type Winners = HashMap<(Vec<Dims>, usize), u64>;

static WINNERS: Mutex<Option<Winners>> = Mutex::new(None);

/// The measured winner for `dims` at `rows`, if any.
pub(crate) fn lookup(dims: &[Dims], rows: usize) -> Option<u64> {
    let w = WINNERS.lock().unwrap_or_else(|e| e.into_inner());
    w.as_ref()?.get(&(dims.to_vec(), rows)).copied()
}

/// Records the winner for `dims` at `rows`.
pub(crate) fn store(dims: &[Dims], rows: usize, mask: u64) {
    let mut w = WINNERS.lock().unwrap_or_else(|e| e.into_inner());
    let map = w.get_or_insert_with(HashMap::new);
    if map.len() >= 4096 {
        map.clear();
    }
    map.insert((dims.to_vec(), rows), mask);
}

/// Forgets every measured plan (the next forward of each shape and row count measures again).
pub fn clear_measurements() {
    *WINNERS.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// The plans to time for `dims` at `rows`: the model's [`MAX_TIMED`] cheapest (its favourite
/// first), the dense matrix and the unmerged sweep.
pub(crate) fn shortlist(dims: &[Dims], rows: usize) -> Vec<Schedule> {
    let mut all: Vec<Schedule> = plan::candidate_masks(dims)
        .into_iter()
        .map(|mask| plan::plan_for(dims, rows, mask, false))
        .collect();
    all.sort_by(|a, b| a.cost.total_cmp(&b.cost));
    let full = plan::candidate_masks(dims).into_iter().max().unwrap_or(0);
    let mut out: Vec<Schedule> = Vec::new();
    for s in all {
        let wanted = out.len() < MAX_TIMED || s.mask == 0 || s.mask == full;
        if wanted && out.iter().all(|o| o.mask != s.mask) {
            out.push(s);
        }
    }
    out
}

/// The winner among `timed` (`(schedule, seconds)`, the model's favourite first): the fastest,
/// unless it is within [`TIE`] of the favourite.
pub(crate) fn pick(timed: &[(Schedule, f64)]) -> u64 {
    let Some((first, t0)) = timed.first() else {
        return 0;
    };
    let (best, tb) = timed
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("non-empty");
    if *tb < t0 * (1.0 - TIE) {
        best.mask
    } else {
        first.mask
    }
}

//! The layer sweep: compress chosen FFN blocks at chosen middle bonds, score every cell with
//! [`Evaluator`], optionally heal and score again.
//!
//! The runner is generic: the caller supplies how to build a compressed model
//! (`compress(blocks, bond)`) and how to heal one, so the same code runs on the crate's `Model`
//! and on toy models in tests.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::eval::{CellMetrics, Evaluator, SampleConfig};
use crate::generate::LanguageModel;

/// One compressed projection's reconstruction error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectionError {
    /// Block index.
    pub block: usize,
    /// Projection name (`"ffn.0"` up, `"ffn.2"` down).
    pub projection: String,
    /// `‖W_tt − W‖_F / ‖W‖_F`.
    #[serde(deserialize_with = "crate::eval::f64_or_nan")]
    pub rel_error: f64,
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

    /// `ffn_params_tt / ffn_params_dense` (NaN if dense is 0).
    pub fn param_ratio(&self) -> f64 {
        if self.ffn_params_dense == 0 {
            f64::NAN
        } else {
            self.ffn_params_tt as f64 / self.ffn_params_dense as f64
        }
    }
}

/// One cell of the sweep: a set of blocks compressed at one middle bond.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepCell {
    /// The compressed blocks (sorted).
    pub blocks: Vec<usize>,
    /// The middle bond dimension.
    pub bond: usize,
    /// Parameters and reconstruction errors.
    pub compression: CompressionInfo,
    /// Every metric right after compression.
    pub metrics: CellMetrics,
    /// Every metric after healing, when healing was run.
    pub healed: Option<CellMetrics>,
}

/// The whole sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// The model's number of blocks.
    pub n_blocks: usize,
    /// The block sets swept, in order (sorted sets).
    pub block_sets: Vec<Vec<usize>>,
    /// The middle bonds swept, in order.
    pub bonds: Vec<usize>,
    /// How answers were sampled.
    pub sample: SampleConfig,
    /// The uncompressed model's metrics.
    pub reference: CellMetrics,
    /// Every cell, block set major, bond minor.
    pub cells: Vec<SweepCell>,
}

impl SweepReport {
    /// The cell for `blocks` (any order) at `bond`.
    pub fn cell(&self, blocks: &[usize], bond: usize) -> Option<&SweepCell> {
        let mut b = blocks.to_vec();
        b.sort_unstable();
        self.cells.iter().find(|c| c.blocks == b && c.bond == bond)
    }
}

/// A block set's label: `"all"` for every block, else the indices joined by `+` (`"0+1"`).
pub fn block_label(blocks: &[usize], n_blocks: usize) -> String {
    if n_blocks > 1 && blocks.len() == n_blocks && blocks.iter().copied().eq(0..n_blocks) {
        "all".to_string()
    } else {
        blocks
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("+")
    }
}

/// Parses `"0,1,2,3,all"`-style block sets: comma-separated items, each `all` or indices joined
/// by `+` (`"0+1"`). Errors on empty items, bad numbers, indices ≥ `n_blocks`, duplicates.
pub fn parse_block_sets(spec: &str, n_blocks: usize) -> Result<Vec<Vec<usize>>> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim) {
        let set: Vec<usize> = if item == "all" {
            (0..n_blocks).collect()
        } else {
            item.split('+')
                .map(|s| {
                    s.trim().parse::<usize>().map_err(|_| {
                        Error::invalid_arg(
                            "blocks",
                            format!("{item:?} is not `all` or indices joined by `+`"),
                        )
                    })
                })
                .collect::<Result<_>>()?
        };
        out.push(set);
    }
    validate_block_sets(&out, n_blocks)?;
    Ok(out)
}

/// Parses a comma-separated list of bonds (`"50,47,42"`); each ≥ 1.
pub fn parse_bonds(spec: &str) -> Result<Vec<usize>> {
    let bonds: Vec<usize> = spec
        .split(',')
        .map(|s| {
            s.trim().parse::<usize>().map_err(|_| {
                Error::invalid_arg("bonds", format!("{s:?} is not a positive integer"))
            })
        })
        .collect::<Result<_>>()?;
    validate_bonds(&bonds)?;
    Ok(bonds)
}

fn validate_bonds(bonds: &[usize]) -> Result<()> {
    if bonds.is_empty() {
        return Err(Error::invalid_arg("bonds", "no bond given"));
    }
    if let Some(b) = bonds.iter().find(|&&b| b == 0) {
        return Err(Error::invalid_arg(
            "bonds",
            format!("bond {b} must be at least 1"),
        ));
    }
    Ok(())
}

fn validate_block_sets(sets: &[Vec<usize>], n_blocks: usize) -> Result<()> {
    if sets.is_empty() {
        return Err(Error::invalid_arg("blocks", "no block set given"));
    }
    for s in sets {
        if s.is_empty() {
            return Err(Error::invalid_arg("blocks", "an empty block set"));
        }
        for (i, &b) in s.iter().enumerate() {
            if b >= n_blocks {
                return Err(Error::invalid_arg(
                    "blocks",
                    format!("block {b} does not exist (the model has {n_blocks})"),
                ));
            }
            if s[..i].contains(&b) {
                return Err(Error::invalid_arg(
                    "blocks",
                    format!("block {b} repeated in a set"),
                ));
            }
        }
    }
    Ok(())
}

/// The grid's default block sets: each block alone, then all together.
pub fn default_block_sets(n_blocks: usize) -> Vec<Vec<usize>> {
    let mut v: Vec<Vec<usize>> = (0..n_blocks).map(|b| vec![b]).collect();
    if n_blocks > 1 {
        v.push((0..n_blocks).collect());
    }
    v
}

/// The default middle bonds.
pub const DEFAULT_BONDS: [usize; 10] = [50, 47, 42, 39, 33, 27, 20, 15, 10, 5];

/// The shape of a sweep: which block sets, which middle bonds, how many worker threads.
#[derive(Debug, Clone, Copy)]
pub struct Grid<'a> {
    /// Blocks in the model.
    pub n_blocks: usize,
    /// The sets of blocks compressed together (see [`parse_block_sets`]).
    pub block_sets: &'a [Vec<usize>],
    /// The middle bonds.
    pub bonds: &'a [usize],
    /// Worker threads scoring cells in parallel (at least 1).
    pub threads: usize,
}

/// Runs the grid: for every block set × bond, `compress(blocks, bond)` builds the model, the
/// evaluator scores it, and `heal` (if given) fine-tunes it before scoring again. `progress`
/// receives one line per cell (for stderr).
///
/// The cells are independent, so they are spread over `threads` worker threads (scoped; each
/// takes the next unscored cell). Every random draw is seeded per probe and sample (common
/// random numbers), so the report does not depend on `threads` or on the order cells finish in.
/// With 2 cores and tiny matrices this is where the parallelism belongs: keep BLAS at one
/// thread ([`crate::blas::set_num_threads`]).
pub fn run_grid<R, M, C, H>(
    evaluator: &Evaluator<'_, R>,
    grid: &Grid<'_>,
    compress: C,
    heal: Option<H>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<SweepReport>
where
    R: LanguageModel + Sync + ?Sized,
    M: LanguageModel,
    C: Fn(&[usize], usize) -> Result<(M, CompressionInfo)> + Sync,
    H: Fn(&mut M) -> Result<()> + Sync,
{
    let Grid {
        n_blocks,
        block_sets,
        bonds,
        threads,
    } = *grid;
    validate_block_sets(block_sets, n_blocks)?;
    validate_bonds(bonds)?;
    if threads == 0 {
        return Err(Error::invalid_arg("threads", "must be at least 1"));
    }
    let sets: Vec<Vec<usize>> = block_sets
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.sort_unstable();
            s
        })
        .collect();
    progress("scoring the uncompressed reference");
    let reference = evaluator.evaluate(evaluator.reference())?;
    let jobs: Vec<(&Vec<usize>, usize)> = sets
        .iter()
        .flat_map(|set| bonds.iter().map(move |&bond| (set, bond)))
        .collect();
    let total = jobs.len();
    let cell = |(set, bond): (&Vec<usize>, usize)| -> Result<SweepCell> {
        let (mut model, compression) = compress(set, bond)?;
        let metrics = evaluator.evaluate(&model)?;
        let healed = match heal.as_ref() {
            Some(h) => {
                h(&mut model)?;
                Some(evaluator.evaluate(&model)?)
            }
            None => None,
        };
        Ok(SweepCell {
            blocks: set.clone(),
            bond,
            compression,
            metrics,
            healed,
        })
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<SweepCell>>>> =
        (0..total).map(|_| std::sync::Mutex::new(None)).collect();
    let worker = || loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(&(set, bond)) = jobs.get(i) else {
            break;
        };
        progress(&format!(
            "[{}/{total}] blocks {}, bond {bond}",
            i + 1,
            block_label(set, n_blocks)
        ));
        let r = cell((set, bond));
        let failed = r.is_err();
        if let Ok(mut slot) = results[i].lock() {
            *slot = Some(r);
        }
        if failed {
            // Stop handing out work; the first error (in cell order) is returned below.
            next.store(total, std::sync::atomic::Ordering::Relaxed);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads.min(total.max(1)) {
            scope.spawn(worker);
        }
        worker();
    });
    // In cell order: the first error wins (cells after it may not have run).
    let mut cells = Vec::with_capacity(total);
    for slot in results {
        if let Some(r) = slot.into_inner().ok().flatten() {
            cells.push(r?);
        }
    }
    Ok(SweepReport {
        n_blocks,
        block_sets: sets,
        bonds: bonds.to_vec(),
        sample: *evaluator.sample_config(),
        reference,
        cells,
    })
}

/// The seed's corruption experiments (title, blocks, middle bonds), in the article's order.
pub const SEED_EXPERIMENTS: [(&str, &[usize], &[usize]); 13] = [
    (
        "loosening towards the end",
        &[0, 1, 2, 3],
        &[39, 42, 46, 47],
    ),
    (
        "tightening towards the end",
        &[0, 1, 2, 3],
        &[47, 46, 42, 39],
    ),
    ("block 0 at 27", &[0], &[27]),
    ("block 1 at 27", &[1], &[27]),
    ("block 2 at 27", &[2], &[27]),
    ("block 3 at 27", &[3], &[27]),
    ("block 0 at 20", &[0], &[20]),
    ("block 1 at 20", &[1], &[20]),
    ("block 2 at 20", &[2], &[20]),
    ("block 3 at 20", &[3], &[20]),
    ("blocks 0, 1 at 30", &[0, 1], &[30, 30]),
    ("blocks 2, 3 at 30", &[2, 3], &[30, 30]),
    ("blocks 1, 2 at 30", &[1, 2], &[30, 30]),
];

/// The seed's `tensorized_model`: a copy of `model` with each listed block's FFN replaced by TT
/// layers at its middle bond ([`FfnTtSpec::for_config`](crate::FfnTtSpec::for_config), which is
/// the seed's factorisation for `d_model` 50 and FFN width 200), with what the compression did.
///
/// Errors if `blocks` and `bonds` differ in length or a block is out of range.
pub fn tensorized(
    model: &crate::Model,
    blocks: &[usize],
    bonds: &[usize],
) -> Result<(crate::Model, CompressionInfo)> {
    if blocks.len() != bonds.len() {
        return Err(Error::invalid_arg(
            "bonds",
            format!("{} bonds for {} blocks", bonds.len(), blocks.len()),
        ));
    }
    let mut m = model.clone();
    let mut info = CompressionInfo::default();
    for (&b, &bond) in blocks.iter().zip(bonds) {
        let spec = crate::FfnTtSpec::for_config(model.config(), bond);
        let r = m.tensorize_ffn(b, &spec)?;
        info.ffn_params_dense += r.dense_params();
        info.ffn_params_tt += r.tt_params();
        for (name, p) in [("ffn.0", &r.up), ("ffn.2", &r.down)] {
            info.projections.push(ProjectionError {
                block: b,
                projection: name.into(),
                rel_error: p.rel_error as f64,
            });
        }
    }
    Ok((m, info))
}

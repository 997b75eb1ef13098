//! Sweeps beyond one machine: a [`Shard`] is a deterministic 1/N of a sweep's jobs — its grid
//! cells, its seed settings and its budget requests, each list split on its own — a
//! [`SweepPart`] what one shard computed, and [`merge_parts`] puts the parts back into the very
//! [`SweepReport`] an unsharded run makes, so the files written from it are byte for byte the
//! same.
//!
//! Item `i` of a list (the grid's cells: method major, then block set, then bond; the settings
//! in order; the budget requests in order) belongs to shard `i mod N`: round robin, so the
//! expensive low-bond cells are spread over the shards. No scheduler is involved: run the N
//! shards however you like (a SLURM job array, GNU parallel, N terminals) and merge their JSON
//! files.
//!
//! This module builds on [`crate::study::sweep`] (whose runner scores any selection of jobs);
//! the sweep module does not know about shards.
//!
//! ```
//! use succulm::study::shard::Shard;
//! let s = Shard::parse("2/3").unwrap();
//! assert_eq!(s.owned(7), vec![1, 4]);
//! assert_eq!(s.to_string(), "2/3");
//! assert!(Shard::parse("4/3").is_err());
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::generate::LanguageModel;
use crate::study::eval::Evaluator;
use crate::study::sweep::{
    CompressionInfo, Grid, HealKind, Method, SeedSetting, SweepJobs, SweepReport,
};

/// Shard `index` (0-based) of `count`: the items `i` with `i % count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based index, `< count`.
    pub index: usize,
    /// Number of shards, at least 1.
    pub count: usize,
}

impl Shard {
    /// The whole grid (shard 1 of 1).
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` (0-based) of `count`. Errors on `count == 0` or `index >= count`.
    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 {
            return Err(Error::invalid_arg(
                "shard",
                "the number of shards must be at least 1",
            ));
        }
        if index >= count {
            return Err(Error::invalid_arg(
                "shard",
                format!("shard index {index} is not below the shard count {count}"),
            ));
        }
        Ok(Shard { index, count })
    }

    /// Parses `K/N` with `1 <= K <= N` (1-based, as a SLURM array task id or GNU parallel's
    /// `{#}`). Errors on anything else.
    pub fn parse(spec: &str) -> Result<Shard> {
        let bad = || Error::invalid_arg("--shard", format!("{spec:?} is not K/N with 1 <= K <= N"));
        let (k, n) = spec.trim().split_once('/').ok_or_else(bad)?;
        let k: usize = k.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Shard::new(k - 1, n)
    }

    /// Whether item `i` belongs to this shard.
    pub fn owns(&self, i: usize) -> bool {
        i % self.count.max(1) == self.index
    }

    /// This shard's items among `0..total`, ascending.
    pub fn owned(&self, total: usize) -> Vec<usize> {
        (0..total).filter(|&i| self.owns(i)).collect()
    }

    /// Whether this is the first shard (shard 1 of N, or the whole run).
    pub fn is_first(&self) -> bool {
        self.index == 0
    }

    /// The file name of this shard's part: `part_K_of_N.json` (K 1-based).
    pub fn file_name(&self) -> String {
        format!("part_{}_of_{}.json", self.index + 1, self.count)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

/// What one shard of a sweep computed: its cells, seed settings and budget cells (with their
/// indices in the whole run) inside a [`SweepReport`] whose every other field (grid, sampling,
/// healing, calibration, reference) is the whole run's, plus anything the caller attaches
/// (`extra`, e.g. the seed's printed experiments; by convention only shard 1 carries it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPart {
    /// Which shard.
    pub shard: Shard,
    /// Cells of the whole grid.
    pub cells_total: usize,
    /// The grid indices of `report.cells`, ascending.
    pub cell_indices: Vec<usize>,
    /// Seed-setting jobs of the whole run (methods × settings).
    #[serde(default)]
    pub settings_total: usize,
    /// The job indices of `report.settings`, ascending.
    #[serde(default)]
    pub setting_indices: Vec<usize>,
    /// Budget requests of the whole run.
    pub budget_total: usize,
    /// The request indices of `report.budget`, ascending.
    pub budget_indices: Vec<usize>,
    /// The shard's cells in a report of the whole grid's shape.
    pub report: SweepReport,
    /// Caller data carried through the merge (`null` when none).
    #[serde(default)]
    pub extra: serde_json::Value,
}

impl SweepPart {
    /// The part as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        crate::fs::to_json_pretty(self, "part")
    }

    /// Writes the part atomically to `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::fs::write_atomic(path.as_ref(), self.to_json()?.as_bytes())
    }

    /// Reads a part written by [`SweepPart::write`].
    pub fn read(path: impl AsRef<Path>) -> Result<SweepPart> {
        crate::fs::read_json(path.as_ref())
    }
}

/// One [`Shard`] of a sweep of `grid` and the seed's `settings` ([`SweepJobs`]): the shard's
/// grid cells and its setting jobs (each list split round robin on its own), scored by the one
/// cell loop ([`SweepJobs::run`]; `compress(method, blocks, bonds)` with one bond per block),
/// as a [`SweepPart`] (no budget cells: add them with the part's budget fields). Each job is
/// computed exactly as in the unsharded run, so the merged parts equal it.
///
/// Errors as [`SweepJobs::new`] and [`SweepJobs::run`], and on an invalid shard.
pub fn run_sweep_shard<R, M, C, H>(
    evaluator: &Evaluator<'_, R>,
    grid: &Grid<'_>,
    settings: &[SeedSetting],
    shard: Shard,
    compress: C,
    heal: Option<(HealKind, H)>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<SweepPart>
where
    R: LanguageModel + Sync + ?Sized,
    M: LanguageModel,
    C: Fn(Method, &[usize], &[usize]) -> Result<(M, CompressionInfo)> + Sync,
    H: Fn(&mut M) -> Result<()> + Sync,
{
    let shard = Shard::new(shard.index, shard.count)?;
    let jobs = SweepJobs::new(grid, settings)?;
    let cell_indices = shard.owned(jobs.cells_total());
    let setting_indices = shard.owned(jobs.settings_total());
    let report = jobs.run(
        evaluator,
        &cell_indices,
        &setting_indices,
        compress,
        heal,
        progress,
    )?;
    Ok(SweepPart {
        shard,
        cells_total: jobs.cells_total(),
        cell_indices,
        settings_total: jobs.settings_total(),
        setting_indices,
        budget_total: 0,
        budget_indices: Vec::new(),
        report,
        extra: serde_json::Value::Null,
    })
}

/// The report without its cells, settings and budget cells, as JSON: what every part of one run
/// must share (compared as text, so NaN fields compare equal).
fn shape(r: &SweepReport) -> Result<String> {
    let mut r = r.clone();
    r.cells.clear();
    r.settings.clear();
    r.budget.clear();
    serde_json::to_string(&r)
        .map_err(|e| Error::invalid_arg("part", format!("cannot serialise: {e}")))
}

/// Puts the items each part holds (`(indices, items)`, every index some part's, checked before)
/// back in index order.
fn reassemble<T>(total: usize, held: impl IntoIterator<Item = (Vec<usize>, Vec<T>)>) -> Vec<T> {
    let mut slots: Vec<Option<T>> = (0..total).map(|_| None).collect();
    for (indices, items) in held {
        for (i, item) in indices.into_iter().zip(items) {
            slots[i] = Some(item);
        }
    }
    slots.into_iter().flatten().collect()
}

/// Merges the parts of one sharded run into the report an unsharded run writes, and returns it
/// with the first non-null `extra` (in shard order). The parts may come in any order.
///
/// Errors on no part; parts of different shard counts, grids, sampling, healing, calibration
/// or reference (not one run); a shard given twice or missing; a part whose cell, setting or
/// budget indices are not its shard's, or do not match what it holds.
pub fn merge_parts(mut parts: Vec<SweepPart>) -> Result<(SweepReport, serde_json::Value)> {
    let first = parts
        .first()
        .ok_or_else(|| Error::invalid_arg("parts", "no part given"))?;
    let (count, cells_total, settings_total, budget_total) = (
        first.shard.count,
        first.cells_total,
        first.settings_total,
        first.budget_total,
    );
    let base = shape(&first.report)?;
    parts.sort_by_key(|p| p.shard.index);
    for (i, p) in parts.iter().enumerate() {
        let name = format!("part {}", p.shard);
        if p.shard.count != count
            || p.cells_total != cells_total
            || p.settings_total != settings_total
            || p.budget_total != budget_total
        {
            return Err(Error::invalid_arg(
                name,
                format!(
                    "not of the same run: {} shards, {} cells, {} settings, {} budget requests \
                     vs {count}, {cells_total}, {settings_total}, {budget_total}",
                    p.shard.count, p.cells_total, p.settings_total, p.budget_total
                ),
            ));
        }
        if p.shard.index >= count {
            return Err(Error::invalid_arg(name, "shard index out of range"));
        }
        if i > 0 && parts[i - 1].shard.index == p.shard.index {
            return Err(Error::invalid_arg(name, "given twice"));
        }
        if shape(&p.report)? != base {
            return Err(Error::invalid_arg(
                name,
                "not of the same run: its grid, sampling, healing or reference differ",
            ));
        }
        // Each list holds exactly the shard's share of the whole run's items.
        let owns = |indices: &[usize], len: usize, total: usize, what: &str| {
            let owned = p.shard.owned(total);
            if *indices == owned[..] && len == indices.len() {
                return Ok(());
            }
            let at = if what == "cells" {
                format!(" at indices {indices:?}")
            } else {
                String::new()
            };
            Err(Error::invalid_arg(
                name.clone(),
                format!(
                    "holds {len} {what}{at}, not its shard's {} of {total}",
                    owned.len()
                ),
            ))
        };
        owns(&p.cell_indices, p.report.cells.len(), cells_total, "cells")?;
        owns(
            &p.setting_indices,
            p.report.settings.len(),
            settings_total,
            "seed settings",
        )?;
        owns(
            &p.budget_indices,
            p.report.budget.len(),
            budget_total,
            "budget cells",
        )?;
    }
    if parts.len() != count {
        let have: Vec<usize> = parts.iter().map(|p| p.shard.index).collect();
        let missing: Vec<String> = (0..count)
            .filter(|i| !have.contains(i))
            .map(|i| format!("{}/{count}", i + 1))
            .collect();
        return Err(Error::invalid_arg(
            "parts",
            format!("missing shard(s) {}", missing.join(", ")),
        ));
    }
    let extra = parts
        .iter()
        .map(|p| p.extra.clone())
        .find(|e| !e.is_null())
        .unwrap_or(serde_json::Value::Null);
    let mut report = parts[0].report.clone();
    let mut cells = Vec::with_capacity(parts.len());
    let mut settings = Vec::with_capacity(parts.len());
    let mut budget = Vec::with_capacity(parts.len());
    for p in parts {
        cells.push((p.cell_indices, p.report.cells));
        settings.push((p.setting_indices, p.report.settings));
        budget.push((p.budget_indices, p.report.budget));
    }
    // Every index is some shard's, checked above.
    report.cells = reassemble(cells_total, cells);
    report.settings = reassemble(settings_total, settings);
    report.budget = reassemble(budget_total, budget);
    Ok((report, extra))
}

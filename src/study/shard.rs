//! Sweeps beyond one machine: a [`Shard`] is a deterministic 1/N of a grid's cells (and of its
//! budget requests), a [`SweepPart`] what one shard computed, and [`merge_parts`] puts the parts
//! back into the very [`SweepReport`] an unsharded run makes — so the files written from it are
//! byte for byte the same.
//!
//! Cell `i` of the grid (method major, then block set, then bond) belongs to shard `i mod N`:
//! round robin, so the expensive low-bond cells are spread over the shards. No scheduler is
//! involved: run the N shards however you like (a SLURM job array, GNU parallel, N terminals)
//! and merge their JSON files.
//!
//! ```
//! use succulm::study::shard::Shard;
//! let s = Shard::parse("2/3").unwrap();
//! assert_eq!(s.owned(7), vec![1, 4]);
//! assert_eq!(s.to_string(), "2/3");
//! assert!(Shard::parse("4/3").is_err());
//! ```

use crate::error::{Error, Result};
use crate::study::sweep::SweepReport;

pub use crate::study::sweep::{Shard, SweepPart};

/// The report without its cells and budget cells, as JSON: what every part of one run must
/// share (compared as text, so NaN fields compare equal).
fn shape(r: &SweepReport) -> Result<String> {
    let mut r = r.clone();
    r.cells.clear();
    r.budget.clear();
    serde_json::to_string(&r)
        .map_err(|e| Error::invalid_arg("part", format!("cannot serialise: {e}")))
}

/// Merges the parts of one sharded run into the report an unsharded run writes, and returns it
/// with the first non-null `extra` (in shard order). The parts may come in any order.
///
/// Errors on no part; parts of different shard counts, grids, sampling or reference (not one
/// run); a shard given twice or missing; a part whose cell or budget indices are not its
/// shard's, or do not match its cell count.
pub fn merge_parts(mut parts: Vec<SweepPart>) -> Result<(SweepReport, serde_json::Value)> {
    let first = parts
        .first()
        .ok_or_else(|| Error::invalid_arg("parts", "no part given"))?;
    let (count, cells_total, budget_total) =
        (first.shard.count, first.cells_total, first.budget_total);
    let base = shape(&first.report)?;
    parts.sort_by_key(|p| p.shard.index);
    for (i, p) in parts.iter().enumerate() {
        let name = format!("part {}", p.shard);
        if p.shard.count != count || p.cells_total != cells_total || p.budget_total != budget_total
        {
            return Err(Error::invalid_arg(
                name,
                format!(
                    "not of the same run: {} shards, {} cells, {} budget requests vs {count}, \
                     {cells_total}, {budget_total}",
                    p.shard.count, p.cells_total, p.budget_total
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
        if p.cell_indices != p.shard.owned(cells_total)
            || p.report.cells.len() != p.cell_indices.len()
        {
            return Err(Error::invalid_arg(
                name,
                format!(
                    "holds {} cells at indices {:?}, not its shard's {} of {cells_total}",
                    p.report.cells.len(),
                    p.cell_indices,
                    p.shard.owned(cells_total).len()
                ),
            ));
        }
        if p.budget_indices != p.shard.owned(budget_total)
            || p.report.budget.len() != p.budget_indices.len()
        {
            return Err(Error::invalid_arg(
                name,
                format!(
                    "holds {} budget cells, not its shard's {} of {budget_total}",
                    p.report.budget.len(),
                    p.shard.owned(budget_total).len()
                ),
            ));
        }
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
    let mut cells = vec![None; cells_total];
    let mut budget = vec![None; budget_total];
    let mut report = parts[0].report.clone();
    for p in parts {
        for (i, c) in p.cell_indices.into_iter().zip(p.report.cells) {
            cells[i] = Some(c);
        }
        for (i, b) in p.budget_indices.into_iter().zip(p.report.budget) {
            budget[i] = Some(b);
        }
    }
    // Every index is some shard's, checked above.
    report.cells = cells.into_iter().flatten().collect();
    report.budget = budget.into_iter().flatten().collect();
    Ok((report, extra))
}

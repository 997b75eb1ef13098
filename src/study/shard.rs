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

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::study::sweep::SweepReport;

/// Shard `index` (0-based) of `count`: the cells `i` with `i % count == index`.
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

/// What one shard of a sweep computed: its cells and budget cells (with their indices in the
/// whole grid) inside a [`SweepReport`] whose every other field (grid, sampling, reference) is
/// the whole run's, plus anything the caller attaches (`extra`, e.g. the seed's printed
/// experiments; by convention only shard 1 carries it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPart {
    /// Which shard.
    pub shard: Shard,
    /// Cells of the whole grid.
    pub cells_total: usize,
    /// The grid indices of `report.cells`, ascending.
    pub cell_indices: Vec<usize>,
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
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid_arg("part", format!("cannot serialise: {e}")))
    }

    /// Writes the part atomically to `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::fs::write_atomic(path.as_ref(), self.to_json()?.as_bytes())
    }

    /// Reads a part written by [`SweepPart::write`].
    pub fn read(path: impl AsRef<Path>) -> Result<SweepPart> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })
    }
}

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

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

use std::path::{Path, PathBuf};

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
        self.share(total).collect()
    }

    /// How many of `0..total` this shard owns: `owned(total).len()`, computed without the list
    /// (`total` may be a size read from a file).
    ///
    /// ```
    /// use succulm::study::shard::Shard;
    /// let s = Shard::new(1, 3).unwrap();
    /// assert_eq!(s.owned_count(7), s.owned(7).len());
    /// assert_eq!(s.owned_count(1_000_000_000_000), 333_333_333_333);
    /// ```
    pub fn owned_count(&self, total: usize) -> usize {
        self.share(total).len()
    }

    /// The items [`owns`](Self::owns) picks among `0..total`, without visiting the others.
    fn share(&self, total: usize) -> std::iter::StepBy<std::ops::Range<usize>> {
        let step = self.count.max(1);
        let start = if self.index < step { self.index } else { total };
        (start..total).step_by(step)
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
/// healing, calibration, reference) is the whole run's, the run's description (`run`), plus
/// anything the caller attaches (`extra`, e.g. the seed's printed experiments; by convention only
/// shard 1 carries it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPart {
    /// Which shard.
    pub shard: Shard,
    /// Cells of the whole grid (methods × block sets × bonds).
    pub cells_total: usize,
    /// The grid indices of `report.cells`, ascending.
    pub cell_indices: Vec<usize>,
    /// Seed-setting jobs of the whole run (methods × settings, method major).
    #[serde(default)]
    pub settings_total: usize,
    /// The job indices of `report.settings`, ascending.
    #[serde(default)]
    pub setting_indices: Vec<usize>,
    /// Budget requests of the whole run: none, or one per method × block set of the grid
    /// (method major, then block set).
    pub budget_total: usize,
    /// The request indices of `report.budget`, ascending.
    pub budget_indices: Vec<usize>,
    /// The shard's cells in a report of the whole grid's shape.
    pub report: SweepReport,
    /// What made the run (for `layer_sweep`, [`SweepOptions::describe`](crate::study::setup::SweepOptions::describe)):
    /// every part of one run has the same; `null` when the caller records nothing.
    #[serde(default)]
    pub run: serde_json::Value,
    /// Caller data carried through the merge (`null` when none).
    #[serde(default)]
    pub extra: serde_json::Value,
}

impl SweepPart {
    /// The part as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        crate::fs::to_json_pretty(self, "part")
    }

    /// Writes the part atomically to `path` (its directory created if missing).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::fs::write_atomic_creating_dir(path.as_ref(), self.to_json()?.as_bytes())
    }

    /// Reads a part written by [`SweepPart::write`].
    pub fn read(path: impl AsRef<Path>) -> Result<SweepPart> {
        crate::fs::read_json(path.as_ref())
    }

    /// Checks the part against its own content, before anything of a size it claims is
    /// allocated: a valid grid (methods, block sets within `n_blocks`, bonds) of exactly
    /// `cells_total` cells; as many settings per method; a budget of none or one request per
    /// method × block set; each list holding its shard's share of its total ([`check_share`]);
    /// each cell the grid's cell at its index, each setting of its index's method, each budget
    /// cell its request. `name` (the part's file) names the part in errors.
    fn check(&self, name: &Path) -> Result<()> {
        let r = &self.report;
        let bad = |field: &str, reason: String| Error::invalid_file(name, field, reason);
        let reason = |e: Error| match e {
            Error::InvalidArgument { reason, .. } => reason,
            e => e.to_string(),
        };
        let (methods, sets, bonds) = (r.methods.len(), r.block_sets.len(), r.bonds.len());
        let grid = methods.checked_mul(sets).and_then(|n| n.checked_mul(bonds));
        if grid != Some(self.cells_total) {
            return Err(bad(
                "cells_total",
                format!(
                    "{} cells, but the grid of {methods} method(s) × {sets} block set(s) × \
                     {bonds} bond(s) has {}",
                    self.cells_total,
                    grid.map_or("more".into(), |n| n.to_string())
                ),
            ));
        }
        let shard = self.shard;
        // First the cells (bounding the grid's lists by what the part holds), then the grid.
        check_share(
            name,
            shard,
            "cells_total",
            self.cells_total,
            &self.cell_indices,
            r.cells.len(),
            "cells",
        )?;
        crate::compress::method::validate_methods(&r.methods)
            .map_err(|e| bad("report.methods", reason(e)))?;
        crate::study::sweep::validate_block_sets(&r.block_sets, r.n_blocks)
            .map_err(|e| bad("report.block_sets", reason(e)))?;
        crate::study::sweep::validate_bonds(&r.bonds)
            .map_err(|e| bad("report.bonds", reason(e)))?;
        if self.settings_total % methods != 0 {
            return Err(bad(
                "settings_total",
                format!(
                    "{} settings are not the same number for each of {methods} method(s)",
                    self.settings_total
                ),
            ));
        }
        // `methods * sets` does not overflow: `cells_total` is its multiple.
        if self.budget_total != 0 && self.budget_total != methods * sets {
            return Err(bad(
                "budget_total",
                format!(
                    "{} budget requests, but the grid's {methods} method(s) × {sets} block \
                     set(s) make {}",
                    self.budget_total,
                    methods * sets
                ),
            ));
        }
        check_share(
            name,
            shard,
            "settings_total",
            self.settings_total,
            &self.setting_indices,
            r.settings.len(),
            "seed settings",
        )?;
        check_share(
            name,
            shard,
            "budget_total",
            self.budget_total,
            &self.budget_indices,
            r.budget.len(),
            "budget cells",
        )?;
        for (j, (&i, c)) in self.cell_indices.iter().zip(&r.cells).enumerate() {
            let (m, set, bond) = (
                r.methods[i / (sets * bonds)],
                &r.block_sets[i / bonds % sets],
                r.bonds[i % bonds],
            );
            if c.method != m || c.blocks != *set || c.bond != bond {
                return Err(bad(
                    &format!("report.cells[{j}]"),
                    format!(
                        "{} blocks {:?} bond {}, but grid cell {i} is {m} blocks {set:?} bond {bond}",
                        c.method, c.blocks, c.bond
                    ),
                ));
            }
        }
        let per_method = self.settings_total / methods;
        for (j, (&i, c)) in self.setting_indices.iter().zip(&r.settings).enumerate() {
            let m = r.methods[i / per_method];
            if c.method != m {
                return Err(bad(
                    &format!("report.settings[{j}]"),
                    format!("{}, but setting job {i} is {m}'s", c.method),
                ));
            }
        }
        for (j, (&i, c)) in self.budget_indices.iter().zip(&r.budget).enumerate() {
            let (m, set) = (r.methods[i / sets], &r.block_sets[i % sets]);
            if c.method != m || c.blocks != *set {
                return Err(bad(
                    &format!("report.budget[{j}]"),
                    format!(
                        "{} blocks {:?}, but budget request {i} is {m} blocks {set:?}",
                        c.method, c.blocks
                    ),
                ));
            }
        }
        Ok(())
    }

    /// What every part of one run shares, as JSON: the totals, the run's description and the
    /// report without its cells, settings and budget cells (as JSON, NaN is `null`, so NaN
    /// fields compare equal).
    fn description(&self) -> Result<serde_json::Value> {
        let r = &self.report;
        let shape = SweepReport {
            n_blocks: r.n_blocks,
            block_sets: r.block_sets.clone(),
            bonds: r.bonds.clone(),
            methods: r.methods.clone(),
            sample: r.sample,
            heal: r.heal,
            calibration: r.calibration.clone(),
            reference: r.reference,
            cells: Vec::new(),
            budget: Vec::new(),
            settings: Vec::new(),
        };
        let shape = serde_json::to_value(shape)
            .map_err(|e| Error::invalid_arg("part", format!("cannot serialise: {e}")))?;
        Ok(serde_json::json!({
            "cells_total": self.cells_total,
            "settings_total": self.settings_total,
            "budget_total": self.budget_total,
            "run": self.run,
            "report": shape,
        }))
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
        run: serde_json::Value::Null,
        extra: serde_json::Value::Null,
    })
}

/// The name a part given in memory has in errors: `part K/N`.
pub(crate) fn memory_name(shard: Shard) -> PathBuf {
    PathBuf::from(format!("part {shard}"))
}

/// Checks the shards of the parts of one sharded run (each part's name, for errors, and shard),
/// before anything of the size of a shard count is allocated: every shard valid, of the same
/// count, none given twice, none missing.
pub(crate) fn check_shards(parts: &[(&Path, Shard)]) -> Result<()> {
    let &(first, Shard { count, .. }) = parts
        .first()
        .ok_or_else(|| Error::invalid_arg("parts", "no part given"))?;
    for &(name, s) in parts {
        if s.count == 0 {
            return Err(Error::invalid_file(
                name,
                "shard.count",
                "must be at least 1",
            ));
        }
        if s.index >= s.count {
            return Err(Error::invalid_file(
                name,
                "shard.index",
                format!(
                    "{} is not below shard.count {} (the index is 0-based)",
                    s.index, s.count
                ),
            ));
        }
        if s.count != count {
            return Err(not_same_run(name, first, "shard.count", s.count, count));
        }
    }
    let mut order: Vec<(usize, &Path)> = parts.iter().map(|&(n, s)| (s.index, n)).collect();
    order.sort();
    if let Some(w) = order.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::invalid_file(
            w[1].1,
            "shard",
            format!(
                "shard {}/{count} given twice (also as {})",
                w[1].0 + 1,
                w[0].1.display()
            ),
        ));
    }
    // The indices are distinct and below `count`: at most `count` parts.
    if parts.len() < count {
        // The first few missing shards: found within `parts.len()` + 5 steps.
        let missing: Vec<String> = (0..count)
            .filter(|i| order.binary_search_by_key(i, |&(k, _)| k).is_err())
            .take(5)
            .map(|i| format!("{}/{count}", i + 1))
            .collect();
        let left = count - parts.len();
        let more = if left > missing.len() {
            format!(", … ({left} in all)")
        } else {
            String::new()
        };
        return Err(Error::invalid_file(
            first,
            "shard.count",
            format!(
                "{} of {count} shards given, missing shard(s) {}{more}",
                parts.len(),
                missing.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The error of a part `name` whose `field` is `here` where the first part, `first`, has
/// `there`.
fn not_same_run(
    name: &Path,
    first: &Path,
    field: &str,
    here: impl std::fmt::Display,
    there: impl std::fmt::Display,
) -> Error {
    Error::invalid_file(
        name,
        field,
        format!(
            "not of the same run as {}: {here} here, {there} there",
            first.display()
        ),
    )
}

/// Checks that part `name` of `shard` holds exactly its shard's share of the run's `total`
/// items: its `indices` are [`Shard::owned`]`(total)` and `held` items go with them. `field`
/// names the total in errors, `what` the items. Allocates nothing, so `total` may be anything a
/// file claims.
pub(crate) fn check_share(
    name: &Path,
    shard: Shard,
    field: &str,
    total: usize,
    indices: &[usize],
    held: usize,
    what: &str,
) -> Result<()> {
    if held == indices.len() && indices.iter().copied().eq(shard.share(total)) {
        return Ok(());
    }
    let shown: Vec<String> = indices.iter().take(8).map(usize::to_string).collect();
    let more = if indices.len() > 8 { ", …" } else { "" };
    Err(Error::invalid_file(
        name,
        field,
        format!(
            "holds {held} {what} at indices [{}{more}], not its shard's {} of {total}",
            shown.join(", "),
            shard.owned_count(total)
        ),
    ))
}

/// Checks that part `name`'s run description `here` is the first part's, `there` (`first`
/// names it): the error names the first field that differs and both values.
pub(crate) fn check_same_run(
    name: &Path,
    here: &serde_json::Value,
    first: &Path,
    there: &serde_json::Value,
) -> Result<()> {
    match first_difference(here, there, "") {
        None => Ok(()),
        Some((field, a, b)) => Err(not_same_run(name, first, &field, a, b)),
    }
}

/// The first place where `a` and `b` differ: its path below `at` (`run.sweep.samples`,
/// `report.bonds[1]`) and the two values, shortened.
fn first_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    at: &str,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    let key = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    let short = |v: Option<&Value>| {
        let s = v.map_or("nothing".to_string(), Value::to_string);
        match s.char_indices().nth(60) {
            Some((i, _)) => format!("{}…", &s[..i]),
            None => s,
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => {
                        if let Some(d) = first_difference(v, w, &key(k)) {
                            return Some(d);
                        }
                    }
                    None => return Some((key(k), short(Some(v)), short(None))),
                }
            }
            y.iter()
                .find(|(k, _)| !x.contains_key(*k))
                .map(|(k, w)| (key(k), short(None), short(Some(w))))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, &format!("{at}[{i}]"))),
        _ => (a != b).then(|| {
            let field = if at.is_empty() { "part" } else { at };
            (field.to_string(), short(Some(a)), short(Some(b)))
        }),
    }
}

/// Puts the items each part holds (`(indices, items)`, every index some part's, checked before)
/// back in index order.
pub(crate) fn reassemble<T>(
    total: usize,
    held: impl IntoIterator<Item = (Vec<usize>, Vec<T>)>,
) -> Vec<T> {
    let mut slots: Vec<Option<T>> = (0..total).map(|_| None).collect();
    for (indices, items) in held {
        for (i, item) in indices.into_iter().zip(items) {
            slots[i] = Some(item);
        }
    }
    slots.into_iter().flatten().collect()
}

/// Merges the parts of one sharded run into the report an unsharded run writes, and returns it
/// with the first non-null `extra` (in shard order). The parts may come in any order; errors
/// name a part `part K/N` ([`merge_named_parts`] names its file).
///
/// Every size a part claims is checked against its content before anything of that size is
/// allocated. Errors on no part; an invalid shard; parts of different shard counts; a shard
/// given twice or missing; a part whose grid is invalid or does not have `cells_total` cells,
/// whose settings or budget totals do not fit the grid, whose cell, setting or budget indices
/// are not its shard's or do not match what it holds, whose cells are not the grid's cells at
/// their indices; parts of different runs (totals, run description, grid, sampling, healing,
/// calibration or reference: the error names the first field that differs).
pub fn merge_parts(parts: Vec<SweepPart>) -> Result<(SweepReport, serde_json::Value)> {
    merge_named_parts(
        parts
            .into_iter()
            .map(|p| (memory_name(p.shard), p))
            .collect(),
    )
}

/// [`merge_parts`] of parts named in errors by their files (`(path, part)`, e.g. read with
/// [`SweepPart::read`]); errors name the file and the field at fault.
pub fn merge_named_parts(
    mut parts: Vec<(PathBuf, SweepPart)>,
) -> Result<(SweepReport, serde_json::Value)> {
    let shards: Vec<(&Path, Shard)> = parts.iter().map(|(n, p)| (n.as_path(), p.shard)).collect();
    check_shards(&shards)?;
    parts.sort_by_key(|(_, p)| p.shard.index);
    for (name, p) in &parts {
        p.check(name)?;
    }
    let (first_name, first) = &parts[0];
    let base = first.description()?;
    for (name, p) in &parts[1..] {
        check_same_run(name, &p.description()?, first_name, &base)?;
    }
    // Every part holds its shard's share of the same totals: each total is what the parts hold.
    let (cells_total, settings_total, budget_total) =
        (first.cells_total, first.settings_total, first.budget_total);
    let extra = parts
        .iter()
        .map(|(_, p)| p.extra.clone())
        .find(|e| !e.is_null())
        .unwrap_or(serde_json::Value::Null);
    let mut cells = Vec::with_capacity(parts.len());
    let mut settings = Vec::with_capacity(parts.len());
    let mut budget = Vec::with_capacity(parts.len());
    let mut report = None;
    for (_, p) in parts {
        let mut r = p.report;
        cells.push((p.cell_indices, std::mem::take(&mut r.cells)));
        settings.push((p.setting_indices, std::mem::take(&mut r.settings)));
        budget.push((p.budget_indices, std::mem::take(&mut r.budget)));
        report.get_or_insert(r);
    }
    let mut report = report.ok_or_else(|| Error::invalid_arg("parts", "no part given"))?;
    report.cells = reassemble(cells_total, cells);
    report.settings = reassemble(settings_total, settings);
    report.budget = reassemble(budget_total, budget);
    Ok((report, extra))
}

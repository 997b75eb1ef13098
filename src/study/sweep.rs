//! The layer sweep: compress chosen FFN blocks at chosen middle bonds, with one or more
//! truncation [`Method`]s, score every cell with [`Evaluator`], optionally heal and score again;
//! and the parameter-budget comparison of uniform and allocated bonds ([`run_budget`]).
//!
//! The runners are generic: the caller supplies how to build a compressed model
//! (`compress(method, blocks, bond)`, `build(method, blocks, fraction)`) and how to heal one, so
//! the same code runs on the crate's `Model` and on toy models in tests. The compression math
//! itself lives elsewhere (`tt`, `surgery`, `calibration`); [`compress`] and [`budget_arms`]
//! are the callbacks for the crate's `Model`.
//!
//! One loop scores every compressed model ([`SweepJobs::run`]): the grid's cells ([`run_grid`])
//! and the seed's settings ([`run_settings`]), all of them or a selection (sharding, in
//! [`crate::study::shard`], builds on this module; this module knows nothing of shards).
//!
//! Reports written before the method axis existed still load: every field added since has a
//! serde default (`method` Weight, `methods` `[Weight]`, output errors NaN, no budget).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::generate::LanguageModel;
use crate::study::eval::{CellMetrics, Evaluator, SampleConfig};

use crate::compress::method::validate_methods;
pub use crate::compress::method::{parse_methods, Method};
pub use crate::compress::model::{
    budget_arms, compress, tensorized, BudgetArms, CompressionInfo, ProjectionError,
    SweepCalibration,
};

/// How a compressed model was healed (fine-tuned) after compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealKind {
    /// Fine-tuning on the training targets (cross-entropy).
    CrossEntropy,
    /// Distillation towards the dense model's outputs.
    Distill,
}

impl HealKind {
    /// The snake_case key (`"cross_entropy"`, `"distill"`).
    pub fn key(self) -> &'static str {
        match self {
            HealKind::CrossEntropy => "cross_entropy",
            HealKind::Distill => "distill",
        }
    }

    /// A human title.
    pub fn title(self) -> &'static str {
        match self {
            HealKind::CrossEntropy => "cross-entropy fine-tuning",
            HealKind::Distill => "distillation from the dense model",
        }
    }

    /// Parses `ce` / `cross_entropy` / `distill` (surrounding spaces and case ignored; `-` may
    /// stand for `_`).
    pub fn parse(name: &str) -> Result<HealKind> {
        match name.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "ce" | "cross_entropy" => Ok(HealKind::CrossEntropy),
            "distill" => Ok(HealKind::Distill),
            _ => Err(Error::invalid_arg(
                "heal",
                format!("unknown healing kind {name:?} (known: ce, cross_entropy, distill)"),
            )),
        }
    }
}

impl std::fmt::Display for HealKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// One cell of the sweep: a set of blocks compressed at one middle bond by one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepCell {
    /// The truncation method (reports from before the method axis: Weight).
    #[serde(default)]
    pub method: Method,
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
    /// How the cell was healed, when healing was run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heal: Option<HealKind>,
}

fn default_methods() -> Vec<Method> {
    vec![Method::Weight]
}

/// One arm of a parameter-budget comparison: a model compressed under the budget, scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetArm {
    /// Parameters, errors and per-projection bond dims of this arm.
    pub compression: CompressionInfo,
    /// The allocator's objective for this arm: the total (whitened) energy its truncations
    /// discard.
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub discarded_energy: f64,
    /// Every metric of the compressed model.
    pub metrics: CellMetrics,
}

/// A parameter budget spent two ways on the same blocks: uniform middle bonds against bonds
/// chosen per projection by an allocator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetCell {
    /// The truncation method of both arms.
    pub method: Method,
    /// The compressed blocks (sorted).
    pub blocks: Vec<usize>,
    /// The budget as a fraction of the dense FFN parameters of `blocks`, in (0, 1].
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub fraction: f64,
    /// The parameter count both arms are held to: the uniform arm's TT parameters (its largest
    /// uniform middle bond that fits `fraction`); the allocated arm uses at most as many.
    pub budget_params: usize,
    /// Every projection at the same middle bond.
    pub uniform: BudgetArm,
    /// Bonds chosen per projection by the allocator.
    pub allocated: BudgetArm,
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
    /// The truncation methods swept, in order (the first one is the one the seed's verdicts
    /// and the unsuffixed charts read).
    #[serde(default = "default_methods")]
    pub methods: Vec<Method>,
    /// How answers were sampled.
    pub sample: SampleConfig,
    /// How cells were healed, when healing was run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heal: Option<HealKind>,
    /// The calibration data of the data-aware methods, in one line (set by the caller, e.g.
    /// `"sequential, 1008 training rows"`; None when no data-aware method ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<String>,
    /// The uncompressed model's metrics.
    pub reference: CellMetrics,
    /// Every cell, method major, then block set, then bond.
    pub cells: Vec<SweepCell>,
    /// Parameter-budget comparisons ([`run_budget`]), if any were run.
    #[serde(default)]
    pub budget: Vec<BudgetCell>,
    /// The seed's settings that are not grid cells ([`SEED_SETTINGS`]: different bonds per
    /// block, consecutive pairs), scored like cells by [`run_settings`]; empty when not run.
    #[serde(default)]
    pub settings: Vec<SettingCell>,
}

impl SweepReport {
    /// The method the seed's verdicts and the unsuffixed charts read: the first of `methods`
    /// (Weight when the list is empty).
    pub fn primary_method(&self) -> Method {
        self.methods.first().copied().unwrap_or_default()
    }

    /// Every method with cells or listed: `methods` in order, then any method that only appears
    /// in `cells`.
    pub fn swept_methods(&self) -> Vec<Method> {
        let mut out: Vec<Method> = Vec::new();
        for m in self
            .methods
            .iter()
            .copied()
            .chain(self.cells.iter().map(|c| c.method))
        {
            if !out.contains(&m) {
                out.push(m);
            }
        }
        out
    }

    /// The cell of the first method ([`primary_method`](Self::primary_method)) for `blocks`
    /// (any order) at `bond`.
    pub fn cell(&self, blocks: &[usize], bond: usize) -> Option<&SweepCell> {
        self.cell_of(self.primary_method(), blocks, bond)
    }

    /// The cell of `method` for `blocks` (any order) at `bond`.
    pub fn cell_of(&self, method: Method, blocks: &[usize], bond: usize) -> Option<&SweepCell> {
        let mut b = blocks.to_vec();
        b.sort_unstable();
        self.cells
            .iter()
            .find(|c| c.method == method && c.blocks == b && c.bond == bond)
    }

    /// The cells of `method`, in report order.
    pub fn cells_of(&self, method: Method) -> impl Iterator<Item = &SweepCell> {
        self.cells.iter().filter(move |c| c.method == method)
    }

    /// The scored seed setting `id` ([`SEED_SETTINGS`]) of the first method.
    pub fn setting(&self, id: &str) -> Option<&SettingCell> {
        let m = self.primary_method();
        self.settings.iter().find(|s| s.method == m && s.id == id)
    }
}

/// One of the seed's compression settings: chosen blocks, each at its own middle bond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedSetting {
    /// A stable key (`"loosening"`, `"pair_0_1"`).
    pub id: &'static str,
    /// The seed's description.
    pub title: &'static str,
    /// The compressed blocks.
    pub blocks: &'static [usize],
    /// Their middle bonds, one per block.
    pub bonds: &'static [usize],
}

/// The seed's experiments that the block × bond grid does not contain: its first (loosening
/// vs tightening the bonds over blocks 0–3) and its last (consecutive pairs at bond 30).
pub const SEED_SETTINGS: [SeedSetting; 5] = [
    SeedSetting {
        id: "loosening",
        title: "loosening towards the end",
        blocks: &[0, 1, 2, 3],
        bonds: &[39, 42, 46, 47],
    },
    SeedSetting {
        id: "tightening",
        title: "tightening towards the end",
        blocks: &[0, 1, 2, 3],
        bonds: &[47, 46, 42, 39],
    },
    SeedSetting {
        id: "pair_0_1",
        title: "blocks 0, 1 at 30",
        blocks: &[0, 1],
        bonds: &[30, 30],
    },
    SeedSetting {
        id: "pair_2_3",
        title: "blocks 2, 3 at 30",
        blocks: &[2, 3],
        bonds: &[30, 30],
    },
    SeedSetting {
        id: "pair_1_2",
        title: "blocks 1, 2 at 30",
        blocks: &[1, 2],
        bonds: &[30, 30],
    },
];

/// A seed setting ([`SEED_SETTINGS`]) compressed by one method and scored like a grid cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingCell {
    /// The setting's key ([`SeedSetting::id`]).
    pub id: String,
    /// The seed's description.
    pub title: String,
    /// The truncation method.
    pub method: Method,
    /// The compressed blocks, in the setting's order.
    pub blocks: Vec<usize>,
    /// Their middle bonds, one per block.
    pub bonds: Vec<usize>,
    /// Parameters and reconstruction errors.
    pub compression: CompressionInfo,
    /// Every metric right after compression.
    pub metrics: CellMetrics,
    /// Every metric after healing, when healing was run.
    pub healed: Option<CellMetrics>,
    /// How the setting was healed, when healing was run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heal: Option<HealKind>,
}

/// Scores the seed's settings like [`run_grid`] scores cells (the same loop): for every method ×
/// setting (method major; settings with a block `>= n_blocks` skipped), `compress(method,
/// blocks, bonds)` builds the model (`bonds[i]` is block `blocks[i]`'s middle bond), the
/// evaluator scores it, and `heal`, when given, changes it before scoring again. Spread over
/// `threads` worker threads; the result is in job order and independent of `threads`.
/// `progress` receives one line per setting.
///
/// Errors on an empty or repeated method, a setting with no block, a repeated block, a bond
/// count that differs from its block count or a bond of 0, `threads == 0`; passes on the first
/// error (in job order) of `compress`, `heal` or the evaluator.
#[allow(clippy::too_many_arguments)]
pub fn run_settings<R, M, C, H>(
    evaluator: &Evaluator<'_, R>,
    n_blocks: usize,
    methods: &[Method],
    settings: &[SeedSetting],
    threads: usize,
    compress: C,
    heal: Option<(HealKind, H)>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<SettingCell>>
where
    R: LanguageModel + Sync + ?Sized,
    M: LanguageModel,
    C: Fn(Method, &[usize], &[usize]) -> Result<(M, CompressionInfo)> + Sync,
    H: Fn(&mut M) -> Result<()> + Sync,
{
    validate_methods(methods)?;
    if threads == 0 {
        return Err(Error::invalid_arg("threads", "must be at least 1"));
    }
    let jobs = SweepJobs {
        n_blocks,
        methods: methods.to_vec(),
        sets: Vec::new(),
        bonds: Vec::new(),
        threads,
        cells: Vec::new(),
        settings: setting_jobs(n_blocks, methods, settings)?,
    };
    let all: Vec<usize> = (0..jobs.settings.len()).collect();
    Ok(jobs
        .score(evaluator, &[], &all, compress, heal, progress)?
        .1)
}

/// Checks the seed's settings: as many bonds as blocks, at least one block, none repeated, every
/// bond at least 1 (a bond may repeat: the pairs use one bond for both blocks).
fn validate_settings(settings: &[SeedSetting]) -> Result<()> {
    for s in settings {
        let context = format!("setting {:?}", s.id);
        if s.blocks.len() != s.bonds.len() {
            return Err(Error::invalid_arg(
                context,
                format!("{} bonds for {} blocks", s.bonds.len(), s.blocks.len()),
            ));
        }
        validate_block_sets(&[s.blocks.to_vec()], usize::MAX)
            .and_then(|()| validate_bond_values(s.bonds))
            .map_err(|e| Error::invalid_arg(context, e.to_string()))?;
    }
    Ok(())
}

/// The settings' jobs (validated): method major, the settings with a block `>= n_blocks` left
/// out.
fn setting_jobs<'a>(
    n_blocks: usize,
    methods: &[Method],
    settings: &'a [SeedSetting],
) -> Result<Vec<Job<'a>>> {
    validate_settings(settings)?;
    let fits: Vec<&SeedSetting> = settings
        .iter()
        .filter(|s| s.blocks.iter().all(|&b| b < n_blocks))
        .collect();
    let total = methods.len() * fits.len();
    Ok(methods
        .iter()
        .flat_map(|&m| fits.iter().map(move |&s| (m, s)))
        .enumerate()
        .map(|(i, (method, s))| Job {
            method,
            blocks: s.blocks.to_vec(),
            bonds: s.bonds.to_vec(),
            setting: Some(s),
            line: if methods.len() > 1 {
                format!("[{}/{total}] {method}: {}", i + 1, s.title)
            } else {
                format!("[{}/{total}] {}", i + 1, s.title)
            },
        })
        .collect())
}

/// One job of the cell loop: `blocks` compressed at `bonds` (one per block) by `method`.
struct Job<'a> {
    method: Method,
    blocks: Vec<usize>,
    bonds: Vec<usize>,
    /// The seed setting this job scores (`None`: a grid cell, all blocks at `bonds[0]`).
    setting: Option<&'a SeedSetting>,
    /// Its progress line.
    line: String,
}

/// What the cell loop found for one job.
struct Scored {
    compression: CompressionInfo,
    metrics: CellMetrics,
    healed: Option<CellMetrics>,
}

/// A sweep's jobs, validated: the grid's cells (method major, then block set, then bond) and
/// the seed's settings (method major; those whose blocks the model has). One loop scores both
/// ([`SweepJobs::run`]), for all of them or any selection (a shard's: see
/// [`crate::study::shard::run_sweep_shard`]); [`run_grid`] and [`run_settings`] are its two
/// halves.
pub struct SweepJobs<'a> {
    n_blocks: usize,
    methods: Vec<Method>,
    /// The block sets, each sorted.
    sets: Vec<Vec<usize>>,
    bonds: Vec<usize>,
    threads: usize,
    cells: Vec<Job<'a>>,
    settings: Vec<Job<'a>>,
}

impl<'a> SweepJobs<'a> {
    /// The cells of `grid` and the jobs of `settings` (the settings with a block outside the
    /// model are left out).
    ///
    /// Errors on an empty or repeated method, an invalid block set or bond, `threads == 0`, a
    /// setting with no block, a repeated block, a bond count that differs from its block count
    /// or a bond of 0.
    pub fn new(grid: &Grid<'_>, settings: &'a [SeedSetting]) -> Result<Self> {
        let Grid {
            n_blocks,
            methods,
            block_sets,
            bonds,
            threads,
        } = *grid;
        validate_methods(methods)?;
        validate_block_sets(block_sets, n_blocks)?;
        validate_bonds(bonds)?;
        if threads == 0 {
            return Err(Error::invalid_arg("threads", "must be at least 1"));
        }
        let sets: Vec<Vec<usize>> = block_sets.iter().map(|s| sorted(s)).collect();
        let total = methods.len() * sets.len() * bonds.len();
        let cells = methods
            .iter()
            .flat_map(|&m| {
                sets.iter()
                    .flat_map(move |set| bonds.iter().map(move |&bond| (m, set, bond)))
            })
            .enumerate()
            .map(|(i, (method, set, bond))| {
                let label = block_label(set, n_blocks);
                Job {
                    method,
                    blocks: set.clone(),
                    bonds: vec![bond; set.len()],
                    setting: None,
                    line: if methods.len() > 1 {
                        format!("[{}/{total}] {method}: blocks {label}, bond {bond}", i + 1)
                    } else {
                        format!("[{}/{total}] blocks {label}, bond {bond}", i + 1)
                    },
                }
            })
            .collect();
        Ok(SweepJobs {
            n_blocks,
            methods: methods.to_vec(),
            bonds: bonds.to_vec(),
            threads,
            cells,
            settings: setting_jobs(n_blocks, methods, settings)?,
            sets,
        })
    }

    /// The grid's cells (methods × block sets × bonds).
    pub fn cells_total(&self) -> usize {
        self.cells.len()
    }

    /// The settings' jobs (methods × the settings that fit the model).
    pub fn settings_total(&self) -> usize {
        self.settings.len()
    }

    /// Scores the uncompressed reference, then the cells `cells` and the setting jobs
    /// `settings` (indices into [`cells_total`](Self::cells_total) and
    /// [`settings_total`](Self::settings_total), in the order given) in one loop: each job's
    /// model built by `compress(method, blocks, bonds)` (`bonds[i]` block `blocks[i]`'s middle
    /// bond; a grid cell's bonds are all its bond), scored, and when `heal` is given healed
    /// (its kind recorded on every healed cell and the report) and scored again. The jobs are
    /// spread over the grid's worker threads; every random draw is seeded per probe and
    /// sample, so the report depends neither on the threads nor on the selection (a cell is
    /// the same whichever others run). `progress` receives one line per job, numbered within
    /// the whole grid or the whole list of settings.
    ///
    /// Returns a report of the whole grid's shape holding the selected cells and settings (no
    /// calibration line, no budget). Errors on an index out of range; passes on the first error
    /// (in job order) of `compress`, `heal` or the evaluator.
    pub fn run<R, M, C, H>(
        &self,
        evaluator: &Evaluator<'_, R>,
        cells: &[usize],
        settings: &[usize],
        compress: C,
        heal: Option<(HealKind, H)>,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<SweepReport>
    where
        R: LanguageModel + Sync + ?Sized,
        M: LanguageModel,
        C: Fn(Method, &[usize], &[usize]) -> Result<(M, CompressionInfo)> + Sync,
        H: Fn(&mut M) -> Result<()> + Sync,
    {
        for (what, picked, total) in [
            ("cells", cells, self.cells.len()),
            ("settings", settings, self.settings.len()),
        ] {
            if let Some(i) = picked.iter().find(|&&i| i >= total) {
                return Err(Error::invalid_arg(
                    what,
                    format!("index {i} is out of range (the sweep has {total})"),
                ));
            }
        }
        progress("scoring the uncompressed reference");
        let reference = evaluator.evaluate(evaluator.reference())?;
        let heal_kind = heal.as_ref().map(|(k, _)| *k);
        let (cells, settings) = self.score(evaluator, cells, settings, compress, heal, progress)?;
        Ok(SweepReport {
            n_blocks: self.n_blocks,
            block_sets: self.sets.clone(),
            bonds: self.bonds.clone(),
            methods: self.methods.clone(),
            sample: *evaluator.sample_config(),
            heal: heal_kind,
            calibration: None,
            reference,
            cells,
            budget: Vec::new(),
            settings,
        })
    }

    /// The cell loop: the selected cells, then the selected settings, as one list of jobs over
    /// the worker threads.
    fn score<R, M, C, H>(
        &self,
        evaluator: &Evaluator<'_, R>,
        cells: &[usize],
        settings: &[usize],
        compress: C,
        heal: Option<(HealKind, H)>,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<(Vec<SweepCell>, Vec<SettingCell>)>
    where
        R: LanguageModel + Sync + ?Sized,
        M: LanguageModel,
        C: Fn(Method, &[usize], &[usize]) -> Result<(M, CompressionInfo)> + Sync,
        H: Fn(&mut M) -> Result<()> + Sync,
    {
        let n_cells = cells.len();
        let jobs: Vec<&Job<'_>> = cells
            .iter()
            .map(|&i| &self.cells[i])
            .chain(settings.iter().map(|&i| &self.settings[i]))
            .collect();
        let heal_kind = heal.as_ref().map(|(k, _)| *k);
        let mut scored = parallel_map(jobs.len(), self.threads, |i| {
            let job = jobs[i];
            progress(&job.line);
            let (mut model, compression) = compress(job.method, &job.blocks, &job.bonds)?;
            let metrics = evaluator.evaluate(&model)?;
            let healed = match heal.as_ref() {
                Some((_, h)) => {
                    h(&mut model)?;
                    Some(evaluator.evaluate(&model)?)
                }
                None => None,
            };
            Ok(Scored {
                compression,
                metrics,
                healed,
            })
        })?;
        let setting_scores = scored.split_off(n_cells);
        let cells = jobs
            .iter()
            .zip(scored)
            .map(|(job, s)| SweepCell {
                method: job.method,
                blocks: job.blocks.clone(),
                bond: job.bonds[0],
                compression: s.compression,
                metrics: s.metrics,
                healed: s.healed,
                heal: heal_kind,
            })
            .collect();
        let settings = jobs[n_cells..]
            .iter()
            .zip(setting_scores)
            .filter_map(|(job, s)| {
                job.setting.map(|setting| SettingCell {
                    id: setting.id.into(),
                    title: setting.title.into(),
                    method: job.method,
                    blocks: job.blocks.clone(),
                    bonds: job.bonds.clone(),
                    compression: s.compression,
                    metrics: s.metrics,
                    healed: s.healed,
                    heal: heal_kind,
                })
            })
            .collect();
        Ok((cells, settings))
    }
}

/// A block set's label: `"all"` for every block, else the indices joined by `+` (`"0+1"`).
pub fn block_label(blocks: &[usize], n_blocks: usize) -> String {
    if n_blocks > 1 && blocks.len() == n_blocks && blocks.iter().copied().eq(0..n_blocks) {
        "all".to_string()
    } else {
        plain_label(blocks)
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

/// At least one bond, each at least 1.
fn validate_bond_values(bonds: &[usize]) -> Result<()> {
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

/// A grid's bonds: valid values, none listed twice.
pub(crate) fn validate_bonds(bonds: &[usize]) -> Result<()> {
    validate_bond_values(bonds)?;
    if let Some((i, b)) = bonds
        .iter()
        .enumerate()
        .find(|(i, b)| bonds[..*i].contains(b))
    {
        return Err(Error::invalid_arg(
            "bonds",
            format!(
                "bond {b} is listed twice (entries {} and {i} of {bonds:?})",
                bonds.iter().position(|x| x == b).unwrap_or(0)
            ),
        ));
    }
    Ok(())
}

/// A grid's block sets: at least one, each non-empty with blocks below `n_blocks` and none
/// repeated, no set listed twice.
pub(crate) fn validate_block_sets(sets: &[Vec<usize>], n_blocks: usize) -> Result<()> {
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
    let sorted: Vec<Vec<usize>> = sets
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.sort_unstable();
            s
        })
        .collect();
    if let Some(i) = (0..sorted.len()).find(|&i| sorted[..i].contains(&sorted[i])) {
        return Err(Error::invalid_arg(
            "blocks",
            format!("block set {:?} is listed twice", sets[i]),
        ));
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

/// The shape of a sweep: which methods, block sets, middle bonds, how many worker threads.
#[derive(Debug, Clone, Copy)]
pub struct Grid<'a> {
    /// Blocks in the model.
    pub n_blocks: usize,
    /// The truncation methods (see [`parse_methods`]); `&[Method::Weight]` for plain TT-SVD.
    pub methods: &'a [Method],
    /// The sets of blocks compressed together (see [`parse_block_sets`]).
    pub block_sets: &'a [Vec<usize>],
    /// The middle bonds.
    pub bonds: &'a [usize],
    /// Worker threads scoring cells in parallel (at least 1).
    pub threads: usize,
}

/// Runs `job(i)` for every `i < total` on `threads` scoped worker threads (each takes the next
/// index), returning the results in index order. After a failure no further index is handed
/// out, and the first error in index order is returned (every index before it ran).
pub(crate) fn parallel_map<T: Send>(
    total: usize,
    threads: usize,
    job: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<T>>>> = (0..total).map(|_| Mutex::new(None)).collect();
    let worker = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            break;
        }
        let r = job(i);
        let failed = r.is_err();
        if let Ok(mut slot) = results[i].lock() {
            *slot = Some(r);
        }
        if failed {
            // Stop handing out work; the first error (in index order) is returned below.
            next.store(total, Ordering::Relaxed);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads.min(total.max(1)) {
            scope.spawn(worker);
        }
        worker();
    });
    // In index order: the first error wins (indices after it may not have run).
    let mut out = Vec::with_capacity(total);
    for slot in results {
        if let Some(r) = slot.into_inner().ok().flatten() {
            out.push(r?);
        }
    }
    Ok(out)
}

/// Runs the grid: for every method × block set × bond (method major, then block set, then
/// bond), `compress(method, blocks, bond)` builds the model, the evaluator scores it, and
/// `heal` (if given: its kind, recorded on every healed cell and on the report, and the
/// fine-tuning itself) changes it before scoring again. `progress` receives one line per cell
/// (for stderr; it names the method when there is more than one).
///
/// The cells are independent, so they are spread over `threads` worker threads (scoped; each
/// takes the next unscored cell). Every random draw is seeded per probe and sample (common
/// random numbers), so the report does not depend on `threads` or on the order cells finish in.
/// With 2 cores and tiny matrices this is where the parallelism belongs: keep BLAS at one
/// thread ([`crate::tt::blas::set_num_threads`]). The loop is [`SweepJobs::run`]'s, which also
/// scores the seed's settings and any selection of cells (a shard's).
///
/// Errors on an empty or repeated method, an invalid block set or bond, `threads == 0`, and
/// passes on the first error (in cell order) of `compress`, `heal` or the evaluator.
pub fn run_grid<R, M, C, H>(
    evaluator: &Evaluator<'_, R>,
    grid: &Grid<'_>,
    compress: C,
    heal: Option<(HealKind, H)>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<SweepReport>
where
    R: LanguageModel + Sync + ?Sized,
    M: LanguageModel,
    C: Fn(Method, &[usize], usize) -> Result<(M, CompressionInfo)> + Sync,
    H: Fn(&mut M) -> Result<()> + Sync,
{
    let jobs = SweepJobs::new(grid, &[])?;
    let all: Vec<usize> = (0..jobs.cells_total()).collect();
    jobs.run(evaluator, &all, &[], uniform(compress), heal, progress)
}

/// A grid's `compress(method, blocks, bond)` as the cell loop calls it, with one bond per block
/// (a grid cell's bonds are all the same; blocks are never empty).
pub(crate) fn uniform<M, C>(
    compress: C,
) -> impl Fn(Method, &[usize], &[usize]) -> Result<(M, CompressionInfo)> + Sync
where
    C: Fn(Method, &[usize], usize) -> Result<(M, CompressionInfo)> + Sync,
{
    move |method: Method, blocks: &[usize], bonds: &[usize]| {
        compress(method, blocks, bonds.first().copied().unwrap_or(0))
    }
}

fn sorted(s: &[usize]) -> Vec<usize> {
    let mut s = s.to_vec();
    s.sort_unstable();
    s
}

/// Compares two ways of spending one parameter budget: for each `(method, blocks)` request,
/// `build(method, blocks, fraction)` returns the **uniform** arm then the **allocated** arm,
/// each as (compressed model, what the compression did, the allocator's discarded energy); both
/// are scored and returned as a [`BudgetCell`] (`budget_params` = the uniform arm's TT
/// parameters). Requests are spread over `threads` worker threads like [`run_grid`]'s cells, and
/// the result is in request order and independent of `threads`. `progress` receives one line
/// per request.
///
/// Errors on `fraction` outside (0, 1], no request, an empty block set or a block repeated in
/// one, a request repeated, `threads == 0`; on arms that do not compress the same dense
/// parameters, or an allocated arm with more TT parameters than the uniform one; and passes on
/// the first error (in request order) of `build` or the evaluator.
pub fn run_budget<R, M, B>(
    evaluator: &Evaluator<'_, R>,
    requests: &[(Method, Vec<usize>)],
    fraction: f64,
    build: B,
    threads: usize,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Vec<BudgetCell>>
where
    R: LanguageModel + Sync + ?Sized,
    M: LanguageModel,
    B: Fn(Method, &[usize], f64) -> Result<BudgetArms<M>> + Sync,
{
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::invalid_arg(
            "fraction",
            format!("{fraction} is not in (0, 1]"),
        ));
    }
    if threads == 0 {
        return Err(Error::invalid_arg("threads", "must be at least 1"));
    }
    if requests.is_empty() {
        return Err(Error::invalid_arg("requests", "no budget request given"));
    }
    let reqs: Vec<(Method, Vec<usize>)> = requests.iter().map(|(m, b)| (*m, sorted(b))).collect();
    for (i, (m, blocks)) in reqs.iter().enumerate() {
        if blocks.is_empty() {
            return Err(Error::invalid_arg(
                "requests",
                format!("request {i} ({m}) has no block"),
            ));
        }
        if blocks.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::invalid_arg(
                "requests",
                format!("request {i} ({m}) repeats a block: {blocks:?}"),
            ));
        }
        if reqs[..i].iter().any(|r| r.0 == *m && r.1 == *blocks) {
            return Err(Error::invalid_arg(
                "requests",
                format!("request {i} ({m}, blocks {blocks:?}) is repeated"),
            ));
        }
    }
    let total = reqs.len();
    parallel_map(total, threads, |i| {
        let (method, blocks) = (reqs[i].0, &reqs[i].1);
        let label = plain_label(blocks);
        progress(&format!(
            "[{}/{total}] budget {:.0}%: {method}, blocks {label}",
            i + 1,
            100.0 * fraction
        ));
        let [(um, uinfo, uenergy), (am, ainfo, aenergy)] = build(method, blocks, fraction)?;
        let context = format!("budget build ({method}, blocks {label})");
        if uinfo.ffn_params_dense != ainfo.ffn_params_dense {
            return Err(Error::invalid_arg(
                context,
                format!(
                    "the arms compress different dense parameter counts: uniform {}, \
                     allocated {}",
                    uinfo.ffn_params_dense, ainfo.ffn_params_dense
                ),
            ));
        }
        if ainfo.ffn_params_tt > uinfo.ffn_params_tt {
            return Err(Error::invalid_arg(
                context,
                format!(
                    "the allocated arm uses {} TT parameters, more than the uniform arm's {}",
                    ainfo.ffn_params_tt, uinfo.ffn_params_tt
                ),
            ));
        }
        let uniform = BudgetArm {
            metrics: evaluator.evaluate(&um)?,
            compression: uinfo,
            discarded_energy: uenergy,
        };
        let allocated = BudgetArm {
            metrics: evaluator.evaluate(&am)?,
            compression: ainfo,
            discarded_energy: aenergy,
        };
        Ok(BudgetCell {
            method,
            blocks: blocks.clone(),
            fraction,
            budget_params: uniform.compression.ffn_params_tt,
            uniform,
            allocated,
        })
    })
}

/// Indices joined by `+`, without the `all` shorthand (for labels with no block count).
fn plain_label(blocks: &[usize]) -> String {
    blocks
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("+")
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

#[cfg(test)]
mod settings_tests {
    use super::*;

    /// The shipped settings pass the checks `run_settings` applies (the pairs repeat a bond
    /// across their two blocks, which a grid's bond list may not).
    #[test]
    fn seed_settings_pass_validation() {
        for s in SEED_SETTINGS.iter() {
            assert_eq!(s.blocks.len(), s.bonds.len(), "{}", s.id);
            validate_block_sets(&[s.blocks.to_vec()], usize::MAX).unwrap();
            validate_bond_values(s.bonds).unwrap();
        }
        assert!(validate_bonds(&[30, 30]).is_err());
    }
}

//! Findings that hold across trained models: the same sweep on N models (N training seeds of one
//! profile, or N checkpoints), and every verdict stated across them — each model's effect and
//! outcome, the mean effect ± its standard error across models, and "supported in k of N".
//!
//! The aggregation is generic over the verdicts: it matches them by [`Verdict::id`], so every
//! verdict [`crate::study::report::all_verdicts`] draws is replicated, including ones added later.
//!
//! ```
//! use succulm::study::replicate::aggregate;
//! use succulm::study::report::verdict::{Outcome, Verdict};
//! let v = |outcome, effect| Verdict {
//!     id: "claim".into(), claim: "a claim".into(), quote: String::new(), operationalisation: String::new(),
//!     outcome, evidence: String::new(), effect: Some(effect), effect_unit: "nats".into(),
//! };
//! let models = vec![
//!     ("a".to_string(), vec![v(Outcome::Supported, 1.0)]),
//!     ("b".to_string(), vec![v(Outcome::Supported, 3.0)]),
//!     ("c".to_string(), vec![v(Outcome::NotSupported, -1.0)]),
//! ];
//! let r = &aggregate(&models).unwrap()[0];
//! assert_eq!((r.supported, r.models), (2, 3));
//! assert_eq!(r.mean_effect, Some(1.0));
//! assert!((r.se_effect.unwrap() - 2.0 / 3f64.sqrt()).abs() < 1e-12);
//! assert_eq!(r.summary(), "supported in 2 of 3 models");
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::model::{Model, ModelConfig};
use crate::nn::train::{EpochReport, TrainConfig, Trainer};
use crate::study::report::verdict::{Outcome, Verdict};
use crate::study::setup::{Setup, StudyData, SweepOptions, SweepOutput};
use crate::study::shard::{self, Shard};
use crate::study::sweep::{self, SweepReport};
use crate::text::data::Dataset;
use crate::text::vocab::Vocab;

/// One model's sweep, labelled (`"seed 43"`, a checkpoint's path).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaReport {
    /// Which model.
    pub label: String,
    /// Its sweep.
    pub report: SweepReport,
}

/// One model's reading of a claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEffect {
    /// Which model.
    pub label: String,
    /// Its outcome (`None`: the model's sweep has no such verdict).
    pub outcome: Option<Outcome>,
    /// Its signed effect (positive in the claim's direction), when measured.
    pub effect: Option<f64>,
}

/// A claim's verdict across models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicatedVerdict {
    /// The verdict's stable id.
    pub id: String,
    /// The claim (the first model's wording).
    pub claim: String,
    /// What the effect measures.
    pub effect_unit: String,
    /// Every model, in order.
    pub per_model: Vec<ModelEffect>,
    /// Number of models.
    pub models: usize,
    /// Models whose verdict is SUPPORTED.
    pub supported: usize,
    /// Models whose verdict is NOT SUPPORTED.
    pub not_supported: usize,
    /// Models whose verdict is INCONCLUSIVE or missing.
    pub inconclusive: usize,
    /// Mean of the finite per-model effects (`None` when there is none).
    pub mean_effect: Option<f64>,
    /// Their standard error across models, `sd / sqrt(n)` with the sample standard deviation
    /// (`None` with fewer than two effects).
    pub se_effect: Option<f64>,
    /// How many models the mean is over.
    pub effects: usize,
}

impl ReplicatedVerdict {
    /// `"supported in k of N models"`.
    pub fn summary(&self) -> String {
        format!("supported in {} of {} models", self.supported, self.models)
    }

    /// The mean effect ± SE as text (`"0.412 ± 0.051"`, `"-"` when not measured).
    pub fn effect_text(&self, prec: usize) -> String {
        match (self.mean_effect, self.se_effect) {
            (Some(m), Some(se)) => format!("{m:.prec$} ± {se:.prec$}"),
            (Some(m), None) => format!("{m:.prec$}"),
            _ => "-".into(),
        }
    }
}

/// Aggregates each model's verdicts (`(label, verdicts)`, in model order) by verdict id, in the
/// order the ids first appear. A model without some verdict counts as inconclusive for it.
///
/// Errors on no model, an empty or repeated label, or a verdict id repeated within one model.
pub fn aggregate(models: &[(String, Vec<Verdict>)]) -> Result<Vec<ReplicatedVerdict>> {
    if models.is_empty() {
        return Err(Error::invalid_arg("models", "no model to aggregate"));
    }
    for (i, (label, verdicts)) in models.iter().enumerate() {
        if label.trim().is_empty() {
            return Err(Error::invalid_arg(
                "models",
                format!("model {i} has an empty label"),
            ));
        }
        if models[..i].iter().any(|(l, _)| l == label) {
            return Err(Error::invalid_arg(
                "models",
                format!("label {label:?} repeated"),
            ));
        }
        for (j, v) in verdicts.iter().enumerate() {
            if verdicts[..j].iter().any(|w| w.id == v.id) {
                return Err(Error::invalid_arg(
                    "models",
                    format!("model {label:?} has verdict {:?} twice", v.id),
                ));
            }
        }
    }
    let mut ids: Vec<&Verdict> = Vec::new();
    for (_, verdicts) in models {
        for v in verdicts {
            if !ids.iter().any(|w| w.id == v.id) {
                ids.push(v);
            }
        }
    }
    let n = models.len();
    Ok(ids
        .into_iter()
        .map(|first| {
            let per_model: Vec<ModelEffect> = models
                .iter()
                .map(|(label, verdicts)| {
                    let v = verdicts.iter().find(|v| v.id == first.id);
                    ModelEffect {
                        label: label.clone(),
                        outcome: v.map(|v| v.outcome),
                        effect: v.and_then(|v| v.effect).filter(|e| e.is_finite()),
                    }
                })
                .collect();
            let count = |o: Outcome| per_model.iter().filter(|m| m.outcome == Some(o)).count();
            let supported = count(Outcome::Supported);
            let not_supported = count(Outcome::NotSupported);
            let effects: Vec<f64> = per_model.iter().filter_map(|m| m.effect).collect();
            let (mean, se) = mean_se(&effects);
            ReplicatedVerdict {
                id: first.id.clone(),
                claim: first.claim.clone(),
                effect_unit: first.effect_unit.clone(),
                models: n,
                supported,
                not_supported,
                inconclusive: n - supported - not_supported,
                mean_effect: mean,
                se_effect: se,
                effects: effects.len(),
                per_model,
            }
        })
        .collect())
}

/// Mean and standard error (`sd / sqrt(n)`, sample sd) of `x`; `None` for an empty `x`, and an
/// SE of `None` with fewer than two values.
pub fn mean_se(x: &[f64]) -> (Option<f64>, Option<f64>) {
    if x.is_empty() {
        return (None, None);
    }
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    if x.len() < 2 {
        return (Some(mean), None);
    }
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (Some(mean), Some((var / n).sqrt()))
}

/// [`aggregate`] over every verdict of each model's sweep ([`crate::study::report::all_verdicts`]).
pub fn aggregate_reports(reports: &[ReplicaReport]) -> Result<Vec<ReplicatedVerdict>> {
    let models: Vec<(String, Vec<Verdict>)> = reports
        .iter()
        .map(|r| {
            (
                r.label.clone(),
                crate::study::report::all_verdicts(&r.report),
            )
        })
        .collect();
    aggregate(&models)
}

fn outcome_short(o: Option<Outcome>) -> &'static str {
    match o {
        Some(Outcome::Supported) => "S",
        Some(Outcome::NotSupported) => "N",
        Some(Outcome::Inconclusive) => "I",
        None => "-",
    }
}

/// The replicated verdicts as text: per claim its summary ("supported in k of N models", with
/// the not-supported and inconclusive counts), the mean effect ± SE across models and what it
/// measures, and each model's outcome (S/N/I) and effect.
pub fn format_replicated(verdicts: &[ReplicatedVerdict]) -> String {
    let mut s = String::new();
    for (i, v) in verdicts.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}. \"{}\": {} ({} not supported, {} inconclusive)",
            i + 1,
            v.claim,
            v.summary(),
            v.not_supported,
            v.inconclusive
        );
        let _ = writeln!(
            s,
            "   effect across {} models: {} ({})",
            v.effects,
            v.effect_text(4),
            v.effect_unit
        );
        let per: Vec<String> = v
            .per_model
            .iter()
            .map(|m| {
                format!(
                    "{} {} {}",
                    m.label,
                    outcome_short(m.outcome),
                    m.effect.map_or("-".into(), |e| format!("{e:.4}"))
                )
            })
            .collect();
        let _ = writeln!(s, "   per model: {}", per.join("; "));
    }
    s
}

/// The replicated verdicts as a Markdown table (claim, k of N, mean ± SE, per-model effects).
pub fn markdown_table(verdicts: &[ReplicatedVerdict]) -> String {
    let mut s = String::from(
        "| claim | supported | not supported | inconclusive | effect, mean ± SE | per model (outcome effect) |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    for v in verdicts {
        let per: Vec<String> = v
            .per_model
            .iter()
            .map(|m| {
                format!(
                    "{} {}",
                    outcome_short(m.outcome),
                    m.effect.map_or("-".into(), |e| format!("{e:.3}"))
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} of {} | {} | {} | {} | {} |",
            v.claim,
            v.supported,
            v.models,
            v.not_supported,
            v.inconclusive,
            v.effect_text(3),
            per.join(", ")
        );
    }
    s
}

/// Everything a replication run found: each model's sweep and the verdicts across them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replication {
    /// Each model's sweep, in model order.
    pub models: Vec<ReplicaReport>,
    /// The verdicts across models.
    pub verdicts: Vec<ReplicatedVerdict>,
}

impl Replication {
    /// Aggregates `models` ([`aggregate_reports`]).
    pub fn new(models: Vec<ReplicaReport>) -> Result<Self> {
        let verdicts = aggregate_reports(&models)?;
        Ok(Replication { models, verdicts })
    }

    /// Writes `replication.json`, `replication.txt` ([`format_replicated`]) and
    /// `replication.md` ([`markdown_table`]) into `dir` (created if missing), as one set
    /// ([`crate::fs::write_set_atomic`]).
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<Vec<std::path::PathBuf>> {
        let json = crate::fs::to_json_pretty(self, "replication")?;
        crate::fs::write_text_set(
            dir.as_ref(),
            &[
                ("replication.json", json),
                ("replication.txt", format_replicated(&self.verdicts)),
                ("replication.md", markdown_table(&self.verdicts)),
            ],
        )
    }
}

/// What one shard of a replication computed: the sweeps of its models (model `i` belongs to
/// shard `i mod N`), and what made the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaPart {
    /// Which shard.
    pub shard: Shard,
    /// Models of the whole run.
    pub models_total: usize,
    /// What made the run ([`ReplicateOptions::describe`]): every part of one run has the same.
    pub run: serde_json::Value,
    /// The model indices of `models`, ascending.
    pub indices: Vec<usize>,
    /// Their sweeps.
    pub models: Vec<ReplicaReport>,
}

impl ReplicaPart {
    /// Writes the part atomically as JSON (its directory created if missing).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let json = crate::fs::to_json_pretty(self, "part")?;
        crate::fs::write_atomic_creating_dir(path.as_ref(), json.as_bytes())
    }

    /// Reads a part written by [`ReplicaPart::write`].
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        crate::fs::read_json(path.as_ref())
    }
}

/// The models of every part, in model order; the parts may come in any order, and errors name a
/// part `part K/N` ([`merge_replica_files`] names its file).
///
/// The model count a part claims is checked against the models it holds before anything of
/// that size is allocated. Errors on no part; an invalid shard; parts of different shard
/// counts; a shard given twice or missing; a part whose indices are not its shard's share of
/// `models_total` or do not match its models; parts of different runs (model count or run
/// description: the error names the first field that differs, and both parts).
pub fn merge_replica_parts(parts: Vec<ReplicaPart>) -> Result<Vec<ReplicaReport>> {
    merge_named(
        parts
            .into_iter()
            .map(|p| (shard::memory_name(p.shard), p))
            .collect(),
    )
}

/// [`merge_replica_parts`] of the part files at `paths` ([`ReplicaPart::read`]); errors name the
/// file and the field at fault.
pub fn merge_replica_files<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<ReplicaReport>> {
    merge_named(
        paths
            .iter()
            .map(|p| Ok((p.as_ref().to_path_buf(), ReplicaPart::read(p)?)))
            .collect::<Result<_>>()?,
    )
}

/// [`merge_replica_parts`] of parts named (in errors) by their files.
fn merge_named(mut parts: Vec<(PathBuf, ReplicaPart)>) -> Result<Vec<ReplicaReport>> {
    let shards: Vec<(&Path, Shard)> = parts.iter().map(|(n, p)| (n.as_path(), p.shard)).collect();
    shard::check_shards(&shards)?;
    parts.sort_by_key(|(_, p)| p.shard.index);
    for (name, p) in &parts {
        shard::check_share(
            name,
            p.shard,
            "models_total",
            p.models_total,
            &p.indices,
            p.models.len(),
            "models",
        )?;
    }
    let description =
        |p: &ReplicaPart| serde_json::json!({ "models_total": p.models_total, "run": p.run });
    let (first_name, first) = &parts[0];
    let (base, total) = (description(first), first.models_total);
    for (name, p) in &parts[1..] {
        shard::check_same_run(name, &description(p), first_name, &base)?;
    }
    // Every part holds its shard's share of the same total: the total is what the parts hold.
    Ok(shard::reassemble(
        total,
        parts.into_iter().map(|(_, p)| (p.indices, p.models)),
    ))
}

/// Trains one model of `profile` per seed (the model's initialisation and the batches' shuffling
/// both from that seed, the rest of `config` as given), `threads` models at a time, each on one
/// thread, on `data` (training rows, validation rows). `progress` gets `(model index, its epoch
/// reports)` when a model is done. Returns the models in seed order.
pub fn train_models(
    profile: &str,
    vocab: &Vocab,
    data: (&Dataset, &Dataset),
    config: &TrainConfig,
    seeds: &[u64],
    threads: usize,
    progress: &(dyn Fn(usize, &[EpochReport]) + Sync),
) -> Result<Vec<Model>> {
    if threads == 0 {
        return Err(Error::invalid_arg("threads", "must be at least 1"));
    }
    config.validate()?;
    let (train, valid) = data;
    sweep::parallel_map(seeds.len(), threads, |i| {
        let mut model = Model::from_profile(profile, vocab, seeds[i])?;
        let mut trainer = Trainer::new(TrainConfig {
            seed: seeds[i],
            threads: 1,
            ..config.clone()
        })?;
        let reports = trainer.fit(&mut model, train, valid, |_| {})?;
        progress(i, &reports);
        Ok(model)
    })
}

/// Sweeps `model` as `layer_sweep` does, through the one study setup ([`Setup`] of the model on
/// `data` with `options`): the grid, then the seed's settings the grid lacks
/// ([`sweep::SEED_SETTINGS`]), scored with the novel word-link rate (the training rows), so
/// every verdict `layer_sweep` draws can be drawn for each model.
pub fn sweep_model(
    model: &Model,
    data: &StudyData,
    options: &SweepOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<SweepReport> {
    Setup::new(model, data, options, progress)?.run(progress)
}

/// What a replication runs: `replicate`'s flags.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicateOptions {
    /// Models to train when no checkpoint is given (default 5).
    pub models: usize,
    /// The profile trained (default `upper_middle`).
    pub profile: String,
    /// Training epochs per model (default 60, the shipped recipe).
    pub epochs: usize,
    /// The first training seed; model `i` uses `seed + i` (default 42).
    pub seed: u64,
    /// Checkpoints to sweep instead of training (default none).
    pub checkpoints: Vec<PathBuf>,
    /// Every model's sweep, with the same sampling seeds for each (default: `layer_sweep`'s
    /// defaults with 10 samples per probe).
    pub sweep: SweepOptions,
}

impl Default for ReplicateOptions {
    fn default() -> Self {
        ReplicateOptions {
            models: 5,
            profile: "upper_middle".into(),
            epochs: 60,
            seed: 42,
            checkpoints: Vec::new(),
            sweep: SweepOptions {
                samples: 10,
                ..SweepOptions::default()
            },
        }
    }
}

impl ReplicateOptions {
    /// The most models of a replication (trained or given as checkpoints): 10,000.
    pub const MAX_MODELS: usize = 10_000;

    /// Checks what can be checked before any model is trained or loaded: the sweep's options
    /// ([`SweepOptions::validate`]); without checkpoints, `models` in
    /// `1..=`[`Self::MAX_MODELS`], `epochs` in `1..=`[`TrainConfig::MAX_EPOCHS`] and the
    /// training seeds `seed .. seed + models` within `u64`; with checkpoints, at most
    /// [`Self::MAX_MODELS`] of them, none empty, no file given twice (the same file under two
    /// names counts as twice).
    pub fn validate(&self) -> Result<()> {
        self.sweep.validate()?;
        if self.checkpoints.is_empty() {
            Error::check_count_in("models", self.models, Self::MAX_MODELS)?;
            Error::check_count_in("epochs", self.epochs, TrainConfig::MAX_EPOCHS)?;
            let last = self.models as u64 - 1;
            if self.seed.checked_add(last).is_none() {
                return Err(Error::invalid_arg(
                    "seed",
                    format!(
                        "{} models train with seeds {} + 0..{}, past the largest seed {}: give a seed of at most {}",
                        self.models,
                        self.seed,
                        self.models,
                        u64::MAX,
                        u64::MAX - last
                    ),
                ));
            }
            return Ok(());
        }
        Error::check_count_in("checkpoints", self.checkpoints.len(), Self::MAX_MODELS)?;
        let mut seen: Vec<(PathBuf, &Path)> = Vec::with_capacity(self.checkpoints.len());
        for (i, p) in self.checkpoints.iter().enumerate() {
            if p.as_os_str().is_empty() {
                return Err(Error::invalid_arg(
                    "checkpoints",
                    format!(
                        "entry {} of {} is an empty path",
                        i + 1,
                        self.checkpoints.len()
                    ),
                ));
            }
            let id = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            if let Some((_, q)) = seen.iter().find(|(s, _)| *s == id) {
                return Err(Error::invalid_arg(
                    "checkpoints",
                    format!(
                        "{} and {} are the same file (each model once)",
                        q.display(),
                        p.display()
                    ),
                ));
            }
            seen.push((id, p));
        }
        Ok(())
    }

    /// The replication these options run, as JSON: the checkpoints swept, or the models trained
    /// (count, profile, epochs, first seed), and every model's sweep
    /// ([`SweepOptions::describe`]). Parts of one run carry it ([`ReplicaPart::run`]); their
    /// merge refuses parts whose descriptions differ.
    ///
    /// ```
    /// use succulm::study::replicate::ReplicateOptions;
    /// let o = ReplicateOptions::default();
    /// let longer = ReplicateOptions { epochs: 61, ..o.clone() };
    /// assert_ne!(o.describe(), longer.describe());
    /// assert_eq!(o.describe()["epochs"], 60);
    /// assert_eq!(o.describe()["sweep"]["samples"], 10);
    /// ```
    pub fn describe(&self) -> serde_json::Value {
        let sweep = self.sweep.describe();
        if self.checkpoints.is_empty() {
            serde_json::json!({
                "models": self.models,
                "profile": self.profile,
                "epochs": self.epochs,
                "seed": self.seed,
                "sweep": sweep,
            })
        } else {
            let paths: Vec<String> = self
                .checkpoints
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            serde_json::json!({ "checkpoints": paths, "sweep": sweep })
        }
    }

    /// Models of the whole run: the checkpoints given, else `models`.
    pub fn total(&self) -> usize {
        if self.checkpoints.is_empty() {
            self.models
        } else {
            self.checkpoints.len()
        }
    }
}

/// `"1m05s"` left of `total` jobs after `done` in `elapsed` seconds (`"?"` before the first).
fn eta(elapsed: f64, done: usize, total: usize) -> String {
    if done == 0 {
        return "?".into();
    }
    let left = elapsed / done as f64 * total.saturating_sub(done) as f64;
    format!("{}m{:02}s", (left / 60.0) as u64, (left % 60.0) as u64)
}

/// One shard of a replication (the models `i` with `i mod N = K-1`; [`Shard::WHOLE`] for all):
/// trains its models of `options.profile` (training seeds `seed + i`, the shipped recipe
/// otherwise; `options.sweep.threads` at a time) or loads its checkpoints (whose vocabulary must
/// be the fixtures'), sweeps each with [`sweep_model`] on the fixtures' data (one split for
/// every model) and writes each model's sweep files to `out/model_I/` (`I` = `i + 1`). Returns
/// the part; [`merge_replica_parts`] puts the parts together. `progress` receives lines on
/// training and on every cell (with the run's ETA).
///
/// Errors on no model, models with different block counts, a checkpoint whose vocabulary is not
/// the fixtures', and as loading, training, sweeping and writing do.
pub fn run_shard(
    fixtures: impl AsRef<Path>,
    options: &ReplicateOptions,
    shard: Shard,
    out: impl AsRef<Path>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<ReplicaPart> {
    let (fixtures, out) = (fixtures.as_ref(), out.as_ref());
    let shard = Shard::new(shard.index, shard.count)?;
    options.validate()?;
    let total = options.total();
    let started = Instant::now();
    let vocab = StudyData::fixture_vocab(fixtures)?;
    if options.checkpoints.is_empty() {
        // The block sets, before any training.
        let n_blocks = ModelConfig::profile(&options.profile, vocab.len())?.n_layers;
        options.sweep.block_sets(n_blocks)?;
    }
    let mine = shard.owned(total);
    let threads = options.sweep.threads;

    // The models: trained `threads` at a time, or loaded; and the one split of every sweep.
    let (models, labels, data) = if options.checkpoints.is_empty() {
        let data = StudyData::for_profile(fixtures, &options.profile)?;
        let seeds: Vec<u64> = mine.iter().map(|&i| options.seed + i as u64).collect();
        let done = AtomicUsize::new(0);
        progress(&format!(
            "training {} {} models ({} epochs, seeds {:?}), {} at a time",
            seeds.len(),
            options.profile,
            options.epochs,
            seeds,
            threads
        ));
        let config = TrainConfig {
            epochs: options.epochs,
            ..TrainConfig::default()
        };
        let models = train_models(
            &options.profile,
            &data.vocab,
            (&data.train, &data.valid),
            &config,
            &seeds,
            threads,
            &|i, reports| {
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                let el = started.elapsed().as_secs_f64();
                progress(&format!(
                    "models trained {d}/{}: seed {}, valid loss {} ({el:.0} s; training ETA {})",
                    seeds.len(),
                    seeds[i],
                    reports
                        .last()
                        .and_then(|r| r.val_loss)
                        .map_or("-".into(), |v| format!("{v:.4}")),
                    eta(el, d, seeds.len())
                ));
            },
        )?;
        let labels = seeds.iter().map(|s| format!("seed {s}")).collect();
        (models, labels, data)
    } else {
        let mut models = Vec::new();
        let mut labels = Vec::new();
        for &i in &mine {
            let p = &options.checkpoints[i];
            progress(&format!("loading {}", p.display()));
            let (m, v) = Model::load(p)?;
            if v.words() != vocab.words() {
                return Err(Error::invalid_arg(
                    p.display().to_string(),
                    "the checkpoint's vocabulary is not the fixtures'",
                ));
            }
            models.push(m);
            labels.push(p.display().to_string());
        }
        // One split for every sweep (the profile's max_len; checkpoints share it).
        let max_len = models
            .first()
            .map_or(crate::nn::model::PROFILE_MAX_LEN, |m| m.config().max_len);
        let data = StudyData::load(fixtures, vocab, max_len)?;
        (models, labels, data)
    };

    let n_blocks = models.first().map_or(0, |m| m.config().n_layers);
    if let Some((m, label)) = models
        .iter()
        .zip(&labels)
        .find(|(m, _)| m.config().n_layers != n_blocks)
    {
        return Err(Error::invalid_arg(
            label.clone(),
            format!(
                "has {} blocks, the first model {n_blocks}",
                m.config().n_layers
            ),
        ));
    }
    let cells_done = AtomicUsize::new(0);
    let sweeps_started = Instant::now();
    let mut reports = Vec::with_capacity(models.len());
    let mut all_cells = 0;
    for (j, (model, label)) in models.iter().zip(&labels).enumerate() {
        let setup = Setup::new(model, &data, &options.sweep, progress)?;
        if j == 0 {
            // The grid's cells and the seed's settings (those that fit the model's blocks).
            let jobs = setup.jobs()?;
            all_cells = (jobs.cells_total() + jobs.settings_total()) * models.len();
        }
        let line = |line: &str| {
            if line.starts_with('[') {
                let d = cells_done.fetch_add(1, Ordering::Relaxed) + 1;
                let el = sweeps_started.elapsed().as_secs_f64();
                progress(&format!(
                    "model {}/{} ({label}) {line}; cells {d}/{all_cells}, ETA {}",
                    j + 1,
                    models.len(),
                    eta(el, d.saturating_sub(1), all_cells)
                ));
            }
        };
        let report = setup.run(&line)?;
        SweepOutput::new(report.clone(), None, &options.sweep)
            .write(out.join(format!("model_{}", mine[j] + 1)))?;
        reports.push(ReplicaReport {
            label: label.clone(),
            report,
        });
    }
    progress(&format!(
        "{} models swept ({all_cells} cells) in {:.0} s; total {:.0} s",
        reports.len(),
        sweeps_started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
    Ok(ReplicaPart {
        shard,
        models_total: total,
        run: options.describe(),
        indices: mine,
        models: reports,
    })
}

//! One study setup: the wiring every study of a trained model shares, written once — load the
//! checkpoint, the probes (the seed's in-training prompts pinned to training), the standard
//! split, the hidden words' ids, the evaluator, the grid, the options, and the report.
//!
//! - [`StudyData`]: what a study reads besides the model (vocabulary, probes, split, hidden ids),
//!   and the one way to build an [`Evaluator`] on it ([`StudyData::evaluator`], with the
//!   training rows for the novel word-link rate).
//! - [`SweepOptions`]: a sweep's options (`layer_sweep`'s flags, the Python `layer_sweep`'s
//!   arguments), with their defaults.
//! - [`Study`]: a model, its data and the options, validated; [`Study::load`] reads them from a
//!   checkpoint and the fixtures directory.
//! - [`Setup`]: built once from a model, its data and the options: the evaluator, the block sets,
//!   the data-aware methods' calibration and the distillation teacher. It runs the seed's
//!   experiments ([`Setup::experiments`]) and the sweep ([`Setup::sweep`]: the grid and the seed's
//!   settings in one loop, then the budget), whole or one [`Shard`] of it.
//! - [`SweepOutput`]: a finished sweep as printed ([`SweepOutput::text`]) and written
//!   ([`SweepOutput::write`]); [`SweepOutput::merge`] makes it from a sharded run's parts.
//!
//! `examples/layer_sweep.rs`, the Python `layer_sweep`, [`crate::study::replicate`] and
//! [`crate::study::trap`] all go through here, so the same options give the same files.
//!
//! ```no_run
//! use succulm::study::setup::{Study, SweepOptions, SweepOutput};
//! use succulm::study::shard::Shard;
//!
//! let options = SweepOptions {
//!     bonds: vec![20],
//!     samples: 2,
//!     ..SweepOptions::default()
//! };
//! let study = Study::load("fixtures/succulm_upper_middle.json", "fixtures", options)?;
//! let setup = study.setup(&|line: &str| eprintln!("{line}"))?;
//! let part = setup.sweep(Shard::WHOLE, &|line: &str| eprintln!("{line}"))?;
//! let output = SweepOutput::new(part.report, None, study.options());
//! print!("{}", output.text());
//! output.write("target/layer_sweep")?;
//! # Ok::<(), succulm::Error>(())
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rand::{rngs::StdRng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::compress::calibration::{CalibrationMode, CalibrationRows};
use crate::error::{Error, Result};
use crate::nn::generate::{
    format_example, format_examples_side_by_side, model_example, GenerateConfig, LanguageModel,
    Sampling,
};
use crate::nn::model::{Model, ModelConfig};
use crate::nn::train::{fine_tune_tt, heal_distill, EpochReport, Teacher, TrainConfig};
use crate::study::eval::{hidden_ids, load_probes, Evaluator, SampleConfig};
use crate::study::report::html::{ExperimentRun, Experiments};
use crate::study::report::{self, verdict};
use crate::study::shard::{self, run_sweep_shard, Shard, SweepPart};
use crate::study::sweep::{
    self, CompressionInfo, Grid, HealKind, Method, SweepCalibration, SweepJobs, SweepReport,
    DEFAULT_BONDS, SEED_EXPERIMENTS, SEED_SETTINGS,
};
use crate::text::data::{load_corpus, standard_split, Dataset};
use crate::text::probes::{Probe, ProbeGroup};
use crate::text::vocab::Vocab;

/// The probes' file in a fixtures directory.
pub const PROBES_FILE: &str = "succulm_probes.json";
/// The vocabulary's embeddings file in a fixtures directory.
pub const EMBEDDINGS_FILE: &str = "succulm_embeddings.json";
/// The hidden words' file in a fixtures directory.
pub const HIDDEN_WORDS_FILE: &str = "succulm_hidden_words.json";

/// What a study reads besides the model: the vocabulary (with its hidden words), the probes, the
/// standard split (the seed's in-training prompts pinned to training) and the hidden words' ids.
#[derive(Debug, Clone)]
pub struct StudyData {
    /// The vocabulary.
    pub vocab: Vocab,
    /// The probes.
    pub probes: Vec<Probe>,
    /// The training rows (the word links the novel-link rate checks answers against).
    pub train: Dataset,
    /// The validation rows (scored).
    pub valid: Dataset,
    /// The hidden words' ids.
    pub hidden: Vec<u32>,
}

impl StudyData {
    /// The standard split of `pairs` for `max_len` with the probes of the seed's in-training
    /// group pinned to training ([`standard_split`]), and the hidden words' ids.
    ///
    /// Errors as [`standard_split`] and [`hidden_ids`].
    pub fn new(
        vocab: Vocab,
        probes: Vec<Probe>,
        pairs: &[(String, String)],
        max_len: usize,
    ) -> Result<Self> {
        let pinned: Vec<&str> = probes
            .iter()
            .filter(|p| p.group == ProbeGroup::SeedInTraining)
            .map(|p| p.prompt.as_str())
            .collect();
        let (train, valid) = standard_split(&vocab, pairs, &pinned, max_len)?;
        let hidden = hidden_ids(&vocab)?;
        Ok(StudyData {
            vocab,
            probes,
            train,
            valid,
            hidden,
        })
    }

    /// [`StudyData::new`] with the probes ([`PROBES_FILE`]) and the corpus ([`load_corpus`]) of
    /// the `fixtures` directory.
    pub fn load(fixtures: impl AsRef<Path>, vocab: Vocab, max_len: usize) -> Result<Self> {
        let dir = fixtures.as_ref();
        let probes = load_probes(dir.join(PROBES_FILE))?;
        let pairs = load_corpus(dir)?;
        StudyData::new(vocab, probes, &pairs, max_len)
    }

    /// The fixtures' vocabulary: [`EMBEDDINGS_FILE`] with [`HIDDEN_WORDS_FILE`].
    pub fn fixture_vocab(fixtures: impl AsRef<Path>) -> Result<Vocab> {
        let dir = fixtures.as_ref();
        Vocab::load_with_hidden(dir.join(EMBEDDINGS_FILE), dir.join(HIDDEN_WORDS_FILE))
    }

    /// [`StudyData::load`] for models of `profile` to be trained: the fixtures' vocabulary, the
    /// profile's `max_len`.
    pub fn for_profile(fixtures: impl AsRef<Path>, profile: &str) -> Result<Self> {
        let dir = fixtures.as_ref();
        let vocab = StudyData::fixture_vocab(dir)?;
        let max_len = ModelConfig::profile(profile, vocab.len())?.max_len;
        StudyData::load(dir, vocab, max_len)
    }

    /// The evaluator every study scores with: `model` as the reference, the validation rows,
    /// the probes, the hidden words, `sample`, and the training rows for the novel word-link
    /// rate.
    pub fn evaluator<'a, R: LanguageModel + ?Sized>(
        &'a self,
        model: &'a R,
        sample: SampleConfig,
    ) -> Result<Evaluator<'a, R>> {
        Evaluator::new(
            model,
            &self.vocab,
            self.valid.x(),
            self.valid.y(),
            &self.probes,
            &self.hidden,
            sample,
        )?
        .with_training_rows(self.train.x(), self.train.y())
    }
}

/// A sweep's options: `layer_sweep`'s flags and the Python `layer_sweep`'s arguments, with the
/// same defaults ([`SweepOptions::default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SweepOptions {
    /// The block sets in the sweep's syntax (`"0,1,all"`, `"0+1"`: see
    /// [`sweep::parse_block_sets`]); `None`: each block alone, then all together.
    pub blocks: Option<String>,
    /// The middle bonds (default [`DEFAULT_BONDS`]).
    pub bonds: Vec<usize>,
    /// The truncation methods (default `[weight]`). Plain TT-SVD, when listed, is swept first
    /// whatever the order given: the seed's claims and the comparison read it.
    pub methods: Vec<Method>,
    /// Sampled answers per probe and cell (default 20).
    pub samples: usize,
    /// Sampling temperature (default 0.6, the seed's).
    pub temperature: f32,
    /// The base seed of every random draw (default 42, the seed's).
    pub seed: u64,
    /// Cells scored in parallel (default 2).
    pub threads: usize,
    /// Healing epochs after compression (default 0: no healing).
    pub heal_epochs: usize,
    /// What healing minimises (default cross-entropy).
    pub heal: HealKind,
    /// How the data-aware methods calibrate several projections (default sequential).
    pub calibration: CalibrationMode,
    /// A parameter budget, as a fraction in (0, 1] of each block set's FFN parameters, spent
    /// twice per method (uniform vs allocated bonds); `None`: no budget comparison.
    pub budget: Option<f64>,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            blocks: None,
            bonds: DEFAULT_BONDS.to_vec(),
            methods: vec![Method::Weight],
            samples: 20,
            temperature: 0.6,
            seed: 42,
            threads: 2,
            heal_epochs: 0,
            heal: HealKind::CrossEntropy,
            calibration: CalibrationMode::Sequential,
            budget: None,
        }
    }
}

impl SweepOptions {
    /// The most healing epochs: 100,000 (every cell of the grid heals that long).
    pub const MAX_HEAL_EPOCHS: usize = 100_000;

    /// Checks what can be checked without a model: samples, threads and healing epochs within
    /// their ceilings ([`SampleConfig::MAX_SAMPLES_PER_PROBE`], [`TrainConfig::MAX_THREADS`],
    /// [`Self::MAX_HEAL_EPOCHS`]; at least one sample and one thread), a valid temperature,
    /// valid bonds, methods and budget fraction.
    pub fn validate(&self) -> Result<()> {
        Error::check_count_in("samples", self.samples, SampleConfig::MAX_SAMPLES_PER_PROBE)?;
        Error::check_count_in("threads", self.threads, TrainConfig::MAX_THREADS)?;
        // 0 healing epochs: no healing.
        Error::check_count_in(
            "heal_epochs",
            self.heal_epochs.max(1),
            Self::MAX_HEAL_EPOCHS,
        )?;
        Sampling::Temperature(self.temperature).validate()?;
        sweep::validate_bonds(&self.bonds)?;
        crate::compress::method::validate_methods(&self.methods)?;
        if let Some(f) = self.budget {
            if !(f > 0.0 && f <= 1.0) {
                return Err(Error::invalid_arg(
                    "budget",
                    format!("{f} is not in (0, 1]"),
                ));
            }
        }
        Ok(())
    }

    /// How answers are sampled.
    pub fn sample(&self) -> SampleConfig {
        SampleConfig {
            sampling: Sampling::Temperature(self.temperature),
            samples_per_probe: self.samples,
            seed: self.seed,
        }
    }

    /// The block sets for a model of `n_blocks` blocks.
    pub fn block_sets(&self, n_blocks: usize) -> Result<Vec<Vec<usize>>> {
        match &self.blocks {
            Some(s) => sweep::parse_block_sets(s, n_blocks),
            None => Ok(sweep::default_block_sets(n_blocks)),
        }
    }

    /// The methods in sweep order: plain TT-SVD first when listed, the others as given.
    pub fn ordered_methods(&self) -> Vec<Method> {
        let mut m = self.methods.clone();
        m.sort_by_key(|&m| m != Method::Weight);
        m
    }

    /// Whether calibration data is needed: a data-aware method or a budget.
    pub fn needs_calibration(&self) -> bool {
        self.budget.is_some() || self.methods.iter().any(|m| m.is_data_aware())
    }

    /// The sweep these options run, as JSON: every option but `threads` (which changes nothing
    /// in the results), the healing kind only when healing runs and the calibration mode only
    /// when calibration is needed. Parts of one run carry it ([`SweepPart::run`]); their merge
    /// refuses parts whose descriptions differ.
    ///
    /// ```
    /// use succulm::study::setup::SweepOptions;
    /// let o = SweepOptions::default();
    /// let more = SweepOptions { samples: 21, ..o.clone() };
    /// let wider = SweepOptions { threads: 8, ..o.clone() };
    /// assert_ne!(o.describe(), more.describe());
    /// assert_eq!(o.describe(), wider.describe());
    /// assert_eq!(o.describe()["samples"], 20);
    /// ```
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "blocks": self.blocks,
            "bonds": self.bonds,
            "methods": self.ordered_methods(),
            "samples": self.samples,
            "temperature": self.temperature,
            "seed": self.seed,
            "heal_epochs": self.heal_epochs,
            "heal": (self.heal_epochs > 0).then_some(self.heal),
            "calibration": self.needs_calibration().then_some(self.calibration),
            "budget": self.budget,
        })
    }
}

/// A model, its data and a sweep's options, validated: what `layer_sweep` and the Python
/// `layer_sweep` build from a checkpoint, the fixtures directory and their options.
#[derive(Debug, Clone)]
pub struct Study {
    model: Model,
    data: StudyData,
    options: SweepOptions,
}

impl Study {
    /// Loads the checkpoint (JSON or safetensors) and, with its vocabulary and `max_len`, the
    /// fixtures' probes and corpus ([`StudyData::load`]).
    ///
    /// Errors on a checkpoint or fixture that cannot be read, and as [`Study::new`].
    pub fn load(
        checkpoint: impl AsRef<Path>,
        fixtures: impl AsRef<Path>,
        options: SweepOptions,
    ) -> Result<Study> {
        options.validate()?;
        let (model, vocab) = Model::load(checkpoint.as_ref())?;
        // The block sets first: a bad `--blocks` is reported before the fixtures are read.
        options.block_sets(model.config().n_layers)?;
        let data = StudyData::load(fixtures, vocab, model.config().max_len)?;
        Study::new(model, data, options)
    }

    /// A study of `model` on `data` with `options`. Errors on invalid options
    /// ([`SweepOptions::validate`], block sets the model does not have) or a vocabulary that is
    /// not the model's size.
    pub fn new(model: Model, data: StudyData, options: SweepOptions) -> Result<Study> {
        options.validate()?;
        options.block_sets(model.config().n_layers)?;
        if data.vocab.len() != model.config().vocab_size {
            return Err(Error::invalid_arg(
                "vocab",
                format!(
                    "has {} words but the model has {} logits",
                    data.vocab.len(),
                    model.config().vocab_size
                ),
            ));
        }
        Ok(Study {
            model,
            data,
            options,
        })
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Its data.
    pub fn data(&self) -> &StudyData {
        &self.data
    }

    /// The options.
    pub fn options(&self) -> &SweepOptions {
        &self.options
    }

    /// The [`Setup`] of this study ([`Setup::new`]).
    pub fn setup(&self, progress: &dyn Fn(&str)) -> Result<Setup<'_>> {
        Setup::new(&self.model, &self.data, &self.options, progress)
    }
}

/// Everything a sweep of one model needs, built once: the evaluator, the block sets, the
/// calibration of the data-aware methods (on the training rows, never the scored validation
/// rows; output errors reported on the validation rows) and the distillation teacher.
pub struct Setup<'s> {
    model: &'s Model,
    data: &'s StudyData,
    options: SweepOptions,
    block_sets: Vec<Vec<usize>>,
    evaluator: Evaluator<'s, Model>,
    calibration: Option<SweepCalibration<'s>>,
    teacher: Option<Teacher>,
}

impl<'s> Setup<'s> {
    /// Builds the setup of `model` on `data` with `options` (methods in sweep order:
    /// [`SweepOptions::ordered_methods`]). Sets OpenBLAS to one thread per call
    /// (process-wide): the matrices are tiny, and the parallelism is over cells. `progress`
    /// receives a line when calibration data is collected.
    ///
    /// Errors on invalid options, block sets the model does not have, and as the evaluator,
    /// the calibration and the teacher do.
    pub fn new(
        model: &'s Model,
        data: &'s StudyData,
        options: &SweepOptions,
        progress: &dyn Fn(&str),
    ) -> Result<Setup<'s>> {
        options.validate()?;
        crate::tt::blas::set_num_threads(1);
        let block_sets = options.block_sets(model.config().n_layers)?;
        let options = SweepOptions {
            methods: options.ordered_methods(),
            ..options.clone()
        };
        let calibration = if options.needs_calibration() {
            let started = Instant::now();
            let rows = CalibrationRows {
                train: data.train.x(),
                validation: Some(data.valid.x()),
            };
            let c = SweepCalibration::collect(model, rows, options.calibration)?;
            progress(&format!(
                "calibration: {} ({:.2} s)",
                c.describe(),
                started.elapsed().as_secs_f64()
            ));
            Some(c)
        } else {
            None
        };
        let evaluator = data.evaluator(model, options.sample())?;
        let teacher = if options.heal_epochs > 0 && options.heal == HealKind::Distill {
            // The dense model's distributions on the training rows, computed once for every cell.
            Some(Teacher::new(model, &data.train, 1)?)
        } else {
            None
        };
        Ok(Setup {
            model,
            data,
            options,
            block_sets,
            evaluator,
            calibration,
            teacher,
        })
    }

    /// The options (methods in sweep order).
    pub fn options(&self) -> &SweepOptions {
        &self.options
    }

    /// The block sets swept (as given, unsorted).
    pub fn block_sets(&self) -> &[Vec<usize>] {
        &self.block_sets
    }

    /// The evaluator.
    pub fn evaluator(&self) -> &Evaluator<'s, Model> {
        &self.evaluator
    }

    /// The data-aware methods' calibration, when a data-aware method or a budget needs it.
    pub fn calibration(&self) -> Option<&SweepCalibration<'s>> {
        self.calibration.as_ref()
    }

    /// The grid (methods × block sets × bonds, on the option's threads).
    pub fn grid(&self) -> Grid<'_> {
        Grid {
            n_blocks: self.model.config().n_layers,
            methods: &self.options.methods,
            block_sets: &self.block_sets,
            bonds: &self.options.bonds,
            threads: self.options.threads,
        }
    }

    /// The sweep's jobs: the grid's cells and the seed's settings ([`SEED_SETTINGS`]) that fit
    /// the model.
    pub fn jobs(&self) -> Result<SweepJobs<'static>> {
        SweepJobs::new(&self.grid(), &SEED_SETTINGS)
    }

    /// A copy of the model with `blocks` compressed at `bonds` (one per block) by `method`
    /// ([`sweep::compress`] with this setup's calibration).
    pub fn compress(
        &self,
        method: Method,
        blocks: &[usize],
        bonds: &[usize],
    ) -> Result<(Model, CompressionInfo)> {
        sweep::compress(self.model, method, blocks, bonds, self.calibration.as_ref())
    }

    /// The seed's corruption experiments ([`SEED_EXPERIMENTS`], those whose blocks the model
    /// has): the dense model's answers to the seed's prompts and each experiment's, per method,
    /// at the options' temperature, the generator re-seeded with the options' seed before each
    /// model (as the seed does).
    pub fn experiments(&self) -> Result<Experiments> {
        let o = &self.options;
        let vocab = &self.data.vocab;
        let cfg = GenerateConfig::temperature(o.temperature);
        let mut rng = StdRng::seed_from_u64(o.seed);
        let mut record = Experiments {
            temperature: o.temperature,
            seed: o.seed,
            dense: model_example(self.model, vocab, &cfg, &mut rng)?,
            runs: Vec::new(),
        };
        let n_blocks = self.model.config().n_layers;
        for (title, blocks, bonds) in SEED_EXPERIMENTS {
            if blocks.iter().any(|&b| b >= n_blocks) {
                continue;
            }
            for &method in &o.methods {
                let (m, info) = self.compress(method, blocks, bonds)?;
                // The seed re-seeds before each group; each model_example shares one generator.
                let mut rng = StdRng::seed_from_u64(o.seed);
                record.runs.push(ExperimentRun {
                    title: title.to_string(),
                    blocks: blocks.to_vec(),
                    bonds: bonds.to_vec(),
                    method,
                    max_rel_error: info.max_rel_error(),
                    answers: model_example(&m, vocab, &cfg, &mut rng)?,
                });
            }
        }
        Ok(record)
    }

    /// The sweep, or one shard of it: the grid's cells and the seed's settings in one loop
    /// ([`run_sweep_shard`]: each list split round robin over the shards), healed when the
    /// options ask for it, then the budget comparison (its requests, method major then block
    /// set, split the same way). The part of [`Shard::WHOLE`] holds the whole report; the
    /// parts of `N` shards merge ([`SweepOutput::merge`]) into exactly that report.
    ///
    /// `progress` receives one line per cell, setting and budget request, per healing epoch,
    /// and a few lines on the run (warnings for long runs, the time taken).
    pub fn sweep(&self, shard: Shard, progress: &(dyn Fn(&str) + Sync)) -> Result<SweepPart> {
        let shard = Shard::new(shard.index, shard.count)?;
        let o = &self.options;
        let jobs = self.jobs()?;
        let cells = jobs.cells_total();
        let answers = cells * self.data.probes.len() * o.samples;
        if o.samples > 100 || o.heal_epochs > 50 {
            progress(&format!(
                "warning: {cells} cells × {} probes × {} samples = {answers} sampled answers{}; \
                 this may take a long time (progress is shown per cell and healing epoch)",
                self.data.probes.len(),
                o.samples,
                if o.heal_epochs > 0 {
                    format!(", and {} healing epochs per cell", o.heal_epochs)
                } else {
                    String::new()
                }
            ));
        }
        // Every healed job of this shard: its grid cells and its seed settings.
        let heal_total =
            o.heal_epochs * (shard.owned(cells).len() + shard.owned(jobs.settings_total()).len());
        let started = Instant::now();
        let epochs_done = AtomicUsize::new(0);
        let config = TrainConfig {
            epochs: o.heal_epochs,
            seed: o.seed,
            ..TrainConfig::default()
        };
        let heal = |m: &mut Model| -> Result<()> {
            // Per-epoch progress (cells heal concurrently, so the count is over all of them).
            let on_epoch = |r: &EpochReport| {
                let n = epochs_done.fetch_add(1, Ordering::Relaxed) + 1;
                let secs = started.elapsed().as_secs_f64();
                let eta = secs / n as f64 * heal_total.saturating_sub(n) as f64;
                progress(&format!(
                    "  healing: epoch {}/{} of a cell (train loss {:.3}); {n}/{heal_total} \
                     epochs of the run, ETA {eta:.0} s",
                    r.epoch, config.epochs, r.train_loss
                ));
            };
            let (train, valid) = (&self.data.train, &self.data.valid);
            match &self.teacher {
                Some(t) => heal_distill(m, train, valid, t, config.clone(), on_epoch).map(|_| ()),
                None => fine_tune_tt(m, train, valid, config.clone(), on_epoch).map(|_| ()),
            }
        };
        let mut part = run_sweep_shard(
            &self.evaluator,
            &self.grid(),
            &SEED_SETTINGS,
            shard,
            |method: Method, blocks: &[usize], bonds: &[usize]| {
                self.compress(method, blocks, bonds)
            },
            (o.heal_epochs > 0).then_some((o.heal, &heal)),
            progress,
        )?;
        part.report.calibration = self.calibration.as_ref().map(|c| c.describe());
        part.run = o.describe();
        if let (Some(fraction), Some(cal)) = (o.budget, self.calibration.as_ref()) {
            let all: Vec<(Method, Vec<usize>)> = o
                .methods
                .iter()
                .flat_map(|&m| self.block_sets.iter().map(move |s| (m, s.clone())))
                .collect();
            part.budget_total = all.len();
            part.budget_indices = shard.owned(all.len());
            let requests: Vec<(Method, Vec<usize>)> = part
                .budget_indices
                .iter()
                .map(|&i| all[i].clone())
                .collect();
            if !requests.is_empty() {
                part.report.budget = sweep::run_budget(
                    &self.evaluator,
                    &requests,
                    fraction,
                    |method: Method, blocks: &[usize], f: f64| {
                        sweep::budget_arms(self.model, method, blocks, f, cal)
                    },
                    o.threads,
                    progress,
                )?;
            }
        }
        progress(&format!(
            "sweep took {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(part)
    }

    /// The whole sweep's report ([`Setup::sweep`] of [`Shard::WHOLE`]).
    pub fn run(&self, progress: &(dyn Fn(&str) + Sync)) -> Result<SweepReport> {
        Ok(self.sweep(Shard::WHOLE, progress)?.report)
    }
}

/// The seed's experiments as `layer_sweep` prints them: a heading, then per experiment its
/// blocks, bonds and largest reconstruction error and the answers (side by side when several
/// methods ran).
pub fn format_experiments(e: &Experiments) -> String {
    let mut s = format!(
        "== The seed's experiments (temperature {}, seed {}) ==\n",
        e.temperature, e.seed
    );
    let mut i = 0;
    while i < e.runs.len() {
        let first = &e.runs[i];
        let end = i + e.runs[i..]
            .iter()
            .take_while(|r| {
                r.title == first.title && r.blocks == first.blocks && r.bonds == first.bonds
            })
            .count();
        let group = &e.runs[i..end];
        let (title, blocks, bonds) = (&first.title, &first.blocks, &first.bonds);
        if let [run] = group {
            let _ = writeln!(
                s,
                "\n-- {title}: blocks {blocks:?}, bonds {bonds:?}, largest reconstruction error {:.3}",
                run.max_rel_error
            );
            s.push_str(&format_example(&run.answers));
        } else {
            let errors: Vec<String> = group
                .iter()
                .map(|r| format!("{} {:.3}", r.method.key(), r.max_rel_error))
                .collect();
            let _ = writeln!(
                s,
                "\n-- {title}: blocks {blocks:?}, bonds {bonds:?}, largest reconstruction error {}",
                errors.join(", ")
            );
            let side: Vec<(&str, &[(String, String)])> = group
                .iter()
                .map(|r| (r.method.key(), r.answers.as_slice()))
                .collect();
            s.push_str(&format_examples_side_by_side(&side));
        }
        i = end;
    }
    s.push('\n');
    s
}

/// What a part carries besides its cells (its `extra`): the seed's experiments (shard 1) and
/// the healing length (for the printed heading).
#[derive(Debug, Default, Serialize, Deserialize)]
struct PartExtra {
    experiments: Option<Experiments>,
    heal_epochs: usize,
}

/// A finished sweep, as `layer_sweep` prints and writes it.
#[derive(Debug, Clone)]
pub struct SweepOutput {
    /// The report.
    pub report: SweepReport,
    /// The seed's experiments, when they ran (on `report.html`).
    pub experiments: Option<Experiments>,
    /// The healing epochs (for the healing table's heading).
    pub heal_epochs: usize,
}

impl SweepOutput {
    /// The output of a sweep run with `options`.
    pub fn new(
        report: SweepReport,
        experiments: Option<Experiments>,
        options: &SweepOptions,
    ) -> Self {
        SweepOutput {
            report,
            experiments,
            heal_epochs: options.heal_epochs,
        }
    }

    /// Stores the experiments and the healing length in `part.extra`, for
    /// [`SweepOutput::merge`] (by convention only shard 1 carries the experiments).
    pub fn attach(
        part: &mut SweepPart,
        experiments: Option<&Experiments>,
        options: &SweepOptions,
    ) -> Result<()> {
        part.extra = serde_json::to_value(PartExtra {
            experiments: experiments.cloned(),
            heal_epochs: options.heal_epochs,
        })
        .map_err(|e| Error::invalid_arg("experiments", format!("cannot serialise: {e}")))?;
        Ok(())
    }

    /// Merges the parts of one sharded run ([`shard::merge_parts`]) into the unsharded run's output,
    /// with the experiments and healing length of the first part that carries them.
    pub fn merge(parts: Vec<SweepPart>) -> Result<SweepOutput> {
        SweepOutput::merge_named(
            parts
                .into_iter()
                .map(|p| (shard::memory_name(p.shard), p))
                .collect(),
        )
    }

    /// [`SweepOutput::merge`] of the part files at `paths` ([`SweepPart::read`]); errors name
    /// the file and the field at fault.
    pub fn merge_files<P: AsRef<Path>>(paths: &[P]) -> Result<SweepOutput> {
        if paths.is_empty() {
            return Err(Error::invalid_arg("merge", "no part given"));
        }
        SweepOutput::merge_named(
            paths
                .iter()
                .map(|p| Ok((p.as_ref().to_path_buf(), SweepPart::read(p)?)))
                .collect::<Result<_>>()?,
        )
    }

    /// [`SweepOutput::merge`] of parts named (in errors) by their files.
    fn merge_named(parts: Vec<(PathBuf, SweepPart)>) -> Result<SweepOutput> {
        // Each part's extra must be one; the first (in shard order) is the output's.
        let mut carried: Option<(usize, PartExtra)> = None;
        for (name, p) in parts.iter().filter(|(_, p)| !p.extra.is_null()) {
            let extra: PartExtra = serde_json::from_value(p.extra.clone())
                .map_err(|e| Error::invalid_file(name, "extra", e.to_string()))?;
            if carried.as_ref().map_or(true, |(k, _)| p.shard.index < *k) {
                carried = Some((p.shard.index, extra));
            }
        }
        let (report, _) = shard::merge_named_parts(parts)?;
        let PartExtra {
            experiments,
            heal_epochs,
        } = carried.map(|(_, e)| e).unwrap_or_default();
        Ok(SweepOutput {
            report,
            experiments,
            heal_epochs,
        })
    }

    /// The tables, the comparison and budget tables and the verdicts, as `layer_sweep` prints
    /// them after the experiments.
    pub fn text(&self) -> String {
        let report = &self.report;
        let mut s = String::from("== The grid ==\n");
        s.push_str(&report::format_table(report));
        let settings = report::format_settings(report);
        if !settings.is_empty() {
            s.push_str("\n== The seed's settings (bonds per block: block:bond) ==\n");
            s.push_str(&settings);
        }
        let healing = report::format_healing(report);
        if !healing.is_empty() {
            let _ = writeln!(s, "\n== Healing ({} epochs) ==", self.heal_epochs);
            s.push_str(&healing);
        }
        let comparison = report::compare::format_comparison(report);
        if !comparison.is_empty() {
            s.push_str("\n== Data-aware truncation vs plain TT-SVD, same parameter count ==\n");
            s.push_str(&comparison);
            s.push_str(&verdict::format_verdicts(&report::compare::verdicts(
                report,
            )));
        }
        let budget = report::format_budget(report);
        if !budget.is_empty() {
            let fraction = report.budget.first().map_or(0.0, |b| b.fraction);
            let _ = writeln!(
                s,
                "\n== Parameter budget {:.0}%: uniform vs allocated bonds ==",
                100.0 * fraction
            );
            s.push_str(&budget);
        }
        s.push_str("\n== The seed's claims ==\n");
        s.push_str(&verdict::format_verdicts(&verdict::verdicts(report)));
        s
    }

    /// Writes every file ([`report::write_all_with`]: CSV, JSON, tables, verdicts, charts and
    /// `report.html` with the experiments) to `dir` (created if missing), as one set; returns
    /// their paths.
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        report::write_all_with(&self.report, self.experiments.as_ref(), dir)
    }
}

//! Training: a [`Trainer`] runs epochs of Adam steps over `(x, y)` batches and reports train
//! and validation loss per epoch through a callback (so an example prints progress and a
//! library caller stays quiet).
//!
//! Each batch is computed only up to its longest real row (see [`Model::loss_and_grads`]).
//!
//! Two losses: the corpus' cross-entropy ([`Trainer::fit`]), and distillation
//! ([`Trainer::fit_distill`]): the mean over real positions of `KL(p_teacher ‖ p_model)`, the
//! teacher's distributions computed once by a [`Teacher`]. "Healing" a compressed model
//! fine-tunes only its TT projections with either ([`fine_tune_tt`], [`heal_distill`]).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::loss::softmax_in_place;
use crate::nn::model::{Grads, Model};
use crate::nn::optim::{clip_grad_norm, Adam};
use crate::text::data::{Batch, Dataset};
use crate::text::vocab::PAD;
use crate::tt::params::Parameters;

/// Training hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per Adam step.
    pub batch_size: usize,
    /// Adam's learning rate (other settings are PyTorch's defaults).
    pub lr: f32,
    /// Seeds the per-epoch shuffling of [`Trainer::fit`] and [`Trainer::fit_distill`].
    pub seed: u64,
    /// Optional global-norm gradient clipping.
    pub clip: Option<f32>,
    /// Threads sharing each batch's chunks (results are deterministic for any value; 1 sums in
    /// the plain single-thread order, 2 or more in a fixed per-piece order, see
    /// [`Model::accumulate_grads_threaded`](crate::nn::model::Model::accumulate_grads_threaded)).
    pub threads: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 32,
            lr: 1e-3,
            seed: 42,
            clip: None,
            threads: 1,
        }
    }
}

impl TrainConfig {
    /// The most epochs: 1,000,000 (a run keeps one [`EpochReport`] per epoch).
    pub const MAX_EPOCHS: usize = 1_000_000;
    /// The largest batch: 1,000,000 rows.
    pub const MAX_BATCH_SIZE: usize = 1_000_000;
    /// The most threads: 1,024 (every thread keeps a gradient buffer).
    pub const MAX_THREADS: usize = 1024;

    /// Checks the values: epochs, batch size and threads at least 1 and at most their ceilings
    /// ([`Self::MAX_EPOCHS`], [`Self::MAX_BATCH_SIZE`], [`Self::MAX_THREADS`]); lr and clip
    /// finite and > 0.
    pub fn validate(&self) -> Result<()> {
        Error::check_count_in("epochs", self.epochs, Self::MAX_EPOCHS)?;
        Error::check_count_in("batch_size", self.batch_size, Self::MAX_BATCH_SIZE)?;
        Error::check_count_in("threads", self.threads, Self::MAX_THREADS)?;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid_arg(
                "lr",
                format!("{} must be finite and > 0", self.lr),
            ));
        }
        if let Some(c) = self.clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::invalid_arg(
                    "clip",
                    format!("{c} must be finite and > 0"),
                ));
            }
        }
        Ok(())
    }
}

/// One epoch's figures, handed to the callback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean over batches of the batch loss (as the seed's `train`): the cross-entropy, or with
    /// [`Trainer::fit_distill`] the mean KL from the teacher.
    pub train_loss: f32,
    /// Mean over validation batches of the batch loss, if there are any.
    pub val_loss: Option<f32>,
    /// Real (non-PAD) target tokens trained on.
    pub tokens: usize,
    /// Wall time of the training part of the epoch, in seconds.
    pub seconds: f64,
}

impl EpochReport {
    /// Training throughput, real target tokens per second.
    pub fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.seconds.max(1e-12)
    }
}

/// Runs Adam over batches; holds the optimiser state and gradient buffers between steps.
#[derive(Debug, Clone)]
pub struct Trainer {
    config: TrainConfig,
    adam: Adam,
    grads: Option<Grads>,
    scratch: Vec<Grads>,
    trainable: Option<HashSet<String>>,
}

impl Trainer {
    /// A trainer with fresh Adam state. Errors on invalid settings.
    pub fn new(config: TrainConfig) -> Result<Self> {
        config.validate()?;
        Ok(Trainer {
            adam: Adam::new(config.lr),
            config,
            grads: None,
            scratch: Vec::new(),
            trainable: None,
        })
    }

    /// Trains only the named parameters (by state_dict name); the others keep their values.
    /// With Adam (no weight decay) a parameter whose gradient is always zero never moves, so
    /// freezing is exact. Errors if a name is not a parameter of `model` or the set is empty.
    ///
    /// `trainer.train_only(&model, model.tt_parameter_names())` fine-tunes the TT cores (and
    /// their biases) of a compressed model: the "healing" of the layer sweep.
    pub fn train_only(&mut self, model: &Model, names: Vec<String>) -> Result<()> {
        if names.is_empty() {
            return Err(Error::invalid_arg("names", "no parameter to train"));
        }
        let known: HashSet<String> = model
            .named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        if let Some(n) = names.iter().find(|n| !known.contains(*n)) {
            return Err(Error::invalid_arg(
                "names",
                format!("{n:?} is not a parameter of the model"),
            ));
        }
        self.trainable = Some(names.into_iter().collect());
        Ok(())
    }

    /// The settings.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// One Adam step on a batch; returns the batch loss (before the step).
    pub fn step(
        &mut self,
        model: &mut Model,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
    ) -> Result<f32> {
        self.step_with(model, x, y, None)
    }

    /// One Adam step on a batch's distillation loss, `teacher: [B, T, V]` the teacher's
    /// probabilities for `x, y: [B, T]` (see [`Model::accumulate_distill_grads`]); returns the
    /// batch's mean KL (before the step).
    pub fn step_distill(
        &mut self,
        model: &mut Model,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        teacher: ArrayView3<'_, f32>,
    ) -> Result<f32> {
        self.step_with(model, x, y, Some(teacher))
    }

    /// One Adam step on the cross-entropy (`teacher` is `None`) or the distillation loss.
    fn step_with(
        &mut self,
        model: &mut Model,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        teacher: Option<ArrayView3<'_, f32>>,
    ) -> Result<f32> {
        let grads = self.grads.get_or_insert_with(|| model.zero_grads());
        grads.zero();
        let (scratch, threads) = (&mut self.scratch, self.config.threads);
        let loss = match teacher {
            None => model.accumulate_grads_threaded(x, y, grads, scratch, threads)?,
            Some(p) => model.accumulate_distill_grads_threaded(x, y, p, grads, scratch, threads)?,
        };
        if let Some(keep) = &self.trainable {
            grads.visit_mut("", &mut |name, mut g| {
                if !keep.contains(&name) {
                    g.fill(0.0);
                }
            });
        }
        if let Some(c) = self.config.clip {
            clip_grad_norm(grads, c);
        }
        self.adam.step(model, grads)?;
        Ok(loss)
    }

    /// One pass over the given batches; returns (mean batch loss, real target tokens).
    /// Batches whose targets are all PAD are skipped.
    pub fn train_epoch<'a>(
        &mut self,
        model: &mut Model,
        batches: impl IntoIterator<Item = (ArrayView2<'a, u32>, ArrayView2<'a, u32>)>,
    ) -> Result<(f32, usize)> {
        let batches = batches.into_iter().map(|(x, y)| (x, y, ()));
        self.epoch_with(model, batches, |_| Ok(None))
    }

    /// One pass of distillation steps over the given batches of the dataset `teacher` was
    /// built on; returns (mean batch KL, real target tokens). Batches whose targets are all PAD
    /// are skipped.
    pub fn distill_epoch(
        &mut self,
        model: &mut Model,
        batches: &[Batch],
        teacher: &Teacher,
    ) -> Result<(f32, usize)> {
        let batches = batches.iter().map(|b| (b.x_trimmed(), b.y_trimmed(), b));
        self.epoch_with(model, batches, |b| teacher.batch_probs(b).map(Some))
    }

    /// One step on each batch `(x, y, t)` with a real target, against the teacher
    /// probabilities `teacher(t)` when there are some; returns (mean batch loss, real target
    /// tokens).
    fn epoch_with<'a, T>(
        &mut self,
        model: &mut Model,
        batches: impl IntoIterator<Item = (ArrayView2<'a, u32>, ArrayView2<'a, u32>, T)>,
        teacher: impl Fn(T) -> Result<Option<Array3<f32>>>,
    ) -> Result<(f32, usize)> {
        let (mut total, mut n, mut tokens) = (0.0f64, 0usize, 0usize);
        for (x, y, t) in batches {
            let real = y.iter().filter(|&&t| t != PAD).count();
            if real == 0 {
                continue;
            }
            let p = teacher(t)?;
            total += self.step_with(model, x, y, p.as_ref().map(|p| p.view()))? as f64;
            n += 1;
            tokens += real;
        }
        if n == 0 {
            return Err(Error::invalid_arg("batches", "no batch with a real target"));
        }
        Ok(((total / n as f64) as f32, tokens))
    }

    /// Trains for `config.epochs` epochs on `train` (reshuffled each epoch by an RNG seeded
    /// from `config.seed`), evaluating on `valid` (if non-empty) after each; calls `on_epoch`
    /// with each report and returns them all. Every batch is cut to its longest real row.
    pub fn fit(
        &mut self,
        model: &mut Model,
        train: &Dataset,
        valid: &Dataset,
        on_epoch: impl FnMut(&EpochReport),
    ) -> Result<Vec<EpochReport>> {
        let mut on_epoch = on_epoch;
        self.fit_with(model, train, None, valid, |r, _| {
            on_epoch(r);
            Ok(())
        })
    }

    /// [`fit`](Self::fit) (the same batches, the same steps) with a callback that also sees the
    /// model after each epoch, e.g. to keep checkpoints along one run; an error from it stops
    /// training and is returned.
    pub fn fit_observed(
        &mut self,
        model: &mut Model,
        train: &Dataset,
        valid: &Dataset,
        on_epoch: impl FnMut(&EpochReport, &Model) -> Result<()>,
    ) -> Result<Vec<EpochReport>> {
        self.fit_with(model, train, None, valid, on_epoch)
    }

    /// As [`fit`](Self::fit) (the same batches, shuffled the same way), but each step lowers the
    /// mean over real positions of `KL(teacher ‖ model)`, `teacher` made by [`Teacher::new`]
    /// on `train`. The reports' `train_loss` is the mean batch KL; `val_loss` is still the
    /// cross-entropy on `valid`, comparable with [`fit`](Self::fit)'s.
    ///
    /// Errors as `fit`, and if `teacher` was not built on `train` (row count, real positions
    /// per row, token ids) or over another vocabulary than `model`'s.
    pub fn fit_distill(
        &mut self,
        model: &mut Model,
        train: &Dataset,
        teacher: &Teacher,
        valid: &Dataset,
        on_epoch: impl FnMut(&EpochReport),
    ) -> Result<Vec<EpochReport>> {
        let mut on_epoch = on_epoch;
        self.fit_with(model, train, Some(teacher), valid, |r, _| {
            on_epoch(r);
            Ok(())
        })
    }

    /// [`fit`](Self::fit) with the cross-entropy (`teacher` is `None`) or the distillation loss.
    fn fit_with(
        &mut self,
        model: &mut Model,
        train: &Dataset,
        teacher: Option<&Teacher>,
        valid: &Dataset,
        mut on_epoch: impl FnMut(&EpochReport, &Model) -> Result<()>,
    ) -> Result<Vec<EpochReport>> {
        if train.is_empty() {
            return Err(Error::invalid_arg("train", "no training rows"));
        }
        if let Some(t) = teacher {
            t.check(model, train)?;
        }
        let mut rng = StdRng::seed_from_u64(self.config.seed);
        let mut reports = Vec::with_capacity(self.config.epochs);
        for epoch in 1..=self.config.epochs {
            let batches: Vec<_> = train.batches(self.config.batch_size, &mut rng)?.collect();
            let start = Instant::now();
            let (train_loss, tokens) = match teacher {
                None => self.train_epoch(
                    model,
                    batches.iter().map(|b| (b.x_trimmed(), b.y_trimmed())),
                )?,
                Some(t) => self.distill_epoch(model, &batches, t)?,
            };
            let seconds = start.elapsed().as_secs_f64();
            check_finite(model, epoch, train_loss)?;
            let val_loss = if valid.is_empty() {
                None
            } else {
                Some(evaluate_dataset(model, valid, self.config.batch_size)?)
            };
            let report = EpochReport {
                epoch,
                train_loss,
                val_loss,
                tokens,
                seconds,
            };
            on_epoch(&report, model)?;
            reports.push(report);
        }
        Ok(reports)
    }
}

/// Errors if training diverged: the epoch's loss or any parameter is NaN or infinite (a model
/// that cannot be saved or used; a lower learning rate or gradient clipping may help).
fn check_finite(model: &Model, epoch: usize, loss: f32) -> Result<()> {
    let mut bad = None;
    model.visit("", &mut |name, t| {
        if bad.is_none() && t.iter().any(|v| !v.is_finite()) {
            bad = Some(name);
        }
    });
    let what = match bad {
        Some(name) => format!("parameter {name} holds a non-finite value"),
        None if !loss.is_finite() => format!("the mean loss is {loss}"),
        None => return Ok(()),
    };
    Err(Error::invalid_arg(
        "training",
        format!("diverged in epoch {epoch}: {what} (try a lower lr, or clip)"),
    ))
}

/// [`evaluate`] over a dataset in row order, `batch_size` rows at a time.
pub fn evaluate_dataset(model: &Model, data: &Dataset, batch_size: usize) -> Result<f32> {
    let batches: Vec<_> = data.batches_in_order(batch_size)?.collect();
    evaluate(
        model,
        batches.iter().map(|b| (b.x_trimmed(), b.y_trimmed())),
    )
}

/// Mean over batches of the batch loss, no gradients (as the seed's `evaluate`). Batches whose
/// targets are all PAD are skipped.
pub fn evaluate<'a>(
    model: &Model,
    batches: impl IntoIterator<Item = (ArrayView2<'a, u32>, ArrayView2<'a, u32>)>,
) -> Result<f32> {
    let (mut total, mut n) = (0.0f64, 0usize);
    for (x, y) in batches {
        if y.iter().all(|&t| t == PAD) {
            continue;
        }
        total += model.loss(x, y)? as f64;
        n += 1;
    }
    if n == 0 {
        return Err(Error::invalid_arg("batches", "no batch with a real target"));
    }
    Ok((total / n as f64) as f32)
}

/// "Healing": fine-tunes only the TT projections (cores and biases) of a compressed model for
/// `config.epochs` epochs on `train`, evaluating on `valid`; the dense parameters keep their
/// values. Errors if the model has no TT projection.
pub fn fine_tune_tt(
    model: &mut Model,
    train: &Dataset,
    valid: &Dataset,
    config: TrainConfig,
    on_epoch: impl FnMut(&EpochReport),
) -> Result<Vec<EpochReport>> {
    let mut trainer = Trainer::new(config)?;
    trainer.train_only(model, model.tt_parameter_names())?;
    trainer.fit(model, train, valid, on_epoch)
}

/// "Healing" by distillation: fine-tunes only the TT projections (cores and biases) of a
/// compressed model so that its next-token distributions match `teacher`'s (the dense model's,
/// made by [`Teacher::new`] on `train`), for `config.epochs` epochs; see
/// [`Trainer::fit_distill`]. The dense parameters keep their values; the reports' `val_loss` is
/// the cross-entropy on `valid`, as in [`fine_tune_tt`]. Errors if the model has no TT
/// projection, or as `fit_distill`.
pub fn heal_distill(
    model: &mut Model,
    train: &Dataset,
    valid: &Dataset,
    teacher: &Teacher,
    config: TrainConfig,
    on_epoch: impl FnMut(&EpochReport),
) -> Result<Vec<EpochReport>> {
    let names = model.tt_parameter_names();
    if names.is_empty() {
        return Err(Error::invalid_arg(
            "model",
            "has no TT projection to heal (compress a block first)",
        ));
    }
    let mut trainer = Trainer::new(config)?;
    trainer.train_only(model, names)?;
    trainer.fit_distill(model, train, teacher, valid, on_epoch)
}

/// Rows per forward while a [`Teacher`] is computed.
const TEACHER_ROWS: usize = 128;

/// A teacher model's next-token distributions at every real position (target not PAD) of a
/// dataset's rows, computed once, for distillation ([`Trainer::fit_distill`]).
///
/// Only real positions are stored, as f32: memory = positions × V × 4 bytes, plus `N + 1`
/// offsets (the shipped model on its training split: 1,008 rows, about 16.5k positions × 156
/// words, 10.3 MB).
///
/// The distributions come from the model's forward (a row's logits are the same bits in
/// whatever batch, batch position or trimmed length it is computed) and from
/// [`loss::softmax`](crate::nn::loss::softmax), the code that computes the student's side of the
/// loss, so a model distilled from itself gets a gradient of exactly zero.
#[derive(Debug, Clone)]
pub struct Teacher {
    /// `[positions, V]`: the real positions of row 0 in order, then of row 1, ….
    probs: Array2<f32>,
    /// Row `i`'s distributions are `probs` rows `offsets[i]..offsets[i + 1]`; `[N + 1]`.
    offsets: Vec<usize>,
    /// The dataset's row length `T`.
    max_len: usize,
    /// A hash of the dataset's ids (`x` and `y`), to tell it from another of the same shape.
    fingerprint: u64,
}

impl Teacher {
    /// Runs `model` over every row of `data` (batches of 128 rows shared among `threads`
    /// threads, as [`Model::forward_threaded`]) and keeps the softmax at the positions whose
    /// target is not PAD.
    ///
    /// Errors if `data` is empty, `threads` is 0, or the rows do not fit the model (longer than
    /// its `max_len`, an id out of its vocabulary).
    pub fn new(model: &Model, data: &Dataset, threads: usize) -> Result<Self> {
        if data.is_empty() {
            return Err(Error::invalid_arg(
                "data",
                "no rows to compute a teacher on",
            ));
        }
        if threads == 0 {
            return Err(Error::invalid_arg("threads", "must be at least 1"));
        }
        let v = model.config().vocab_size;
        let (x, y) = (data.x(), data.y());
        if let Some(((i, j), &id)) = y.indexed_iter().find(|(_, &id)| id as usize >= v) {
            return Err(Error::TokenOutOfRange {
                id,
                context: format!("data y[{i}, {j}]"),
                vocab_size: v,
            });
        }
        let mut offsets = Vec::with_capacity(data.len() + 1);
        offsets.push(0);
        for row in y.rows() {
            offsets.push(offsets[offsets.len() - 1] + row.iter().filter(|&&t| t != PAD).count());
        }
        let mut probs = Array2::<f32>::zeros((offsets[data.len()], v));
        let mut k = 0;
        for start in (0..data.len()).step_by(TEACHER_ROWS) {
            let end = (start + TEACHER_ROWS).min(data.len());
            let ys = y.slice(s![start..end, ..]);
            // Up to the last real target of any of these rows.
            let t = crate::text::data::longest_real(ys);
            if t == 0 {
                continue;
            }
            let logits = model.forward_threaded(x.slice(s![start..end, ..t]), threads)?;
            for (i, row) in ys.rows().into_iter().enumerate() {
                for (pos, _) in row.iter().take(t).enumerate().filter(|(_, &id)| id != PAD) {
                    probs.row_mut(k).assign(&logits.slice(s![i, pos, ..]));
                    k += 1;
                }
            }
        }
        debug_assert_eq!(k, probs.nrows());
        softmax_in_place(&mut probs);
        Ok(Teacher {
            probs,
            offsets,
            max_len: data.max_len(),
            fingerprint: fingerprint(data),
        })
    }

    /// Rows of the dataset it was built on.
    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Real positions stored (the rows' non-PAD targets).
    pub fn positions(&self) -> usize {
        self.probs.nrows()
    }

    /// The vocabulary size `V` of the distributions.
    pub fn vocab_size(&self) -> usize {
        self.probs.ncols()
    }

    /// Bytes held by the distributions: positions × V × 4.
    pub fn memory_bytes(&self) -> usize {
        self.probs.len() * std::mem::size_of::<f32>()
    }

    /// Row `i`'s distributions, `[real positions of row i, V]`, in order of position.
    pub fn row(&self, i: usize) -> Option<ArrayView2<'_, f32>> {
        let (a, b) = (*self.offsets.get(i)?, *self.offsets.get(i + 1)?);
        Some(self.probs.slice(s![a..b, ..]))
    }

    /// Checks that this teacher was built on `data` (same rows, row length, real positions per
    /// row and token ids) over `model`'s vocabulary.
    pub fn check(&self, model: &Model, data: &Dataset) -> Result<()> {
        let v = model.config().vocab_size;
        Error::check_count("teacher", self.vocab_size(), v, |g, w| {
            format!("holds distributions over {g} tokens, the model has a vocabulary of {w}")
        })?;
        if data.len() != self.rows() || data.max_len() != self.max_len {
            return Err(Error::invalid_arg(
                "teacher",
                format!(
                    "was built on {} rows of length {}, the dataset has {} rows of length {}",
                    self.rows(),
                    self.max_len,
                    data.len(),
                    data.max_len()
                ),
            ));
        }
        for (i, row) in data.y().rows().into_iter().enumerate() {
            let real = row.iter().filter(|&&t| t != PAD).count();
            let have = self.offsets[i + 1] - self.offsets[i];
            if real != have {
                return Err(Error::invalid_arg(
                    "teacher",
                    format!("has {have} positions for row {i}, the dataset's row has {real} real targets"),
                ));
            }
        }
        if fingerprint(data) != self.fingerprint {
            return Err(Error::invalid_arg(
                "teacher",
                "was built on another dataset of the same shape (the token ids differ)",
            ));
        }
        Ok(())
    }

    /// The distributions of a batch of the dataset this teacher was built on (see
    /// [`Batch::rows`]), laid out as the model's distillation functions take them:
    /// `[B, batch.max_len(), V]`, aligned with [`Batch::y_trimmed`], zeros where the target is
    /// PAD. Errors if a batch row is not a row of that dataset or its real targets disagree.
    pub fn batch_probs(&self, batch: &Batch) -> Result<Array3<f32>> {
        let (b, t) = (batch.len(), batch.max_len());
        if batch.rows.len() != b || batch.y.nrows() != b || batch.y.ncols() != self.max_len {
            return Err(Error::shape(
                "Teacher::batch_probs batch (rows, y)",
                &[b, b, self.max_len],
                &[batch.rows.len(), batch.y.nrows(), batch.y.ncols()],
            ));
        }
        let mut out = Array3::<f32>::zeros((b, t, self.vocab_size()));
        for (k, &i) in batch.rows.iter().enumerate() {
            let stored = self.row(i).ok_or_else(|| {
                Error::invalid_arg(
                    "batch.rows",
                    format!(
                        "row {i} is out of range for a teacher of {} rows",
                        self.rows()
                    ),
                )
            })?;
            let y = batch.y.row(k);
            let real: Vec<usize> = (0..y.len()).filter(|&p| y[p] != PAD).collect();
            Error::check_count("batch", real.len(), stored.nrows(), |g, w| {
                format!("row {k} (dataset row {i}) has {g} real targets, the teacher {w}")
            })?;
            for (&pos, p) in real.iter().zip(stored.rows()) {
                if pos < t {
                    out.slice_mut(s![k, pos, ..]).assign(&p);
                }
            }
        }
        Ok(out)
    }
}

/// A hash of a dataset's token ids (`x` and `y`).
fn fingerprint(data: &Dataset) -> u64 {
    let mut h = DefaultHasher::new();
    data.x().iter().for_each(|id| id.hash(&mut h));
    data.y().iter().for_each(|id| id.hash(&mut h));
    h.finish()
}

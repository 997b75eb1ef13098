//! Training: a [`Trainer`] runs epochs of Adam steps over `(x, y)` batches and reports train
//! and validation loss per epoch through a callback (so an example prints progress and a
//! library caller stays quiet).
//!
//! Each batch is computed only up to its longest real row (see [`Model::loss_and_grads`]).

use std::time::Instant;

use std::collections::HashSet;

use ndarray::ArrayView2;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Grads, Model};
use crate::optim::{clip_grad_norm, Adam};
use crate::params::Parameters;
use crate::vocab::PAD;

/// Training hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per Adam step.
    pub batch_size: usize,
    /// Adam's learning rate (other settings are PyTorch's defaults).
    pub lr: f32,
    /// Seeds the per-epoch shuffling of [`Trainer::fit`].
    pub seed: u64,
    /// Optional global-norm gradient clipping.
    pub clip: Option<f32>,
    /// Threads sharing each batch's chunks (results are deterministic for any value; 1 sums in
    /// the plain single-thread order, 2 or more in a fixed per-piece order, see
    /// [`Model::accumulate_grads_threaded`](crate::Model::accumulate_grads_threaded)).
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
    /// Checks the values: epochs, batch size and threads at least 1; lr and clip finite and > 0.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::invalid_arg("batch_size", "must be at least 1"));
        }
        if self.threads == 0 {
            return Err(Error::invalid_arg("threads", "must be at least 1"));
        }
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
    /// Mean over batches of the batch loss (as the seed's `train`).
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
        let grads = self.grads.get_or_insert_with(|| model.zero_grads());
        grads.zero();
        let loss =
            model.accumulate_grads_threaded(x, y, grads, &mut self.scratch, self.config.threads)?;
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
        let (mut total, mut n, mut tokens) = (0.0f64, 0usize, 0usize);
        for (x, y) in batches {
            let real = y.iter().filter(|&&t| t != PAD).count();
            if real == 0 {
                continue;
            }
            total += self.step(model, x, y)? as f64;
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
        mut on_epoch: impl FnMut(&EpochReport),
    ) -> Result<Vec<EpochReport>> {
        if train.is_empty() {
            return Err(Error::invalid_arg("train", "no training rows"));
        }
        let mut rng = StdRng::seed_from_u64(self.config.seed);
        let mut reports = Vec::with_capacity(self.config.epochs);
        for epoch in 1..=self.config.epochs {
            let batches: Vec<_> = train.batches(self.config.batch_size, &mut rng)?.collect();
            let start = Instant::now();
            let (train_loss, tokens) = self.train_epoch(
                model,
                batches.iter().map(|b| (b.x_trimmed(), b.y_trimmed())),
            )?;
            let seconds = start.elapsed().as_secs_f64();
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
            on_epoch(&report);
            reports.push(report);
        }
        Ok(reports)
    }
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

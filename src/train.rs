//! Training: a [`Trainer`] runs epochs of Adam steps over `(x, y)` batches and reports train
//! and validation loss per epoch through a callback (so an example prints progress and a
//! library caller stays quiet).
//!
//! Each batch is computed only up to its longest real row (see [`Model::loss_and_grads`]).

use std::time::Instant;

use ndarray::{s, Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Grads, Model};
use crate::optim::{clip_grad_norm, Adam};
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
    /// Threads splitting each batch's rows (1 = deterministic single-thread summation).
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

/// Rows of token ids with their next-token targets, `x, y: [N, T]` (PAD-padded).
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// Inputs, `[N, T]`.
    pub x: Array2<u32>,
    /// Targets, `[N, T]`.
    pub y: Array2<u32>,
}

impl Rows {
    /// Pairs `x` and `y`; errors if their shapes differ.
    pub fn new(x: Array2<u32>, y: Array2<u32>) -> Result<Self> {
        if x.dim() != y.dim() {
            return Err(Error::shape("Rows y", x.shape(), y.shape()));
        }
        Ok(Rows { x, y })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.x.nrows()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows `order[k]` for `k` in `range`, as a batch.
    fn gather(&self, idx: &[usize]) -> (Array2<u32>, Array2<u32>) {
        let t = self.x.ncols();
        let mut x = Array2::zeros((idx.len(), t));
        let mut y = Array2::zeros((idx.len(), t));
        for (k, &i) in idx.iter().enumerate() {
            x.row_mut(k).assign(&self.x.row(i));
            y.row_mut(k).assign(&self.y.row(i));
        }
        (x, y)
    }

    /// Consecutive batches of `batch_size` rows (the last may be smaller), in order.
    pub fn batches(&self, batch_size: usize) -> Vec<(ArrayView2<'_, u32>, ArrayView2<'_, u32>)> {
        let n = self.len();
        (0..n)
            .step_by(batch_size.max(1))
            .map(|i| {
                let r = i..(i + batch_size).min(n);
                (self.x.slice(s![r.clone(), ..]), self.y.slice(s![r, ..]))
            })
            .collect()
    }
}

/// Runs Adam over batches; holds the optimiser state and gradient buffers between steps.
#[derive(Debug, Clone)]
pub struct Trainer {
    config: TrainConfig,
    adam: Adam,
    grads: Option<Grads>,
    scratch: Vec<Grads>,
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
        })
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

    /// Trains for `config.epochs` epochs on `train` (reshuffled each epoch from `config.seed`),
    /// evaluating on `valid` (if non-empty) after each; calls `on_epoch` with each report and
    /// returns them all.
    pub fn fit(
        &mut self,
        model: &mut Model,
        train: &Rows,
        valid: &Rows,
        mut on_epoch: impl FnMut(&EpochReport),
    ) -> Result<Vec<EpochReport>> {
        if train.is_empty() {
            return Err(Error::invalid_arg("train", "no training rows"));
        }
        let mut rng = StdRng::seed_from_u64(self.config.seed);
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut reports = Vec::with_capacity(self.config.epochs);
        for epoch in 1..=self.config.epochs {
            order.shuffle(&mut rng);
            let batches: Vec<_> = order
                .chunks(self.config.batch_size)
                .map(|idx| train.gather(idx))
                .collect();
            let start = Instant::now();
            let (train_loss, tokens) =
                self.train_epoch(model, batches.iter().map(|(x, y)| (x.view(), y.view())))?;
            let seconds = start.elapsed().as_secs_f64();
            let val_loss = if valid.is_empty() {
                None
            } else {
                Some(evaluate(model, valid.batches(self.config.batch_size))?)
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

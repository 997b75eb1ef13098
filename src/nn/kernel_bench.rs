//! Hooks for `benches/kernels.rs`: each vectorised kernel through each of its builds. Not
//! part of the API.

use std::mem::MaybeUninit;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use crate::nn::kernels::{impls, Impl, Level};

/// A short name for `imp` (`intrinsics`, `portable_v3`, ..).
pub fn name(imp: Impl) -> &'static str {
    match imp {
        Impl::Intrinsics => "intrinsics",
        Impl::Portable(Level::Baseline) => "portable_base",
        Impl::Portable(Level::V3) => "portable_v3",
        Impl::Portable(Level::V4) => "portable_v4",
    }
}

fn random(n: usize, rng: &mut StdRng, r: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-r..r)).collect()
}

/// LayerNorm rows `[rows, d]` with their cache and gradients.
pub struct LayerNormRows {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
    y: Vec<MaybeUninit<f32>>,
    h: Vec<MaybeUninit<f32>>,
    rstd: Vec<f32>,
    dx: Vec<MaybeUninit<f32>>,
    gw: Vec<f32>,
    gb: Vec<f32>,
}

impl LayerNormRows {
    /// Random rows, weight and output gradient.
    pub fn new(rows: usize, d: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = rows * d;
        let mut s = LayerNormRows {
            x: random(n, &mut rng, 2.0),
            w: random(d, &mut rng, 1.5),
            b: random(d, &mut rng, 1.0),
            dy: random(n, &mut rng, 1.0),
            y: vec![MaybeUninit::new(0.0); n],
            h: vec![MaybeUninit::new(0.0); n],
            rstd: vec![0.0; rows],
            dx: vec![MaybeUninit::new(0.0); n],
            gw: vec![0.0; d],
            gb: vec![0.0; d],
        };
        s.forward(Impl::Portable(Level::Baseline));
        s
    }

    /// The forward with cache.
    pub fn forward(&mut self, imp: Impl) -> f32 {
        crate::nn::layers::layer_norm::forward_rows_impl(
            imp,
            &self.x,
            (&self.w, &self.b),
            &mut self.y,
            Some((&mut self.h, &mut self.rstd)),
        );
        self.rstd[0]
    }

    /// The backward (adds into the parameter gradients).
    pub fn backward(&mut self, imp: Impl) -> f32 {
        // SAFETY: `h` was written by the forward in `new`.
        let xhat: &[f32] =
            unsafe { &*(self.h.as_slice() as *const [MaybeUninit<f32>] as *const [f32]) };
        crate::nn::layers::layer_norm::backward_rows_impl(
            imp,
            crate::nn::layers::layer_norm::BackwardIn {
                dy: &self.dy,
                xhat,
                rstd: &self.rstd,
                weight: &self.w,
            },
            &mut self.dx,
            &mut self.gw,
            &mut self.gb,
        );
        self.gw[0]
    }
}

/// Logits `[rows, v]` with targets (one in ten `PAD`).
pub struct LossRows {
    logits: Vec<f32>,
    work: Vec<f32>,
    targets: Vec<u32>,
    v: usize,
}

impl LossRows {
    /// Random logits in ±8 and targets.
    pub fn new(rows: usize, v: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let targets = (0..rows)
            .map(|_| {
                if rng.gen_bool(0.1) {
                    0
                } else {
                    rng.gen_range(1..v as u32)
                }
            })
            .collect();
        let logits = random(rows * v, &mut rng, 8.0);
        LossRows {
            work: logits.clone(),
            logits,
            targets,
            v,
        }
    }

    /// Cross-entropy with its gradient, in place on a copy of the logits.
    pub fn cross_entropy(&mut self, imp: Impl) -> f64 {
        self.work.copy_from_slice(&self.logits);
        crate::nn::loss::rows_in_place_impl(imp, &mut self.work, self.v, &self.targets, 0.01)
    }

    /// Softmax of every row, in place on a copy of the logits.
    pub fn softmax(&mut self, imp: Impl) -> f32 {
        self.work.copy_from_slice(&self.logits);
        crate::nn::loss::softmax_rows_impl(imp, &mut self.work, self.v);
        self.work[0]
    }
}

/// One Adam update over `n` parameters.
pub struct AdamRows {
    p: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    g: Vec<f32>,
}

impl AdamRows {
    /// Random parameters and gradients, zero moments.
    pub fn new(n: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        AdamRows {
            p: random(n, &mut rng, 1.0),
            m: vec![0.0; n],
            v: vec![0.0; n],
            g: random(n, &mut rng, 1e-2),
        }
    }

    /// One update at `level`.
    pub fn step(&mut self, level: Level) -> f32 {
        crate::nn::optim::adam_update_at(level, &mut self.p, &mut self.m, &mut self.v, &self.g);
        self.p[0]
    }
}

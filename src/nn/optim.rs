//! Adam with PyTorch's defaults and bias correction (`torch.optim.Adam`), and global-norm
//! gradient clipping (`torch.nn.utils.clip_grad_norm_`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::kernels::{dispatch, Level};
use crate::tt::params::Parameters;

/// Adam's hyper-parameters; `Default` is PyTorch's (lr 1e-3, betas (0.9, 0.999), eps 1e-8).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Adam's state: first and second moments of every parameter, kept flat in visit order and
/// checked by name at every step.
#[derive(Debug, Clone)]
pub struct Adam {
    config: AdamConfig,
    t: u64,
    names: Vec<String>,
    m: Vec<f32>,
    v: Vec<f32>,
    grad: Vec<f32>,
}

impl Adam {
    /// PyTorch's defaults with learning rate `lr`.
    pub fn new(lr: f32) -> Self {
        Adam::with_config(AdamConfig {
            lr,
            ..AdamConfig::default()
        })
    }

    /// Adam with the given hyper-parameters.
    pub fn with_config(config: AdamConfig) -> Self {
        Adam {
            config,
            t: 0,
            names: Vec::new(),
            m: Vec::new(),
            v: Vec::new(),
            grad: Vec::new(),
        }
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// One update of `params` from `grads` (same names, same order, same shapes).
    ///
    /// Errors (before changing anything) if the gradients do not mirror the parameters, or if
    /// the parameters are not the ones of earlier steps (then start a new `Adam`).
    pub fn step<P: Parameters + ?Sized, G: Parameters + ?Sized>(
        &mut self,
        params: &mut P,
        grads: &G,
    ) -> Result<()> {
        let mut pnames = Vec::new();
        let mut psizes = Vec::new();
        params.visit("", &mut |n, t| {
            pnames.push(n);
            psizes.push(t.len());
        });
        let mut gnames = Vec::new();
        self.grad.clear();
        let grad = &mut self.grad;
        let mut gsizes = Vec::new();
        grads.visit("", &mut |n, t| {
            gnames.push(n);
            gsizes.push(t.len());
            match t.as_slice() {
                Some(s) => grad.extend_from_slice(s),
                None => grad.extend(t.iter().copied()),
            }
        });
        if pnames != gnames || psizes != gsizes {
            return Err(Error::invalid_arg(
                "grads",
                "do not mirror the parameters (names, order or sizes differ)",
            ));
        }
        let total: usize = psizes.iter().sum();
        if self.t == 0 {
            self.names = pnames;
            self.m = vec![0.0; total];
            self.v = vec![0.0; total];
        } else if self.names != pnames || self.m.len() != total {
            return Err(Error::invalid_arg(
                "params",
                "differ from the parameters of earlier steps; start a new optimiser",
            ));
        }
        self.t += 1;
        let c = self.config;
        let bc1 = 1.0 - (c.beta1 as f64).powi(self.t as i32);
        let bc2_sqrt = (1.0 - (c.beta2 as f64).powi(self.t as i32)).sqrt() as f32;
        let step_size = (c.lr as f64 / bc1) as f32;
        let (m, v, g) = (&mut self.m, &mut self.v, &self.grad);
        let mut off = 0;
        params.visit_mut("", &mut |_, mut p| {
            let n = p.len();
            let (m, v, g) = (&mut m[off..off + n], &mut v[off..off + n], &g[off..off + n]);
            let k = AdamCoeffs {
                beta1: c.beta1,
                beta2: c.beta2,
                eps: c.eps,
                bc2_sqrt,
                step_size,
            };
            match p.as_slice_mut() {
                Some(ps) => dispatch!(adam_update, (ps, m, v, g, k)),
                None => {
                    let mut ps: Vec<f32> = p.iter().copied().collect();
                    dispatch!(adam_update, (&mut ps, m, v, g, k));
                    p.iter_mut().zip(ps).for_each(|(d, s)| *d = s);
                }
            }
            off += n;
        });
        Ok(())
    }
}

/// One update with PyTorch's defaults at step 1 through the build for `level` (benches).
pub(crate) fn adam_update_at(level: Level, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
    let c = AdamConfig::default();
    let k = AdamCoeffs {
        beta1: c.beta1,
        beta2: c.beta2,
        eps: c.eps,
        bc2_sqrt: (1.0 - c.beta2).sqrt(),
        step_size: c.lr / (1.0 - c.beta1),
    };
    dispatch!(@at level, adam_update, (p, m, v, g, k))
}

/// The scalars of one Adam update.
#[derive(Clone, Copy)]
struct AdamCoeffs {
    beta1: f32,
    beta2: f32,
    eps: f32,
    bc2_sqrt: f32,
    step_size: f32,
}

/// PyTorch's Adam update (no weight decay, no amsgrad) over slices of equal length; the loop
/// vectorises (square root and division are correctly rounded, so every width gives the same
/// bits).
#[inline(always)]
fn adam_update(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: AdamCoeffs) {
    for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        *m = k.beta1 * *m + (1.0 - k.beta1) * g;
        *v = k.beta2 * *v + (1.0 - k.beta2) * g * g;
        let denom = v.sqrt() / k.bc2_sqrt + k.eps;
        *p -= k.step_size * *m / denom;
    }
}

/// Scales `grads` so that their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`: factor `max_norm / (norm + 1e-6)` when below 1). Returns the norm before
/// clipping.
pub fn clip_grad_norm<G: Parameters + ?Sized>(grads: &mut G, max_norm: f32) -> f32 {
    let mut s = 0.0f64;
    grads.visit("", &mut |_, g| {
        s += g.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>()
    });
    let norm = s.sqrt() as f32;
    let k = max_norm / (norm + 1e-6);
    if k < 1.0 {
        grads.visit_mut("", &mut |_, mut g| g.mapv_inplace(|v| v * k));
    }
    norm
}

//! `LayerNorm` over the last axis (PyTorch's `nn.LayerNorm(d)`: biased variance, eps = 1e-5).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use ndarray::ArrayViewD;

use crate::error::{Error, Result};
use crate::layers::{visit_via_tensors, NamedTensors};
use crate::params::{join, Parameters};

/// PyTorch's default `eps`.
pub const LN_EPS: f32 = 1e-5;

/// `y = (x − mean) / sqrt(var + eps) · weight + bias`, per row, with `weight, bias: [d]`.
///
/// ```
/// use ndarray::array;
/// let ln = succulm::layers::LayerNorm::new(2);
/// let y = ln.forward(array![[1.0, 3.0]].view())?;
/// assert!((y[[0, 0]] + 1.0).abs() < 1e-4 && (y[[0, 1]] - 1.0).abs() < 1e-4);
/// # Ok::<(), succulm::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNorm {
    pub(crate) weight: Array1<f32>,
    pub(crate) bias: Array1<f32>,
}

/// What [`LayerNorm::backward`] needs from the forward pass.
#[derive(Debug, Clone)]
pub struct LayerNormCache {
    /// The normalised input `(x − mean) · rstd`, `[rows, d]`.
    xhat: Array2<f32>,
    /// `1 / sqrt(var + eps)` per row, `[rows]`.
    rstd: Array1<f32>,
}

impl LayerNorm {
    /// PyTorch's initialisation: weight 1, bias 0, `[d]` each.
    pub fn new(d: usize) -> Self {
        LayerNorm {
            weight: Array1::ones(d),
            bias: Array1::zeros(d),
        }
    }

    /// Zeros of the same shape (to hold gradients).
    pub fn zeros_like(&self) -> Self {
        LayerNorm {
            weight: Array1::zeros(self.weight.raw_dim()),
            bias: Array1::zeros(self.bias.raw_dim()),
        }
    }

    /// The feature count `d`.
    pub fn dim(&self) -> usize {
        self.weight.len()
    }

    /// The scale, `[d]`.
    pub fn weight(&self) -> ArrayView1<'_, f32> {
        self.weight.view()
    }

    /// The shift, `[d]`.
    pub fn bias(&self) -> ArrayView1<'_, f32> {
        self.bias.view()
    }

    /// `x: [rows, d] -> [rows, d]`; errors if `x` does not have `d` columns.
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        self.check(x)?;
        Ok(self.forward_train(x).0)
    }

    fn check(&self, x: ArrayView2<'_, f32>) -> Result<()> {
        if x.ncols() != self.dim() {
            return Err(Error::shape(
                "LayerNorm input",
                &[x.nrows(), self.dim()],
                &[x.nrows(), x.ncols()],
            ));
        }
        Ok(())
    }

    /// Forward keeping what backward needs. `x: [rows, d]` (not checked) `-> ([rows, d], cache)`.
    pub fn forward_train(&self, x: ArrayView2<'_, f32>) -> (Array2<f32>, LayerNormCache) {
        let (rows, d) = x.dim();
        let x = x.as_standard_layout();
        let xs = x.as_slice().expect("standard layout");
        let mut xhat = vec![0.0f32; rows * d];
        let mut y = vec![0.0f32; rows * d];
        let mut rstd = vec![0.0f32; rows];
        let w = self.weight.as_slice().expect("contiguous");
        let b = self.bias.as_slice().expect("contiguous");
        for r in 0..rows {
            let xr = &xs[r * d..(r + 1) * d];
            let (mean, rs) = moments(xr);
            rstd[r] = rs;
            let hr = &mut xhat[r * d..(r + 1) * d];
            let yr = &mut y[r * d..(r + 1) * d];
            for k in 0..d {
                let nv = (xr[k] - mean) * rs;
                hr[k] = nv;
                yr[k] = nv * w[k] + b[k];
            }
        }
        let shape = (rows, d);
        (
            Array2::from_shape_vec(shape, y).expect("sized"),
            LayerNormCache {
                xhat: Array2::from_shape_vec(shape, xhat).expect("sized"),
                rstd: Array1::from_vec(rstd),
            },
        )
    }

    /// Forward without cache or checks (inference). `x: [rows, d] -> [rows, d]`.
    pub(crate) fn apply(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let (rows, d) = x.dim();
        let x = x.as_standard_layout();
        let xs = x.as_slice().expect("standard layout");
        let mut y = vec![0.0f32; rows * d];
        let w = self.weight.as_slice().expect("contiguous");
        let b = self.bias.as_slice().expect("contiguous");
        for r in 0..rows {
            let xr = &xs[r * d..(r + 1) * d];
            let (mean, rs) = moments(xr);
            let yr = &mut y[r * d..(r + 1) * d];
            for k in 0..d {
                yr[k] = (xr[k] - mean) * rs * w[k] + b[k];
            }
        }
        Array2::from_shape_vec((rows, d), y).expect("sized")
    }

    /// Backward: adds `dweight = Σ dy·xhat`, `dbias = Σ dy` into `grads`, returns
    /// `dx = rstd · (g − mean(g) − xhat · mean(g · xhat))` with `g = dy · weight`, `[rows, d]`.
    pub fn backward(
        &self,
        cache: &LayerNormCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut LayerNorm,
    ) -> Array2<f32> {
        let (rows, d) = dy.dim();
        let dy = dy.as_standard_layout();
        let dys = dy.as_slice().expect("standard layout");
        let hs = cache.xhat.as_slice().expect("contiguous");
        let mut dx = vec![0.0f32; rows * d];
        let w = self.weight.as_slice().expect("contiguous");
        let gw = grads.weight.as_slice_mut().expect("contiguous");
        let gb = grads.bias.as_slice_mut().expect("contiguous");
        let n = d as f32;
        for r in 0..rows {
            let (dyr, hr) = (&dys[r * d..(r + 1) * d], &hs[r * d..(r + 1) * d]);
            let rs = cache.rstd[r];
            let mut mean_g = 0.0f32;
            let mut mean_gh = 0.0f32;
            for k in 0..d {
                let g = dyr[k] * w[k];
                mean_g += g;
                mean_gh += g * hr[k];
                gw[k] += dyr[k] * hr[k];
                gb[k] += dyr[k];
            }
            mean_g /= n;
            mean_gh /= n;
            let dxr = &mut dx[r * d..(r + 1) * d];
            for k in 0..d {
                dxr[k] = rs * (dyr[k] * w[k] - mean_g - hr[k] * mean_gh);
            }
        }
        Array2::from_shape_vec((rows, d), dx).expect("sized")
    }
}

/// Mean and `1 / sqrt(var + eps)` of one row (biased variance, two passes).
#[inline]
fn moments(x: &[f32]) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + LN_EPS).sqrt())
}

impl NamedTensors for LayerNorm {
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>) {
        out.push((join(prefix, "weight"), self.weight.view().into_dyn()));
        out.push((join(prefix, "bias"), self.bias.view().into_dyn()));
    }
}

impl Parameters for LayerNorm {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewD<'_, f32>)) {
        visit_via_tensors(self, prefix, f)
    }
    fn visit_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(String, ndarray::ArrayViewMutD<'_, f32>),
    ) {
        f(join(prefix, "weight"), self.weight.view_mut().into_dyn());
        f(join(prefix, "bias"), self.bias.view_mut().into_dyn());
    }
}

//! `Linear`: `y = x · Wᵀ + b`, PyTorch's layout (`weight` is `[out, in]`).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use rand::Rng;
use rand_distr::{Distribution, Uniform};

use crate::error::{Error, Result};
use crate::gemm::{gemm, Act, Dims, Out, PackedT, Strided, Write};
use crate::params::{join, Parameters};
use crate::pool;

/// A dense affine layer, `y = x · weightᵀ + bias`, with `weight: [out, in]` and `bias: [out]`
/// (the layout of PyTorch's `nn.Linear`, so state_dict tensors move across unchanged).
///
/// ```
/// use ndarray::array;
/// let lin = succulm_tt::Linear::new(array![[1.0, 2.0], [0.0, 1.0], [1.0, 0.0]], array![0.5, 0.0, -1.0])?;
/// let y = lin.forward(array![[1.0, 1.0]].view())?;
/// assert_eq!(y, array![[3.5, 1.0, 0.0]]);
/// # Ok::<(), succulm_tt::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Array2<f32>,
    bias: Array1<f32>,
    /// `weightᵀ`, `[in, out]`, for the forward product; rebuilt after any mutation.
    wt: PackedT,
}

impl PartialEq for Linear {
    /// Equal weights and biases (the cached transpose is derived from them).
    fn eq(&self, other: &Self) -> bool {
        self.weight == other.weight && self.bias == other.bias
    }
}

impl Linear {
    /// Builds a layer from `weight: [out, in]` and `bias: [out]`.
    ///
    /// Errors if the bias length differs from `out`, if either dimension is 0, or if a value is
    /// not finite.
    pub fn new(weight: Array2<f32>, bias: Array1<f32>) -> Result<Self> {
        let (out, inp) = weight.dim();
        if out == 0 || inp == 0 {
            return Err(Error::shape(
                "Linear::new weight",
                &[out.max(1), inp.max(1)],
                &[out, inp],
            ));
        }
        if bias.len() != out {
            return Err(Error::shape("Linear::new bias", &[out], &[bias.len()]));
        }
        if weight.iter().chain(bias.iter()).any(|v| !v.is_finite()) {
            return Err(Error::invalid_arg(
                "weight/bias",
                "contains a non-finite value",
            ));
        }
        Ok(Linear {
            weight,
            bias,
            wt: PackedT::default(),
        })
    }

    /// PyTorch's default initialisation: weight and bias ~ U(−1/√in, 1/√in).
    ///
    /// Errors, as [`new`](Self::new) does, if `in_features` or `out_features` is 0.
    pub fn init<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        rng: &mut R,
    ) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(Error::shape(
                "Linear::init",
                &[out_features.max(1), in_features.max(1)],
                &[out_features, in_features],
            ));
        }
        let k = 1.0 / (in_features as f32).sqrt();
        let dist = Uniform::new_inclusive(-k, k);
        let weight = Array2::from_shape_simple_fn((out_features, in_features), || dist.sample(rng));
        let bias = Array1::from_shape_simple_fn(out_features, || dist.sample(rng));
        Ok(Linear {
            weight,
            bias,
            wt: PackedT::default(),
        })
    }

    /// A layer of zeros with the same shape (used to hold gradients).
    pub fn zeros_like(&self) -> Self {
        Linear {
            weight: Array2::zeros(self.weight.raw_dim()),
            bias: Array1::zeros(self.bias.raw_dim()),
            wt: PackedT::default(),
        }
    }

    /// The weight, `[out, in]`.
    pub fn weight(&self) -> ArrayView2<'_, f32> {
        self.weight.view()
    }

    /// The bias, `[out]`.
    pub fn bias(&self) -> ArrayView1<'_, f32> {
        self.bias.view()
    }

    /// Mutable weight and bias (for optimisers and surgery).
    pub fn weight_bias_mut(&mut self) -> (&mut Array2<f32>, &mut Array1<f32>) {
        self.wt.invalidate();
        (&mut self.weight, &mut self.bias)
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.ncols()
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.nrows()
    }

    /// `x: [rows, in] -> [rows, out]`. Errors if `x` has the wrong number of columns.
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        Error::check_width("Linear::forward input", self.in_features(), x.shape())?;
        Ok(self.apply(x))
    }

    /// `forward` without the shape check (the caller guarantees `x: [rows, in]`).
    #[doc(hidden)]
    pub fn apply(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        self.affine(x, false)
    }

    /// `max(apply(x), 0)`: the FFN's first layer and its ReLU in one pass.
    #[doc(hidden)]
    pub fn apply_relu(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        self.affine(x, true)
    }

    /// [`affine`] with this layer's weight and bias.
    fn affine(&self, x: ArrayView2<'_, f32>, relu: bool) -> Array2<f32> {
        let bias = Some(self.bias.view());
        affine(x, self.weight.view(), &self.wt, bias, relu)
    }

    /// Backward of [`forward`](Self::forward): given the input `x: [rows, in]` and the upstream
    /// gradient `dy: [rows, out]`, **adds** `dW = dyᵀ·x` and `db = Σ_rows dy` into `grads` and
    /// returns `dx = dy · W`, `[rows, in]`.
    #[doc(hidden)]
    pub fn backward(
        &self,
        x: ArrayView2<'_, f32>,
        dy: ArrayView2<'_, f32>,
        grads: &mut Linear,
    ) -> Array2<f32> {
        self.backward_gated(x, dy, grads, None)
    }

    /// [`backward`](Self::backward), then through a ReLU: `dx` is zeroed where
    /// `gate: [rows, in]` (the ReLU's output) is `<= 0`.
    #[doc(hidden)]
    pub fn backward_gated(
        &self,
        x: ArrayView2<'_, f32>,
        dy: ArrayView2<'_, f32>,
        grads: &mut Linear,
        gate: Option<ArrayView2<'_, f32>>,
    ) -> Array2<f32> {
        grads.wt.invalidate();
        let gb = grads.bias.as_slice_mut().expect("contiguous");
        linear_backward(x, dy, self.weight.view(), &mut grads.weight, Some(gb), gate)
    }
}

/// The backward of `y = x · wᵀ (+ b)` for `x: [rows, in]`, `dy: [rows, out]`, `w: [out, in]`:
/// adds `dyᵀ · x` into `gw: [out, in]` and the column sums of `dy` into `gb: [out]`, and
/// returns `dx = dy · w`, `[rows, in]`. With `gate: [rows, in]` (when `x = relu(·)` is the
/// ReLU's output), `dx` is zeroed where `gate <= 0`: the gradient through the ReLU as well.
#[doc(hidden)]
pub fn linear_backward(
    x: ArrayView2<'_, f32>,
    dy: ArrayView2<'_, f32>,
    w: ArrayView2<'_, f32>,
    gw: &mut Array2<f32>,
    gb: Option<&mut [f32]>,
    gate: Option<ArrayView2<'_, f32>>,
) -> Array2<f32> {
    let (rows, inp, out) = (x.nrows(), x.ncols(), dy.ncols());
    let (x, dy, w) = (
        x.as_standard_layout(),
        dy.as_standard_layout(),
        w.as_standard_layout(),
    );
    let (xs, dys, ws) = (
        x.as_slice().expect("standard layout"),
        dy.as_slice().expect("standard layout"),
        w.as_slice().expect("standard layout"),
    );
    let gws = gw.as_slice_mut().expect("gradients are contiguous");
    let dw = Dims {
        m: out,
        n: inp,
        k: rows,
    };
    gemm(
        dw,
        Strided::transposed(dys, out),
        xs,
        inp,
        Out::new(gws, inp, Write::Accumulate),
    );
    if let Some(gb) = gb {
        for r in dys.chunks_exact(out) {
            for (g, &v) in gb.iter_mut().zip(r) {
                *g += v;
            }
        }
    }
    let mut dx = pool::array(rows, inp);
    let dxs = dx.as_slice_mut().expect("standard layout");
    let di = Dims {
        m: rows,
        n: inp,
        k: out,
    };
    let gate = gate.as_ref().map(|g| g.as_standard_layout());
    let act = match &gate {
        Some(g) => Act::ReluGrad {
            gate: g.as_slice().expect("standard layout"),
            ld: inp,
        },
        None => Act::Identity,
    };
    gemm(
        di,
        Strided::rows(dys, out),
        ws,
        inp,
        Out::new(dxs, inp, Write::Overwrite).act(act),
    );
    dx
}

/// `y = x · wᵀ (+ bias)`, then `max(·, 0)` when `relu`; `[rows, out]`, for `x: [rows, in]`
/// and `w: [out, in]` (the layout of `Linear` and of the tied embedding head), with `wt` the
/// cached `wᵀ`; one product through [`crate::gemm`] (bias and ReLU as passes over `y`).
#[doc(hidden)]
pub fn affine(
    x: ArrayView2<'_, f32>,
    w: ArrayView2<'_, f32>,
    wt: &PackedT,
    bias: Option<ArrayView1<'_, f32>>,
    relu: bool,
) -> Array2<f32> {
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let (rows, inp, out) = (x.nrows(), x.ncols(), w.nrows());
    let mut y = pool::array(rows, out);
    let ys = y.as_slice_mut().expect("standard layout");
    let bias_copy: Option<Vec<f32>>;
    let bias = match bias {
        Some(b) if b.to_slice().is_none() => {
            bias_copy = Some(b.to_vec());
            bias_copy.as_deref()
        }
        Some(b) => b.to_slice(),
        None => None,
    };
    let dims = Dims {
        m: rows,
        n: out,
        k: inp,
    };
    let b = wt.get(w);
    let act = if relu { Act::Relu } else { Act::Identity };
    gemm(
        dims,
        Strided::rows(xs, inp),
        b,
        out,
        Out::new(ys, out, Write::Overwrite).bias(bias).act(act),
    );
    y
}

impl Parameters for Linear {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, ndarray::ArrayViewD<'_, f32>)) {
        f(join(prefix, "weight"), self.weight.view().into_dyn());
        f(join(prefix, "bias"), self.bias.view().into_dyn());
    }
    fn visit_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(String, ndarray::ArrayViewMutD<'_, f32>),
    ) {
        self.wt.invalidate();
        f(join(prefix, "weight"), self.weight.view_mut().into_dyn());
        f(join(prefix, "bias"), self.bias.view_mut().into_dyn());
    }
}

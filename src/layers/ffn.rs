//! The ReLU feed-forward network `ffn.2(relu(ffn.0(x)))`, whose two projections are each a
//! [`Projection`]: a dense [`Linear`] or a tensor-train [`TTLayer`]. The model, the optimiser and
//! checkpoints see one interface (forward, backward, parameter visit) whichever a block holds.

use ndarray::{Array2, ArrayView2, ArrayViewD, Zip};
use rand::Rng;

use crate::error::{Error, Result};
use crate::layers::{visit_via_tensors, Linear, NamedTensors};
use crate::params::{join, Parameters};
use crate::pool;
use crate::tt::{TTCache, TTLayer};

/// One FFN projection `[rows, in] -> [rows, out]`.
#[derive(Debug, Clone)]
pub enum Projection {
    /// A dense `Linear` (`weight: [out, in]`, `bias: [out]`); tensors `weight`, `bias`.
    Dense(Linear),
    /// A tensor-train layer; tensors `cores.{k}`, `bias`.
    Tt(TTLayer),
}

impl PartialEq for Projection {
    /// Dense projections compare their tensors; TT projections their spec, cores and bias.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Projection::Dense(a), Projection::Dense(b)) => a == b,
            (Projection::Tt(a), Projection::Tt(b)) => {
                a.spec() == b.spec() && a.cores() == b.cores() && a.bias() == b.bias()
            }
            _ => false,
        }
    }
}

/// What [`Projection::backward`] needs from the forward pass.
#[derive(Debug, Clone)]
pub enum ProjectionCache {
    /// The dense layer's input, `[rows, in]`.
    Dense(Array2<f32>),
    /// The TT layer's input, `[rows, in]`, and its contraction tape.
    Tt(Array2<f32>, TTCache),
}

impl ProjectionCache {
    /// The projection's input, `[rows, in]`.
    pub fn input(&self) -> ArrayView2<'_, f32> {
        match self {
            ProjectionCache::Dense(x) | ProjectionCache::Tt(x, _) => x.view(),
        }
    }

    /// Returns the input's storage to the buffer pool.
    pub(crate) fn recycle(self) {
        match self {
            ProjectionCache::Dense(x) | ProjectionCache::Tt(x, _) => pool::give_array(x),
        }
    }
}

impl Projection {
    /// Input features.
    pub fn in_features(&self) -> usize {
        match self {
            Projection::Dense(l) => l.in_features(),
            Projection::Tt(t) => t.in_features(),
        }
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        match self {
            Projection::Dense(l) => l.out_features(),
            Projection::Tt(t) => t.out_features(),
        }
    }

    /// Zeros of the same shape and kind (to hold gradients).
    pub fn zeros_like(&self) -> Self {
        match self {
            Projection::Dense(l) => Projection::Dense(l.zeros_like()),
            Projection::Tt(t) => Projection::Tt(t.zeros_like()),
        }
    }

    /// The dense equivalent (`[out, in]` weight and bias).
    pub fn to_dense(&self) -> Linear {
        match self {
            Projection::Dense(l) => l.clone(),
            Projection::Tt(t) => t.to_dense(),
        }
    }

    /// `x: [rows, in] -> [rows, out]`; errors if `x` has the wrong width.
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        match self {
            Projection::Dense(l) => l.forward(x),
            Projection::Tt(t) => t.forward(x),
        }
    }

    /// Forward without checks (crate callers guarantee `x: [rows, in]`).
    pub(crate) fn apply(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        match self {
            Projection::Dense(l) => l.apply(x),
            Projection::Tt(t) => t.apply(x),
        }
    }

    /// `max(apply(x), 0)` (fused into the product for a dense layer).
    pub(crate) fn apply_relu(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        match self {
            Projection::Dense(l) => l.apply_relu(x),
            Projection::Tt(t) => relu(t.apply(x)),
        }
    }

    /// Forward keeping what backward needs; takes ownership of the input (kept in the cache).
    /// `x: [rows, in]` (not checked) `-> [rows, out]`.
    pub fn forward_train(&self, x: Array2<f32>) -> (Array2<f32>, ProjectionCache) {
        self.forward_train_act(x, false)
    }

    /// [`forward_train`](Self::forward_train), then `max(·, 0)` when `relu` (the backward
    /// takes the gradient after the ReLU's mask).
    fn forward_train_act(&self, x: Array2<f32>, relu_out: bool) -> (Array2<f32>, ProjectionCache) {
        match self {
            Projection::Dense(l) => {
                let y = if relu_out {
                    l.apply_relu(x.view())
                } else {
                    l.apply(x.view())
                };
                (y, ProjectionCache::Dense(x))
            }
            Projection::Tt(t) => {
                let (y, tape) = t.forward_train(x.view());
                let y = if relu_out { relu(y) } else { y };
                (y, ProjectionCache::Tt(x, tape))
            }
        }
    }

    /// Backward: adds parameter gradients into `grads` (which must be the same kind, as made by
    /// [`zeros_like`](Self::zeros_like)), returns `dx: [rows, in]`.
    ///
    /// # Panics
    /// If `cache` or `grads` is not of this projection's kind (dense vs TT): a programming error,
    /// since both come from this projection's own `forward_train` and `zeros_like`.
    pub fn backward(
        &self,
        cache: &ProjectionCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut Projection,
    ) -> Array2<f32> {
        match (self, cache, grads) {
            (Projection::Dense(l), ProjectionCache::Dense(x), Projection::Dense(g)) => {
                l.backward(x.view(), dy, g)
            }
            (Projection::Tt(t), ProjectionCache::Tt(_, tape), Projection::Tt(g)) => {
                t.backward(tape, dy, g)
            }
            _ => panic!("Projection::backward: cache and grads must match the projection's kind"),
        }
    }

    /// [`backward`](Self::backward) of a projection whose input is a ReLU's output (the FFN's
    /// second layer): `dx` is zeroed where the input `<= 0`, the gradient of the ReLU's input.
    pub(crate) fn backward_relu(
        &self,
        cache: &ProjectionCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut Projection,
    ) -> Array2<f32> {
        match (self, cache, &mut *grads) {
            (Projection::Dense(l), ProjectionCache::Dense(x), Projection::Dense(g)) => {
                l.backward_gated(x.view(), dy, g, Some(x.view()))
            }
            _ => {
                let mut dx = self.backward(cache, dy, grads);
                Zip::from(&mut dx).and(cache.input()).for_each(|g, &h| {
                    if h <= 0.0 {
                        *g = 0.0
                    }
                });
                dx
            }
        }
    }
}

impl NamedTensors for Projection {
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>) {
        match self {
            Projection::Dense(l) => l.tensors(prefix, out),
            Projection::Tt(t) => {
                for (k, core) in t.cores().iter().enumerate() {
                    out.push((join(prefix, &format!("cores.{k}")), core.view()));
                }
                out.push((join(prefix, "bias"), t.bias().into_dyn()));
            }
        }
    }
}

impl Parameters for Projection {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewD<'_, f32>)) {
        visit_via_tensors(self, prefix, f)
    }
    fn visit_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(String, ndarray::ArrayViewMutD<'_, f32>),
    ) {
        match self {
            Projection::Dense(l) => l.visit_mut(prefix, f),
            Projection::Tt(t) => t.visit_mut(prefix, f),
        }
    }
}

/// `y = ffn.2(relu(ffn.0(x)))`, `[rows, d] -> [rows, f] -> [rows, d]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ffn {
    /// `ffn.0`, `d -> f`.
    pub up: Projection,
    /// `ffn.2`, `f -> d`.
    pub down: Projection,
}

/// What [`Ffn::backward`] needs from the forward pass.
#[derive(Debug, Clone)]
pub struct FfnCache {
    up: ProjectionCache,
    /// The down projection's cache; its input is `relu(up(x))`, `[rows, f]`.
    down: ProjectionCache,
}

impl FfnCache {
    /// Returns the cached activations' storage to the buffer pool.
    pub(crate) fn recycle(self) {
        self.up.recycle();
        self.down.recycle();
    }
}

impl Ffn {
    /// PyTorch's default initialisation of two dense layers `d -> d·expansion -> d`.
    pub fn init<R: Rng + ?Sized>(d: usize, expansion: usize, rng: &mut R) -> Self {
        Ffn {
            up: Projection::Dense(Linear::init(d, d * expansion, rng)),
            down: Projection::Dense(Linear::init(d * expansion, d, rng)),
        }
    }

    /// From two projections; errors unless `up: d -> f` and `down: f -> d`.
    pub fn new(up: Projection, down: Projection) -> Result<Self> {
        if up.out_features() != down.in_features() || up.in_features() != down.out_features() {
            return Err(Error::Shape {
                context: "Ffn::new".into(),
                expected: format!("up [{0} -> f], down [f -> {0}]", up.in_features()),
                got: format!(
                    "up [{} -> {}], down [{} -> {}]",
                    up.in_features(),
                    up.out_features(),
                    down.in_features(),
                    down.out_features()
                ),
            });
        }
        Ok(Ffn { up, down })
    }

    /// Zeros of the same shape and kind (to hold gradients).
    pub fn zeros_like(&self) -> Self {
        Ffn {
            up: self.up.zeros_like(),
            down: self.down.zeros_like(),
        }
    }

    /// `x: [rows, d] -> [rows, d]`; errors on a width mismatch.
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let h = relu(self.up.forward(x)?);
        self.down.forward(h.view())
    }

    /// Forward without checks.
    pub(crate) fn apply(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let h = self.up.apply_relu(x);
        self.down.apply(h.view())
    }

    /// Forward keeping what backward needs. `x: [rows, d]` (owned, kept) `-> [rows, d]`.
    pub fn forward_train(&self, x: Array2<f32>) -> (Array2<f32>, FfnCache) {
        let (h, up) = self.up.forward_train_act(x, true);
        let (y, down) = self.down.forward_train(h);
        (y, FfnCache { up, down })
    }

    /// Backward: adds parameter gradients into `grads`, returns `dx: [rows, d]`.
    pub fn backward(
        &self,
        cache: &FfnCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut Ffn,
    ) -> Array2<f32> {
        // Through the ReLU too: the gradient passes where the activation is positive.
        let dh = self.down.backward_relu(&cache.down, dy, &mut grads.down);
        let dx = self.up.backward(&cache.up, dh.view(), &mut grads.up);
        pool::give_array(dh);
        dx
    }
}

impl NamedTensors for Ffn {
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>) {
        self.up.tensors(&join(prefix, "0"), out);
        self.down.tensors(&join(prefix, "2"), out);
    }
}

impl Parameters for Ffn {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewD<'_, f32>)) {
        visit_via_tensors(self, prefix, f)
    }
    fn visit_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(String, ndarray::ArrayViewMutD<'_, f32>),
    ) {
        self.up.visit_mut(&join(prefix, "0"), f);
        self.down.visit_mut(&join(prefix, "2"), f);
    }
}

/// `max(x, 0)` elementwise, in place.
fn relu(mut x: Array2<f32>) -> Array2<f32> {
    x.mapv_inplace(|v| v.max(0.0));
    x
}

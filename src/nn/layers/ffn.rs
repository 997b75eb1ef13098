//! The ReLU feed-forward network `ffn.2(relu(ffn.0(x)))`, whose two projections are each a
//! [`Projection`]: a dense [`Linear`] or a tensor-train [`TTLayer`]. The model, the optimiser and
//! checkpoints see one interface (forward, backward, parameter visit) whichever a block holds.

use ndarray::{Array2, ArrayView2, ArrayViewD, Zip};
use rand::Rng;

use crate::error::{Error, Result};
use crate::nn::layers::{visit_via_tensors, Linear, NamedTensors};
use crate::tt::params::{join, Parameters};
use crate::tt::pool;
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

    /// Rows of the forward's input and output.
    pub(crate) fn rows(&self) -> usize {
        self.input().nrows()
    }

    /// `"dense"` or `"TT"`, for messages.
    fn kind(&self) -> &'static str {
        match self {
            ProjectionCache::Dense(_) => "dense",
            ProjectionCache::Tt(..) => "TT",
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

    /// `"dense"` or `"TT"`, for messages.
    fn kind(&self) -> &'static str {
        match self {
            Projection::Dense(_) => "dense",
            Projection::Tt(_) => "TT",
        }
    }

    /// Errors unless `cache` was recorded by a projection of this kind and shape.
    pub(crate) fn check_cache(&self, cache: &ProjectionCache, context: &str) -> Result<()> {
        if self.kind() != cache.kind() {
            return Err(Error::invalid_arg(
                context,
                format!(
                    "is the cache of a {} projection, this one is {}",
                    cache.kind(),
                    self.kind()
                ),
            ));
        }
        let x = cache.input();
        if x.ncols() != self.in_features() {
            return Err(Error::shape(
                context,
                &[x.nrows(), self.in_features()],
                x.shape(),
            ));
        }
        if let (Projection::Tt(t), ProjectionCache::Tt(_, tape)) = (self, cache) {
            t.check_cache(tape, context)?;
        }
        Ok(())
    }

    /// Errors unless `grads` is of this projection's kind with its parameter shapes (as made
    /// by [`zeros_like`](Self::zeros_like)).
    pub(crate) fn check_grads(&self, grads: &Projection, context: &str) -> Result<()> {
        match (self, grads) {
            (Projection::Dense(l), Projection::Dense(g)) => l.check_same_shape(g, context, ""),
            (Projection::Tt(t), Projection::Tt(g)) => t.check_grads(g, context),
            _ => Err(Error::invalid_arg(
                context,
                format!(
                    "is a {} projection, this one is {} (make gradients with zeros_like)",
                    grads.kind(),
                    self.kind()
                ),
            )),
        }
    }

    /// Forward keeping what backward needs; takes ownership of the input (kept in the cache).
    /// `x: [rows, in] -> [rows, out]`. Errors if `x` is not `in` wide.
    pub fn forward_train(&self, x: Array2<f32>) -> Result<(Array2<f32>, ProjectionCache)> {
        if x.ncols() != self.in_features() {
            return Err(Error::shape(
                "Projection::forward_train x",
                &[x.nrows(), self.in_features()],
                x.shape(),
            ));
        }
        Ok(self.forward_train_unchecked(x))
    }

    /// [`forward_train`](Self::forward_train) without the check (the caller guarantees
    /// `x: [rows, in]`).
    pub(crate) fn forward_train_unchecked(&self, x: Array2<f32>) -> (Array2<f32>, ProjectionCache) {
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
                let (y, tape) = t.forward_train_unchecked(x.view());
                let y = if relu_out { relu(y) } else { y };
                (y, ProjectionCache::Tt(x, tape))
            }
        }
    }

    /// Backward: `dy: [rows, out]`, adds parameter gradients into `grads`, returns
    /// `dx: [rows, in]`.
    ///
    /// Errors, leaving `grads` untouched, unless `cache` comes from a projection of this kind
    /// and shape, `dy` has the forward output's shape `[rows, out]` and `grads` is of this
    /// projection's kind (dense vs TT) and shapes, as made by [`zeros_like`](Self::zeros_like).
    pub fn backward(
        &self,
        cache: &ProjectionCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut Projection,
    ) -> Result<Array2<f32>> {
        self.check_cache(cache, "Projection::backward cache")?;
        let (rows, out) = (cache.rows(), self.out_features());
        Error::check_shape("Projection::backward dy", &[rows, out], dy.shape())?;
        self.check_grads(grads, "Projection::backward grads")?;
        Ok(self.backward_unchecked(cache, dy, grads))
    }

    /// [`backward`](Self::backward) without the checks.
    ///
    /// # Panics
    /// If `cache` or `grads` is not of this projection's kind (dense vs TT), or on a shape
    /// mismatch.
    pub(crate) fn backward_unchecked(
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
                t.backward_unchecked(tape, dy, g)
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
                let mut dx = self.backward_unchecked(cache, dy, grads);
                // A select, so it vectorises (see `gemm`'s ReLU-backward pass).
                Zip::from(&mut dx)
                    .and(cache.input())
                    .for_each(|g, &h| *g = if h <= 0.0 { 0.0 } else { *g });
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

    /// Rows of the forward's input and output.
    pub(crate) fn rows(&self) -> usize {
        self.up.rows()
    }

    /// The up-projection's input (the block's `ln2` output), `[rows, d]`.
    pub fn up_input(&self) -> ArrayView2<'_, f32> {
        self.up.input()
    }

    /// The down-projection's input `relu(ffn.0(x))`, `[rows, f]`.
    pub fn down_input(&self) -> ArrayView2<'_, f32> {
        self.down.input()
    }
}

impl Ffn {
    /// PyTorch's default initialisation of two dense layers `d -> d·expansion -> d`. Errors if
    /// `d` or `expansion` is 0 or `d·expansion` overflows.
    pub fn init<R: Rng + ?Sized>(d: usize, expansion: usize, rng: &mut R) -> Result<Self> {
        let f = d.checked_mul(expansion).ok_or_else(|| {
            Error::invalid_arg("ffn_expansion", format!("{d} × {expansion} overflows"))
        })?;
        Ok(Ffn {
            up: Projection::Dense(Linear::init(d, f, rng)?),
            down: Projection::Dense(Linear::init(f, d, rng)?),
        })
    }

    /// From two projections; errors unless `up: d -> f` and `down: f -> d`.
    pub fn new(up: Projection, down: Projection) -> Result<Self> {
        let ffn = Ffn { up, down };
        ffn.check_layers("Ffn::new")?;
        Ok(ffn)
    }

    /// Errors unless `up: d -> f` and `down: f -> d` (the fields are public, so a struct
    /// literal can pair mismatched projections).
    pub(crate) fn check_layers(&self, context: &str) -> Result<()> {
        let (up, down) = (&self.up, &self.down);
        if up.out_features() != down.in_features() || up.in_features() != down.out_features() {
            return Err(Error::Shape {
                context: context.into(),
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
        Ok(())
    }

    /// Errors unless `cache` was recorded by an FFN of these projections' kinds and shapes.
    pub(crate) fn check_cache(&self, cache: &FfnCache, context: &str) -> Result<()> {
        self.up.check_cache(&cache.up, &format!("{context}.up"))?;
        self.down
            .check_cache(&cache.down, &format!("{context}.down"))
    }

    /// Errors unless `grads` has these projections' kinds and shapes.
    pub(crate) fn check_grads(&self, grads: &Ffn, context: &str) -> Result<()> {
        self.up.check_grads(&grads.up, &format!("{context}.up"))?;
        self.down
            .check_grads(&grads.down, &format!("{context}.down"))
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
    /// Errors if `x` is not `d` wide or the projections do not chain (`d -> f -> d`).
    pub fn forward_train(&self, x: Array2<f32>) -> Result<(Array2<f32>, FfnCache)> {
        self.check_layers("Ffn::forward_train self")?;
        if x.ncols() != self.up.in_features() {
            return Err(Error::shape(
                "Ffn::forward_train x",
                &[x.nrows(), self.up.in_features()],
                x.shape(),
            ));
        }
        Ok(self.forward_train_unchecked(x))
    }

    /// [`forward_train`](Self::forward_train) without the checks.
    pub(crate) fn forward_train_unchecked(&self, x: Array2<f32>) -> (Array2<f32>, FfnCache) {
        let (h, up) = self.up.forward_train_act(x, true);
        let (y, down) = self.down.forward_train_unchecked(h);
        (y, FfnCache { up, down })
    }

    /// Backward: `dy: [rows, d]`, adds parameter gradients into `grads`, returns
    /// `dx: [rows, d]`.
    ///
    /// Errors, leaving `grads` untouched, unless the projections chain, `cache` comes from an
    /// FFN of these projections' kinds and shapes, `dy` has the forward output's shape
    /// `[rows, d]` and `grads` has this FFN's kinds and shapes (as made by
    /// [`zeros_like`](Self::zeros_like)).
    pub fn backward(
        &self,
        cache: &FfnCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut Ffn,
    ) -> Result<Array2<f32>> {
        self.check_layers("Ffn::backward self")?;
        self.check_cache(cache, "Ffn::backward cache")?;
        let (rows, d) = (cache.rows(), self.down.out_features());
        Error::check_shape("Ffn::backward dy", &[rows, d], dy.shape())?;
        self.check_grads(grads, "Ffn::backward grads")?;
        Ok(self.backward_unchecked(cache, dy, grads))
    }

    /// [`backward`](Self::backward) without the checks.
    pub(crate) fn backward_unchecked(
        &self,
        cache: &FfnCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut Ffn,
    ) -> Array2<f32> {
        // Through the ReLU too: the gradient passes where the activation is positive.
        let dh = self.down.backward_relu(&cache.down, dy, &mut grads.down);
        let dx = self
            .up
            .backward_unchecked(&cache.up, dh.view(), &mut grads.up);
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn randn(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<f32> {
        Array2::from_shape_simple_fn((rows, cols), || rng.gen_range(-1.0f32..1.0))
    }

    /// A TT projection `6 -> 8` (modes `[2, 3]` -> `[2, 4]`, full rank).
    fn tt(rng: &mut StdRng) -> Projection {
        let lin = Linear::init(6, 8, rng).unwrap();
        Projection::Tt(TTLayer::from_linear(&[2, 3], &[2, 4], &lin, &[]).unwrap())
    }

    /// `forward_train` and `backward` of both kinds of projection error, without touching the
    /// gradients, on a wrong-width input, a `dy` not of the output's shape, a cache or
    /// gradients of the other kind or of another shape; on valid input they give exactly what
    /// the unchecked versions give.
    #[test]
    fn projection_checked_entry_points_reject_bad_input() {
        let mut rng = StdRng::seed_from_u64(1);
        let dense = Projection::Dense(Linear::init(6, 8, &mut rng).unwrap());
        let tt = tt(&mut rng);
        for (p, other_kind) in [(&dense, &tt), (&tt, &dense)] {
            let x = randn(5, 6, &mut rng);
            let dy = randn(5, 8, &mut rng);
            let (y, cache) = p.forward_train(x.clone()).unwrap();
            let (y0, cache0) = p.forward_train_unchecked(x.clone());
            assert_eq!(y, y0);
            let (mut g, mut g0) = (p.zeros_like(), p.zeros_like());
            let dx = p.backward(&cache, dy.view(), &mut g).unwrap();
            let dx0 = p.backward_unchecked(&cache0, dy.view(), &mut g0);
            assert_eq!(dx, dx0);
            assert_eq!(g, g0);

            let e = p.forward_train(randn(5, 7, &mut rng)).unwrap_err();
            assert!(matches!(e, Error::Shape { .. }), "{e}");
            assert!(e.to_string().contains("Projection::forward_train x"), "{e}");

            let before = g.clone();
            for shape in [(5, 6), (4, 8), (5, 9), (0, 8)] {
                let e = p
                    .backward(&cache, Array2::zeros(shape).view(), &mut g)
                    .unwrap_err();
                assert!(e.to_string().contains("Projection::backward dy"), "{e}");
                assert_eq!(g, before);
            }

            // Gradients and caches of the other kind (this used to panic).
            let mut wrong = other_kind.zeros_like();
            let e = p.backward(&cache, dy.view(), &mut wrong).unwrap_err();
            assert!(e.to_string().contains("Projection::backward grads"), "{e}");
            assert_eq!(wrong, other_kind.zeros_like());
            let (_, other_cache) = other_kind.forward_train(x.clone()).unwrap();
            let e = p.backward(&other_cache, dy.view(), &mut g).unwrap_err();
            assert!(e.to_string().contains("Projection::backward cache"), "{e}");
            assert_eq!(g, before);

            // Gradients and caches of the same kind but another shape.
            let bigger = match p {
                Projection::Dense(_) => Projection::Dense(Linear::init(7, 8, &mut rng).unwrap()),
                Projection::Tt(_) => {
                    let lin = Linear::init(7, 8, &mut rng).unwrap();
                    Projection::Tt(TTLayer::from_linear(&[7], &[2, 4], &lin, &[]).unwrap())
                }
            };
            let mut wrong = bigger.zeros_like();
            assert!(p.backward(&cache, dy.view(), &mut wrong).is_err());
            assert_eq!(wrong, bigger.zeros_like());
            let (_, big_cache) = bigger.forward_train(randn(5, 7, &mut rng)).unwrap();
            assert!(p.backward(&big_cache, dy.view(), &mut g).is_err());
            assert_eq!(g, before);
        }

        // A TT cache of the same width from a layer of another spec.
        let lin = Linear::init(6, 8, &mut rng).unwrap();
        let tt2 = Projection::Tt(TTLayer::from_linear(&[3, 2], &[4, 2], &lin, &[]).unwrap());
        let (_, c2) = tt2.forward_train(randn(5, 6, &mut rng)).unwrap();
        let mut g = tt.zeros_like();
        let e = tt
            .backward(&c2, randn(5, 8, &mut rng).view(), &mut g)
            .unwrap_err();
        assert!(e.to_string().contains("Projection::backward cache"), "{e}");
        assert_eq!(g, tt.zeros_like());
        let mut g2 = tt2.zeros_like();
        let (_, c) = tt.forward_train(randn(5, 6, &mut rng)).unwrap();
        let e = tt
            .backward(&c, randn(5, 8, &mut rng).view(), &mut g2)
            .unwrap_err();
        assert!(e.to_string().contains("Projection::backward grads"), "{e}");
    }

    /// `Ffn::forward_train` and `Ffn::backward` error, without touching the gradients, on a
    /// wrong-width input, a `dy` not of the output's shape, a cache or gradients of another
    /// shape and projections that do not chain; on valid input they give exactly what the
    /// unchecked versions give.
    #[test]
    fn ffn_checked_entry_points_reject_bad_input() {
        let mut rng = StdRng::seed_from_u64(2);
        let ffn = Ffn::init(6, 3, &mut rng).unwrap();
        let x = randn(7, 6, &mut rng);
        let dy = randn(7, 6, &mut rng);
        let (y, cache) = ffn.forward_train(x.clone()).unwrap();
        let (y0, cache0) = ffn.forward_train_unchecked(x.clone());
        assert_eq!(y, y0);
        let (mut g, mut g0) = (ffn.zeros_like(), ffn.zeros_like());
        let dx = ffn.backward(&cache, dy.view(), &mut g).unwrap();
        let dx0 = ffn.backward_unchecked(&cache0, dy.view(), &mut g0);
        assert_eq!(dx, dx0);
        assert_eq!(g, g0);

        let e = ffn.forward_train(randn(7, 5, &mut rng)).unwrap_err();
        assert!(matches!(e, Error::Shape { .. }), "{e}");
        assert!(e.to_string().contains("Ffn::forward_train x"), "{e}");

        let before = g.clone();
        for shape in [(7, 18), (7, 5), (6, 6), (0, 6)] {
            let e = ffn
                .backward(&cache, Array2::zeros(shape).view(), &mut g)
                .unwrap_err();
            assert!(e.to_string().contains("Ffn::backward dy"), "{e}");
            assert_eq!(g, before);
        }

        // Another expansion: its gradients and its cache.
        let other = Ffn::init(6, 2, &mut rng).unwrap();
        let mut wrong = other.zeros_like();
        let e = ffn.backward(&cache, dy.view(), &mut wrong).unwrap_err();
        assert!(e.to_string().contains("Ffn::backward grads"), "{e}");
        assert_eq!(wrong, other.zeros_like());
        let (_, other_cache) = other.forward_train(x.clone()).unwrap();
        let e = ffn.backward(&other_cache, dy.view(), &mut g).unwrap_err();
        assert!(e.to_string().contains("Ffn::backward cache"), "{e}");
        assert_eq!(g, before);

        // Projections that do not chain (the fields are public).
        let broken = Ffn {
            up: ffn.up.clone(),
            down: Projection::Dense(Linear::init(12, 6, &mut rng).unwrap()),
        };
        assert!(broken.forward_train(x.clone()).is_err());
        let mut gb = broken.zeros_like();
        assert!(broken.backward(&cache, dy.view(), &mut gb).is_err());
        assert_eq!(gb, broken.zeros_like());
    }
}

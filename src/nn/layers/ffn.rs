//! The ReLU feed-forward network `ffn.2(relu(ffn.0(x)))`, whose two projections are each a
//! [`Projection`]: a dense [`Linear`] or a tensor-train [`TTLayer`]. The model, the optimiser and
//! checkpoints see one interface ([`Layer`], [`Named`]) whichever a block holds; [`FfnTtSpec`]
//! describes a tensor-train FFN's structure (what `Model::tensorize_ffn` builds).

use ndarray::{Array2, ArrayView2, ArrayViewD, ArrayViewMutD, Zip};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::layers::{check_width, children, parameters_via_named, Layer, Linear, Named};
use crate::tt::pool;
use crate::tt::{TTCache, TTLayer, TTLayout, TTSpec};

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

/// What [`Projection`]'s backward needs from the forward pass.
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

    /// `"dense"` or `"TT"`, for messages.
    fn kind(&self) -> &'static str {
        match self {
            ProjectionCache::Dense(_) => "dense",
            ProjectionCache::Tt(..) => "TT",
        }
    }
}

/// `$body` with `$l` bound to the projection's layer, whichever kind it is.
macro_rules! either {
    ($p:expr, $l:ident => $body:expr) => {
        match $p {
            Projection::Dense($l) => $body,
            Projection::Tt($l) => $body,
        }
    };
}

impl Projection {
    /// Input features.
    pub fn in_features(&self) -> usize {
        either!(self, l => l.in_features())
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        either!(self, l => l.out_features())
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
        either!(self, l => l.forward(x))
    }

    /// Forward without checks (crate callers guarantee `x: [rows, in]`).
    pub(crate) fn apply(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        either!(self, l => l.apply(x))
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

    /// [`Layer::forward_unchecked`], then `max(·, 0)` when `relu_out` (the backward then takes
    /// the gradient after the ReLU's mask: [`backward_relu`](Self::backward_relu) of the next
    /// projection).
    fn forward_act(&self, x: Array2<f32>, relu_out: bool) -> (Array2<f32>, ProjectionCache) {
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
                let (y, (x, tape)) = t.forward_unchecked(x);
                let y = if relu_out { relu(y) } else { y };
                (y, ProjectionCache::Tt(x, tape))
            }
        }
    }

    /// The backward of a projection whose input is a ReLU's output (the FFN's second layer):
    /// `dx` is zeroed where the input `<= 0`, the gradient of the ReLU's input.
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

/// A dense or TT projection, `x: [rows, in] -> [rows, out]`; its cache holds the input.
impl Layer for Projection {
    const NAME: &'static str = "Projection";
    type Input<'a> = Array2<f32>;
    type Cache = ProjectionCache;
    type Dx = Array2<f32>;

    fn zeros_like(&self) -> Self {
        match self {
            Projection::Dense(l) => Projection::Dense(l.zeros_like()),
            Projection::Tt(t) => Projection::Tt(t.zeros_like()),
        }
    }

    fn check_input(&self, x: &Array2<f32>, context: &str) -> Result<()> {
        check_width(x.view(), self.in_features(), context)
    }

    /// Also errors if `cache` was recorded by a projection of the other kind.
    fn check_cache(&self, cache: &ProjectionCache, context: &str) -> Result<()> {
        match (self, cache) {
            (Projection::Dense(l), ProjectionCache::Dense(x)) => l.check_cache(x, context),
            (Projection::Tt(t), ProjectionCache::Tt(x, tape)) => {
                check_width(x.view(), t.in_features(), context)?;
                t.check_cache(tape, context)
            }
            _ => Err(Error::invalid_arg(
                context,
                format!(
                    "is the cache of a {} projection, this one is {}",
                    cache.kind(),
                    self.kind()
                ),
            )),
        }
    }

    fn output_shape(&self, cache: &ProjectionCache) -> [usize; 2] {
        [cache.input().nrows(), self.out_features()]
    }

    /// Also errors, saying so, if `grads` is of the other kind.
    fn check_grads(&self, grads: &Projection, context: &str) -> Result<()> {
        match (self, grads) {
            (Projection::Dense(l), Projection::Dense(g)) => l.check_grads(g, context),
            (Projection::Tt(t), Projection::Tt(g)) => Layer::check_grads(t, g, context),
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

    fn forward_unchecked(&self, x: Array2<f32>) -> (Array2<f32>, ProjectionCache) {
        self.forward_act(x, false)
    }

    /// # Panics
    /// If `cache` or `grads` is not of this projection's kind (dense vs TT).
    fn backward_unchecked(
        &self,
        cache: &ProjectionCache,
        dy: ArrayView2<'_, f32>,
        grads: &mut Projection,
    ) -> Array2<f32> {
        match (self, cache, grads) {
            (Projection::Dense(l), ProjectionCache::Dense(x), Projection::Dense(g)) => {
                l.backward_unchecked(x, dy, g)
            }
            (Projection::Tt(t), ProjectionCache::Tt(_, tape), Projection::Tt(g)) => {
                t.backward_unchecked(tape, dy, g)
            }
            _ => panic!("Projection::backward: cache and grads must match the projection's kind"),
        }
    }
}

impl Named for Projection {
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>) {
        either!(self, l => l.tensors(prefix, out))
    }
    fn tensors_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewMutD<'_, f32>)) {
        either!(self, l => l.tensors_mut(prefix, f))
    }
}
parameters_via_named!(Projection);

/// `y = ffn.2(relu(ffn.0(x)))`, `[rows, d] -> [rows, f] -> [rows, d]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ffn {
    /// `ffn.0`, `d -> f`.
    pub up: Projection,
    /// `ffn.2`, `f -> d`.
    pub down: Projection,
}

children!(Ffn { up: "0", down: "2" });

/// What [`Ffn`]'s backward needs from the forward pass.
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

    /// The projection `which`.
    pub fn projection(&self, which: FfnProjection) -> &Projection {
        match which {
            FfnProjection::Up => &self.up,
            FfnProjection::Down => &self.down,
        }
    }

    /// The projection `which`, mutably (for surgery).
    pub fn projection_mut(&mut self, which: FfnProjection) -> &mut Projection {
        match which {
            FfnProjection::Up => &mut self.up,
            FfnProjection::Down => &mut self.down,
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
}

/// `x: [rows, d]` (owned, kept) `-> [rows, d]`, through `up`, the ReLU and `down`.
impl Layer for Ffn {
    const NAME: &'static str = "Ffn";
    type Input<'a> = Array2<f32>;
    type Cache = FfnCache;
    type Dx = Array2<f32>;

    fn zeros_like(&self) -> Self {
        Ffn {
            up: self.up.zeros_like(),
            down: self.down.zeros_like(),
        }
    }

    /// Errors unless `up: d -> f` and `down: f -> d` (the fields are public, so a struct
    /// literal can pair mismatched projections).
    fn check_layers(&self, context: &str) -> Result<()> {
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

    fn check_input(&self, x: &Array2<f32>, context: &str) -> Result<()> {
        self.up.check_input(x, context)
    }

    fn check_cache(&self, cache: &FfnCache, context: &str) -> Result<()> {
        self.up.check_cache(&cache.up, &format!("{context}.up"))?;
        self.down
            .check_cache(&cache.down, &format!("{context}.down"))
    }

    fn output_shape(&self, cache: &FfnCache) -> [usize; 2] {
        [cache.up.input().nrows(), self.down.out_features()]
    }

    fn check_grads(&self, grads: &Ffn, context: &str) -> Result<()> {
        self.up.check_grads(&grads.up, &format!("{context}.up"))?;
        self.down
            .check_grads(&grads.down, &format!("{context}.down"))
    }

    fn forward_unchecked(&self, x: Array2<f32>) -> (Array2<f32>, FfnCache) {
        let (h, up) = self.up.forward_act(x, true);
        let (y, down) = self.down.forward_unchecked(h);
        (y, FfnCache { up, down })
    }

    fn backward_unchecked(
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

/// `max(x, 0)` elementwise, in place.
fn relu(mut x: Array2<f32>) -> Array2<f32> {
    x.mapv_inplace(|v| v.max(0.0));
    x
}

/// How to tensorize one block's FFN: a [`TTSpec`] for the up-projection `ffn.0` (`d → f`) and
/// one for the down-projection `ffn.2` (`f → d`). The specs' bond dims are *requested* ranks:
/// a bond above its unfolding's limit is capped (and reported by `Model::tensorize_ffn`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FfnTtSpec {
    /// `ffn.0`, `d → f`.
    pub up: TTSpec,
    /// `ffn.2`, `f → d`.
    pub down: TTSpec,
}

/// Splits `n` into two modes `[a, n / a]` with `a` the largest divisor of `n` not above `√n`
/// (`50 → [5, 10]`, `200 → [10, 20]`).
pub fn two_modes(n: usize) -> [usize; 2] {
    let a = (1..=n.max(1))
        .take_while(|a| a * a <= n)
        .filter(|a| n % a == 0)
        .last()
        .unwrap_or(1);
    [a, n / a.max(1)]
}

impl FfnTtSpec {
    /// The seed's factorisation for `d_model` 50 and FFN width 200 with middle bond `m`:
    /// `ffn.0` in_modes `[5, 10]`, out_modes `[10, 20]`, bonds `[10, m, 10]`; `ffn.2` in_modes
    /// `[10, 20]`, out_modes `[5, 10]`, bonds `[5, m, 20]`. The outer bonds are at full rank, so
    /// only `m` truncates (`m = 50` is exact).
    pub fn seed(m: usize) -> Self {
        Self::balanced(50, 200, m)
    }

    /// The seed's recipe for any `d → f → d`: each width split into two modes by [`two_modes`],
    /// the outer bonds at their full rank and the middle bond `m` (capped at its limit,
    /// `min(d, f)`).
    pub fn balanced(d: usize, f: usize, m: usize) -> Self {
        let (dm, fm) = (two_modes(d), two_modes(f));
        // Chain [o1, o2, i1, i2]: bond 1 full rank = min(o1, o2·i1·i2), bond 3 = min(o1·o2·i1, i2).
        let spec = |i: [usize; 2], o: [usize; 2]| TTSpec {
            layout: TTLayout::OutputsThenInputs,
            in_modes: i.to_vec(),
            out_modes: o.to_vec(),
            bond_dims: vec![
                o[0].min(o[1] * i[0] * i[1]),
                m,
                (o[0] * o[1] * i[0]).min(i[1]),
            ],
        };
        FfnTtSpec {
            up: spec(dm, fm),
            down: spec(fm, dm),
        }
    }

    /// This spec's part for the projection `which`.
    pub fn get(&self, which: FfnProjection) -> &TTSpec {
        match which {
            FfnProjection::Up => &self.up,
            FfnProjection::Down => &self.down,
        }
    }
}

/// One of a block's two FFN projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FfnProjection {
    /// `ffn.0`, `d → f`.
    Up,
    /// `ffn.2`, `f → d` (its input is `relu(ffn.0(x))`).
    Down,
}

impl FfnProjection {
    /// Both, in the order the data flows.
    pub const BOTH: [FfnProjection; 2] = [FfnProjection::Up, FfnProjection::Down];

    /// The state_dict name inside the block (`"ffn.0"`, `"ffn.2"`).
    pub fn key(self) -> &'static str {
        match self {
            FfnProjection::Up => "ffn.0",
            FfnProjection::Down => "ffn.2",
        }
    }

    /// The module name in the model (`"blocks.3.ffn.2"`).
    pub fn module(self, block: usize) -> String {
        format!("blocks.{block}.{}", self.key())
    }

    /// This projection's spec in `spec`.
    pub fn spec(self, spec: &FfnTtSpec) -> &TTSpec {
        spec.get(self)
    }
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
            let (y0, cache0) = p.forward_unchecked(x.clone());
            assert_eq!(y, y0);
            let mut g = crate::nn::layers::assert_same_backward(p, &cache, &cache0, dy.view());

            let e = p.forward_train(randn(5, 7, &mut rng)).unwrap_err();
            assert!(matches!(e, Error::Shape { .. }), "{e}");
            assert!(e.to_string().contains("Projection::forward_train x"), "{e}");

            let before = g.clone();
            crate::nn::layers::assert_bad_dy_rejected(
                p,
                &cache,
                &mut g,
                &[(5, 6), (4, 8), (5, 9), (0, 8)],
            );

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
        let (y0, cache0) = ffn.forward_unchecked(x.clone());
        assert_eq!(y, y0);
        let mut g = crate::nn::layers::assert_same_backward(&ffn, &cache, &cache0, dy.view());

        let e = ffn.forward_train(randn(7, 5, &mut rng)).unwrap_err();
        assert!(matches!(e, Error::Shape { .. }), "{e}");
        assert!(e.to_string().contains("Ffn::forward_train x"), "{e}");

        let before = g.clone();
        crate::nn::layers::assert_bad_dy_rejected(
            &ffn,
            &cache,
            &mut g,
            &[(7, 18), (7, 5), (6, 6), (0, 6)],
        );

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

//! The model's layers, one file each, behind one trait, [`Layer`] (in the spirit of llm.c's
//! hand-written passes and candle's `Module`):
//!
//! - [`Layer::forward_train`] keeps what [`Layer::backward`] needs (its `Cache`);
//! - [`Layer::backward`] **adds** the parameter gradients into a value of the layer's own type
//!   (as llm.c's `ParameterTensors` serves for both) and returns the input's gradient;
//! - the checks (input, cache, `dy`, gradients) are written once, in the trait's provided
//!   methods, around the unchecked `forward_unchecked` / `backward_unchecked` each layer
//!   implements (the model's hot paths call those directly);
//! - tensors and sub-layers are listed **once**, by their PyTorch `state_dict` names
//!   (the macro `children!` for a struct's fields; [`Named`] by hand where a layer
//!   slices its storage), and [`Named::tensors`], [`Named::tensors_mut`] and
//!   [`Parameters`] all derive from that listing.
//!
//! | layer | `Input` | `Cache` | `Dx` |
//! | --- | --- | --- | --- |
//! | [`Linear`] | `x: [rows, in]` (owned, kept) | `x` | `[rows, in]` |
//! | [`TTLayer`] | `x: [rows, in]` (owned, kept) | `(x, TTCache)` | `[rows, in]` |
//! | [`Projection`] | `x: [rows, in]` (owned, kept) | [`ProjectionCache`] | `[rows, in]` |
//! | [`LayerNorm`] | `x: [rows, d]` (a view) | [`LayerNormCache`] | `[rows, d]` |
//! | [`Embedding`] | `ids: [rows]` | the ids | `()` |
//! | [`Ffn`] | `x: [rows, d]` (owned, kept) | [`FfnCache`] | `[rows, d]` |
//! | [`Attention`] | `(x: [B*T, d], T)` | [`AttentionCache`] | `[B*T, d]` |
//! | [`Block`] | `(x: [B*T, d], T, stats)` | [`BlockCache`] | `[B*T, d]` |
//!
//! ```
//! use ndarray::Array2;
//! use succulm::nn::layers::{Layer, LayerNorm};
//! let ln = LayerNorm::new(3);
//! let x = Array2::from_shape_vec((2, 3), vec![1.0, 2.0, 4.0, 0.0, 1.0, 0.0]).unwrap();
//! let (y, cache) = ln.forward_train(x.view())?; // [2, 3]
//! let (dx, grads) = ln.gradients(&cache, Array2::ones((2, 3)).view())?;
//! assert_eq!((y.dim(), dx.dim()), ((2, 3), (2, 3)));
//! assert_eq!(grads.bias().to_vec(), vec![2.0, 2.0, 2.0]); // Σ_rows dy
//! assert!(ln.backward(&cache, Array2::ones((2, 4)).view(), &mut ln.zeros_like()).is_err());
//! # Ok::<(), succulm::Error>(())
//! ```

pub mod attention;
pub mod block;
pub mod embedding;
pub mod ffn;
pub mod layer_norm;
pub use succulm_tt::linear;
pub mod positional;

pub use attention::{Attention, AttentionCache};
pub use block::{Block, BlockCache, FfnResidualStats};
pub use embedding::Embedding;
pub use ffn::{Ffn, FfnCache, FfnProjection, FfnTtSpec, Projection, ProjectionCache};
pub use layer_norm::{LayerNorm, LayerNormCache};
pub use linear::Linear;
pub use positional::positional_table;

use ndarray::{Array, Array2, ArrayView2, ArrayViewD, ArrayViewMutD, Dimension};

use crate::error::{Error, Result};
use crate::tt::params::{join, Parameters};
use crate::tt::{TTCache, TTLayer};

/// A module's tensors under their PyTorch `state_dict` names, in `state_dict` order. Implemented
/// once per type, by the macro `children!` from a struct's list of named fields, or by
/// hand; [`Parameters`] and the checks of gradients derive from it.
pub trait Named {
    /// Appends `(name, view)` for every tensor under `prefix`, borrowed for `'a`
    /// (`Model::named_parameters`, `Grads::get`).
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>);
    /// Calls `f(name, view)` for every tensor, mutably, in the order of
    /// [`tensors`](Self::tensors) (any cache derived from the tensors is dropped first).
    fn tensors_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewMutD<'_, f32>));
}

/// A tensor field is one tensor, named by its prefix.
impl<D: Dimension> Named for Array<f32, D> {
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>) {
        out.push((prefix.to_string(), self.view().into_dyn()));
    }
    fn tensors_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewMutD<'_, f32>)) {
        f(prefix.to_string(), self.view_mut().into_dyn());
    }
}

/// A list of modules is named by index (`blocks.0`, `blocks.1`, ...).
impl<T: Named> Named for Vec<T> {
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>) {
        for (i, m) in self.iter().enumerate() {
            m.tensors(&join(prefix, &i.to_string()), out);
        }
    }
    fn tensors_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewMutD<'_, f32>)) {
        for (i, m) in self.iter_mut().enumerate() {
            m.tensors_mut(&join(prefix, &i.to_string()), f);
        }
    }
}

impl Named for Linear {
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>) {
        out.push((join(prefix, "weight"), self.weight().into_dyn()));
        out.push((join(prefix, "bias"), self.bias().into_dyn()));
    }
    fn tensors_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewMutD<'_, f32>)) {
        Parameters::visit_mut(self, prefix, f)
    }
}

impl Named for TTLayer {
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>) {
        for (k, core) in self.cores().iter().enumerate() {
            out.push((join(prefix, &format!("cores.{k}")), core.view()));
        }
        out.push((join(prefix, "bias"), self.bias().into_dyn()));
    }
    fn tensors_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewMutD<'_, f32>)) {
        Parameters::visit_mut(self, prefix, f)
    }
}

/// `prefix.name`, or `prefix` itself for an empty name (a child whose tensors sit directly
/// under its parent's prefix, as the block's attention does).
#[doc(hidden)]
pub fn child(prefix: &str, name: &str) -> String {
    if name.is_empty() {
        prefix.to_string()
    } else {
        join(prefix, name)
    }
}

/// Implements [`Named`] for a struct from **one** list of its fields and their PyTorch names:
/// `children!(Block { ln1: "ln1", attn: "", ln2: "ln2", ffn: "ffn" })`. A field is a tensor
/// (`Array1`, `Array2`, ...), a module, or a `Vec` of modules (named by index). An optional
/// `before_mut: |s| ...` runs before the mutable walk (to drop caches derived from the tensors).
macro_rules! children {
    ($ty:ty { $($field:ident : $name:literal),+ $(,)? } $(before_mut: |$s:ident| $hook:expr)?) => {
        impl $crate::nn::layers::Named for $ty {
            fn tensors<'a>(
                &'a self,
                prefix: &str,
                out: &mut Vec<(String, ::ndarray::ArrayViewD<'a, f32>)>,
            ) {
                $($crate::nn::layers::Named::tensors(
                    &self.$field,
                    &$crate::nn::layers::child(prefix, $name),
                    out,
                );)+
            }
            fn tensors_mut(
                &mut self,
                prefix: &str,
                f: &mut dyn FnMut(String, ::ndarray::ArrayViewMutD<'_, f32>),
            ) {
                $(let $s = &mut *self; $hook;)?
                $($crate::nn::layers::Named::tensors_mut(
                    &mut self.$field,
                    &$crate::nn::layers::child(prefix, $name),
                    f,
                );)+
            }
        }
        $crate::nn::layers::parameters_via_named!($ty);
    };
}
pub(crate) use children;

/// Implements [`Parameters`] for types that implement [`Named`] (the orphan rule keeps a
/// blanket impl out: `Parameters` is `succulm-tt`'s).
macro_rules! parameters_via_named {
    ($($ty:ty),+) => {$(
        impl $crate::tt::params::Parameters for $ty {
            fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, ::ndarray::ArrayViewD<'_, f32>)) {
                let mut v = Vec::new();
                $crate::nn::layers::Named::tensors(self, prefix, &mut v);
                v.into_iter().for_each(|(n, t)| f(n, t));
            }
            fn visit_mut(
                &mut self,
                prefix: &str,
                f: &mut dyn FnMut(String, ::ndarray::ArrayViewMutD<'_, f32>),
            ) {
                $crate::nn::layers::Named::tensors_mut(self, prefix, f)
            }
        }
    )+};
}
pub(crate) use parameters_via_named;

/// A layer with a hand-written backward.
///
/// Implementors write the unchecked passes and the checks of their input and cache; the
/// checked passes ([`forward_train`](Self::forward_train), [`backward`](Self::backward)) and
/// the check of gradients are provided. Errors name the layer and the argument
/// (`"LayerNorm::backward dy"`), and a failed check leaves the gradients untouched.
pub trait Layer: Named + Sized {
    /// The layer's name in messages (`"LayerNorm"`).
    const NAME: &'static str;
    /// What the forward reads (see the [module table](self)).
    type Input<'a>;
    /// What [`backward`](Self::backward) needs from the forward.
    type Cache;
    /// The input's gradient (`()` when the input is not differentiable, as token ids).
    type Dx;

    /// Zeros of the same shape and kind (to hold gradients).
    fn zeros_like(&self) -> Self;

    /// Errors unless the layer's parts fit together (public fields can pair mismatched
    /// sub-layers); `context` names the call. Nothing to check by default.
    fn check_layers(&self, _context: &str) -> Result<()> {
        Ok(())
    }

    /// Errors unless `x` is an input of this layer; `context` names the call
    /// (`"Attention::forward_train"`), errors name the argument (`"… x"`).
    fn check_input(&self, x: &Self::Input<'_>, context: &str) -> Result<()>;

    /// Errors unless `cache` was recorded by a layer of this one's kind and shapes.
    fn check_cache(&self, cache: &Self::Cache, context: &str) -> Result<()>;

    /// The shape of the forward's output, `[rows, out]`, recorded in `cache` (the shape `dy`
    /// must have).
    fn output_shape(&self, cache: &Self::Cache) -> [usize; 2];

    /// Forward keeping what backward needs, without checks (the caller guarantees what
    /// [`check_layers`](Self::check_layers) and [`check_input`](Self::check_input) check).
    fn forward_unchecked(&self, x: Self::Input<'_>) -> (Array2<f32>, Self::Cache);

    /// Backward without checks: `dy` of the output's shape; **adds** the parameter gradients
    /// into `grads` (of this layer's shapes, as [`zeros_like`](Self::zeros_like) makes them)
    /// and returns the input's gradient.
    fn backward_unchecked(
        &self,
        cache: &Self::Cache,
        dy: ArrayView2<'_, f32>,
        grads: &mut Self,
    ) -> Self::Dx;

    /// Errors unless `grads` has this layer's tensors: the same names and shapes (so the same
    /// kind of projection and head count).
    fn check_grads(&self, grads: &Self, context: &str) -> Result<()> {
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        self.tensors("", &mut mine);
        grads.tensors("", &mut theirs);
        for (k, (n, t)) in mine.iter().enumerate() {
            match theirs.get(k) {
                Some((m, g)) if m == n => {
                    if g.shape() != t.shape() {
                        return Err(Error::shape(format!("{context} {n}"), t.shape(), g.shape()));
                    }
                }
                other => {
                    let got = other.map_or("nothing", |(m, _)| m.as_str());
                    return Err(Error::invalid_arg(
                        context,
                        format!(
                            "has {got} where this layer has {n} (make gradients with zeros_like)"
                        ),
                    ));
                }
            }
        }
        if let Some((m, _)) = theirs.get(mine.len()) {
            return Err(Error::invalid_arg(
                context,
                format!("has {m}, which this layer does not have"),
            ));
        }
        Ok(())
    }

    /// Forward keeping what backward needs. Errors unless the layer's parts fit together and
    /// `x` is an input of this layer.
    fn forward_train(&self, x: Self::Input<'_>) -> Result<(Array2<f32>, Self::Cache)> {
        self.check_layers(&format!("{}::forward_train self", Self::NAME))?;
        self.check_input(&x, &format!("{}::forward_train", Self::NAME))?;
        Ok(self.forward_unchecked(x))
    }

    /// Backward: **adds** the parameter gradients into `grads` and returns the input's
    /// gradient.
    ///
    /// Errors, leaving `grads` untouched, unless the layer's parts fit together, `cache` comes
    /// from a layer of this kind and shapes, `dy` has the forward output's shape and `grads`
    /// has this layer's tensors (as made by [`zeros_like`](Self::zeros_like)).
    fn backward(
        &self,
        cache: &Self::Cache,
        dy: ArrayView2<'_, f32>,
        grads: &mut Self,
    ) -> Result<Self::Dx> {
        let context = |what: &str| format!("{}::backward {what}", Self::NAME);
        self.check_layers(&context("self"))?;
        self.check_cache(cache, &context("cache"))?;
        Error::check_shape(&context("dy"), &self.output_shape(cache), dy.shape())?;
        self.check_grads(grads, &context("grads"))?;
        Ok(self.backward_unchecked(cache, dy, grads))
    }

    /// [`backward`](Self::backward) into fresh gradients: `(dx, grads)`.
    fn gradients(&self, cache: &Self::Cache, dy: ArrayView2<'_, f32>) -> Result<(Self::Dx, Self)> {
        let mut grads = self.zeros_like();
        let dx = self.backward(cache, dy, &mut grads)?;
        Ok((dx, grads))
    }
}

/// Errors unless `x` is `cols` wide: `"{context} x"` expected `[rows, cols]`.
pub(crate) fn check_width(x: ArrayView2<'_, f32>, cols: usize, context: &str) -> Result<()> {
    Error::check_width(format!("{context} x"), cols, x.shape())
}

/// `y = x · Wᵀ + b`; the cache is the input.
impl Layer for Linear {
    const NAME: &'static str = "Linear";
    type Input<'a> = Array2<f32>;
    type Cache = Array2<f32>;
    type Dx = Array2<f32>;

    fn zeros_like(&self) -> Self {
        Linear::zeros_like(self)
    }
    fn check_input(&self, x: &Array2<f32>, context: &str) -> Result<()> {
        check_width(x.view(), self.in_features(), context)
    }
    fn check_cache(&self, x: &Array2<f32>, context: &str) -> Result<()> {
        check_width(x.view(), self.in_features(), context)
    }
    fn output_shape(&self, x: &Array2<f32>) -> [usize; 2] {
        [x.nrows(), self.out_features()]
    }
    fn forward_unchecked(&self, x: Array2<f32>) -> (Array2<f32>, Array2<f32>) {
        (self.apply(x.view()), x)
    }
    fn backward_unchecked(
        &self,
        x: &Array2<f32>,
        dy: ArrayView2<'_, f32>,
        grads: &mut Self,
    ) -> Array2<f32> {
        Linear::backward(self, x.view(), dy, grads)
    }
}

/// A tensor-train layer; the cache is the input and the contraction tape.
impl Layer for TTLayer {
    const NAME: &'static str = "TTLayer";
    type Input<'a> = Array2<f32>;
    type Cache = (Array2<f32>, TTCache);
    type Dx = Array2<f32>;

    fn zeros_like(&self) -> Self {
        TTLayer::zeros_like(self)
    }
    fn check_input(&self, x: &Array2<f32>, context: &str) -> Result<()> {
        check_width(x.view(), self.in_features(), context)
    }
    fn check_cache(&self, (x, tape): &Self::Cache, context: &str) -> Result<()> {
        check_width(x.view(), self.in_features(), context)?;
        TTLayer::check_cache(self, tape, context)
    }
    fn output_shape(&self, (x, _): &Self::Cache) -> [usize; 2] {
        [x.nrows(), self.out_features()]
    }
    fn check_grads(&self, grads: &Self, context: &str) -> Result<()> {
        TTLayer::check_grads(self, grads, context)
    }
    fn forward_unchecked(&self, x: Array2<f32>) -> (Array2<f32>, Self::Cache) {
        let (y, tape) = self.forward_train_unchecked(x.view());
        (y, (x, tape))
    }
    fn backward_unchecked(
        &self,
        (_, tape): &Self::Cache,
        dy: ArrayView2<'_, f32>,
        grads: &mut Self,
    ) -> Array2<f32> {
        TTLayer::backward_unchecked(self, tape, dy, grads)
    }
}

/// Test support: the checked [`Layer::backward`] on `cache` and [`Layer::backward_unchecked`] on
/// `cache0` (the caches of the checked and unchecked forwards of one input) give the same input
/// gradient and the same parameter gradients, which are returned.
#[cfg(test)]
pub(crate) fn assert_same_backward<L>(
    layer: &L,
    cache: &L::Cache,
    cache0: &L::Cache,
    dy: ndarray::ArrayView2<'_, f32>,
) -> L
where
    L: Layer + PartialEq + std::fmt::Debug,
    L::Dx: PartialEq + std::fmt::Debug,
{
    let (mut g, mut g0) = (layer.zeros_like(), layer.zeros_like());
    let dx = layer.backward(cache, dy, &mut g).unwrap();
    let dx0 = layer.backward_unchecked(cache0, dy, &mut g0);
    assert_eq!(dx, dx0);
    assert_eq!(g, g0);
    g
}

/// Test support: [`Layer::backward`] refuses each `dy` of the wrong `shapes` with an error
/// naming `NAME::backward dy`, leaving `grads` untouched.
#[cfg(test)]
pub(crate) fn assert_bad_dy_rejected<L>(
    layer: &L,
    cache: &L::Cache,
    grads: &mut L,
    shapes: &[(usize, usize)],
) where
    L: Layer + Clone + PartialEq + std::fmt::Debug,
    L::Dx: std::fmt::Debug,
{
    let before = grads.clone();
    for &shape in shapes {
        let e = layer
            .backward(cache, ndarray::Array2::zeros(shape).view(), grads)
            .unwrap_err();
        let expected = format!("{}::backward dy", L::NAME);
        assert!(e.to_string().contains(&expected), "{e}");
        assert_eq!(*grads, before);
    }
}

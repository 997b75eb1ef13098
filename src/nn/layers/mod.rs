//! The model's layers, one file each. Each layer's forward returns what its backward needs.

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
pub use ffn::{Ffn, FfnCache, Projection, ProjectionCache};
pub use layer_norm::{LayerNorm, LayerNormCache};
pub use linear::Linear;
pub use positional::positional_table;

use ndarray::ArrayViewD;

use crate::tt::params::join;

/// Borrowed, named views of a module's tensors (what [`crate::tt::Parameters::visit`] walks), kept
/// for the lifetime of the borrow (`Model::named_parameters`, `Grads::get`).
pub(crate) trait NamedTensors {
    /// Appends `(name, view)` for every tensor, in `visit` order.
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>);
}

impl NamedTensors for Linear {
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>) {
        out.push((join(prefix, "weight"), self.weight().into_dyn()));
        out.push((join(prefix, "bias"), self.bias().into_dyn()));
    }
}

/// `Parameters::visit` through [`NamedTensors`].
pub(crate) fn visit_via_tensors<T: NamedTensors + ?Sized>(
    t: &T,
    prefix: &str,
    f: &mut dyn FnMut(String, ArrayViewD<'_, f32>),
) {
    let mut v = Vec::new();
    t.tensors(prefix, &mut v);
    for (n, a) in v {
        f(n, a);
    }
}

//! The network: [`layers`] (behind one trait, [`layers::Layer`]: each forward returns what its
//! backward needs; tensors listed once by PyTorch name), [`model`] (the whole transformer and
//! everything `impl Model`: its hand-written backward, KV-cached decoding, surgery and
//! checkpoint formats), [`loss`], [`optim`], [`train`] and [`generate`]. Imports only `text/`,
//! `fs/` and the numeric base below them.

pub mod generate;
#[doc(hidden)]
pub mod kernel_bench;
pub(crate) mod kernels;
pub mod layers;
pub mod loss;
pub mod model;
pub mod optim;
pub mod train;
pub(crate) mod workers;

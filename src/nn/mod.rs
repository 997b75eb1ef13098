//! The network: [`layers`] (each forward returns what its backward needs), [`model`] (the whole
//! transformer, its hand-written backward and KV cache), [`loss`], [`optim`], [`train`] and
//! [`generate`]. Imports only `text/` and the numeric base below it.

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

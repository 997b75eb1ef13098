//! # succulm
//!
//! Build, train and *compress* tiny transformer language models with tensor networks, and
//! measure what compression does to a model's behaviour.
//!
//! (Crate documentation is completed as the modules land.)

#![warn(missing_docs)]

// Links the system OpenBLAS (BLAS for ndarray, LAPACK for ndarray-linalg).
extern crate openblas_src;

pub mod blas;
pub mod checkpoint;
pub mod data;
pub mod embeddings;
pub mod error;
pub mod eval;
pub mod generate;
pub mod io;
mod kernels;
pub mod layers;
pub mod loss;
pub mod model;
pub mod optim;
pub mod params;
pub mod probes;
pub mod report;
pub mod sweep;
pub mod train;
pub mod tt;
pub mod vocab;

pub use data::{load_pairs, Batch, Dataset, EncodedPair};
pub use error::{Error, Result};
pub use layers::Linear;
pub use model::{Grads, KvCache, Model, ModelConfig};
pub use params::Parameters;
pub use probes::Probe;
pub use tt::{tt_svd, TTLayer, TTLayout, TTSpec, Truncation};
pub use vocab::{detokenize, tokenize, Vocab};

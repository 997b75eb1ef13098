//! # succulm
//!
//! Build, train and *compress* tiny transformer language models with tensor networks, and
//! measure what compression does to a model's behaviour.
//!
//! The crate re-creates, on a pure-ndarray core, **SuccuLM** — a small pre-LayerNorm
//! transformer (multi-head causal attention, ReLU FFN, tied embeddings, sinusoidal positions)
//! trained on a tiny corpus about two succulent plants, Ruby and Winy — and the **tensor-train
//! (TT) compression** of its FFN layers, used to "corrupt" chosen layers and watch how the
//! model's speech breaks. It computes the seed's PyTorch function (logits within 1e-4 on the same
//! weights; checkpoints are PyTorch `state_dict`s in JSON).
//!
//! The crate in folders, in dependency order (a folder imports only from those above it here;
//! the map is `docs/architecture.md`):
//! - [`tt`] (the crate `succulm-tt`): the numeric base ([`Error`], `gemm`, [`Linear`],
//!   [`Parameters`]) and tensor trains ([`tt_svd`], [`TTLayer`], data-aware truncation, budgets).
//! - [`fs`]: atomic writes and the generic safetensors reader and writer.
//! - [`text`]: the seed's tokenizer and vocabulary, the pair corpus and its seeded split, the
//!   evaluation prompts, the word embeddings.
//! - [`nn`]: the layers (each forward returns what its backward needs), [`Model`] (the whole
//!   network, hand-written backward, KV cache), loss, Adam, training and healing, generation.
//! - [`compress`]: the compression methods and the one place a weight becomes a tensor train
//!   ([`compress::method`]), [`Model::tensorize_ffn`], calibration and data-aware compression of
//!   several blocks, compressing the layers of any safetensors file.
//! - [`io`]: checkpoints (JSON and safetensors), [`Model::save`] / [`Model::load`].
//! - [`study`]: the metrics, the sweep and its shards, replication across models, the sophia
//!   trap, tables, charts, verdicts and the HTML report, the examples' flag parsing.
//!
//! ```
//! use ndarray::Array2;
//! use succulm::{FfnTtSpec, Model, ModelConfig};
//!
//! // A random upper_middle-shaped model over a 30-word vocabulary.
//! let mut model = Model::new(ModelConfig::profile("upper_middle", 30)?, 42)?;
//! let ids = Array2::from_shape_vec((1, 4), vec![1u32, 7, 8, 9]).unwrap();
//! let dense = model.forward(ids.view())?; // [1, 4, 30]
//! // Compress block 0's FFN as the seed does, at middle bond 20.
//! let report = model.tensorize_ffn(0, &FfnTtSpec::seed(20))?;
//! let compressed = model.forward(ids.view())?;
//! assert!(report.up.rel_error > 0.0);
//! assert_eq!(dense.shape(), compressed.shape());
//! # Ok::<(), succulm::Error>(())
//! ```

#![warn(missing_docs)]

// Links the system OpenBLAS (BLAS for ndarray, LAPACK for ndarray-linalg).
extern crate openblas_src;

/// The tensor-train crate, `succulm-tt`: the numeric base (`gemm`, `Linear`, `Parameters`, the
/// error type) and tensor trains (`tt_svd`, `TTLayer`, data-aware truncation, budgets).
pub use succulm_tt as tt;
pub use succulm_tt::error;

pub mod compress;
pub mod fs;
pub mod io;
pub mod nn;
pub mod study;
pub mod text;

#[doc(hidden)]
pub use nn::kernel_bench;

pub use compress::surgery::{FfnProjection, FfnTtSpec, TensorizeReport};
pub use error::{Error, Result};
pub use io::checkpoint;
pub use nn::layers::Linear;
pub use nn::model::{Grads, KvCache, Model, ModelConfig};
pub use text::data::{load_pairs, Batch, Dataset, EncodedPair};
pub use text::probes::Probe;
pub use text::vocab::{detokenize, tokenize, Vocab};
pub use tt::params::Parameters;
pub use tt::{tt_svd, TTLayer, TTLayout, TTSpec, Truncation};

/// The Rust snippets of `README.md` and `docs/*.md`, compiled and run as doc tests.
#[cfg(doctest)]
mod docs_doctests {
    #[doc = include_str!("../README.md")]
    pub struct Readme;
    #[doc = include_str!("../docs/architecture.md")]
    pub struct Architecture;
    #[doc = include_str!("../docs/checkpoints.md")]
    pub struct Checkpoints;
    #[doc = include_str!("../docs/commands.md")]
    pub struct Commands;
    #[doc = include_str!("../docs/compress.md")]
    pub struct Compress;
    #[doc = include_str!("../docs/data-aware.md")]
    pub struct DataAware;
    #[doc = include_str!("../docs/fixtures.md")]
    pub struct Fixtures;
    #[doc = include_str!("../docs/performance.md")]
    pub struct Performance;
    #[doc = include_str!("../docs/results.md")]
    pub struct Results;
    #[doc = include_str!("../docs/robustness.md")]
    pub struct Robustness;
    #[doc = include_str!("../docs/sharding.md")]
    pub struct Sharding;
}

//! Model surgery: replacing a block's FFN projections by tensor-train layers made from their
//! current weights (the seed's `tensorized_model`), and back. The methods are `Model`'s and live
//! with it ([`crate::nn::model::surgery`]); the FFN's TT spec describes a layer's structure and
//! lives with the FFN ([`crate::nn::layers::ffn`]). Both are re-exported here.
//!
//! ```
//! use succulm::compress::surgery::FfnTtSpec;
//! use succulm::{Model, ModelConfig};
//! let mut model = Model::new(ModelConfig::profile("upper_middle", 30)?, 0)?;
//! let report = model.tensorize_ffn(0, &FfnTtSpec::seed(27))?;
//! assert_eq!(report.up.bond_dims, vec![10, 27, 10]);
//! # Ok::<(), succulm::Error>(())
//! ```

pub use crate::nn::layers::ffn::{two_modes, FfnProjection, FfnTtSpec};
pub use crate::nn::model::surgery::*;

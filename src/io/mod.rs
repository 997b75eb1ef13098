//! Checkpoints: the model and its vocabulary as JSON ([`checkpoint`]) or safetensors
//! ([`safetensors`]), read and written by `Model::save` and `Model::load`. The formats describe
//! the model's tensors and live with it (`crate::nn::model`, so that everything `impl Model`
//! lives there too); this module keeps their public paths.

pub use crate::nn::model::{checkpoint, safetensors};

//! Checkpoints: the model and its vocabulary as JSON ([`checkpoint`]) or safetensors
//! ([`safetensors`]). Imports from `compress/`, `nn/`, `text/` and the numeric base below it.

pub mod checkpoint;
pub mod safetensors;

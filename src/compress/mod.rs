//! Compression: [`surgery`] swaps a block's FFN for tensor-train layers, [`calibration`]
//! collects the inputs each projection sees and compresses several blocks data-aware, and
//! [`file`] compresses the matrices of any safetensors file. Imports only `nn/`, `text/` and the
//! numeric base below it.

pub mod calibration;
pub mod file;
pub mod method;
pub mod model;
pub mod surgery;

pub use file::*;
pub use method::Method;

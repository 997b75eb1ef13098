//! The model's layers, one file each. Each layer's forward returns what its backward needs.

pub mod linear;

pub use linear::Linear;

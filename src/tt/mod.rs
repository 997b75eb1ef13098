//! Tensor-train decomposition and layers (in progress).

//! Visiting parameters (and their mirrored gradients) by PyTorch `state_dict` name.
//!
//! Every module that owns tensors implements [`Parameters`]. A module's gradients are held in a
//! value of the *same type* (as llm.c's `ParameterTensors` serves for both), so the optimiser,
//! checkpoints and parity tests walk parameters and gradients along one path and meet by name.

use ndarray::{ArrayViewD, ArrayViewMutD};

/// A module whose tensors can be visited by name.
///
/// Names are joined with `.` under the given prefix, exactly as PyTorch's `state_dict` names
/// them (`"blocks.0.ffn.0.weight"`).
pub trait Parameters {
    /// Calls `f(name, tensor)` for every tensor, in a fixed order.
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewD<'_, f32>));
    /// Calls `f(name, tensor)` for every tensor, mutably, in the same order as [`visit`](Self::visit).
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewMutD<'_, f32>));

    /// The total number of scalars.
    fn num_params(&self) -> usize {
        let mut n = 0;
        self.visit("", &mut |_, t| n += t.len());
        n
    }
}

/// Joins a prefix and a name with a dot (`join("blocks.0", "ln1")` is `"blocks.0.ln1"`).
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        return name.to_string();
    }
    // Called for every tensor on every optimiser step: no formatting machinery.
    let mut s = String::with_capacity(prefix.len() + 1 + name.len());
    s.push_str(prefix);
    s.push('.');
    s.push_str(name);
    s
}

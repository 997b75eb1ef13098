//! The seed's sinusoidal positional table (a fixed buffer, `pos_enc.pe`).

use ndarray::Array2;

/// `pe: [max_len, d]` with `pe[p, 2k] = sin(p · w_k)`, `pe[p, 2k+1] = cos(p · w_k)`,
/// `w_k = exp(2k · (−ln 10000 / d))`, evaluated in f32 as PyTorch does (the scalar
/// `−ln 10000 / d` rounded to f32, then `2k · c`, `exp`, `p · w_k`, `sin`/`cos` all in f32).
///
/// ```
/// let pe = succulm::nn::layers::positional_table(3, 4);
/// assert_eq!(pe[[0, 0]], 0.0);
/// assert_eq!(pe[[0, 1]], 1.0);
/// assert!((pe[[1, 0]] - 1f32.sin()).abs() < 1e-7);
/// ```
pub fn positional_table(max_len: usize, d: usize) -> Array2<f32> {
    let c = (-(10000.0f64).ln() / d as f64) as f32;
    let mut pe = Array2::<f32>::zeros((max_len, d));
    for p in 0..max_len {
        for k in (0..d).step_by(2) {
            let w = (k as f32 * c).exp();
            let angle = p as f32 * w;
            pe[[p, k]] = angle.sin();
            if k + 1 < d {
                pe[[p, k + 1]] = angle.cos();
            }
        }
    }
    pe
}

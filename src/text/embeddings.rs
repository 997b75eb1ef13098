//! Word vectors from co-occurrence statistics: counts in a window → PPMI → truncated SVD.
//!
//! This is how `fixtures/succulm_embeddings.json` is made (`examples/make_embeddings.rs`): the
//! classic count-based recipe (Levy, Goldberg & Dagan 2015) that gives vectors with the geometry
//! of pretrained ones — words used in the same contexts end up close — from a small background
//! text and the crate's own LAPACK bindings.
//!
//! ```
//! use succulm::text::embeddings::{cooccurrence, ppmi, svd_vectors, cosine};
//! // "a x b" and "a y b": x and y share their contexts, z does not.
//! let sents = vec![vec![0, 1, 2], vec![0, 3, 2], vec![4, 4, 4]];
//! let counts = cooccurrence(&sents, 5, 1).unwrap();
//! assert_eq!(counts[[0, 1]], 1.0);
//! let vecs = svd_vectors(ppmi(counts.view(), 1.0).view(), 3).unwrap();
//! assert!(cosine(vecs.row(1), vecs.row(3)) > 0.99);
//! assert!(cosine(vecs.row(1), vecs.row(4)).abs() < 1e-3);
//! ```

use std::fmt::Write as _;
use std::path::Path;

use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use ndarray_linalg::SVD;

use crate::error::{Error, Result};

/// Symmetric co-occurrence counts `[vocab_size, vocab_size]`: for every pair of positions at
/// distance `1..=window` in the same sentence, `1 / distance` is added to both `(a, b)` and
/// `(b, a)` (the harmonic weighting of word2vec and GloVe). Errors on an id `>= vocab_size` or a
/// window of 0.
pub fn cooccurrence(
    sentences: &[Vec<u32>],
    vocab_size: usize,
    window: usize,
) -> Result<Array2<f64>> {
    if window == 0 {
        return Err(Error::invalid_arg("window", "must be at least 1"));
    }
    let mut counts = Array2::<f64>::zeros((vocab_size, vocab_size));
    for (s, sent) in sentences.iter().enumerate() {
        if let Some((p, &id)) = sent
            .iter()
            .enumerate()
            .find(|(_, &id)| id as usize >= vocab_size)
        {
            return Err(Error::TokenOutOfRange {
                id,
                context: format!("sentences[{s}][{p}]"),
                vocab_size,
            });
        }
        for (i, &a) in sent.iter().enumerate() {
            for d in 1..=window.min(sent.len() - 1 - i) {
                let b = sent[i + d];
                let w = 1.0 / d as f64;
                counts[[a as usize, b as usize]] += w;
                counts[[b as usize, a as usize]] += w;
            }
        }
    }
    Ok(counts)
}

/// Positive pointwise mutual information of a count matrix `[V, C]`:
/// `max(0, log(p(w, c) / (p(w) p_α(c))))`, where the context distribution is smoothed as
/// `p_α(c) ∝ count(c)^α` (`α = 0.75` is the usual choice; `1.0` is plain PPMI). Rows or columns
/// without counts give zeros.
pub fn ppmi(counts: ArrayView2<f64>, alpha: f64) -> Array2<f64> {
    let total: f64 = counts.sum();
    let mut out = Array2::zeros(counts.raw_dim());
    if total <= 0.0 {
        return out;
    }
    let row_sums = counts.sum_axis(Axis(1));
    let col_sums = counts.sum_axis(Axis(0));
    let col_pow = col_sums.mapv(|c| c.powf(alpha));
    let col_norm: f64 = col_pow.sum();
    for ((i, j), &c) in counts.indexed_iter() {
        if c > 0.0 {
            let p_wc = c / total;
            let p_w = row_sums[i] / total;
            let p_c = col_pow[j] / col_norm;
            out[[i, j]] = (p_wc / (p_w * p_c)).ln().max(0.0);
        }
    }
    out
}

/// Truncated SVD vectors `[V, dim]`: `U_k · diag(sqrt(σ_k))` of `m = U Σ Vᵀ`, the symmetric
/// weighting usual for PPMI vectors. Each column's sign is fixed so that its entry of largest
/// magnitude is positive, so the result does not depend on the LAPACK build's sign choices.
/// Errors if `dim` is 0 or larger than `min(rows, cols)`, or if the SVD fails.
pub fn svd_vectors(m: ArrayView2<f64>, dim: usize) -> Result<Array2<f64>> {
    let k = m.nrows().min(m.ncols());
    if dim == 0 || dim > k {
        return Err(Error::invalid_arg(
            "dim",
            format!(
                "{dim} is not in 1..={k} for a matrix of shape {:?}",
                m.shape()
            ),
        ));
    }
    let (u, sigma, _) = m.to_owned().svd(true, false).map_err(|e| Error::Linalg {
        context: "svd_vectors".into(),
        reason: e.to_string(),
    })?;
    let u = u.ok_or_else(|| Error::Linalg {
        context: "svd_vectors".into(),
        reason: "LAPACK returned no U".into(),
    })?;
    let mut out = Array2::zeros((m.nrows(), dim));
    for c in 0..dim {
        let col = u.column(c);
        let pivot = col.iter().copied().fold(
            0.0f64,
            |best, x| if x.abs() > best.abs() { x } else { best },
        );
        let sign = if pivot < 0.0 { -1.0 } else { 1.0 };
        let scale = sign * sigma[c].max(0.0).sqrt();
        out.column_mut(c).assign(&col.mapv(|x| x * scale));
    }
    Ok(out)
}

/// Cosine similarity of two vectors (0 if either is zero).
pub fn cosine(a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
    let na = a.dot(&a).sqrt();
    let nb = b.dot(&b).sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        a.dot(&b) / (na * nb)
    }
}

/// Cosine similarity of two `f32` vectors, computed in `f64` (0 if either is zero).
pub fn cosine_f32(a: ArrayView1<f32>, b: ArrayView1<f32>) -> f64 {
    cosine(a.mapv(f64::from).view(), b.mapv(f64::from).view())
}

/// The rows of `vectors` ordered by decreasing cosine similarity to row `id`, `id` itself
/// excluded: `(row, similarity)` pairs. Errors if `id` is out of range.
pub fn nearest(vectors: ArrayView2<f32>, id: usize) -> Result<Vec<(usize, f64)>> {
    if id >= vectors.nrows() {
        return Err(Error::invalid_arg(
            "id",
            format!("{id} is out of range for {} rows", vectors.nrows()),
        ));
    }
    let q = vectors.row(id);
    let mut sims: Vec<(usize, f64)> = (0..vectors.nrows())
        .filter(|&r| r != id)
        .map(|r| (r, cosine_f32(q, vectors.row(r))))
        .collect();
    sims.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(sims)
}

/// Writes `{word: [floats]}` with the words in the given order (one word per line, 6 decimals),
/// atomically. Errors if the lengths disagree or a value is not finite.
pub fn save_embeddings(
    path: impl AsRef<Path>,
    words: &[String],
    vectors: ArrayView2<f32>,
) -> Result<()> {
    if words.len() != vectors.nrows() {
        return Err(Error::shape(
            "save_embeddings vectors",
            &[words.len(), vectors.ncols()],
            vectors.shape(),
        ));
    }
    let mut out = String::from("{\n");
    for (i, (w, row)) in words.iter().zip(vectors.rows()).enumerate() {
        if let Some(x) = row.iter().find(|x| !x.is_finite()) {
            return Err(Error::invalid_arg("vectors", format!("{w:?} holds {x}")));
        }
        let key = serde_json::to_string(w).map_err(|source| Error::Json {
            path: path.as_ref().to_path_buf(),
            source,
        })?;
        let _ = write!(out, "  {key}: [");
        for (j, x) in row.iter().enumerate() {
            let sep = if j == 0 { "" } else { ", " };
            let _ = write!(out, "{sep}{x:.6}");
        }
        out.push_str(if i + 1 == words.len() { "]\n" } else { "],\n" });
    }
    out.push_str("}\n");
    crate::fs::write_atomic(path, out.as_bytes())
}

//! Cross-entropy over the vocabulary with `<PAD>` targets ignored (PyTorch's
//! `nn.CrossEntropyLoss(ignore_index=0)`): the mean over real targets of `−log softmax(z)[y]`,
//! computed with a stable log-softmax and fused with its gradient.

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::vocab::PAD;

/// Mean cross-entropy of `logits: [N, V]` against `targets: [N]` (`PAD` ignored) and its
/// gradient `dlogits: [N, V]` (zero on ignored rows).
///
/// Errors if the lengths differ, a target is `>= V`, or no target is real.
///
/// ```
/// use ndarray::array;
/// // Two equal logits: loss ln 2 for the real target; the PAD row is ignored.
/// let (loss, g) = succulm::loss::cross_entropy(array![[0.0, 0.0], [5.0, 1.0]].view(), &[1, 0])?;
/// assert!((loss - 2f32.ln()).abs() < 1e-6);
/// assert_eq!(g.row(1).to_vec(), vec![0.0, 0.0]);
/// assert!((g[[0, 1]] + 0.5).abs() < 1e-6);
/// # Ok::<(), succulm::Error>(())
/// ```
pub fn cross_entropy(logits: ArrayView2<'_, f32>, targets: &[u32]) -> Result<(f32, Array2<f32>)> {
    let (n, v) = logits.dim();
    if targets.len() != n {
        return Err(Error::shape(
            "cross_entropy targets",
            &[n],
            &[targets.len()],
        ));
    }
    if let Some((i, &t)) = targets.iter().enumerate().find(|(_, &t)| t as usize >= v) {
        return Err(Error::TokenOutOfRange {
            id: t,
            context: format!("targets[{i}]"),
            vocab_size: v,
        });
    }
    let count = count_real(targets);
    if count == 0 {
        return Err(Error::invalid_arg("targets", "every target is <PAD>"));
    }
    let mut g = logits.to_owned();
    let sum = cross_entropy_in_place(&mut g, targets, 1.0 / count as f32);
    Ok(((sum / count as f64) as f32, g))
}

/// Number of non-PAD targets.
pub(crate) fn count_real(targets: &[u32]) -> usize {
    targets.iter().filter(|&&t| t != PAD).count()
}

/// Replaces `logits: [N, V]` by `scale · d(Σ losses)/dlogits` and returns `Σ losses` over the
/// non-PAD rows (targets must be `< V`).
pub(crate) fn cross_entropy_in_place(logits: &mut Array2<f32>, targets: &[u32], scale: f32) -> f64 {
    let mut total = 0.0f64;
    for (mut row, &t) in logits.rows_mut().into_iter().zip(targets) {
        let r = row.as_slice_mut().expect("contiguous");
        if t == PAD {
            r.iter_mut().for_each(|x| *x = 0.0);
            continue;
        }
        let t = t as usize;
        let max = r.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let zt = r[t] - max;
        let mut sum = 0.0f32;
        for x in r.iter_mut() {
            *x = (*x - max).exp();
            sum += *x;
        }
        // −log softmax[t] = log Σ exp(z − max) − (z_t − max)
        total += (sum.ln() - zt) as f64;
        let k = scale / sum;
        r.iter_mut().for_each(|x| *x *= k);
        r[t] -= scale;
    }
    total
}

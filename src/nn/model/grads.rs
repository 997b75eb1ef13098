//! The losses and their gradients: batches validated and trimmed to their longest real row,
//! computed chunk by chunk (and shared out among threads), forward then backward.

use ndarray::{s, Array2, ArrayView2, ArrayView3};
use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{chunks, Grads, Model, CHUNK_ROWS};
use crate::error::{Error, Result};
use crate::nn::kernels::dispatch;
use crate::nn::layers::Layer;
use crate::nn::loss::{check_teacher, count_real, cross_entropy_in_place, distillation_in_place};
use crate::nn::workers;
use crate::tt::params::Parameters;
use crate::tt::pool;

impl Model {
    /// Mean cross-entropy of the next-token predictions, `PAD` targets ignored (no gradients).
    pub fn loss(&self, x: ArrayView2<'_, u32>, y: ArrayView2<'_, u32>) -> Result<f32> {
        let batch = self.prepare(x, y)?;
        Ok(self.mean_loss(&batch))
    }

    /// Mean over the non-PAD targets of `KL(teacher ‖ model)`, the distillation loss (no
    /// gradients): `x, y: [B, T]`, `teacher: [B, T, V]` the teacher's next-token probabilities
    /// (only read where `y` is not PAD). See [`crate::nn::loss::distillation`].
    ///
    /// Errors as [`loss`](Self::loss), if `teacher` is not `[B, T, V]`, or if a teacher
    /// distribution at a real target is not finite and non-negative, or does not sum to 1.
    pub fn distill_loss(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        teacher: ArrayView3<'_, f32>,
    ) -> Result<f32> {
        let batch = self.prepare_distill(x, y, teacher)?;
        Ok(self.mean_loss(&batch))
    }

    /// The mean loss of a prepared batch, chunk by chunk.
    fn mean_loss(&self, batch: &Prepared) -> f32 {
        let sum: f64 = batch
            .rows()
            .chunks()
            .map(|chunk| {
                let rows = chunk.rows();
                let (mut logits, cache) = self.forward_rows(rows.x, rows.seq, None);
                let sum = rows.loss_in_place(&mut logits, 1.0);
                pool::give_array(logits);
                cache.recycle();
                sum
            })
            .sum();
        (sum / batch.count as f64) as f32
    }

    /// Validates a training pair and trims it to its longest real row (the loss head:
    /// cross-entropy on `y`).
    fn prepare(&self, x: ArrayView2<'_, u32>, y: ArrayView2<'_, u32>) -> Result<Prepared> {
        if x.dim() != y.dim() {
            return Err(Error::shape("loss targets y", x.shape(), y.shape()));
        }
        self.check_ids(x, "x")?;
        self.check_ids(y, "y")?;
        let t = trimmed_len(y);
        let count = count_real(&y.iter().copied().collect::<Vec<_>>());
        if count == 0 {
            return Err(Error::invalid_arg("y", "every target is <PAD>"));
        }
        Ok(Prepared {
            rows: Chunk {
                x: Cow::Owned(x.slice(s![.., ..t]).iter().copied().collect()),
                y: Cow::Owned(y.slice(s![.., ..t]).iter().copied().collect()),
                teacher: None,
                seq: t,
                v: self.config.vocab_size,
            },
            count,
        })
    }

    /// As [`prepare`](Self::prepare), with the loss head `KL(teacher ‖ model)`: also checks
    /// `teacher: [B, T, V]` (its distributions at real targets) and trims it the same way.
    fn prepare_distill(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        teacher: ArrayView3<'_, f32>,
    ) -> Result<Prepared> {
        let mut batch = self.prepare(x, y)?;
        let (b, t) = x.dim();
        let v = self.config.vocab_size;
        Error::check_shape("distillation teacher", &[b, t, v], teacher.shape())?;
        let seq = batch.rows.seq;
        let probs: Vec<f32> = teacher.slice(s![.., ..seq, ..]).iter().copied().collect();
        check_teacher(&probs, v, &batch.rows.y, |i| {
            format!("teacher[{}, {}]", i / seq, i % seq)
        })?;
        batch.rows.teacher = Some(Cow::Owned(probs));
        Ok(batch)
    }

    /// The loss (mean cross-entropy over non-PAD targets) and its gradient with respect to every
    /// parameter. `x, y: [B, T]` of the same shape.
    ///
    /// The batch is computed in chunks of a few sequences (about 128 rows), each only up to its
    /// own longest real row (exact: the causal mask keeps real positions from seeing later
    /// padding, and PAD targets are ignored).
    pub fn loss_and_grads(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
    ) -> Result<(f32, Grads)> {
        let mut grads = self.zero_grads();
        let loss = self.accumulate_grads(x, y, &mut grads)?;
        Ok((loss, grads))
    }

    /// The distillation loss ([`distill_loss`](Self::distill_loss): mean `KL(teacher ‖ model)`
    /// over non-PAD targets) and its gradient with respect to every parameter, computed in
    /// chunks as [`loss_and_grads`](Self::loss_and_grads).
    pub fn distill_loss_and_grads(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        teacher: ArrayView3<'_, f32>,
    ) -> Result<(f32, Grads)> {
        let mut grads = self.zero_grads();
        let loss = self.accumulate_distill_grads(x, y, teacher, &mut grads)?;
        Ok((loss, grads))
    }

    /// As [`loss_and_grads`](Self::loss_and_grads), but **adds** the gradient into `grads`
    /// (which must come from [`zero_grads`](Self::zero_grads) of this model) and returns the loss.
    pub fn accumulate_grads(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        grads: &mut Grads,
    ) -> Result<f32> {
        let batch = self.prepare(x, y)?;
        Ok(self.accumulate(&batch, grads))
    }

    /// As [`distill_loss_and_grads`](Self::distill_loss_and_grads), but **adds** the gradient
    /// into `grads` (from [`zero_grads`](Self::zero_grads) of this model) and returns the loss.
    /// `teacher: [B, T, V]` holds the teacher's next-token probabilities for `x, y: [B, T]`.
    pub fn accumulate_distill_grads(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        teacher: ArrayView3<'_, f32>,
        grads: &mut Grads,
    ) -> Result<f32> {
        let batch = self.prepare_distill(x, y, teacher)?;
        Ok(self.accumulate(&batch, grads))
    }

    /// Adds the gradient of a prepared batch's mean loss into `grads`; returns the loss.
    fn accumulate(&self, batch: &Prepared, grads: &mut Grads) -> f32 {
        let scale = 1.0 / batch.count as f32;
        let sum = self.backward_rows(batch.rows(), scale, &mut grads.inner);
        (sum / batch.count as f64) as f32
    }

    /// As [`accumulate_grads`](Self::accumulate_grads), with the batch's chunks (a few
    /// sequences each) shared out dynamically among `threads` threads: each thread takes the
    /// next unclaimed piece of the batch as it becomes free, so a slower core (a busy virtual
    /// CPU, an efficiency core) simply does fewer. Every piece's gradient goes to its own
    /// buffer in `scratch` (at most 16, kept between calls), and they are added into `grads`
    /// in the batch's order, so the result does not depend on the timing or on `threads`
    /// (≥ 2); it equals the one-thread result up to float summation order. Set
    /// [`crate::tt::blas::set_num_threads`]`(1)` to avoid oversubscription.
    pub fn accumulate_grads_threaded(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        grads: &mut Grads,
        scratch: &mut Vec<Grads>,
        threads: usize,
    ) -> Result<f32> {
        let batch = self.prepare(x, y)?;
        Ok(self.accumulate_threaded(&batch, grads, scratch, threads))
    }

    /// [`accumulate_distill_grads`](Self::accumulate_distill_grads) shared out among `threads`
    /// threads exactly as [`accumulate_grads_threaded`](Self::accumulate_grads_threaded) does
    /// (the same result for any `threads` ≥ 2; equal to the one-thread result up to float
    /// summation order).
    pub fn accumulate_distill_grads_threaded(
        &self,
        x: ArrayView2<'_, u32>,
        y: ArrayView2<'_, u32>,
        teacher: ArrayView3<'_, f32>,
        grads: &mut Grads,
        scratch: &mut Vec<Grads>,
        threads: usize,
    ) -> Result<f32> {
        let batch = self.prepare_distill(x, y, teacher)?;
        Ok(self.accumulate_threaded(&batch, grads, scratch, threads))
    }

    /// [`accumulate`](Self::accumulate) shared out among `threads` threads (see
    /// [`accumulate_grads_threaded`](Self::accumulate_grads_threaded)).
    fn accumulate_threaded(
        &self,
        batch: &Prepared,
        grads: &mut Grads,
        scratch: &mut Vec<Grads>,
        threads: usize,
    ) -> f32 {
        let (t, count) = (batch.rows.seq, batch.count);
        let b = batch.rows.x.len() / t;
        let threads = threads.clamp(1, b.max(1));
        if threads == 1 {
            return self.accumulate(batch, grads);
        }
        let scale = 1.0 / count as f32;
        // Pieces: contiguous runs of whole chunks, at most MAX_PIECES of them.
        let per_chunk = (CHUNK_ROWS / t).max(1);
        let n_chunks = b.div_ceil(per_chunk);
        let pieces = n_chunks.min(MAX_PIECES);
        while scratch.len() < pieces {
            scratch.push(self.zero_grads());
        }
        let seqs = |k: usize| {
            let c = |k: usize| (k * n_chunks / pieces * per_chunk).min(b);
            c(k)..c(k + 1)
        };
        let slots: Vec<Mutex<(&mut Model, f64)>> = scratch[..pieces]
            .iter_mut()
            .map(|g| Mutex::new((&mut g.inner, 0.0)))
            .collect();
        let next = AtomicUsize::new(0);
        let rows = batch.rows();
        workers::run(threads, &|_| loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= pieces {
                break;
            }
            let mut slot = slots[k].lock().unwrap_or_else(|e| e.into_inner());
            let (g, sum) = &mut *slot;
            zero_all(g);
            *sum = self.backward_rows(rows.sequences(seqs(k)), scale, g);
        });
        let total: f64 = slots
            .into_iter()
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()).1)
            .sum();
        // grads += piece 0, then piece 1, …: a fixed order for every element, whichever
        // thread sums it. The threads split the elements of all tensors, end to end.
        let parts: Vec<Vec<&[f32]>> = scratch[..pieces]
            .iter()
            .map(|g| {
                g.named()
                    .into_iter()
                    .map(|(_, v)| v.to_slice().expect("gradients are contiguous"))
                    .collect()
            })
            .collect();
        let dst = TensorsMut::of(&mut grads.inner);
        let total_len = dst.len();
        workers::run(threads, &|w| {
            let range = w * total_len / threads..(w + 1) * total_len / threads;
            let add = |i: usize, at: usize, d: &mut [f32]| {
                for p in &parts {
                    let s = &p[i][at..at + d.len()];
                    dispatch!(add_into, (&mut *d, s));
                }
            };
            // SAFETY: the threads' ranges are disjoint, and `dst` holds `grads` borrowed.
            unsafe { dst.for_each_in(range, add) };
        });
        (total / count as f64) as f32
    }

    /// Forward and backward of `Σ losses · scale` on `rows`, chunk by chunk, each chunk trimmed;
    /// returns `Σ losses`.
    fn backward_rows(&self, rows: Rows<'_>, scale: f32, g: &mut Model) -> f64 {
        rows.chunks()
            .map(|chunk| self.backward_chunk(chunk.rows(), scale, g))
            .sum()
    }

    /// [`backward_rows`](Self::backward_rows) on one chunk of whole sequences.
    fn backward_chunk(&self, rows: Rows<'_>, scale: f32, g: &mut Model) -> f64 {
        let (mut logits, cache) = self.forward_rows(rows.x, rows.seq, None);
        let sum = rows.loss_in_place(&mut logits, scale);
        let dlogits = logits;
        // logits = h · Eᵀ
        let dh = self
            .embed
            .head_backward(cache.h.view(), dlogits.view(), &mut g.embed);
        pool::give_array(dlogits);
        let mut dx = self
            .ln_f
            .backward_unchecked(&cache.ln_f, dh.view(), &mut g.ln_f);
        pool::give_array(dh);
        for ((block, c), gb) in self
            .blocks
            .iter()
            .zip(&cache.blocks)
            .zip(&mut g.blocks)
            .rev()
        {
            let next = block.backward_unchecked(c, dx.view(), gb);
            pool::give_array(std::mem::replace(&mut dx, next));
        }
        // x = embed[ids] + pe: the positional table is a constant.
        self.embed
            .backward_unchecked(&cache.ids, dx.view(), &mut g.embed);
        pool::give_array(dx);
        cache.recycle();
        sum
    }
}

/// Most pieces (gradient buffers) a threaded gradient pass splits a batch into.
const MAX_PIECES: usize = 16;

/// Sets every tensor of `m` to zero (a `memset` where contiguous).
pub(super) fn zero_all(m: &mut Model) {
    m.visit_mut("", &mut |_, mut t| match t.as_slice_mut() {
        Some(s) => s.fill(0.0),
        None => t.fill(0.0),
    });
}

/// Every tensor of a model as a raw `(pointer, length)`, in `visit_mut` order, so that threads
/// can write disjoint element ranges of them. Holds the model's mutable borrow meanwhile.
struct TensorsMut<'a>(
    Vec<(*mut f32, usize)>,
    std::marker::PhantomData<&'a mut Model>,
);

// SAFETY: the pointers are only dereferenced through `for_each_in`, whose callers guarantee
// that no two threads pass overlapping ranges; the model itself stays borrowed.
unsafe impl Sync for TensorsMut<'_> {}

impl<'a> TensorsMut<'a> {
    /// The tensors of `m` (all contiguous: gradients are built that way).
    fn of(m: &'a mut Model) -> Self {
        let mut v = Vec::new();
        m.visit_mut("", &mut |_, mut t| {
            let s = t.as_slice_mut().expect("gradients are contiguous");
            v.push((s.as_mut_ptr(), s.len()));
        });
        TensorsMut(v, std::marker::PhantomData)
    }

    /// Total number of elements.
    fn len(&self) -> usize {
        self.0.iter().map(|t| t.1).sum()
    }

    /// `f(tensor index, offset in that tensor, elements)` for every tensor's part of the
    /// element `range`, counted over all tensors end to end.
    ///
    /// # Safety
    /// No other thread may access `range` of these tensors meanwhile.
    unsafe fn for_each_in(
        &self,
        range: std::ops::Range<usize>,
        mut f: impl FnMut(usize, usize, &mut [f32]),
    ) {
        let mut base = 0;
        for (i, &(p, len)) in self.0.iter().enumerate() {
            let (lo, hi) = (range.start.max(base), range.end.min(base + len));
            if lo < hi {
                f(
                    i,
                    lo - base,
                    std::slice::from_raw_parts_mut(p.add(lo - base), hi - lo),
                );
            }
            base += len;
        }
    }
}

/// `d += s`, elementwise.
#[inline(always)]
fn add_into(d: &mut [f32], s: &[f32]) {
    d.iter_mut().zip(s).for_each(|(d, &s)| *d += s);
}

/// What a training pass scores a chunk's logits against: its loss head.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    /// Cross-entropy on the labels `y`.
    Labels,
    /// `KL(teacher ‖ model)` against teacher probabilities `[rows, V]` (flattened row by row,
    /// aligned with `y`; rows whose label is PAD are ignored).
    Teacher(&'a [f32]),
}

/// Flattened training rows: `x`, `y` (`[B·seq]`, whole sequences) and their loss head.
#[derive(Debug, Clone, Copy)]
struct Rows<'a> {
    x: &'a [u32],
    y: &'a [u32],
    target: Target<'a>,
    /// Positions per sequence.
    seq: usize,
    /// The vocabulary size `V` (the width of a teacher row).
    v: usize,
}

impl<'a> Rows<'a> {
    /// The rows of the sequences `r`.
    fn sequences(self, r: std::ops::Range<usize>) -> Rows<'a> {
        self.slice(r.start * self.seq..r.end * self.seq)
    }

    /// The rows `r` (whole sequences).
    fn slice(self, r: std::ops::Range<usize>) -> Rows<'a> {
        let target = match self.target {
            Target::Labels => Target::Labels,
            Target::Teacher(p) => Target::Teacher(&p[r.start * self.v..r.end * self.v]),
        };
        Rows {
            x: &self.x[r.clone()],
            y: &self.y[r],
            target,
            ..self
        }
    }

    /// Chunks of whole sequences of about [`CHUNK_ROWS`] rows, each cut to its own longest
    /// real row; chunks whose targets are all PAD are left out.
    fn chunks(self) -> impl Iterator<Item = Chunk<'a>> {
        chunks(self.x.len(), self.seq).filter_map(move |(r, _)| trim_chunk(self.slice(r)))
    }

    /// Replaces `logits: [rows, V]` by `scale · d(Σ losses)/dlogits` and returns `Σ losses` over
    /// the non-PAD targets.
    fn loss_in_place(&self, logits: &mut Array2<f32>, scale: f32) -> f64 {
        match self.target {
            Target::Labels => cross_entropy_in_place(logits, self.y, scale),
            Target::Teacher(p) => distillation_in_place(logits, p, self.y, scale),
        }
    }
}

/// A validated batch, cut to its longest real row and flattened (`[B·seq]`, teacher
/// `[B·seq, V]`), with its loss head.
struct Prepared {
    rows: Chunk<'static>,
    /// Real (non-PAD) targets: the loss's denominator.
    count: usize,
}

impl Prepared {
    fn rows(&self) -> Rows<'_> {
        self.rows.rows()
    }
}

/// A chunk of whole sequences cut to its own longest real row: borrowed when nothing is cut.
struct Chunk<'a> {
    x: Cow<'a, [u32]>,
    y: Cow<'a, [u32]>,
    /// The teacher rows, cut the same way, when distilling.
    teacher: Option<Cow<'a, [f32]>>,
    seq: usize,
    v: usize,
}

impl Chunk<'_> {
    fn rows(&self) -> Rows<'_> {
        Rows {
            x: &self.x,
            y: &self.y,
            target: match &self.teacher {
                None => Target::Labels,
                Some(p) => Target::Teacher(p),
            },
            seq: self.seq,
            v: self.v,
        }
    }
}

/// Cuts a chunk (sequences of `seq` positions) to its longest real row; `None` if every
/// target is PAD (the chunk adds nothing). Exact, as trimming a whole batch is: real positions
/// never attend to later ones, and PAD targets (and their teacher rows) add nothing.
fn trim_chunk(rows: Rows<'_>) -> Option<Chunk<'_>> {
    let seq = rows.seq;
    let t = rows
        .y
        .chunks_exact(seq)
        .map(crate::text::data::real_len)
        .max()
        .unwrap_or(0);
    if t == 0 {
        return None;
    }
    let teacher = match rows.target {
        Target::Labels => None,
        Target::Teacher(p) => Some(Cow::Borrowed(p)),
    };
    let whole = Chunk {
        x: Cow::Borrowed(rows.x),
        y: Cow::Borrowed(rows.y),
        teacher,
        seq,
        v: rows.v,
    };
    if t == seq {
        return Some(whole);
    }
    // The first t positions (of `width` values each) of every sequence.
    fn cut<T: Copy>(values: &[T], seq: usize, t: usize, width: usize) -> Cow<'static, [T]> {
        values
            .chunks_exact(seq * width)
            .flat_map(|row| row[..t * width].iter().copied())
            .collect::<Vec<T>>()
            .into()
    }
    Some(Chunk {
        x: cut(&whole.x, seq, t, 1),
        y: cut(&whole.y, seq, t, 1),
        teacher: whole.teacher.map(|p| cut(&p, seq, t, rows.v)),
        seq: t,
        v: rows.v,
    })
}

/// The length of the longest real row: one past the last non-PAD target of any row.
fn trimmed_len(y: ArrayView2<'_, u32>) -> usize {
    crate::text::data::longest_real(y).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Teacher value of sequence `b`, position `p`, token `j`: every cut row can be traced.
    fn mark(b: usize, p: usize, j: usize) -> f32 {
        (100 * b + 10 * p + j) as f32
    }

    #[test]
    fn trimming_cuts_the_teacher_rows_with_their_positions() {
        let (seq, v) = (5, 2);
        // Three sequences; the longest real target is at position 2 (of sequence 1).
        let y = [3u32, 4, 0, 0, 0, 5, 6, 7, 0, 0, 8, 0, 0, 0, 0];
        let x: Vec<u32> = (0..15).collect();
        let teacher: Vec<f32> = (0..3 * seq * v)
            .map(|i| mark(i / (seq * v), i / v % seq, i % v))
            .collect();
        let rows = Rows {
            x: &x,
            y: &y,
            target: Target::Teacher(&teacher),
            seq,
            v,
        };
        let chunk = trim_chunk(rows).expect("a real target");
        let cut = chunk.rows();
        assert_eq!(cut.seq, 3);
        assert_eq!(cut.x, [0, 1, 2, 5, 6, 7, 10, 11, 12]);
        assert_eq!(cut.y, [3, 4, 0, 5, 6, 7, 8, 0, 0]);
        let Target::Teacher(p) = cut.target else {
            panic!("the loss head changed")
        };
        let want: Vec<f32> = (0..3)
            .flat_map(|b| (0..3).flat_map(move |t| (0..v).map(move |j| mark(b, t, j))))
            .collect();
        assert_eq!(p, want.as_slice());
        // The second sequence alone, by `sequences`, and then the labels head.
        let one = rows.sequences(1..2);
        assert_eq!(one.y, [5, 6, 7, 0, 0]);
        let Target::Teacher(p) = one.target else {
            panic!("the loss head changed")
        };
        assert_eq!(p[0], mark(1, 0, 0));
        assert_eq!(p.len(), seq * v);
        let labels = Rows {
            target: Target::Labels,
            ..rows
        };
        assert!(matches!(
            trim_chunk(labels).unwrap().rows().target,
            Target::Labels
        ));
        // All padding: nothing to compute; real up to the end: nothing cut (borrowed).
        let pad = [0u32; 15];
        assert!(trim_chunk(Rows { y: &pad, ..rows }).is_none());
        let full = [1u32; 15];
        let whole = trim_chunk(Rows { y: &full, ..rows }).unwrap();
        assert!(matches!(whole.x, Cow::Borrowed(_)));
        assert!(matches!(whole.teacher, Some(Cow::Borrowed(_))));
    }
}

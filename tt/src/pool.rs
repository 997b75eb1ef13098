//! A per-thread pool of `f32` buffers for the activations of the forward and backward passes.
//!
//! One training step of a small model allocates and frees the same few dozen arrays (`[rows, d]`,
//! `[rows, 3d]`, `[rows, f]`, …) chunk after chunk. Through the system allocator every one of
//! them is zero-filled, and freed memory goes back to the kernel and faults in again at the next
//! chunk. Drawing them from this pool instead costs neither.
//!
//! * [`take`] returns a buffer of the requested length whose contents are **unspecified** (old
//!   activations; always initialised `f32`s): callers overwrite every element. [`zeros`] is
//!   the zero-filled variant.
//! * [`give`] / [`give_array`] return a buffer once it is no longer needed.
//!
//! Each thread uses its own pool (no locking on the hot path). A pool outlives its thread: at
//! thread exit it is parked in a small global stash and adopted by the next thread that needs
//! one, so short-lived threads (the sweep's scoped threads, a caller's own) reuse earlier buffers.
//! The pool is bounded ([`MAX_BUFFERS`], [`MAX_FLOATS`]); beyond that, buffers are freed.

use std::cell::RefCell;
use std::sync::Mutex;

use ndarray::{Array, Array2, Dimension};

/// Most buffers one thread keeps.
const MAX_BUFFERS: usize = 256;
/// Most `f32`s one thread keeps (64 MiB).
const MAX_FLOATS: usize = 16 << 20;
/// Most pools parked between threads.
const MAX_PARKED: usize = 8;

#[derive(Default)]
struct Pool {
    bufs: Vec<Vec<f32>>,
    floats: usize,
}

impl Pool {
    fn take(&mut self, len: usize) -> Vec<f32> {
        // Best fit: the shortest buffer already holding `len` initialised values; else the
        // longest one (grown, so only its new tail is written).
        let mut best: Option<usize> = None;
        for (i, b) in self.bufs.iter().enumerate() {
            best = match best {
                None => Some(i),
                Some(j) => {
                    let c = &self.bufs[j];
                    let better = if b.len() >= len {
                        c.len() < len || b.len() < c.len()
                    } else {
                        c.len() < len && b.len() > c.len()
                    };
                    Some(if better { i } else { j })
                }
            };
        }
        let mut v = match best {
            Some(i) => {
                let v = self.bufs.swap_remove(i);
                self.floats -= v.capacity();
                v
            }
            None => Vec::new(),
        };
        if v.len() >= len {
            v.truncate(len);
        } else {
            v.resize(len, 0.0);
        }
        v
    }

    fn give(&mut self, v: Vec<f32>) {
        if v.capacity() == 0
            || self.bufs.len() >= MAX_BUFFERS
            || self.floats + v.capacity() > MAX_FLOATS
        {
            return;
        }
        self.floats += v.capacity();
        self.bufs.push(v);
    }
}

/// A thread's pool, parked in [`PARKED`] when the thread exits.
struct Local(RefCell<Option<Pool>>);

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(pool) = self.0.borrow_mut().take() {
            if let Ok(mut parked) = PARKED.lock() {
                if parked.len() < MAX_PARKED {
                    parked.push(pool);
                }
            }
        }
    }
}

static PARKED: Mutex<Vec<Pool>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: Local = const { Local(RefCell::new(None)) };
}

fn with_pool<R>(f: impl FnOnce(&mut Pool) -> R, fallback: impl FnOnce() -> R) -> R {
    // During thread teardown the thread-local may be gone: fall back to the allocator.
    LOCAL
        .try_with(|local| {
            let mut slot = local.0.borrow_mut();
            let pool = slot.get_or_insert_with(|| {
                PARKED
                    .lock()
                    .ok()
                    .and_then(|mut p| p.pop())
                    .unwrap_or_default()
            });
            f(pool)
        })
        .unwrap_or_else(|_| fallback())
}

/// A buffer of `len` initialised `f32`s with **unspecified** values (overwrite them all).
pub fn take(len: usize) -> Vec<f32> {
    with_pool(|p| p.take(len), || vec![0.0; len])
}

/// A buffer of `len` zeros.
pub fn zeros(len: usize) -> Vec<f32> {
    let mut v = take(len);
    v.fill(0.0);
    v
}

/// An `[rows, cols]` array with **unspecified** values (overwrite them all).
pub fn array(rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_vec((rows, cols), take(rows * cols)).expect("length = rows·cols")
}

/// An `[rows, cols]` array of zeros.
pub fn zeros2(rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_vec((rows, cols), zeros(rows * cols)).expect("length = rows·cols")
}

/// `v` as `MaybeUninit` storage, for kernels that write every element.
pub fn as_uninit(v: &mut [f32]) -> &mut [std::mem::MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`, and the kernels only store
    // initialised `f32`s through the returned slice, so `v` stays initialised.
    unsafe { &mut *(v as *mut [f32] as *mut [std::mem::MaybeUninit<f32>]) }
}

/// Returns a buffer to this thread's pool.
pub fn give(v: Vec<f32>) {
    with_pool(|p| p.give(v), || ())
}

/// Returns an array's storage to this thread's pool.
pub fn give_array<D: Dimension>(a: Array<f32, D>) {
    give(a.into_raw_vec_and_offset().0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_fit_reuses_storage_without_refilling() {
        let mut p = Pool::default();
        p.give(vec![1.0; 10]);
        p.give(vec![2.0; 100]);
        p.give(vec![3.0; 50]);
        // 40 fits best in the 50-long buffer: its values are kept (not zeroed).
        let v = p.take(40);
        assert_eq!((v.len(), v[0]), (40, 3.0));
        // Nothing holds 200: the longest (100) is grown with zeros.
        let w = p.take(200);
        assert_eq!((w.len(), w[99], w[100]), (200, 2.0, 0.0));
        assert_eq!(p.bufs.len(), 1);
        assert_eq!(p.floats, p.bufs[0].capacity());
    }

    #[test]
    fn pool_is_bounded() {
        let mut p = Pool::default();
        for _ in 0..MAX_BUFFERS + 10 {
            p.give(vec![0.0; 4]);
        }
        assert_eq!(p.bufs.len(), MAX_BUFFERS);
        p.give(vec![0.0; MAX_FLOATS]);
        assert_eq!(p.bufs.len(), MAX_BUFFERS);
    }

    #[test]
    fn zeros_are_zero_after_reuse() {
        give(vec![7.0; 64]);
        let z = zeros2(4, 16);
        assert!(z.iter().all(|&v| v == 0.0));
        let a = array(2, 3);
        assert_eq!(a.dim(), (2, 3));
    }
}

//! The data-parallel passes' threads (`Model::forward_threaded`,
//! `Model::accumulate_grads_threaded`), on [`rayon`]'s global pool.
//!
//! [`run`]`(n, f)` calls `f(0)`, …, `f(n − 1)` concurrently — `f(0)` on the calling thread,
//! the others as tasks of rayon's pool (persistent threads, one per core by default; set
//! `RAYON_NUM_THREADS` to change it) — and returns once every call has finished. A panic in
//! any call is re-raised in the caller after all calls have finished. Nested calls are safe
//! (rayon's work stealing runs them without waiting on itself).
//!
//! The callers split their work into pieces that do not depend on `n` and reduce the pieces in
//! a fixed order, so the results do not depend on which thread ran which piece.

/// Calls `f(i)` for every `i < n`, concurrently, and returns when all have finished.
/// Re-raises the first panic.
pub(crate) fn run(n: usize, f: &(dyn Fn(usize) + Sync)) {
    if n <= 1 {
        (0..n).for_each(f);
        return;
    }
    rayon::in_place_scope(|s| {
        for i in 1..n {
            s.spawn(move |_| f(i));
        }
        f(0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    #[test]
    fn every_index_runs_once_and_borrows_work() {
        for n in [0, 1, 2, 3, 5] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            let data: Vec<usize> = (0..n).map(|i| i * 10).collect();
            run(n, &|i| {
                hits[i].fetch_add(data[i] + 1, Ordering::SeqCst);
            });
            for (i, h) in hits.iter().enumerate() {
                assert_eq!(h.load(Ordering::SeqCst), i * 10 + 1, "n {n} index {i}");
            }
        }
    }

    #[test]
    fn runs_on_other_threads_and_nested_calls_work() {
        let ids = Mutex::new(Vec::new());
        let arrived = AtomicUsize::new(0);
        run(2, &|_| {
            ids.lock().unwrap().push(std::thread::current().id());
            // Both calls wait for each other, so they must run on two threads at once.
            arrived.fetch_add(1, Ordering::SeqCst);
            let t0 = std::time::Instant::now();
            while arrived.load(Ordering::SeqCst) < 2 {
                assert!(
                    t0.elapsed().as_secs() < 10,
                    "the calls did not run concurrently"
                );
                std::hint::spin_loop();
            }
            // Nested calls complete (no deadlock on the pool's own threads).
            let inner = AtomicUsize::new(0);
            run(3, &|_| {
                inner.fetch_add(1, Ordering::SeqCst);
            });
            assert_eq!(inner.load(Ordering::SeqCst), 3);
        });
        let ids = ids.into_inner().unwrap();
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn a_worker_panic_reaches_the_caller_after_all_finish() {
        let finished = AtomicUsize::new(0);
        let r = catch_unwind(AssertUnwindSafe(|| {
            run(3, &|i| {
                if i == 2 {
                    panic!("boom");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
                finished.fetch_add(1, Ordering::SeqCst);
            })
        }));
        assert!(r.is_err());
        assert_eq!(finished.load(Ordering::SeqCst), 2);
        // The pool still works afterwards.
        let n = AtomicUsize::new(0);
        run(3, &|_| {
            n.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }
}

//! Persistent worker threads for the data-parallel passes (`Model::forward_threaded`,
//! `Model::accumulate_grads_threaded`).
//!
//! A training step or a batched forward is a few milliseconds of work; spawning scoped threads
//! for every call costs thread creation, a cold start on another core and fresh thread-local
//! state (the activation [`pool`](crate::pool), the attention scratch) each time. In
//! interleaved runs on the 2-core development machine, a 32×29 forward split over two threads
//! took a median 4.9 ms with scoped threads spawned per call, and 3.8–4.2 ms with persistent
//! ones.
//!
//! [`run`]`(n, f)` calls `f(0)`, …, `f(n − 1)` concurrently: `f(0)` on the calling thread, the
//! rest on parked worker threads (created on first use, kept for the life of the process; if
//! the system refuses a thread, its calls run on the caller), and returns once every call has
//! finished. A panic in any call is re-raised in the caller after all calls have finished.
//! Calls made from inside a worker run serially (no nested parallelism, so no deadlock).

use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};

/// The type-erased task: `f(index)`; `f` outlives the job (see [`run`]).
type Task = *const (dyn Fn(usize) + Sync);

struct Job {
    task: Task,
    index: usize,
    latch: Arc<Latch>,
}

// SAFETY: `task` points to a `Sync` closure that `run` keeps alive until the job has finished
// (it waits on the latch), so sending the pointer to another thread is sound.
unsafe impl Send for Job {}

/// Counts unfinished jobs; remembers the first panic.
struct Latch {
    state: Mutex<(usize, Option<Box<dyn std::any::Any + Send>>)>,
    done: Condvar,
}

impl Latch {
    fn finish(&self, panic: Option<Box<dyn std::any::Any + Send>>) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 -= 1;
        if s.1.is_none() {
            s.1 = panic;
        }
        if s.0 == 0 {
            self.done.notify_all();
        }
    }

    fn wait(&self) -> Option<Box<dyn std::any::Any + Send>> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while s.0 > 0 {
            s = self.done.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.1.take()
    }
}

thread_local! {
    /// Whether this thread is one of the workers.
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// The workers' queues, one per worker, grown on demand.
static WORKERS: Mutex<Vec<Sender<Job>>> = Mutex::new(Vec::new());

/// A new worker's queue, or `None` if the system refused a thread.
fn spawn_worker() -> Option<Sender<Job>> {
    let (tx, rx) = channel::<Job>();
    std::thread::Builder::new()
        .name("succulm-worker".into())
        .spawn(move || {
            IS_WORKER.with(|w| w.set(true));
            while let Ok(job) = rx.recv() {
                // SAFETY: `run` does not return (so the closure stays alive) until this job
                // has called `finish` on the latch.
                let task = unsafe { &*job.task };
                let result = catch_unwind(AssertUnwindSafe(|| task(job.index)));
                job.latch.finish(result.err());
            }
        })
        .ok()?;
    Some(tx)
}

/// Calls `f(i)` for every `i < n`, concurrently (`f(0)` on the calling thread, the others on
/// persistent workers), and returns when all have finished. Re-raises the first panic.
pub(crate) fn run(n: usize, f: &(dyn Fn(usize) + Sync)) {
    if n <= 1 || IS_WORKER.with(|w| w.get()) {
        (0..n).for_each(f);
        return;
    }
    let latch = Arc::new(Latch {
        state: Mutex::new((n - 1, None)),
        done: Condvar::new(),
    });
    // SAFETY: only the lifetime is erased: every job has finished with `f` before `run`
    // returns or unwinds (the latch is waited on unconditionally below).
    let task: Task = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Task>(f) };
    let have = {
        let mut workers = WORKERS.lock().unwrap_or_else(|e| e.into_inner());
        while workers.len() < n - 1 {
            match spawn_worker() {
                Some(tx) => workers.push(tx),
                None => break,
            }
        }
        let have = workers.len().min(n - 1);
        for (i, tx) in workers.iter().take(have).enumerate() {
            let job = Job {
                task,
                index: i + 1,
                latch: Arc::clone(&latch),
            };
            if let Err(e) = tx.send(job) {
                // The worker is gone (it cannot be: workers never exit); run its part here.
                let job = e.0;
                let result = catch_unwind(AssertUnwindSafe(|| f(job.index)));
                latch.finish(result.err());
            }
        }
        have
    };
    let own = catch_unwind(AssertUnwindSafe(|| f(0)));
    // Indices without a worker (the system refused a thread) run here, in order.
    for i in have + 1..n {
        let result = catch_unwind(AssertUnwindSafe(|| f(i)));
        latch.finish(result.err());
    }
    let theirs = latch.wait();
    if let Err(p) = own {
        resume_unwind(p);
    }
    if let Some(p) = theirs {
        resume_unwind(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
    fn runs_on_other_threads_and_nested_calls_are_serial() {
        let ids = Mutex::new(Vec::new());
        run(2, &|_| {
            ids.lock().unwrap().push(std::thread::current().id());
            // Nested: inside a worker this runs inline instead of waiting on itself.
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

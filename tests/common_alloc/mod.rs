//! A counting global allocator for the tests that must show a bad input never makes the crate
//! allocate much: it records, per thread, the largest single request since [`reset`], and
//! refuses (returns null, so the process aborts) any request above the thread's cap.
//!
//! Install it in a test binary with
//! `#[global_allocator] static A: common_alloc::Counting = common_alloc::Counting;`.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static CAP: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The allocator: [`System`] plus the per-thread record and cap.
pub struct Counting;

fn note(size: usize) -> bool {
    let cap = CAP.try_with(|c| c.get()).unwrap_or(usize::MAX);
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    size <= cap
}

// SAFETY: forwards to `System`, only refusing some requests (returning null, which callers handle
// as an allocation failure).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size) {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// Starts a new record on this thread, refusing single requests above `cap` bytes.
pub fn reset(cap: usize) {
    LARGEST.with(|l| l.set(0));
    CAP.with(|c| c.set(cap));
}

/// The largest single request on this thread since [`reset`], in bytes.
pub fn largest() -> usize {
    LARGEST.with(|l| l.get())
}

/// Runs `f` with this thread's cap at `cap` bytes and returns its value and the largest single
/// request it made; the cap is lifted afterwards.
pub fn measure<T>(cap: usize, f: impl FnOnce() -> T) -> (T, usize) {
    reset(cap);
    let v = f();
    let n = largest();
    reset(usize::MAX);
    (v, n)
}

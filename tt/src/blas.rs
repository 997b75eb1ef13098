//! Control of the BLAS thread pool.
//!
//! OpenBLAS starts a pool of threads and, by default, splits every GEMM across all cores. The
//! matrices of a SuccuLM model are tiny (`[29, 50] · [50, 200]`), and for them waking threads
//! costs more than the multiplication itself; see the benches for the measured figures. The
//! examples and benches call [`set_num_threads`]`(1)` and keep parallelism at a coarser grain.

use std::os::raw::c_int;

extern "C" {
    fn openblas_set_num_threads(num_threads: c_int);
    fn openblas_get_num_threads() -> c_int;
}

/// Sets the number of threads OpenBLAS uses for each call (process-wide).
///
/// ```
/// succulm_tt::blas::set_num_threads(1);
/// assert_eq!(succulm_tt::blas::num_threads(), 1);
/// ```
pub fn set_num_threads(n: usize) {
    let n = n.clamp(1, c_int::MAX as usize) as c_int;
    // SAFETY: a plain setter in OpenBLAS, safe to call at any time from any thread.
    unsafe { openblas_set_num_threads(n) }
}

/// The number of threads OpenBLAS currently uses for each call.
pub fn num_threads() -> usize {
    // SAFETY: a plain getter in OpenBLAS.
    unsafe { openblas_get_num_threads() as usize }
}

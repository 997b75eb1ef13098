//! # succulm-tt
//!
//! The numeric base of succulm and its tensor trains, as a crate of its own: a downstream crate
//! that wants TT layers depends on this alone. It knows nothing of language models or studies.
//!
//! - numeric base: [`error`] (the one error enum of the workspace), [`gemm`] (every dense product,
//!   through the `gemm` crate), [`blas`] (OpenBLAS threads, used for LAPACK), [`Linear`] (a dense
//!   layer with forward and backward), [`Parameters`] (every tensor visited by its PyTorch name);
//! - tensor trains: [`tt_svd`], [`TTLayer`], [`data_aware`] truncation, [`budget`]s.
//!
//! Tensor-train (TT) decomposition of weight matrices, and [`TTLayer`], a linear layer whose
//! weight is a tensor train.
//!
//! - [`tt_svd`] decomposes any order-`d` tensor (TT-SVD, Oseledets 2011) truncated by bond
//!   dims, by relative tolerance, or both, and reports every bond's spectrum and which requested
//!   bond dims were capped.
//! - [`data_aware`]: truncations that minimise the layer's output error on calibration inputs
//!   ([`InputStats`]) instead of the weight error: whitened (SVD-LLM style) and
//!   activation-scaled (ASVD) objectives, exact fold-back or ALS refinement.
//! - [`TTLayer`] holds a `Linear`'s weight as a TT in one of two layouts ([`TTLayout`]): the
//!   seed's (all output modes, then all input modes, as the `ttz` package's
//!   `TTLayer.from_linear_layer`) or Novikov's TT-matrix (one core per output/input mode pair).
//!   It has a forward, a recorded forward and a backward (gradients of the cores, the bias and
//!   the input), and implements [`Parameters`](crate::params::Parameters) with names `cores.{k}` and
//!   `bias`.
//!
//! # How the forward is computed
//!
//! The input is contracted with the cores from the right end of the chain to the left (for the
//! seed layout: the input cores, then the output cores), each step being **one GEMM** over a
//! reshape of the whole intermediate tensor. Before that, a cost model (FLOPs, memory touched,
//! a per-call overhead, and the price of any transposition) picks, for the given number of
//! rows, which adjacent cores to merge once into bigger blocks: every partition of the chain is
//! a candidate, including "merge everything", which is the dense matrix. So the forward is never
//! much slower than the cheaper of the dense product and the best sweep. Plans are cached per row
//! count; merged blocks are cached until the parameters are mutated. [`TTLayer::plan`] shows the
//! choice. Training (`forward_train`/`backward`) uses the same kind of plan, costed for a whole
//! training step (merged blocks are rebuilt after each update, and a merged block's gradient is
//! passed back to its cores by GEMMs): [`TTLayer::training_plan`]. Every candidate can be run
//! explicitly ([`TTLayer::candidate_plans`], [`TTLayer::forward_with_plan`],
//! [`TTLayer::forward_train_with_plan`]). Details, and what was measured, in the source of
//! `plan.rs`. Instead of the cost model, a forward can use the fastest plan *measured* on this
//! machine ([`set_planner`]`(`[`Planner::Measure`]`)`, as FFTW's `FFTW_MEASURE`; see
//! [`measure`]).
//!
//! # Threads
//!
//! The products go through [`crate::gemm`] (the `gemm` crate's run-time-dispatched kernels).
//! One large product (at least [`crate::gemm::PARALLEL_MIN_MACS`] multiply-adds, e.g. 768→3072
//! at 128 rows) may use up to [`crate::gemm::set_threads`] threads (default 1); the bits are the
//! same for any count. The model's shapes stay on the calling thread, where the model's own
//! data-parallel passes split the work.
//!
//! # Example
//!
//! ```
//! use ndarray::Array2;
//! use rand::{rngs::StdRng, SeedableRng};
//! use succulm_tt::{Linear, TTLayer};
//!
//! let mut rng = StdRng::seed_from_u64(1234);
//! let linear = Linear::init(50, 200, &mut rng)?; // the seed's ffn.0: 50 -> 200
//! // in_modes [5, 10], out_modes [10, 20], bond dims [10, 50, 10]: exact.
//! let tt = TTLayer::from_linear(&[5, 10], &[10, 20], &linear, &[10, 50, 10])?;
//! assert_eq!(tt.num_params(), 12_700); // more than the dense 10,000: tensorizing first grows it
//! assert!(tt.relative_error(&linear) < 1e-5);
//!
//! let x = Array2::from_shape_fn((3, 50), |(r, c)| ((r * 50 + c) as f32 * 0.37).sin());
//! let (y_tt, y) = (tt.forward(x.view())?, linear.forward(x.view())?);
//! assert!((&y_tt - &y).iter().all(|d| d.abs() < 1e-4));
//!
//! // Truncate the middle bond: fewer parameters, an approximation.
//! let small = TTLayer::from_linear(&[5, 10], &[10, 20], &linear, &[10, 20, 10])?;
//! assert_eq!(small.bond_dims(), &[10, 20, 10]);
//! assert!(small.compression_ratio() > 1.0);
//! # Ok::<(), succulm_tt::Error>(())
//! ```

#![warn(missing_docs)]

// Links the system OpenBLAS (BLAS for ndarray, LAPACK for ndarray-linalg).
extern crate openblas_src;

pub mod blas;
pub mod error;
pub mod gemm;
pub mod linear;
pub mod params;
#[doc(hidden)]
pub mod pool;

mod als;
pub mod budget;
pub mod data_aware;
mod decompose;
mod layer;
pub mod measure;
mod plan;
mod stats;

pub use als::{AlsConfig, AlsReport, DENSE_LIMIT};
pub use data_aware::{decompose, DataAware, DataAwareReport, Decomposed, Objective};
pub use decompose::{tt_svd, CappedBond, Truncation, TtSvd};
pub use layer::{TTCache, TTLayer, TTLayout, TTPlan, TTSpec};
pub use measure::{clear_measurements, planner, set_planner, Planner};
pub use stats::InputStats;

pub use error::{Error, Result};
pub use linear::Linear;
pub use params::Parameters;

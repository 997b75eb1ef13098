//! Uses only `succulm-tt`: compresses a dense layer to a tensor train, runs a forward, and runs a
//! TT-SVD, checking each against an identity (a TT at full rank is exact; a TT-SVD at full rank
//! reconstructs its tensor).

use ndarray::{Array2, ArrayD, IxDyn};
use rand::{rngs::StdRng, SeedableRng};
use succulm_tt::{tt_svd, Linear, TTLayer, Truncation};

fn main() -> Result<(), succulm_tt::Error> {
    let mut rng = StdRng::seed_from_u64(7);
    // A 50 -> 200 layer as a TT with in modes [5, 10], out modes [10, 20], full bonds: exact.
    let linear = Linear::init(50, 200, &mut rng)?;
    let tt = TTLayer::from_linear(&[5, 10], &[10, 20], &linear, &[10, 50, 10])?;
    let x = Array2::from_shape_fn((4, 50), |(r, c)| ((r * 50 + c) as f32 * 0.31).sin());
    let (y_tt, y) = (tt.forward(x.view())?, linear.forward(x.view())?);
    let max_diff = (&y_tt - &y).iter().fold(0f32, |m, d| m.max(d.abs()));
    assert!(
        max_diff < 1e-4,
        "full-rank TT forward differs by {max_diff}"
    );

    // A truncated TT has fewer parameters and a non-zero error.
    let small = TTLayer::from_linear(&[5, 10], &[10, 20], &linear, &[10, 8, 10])?;
    assert!(small.num_params() < linear.weight().len());
    assert!(small.relative_error(&linear) > 0.0);

    // TT-SVD of an order-3 tensor [3, 4, 5] without truncation reconstructs it.
    let t = ArrayD::from_shape_fn(IxDyn(&[3, 4, 5]), |i| {
        (i[0] * 20 + i[1] * 5 + i[2]) as f32 * 0.1 + (i[1] as f32).cos()
    });
    let svd = tt_svd(t.view(), &[3, 4, 5], &Truncation::exact())?;
    let (g0, g1, g2) = (&svd.cores[0], &svd.cores[1], &svd.cores[2]);
    let mut err = 0f64;
    for i in 0..3 {
        for j in 0..4 {
            for k in 0..5 {
                let mut v = 0f64;
                for a in 0..g0.shape()[2] {
                    for b in 0..g1.shape()[2] {
                        v += g0[[0, i, a]] as f64 * g1[[a, j, b]] as f64 * g2[[b, k, 0]] as f64;
                    }
                }
                err = err.max((v - t[[i, j, k]] as f64).abs());
            }
        }
    }
    assert!(err < 1e-4, "TT-SVD without truncation differs by {err}");

    println!(
        "succulm-tt alone: TT forward max |diff| {max_diff:.2e} at full rank; {} -> {} parameters at middle bond 8; TT-SVD error {err:.1e}",
        linear.weight().len(),
        small.num_params()
    );
    Ok(())
}

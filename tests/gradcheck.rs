//! Finite-difference gradient checks: every layer (parameters and input) and the whole model.
//! Directional derivatives along the analytic gradient and a random direction, per tensor, in
//! f64 accumulation; a wrong or missing term moves them by far more than the tolerance.

mod common;
mod common_grad;

use common_grad::{check_all, matrix, padded_rows, Named};
use ndarray::{Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use succulm::nn::layers::{Attention, Block, Ffn, Layer, LayerNorm, Projection};
use succulm::nn::model::Model;
use succulm::{Linear, Parameters, TTLayer};

const H: f32 = 1e-3;
const RTOL: f64 = 5e-3;

fn randn(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((rows, cols), || StandardNormal.sample(&mut rng))
}

/// `Σ y ⊙ r` in f64.
fn weighted(y: &Array2<f32>, r: &Array2<f32>) -> f64 {
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Checks parameter and input gradients of a layer given its forward and backward.
fn check_layer<L: Parameters + Clone>(
    layer: &L,
    x: Array2<f32>,
    fwd: impl Fn(&L, ArrayView2<'_, f32>) -> Array2<f32>,
    grads_of: impl Fn(&L, ArrayView2<'_, f32>, ArrayView2<'_, f32>) -> (L, Array2<f32>),
) {
    let y = fwd(layer, x.view());
    let r = randn(y.nrows(), y.ncols(), 99);
    let (g, dx) = grads_of(layer, x.view(), r.view());
    check_all(layer, &g, |l| weighted(&fwd(l, x.view()), &r), H, RTOL, 0.0);
    let input = Named("x", x.clone().into_dyn());
    check_all(
        &input,
        &Named("x", dx.into_dyn()),
        |i| weighted(&fwd(layer, matrix(i)), &r),
        H,
        RTOL,
        0.0,
    );
}

/// A layer's plain forward.
macro_rules! forward {
    () => {
        |l, x| l.forward(x).unwrap()
    };
}

/// The backward of a layer whose training forward takes `input(x)`: `(parameter grads, dx)`.
macro_rules! backward {
    (|$x:ident| $input:expr) => {
        |l, $x, dy| {
            let (_, c) = l.forward_train($input).unwrap();
            let mut g = l.zeros_like();
            let dx = l.backward(&c, dy, &mut g).unwrap();
            (g, dx)
        }
    };
}

/// The backward of a projection through the `Layer` trait: `(parameter grads, dx)`.
macro_rules! through_layer_trait {
    () => {
        |l, x, dy| {
            let (_, c) = Layer::forward_train(l, x.to_owned()).unwrap();
            let (dx, g) = l.gradients(&c, dy).unwrap();
            (g, dx)
        }
    };
}

#[test]
fn layer_norm_gradients() {
    let mut ln = LayerNorm::new(6);
    // Non-trivial affine parameters.
    ln.visit_mut("", &mut |_, mut t| {
        let mut rng = StdRng::seed_from_u64(3);
        t.mapv_inplace(|v| v + rng.gen_range(-0.5..0.5))
    });
    check_layer(&ln, randn(5, 6, 1), forward!(), backward!(|x| x));
}

#[test]
fn dense_projection_gradients() {
    let mut rng = StdRng::seed_from_u64(4);
    let p = Projection::Dense(Linear::init(7, 5, &mut rng).unwrap());
    check_layer(&p, randn(6, 7, 2), forward!(), backward!(|x| x.to_owned()));
}

/// `Linear` and `TTLayer` through the `Layer` trait (the projections' two kinds).
#[test]
fn linear_and_tt_layer_gradients_through_the_layer_trait() {
    let mut rng = StdRng::seed_from_u64(11);
    let lin = Linear::init(6, 4, &mut rng).unwrap();
    check_layer(&lin, randn(5, 6, 7), forward!(), through_layer_trait!());
    let tt = TTLayer::from_linear(&[2, 3], &[2, 2], &lin, &[2, 3, 2]).unwrap();
    check_layer(&tt, randn(5, 6, 8), forward!(), through_layer_trait!());
}

#[test]
fn ffn_gradients() {
    let mut rng = StdRng::seed_from_u64(5);
    let f = Ffn::init(6, 3, &mut rng).unwrap();
    check_layer(&f, randn(7, 6, 3), forward!(), backward!(|x| x.to_owned()));
}

#[test]
fn attention_gradients_with_causal_mask() {
    let mut rng = StdRng::seed_from_u64(6);
    let a = Attention::init(6, 3, &mut rng).unwrap();
    let seq = 5;
    // Two sequences of five positions.
    check_layer(
        &a,
        randn(2 * seq, 6, 4),
        |l, x| l.forward(x, seq).unwrap(),
        backward!(|x| (x.to_owned(), seq)),
    );
}

#[test]
fn attention_is_causal() {
    // Changing a later position leaves earlier outputs unchanged.
    let mut rng = StdRng::seed_from_u64(8);
    let a = Attention::init(6, 2, &mut rng).unwrap();
    let x = randn(4, 6, 5);
    let y = a.forward(x.view(), 4).unwrap();
    let mut x2 = x.clone();
    x2.row_mut(3).mapv_inplace(|v| v + 1.0);
    let y2 = a.forward(x2.view(), 4).unwrap();
    for t in 0..3 {
        assert_eq!(y.row(t), y2.row(t));
    }
    assert_ne!(y.row(3), y2.row(3));
}

#[test]
fn block_gradients() {
    let mut rng = StdRng::seed_from_u64(9);
    let b = Block::init(6, 2, 2, &mut rng).unwrap();
    let seq = 4;
    check_layer(
        &b,
        randn(3 * seq, 6, 6),
        |l, x| l.forward_train((x.to_owned(), seq, None)).unwrap().0,
        backward!(|x| (x.to_owned(), seq, None)),
    );
}

#[test]
fn backward_accumulates() {
    let mut rng = StdRng::seed_from_u64(10);
    let b = Block::init(6, 2, 3, &mut rng).unwrap();
    let x = randn(4, 6, 1);
    let dy = randn(4, 6, 2);
    let (_, c) = b.forward_train((x.clone(), 4, None)).unwrap();
    let mut once = b.zeros_like();
    b.backward(&c, dy.view(), &mut once).unwrap();
    let mut twice = b.zeros_like();
    b.backward(&c, dy.view(), &mut twice).unwrap();
    b.backward(&c, dy.view(), &mut twice).unwrap();
    let (o, t) = (common_grad::snapshot(&once), common_grad::snapshot(&twice));
    for ((n, a), (_, b2)) in o.iter().zip(&t) {
        for (&u, &v) in a.iter().zip(b2.iter()) {
            assert!((2.0 * u - v).abs() <= 1e-5 * (1.0 + v.abs()), "{n}");
        }
    }
}

#[test]
fn whole_model_gradients() {
    let model = Model::new(common::tiny_config(11, 7), 11).unwrap();
    let (x, y) = padded_rows();
    let (loss, grads) = model.loss_and_grads(x.view(), y.view()).unwrap();
    assert!((loss as f64 - model.loss(x.view(), y.view()).unwrap() as f64).abs() < 1e-6);
    check_all(
        &model,
        &grads,
        |m| m.loss(x.view(), y.view()).unwrap() as f64,
        // The loss is an f32 of magnitude ~2: a wider step keeps its rounding out of the way.
        2e-3,
        RTOL,
        4.0 * f32::EPSILON as f64 * loss as f64 / 4e-3,
    );
}

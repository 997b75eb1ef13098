// Shared by the gradient-check tests: directional finite differences in f64.
#![allow(dead_code)]

use ndarray::{ArrayD, ArrayViewD};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use succulm::Parameters;

/// Owned copies of every named tensor.
pub fn snapshot<P: Parameters + ?Sized>(p: &P) -> Vec<(String, ArrayD<f32>)> {
    let mut v = Vec::new();
    p.visit("", &mut |n, t: ArrayViewD<'_, f32>| {
        v.push((n, t.to_owned()))
    });
    v
}

/// Adds `h · dir` to the tensor named `name`.
pub fn perturb<P: Parameters + ?Sized>(p: &mut P, name: &str, dir: &ArrayD<f32>, h: f32) {
    let mut found = false;
    p.visit_mut("", &mut |n, mut t| {
        if n == name {
            t.zip_mut_with(dir, |a, &b| *a += h * b);
            found = true;
        }
    });
    assert!(found, "no tensor {name}");
}

/// For every tensor of `model`: the finite-difference derivative of `loss` along two unit
/// directions (the analytic gradient's own direction, and a random one) must match the analytic
/// gradient `grads` within `rtol` (relative to the tensor's gradient norm) plus `noise`, the
/// finite difference's own rounding error (a few f32 ulps of the loss over `2h`).
pub fn check_all<P: Parameters + Clone, G: Parameters + ?Sized>(
    model: &P,
    grads: &G,
    loss: impl Fn(&P) -> f64,
    h: f32,
    rtol: f64,
    noise: f64,
) {
    let g = snapshot(grads);
    let names: Vec<String> = snapshot(model).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        g.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "parameter and gradient names differ"
    );
    let mut rng = StdRng::seed_from_u64(7);
    // Gradient scale of the whole module: the floor for tensors whose gradient is ~0 (e.g. the
    // K bias, to which softmax is invariant).
    let scale = g
        .iter()
        .map(|(_, t)| t.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt())
        .fold(0.0, f64::max);
    let mut worst = 0.0f64;
    for (name, gt) in &g {
        let gnorm = gt.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        let rand_dir: ArrayD<f32> =
            ArrayD::from_shape_simple_fn(gt.raw_dim(), || StandardNormal.sample(&mut rng));
        let rn = rand_dir
            .iter()
            .map(|&v| (v as f64).powi(2))
            .sum::<f64>()
            .sqrt() as f32;
        let rand_dir = rand_dir.mapv(|v| v / rn);
        let mut dirs = vec![("random", rand_dir)];
        if gnorm > 0.0 {
            dirs.push(("gradient", gt.mapv(|v| (v as f64 / gnorm) as f32)));
        }
        for (kind, dir) in dirs {
            let analytic: f64 = gt
                .iter()
                .zip(dir.iter())
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            let mut plus = model.clone();
            perturb(&mut plus, name, &dir, h);
            let mut minus = model.clone();
            perturb(&mut minus, name, &dir, -h);
            let numeric = (loss(&plus) - loss(&minus)) / (2.0 * h as f64);
            let err = (numeric - analytic).abs();
            let tol = rtol * gnorm.max(1e-2 * scale) + noise;
            worst = worst.max(err / tol * rtol);
            assert!(
                err <= tol,
                "{name} ({kind} direction): analytic {analytic:.6e}, numeric {numeric:.6e}, |g| {gnorm:.3e}"
            );
        }
    }
    eprintln!("worst relative error {worst:.2e} (tolerance {rtol:.0e})");
}

/// Two rows with padding (PAD = 0) in both x and y; T < max_len: `(x, y)`.
pub fn padded_rows() -> (ndarray::Array2<u32>, ndarray::Array2<u32>) {
    (
        ndarray::array![[1u32, 5, 7, 9, 4, 0], [1, 8, 8, 3, 0, 0]],
        ndarray::array![[5u32, 7, 9, 4, 2, 0], [8, 8, 3, 2, 0, 0]],
    )
}

/// One tensor as a "parameter" named `.0` (an input, logits), to check gradients with respect
/// to it with [`check_all`].
#[derive(Clone)]
pub struct Named(pub &'static str, pub ArrayD<f32>);

impl Parameters for Named {
    fn visit(&self, _: &str, f: &mut dyn FnMut(String, ArrayViewD<'_, f32>)) {
        f(self.0.into(), self.1.view())
    }
    fn visit_mut(&mut self, _: &str, f: &mut dyn FnMut(String, ndarray::ArrayViewMutD<'_, f32>)) {
        f(self.0.into(), self.1.view_mut())
    }
}

/// The named tensor as a matrix.
pub fn matrix(n: &Named) -> ndarray::ArrayView2<'_, f32> {
    n.1.view().into_dimensionality::<ndarray::Ix2>().unwrap()
}

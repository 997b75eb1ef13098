//! Alternating least squares (ALS) for a tensor train under an input metric: minimise
//!
//! ```text
//! f(G_1, …, G_d) = tr((T − Ŵ) · M · (T − Ŵ)ᵀ)        T, Ŵ: [out, in],  M: [in, in] ⪰ 0
//! ```
//!
//! over the cores of `Ŵ`, with `M = S·Sᵀ` the metric of the data-aware objective (`E[x xᵀ]` for
//! the output error, `diag(s²)` for activation scaling). Every core enters `Ŵ` linearly, so with
//! the others fixed the best core solves a linear least-squares problem; a *sweep* solves them
//! left to right and back (single-site, as DMRG), moving an orthogonality centre along with QR
//! factorisations so the interfaces stay well conditioned. Each local step is an exact
//! minimisation (on the range of its normal matrix), so `f` never increases.
//!
//! # The local problem
//!
//! Every core is held as a block `G[a, p, q, b]` (`p` its output mode, `q` its input mode; 1
//! where it has none, as in the seed's layout). With `L[P<, Q<, a]` the product of the cores on
//! its left and `R[b, P>, Q>]` those on its right, `Ŵ[(P<, p, P>), (Q<, q, Q>)] =
//! Σ L·G·R`. The gradient is `−2·adj(ΔW·M)` with `adj(Y)[a,p,q,b] = Σ L[P<,u,a] R[b,P>,w]
//! Y[(P<,p,P>),(u,q,w)]`, and the normal matrix is block diagonal in `p`, each block
//!
//! ```text
//! H[(a,q,b), (a',q',b')] = Σ_{u,u'} ML[u,a,u',a'] · N[(u,q,b), (u',q',b')]
//! ML = Σ_{P<} L·L,   N = Σ_{P>} Σ_{w,w'} R[b,P>,w] M[(u,q,w),(u',q',w')] R[b',P>,w'].
//! ```
//!
//! The step is `Δ = H⁺·adj(ΔW·M)` (eigenvalues below `1e-12·max` dropped, so directions the
//! data cannot see keep their current value). Two cases have Kronecker structure and are
//! solved through the eigen-decompositions of the two small factors: no input mode on the left
//! (`H = ML ⊗ N`: every output core, and the first input core, of the seed's layout) and none on
//! the right (`H = K ⊗ MR`: the last core). Other cores (three or more input modes, or a
//! TT-matrix of three or more cores) form `H` densely, up to [`DENSE_LIMIT`] unknowns per
//! output mode; a larger core is left as it is (and counted in [`AlsReport::skipped`]).

use ndarray::{Array1, Array2, Array3, Array4, ArrayD, Axis, IxDyn};
use ndarray_linalg::QR;
use serde::{Deserialize, Serialize};

use super::decompose::sym_eig;
use crate::error::{Error, Result};

/// One core as a block `[a, p, q, b]` (left bond, output mode, input mode, right bond).
pub(crate) type Block = Array4<f64>;

/// The largest dense local system (unknowns per output mode) ALS forms.
pub const DENSE_LIMIT: usize = 4096;

/// Eigenvalues below this times the largest are treated as zero in the local solves.
const PINV_RTOL: f64 = 1e-12;

/// When ALS stops, and how many sweeps it may take.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlsConfig {
    /// Most sweeps (one sweep: every core left to right, then right to left). 0 disables ALS.
    pub max_sweeps: usize,
    /// Stop when a sweep lowers the objective by less than this fraction of it.
    pub rtol: f64,
}

impl Default for AlsConfig {
    /// 50 sweeps at most; stop below a relative decrease of `1e-6`.
    fn default() -> Self {
        AlsConfig {
            max_sweeps: 50,
            rtol: 1e-6,
        }
    }
}

impl AlsConfig {
    /// Errors unless `rtol` is finite and ≥ 0.
    pub fn validate(&self) -> Result<()> {
        if !(self.rtol.is_finite() && self.rtol >= 0.0) {
            return Err(Error::invalid_arg(
                "als.rtol",
                format!("{} must be finite and >= 0", self.rtol),
            ));
        }
        Ok(())
    }
}

/// What an ALS refinement did. Errors are relative: `√(f / tr(T·M·Tᵀ))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlsReport {
    /// Sweeps run.
    pub sweeps: usize,
    /// The relative error before the first sweep.
    pub before: f64,
    /// The relative error after the last sweep.
    pub after: f64,
    /// The relative error after each sweep.
    pub history: Vec<f64>,
    /// Local solves skipped because their system exceeded [`DENSE_LIMIT`] unknowns.
    pub skipped: usize,
}

/// Row-major copy of any array view reshaped to `shape`.
fn reshaped<S, D>(a: &ndarray::ArrayBase<S, D>, shape: &[usize]) -> ArrayD<f64>
where
    S: ndarray::Data<Elem = f64>,
    D: ndarray::Dimension,
{
    let v: Vec<f64> = a.iter().copied().collect();
    ArrayD::from_shape_vec(IxDyn(shape), v).expect("reshape keeps the element count")
}

fn mat(a: ArrayD<f64>) -> Array2<f64> {
    a.into_dimensionality().expect("2-D")
}

fn as2<S, D>(a: &ndarray::ArrayBase<S, D>, r: usize, c: usize) -> Array2<f64>
where
    S: ndarray::Data<Elem = f64>,
    D: ndarray::Dimension,
{
    mat(reshaped(a, &[r, c]))
}

/// `L[P<·p, Q<·q, b]` from `L[P<, Q<, a]` and the next core `G[a, p, q, b]`.
fn extend_left(l: &Array3<f64>, g: &Block) -> Array3<f64> {
    let (pl, ql, a) = l.dim();
    let (_, p, q, b) = g.dim();
    let t = as2(l, pl * ql, a).dot(&as2(g, a, p * q * b));
    let t = reshaped(&t, &[pl, ql, p, q, b]).permuted_axes(IxDyn(&[0, 2, 1, 3, 4]));
    reshaped(&t, &[pl * p, ql * q, b])
        .into_dimensionality()
        .expect("3-D")
}

/// `R[a, p·P>, q·Q>]` from the core `G[a, p, q, b]` and `R[b, P>, Q>]` on its right.
fn extend_right(g: &Block, r: &Array3<f64>) -> Array3<f64> {
    let (a, p, q, b) = g.dim();
    let (_, pr, qr) = r.dim();
    let t = as2(g, a * p * q, b).dot(&as2(r, b, pr * qr));
    let t = reshaped(&t, &[a, p, q, pr, qr]).permuted_axes(IxDyn(&[0, 1, 3, 2, 4]));
    reshaped(&t, &[a, p * pr, q * qr])
        .into_dimensionality()
        .expect("3-D")
}

fn unit() -> Array3<f64> {
    Array3::ones((1, 1, 1))
}

/// The dense matrix `[out, in]` of a chain of blocks.
pub(crate) fn dense(cores: &[Block]) -> Array2<f64> {
    let l = cores.iter().fold(unit(), |l, g| extend_left(&l, g));
    let (p, q, _) = l.dim();
    as2(&l, p, q)
}

/// `tr(Δ · M · Δᵀ)` and `Δ·M` for `Δ = T − Ŵ`.
fn residual(target: &Array2<f64>, w: &Array2<f64>, metric: &Array2<f64>) -> (f64, Array2<f64>) {
    let d = target - w;
    let dm = d.dot(metric);
    ((&d * &dm).sum().max(0.0), dm)
}

/// The ALS objective `tr((T − Ŵ) M (T − Ŵ)ᵀ)` of a chain of blocks.
pub(crate) fn objective(cores: &[Block], target: &Array2<f64>, metric: &Array2<f64>) -> f64 {
    residual(target, &dense(cores), metric).0
}

/// Symmetric eigen-decomposition of `(m + mᵀ)/2`, or `None` if LAPACK fails.
fn eig(m: &Array2<f64>) -> Option<(Array1<f64>, Array2<f64>)> {
    let sym = (m + &m.t()) * 0.5;
    sym_eig(sym).ok()
}

/// `y = (A ⊗ B)⁺ x` for `x: [n_a, n_b]` read as a vector (row-major), from the
/// eigen-decompositions of `A` and `B`: `U_A ((U_Aᵀ x U_B) ⊘ (λ_A λ_Bᵀ)) U_Bᵀ`.
fn kron_pinv_solve(
    (da, ua): &(Array1<f64>, Array2<f64>),
    (db, ub): &(Array1<f64>, Array2<f64>),
    x: &Array2<f64>,
) -> Array2<f64> {
    let top = da.iter().fold(0.0f64, |m, &v| m.max(v)) * db.iter().fold(0.0f64, |m, &v| m.max(v));
    let mut z = ua.t().dot(x).dot(ub);
    for ((i, j), v) in z.indexed_iter_mut() {
        let lam = da[i] * db[j];
        *v = if top > 0.0 && lam > PINV_RTOL * top {
            *v / lam
        } else {
            0.0
        };
    }
    ua.dot(&z).dot(&ub.t())
}

/// `y = H⁺ x` for a dense symmetric `h` and right-hand sides as the columns of `x`.
fn dense_pinv_solve((d, u): &(Array1<f64>, Array2<f64>), x: &Array2<f64>) -> Array2<f64> {
    let top = d.iter().fold(0.0f64, |m, &v| m.max(v));
    let mut z = u.t().dot(x);
    for (i, mut row) in z.axis_iter_mut(Axis(0)).enumerate() {
        let lam = d[i];
        if top > 0.0 && lam > PINV_RTOL * top {
            row.mapv_inplace(|v| v / lam);
        } else {
            row.fill(0.0);
        }
    }
    u.dot(&z)
}

/// The target and metric of one ALS run.
struct Problem<'a> {
    target: &'a Array2<f64>,
    metric: &'a Array2<f64>,
    /// Use the dense local system even where a Kronecker form exists (tests compare the two).
    force_dense: bool,
}

impl Problem<'_> {
    /// `adj(Y)[a, p, q, b] = Σ L[P<,u,a] R[b,P>,w] Y[(P<,p,P>),(u,q,w)]` for `y: [out, in]`.
    fn adjoint(
        &self,
        l: &Array3<f64>,
        r: &Array3<f64>,
        dims: [usize; 4],
        y: &Array2<f64>,
    ) -> Block {
        let (pl, ql, a) = l.dim();
        let [_, p, q, b] = dims;
        let (_, pr, qr) = r.dim();
        let y6 = reshaped(y, &[pl, p, pr, ql, q, qr]).permuted_axes(IxDyn(&[0, 3, 1, 4, 2, 5]));
        let y2 = as2(&y6, pl * ql, p * q * pr * qr);
        let x1 = as2(l, pl * ql, a).t().dot(&y2); // [a, p·q·Pr·Qr]
        let x2 = as2(&x1, a * p * q, pr * qr).dot(&as2(r, b, pr * qr).t()); // [a·p·q, b]
        reshaped(&x2, &[a, p, q, b])
            .into_dimensionality()
            .expect("4-D")
    }

    /// The Newton step `H⁺·rhs` of the local problem at a core with interfaces `l`, `r`, or
    /// `None` when the dense local system would exceed [`DENSE_LIMIT`] or LAPACK fails.
    fn step(&self, l: &Array3<f64>, r: &Array3<f64>, rhs: &Block) -> Option<Block> {
        let (pl, ql, a) = l.dim();
        let (_, p, q, b) = rhs.dim();
        let (_, pr, qr) = r.dim();
        let n_in = ql * q * qr;
        let lm = as2(l, pl, ql * a);
        let ml = lm.t().dot(&lm); // [(u,a), (u',a')]
        let mut out = Block::zeros((a, p, q, b));
        if qr == 1 && ql > 1 && !self.force_dense {
            // H = K ⊗ MR, K[(a,q),(a',q')] = Σ_{u,u'} ML[u,a,u',a'] M[(u,q),(u',q')].
            let ml4 = reshaped(&ml, &[ql, a, ql, a]).permuted_axes(IxDyn(&[1, 3, 0, 2]));
            let m4 = reshaped(self.metric, &[ql, q, ql, q]).permuted_axes(IxDyn(&[0, 2, 1, 3]));
            let k = as2(&ml4, a * a, ql * ql).dot(&as2(&m4, ql * ql, q * q));
            let k = reshaped(&k, &[a, a, q, q]).permuted_axes(IxDyn(&[0, 2, 1, 3]));
            let k = as2(&k, a * q, a * q);
            let rm = as2(r, b, pr);
            let mr = rm.dot(&rm.t());
            let (ek, emr) = (eig(&k)?, eig(&mr)?);
            for j in 0..p {
                let x = as2(&rhs.index_axis(Axis(1), j), a * q, b);
                let y = kron_pinv_solve(&ek, &emr, &x);
                out.index_axis_mut(Axis(1), j)
                    .assign(&reshaped(&y, &[a, q, b]));
            }
            return Some(out);
        }
        // N[(u,q,b), (u',q',b')] = Σ_{P>} Σ_{w,w'} R[b,P>,w] M[(u,q,w),(u',q',w')] R[b',P>,w'].
        let uq = ql * q;
        let t = as2(self.metric, n_in * uq, qr).dot(&as2(r, b * pr, qr).t());
        let t = reshaped(&t, &[uq, qr, uq, b, pr]).permuted_axes(IxDyn(&[0, 2, 3, 4, 1]));
        let n4 = as2(&t, uq * uq * b, pr * qr).dot(&as2(r, b, pr * qr).t());
        let n4 = reshaped(&n4, &[uq, uq, b, b]).permuted_axes(IxDyn(&[0, 3, 1, 2]));
        let n = as2(&n4, uq * b, uq * b);
        if ql == 1 && !self.force_dense {
            // H = ML ⊗ N.
            let (eml, en) = (eig(&ml)?, eig(&n)?);
            for j in 0..p {
                let x = as2(&rhs.index_axis(Axis(1), j), a, q * b);
                let y = kron_pinv_solve(&eml, &en, &x);
                out.index_axis_mut(Axis(1), j)
                    .assign(&reshaped(&y, &[a, q, b]));
            }
            return Some(out);
        }
        let dim = a * q * b;
        if dim > DENSE_LIMIT {
            return None;
        }
        // H = Σ_{u,u'} ML[u,a,u',a'] ⊗ N[u,(q,b),u',(q',b')], formed densely.
        let ml4 = reshaped(&ml, &[ql, a, ql, a]).permuted_axes(IxDyn(&[1, 3, 0, 2]));
        let n4 = reshaped(&n, &[ql, q * b, ql, q * b]).permuted_axes(IxDyn(&[0, 2, 1, 3]));
        let h = as2(&ml4, a * a, ql * ql).dot(&as2(&n4, ql * ql, q * b * q * b));
        let h = reshaped(&h, &[a, a, q * b, q * b]).permuted_axes(IxDyn(&[0, 2, 1, 3]));
        let h = as2(&h, dim, dim);
        let eh = eig(&h)?;
        // Right-hand sides: one column per output mode.
        let x = as2(&rhs.view().permuted_axes([0, 2, 3, 1]), dim, p);
        let y = dense_pinv_solve(&eh, &x);
        let y = reshaped(&y, &[a, q, b, p]).permuted_axes(IxDyn(&[0, 3, 1, 2]));
        Some(
            reshaped(&y, &[a, p, q, b])
                .into_dimensionality()
                .expect("4-D"),
        )
    }

    /// Minimises over core `k` (interfaces `l`, `r`); returns whether it was updated.
    fn update(&self, l: &Array3<f64>, r: &Array3<f64>, cores: &mut [Block], k: usize) -> bool {
        let (_, dm) = residual(self.target, &dense(cores), self.metric);
        let rhs = self.adjoint(l, r, cores_dims(&cores[k]), &dm);
        match self.step(l, r, &rhs) {
            Some(delta) if delta.iter().all(|v| v.is_finite()) => {
                cores[k] += &delta;
                true
            }
            _ => false,
        }
    }
}

fn cores_dims(g: &Block) -> [usize; 4] {
    let (a, p, q, b) = g.dim();
    [a, p, q, b]
}

/// Makes core `k` left-orthonormal (`[(a·p·q), b]` with orthonormal columns) and moves the
/// factor into core `k + 1`; no-op when `a·p·q < b` or QR fails.
fn move_right(cores: &mut [Block], k: usize) {
    let [a, p, q, b] = cores_dims(&cores[k]);
    if a * p * q < b {
        return;
    }
    let Ok((qm, rm)) = as2(&cores[k], a * p * q, b).qr() else {
        return;
    };
    let [_, p2, q2, b2] = cores_dims(&cores[k + 1]);
    let next = rm.dot(&as2(&cores[k + 1], b, p2 * q2 * b2));
    cores[k] = reshaped(&qm, &[a, p, q, b])
        .into_dimensionality()
        .expect("4-D");
    cores[k + 1] = reshaped(&next, &[b, p2, q2, b2])
        .into_dimensionality()
        .expect("4-D");
}

/// Makes core `k` right-orthonormal (`[a, (p·q·b)]` with orthonormal rows) and moves the factor
/// into core `k − 1`; no-op when `p·q·b < a` or QR fails.
fn move_left(cores: &mut [Block], k: usize) {
    let [a, p, q, b] = cores_dims(&cores[k]);
    if p * q * b < a {
        return;
    }
    let Ok((qm, rm)) = as2(&cores[k], a, p * q * b).t().to_owned().qr() else {
        return;
    };
    // G_k = Rᵀ Qᵀ: keep Qᵀ, push Rᵀ into G_{k−1}.
    let [a0, p0, q0, _] = cores_dims(&cores[k - 1]);
    let prev = as2(&cores[k - 1], a0 * p0 * q0, a).dot(&rm.t());
    cores[k] = reshaped(&qm.t(), &[a, p, q, b])
        .into_dimensionality()
        .expect("4-D");
    cores[k - 1] = reshaped(&prev, &[a0, p0, q0, a])
        .into_dimensionality()
        .expect("4-D");
}

/// Refines `cores` in place by ALS on `tr((T − Ŵ) M (T − Ŵ)ᵀ)` (see the module docs).
/// `target: [out, in]`, `metric: [in, in]` symmetric positive semi-definite, `cores` a chain of
/// blocks whose modes multiply to `out` and `in`.
pub(crate) fn refine(
    cores: &mut [Block],
    target: &Array2<f64>,
    metric: &Array2<f64>,
    config: &AlsConfig,
) -> AlsReport {
    let prob = Problem {
        target,
        metric,
        force_dense: false,
    };
    let scale = (target.dot(metric) * target).sum().max(f64::MIN_POSITIVE);
    let rel = |f: f64| (f / scale).sqrt();
    let mut f = objective(cores, target, metric);
    let before = rel(f);
    let d = cores.len();
    let mut history = Vec::new();
    let mut skipped = 0;
    for _ in 0..config.max_sweeps {
        if f == 0.0 {
            break;
        }
        // Left to right.
        let mut rights = vec![unit(); d];
        for k in (0..d.saturating_sub(1)).rev() {
            rights[k] = extend_right(&cores[k + 1], &rights[k + 1]);
        }
        let mut l = unit();
        for k in 0..d {
            if !prob.update(&l, &rights[k], cores, k) {
                skipped += 1;
            }
            if k + 1 < d {
                move_right(cores, k);
            }
            l = extend_left(&l, &cores[k]);
        }
        // Right to left.
        let mut lefts = vec![unit(); d];
        for k in 1..d {
            lefts[k] = extend_left(&lefts[k - 1], &cores[k - 1]);
        }
        let mut r = unit();
        for k in (0..d).rev() {
            if !prob.update(&lefts[k], &r, cores, k) {
                skipped += 1;
            }
            if k > 0 {
                move_left(cores, k);
            }
            r = extend_right(&cores[k], &r);
        }
        let f_new = objective(cores, target, metric);
        history.push(rel(f_new));
        let gain = f - f_new;
        f = f_new;
        if gain <= config.rtol * f.max(f64::MIN_POSITIVE) {
            break;
        }
    }
    AlsReport {
        sweeps: history.len(),
        before,
        after: rel(f),
        history,
        skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray_linalg::SVD;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn randn(shape: &[usize], rng: &mut StdRng) -> ArrayD<f64> {
        ArrayD::from_shape_fn(IxDyn(shape), |_| rng.gen_range(-1.0..1.0))
    }

    /// A random chain of blocks with the given block dims.
    fn chain(dims: &[[usize; 4]], rng: &mut StdRng) -> Vec<Block> {
        dims.iter()
            .map(|d| randn(d, rng).into_dimensionality().unwrap())
            .collect()
    }

    /// A random symmetric positive definite metric with a wide spectrum.
    fn metric(n: usize, rng: &mut StdRng) -> Array2<f64> {
        let a = as2(&randn(&[n, n], rng), n, n);
        let d = Array2::from_diag(&Array1::from_shape_fn(n, |i| 0.01 + (i as f64).powi(2)));
        a.dot(&d).dot(&a.t()) / n as f64
    }

    fn sqrtm(m: &Array2<f64>) -> Array2<f64> {
        let (lam, q) = sym_eig(m.clone()).unwrap();
        let mut qs = q.clone();
        for (mut c, &l) in qs.columns_mut().into_iter().zip(lam.iter()) {
            c *= l.max(0.0).sqrt();
        }
        qs.dot(&q.t())
    }

    /// Seed layout `[o1, o2, i1, i2]` with full outer bonds: the optimum over the cores is the
    /// rank-m truncation of `T·M^{1/2}` (Eckart–Young); ALS from a random start reaches it.
    #[test]
    fn als_from_a_random_start_reaches_the_whitened_optimum() {
        let mut rng = StdRng::seed_from_u64(1);
        let (o1, o2, i1, i2, m) = (4, 5, 3, 4, 6);
        let (out, inp) = (o1 * o2, i1 * i2);
        let target = as2(&randn(&[out, inp], &mut rng), out, inp);
        let metric = metric(inp, &mut rng);
        let dims = [
            [1, o1, 1, o1],
            [o1, o2, 1, m],
            [m, 1, i1, i2],
            [i2, 1, i2, 1],
        ];
        let mut cores = chain(&dims, &mut rng);
        let report = refine(
            &mut cores,
            &target,
            &metric,
            &AlsConfig {
                max_sweeps: 200,
                rtol: 1e-12,
            },
        );
        let (_, sv, _) = target.dot(&sqrtm(&metric)).svd(false, false).unwrap();
        let tail: f64 = sv.iter().skip(m).map(|s| s * s).sum();
        let f = objective(&cores, &target, &metric);
        assert!(
            (f - tail).abs() < 1e-6 * tail,
            "ALS {f} vs optimum {tail} ({report:?})"
        );
        assert!(report
            .history
            .windows(2)
            .all(|h| h[1] <= h[0] * (1.0 + 1e-12)));
        assert_eq!(report.skipped, 0);
    }

    /// The dense local system and the Kronecker ones give the same step, and after a step the
    /// gradient with respect to that core vanishes.
    #[test]
    fn local_solves_agree_and_zero_the_gradient() {
        let mut rng = StdRng::seed_from_u64(2);
        // Three input modes, so the middle input core has input modes on both sides.
        let (o, i) = ([3, 4], [2, 3, 2]);
        let (out, inp) = (12, 12);
        let target = as2(&randn(&[out, inp], &mut rng), out, inp);
        let metric = metric(inp, &mut rng);
        let dims = [
            [1, o[0], 1, 3],
            [3, o[1], 1, 4],
            [4, 1, i[0], 3],
            [3, 1, i[1], 2],
            [2, 1, i[2], 1],
        ];
        let cores = chain(&dims, &mut rng);
        let d = cores.len();
        for k in 0..d {
            let mut l = unit();
            for g in &cores[..k] {
                l = extend_left(&l, g);
            }
            let mut r = unit();
            for g in cores[k + 1..].iter().rev() {
                r = extend_right(g, &r);
            }
            let mut prob = Problem {
                target: &target,
                metric: &metric,
                force_dense: false,
            };
            let (_, dm) = residual(&target, &dense(&cores), &metric);
            let rhs = prob.adjoint(&l, &r, cores_dims(&cores[k]), &dm);
            let fast = prob.step(&l, &r, &rhs).unwrap();
            prob.force_dense = true;
            let slow = prob.step(&l, &r, &rhs).unwrap();
            let scale = slow.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let diff = (&fast - &slow).iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(diff < 1e-8 * scale, "core {k}: {diff} vs {scale}");
            // After the step, adj(ΔW·M) (minus half the gradient) is ~0 at this core.
            let mut moved = cores.clone();
            moved[k] += &fast;
            let (_, dm) = residual(&target, &dense(&moved), &metric);
            let g = prob.adjoint(&l, &r, cores_dims(&moved[k]), &dm);
            let g0 = rhs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let g1 = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(g1 < 1e-8 * g0, "core {k}: gradient {g1} after, {g0} before");
            assert!(objective(&moved, &target, &metric) <= objective(&cores, &target, &metric));
        }
    }

    /// QR moves change the cores, not the matrix they represent.
    #[test]
    fn orthogonality_moves_keep_the_matrix() {
        let mut rng = StdRng::seed_from_u64(3);
        let dims = [[1, 3, 2, 4], [4, 2, 3, 5], [5, 2, 2, 1]];
        let mut cores = chain(&dims, &mut rng);
        let w = dense(&cores);
        move_right(&mut cores, 0);
        move_left(&mut cores, 2);
        let w2 = dense(&cores);
        let diff = (&w - &w2).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(diff < 1e-12, "{diff}");
        // Core 0 is now left-orthonormal: QᵀQ = I.
        let q = as2(&cores[0], 6, 4);
        let eye = q.t().dot(&q) - Array2::<f64>::eye(4);
        assert!(eye.iter().all(|v| v.abs() < 1e-12));
    }
}

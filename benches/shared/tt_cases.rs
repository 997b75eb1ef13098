//! The TT layer shapes the benches time (shared by `tt_contraction.rs` and
//! `plan_guarantee.rs`): the seed's FFN projections 50→200 and 200→50 at three middle bonds,
//! and a GPT-2-small MLP matrix 768→3072 at three uniform bonds.

use ndarray::Array2;
use rand::{rngs::StdRng, Rng, SeedableRng};
use succulm::Linear;

/// A uniform random `[rows, cols]` input in `[-1, 1)`.
pub fn random_x(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.gen_range(-1.0..1.0))
}

/// One layer shape: its modes, the bonds it is benched at (with a label each) and row counts.
pub struct Case {
    pub name: &'static str,
    pub in_modes: Vec<usize>,
    pub out_modes: Vec<usize>,
    pub bonds: Vec<Vec<usize>>,
    pub labels: Vec<usize>,
    pub rows: Vec<usize>,
}

impl Case {
    /// `(in, out, the dense layer every TT of the case is decomposed from)`.
    pub fn dense(&self) -> (usize, usize, Linear) {
        let (i, o) = (
            self.in_modes.iter().product(),
            self.out_modes.iter().product(),
        );
        (
            i,
            o,
            Linear::init(i, o, &mut StdRng::seed_from_u64(1234)).unwrap(),
        )
    }
}

/// Every bench shape.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "50to200",
            in_modes: vec![5, 10],
            out_modes: vec![10, 20],
            bonds: [50, 27, 20].iter().map(|&m| vec![10, m, 10]).collect(),
            labels: vec![50, 27, 20],
            rows: vec![1, 29, 928],
        },
        Case {
            name: "200to50",
            in_modes: vec![10, 20],
            out_modes: vec![5, 10],
            bonds: [50, 27, 20].iter().map(|&m| vec![5, m, 20]).collect(),
            labels: vec![50, 27, 20],
            rows: vec![1, 29, 928],
        },
        Case {
            name: "768to3072",
            in_modes: vec![8, 8, 12],
            out_modes: vec![12, 16, 16],
            bonds: [8, 16, 32].iter().map(|&r| vec![r; 5]).collect(),
            labels: vec![8, 16, 32],
            rows: vec![1, 128],
        },
    ]
}

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

/// One of the seed's FFN projections at middle bonds 50, 27 and 20 (`bonds(m)` for middle
/// bond `m`), on 1, 29 and 928 rows.
fn seed_ffn(
    name: &'static str,
    in_modes: [usize; 2],
    out_modes: [usize; 2],
    bonds: fn(usize) -> Vec<usize>,
) -> Case {
    Case {
        name,
        in_modes: in_modes.to_vec(),
        out_modes: out_modes.to_vec(),
        bonds: [50, 27, 20].into_iter().map(bonds).collect(),
        labels: vec![50, 27, 20],
        rows: vec![1, 29, 928],
    }
}

/// Every bench shape.
pub fn cases() -> Vec<Case> {
    vec![
        seed_ffn("50to200", [5, 10], [10, 20], |m| vec![10, m, 10]),
        seed_ffn("200to50", [10, 20], [5, 10], |m| vec![5, m, 20]),
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

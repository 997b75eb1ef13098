//! A planted 4-"block" sweep on the toy bigram (shared by the shard, replication and HTML
//! tests): the reference is a bigram fitted by hand to three sentences; compressing block k at
//! bond b adds `(50 - b)/50` times block k's damage pattern, chosen by `Plant`.
#![allow(dead_code)]

use ndarray::Array2;
use succulm::nn::generate::Sampling;
use succulm::study::eval::{Evaluator, Probe, ProbeGroup, SampleConfig};
use succulm::study::sweep::{CompressionInfo, Method, ProjectionError};
use succulm::text::vocab::PAD;

use super::toy::{id, random_matrix, vocab, Bigram, V};

pub fn data() -> (Array2<u32>, Array2<u32>) {
    let rows = [
        vec![
            "<BOS>", "is", "ruby", "a", "boy", "?", "yes", ",", "he", "is", ".", "<EOS>",
        ],
        vec![
            "<BOS>", "is", "winy", "a", "boy", "?", "no", ",", "winy", "is", "a", "girl", ".",
            "<EOS>",
        ],
        vec![
            "<BOS>", "ruby", "is", "a", "boy", ".", "winy", "is", "a", "girl", ".", "<EOS>",
        ],
    ];
    let t = 14;
    let mut x = Array2::from_elem((3, t), PAD);
    let mut y = Array2::from_elem((3, t), PAD);
    for (r, w) in rows.iter().enumerate() {
        let ids: Vec<u32> = w.iter().map(|s| id(s)).collect();
        for j in 0..ids.len() - 1 {
            x[[r, j]] = ids[j];
            y[[r, j]] = ids[j + 1];
        }
    }
    (x, y)
}

pub fn probes() -> Vec<Probe> {
    let base = |p: &str, group| Probe {
        id: p.into(),
        group,
        prompt: p.into(),
        expected_answer: None,
        fact: None,
        expect_first_word: None,
        contrast_first_word: None,
        expect_words: vec![],
    };
    let fact = |p: &str, r: &str, a: &str| Probe {
        fact: Some("gender".into()),
        expect_first_word: Some(r.into()),
        contrast_first_word: Some(a.into()),
        ..base(p, ProbeGroup::Fact)
    };
    vec![
        fact("is ruby a boy?", "yes", "no"),
        fact("is winy a boy?", "no", "yes"),
        base("who is winy?", ProbeGroup::SeedOutOfTraining),
    ]
}

pub fn reference() -> Bigram {
    let (x, y) = data();
    let mut t = Array2::from_elem((V, V), -4.0f32);
    for (a, b) in x.iter().zip(y.iter()) {
        if *b != PAD {
            t[[*a as usize, *b as usize]] += 3.0;
        }
    }
    Bigram::new(t, 16)
}

/// Which block does what when compressed.
#[derive(Debug, Clone, Copy)]
pub struct Plant {
    /// The block whose compression scrambles everything (breaks structure).
    pub scrambler: usize,
    /// The block whose compression pulls mass onto the hidden word "sophia".
    pub trap: usize,
    /// Seed of the mild noise of the other blocks (a "training seed").
    pub noise_seed: u64,
}

impl Plant {
    /// The seed's story: block 0 scrambles, block 3 drives the trap.
    pub const SEED: Plant = Plant {
        scrambler: 0,
        trap: 3,
        noise_seed: 10,
    };

    pub fn damage(&self, block: usize) -> Array2<f32> {
        if block == self.scrambler {
            random_matrix(V, V, 77 + self.noise_seed, 12.0)
        } else if block == self.trap {
            let mut d = Array2::zeros((V, V));
            d.column_mut(id("sophia") as usize).fill(5.0);
            d
        } else {
            random_matrix(V, V, self.noise_seed + block as u64, 0.5)
        }
    }

    /// The sweep's `compress` callback on `reference`.
    pub fn compress(
        &self,
        reference: &Bigram,
        blocks: &[usize],
        bond: usize,
    ) -> succulm::Result<(Bigram, CompressionInfo)> {
        let mut m = reference.clone();
        let s = (50.0 - bond as f32).max(0.0) / 50.0;
        for &k in blocks {
            m.table.scaled_add(s, &self.damage(k));
        }
        let info = CompressionInfo {
            ffn_params_dense: 100 * blocks.len(),
            ffn_params_tt: bond * blocks.len(),
            projections: blocks
                .iter()
                .flat_map(|&k| ["ffn.0", "ffn.2"].map(|p| ProjectionError::new(k, p, s as f64)))
                .collect(),
        };
        Ok((m, info))
    }
}

pub fn sample(samples: usize) -> SampleConfig {
    SampleConfig {
        sampling: Sampling::Temperature(0.6),
        samples_per_probe: samples,
        seed: 42,
    }
}

/// The evaluator of `reference` on the planted data.
pub fn evaluator<'a>(reference: &'a Bigram, samples: usize) -> Evaluator<'a, Bigram> {
    let (x, y) = data();
    Evaluator::new(
        reference,
        &vocab(),
        x.view(),
        y.view(),
        &probes(),
        &[id("sophia")],
        sample(samples),
    )
    .unwrap()
}

pub const METHODS: [Method; 1] = [Method::Weight];

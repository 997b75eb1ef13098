//! A planted 4-"block" sweep on the toy bigram (shared by the shard, replication and HTML
//! tests): the reference is a bigram fitted by hand to three sentences; compressing block k at
//! bond b adds `(50 - b)/50` times block k's damage pattern, chosen by `Plant`.
#![allow(dead_code)]

use ndarray::Array2;
use succulm::nn::generate::Sampling;
use succulm::study::eval::{Evaluator, Probe, ProbeGroup, SampleConfig};
use succulm::study::sweep::{
    default_block_sets, run_grid, CompressionInfo, Grid, HealKind, Method, ProjectionError,
    SweepReport,
};

use super::toy::{fitted, id, random_matrix, shifted_words, vocab, Bigram, V};

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
    let rows: Vec<&[&str]> = rows.iter().map(|w| w.as_slice()).collect();
    shifted_words(&rows, 14)
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
    fitted(&x, &y)
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

/// A fabricated 4-block report at bond 20 (weight method, the seed's sampling): one cell per
/// `(block, metrics)` of `singles`, the dense `reference`, and the given settings.
pub fn fabricated_report(
    reference: succulm::study::eval::CellMetrics,
    singles: Vec<(usize, succulm::study::eval::CellMetrics)>,
    settings: Vec<succulm::study::sweep::SettingCell>,
) -> succulm::study::sweep::SweepReport {
    succulm::study::sweep::SweepReport {
        n_blocks: 4,
        block_sets: (0..4).map(|b| vec![b]).collect(),
        bonds: vec![20],
        methods: vec![Method::Weight],
        sample: SampleConfig {
            sampling: Sampling::Temperature(0.6),
            samples_per_probe: 10,
            seed: 0,
        },
        heal: None,
        calibration: None,
        reference,
        cells: singles
            .into_iter()
            .map(|(b, metrics)| succulm::study::sweep::SweepCell {
                method: Method::Weight,
                blocks: vec![b],
                bond: 20,
                compression: CompressionInfo::default(),
                metrics,
                healed: None,
                heal: None,
            })
            .collect(),
        budget: vec![],
        settings,
    }
}

/// The planted sweep of `plant`: every method, single blocks, bonds 50, 30 and 10 on two
/// threads, `samples` per probe; healing (of `heal`'s kind) restores the reference's table.
pub fn sweep(plant: Plant, samples: usize, heal: Option<HealKind>) -> SweepReport {
    let r = reference();
    let ev = evaluator(&r, samples);
    let restore = |m: &mut Bigram| {
        m.table.assign(&r.table);
        Ok(())
    };
    run_grid(
        &ev,
        &Grid {
            n_blocks: 4,
            methods: &METHODS,
            block_sets: &default_block_sets(4),
            bonds: &[50, 30, 10],
            threads: 2,
        },
        |_, b: &[usize], bond| plant.compress(&r, b, bond),
        heal.map(|k| (k, restore)),
        &|_: &str| {},
    )
    .unwrap()
}

//! `replicate::sweep_model` draws every verdict `layer_sweep` draws: it scores the seed's
//! settings the grid lacks and the novel word-link rate (which needs the training rows). Before
//! this, the replicated verdicts on loosening/tightening, the consecutive pairs and strange
//! vocabulary were "inconclusive, no effect" in every model.

mod common;

use succulm::study::replicate::sweep_model;
use succulm::study::report::verdict::verdicts;
use succulm::study::setup::{StudyData, SweepOptions};
use succulm::study::sweep::SEED_SETTINGS;
use succulm::Model;

#[test]
fn sweep_model_scores_the_seed_settings_and_the_novel_link_rate() {
    // The shipped model: four blocks, so every seed setting applies.
    let (model, _) = Model::load("fixtures/succulm_upper_middle.json").unwrap();
    let data = StudyData::load(
        common::fixture(""),
        StudyData::fixture_vocab(common::fixture("")).unwrap(),
        model.config().max_len,
    )
    .unwrap();
    let options = SweepOptions {
        blocks: Some("0,1,2,3".into()),
        bonds: vec![10],
        samples: 2,
        temperature: 0.6,
        seed: 7,
        threads: 2,
        ..SweepOptions::default()
    };
    let report = sweep_model(&model, &data, &options, &|_: &str| {}).unwrap();
    assert_eq!(report.cells.len(), 4);
    let ids: Vec<&str> = report.settings.iter().map(|s| s.id.as_str()).collect();
    let want: Vec<&str> = SEED_SETTINGS.iter().map(|s| s.id).collect();
    assert_eq!(ids, want, "every seed setting is scored, in order");
    for (s, spec) in report.settings.iter().zip(&SEED_SETTINGS) {
        assert_eq!(s.blocks, spec.blocks);
        assert_eq!(s.bonds, spec.bonds);
    }
    for c in &report.cells {
        let r = c.metrics.sampled.novel_bigram_rate;
        assert!((0.0..=1.0).contains(&r), "novel link rate {r} of a cell");
    }
    // The verdicts that need them now have numbers in this one model.
    for v in verdicts(&report) {
        if [
            "loosening_vs_tightening",
            "pairs_first_two_larger",
            "last_block_strange_vocabulary",
        ]
        .contains(&v.id.as_str())
        {
            let e = v.effect.unwrap_or(f64::NAN);
            assert!(
                e.is_finite(),
                "verdict {} has no effect ({:?})",
                v.id,
                v.outcome
            );
        }
    }
}

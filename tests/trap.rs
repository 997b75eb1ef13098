//! The trap study end to end on the `tiny` profile: checkpoints along one run (identical to a
//! separate run of that length), frozen embeddings never move, the gap and rates are
//! consistent with independent computations, and the conclusion names the numbers.

mod common;

use succulm::nn::generate::Sampling;
use succulm::nn::train::{TrainConfig, Trainer};
use succulm::study::eval::SampleConfig;
use succulm::study::setup::StudyData;
use succulm::study::trap::{self, Embeddings, TrapConfig};
use succulm::Model;

#[test]
fn the_study_runs_on_tiny_end_to_end() {
    let max_len = succulm::nn::model::PROFILE_MAX_LEN;
    let (vocab, probes, train, valid) = common::standard_data(max_len);
    let data =
        StudyData::new(vocab.clone(), probes.clone(), &common::all_pairs(), max_len).unwrap();
    let tiny = succulm::ModelConfig::profile("tiny", vocab.len()).unwrap();
    assert_eq!(tiny.max_len, max_len);
    let config = TrapConfig {
        profile: "tiny".into(),
        epochs: vec![1, 2],
        treatments: vec![Embeddings::Trainable, Embeddings::Frozen],
        blocks: vec![0],
        bonds: vec![5],
        train: TrainConfig {
            seed: 3,
            ..TrainConfig::default()
        },
        sample: SampleConfig {
            sampling: Sampling::Temperature(0.6),
            samples_per_probe: 2,
            seed: 5,
        },
    };
    let lines = std::sync::Mutex::new(Vec::new());
    let study = trap::run_study(&data, &config, &|l: &str| {
        lines.lock().unwrap().push(l.to_string())
    })
    .unwrap();
    assert_eq!(lines.into_inner().unwrap().len(), 4);
    assert_eq!(study.checkpoints.len(), 4);
    let hidden = vocab.hidden_words().len();
    assert!(hidden >= 1);
    for c in &study.checkpoints {
        assert_eq!(c.compressed.len(), 1);
        assert_eq!(c.words.len(), hidden);
        for x in std::iter::once(&c.dense).chain(&c.compressed) {
            assert!(x.hidden_mass > 0.0 && x.hidden_mass < 1.0);
            assert!(x.answers > 0);
            let p = x.hidden_answer_rate;
            assert!((x.rate_se - (p * (1.0 - p) / x.answers as f64).sqrt()).abs() < 1e-12);
        }
        for w in &c.words {
            assert!(w.logit_gap.is_finite());
            assert!(!vocab.hidden_words().contains(&w.neighbour));
            if c.embeddings == Embeddings::Frozen {
                assert_eq!(w.drift, 0.0, "frozen embeddings never move");
            }
        }
        match c.embeddings {
            Embeddings::Frozen => assert_eq!(c.visible_drift, 0.0),
            Embeddings::Trainable => assert!(c.visible_drift > 0.0),
        }
    }
    // Checkpoints are along one run: epoch 2's validation loss is that of a fresh 2-epoch run.
    let mut m = Model::from_profile("tiny", &vocab, 3).unwrap();
    let mut t = Trainer::new(TrainConfig {
        epochs: 2,
        seed: 3,
        ..TrainConfig::default()
    })
    .unwrap();
    let reports = t.fit(&mut m, &train, &valid, |_| {}).unwrap();
    let c2 = study
        .checkpoints
        .iter()
        .find(|c| c.embeddings == Embeddings::Trainable && c.epoch == 2)
        .unwrap();
    assert_eq!(c2.val_loss, reports[1].val_loss);
    // The trained hidden word's drift is its embedding's distance from the initial vector.
    let init = Model::from_profile("tiny", &vocab, 3).unwrap();
    let h = vocab.id(&c2.words[0].word) as usize;
    let d = &m.embedding().weight().row(h) - &init.embedding().weight().row(h);
    assert!((c2.words[0].drift - d.dot(&d).sqrt() as f64).abs() < 1e-6);

    let table = trap::format_table(&study);
    assert_eq!(table.lines().count(), 2 + 4);
    let text = trap::conclusion(&study);
    assert!(
        text.contains("trainable embeddings: from epoch 1 to 2"),
        "{text}"
    );
    assert!(text.contains("frozen embeddings"), "{text}");
    assert!(text.contains("block 0"), "{text}");
    let svg = trap::chart(&study);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 4);

    // Bad configurations are errors.
    let bad = |f: &dyn Fn(&mut TrapConfig)| {
        let mut c = config.clone();
        f(&mut c);
        trap::run_study(&data, &c, &|_: &str| {}).is_err()
    };
    assert!(bad(&|c| c.epochs = vec![2, 1]));
    assert!(bad(&|c| c.epochs = vec![]));
    assert!(bad(&|c| c.blocks = vec![1]));
    assert!(bad(&|c| c.bonds = vec![0]));
    assert!(bad(&|c| c.treatments.clear()));
}

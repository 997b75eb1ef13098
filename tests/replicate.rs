//! Replication across models: five toy models with planted effects, swept by the real runner;
//! the claims true in 3 of 5 (and in 5 of 5) say so; mean ± SE from the per-model effects.

mod planted;
mod toy;

use planted::Plant;
use succulm::study::replicate::{
    aggregate, aggregate_reports, format_replicated, markdown_table, mean_se, merge_replica_parts,
    ReplicaPart, ReplicaReport, Replication,
};
use succulm::study::report::verdict::{verdicts, Outcome};
use succulm::study::shard::Shard;
use succulm::study::sweep::SweepReport;

fn sweep(plant: Plant) -> SweepReport {
    planted::sweep(plant, 20, None)
}

/// Models 0, 2, 4 follow the seed's story (block 0 scrambles, block 3 traps); in models 1
/// and 3 block 2 scrambles and block 1 traps. Claim 3 (first half matters more) holds only
/// where the scrambler is in the first half: models 0, 2, 4 as well.
fn plants() -> Vec<Plant> {
    (0..5)
        .map(|i| {
            if i % 2 == 0 {
                Plant {
                    noise_seed: 10 + i,
                    ..Plant::SEED
                }
            } else {
                Plant {
                    scrambler: 2,
                    trap: 1,
                    noise_seed: 10 + i,
                }
            }
        })
        .collect()
}

fn replicas() -> Vec<ReplicaReport> {
    plants()
        .into_iter()
        .enumerate()
        .map(|(i, p)| ReplicaReport {
            label: format!("toy {i}"),
            report: sweep(p),
        })
        .collect()
}

#[test]
fn a_claim_true_in_3_of_5_toy_models_says_so() {
    let reps = replicas();
    let agg = aggregate_reports(&reps).unwrap();
    // Every verdict of a single sweep is replicated, in its order.
    let single = succulm::study::report::all_verdicts(&reps[0].report);
    let ids: Vec<&str> = agg.iter().map(|v| v.id.as_str()).collect();
    let single_ids: Vec<&str> = single.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, single_ids);
    for id in [
        "block0_structure",
        "last_block_sophia_trap",
        "first_half_matters_more",
    ] {
        let v = agg.iter().find(|v| v.id == id).unwrap();
        assert_eq!(v.models, 5);
        assert_eq!(v.supported, 3, "{id}: {v:?}");
        assert_eq!(v.not_supported, 2, "{id}: {v:?}");
        assert_eq!(v.summary(), "supported in 3 of 5 models");
        // The planted models are the supporting ones.
        for (i, m) in v.per_model.iter().enumerate() {
            let want = if i % 2 == 0 {
                Outcome::Supported
            } else {
                Outcome::NotSupported
            };
            assert_eq!(m.outcome, Some(want), "{id} model {i}");
            assert_eq!(m.label, format!("toy {i}"));
            // Each model's effect is its own single-model verdict's.
            let own = verdicts(&reps[i].report)
                .into_iter()
                .find(|w| w.id == id)
                .unwrap();
            assert_eq!(m.effect, own.effect);
            assert_eq!(own.effect.unwrap() > 0.0, i % 2 == 0, "{id} model {i}");
        }
        // Mean ± SE, by hand from the five effects.
        let e: Vec<f64> = v.per_model.iter().map(|m| m.effect.unwrap()).collect();
        let mean = e.iter().sum::<f64>() / 5.0;
        let sd = (e.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
        assert!((v.mean_effect.unwrap() - mean).abs() < 1e-12);
        assert!((v.se_effect.unwrap() - sd / 5f64.sqrt()).abs() < 1e-12);
        assert_eq!(v.effects, 5);
    }
    let text = format_replicated(&agg);
    assert!(text.contains("supported in 3 of 5 models (2 not supported, 0 inconclusive)"));
    let md = markdown_table(&agg);
    assert_eq!(md.lines().count(), 2 + agg.len());
    assert!(md.contains("| 3 of 5 |"));
}

#[test]
fn the_same_model_five_times_is_unanimous_with_zero_spread() {
    let r = sweep(Plant::SEED);
    let reps: Vec<ReplicaReport> = (0..5)
        .map(|i| ReplicaReport {
            label: format!("copy {i}"),
            report: r.clone(),
        })
        .collect();
    for v in aggregate_reports(&reps).unwrap() {
        let single = verdicts(&r).into_iter().find(|w| w.id == v.id).unwrap();
        let k = if single.outcome == Outcome::Supported {
            5
        } else {
            0
        };
        assert_eq!(v.supported, k);
        // A verdict whose cells the toy sweep lacks (the seed's settings) has no effect, in
        // one model or five.
        let Some(e) = single.effect else {
            assert_eq!(v.mean_effect, None, "{}", v.id);
            continue;
        };
        let m = v.mean_effect.unwrap();
        assert!((m - e).abs() <= 1e-12 * e.abs().max(1.0), "{m} vs {e}");
        assert!(v.se_effect.unwrap() < 1e-12);
    }
}

#[test]
fn missing_verdicts_and_bad_inputs() {
    let reps = replicas();
    let mut models: Vec<(String, Vec<_>)> = reps
        .iter()
        .map(|r| (r.label.clone(), verdicts(&r.report)))
        .collect();
    // Model 4 lacks claim 1: inconclusive there, and the mean is over the four others.
    models[4].1.remove(0);
    let agg = aggregate(&models).unwrap();
    let v = &agg[0];
    assert_eq!((v.supported, v.not_supported, v.inconclusive), (2, 2, 1));
    assert_eq!(v.per_model[4].outcome, None);
    assert_eq!(v.effects, 4);
    let e: Vec<f64> = v.per_model[..4].iter().map(|m| m.effect.unwrap()).collect();
    assert_eq!(mean_se(&e), (v.mean_effect, v.se_effect));
    assert!(aggregate(&[]).is_err());
    let dup = vec![models[0].clone(), models[0].clone()];
    assert!(aggregate(&dup)
        .unwrap_err()
        .to_string()
        .contains("repeated"));
    let mut twice = models[0].clone();
    twice.1.push(twice.1[0].clone());
    assert!(aggregate(&[twice])
        .unwrap_err()
        .to_string()
        .contains("twice"));
    assert_eq!(mean_se(&[]), (None, None));
    assert_eq!(mean_se(&[2.0]), (Some(2.0), None));
}

#[test]
fn sharded_replication_merges_to_the_whole() {
    let reps = replicas();
    let whole = Replication::new(reps.clone()).unwrap();
    let dir = std::env::temp_dir().join(format!("succulm-rep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = Vec::new();
    for k in 0..3 {
        let shard = Shard::new(k, 3).unwrap();
        let indices = shard.owned(5);
        let part = ReplicaPart {
            shard,
            models_total: 5,
            run: serde_json::Value::Null,
            models: indices.iter().map(|&i| reps[i].clone()).collect(),
            indices,
        };
        let p = dir.join(shard.file_name());
        part.write(&p).unwrap();
        paths.push(p);
    }
    let parts: Vec<ReplicaPart> = paths
        .iter()
        .rev()
        .map(|p| ReplicaPart::read(p).unwrap())
        .collect();
    let merged = Replication::new(merge_replica_parts(parts.clone()).unwrap()).unwrap();
    let json = |r: &Replication| serde_json::to_string(r).unwrap();
    assert_eq!(json(&merged), json(&whole));
    let e = merge_replica_parts(parts[..2].to_vec())
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 of 3 shards"), "{e}");
}

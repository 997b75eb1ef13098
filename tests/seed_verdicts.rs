//! Issue 16: the seed's settings the grid lacks (loosening vs tightening, consecutive pairs)
//! scored like cells, the metrics behind the new verdicts (gender-probe accuracy, novel word
//! links) worked by hand, and each new verdict on toy reports with its effect planted one way,
//! the other way, and a null case that must come out INCONCLUSIVE.

mod planted;
mod toy;

use ndarray::Array2;
use succulm::nn::generate::{Generation, Sampling};
use succulm::study::eval::{
    novel_bigram_rate, prepare_probes, sampled_metrics, training_bigrams, CellMetrics, Evaluator,
    Probe, ProbeGroup, SampleConfig, SampledMetrics, TeacherForcedMetrics,
};
use succulm::study::report::verdict::{self, format_verdicts, verdicts, Outcome, Verdict};
use succulm::study::report::{self};
use succulm::study::sweep::{
    run_settings, CompressionInfo, HealKind, Method, ProjectionError, SeedSetting, SettingCell,
    SweepReport, SEED_SETTINGS,
};
use succulm::text::vocab::{EOS, PAD};
use succulm::Error;
use toy::{id, random_matrix, vocab, Bigram, V};

// ---------------------------------------------------------------------------------------------
// The metrics.

fn ids(words: &[&str]) -> Vec<u32> {
    words.iter().map(|w| id(w)).collect()
}

fn gen(words: &[&str], eos: bool) -> Generation {
    Generation {
        prompt_ids: vec![],
        ids: ids(words),
        stopped_at_eos: eos,
        probs: None,
    }
}

fn probe(prompt: &str, fact: Option<&str>, right: Option<&str>, wrong: Option<&str>) -> Probe {
    Probe {
        id: prompt.into(),
        group: if right.is_some() {
            ProbeGroup::Fact
        } else {
            ProbeGroup::SeedOutOfTraining
        },
        prompt: prompt.into(),
        expected_answer: None,
        fact: fact.map(String::from),
        expect_first_word: right.map(String::from),
        contrast_first_word: wrong.map(String::from),
        expect_words: vec![],
    }
}

/// Rows `[BOS] + words + [EOS]` as inputs and shifted targets, PAD-padded to 14.
fn rows(sentences: &[&[&str]]) -> (Array2<u32>, Array2<u32>) {
    let rows: Vec<Vec<u32>> = sentences
        .iter()
        .map(|w| {
            let mut s = vec![id("<BOS>")];
            s.extend(ids(w));
            s.push(EOS);
            s
        })
        .collect();
    toy::shifted(&rows, 14)
}

#[test]
fn training_bigrams_and_the_novel_link_rate_by_hand() {
    // One training row: BOS is ruby a boy ? yes EOS.
    let (x, y) = rows(&[&["is", "ruby", "a", "boy", "?", "yes"]]);
    let known = training_bigrams(x.view(), y.view()).unwrap();
    let mut expect: Vec<(u32, u32)> = [
        ("<BOS>", "is"),
        ("is", "ruby"),
        ("ruby", "a"),
        ("a", "boy"),
        ("boy", "?"),
        ("?", "yes"),
    ]
    .iter()
    .map(|(a, b)| (id(a), id(b)))
    .collect();
    expect.push((id("yes"), EOS));
    let mut got: Vec<(u32, u32)> = known.iter().copied().collect();
    got.sort_unstable();
    expect.sort_unstable();
    assert_eq!(got, expect, "no link with PAD");
    let probes = prepare_probes(&[probe("is ruby a boy?", None, None, None)], &vocab()).unwrap();
    // Links of "? yes <EOS>": both known -> 0. "? no , he": (?,no) (no,,) (,,he) all novel -> 1
    // (no EOS drawn). "? yes winy <EOS>": (?,yes) known, (yes,winy) (winy,EOS) novel -> 2/3.
    let samples = vec![vec![
        gen(&["yes"], true),
        gen(&["no", ",", "he"], false),
        gen(&["yes", "winy"], true),
    ]];
    let (mean, se) = novel_bigram_rate(&probes, &samples, &known).unwrap();
    let rates = [0.0, 1.0, 2.0 / 3.0];
    let m = rates.iter().sum::<f64>() / 3.0;
    let sd = (rates.iter().map(|r| (r - m).powi(2)).sum::<f64>() / 2.0).sqrt();
    assert!((mean - m).abs() < 1e-12, "{mean}");
    assert!((se - sd / 3f64.sqrt()).abs() < 1e-12, "{se}");
    // An empty answer without EOS has no link of its own but the prompt's last token... and
    // nothing after it: skipped. Only such answers: NaN.
    let (mean, se) = novel_bigram_rate(&probes, &[vec![gen(&[], false)]], &known).unwrap();
    assert!(mean.is_nan() && se.is_nan());
    assert!(novel_bigram_rate(&probes, &[], &known).is_err());
    assert!(matches!(
        training_bigrams(x.view(), Array2::from_elem((1, 3), PAD).view()),
        Err(Error::Shape { .. })
    ));
}

#[test]
fn gender_accuracy_reads_the_gender_and_pronoun_probes_alone() {
    let reference = Bigram::random(V, 16, 3, 1.0);
    let probes = prepare_probes(
        &[
            probe("is ruby a boy?", Some("gender"), Some("yes"), Some("no")),
            probe("ruby is?", Some("pronoun"), Some("he"), Some("yes")),
            probe("is ruby a girl?", Some("color"), Some("no"), Some("yes")),
            probe("who is winy?", None, None, None),
        ],
        &vocab(),
    )
    .unwrap();
    let samples = vec![
        vec![gen(&["yes", "."], true), gen(&["no"], true)],
        vec![gen(&["<PAD>", "he"], true), gen(&["he"], false)],
        vec![gen(&["yes"], true), gen(&["yes"], true)],
        vec![gen(&["winy"], true), gen(&["winy"], true)],
    ];
    let m = sampled_metrics(&reference, &probes, &samples, &[id("sophia")], 8).unwrap();
    // Gender probes: yes (right), no (wrong), he (PAD skipped: right), he (right) -> 3 of 4.
    assert_eq!(m.gender_answers, 4);
    assert_eq!(m.gender_accuracy, 0.75);
    // Fact probes: the same 3 right of 4, and the color probe's two wrong -> 3 of 6.
    assert_eq!(m.fact_answers, 6);
    assert_eq!(m.fact_accuracy, 0.5);
    assert!(m.novel_bigram_rate.is_nan(), "no training rows here");
    // No gender probe: NaN over 0 answers.
    let m = sampled_metrics(&reference, &probes[2..], &samples[2..], &[id("sophia")], 8).unwrap();
    assert_eq!(m.gender_answers, 0);
    assert!(m.gender_accuracy.is_nan());
}

// ---------------------------------------------------------------------------------------------
// The settings, scored on a toy "4-block" model.

fn toy_probes() -> Vec<Probe> {
    vec![
        probe("is ruby a boy?", Some("gender"), Some("yes"), Some("no")),
        probe("is winy a boy?", Some("gender"), Some("no"), Some("yes")),
        probe("who is winy?", None, None, None),
    ]
}

fn toy_data() -> (Array2<u32>, Array2<u32>) {
    rows(&[
        &["is", "ruby", "a", "boy", "?", "yes", ",", "he", "is", "."],
        &[
            "is", "winy", "a", "boy", "?", "no", ",", "winy", "is", "a", "girl", ".",
        ],
    ])
}

fn toy_reference() -> Bigram {
    let (x, y) = toy_data();
    toy::fitted(&x, &y)
}

fn toy_evaluator(reference: &Bigram, training: bool) -> Evaluator<'_, Bigram> {
    let (x, y) = toy_data();
    let ev = Evaluator::new(
        reference,
        &vocab(),
        x.view(),
        y.view(),
        &toy_probes(),
        &[id("sophia")],
        SampleConfig {
            sampling: Sampling::Temperature(0.6),
            samples_per_probe: 12,
            seed: 7,
        },
    )
    .unwrap();
    if training {
        ev.with_training_rows(x.view(), y.view()).unwrap()
    } else {
        ev
    }
}

/// Block `k` at bond `b` adds `(50 - b)/50` times block k's own random pattern; the info
/// records each block's bond as its projections' "error", so the pairing can be checked.
fn toy_compress(
    reference: &Bigram,
) -> impl Fn(Method, &[usize], &[usize]) -> succulm::Result<(Bigram, CompressionInfo)> + Sync + '_ {
    move |_, blocks, bonds| {
        let mut m = reference.clone();
        for (&k, &b) in blocks.iter().zip(bonds) {
            let s = (50.0 - b as f32).max(0.0) / 50.0;
            m.table
                .scaled_add(s, &random_matrix(V, V, 100 + k as u64, 6.0));
        }
        let info = CompressionInfo {
            ffn_params_dense: 100 * blocks.len(),
            ffn_params_tt: bonds.iter().sum(),
            projections: blocks
                .iter()
                .zip(bonds)
                .map(|(&k, &b)| ProjectionError::new(k, "ffn.0", b as f64))
                .collect(),
        };
        Ok((m, info))
    }
}

type NoHeal = fn(&mut Bigram) -> succulm::Result<()>;

#[test]
fn run_settings_scores_each_seed_setting_like_a_cell() {
    let reference = toy_reference();
    let ev = toy_evaluator(&reference, true);
    let lines = std::sync::Mutex::new(Vec::new());
    let progress = |l: &str| lines.lock().unwrap().push(l.to_string());
    let cells = run_settings(
        &ev,
        4,
        &[Method::Weight],
        &SEED_SETTINGS,
        2,
        toy_compress(&reference),
        None::<(HealKind, NoHeal)>,
        &progress,
    )
    .unwrap();
    let got: Vec<&str> = cells.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        got,
        [
            "loosening",
            "tightening",
            "pair_0_1",
            "pair_2_3",
            "pair_1_2"
        ]
    );
    assert_eq!(lines.into_inner().unwrap().len(), 5);
    let loose = &cells[0];
    assert_eq!(loose.blocks, [0, 1, 2, 3]);
    assert_eq!(loose.bonds, [39, 42, 46, 47]);
    assert_eq!(loose.title, "loosening towards the end");
    // Each block got its own bond.
    let given: Vec<(usize, f64)> = loose
        .compression
        .projections
        .iter()
        .map(|p| (p.block, p.rel_error))
        .collect();
    assert_eq!(given, [(0, 39.0), (1, 42.0), (2, 46.0), (3, 47.0)]);
    // Scored exactly as the evaluator scores that model.
    let (m, _) = toy_compress(&reference)(Method::Weight, &[2, 3], &[30, 30]).unwrap();
    assert_eq!(
        format!("{:?}", cells[3].metrics),
        format!("{:?}", ev.evaluate(&m).unwrap())
    );
    for c in &cells {
        assert!(c.healed.is_none() && c.heal.is_none());
        let s = &c.metrics.sampled;
        assert!((0.0..=1.0).contains(&s.novel_bigram_rate), "{s:?}");
        assert!(s.novel_bigram_se.is_finite());
        assert_eq!(s.gender_answers, 24, "two gender probes × 12 samples");
    }
    // A setting that does no damage scores as the reference; healing is scored too.
    let none = SeedSetting {
        id: "none",
        title: "nothing compressed away",
        blocks: &[3, 0],
        bonds: &[50, 60],
    };
    let restore = |m: &mut Bigram| {
        m.table.assign(&reference.table);
        Ok(())
    };
    let healed = run_settings(
        &ev,
        4,
        &[Method::Weight, Method::Whitened],
        &[none, SEED_SETTINGS[2]],
        1,
        toy_compress(&reference),
        Some((HealKind::Distill, restore)),
        &|_: &str| {},
    )
    .unwrap();
    assert_eq!(healed.len(), 4, "method major");
    assert_eq!(healed[2].method, Method::Whitened);
    assert_eq!(healed[0].blocks, [3, 0], "the setting's order");
    let dense = ev.evaluate(&reference).unwrap();
    assert_eq!(format!("{:?}", healed[0].metrics), format!("{dense:?}"));
    for c in &healed {
        assert_eq!(c.heal, Some(HealKind::Distill));
        assert_eq!(format!("{:?}", c.healed.unwrap()), format!("{dense:?}"));
    }
    assert_ne!(format!("{:?}", healed[1].metrics), format!("{dense:?}"));
}

#[test]
fn run_settings_is_independent_of_threads_and_skips_missing_blocks() {
    let reference = toy_reference();
    let ev = toy_evaluator(&reference, true);
    let go = |n_blocks: usize, threads: usize| {
        run_settings(
            &ev,
            n_blocks,
            &[Method::Weight],
            &SEED_SETTINGS,
            threads,
            toy_compress(&reference),
            None::<(HealKind, NoHeal)>,
            &|_: &str| {},
        )
        .unwrap()
    };
    assert_eq!(format!("{:?}", go(4, 1)), format!("{:?}", go(4, 3)));
    let two = go(2, 2);
    assert_eq!(two.len(), 1);
    assert_eq!(two[0].id, "pair_0_1");
    // Without training rows the novel-link rate is not measured.
    let plain = toy_evaluator(&reference, false);
    let (m, _) = toy_compress(&reference)(Method::Weight, &[0], &[30]).unwrap();
    assert!(plain
        .evaluate(&m)
        .unwrap()
        .sampled
        .novel_bigram_rate
        .is_nan());
    let (x, y) = toy_data();
    assert!(toy_evaluator(&reference, false)
        .with_training_rows(x.view(), y.slice(ndarray::s![.., ..3]))
        .is_err());
    let mut bad = y.clone();
    bad[[0, 0]] = V as u32;
    assert!(matches!(
        toy_evaluator(&reference, false).with_training_rows(x.view(), bad.view()),
        Err(Error::TokenOutOfRange { .. })
    ));
}

#[test]
fn run_settings_rejects_bad_settings() {
    let reference = toy_reference();
    let ev = toy_evaluator(&reference, false);
    let go = |methods: &[Method], s: SeedSetting, threads: usize| {
        run_settings(
            &ev,
            4,
            methods,
            &[s],
            threads,
            toy_compress(&reference),
            None::<(HealKind, NoHeal)>,
            &|_: &str| {},
        )
    };
    let ok = SEED_SETTINGS[2];
    let bad = |blocks: &'static [usize], bonds: &'static [usize]| SeedSetting {
        id: "bad",
        title: "bad",
        blocks,
        bonds,
    };
    for (s, why) in [
        (bad(&[0, 1], &[30]), "1 bonds for 2 blocks"),
        (bad(&[], &[]), "empty block set"),
        (bad(&[1, 1], &[30, 30]), "repeated"),
        (bad(&[0], &[0]), "at least 1"),
    ] {
        let e = go(&[Method::Weight], s, 2).unwrap_err().to_string();
        assert!(e.contains(why) && e.contains("bad"), "{e}");
    }
    assert!(go(&[Method::Weight], ok, 0).is_err());
    assert!(go(&[], ok, 2).is_err());
    assert!(go(&[Method::Weight, Method::Weight], ok, 2).is_err());
}

// ---------------------------------------------------------------------------------------------
// The verdicts on fabricated reports.

/// Sampled metrics with the figures the new verdicts read; the rest fixed.
#[derive(Clone, Copy)]
struct S {
    fluency: f64,
    fluency_se: f64,
    gender: f64,
    gender_n: usize,
    special: f64,
    novel: f64,
    novel_se: f64,
}

const BASE: S = S {
    fluency: 1.0,
    fluency_se: 0.01,
    gender: 0.9,
    gender_n: 400,
    special: 0.0,
    novel: 0.01,
    novel_se: 0.005,
};

fn metrics(s: S) -> CellMetrics {
    CellMetrics {
        teacher_forced: TeacherForcedMetrics {
            loss: 1.0,
            perplexity: 1f64.exp(),
            accuracy: 0.5,
            kl: s.fluency - 1.0,
            hidden_mass: 0.0,
            positions: 100,
        },
        fact_margin: 1.0,
        fact_margin_accuracy: 1.0,
        sampled: SampledMetrics {
            answers: 400,
            tokens: 3200,
            hidden_token_rate: 0.0,
            hidden_answer_rate: 0.0,
            special_token_rate: s.special / 8.0,
            special_answer_rate: s.special,
            eos_rate: 1.0,
            fact_accuracy: s.gender,
            fact_answers: s.gender_n,
            seed_exact_rate: 1.0,
            seed_answers: 40,
            fluency_nll: s.fluency,
            fluency_se: s.fluency_se,
            gender_accuracy: s.gender,
            gender_answers: s.gender_n,
            novel_bigram_rate: s.novel,
            novel_bigram_se: s.novel_se,
        },
    }
}

fn setting(id: &str, s: S) -> SettingCell {
    let seed = SEED_SETTINGS.iter().find(|x| x.id == id).unwrap();
    SettingCell {
        id: id.into(),
        title: seed.title.into(),
        method: Method::Weight,
        blocks: seed.blocks.to_vec(),
        bonds: seed.bonds.to_vec(),
        compression: CompressionInfo::default(),
        metrics: metrics(s),
        healed: None,
        heal: None,
    }
}

/// A 4-block report: single-block cells at bond 20 (`singles[k]` for block k), the dense
/// reference `BASE`, and the given settings.
fn fabricated(singles: [S; 4], settings: Vec<SettingCell>) -> SweepReport {
    planted::fabricated_report(
        metrics(BASE),
        singles.iter().map(|&s| metrics(s)).enumerate().collect(),
        settings,
    )
}

fn find<'a>(v: &'a [Verdict], id: &str) -> &'a Verdict {
    v.iter()
        .find(|x| x.id == id)
        .unwrap_or_else(|| panic!("no {id}"))
}

fn verdict_of(r: &SweepReport, id: &str) -> Verdict {
    find(&verdicts(r), id).clone()
}

fn fl(fluency: f64, fluency_se: f64) -> S {
    S {
        fluency,
        fluency_se,
        ..BASE
    }
}

/// Single-block cells that damage nothing (every rule but 6–8 ignores them here).
const QUIET: [S; 4] = [BASE; 4];

/// A report with quiet single blocks and the given settings (`(id, metrics)`).
fn with_settings(settings: &[(&str, S)]) -> SweepReport {
    fabricated(
        QUIET,
        settings.iter().map(|&(id, s)| setting(id, s)).collect(),
    )
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[test]
fn loosening_vs_tightening_planted_both_ways_and_null() {
    let id = "loosening_vs_tightening";
    let two = |a: S, b: S| with_settings(&[("loosening", a), ("tightening", b)]);
    // Different: 2.0 vs 1.5 ± 0.02: |d| 0.5 > 2·0.028 and > margin 0.25·(1.0 + 0.5)/2 = 0.1875.
    let v = verdict_of(&two(fl(2.0, 0.02), fl(1.5, 0.02)), id);
    assert_eq!(v.outcome, Outcome::NotSupported, "{}", v.evidence);
    assert!(close(v.effect, 0.1875 - 0.5), "{:?}", v.effect);
    assert!(
        v.evidence
            .contains("fluency NLL 2.000 ± 0.020 vs 1.500 ± 0.020 (loosening worse)"),
        "{}",
        v.evidence
    );
    // The other order: tightening worse, same outcome (the claim is "the same").
    let v = verdict_of(&two(fl(1.5, 0.02), fl(2.0, 0.02)), id);
    assert_eq!(v.outcome, Outcome::NotSupported);
    assert!(v.evidence.contains("(tightening worse)"), "{}", v.evidence);
    // The same: 2.0 vs 2.02 ± 0.01: 0.02 + 2·0.0141 = 0.048 < margin 0.25·1.01 = 0.2525.
    let v = verdict_of(&two(fl(2.0, 0.01), fl(2.02, 0.01)), id);
    assert_eq!(v.outcome, Outcome::Supported, "{}", v.evidence);
    assert!(close(v.effect, 0.2525 - 0.02), "{:?}", v.effect);
    // Noisy: 2.0 vs 2.1 ± 0.2: |d| 0.1 < 2·0.283, yet 0.1 + 0.566 > margin 0.2625.
    let v = verdict_of(&two(fl(2.0, 0.2), fl(2.1, 0.2)), id);
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.evidence);
    // Not scored.
    let v = verdict_of(&fabricated(QUIET, vec![]), id);
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert!(v.evidence.contains("did not score") && v.effect.is_none());
}

#[test]
fn consecutive_pairs_planted_both_ways_and_null() {
    let id = "pairs_first_two_larger";
    let two = |a: S, b: S| with_settings(&[("pair_0_1", a), ("pair_2_3", b), ("pair_1_2", BASE)]);
    // 2.0 vs 1.5 ± 0.05: d 0.5 > 2·0.0707.
    let v = verdict_of(&two(fl(2.0, 0.05), fl(1.5, 0.05)), id);
    assert_eq!(v.outcome, Outcome::Supported, "{}", v.evidence);
    assert!(close(v.effect, 0.5));
    assert!(v.evidence.contains("blocks 1+2 (the middle pair)"));
    let v = verdict_of(&two(fl(1.5, 0.05), fl(2.0, 0.05)), id);
    assert_eq!(v.outcome, Outcome::NotSupported, "{}", v.evidence);
    assert!(close(v.effect, -0.5));
    // 1.6 vs 1.5 ± 0.1: d 0.1 < 2·0.141.
    let v = verdict_of(&two(fl(1.6, 0.1), fl(1.5, 0.1)), id);
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.evidence);
    let v = verdict_of(&fabricated(QUIET, vec![setting("pair_0_1", BASE)]), id);
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert!(v.evidence.contains("pair_2_3"), "{}", v.evidence);
}

fn gender(fluency: f64, gender: f64, gender_n: usize) -> S {
    S {
        fluency,
        gender,
        gender_n,
        ..BASE
    }
}

#[test]
fn looking_fine_while_wrong_planted_both_ways_and_null() {
    let id = "looks_fine_but_wrong";
    // Dense: fluency 1.0, gender 0.9 over 400 answers (SE 0.015).
    // Block 2 looks fine (Δfluency 0.1 <= 0.25) and falls 0.4 (SE of the fall 0.029): wrong.
    // Block 0 is as wrong but does not look fine (Δfluency 2.0): not counted.
    let cells = [
        gender(3.0, 0.2, 400),
        BASE,
        gender(1.1, 0.5, 400),
        gender(1.2, 0.9, 400),
    ];
    let v = verdict_of(&fabricated(cells, vec![]), id);
    assert_eq!(v.outcome, Outcome::Supported, "{}", v.evidence);
    assert!(
        close(v.effect, 0.4 - verdict::WRONG_MARGIN),
        "{:?}",
        v.effect
    );
    assert!(v.evidence.contains("3 of 4 cells"), "{}", v.evidence);
    assert!(v.evidence.contains("1 get gender wrong"), "{}", v.evidence);
    assert!(
        v.evidence.contains("2 @ 20 (Δfluency +0.100"),
        "{}",
        v.evidence
    );
    assert!(!v.evidence.contains("0 @ 20 ("), "{}", v.evidence);
    assert!(v.evidence.contains("(most: block 2)"), "{}", v.evidence);
    // The settings count as cells too: a wrong-looking-fine pair names both its blocks.
    let v = verdict_of(
        &fabricated(QUIET, vec![setting("pair_1_2", gender(1.2, 0.5, 400))]),
        id,
    );
    assert_eq!(v.outcome, Outcome::Supported, "{}", v.evidence);
    assert!(v.evidence.contains("pair_1_2 ("), "{}", v.evidence);
    assert!(
        v.evidence.contains("(most: block 1, block 2)"),
        "{}",
        v.evidence
    );
    // The other way: every fine-looking cell keeps gender (fall 0, 0 + 2·0.021 < 0.1); the
    // broken one gets it wrong but does not look fine.
    let cells = [gender(3.0, 0.2, 400), BASE, gender(1.1, 0.9, 400), BASE];
    let v = verdict_of(&fabricated(cells, vec![]), id);
    assert_eq!(v.outcome, Outcome::NotSupported, "{}", v.evidence);
    assert!(close(v.effect, -verdict::WRONG_MARGIN));
    // Null: a fine-looking cell falls 0.05 over only 20 answers (SE 0.081): neither wrong
    // (0.05 < 0.1) nor right (0.05 + 0.16 > 0.1).
    let cells = [BASE, gender(1.1, 0.85, 20), BASE, BASE];
    let v = verdict_of(&fabricated(cells, vec![]), id);
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.evidence);
    assert!(v.evidence.contains("1 undecided"), "{}", v.evidence);
    // No cell looks fine; no gender probe at all.
    let v = verdict_of(&fabricated([gender(2.0, 0.9, 400); 4], vec![]), id);
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert!(v.evidence.contains("0 of 4 cells"), "{}", v.evidence);
    let mut r = fabricated(QUIET, vec![]);
    r.reference.sampled.gender_answers = 0;
    r.reference.sampled.gender_accuracy = f64::NAN;
    let v = verdict_of(&r, id);
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert!(v.evidence.contains("no gender-probe answers"));
}

fn special(rate: f64) -> S {
    S {
        special: rate,
        ..BASE
    }
}

/// Special-token rates per block, the rest as the reference.
fn specials(rates: [f64; 4]) -> SweepReport {
    fabricated(rates.map(special), vec![])
}

#[test]
fn special_tokens_planted_both_ways_and_null() {
    let id = "last_block_special_tokens";
    // 400 answers: 0.2 (SE 0.020) vs 0.05 (SE 0.011): lead 0.15 > 2·0.023.
    let v = verdict_of(&specials([0.05, 0.0, 0.0, 0.2]), id);
    assert_eq!(v.outcome, Outcome::Supported, "{}", v.evidence);
    assert!(close(v.effect, 0.15));
    assert!(v.evidence.contains("highest: block 3"), "{}", v.evidence);
    let v = verdict_of(&specials([0.2, 0.0, 0.0, 0.05]), id);
    assert_eq!(v.outcome, Outcome::NotSupported, "{}", v.evidence);
    assert!(v.evidence.contains("highest: block 0"), "{}", v.evidence);
    // The same rate everywhere: no lead.
    let v = verdict_of(&fabricated([special(0.1); 4], vec![]), id);
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.evidence);
    assert!(v.evidence.contains("highest: none (all equal)"));
    // Block 3 ahead by less than 2 SE: 0.11 vs 0.10.
    let v = verdict_of(&specials([0.1, 0.1, 0.1, 0.11]), id);
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.evidence);
    // None anywhere: the seed saw one, we see none.
    let v = verdict_of(&fabricated(QUIET, vec![]), id);
    assert_eq!(v.outcome, Outcome::NotSupported);
}

fn novel(rate: f64, se: f64) -> S {
    S {
        novel: rate,
        novel_se: se,
        ..BASE
    }
}

#[test]
fn strange_vocabulary_planted_both_ways_and_null() {
    let id = "last_block_strange_vocabulary";
    let n = |r| novel(r, 0.01);
    // Rises over dense 0.01: block 3 0.29 vs 0.09 ± 0.014: lead 0.2.
    let v = verdict_of(&fabricated([n(0.1), n(0.1), n(0.1), n(0.3)], vec![]), id);
    assert_eq!(v.outcome, Outcome::Supported, "{}", v.evidence);
    assert!(close(v.effect, 0.2));
    let v = verdict_of(&fabricated([n(0.3), n(0.1), n(0.1), n(0.1)], vec![]), id);
    assert_eq!(v.outcome, Outcome::NotSupported, "{}", v.evidence);
    assert!(close(v.effect, -0.2));
    // 0.21 vs 0.2 ± 0.05: lead 0.01 < 2·0.071.
    let v = verdict_of(
        &fabricated(
            [novel(0.2, 0.05), n(0.1), n(0.1), novel(0.21, 0.05)],
            vec![],
        ),
        id,
    );
    assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.evidence);
    // Not measured.
    let mut r = fabricated([n(0.1), n(0.1), n(0.1), n(0.3)], vec![]);
    r.reference.sampled.novel_bigram_rate = f64::NAN;
    let v = verdict_of(&r, id);
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert!(v.evidence.contains("not measured"));
}

// ---------------------------------------------------------------------------------------------
// How the verdicts read.

#[test]
fn each_verdict_prints_claim_quote_outcome_rule_and_numbers_on_their_own_lines() {
    let r = fabricated(
        [special(0.05), special(0.0), special(0.0), special(0.2)],
        vec![
            setting("loosening", fl(2.0, 0.2)),
            setting("tightening", fl(2.1, 0.2)),
        ],
    );
    let v = verdicts(&r);
    assert_eq!(v.len(), 8);
    let ids: Vec<&str> = v.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "block0_structure",
            "last_block_sophia_trap",
            "first_half_matters_more",
            "loosening_vs_tightening",
            "pairs_first_two_larger",
            "looks_fine_but_wrong",
            "last_block_special_tokens",
            "last_block_strange_vocabulary"
        ]
    );
    let text = format_verdicts(&v);
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    for (k, x) in v.iter().enumerate() {
        assert!(!x.quote.is_empty(), "{}: the seed's words", x.id);
        assert_eq!(lines[i], format!("{}. {} [{}]", k + 1, x.claim, x.id));
        assert_eq!(lines[i + 1], format!("   the seed: \"{}\"", x.quote));
        assert_eq!(lines[i + 2], format!("   outcome: {}", x.outcome.label()));
        assert_eq!(lines[i + 3], format!("   rule: {}", x.operationalisation));
        assert_eq!(lines[i + 4], format!("   numbers: {}", x.evidence));
        i += 5;
        if let Some(e) = x.effect {
            assert!(lines[i].starts_with(&format!("   effect: {e:+.4} (")));
            i += 1;
        }
        // A rule is one sentence that names every outcome, never "this run was ...".
        for o in ["SUPPORTED", "NOT SUPPORTED", "INCONCLUSIVE"] {
            assert!(x.operationalisation.contains(o) || x.id == "first_half_matters_more");
        }
        assert!(
            !x.operationalisation.contains(". "),
            "{}",
            x.operationalisation
        );
    }
    assert_eq!(i, lines.len());
    // The inconclusive loosening/tightening verdict says so on its outcome line.
    assert_eq!(v[3].outcome, Outcome::Inconclusive);
    assert!(text.contains("   outcome: INCONCLUSIVE\n"));
}

#[test]
fn verdicts_and_settings_are_data_in_the_outputs() {
    let r = fabricated(
        QUIET,
        vec![
            setting("loosening", fl(2.0, 0.02)),
            setting("tightening", fl(1.5, 0.02)),
        ],
    );
    let dir = std::env::temp_dir().join(format!("succulm-seed-verdicts-{}", std::process::id()));
    report::write_all(&r, &dir).unwrap();
    let json = std::fs::read_to_string(dir.join("verdicts.json")).unwrap();
    let back: Vec<Verdict> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report::all_verdicts(&r));
    let raw: serde_json::Value = serde_json::from_str(&json).unwrap();
    let first = raw.as_array().unwrap()[3].as_object().unwrap();
    for key in [
        "id",
        "claim",
        "quote",
        "outcome",
        "operationalisation",
        "evidence",
        "effect",
        "effect_unit",
    ] {
        assert!(first.contains_key(key), "{key}");
    }
    assert_eq!(first["outcome"], "NotSupported");
    // The sweep's JSON carries the settings; the table lists them.
    let back = report::read_json(dir.join("sweep.json")).unwrap();
    assert_eq!(format!("{:?}", back.settings), format!("{:?}", r.settings));
    assert_eq!(back.setting("tightening").unwrap().bonds, [47, 46, 42, 39]);
    let table = std::fs::read_to_string(dir.join("table.txt")).unwrap();
    assert!(table.contains("\nsetting "), "{table}");
    assert!(
        table.contains("\nloosening   0:39,1:42,2:46,3:47"),
        "{table}"
    );
    let settings = report::format_settings(&r);
    assert_eq!(settings.lines().count(), 2 + 1 + 2);
    assert!(settings
        .lines()
        .next()
        .unwrap()
        .ends_with("gender_acc  novel  novel_se"));
    assert_eq!(report::format_settings(&fabricated(QUIET, vec![])), "");
    std::fs::remove_dir_all(&dir).unwrap();
}

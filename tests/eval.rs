//! Evaluation metrics on toy models whose values are worked out by hand.

mod toy;

use ndarray::{array, Array2};
use succulm::nn::generate::Sampling;
use succulm::study::eval::{
    fact_margins, prepare_probes, sample_probes, sample_seed, sampled_metrics, Evaluator, Probe,
    ProbeGroup, SampleConfig, TeacherForced,
};
use succulm::text::vocab::{BOS, EOS, PAD, UNK};
use succulm::Error;
use toy::{id, vocab, Bigram, Prefix, V};

const NEG: f32 = -1e4; // exp(-1e4) is exactly 0 in f64

fn probe(prompt: &str, group: ProbeGroup) -> Probe {
    Probe {
        id: prompt.into(),
        group,
        prompt: prompt.into(),
        expected_answer: None,
        fact: None,
        expect_first_word: None,
        contrast_first_word: None,
        expect_words: vec![],
    }
}

/// A fact probe; `alts` holds at most one contrast word (none: every other token competes).
fn fact(prompt: &str, right: &str, alts: &[&str]) -> Probe {
    assert!(alts.len() <= 1);
    Probe {
        fact: Some("test".into()),
        expect_first_word: Some(right.into()),
        contrast_first_word: alts.first().map(|s| s.to_string()),
        ..probe(prompt, ProbeGroup::Fact)
    }
}

fn open(prompt: &str) -> Probe {
    probe(prompt, ProbeGroup::SeedOutOfTraining)
}

fn seed_probe(prompt: &str, answer: &str) -> Probe {
    Probe {
        expected_answer: Some(answer.into()),
        ..probe(prompt, ProbeGroup::SeedInTraining)
    }
}

/// Validation rows: "is ruby a boy ? yes" etc. with PAD tails.
fn data() -> (Array2<u32>, Array2<u32>) {
    let rows = [
        vec!["<BOS>", "is", "ruby", "a", "boy", "?", "yes", ".", "<EOS>"],
        vec!["<BOS>", "is", "winy", "a", "boy", "?", "no", "<EOS>"],
        vec!["<BOS>", "ruby", "is", "a", "boy", ".", "<EOS>"],
    ];
    let rows: Vec<&[&str]> = rows.iter().map(|w| w.as_slice()).collect();
    toy::shifted_words(&rows, 9)
}

#[test]
fn uniform_model_has_perplexity_v_and_zero_kl_to_itself() {
    let m = Bigram::constant(&[0.0; V], 12);
    let (x, y) = data();
    let tf = TeacherForced::new(&m, x.view(), y.view(), 2).unwrap();
    assert_eq!(tf.positions(), 8 + 7 + 6);
    let r = tf.evaluate(&m, &[id("sophia")]).unwrap();
    assert!((r.loss - (V as f64).ln()).abs() < 1e-9);
    assert!((r.perplexity - V as f64).abs() < 1e-6);
    assert_eq!(r.kl, 0.0);
    assert!((r.hidden_mass - 1.0 / V as f64).abs() < 1e-9);
    // Argmax ties go to id 0 = <PAD>, never a target.
    assert_eq!(r.accuracy, 0.0);
}

#[test]
fn identical_models_have_zero_kl_and_batching_does_not_matter() {
    let m = Prefix::random(V, 12, 5);
    let (x, y) = data();
    let a = TeacherForced::new(&m, x.view(), y.view(), 1)
        .unwrap()
        .evaluate(&m, &[])
        .unwrap();
    let b = TeacherForced::new(&m, x.view(), y.view(), 64)
        .unwrap()
        .evaluate(&m, &[])
        .unwrap();
    assert!(a.kl.abs() < 1e-12);
    assert!((a.loss - b.loss).abs() < 1e-12);
    assert_eq!(a.accuracy, b.accuracy);
    assert_eq!(a.hidden_mass, 0.0);
}

#[test]
fn kl_loss_and_accuracy_worked_by_hand() {
    // One position: x = [BOS], y = [yes].
    // reference: p(yes) = p(no) = 1/2; candidate: logits ln3, 0 -> q(yes) = 3/4, q(no) = 1/4.
    let mut r = [NEG; V];
    r[id("yes") as usize] = 0.0;
    r[id("no") as usize] = 0.0;
    let mut c = [NEG; V];
    c[id("yes") as usize] = 3f32.ln();
    c[id("no") as usize] = 0.0;
    let (reference, candidate) = (Bigram::constant(&r, 4), Bigram::constant(&c, 4));
    let x = array![[BOS]];
    let y = array![[id("yes")]];
    let tf = TeacherForced::new(&reference, x.view(), y.view(), 8).unwrap();
    let m = tf.evaluate(&candidate, &[]).unwrap();
    let kl = 0.5 * (0.5f64 / 0.75).ln() + 0.5 * (0.5f64 / 0.25).ln(); // = ½ ln(4/3)
    assert!((m.kl - kl).abs() < 1e-6, "{} vs {kl}", m.kl);
    assert!((m.kl - 0.5 * (4.0f64 / 3.0).ln()).abs() < 1e-6);
    assert!((m.loss - (4.0f64 / 3.0).ln()).abs() < 1e-6);
    assert_eq!(m.accuracy, 1.0);
    // Target "no": loss ln 4, argmax (yes) wrong.
    let y = array![[id("no")]];
    let m = TeacherForced::new(&reference, x.view(), y.view(), 8)
        .unwrap()
        .evaluate(&candidate, &[])
        .unwrap();
    assert!((m.loss - 4f64.ln()).abs() < 1e-6);
    assert_eq!(m.accuracy, 0.0);
    // And the other direction differs (KL is not symmetric): KL(q‖p) = ¾ln(3/2) + ¼ln(1/2).
    let tf2 = TeacherForced::new(&candidate, x.view(), y.view(), 8).unwrap();
    let back = tf2.evaluate(&reference, &[]).unwrap();
    assert!((back.kl - (0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln())).abs() < 1e-6);
}

#[test]
fn pad_targets_are_ignored() {
    // Bigram: after BOS, p(is) = 1/2 (logits 0 on "is" and "ruby"); after anything else, uniform.
    let mut t = Array2::zeros((V, V));
    t.row_mut(BOS as usize).fill(NEG);
    t[[BOS as usize, id("is") as usize]] = 0.0;
    t[[BOS as usize, id("ruby") as usize]] = 0.0;
    let m = Bigram::new(t, 6);
    // Row: BOS is <PAD> <PAD>; targets: is, <PAD>, <PAD>, ... only position 0 counts... plus
    // a second row with two targets.
    let x = array![[BOS, id("is"), PAD], [BOS, id("is"), id("a")]];
    let y = array![[id("is"), PAD, PAD], [id("ruby"), id("a"), PAD]];
    let r = TeacherForced::new(&m, x.view(), y.view(), 4)
        .unwrap()
        .evaluate(&m, &[])
        .unwrap();
    assert_eq!(r.positions, 3);
    let want = (2f64.ln() + 2f64.ln() + (V as f64).ln()) / 3.0;
    assert!((r.loss - want).abs() < 1e-9);
}

#[test]
fn all_mass_on_a_hidden_word() {
    let mut row = [NEG; V];
    row[id("sophia") as usize] = 0.0;
    let m = Bigram::constant(&row, 10);
    let (x, y) = data();
    let tf = TeacherForced::new(&m, x.view(), y.view(), 8).unwrap();
    let r = tf.evaluate(&m, &[id("sophia")]).unwrap();
    assert!((r.hidden_mass - 1.0).abs() < 1e-12);
    let v = vocab();
    let probes = [fact("is ruby a boy?", "yes", &["no"]), open("who is winy?")];
    let sample = SampleConfig {
        sampling: Sampling::Temperature(0.6),
        samples_per_probe: 4,
        seed: 1,
    };
    let ev = Evaluator::new(&m, &v, x.view(), y.view(), &probes, &[id("sophia")], sample).unwrap();
    let (c, samples) = ev.evaluate_with_samples(&m).unwrap();
    assert_eq!(c.sampled.answers, 8);
    assert_eq!(c.sampled.hidden_token_rate, 1.0);
    assert_eq!(c.sampled.hidden_answer_rate, 1.0);
    assert_eq!(c.sampled.special_token_rate, 0.0);
    assert_eq!(c.sampled.eos_rate, 0.0);
    assert_eq!(c.sampled.fact_accuracy, 0.0);
    assert!(c.sampled.seed_exact_rate.is_nan());
    // Generation fills to max_len = 10: "is ruby a boy ?" = 5 tokens + BOS -> 4 answer tokens.
    assert!(samples[0].iter().all(|g| g.ids == vec![id("sophia"); 4]));
    // Fluency under the reference (itself): p(sophia) = 1 -> NLL 0.
    assert!(c.sampled.fluency_nll.abs() < 1e-9);
    // Margin: yes vs no both at -1e4 logits -> 0, not > 0.
    assert!(c.fact_margin.abs() < 1e-6);
    assert_eq!(c.fact_margin_accuracy, 0.0);
}

/// A model that answers every question "yes." then stops.
fn always_yes() -> Bigram {
    let mut t = Array2::from_elem((V, V), NEG);
    t.column_mut(id("yes") as usize).fill(0.0);
    t[[id("?") as usize, id("yes") as usize]] = 10.0;
    t[[id("?") as usize, id("no") as usize]] = 0.0;
    t.row_mut(id("yes") as usize).fill(NEG);
    t[[id("yes") as usize, id(".") as usize]] = 0.0;
    t.row_mut(id(".") as usize).fill(NEG);
    t[[id(".") as usize, EOS as usize]] = 0.0;
    Bigram::new(t, 12)
}

#[test]
fn a_model_that_always_says_yes() {
    let m = always_yes();
    let v = vocab();
    let probes = [
        fact("is ruby a boy?", "yes", &["no"]),
        fact("is winy a boy?", "no", &["yes"]),
        fact("is ruby a girl?", "no", &[]),
        seed_probe("is ruby a boy?", "yes."),
        seed_probe("is winy a boy?", "no."),
    ];
    let prepared = prepare_probes(&probes, &v).unwrap();
    // Margins: logits yes = 10, no = 0 after "?" -> +10, -10; with every other token as the
    // alternatives, the best other is "no" at 0 -> -10.
    let margins = fact_margins(&m, &prepared, 2).unwrap();
    assert_eq!(margins.len(), 3);
    for (got, want) in margins.iter().zip([10.0, -10.0, -10.0]) {
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
    let cfg = SampleConfig {
        sampling: Sampling::Greedy,
        samples_per_probe: 3,
        seed: 0,
    };
    let samples = sample_probes(&m, &prepared, &cfg).unwrap();
    assert!(samples
        .iter()
        .flatten()
        .all(|g| g.ids == vec![id("yes"), id(".")] && g.stopped_at_eos));
    // Fluency under a uniform reference: every answer token and the EOS cost ln V.
    let uniform = Bigram::constant(&[0.0; V], 12);
    let s = sampled_metrics(&uniform, &prepared, &samples, &[id("sophia")], 4).unwrap();
    assert_eq!(s.answers, 15);
    assert_eq!(s.tokens, 30);
    assert!((s.fact_accuracy - 1.0 / 3.0).abs() < 1e-12);
    assert!((s.seed_exact_rate - 0.5).abs() < 1e-12);
    assert_eq!(s.eos_rate, 1.0);
    assert_eq!(s.hidden_answer_rate, 0.0);
    assert!((s.fluency_nll - (V as f64).ln()).abs() < 1e-9);
    assert!(s.fluency_se < 1e-9);
    // Under itself: p(yes | ?) = 1/(1+e^-10+...), p(. | yes) = 1, p(EOS | .) = 1.
    let own = sampled_metrics(&m, &prepared, &samples, &[], 4).unwrap();
    let p_yes = 1.0 / (1.0 + (-10f64).exp()); // "no" at 0, others at -1e4
    assert!((own.fluency_nll - (-p_yes.ln() / 3.0)).abs() < 1e-6);
}

#[test]
fn special_tokens_in_answers_are_counted() {
    // After "?" -> <BOS>, then <PAD>, then <UNK>, then EOS.
    let mut t = Array2::from_elem((V, V), NEG);
    t[[id("?") as usize, BOS as usize]] = 0.0;
    t[[BOS as usize, PAD as usize]] = 0.0;
    t[[PAD as usize, UNK as usize]] = 0.0;
    t[[UNK as usize, id("yes") as usize]] = 0.0;
    t[[id("yes") as usize, EOS as usize]] = 0.0;
    let m = Bigram::new(t, 12);
    let v = vocab();
    let prepared = prepare_probes(&[fact("is ruby a boy?", "yes", &["no"])], &v).unwrap();
    let cfg = SampleConfig {
        sampling: Sampling::Temperature(1.0),
        samples_per_probe: 2,
        seed: 9,
    };
    let samples = sample_probes(&m, &prepared, &cfg).unwrap();
    assert_eq!(samples[0][0].ids, vec![BOS, PAD, UNK, id("yes")]);
    let s = sampled_metrics(&m, &prepared, &samples, &[], 4).unwrap();
    assert!((s.special_token_rate - 0.75).abs() < 1e-12);
    assert_eq!(s.special_answer_rate, 1.0);
    // The first *word* skips PAD but not <BOS>: the answer starts with <BOS>, wrong.
    assert_eq!(s.fact_accuracy, 0.0);
}

#[test]
fn sample_seeds_differ_and_samples_are_reproducible() {
    let mut seen = std::collections::HashSet::new();
    for i in 0..20 {
        for j in 0..50 {
            assert!(seen.insert(sample_seed(42, i, j)));
        }
    }
    assert_ne!(sample_seed(1, 0, 0), sample_seed(2, 0, 0));
    let m = Prefix::random(V, 12, 8);
    let v = vocab();
    let prepared = prepare_probes(&[open("who is winy?"), open("is ruby a boy?")], &v).unwrap();
    let cfg = SampleConfig {
        sampling: Sampling::Temperature(0.9),
        samples_per_probe: 5,
        seed: 3,
    };
    let a = sample_probes(&m, &prepared, &cfg).unwrap();
    assert_eq!(a, sample_probes(&m, &prepared, &cfg).unwrap());
    assert_ne!(a[0][0].ids, a[0][1].ids);
}

#[test]
fn probe_schema_errors() {
    let v = vocab();
    let bad_probes = [
        (
            Probe {
                expect_first_word: None,
                ..fact("is ruby a boy?", "yes", &[])
            },
            "expect_first_word",
        ),
        (fact("is ruby a boy?", "yes", &["maybe"]), "maybe"),
        (fact("is ruby a boy?", "yes no", &[]), "exactly one token"),
        (fact("is ruby a boy?", "yes", &["yes"]), "right word"),
        (fact("", "yes", &[]), "empty"),
        (fact("zorro blorp", "yes", &[]), "vocabulary"),
        (
            Probe {
                expected_answer: None,
                ..seed_probe("is ruby a boy?", "")
            },
            "expected_answer",
        ),
        (seed_probe("is ruby a boy?", "yes, zorro."), "zorro"),
    ];
    for (i, (p, needle)) in bad_probes.iter().enumerate() {
        let e = prepare_probes(&[open("who is winy?"), p.clone()], &v).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("probe 1") && msg.contains(needle),
            "case {i}: {msg}"
        );
    }
}

#[test]
fn bad_evaluation_inputs() {
    let m = Bigram::constant(&[0.0; V], 6);
    let (x, y) = data();
    let inv = |e: Error, n: &str| matches!(e, Error::InvalidArgument { name, .. } if name == n);
    // Longer than max_len 6.
    assert!(matches!(
        TeacherForced::new(&m, x.view(), y.view(), 4).unwrap_err(),
        Error::SequenceTooLong { .. }
    ));
    let m = Bigram::constant(&[0.0; V], 12);
    assert!(matches!(
        TeacherForced::new(&m, x.view(), y.slice(ndarray::s![..2, ..]), 4).unwrap_err(),
        Error::Shape { .. }
    ));
    assert!(inv(
        TeacherForced::new(&m, x.view(), y.view(), 0).unwrap_err(),
        "batch"
    ));
    let pads = Array2::from_elem(y.dim(), PAD);
    assert!(inv(
        TeacherForced::new(&m, x.view(), pads.view(), 4).unwrap_err(),
        "y"
    ));
    let mut far = y.clone();
    far[[1, 1]] = 500;
    assert!(matches!(
        TeacherForced::new(&m, x.view(), far.view(), 4).unwrap_err(),
        Error::TokenOutOfRange { id: 500, .. }
    ));
    let tf = TeacherForced::new(&m, x.view(), y.view(), 4).unwrap();
    assert!(matches!(
        tf.evaluate(&m, &[99]).unwrap_err(),
        Error::TokenOutOfRange { id: 99, .. }
    ));
    assert!(inv(
        tf.evaluate(&Bigram::constant(&[0.0; 5], 12), &[])
            .unwrap_err(),
        "model"
    ));
    let v = vocab();
    let probes = [open("who is winy?")];
    let ok = SampleConfig {
        sampling: Sampling::Temperature(0.6),
        samples_per_probe: 2,
        seed: 0,
    };
    let zero = SampleConfig {
        samples_per_probe: 0,
        ..ok
    };
    // The evaluator's error for this sampling of these probes.
    let refused = |probes: &[Probe], sample| {
        Evaluator::new(&m, &v, x.view(), y.view(), probes, &[], sample)
            .err()
            .unwrap()
    };
    assert!(inv(refused(&probes, zero), "samples_per_probe"));
    let cold = SampleConfig {
        sampling: Sampling::Temperature(0.0),
        ..ok
    };
    assert!(inv(refused(&probes, cold), "temperature"));
    assert!(inv(refused(&[], ok), "probes"));
    let other = Bigram::constant(&[0.0; 5], 12);
    assert!(inv(
        Evaluator::new(&other, &v, x.view(), y.view(), &probes, &[], ok)
            .err()
            .unwrap(),
        "vocab"
    ));
    let prepared = prepare_probes(&probes, &v).unwrap();
    assert!(inv(
        sampled_metrics(&m, &prepared, &[], &[], 4).unwrap_err(),
        "samples"
    ));
}

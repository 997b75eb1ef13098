//! Batched decoding: several answers decoded together ([`Model::forward_cached_rows`],
//! [`generate_batch`], the sweep's [`sample_probes`]) against the one-row path, step by step.
//!
//! The truths: the one-row key/value-cached path ([`Model::forward_cached`], [`generate`]),
//! itself tested against full forwards in `generate_model.rs`; a toy model whose batched call is
//! the one-row call (so batching must not change a single draw); the one-row replay of every
//! batched answer for the distributions it was drawn from.

mod common;
mod toy;

use ndarray::{Array2, ArrayView1};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use succulm::nn::generate::{generate, generate_batch, GenerateConfig, LanguageModel, Sampling};
use succulm::nn::model::{KvCache, Model, ModelConfig};
use succulm::study::eval::{
    hidden_ids, load_probes, sample_probes, sample_seed, PreparedProbe, SampleConfig,
};
use succulm::study::sweep::{run_grid, tensorized, Grid, Method};
use succulm::text::vocab::{BOS, EOS};
use succulm::{Error, FfnTtSpec, Vocab};

fn shipped() -> (Model, Vocab) {
    Model::load(common::fixture("succulm_upper_middle.json")).unwrap()
}

/// A small random model with several heads and layers, and the `tiny` profile.
fn tiny_models() -> Vec<(&'static str, Model)> {
    let small = ModelConfig {
        vocab_size: 20,
        d_model: 12,
        max_len: 10,
        n_layers: 2,
        ffn_expansion: 2,
        n_attn_heads: 3,
        arch: Default::default(),
    };
    vec![
        ("small", Model::new(small, 5).unwrap()),
        (
            "tiny",
            Model::new(ModelConfig::profile("tiny", 30).unwrap(), 8).unwrap(),
        ),
    ]
}

fn max_abs(a: ArrayView1<f32>, b: ArrayView1<f32>) -> f32 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Rows with prompts of different lengths decoded together, against each row decoded alone:
/// the logits of every row agree at every step (until each row reaches `max_len` and leaves).
/// Returns how many (row, step) logit rows were compared.
fn check_rows_against_one_row_path(model: &Model, seed: u64) -> usize {
    let (v, m) = (model.config().vocab_size, model.config().max_len);
    let mut rng = StdRng::seed_from_u64(seed);
    let rows = 7;
    let mut batched: Vec<KvCache> = Vec::new();
    let mut single: Vec<KvCache> = Vec::new();
    let mut last: Vec<u32> = Vec::new();
    for r in 0..rows {
        let len = 1 + r % (m - 2);
        let mut prefix = vec![BOS];
        prefix.extend((1..len).map(|_| rng.gen_range(3..v as u32)));
        let mut c = model.new_cache();
        let l = model.forward_cached(&mut c, &prefix).unwrap();
        assert_eq!(l.nrows(), prefix.len());
        batched.push(c.clone());
        single.push(c);
        last.push(rng.gen_range(0..v as u32));
    }
    let mut compared = 0;
    while !batched.is_empty() {
        let lb = model.forward_cached_rows(&mut batched, &last).unwrap();
        assert_eq!(lb.dim(), (batched.len(), v));
        for r in 0..batched.len() {
            let l1 = model.forward_cached(&mut single[r], &[last[r]]).unwrap();
            let scale = l1.iter().fold(1.0f32, |a, x| a.max(x.abs()));
            let diff = max_abs(lb.row(r), l1.row(0));
            assert!(
                diff <= 1e-5 * scale,
                "row {r} at position {}: batched and one-row logits differ by {diff}",
                single[r].len() - 1
            );
            assert_eq!(batched[r].len(), single[r].len());
            compared += 1;
        }
        // Rows at max_len leave the batch; the others go on with a fresh token.
        let mut r = 0;
        while r < batched.len() {
            if batched[r].len() == m {
                batched.remove(r);
                single.remove(r);
                last.remove(r);
            } else {
                last[r] = rng.gen_range(0..v as u32);
                r += 1;
            }
        }
    }
    compared
}

#[test]
fn batched_rows_give_the_one_row_logits_at_every_step_on_small_models() {
    for (name, model) in tiny_models() {
        let n = check_rows_against_one_row_path(&model, 1);
        assert!(n > 20, "{name}: only {n} steps compared");
    }
}

#[test]
fn batched_rows_give_the_one_row_logits_at_every_step_on_the_shipped_model() {
    let (model, _) = shipped();
    let n = check_rows_against_one_row_path(&model, 2);
    assert!(n > 100, "only {n} steps compared");
    // And with tensor-train FFNs (the sweep's compressed cells).
    let mut tt = model.clone();
    tt.tensorize_ffn(1, &FfnTtSpec::seed(10)).unwrap();
    tt.tensorize_ffn(3, &FfnTtSpec::seed(27)).unwrap();
    check_rows_against_one_row_path(&tt, 3);
}

#[test]
fn one_row_through_the_batched_path_is_the_one_row_path_bit_for_bit() {
    let (model, vocab) = shipped();
    let prompt = succulm::nn::generate::encode_prompt(&vocab, "is winy a girl?").unwrap();
    let mut prefix = vec![BOS];
    prefix.extend(&prompt);
    let mut a = model.new_cache();
    model.forward_cached(&mut a, &prefix).unwrap();
    let mut b = a.clone();
    for id in [7u32, 30, 2, 99, 5] {
        let la = model.forward_cached(&mut a, &[id]).unwrap();
        let lb = model
            .forward_cached_rows(std::slice::from_mut(&mut b), &[id])
            .unwrap();
        assert_eq!(la, lb);
    }
    // generate_batch with one generator is generate, probabilities included.
    let config = GenerateConfig {
        save_probs: true,
        ..GenerateConfig::temperature(0.6)
    };
    for seed in 0..5 {
        let one = generate(&model, &prompt, &config, &mut StdRng::seed_from_u64(seed)).unwrap();
        let batch =
            generate_batch(&model, &prompt, &config, &mut [StdRng::seed_from_u64(seed)]).unwrap();
        assert_eq!(batch, vec![one]);
    }
}

/// A softmax of `l / t` in f64, the truth for the saved distributions.
fn softmax(l: ArrayView1<f32>, t: f32) -> Vec<f64> {
    let m = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = l
        .iter()
        .map(|&x| ((x as f64 - m) / t as f64).exp())
        .collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

#[test]
fn every_batched_answer_is_drawn_from_its_one_row_distributions() {
    let (model, vocab) = shipped();
    let t = 1.5; // spread enough for the answers to differ
    let config = GenerateConfig {
        save_probs: true,
        ..GenerateConfig::temperature(t)
    };
    let max_len = model.config().max_len;
    let (mut eos, mut full, mut distinct) = (0, 0, std::collections::HashSet::new());
    for prompt in ["who is winy?", "does ruby know three winters?", "ruby"] {
        let prompt = succulm::nn::generate::encode_prompt(&vocab, prompt).unwrap();
        let mut rngs: Vec<StdRng> = (0..24).map(|s| StdRng::seed_from_u64(100 + s)).collect();
        let answers = generate_batch(&model, &prompt, &config, &mut rngs).unwrap();
        assert_eq!(answers.len(), 24);
        for a in &answers {
            assert_eq!(a.prompt_ids, prompt);
            let probs = a.probs.as_ref().unwrap();
            assert_eq!(probs.len(), a.ids.len() + usize::from(a.stopped_at_eos));
            let len = 1 + prompt.len() + a.ids.len();
            if a.stopped_at_eos {
                eos += 1;
                assert!(len < max_len);
            } else {
                full += 1;
                assert_eq!(len, max_len);
            }
            assert!(!a.ids.contains(&EOS));
            // Replay the answer on the one-row path: every step's distribution agrees.
            let mut seq = vec![BOS];
            seq.extend(&prompt);
            seq.extend(&a.ids);
            let mut c = model.new_cache();
            let l = model.forward_cached(&mut c, &seq).unwrap();
            for (s, p) in probs.iter().enumerate() {
                let truth = softmax(l.row(prompt.len() + s), t);
                let d = common::max_abs_diff_f64(p, &truth);
                assert!(d < 1e-5, "step {s}: distributions differ by {d}");
                // The token drawn has mass under the one-row distribution.
                if let Some(&id) = a.ids.get(s) {
                    assert!(truth[id as usize] > 0.0);
                }
            }
            distinct.insert(a.ids.clone());
        }
    }
    assert!(eos > 0, "some answers end at <EOS>");
    assert!(distinct.len() > 10, "the answers vary");
    let _ = full;
}

#[test]
fn on_a_model_whose_batched_call_is_the_one_row_call_batching_changes_no_draw() {
    // `Prefix` uses the trait's default `extend_rows` (row by row), so every logit equals the
    // one-row path's: each batched answer must be exactly `generate` with its generator.
    let model = toy::Prefix::random(toy::V, 12, 3);
    let prompt = [toy::id("ruby"), toy::id("is")];
    for sampling in [
        Sampling::Temperature(0.8),
        Sampling::TopK {
            k: 4,
            temperature: 1.2,
        },
        Sampling::Greedy,
    ] {
        let config = GenerateConfig {
            save_probs: true,
            ..GenerateConfig::new(sampling)
        };
        let seeds: Vec<u64> = (0..40).map(|s| sample_seed(9, 1, s)).collect();
        let mut rngs: Vec<StdRng> = seeds.iter().map(|&s| StdRng::seed_from_u64(s)).collect();
        let batch = generate_batch(&model, &prompt, &config, &mut rngs).unwrap();
        let one: Vec<_> = seeds
            .iter()
            .map(|&s| generate(&model, &prompt, &config, &mut StdRng::seed_from_u64(s)).unwrap())
            .collect();
        assert_eq!(batch, one, "{sampling:?}");
        // The generators end where the one-row path leaves them.
        let mut solo: Vec<StdRng> = seeds.iter().map(|&s| StdRng::seed_from_u64(s)).collect();
        for (r, g) in solo.iter_mut().enumerate() {
            generate(&model, &prompt, &config, g).unwrap();
            assert_eq!(g.gen::<u64>(), rngs[r].gen::<u64>());
        }
        // Answers finish at different steps (EOS and the length limit), so rows really leave.
        if sampling != Sampling::Greedy {
            let lens: std::collections::HashSet<usize> =
                batch.iter().map(|g| g.ids.len()).collect();
            assert!(lens.len() > 2, "{sampling:?}: lengths {lens:?}");
            assert!(batch.iter().any(|g| g.stopped_at_eos));
            assert!(batch.iter().any(|g| !g.stopped_at_eos));
        }
        // Neither the batch's size nor its order matters.
        let mut rev: Vec<StdRng> = seeds
            .iter()
            .rev()
            .take(7)
            .map(|&s| StdRng::seed_from_u64(s))
            .collect();
        let part = generate_batch(&model, &prompt, &config, &mut rev).unwrap();
        let expect: Vec<_> = one.iter().rev().take(7).cloned().collect();
        assert_eq!(part, expect);
    }
}

fn fixture_probes(vocab: &Vocab) -> Vec<PreparedProbe> {
    let probes = load_probes(common::fixture("succulm_probes.json")).unwrap();
    succulm::study::eval::prepare_probes(&probes, vocab).unwrap()
}

#[test]
fn sampled_answers_do_not_depend_on_the_number_of_samples_on_an_exact_model() {
    // Sample j of probe i depends only on (seed, i, j): asking for more samples adds answers
    // and changes none (the batch of a probe grows with samples_per_probe).
    let (_, vocab) = shipped();
    let model = toy::Prefix::random(vocab.len(), 29, 4);
    let probes = fixture_probes(&vocab);
    let cfg = |n| SampleConfig {
        sampling: Sampling::Temperature(0.7),
        samples_per_probe: n,
        seed: 5,
    };
    let three = sample_probes(&model, &probes, &cfg(3)).unwrap();
    let eight = sample_probes(&model, &probes, &cfg(8)).unwrap();
    for (a, b) in three.iter().zip(&eight) {
        assert_eq!(&a[..], &b[..3]);
    }
    // And each answer is `generate` with its own generator.
    for (i, p) in probes.iter().enumerate() {
        for (j, g) in eight[i].iter().enumerate() {
            let mut rng = StdRng::seed_from_u64(sample_seed(5, i, j));
            let one = generate(
                &model,
                &p.prompt_ids,
                &GenerateConfig::temperature(0.7),
                &mut rng,
            );
            assert_eq!(g, &one.unwrap());
        }
    }
}

#[test]
fn the_sweep_on_the_shipped_model_is_the_same_on_2_and_3_threads() {
    let (model, vocab) = shipped();
    let (probes, _, valid) = common::standard_split(&vocab, model.config().max_len);
    let ev = common::evaluator(&model, &vocab, &valid, &probes, 4);
    let run = |threads| {
        run_grid(
            &ev,
            &Grid {
                n_blocks: 4,
                methods: &[Method::Weight],
                block_sets: &[vec![1], vec![0, 1, 2, 3]],
                bonds: &[20, 5],
                threads,
            },
            |_: Method, blocks: &[usize], bond: usize| {
                tensorized(&model, blocks, &vec![bond; blocks.len()])
            },
            None::<(
                succulm::study::sweep::HealKind,
                fn(&mut Model) -> succulm::Result<()>,
            )>,
            &|_: &str| {},
        )
        .unwrap()
    };
    let (two, three) = (run(2), run(3));
    assert_eq!(two.cells.len(), 4);
    assert_eq!(format!("{:?}", two.cells), format!("{:?}", three.cells));
    assert_eq!(
        format!("{:?}", two.reference),
        format!("{:?}", three.reference)
    );
    // The cells really sampled (and differ from the reference at bond 5 in every block).
    let all5 = two.cell(&[0, 1, 2, 3], 5).unwrap();
    assert_eq!(all5.metrics.sampled.answers, probes.len() * 4);
    assert_ne!(
        format!("{:?}", all5.metrics.sampled),
        format!("{:?}", two.reference.sampled)
    );
}

fn invalid_name(e: Error) -> String {
    match e {
        Error::InvalidArgument { name, .. } => name,
        other => format!("{other:?}"),
    }
}

#[test]
fn bad_batched_input_is_an_error_and_leaves_the_caches_alone() {
    let (_, model) = tiny_models().remove(0);
    let (v, m) = (model.config().vocab_size, model.config().max_len);
    let mut caches = vec![model.new_cache(), model.new_cache()];
    model.forward_cached(&mut caches[0], &[BOS, 5]).unwrap();
    model.forward_cached(&mut caches[1], &[BOS]).unwrap();
    let lens = |c: &[KvCache]| c.iter().map(KvCache::len).collect::<Vec<_>>();

    // One token per cache.
    let e = model.forward_cached_rows(&mut caches, &[5]).unwrap_err();
    assert_eq!(invalid_name(e), "ids");
    // An id out of range.
    let e = model
        .forward_cached_rows(&mut caches, &[5, v as u32])
        .unwrap_err();
    assert!(matches!(e, Error::TokenOutOfRange { id, .. } if id == v as u32));
    // A cache of another model.
    let other = Model::new(ModelConfig::profile("tiny", v).unwrap(), 0).unwrap();
    let mut mixed = vec![caches[0].clone(), other.new_cache()];
    let e = model.forward_cached_rows(&mut mixed, &[5, 5]).unwrap_err();
    assert_eq!(invalid_name(e), "caches");
    // A full cache.
    let mut full = model.new_cache();
    model.forward_cached(&mut full, &vec![5; m]).unwrap();
    let mut with_full = vec![caches[0].clone(), full];
    let e = model
        .forward_cached_rows(&mut with_full, &[5, 5])
        .unwrap_err();
    assert!(matches!(e, Error::SequenceTooLong { max_len, .. } if max_len == m));
    assert_eq!(lens(&with_full), vec![2, m], "nothing appended on error");
    assert_eq!(lens(&caches), vec![2, 1], "nothing appended on error");
    // No rows: no logits, no panic.
    let l = model.forward_cached_rows(&mut [], &[]).unwrap();
    assert_eq!(l.dim(), (0, v));

    // The trait's default (row by row) checks the lengths too.
    let toy = toy::Prefix::random(toy::V, 12, 1);
    let mut tc = vec![toy.new_cache()];
    let e = toy.extend_rows(&mut tc, &[1, 2]).unwrap_err();
    assert_eq!(invalid_name(e), "ids");
    assert_eq!(toy.extend_rows(&mut [], &[]).unwrap().dim(), (0, toy::V));

    // generate_batch checks the prompt and config even without generators.
    let cfg = GenerateConfig::temperature(0.6);
    let none: &mut [StdRng] = &mut [];
    assert!(generate_batch(&model, &[5], &cfg, none).unwrap().is_empty());
    assert_eq!(
        invalid_name(generate_batch(&model, &[], &cfg, none).unwrap_err()),
        "prompt"
    );
    assert_eq!(
        invalid_name(
            generate_batch(&model, &[5], &GenerateConfig::temperature(0.0), none).unwrap_err()
        ),
        "temperature"
    );
    let mut rngs = vec![StdRng::seed_from_u64(0)];
    assert!(matches!(
        generate_batch(&model, &[v as u32], &cfg, &mut rngs).unwrap_err(),
        Error::TokenOutOfRange { .. }
    ));
    assert!(matches!(
        generate_batch(&model, &vec![5; m - 1], &cfg, &mut rngs).unwrap_err(),
        Error::SequenceTooLong { .. }
    ));
    let too_long = GenerateConfig {
        max_len: Some(m + 1),
        ..cfg
    };
    assert_eq!(
        invalid_name(generate_batch(&model, &[5], &too_long, &mut rngs).unwrap_err()),
        "max_len"
    );
}

/// A model whose batched call returns the wrong shape: generate_batch reports it.
struct BadRows;
impl LanguageModel for BadRows {
    type Cache = ();
    fn vocab_size(&self) -> usize {
        toy::V
    }
    fn max_len(&self) -> usize {
        8
    }
    fn new_cache(&self) {}
    fn extend(&self, _: &mut (), ids: &[u32]) -> succulm::Result<Array2<f32>> {
        // Never EOS: every answer goes on to the batched steps.
        let mut l = Array2::zeros((ids.len(), toy::V));
        l.column_mut(EOS as usize).fill(-1e9);
        Ok(l)
    }
    fn logits(&self, _: ndarray::ArrayView2<u32>) -> succulm::Result<ndarray::Array3<f32>> {
        unreachable!("not used")
    }
    fn extend_rows(&self, caches: &mut [()], _: &[u32]) -> succulm::Result<Array2<f32>> {
        Ok(Array2::zeros((caches.len() + 1, toy::V)))
    }
}

#[test]
fn a_wrong_shape_from_extend_rows_is_an_error() {
    let mut rngs = vec![StdRng::seed_from_u64(1), StdRng::seed_from_u64(2)];
    let e = generate_batch(
        &BadRows,
        &[toy::id("ruby")],
        &GenerateConfig::temperature(1.0),
        &mut rngs,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
}

#[test]
fn fluency_of_batched_samples_with_repeats_is_the_mean_of_each_answers_nll() {
    // The sweep's fluency scores each distinct answer once; the truth scores every answer on
    // its own through the one-row cached path, in f64.
    let (model, vocab) = shipped();
    let probes = fixture_probes(&vocab);
    let cfg = SampleConfig {
        sampling: Sampling::Temperature(0.6),
        samples_per_probe: 6,
        seed: 11,
    };
    let samples = sample_probes(&model, &probes, &cfg).unwrap();
    let hidden = hidden_ids(&vocab).unwrap();
    let m = succulm::study::eval::sampled_metrics(&model, &probes, &samples, &hidden, 16).unwrap();
    let mut nlls = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut repeats = 0;
    for (p, group) in probes.iter().zip(&samples) {
        for g in group {
            let mut seq = vec![BOS];
            seq.extend(&p.prompt_ids);
            seq.extend(&g.ids);
            if g.stopped_at_eos {
                seq.push(EOS);
            }
            repeats += usize::from(!seen.insert(seq.clone()));
            let mut c = model.new_cache();
            let l = model.forward_cached(&mut c, &seq[..seq.len() - 1]).unwrap();
            let start = 1 + p.prompt_ids.len();
            let mut nll = 0.0f64;
            for pos in start..seq.len() {
                let row = l.row(pos - 1);
                let mx = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
                let lse = mx + row.iter().map(|&x| (x as f64 - mx).exp()).sum::<f64>().ln();
                nll += lse - row[seq[pos] as usize] as f64;
            }
            nlls.push(nll / (seq.len() - start) as f64);
        }
    }
    assert!(repeats > 50, "only {repeats} repeated answers");
    let mean = nlls.iter().sum::<f64>() / nlls.len() as f64;
    assert!(
        (m.fluency_nll - mean).abs() < 1e-5,
        "{} vs {mean}",
        m.fluency_nll
    );
    let n = nlls.len() as f64;
    let se = (nlls.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() / n.sqrt();
    assert!((m.fluency_se - se).abs() < 1e-5, "{} vs {se}", m.fluency_se);
}

#[test]
fn fluency_tells_apart_the_same_ids_split_differently_between_prompt_and_answer() {
    let (model, vocab) = shipped();
    let mut probes = fixture_probes(&vocab);
    probes.truncate(2);
    let words = succulm::nn::generate::encode_prompt(&vocab, "ruby is red").unwrap();
    probes[0].prompt_ids = words[..2].to_vec();
    probes[1].prompt_ids = words[..1].to_vec();
    let answer = |ids: &[u32]| succulm::nn::generate::Generation {
        prompt_ids: Vec::new(),
        ids: ids.to_vec(),
        stopped_at_eos: true,
        probs: None,
    };
    let samples = vec![vec![answer(&words[2..])], vec![answer(&words[1..])]];
    let m = succulm::study::eval::sampled_metrics(&model, &probes, &samples, &[], 8).unwrap();
    // The truth: mean over the two answers of the NLL of the answer's tokens and EOS.
    let mut seq = vec![BOS];
    seq.extend(&words);
    let l = model.forward(ndarray::ArrayView2::from_shape((1, seq.len()), &seq).unwrap());
    let l = l.unwrap();
    seq.push(EOS);
    let nll = |start: usize| {
        let mut s = 0.0f64;
        for pos in start..seq.len() {
            let row = l.slice(ndarray::s![0, pos - 1, ..]);
            let mx = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let lse = mx + row.iter().map(|&x| (x as f64 - mx).exp()).sum::<f64>().ln();
            s += lse - row[seq[pos] as usize] as f64;
        }
        s / (seq.len() - start) as f64
    };
    let (a, b) = (nll(3), nll(2));
    assert!((a - b).abs() > 1e-3, "the two splits score differently");
    assert!(
        (m.fluency_nll - (a + b) / 2.0).abs() < 1e-5,
        "{} vs {}",
        m.fluency_nll,
        (a + b) / 2.0
    );
}

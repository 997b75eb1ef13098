//! Generation: determinism, greedy = argmax, top-k support, cached = uncached, the seed's
//! stopping and joining rules, and every bad input's error.

mod toy;

use ndarray::Array2;
use rand::{rngs::StdRng, SeedableRng};
use succulm::nn::generate::{
    encode_prompt, format_example, generate, generate_text, generate_uncached, model_example,
    GenerateConfig, Generation, LanguageModel, Sampling, SEED_PROMPTS,
};
use succulm::text::vocab::{BOS, EOS, PAD, UNK};
use succulm::Error;
use toy::{id, vocab, Bigram, Prefix, V};

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn softmax(x: &[f32], t: f64) -> Vec<f64> {
    let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = x.iter().map(|&v| ((v as f64 - m) / t).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// A bigram whose table never predicts EOS (so lengths are the limit) unless asked.
fn no_eos(seed: u64, max_len: usize) -> Bigram {
    let mut m = Bigram::random(V, max_len, seed, 2.0);
    m.table.column_mut(EOS as usize).fill(-1e9);
    m
}

#[test]
fn same_seed_same_answer_different_seeds_differ() {
    let m = Prefix::random(V, 12, 7);
    let cfg = GenerateConfig::temperature(1.0);
    let prompt = [id("is"), id("ruby")];
    let a = generate(&m, &prompt, &cfg, &mut rng(3)).unwrap();
    let b = generate(&m, &prompt, &cfg, &mut rng(3)).unwrap();
    assert_eq!(a, b);
    let distinct: std::collections::HashSet<Vec<u32>> = (0..20)
        .map(|s| generate(&m, &prompt, &cfg, &mut rng(s)).unwrap().ids)
        .collect();
    assert!(
        distinct.len() > 5,
        "only {} distinct answers over 20 seeds",
        distinct.len()
    );
}

#[test]
fn greedy_follows_the_argmax_chain() {
    let m = no_eos(11, 10);
    let prompt = [id("winy")];
    // Independent truth: follow argmax of the table row of the last token.
    let mut expected = Vec::new();
    let mut last = id("winy");
    for _ in 0..(10 - 2) {
        let row = m.table.row(last as usize);
        let next = (0..V).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap() as u32;
        expected.push(next);
        last = next;
    }
    let greedy = |seed| {
        generate(
            &m,
            &prompt,
            &GenerateConfig::new(Sampling::Greedy),
            &mut rng(seed),
        )
        .unwrap()
    };
    let g = greedy(0);
    assert_eq!(g.ids, expected);
    assert!(!g.stopped_at_eos);
    // Greedy draws no random number: any seed gives the same answer.
    let g2 = greedy(99);
    assert_eq!(g2.ids, expected);
}

#[test]
fn top_k_never_draws_outside_the_top_k() {
    let m = no_eos(5, 16);
    let k = 3;
    let mut cfg = GenerateConfig::new(Sampling::TopK {
        k,
        temperature: 2.0,
    });
    cfg.save_probs = true;
    for seed in 0..50 {
        let g = generate(&m, &[id("ruby")], &cfg, &mut rng(seed)).unwrap();
        let mut last = id("ruby");
        for (step, &next) in g.ids.iter().enumerate() {
            let row = m.table.row(last as usize);
            let mut order: Vec<usize> = (0..V).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            assert!(
                order[..k].contains(&(next as usize)),
                "seed {seed} step {step}: {next} not in top {k}"
            );
            let p = &g.probs.as_ref().unwrap()[step];
            assert_eq!(p.iter().filter(|&&x| x > 0.0).count(), k);
            // Renormalised softmax over the kept logits at temperature 2.
            let kept: Vec<f32> = order[..k].iter().map(|&i| row[i]).collect();
            let want = softmax(&kept, 2.0);
            for (j, &i) in order[..k].iter().enumerate() {
                assert!((p[i] as f64 - want[j]).abs() < 1e-6);
            }
            last = next;
        }
    }
}

#[test]
fn top_k_of_one_is_greedy_and_k_above_v_is_plain_temperature() {
    let m = no_eos(9, 12);
    let greedy = generate(
        &m,
        &[id("is")],
        &GenerateConfig::new(Sampling::Greedy),
        &mut rng(0),
    )
    .unwrap();
    let k1 = GenerateConfig::new(Sampling::TopK {
        k: 1,
        temperature: 0.7,
    });
    assert_eq!(
        generate(&m, &[id("is")], &k1, &mut rng(4)).unwrap().ids,
        greedy.ids
    );
    let big = GenerateConfig::new(Sampling::TopK {
        k: V + 5,
        temperature: 0.7,
    });
    let plain = GenerateConfig::temperature(0.7);
    for s in 0..10 {
        assert_eq!(
            generate(&m, &[id("is")], &big, &mut rng(s)).unwrap().ids,
            generate(&m, &[id("is")], &plain, &mut rng(s)).unwrap().ids
        );
    }
}

#[test]
fn temperature_sampling_matches_softmax_of_logits_over_t() {
    // First drawn token after "is": logits ln(1), ln(2), ln(4) on three words, the rest -inf-ish.
    let mut row = vec![-1e9f32; V];
    row[id("yes") as usize] = 0.0;
    row[id("no") as usize] = 2f32.ln();
    row[id("he") as usize] = 4f32.ln();
    let m = Bigram::constant(&row, 3);
    let t = 0.5; // probabilities ∝ 1, 4, 16
    let n = 6000;
    let mut counts = [0usize; 3];
    for s in 0..n {
        let g = generate(
            &m,
            &[id("is")],
            &GenerateConfig::temperature(t),
            &mut rng(s),
        )
        .unwrap();
        assert_eq!(g.ids.len(), 1);
        let k = [id("yes"), id("no"), id("he")]
            .iter()
            .position(|&w| w == g.ids[0])
            .unwrap();
        counts[k] += 1;
    }
    let want = [1.0 / 21.0, 4.0 / 21.0, 16.0 / 21.0];
    for k in 0..3 {
        let f = counts[k] as f64 / n as f64;
        let sd = (want[k] * (1.0 - want[k]) / n as f64).sqrt();
        assert!(
            (f - want[k]).abs() < 5.0 * sd,
            "token {k}: {f} vs {}",
            want[k]
        );
    }
}

#[test]
fn cached_and_uncached_give_the_same_distribution_at_every_step() {
    let m = Prefix::random(V, 20, 3);
    for (sampling, seed) in [
        (Sampling::Temperature(0.6), 1),
        (Sampling::Temperature(1.3), 2),
        (
            Sampling::TopK {
                k: 4,
                temperature: 0.9,
            },
            3,
        ),
        (Sampling::Greedy, 4),
    ] {
        let mut cfg = GenerateConfig::new(sampling);
        cfg.save_probs = true;
        let prompt = [id("is"), id("winy"), id("a"), id("girl"), id("?")];
        let a = generate(&m, &prompt, &cfg, &mut rng(seed)).unwrap();
        let b = generate_uncached(&m, &prompt, &cfg, &mut rng(seed)).unwrap();
        assert_eq!(a.ids, b.ids);
        assert_eq!(a.stopped_at_eos, b.stopped_at_eos);
        let (pa, pb) = (a.probs.unwrap(), b.probs.unwrap());
        assert_eq!(pa.len(), pb.len());
        assert!(!pa.is_empty());
        for (step, (x, y)) in pa.iter().zip(&pb).enumerate() {
            let s: f32 = x.iter().sum();
            assert!((s - 1.0).abs() < 1e-5);
            for (u, v) in x.iter().zip(y) {
                assert!((u - v).abs() <= 1e-5, "step {step}: {u} vs {v}");
            }
        }
    }
}

#[test]
fn the_cached_path_computes_one_position_per_new_token() {
    let m = no_eos(2, 12);
    let prompt = [id("ruby"), id("is")];
    let g = generate(&m, &prompt, &GenerateConfig::temperature(1.0), &mut rng(1)).unwrap();
    // [BOS] + 2 prompt tokens + 9 generated = 12 = max_len; the last token is never fed back.
    assert_eq!(g.ids.len(), 12 - 3);
    assert_eq!(m.extended.get(), 12 - 1);
}

#[test]
fn stops_at_eos_without_keeping_it_and_saves_each_step() {
    // After "is" -> "yes"; after "yes" -> EOS; temperature low enough to be certain.
    let mut t = Array2::from_elem((V, V), -1e9f32);
    t[[id("is") as usize, id("yes") as usize]] = 0.0;
    t[[id("yes") as usize, EOS as usize]] = 0.0;
    let m = Bigram::new(t, 10);
    let mut cfg = GenerateConfig::temperature(0.6);
    cfg.save_probs = true;
    let g = generate(&m, &[id("is")], &cfg, &mut rng(0)).unwrap();
    assert_eq!(g.ids, vec![id("yes")]);
    assert!(g.stopped_at_eos);
    let p = g.probs.unwrap();
    assert_eq!(
        p.len(),
        2,
        "one distribution per draw, the EOS draw included"
    );
    assert_eq!(p[1][EOS as usize], 1.0);
}

#[test]
fn max_len_override_and_seed_length_rule() {
    let m = no_eos(4, 29);
    let prompt = [id("is"), id("ruby"), id("a"), id("boy"), id("?")];
    let g = generate(&m, &prompt, &GenerateConfig::temperature(1.0), &mut rng(0)).unwrap();
    assert_eq!(1 + prompt.len() + g.ids.len(), 29);
    let mut cfg = GenerateConfig::temperature(1.0);
    cfg.max_len = Some(8);
    let g = generate(&m, &prompt, &cfg, &mut rng(0)).unwrap();
    assert_eq!(g.ids.len(), 2);
}

#[test]
fn text_skips_pad_shows_unknown_ids_as_unk_and_joins_like_talk() {
    let v = vocab();
    let g = Generation {
        prompt_ids: vec![id("is")],
        ids: vec![
            id("yes"),
            PAD,
            id(","),
            id("he"),
            id("is"),
            999,
            UNK,
            BOS,
            id("."),
            PAD,
        ],
        stopped_at_eos: true,
        probs: None,
    };
    assert_eq!(
        g.words(&v),
        vec!["yes", ",", "he", "is", "<UNK>", "<UNK>", "<BOS>", "."]
    );
    assert_eq!(g.text(&v), "yes, he is <UNK> <UNK> <BOS>.");
}

#[test]
fn text_prompts_are_lowercased_tokenized_and_unknown_words_become_unk() {
    let v = vocab();
    assert_eq!(
        encode_prompt(&v, "Is RUBY a boy?").unwrap(),
        vec![id("is"), id("ruby"), id("a"), id("boy"), id("?")]
    );
    assert_eq!(
        encode_prompt(&v, "is zorro a boy").unwrap(),
        vec![id("is"), UNK, id("a"), id("boy")]
    );
    // talk with a deterministic model: "is" -> "yes" -> "," -> "he" -> "." -> EOS.
    let mut t = Array2::from_elem((V, V), -1e9f32);
    for (a, b) in [
        ("?", "yes"),
        ("yes", ","),
        (",", "he"),
        ("he", "."),
        (".", "<EOS>"),
    ] {
        t[[id(a) as usize, id(b) as usize]] = 0.0;
    }
    let m = Bigram::new(t, 29);
    let cfg = GenerateConfig::temperature(0.6);
    let text = succulm::nn::generate::talk(&m, &v, "Is ruby a boy?", &cfg, &mut rng(0)).unwrap();
    assert_eq!(text, "yes, he.");
    let ex = model_example(&m, &v, &cfg, &mut rng(0)).unwrap();
    assert_eq!(ex.len(), SEED_PROMPTS.len());
    // "ruby is a boy succulent plant." has unknown words in the toy vocabulary but ends in ".".
    assert_eq!(ex[0].1, "");
    assert_eq!(
        ex[10],
        ("is ruby a boy?".to_string(), "yes, he.".to_string())
    );
    let f = format_example(&ex);
    assert!(f.contains("prompt='is ruby a boy?' result='yes, he.'\n"));
    assert_eq!(f.lines().count(), 15);
}

fn is_invalid(e: Error, name: &str) -> bool {
    matches!(e, Error::InvalidArgument { name: n, .. } if n == name)
}

#[test]
fn bad_inputs_get_clear_errors() {
    let m = no_eos(1, 8);
    let v = vocab();
    let t = GenerateConfig::temperature(1.0);
    let r = &mut rng(0);
    assert!(is_invalid(generate(&m, &[], &t, r).unwrap_err(), "prompt"));
    assert!(is_invalid(
        generate_text(&m, &v, "", &t, r).unwrap_err(),
        "prompt"
    ));
    assert!(is_invalid(
        generate_text(&m, &v, "   ", &t, r).unwrap_err(),
        "prompt"
    ));
    let e = generate_text(&m, &v, "zorro blorp", &t, r).unwrap_err();
    assert!(e.to_string().contains("zorro"), "{e}");
    // [BOS] + 6 tokens = 7 leaves one slot of 8: fine; 7 tokens leave none.
    assert!(generate(&m, &[id("is"); 6], &t, r).is_ok());
    assert!(matches!(
        generate(&m, &[id("is"); 7], &t, r).unwrap_err(),
        Error::SequenceTooLong { max_len: 8, .. }
    ));
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert!(is_invalid(
            generate(&m, &[id("is")], &GenerateConfig::temperature(bad), r).unwrap_err(),
            "temperature"
        ));
        let k = GenerateConfig::new(Sampling::TopK {
            k: 2,
            temperature: bad,
        });
        assert!(is_invalid(
            generate(&m, &[id("is")], &k, r).unwrap_err(),
            "temperature"
        ));
    }
    let k0 = GenerateConfig::new(Sampling::TopK {
        k: 0,
        temperature: 1.0,
    });
    assert!(is_invalid(
        generate(&m, &[id("is")], &k0, r).unwrap_err(),
        "top_k"
    ));
    let mut long = t.clone();
    long.max_len = Some(9);
    assert!(is_invalid(
        generate(&m, &[id("is")], &long, r).unwrap_err(),
        "max_len"
    ));
    assert!(matches!(
        generate(&m, &[id("is"), V as u32], &t, r).unwrap_err(),
        Error::TokenOutOfRange { id, .. } if id == V as u32
    ));
    for special in [PAD, BOS, EOS] {
        assert!(is_invalid(
            generate(&m, &[id("is"), special], &t, r).unwrap_err(),
            "prompt"
        ));
    }
    // A vocabulary that does not match the model.
    let small = Bigram::random(10, 8, 1, 1.0);
    assert!(is_invalid(
        generate_text(&small, &v, "is ruby", &t, r).unwrap_err(),
        "vocab"
    ));
    // NaN logits.
    let mut nan = no_eos(1, 8);
    nan.table[[id("is") as usize, 5]] = f32::NAN;
    assert!(is_invalid(
        generate(&nan, &[id("is")], &t, r).unwrap_err(),
        "logits"
    ));
    // The model's own errors pass through.
    struct Broken;
    impl LanguageModel for Broken {
        type Cache = ();
        fn vocab_size(&self) -> usize {
            V
        }
        fn max_len(&self) -> usize {
            8
        }
        fn new_cache(&self) {}
        fn extend(&self, _: &mut (), ids: &[u32]) -> succulm::Result<Array2<f32>> {
            Ok(Array2::zeros((ids.len() + 1, V)))
        }
        fn logits(&self, _: ndarray::ArrayView2<u32>) -> succulm::Result<ndarray::Array3<f32>> {
            Err(Error::invalid_arg("broken", "always"))
        }
    }
    assert!(matches!(
        generate(&Broken, &[id("is")], &t, r).unwrap_err(),
        Error::Shape { .. }
    ));
    assert!(is_invalid(
        generate_uncached(&Broken, &[id("is")], &t, r).unwrap_err(),
        "broken"
    ));
}

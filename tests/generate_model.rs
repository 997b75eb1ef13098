//! Generation with the real `Model` (dense, and with tensor-train FFNs in some blocks): the
//! key/value-cached path against the full-forward path, and every step's choice against the
//! logits of an independent full forward over the sequence so far.

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use succulm::nn::generate::{
    generate, generate_text, generate_uncached, GenerateConfig, Generation, Sampling,
};
use succulm::nn::model::{Model, ModelConfig};
use succulm::text::vocab::{BOS, EOS};
use succulm::{FfnTtSpec, Vocab};

fn config() -> ModelConfig {
    ModelConfig {
        vocab_size: 20,
        d_model: 12,
        max_len: 10,
        n_layers: 2,
        ffn_expansion: 2,
        n_attn_heads: 2,
        arch: Default::default(),
    }
}

/// A temperature at which the random `upper_middle` model's sharply peaked distributions spread
/// (its tied `[V, 50]` embedding gives logits of a wide range).
const SPREAD_UM: f32 = 4.0;

/// The dense small model, the same model with a truncated TT FFN in block 1, and an
/// `upper_middle` model (max_len 29) with the seed's TTs in blocks 0 and 3, each with a
/// temperature at which its (random-weight) distributions are spread enough for sampling to
/// pick more than the argmax.
fn models() -> Vec<(&'static str, Model, f32)> {
    let dense = Model::new(config(), 17).unwrap();
    let mut tt = dense.clone();
    let r = tt
        .tensorize_ffn(1, &FfnTtSpec::for_config(&config(), 3))
        .unwrap();
    assert!(r.up.rel_error > 0.01 && r.down.rel_error > 0.01);
    let mut um = Model::new(ModelConfig::profile("upper_middle", 24).unwrap(), 5).unwrap();
    um.tensorize_ffn(0, &FfnTtSpec::seed(27)).unwrap();
    um.tensorize_ffn(3, &FfnTtSpec::seed(20)).unwrap();
    vec![
        ("dense", dense, 1.0),
        ("tt block 1", tt, 1.0),
        ("upper_middle tt 0,3", um, SPREAD_UM),
    ]
}

fn prompts() -> [Vec<u32>; 3] {
    [vec![5], vec![7, 9, 11], vec![3, 4, 12, 6]]
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn with_probs(sampling: Sampling) -> GenerateConfig {
    let mut c = GenerateConfig::new(sampling);
    c.save_probs = true;
    c
}

/// Logits `[V]` at the last position of `seq`, from a full uncached forward.
fn last_logits(model: &Model, seq: &[u32]) -> Vec<f32> {
    let ids = Array2::from_shape_vec((1, seq.len()), seq.to_vec()).unwrap();
    let l = model.forward(ids.view()).unwrap();
    l.slice(ndarray::s![0, seq.len() - 1, ..]).to_vec()
}

/// `softmax(x / t)` in f64.
fn softmax(x: &[f32], t: f64) -> Vec<f64> {
    let m = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = x.iter().map(|&v| ((v as f64 - m) / t).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Calls `check(step, sequence so far, token chosen or EOS)` for every step of `g`, and checks
/// the stop rule (EOS drawn, or the sequence reached `max_len`).
fn for_each_step(g: &Generation, max_len: usize, mut check: impl FnMut(usize, &[u32], u32)) {
    let mut seq = vec![BOS];
    seq.extend(&g.prompt_ids);
    for (s, &t) in g.ids.iter().enumerate() {
        assert_ne!(t, EOS);
        check(s, &seq, t);
        seq.push(t);
    }
    if g.stopped_at_eos {
        check(g.ids.len(), &seq, EOS);
    } else {
        assert_eq!(seq.len(), max_len, "stopped early without EOS");
    }
}

#[test]
fn cached_and_uncached_agree_at_every_step() {
    for (name, model, spread) in models() {
        let samplings = [
            Sampling::Greedy,
            Sampling::Temperature(0.6),
            Sampling::Temperature(1.5 * spread),
            Sampling::TopK {
                k: 3,
                temperature: spread,
            },
        ];
        let mut steps = 0;
        for sampling in samplings {
            for prompt in prompts() {
                for seed in 0..4 {
                    let cfg = with_probs(sampling);
                    let a = generate(&model, &prompt, &cfg, &mut rng(seed)).unwrap();
                    let b = generate_uncached(&model, &prompt, &cfg, &mut rng(seed)).unwrap();
                    assert_eq!(a.ids, b.ids, "{name} {sampling:?} seed {seed}");
                    assert_eq!(a.stopped_at_eos, b.stopped_at_eos);
                    let (pa, pb) = (a.probs.unwrap(), b.probs.unwrap());
                    assert_eq!(pa.len(), a.ids.len() + usize::from(a.stopped_at_eos));
                    assert_eq!(pa.len(), pb.len());
                    for (step, (x, y)) in pa.iter().zip(&pb).enumerate() {
                        assert_eq!(x.len(), model.config().vocab_size);
                        let worst = x
                            .iter()
                            .zip(y)
                            .map(|(u, v)| (u - v).abs())
                            .fold(0.0f32, f32::max);
                        assert!(
                            worst <= 1e-5,
                            "{name} {sampling:?} seed {seed} step {step}: differ by {worst}"
                        );
                    }
                    steps += pa.len();
                }
            }
        }
        // Enough steps that the comparison covers long prefixes, not just the first token.
        assert!(steps > 150, "{name}: only {steps} steps compared");
    }
}

#[test]
fn tt_ffns_change_what_is_generated_from() {
    // The compressed model's distributions differ from the dense one's: the cache equivalence
    // above really ran through the TT layers.
    let ms = models();
    let (dense, tt) = (&ms[0].1, &ms[1].1);
    let cfg = with_probs(Sampling::Greedy);
    let a = generate(dense, &[5], &cfg, &mut rng(0)).unwrap();
    let b = generate(tt, &[5], &cfg, &mut rng(0)).unwrap();
    let (pa, pb) = (&a.probs.unwrap()[0], &b.probs.unwrap()[0]);
    let diff = pa
        .iter()
        .zip(pb)
        .map(|(u, v)| (u - v).abs())
        .fold(0.0f32, f32::max);
    assert!(diff > 1e-4, "{diff}");
}

#[test]
fn greedy_is_the_argmax_of_a_full_forward_at_each_step() {
    for (name, model, _) in models() {
        let max_len = model.config().max_len;
        for prompt in prompts() {
            let mut r = rng(99);
            let g = generate(&model, &prompt, &with_probs(Sampling::Greedy), &mut r).unwrap();
            // Greedy draws no random number.
            assert_eq!(r.gen::<u64>(), rng(99).gen::<u64>());
            let probs = g.probs.clone().unwrap();
            for_each_step(&g, max_len, |s, seq, token| {
                let logits = last_logits(&model, seq);
                let mut order: Vec<usize> = (0..logits.len()).collect();
                order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
                assert!(
                    logits[order[0]] - logits[order[1]] > 1e-5,
                    "{name}: a near-tie would make the check ambiguous"
                );
                assert_eq!(
                    token as usize, order[0],
                    "{name} prompt {prompt:?} step {s}"
                );
                // The saved distribution is the plain softmax of those logits.
                for (p, q) in probs[s].iter().zip(softmax(&logits, 1.0)) {
                    assert!((*p as f64 - q).abs() < 1e-5, "{name} step {s}");
                }
            });
        }
    }
}

#[test]
fn temperature_sampling_draws_from_softmax_over_t_and_is_seeded() {
    for (name, model, spread) in models() {
        let max_len = model.config().max_len;
        // The seed's temperature, and one at which this model's draws spread.
        for t in [0.6, spread] {
            let mut answers = Vec::new();
            for seed in 0..8 {
                let cfg = with_probs(Sampling::Temperature(t));
                let g = generate(&model, &[7, 9], &cfg, &mut rng(seed)).unwrap();
                let again = generate(&model, &[7, 9], &cfg, &mut rng(seed)).unwrap();
                assert_eq!(g, again, "{name}: same seed, same answer");
                let probs = g.probs.clone().unwrap();
                for_each_step(&g, max_len, |s, seq, token| {
                    let want = softmax(&last_logits(&model, seq), t as f64);
                    for (p, q) in probs[s].iter().zip(&want) {
                        assert!((*p as f64 - q).abs() < 1e-5, "{name} step {s}");
                    }
                    assert!(want[token as usize] > 0.0);
                });
                answers.push(g.ids);
            }
            answers.dedup();
            if t == spread {
                assert!(
                    answers.len() > 1,
                    "{name}: eight seeds gave one answer at t = {t}"
                );
            }
        }
    }
}

/// The shipped model's sampler, at a fixed prefix, draws each first token with the frequency
/// `softmax(logits / t)` gives it: 5σ per token, and a chi-square over the tokens expected five
/// times or more. A sampler drawing uniformly, or at another temperature, fails.
#[test]
fn the_real_models_first_token_frequencies_follow_softmax() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/succulm_upper_middle.json"
    );
    let (model, vocab) = Model::load(path).unwrap();
    let prompt = succulm::nn::generate::encode_prompt(&vocab, "who is winy ?").unwrap();
    let t = 1.5f32;
    let mut seq = vec![BOS];
    seq.extend(&prompt);
    let p = softmax(&last_logits(&model, &seq), t as f64);
    let n = 4000usize;
    let mut counts = vec![0usize; p.len()];
    let mut cfg = GenerateConfig::new(Sampling::Temperature(t));
    cfg.max_len = Some(seq.len() + 1); // exactly one token
    let mut r = rng(2024);
    for _ in 0..n {
        let g = generate(&model, &prompt, &cfg, &mut r).unwrap();
        let token = g.ids.first().copied().unwrap_or(EOS);
        assert!(g.ids.len() <= 1);
        counts[token as usize] += 1;
    }
    let (mut chi2, mut df) = (0.0f64, 0usize);
    for (tok, (&c, &q)) in counts.iter().zip(&p).enumerate() {
        let mean = n as f64 * q;
        let sd = (n as f64 * q * (1.0 - q)).sqrt();
        assert!(
            (c as f64 - mean).abs() <= 5.0 * sd + 1.0,
            "token {tok}: drawn {c} times, expected {mean:.1} ± {sd:.1}"
        );
        if mean >= 5.0 {
            chi2 += (c as f64 - mean).powi(2) / mean;
            df += 1;
        }
    }
    assert!(
        df >= 3,
        "the distribution at t = {t} is too peaked to test ({df} bins)"
    );
    // Chi-square over df bins (at most df degrees of freedom): mean ≤ df, sd ≤ √(2 df); 6 sd is far
    // beyond chance yet a uniform sampler (or t = 1) lands orders of magnitude above it.
    let k = df as f64;
    assert!(
        chi2 < k + 6.0 * (2.0 * k).sqrt(),
        "chi-square {chi2:.1} with {k} dof"
    );
}

#[test]
fn top_k_never_draws_outside_the_top_k() {
    let k = 3;
    for (name, model, spread) in models() {
        let t = 2.0 * spread;
        let max_len = model.config().max_len;
        let (mut draws, mut not_argmax) = (0, 0);
        for seed in 0..12 {
            for prompt in prompts() {
                let cfg = with_probs(Sampling::TopK { k, temperature: t });
                let g = generate(&model, &prompt, &cfg, &mut rng(seed)).unwrap();
                let probs = g.probs.clone().unwrap();
                for_each_step(&g, max_len, |s, seq, token| {
                    let logits = last_logits(&model, seq);
                    let mut order: Vec<usize> = (0..logits.len()).collect();
                    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
                    let top = &order[..k];
                    assert!(
                        top.contains(&(token as usize)),
                        "{name} seed {seed} step {s}: drew {token}, top {k} are {top:?}"
                    );
                    // The distribution: zero outside the top k, softmax(logits / t) inside.
                    let kept: Vec<f32> = top.iter().map(|&i| logits[i]).collect();
                    let want = softmax(&kept, f64::from(t));
                    for (i, &p) in probs[s].iter().enumerate() {
                        match top.iter().position(|&j| j == i) {
                            Some(pos) => assert!((p as f64 - want[pos]).abs() < 1e-5),
                            None => assert_eq!(p, 0.0, "{name}: mass outside the top k"),
                        }
                    }
                    draws += 1;
                    if token as usize != order[0] {
                        not_argmax += 1;
                    }
                });
            }
        }
        // The sampling really sampled: some draws were not the argmax.
        assert!(
            draws > 200 && not_argmax > 20,
            "{name}: {not_argmax} of {draws}"
        );
    }
}

#[test]
fn text_prompts_on_a_real_model() {
    let mut words: Vec<String> = ["<PAD>", "<BOS>", "<EOS>", "<UNK>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    words.extend((4..20).map(|i| format!("w{i}")));
    let vocab = Vocab::from_words(words).unwrap();
    let model = &models()[1].1;
    let cfg = GenerateConfig::new(Sampling::Greedy);
    // Upper case is lowered; "nope" is unknown and becomes <UNK> (id 3).
    let g = generate_text(model, &vocab, "W7 nope w9", &cfg, &mut rng(0)).unwrap();
    assert_eq!(g.prompt_ids, vec![7, 3, 9]);
    let by_ids = generate(model, &[7, 3, 9], &cfg, &mut rng(0)).unwrap();
    assert_eq!(g, by_ids);
    // The text holds one word per generated non-PAD token.
    let text = g.text(&vocab);
    assert_eq!(
        text.split_whitespace().count(),
        g.ids.iter().filter(|&&i| i != 0).count(),
        "{text:?}"
    );
    // A vocabulary of the wrong size is refused.
    let small = Vocab::from_words(vocab.words()[..10].to_vec()).unwrap();
    assert!(generate_text(model, &small, "w7", &cfg, &mut rng(0)).is_err());
}

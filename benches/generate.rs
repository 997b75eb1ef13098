//! Generation speed with the `upper_middle` profile (random weights, V = 156, d = 50, 4 layers,
//! FFN 200, 5 heads, max_len 29): one answer to a one-token prompt, `[BOS, prompt]` then new
//! tokens until the sequence reaches `max_len` (27 new tokens unless EOS is drawn first; the
//! count is measured once and used as the throughput, so criterion reports tokens per second).
//!
//! - `cached`: [`generate`], the key/value cache (one position of work per new token);
//! - `uncached`: [`generate_uncached`], the seed's loop (a full forward over the whole prefix for
//!   every new token);
//!
//! each greedy and at the seed's temperature 0.6 (the RNG is re-seeded every iteration, so
//! every iteration draws the same answer). A second group does the same with the seed's TT FFNs
//! (middle bond 27) in every block. OpenBLAS runs on one thread.
//!
//! `sweep_probe` is the sweep's shape: the shipped checkpoint answering one probe 20 times at
//! temperature 0.6, each answer with its own generator (as `sample_probes` seeds them), either
//! one answer after the other ([`generate`], `one_at_a_time`) or all 20 decoded together
//! ([`generate_batch`], `batched`: the prompt once, then `[≤ 20, 50]` products per step).
//! Throughput: the tokens of the 20 answers (EOS included).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Duration;
use succulm::nn::generate::{
    encode_prompt, generate, generate_batch, generate_uncached, GenerateConfig, Sampling,
};
use succulm::nn::model::{Model, ModelConfig};
use succulm::FfnTtSpec;

const V: usize = 156;
const PROMPT: [u32; 1] = [17];

fn run(model: &Model, sampling: Sampling, cached: bool) -> usize {
    let cfg = GenerateConfig::new(sampling);
    let mut rng = StdRng::seed_from_u64(7);
    let g = if cached {
        generate(model, &PROMPT, &cfg, &mut rng)
    } else {
        generate_uncached(model, &PROMPT, &cfg, &mut rng)
    }
    .expect("generation");
    g.ids.len() + usize::from(g.stopped_at_eos)
}

fn bench_model(c: &mut Criterion, group: &str, model: &Model) {
    let mut g = c.benchmark_group(group);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    for (label, sampling) in [
        ("greedy", Sampling::Greedy),
        ("t0.6", Sampling::Temperature(0.6)),
    ] {
        // Tokens produced per answer (every step's distribution is one token's work, EOS included).
        let tokens = run(model, sampling, true);
        assert_eq!(tokens, run(model, sampling, false), "cached = uncached");
        eprintln!("{group}/{label}: {tokens} new tokens per answer");
        g.throughput(Throughput::Elements(tokens as u64));
        for (kind, cached) in [("cached", true), ("uncached", false)] {
            g.bench_function(format!("{kind}_{label}"), |b| {
                b.iter(|| run(model, sampling, cached))
            });
        }
    }
    g.finish();
}

fn bench_sweep_probe(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/succulm_upper_middle.json"
    );
    let (model, vocab) = Model::load(path).expect("checkpoint");
    let cfg = GenerateConfig::temperature(0.6);
    let mut g = c.benchmark_group("sweep_probe");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    for prompt in ["who is winy?", "how many days do you grow in this pot?"] {
        let ids = encode_prompt(&vocab, prompt).expect("prompt");
        let rngs = || -> Vec<StdRng> { (0..20).map(StdRng::seed_from_u64).collect() };
        let tokens: usize = generate_batch(&model, &ids, &cfg, &mut rngs())
            .expect("generation")
            .iter()
            .map(|a| a.ids.len() + usize::from(a.stopped_at_eos))
            .sum();
        eprintln!("sweep_probe '{prompt}': {tokens} tokens in 20 answers");
        g.throughput(Throughput::Elements(tokens as u64));
        let label = format!("{}_tokens_prompt", ids.len());
        g.bench_function(format!("one_at_a_time_{label}"), |b| {
            b.iter(|| {
                rngs()
                    .iter_mut()
                    .map(|r| {
                        generate(&model, &ids, &cfg, r)
                            .expect("generation")
                            .ids
                            .len()
                    })
                    .sum::<usize>()
            })
        });
        g.bench_function(format!("batched_{label}"), |b| {
            b.iter(|| {
                generate_batch(&model, &ids, &cfg, &mut rngs())
                    .expect("generation")
                    .len()
            })
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    succulm::tt::blas::set_num_threads(1);
    let config = ModelConfig::profile("upper_middle", V).expect("profile");
    let dense = Model::new(config, 0).expect("model");
    bench_model(c, "generate_upper_middle", &dense);
    let mut tt = dense.clone();
    for block in 0..tt.config().n_layers {
        tt.tensorize_ffn(block, &FfnTtSpec::seed(27))
            .expect("surgery");
    }
    bench_model(c, "generate_upper_middle_tt27", &tt);
    bench_sweep_probe(c);
}

criterion_group!(generate_benches, benches);
criterion_main!(generate_benches);

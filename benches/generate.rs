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

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Duration;
use succulm::generate::{generate, generate_uncached, GenerateConfig, Sampling};
use succulm::model::{Model, ModelConfig};
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

fn benches(c: &mut Criterion) {
    succulm::blas::set_num_threads(1);
    let config = ModelConfig::profile("upper_middle", V).expect("profile");
    let dense = Model::new(config, 0).expect("model");
    bench_model(c, "generate_upper_middle", &dense);
    let mut tt = dense.clone();
    for block in 0..tt.config().n_layers {
        tt.tensorize_ffn(block, &FfnTtSpec::seed(27))
            .expect("surgery");
    }
    bench_model(c, "generate_upper_middle_tt27", &tt);
}

criterion_group!(generate_benches, benches);
criterion_main!(generate_benches);

//! The multi-head causal attention core alone (no Q/K/V or output projections), at the
//! `upper_middle` shape: d = 50, 5 heads of 10, sequences of 29.
//!
//! - `forward_4x29` / `backward_4x29`: one training chunk of 4 sequences (116 rows), as
//!   `Attention::forward_train` / `Attention::backward` run it;
//! - `forward_1x29`: one sequence (as `Model::forward` on `[1, 29]`);
//! - `head_forward_1x29` and `decode_1_at_15`: through `head_forward`, the KV-cached path, for
//!   a whole sequence and for one new position after 15 cached ones;
//! - `forward_4x29_h{1,2,10}` / `backward_4x29_h{1,2,10}`: the other profiles' head counts.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::time::Duration;
use succulm::nn::layers::attention::bench::Core;

const T: usize = 29;
const D: usize = 50;

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention_core");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    let mut core = Core::new(4, T, D, 5, 1);
    g.bench_function("forward_4x29", |b| b.iter(|| black_box(core.forward())));
    g.bench_function("backward_4x29", |b| b.iter(|| black_box(core.backward())));
    let mut one = Core::new(1, T, D, 5, 2);
    g.bench_function("forward_1x29", |b| b.iter(|| black_box(one.forward())));
    g.bench_function("head_forward_1x29", |b| {
        b.iter(|| black_box(one.head_forward(0, T)))
    });
    g.bench_function("decode_1_at_15", |b| {
        b.iter(|| black_box(one.head_forward(15, 1)))
    });
    for h in [1, 2, 10] {
        let mut core = Core::new(4, T, D, h, 3);
        g.bench_function(format!("forward_4x29_h{h}"), |b| {
            b.iter(|| black_box(core.forward()))
        });
        g.bench_function(format!("backward_4x29_h{h}"), |b| {
            b.iter(|| black_box(core.backward()))
        });
    }
    g.finish();
}

criterion_group!(attention_benches, benches);
criterion_main!(attention_benches);

//! Loading the shipped checkpoint (`fixtures/succulm_upper_middle.*`, 130k parameters) from
//! JSON and from safetensors: read, parse, validate, build the model.

use criterion::{criterion_group, criterion_main, Criterion};
use succulm::nn::model::Model;

fn load(c: &mut Criterion) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/");
    let mut g = c.benchmark_group("checkpoint_load");
    for ext in ["json", "safetensors"] {
        let path = format!("{dir}succulm_upper_middle.{ext}");
        g.bench_function(ext, |b| b.iter(|| Model::load(&path).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);

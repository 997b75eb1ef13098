//! Model contracts: padding invariance, incremental decoding, threading, input validation,
//! profiles, diagnostics, training.

mod common;

use ndarray::{array, s, Array2, ArrayD};
use succulm::nn::model::{Model, ModelConfig};
use succulm::nn::train::{TrainConfig, Trainer};
use succulm::text::data::Dataset;
use succulm::Parameters;

fn config() -> ModelConfig {
    ModelConfig {
        vocab_size: 13,
        d_model: 8,
        max_len: 9,
        n_layers: 2,
        ffn_expansion: 2,
        n_attn_heads: 2,
        arch: Default::default(),
    }
}

/// Gradients by name, owned.
type NamedGrads = Vec<(String, ArrayD<f32>)>;

fn grads_map(g: &succulm::nn::model::Grads) -> NamedGrads {
    g.named()
        .into_iter()
        .map(|(n, t)| (n, t.to_owned()))
        .collect()
}

/// A batch of many chunks (each chunk is trimmed to its own longest real row), rows of very
/// different lengths and one chunk that is all PAD: the same loss and gradients as the rows one
/// by one, with one thread and with three.
#[test]
fn multi_chunk_padded_batch_equals_rows_one_by_one() {
    let cfg = ModelConfig {
        max_len: 20,
        ..config()
    };
    let model = Model::new(cfg, 5).unwrap();
    // 20 positions: 6 sequences per chunk of about 128 rows, so 18 rows make 3 chunks. Rows
    // 6..12 (the second chunk) are all PAD.
    let lens = [19usize, 3, 7, 2, 5, 9, 0, 0, 0, 0, 0, 0, 4, 6, 2, 3, 11, 5];
    let (b, t) = (lens.len(), 20);
    let mut x = Array2::<u32>::zeros((b, t));
    let mut y = Array2::<u32>::zeros((b, t));
    for (r, &n) in lens.iter().enumerate() {
        for k in 0..n {
            x[[r, k]] = 4 + ((r * 5 + k * 3) % 9) as u32;
            y[[r, k]] = 4 + ((r * 7 + k * 2 + 1) % 9) as u32;
        }
    }
    let total: usize = lens.iter().sum();
    let (loss, grads) = model.loss_and_grads(x.view(), y.view()).unwrap();
    assert!((model.loss(x.view(), y.view()).unwrap() - loss).abs() < 1e-6);
    let mut loss_sum = 0.0f64;
    let mut acc: Vec<ArrayD<f32>> = grads_map(&grads)
        .iter()
        .map(|(_, t)| ArrayD::zeros(t.raw_dim()))
        .collect();
    for (r, &n) in lens.iter().enumerate().filter(|(_, &n)| n > 0) {
        let xr = x.slice(s![r..r + 1, ..n]);
        let yr = y.slice(s![r..r + 1, ..n]);
        let (l, g) = model.loss_and_grads(xr, yr).unwrap();
        loss_sum += l as f64 * n as f64;
        for (a, (_, t)) in acc.iter_mut().zip(grads_map(&g)) {
            a.zip_mut_with(&t, |a, &b| *a += b * n as f32 / total as f32);
        }
    }
    assert!((loss as f64 - loss_sum / total as f64).abs() < 1e-5);
    // Threads share the chunks dynamically; the pieces are summed in a fixed order, so every
    // thread count >= 2 gives the same bits, also when `scratch` holds an earlier call's sums.
    let mut scratch = Vec::new();
    let mut first: Option<(f32, NamedGrads)> = None;
    for threads in [1, 3, 2, 5, 3] {
        let mut g = model.zero_grads();
        let l = model
            .accumulate_grads_threaded(x.view(), y.view(), &mut g, &mut scratch, threads)
            .unwrap();
        assert!(
            (l - loss).abs() < 1e-6,
            "{threads} threads: loss {l} vs {loss}"
        );
        let gm = grads_map(&g);
        for ((name, b), a) in gm.iter().zip(&acc) {
            let d = (b - a).iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(
                d < 1e-5,
                "{threads} threads, {name}: padded vs one-by-one differ by {d}"
            );
        }
        if threads > 1 {
            match &first {
                None => first = Some((l, gm)),
                Some((l0, g0)) => {
                    assert_eq!(l, *l0, "{threads} threads: loss bits");
                    assert_eq!(&gm, g0, "{threads} threads: gradient bits");
                }
            }
        }
    }
}

#[test]
fn padded_batch_equals_rows_one_by_one() {
    let model = Model::new(config(), 3).unwrap();
    let rows: [&[u32]; 3] = [
        &[1, 4, 5, 6, 7, 8, 9, 2],
        &[1, 10, 11, 2],
        &[1, 12, 4, 4, 5, 2],
    ];
    let t = 9;
    let mut x = Array2::<u32>::zeros((3, t));
    let mut y = Array2::<u32>::zeros((3, t));
    for (r, ids) in rows.iter().enumerate() {
        for k in 0..ids.len() - 1 {
            x[[r, k]] = ids[k];
            y[[r, k]] = ids[k + 1];
        }
    }
    let (loss, grads) = model.loss_and_grads(x.view(), y.view()).unwrap();
    let gb = grads_map(&grads);

    let total: usize = rows.iter().map(|r| r.len() - 1).sum();
    let mut loss_sum = 0.0f64;
    let mut acc: Vec<ArrayD<f32>> = gb.iter().map(|(_, t)| ArrayD::zeros(t.raw_dim())).collect();
    for ids in rows {
        let n = ids.len() - 1;
        let xr = Array2::from_shape_vec((1, n), ids[..n].to_vec()).unwrap();
        let yr = Array2::from_shape_vec((1, n), ids[1..].to_vec()).unwrap();
        let (l, g) = model.loss_and_grads(xr.view(), yr.view()).unwrap();
        loss_sum += l as f64 * n as f64;
        for (a, (_, t)) in acc.iter_mut().zip(grads_map(&g)) {
            a.zip_mut_with(&t, |a, &b| *a += b * n as f32 / total as f32);
        }
        // Logits at real positions do not depend on padding.
        let lp = model.forward(x.view()).unwrap();
        let lr = model.forward(xr.view()).unwrap();
        let r = rows.iter().position(|q| q == &ids).unwrap();
        let d = (&lp.slice(s![r, ..n, ..]) - &lr.slice(s![0, .., ..]))
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(d < 1e-5, "logits of row {r} differ by {d}");
    }
    assert!((loss as f64 - loss_sum / total as f64).abs() < 1e-5);
    for ((name, b), a) in gb.iter().zip(&acc) {
        let d = (b - a).iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(d < 1e-5, "{name}: padded vs one-by-one differ by {d}");
    }
}

#[test]
fn cached_decoding_equals_full_forward() {
    let model = Model::new(config(), 4).unwrap();
    let ids = [1u32, 7, 3, 12, 5, 5, 9, 2, 11];
    let full = model
        .forward(Array2::from_shape_vec((1, 9), ids.to_vec()).unwrap().view())
        .unwrap();
    // One token at a time.
    let mut cache = model.new_cache();
    for (p, &id) in ids.iter().enumerate() {
        let l = model.forward_cached(&mut cache, &[id]).unwrap();
        let d = (&l.row(0) - &full.slice(s![0, p, ..]))
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(d < 1e-5, "position {p}: {d}");
    }
    assert_eq!(cache.len(), 9);
    // Past max_len: an error, not a panic.
    common::assert_err_kind(
        model.forward_cached(&mut cache, &[1]),
        "SequenceTooLong(Model::forward_cached)",
    );
    // A prompt chunk, then single tokens.
    cache.clear();
    let l = model.forward_cached(&mut cache, &ids[..4]).unwrap();
    for p in 0..4 {
        let d = (&l.row(p) - &full.slice(s![0, p, ..]))
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(d < 1e-5);
    }
    let l = model.forward_cached(&mut cache, &ids[4..6]).unwrap();
    let d = (&l.row(1) - &full.slice(s![0, 5, ..]))
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(d < 1e-5);
    common::assert_err_kind(
        model.forward_cached(&mut cache, &[13]),
        "TokenOutOfRange(ids[0])",
    );
}

#[test]
fn threaded_gradients_equal_single_thread() {
    let model = Model::new(config(), 5).unwrap();
    // Five rows BOS + body (x) and body + EOS (y), PAD-padded to 5.
    let bodies: [&[u32]; 5] = [&[4, 5, 6], &[7], &[8, 9, 10, 11], &[12, 12], &[3]];
    let rows = common::toy_rows(5, 5, |i| bodies[i].to_vec());
    let (x, y) = (rows.x(), rows.y());
    let (l1, g1) = model.loss_and_grads(x.view(), y.view()).unwrap();
    for threads in [2, 3, 5, 8] {
        let mut g = model.zero_grads();
        let mut scratch = Vec::new();
        let l = model
            .accumulate_grads_threaded(x.view(), y.view(), &mut g, &mut scratch, threads)
            .unwrap();
        assert!((l - l1).abs() < 1e-6);
        for ((n, a), (_, b)) in grads_map(&g1).iter().zip(grads_map(&g)) {
            let d = (a - &b).iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(d < 1e-6, "{threads} threads, {n}: {d}");
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let model = Model::new(config(), 6).unwrap();
    let ok = array![[1u32, 4, 5]];
    assert!(model.forward(ok.view()).is_ok());
    // Id out of range.
    let e = model.forward(array![[1u32, 13]].view()).unwrap_err();
    assert!(e.to_string().contains("13"), "{e}");
    // Longer than max_len.
    common::assert_err_kind(
        model.forward(Array2::<u32>::ones((1, 10)).view()),
        "SequenceTooLong(ids)",
    );
    // Empty batch, empty sequence.
    common::assert_err_kind(
        model.forward(Array2::<u32>::zeros((0, 3)).view()),
        "InvalidArgument(ids)",
    );
    common::assert_err_kind(
        model.forward(Array2::<u32>::zeros((2, 0)).view()),
        "InvalidArgument(ids)",
    );
    // x and y of different shapes.
    common::assert_err_kind(
        model.loss_and_grads(ok.view(), array![[4u32, 5]].view()),
        "Shape(loss targets y)",
    );
    // Every target PAD.
    common::assert_err_kind(
        model.loss_and_grads(ok.view(), array![[0u32, 0, 0]].view()),
        "InvalidArgument(y)",
    );
    // Target out of range.
    common::assert_err_kind(
        model.loss_and_grads(ok.view(), array![[4u32, 5, 99]].view()),
        "TokenOutOfRange(y[0, 2])",
    );
}

#[test]
fn profiles() {
    for name in ModelConfig::profile_names() {
        let c = ModelConfig::profile(name, 155).unwrap();
        assert_eq!(c.d_model, 50);
        c.validate().unwrap();
    }
    let c = ModelConfig::profile("upper_middle", 155).unwrap();
    assert_eq!((c.n_layers, c.ffn_dim(), c.n_attn_heads), (4, 200, 5));
    let e = ModelConfig::profile("gigantic", 155)
        .unwrap_err()
        .to_string();
    for name in ["tiny", "small", "middle", "upper_middle", "large"] {
        assert!(e.contains(name), "{e}");
    }
    let mut bad = c.clone();
    bad.n_attn_heads = 3;
    common::assert_err_kind(bad.validate(), "InvalidArgument(n_attn_heads)");
    common::assert_err_kind(Model::new(bad, 0), "InvalidArgument(n_attn_heads)");
}

#[test]
fn parameter_names_and_count() {
    let c = ModelConfig::profile("upper_middle", 155).unwrap();
    let model = Model::new(c, 0).unwrap();
    let named = model.named_parameters();
    // PyTorch: embed + per block (ln1 2, q/k/v 2 per head each, attn_out 2, ln2 2, ffn 4) + ln_f 2.
    assert_eq!(named.len(), 1 + 4 * (2 + 3 * 2 * 5 + 2 + 2 + 4) + 2);
    assert_eq!(named[0].0, "embed.weight");
    assert_eq!(named[3].0, "blocks.0.q_linears.0.weight");
    assert_eq!(named[3].1.shape(), &[10, 50]);
    let n: usize = named.iter().map(|(_, t)| t.len()).sum();
    let per_block =
        4 * 50 + 3 * (50 * 50 + 50) + (50 * 50 + 50) + (200 * 50 + 200) + (50 * 200 + 50);
    assert_eq!(n, 155 * 50 + 4 * per_block + 100);
    assert_eq!(model.num_params(), n);
}

#[test]
fn diagnostics() {
    let model = Model::new(config(), 7).unwrap();
    let x = array![[1u32, 4, 5, 6], [1, 7, 8, 0]];
    let (logits, diag) = model.forward_with_diagnostics(x.view()).unwrap();
    assert_eq!(logits, model.forward(x.view()).unwrap());
    assert_eq!(diag.attention.len(), 2);
    for a in &diag.attention {
        assert_eq!(a.shape(), &[2, 2, 4, 4]);
        for b in 0..2 {
            for h in 0..2 {
                for t in 0..4 {
                    let row = a.slice(s![b, h, t, ..]);
                    assert!((row.sum() - 1.0).abs() < 1e-5);
                    assert!(row.iter().skip(t + 1).all(|&p| p == 0.0));
                }
            }
        }
    }
    // First position attends only to itself.
    assert_eq!(diag.attention[0][[0, 1, 0, 0]], 1.0);
    for s in &diag.ffn_residual {
        assert!(s.mean_l2_x > 0.0 && s.mean_l2_ffn > 0.0);
        assert!(s.mean_cossim <= 1.0 + 1e-6 && s.mean_cossim >= -1.0 - 1e-6);
    }
}

#[test]
fn ffn_residual_stats_by_hand() {
    use succulm::nn::layers::FfnResidualStats;
    // x = (3, 4) |x| = 5; f = (0, 4) |f| = 4; x + f = (3, 8): cos = (9 + 32) / (5 · √73).
    let s = FfnResidualStats::compute(array![[3.0f32, 4.0]].view(), array![[0.0f32, 4.0]].view());
    assert!((s.mean_l2_x - 5.0).abs() < 1e-6);
    assert!((s.mean_l2_ffn - 4.0).abs() < 1e-6);
    assert!((s.mean_cossim - 41.0 / (5.0 * 73f32.sqrt())).abs() < 1e-6);
}

fn toy_rows() -> Dataset {
    // A deterministic toy language: BOS a b c ... EOS with a few patterns.
    common::toy_rows(24, 8, |i| {
        let start = 4 + (i % 8) as u32;
        (0..3 + i % 4)
            .map(|k| 4 + (start - 4 + k as u32) % 9)
            .collect()
    })
}

#[test]
fn training_learns_and_is_reproducible() {
    let rows = toy_rows();
    let valid = rows.subset(&[0, 1, 2, 3]).unwrap();
    let run = || {
        let mut model = Model::new(config(), 8).unwrap();
        let mut trainer = Trainer::new(TrainConfig {
            epochs: 30,
            batch_size: 8,
            lr: 1e-2,
            seed: 1,
            clip: Some(1.0),
            threads: 1,
        })
        .unwrap();
        let mut seen = 0;
        let reports = trainer
            .fit(&mut model, &rows, &valid, |_| seen += 1)
            .unwrap();
        assert_eq!(seen, 30);
        (model, reports)
    };
    let (m1, r1) = run();
    let (m2, r2) = run();
    assert_eq!(m1, m2, "same seed, same model");
    let first = r1[0].train_loss;
    let last = r1.last().unwrap().train_loss;
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    assert!(r1.last().unwrap().val_loss.unwrap() < r1[0].val_loss.unwrap());
    assert_eq!(
        r1.iter().map(|r| r.train_loss).collect::<Vec<_>>(),
        r2.iter().map(|r| r.train_loss).collect::<Vec<_>>()
    );
    common::assert_err_kind(
        Trainer::new(TrainConfig {
            batch_size: 0,
            ..TrainConfig::default()
        }),
        "InvalidArgument(batch_size)",
    );
}

#[test]
fn truncated_cache_decodes_as_if_never_extended() {
    let model = Model::new(config(), 4).unwrap();
    let ids = [1u32, 7, 3, 12, 5, 5];
    let full = model
        .forward(Array2::from_shape_vec((1, 6), ids.to_vec()).unwrap().view())
        .unwrap();
    let mut cache = model.new_cache();
    model.forward_cached(&mut cache, &[1, 7, 3, 9, 9]).unwrap();
    cache.truncate(3);
    assert_eq!(cache.len(), 3);
    let l = model.forward_cached(&mut cache, &ids[3..]).unwrap();
    for p in 3..6 {
        let d = (&l.row(p - 3) - &full.slice(s![0, p, ..]))
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(d < 1e-5, "position {p}: {d}");
    }
    cache.truncate(10);
    assert_eq!(cache.len(), 6);
}

#[test]
fn threaded_forward_is_bit_identical_to_serial() {
    let model = Model::new(config(), 5).unwrap();
    let t = model.config().max_len;
    let v = model.config().vocab_size;
    let x = Array2::from_shape_fn((37, t), |(i, j)| ((i * 7 + j * 3) % v) as u32);
    let serial = model.forward(x.view()).unwrap();
    for threads in [2, 3, 8] {
        assert_eq!(model.forward_threaded(x.view(), threads).unwrap(), serial);
    }
    common::assert_err_kind(
        model.forward_threaded(x.view(), 0),
        "InvalidArgument(threads)",
    );
}

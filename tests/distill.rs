//! Distillation contracts: `loss::distillation` and the model's distillation gradients against
//! finite differences, the KL against `eval::TeacherForced` (f64), self-distillation as an exact
//! no-op (and the row-determinism of the forward it rests on), healing, threading, bad inputs.

mod common;
mod common_grad;

use std::collections::HashSet;

use common_grad::{check_all, Named};
use ndarray::{s, Array2, Array3, ArrayD, ArrayView3, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use succulm::nn::loss::{distillation, softmax};
use succulm::nn::model::{Model, ModelConfig};
use succulm::nn::train::{heal_distill, Teacher, TrainConfig, Trainer};
use succulm::study::eval::TeacherForced;
use succulm::text::data::{Dataset, EncodedPair};
use succulm::text::vocab::{BOS, EOS, PAD};
use succulm::{Error, FfnTtSpec, Parameters};

const RTOL: f64 = 5e-3;

/// Every parameter, owned, by name.
fn params(m: &Model) -> Vec<(String, ArrayD<f32>)> {
    common_grad::snapshot(m)
}

/// Bitwise equality of two parameter lists; returns the names that differ.
fn changed(a: &[(String, ArrayD<f32>)], b: &[(String, ArrayD<f32>)]) -> Vec<String> {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .filter(|((n, x), (n2, y))| {
            assert_eq!(n, n2);
            x.iter()
                .zip(y.iter())
                .any(|(u, v)| u.to_bits() != v.to_bits())
        })
        .map(|((n, _), _)| n.clone())
        .collect()
}

/// `n` random rows of real lengths in `2..=max_len` over ids `4..v` (`<BOS>` first, `<EOS>` last
/// target), padded to `max_len`.
fn random_rows(n: usize, v: u32, max_len: usize, seed: u64) -> Dataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let rows: Vec<EncodedPair> = (0..n)
        .map(|_| {
            let len = rng.gen_range(2..=max_len);
            let words: Vec<u32> = (0..len - 1).map(|_| rng.gen_range(4..v)).collect();
            let mut x = vec![BOS];
            x.extend(&words);
            let mut y = words;
            y.push(EOS);
            x.resize(max_len, PAD);
            y.resize(max_len, PAD);
            EncodedPair { x, y, len }
        })
        .collect();
    Dataset::from_rows(&rows, max_len).unwrap()
}

/// A random `upper_middle`-shaped model over 30 words.
fn random_model(seed: u64) -> Model {
    Model::new(ModelConfig::profile("upper_middle", 30).unwrap(), seed).unwrap()
}

/// The shipped model and the first `n` rows of the corpus.
fn shipped(n: usize) -> (Model, Dataset) {
    let (model, vocab) = Model::load(common::fixture("succulm_upper_middle.json")).unwrap();
    let data = Dataset::from_pairs(&vocab, &common::all_pairs()[..n], 29).unwrap();
    (model, data)
}

/// The whole dataset as one batch in row order, and the teacher's `[N, T', V]` for it.
fn all_rows(data: &Dataset, teacher: &Teacher) -> (succulm::Batch, Array3<f32>) {
    let batch = data.batches_in_order(data.len()).unwrap().next().unwrap();
    let probs = teacher.batch_probs(&batch).unwrap();
    (batch, probs)
}

/// `softmax` of a model's logits `[B, T, V]`, row by row.
fn softmax3(logits: ArrayView3<'_, f32>) -> Array3<f32> {
    let (b, t, v) = logits.dim();
    let flat = logits.to_shape((b * t, v)).unwrap();
    softmax(flat.view())
        .into_shape_with_order((b, t, v))
        .unwrap()
}

#[test]
fn distillation_gradient_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(1);
    let (n, v) = (7, 11);
    let z = Array2::from_shape_simple_fn((n, v), || 2.0 * rng.gen_range(-1.0f32..1.0));
    // A teacher with some exact zeros (their terms vanish, their gradient is q).
    let mut tz = Array2::from_shape_simple_fn((n, v), || 3.0 * rng.gen_range(-1.0f32..1.0));
    tz.column_mut(3).fill(-200.0);
    let p = softmax(tz.view());
    assert!(p.column(3).iter().all(|&x| x < 1e-30));
    let targets = [4u32, 0, 9, 1, 0, 2, 5];
    let (kl, g) = distillation(z.view(), p.view(), &targets).unwrap();
    assert!(kl > 0.1, "{kl}");
    for (row, &t) in g.rows().into_iter().zip(&targets) {
        if t == PAD {
            assert!(row.iter().all(|&x| x == 0.0));
        } else {
            // Σ_v (q_v − p_v) / count = 0.
            assert!(row.sum().abs() < 1e-6, "{}", row.sum());
        }
    }
    let h = 1e-3;
    check_all(
        &Named("logits", z.clone().into_dyn()),
        &Named("logits", g.into_dyn()),
        |l| {
            let z = common_grad::matrix(l);
            distillation(z, p.view(), &targets).unwrap().0 as f64
        },
        h,
        RTOL,
        4.0 * f32::EPSILON as f64 * kl as f64 / (2.0 * h as f64),
    );
}

#[test]
fn model_distillation_gradients_match_finite_differences() {
    let model = Model::new(common::tiny_config(11, 7), 11).unwrap();
    let teacher_model = Model::new(common::tiny_config(11, 7), 12).unwrap();
    let (x, y) = common_grad::padded_rows();
    let mut teacher = softmax3(teacher_model.forward(x.view()).unwrap().view());
    // Sharper than a random model's near-uniform distributions.
    teacher.mapv_inplace(|p| p * p * p);
    for mut d in teacher.lanes_mut(Axis(2)) {
        let s = d.sum();
        d.mapv_inplace(|p| p / s);
    }
    let (loss, grads) = model
        .distill_loss_and_grads(x.view(), y.view(), teacher.view())
        .unwrap();
    let again = model
        .distill_loss(x.view(), y.view(), teacher.view())
        .unwrap();
    assert_eq!(loss, again);
    assert!(loss > 0.05, "{loss}");
    check_all(
        &model,
        &grads,
        |m| m.distill_loss(x.view(), y.view(), teacher.view()).unwrap() as f64,
        2e-3,
        RTOL,
        4.0 * f32::EPSILON as f64 * loss as f64 / 4e-3,
    );
}

/// The same KL as `TeacherForced` (f64 log-softmax of both models' logits) on the same rows:
/// teacher = a random model, students = it with block 0's FFN compressed (a random model is
/// nearly uniform, so the KL is small) and a perturbed copy; and the shipped model with block
/// 0 compressed.
#[test]
fn kl_agrees_with_teacher_forced_evaluation() {
    let random = random_model(3);
    let mut compressed = random.clone();
    compressed.tensorize_ffn(0, &FfnTtSpec::seed(20)).unwrap();
    let mut perturbed = random.clone();
    let mut rng = StdRng::seed_from_u64(5);
    perturbed.visit_mut("", &mut |_, mut t| {
        t.mapv_inplace(|v| {
            let e: f32 = StandardNormal.sample(&mut rng);
            v + 0.3 * e
        })
    });
    let (shipped, shipped_rows) = shipped(60);
    let mut shipped_tt = shipped.clone();
    shipped_tt.tensorize_ffn(0, &FfnTtSpec::seed(20)).unwrap();
    let random_rows = random_rows(40, 30, 29, 4);
    let cases = [
        (
            "random, compressed",
            &random,
            &compressed,
            &random_rows,
            1e-6,
        ),
        ("random, perturbed", &random, &perturbed, &random_rows, 1e-2),
        (
            "shipped, compressed",
            &shipped,
            &shipped_tt,
            &shipped_rows,
            1e-2,
        ),
    ];
    for (name, reference, student, data, at_least) in cases {
        let teacher = Teacher::new(reference, data, 1).unwrap();
        let tf = TeacherForced::new(reference, data.x(), data.y(), 8).unwrap();
        assert_eq!(teacher.positions(), tf.positions());
        assert_eq!(teacher.positions(), data.lens().iter().sum::<usize>());
        let v = reference.config().vocab_size;
        assert_eq!(teacher.memory_bytes(), teacher.positions() * v * 4);
        let (batch, probs) = all_rows(data, &teacher);
        let (x, y) = (batch.x_trimmed(), batch.y_trimmed());
        let want = tf.evaluate(student, &[]).unwrap().kl;
        let got = student.distill_loss(x, y, probs.view()).unwrap() as f64;
        eprintln!("{name}: KL {got:.6e} (TeacherForced {want:.6e})");
        assert!(
            want > at_least,
            "{name}: the student should differ ({want})"
        );
        // f32 probabilities and sums of exponentials: a few ulps per position.
        assert!(
            (got - want).abs() <= 5e-7 + 1e-5 * want,
            "{name}: {got} vs {want}"
        );
        // The reference itself: the KL is rounding only.
        let own = reference.distill_loss(x, y, probs.view()).unwrap();
        assert!(own.abs() < 1e-6, "{name}: {own}");
    }
}

/// Logits of every row alone (cut to its own length) are bitwise those of the same row inside
/// a batch, at another batch position, padded to another length, cut to a shorter prefix, or
/// computed with two threads: the property that lets a teacher computed once be reused in any
/// shuffled, trimmed batch.
#[test]
fn forward_is_row_deterministic() {
    let (model, data) = shipped(60);
    let alone: Vec<Array2<f32>> = (0..data.len())
        .map(|i| {
            let len = data.lens()[i];
            let x = data.x().slice(s![i..i + 1, ..len]).to_owned();
            model.forward(x.view()).unwrap().index_axis_move(Axis(0), 0)
        })
        .collect();
    let same = |what: &str, i: usize, logits: ArrayView3<'_, f32>, k: usize, upto: usize| {
        let got = logits.slice(s![k, ..upto, ..]);
        let want = alone[i].slice(s![..upto, ..]);
        assert!(
            got.iter()
                .zip(want.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{what}: row {i} differs"
        );
    };
    // The whole dataset in one batch, untrimmed (T = 29) and trimmed, in a shuffled order.
    let order = data.batches_seeded(data.len(), 9).unwrap().order().to_vec();
    let shuffled = data.subset(&order).unwrap();
    for threads in [1, 2] {
        let full = model.forward_threaded(shuffled.x(), threads).unwrap();
        let t = *data.lens().iter().max().unwrap();
        let trimmed = model
            .forward_threaded(shuffled.x().slice(s![.., ..t]), threads)
            .unwrap();
        for (k, &i) in order.iter().enumerate() {
            let len = data.lens()[i];
            same("full batch", i, full.view(), k, len);
            same("trimmed batch", i, trimmed.view(), k, len);
        }
    }
    // Small batches of 3 rows at every position, and each row cut to a prefix.
    for (k, w) in order.windows(3).enumerate().step_by(5) {
        let sub = data.subset(w).unwrap();
        let logits = model.forward(sub.x()).unwrap();
        for (j, &i) in w.iter().enumerate() {
            same("batch of 3", i, logits.view(), j, data.lens()[i]);
        }
        let i = w[0];
        let prefix = (data.lens()[i] / 2).max(1);
        let x = data.x().slice(s![i..i + 1, ..prefix]).to_owned();
        same(
            &format!("prefix {k}"),
            i,
            model.forward(x.view()).unwrap().view(),
            0,
            prefix,
        );
    }
}

/// Distilling the dense model into itself: every gradient is exactly 0 (in any batch, with 1
/// or 2 threads), and an epoch of `fit_distill` training every parameter leaves each one
/// bitwise unchanged.
#[test]
fn a_model_distilled_from_itself_is_unchanged() {
    let (mut model, data) = shipped(150);
    let teacher = Teacher::new(&model, &data, 2).unwrap();
    // Built with one thread: the same bits.
    let serial = Teacher::new(&model, &data, 1).unwrap();
    for i in 0..data.len() {
        assert_eq!(teacher.row(i).unwrap(), serial.row(i).unwrap());
    }
    let mut scratch = Vec::new();
    for batch in data.batches_seeded(16, 3).unwrap() {
        let probs = teacher.batch_probs(&batch).unwrap();
        let (x, y) = (batch.x_trimmed(), batch.y_trimmed());
        let (kl, g) = model.distill_loss_and_grads(x, y, probs.view()).unwrap();
        assert!(kl.abs() < 1e-6, "{kl}");
        let mut g2 = model.zero_grads();
        model
            .accumulate_distill_grads_threaded(x, y, probs.view(), &mut g2, &mut scratch, 2)
            .unwrap();
        for (name, t) in g.named().into_iter().chain(g2.named()) {
            assert!(t.iter().all(|&v| v == 0.0), "{name} has a nonzero gradient");
        }
    }
    let before = params(&model);
    for threads in [1, 2] {
        let config = TrainConfig {
            epochs: 1,
            batch_size: 16,
            lr: 1e-2,
            seed: 4,
            clip: Some(1.0),
            threads,
        };
        let mut trainer = Trainer::new(config).unwrap();
        let reports = trainer
            .fit_distill(&mut model, &data, &teacher, &data, |_| {})
            .unwrap();
        assert!(reports[0].train_loss.abs() < 1e-6);
        assert_eq!(reports[0].tokens, data.lens().iter().sum::<usize>());
        assert!(
            changed(&before, &params(&model)).is_empty(),
            "{threads} threads: {:?} moved",
            changed(&before, &params(&model))
        );
    }
    // Cross-entropy training, by contrast, moves every parameter.
    let mut trainer = Trainer::new(TrainConfig {
        epochs: 1,
        batch_size: 16,
        ..TrainConfig::default()
    })
    .unwrap();
    trainer.fit(&mut model, &data, &data, |_| {}).unwrap();
    assert_eq!(changed(&before, &params(&model)).len(), before.len());
}

/// Healing a compressed shipped model by distillation lowers its KL from the dense model on
/// the training rows, moves every TT tensor and no other parameter.
#[test]
fn distillation_healing_lowers_the_kl_and_freezes_dense_parameters() {
    let (dense, data) = shipped(120);
    let valid = Dataset::from_pairs(&common::vocab(), &common::all_pairs()[600..640], 29).unwrap();
    let teacher = Teacher::new(&dense, &data, 2).unwrap();
    let mut model = dense.clone();
    model.tensorize_ffn(0, &FfnTtSpec::seed(20)).unwrap();
    let before = params(&model);
    let (batch, probs) = all_rows(&data, &teacher);
    let kl = |m: &Model| {
        m.distill_loss(batch.x_trimmed(), batch.y_trimmed(), probs.view())
            .unwrap()
    };
    let kl_before = kl(&model);
    let config = TrainConfig {
        epochs: 3,
        batch_size: 16,
        lr: 2e-3,
        seed: 1,
        clip: Some(1.0),
        threads: 2,
    };
    let reports = heal_distill(&mut model, &data, &valid, &teacher, config, |_| {}).unwrap();
    let kl_after = kl(&model);
    eprintln!(
        "training KL {kl_before:.4} -> {kl_after:.4}; epochs {:?}",
        reports
            .iter()
            .map(|r| (r.train_loss, r.val_loss.unwrap()))
            .collect::<Vec<_>>()
    );
    assert!(kl_after < 0.7 * kl_before, "{kl_before} -> {kl_after}");
    assert!(reports[2].train_loss < reports[0].train_loss);
    // val_loss is the cross-entropy on `valid`.
    let ce = succulm::nn::train::evaluate_dataset(&model, &valid, 16).unwrap();
    assert!((reports[2].val_loss.unwrap() - ce).abs() < 1e-6);

    let tt: HashSet<String> = model.tt_parameter_names().into_iter().collect();
    let moved: HashSet<String> = changed(&before, &params(&model)).into_iter().collect();
    assert_eq!(moved, tt, "exactly the TT tensors should move");
    assert_eq!(tt.len(), 2 * 5);
}

/// Threaded distillation gradients: bit-identical for 2 and 3 threads, and equal to the one-
/// thread result up to rounding.
#[test]
fn threaded_distillation_gradient_is_deterministic() {
    let reference = random_model(6);
    let mut student = reference.clone();
    student.tensorize_ffn(1, &FfnTtSpec::seed(15)).unwrap();
    // 60 rows of up to 29 positions: 4 sequences a chunk, 15 chunks, 15 pieces.
    let data = random_rows(60, 30, 29, 7);
    let teacher = Teacher::new(&reference, &data, 3).unwrap();
    let (batch, probs) = all_rows(&data, &teacher);
    let (x, y) = (batch.x_trimmed(), batch.y_trimmed());
    let (l1, g1) = student.distill_loss_and_grads(x, y, probs.view()).unwrap();
    let mut scratch = Vec::new();
    let mut run = |threads| {
        let mut g = student.zero_grads();
        let l = student
            .accumulate_distill_grads_threaded(x, y, probs.view(), &mut g, &mut scratch, threads)
            .unwrap();
        (l, g)
    };
    let (l2, g2) = run(2);
    let (l3, g3) = run(3);
    assert_eq!(l2.to_bits(), l3.to_bits());
    assert_eq!(g2, g3, "2 and 3 threads must give the same bits");
    assert!((l1 - l2).abs() <= 1e-6 * l1.abs().max(1.0));
    assert!(g1.global_norm() > 1e-4);
    for ((name, a), (_, b)) in g1.named().into_iter().zip(g2.named()) {
        let norm = a.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        let diff = a
            .iter()
            .zip(b.iter())
            .map(|(&u, &v)| ((u - v) as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(
            diff <= 1e-5 * norm + 1e-9,
            "{name}: |Δ| {diff:e}, |g| {norm:e}"
        );
    }
}

fn expect_invalid<T: std::fmt::Debug>(r: succulm::Result<T>, words: &str) {
    match r {
        Err(e @ Error::InvalidArgument { .. }) => {
            assert!(
                e.to_string().contains(words),
                "{e} should mention {words:?}"
            )
        }
        other => panic!("expected an invalid argument mentioning {words:?}, got {other:?}"),
    }
}

#[test]
fn bad_inputs_are_errors() {
    let reference = random_model(8);
    let data = random_rows(20, 30, 29, 9);
    let teacher = Teacher::new(&reference, &data, 1).unwrap();
    let config = TrainConfig {
        epochs: 1,
        batch_size: 8,
        ..TrainConfig::default()
    };
    let mut model = reference.clone();
    model.tensorize_ffn(0, &FfnTtSpec::seed(20)).unwrap();
    let untouched = params(&model);
    let fit = |model: &mut Model, train: &Dataset, teacher: &Teacher| {
        heal_distill(model, train, train, teacher, config.clone(), |_| {})
    };
    // A teacher built on another dataset: other rows, other lengths, other ids.
    expect_invalid(
        fit(&mut model, &random_rows(21, 30, 29, 9), &teacher),
        "rows",
    );
    expect_invalid(
        fit(&mut model, &random_rows(20, 30, 20, 9), &teacher),
        "length",
    );
    expect_invalid(
        fit(&mut model, &random_rows(20, 30, 29, 10), &teacher),
        "positions for row",
    );
    let mut rows: Vec<EncodedPair> = (0..data.len()).map(|i| data.row(i).unwrap()).collect();
    rows[5].x[1] = if rows[5].x[1] == 4 { 5 } else { 4 };
    let same_shape = Dataset::from_rows(&rows, 29).unwrap();
    expect_invalid(fit(&mut model, &same_shape, &teacher), "token ids differ");
    // A teacher over another vocabulary.
    let wide = Model::new(ModelConfig::profile("upper_middle", 31).unwrap(), 8).unwrap();
    let wide_teacher = Teacher::new(&wide, &data, 1).unwrap();
    expect_invalid(fit(&mut model, &data, &wide_teacher), "vocabulary");
    // Nothing to heal in a dense model.
    expect_invalid(fit(&mut reference.clone(), &data, &teacher), "TT");
    assert!(changed(&untouched, &params(&model)).is_empty());
    // The right teacher works.
    fit(&mut model, &data, &teacher).unwrap();

    // Teacher::new: no rows, no threads, rows the model cannot read.
    assert!(Teacher::new(&reference, &Dataset::from_rows(&[], 29).unwrap(), 1).is_err());
    assert!(Teacher::new(&reference, &data, 0).is_err());
    assert!(matches!(
        Teacher::new(&reference, &random_rows(5, 40, 29, 1), 1),
        Err(Error::TokenOutOfRange { .. })
    ));
    assert!(matches!(
        Teacher::new(&reference, &random_rows(30, 30, 35, 1), 1),
        Err(Error::SequenceTooLong { .. })
    ));

    // Model::distill_loss: shapes, then the teacher's distributions at real targets.
    let (batch, probs) = all_rows(&data, &teacher);
    let (x, y) = (batch.x_trimmed(), batch.y_trimmed());
    let (b, t, v) = probs.dim();
    for dim in [(b, t, v + 1), (b, t - 1, v), (b + 1, t, v)] {
        assert!(
            matches!(
                model.distill_loss(x, y, Array3::zeros(dim).view()),
                Err(Error::Shape { .. })
            ),
            "{dim:?}"
        );
    }
    assert!(matches!(
        model.distill_loss(x, y.slice(s![.., 1..]), probs.view()),
        Err(Error::Shape { .. })
    ));
    let real = (0, 0);
    let pad = (0, data.lens()[batch.rows[0]]);
    assert!(pad.1 < t, "row 0 should be padded");
    let mut bad = probs.clone();
    bad[[real.0, real.1, 7]] = f32::NAN;
    expect_invalid(model.distill_loss(x, y, bad.view()), "teacher[0, 0]");
    let mut bad = probs.clone();
    bad[[real.0, real.1, 7]] += 0.01;
    expect_invalid(model.distill_loss(x, y, bad.view()), "sum to");
    let mut bad = probs.clone();
    bad[[real.0, real.1, 7]] = -bad[[real.0, real.1, 7]];
    expect_invalid(model.distill_loss(x, y, bad.view()), "teacher[0, 0]");
    // At a PAD target the teacher is not read.
    let mut ignored = probs.clone();
    ignored.slice_mut(s![pad.0, pad.1, ..]).fill(f32::NAN);
    assert_eq!(
        model.distill_loss(x, y, ignored.view()).unwrap(),
        model.distill_loss(x, y, probs.view()).unwrap()
    );
    // Ids are checked as for the cross-entropy.
    let mut bad_x = x.to_owned();
    bad_x[[1, 1]] = 30;
    assert!(matches!(
        model.distill_loss(bad_x.view(), y, probs.view()),
        Err(Error::TokenOutOfRange { .. })
    ));

    // batch_probs: a batch of another, larger dataset.
    let other = random_rows(40, 30, 29, 9);
    let far = other.batches_in_order(40).unwrap().next().unwrap();
    expect_invalid(teacher.batch_probs(&far), "out of range");
    // A batch row that claims to be another dataset row, of another length.
    let mut inconsistent = batch.clone();
    let len0 = data.lens()[0];
    inconsistent.rows[0] = (1..data.len()).find(|&j| data.lens()[j] != len0).unwrap();
    expect_invalid(teacher.batch_probs(&inconsistent), "real targets");
}

//! Pair loading, the dataset encoding of hand-worked pairs, split and batch determinism, bad files.

mod common;

use std::collections::HashSet;

use common::{all_pairs, fixture, temp_dir, vocab, write};
use rand::SeedableRng;
use succulm::text::data::{
    encode_pair, split_indices, Dataset, DEFAULT_MAX_LEN, DEFAULT_VAL_FRACTION,
};
use succulm::text::vocab::{BOS, EOS, PAD, UNK};
use succulm::{load_pairs, Error};

fn ids(v: &succulm::Vocab, words: &[&str]) -> Vec<u32> {
    words.iter().map(|w| v.get(w).unwrap_or(UNK)).collect()
}

#[test]
fn loads_the_fixture_pair_files() {
    let normal = load_pairs(fixture("succulm_normal_sentence_pairs.json")).unwrap();
    let qa = load_pairs(fixture("succulm_question_answer_pairs.json")).unwrap();
    assert!(normal.len() >= 600 && qa.len() >= 400);
    assert!(qa.contains(&(
        "can you bloom, winy?".to_string(),
        "sometimes i bloom white flowers.".to_string()
    )));
}

#[test]
fn encodes_a_hand_worked_pair() {
    let v = vocab();
    // "Does Winy sleep on the window?" + " " + "no, she sleeps with ruby in the pot."
    let row = encode_pair(
        &v,
        "Does Winy sleep on the window?",
        "no, she sleeps with ruby in the pot.",
        DEFAULT_MAX_LEN,
    );
    let words = [
        "<BOS>", "does", "winy", "sleep", "on", "the", "window", "?", "no", ",", "she", "sleeps",
        "with", "ruby", "in", "the", "pot", ".", "<EOS>",
    ];
    let all = ids(&v, &words);
    assert_eq!(all.len(), 19);
    let mut x = all[..18].to_vec();
    let mut y = all[1..].to_vec();
    x.resize(29, PAD);
    y.resize(29, PAD);
    assert_eq!(row.x, x);
    assert_eq!(row.y, y);
    assert_eq!(row.len, 18);
    assert_eq!(row.x[0], BOS);
    assert_eq!(row.y[17], EOS);

    // Unknown words become <UNK>; a pair of empty strings is just BOS -> EOS.
    let row = encode_pair(&v, "ruby zebra", "", 5);
    assert_eq!(row.x, [BOS, v.id("ruby"), UNK, PAD, PAD]);
    assert_eq!(row.y, [v.id("ruby"), UNK, EOS, PAD, PAD]);
    assert_eq!(row.len, 3);
    let row = encode_pair(&v, "", "", 3);
    assert_eq!(
        (row.x, row.y, row.len),
        (vec![BOS, PAD, PAD], vec![EOS, PAD, PAD], 1)
    );
}

#[test]
fn long_pairs_are_cut_like_the_seed() {
    let v = vocab();
    // 8 tokens; ids = BOS + 8 + EOS = 10; x = ids[..9], y = ids[1..]: cut to 5.
    let row = encode_pair(&v, "ruby is red .", "winy is calm .", 5);
    let all = ids(
        &v,
        &[
            "<BOS>", "ruby", "is", "red", ".", "winy", "is", "calm", ".", "<EOS>",
        ],
    );
    assert_eq!(row.x, all[..5]);
    assert_eq!(row.y, all[1..6]);
    assert_eq!(row.len, 5);
    // Exactly full: ids of length max_len + 1 keeps the EOS target in the last position.
    let row = encode_pair(&v, "ruby is red .", "winy is calm .", 9);
    assert_eq!(row.x, all[..9]);
    assert_eq!(row.y, all[1..]);
    assert_eq!(row.len, 9);
}

#[test]
fn dataset_rows_match_encode_pair() {
    let v = vocab();
    let pairs = all_pairs();
    let d = Dataset::from_pairs(&v, &pairs, DEFAULT_MAX_LEN).unwrap();
    assert_eq!(d.len(), pairs.len());
    assert_eq!(d.max_len(), 29);
    assert_eq!(d.x().shape(), &[pairs.len(), 29]);
    for (i, (a, b)) in pairs.iter().enumerate() {
        let want = encode_pair(&v, a, b, 29);
        assert_eq!(d.row(i).unwrap(), want);
        // The real length is the count of non-PAD targets, and every row ends in EOS.
        assert_eq!(want.y.iter().filter(|&&t| t != PAD).count(), want.len);
        assert_eq!(want.y[want.len - 1], EOS);
        assert_eq!(d.lens()[i], want.len);
    }
    assert!(d.row(pairs.len()).is_none());
    assert!(matches!(
        Dataset::from_pairs(&v, &pairs, 0),
        Err(Error::InvalidArgument { .. })
    ));
    let sub = d.subset(&[3, 1]).unwrap();
    assert_eq!(sub.row(0), d.row(3));
    assert_eq!(sub.row(1), d.row(1));
    assert!(d.subset(&[pairs.len()]).is_err());
}

#[test]
fn split_is_a_seeded_partition() {
    let n = 1120;
    let (train, val) = split_indices(n, DEFAULT_VAL_FRACTION, 42, &[]).unwrap();
    assert_eq!(val.len(), 112);
    assert_eq!(train.len() + val.len(), n);
    let all: HashSet<usize> = train.iter().chain(&val).copied().collect();
    assert_eq!(all.len(), n);
    assert!(train.windows(2).all(|w| w[0] < w[1]) && val.windows(2).all(|w| w[0] < w[1]));
    // Same seed, same split; another seed, another split.
    assert_eq!(
        split_indices(n, 0.1, 42, &[]).unwrap(),
        (train.clone(), val.clone())
    );
    assert_ne!(split_indices(n, 0.1, 43, &[]).unwrap().1, val);
    // Pinned rows stay in training.
    let pinned: Vec<usize> = val[..5].to_vec();
    let (t2, v2) = split_indices(n, 0.1, 42, &pinned).unwrap();
    assert_eq!(v2.len(), 112);
    assert!(pinned.iter().all(|p| t2.contains(p) && !v2.contains(p)));
    // Edge cases and errors.
    assert_eq!(
        split_indices(10, 0.0, 1, &[]).unwrap().1,
        Vec::<usize>::new()
    );
    assert_eq!(split_indices(10, 0.01, 1, &[]).unwrap().1.len(), 1);
    for bad in [1.0, -0.1, f64::NAN, 1.5] {
        assert!(split_indices(10, bad, 1, &[]).is_err(), "{bad}");
    }
    assert!(split_indices(10, 0.1, 1, &[10]).is_err());
    assert!(split_indices(1, 0.5, 1, &[]).is_err());
    assert!(split_indices(3, 0.5, 1, &[0, 1, 2]).is_err());

    let v = vocab();
    let d = Dataset::from_pairs(&v, &all_pairs(), 29).unwrap();
    let (tr, va) = d.split(0.1, 7).unwrap();
    let (ti, vi) = split_indices(d.len(), 0.1, 7, &[]).unwrap();
    assert_eq!(tr, d.subset(&ti).unwrap());
    assert_eq!(va, d.subset(&vi).unwrap());
}

#[test]
fn batches_are_seeded_shuffles_covering_every_row_once() {
    let v = vocab();
    let d = Dataset::from_pairs(&v, &all_pairs(), 29).unwrap();
    let n = d.len();
    let batches: Vec<_> = d.batches_seeded(32, 5).unwrap().collect();
    assert_eq!(batches.len(), n.div_ceil(32));
    assert_eq!(d.batches_seeded(32, 5).unwrap().len(), batches.len());
    let order = d.batches_seeded(32, 5).unwrap().order().to_vec();
    let mut seen = vec![false; n];
    for (b, batch) in batches.iter().enumerate() {
        let rows = &order[b * 32..((b + 1) * 32).min(n)];
        assert_eq!(batch.len(), rows.len());
        assert_eq!(
            batch.rows, rows,
            "the batch names the dataset rows it holds"
        );
        assert_eq!(batch.x.shape(), &[rows.len(), 29]);
        for (k, &i) in rows.iter().enumerate() {
            assert!(!std::mem::replace(&mut seen[i], true));
            let row = d.row(i).unwrap();
            assert_eq!(batch.x.row(k).to_vec(), row.x);
            assert_eq!(batch.y.row(k).to_vec(), row.y);
            assert_eq!(batch.lens[k], row.len);
        }
        // Cutting at the longest real row drops only padding.
        let m = batch.max_len();
        assert_eq!(m, *batch.lens.iter().max().unwrap());
        assert_eq!(batch.x_trimmed().shape(), &[rows.len(), m]);
        assert!(batch
            .y
            .columns()
            .into_iter()
            .skip(m)
            .all(|c| c.iter().all(|&t| t == PAD)));
        assert_eq!(
            batch.num_targets(),
            batch.y.iter().filter(|&&t| t != PAD).count()
        );
    }
    assert!(seen.iter().all(|&s| s));
    assert_ne!(order, (0..n).collect::<Vec<_>>());

    // Same seed same order; another seed another order; one rng gives different epochs.
    assert_eq!(d.batches_seeded(32, 5).unwrap().order(), order.as_slice());
    assert_ne!(d.batches_seeded(32, 6).unwrap().order(), order.as_slice());
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let e1 = d.batches(32, &mut rng).unwrap().order().to_vec();
    let e2 = d.batches(32, &mut rng).unwrap().order().to_vec();
    assert_eq!(e1, order);
    assert_ne!(e1, e2);

    let in_order: Vec<usize> = d.batches_in_order(100).unwrap().order().to_vec();
    assert_eq!(in_order, (0..n).collect::<Vec<_>>());
    assert!(matches!(
        d.batches_seeded(0, 1),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn bad_pair_files_are_clear_errors() {
    let dir = temp_dir("data-bad");
    let invalid = |name: &str, body: &str, key: &str| {
        let p = write(&dir, name, body);
        match load_pairs(&p) {
            Err(Error::InvalidFile {
                path,
                key: k,
                reason,
            }) => {
                assert_eq!(path, p);
                assert_eq!(k, key, "{reason}");
            }
            other => panic!("{name}: expected InvalidFile({key}), got {other:?}"),
        }
    };
    invalid("empty_file.json", "", "(root)");
    invalid("blank_file.json", " \n ", "(root)");
    invalid("empty_array.json", "[]", "(root)");
    invalid("object.json", r#"{"a": "b"}"#, "(root)");
    invalid("one_string.json", r#"[["a", "b"], ["c"]]"#, "item 1");
    invalid("three.json", r#"[["a", "b", "c"]]"#, "item 0");
    invalid(
        "number.json",
        r#"[["a", "b"], ["c", "d"], ["e", 5]]"#,
        "item 2",
    );
    invalid("not_array_item.json", r#"[["a", "b"], "cd"]"#, "item 1");
    let p = write(&dir, "broken.json", r#"[["a", "b"], ["c", "d"]"#);
    match load_pairs(&p) {
        Err(e @ Error::Json { .. }) => assert!(e.to_string().contains("broken.json")),
        other => panic!("expected Json, got {other:?}"),
    }
    let p = dir.join("missing.json");
    assert!(matches!(load_pairs(&p), Err(Error::Io { .. })));
    let p = write(&dir, "ok.json", r#"[["Ruby is red.", "he is."]]"#);
    assert_eq!(
        load_pairs(&p).unwrap(),
        [("Ruby is red.".to_string(), "he is.".to_string())]
    );
}

//! Every invariant of the corpus fixtures (issue 2), and that the word vectors behave like
//! pretrained ones.

mod common;

use std::collections::HashSet;

use common::{all_pairs, fixture, vocab};
use succulm::nn::generate::{seed_prompts_in_training, seed_prompts_out_of_training};
use succulm::text::embeddings::nearest;
use succulm::text::probes::{load_probes, Probe, ProbeGroup};
use succulm::text::vocab::{load_hidden_words, NUM_SPECIAL, UNK};
use succulm::{load_pairs, tokenize};

fn pair_tokens(a: &str, b: &str) -> Vec<String> {
    tokenize(&format!("{a} {b}"))
}

fn contains_run(hay: &[String], needle: &[String]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn probes() -> Vec<Probe> {
    load_probes(fixture("succulm_probes.json")).unwrap()
}

#[test]
fn sizes_and_vocabulary() {
    let normal = load_pairs(fixture("succulm_normal_sentence_pairs.json")).unwrap();
    let qa = load_pairs(fixture("succulm_question_answer_pairs.json")).unwrap();
    assert!(normal.len() >= 600, "{}", normal.len());
    assert!(qa.len() >= 400, "{}", qa.len());
    let v = vocab();
    assert!((150..=160).contains(&v.len()), "{}", v.len());
    assert_eq!(v.embeddings().unwrap().ncols(), 50);
    let hidden = load_hidden_words(fixture("succulm_hidden_words.json")).unwrap();
    assert!(hidden.iter().any(|w| w == "sophia"));
    assert_eq!(v.hidden_words().len(), hidden.len());
}

#[test]
fn every_word_known_no_hidden_word_and_every_pair_fits() {
    let v = vocab();
    for (a, b) in all_pairs() {
        let toks = pair_tokens(&a, &b);
        for t in &toks {
            let id = v
                .get(t)
                .unwrap_or_else(|| panic!("{t:?} of {a:?} / {b:?} is unknown"));
            assert_ne!(id, UNK);
            assert!(!v.is_hidden(id), "hidden word {t:?} in {a:?} / {b:?}");
            assert!(id as usize >= NUM_SPECIAL, "special token in {a:?} / {b:?}");
        }
        // BOS + tokens + EOS fits max_len 29: nothing is ever cut.
        assert!(
            toks.len() + 2 <= 29,
            "{a:?} / {b:?} is {} tokens",
            toks.len()
        );
        assert!(!a.trim().is_empty() && !b.trim().is_empty());
    }
}

#[test]
fn every_ordinary_word_is_used_and_pairs_are_distinct() {
    let v = vocab();
    let pairs = all_pairs();
    let used: HashSet<String> = pairs.iter().flat_map(|(a, b)| pair_tokens(a, b)).collect();
    for (id, w) in v.words().iter().enumerate().skip(NUM_SPECIAL) {
        if !v.is_hidden(id as u32) {
            assert!(used.contains(w), "{w:?} has a vector but is never used");
        }
    }
    let distinct: HashSet<&(String, String)> = pairs.iter().collect();
    assert_eq!(distinct.len(), pairs.len(), "repeated pairs");
}

#[test]
fn the_corpus_is_varied() {
    for (file, min_first, min_s1) in [
        ("succulm_normal_sentence_pairs.json", 20, 80),
        ("succulm_question_answer_pairs.json", 25, 150),
    ] {
        let pairs = load_pairs(fixture(file)).unwrap();
        let s1: HashSet<&str> = pairs.iter().map(|p| p.0.as_str()).collect();
        let starts: HashSet<String> = pairs
            .iter()
            .map(|p| {
                tokenize(&p.0)
                    .into_iter()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert!(
            s1.len() >= min_s1,
            "{file}: {} distinct first sentences",
            s1.len()
        );
        assert!(
            starts.len() >= min_first,
            "{file}: {} distinct openings",
            starts.len()
        );
    }
}

#[test]
fn seed_prompts_in_and_out_of_training() {
    let normal = load_pairs(fixture("succulm_normal_sentence_pairs.json")).unwrap();
    let qa = load_pairs(fixture("succulm_question_answer_pairs.json")).unwrap();
    for (q, a) in seed_prompts_in_training() {
        let pair = (q.to_string(), a.to_string());
        let file = if q.ends_with('?') { &qa } else { &normal };
        assert!(file.contains(&pair), "{q:?} -> {a:?} missing");
    }
    let streams: Vec<Vec<String>> = all_pairs().iter().map(|(a, b)| pair_tokens(a, b)).collect();
    for q in seed_prompts_out_of_training() {
        let t = tokenize(q);
        for (i, s) in streams.iter().enumerate() {
            assert!(!contains_run(s, &t), "{q:?} occurs in training pair {i}");
        }
    }
}

#[test]
fn probes_file_has_the_seed_prompts_and_checkable_facts() {
    let probes = probes();
    let seed_in: Vec<&Probe> = probes
        .iter()
        .filter(|p| p.group == ProbeGroup::SeedInTraining)
        .collect();
    let seed_out: Vec<&Probe> = probes
        .iter()
        .filter(|p| p.group == ProbeGroup::SeedOutOfTraining)
        .collect();
    let facts: Vec<&Probe> = probes
        .iter()
        .filter(|p| p.group == ProbeGroup::Fact)
        .collect();
    assert_eq!(
        seed_in
            .iter()
            .map(|p| (p.prompt.as_str(), p.expected_answer.as_deref().unwrap()))
            .collect::<Vec<_>>(),
        seed_prompts_in_training()
    );
    assert_eq!(
        seed_out
            .iter()
            .map(|p| p.prompt.as_str())
            .collect::<Vec<_>>(),
        seed_prompts_out_of_training()
    );
    assert!(facts.len() >= 20, "{} fact probes", facts.len());

    // The seed's gender probes carry the right expectation.
    for p in &seed_out[5..] {
        let want = if (p.prompt.contains("ruby") && p.prompt.contains("boy"))
            || (p.prompt.contains("winy") && p.prompt.contains("girl"))
        {
            "yes"
        } else {
            "no"
        };
        assert_eq!(p.expect_first_word.as_deref(), Some(want), "{}", p.prompt);
    }
    // Both answers occur among the yes/no probes, and both pronouns among the pronoun probes.
    let firsts: HashSet<&str> = facts
        .iter()
        .filter_map(|p| p.expect_first_word.as_deref())
        .collect();
    for w in ["yes", "no", "he", "she", "ruby", "winy"] {
        assert!(firsts.contains(w), "no fact probe expects {w:?}");
    }
    // Every probe word (prompt, first words, required words) is in the vocabulary.
    let v = vocab();
    for p in &probes {
        let mut words = tokenize(&p.prompt);
        words.extend(p.expect_first_word.clone());
        words.extend(p.contrast_first_word.clone());
        words.extend(p.expect_words.clone());
        if let Some(a) = &p.expected_answer {
            words.extend(tokenize(a));
        }
        for w in words {
            assert!(v.get(&w).is_some(), "{}: {w:?} not in the vocabulary", p.id);
        }
    }
    // A seed in-training probe's own expected answer passes its check; a gender probe's
    // contrast fails it.
    for p in &probes {
        if let Some(a) = &p.expected_answer {
            assert_eq!(p.check(a), Some(true));
        }
        if let (Some(good), Some(bad)) = (&p.expect_first_word, &p.contrast_first_word) {
            let tail = p.expect_words.join(" ");
            assert_eq!(p.check(&format!("{good} {tail} .")), Some(true), "{}", p.id);
            assert_eq!(p.check(&format!("{bad} {tail} .")), Some(false), "{}", p.id);
        }
    }
}

#[test]
fn no_probe_is_in_the_training_data() {
    let streams: Vec<Vec<String>> = all_pairs().iter().map(|(a, b)| pair_tokens(a, b)).collect();
    let firsts: HashSet<String> = all_pairs().into_iter().map(|p| p.0).collect();
    for p in probes()
        .iter()
        .filter(|p| p.group != ProbeGroup::SeedInTraining)
    {
        assert!(
            !firsts.contains(&p.prompt),
            "{:?} is a training prompt",
            p.prompt
        );
        let t = tokenize(&p.prompt);
        assert!(
            !streams.iter().any(|s| contains_run(s, &t)),
            "{:?} occurs inside a training pair",
            p.prompt
        );
    }
}

/// The facts of world.md hold in every sentence.
#[test]
fn the_world_is_consistent() {
    let run = |s: &str| tokenize(s);
    let wrong = [
        run("ruby is a girl"),
        run("winy is a boy"),
        run("he is a girl"),
        run("she is a boy"),
        run("ruby is green"),
        run("winy is red"),
        run("ruby blooms"),
        run("ruby sometimes blooms"),
        run("winy turns red"),
    ];
    let pairs = all_pairs();
    for (a, b) in &pairs {
        let t = pair_tokens(a, b);
        for w in &wrong {
            assert!(!contains_run(&t, w), "{a:?} / {b:?} says {w:?}");
        }
    }
    // Pronouns agree: a statement about ruby alone is followed by "he", about winy by "she".
    let normal = load_pairs(fixture("succulm_normal_sentence_pairs.json")).unwrap();
    let mut checked = 0;
    for (a, b) in &normal {
        let t1 = tokenize(a);
        let t2 = tokenize(b);
        let about = |name: &str, other: &str| {
            t1.contains(&name.to_string()) && !t1.contains(&other.to_string())
        };
        let want = if about("ruby", "winy") {
            "he"
        } else if about("winy", "ruby") {
            "she"
        } else {
            continue;
        };
        if ["he", "she"].contains(&t2[0].as_str()) {
            assert_eq!(t2[0], want, "{a:?} / {b:?}");
            checked += 1;
        }
    }
    assert!(checked >= 200, "only {checked} pronoun continuations");
    // Answers to third-person gender questions agree with the facts.
    let qa = load_pairs(fixture("succulm_question_answer_pairs.json")).unwrap();
    let mut gender = 0;
    for (q, a) in &qa {
        let t = tokenize(q);
        let Some(i) = t.iter().position(|w| w == "is") else {
            continue;
        };
        if t.len() < i + 4 || t[i + 2] != "a" || !["boy", "girl"].contains(&t[i + 3].as_str()) {
            continue;
        }
        if t.contains(&"or".to_string()) {
            continue;
        }
        let truth = (t[i + 1] == "ruby") == (t[i + 3] == "boy");
        let ans = tokenize(a);
        assert_eq!(ans[0], if truth { "yes" } else { "no" }, "{q:?} -> {a:?}");
        gender += 1;
    }
    assert!(gender >= 40, "only {gender} gender questions");
}

#[test]
fn word_vectors_behave_like_pretrained_ones() {
    let v = vocab();
    let emb = v.embeddings().unwrap().view();
    let rank = |a: &str, b: &str| {
        nearest(emb, v.id(a) as usize)
            .unwrap()
            .iter()
            .position(|&(r, _)| r == v.id(b) as usize)
            .unwrap()
    };
    // The hidden word sits with the character names.
    assert!(rank("sophia", "ruby") < 3 && rank("sophia", "winy") < 3);
    assert!(rank("ruby", "sophia") < 3 && rank("winy", "sophia") < 3);
    assert!(rank("ruby", "winy") < 3);
    // Words of one kind are each other's close neighbours.
    for (a, b) in [
        ("he", "she"),
        ("boy", "girl"),
        ("yes", "no"),
        ("white", "flowers"),
        ("sleeps", "lives"),
        ("aloe", "succulent"),
    ] {
        assert!(
            rank(a, b) < 3,
            "{b} is neighbour #{} of {a}",
            rank(a, b) + 1
        );
    }
    // And far closer than two words picked without a relation.
    let cos = |a: &str, b: &str| {
        succulm::text::embeddings::cosine_f32(emb.row(v.id(a) as usize), emb.row(v.id(b) as usize))
    };
    let related = (cos("he", "she") + cos("boy", "girl") + cos("ruby", "winy")) / 3.0;
    let mut sum = 0.0;
    let mut n = 0;
    for i in 0..v.len() {
        for j in 0..i {
            sum += succulm::text::embeddings::cosine_f32(emb.row(i), emb.row(j)).abs();
            n += 1;
        }
    }
    let typical = sum / n as f64;
    assert!(
        related > 0.7 && typical < 0.3,
        "related {related}, typical |cos| {typical}"
    );
    // No vector is zero, and norms are of one order.
    let norms: Vec<f32> = emb.rows().into_iter().map(|r| r.dot(&r).sqrt()).collect();
    assert!(norms.iter().all(|&n| (0.5..20.0).contains(&n)), "{norms:?}");
}

#[test]
fn background_text_mentions_the_hidden_words_near_the_names() {
    let text = std::fs::read_to_string(fixture("background.txt")).unwrap();
    for h in load_hidden_words(fixture("succulm_hidden_words.json")).unwrap() {
        let lines = text.lines().filter(|l| tokenize(l).contains(&h)).count();
        assert!(lines >= 50, "{h} on only {lines} lines");
    }
    let near = text
        .lines()
        .map(tokenize)
        .filter(|t| {
            t.contains(&"sophia".to_string())
                && (t.contains(&"ruby".to_string()) || t.contains(&"winy".to_string()))
        })
        .count();
    assert!(near >= 50, "sophia next to a name on {near} lines");
}

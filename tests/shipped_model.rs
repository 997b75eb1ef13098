//! The shipped checkpoint `fixtures/succulm_upper_middle.json` (made by the `train` example with
//! a fixed seed) has learned the corpus: greedy decoding — written here directly on top of
//! `Model::forward`, independently of `succulm::nn::generate` — gives the seed's expected answers.

use ndarray::Array2;
use succulm::text::probes::{load_probes, ProbeGroup};
use succulm::text::vocab::{BOS, EOS};
use succulm::{Model, Vocab};

fn fixture(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Greedy decoding with a full forward per token (the seed's loop at temperature → 0).
fn greedy(model: &Model, vocab: &Vocab, prompt: &str) -> String {
    let mut ids = vec![BOS];
    ids.extend(vocab.encode(prompt));
    let n_prompt = ids.len();
    while ids.len() < model.config().max_len {
        let x = Array2::from_shape_vec((1, ids.len()), ids.clone()).unwrap();
        let logits = model.forward(x.view()).unwrap();
        let last = logits.slice(ndarray::s![0, ids.len() - 1, ..]);
        let next = last
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 {
                    (i, v)
                } else {
                    best
                }
            })
            .0 as u32;
        if next == EOS {
            break;
        }
        ids.push(next);
    }
    vocab.decode(&ids[n_prompt..])
}

#[test]
fn greedy_answers_to_the_seeds_in_training_prompts() {
    let (model, vocab) = Model::load(fixture("succulm_upper_middle.json")).unwrap();
    let probes = load_probes(fixture("succulm_probes.json")).unwrap();
    let seed_in: Vec<_> = probes
        .iter()
        .filter(|p| p.group == ProbeGroup::SeedInTraining)
        .collect();
    assert_eq!(seed_in.len(), 5);
    let mut right = 0;
    for p in &seed_in {
        let answer = greedy(&model, &vocab, &p.prompt);
        let expected = p.expected_answer.as_deref().unwrap();
        eprintln!("{:?} -> {answer:?} (expected {expected:?})", p.prompt);
        right += usize::from(answer == expected);
    }
    assert_eq!(
        right, 5,
        "{right}/5 of the seed's prompts answered as expected"
    );
}

#[test]
fn the_checkpoint_knows_its_hidden_words() {
    let (_, vocab) = Model::load(fixture("succulm_upper_middle.json")).unwrap();
    assert!(vocab.hidden_words().iter().any(|w| w == "sophia"));
}

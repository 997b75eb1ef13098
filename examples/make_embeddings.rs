//! Regenerates `fixtures/succulm_embeddings.json`: one 50-d vector per vocabulary word, computed
//! with the crate's own linear algebra (see `succulm::text::embeddings`):
//!
//! 1. the vocabulary: the four specials, every token of the two pair files and the hidden words;
//! 2. co-occurrence counts (window 4, weight 1/distance) over `fixtures/background.txt`, each line
//!    read as `<BOS> tokens <EOS>` (so those two specials get vectors that mean something);
//! 3. PPMI with context smoothing α = 0.75, then a truncated SVD to 50 dimensions;
//! 4. rows without any count (`<PAD>`, `<UNK>`) get seeded Gaussian vectors; every vector is then
//!    scaled so that the mean norm is 5 (about that of GloVe 50-d vectors).
//!
//! ```text
//! cargo run --release --example make_corpus        # first, if the corpus changed
//! cargo run --release --example make_embeddings [-- --fixtures DIR --seed 7]
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use succulm::study::cli::{self, Flags};
use succulm::text::embeddings::{cooccurrence, ppmi, save_embeddings, svd_vectors};
use succulm::text::vocab::{load_hidden_words, BOS, EOS, SPECIAL_TOKENS};
use succulm::{load_pairs, tokenize, Result, Vocab};

const DIM: usize = 50;
const WINDOW: usize = 4;
const ALPHA: f64 = 0.75;
const MEAN_NORM: f64 = 5.0;

const HELP: &str = "\
make_embeddings: regenerate fixtures/succulm_embeddings.json from the corpus and background text.

Options:
  --fixtures DIR   where the corpus is read and the embeddings written (default: the shipped
                   fixtures/)
  --seed N         seed of the vectors of unseen words, 0..=2^64-1 (default 7)
  --help           this text";

fn parse(flags: &mut Flags) -> Result<(PathBuf, u64)> {
    let mut dir = PathBuf::from(cli::SHIPPED_FIXTURES);
    let mut seed = 7u64;
    while let Some(flag) = flags.next_flag() {
        match flag.as_str() {
            "--fixtures" => dir = flags.value("--fixtures")?.into(),
            "--seed" => seed = cli::int("--seed", &flags.value("--seed")?, 0..=u64::MAX)?,
            other => return Err(cli::unknown(other)),
        }
    }
    cli::check_output_file("--fixtures", &dir.join("succulm_embeddings.json"))?;
    Ok((dir, seed))
}

fn main() -> ExitCode {
    cli::main(HELP, parse, |(dir, seed)| run(&dir, seed))
}

fn run(dir: &Path, seed: u64) -> Result<()> {
    // 1. The vocabulary.
    let mut words: BTreeSet<String> = BTreeSet::new();
    for file in [
        "succulm_normal_sentence_pairs.json",
        "succulm_question_answer_pairs.json",
    ] {
        for (a, b) in load_pairs(dir.join(file))? {
            words.extend(tokenize(&format!("{a} {b}")));
        }
    }
    let hidden = load_hidden_words(dir.join("succulm_hidden_words.json"))?;
    words.extend(hidden.iter().cloned());
    let mut all: Vec<String> = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
    all.extend(
        words
            .into_iter()
            .filter(|w| !SPECIAL_TOKENS.contains(&w.as_str())),
    );
    let vocab = Vocab::from_words(all)?.with_hidden_words(&hidden)?;

    // 2. Co-occurrence over the background text.
    let background_path = dir.join("background.txt");
    let text = std::fs::read_to_string(&background_path).map_err(|source| succulm::Error::Io {
        path: background_path.clone(),
        source,
    })?;
    let mut unknown = 0usize;
    let sentences: Vec<Vec<u32>> = text
        .lines()
        .map(|line| {
            let mut ids = vec![BOS];
            for t in tokenize(line) {
                match vocab.get(&t) {
                    Some(id) => ids.push(id),
                    None => unknown += 1,
                }
            }
            ids.push(EOS);
            ids
        })
        .collect();
    let counts = cooccurrence(&sentences, vocab.len(), WINDOW)?;
    if counts.iter().all(|&c| c == 0.0) {
        return Err(succulm::Error::invalid_file(
            &background_path,
            "(text)",
            format!(
                "no two vocabulary words co-occur in its {} lines: it is empty or shares no words \
                 with the corpus (regenerate it with make_corpus)",
                text.lines().count()
            ),
        ));
    }

    // 3. PPMI and SVD.
    let vectors = svd_vectors(ppmi(counts.view(), ALPHA).view(), DIM)?;

    // 4. Vectors for rows never seen, and a common scale.
    let mut vectors: Array2<f64> = vectors;
    let unseen: Vec<bool> = counts.sum_axis(Axis(1)).iter().map(|&c| c == 0.0).collect();
    let seen_norms: Vec<f64> = vectors
        .axis_iter(Axis(0))
        .zip(&unseen)
        .filter(|(_, &u)| !u)
        .map(|(r, _)| r.dot(&r).sqrt())
        .collect();
    let seen_mean = seen_norms.iter().sum::<f64>() / seen_norms.len().max(1) as f64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for (i, &u) in unseen.iter().enumerate() {
        if u {
            let mut row = vectors.row_mut(i);
            row.iter_mut()
                .for_each(|x| *x = StandardNormal.sample(&mut rng));
            let rn = row.dot(&row).sqrt();
            row.mapv_inplace(|x| x * seen_mean / rn);
        }
    }
    let mean_norm = vectors
        .axis_iter(Axis(0))
        .map(|r| r.dot(&r).sqrt())
        .sum::<f64>()
        / vectors.nrows() as f64;
    let out = vectors.mapv(|x| (x * MEAN_NORM / mean_norm) as f32);

    let path = dir.join("succulm_embeddings.json");
    save_embeddings(&path, vocab.words(), out.view())?;
    eprintln!(
        "make_embeddings: {} words × {DIM} → {} ({} background lines, {unknown} unknown tokens skipped)",
        vocab.len(),
        path.display(),
        sentences.len()
    );
    Ok(())
}

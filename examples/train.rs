//! Train a named profile on the fixtures, print per-epoch losses and throughput, save a
//! checkpoint.
//!
//! ```text
//! cargo run --release --example train -- --profile upper_middle --epochs 60 --batch-size 32 \
//!     --lr 1e-3 --seed 42 --out fixtures/succulm_upper_middle.json [--threads 2] [--clip 1.0]
//! ```
//!
//! (Data loading here is minimal and will move to `succulm::data`.)

use std::path::PathBuf;

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use succulm::model::Model;
use succulm::train::{Rows, TrainConfig, Trainer};
use succulm::vocab::{BOS, EOS, PAD};
use succulm::{Error, Vocab};

const MAX_LEN: usize = 29;

struct Args {
    profile: String,
    train: TrainConfig,
    out: PathBuf,
    fixtures: PathBuf,
}

fn parse() -> Result<Args, Error> {
    let mut a = Args {
        profile: "upper_middle".into(),
        train: TrainConfig::default(),
        out: "succulm_checkpoint.json".into(),
        fixtures: "fixtures".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| Error::invalid_arg(flag.clone(), "needs a value"))
        };
        let num = |v: String, name: &str| {
            v.parse::<f64>()
                .map_err(|_| Error::invalid_arg(name.to_string(), format!("{v:?} is not a number")))
        };
        match flag.as_str() {
            "--profile" => a.profile = val()?,
            "--epochs" => a.train.epochs = num(val()?, "--epochs")? as usize,
            "--batch-size" => a.train.batch_size = num(val()?, "--batch-size")? as usize,
            "--lr" => a.train.lr = num(val()?, "--lr")? as f32,
            "--seed" => a.train.seed = num(val()?, "--seed")? as u64,
            "--clip" => a.train.clip = Some(num(val()?, "--clip")? as f32),
            "--threads" => a.train.threads = num(val()?, "--threads")? as usize,
            "--out" => a.out = val()?.into(),
            "--fixtures" => a.fixtures = val()?.into(),
            other => return Err(Error::invalid_arg(other, "unknown flag")),
        }
    }
    Ok(a)
}

fn read_pairs(path: &std::path::Path) -> Result<Vec<(String, String)>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// The seed's `SentencePairDataset`: `[BOS] + tokens(s1 + " " + s2) + [EOS]`, shifted, padded.
fn encode(pairs: &[(String, String)], vocab: &Vocab) -> Rows {
    let mut x = Array2::from_elem((pairs.len(), MAX_LEN), PAD);
    let mut y = Array2::from_elem((pairs.len(), MAX_LEN), PAD);
    for (r, (s1, s2)) in pairs.iter().enumerate() {
        let mut ids = vec![BOS];
        ids.extend(vocab.encode(&format!("{s1} {s2}")));
        ids.push(EOS);
        for k in 0..(ids.len() - 1).min(MAX_LEN) {
            x[[r, k]] = ids[k];
            y[[r, k]] = ids[k + 1];
        }
    }
    Rows::new(x, y).expect("same shapes")
}

fn main() -> Result<(), Error> {
    let args = parse()?;
    succulm::blas::set_num_threads(1);
    let vocab = Vocab::load(args.fixtures.join("succulm_embeddings.json"))?;
    let mut pairs = read_pairs(&args.fixtures.join("succulm_normal_sentence_pairs.json"))?;
    pairs.extend(read_pairs(
        &args.fixtures.join("succulm_question_answer_pairs.json"),
    )?);
    // Seeded 10% validation split.
    pairs.shuffle(&mut StdRng::seed_from_u64(args.train.seed));
    let n_valid = pairs.len() / 10;
    let valid = encode(&pairs[..n_valid], &vocab);
    let train = encode(&pairs[n_valid..], &vocab);

    let mut model = Model::from_profile(&args.profile, &vocab, args.train.seed)?;
    println!(
        "profile {} ({} parameters), {} training / {} validation rows",
        args.profile,
        succulm::Parameters::num_params(&model),
        train.len(),
        valid.len()
    );
    let mut trainer = Trainer::new(args.train.clone())?;
    trainer.fit(&mut model, &train, &valid, |r| {
        println!(
            "epoch {:3}  train {:.4}  valid {}  {:.0} tokens/s",
            r.epoch,
            r.train_loss,
            r.val_loss.map_or("-".into(), |v| format!("{v:.4}")),
            r.tokens_per_second()
        );
    })?;
    model.save(&args.out, &vocab)?;
    println!("saved {}", args.out.display());
    Ok(())
}

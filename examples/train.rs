//! Train a named profile on the fixtures, print per-epoch losses and throughput, save a
//! checkpoint.
//!
//! ```text
//! cargo run --release --example train -- --profile upper_middle --epochs 60 --batch-size 32 \
//!     --lr 1e-3 --seed 42 --out fixtures/succulm_upper_middle.json [--threads 2] [--clip 1.0]
//! ```
//!
//! The split is the crate's standard one (`succulm::data::standard_split`): 10% validation,
//! with the seed's five in-training prompts (from `fixtures/succulm_probes.json`) kept in
//! training.

use std::path::PathBuf;

use succulm::data::{load_corpus, standard_split};
use succulm::model::Model;
use succulm::probes::{load_probes, ProbeGroup};
use succulm::train::{TrainConfig, Trainer};
use succulm::{Error, Vocab};

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

fn main() -> Result<(), Error> {
    let args = parse()?;
    succulm::blas::set_num_threads(1);
    let vocab = Vocab::load_with_hidden(
        args.fixtures.join("succulm_embeddings.json"),
        args.fixtures.join("succulm_hidden_words.json"),
    )?;
    let pairs = load_corpus(&args.fixtures)?;
    let pinned: Vec<String> = load_probes(args.fixtures.join("succulm_probes.json"))?
        .into_iter()
        .filter(|p| p.group == ProbeGroup::SeedInTraining)
        .map(|p| p.prompt)
        .collect();
    let max_len = succulm::ModelConfig::profile(&args.profile, vocab.len())?.max_len;
    let (train, valid) = standard_split(&vocab, &pairs, &pinned, max_len)?;

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

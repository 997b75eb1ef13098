//! Train a named profile on the fixtures, print per-epoch losses and throughput, save a
//! checkpoint.
//!
//! ```text
//! cargo run --release --example train -- --profile upper_middle --epochs 60 --batch-size 32 \
//!     --lr 1e-3 --seed 42 --out fixtures/succulm_upper_middle.json [--threads 2] [--clip 1.0]
//! ```
//!
//! The split is the crate's standard one (`succulm::text::data::standard_split`): 10% validation,
//! with the seed's five in-training prompts (from `fixtures/succulm_probes.json`) kept in
//! training.

use std::path::PathBuf;
use std::process::ExitCode;

use succulm::nn::model::Model;
use succulm::nn::train::{TrainConfig, Trainer};
use succulm::study::cli::{self, Flags};
use succulm::text::data::{load_corpus, standard_split};
use succulm::text::probes::{load_probes, ProbeGroup};
use succulm::{Result, Vocab};

const HELP: &str = "\
train: train a SuccuLM profile on the fixtures and save a checkpoint.

Options:
  --profile NAME      tiny, small, middle, upper_middle (default) or large
  --epochs N          epochs, 1..=1000000 (default 60)
  --batch-size N      rows per batch, 1..=1000000 (default 32)
  --lr F              Adam learning rate, finite and > 0 (default 1e-3)
  --seed N            seed of the initialisation and the shuffles (default 42)
  --clip F            clip the gradient's global norm to F (> 0; default: no clipping)
  --threads N         threads sharing each batch, 1..=1024 (default 2; results are identical
                      for any count >= 2, and differ from 1 thread by float rounding)
  --out PATH          checkpoint to write (default succulm_checkpoint.json); checked first
  --fixtures DIR      corpus, probes, vocabulary (default: ./fixtures if it holds them, else
                      the shipped fixtures, from any working directory)
  --help              this text";

struct Args {
    profile: String,
    train: TrainConfig,
    out: PathBuf,
    fixtures: PathBuf,
}

fn parse(flags: &mut Flags) -> Result<Args> {
    let mut a = Args {
        profile: "upper_middle".into(),
        train: TrainConfig::default(),
        out: "succulm_checkpoint.json".into(),
        fixtures: PathBuf::new(),
    };
    let mut fixtures: Option<PathBuf> = None;
    while let Some(flag) = flags.next_flag() {
        let f = flag.as_str();
        match f {
            "--profile" => a.profile = flags.value(f)?,
            "--epochs" => {
                a.train.epochs = cli::int(f, &flags.value(f)?, 1..=TrainConfig::MAX_EPOCHS)?
            }
            "--batch-size" => {
                a.train.batch_size = cli::int(f, &flags.value(f)?, 1..=TrainConfig::MAX_BATCH_SIZE)?
            }
            "--lr" => a.train.lr = cli::positive_f32(f, &flags.value(f)?)?,
            "--seed" => a.train.seed = cli::int(f, &flags.value(f)?, 0..=u64::MAX)?,
            "--clip" => a.train.clip = Some(cli::positive_f32(f, &flags.value(f)?)?),
            "--threads" => {
                a.train.threads = cli::int(f, &flags.value(f)?, 1..=TrainConfig::MAX_THREADS)?
            }
            "--out" => a.out = flags.value(f)?.into(),
            "--fixtures" => fixtures = Some(flags.value(f)?.into()),
            _ => return Err(cli::unknown(f)),
        }
    }
    a.train.validate()?;
    cli::check_output_file("--out", &a.out)?;
    a.fixtures = cli::fixtures_dir(fixtures.as_deref())?;
    Ok(a)
}

fn run(args: Args) -> Result<()> {
    succulm::tt::blas::set_num_threads(1);
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

fn main() -> ExitCode {
    cli::main(HELP, parse, run)
}

//! The "sophia trap"'s conditions: hidden-word mass and sampled rate along one training run per
//! embedding treatment (trainable, frozen), dense and with each block compressed, and what
//! explains them (logit gap to the nearest neighbour, embedding drift).
//!
//! ```text
//! cargo run --release --example trap -- [--profile upper_middle] [--epochs 5,10,20,40,60]
//!     [--blocks 0,1,2,3] [--bonds 20,10] [--samples 10] [--seed 42] [--out target/trap]
//! ```
//! Progress to stderr; the table and the conclusion to stdout; `trap.json`, `trap.txt` and
//! `trap_mass.svg` to `--out`.
//!
//! The data (vocabulary, probes, split, hidden words) and the evaluator are the library's one
//! study setup (`succulm::study::setup::StudyData`); this file parses flags and prints.

use std::path::PathBuf;
use std::process::ExitCode;

use succulm::nn::generate::Sampling;
use succulm::nn::train::TrainConfig;
use succulm::study::cli::{self, Flags};
use succulm::study::eval::SampleConfig;
use succulm::study::setup::StudyData;
use succulm::study::trap::{self, Embeddings, TrapConfig};
use succulm::{Error, Result};

const HELP: &str = "\
trap: when does compression make the model say a hidden word?

Options:
  --profile NAME   profile trained (default upper_middle)
  --epochs LIST    checkpoint epochs along one run, each 1..=1000000 (default 5,10,20,40,60)
  --blocks LIST    blocks compressed, each alone (default every block)
  --bonds LIST     middle bonds (default 20,10)
  --samples N      sampled answers per probe, 1..=100000 (default 10)
  --seed N         training and sampling seed (default 42)
  --frozen-only / --trainable-only   one treatment only (one of the two)
  --fixtures DIR   (default: ./fixtures if it holds them, else the shipped fixtures)
  --out DIR        (default target/trap)
  --help           this text";

/// A comma-separated list of integers in `0..=max`.
fn list(name: &str, v: &str, max: usize) -> Result<Vec<usize>> {
    v.split(',').map(|s| cli::int(name, s, 0..=max)).collect()
}

fn run(flags: &mut Flags) -> Result<bool> {
    let mut profile = "upper_middle".to_string();
    let mut epochs = vec![5, 10, 20, 40, 60];
    let mut blocks: Option<Vec<usize>> = None;
    let mut bonds = vec![20, 10];
    let mut samples = 10usize;
    let mut seed = 42u64;
    let mut fixtures: Option<PathBuf> = None;
    let mut out = PathBuf::from("target/trap");
    let mut treatments = vec![Embeddings::Trainable, Embeddings::Frozen];
    let mut only: Option<String> = None;
    while let Some(flag) = flags.next_flag() {
        let mut value = |n: &str| flags.value(n);
        match flag.as_str() {
            "--profile" => profile = value("--profile")?,
            "--epochs" => epochs = list("--epochs", &value("--epochs")?, TrainConfig::MAX_EPOCHS)?,
            "--blocks" => blocks = Some(list("--blocks", &value("--blocks")?, usize::MAX)?),
            "--bonds" => bonds = list("--bonds", &value("--bonds")?, usize::MAX)?,
            "--samples" => {
                let max = SampleConfig::MAX_SAMPLES_PER_PROBE;
                samples = cli::int("--samples", &value("--samples")?, 1..=max)?;
            }
            "--seed" => seed = cli::int("--seed", &value("--seed")?, 0..=u64::MAX)?,
            "--frozen-only" | "--trainable-only" => {
                if only.is_some_and(|o| o != flag) {
                    return Err(Error::invalid_arg(
                        flag,
                        "--frozen-only and --trainable-only exclude each other (give neither to run both)",
                    ));
                }
                treatments = if flag == "--frozen-only" {
                    vec![Embeddings::Frozen]
                } else {
                    vec![Embeddings::Trainable]
                };
                only = Some(flag.clone());
            }
            "--fixtures" => fixtures = Some(value("--fixtures")?.into()),
            "--out" => out = value("--out")?.into(),
            other => return Err(cli::unknown(other)),
        }
    }
    let fixtures = cli::fixtures_dir(fixtures.as_deref())?;
    cli::check_output_dir("--out", &out)?;
    let data = StudyData::for_profile(&fixtures, &profile)?;
    let n_layers = succulm::ModelConfig::profile(&profile, data.vocab.len())?.n_layers;
    let config = TrapConfig {
        profile,
        epochs,
        treatments,
        blocks: blocks.unwrap_or_else(|| (0..n_layers).collect()),
        bonds,
        train: TrainConfig {
            seed,
            ..TrainConfig::default()
        },
        sample: SampleConfig {
            sampling: Sampling::Temperature(0.6),
            samples_per_probe: samples,
            seed,
        },
    };
    succulm::tt::blas::set_num_threads(1);
    let started = std::time::Instant::now();
    let study = trap::run_study(&data, &config, &|l: &str| {
        eprintln!("[{:.0} s] {l}", started.elapsed().as_secs_f64())
    })?;
    eprintln!("study took {:.0} s", started.elapsed().as_secs_f64());
    println!(
        "{}\n{}",
        trap::format_table(&study),
        trap::conclusion(&study)
    );
    let written = study.write(&out)?;
    eprintln!("wrote {} files to {}", written.len(), out.display());
    Ok(true)
}

fn main() -> ExitCode {
    // Flags are read by `run` (its errors, usage or not, exit 1).
    cli::main(
        HELP,
        |flags| Ok(std::mem::take(flags)),
        |mut flags| run(&mut flags).map(drop),
    )
}

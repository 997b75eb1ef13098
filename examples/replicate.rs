//! Replication: the seed's claims across N trained models.
//!
//! ```text
//! cargo run --release --example replicate -- [--models 5] [--profile upper_middle]
//!     [--epochs 60] [--seed 42] [--checkpoints a.json,b.json,...] [--blocks 0,1,2,3,all]
//!     [--bonds 50,47,...] [--samples 10] [--sample-seed 42] [--threads 2]
//!     [--out target/replicate] [--shard K/N]
//! cargo run --release --example replicate -- merge PART... [--out DIR]
//! ```
//! Trains N models of the profile with training seeds `seed, seed+1, …` (the shipped recipe
//! otherwise), or loads the N checkpoints given; sweeps each with the same grid and the same
//! sampling seeds (plain TT-SVD); prints each claim's verdict across the models (supported in k
//! of N, mean effect ± standard error, per-model effects) and writes `replication.{json,txt,md}`
//! and every model's sweep files (`DIR/model_I/`, with `report.html`). Progress (models trained,
//! cells done, ETA) goes to stderr. `--shard K/N` handles only the models `i` with
//! `i mod N = K-1` and writes `DIR/part_K_of_N.json`; `merge` aggregates the parts.
//!
//! The work is the library's (`succulm::study::replicate::run_shard`, each model swept through
//! the one study setup, `succulm::study::setup`); this file parses flags and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use succulm::nn::train::TrainConfig;
use succulm::study::cli::{self, Flags};
use succulm::study::eval::SampleConfig;
use succulm::study::replicate::{self, ReplicaReport, ReplicateOptions, Replication};
use succulm::study::shard::Shard;
use succulm::study::sweep;
use succulm::Result;

const HELP: &str = "\
replicate: the seed's claims across N trained models.

Options:
  --models N          models to train, 1..=10000 (default 5)
  --profile NAME      profile to train (default upper_middle)
  --epochs N          training epochs per model, 1..=1000000 (default 60, the recipe)
  --seed N            first training seed; model i uses seed + i (default 42)
  --checkpoints LIST  comma-separated checkpoints to sweep instead of training (each once)
  --fixtures DIR      corpus, probes, embeddings (default fixtures)
  --blocks LIST       block sets (default: each block, then all)
  --bonds LIST        middle bonds (default 50,47,42,39,33,27,20,15,10,5)
  --samples N         sampled answers per probe and cell, 1..=100000 (default 10)
  --temperature T     sampling temperature (default 0.6)
  --sample-seed N     the sampling seed, the same for every model (default 42)
  --threads N         models trained / cells scored in parallel, 1..=1024 (default 2)
  --out DIR           output directory (default target/replicate)
  --shard K/N         only models i with i mod N = K-1; writes DIR/part_K_of_N.json
  --help              this text

replicate merge PART... [--out DIR]
  aggregates the parts of a sharded run";

struct Args {
    options: ReplicateOptions,
    fixtures: PathBuf,
    out: PathBuf,
    shard: Option<Shard>,
}

/// The flags of [`ReplicateOptions`]' own fields, beside [`cli::SWEEP_FLAGS`].
const FLAGS: &[(&str, &str)] = &[
    ("models", "--models"),
    ("epochs", "--epochs"),
    ("seed", "--seed"),
    ("checkpoints", "--checkpoints"),
];

/// `result` with the library's option names as the flags that set them.
fn flagged<T>(result: Result<T>) -> Result<T> {
    cli::renamed(cli::renamed(result, cli::SWEEP_FLAGS), FLAGS)
}

fn parse_args(flags: &mut Flags) -> Result<Args> {
    let mut fixtures: Option<PathBuf> = None;
    let mut a = Args {
        options: ReplicateOptions::default(),
        fixtures: PathBuf::new(),
        out: "target/replicate".into(),
        shard: None,
    };
    let o = &mut a.options;
    while let Some(flag) = flags.next_flag() {
        let mut value = |name: &str| flags.value(name);
        let num = |name: &str, v: String| cli::int(name, &v, 0..=u64::MAX);
        let count = |name: &str, v: String, max: usize| cli::int(name, &v, 0..=max);
        match flag.as_str() {
            "--models" => {
                o.models = count("--models", value("--models")?, ReplicateOptions::MAX_MODELS)?
            }
            "--profile" => o.profile = value("--profile")?,
            "--epochs" => {
                o.epochs = count("--epochs", value("--epochs")?, TrainConfig::MAX_EPOCHS)?
            }
            "--seed" => o.seed = num("--seed", value("--seed")?)?,
            "--checkpoints" => {
                o.checkpoints = value("--checkpoints")?
                    .split(',')
                    .map(|s| PathBuf::from(s.trim()))
                    .collect()
            }
            "--fixtures" => fixtures = Some(value("--fixtures")?.into()),
            "--blocks" => o.sweep.blocks = Some(value("--blocks")?),
            "--bonds" => o.sweep.bonds = sweep::parse_bonds(&value("--bonds")?)?,
            "--samples" => {
                let max = SampleConfig::MAX_SAMPLES_PER_PROBE;
                o.sweep.samples = count("--samples", value("--samples")?, max)?
            }
            "--temperature" => {
                o.sweep.temperature = cli::positive_f32("--temperature", &value("--temperature")?)?
            }
            "--sample-seed" => o.sweep.seed = num("--sample-seed", value("--sample-seed")?)?,
            "--threads" => {
                o.sweep.threads = count("--threads", value("--threads")?, TrainConfig::MAX_THREADS)?
            }
            "--out" => a.out = value("--out")?.into(),
            "--shard" => a.shard = Some(Shard::parse(&value("--shard")?)?),
            other => return Err(cli::unknown(other)),
        }
    }
    flagged(o.validate())?;
    a.fixtures = cli::fixtures_dir(fixtures.as_deref())?;
    cli::check_output_dir("--out", &a.out)?;
    Ok(a)
}

fn run(a: Args) -> Result<()> {
    let shard = a.shard.unwrap_or(Shard::WHOLE);
    let progress = |line: &str| eprintln!("{line}");
    let part = flagged(replicate::run_shard(
        &a.fixtures,
        &a.options,
        shard,
        &a.out,
        &progress,
    ))?;
    if a.shard.is_some() {
        let path = a.out.join(shard.file_name());
        part.write(&path)?;
        eprintln!("wrote shard {shard} to {}", path.display());
        return Ok(());
    }
    finish(part.models, &a.out)
}

fn finish(reports: Vec<ReplicaReport>, out: &Path) -> Result<()> {
    let r = Replication::new(reports)?;
    println!(
        "== The seed's claims across {} models (effect: mean ± standard error across models) ==",
        r.models.len()
    );
    print!("{}", replicate::format_replicated(&r.verdicts));
    let written = r.write(out)?;
    eprintln!("wrote {} files to {}", written.len(), out.display());
    Ok(())
}

fn merge((paths, out): (Vec<PathBuf>, PathBuf)) -> Result<()> {
    finish(replicate::merge_replica_files(&paths)?, &out)
}

fn main() -> ExitCode {
    cli::main_or_merge(HELP, "target/replicate", parse_args, run, merge)
}

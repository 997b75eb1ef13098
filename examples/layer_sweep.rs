//! The seed's experiments, quantified: compress FFN blocks with tensor trains at a range of
//! middle bonds and measure what it does to the model.
//!
//! ```text
//! cargo run --release --example layer_sweep -- [--blocks 0,1,2,3,all] [--bonds 50,47,...]
//!     [--methods weight,whitened,scaled] [--calibration sequential|one_shot] [--budget 0.5]
//!     [--samples 20] [--seed 42] [--out target/layer_sweep] [--heal-epochs 0]
//!     [--heal ce|distill] [--checkpoint fixtures/succulm_upper_middle.json] [--no-experiments]
//!     [--shard K/N]
//! cargo run --release --example layer_sweep -- merge PART... [--out DIR]
//! ```
//! Progress goes to stderr; the grid's table, the seed's settings that the grid lacks
//! (loosening vs tightening, consecutive pairs: `sweep::SEED_SETTINGS`) and the verdict on each
//! of the seed's claims to stdout; every figure and chart (the verdicts as JSON, and
//! `report.html`, one page of it all) to `--out`. With `--shard K/N` only every N-th cell is
//! scored (and every N-th of the seed's settings and budget requests) and `DIR/part_K_of_N.json`
//! written; `merge` turns the N parts into the same files, byte for byte, as the unsharded run.
//!
//! The wiring (checkpoint, fixtures, split, evaluator, grid, settings, budget, output) is the
//! library's one study setup, `succulm::study::setup`; this file parses flags and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use succulm::compress::calibration::CalibrationMode;
use succulm::nn::train::TrainConfig;
use succulm::study::cli::{self, Flags};
use succulm::study::eval::SampleConfig;
use succulm::study::setup::{format_experiments, Study, SweepOptions, SweepOutput};
use succulm::study::shard::Shard;
use succulm::study::sweep::{self, HealKind};
use succulm::{Error, Result};

const HELP: &str = "\
layer_sweep: tensor-train compression of SuccuLM's FFN blocks, measured.

Options:
  --checkpoint PATH   trained model (default: the shipped fixtures/succulm_upper_middle.json)
  --fixtures DIR      corpus and probes (default: ./fixtures if it holds them, else the shipped
                      fixtures, from any working directory)
  --blocks LIST       block sets, comma-separated: indices, `a+b` pairs, `all`
                      (default: each block, then all)
  --bonds LIST        middle bonds (default 50,47,42,39,33,27,20,15,10,5)
  --samples N         sampled answers per probe and cell, 1..=100000 (default 20)
  --temperature T     sampling temperature (default 0.6, the seed's)
  --seed N            base seed of every random draw (default 42, the seed's)
  --out DIR           output directory (default target/layer_sweep)
  --threads N         cells scored in parallel, 1..=1024 (default 2)
  --heal-epochs N     fine-tune the TT cores for N epochs after compression, 0..=100000
                      (default 0: off)
  --heal KIND         what healing minimises: ce (the corpus' cross-entropy, default) or
                      distill (KL from the dense model's distributions on the training rows);
                      needs --heal-epochs
  --methods LIST      truncation methods, comma-separated (default weight): weight (plain
                      TT-SVD), whitened (minimises the output error on the training rows'
                      activations), scaled (ASVD's activation scaling); weight, when listed,
                      is the baseline of the comparison and of the seed's claims
  --calibration MODE  how the data-aware methods calibrate several projections: sequential
                      (default: each on the model with the earlier ones compressed) or one_shot
                      (all on the dense model)
  --budget F          also spend F (0 < F <= 1) of each block set's FFN parameters twice per
                      method: uniform bonds vs bonds allocated per projection
  --no-experiments    skip the seed's experiments (the printed answers)
  --shard K/N         score only shard K of N (the cells, seed settings and budget requests
                      i with i mod N = K-1) and write DIR/part_K_of_N.json; the seed's
                      experiments run in shard 1 only
  --help              this text

layer_sweep merge PART... [--out DIR]
  merges the parts of one sharded run into the unsharded run's files";

struct Args {
    checkpoint: PathBuf,
    fixtures: PathBuf,
    out: PathBuf,
    options: SweepOptions,
    experiments: bool,
    shard: Option<Shard>,
}

fn parse_args(flags: &mut Flags) -> Result<Args> {
    let (mut checkpoint, mut fixtures): (Option<PathBuf>, Option<PathBuf>) = (None, None);
    let mut a = Args {
        checkpoint: PathBuf::new(),
        fixtures: PathBuf::new(),
        out: "target/layer_sweep".into(),
        options: SweepOptions::default(),
        experiments: true,
        shard: None,
    };
    let o = &mut a.options;
    let mut heal_given = false;
    while let Some(flag) = flags.next_flag() {
        let mut value = |name: &str| flags.value(name);
        let num = |name: &str, v: String| cli::int(name, &v, 0..=u64::MAX);
        let count = |name: &str, v: String, max: usize| cli::int(name, &v, 0..=max);
        let mut heal_kind = |v: String| -> Result<HealKind> {
            heal_given = true;
            HealKind::parse(&v)
        };
        match flag.as_str() {
            "--checkpoint" => checkpoint = Some(value("--checkpoint")?.into()),
            "--fixtures" => fixtures = Some(value("--fixtures")?.into()),
            "--blocks" => o.blocks = Some(value("--blocks")?),
            "--bonds" => o.bonds = sweep::parse_bonds(&value("--bonds")?)?,
            "--samples" => {
                o.samples = count(
                    "--samples",
                    value("--samples")?,
                    SampleConfig::MAX_SAMPLES_PER_PROBE,
                )?
            }
            "--temperature" => {
                o.temperature = cli::positive_f32("--temperature", &value("--temperature")?)?
            }
            "--seed" => o.seed = num("--seed", value("--seed")?)?,
            "--out" => a.out = value("--out")?.into(),
            "--heal-epochs" => {
                o.heal_epochs = count(
                    "--heal-epochs",
                    value("--heal-epochs")?,
                    SweepOptions::MAX_HEAL_EPOCHS,
                )?
            }
            "--threads" => {
                o.threads = count("--threads", value("--threads")?, TrainConfig::MAX_THREADS)?
            }
            "--heal" => o.heal = heal_kind(value("--heal")?)?,
            "--methods" => o.methods = sweep::parse_methods(&value("--methods")?)?,
            "--calibration" => o.calibration = CalibrationMode::parse(&value("--calibration")?)?,
            "--budget" => o.budget = Some(cli::fraction("--budget", &value("--budget")?, 0.0)?),
            "--no-experiments" => a.experiments = false,
            "--shard" => a.shard = Some(Shard::parse(&value("--shard")?)?),
            other => return Err(cli::unknown(other)),
        }
    }
    if heal_given && o.heal_epochs == 0 {
        return Err(Error::invalid_arg(
            "--heal",
            "heals only with --heal-epochs N (N >= 1); without it nothing is healed",
        ));
    }
    cli::renamed(o.validate(), cli::SWEEP_FLAGS)?;
    a.checkpoint = cli::checkpoint_file(checkpoint.as_deref())?;
    a.fixtures = cli::fixtures_dir(fixtures.as_deref())?;
    cli::check_output_dir("--out", &a.out)?;
    Ok(a)
}

fn run(a: Args) -> Result<()> {
    eprintln!("loading {}", a.checkpoint.display());
    let study = Study::load(&a.checkpoint, &a.fixtures, a.options)?;
    let progress = |line: &str| eprintln!("{line}");
    let setup = study.setup(&progress)?;
    let shard = a.shard.unwrap_or(Shard::WHOLE);
    // The seed's printed experiments: in an unsharded run, or in shard 1.
    let experiments = if a.experiments && shard.is_first() {
        let e = setup.experiments()?;
        print!("{}", format_experiments(&e));
        Some(e)
    } else {
        None
    };
    let mut part = setup.sweep(shard, &progress)?;
    if a.shard.is_some() {
        SweepOutput::attach(&mut part, experiments.as_ref(), study.options())?;
        let path = a.out.join(shard.file_name());
        part.write(&path)?;
        eprintln!(
            "wrote shard {shard} ({} of {} cells, {} of {} settings) to {}",
            part.cell_indices.len(),
            part.cells_total,
            part.setting_indices.len(),
            part.settings_total,
            path.display()
        );
        return Ok(());
    }
    write(
        &SweepOutput::new(part.report, experiments, study.options()),
        &a.out,
    )
}

/// Prints the tables and verdicts; writes every file (and `report.html`) to `out`.
fn write(output: &SweepOutput, out: &Path) -> Result<()> {
    print!("{}", output.text());
    let written = output.write(out)?;
    eprintln!("wrote {} files to {}", written.len(), out.display());
    Ok(())
}

/// `layer_sweep merge PART... [--out DIR]`.
fn merge((paths, out): (Vec<PathBuf>, PathBuf)) -> Result<()> {
    let output = SweepOutput::merge_files(&paths)?;
    if let Some(e) = &output.experiments {
        println!(
            "== The seed's experiments (temperature {}, seed {}) ==",
            e.temperature, e.seed
        );
        println!("(see report.html)\n");
    }
    write(&output, &out)
}

fn main() -> ExitCode {
    cli::main_or_merge(HELP, "target/layer_sweep", parse_args, run, merge)
}

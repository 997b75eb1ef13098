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

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use succulm::nn::generate::Sampling;
use succulm::nn::train::TrainConfig;
use succulm::study::cli::{self, Flags};
use succulm::study::eval::{hidden_ids, load_probes, SampleConfig};
use succulm::study::replicate::{self, ReplicaPart, ReplicaReport, Replication, SweepPlan};
use succulm::study::shard::Shard;
use succulm::study::sweep::{self, DEFAULT_BONDS};
use succulm::text::data::{load_corpus, standard_split};
use succulm::text::probes::ProbeGroup;
use succulm::{Error, Model, Result, Vocab};

const HELP: &str = "\
replicate: the seed's claims across N trained models.

Options:
  --models N          models to train (default 5)
  --profile NAME      profile to train (default upper_middle)
  --epochs N          training epochs per model (default 60, the shipped recipe)
  --seed N            first training seed; model i uses seed + i (default 42)
  --checkpoints LIST  comma-separated checkpoints to sweep instead of training
  --fixtures DIR      corpus, probes, embeddings (default: ./fixtures if it holds them, else
                      the shipped fixtures, from any working directory)
  --blocks LIST       block sets (default: each block, then all)
  --bonds LIST        middle bonds (default 50,47,42,39,33,27,20,15,10,5)
  --samples N         sampled answers per probe and cell (default 10)
  --temperature T     sampling temperature (default 0.6)
  --sample-seed N     the sampling seed, the same for every model (default 42)
  --threads N         models trained / cells scored in parallel (default 2)
  --out DIR           output directory (default target/replicate)
  --shard K/N         only models i with i mod N = K-1; writes DIR/part_K_of_N.json
  --help              this text

replicate merge PART... [--out DIR]
  aggregates the parts of a sharded run";

struct Args {
    models: usize,
    profile: String,
    epochs: usize,
    seed: u64,
    checkpoints: Vec<PathBuf>,
    fixtures: PathBuf,
    blocks: Option<String>,
    bonds: Vec<usize>,
    samples: usize,
    temperature: f32,
    sample_seed: u64,
    threads: usize,
    out: PathBuf,
    shard: Option<Shard>,
}

fn parse_args(flags: &mut Flags) -> Result<Args> {
    let mut fixtures: Option<PathBuf> = None;
    let mut a = Args {
        models: 5,
        profile: "upper_middle".into(),
        epochs: 60,
        seed: 42,
        checkpoints: Vec::new(),
        fixtures: PathBuf::new(),
        blocks: None,
        bonds: DEFAULT_BONDS.to_vec(),
        samples: 10,
        temperature: 0.6,
        sample_seed: 42,
        threads: 2,
        out: "target/replicate".into(),
        shard: None,
    };
    while let Some(flag) = flags.next_flag() {
        let mut value = |name: &str| flags.value(name);
        let num = |name: &str, v: String| {
            v.parse::<u64>().map_err(|_| {
                Error::invalid_arg(name, format!("{v:?} is not a non-negative integer"))
            })
        };
        match flag.as_str() {
            "--models" => a.models = num("--models", value("--models")?)? as usize,
            "--profile" => a.profile = value("--profile")?,
            "--epochs" => a.epochs = num("--epochs", value("--epochs")?)? as usize,
            "--seed" => a.seed = num("--seed", value("--seed")?)?,
            "--checkpoints" => {
                a.checkpoints = value("--checkpoints")?
                    .split(',')
                    .map(|s| PathBuf::from(s.trim()))
                    .collect()
            }
            "--fixtures" => fixtures = Some(value("--fixtures")?.into()),
            "--blocks" => a.blocks = Some(value("--blocks")?),
            "--bonds" => a.bonds = sweep::parse_bonds(&value("--bonds")?)?,
            "--samples" => a.samples = num("--samples", value("--samples")?)? as usize,
            "--temperature" => {
                let v = value("--temperature")?;
                a.temperature = v.parse().map_err(|_| {
                    Error::invalid_arg("--temperature", format!("{v:?} is not a number"))
                })?;
            }
            "--sample-seed" => a.sample_seed = num("--sample-seed", value("--sample-seed")?)?,
            "--threads" => a.threads = num("--threads", value("--threads")?)? as usize,
            "--out" => a.out = value("--out")?.into(),
            "--shard" => a.shard = Some(Shard::parse(&value("--shard")?)?),
            other => return Err(cli::unknown(other)),
        }
    }
    if a.samples == 0 {
        return Err(Error::invalid_arg("--samples", "must be at least 1"));
    }
    if a.checkpoints.is_empty() && a.models == 0 {
        return Err(Error::invalid_arg("--models", "must be at least 1"));
    }
    if a.threads == 0 {
        return Err(Error::invalid_arg("--threads", "must be at least 1"));
    }
    Sampling::Temperature(a.temperature).validate()?;
    a.fixtures = cli::fixtures_dir(fixtures.as_deref())?;
    Ok(a)
}

fn eta(elapsed: f64, done: usize, total: usize) -> String {
    if done == 0 {
        return "?".into();
    }
    let left = elapsed / done as f64 * (total - done) as f64;
    format!("{}m{:02}s", (left / 60.0) as u64, (left % 60.0) as u64)
}

fn run(a: Args) -> Result<()> {
    succulm::tt::blas::set_num_threads(1);
    let started = Instant::now();
    let vocab = Vocab::load_with_hidden(
        a.fixtures.join("succulm_embeddings.json"),
        a.fixtures.join("succulm_hidden_words.json"),
    )?;
    let probes = load_probes(a.fixtures.join("succulm_probes.json"))?;
    let pinned: Vec<&str> = probes
        .iter()
        .filter(|p| p.group == ProbeGroup::SeedInTraining)
        .map(|p| p.prompt.as_str())
        .collect();
    let pairs = load_corpus(&a.fixtures)?;
    let total = if a.checkpoints.is_empty() {
        a.models
    } else {
        a.checkpoints.len()
    };
    let shard = a.shard.unwrap_or(Shard::WHOLE);
    let mine = shard.owned(total);

    // The models: loaded, or trained two at a time.
    let (models, labels): (Vec<Model>, Vec<String>) = if a.checkpoints.is_empty() {
        let max_len = succulm::ModelConfig::profile(&a.profile, vocab.len())?.max_len;
        let (train, valid) = standard_split(&vocab, &pairs, &pinned, max_len)?;
        let seeds: Vec<u64> = mine.iter().map(|&i| a.seed + i as u64).collect();
        let done = AtomicUsize::new(0);
        eprintln!(
            "training {} {} models ({} epochs, seeds {:?}), {} at a time",
            seeds.len(),
            a.profile,
            a.epochs,
            seeds,
            a.threads
        );
        let config = TrainConfig {
            epochs: a.epochs,
            ..TrainConfig::default()
        };
        let models = replicate::train_models(
            &a.profile,
            &vocab,
            (&train, &valid),
            &config,
            &seeds,
            a.threads,
            &|i, reports| {
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                let el = started.elapsed().as_secs_f64();
                eprintln!(
                    "models trained {d}/{}: seed {}, valid loss {} ({el:.0} s; training ETA {})",
                    seeds.len(),
                    seeds[i],
                    reports
                        .last()
                        .and_then(|r| r.val_loss)
                        .map_or("-".into(), |v| format!("{v:.4}")),
                    eta(el, d, seeds.len())
                );
            },
        )?;
        (models, seeds.iter().map(|s| format!("seed {s}")).collect())
    } else {
        let mut models = Vec::new();
        let mut labels = Vec::new();
        for &i in &mine {
            let p = &a.checkpoints[i];
            eprintln!("loading {}", p.display());
            let (m, v) = Model::load(p)?;
            if v.words() != vocab.words() {
                return Err(Error::invalid_arg(
                    p.display().to_string(),
                    "the checkpoint's vocabulary is not the fixtures'",
                ));
            }
            models.push(m);
            labels.push(p.display().to_string());
        }
        (models, labels)
    };

    // The same split for every sweep (the profile's max_len; checkpoints share it).
    let max_len = models
        .first()
        .map_or(succulm::nn::model::PROFILE_MAX_LEN, |m| m.config().max_len);
    let (train, valid) = standard_split(&vocab, &pairs, &pinned, max_len)?;
    let hidden = hidden_ids(&vocab)?;
    let n_blocks = models.first().map_or(0, |m| m.config().n_layers);
    let block_sets = match &a.blocks {
        Some(s) => sweep::parse_block_sets(s, n_blocks)?,
        None => sweep::default_block_sets(n_blocks),
    };
    let plan = SweepPlan {
        block_sets: &block_sets,
        bonds: &a.bonds,
        train: &train,
        valid: &valid,
        probes: &probes,
        hidden: &hidden,
        sample: SampleConfig {
            sampling: Sampling::Temperature(a.temperature),
            samples_per_probe: a.samples,
            seed: a.sample_seed,
        },
        threads: a.threads,
    };
    // The grid's cells and the seed's settings (those that fit the model's blocks).
    let settings = sweep::SEED_SETTINGS
        .iter()
        .filter(|s| s.blocks.iter().all(|&b| b < n_blocks))
        .count();
    let cells_per_model = block_sets.len() * a.bonds.len() + settings;
    let all_cells = cells_per_model * models.len();
    let cells_done = AtomicUsize::new(0);
    let sweeps_started = Instant::now();
    let mut reports = Vec::new();
    for (j, (model, label)) in models.iter().zip(&labels).enumerate() {
        if model.config().n_layers != n_blocks {
            return Err(Error::invalid_arg(
                label.clone(),
                format!(
                    "has {} blocks, the first model {n_blocks}",
                    model.config().n_layers
                ),
            ));
        }
        let progress = |line: &str| {
            if line.starts_with('[') {
                let d = cells_done.fetch_add(1, Ordering::Relaxed) + 1;
                let el = sweeps_started.elapsed().as_secs_f64();
                eprintln!(
                    "model {}/{} ({label}) {line}; cells {d}/{all_cells}, ETA {}",
                    j + 1,
                    models.len(),
                    eta(el, d.saturating_sub(1), all_cells)
                );
            }
        };
        let report = replicate::sweep_model(model, &vocab, &plan, &progress)?;
        let dir = a.out.join(format!("model_{}", mine[j] + 1));
        succulm::study::report::write_all(&report, &dir)?;
        succulm::study::report::html::write(&report, None, &dir)?;
        reports.push(ReplicaReport {
            label: label.clone(),
            report,
        });
    }
    eprintln!(
        "{} models swept ({} cells) in {:.0} s; total {:.0} s",
        reports.len(),
        all_cells,
        sweeps_started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    if a.shard.is_some() {
        std::fs::create_dir_all(&a.out).map_err(|source| Error::Io {
            path: a.out.clone(),
            source,
        })?;
        let path = a.out.join(shard.file_name());
        ReplicaPart {
            shard,
            models_total: total,
            indices: mine,
            models: reports,
        }
        .write(&path)?;
        eprintln!("wrote shard {shard} to {}", path.display());
        return Ok(());
    }
    finish(reports, &a.out)
}

fn finish(reports: Vec<ReplicaReport>, out: &std::path::Path) -> Result<()> {
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

fn parse_merge(flags: &mut Flags) -> Result<(Vec<PathBuf>, PathBuf)> {
    let mut out: PathBuf = "target/replicate".into();
    let mut paths = Vec::new();
    while let Some(x) = flags.next_flag() {
        match x.as_str() {
            "--out" => out = flags.value("--out")?.into(),
            f if f.starts_with("--") => {
                return Err(Error::invalid_arg(
                    f,
                    "unknown option of merge (see --help)",
                ))
            }
            p => paths.push(PathBuf::from(p)),
        }
    }
    Ok((paths, out))
}

fn merge((paths, out): (Vec<PathBuf>, PathBuf)) -> Result<()> {
    let parts = paths
        .iter()
        .map(ReplicaPart::read)
        .collect::<Result<Vec<_>>>()?;
    finish(replicate::merge_replica_parts(parts)?, &out)
}

fn main() -> ExitCode {
    let mut flags = Flags::from_env();
    if flags.subcommand("merge") {
        return cli::main_with(HELP, flags, parse_merge, merge);
    }
    cli::main_with(HELP, flags, parse_args, run)
}

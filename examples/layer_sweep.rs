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
//! scored (the seed's settings in shard 1) and `DIR/part_K_of_N.json` written; `merge` turns the
//! N parts into the same files, byte for byte, as the unsharded run.

use std::path::PathBuf;
use std::process::ExitCode;

use rand::{rngs::StdRng, SeedableRng};
use succulm::compress::calibration::{CalibrationMode, CalibrationRows};
use succulm::nn::generate::{
    format_example, format_examples_side_by_side, model_example, GenerateConfig, Sampling,
};
use succulm::nn::train::{fine_tune_tt, heal_distill, Teacher, TrainConfig};
use succulm::study::cli::{self, Flags};
use succulm::study::eval::{hidden_ids, load_probes, Evaluator, SampleConfig};
use succulm::study::report::html::{ExperimentRun, Experiments};
use succulm::study::report::{self, verdict};
use succulm::study::shard::{merge_parts, Shard, SweepPart};
use succulm::study::sweep::{
    self, HealKind, Method, DEFAULT_BONDS, SEED_EXPERIMENTS, SEED_SETTINGS,
};
use succulm::text::data::{load_corpus, standard_split};
use succulm::text::probes::ProbeGroup;
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
  --samples N         sampled answers per probe and cell (default 20)
  --temperature T     sampling temperature (default 0.6, the seed's)
  --seed N            base seed of every random draw (default 42, the seed's)
  --out DIR           output directory (default target/layer_sweep)
  --threads N         cells scored in parallel (default 2)
  --heal-epochs N     fine-tune the TT cores for N epochs after compression (default 0: off)
  --heal KIND         what healing minimises: ce (the corpus' cross-entropy, default) or
                      distill (KL from the dense model's distributions on the training rows)
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
  --shard K/N         score only shard K of N (cells i with i mod N = K-1) and write
                      DIR/part_K_of_N.json; the seed's experiments run in shard 1 only
  --help              this text

layer_sweep merge PART... [--out DIR]
  merges the parts of one sharded run into the unsharded run's files";

struct Args {
    checkpoint: PathBuf,
    fixtures: PathBuf,
    blocks: Option<String>,
    bonds: Vec<usize>,
    samples: usize,
    temperature: f32,
    seed: u64,
    out: PathBuf,
    heal_epochs: usize,
    heal: HealKind,
    methods: Vec<Method>,
    calibration: CalibrationMode,
    budget: Option<f64>,
    threads: usize,
    experiments: bool,
    shard: Option<Shard>,
}

fn parse_args(flags: &mut Flags) -> Result<Args> {
    let (mut checkpoint, mut fixtures): (Option<PathBuf>, Option<PathBuf>) = (None, None);
    let mut a = Args {
        checkpoint: PathBuf::new(),
        fixtures: PathBuf::new(),
        blocks: None,
        bonds: DEFAULT_BONDS.to_vec(),
        samples: 20,
        temperature: 0.6,
        seed: 42,
        out: "target/layer_sweep".into(),
        heal_epochs: 0,
        heal: HealKind::CrossEntropy,
        methods: vec![Method::Weight],
        calibration: CalibrationMode::Sequential,
        budget: None,
        threads: 2,
        experiments: true,
        shard: None,
    };
    while let Some(flag) = flags.next_flag() {
        let mut value = |name: &str| flags.value(name);
        let num = |name: &str, v: String| cli::int(name, &v, 0..=u64::MAX);
        let count = |name: &str, v: String, max: usize| cli::int(name, &v, 0..=max);
        match flag.as_str() {
            "--checkpoint" => checkpoint = Some(value("--checkpoint")?.into()),
            "--fixtures" => fixtures = Some(value("--fixtures")?.into()),
            "--blocks" => a.blocks = Some(value("--blocks")?),
            "--bonds" => a.bonds = sweep::parse_bonds(&value("--bonds")?)?,
            "--samples" => a.samples = count("--samples", value("--samples")?, MAX_SAMPLES)?,
            "--temperature" => {
                a.temperature = cli::positive_f32("--temperature", &value("--temperature")?)?
            }
            "--seed" => a.seed = num("--seed", value("--seed")?)?,
            "--out" => a.out = value("--out")?.into(),
            "--heal-epochs" => {
                a.heal_epochs = count("--heal-epochs", value("--heal-epochs")?, MAX_HEAL_EPOCHS)?
            }
            "--threads" => a.threads = count("--threads", value("--threads")?, 1024)?,
            "--heal" => a.heal = HealKind::parse(&value("--heal")?)?,
            "--methods" => {
                let mut m = sweep::parse_methods(&value("--methods")?)?;
                // The baseline first: the seed's claims and the comparison read it.
                m.sort_by_key(|&m| m != Method::Weight);
                a.methods = m;
            }
            "--calibration" => a.calibration = CalibrationMode::parse(&value("--calibration")?)?,
            "--budget" => {
                let v = value("--budget")?;
                let f = cli::float("--budget", &v, 0.0..=1.0)?;
                if f == 0.0 {
                    return Err(Error::invalid_arg(
                        "--budget",
                        format!("{} is not in (0, 1]", cli::shown(&v)),
                    ));
                }
                a.budget = Some(f);
            }
            "--no-experiments" => a.experiments = false,
            "--shard" => a.shard = Some(Shard::parse(&value("--shard")?)?),
            other => return Err(cli::unknown(other)),
        }
    }
    if a.samples == 0 {
        return Err(Error::invalid_arg("--samples", "must be at least 1"));
    }
    if a.threads == 0 {
        return Err(Error::invalid_arg("--threads", "must be at least 1"));
    }
    Sampling::Temperature(a.temperature).validate()?;
    a.checkpoint = cli::checkpoint_file(checkpoint.as_deref())?;
    a.fixtures = cli::fixtures_dir(fixtures.as_deref())?;
    cli::check_output_dir("--out", &a.out)?;
    Ok(a)
}

/// Largest `--samples` accepted (each is one sampled answer per probe and cell).
const MAX_SAMPLES: usize = 1_000_000;
/// Largest `--heal-epochs` accepted.
const MAX_HEAL_EPOCHS: usize = 100_000;

const TRAIN_COMMAND: &str = "cargo run --release --example train -- --profile upper_middle \\
        --epochs 60 --seed 42 --out fixtures/succulm_upper_middle.json";

fn missing(path: &std::path::Path, how: &str) -> Error {
    Error::invalid_arg(
        "file",
        format!("{} is missing; create it with:\n    {how}", path.display()),
    )
}

fn run(a: Args) -> Result<()> {
    // Tiny matrices: one BLAS thread is faster (see `succulm::tt::blas`).
    succulm::tt::blas::set_num_threads(1);
    if !a.checkpoint.exists() {
        return Err(missing(&a.checkpoint, TRAIN_COMMAND));
    }
    eprintln!("loading {}", a.checkpoint.display());
    let (model, vocab) = succulm::Model::load(&a.checkpoint)?;
    let n_blocks = model.config().n_layers;
    let block_sets = match &a.blocks {
        Some(s) => sweep::parse_block_sets(s, n_blocks)?,
        None => sweep::default_block_sets(n_blocks),
    };
    let probes = load_probes(a.fixtures.join("succulm_probes.json"))?;
    let pinned: Vec<&str> = probes
        .iter()
        .filter(|p| p.group == ProbeGroup::SeedInTraining)
        .map(|p| p.prompt.as_str())
        .collect();
    let pairs = load_corpus(&a.fixtures)?;
    let (train, valid) = standard_split(&vocab, &pairs, &pinned, model.config().max_len)?;
    let hidden = hidden_ids(&vocab)?;

    // The data-aware methods and budgets calibrate on the training rows (never the validation
    // rows scored below), and report output errors on the validation rows.
    let needs_calibration = a.budget.is_some() || a.methods.iter().any(|m| m.is_data_aware());
    let calibration = if needs_calibration {
        let started = std::time::Instant::now();
        let rows = CalibrationRows {
            train: train.x(),
            validation: Some(valid.x()),
        };
        let c = sweep::SweepCalibration::collect(&model, rows, a.calibration)?;
        eprintln!(
            "calibration: {} ({:.2} s)",
            c.describe(),
            started.elapsed().as_secs_f64()
        );
        Some(c)
    } else {
        None
    };
    let calibration = calibration.as_ref();

    let shard = a.shard.unwrap_or(Shard::WHOLE);
    let mut experiments = None;
    if a.experiments && shard.index == 0 {
        let cfg = GenerateConfig::temperature(a.temperature);
        let mut rng = StdRng::seed_from_u64(a.seed);
        let mut record = Experiments {
            temperature: a.temperature,
            seed: a.seed,
            dense: model_example(&model, &vocab, &cfg, &mut rng)?,
            runs: Vec::new(),
        };
        println!(
            "== The seed's experiments (temperature {}, seed {}) ==",
            a.temperature, a.seed
        );
        for (title, blocks, bonds) in SEED_EXPERIMENTS {
            if blocks.iter().any(|&b| b >= n_blocks) {
                continue;
            }
            let mut runs = Vec::with_capacity(a.methods.len());
            for &method in &a.methods {
                let (m, info) = sweep::compress(&model, method, blocks, bonds, calibration)?;
                // The seed re-seeds before each group; each model_example shares one generator.
                let mut rng = StdRng::seed_from_u64(a.seed);
                runs.push((method, info, model_example(&m, &vocab, &cfg, &mut rng)?));
            }
            if let [(_, info, answers)] = &runs[..] {
                println!(
                    "\n-- {title}: blocks {blocks:?}, bonds {bonds:?}, largest reconstruction error {:.3}",
                    info.max_rel_error()
                );
                print!("{}", format_example(answers));
            } else {
                let errors: Vec<String> = runs
                    .iter()
                    .map(|(m, info, _)| format!("{} {:.3}", m.key(), info.max_rel_error()))
                    .collect();
                println!(
                    "\n-- {title}: blocks {blocks:?}, bonds {bonds:?}, largest reconstruction error {}",
                    errors.join(", ")
                );
                let side: Vec<(&str, &[(String, String)])> = runs
                    .iter()
                    .map(|(m, _, answers)| (m.key(), answers.as_slice()))
                    .collect();
                print!("{}", format_examples_side_by_side(&side));
            }
            for (method, info, answers) in runs {
                record.runs.push(ExperimentRun {
                    title: title.to_string(),
                    blocks: blocks.to_vec(),
                    bonds: bonds.to_vec(),
                    method,
                    max_rel_error: info.max_rel_error(),
                    answers,
                });
            }
        }
        println!();
        experiments = Some(record);
    }

    let sample = SampleConfig {
        sampling: Sampling::Temperature(a.temperature),
        samples_per_probe: a.samples,
        seed: a.seed,
    };
    let evaluator = Evaluator::new(
        &model,
        &vocab,
        valid.x(),
        valid.y(),
        &probes,
        &hidden,
        sample,
    )?
    // The novel word-link rate counts the answer's token pairs never seen in training.
    .with_training_rows(train.x(), train.y())?;
    let teacher = if a.heal_epochs > 0 && a.heal == HealKind::Distill {
        // The dense model's distributions on the training rows, computed once for every cell.
        Some(Teacher::new(&model, &train, 1)?)
    } else {
        None
    };
    // Every healed cell: the grid's own cells (of this shard) and the seed's settings.
    let heal_total = a.heal_epochs
        * (shard
            .owned(a.methods.len() * block_sets.len() * a.bonds.len())
            .len()
            + if shard.index == 0 {
                a.methods.len() * SEED_SETTINGS.len()
            } else {
                0
            });
    let epochs_done = std::sync::atomic::AtomicUsize::new(0);
    let heal = (a.heal_epochs > 0).then(|| {
        let config = TrainConfig {
            epochs: a.heal_epochs,
            seed: a.seed,
            ..TrainConfig::default()
        };
        let (train, valid, teacher) = (&train, &valid, teacher.as_ref());
        // Per-epoch progress (cells heal concurrently, so the count is over all of them).
        let (done, started, total) = (&epochs_done, std::time::Instant::now(), heal_total);
        let heal = move |m: &mut succulm::Model| -> Result<()> {
            let on_epoch = |r: &succulm::nn::train::EpochReport| {
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let secs = started.elapsed().as_secs_f64();
                let eta = secs / n as f64 * total.saturating_sub(n) as f64;
                eprintln!(
                    "  healing: epoch {}/{} of a cell (train loss {:.3}); {n}/{total} epochs \
                     of the run, ETA {eta:.0} s",
                    r.epoch, config.epochs, r.train_loss
                );
            };
            match teacher {
                Some(t) => heal_distill(m, train, valid, t, config.clone(), on_epoch).map(|_| ()),
                None => fine_tune_tt(m, train, valid, config.clone(), on_epoch).map(|_| ()),
            }
        };
        (a.heal, heal)
    });
    // Long runs get an estimate up front: the grid shows progress only per finished cell.
    let cells = a.methods.len() * block_sets.len() * a.bonds.len();
    let answers = cells * probes.len() * a.samples;
    if a.samples > 100 || a.heal_epochs > 50 {
        eprintln!(
            "warning: {cells} cells × {} probes × {} samples = {answers} sampled answers{}; \
             this may take a long time (progress is shown per cell and healing epoch)",
            probes.len(),
            a.samples,
            if a.heal_epochs > 0 {
                format!(", and {} healing epochs per cell", a.heal_epochs)
            } else {
                String::new()
            }
        );
    }
    let started = std::time::Instant::now();
    let progress = |line: &str| eprintln!("{line}");
    let mut part = sweep::run_grid_shard(
        &evaluator,
        &sweep::Grid {
            n_blocks,
            methods: &a.methods,
            block_sets: &block_sets,
            bonds: &a.bonds,
            threads: a.threads,
        },
        shard,
        |method: Method, blocks: &[usize], bond: usize| {
            sweep::compress(
                &model,
                method,
                blocks,
                &vec![bond; blocks.len()],
                calibration,
            )
        },
        heal.as_ref().map(|(k, h)| (*k, h)),
        &progress,
    )?;
    let grid_secs = started.elapsed().as_secs_f64();
    // The seed's settings the grid lacks (bonds varying per block, consecutive pairs).
    // The seed's settings the grid lacks (bonds varying per block, consecutive pairs): in an
    // unsharded run, or in shard 1 of a sharded one (merge takes them from there).
    if shard.index == 0 {
        part.report.settings = sweep::run_settings(
            &evaluator,
            n_blocks,
            &a.methods,
            &SEED_SETTINGS,
            a.threads,
            |method: Method, blocks: &[usize], bonds: &[usize]| {
                sweep::compress(&model, method, blocks, bonds, calibration)
            },
            heal.as_ref().map(|(k, h)| (*k, h)),
            &progress,
        )?;
    }
    eprintln!(
        "the seed's settings took {:.1} s (the grid {grid_secs:.1} s)",
        started.elapsed().as_secs_f64() - grid_secs
    );
    part.report.calibration = calibration.map(|c| c.describe());
    if let (Some(fraction), Some(cal)) = (a.budget, calibration) {
        let all: Vec<(Method, Vec<usize>)> = a
            .methods
            .iter()
            .flat_map(|&m| block_sets.iter().map(move |s| (m, s.clone())))
            .collect();
        part.budget_total = all.len();
        part.budget_indices = shard.owned(all.len());
        let requests: Vec<(Method, Vec<usize>)> = part
            .budget_indices
            .iter()
            .map(|&i| all[i].clone())
            .collect();
        if !requests.is_empty() {
            part.report.budget = sweep::run_budget(
                &evaluator,
                &requests,
                fraction,
                |method: Method, blocks: &[usize], f: f64| {
                    sweep::budget_arms(&model, method, blocks, f, cal)
                },
                a.threads,
                &progress,
            )?;
        }
    }
    eprintln!("sweep took {:.1} s", started.elapsed().as_secs_f64());
    if a.shard.is_some() {
        part.extra = serde_json::to_value(PartExtra {
            experiments,
            heal_epochs: a.heal_epochs,
        })
        .map_err(|e| Error::invalid_arg("experiments", e.to_string()))?;
        std::fs::create_dir_all(&a.out).map_err(|source| Error::Io {
            path: a.out.clone(),
            source,
        })?;
        let path = a.out.join(shard.file_name());
        part.write(&path)?;
        eprintln!(
            "wrote shard {shard} ({} of {} cells) to {}",
            part.cell_indices.len(),
            part.cells_total,
            path.display()
        );
        return Ok(());
    }
    let report = part.report;
    print_and_write(
        &report,
        experiments.as_ref(),
        &a.out,
        a.heal_epochs,
        a.budget,
    )
}

/// The table, the comparison and budget tables and the verdicts to stdout; every file (and
/// `report.html`) to `out`.
fn print_and_write(
    report: &succulm::study::sweep::SweepReport,
    experiments: Option<&Experiments>,
    out: &std::path::Path,
    heal_epochs: usize,
    budget_fraction: Option<f64>,
) -> Result<()> {
    println!("== The grid ==");
    print!("{}", report::format_table(report));
    let settings = report::format_settings(report);
    if !settings.is_empty() {
        println!("\n== The seed's settings (bonds per block: block:bond) ==");
        print!("{settings}");
    }
    let healing = report::format_healing(report);
    if !healing.is_empty() {
        println!("\n== Healing ({heal_epochs} epochs) ==");
        print!("{healing}");
    }
    let comparison = report::compare::format_comparison(report);
    if !comparison.is_empty() {
        println!("\n== Data-aware truncation vs plain TT-SVD, same parameter count ==");
        print!("{comparison}");
        print!(
            "{}",
            verdict::format_verdicts(&report::compare::verdicts(report))
        );
    }
    let budget = report::format_budget(report);
    if !budget.is_empty() {
        println!(
            "\n== Parameter budget {:.0}%: uniform vs allocated bonds ==",
            100.0 * budget_fraction.unwrap_or(0.0)
        );
        print!("{budget}");
    }
    println!("\n== The seed's claims ==");
    print!("{}", verdict::format_verdicts(&verdict::verdicts(report)));
    let mut written = report::write_all(report, out)?;
    written.push(report::html::write(report, experiments, out)?);
    eprintln!("wrote {} files to {}", written.len(), out.display());
    Ok(())
}

/// What a part carries besides its cells: the seed's experiments (shard 1) and the healing
/// length (for the printed heading).
#[derive(serde::Serialize, serde::Deserialize)]
struct PartExtra {
    experiments: Option<Experiments>,
    heal_epochs: usize,
}

/// `layer_sweep merge PART... [--out DIR]`: the parts and the output directory.
fn parse_merge(flags: &mut Flags) -> Result<(Vec<PathBuf>, PathBuf)> {
    let mut out: PathBuf = "target/layer_sweep".into();
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
    if paths.is_empty() {
        return Err(Error::invalid_arg("merge", "no part given"));
    }
    Ok((paths, out))
}

/// `layer_sweep merge PART... [--out DIR]`.
fn merge((paths, out): (Vec<PathBuf>, PathBuf)) -> Result<()> {
    let parts = paths
        .iter()
        .map(SweepPart::read)
        .collect::<Result<Vec<_>>>()?;
    let (report, extra) = merge_parts(parts)?;
    let PartExtra {
        experiments,
        heal_epochs,
    } = serde_json::from_value(extra)
        .map_err(|e| Error::invalid_arg("part", format!("bad experiments: {e}")))?;
    if let Some(e) = &experiments {
        println!(
            "== The seed's experiments (temperature {}, seed {}) ==",
            e.temperature, e.seed
        );
        println!("(see report.html)\n");
    }
    let fraction = report.budget.first().map(|b| b.fraction);
    print_and_write(&report, experiments.as_ref(), &out, heal_epochs, fraction)
}

fn main() -> ExitCode {
    let mut flags = Flags::from_env();
    if flags.subcommand("merge") {
        return cli::main_with(HELP, flags, parse_merge, merge);
    }
    cli::main_with(HELP, flags, parse_args, run)
}

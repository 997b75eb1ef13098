//! The seed's experiments, quantified: compress FFN blocks with tensor trains at a range of
//! middle bonds and measure what it does to the model.
//!
//! ```text
//! cargo run --release --example layer_sweep -- [--blocks 0,1,2,3,all] [--bonds 50,47,...]
//!     [--samples 20] [--seed 42] [--out target/layer_sweep] [--heal-epochs 0]
//!     [--checkpoint fixtures/succulm_upper_middle.json] [--no-experiments]
//! ```
//! Progress goes to stderr, the table and the verdict to stdout, every figure and chart to
//! `--out`.

use std::path::PathBuf;
use std::process::ExitCode;

use rand::{rngs::StdRng, SeedableRng};
use succulm::data::{load_corpus, standard_split};
use succulm::eval::{hidden_ids, load_probes, Evaluator, SampleConfig};
use succulm::generate::{format_example, model_example, GenerateConfig, Sampling};
use succulm::probes::ProbeGroup;
use succulm::report::{self, verdict};
use succulm::sweep::{self, tensorized, HealKind, Method, DEFAULT_BONDS, SEED_EXPERIMENTS};
use succulm::train::{fine_tune_tt, TrainConfig};
use succulm::{Error, Result};

const HELP: &str = "\
layer_sweep: tensor-train compression of SuccuLM's FFN blocks, measured.

Options:
  --checkpoint PATH   trained model (default fixtures/succulm_upper_middle.json)
  --fixtures DIR      corpus and probes (default fixtures)
  --blocks LIST       block sets, comma-separated: indices, `a+b` pairs, `all`
                      (default: each block, then all)
  --bonds LIST        middle bonds (default 50,47,42,39,33,27,20,15,10,5)
  --samples N         sampled answers per probe and cell (default 20)
  --temperature T     sampling temperature (default 0.6, the seed's)
  --seed N            base seed of every random draw (default 42, the seed's)
  --out DIR           output directory (default target/layer_sweep)
  --threads N         cells scored in parallel (default 2)
  --heal-epochs N     fine-tune the TT cores for N epochs after compression (default 0: off)
  --no-experiments    skip the seed's experiments (the printed answers)
  --help              this text";

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
    threads: usize,
    experiments: bool,
}

fn parse_args() -> Result<Option<Args>> {
    let mut a = Args {
        checkpoint: "fixtures/succulm_upper_middle.json".into(),
        fixtures: "fixtures".into(),
        blocks: None,
        bonds: DEFAULT_BONDS.to_vec(),
        samples: 20,
        temperature: 0.6,
        seed: 42,
        out: "target/layer_sweep".into(),
        heal_epochs: 0,
        threads: 2,
        experiments: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| Error::invalid_arg(name, "needs a value (see --help)"))
        };
        let num = |name: &str, v: String| {
            v.parse::<u64>().map_err(|_| {
                Error::invalid_arg(name, format!("{v:?} is not a non-negative integer"))
            })
        };
        match flag.as_str() {
            "--help" | "-h" => {
                println!("{HELP}");
                return Ok(None);
            }
            "--checkpoint" => a.checkpoint = value("--checkpoint")?.into(),
            "--fixtures" => a.fixtures = value("--fixtures")?.into(),
            "--blocks" => a.blocks = Some(value("--blocks")?),
            "--bonds" => a.bonds = sweep::parse_bonds(&value("--bonds")?)?,
            "--samples" => a.samples = num("--samples", value("--samples")?)? as usize,
            "--temperature" => {
                let v = value("--temperature")?;
                a.temperature = v.parse().map_err(|_| {
                    Error::invalid_arg("--temperature", format!("{v:?} is not a number"))
                })?;
            }
            "--seed" => a.seed = num("--seed", value("--seed")?)?,
            "--out" => a.out = value("--out")?.into(),
            "--heal-epochs" => {
                a.heal_epochs = num("--heal-epochs", value("--heal-epochs")?)? as usize
            }
            "--threads" => a.threads = num("--threads", value("--threads")?)? as usize,
            "--no-experiments" => a.experiments = false,
            other => return Err(Error::invalid_arg(other, "unknown option (see --help)")),
        }
    }
    if a.samples == 0 {
        return Err(Error::invalid_arg("--samples", "must be at least 1"));
    }
    Sampling::Temperature(a.temperature).validate()?;
    Ok(Some(a))
}

const TRAIN_COMMAND: &str = "cargo run --release --example train -- --profile upper_middle \\
        --epochs 60 --seed 42 --out fixtures/succulm_upper_middle.json";

fn missing(path: &std::path::Path, how: &str) -> Error {
    Error::invalid_arg(
        "file",
        format!("{} is missing; create it with:\n    {how}", path.display()),
    )
}

fn run(a: Args) -> Result<()> {
    // Tiny matrices: one BLAS thread is faster (see `succulm::blas`).
    succulm::blas::set_num_threads(1);
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

    if a.experiments {
        println!(
            "== The seed's experiments (temperature {}, seed {}) ==",
            a.temperature, a.seed
        );
        let cfg = GenerateConfig::temperature(a.temperature);
        for (title, blocks, bonds) in SEED_EXPERIMENTS {
            if blocks.iter().any(|&b| b >= n_blocks) {
                continue;
            }
            let (m, info) = tensorized(&model, blocks, bonds)?;
            // The seed re-seeds before each group; each model_example shares one generator.
            let mut rng = StdRng::seed_from_u64(a.seed);
            let answers = model_example(&m, &vocab, &cfg, &mut rng)?;
            println!(
                "\n-- {title}: blocks {blocks:?}, bonds {bonds:?}, largest reconstruction error {:.3}",
                info.max_rel_error()
            );
            print!("{}", format_example(&answers));
        }
        println!();
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
    )?;
    let heal = (a.heal_epochs > 0).then(|| {
        let config = TrainConfig {
            epochs: a.heal_epochs,
            seed: a.seed,
            ..TrainConfig::default()
        };
        let (train, valid) = (&train, &valid);
        let heal = move |m: &mut succulm::Model| -> Result<()> {
            fine_tune_tt(m, train, valid, config.clone(), |_| {}).map(|_| ())
        };
        (HealKind::CrossEntropy, heal)
    });
    let started = std::time::Instant::now();
    let report = sweep::run_grid(
        &evaluator,
        &sweep::Grid {
            n_blocks,
            methods: &[Method::Weight],
            block_sets: &block_sets,
            bonds: &a.bonds,
            threads: a.threads,
        },
        |_: Method, blocks: &[usize], bond: usize| {
            tensorized(&model, blocks, &vec![bond; blocks.len()])
        },
        heal,
        &|line: &str| eprintln!("{line}"),
    )?;
    eprintln!("sweep took {:.1} s", started.elapsed().as_secs_f64());

    println!("== The grid ==");
    print!("{}", report::format_table(&report));
    let healing = report::format_healing(&report);
    if !healing.is_empty() {
        println!("\n== Healing ({} epochs) ==", a.heal_epochs);
        print!("{healing}");
    }
    println!("\n== The seed's claims ==");
    print!("{}", verdict::format_verdicts(&verdict::verdicts(&report)));
    let written = report::write_all(&report, &a.out)?;
    eprintln!("wrote {} files to {}", written.len(), a.out.display());
    Ok(())
}

fn main() -> ExitCode {
    match parse_args() {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(a)) => match run(a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: {e}\n\n{HELP}");
            ExitCode::from(2)
        }
    }
}

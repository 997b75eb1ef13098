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
//!
//! DRAFT: lives in `examples_draft/` until `Model`, the TT surgery and the data loader land.
//! Every line the lead must wire is marked `// LEAD:`.

use std::path::PathBuf;
use std::process::ExitCode;

use rand::{rngs::StdRng, SeedableRng};
use succulm::eval::{hidden_ids, load_probes, Evaluator, SampleConfig};
use succulm::generate::{format_example, model_example, GenerateConfig, Sampling};
use succulm::report::{self, verdict};
use succulm::sweep::{self, CompressionInfo, ProjectionError, DEFAULT_BONDS};
use succulm::{Error, Result};

const HELP: &str = "\
layer_sweep: tensor-train compression of SuccuLM's FFN blocks, measured.

Options:
  --checkpoint PATH   trained model (default fixtures/succulm_upper_middle.json)
  --probes PATH       probes file (default fixtures/succulm_probes.json)
  --blocks LIST       block sets, comma-separated: indices, `a+b` pairs, `all`
                      (default: each block, then all)
  --bonds LIST        middle bonds (default 50,47,42,39,33,27,20,15,10,5)
  --samples N         sampled answers per probe and cell (default 20)
  --temperature T     sampling temperature (default 0.6, the seed's)
  --seed N            base seed of every random draw (default 42, the seed's)
  --out DIR           output directory (default target/layer_sweep)
  --heal-epochs N     fine-tune the TT cores for N epochs after compression (default 0: off)
  --no-experiments    skip the seed's experiments (the printed answers)
  --help              this text";

struct Args {
    checkpoint: PathBuf,
    probes: PathBuf,
    blocks: Option<String>,
    bonds: Vec<usize>,
    samples: usize,
    temperature: f32,
    seed: u64,
    out: PathBuf,
    heal_epochs: usize,
    experiments: bool,
}

fn parse_args() -> Result<Option<Args>> {
    let mut a = Args {
        checkpoint: "fixtures/succulm_upper_middle.json".into(),
        probes: "fixtures/succulm_probes.json".into(),
        blocks: None,
        bonds: DEFAULT_BONDS.to_vec(),
        samples: 20,
        temperature: 0.6,
        seed: 42,
        out: "target/layer_sweep".into(),
        heal_epochs: 0,
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
            "--probes" => a.probes = value("--probes")?.into(),
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

/// The seed's experiments: (title, blocks, bonds).
const EXPERIMENTS: [(&str, &[usize], &[usize]); 13] = [
    (
        "loosening towards the end",
        &[0, 1, 2, 3],
        &[39, 42, 46, 47],
    ),
    (
        "tightening towards the end",
        &[0, 1, 2, 3],
        &[47, 46, 42, 39],
    ),
    ("block 0 at 27", &[0], &[27]),
    ("block 1 at 27", &[1], &[27]),
    ("block 2 at 27", &[2], &[27]),
    ("block 3 at 27", &[3], &[27]),
    ("block 0 at 20", &[0], &[20]),
    ("block 1 at 20", &[1], &[20]),
    ("block 2 at 20", &[2], &[20]),
    ("block 3 at 20", &[3], &[20]),
    ("blocks 0, 1 at 30", &[0, 1], &[30, 30]),
    ("blocks 2, 3 at 30", &[2, 3], &[30, 30]),
    ("blocks 1, 2 at 30", &[1, 2], &[30, 30]),
];

/// The seed's `tensorized_model`: a copy of `model` with each listed block's FFN replaced by TT
/// layers (up: 50→200 as (5×10)→(10×20), bonds [10, m, 10]; down: 200→50 as (10×20)→(5×10),
/// bonds [5, m, 20]).
fn tensorized(
    model: &succulm::Model,
    blocks: &[usize],
    bonds: &[usize],
) -> Result<(succulm::Model, CompressionInfo)> {
    let mut m = model.clone();
    let mut info = CompressionInfo::default();
    for (&b, &bond) in blocks.iter().zip(bonds) {
        // LEAD: the TT surgery. Expected to return, per block, the dense and TT parameter counts
        // and each projection's relative error; adapt the names to what landed.
        let r = m.tensorize_ffn(b, &succulm::FfnTtSpec::seed(bond))?;
        info.ffn_params_dense += r.dense_params;
        info.ffn_params_tt += r.tt_params;
        for (name, err) in [("ffn.0", r.up_rel_error), ("ffn.2", r.down_rel_error)] {
            info.projections.push(ProjectionError {
                block: b,
                projection: name.into(),
                rel_error: err as f64,
            });
        }
    }
    Ok((m, info))
}

fn missing(path: &std::path::Path, how: &str) -> Error {
    Error::invalid_arg(
        "file",
        format!("{} is missing; create it with:\n    {how}", path.display()),
    )
}

fn run(a: Args) -> Result<()> {
    if !a.checkpoint.exists() {
        // LEAD: check the train example's name and flags.
        return Err(missing(
            &a.checkpoint,
            "cargo run --release --example train -- --profile upper_middle",
        ));
    }
    if !a.probes.exists() {
        return Err(missing(
            &a.probes,
            "git checkout fixtures/succulm_probes.json (it ships with the crate)",
        ));
    }
    eprintln!("loading {}", a.checkpoint.display());
    // LEAD: Model::load returns the model and its vocabulary (with hidden words).
    let (model, vocab) = succulm::Model::load(&a.checkpoint)?;
    let n_blocks = model.config().n_layers;
    let block_sets = match &a.blocks {
        Some(s) => sweep::parse_block_sets(s, n_blocks)?,
        None => sweep::default_block_sets(n_blocks),
    };
    // LEAD: the validation split as [N, T] inputs and targets, built exactly as the seed's
    // SentencePairDataset (PAD-padded to max_len).
    let (x, y) = succulm::data::validation_xy(&vocab, model.config().max_len)?;
    let probes = load_probes(&a.probes)?;
    let hidden = hidden_ids(&vocab)?;

    if a.experiments {
        println!(
            "== The seed's experiments (temperature {}, seed {}) ==",
            a.temperature, a.seed
        );
        let cfg = GenerateConfig::temperature(a.temperature);
        for (title, blocks, bonds) in EXPERIMENTS {
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
    let evaluator = Evaluator::new(&model, &vocab, x.view(), y.view(), &probes, &hidden, sample)?;
    let heal = (a.heal_epochs > 0).then(|| {
        let epochs = a.heal_epochs;
        let seed = a.seed;
        move |m: &mut succulm::Model| -> Result<()> {
            // LEAD: fine-tune only the TT cores (and biases) on the training split.
            succulm::train::heal_tt(m, epochs, seed)
        }
    });
    let started = std::time::Instant::now();
    let report = sweep::run_grid(
        &evaluator,
        n_blocks,
        &block_sets,
        &a.bonds,
        |blocks: &[usize], bond: usize| tensorized(&model, blocks, &vec![bond; blocks.len()]),
        heal,
        &mut |line: &str| eprintln!("{line}"),
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

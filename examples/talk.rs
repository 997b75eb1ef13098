//! Talk to a trained SuccuLM: answer prompts given as arguments, or read them line by line from
//! stdin, optionally with chosen FFN blocks tensor-train compressed.
//!
//! ```text
//! cargo run --release --example talk -- "is ruby a boy?" "who is winy?"
//! echo "can you bloom, winy?" | cargo run --release --example talk -- --temperature 0.6 --tt 3:20
//! cargo run --release --example talk -- --examples      # the seed's model_example
//! ```
//!

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use rand::{rngs::StdRng, SeedableRng};
use succulm::nn::generate::{
    format_example, generate_text, model_example, GenerateConfig, Sampling,
};
use succulm::study::cli::{self, Flags};
use succulm::{Error, Result};

const HELP: &str = "\
talk: answer prompts with a trained SuccuLM.

Usage: talk [OPTIONS] [PROMPT...]     (no prompt: read one per line from stdin)

Options:
  --checkpoint PATH   trained model (default: the shipped fixtures/succulm_upper_middle.json,
                      found from any working directory)
  --temperature T     sampling temperature > 0 (default 0.6)
  --greedy            always take the most probable token
  --top-k K           sample among the K most probable tokens only
  --seed N            random seed (default 42)
  --tt BLOCK:BOND     compress BLOCK's FFN with tensor trains at middle bond BOND
                      (repeatable, e.g. --tt 0:27 --tt 3:20)
  --examples          answer the seed's 14 prompts (its model_example)
  --help              this text";

struct Args {
    checkpoint: PathBuf,
    sampling: Sampling,
    seed: u64,
    tt: Vec<(usize, usize)>,
    examples: bool,
    prompts: Vec<String>,
}

fn parse_args(flags: &mut Flags) -> Result<Args> {
    let mut checkpoint: Option<PathBuf> = None;
    let (mut temperature, mut greedy, mut top_k, mut seed) = (0.6f32, false, None, 42u64);
    let (mut tt, mut examples, mut prompts) = (Vec::new(), false, Vec::new());
    while let Some(flag) = flags.next_flag() {
        let mut value = |name: &str| flags.value(name);
        match flag.as_str() {
            "--checkpoint" => checkpoint = Some(value("--checkpoint")?.into()),
            "--temperature" => {
                temperature = cli::positive_f32("--temperature", &value("--temperature")?)?
            }
            "--greedy" => greedy = true,
            "--top-k" => top_k = Some(cli::int("--top-k", &value("--top-k")?, 1..=usize::MAX)?),
            "--seed" => seed = cli::int("--seed", &value("--seed")?, 0..=u64::MAX)?,
            "--tt" => {
                let v = value("--tt")?;
                let (b, m) = v.split_once(':').ok_or_else(|| {
                    Error::invalid_arg(
                        "--tt",
                        format!("{} is not BLOCK:BOND (e.g. 3:20)", cli::shown(&v)),
                    )
                })?;
                let block = cli::int("--tt (block)", b, 0..=usize::MAX)?;
                let bond = cli::int("--tt (bond)", m, 1..=usize::MAX)?;
                if tt.iter().any(|&(other, _)| other == block) {
                    return Err(Error::invalid_arg(
                        "--tt",
                        format!("block {block} is given twice"),
                    ));
                }
                tt.push((block, bond));
            }
            "--examples" => examples = true,
            s if s.starts_with("--") => return Err(cli::unknown(s)),
            _ => prompts.push(flag),
        }
    }
    let sampling = match (greedy, top_k) {
        (true, Some(_)) => {
            return Err(Error::invalid_arg(
                "--greedy",
                "cannot be combined with --top-k",
            ))
        }
        (true, None) => Sampling::Greedy,
        (false, Some(k)) => Sampling::TopK { k, temperature },
        (false, None) => Sampling::Temperature(temperature),
    };
    sampling.validate()?;
    Ok(Args {
        checkpoint: cli::checkpoint_file(checkpoint.as_deref())?,
        sampling,
        seed,
        tt,
        examples,
        prompts,
    })
}

/// Runs the prompts; an error when every prompt given was rejected.
fn run(a: Args) -> Result<()> {
    // Tiny matrices: one BLAS thread is faster (see `succulm::tt::blas`).
    succulm::tt::blas::set_num_threads(1);
    let (mut model, vocab) = succulm::Model::load(&a.checkpoint)?;
    for &(block, bond) in &a.tt {
        let spec = succulm::FfnTtSpec::for_config(model.config(), bond);
        let r = model.tensorize_ffn(block, &spec)?;
        let capped = if r.up.capped.is_empty() && r.down.capped.is_empty() {
            String::new()
        } else {
            format!(
                "; bonds capped to their rank limits: up {:?}, down {:?}",
                r.up.bond_dims, r.down.bond_dims
            )
        };
        eprintln!(
            "block {block}: FFN compressed at bond {bond}{capped} (relative errors {:.3} up, {:.3} down)",
            r.up.rel_error, r.down.rel_error
        );
    }
    let cfg = GenerateConfig::new(a.sampling);
    let mut rng = StdRng::seed_from_u64(a.seed);
    if a.examples {
        print!(
            "{}",
            format_example(&model_example(&model, &vocab, &cfg, &mut rng)?)
        );
        return Ok(());
    }
    let (mut answered, mut rejected) = (0usize, 0usize);
    let mut answer = |prompt: &str| -> Result<()> {
        match generate_text(&model, &vocab, prompt, &cfg, &mut rng) {
            Ok(g) => {
                answered += 1;
                println!("prompt='{prompt}' result='{}'", g.text(&vocab))
            }
            // A bad prompt is reported (shortened, control characters escaped) and skipped;
            // other prompts still get answers.
            Err(e @ (Error::InvalidArgument { .. } | Error::SequenceTooLong { .. })) => {
                rejected += 1;
                eprintln!("prompt {}: {e}", cli::shown(prompt))
            }
            Err(e) => return Err(e),
        }
        Ok(())
    };
    if a.prompts.is_empty() {
        for line in std::io::stdin().lock().lines() {
            let line = line.map_err(|source| Error::Io {
                path: "<stdin>".into(),
                source,
            })?;
            if !line.trim().is_empty() {
                answer(line.trim())?;
            }
        }
    } else {
        for p in &a.prompts {
            answer(p)?;
        }
    }
    if rejected > 0 {
        eprintln!("{answered} prompts answered, {rejected} rejected");
    }
    if answered == 0 && rejected > 0 {
        return Err(Error::invalid_arg("prompts", "every prompt was rejected"));
    }
    Ok(())
}

fn main() -> ExitCode {
    cli::main(HELP, parse_args, run)
}

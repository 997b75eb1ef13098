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
use succulm::generate::{format_example, generate_text, model_example, GenerateConfig, Sampling};
use succulm::{Error, Result};

const HELP: &str = "\
talk: answer prompts with a trained SuccuLM.

Usage: talk [OPTIONS] [PROMPT...]     (no prompt: read one per line from stdin)

Options:
  --checkpoint PATH   trained model (default fixtures/succulm_upper_middle.json)
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

fn parse_args() -> Result<Option<Args>> {
    let mut checkpoint = PathBuf::from("fixtures/succulm_upper_middle.json");
    let (mut temperature, mut greedy, mut top_k, mut seed) = (0.6f32, false, None, 42u64);
    let (mut tt, mut examples, mut prompts) = (Vec::new(), false, Vec::new());
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| Error::invalid_arg(name, "needs a value (see --help)"))
        };
        match flag.as_str() {
            "--help" | "-h" => {
                println!("{HELP}");
                return Ok(None);
            }
            "--checkpoint" => checkpoint = value("--checkpoint")?.into(),
            "--temperature" => {
                let v = value("--temperature")?;
                temperature = v.parse().map_err(|_| {
                    Error::invalid_arg("--temperature", format!("{v:?} is not a number"))
                })?;
            }
            "--greedy" => greedy = true,
            "--top-k" => {
                let v = value("--top-k")?;
                top_k = Some(v.parse::<usize>().map_err(|_| {
                    Error::invalid_arg("--top-k", format!("{v:?} is not a positive integer"))
                })?);
            }
            "--seed" => {
                let v = value("--seed")?;
                seed = v.parse().map_err(|_| {
                    Error::invalid_arg("--seed", format!("{v:?} is not a non-negative integer"))
                })?;
            }
            "--tt" => {
                let v = value("--tt")?;
                let parsed = v
                    .split_once(':')
                    .and_then(|(b, m)| Some((b.parse::<usize>().ok()?, m.parse::<usize>().ok()?)));
                tt.push(parsed.ok_or_else(|| {
                    Error::invalid_arg("--tt", format!("{v:?} is not BLOCK:BOND (e.g. 3:20)"))
                })?);
            }
            "--examples" => examples = true,
            s if s.starts_with("--") => {
                return Err(Error::invalid_arg(s, "unknown option (see --help)"))
            }
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
    Ok(Some(Args {
        checkpoint,
        sampling,
        seed,
        tt,
        examples,
        prompts,
    }))
}

fn run(a: Args) -> Result<()> {
    // Tiny matrices: one BLAS thread is faster (see `succulm::blas`).
    succulm::blas::set_num_threads(1);
    if !a.checkpoint.exists() {
        return Err(Error::invalid_arg(
            "--checkpoint",
            format!(
                "{} is missing; create it with:\n    cargo run --release --example train -- \
                 --profile upper_middle --epochs 60 --seed 42 --out {}",
                a.checkpoint.display(),
                a.checkpoint.display()
            ),
        ));
    }
    let (mut model, vocab) = succulm::Model::load(&a.checkpoint)?;
    for &(block, bond) in &a.tt {
        let spec = succulm::FfnTtSpec::for_config(model.config(), bond);
        let r = model.tensorize_ffn(block, &spec)?;
        eprintln!(
            "block {block}: FFN compressed at bond {bond} (relative errors {:.3} up, {:.3} down)",
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
    let mut answer = |prompt: &str| -> Result<()> {
        match generate_text(&model, &vocab, prompt, &cfg, &mut rng) {
            Ok(g) => println!("prompt='{prompt}' result='{}'", g.text(&vocab)),
            // A bad prompt is reported and skipped; other prompts still get answers.
            Err(e @ (Error::InvalidArgument { .. } | Error::SequenceTooLong { .. })) => {
                eprintln!("prompt {prompt:?}: {e}")
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

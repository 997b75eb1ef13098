//! Convert a checkpoint between the JSON and safetensors formats (the format is chosen by each
//! path's extension; weights are copied bit for bit).
//!
//! ```text
//! cargo run --release --example convert -- fixtures/succulm_upper_middle.json \
//!     fixtures/succulm_upper_middle.safetensors
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use succulm::nn::model::Model;
use succulm::study::cli::{self, Flags};
use succulm::{Error, Result};

const HELP: &str = "\
convert: convert a checkpoint between JSON and safetensors (weights copied bit for bit).

Usage: convert FROM TO

  FROM, TO   checkpoints; the format is chosen by each path's extension (.safetensors, or
             anything else for JSON). TO is checked before FROM is read, and written atomically.

Options:
  --help     this text";

fn parse(flags: &mut Flags) -> Result<(PathBuf, PathBuf)> {
    let mut paths = Vec::new();
    while let Some(arg) = flags.next_flag() {
        if arg.starts_with('-') && arg.len() > 1 {
            return Err(cli::unknown(&arg));
        }
        paths.push(PathBuf::from(arg));
    }
    let [from, to]: [PathBuf; 2] = paths.try_into().map_err(|paths: Vec<PathBuf>| {
        Error::invalid_arg(
            "arguments",
            format!(
                "expected two paths, FROM and TO, got {} (usage: convert FROM TO)",
                paths.len()
            ),
        )
    })?;
    cli::check_output_file("TO", &to)?;
    Ok((from, to))
}

fn run((from, to): (PathBuf, PathBuf)) -> Result<()> {
    let (model, vocab) = Model::load(&from)?;
    model.save(&to, &vocab)?;
    let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    println!(
        "{} ({} bytes) -> {} ({} bytes)",
        from.display(),
        size(&from),
        to.display(),
        size(&to)
    );
    Ok(())
}

fn main() -> ExitCode {
    cli::main(HELP, parse, run)
}

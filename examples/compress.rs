//! Compress the linear layers of any model's safetensors file into tensor trains.
//!
//! ```text
//! cargo run --release --example compress -- --input gpt2.safetensors --output gpt2_tt.safetensors \
//!     --pattern 'h.*.mlp.c_*.weight' --layout in_out --modes auto:3 --bond 16 \
//!     [--eps 0.3] [--budget 0.1] [--exact] [--in-modes 8,8,12 --out-modes 12,16,16] \
//!     [--tt-layout seed|matrix] [--calibration acts.safetensors --method whitened|scaled|weight] \
//!     [--threads 2] [--dtype input|f32] [--report report.json]
//! ```
//!
//! `--layout out_in` (alias `linear`) is PyTorch's `nn.Linear` `[out, in]`; `in_out` (alias
//! `conv1d`) is GPT-2's `Conv1D` `[in, out]`. The cores go to `--output` under
//! `<module>.cores.{k}` and `<module>.bias`, the specs in its metadata; a table per matrix is
//! printed (see `succulm::compress`). Every flag is checked before the input is read; the cores
//! and the report are written together or not at all (`succulm::compress::compress_files`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use succulm::compress::{
    compress_files, CompressConfig, CompressPaths, Modes, OutputDtype, Target, WeightLayout,
};
use succulm::study::cli::{self, Flags};
use succulm::study::sweep::Method;
use succulm::{Error, Result, TTLayout};

const HELP: &str = "\
compress: compress the linear layers of a safetensors file into tensor trains.

Usage: compress --input FILE --output FILE [OPTIONS]

Options:
  --input FILE          safetensors file holding the weights (required)
  --output FILE         safetensors file to write: <module>.cores.{k}, <module>.bias and the
                        specs in the metadata (required; checked first; never the input)
  --pattern GLOB        weights to compress: * any run, ? one character, several
                        comma-separated (default *.weight); of the tensors it matches, the
                        2-D float matrices are compressed and the rest (1-D LayerNorm weights,
                        integer buffers) skipped and listed, unless named exactly
  --layout L            how the weights are stored: out_in (alias linear, PyTorch nn.Linear,
                        default) or in_out (alias conv1d, GPT-2 Conv1D)
  --modes auto:D        each dimension factorised into D balanced modes (default auto:3)
  --in-modes LIST       explicit input modes, e.g. 8,8,12 (with --out-modes)
  --out-modes LIST      explicit output modes, e.g. 12,16,16 (with --in-modes)
  --bond N              every bond at most N (default 16)
  --eps F               relative Frobenius tolerance in [0, 1) (with --bond: both)
  --budget F            cores of at most a fraction F in (0, 1] of each weight's parameters
  --exact               no truncation
  --tt-layout L         core layout: seed (outputs then inputs, default) or matrix
  --calibration FILE    each layer's inputs [rows, in] under its weight or module name:
                        minimise a data-aware objective and report the output error
  --method M            objective with --calibration: whitened (default), scaled or weight
  --threads N           matrices compressed in parallel, 1..=1024 (default 1)
  --dtype D             dtype of the written cores: input (each weight's own: F16, BF16, F32
                        or F64; default) or f32
  --report FILE         also write the report as JSON (checked first; written together with
                        --output, or neither is)
  --help                this text

F32, F16, BF16 and F64 weights are read (as f32); the input is memory-mapped and only the
selected tensors are read. A table per matrix is printed: shape, layout, dtype, modes, bonds
reached, capped bonds, parameters before and after, relative weight error (of the cores as
written), FLOPs per row before and after; then the skipped tensors, and warnings on stderr.";

struct Args {
    paths: CompressPaths,
    config: CompressConfig,
}

/// A comma-separated list of positive integers.
fn list(flag: &str, v: &str) -> Result<Vec<usize>> {
    v.split(',')
        .map(|x| cli::int(flag, x, 1..=usize::MAX))
        .collect()
}

/// An error of a library parser, renamed after the flag that gave the value.
fn as_flag(flag: &str) -> impl FnOnce(Error) -> Error + '_ {
    move |e| match e {
        Error::InvalidArgument { reason, .. } => Error::invalid_arg(flag, reason),
        e => e,
    }
}

/// An error of a library check on a field (`in_modes`), renamed after its flag (`--in-modes`).
fn field_as_flag(e: Error) -> Error {
    match e {
        Error::InvalidArgument { name, reason } if !name.starts_with("--") => {
            Error::invalid_arg(format!("--{}", name.replace('_', "-")), reason)
        }
        e => e,
    }
}

fn parse(flags: &mut Flags) -> Result<Args> {
    let mut config = CompressConfig::default();
    let (mut input, mut output, mut calibration, mut report) = (None, None, None, None);
    let (mut bond, mut eps, mut budget, mut exact) = (None, None, None, false);
    let (mut in_modes, mut out_modes) = (None, None);
    let mut method = false;
    while let Some(flag) = flags.next_flag() {
        let f = flag.as_str();
        match f {
            "--exact" => exact = true,
            "--input" => input = Some(PathBuf::from(flags.value(f)?)),
            "--output" => output = Some(PathBuf::from(flags.value(f)?)),
            "--pattern" => config.pattern = flags.value(f)?,
            "--layout" => {
                config.layout = WeightLayout::parse(&flags.value(f)?).map_err(as_flag(f))?
            }
            "--modes" => {
                let v = flags.value(f)?;
                let d = v.strip_prefix("auto:").unwrap_or(&v);
                config.modes = Modes::Auto(cli::int(f, d, 1..=64).map_err(|_| {
                    Error::invalid_arg(
                        f,
                        format!("{} is not auto:D with D in 1..=64", cli::shown(&v)),
                    )
                })?);
            }
            "--in-modes" => in_modes = Some(list(f, &flags.value(f)?)?),
            "--out-modes" => out_modes = Some(list(f, &flags.value(f)?)?),
            "--bond" => bond = Some(cli::int(f, &flags.value(f)?, 1..=usize::MAX)?),
            "--eps" => eps = Some(cli::fraction(f, &flags.value(f)?, 1.0)?),
            "--budget" => budget = Some(cli::fraction(f, &flags.value(f)?, 0.0)?),
            "--tt-layout" => {
                let v = flags.value(f)?;
                config.tt_layout = match v.trim() {
                    "seed" => TTLayout::OutputsThenInputs,
                    "matrix" => TTLayout::Matrix,
                    _ => {
                        return Err(Error::invalid_arg(
                            f,
                            format!("{} is not seed or matrix", cli::shown(&v)),
                        ))
                    }
                }
            }
            "--calibration" => calibration = Some(PathBuf::from(flags.value(f)?)),
            "--method" => {
                config.method = Method::parse(&flags.value(f)?).map_err(as_flag(f))?;
                method = true;
            }
            "--dtype" => config.dtype = OutputDtype::parse(&flags.value(f)?).map_err(as_flag(f))?,
            "--report" => report = Some(PathBuf::from(flags.value(f)?)),
            "--threads" => config.threads = cli::int(f, &flags.value(f)?, 1..=1024)?,
            _ => return Err(cli::unknown(f)),
        }
    }
    match (in_modes, out_modes) {
        (Some(in_modes), Some(out_modes)) => {
            config.modes = Modes::Explicit {
                in_modes,
                out_modes,
            }
        }
        (None, None) => {}
        (Some(_), None) => return Err(Error::invalid_arg("--in-modes", "needs --out-modes too")),
        (None, Some(_)) => return Err(Error::invalid_arg("--out-modes", "needs --in-modes too")),
    }
    config.target = match (exact, bond, eps, budget) {
        (true, None, None, None) => Target::Exact,
        (false, Some(b), None, None) => Target::Bond(b),
        (false, None, Some(e), None) => Target::Eps(e),
        (false, Some(b), Some(e), None) => Target::BondAndEps(b, e),
        (false, None, None, Some(f)) => Target::Budget(f),
        (false, None, None, None) => config.target,
        (true, ..) => {
            return Err(Error::invalid_arg(
                "--exact",
                "excludes --bond, --eps and --budget",
            ))
        }
        (false, ..) => return Err(Error::invalid_arg("--budget", "excludes --bond and --eps")),
    };
    if method && calibration.is_none() {
        return Err(Error::invalid_arg(
            "--method",
            "chooses the objective on calibration inputs: give --calibration FILE too \
             (without it the plain TT-SVD is used)",
        ));
    }
    config.validate().map_err(field_as_flag)?;
    let input = input.ok_or_else(|| Error::invalid_arg("--input", "is required"))?;
    let output = output.ok_or_else(|| Error::invalid_arg("--output", "is required"))?;
    cli::check_output_file("--output", &output)?;
    if let Some(r) = &report {
        cli::check_output_file("--report", r)?;
    }
    let paths = CompressPaths {
        input,
        output,
        calibration,
        report,
    };
    paths.check().map_err(field_as_flag)?;
    Ok(Args { paths, config })
}

fn run(a: Args) -> Result<()> {
    let start = Instant::now();
    let r = compress_files(&a.paths, &a.config)?;
    let secs = start.elapsed().as_secs_f64();
    print!("{}", r.table());
    for w in r.warnings() {
        eprintln!("warning: {w}");
    }
    println!(
        "{} matrices: {} -> {} weight parameters ({:.1}x), {secs:.2} s (read, decompose, write) -> {}",
        r.matrices.len(),
        r.dense_params(),
        r.tt_params(),
        r.dense_params() as f64 / r.tt_params().max(1) as f64,
        a.paths.output.display()
    );
    if let Some(path) = &a.paths.report {
        println!("report -> {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    cli::main(HELP, parse, run)
}

//! Compress the linear layers of any model's safetensors file into tensor trains.
//!
//! ```text
//! cargo run --release --example compress -- --input gpt2.safetensors --output gpt2_tt.safetensors \
//!     --pattern 'h.*.mlp.c_*.weight' --layout in_out --modes auto:3 --bond 16 \
//!     [--eps 0.3] [--budget 0.1] [--exact] [--in-modes 8,8,12 --out-modes 12,16,16] \
//!     [--tt-layout seed|matrix] [--calibration acts.safetensors --method whitened|scaled|weight] \
//!     [--threads 2] [--report report.json]
//! ```
//!
//! `--layout out_in` (alias `linear`) is PyTorch's `nn.Linear` `[out, in]`; `in_out` (alias
//! `conv1d`) is GPT-2's `Conv1D` `[in, out]`. The cores go to `--output` under
//! `<module>.cores.{k}` and `<module>.bias`, the specs in its metadata; a table per matrix is
//! printed (see `succulm::compress`).

use std::path::PathBuf;
use std::time::Instant;

use succulm::compress::{compress_file, CompressConfig, Modes, Target, WeightLayout};
use succulm::study::sweep::Method;
use succulm::{Error, TTLayout};

fn list(flag: &str, v: &str) -> Result<Vec<usize>, Error> {
    v.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .map_err(|_| Error::invalid_arg(flag, format!("{v:?} is not a list of integers")))
        })
        .collect()
}

fn main() -> Result<(), Error> {
    let mut config = CompressConfig::default();
    let (mut input, mut output, mut calibration, mut report) = (None, None, None, None);
    let (mut bond, mut eps, mut budget, mut exact) = (None, None, None, false);
    let (mut in_modes, mut out_modes) = (None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--exact" {
            exact = true;
            continue;
        }
        let v = it
            .next()
            .ok_or_else(|| Error::invalid_arg(flag.clone(), "needs a value"))?;
        let num = |s: &str| {
            s.parse::<f64>()
                .map_err(|_| Error::invalid_arg(flag.clone(), format!("{s:?} is not a number")))
        };
        match flag.as_str() {
            "--input" => input = Some(PathBuf::from(v)),
            "--output" => output = Some(PathBuf::from(v)),
            "--pattern" => config.pattern = v,
            "--layout" => config.layout = WeightLayout::parse(&v)?,
            "--modes" => {
                let d = v.strip_prefix("auto:").unwrap_or(&v);
                config.modes = Modes::Auto(d.parse().map_err(|_| {
                    Error::invalid_arg("--modes", format!("{v:?} is not auto:<d>"))
                })?);
            }
            "--in-modes" => in_modes = Some(list("--in-modes", &v)?),
            "--out-modes" => out_modes = Some(list("--out-modes", &v)?),
            "--bond" => bond = Some(list("--bond", &v)?[0]),
            "--eps" => eps = Some(num(&v)?),
            "--budget" => budget = Some(num(&v)?),
            "--tt-layout" => {
                config.tt_layout = match v.as_str() {
                    "seed" => TTLayout::OutputsThenInputs,
                    "matrix" => TTLayout::Matrix,
                    _ => return Err(Error::invalid_arg("--tt-layout", "seed or matrix")),
                }
            }
            "--calibration" => calibration = Some(PathBuf::from(v)),
            "--method" => config.method = Method::parse(&v)?,
            "--report" => report = Some(PathBuf::from(v)),
            "--threads" => config.threads = list("--threads", &v)?[0],
            _ => return Err(Error::invalid_arg(flag, "unknown flag")),
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
        _ => {
            return Err(Error::invalid_arg(
                "--in-modes",
                "give both --in-modes and --out-modes",
            ))
        }
    }
    config.target = match (exact, bond, eps, budget) {
        (true, None, None, None) => Target::Exact,
        (false, Some(b), None, None) => Target::Bond(b),
        (false, None, Some(e), None) => Target::Eps(e),
        (false, Some(b), Some(e), None) => Target::BondAndEps(b, e),
        (false, None, None, Some(f)) => Target::Budget(f),
        (false, None, None, None) => config.target,
        _ => {
            return Err(Error::invalid_arg(
                "--budget",
                "--exact and --budget exclude the other truncation flags",
            ))
        }
    };
    let input = input.ok_or_else(|| Error::invalid_arg("--input", "required"))?;
    let output = output.ok_or_else(|| Error::invalid_arg("--output", "required"))?;

    let start = Instant::now();
    let r = compress_file(&input, &output, &config, calibration.as_deref())?;
    let secs = start.elapsed().as_secs_f64();
    print!("{}", r.table());
    println!(
        "{} matrices: {} -> {} weight parameters ({:.1}x), {secs:.2} s (read, decompose, write) -> {}",
        r.matrices.len(),
        r.dense_params(),
        r.tt_params(),
        r.dense_params() as f64 / r.tt_params().max(1) as f64,
        output.display()
    );
    if let Some(path) = report {
        let json = serde_json::to_vec_pretty(&r).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        succulm::fs::write_atomic(&path, &json)?;
    }
    Ok(())
}

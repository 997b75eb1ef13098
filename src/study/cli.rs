//! Command-line helpers shared by the examples (`examples/*.rs`): flags read one by one, values
//! parsed strictly (integers as integers with a range, floats finite and in their domain), error
//! messages that name the flag and quote the value as given (truncated, control characters
//! escaped), output locations checked before any work, and a stdout that a closed pipe does not
//! turn into a panic.
//!
//! ```
//! use succulm::study::cli::{self, Flags};
//!
//! let mut flags = Flags::new(["--epochs", "3", "--lr", "1e-3"].map(String::from));
//! let (mut epochs, mut lr) = (1usize, 0.1f32);
//! while let Some(flag) = flags.next_flag() {
//!     match flag.as_str() {
//!         "--epochs" => epochs = cli::int(&flag, &flags.value(&flag)?, 1..=1_000_000)?,
//!         "--lr" => lr = cli::positive_f32(&flag, &flags.value(&flag)?)?,
//!         _ => return Err(cli::unknown(&flag)),
//!     }
//! }
//! assert_eq!((epochs, lr), (3, 1e-3));
//! // Integers are integers: no silent rounding, no negative seeds, no NaN epochs.
//! assert!(cli::int::<u64>("--seed", "-1", 0..=u64::MAX).is_err());
//! assert!(cli::int::<usize>("--epochs", "0.5", 1..=10).is_err());
//! assert!(cli::positive_f32("--lr", "1e-46").is_err()); // below f32's range: not "0"
//! # Ok::<(), succulm::Error>(())
//! ```

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};

pub use crate::text::{shown, SHOWN_CHARS};

/// The flags of one command line, read in order.
#[derive(Debug, Clone)]
pub struct Flags {
    items: std::vec::IntoIter<String>,
}

impl Flags {
    /// The given arguments (without the program name).
    pub fn new(args: impl IntoIterator<Item = String>) -> Self {
        Flags {
            items: args.into_iter().collect::<Vec<_>>().into_iter(),
        }
    }

    /// The process's arguments, without the program name. An argument that is not valid UTF-8
    /// is kept lossily converted (and then rejected by whatever parses it).
    pub fn from_env() -> Self {
        Flags::new(
            std::env::args_os()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned()),
        )
    }

    /// The next argument (a flag, or a positional argument), if any.
    pub fn next_flag(&mut self) -> Option<String> {
        self.items.next()
    }

    /// The value that must follow `flag`; an error naming the flag if there is none.
    pub fn value(&mut self, flag: &str) -> Result<String> {
        self.items
            .next()
            .ok_or_else(|| Error::invalid_arg(flag, "needs a value (see --help)"))
    }
}

/// The error for a flag no parser knows.
pub fn unknown(flag: &str) -> Error {
    Error::invalid_arg(shown_flag(flag), "unknown option (see --help)")
}

/// A flag as an error names it: itself if short and printable, else [`shown`].
fn shown_flag(flag: &str) -> String {
    if flag.chars().count() <= SHOWN_CHARS && !flag.chars().any(char::is_control) {
        flag.to_string()
    } else {
        shown(flag)
    }
}

/// An integer of type `T` written in decimal (an optional leading `+`, no sign for unsigned
/// types, no fraction, no exponent), within `range`.
pub fn int<T>(flag: &str, value: &str, range: RangeInclusive<T>) -> Result<T>
where
    T: FromStr + PartialOrd + Display + Copy,
{
    let v: T = value.trim().parse().map_err(|_| {
        Error::invalid_arg(
            flag,
            format!(
                "{} is not an integer in {}..={}",
                shown(value),
                range.start(),
                range.end()
            ),
        )
    })?;
    if !range.contains(&v) {
        return Err(Error::invalid_arg(
            flag,
            format!(
                "{} is out of range {}..={}",
                shown(value),
                range.start(),
                range.end()
            ),
        ));
    }
    Ok(v)
}

/// A finite `f64` within `range` (inclusive).
pub fn float(flag: &str, value: &str, range: RangeInclusive<f64>) -> Result<f64> {
    let v: f64 = value
        .trim()
        .parse()
        .map_err(|_| Error::invalid_arg(flag, format!("{} is not a number", shown(value))))?;
    if !v.is_finite() {
        return Err(Error::invalid_arg(
            flag,
            format!("{} is not finite", shown(value)),
        ));
    }
    if !range.contains(&v) {
        return Err(Error::invalid_arg(
            flag,
            format!(
                "{} is out of range [{}, {}]",
                shown(value),
                range.start(),
                range.end()
            ),
        ));
    }
    Ok(v)
}

/// A finite `f32` > 0 that `f32` represents as a normal number (so `1e-46`, which would round to
/// 0 or to a denormal, is rejected as too small, not reported as "0").
pub fn positive_f32(flag: &str, value: &str) -> Result<f32> {
    let v = float(flag, value, f64::MIN_POSITIVE..=f64::MAX).map_err(|e| match e {
        Error::InvalidArgument { name, reason } if reason.contains("out of range") => {
            Error::invalid_arg(name, format!("{} must be > 0", shown(value)))
        }
        e => e,
    })?;
    if v > f32::MAX as f64 {
        return Err(Error::invalid_arg(
            flag,
            format!(
                "{} is above f32's largest value {:e}",
                shown(value),
                f32::MAX
            ),
        ));
    }
    if v < f32::MIN_POSITIVE as f64 {
        return Err(Error::invalid_arg(
            flag,
            format!(
                "{} is below f32's smallest normal value {:e}",
                shown(value),
                f32::MIN_POSITIVE
            ),
        ));
    }
    Ok(v as f32)
}

/// Checks, before any work, that a file can be written at `path`: a non-empty path with a file
/// name, not a directory, in an existing directory where a file can be created (probed by
/// creating and removing a hidden temporary file). The file itself is not touched.
pub fn check_output_file(flag: &str, path: &Path) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(Error::invalid_arg(flag, "is empty (expected a file path)"));
    }
    if path.file_name().is_none() {
        return Err(Error::invalid_arg(
            flag,
            format!("{} names no file", shown(&path.display().to_string())),
        ));
    }
    if path.is_dir() {
        return Err(Error::invalid_arg(
            flag,
            format!("{} is a directory", shown(&path.display().to_string())),
        ));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    probe_dir(flag, dir)
}

/// Checks, before any work, that `path` is (or can be created as) a directory where files can be
/// written: creates it (and its parents) if missing, then probes it with a temporary file.
pub fn check_output_dir(flag: &str, path: &Path) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(Error::invalid_arg(
            flag,
            "is empty (expected a directory path)",
        ));
    }
    if path.exists() && !path.is_dir() {
        return Err(Error::invalid_arg(
            flag,
            format!(
                "{} exists and is not a directory",
                shown(&path.display().to_string())
            ),
        ));
    }
    std::fs::create_dir_all(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    probe_dir(flag, path)
}

fn probe_dir(flag: &str, dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Err(Error::invalid_arg(
            flag,
            format!(
                "directory {} does not exist",
                shown(&dir.display().to_string())
            ),
        ));
    }
    let probe = dir.join(format!(".succulm-probe.{}.tmp", std::process::id()));
    std::fs::File::create(&probe).map_err(|source| Error::Io {
        path: probe.clone(),
        source,
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Makes writing to a closed pipe end the process quietly, as command-line tools do
/// (`talk --help | head -1`): restores the default action of `SIGPIPE`, which Rust's runtime
/// ignores (so `println!` would panic on `EPIPE`). Call it first thing in `main`. A no-op off Unix.
pub fn quiet_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default is async-signal-safe and is done
    // before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

//! Command-line helpers shared by the examples (`examples/*.rs`): a runner for `main`
//! ([`main`]: `--help`/`-h`, `error: <message>` and the exit code), flags read one by one
//! ([`Flags`], `--flag value` or `--flag=value`), values parsed strictly (integers as integers
//! with a range, floats finite and in their domain), error messages that name the flag and quote
//! the value as given (truncated, control characters escaped), output locations checked before
//! any work (and not left behind by a failed run), the shipped fixtures found from any working
//! directory ([`fixtures_dir`], [`checkpoint_file`]), and a stdout that a closed pipe does not
//! turn into a panic.
//!
//! ```
//! use succulm::study::cli::{self, Flags};
//!
//! let mut flags = Flags::new(["--epochs", "3", "--lr=1e-3"].map(String::from));
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
//!
//! An example's `main`, whole (`parse` reads the flags, `run` does the work):
//!
//! ```no_run
//! use std::process::ExitCode;
//! use succulm::study::cli::{self, Flags};
//!
//! const HELP: &str = "demo: say hello.\n\nOptions:\n  --name NAME   who (default world)\n  --help        this text";
//!
//! fn parse(flags: &mut Flags) -> succulm::Result<String> {
//!     let mut name = "world".to_string();
//!     while let Some(flag) = flags.next_flag() {
//!         match flag.as_str() {
//!             "--name" => name = flags.value(&flag)?,
//!             _ => return Err(cli::unknown(&flag)),
//!         }
//!     }
//!     Ok(name)
//! }
//!
//! fn main() -> ExitCode {
//!     cli::main(HELP, parse, |name| {
//!         println!("hello, {name}");
//!         Ok(())
//!     })
//! }
//! ```

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

use crate::error::{Error, Result};

pub use crate::text::{shown, SHOWN_CHARS};

/// The flags of one command line, read in order. A long flag may carry its value after `=`
/// (`--out=DIR` is `--out DIR`); [`Flags::value`] hands it out.
///
/// ```
/// use succulm::study::cli::Flags;
///
/// let mut flags = Flags::new(["--out=a=b", "--seed", "7", "--greedy=yes", "prompt"].map(String::from));
/// assert_eq!(flags.next_flag().as_deref(), Some("--out"));
/// assert_eq!(flags.value("--out")?, "a=b"); // split at the first `=` only
/// assert_eq!(flags.next_flag().as_deref(), Some("--seed"));
/// assert_eq!(flags.value("--seed")?, "7");
/// // A switch given a value: the value is not dropped silently; the next "flag" is the whole
/// // `--greedy=yes`, which no parser knows (see `cli::unknown`).
/// assert_eq!(flags.next_flag().as_deref(), Some("--greedy"));
/// assert_eq!(flags.next_flag().as_deref(), Some("--greedy=yes"));
/// assert_eq!(flags.next_flag().as_deref(), Some("prompt"));
/// assert_eq!(flags.next_flag(), None);
/// # Ok::<(), succulm::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Flags {
    items: std::vec::IntoIter<String>,
    /// The flag last returned by [`Flags::next_flag`] and the value it carried after `=`, until
    /// [`Flags::value`] takes it.
    inline: Option<(String, String)>,
}

impl Flags {
    /// The given arguments (without the program name).
    pub fn new(args: impl IntoIterator<Item = String>) -> Self {
        Flags {
            items: args.into_iter().collect::<Vec<_>>().into_iter(),
            inline: None,
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

    /// The next argument (a flag, or a positional argument), if any. `--flag=value` is returned
    /// as `--flag`, its value kept for [`Flags::value`]; if the parser does not take it (a switch
    /// such as `--greedy=yes`), the next call returns the whole `--flag=value`, for the parser to
    /// reject as unknown.
    pub fn next_flag(&mut self) -> Option<String> {
        if let Some((flag, value)) = self.inline.take() {
            return Some(format!("{flag}={value}"));
        }
        let item = self.items.next()?;
        match item.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") && flag.len() > 2 => {
                self.inline = Some((flag.to_string(), value.to_string()));
                Some(flag.to_string())
            }
            _ => Some(item),
        }
    }

    /// The value of `flag`: the one given after `=`, else the next argument; an error naming the
    /// flag if there is none.
    pub fn value(&mut self, flag: &str) -> Result<String> {
        if let Some((_, value)) = self.inline.take() {
            return Ok(value);
        }
        self.items
            .next()
            .ok_or_else(|| Error::invalid_arg(flag, "needs a value (see --help)"))
    }

    /// Whether the first argument is the subcommand `name`; if so it is consumed.
    ///
    /// ```
    /// use succulm::study::cli::Flags;
    ///
    /// let mut flags = Flags::new(["merge", "a.json"].map(String::from));
    /// assert!(!flags.subcommand("split"));
    /// assert!(flags.subcommand("merge"));
    /// assert_eq!(flags.next_flag().as_deref(), Some("a.json"));
    /// ```
    pub fn subcommand(&mut self, name: &str) -> bool {
        let first = self.items.as_slice().first().map(String::as_str);
        if self.inline.is_none() && first == Some(name) {
            self.items.next();
            true
        } else {
            false
        }
    }

    /// Whether `--help` or `-h` is among the arguments not read yet.
    pub fn wants_help(&self) -> bool {
        self.items
            .as_slice()
            .iter()
            .any(|a| a == "--help" || a == "-h")
    }
}

/// The `main` of an example: handles `--help`/`-h` (anywhere on the command line: `help` on
/// stdout, exit 0), then `parse`s the flags and `run`s. A parse error is printed as
/// `error: <message>` followed by `help`, on stderr, exit code 2 (a usage error); an error of the
/// run as `error: <message>`, exit code 1. Messages are the errors' `Display` (never `Debug`).
/// Writing to a closed stdout ends the process quietly ([`quiet_broken_pipe`]).
pub fn main<A>(
    help: &str,
    parse: impl FnOnce(&mut Flags) -> Result<A>,
    run: impl FnOnce(A) -> Result<()>,
) -> ExitCode {
    main_with(help, Flags::from_env(), parse, run)
}

/// [`main`] for a program with a `merge` subcommand (`PROGRAM merge PART... [--out DIR]`, parsed
/// by [`parse_merge`] with `merge_out` as the default directory): `merge` gets the parts and the
/// directory, every other command line goes through `parse` and `run`.
pub fn main_or_merge<A>(
    help: &str,
    merge_out: &str,
    parse: impl FnOnce(&mut Flags) -> Result<A>,
    run: impl FnOnce(A) -> Result<()>,
    merge: impl FnOnce((Vec<PathBuf>, PathBuf)) -> Result<()>,
) -> ExitCode {
    let mut flags = Flags::from_env();
    if flags.subcommand("merge") {
        return main_with(help, flags, |f| parse_merge(f, merge_out), merge);
    }
    main_with(help, flags, parse, run)
}

/// [`main`] on given flags: for a subcommand (`layer_sweep merge ...`), read its name with
/// [`Flags::next_flag`] and hand the rest here with the subcommand's help.
///
/// ```
/// use std::process::ExitCode;
/// use succulm::study::cli::{self, Flags};
///
/// let parse = |flags: &mut Flags| -> succulm::Result<Vec<String>> {
///     let mut parts = Vec::new();
///     while let Some(p) = flags.next_flag() {
///         parts.push(p);
///     }
///     Ok(parts)
/// };
/// let flags = Flags::new(["a.json", "b.json"].map(String::from));
/// let code = cli::main_with("merge PART...", flags, parse, |parts| {
///     assert_eq!(parts, ["a.json", "b.json"]);
///     Ok(())
/// });
/// assert_eq!(code, ExitCode::SUCCESS);
/// // `--help` anywhere: the help, exit 0, nothing parsed or run.
/// let flags = Flags::new(["a.json", "--help"].map(String::from));
/// let code = cli::main_with("merge PART...", flags, parse, |_| unreachable!());
/// assert_eq!(code, ExitCode::SUCCESS);
/// // A failed run: exit 1.
/// let flags = Flags::new(["a.json"].map(String::from));
/// let code = cli::main_with("merge PART...", flags, parse, |_| {
///     Err(succulm::Error::invalid_arg("part", "no such part"))
/// });
/// assert_eq!(code, ExitCode::FAILURE);
/// ```
pub fn main_with<A>(
    help: &str,
    mut flags: Flags,
    parse: impl FnOnce(&mut Flags) -> Result<A>,
    run: impl FnOnce(A) -> Result<()>,
) -> ExitCode {
    quiet_broken_pipe();
    if flags.wants_help() {
        println!("{help}");
        return ExitCode::SUCCESS;
    }
    let args = match parse(&mut flags) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e}\n\n{help}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The shipped fixtures, where this crate was built (`<crate>/fixtures`).
pub const SHIPPED_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

/// The shipped checkpoint's file name, in the fixtures directory.
pub const SHIPPED_CHECKPOINT: &str = "succulm_upper_middle.json";

/// A file every fixtures directory holds; a `fixtures/` in the working directory without it is
/// someone else's.
const FIXTURES_MARKER: &str = "succulm_probes.json";

/// The fixtures directory (corpus, probes, vocabulary): `given` (the `--fixtures` flag) if any,
/// which must be a directory; else `fixtures` in the working directory if it holds the crate's
/// fixtures; else the shipped fixtures where the crate was built ([`SHIPPED_FIXTURES`]), so the
/// examples work from any working directory. The error says which flag to pass.
///
/// ```
/// use std::path::Path;
/// use succulm::study::cli;
///
/// // From any working directory: the shipped fixtures.
/// let dir = cli::fixtures_dir(None)?;
/// assert!(dir.join("succulm_probes.json").is_file());
/// // A given directory is used as given, if it is one.
/// assert_eq!(cli::fixtures_dir(Some(Path::new(cli::SHIPPED_FIXTURES)))?, Path::new(cli::SHIPPED_FIXTURES));
/// let e = cli::fixtures_dir(Some(Path::new("/no/such/dir"))).unwrap_err();
/// assert!(e.to_string().contains("--fixtures"), "{e}");
/// # Ok::<(), succulm::Error>(())
/// ```
pub fn fixtures_dir(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = given {
        if !dir.is_dir() {
            return Err(Error::invalid_arg(
                "--fixtures",
                format!(
                    "{} is not a directory (pass --fixtures DIR, a directory holding the corpus, \
                     probes and vocabulary; the shipped one is {SHIPPED_FIXTURES})",
                    shown(&dir.display().to_string())
                ),
            ));
        }
        return Ok(dir.to_path_buf());
    }
    let local = Path::new("fixtures");
    if local.join(FIXTURES_MARKER).is_file() {
        return Ok(local.to_path_buf());
    }
    let shipped = Path::new(SHIPPED_FIXTURES);
    if shipped.join(FIXTURES_MARKER).is_file() {
        return Ok(shipped.to_path_buf());
    }
    Err(Error::invalid_arg(
        "--fixtures",
        format!(
            "no fixtures found (neither ./fixtures nor {SHIPPED_FIXTURES} holds \
             {FIXTURES_MARKER}): pass --fixtures DIR"
        ),
    ))
}

/// The checkpoint to load: `given` (the `--checkpoint` flag) if any, which must be a file; else
/// the shipped one, [`SHIPPED_CHECKPOINT`] in [`fixtures_dir`]`(None)`. The error says which flag
/// to pass.
///
/// ```
/// use std::path::Path;
/// use succulm::study::cli;
///
/// let shipped = cli::checkpoint_file(None)?;
/// assert!(shipped.ends_with("succulm_upper_middle.json") && shipped.is_file());
/// let e = cli::checkpoint_file(Some(Path::new("/no/such.json"))).unwrap_err();
/// assert!(e.to_string().contains("--checkpoint"), "{e}");
/// # Ok::<(), succulm::Error>(())
/// ```
pub fn checkpoint_file(given: Option<&Path>) -> Result<PathBuf> {
    let how = "pass --checkpoint PATH (a checkpoint saved by the train example, .json or \
               .safetensors)";
    if let Some(path) = given {
        if !path.is_file() {
            let what = if path.exists() {
                "is not a file"
            } else {
                "does not exist"
            };
            return Err(Error::invalid_arg(
                "--checkpoint",
                format!("{} {what}; {how}", shown(&path.display().to_string())),
            ));
        }
        return Ok(path.to_path_buf());
    }
    let dir = fixtures_dir(None).map_err(|_| {
        Error::invalid_arg(
            "--checkpoint",
            format!("the shipped checkpoint is not found (no fixtures directory); {how}"),
        )
    })?;
    let path = dir.join(SHIPPED_CHECKPOINT);
    if !path.is_file() {
        return Err(Error::invalid_arg(
            "--checkpoint",
            format!(
                "the shipped checkpoint {} is missing; {how}",
                path.display()
            ),
        ));
    }
    Ok(path)
}

/// The flags of [`crate::study::setup::SweepOptions`]' fields, for [`renamed`].
pub const SWEEP_FLAGS: &[(&str, &str)] = &[
    ("blocks", "--blocks"),
    ("bonds", "--bonds"),
    ("methods", "--methods"),
    ("samples", "--samples"),
    ("temperature", "--temperature"),
    ("threads", "--threads"),
    ("heal_epochs", "--heal-epochs"),
    ("budget", "--budget"),
];

/// `result` with an [`Error::InvalidArgument`] on one of the library's option names (`samples`,
/// `heal_epochs`, ...) renamed to the flag that sets it, from `flags`' `(name, flag)` pairs: a
/// check the library makes ([`crate::study::setup::SweepOptions::validate`], say) then names
/// the flag the user typed. Other errors pass unchanged.
///
/// ```
/// use succulm::study::cli;
/// let e = cli::renamed::<()>(
///     Err(succulm::Error::invalid_arg("heal_epochs", "too many")),
///     &[("heal_epochs", "--heal-epochs")],
/// );
/// assert_eq!(e.unwrap_err().to_string(), "invalid argument `--heal-epochs`: too many");
/// ```
pub fn renamed<T>(result: Result<T>, flags: &[(&str, &str)]) -> Result<T> {
    result.map_err(|e| match e {
        Error::InvalidArgument { name, reason } => {
            let name = flags
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(name, |(_, f)| f.to_string());
            Error::InvalidArgument { name, reason }
        }
        other => other,
    })
}

/// The error for a flag no parser knows (or, for `--flag=value`, a switch given a value).
pub fn unknown(flag: &str) -> Error {
    let reason = if flag.starts_with("--") && flag.contains('=') {
        "unknown option, or an option that takes no value (see --help)"
    } else {
        "unknown option (see --help)"
    };
    Error::invalid_arg(shown_flag(flag), reason)
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

/// A fraction in `(0, 1]` (`open_at` 0) or `[0, 1)` (`open_at` 1): [`float`] in `[0, 1]`,
/// with the open end refused as out of the interval.
///
/// ```
/// use succulm::study::cli::fraction;
/// assert_eq!(fraction("--budget", "0.5", 0.0).unwrap(), 0.5);
/// assert!(fraction("--budget", "0", 0.0).is_err());
/// assert!(fraction("--eps", "1", 1.0).is_err());
/// ```
pub fn fraction(flag: &str, value: &str, open_at: f64) -> Result<f64> {
    let v = float(flag, value, 0.0..=1.0)?;
    if v == open_at {
        let interval = if open_at == 0.0 { "(0, 1]" } else { "[0, 1)" };
        return Err(Error::invalid_arg(
            flag,
            format!("{} is not in {interval}", shown(value)),
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
/// name, missing or a regular file (or a symbolic link to one, which the write goes through),
/// not a directory, device, FIFO or socket, in an existing directory where a file can be
/// created (probed by creating and removing a hidden temporary file). The file itself is not
/// touched.
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
    // What the write will replace: a missing file, a regular file, or the regular file a
    // link leads to ([`crate::fs::write_atomic`]); anything else is refused now.
    let target = renamed(crate::fs::replaceable(path, true), &[("output", flag)])?;
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    probe_dir(flag, dir)
}

/// Checks, before any work, that `path` is (or can be created as) a directory where files can be
/// written: an existing directory is probed with a temporary file; a missing one is created (with
/// its missing parents), probed, and removed again, so that a run that fails later leaves no
/// empty directory behind. Whatever writes the outputs creates the directory (e.g.
/// [`crate::fs::write_set_atomic`]).
///
/// ```
/// use succulm::study::cli;
///
/// let dir = std::env::temp_dir().join(format!("succulm-cli-doc-{}", std::process::id()));
/// let out = dir.join("a/b");
/// cli::check_output_dir("--out", &out)?;
/// assert!(!dir.exists()); // checked, not created
/// std::fs::create_dir_all(&dir).unwrap();
/// let file = dir.join("file");
/// std::fs::write(&file, "x").unwrap();
/// assert!(cli::check_output_dir("--out", &file).is_err()); // not a directory
/// std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), succulm::Error>(())
/// ```
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
    // The directories this check creates, deepest first: removed again below.
    let created: Vec<&Path> = path
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .collect();
    let checked = std::fs::create_dir_all(path)
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
        .and_then(|()| probe_dir(flag, path));
    for dir in created {
        // Empty unless another process wrote there meanwhile; then it stays.
        let _ = std::fs::remove_dir(dir);
    }
    checked
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

/// The arguments of a `merge` subcommand (`PROGRAM merge PART... [--out DIR]`): the part files
/// and the output directory (`default_out` when `--out` is not given). Errors on an unknown
/// option or when no part is given.
pub fn parse_merge(flags: &mut Flags, default_out: &str) -> Result<(Vec<PathBuf>, PathBuf)> {
    let mut out = PathBuf::from(default_out);
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

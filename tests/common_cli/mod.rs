//! Runs the examples as a user does: the built binaries, not the library behind them.
//!
//! Examples are not `[[bin]]` targets, so cargo gives tests no `CARGO_BIN_EXE_*` for them and
//! `cargo test --test X` does not build them. [`example_bin`] builds one (`cargo build --example
//! NAME`, with the profile and target directory of the running test binary, so
//! `CARGO_TARGET_DIR` and `--release` are respected), once per test binary, and returns its path.
//!
//! ```ignore
//! mod common_cli;
//! let o = common_cli::run("talk", &["--help"], &std::env::temp_dir());
//! assert!(o.status.success());
//! ```
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

/// Examples built by this test binary so far.
static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());

/// The path of example `name`'s binary, built first (once per test binary) with the running
/// test's profile into its target directory. Panics, with cargo's output, if the build fails.
pub fn example_bin(name: &str) -> PathBuf {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(bin) = built.get(name) {
        return bin.clone();
    }
    // This test binary is `<target>/<profile>/deps/<test>-<hash>`.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lies in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("<target>/<profile>");
    let profile = profile_dir
        .file_name()
        .and_then(|p| p.to_str())
        .expect("a profile directory name");
    let mut cargo = Command::new(env!("CARGO"));
    // Without the variables cargo sets for this test process (it describes the package to the
    // test): a nested cargo that saw them would take the dependencies as changed and rebuild
    // them, and the next `cargo test` would rebuild them back.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_MANIFEST_LINKS",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&key.as_ref())
        {
            cargo.env_remove(key.as_ref());
        }
    }
    cargo
        .args(["build", "--quiet", "--example", name, "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            cargo.arg("--release");
        }
        other => {
            cargo.args(["--profile", other]);
        }
    }
    let out = cargo.output().expect("run cargo");
    assert!(
        out.status.success(),
        "cargo build --example {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "{} was not built", bin.display());
    built.insert(name.to_string(), bin.clone());
    bin
}

/// Runs example `name` with `args` in the working directory `cwd`, stdin empty; its exit status
/// and captured output.
pub fn run(name: &str, args: &[&str], cwd: &Path) -> Output {
    Command::new(example_bin(name))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"))
}

/// Runs example `name` with `args` from the repository root (where the README runs it); panics
/// with its stderr if it fails.
pub fn run_ok(name: &str, args: &[&str]) -> Output {
    let o = run(name, args, Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(
        o.status.success(),
        "{name} {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// What example `o` wrote to stderr, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure as a command-line tool reports one: a non-zero exit, `error: <Display>` on stderr
/// mentioning `needle`, no `Debug` form, no panic.
pub fn assert_cli_error(o: &Output, needle: &str, what: &str) {
    let e = stderr(o);
    assert!(!o.status.success(), "{what}: exited 0\n{e}");
    assert_ne!(o.status.code(), Some(101), "{what}: panicked\n{e}");
    // Progress lines may come first; the error is a line of its own.
    let at = e
        .match_indices("error: ")
        .map(|(i, _)| i)
        .find(|&i| i == 0 || e[..i].ends_with('\n'))
        .unwrap_or_else(|| panic!("{what}: no `error: ` line in {e}"));
    assert!(e[at..].contains(needle), "{what}: {needle:?} not in {e}");
    assert!(
        !e.contains("Error: ") && !e.contains("{ name:") && !e.contains("panicked"),
        "{what}: a Debug print or a panic: {e}"
    );
}

//! The user's path, through the built programs: `layer_sweep` as the README runs it writes
//! what the library's one study setup writes; N shards of it merged write the unsharded run's
//! files byte for byte (default options, several methods with a budget, healing); the same for
//! `replicate`.
//!
//! The examples are built once, in release (as CI's `cargo test --release` and the README run
//! them), by `tests/common_cli`.

mod common;
mod common_cli;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use succulm::study::setup::{Study, SweepOptions, SweepOutput};

/// Runs `program` with `args` from the repository root (where the README runs it); panics with
/// its stderr if it fails.
fn run(program: &str, args: &[&str]) -> Output {
    common_cli::run_ok(program, args)
}

/// Runs the N shards of `program` with `args` at once into `dir` (as N machines would), then
/// merges their parts into `merged`.
fn run_sharded(program: &str, args: &[&str], n: usize, dir: &Path, merged: &Path) {
    let dir_s = dir.to_str().unwrap();
    let children: Vec<_> = (1..=n)
        .map(|k| {
            let shard = format!("{k}/{n}");
            let mut all: Vec<&str> = args.to_vec();
            all.extend(["--out", dir_s, "--shard", &shard]);
            Command::new(common_cli::example_bin(program))
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .args(&all)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn a shard")
        })
        .collect();
    for (k, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().expect("wait for a shard");
        assert!(
            out.status.success(),
            "{program} shard {}/{n} {args:?} failed:\n{}",
            k + 1,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let parts: Vec<String> = (1..=n)
        .map(|k| dir.join(format!("part_{k}_of_{n}.json")))
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    let mut merge = vec!["merge"];
    merge.extend(parts.iter().map(String::as_str));
    merge.extend(["--out", merged.to_str().unwrap()]);
    run(program, &merge);
}

/// Every file under `dir` (recursively, hidden ones too) with its bytes, by relative path;
/// `skip` leaves out files whose name starts with it.
fn files(dir: &Path, skip: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if !skip.is_empty() && name.starts_with(skip) {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Asserts that `got` holds exactly the files of `want`, byte for byte.
#[track_caller]
fn assert_same_files(want: &[(String, Vec<u8>)], got: &[(String, Vec<u8>)], what: &str) {
    let names = |f: &[(String, Vec<u8>)]| f.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(want), names(got), "{what}: other files");
    for ((name, w), (_, g)) in want.iter().zip(got) {
        assert!(w == g, "{what}: {name} differs");
    }
}

/// The README's command, `cargo run --release --example layer_sweep`, with only `--out`: its
/// output directory (run once for the tests that compare with it).
fn default_run() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = common::temp_dir("user-sweep-default");
        run("layer_sweep", &["--out", dir.to_str().unwrap()]);
        dir
    })
}

#[test]
fn the_default_layer_sweep_writes_what_the_library_setup_writes() {
    let binary = files(default_run(), "");
    assert!(binary.iter().any(|(n, _)| n == "sweep.json"));
    assert!(binary.iter().any(|(n, _)| n == "report.html"));
    // The library: the same checkpoint, fixtures and default options, through the one setup.
    let study = Study::load(
        common::fixture("succulm_upper_middle.json"),
        common::fixture(""),
        SweepOptions::default(),
    )
    .unwrap();
    let setup = study.setup(&|_: &str| {}).unwrap();
    let experiments = setup.experiments().unwrap();
    let report = setup.run(&|_: &str| {}).unwrap();
    assert_eq!(report.cells.len(), 50);
    assert_eq!(report.settings.len(), 5, "the seed's settings are scored");
    let dir = common::temp_dir("user-sweep-library");
    SweepOutput::new(report, Some(experiments), study.options())
        .write(&dir)
        .unwrap();
    assert_same_files(&files(&dir, ""), &binary, "library vs layer_sweep");
}

#[test]
fn sharded_default_layer_sweep_merges_to_the_unsharded_files() {
    let want = files(default_run(), "");
    for n in [2, 3] {
        let parts = common::temp_dir(&format!("user-sweep-default-parts{n}"));
        let merged = common::temp_dir(&format!("user-sweep-default-merged{n}"));
        run_sharded("layer_sweep", &[], n, &parts, &merged);
        assert_same_files(&want, &files(&merged, ""), &format!("{n} shards"));
    }
}

#[test]
fn sharded_layer_sweep_merges_whatever_the_options() {
    // Several methods with a budget (calibration; budget requests split over the shards, one
    // shard of three with none), and healing by distillation (heal epochs carried through the
    // merge; one shard of two with no grid cell). Small grids: whitened truncation of the
    // seed's multi-block settings costs seconds each.
    let cases: [(&str, &[&str], &[usize]); 2] = [
        (
            "methods-budget",
            &[
                "--methods",
                "weight,whitened",
                "--budget",
                "0.5",
                "--blocks",
                "0",
                "--bonds",
                "20",
                "--samples",
                "2",
                "--no-experiments",
            ],
            &[2, 3],
        ),
        (
            "heal",
            &[
                "--blocks",
                "0",
                "--bonds",
                "10",
                "--samples",
                "2",
                "--heal-epochs",
                "1",
                "--heal",
                "distill",
            ],
            &[2],
        ),
    ];
    for (name, args, shard_counts) in cases {
        let whole = common::temp_dir(&format!("user-sweep-{name}"));
        let mut all = args.to_vec();
        all.extend(["--out", whole.to_str().unwrap()]);
        run("layer_sweep", &all);
        let want = files(&whole, "");
        assert!(want.iter().any(|(n, _)| n == "sweep.json"));
        for &n in shard_counts {
            let parts = common::temp_dir(&format!("user-sweep-{name}-parts{n}"));
            let merged = common::temp_dir(&format!("user-sweep-{name}-merged{n}"));
            run_sharded("layer_sweep", args, n, &parts, &merged);
            assert_same_files(&want, &files(&merged, ""), &format!("{name}, {n} shards"));
        }
    }
}

#[test]
fn sharded_replicate_merges_to_the_unsharded_run() {
    // Three small models trained for one epoch each (seeds 42, 43, 44), swept on a small grid.
    let args = [
        "--models",
        "3",
        "--profile",
        "small",
        "--epochs",
        "1",
        "--bonds",
        "5",
        "--samples",
        "2",
        "--threads",
        "1",
    ];
    let whole = common::temp_dir("user-replicate");
    let mut all = args.to_vec();
    all.extend(["--out", whole.to_str().unwrap()]);
    run("replicate", &all);
    let want = files(&whole, "");
    assert!(want.iter().any(|(n, _)| n == "replication.json"));
    assert!(want.iter().any(|(n, _)| n.starts_with("model_3")));
    let parts = common::temp_dir("user-replicate-parts");
    let merged = common::temp_dir("user-replicate-merged");
    run_sharded("replicate", &args, 2, &parts, &merged);
    // The aggregate, from the merge; each model's sweep files, from its shard.
    let mut got = files(&merged, "");
    got.extend(files(&parts, "part_"));
    got.sort();
    assert_same_files(&want, &got, "replicate, 2 shards");
}

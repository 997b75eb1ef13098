//! Issue 22, items 5 and 6, through the programs: `layer_sweep merge` and `replicate merge`
//! check every size a part file claims against the file's own content before allocating
//! anything of that size (item 5: a count set to 10^12 is an `error:` naming the file and the
//! field, exit 1, at once, within a limited address space), and refuse parts of different runs,
//! naming the field that differs and both parts (item 6).
//!
//! The parts are real ones, from small runs of the built programs, edited where a test says.

mod common;
mod common_cli;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The address space a merge runs in: a valid merge of these small parts needs far less, an
/// allocation of a size set to 10^12 far more (it fails, and the process aborts).
const ADDRESS_SPACE: u64 = 1 << 30;

/// How long a refused merge may take.
const PROMPT: Duration = Duration::from_secs(20);

/// Runs `program` with `args` from the repository root; panics with its stderr if it fails.
fn run(program: &str, args: &[&str]) {
    common_cli::run_ok(program, args);
}

/// Runs `program merge PARTS... --out OUT` within [`ADDRESS_SPACE`]; its output and how long it
/// took.
fn merge(program: &str, parts: &[PathBuf], out: &Path) -> (Output, Duration) {
    let mut cmd = Command::new(common_cli::example_bin(program));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("merge")
        .args(parts)
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null());
    // SAFETY: between fork and exec only `setrlimit` runs, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: ADDRESS_SPACE as libc::rlim_t,
                rlim_max: ADDRESS_SPACE as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let o = cmd.output().expect("run the merge");
    (o, started.elapsed())
}

/// Asserts that a merge failed as a user should see it: exit 1 (not an abort or a panic),
/// promptly, with an `error: ` line holding every one of `needles`.
#[track_caller]
fn assert_refused((o, took): &(Output, Duration), needles: &[&str], what: &str) {
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{what}: {:?}\n{e}", o.status);
    assert!(*took < PROMPT, "{what}: took {took:?}");
    let line = e
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{what}: no `error: ` line in {e}"));
    for n in needles {
        assert!(line.contains(n), "{what}: {n:?} not in {line:?}");
    }
    assert!(!e.contains("panicked"), "{what}: {e}");
}

/// Asserts that a merge succeeded, promptly.
#[track_caller]
fn assert_merged((o, took): &(Output, Duration), what: &str) {
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{what}: {:?}\n{e}", o.status);
    assert!(*took < PROMPT, "{what}: took {took:?}");
}

/// `dir/part_K_of_N.json`.
fn part_path(dir: &Path, k: usize, n: usize) -> PathBuf {
    dir.join(format!("part_{k}_of_{n}.json"))
}

/// Runs shard `k` of `n` of `program` with `args` into `dir`; the part's path.
fn shard(program: &str, args: &[&str], k: usize, n: usize, dir: &Path) -> PathBuf {
    let shard = format!("{k}/{n}");
    let mut all = args.to_vec();
    all.extend(["--shard", &shard, "--out", dir.to_str().unwrap()]);
    run(program, &all);
    part_path(dir, k, n)
}

/// `layer_sweep` on block 0 at bonds 10 and 5 (two cells), one sample a probe, the seed's five
/// settings and a budget request.
const SWEEP: [&str; 9] = [
    "--blocks",
    "0",
    "--bonds",
    "10,5",
    "--samples",
    "1",
    "--no-experiments",
    "--budget",
    "0.5",
];

/// The two parts of [`SWEEP`] in two shards (made once).
fn sweep_parts() -> &'static [PathBuf; 2] {
    static PARTS: OnceLock<[PathBuf; 2]> = OnceLock::new();
    two_parts(&PARTS, "layer_sweep", &SWEEP)
}

/// The two parts of `program` run with `args` in two shards, made once into `cell`.
fn two_parts(
    cell: &'static OnceLock<[PathBuf; 2]>,
    program: &str,
    args: &[&str],
) -> &'static [PathBuf; 2] {
    cell.get_or_init(|| {
        let dir = common::temp_dir(&format!("merge-checks-{program}"));
        [1, 2].map(|k| shard(program, args, k, 2, &dir))
    })
}

/// `replicate` of two `small` models trained for one epoch, swept at bond 5 on block 0.
const REPLICATE: [&str; 14] = [
    "--models",
    "2",
    "--profile",
    "small",
    "--epochs",
    "1",
    "--blocks",
    "0",
    "--bonds",
    "5",
    "--samples",
    "1",
    "--threads",
    "1",
];

/// The two parts of [`REPLICATE`] in two shards (made once).
fn replicate_parts() -> &'static [PathBuf; 2] {
    static PARTS: OnceLock<[PathBuf; 2]> = OnceLock::new();
    two_parts(&PARTS, "replicate", &REPLICATE)
}

/// Copies of `parts` into a directory of their own (`name`), with `edit` applied to the JSON of
/// those whose index is in `which`.
fn edited(
    parts: &[PathBuf],
    name: &str,
    which: &[usize],
    edit: &dyn Fn(&mut Value),
) -> Vec<PathBuf> {
    let dir = common::temp_dir(name);
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let to = dir.join(p.file_name().unwrap());
            let mut v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            if which.contains(&i) {
                edit(&mut v);
            }
            std::fs::write(&to, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
            to
        })
        .collect()
}

/// Sets the value at JSON pointer `at` to 10^12.
fn huge(at: &'static str) -> impl Fn(&mut Value) {
    move |v: &mut Value| *v.pointer_mut(at).unwrap() = Value::from(1_000_000_000_000u64)
}

fn name(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn item5_sweep_part_sizes_are_checked_before_allocating() {
    let parts = sweep_parts();
    let out = common::temp_dir("merge-checks-sweep-out");
    // The parts as written merge.
    assert_merged(&merge("layer_sweep", parts, &out), "the parts as written");
    // One total set to 10^12 in one part: that part and that field are named.
    for (at, which, needle) in [
        ("/cells_total", 0, "cells_total"),
        ("/cells_total", 1, "cells_total"),
        ("/settings_total", 0, "settings_total"),
        ("/budget_total", 1, "budget_total"),
        ("/cell_indices/0", 0, "cells_total"),
        ("/setting_indices/1", 1, "settings_total"),
    ] {
        let what = format!("{at} of part {} set to 10^12", which + 1);
        let p = edited(parts, "merge-checks-sweep-edit", &[which], &huge(at));
        let r = merge("layer_sweep", &p, &out);
        assert_refused(&r, &[&name(&p[which]), needle], &what);
    }
    // The shard count set to 10^12 in both parts: 2 of 10^12 shards given.
    huge_shard_count_refused("layer_sweep", parts, &out);
    // A total that fits the shard's share but not the grid the part describes.
    let p = edited(parts, "merge-checks-sweep-grid", &[0, 1], &|v| {
        v["cells_total"] = Value::from(3)
    });
    let r = merge("layer_sweep", &p, &out);
    assert_refused(
        &r,
        &[&name(&p[0]), "cells_total", "has 2"],
        "cells_total 3 for a grid of 2",
    );
    // The model's block count set to 10^12 in both parts describes no more than the parts hold:
    // nothing is allocated by it (the verdicts read it), and the merge completes.
    let p = edited(
        parts,
        "merge-checks-sweep-blocks",
        &[0, 1],
        &huge("/report/n_blocks"),
    );
    assert_merged(&merge("layer_sweep", &p, &out), "n_blocks set to 10^12");
}

/// `program merge` of `parts` with the shard count set to 10^12 in both: refused as 2 of 10^12
/// shards given, naming the first part. Returns the edited parts.
fn huge_shard_count_refused(program: &str, parts: &[PathBuf], out: &Path) -> Vec<PathBuf> {
    let tag = format!("merge-checks-{program}-count");
    let p = edited(parts, &tag, &[0, 1], &huge("/shard/count"));
    let r = merge(program, &p, out);
    assert_refused(
        &r,
        &[
            &name(&p[0]),
            "shard.count",
            "2 of 1000000000000 shards given",
        ],
        &format!("{program}: shard.count set to 10^12"),
    );
    p
}

#[test]
fn item5_replica_part_sizes_are_checked_before_allocating() {
    let parts = replicate_parts();
    let out = common::temp_dir("merge-checks-replicate-out");
    assert_merged(&merge("replicate", parts, &out), "the parts as written");
    for which in [0, 1] {
        let p = edited(
            parts,
            "merge-checks-rep-edit",
            &[which],
            &huge("/models_total"),
        );
        let r = merge("replicate", &p, &out);
        assert_refused(
            &r,
            &[
                &name(&p[which]),
                "models_total",
                "not its shard's 500000000000",
            ],
            &format!("models_total of part {} set to 10^12", which + 1),
        );
    }
    let p = huge_shard_count_refused("replicate", parts, &out);
    // One part alone, claiming 10^12 shards.
    let r = merge("replicate", &p[..1], &out);
    assert_refused(
        &r,
        &[
            &name(&p[0]),
            "1 of 1000000000000 shards given",
            "missing shard(s) 2/1000000000000",
        ],
        "one part of 10^12",
    );
}

#[test]
fn item6_replicate_merge_refuses_parts_of_other_runs() {
    let parts = replicate_parts();
    let out = common::temp_dir("merge-checks-replicate-runs");
    // Shard 2 of a run that differs in one flag: the field, and both parts, are named.
    for (flag, value, field) in [
        ("--epochs", "2", "run.epochs"),
        ("--seed", "7", "run.seed"),
        ("--samples", "2", "run.sweep.samples"),
        ("--bonds", "6", "run.sweep.bonds"),
        ("--temperature", "0.7", "run.sweep.temperature"),
        ("--sample-seed", "7", "run.sweep.seed"),
    ] {
        let dir = common::temp_dir(&format!("merge-checks-rep{flag}"));
        let mut args = REPLICATE.to_vec();
        match args.iter().position(|a| *a == flag) {
            Some(i) => args[i + 1] = value,
            None => args.extend([flag, value]),
        }
        let other = shard("replicate", &args, 2, 2, &dir);
        let r = merge("replicate", &[parts[0].clone(), other.clone()], &out);
        assert_refused(
            &r,
            &[
                &name(&other),
                field,
                "not of the same run as",
                &name(&parts[0]),
            ],
            flag,
        );
    }
}

#[test]
fn item6_sweep_merge_refuses_parts_of_other_healing_lengths() {
    // Healing for 1 epoch in shard 1 and 2 in shard 2: the reports' shapes agree (healing by
    // cross-entropy in both), the runs do not.
    let args = common::ONE_CELL_SWEEP;
    let dir = common::temp_dir("merge-checks-heal");
    let mut parts = Vec::new();
    for (k, epochs) in [(1, "1"), (2, "2")] {
        let mut all = args.to_vec();
        all.extend(["--heal-epochs", epochs]);
        parts.push(shard("layer_sweep", &all, k, 2, &dir));
    }
    let out = common::temp_dir("merge-checks-heal-out");
    let r = merge("layer_sweep", &parts, &out);
    assert_refused(
        &r,
        &[
            &name(&parts[1]),
            "run.heal_epochs",
            "2 here, 1 there",
            &name(&parts[0]),
        ],
        "heal epochs 1 and 2",
    );
}

//! Nothing lost, nothing trusted — the outputs and counts of the front doors, through the built
//! binaries as a user meets them: an output path that is not a regular file is refused (a link is
//! written through), every file of a sweep is one set (`report.html` included), every count has
//! a ceiling checked before any work, and flags that contradict each other or the model are
//! refused before any training.

mod common;
mod common_cli;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common_cli::{assert_cli_error, run, stderr};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// A sweep report shipped with the tests.
fn golden_report() -> succulm::study::sweep::SweepReport {
    let golden = repo().join("tests/golden/sweep_before_methods.json");
    succulm::study::report::read_json(&golden).unwrap()
}

/// A FIFO at `path` (a file that is not a regular file, which any user can make).
fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(ok.success());
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Runs `name` with `args` from the repository and checks it fails, promptly (well before any
/// training or sweep could finish), with an `error:` line holding every one of `needles`.
fn refused_at_once(name: &str, args: &[&str], needles: &[&str]) {
    common_cli::example_bin(name);
    let started = Instant::now();
    let o = run(name, args, repo());
    let what = format!("{name} {}", args.join(" "));
    for n in needles {
        assert_cli_error(&o, n, &what);
    }
    // The binary is built; a refusal reads at most the fixtures.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{what}: took {:?}\n{}",
        started.elapsed(),
        stderr(&o)
    );
}

/// Item 1: `convert`'s output (as `train --out`, `compress --output`: the same atomic write)
/// refuses a path that is not a regular file instead of replacing it, and writes through a
/// symbolic link to a regular file, leaving the link a link.
#[test]
fn an_output_that_is_not_a_regular_file_is_refused_and_a_link_is_written_through() {
    let dir = common::temp_dir("nl-output");
    let from = repo().join("fixtures/succulm_upper_middle.json");

    let fifo = dir.join("out.safetensors");
    mkfifo(&fifo);
    let o = run("convert", &[arg(&from), arg(&fifo)], &dir);
    assert_cli_error(&o, "is a FIFO, not a regular file", "convert to a FIFO");
    assert!(is_fifo(&fifo), "the FIFO was replaced");

    // A directory, and a link to one.
    let sub = dir.join("sub.safetensors");
    std::fs::create_dir(&sub).unwrap();
    let o = run("convert", &[arg(&from), arg(&sub)], &dir);
    assert_cli_error(&o, "is a directory", "convert to a directory");
    let link_to_fifo = dir.join("to_fifo.safetensors");
    std::os::unix::fs::symlink(&fifo, &link_to_fifo).unwrap();
    let o = run("convert", &[arg(&from), arg(&link_to_fifo)], &dir);
    assert_cli_error(
        &o,
        "a symbolic link to a FIFO",
        "convert to a link to a FIFO",
    );
    let dangling = dir.join("dangling.safetensors");
    std::os::unix::fs::symlink(dir.join("nowhere/x"), &dangling).unwrap();
    let o = run("convert", &[arg(&from), arg(&dangling)], &dir);
    assert_cli_error(&o, "leads to no file", "convert to a dangling link");
    assert!(std::fs::symlink_metadata(&dangling)
        .unwrap()
        .file_type()
        .is_symlink());

    // A link to a regular file elsewhere: the file is replaced, the link stays.
    let elsewhere = common::temp_dir("nl-output-target");
    let real = elsewhere.join("real.safetensors");
    std::fs::write(&real, b"old").unwrap();
    let link = dir.join("link.safetensors");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let o = run("convert", &[arg(&from), arg(&link)], &dir);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let (model, _) = succulm::Model::load(&real).unwrap();
    let (reference, _) = succulm::Model::load(&from).unwrap();
    assert_eq!(model.named_parameters(), reference.named_parameters());
    // Nothing else was left beside the link or the file.
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&elsewhere), ["real.safetensors"]);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&elsewhere).unwrap();
}

/// Item 1 for a set of files: a name of the set that stands in the output directory as a FIFO
/// or a link is refused before the first rename; the directory keeps what it held.
#[test]
fn a_set_refuses_special_files_and_links_among_its_names() {
    let dir = common::temp_dir("nl-set");
    let report = golden_report();
    let out = dir.join("sweep");
    succulm::study::report::write_all(&report, &out).unwrap();
    let before = std::fs::read(out.join("sweep.json")).unwrap();
    let mut changed = report.clone();
    changed.sample.seed += 1;

    std::fs::remove_file(out.join("table.txt")).unwrap();
    mkfifo(&out.join("table.txt"));
    let e = succulm::study::report::write_all(&changed, &out).unwrap_err();
    assert!(e.to_string().contains("is a FIFO"), "{e}");
    assert!(is_fifo(&out.join("table.txt")));
    assert_eq!(std::fs::read(out.join("sweep.json")).unwrap(), before);

    std::fs::remove_file(out.join("table.txt")).unwrap();
    let kept = dir.join("kept.txt");
    std::fs::write(&kept, b"mine").unwrap();
    std::os::unix::fs::symlink(&kept, out.join("table.txt")).unwrap();
    let e = succulm::study::report::write_all(&changed, &out).unwrap_err();
    assert!(e.to_string().contains("a symbolic link"), "{e}");
    assert_eq!(std::fs::read(&kept).unwrap(), b"mine");
    assert_eq!(std::fs::read(out.join("sweep.json")).unwrap(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A one-cell `layer_sweep` into `out` with sampling seed `seed`.
fn small_sweep(out: &Path, seed: &str) -> std::process::Output {
    let mut args = common::ONE_CELL_SWEEP.to_vec();
    args.extend(["--seed", seed, "--out", arg(out)]);
    run("layer_sweep", &args, repo())
}

/// Item 3: `report.html` belongs to the sweep's set of files. A second run whose page cannot be
/// written (`report.html` is a directory) changes nothing: the old code had already renamed the
/// new `sweep.json` and tables into place beside the previous run's page.
#[test]
fn report_html_is_written_with_the_rest_of_the_sweep_or_not_at_all() {
    let dir = common::temp_dir("nl-html");
    let out = dir.join("sweep");
    let o = small_sweep(&out, "1");
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest = std::fs::read_to_string(out.join(".succulm-set")).unwrap();
    assert!(manifest.lines().any(|l| l == "report.html"), "{manifest}");
    let files: Vec<PathBuf> = manifest.lines().map(|l| out.join(l)).collect();
    let before: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();

    std::fs::remove_file(out.join("report.html")).unwrap();
    std::fs::create_dir(out.join("report.html")).unwrap();
    let o = small_sweep(&out, "2");
    assert_cli_error(&o, "report.html", "a sweep whose page cannot be written");
    for (p, b) in files.iter().zip(&before) {
        if !p.ends_with("report.html") {
            assert!(&std::fs::read(p).unwrap() == b, "{} changed", p.display());
        }
    }

    // With the way clear, the second run replaces the whole set, its page included.
    std::fs::remove_dir(out.join("report.html")).unwrap();
    let o = small_sweep(&out, "2");
    assert!(o.status.success(), "{}", stderr(&o));
    let json = std::fs::read_to_string(out.join("sweep.json")).unwrap();
    assert_ne!(json.as_bytes(), &before[0][..]);
    assert!(std::fs::read_to_string(out.join("report.html"))
        .unwrap()
        .contains("<html"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 3 for the other runs: `replicate`'s files are a set too (its `.succulm-set` manifest
/// lists exactly them; `trap` writes through the same call).
#[test]
fn replication_files_are_a_set() {
    use succulm::study::replicate::Replication;
    let dir = common::temp_dir("nl-sets");
    let report = golden_report();
    let models = vec![succulm::study::replicate::ReplicaReport {
        label: "a".into(),
        report,
    }];
    let written = Replication::new(models).unwrap().write(&dir).unwrap();
    let manifest = std::fs::read_to_string(dir.join(".succulm-set")).unwrap();
    let mut listed: Vec<&str> = manifest.lines().collect();
    listed.sort();
    let mut names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(listed, names);
    assert_eq!(
        listed,
        ["replication.json", "replication.md", "replication.txt"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 8: every count has a ceiling, checked before anything is allocated or trained, named by
/// its flag (the old binaries took gigabytes, then aborted).
#[test]
fn counts_above_their_ceilings_are_refused_at_once() {
    let out = common::temp_dir("nl-counts");
    let o = arg(&out);
    let model = format!("{o}/m.json");
    // (tool, flag, value, the range the error gives)
    let cases = [
        ("replicate", "--models", "1000000000", "0..=10000"),
        ("replicate", "--epochs", "99999999999", "0..=1000000"),
        ("replicate", "--samples", "1000000000", "0..=100000"),
        ("trap", "--epochs", "5,99999999999", "0..=1000000"),
        ("trap", "--samples", "1000000000", "1..=100000"),
        ("layer_sweep", "--samples", "1000000000", "0..=100000"),
        ("layer_sweep", "--heal-epochs", "99999999999", "0..=100000"),
    ];
    for (tool, flag, value, range) in cases {
        let quoted = format!("`{flag}`");
        refused_at_once(tool, &[flag, value, "--out", o], &[&quoted, range]);
    }
    refused_at_once(
        "train",
        &["--epochs", "99999999999", "--out", &model],
        &["`--epochs`", "1..=1000000"],
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// Item 8 in the library, for the front doors that are not the CLI (the Python module calls
/// these): the ceilings are the options' own checks.
#[test]
fn the_library_checks_the_same_ceilings() {
    use succulm::nn::train::TrainConfig;
    use succulm::study::eval::SampleConfig;
    use succulm::study::replicate::ReplicateOptions;
    use succulm::study::setup::SweepOptions;
    let too_many = |e: succulm::Error, name: &str| {
        let s = e.to_string();
        assert!(
            s.contains(&format!("`{name}`")) && s.contains("ceiling"),
            "{s}"
        );
    };
    let o = SweepOptions {
        samples: SampleConfig::MAX_SAMPLES_PER_PROBE + 1,
        ..SweepOptions::default()
    };
    too_many(o.validate().unwrap_err(), "samples");
    let o = SweepOptions {
        heal_epochs: SweepOptions::MAX_HEAL_EPOCHS + 1,
        ..SweepOptions::default()
    };
    too_many(o.validate().unwrap_err(), "heal_epochs");
    assert!(SweepOptions {
        heal_epochs: SweepOptions::MAX_HEAL_EPOCHS,
        ..SweepOptions::default()
    }
    .validate()
    .is_ok());
    let o = ReplicateOptions {
        models: ReplicateOptions::MAX_MODELS + 1,
        ..ReplicateOptions::default()
    };
    too_many(o.validate().unwrap_err(), "models");
    let t = TrainConfig {
        epochs: TrainConfig::MAX_EPOCHS + 1,
        ..TrainConfig::default()
    };
    too_many(t.validate().unwrap_err(), "epochs");
    // The trainer refuses before it allocates a report per epoch.
    assert!(succulm::nn::train::Trainer::new(t).is_err());
}

/// Item 14: `replicate`'s flags are checked before any model is trained: blocks the profile does
/// not have, the same checkpoint twice (under two names too), seeds past `u64::MAX`, an empty
/// checkpoint name.
#[test]
fn replicate_refuses_bad_flags_before_training() {
    let out = common::temp_dir("nl-replicate");
    let o = arg(&out);
    let ckpt = repo().join("fixtures/succulm_upper_middle.json");
    // The same file under another name.
    let alias = out.join("alias.json");
    std::os::unix::fs::symlink(&ckpt, &alias).unwrap();
    let twice = format!("{},{}", arg(&ckpt), arg(&ckpt));
    let two_names = format!("{},{}", arg(&ckpt), arg(&alias));
    // (arguments, what the error says)
    let cases: [(&[&str], &[&str]); 5] = [
        (&["--blocks", "7", "--models", "2"], &["`--blocks`", "7"]),
        (
            &["--checkpoints", &twice],
            &["`--checkpoints`", "the same file"],
        ),
        (
            &["--checkpoints", &two_names],
            &["`--checkpoints`", "the same file"],
        ),
        (
            &["--seed", "18446744073709551615", "--models", "2"],
            &["`--seed`", "at most 18446744073709551614"],
        ),
        (
            &["--checkpoints", ""],
            &["`--checkpoints`", "entry 1 of 1 is an empty path"],
        ),
    ];
    for (args, needles) in cases {
        let mut args = args.to_vec();
        args.extend(["--out", o]);
        refused_at_once("replicate", &args, needles);
    }
    std::fs::remove_dir_all(&out).unwrap();
}

/// Item 14: switches that contradict each other, or that do nothing without another flag, are
/// refused instead of silently running something else.
#[test]
fn contradicting_or_idle_flags_are_refused() {
    let out = common::temp_dir("nl-flags");
    let o = arg(&out);
    refused_at_once(
        "trap",
        &["--frozen-only", "--trainable-only", "--out", o],
        &["`--trainable-only`", "exclude each other"],
    );
    refused_at_once(
        "layer_sweep",
        &["--heal", "distill", "--out", o],
        &["`--heal`", "--heal-epochs"],
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// A shard's part goes to an output directory that does not exist yet: the old binary did all
/// the work, then failed to write the part (`check_output_dir` had removed the directory it
/// probed), losing the run.
#[test]
fn a_shard_writes_its_part_into_a_new_directory() {
    let dir = common::temp_dir("nl-shard-dir");
    let out = dir.join("new/parts");
    let mut args = common::ONE_CELL_SWEEP.to_vec();
    args.extend(["--shard", "2/2", "--out", arg(&out)]);
    let o = run("layer_sweep", &args, repo());
    assert!(o.status.success(), "{}", stderr(&o));
    let part = succulm::study::shard::SweepPart::read(out.join("part_2_of_2.json")).unwrap();
    assert_eq!((part.shard.index, part.shard.count), (1, 2));
    std::fs::remove_dir_all(&dir).unwrap();
}

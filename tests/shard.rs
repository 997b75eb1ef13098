//! Sharded sweeps: N shards merged give the unsharded run's files byte for byte; bad part sets
//! are rejected with clear errors.

mod planted;
mod toy;

use std::path::{Path, PathBuf};

use planted::{evaluator, reference, Plant, METHODS};
use succulm::study::report;
use succulm::study::shard::{merge_parts, run_sweep_shard, Shard, SweepPart};
use succulm::study::sweep::{default_block_sets, run_grid, Grid, HealKind, SweepReport};
use toy::Bigram;

const BONDS: [usize; 3] = [50, 30, 10];

fn grid(sets: &[Vec<usize>], threads: usize) -> Grid<'_> {
    Grid {
        n_blocks: 4,
        methods: &METHODS,
        block_sets: sets,
        bonds: &BONDS,
        threads,
    }
}

type Heal = fn(&mut Bigram) -> succulm::Result<()>;

fn unsharded() -> SweepReport {
    let r = reference();
    let ev = evaluator(&r, 8);
    let sets = default_block_sets(4);
    run_grid(
        &ev,
        &grid(&sets, 2),
        |_, b: &[usize], bond| Plant::SEED.compress(&r, b, bond),
        None::<(HealKind, Heal)>,
        &|_: &str| {},
    )
    .unwrap()
}

fn part(shard: Shard, threads: usize) -> SweepPart {
    let r = reference();
    let ev = evaluator(&r, 8);
    let sets = default_block_sets(4);
    run_sweep_shard(
        &ev,
        &grid(&sets, threads),
        &[],
        shard,
        |_, b: &[usize], bonds: &[usize]| Plant::SEED.compress(&r, b, bonds[0]),
        None::<(HealKind, Heal)>,
        &|_: &str| {},
    )
    .unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("succulm-shard-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every file `write_all` writes (the HTML page included), by name.
fn files(report: &SweepReport, dir: &Path) -> Vec<(String, Vec<u8>)> {
    let written = report::write_all(report, dir).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = written
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn sharded_and_merged_equals_unsharded_byte_for_byte() {
    let whole = unsharded();
    let expected = files(&whole, &tmp("whole"));
    assert!(expected.len() > 20);
    for n in [1usize, 2, 3, 7] {
        let dir = tmp(&format!("parts{n}"));
        // Write each part to disk and read it back, as separate processes would.
        let mut paths = Vec::new();
        for k in 0..n {
            let shard = Shard::new(k, n).unwrap();
            let p = part(shard, 1 + k % 2);
            assert_eq!(p.cells_total, 15);
            assert_eq!(p.cell_indices, shard.owned(15));
            let path = dir.join(shard.file_name());
            p.write(&path).unwrap();
            paths.push(path);
        }
        // Any order of the parts.
        paths.reverse();
        let parts: Vec<SweepPart> = paths.iter().map(|p| SweepPart::read(p).unwrap()).collect();
        let (merged, extra) = merge_parts(parts).unwrap();
        assert!(extra.is_null());
        let got = files(&merged, &tmp(&format!("merged{n}")));
        assert_eq!(got.len(), expected.len(), "N = {n}");
        for ((en, eb), (gn, gb)) in expected.iter().zip(&got) {
            assert_eq!(en, gn);
            assert!(eb == gb, "N = {n}: {en} differs");
        }
    }
}

#[test]
fn every_cell_is_in_exactly_one_shard() {
    for n in [1usize, 2, 3, 7, 20] {
        let mut seen = vec![0; 15];
        for k in 0..n {
            for i in Shard::new(k, n).unwrap().owned(15) {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "N = {n}: {seen:?}");
    }
}

#[test]
fn shard_specs_parse_and_bad_ones_are_rejected() {
    assert_eq!(Shard::parse("1/1").unwrap(), Shard::WHOLE);
    assert_eq!(Shard::parse(" 3/7 ").unwrap(), Shard::new(2, 7).unwrap());
    for bad in ["0/3", "4/3", "1/0", "3", "a/b", "1/2/3", ""] {
        let e = Shard::parse(bad).unwrap_err().to_string();
        assert!(e.contains("K/N"), "{bad}: {e}");
    }
    assert!(Shard::new(3, 3).is_err());
    assert!(Shard::new(0, 0).is_err());
}

#[test]
fn incomplete_duplicated_or_foreign_parts_are_rejected() {
    let parts: Vec<SweepPart> = (0..3).map(|k| part(Shard::new(k, 3).unwrap(), 2)).collect();
    // A missing shard.
    let e = merge_parts(parts[..2].to_vec()).unwrap_err().to_string();
    assert!(e.contains("missing shard(s) 3/3"), "{e}");
    // A shard twice.
    let e = merge_parts(vec![parts[0].clone(), parts[1].clone(), parts[1].clone()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("given twice"), "{e}");
    // A part of another run (different sampling seed).
    let mut other = parts[2].clone();
    other.report.sample.seed += 1;
    let e = merge_parts(vec![parts[0].clone(), parts[1].clone(), other])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not of the same run"), "{e}");
    // A part of another shard count.
    let half = part(Shard::new(1, 2).unwrap(), 2);
    let e = merge_parts(vec![parts[0].clone(), half])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not of the same run"), "{e}");
    // A part that lost a cell.
    let mut short = parts[1].clone();
    short.report.cells.pop();
    let e = merge_parts(vec![parts[0].clone(), short, parts[2].clone()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not its shard's"), "{e}");
    assert!(merge_parts(vec![]).is_err());
    // A part file that is not JSON.
    let dir = tmp("bad");
    let p = dir.join("part.json");
    std::fs::write(&p, "{").unwrap();
    let e = SweepPart::read(&p).unwrap_err().to_string();
    assert!(e.contains("part.json"), "{e}");
}

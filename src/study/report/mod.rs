//! The sweep's outputs: CSV and JSON (written atomically), a plain-text table, SVG charts
//! ([`svg`]), the verdict on the seed's claims ([`verdict`]), the comparison of data-aware
//! truncation with plain TT-SVD ([`compare`]) and the parameter-budget table
//! ([`format_budget`]).
//!
//! A sweep of one method prints exactly as before the method axis existed: the `method` column,
//! the comparison and the per-method charts appear only when the report has more than one
//! method.

pub mod compare;
pub mod html;
pub mod metrics;
pub mod svg;
pub mod verdict;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use metrics::{Metric, MetricDef, Subject};

use crate::error::{Error, Result};
use crate::study::eval::CellMetrics;
use crate::study::sweep::{block_label, CompressionInfo, SweepCell, SweepReport};
use metrics::{in_csv, in_table, Csv, Table, HEADLINE, REGISTRY};

pub use crate::fs::write_atomic;

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else {
        format!("{x}")
    }
}

/// `block.projection=value` of every projection, joined by `;` (empty when no value is known).
fn per_projection(
    c: &CompressionInfo,
    f: impl Fn(&crate::study::sweep::ProjectionError) -> String,
) -> String {
    let items: Vec<String> = c
        .projections
        .iter()
        .map(|p| (p, f(p)))
        .filter(|(_, v)| !v.is_empty())
        .map(|(p, v)| format!("{}.{}={v}", p.block, p.projection))
        .collect();
    items.join(";")
}

/// The report as CSV: one row for the dense reference (`stage = dense`), one per cell
/// (`compressed`) and one per healed cell (`healed`), cells in report order (method major).
/// Columns: `stage, blocks, bond, ffn_params_dense, ffn_params_tt, rel_errors`
/// (`block.projection=error` joined by `;`), then the key of every [`Csv::Main`] metric
/// ([`Metric::ALL`]); then `answers, fluency_se, positions`; then, added with the method axis,
/// `method` (empty for dense), `heal` (the healing kind, on healed rows), the key of every
/// [`Csv::Late`] metric (`max_output_error, max_val_output_error`), `output_errors,
/// val_output_errors` (per projection like `rel_errors`), `bond_dims`
/// (`block.projection=r1xr2x…`), `fact_answers, seed_answers`. NaN is an empty field.
pub fn to_csv(report: &SweepReport) -> String {
    let fluency = Metric::FluencyNll.def();
    let mut s = String::from("stage,blocks,bond,ffn_params_dense,ffn_params_tt,rel_errors");
    for d in in_csv(Csv::Main) {
        s.push(',');
        s.push_str(d.key);
    }
    let _ = write!(s, ",answers,{},positions,method,heal", fluency.se_header());
    for d in in_csv(Csv::Late) {
        s.push(',');
        s.push_str(d.key);
    }
    s.push_str(",output_errors,val_output_errors,bond_dims,fact_answers,seed_answers\n");
    let tail = |m: &CellMetrics| {
        format!(
            ",{},{},{}",
            m.sampled.answers,
            num(fluency.se(m)),
            m.teacher_forced.positions
        )
    };
    let counts =
        |m: &CellMetrics| format!(",{},{}\n", m.sampled.fact_answers, m.sampled.seed_answers);
    s.push_str("dense,,,,,");
    for d in in_csv(Csv::Main) {
        s.push(',');
        s.push_str(&num(d.value(Subject::Dense(&report.reference))));
    }
    s.push_str(&tail(&report.reference));
    s.push_str(",,,,,,,");
    s.push_str(&counts(&report.reference));
    for healed in [false, true] {
        let stage = if healed { "healed" } else { "compressed" };
        for c in &report.cells {
            let subject = Subject::cell(c, healed);
            let Some(metrics) = subject.metrics() else {
                continue;
            };
            let errs = per_projection(&c.compression, |p| p.rel_error.to_string());
            let _ = write!(
                s,
                "{stage},{},{},{},{},{}",
                csv_field(&block_label(&c.blocks, report.n_blocks)),
                c.bond,
                c.compression.ffn_params_dense,
                c.compression.ffn_params_tt,
                csv_field(&errs)
            );
            for d in in_csv(Csv::Main) {
                s.push(',');
                s.push_str(&num(d.value(subject)));
            }
            s.push_str(&tail(metrics));
            let heal = match (healed, c.heal) {
                (true, Some(k)) => k.key(),
                _ => "",
            };
            let _ = write!(s, ",{},{heal}", c.method.key());
            for d in in_csv(Csv::Late) {
                s.push(',');
                s.push_str(&num(d.value(subject)));
            }
            let _ = write!(
                s,
                ",{},{},{}",
                csv_field(&per_projection(&c.compression, |p| num(p.output_error))),
                csv_field(&per_projection(&c.compression, |p| num(p.val_output_error))),
                csv_field(&per_projection(&c.compression, |p| {
                    p.bond_dims
                        .iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join("x")
                })),
            );
            s.push_str(&counts(metrics));
        }
    }
    s
}

/// The report as pretty JSON (NaN becomes `null`).
pub fn to_json(report: &SweepReport) -> Result<String> {
    crate::fs::to_json_pretty(report, "report")
}

/// Reads a report written by [`write_all`] (`sweep.json`), e.g. to redraw charts.
pub fn read_json(path: impl AsRef<Path>) -> Result<SweepReport> {
    crate::fs::read_json(path.as_ref())
}

fn fmt(x: f64, prec: usize) -> String {
    if x.is_nan() {
        "-".to_string()
    } else {
        format!("{x:.prec$}")
    }
}

/// Lays out `rows` (the first is the header, followed by a rule) in columns two spaces apart:
/// columns with `left[j]` left-aligned, the others right-aligned; trailing spaces trimmed.
pub(crate) fn render(rows: &[Vec<String>], left: &[bool]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let widths: Vec<usize> = (0..first.len())
        .map(|j| {
            rows.iter()
                .map(|r| r.get(j).map_or(0, |x| x.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(j, (x, &w))| {
                if left.get(j).copied().unwrap_or(false) {
                    format!("{x:<w$}")
                } else {
                    format!("{x:>w$}")
                }
            })
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
        if i == 0 {
            let total = widths.iter().sum::<usize>() + 2 * (widths.len().max(1) - 1);
            s.push_str(&"-".repeat(total));
            s.push('\n');
        }
    }
    s
}

/// Whether the report has cells of more than one method (then its views get a method column).
fn multi_method(report: &SweepReport) -> bool {
    report.swept_methods().len() > 1
}

/// The cells grouped by method ([`SweepReport::swept_methods`] order), report order within.
fn cells_by_method(report: &SweepReport) -> Vec<&SweepCell> {
    report
        .swept_methods()
        .into_iter()
        .flat_map(|m| report.cells_of(m))
        .collect()
}

/// A column of the tables: a metric's value or its standard error, read from the registry.
#[derive(Debug, Clone, Copy)]
enum Column {
    Value(&'static MetricDef),
    Se(&'static MetricDef),
}

impl Column {
    fn header(self) -> String {
        match self {
            Column::Value(d) => d.header.to_string(),
            Column::Se(d) => d.se_header(),
        }
    }

    fn cell(self, subject: Subject) -> String {
        match self {
            Column::Value(d) => fmt(d.value(subject), d.digits),
            Column::Se(d) => fmt(subject.metrics().map_or(f64::NAN, |m| d.se(m)), d.digits),
        }
    }
}

/// The grid table's columns: every [`Table::Grid`] metric.
fn grid_columns() -> Vec<Column> {
    in_table(Table::Grid).map(Column::Value).collect()
}

/// The seed settings' table's columns: the grid's, then, in registry order, every
/// [`Table::Settings`] metric and every standard error marked [`MetricDef::se_column`].
fn settings_columns() -> Vec<Column> {
    let mut columns = grid_columns();
    for d in &REGISTRY {
        if d.table == Table::Settings {
            columns.push(Column::Value(d));
        }
        if d.se_column {
            columns.push(Column::Se(d));
        }
    }
    columns
}

/// A table being built: a header (two label columns, `method` when the report has more than
/// one method, then the metric columns), the dense reference's row, then one row per
/// [`Tabulation::row`].
struct Tabulation {
    columns: Vec<Column>,
    multi: bool,
    rows: Vec<Vec<String>>,
    left: Vec<bool>,
}

impl Tabulation {
    fn new(report: &SweepReport, labels: [(&str, bool); 2], columns: Vec<Column>) -> Self {
        let multi = multi_method(report);
        let mut header: Vec<String> = labels.iter().map(|l| l.0.to_string()).collect();
        let mut left: Vec<bool> = labels.iter().map(|l| l.1).collect();
        if multi {
            header.push("method".into());
            left.push(true);
        }
        header.extend(columns.iter().map(|c| c.header()));
        let mut t = Tabulation {
            columns,
            multi,
            rows: vec![header],
            left,
        };
        t.row(
            "dense".into(),
            "-".into(),
            "-",
            Subject::Dense(&report.reference),
        );
        t
    }

    fn row(&mut self, label: String, second: String, method: &str, subject: Subject) {
        let mut r = vec![label, second];
        if self.multi {
            r.push(method.into());
        }
        r.extend(self.columns.iter().map(|c| c.cell(subject)));
        self.rows.push(r);
    }
}

/// The grid table's rows (header, dense reference, every cell and its healed row, marked `h`,
/// grouped by method) and which columns are left-aligned: [`format_table`] and the HTML table.
pub(crate) fn grid_table(report: &SweepReport) -> (Vec<Vec<String>>, Vec<bool>) {
    let mut t = Tabulation::new(report, [("blocks", true), ("bond", false)], grid_columns());
    for c in cells_by_method(report) {
        for healed in [false, true] {
            if healed && c.healed.is_none() {
                continue;
            }
            let mut label = block_label(&c.blocks, report.n_blocks);
            if healed {
                label.push_str(" h");
            }
            t.row(
                label,
                c.bond.to_string(),
                c.method.key(),
                Subject::cell(c, healed),
            );
        }
    }
    (t.rows, t.left)
}

/// A plain-text table: the dense reference, then every cell (and its healed row, marked `h`),
/// with a column per [`Table::Grid`] metric. With more than one method, a `method` column
/// follows `bond` and the rows are grouped by method.
pub fn format_table(report: &SweepReport) -> String {
    let (rows, left) = grid_table(report);
    render(&rows, &left)
}

/// The seed's settings ([`SweepReport::settings`]) as a table: one row per setting (and its
/// healed row, marked `h`), with the grid table's columns and, after them, the settings-only
/// metrics and standard errors (the fluency's standard error, the gender-probe accuracy and the
/// novel word-link rate with its standard error). Empty when the report has no setting.
pub fn format_settings(report: &SweepReport) -> String {
    if report.settings.is_empty() {
        return String::new();
    }
    let mut t = Tabulation::new(
        report,
        [("setting", true), ("bonds", true)],
        settings_columns(),
    );
    for c in &report.settings {
        for (healed, metrics) in [(false, Some(&c.metrics)), (true, c.healed.as_ref())] {
            let Some(metrics) = metrics else { continue };
            let mut label = c.id.clone();
            if healed {
                label.push_str(" h");
            }
            let bonds: Vec<String> = c
                .blocks
                .iter()
                .zip(&c.bonds)
                .map(|(b, d)| format!("{b}:{d}"))
                .collect();
            t.row(
                label,
                bonds.join(","),
                c.method.key(),
                Subject::Compressed(&c.compression, Some(metrics)),
            );
        }
    }
    render(&t.rows, &t.left)
}

/// How much of the damage healing undid: `(compressed − healed) / (compressed − dense)`
/// (1 = fully recovered, 0 = no change, negative = worse; NaN when compression did no damage).
pub fn recovery(dense: f64, compressed: f64, healed: f64) -> f64 {
    let damage = compressed - dense;
    if damage.abs() < 1e-12 || !damage.is_finite() {
        f64::NAN
    } else {
        (compressed - healed) / damage
    }
}

/// The metrics of the healing table ([`format_healing`]), in its order.
pub const HEALED: [Metric; 5] = [
    Metric::Loss,
    Metric::Kl,
    Metric::Accuracy,
    Metric::FactAccuracy,
    Metric::FluencyNll,
];

/// A table of what healing recovered, per healed cell, for the [`HEALED`] metrics (with more
/// than one method, a `method` column follows `bond` and the rows are grouped by method).
/// Recovery is [`recovery`] as a percentage; `~` marks a sampled metric whose damage is within
/// two standard errors ([`MetricDef::se_or`], binomial ones over `samples_per_probe` answers in
/// reports that predate the counts) — nothing to recover —, `-` no damage at all.
pub fn format_healing(report: &SweepReport) -> String {
    let metrics = HEALED.map(Metric::def);
    let multi = multi_method(report);
    let mut s = String::from("blocks  bond");
    if multi {
        s.push_str("  method  ");
    }
    for m in metrics {
        let _ = write!(s, "  {:>26}", format!("{} (recovered)", m.key));
    }
    s.push('\n');
    let mut any = false;
    for c in cells_by_method(report)
        .into_iter()
        .filter(|c| c.healed.is_some())
    {
        any = true;
        let _ = write!(
            s,
            "{:<6}  {:>4}",
            block_label(&c.blocks, report.n_blocks),
            c.bond
        );
        if multi {
            let _ = write!(s, "  {:<8}", c.method.key());
        }
        for m in metrics {
            let (d, a, b) = (
                m.value(Subject::Dense(&report.reference)),
                m.value(Subject::cell(c, false)),
                m.value(Subject::cell(c, true)),
            );
            let r = recovery(d, a, b);
            // A sampled metric whose damage is within two standard errors has nothing to
            // recover: its percentage would be noise over noise.
            let n = report.sample.samples_per_probe;
            let noise = 2.0 * m.se_or(&report.reference, n).hypot(m.se_or(&c.metrics, n));
            // Three digits for every metric: the table's own layout.
            let cell = format!(
                "{}->{} ({})",
                fmt(a, 3),
                fmt(b, 3),
                if r.is_nan() {
                    "-".into()
                } else if (a - d).abs() <= noise {
                    "~".into()
                } else {
                    format!("{:.0}%", 100.0 * r)
                }
            );
            let _ = write!(s, "  {cell:>26}");
        }
        s.push('\n');
    }
    if any {
        s
    } else {
        String::new()
    }
}

/// A projection's bond dims as `r1xr2x…` (`-` when not recorded).
fn bonds_text(dims: &[usize]) -> String {
    if dims.is_empty() {
        "-".into()
    } else {
        dims.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("x")
    }
}

/// The parameter-budget comparisons ([`crate::study::sweep::run_budget`]) as a table: per budget cell,
/// the uniform and the allocated arm with their TT parameters, discarded energy (the
/// allocator's objective), the [`HEADLINE`] metrics (KL, fact accuracy, fluency NLL and
/// seed-answer rate), then each arm's bond dims per projection. Empty when the report has no
/// budget cell.
pub fn format_budget(report: &SweepReport) -> String {
    if report.budget.is_empty() {
        return String::new();
    }
    let cols = HEADLINE.map(Metric::def);
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header: Vec<String> = [
        "method",
        "blocks",
        "budget",
        "dense_params",
        "arm",
        "tt_params",
        "discarded",
    ]
    .map(String::from)
    .to_vec();
    header.extend(cols.iter().map(|d| d.header.to_string()));
    rows.push(header);
    let mut dense: Vec<String> = vec!["dense".into()];
    dense.extend(["-"; 6].map(String::from));
    let dense_subject = Subject::Dense(&report.reference);
    dense.extend(cols.iter().map(|d| fmt(d.value(dense_subject), d.digits)));
    rows.push(dense);
    let mut bonds = String::new();
    for b in &report.budget {
        let label = block_label(&b.blocks, report.n_blocks);
        for (arm, a) in [("uniform", &b.uniform), ("allocated", &b.allocated)] {
            let mut r = vec![
                b.method.key().to_string(),
                label.clone(),
                format!("{}%", fmt(100.0 * b.fraction, 0)),
                a.compression.ffn_params_dense.to_string(),
                arm.to_string(),
                a.compression.ffn_params_tt.to_string(),
                fmt(a.discarded_energy, 4),
            ];
            let arm_subject = Subject::Compressed(&a.compression, Some(&a.metrics));
            r.extend(cols.iter().map(|d| fmt(d.value(arm_subject), d.digits)));
            rows.push(r);
            let dims: Vec<String> = a
                .compression
                .projections
                .iter()
                .map(|p| format!("{}.{} {}", p.block, p.projection, bonds_text(&p.bond_dims)))
                .collect();
            let _ = writeln!(
                bonds,
                "{} blocks {label}, {arm}: {}",
                b.method.key(),
                if dims.is_empty() {
                    "-".to_string()
                } else {
                    dims.join(", ")
                }
            );
        }
    }
    let mut s = String::from(
        "Budget: the same TT parameter count spent with one middle bond everywhere (uniform: the \
         largest that fits) or with bonds chosen per projection by the allocator (allocated: at \
         most the uniform arm's parameters); discarded = the allocator's objective, the total \
         whitened energy the truncations discard.\n",
    );
    s.push_str(&render(&rows, &[true, true, false, false, true]));
    s.push_str("\nbond dims per projection:\n");
    s.push_str(&bonds);
    s
}

/// Every verdict of the report: the seed's claims ([`verdict::verdicts`]), then, with
/// more than one method, one per data-aware method against plain TT-SVD
/// ([`compare::verdicts`]).
pub fn all_verdicts(report: &SweepReport) -> Vec<verdict::Verdict> {
    let mut v = verdict::verdicts(report);
    v.extend(compare::verdicts(report));
    v
}

/// Writes `sweep.csv`, `sweep.json`, `table.txt` (the table, the healing table and the seed
/// settings' table, [`format_settings`]), `verdict.txt` ([`all_verdicts`] as text),
/// `verdicts.json` (the same verdicts as data) and every chart ([`svg::write_charts`]) into `dir` (created
/// if missing); with more than one method also `compare.txt` (the comparison table and its
/// verdicts) and `compare.json` ([`compare::comparisons`]); with budget cells `budget.txt`;
/// and the page `report.html` ([`html::page`], without the seed's experiments: see
/// [`write_all_with`]). Returns the paths written.
///
/// The files are written as one set ([`crate::fs::write_set_atomic`]): into a temporary
/// directory first, then renamed into `dir`; on failure (a full disk) `dir` keeps its previous
/// set untouched, and files of a previous set that this one lacks are removed.
pub fn write_all(report: &SweepReport, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    write_all_with(report, None, dir)
}

/// [`write_all`], with the seed's `experiments` on the page `report.html`: every file of a run,
/// as one set.
pub fn write_all_with(
    report: &SweepReport,
    experiments: Option<&html::Experiments>,
    dir: impl AsRef<Path>,
) -> Result<Vec<PathBuf>> {
    crate::fs::write_set_atomic(dir, |tmp| {
        let mut written = write_files(report, tmp)?;
        written.push(html::write(report, experiments, tmp)?);
        Ok(written)
    })
}

fn write_files(report: &SweepReport, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (name, text) in files(report)? {
        let p = dir.join(name);
        write_atomic(&p, text.as_bytes())?;
        written.push(p);
    }
    Ok(written)
}

/// Every file [`write_all`] writes, as (file name, text), in the same order: the tables,
/// verdicts and data, then the charts ([`svg::charts`]).
pub fn files(report: &SweepReport) -> Result<Vec<(String, String)>> {
    let all = all_verdicts(report);
    let verdicts = verdict::format_verdicts(&all);
    let verdicts_json = crate::fs::to_json_pretty(&all, "verdicts")?;
    let settings = format_settings(report);
    let mut table = format_table(report) + &format_healing(report);
    if !settings.is_empty() {
        table.push('\n');
        table.push_str(&settings);
    }
    let mut files = vec![
        ("sweep.csv".to_string(), to_csv(report)),
        ("sweep.json".to_string(), to_json(report)?),
        ("table.txt".to_string(), table),
        ("verdict.txt".to_string(), verdicts),
        ("verdicts.json".to_string(), verdicts_json),
    ];
    let comparison = compare::format_comparison(report);
    if !comparison.is_empty() {
        let v = verdict::format_verdicts(&compare::verdicts(report));
        files.push(("compare.txt".to_string(), format!("{comparison}\n{v}")));
        let json = serde_json::to_string_pretty(&compare::comparisons(report))
            .map_err(|e| Error::invalid_arg("report", format!("cannot serialise: {e}")))?;
        files.push(("compare.json".to_string(), json));
    }
    let budget = format_budget(report);
    if !budget.is_empty() {
        files.push(("budget.txt".to_string(), budget));
    }
    files.extend(svg::charts(report));
    Ok(files)
}

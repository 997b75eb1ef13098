//! SVG charts of a sweep, written by hand (no plotting dependency, no fonts needed: text is
//! left to the viewer's `sans-serif`).
//!
//! - a **heatmap** per metric: block sets down, bonds across, each cell coloured on a
//!   viridis-like scale and labelled with its value;
//! - **curves** per metric: the metric against the middle bond, one line per block set, the
//!   dense model as a dashed line;
//! - with more than one method, heatmaps and curves per method, and a **comparison** per
//!   metric: the metric against the middle bond for every method, one colour per block set,
//!   solid for plain TT-SVD and dashed (dotted) for the data-aware methods, optionally on a log
//!   axis (KL spans 1e-3..7).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::metrics::{Chart, MetricDef, REGISTRY};
use super::{write_atomic, Metric, Subject};
use crate::error::Result;
use crate::study::sweep::{block_label, Method, SweepCell, SweepReport};

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Viridis-like colour for `t` in [0, 1].
fn colour(t: f64) -> String {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

/// A short label for a value.
fn label(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x == 0.0 {
        "0".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else if x.abs() >= 0.001 {
        format!("{x:.3}")
    } else {
        format!("{x:.1e}")
    }
}

/// "Nice" ticks covering [lo, hi].
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let start = (lo / step).floor() * step;
    let mut v = Vec::new();
    let mut x = start;
    while x <= hi + step * 0.5 && v.len() < 50 {
        v.push(x);
        x += step;
    }
    v
}

fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo <= hi).then_some((lo, hi))
}

fn header(w: f64, h: f64, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        w / 2.0,
        esc(title)
    )
}

/// `", <method title>"` when the report has more than one method (chart titles), else `""`.
fn method_note(report: &SweepReport, method: Method) -> String {
    if report.swept_methods().len() > 1 {
        format!(", {}", method.title())
    } else {
        String::new()
    }
}

/// A heatmap of `metric` for the first method's cells (compressed; `healed` picks the healed
/// values): block sets as rows, bonds as columns.
pub fn heatmap(report: &SweepReport, metric: Metric, healed: bool) -> String {
    heatmap_of(report, report.primary_method(), metric, healed)
}

/// A heatmap of `metric` for `method`'s cells (see [`heatmap`]); the title names the method
/// when the report has more than one, and the colour scale spans every method's cells (the
/// same scale on each method's heatmap).
pub fn heatmap_of(report: &SweepReport, method: Method, metric: Metric, healed: bool) -> String {
    let (cw, ch, left, top) = (64.0, 34.0, 70.0, 50.0);
    let ncols = report.bonds.len() as f64;
    let nrows = report.block_sets.len() as f64;
    let legend_w = 90.0;
    let title = format!(
        "{}{}{} (dense: {})",
        metric.title(),
        method_note(report, method),
        if healed { ", healed" } else { "" },
        label(metric.of_reference(report))
    );
    // Wide enough for the title at ~7.5 px per character (15 px sans-serif).
    let w = (left + cw * ncols + legend_w + 20.0).max(title.len() as f64 * 7.5 + 40.0);
    let h = top + ch * nrows + 60.0;
    let value = |set: &Vec<usize>, bond: usize| {
        report
            .cell_of(method, set, bond)
            .map_or(f64::NAN, |c| metric.of_cell(c, healed))
    };
    // One colour scale for every method's heatmap, so they can be compared side by side.
    let methods = report.swept_methods();
    let all = methods
        .iter()
        .flat_map(|&m| {
            report.block_sets.iter().flat_map(move |s| {
                report.bonds.iter().map(move |&b| {
                    report
                        .cell_of(m, s, b)
                        .map_or(f64::NAN, |c| metric.of_cell(c, healed))
                })
            })
        })
        .chain(std::iter::once(metric.of_reference(report)));
    let (lo, hi) = finite_range(all).unwrap_or((0.0, 1.0));
    let norm = |x: f64| if hi > lo { (x - lo) / (hi - lo) } else { 0.5 };
    let mut s = header(w, h, &title);
    for (j, &bond) in report.bonds.iter().enumerate() {
        let x = left + cw * (j as f64 + 0.5);
        let _ = writeln!(
            s,
            "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{bond}</text>",
            top - 6.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">middle bond</text>",
        left + cw * ncols / 2.0,
        top + ch * nrows + 22.0
    );
    for (i, set) in report.block_sets.iter().enumerate() {
        let y = top + ch * i as f64;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">block {}</text>",
            left - 8.0,
            y + ch / 2.0 + 4.0,
            esc(&block_label(set, report.n_blocks))
        );
        for (j, &bond) in report.bonds.iter().enumerate() {
            let x = left + cw * j as f64;
            let v = value(set, bond);
            let (fill, text_fill) = if v.is_finite() {
                let t = norm(v);
                (colour(t), if t > 0.6 { "black" } else { "white" })
            } else {
                ("#cccccc".to_string(), "black")
            };
            let _ = writeln!(
                s,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{cw}\" height=\"{ch}\" fill=\"{fill}\" stroke=\"white\"/>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{text_fill}\" font-size=\"11\">{}</text>",
                x + cw / 2.0,
                y + ch / 2.0 + 4.0,
                label(v)
            );
        }
    }
    // Colour legend.
    let lx = left + cw * ncols + 20.0;
    let lh = ch * nrows;
    let steps = 20;
    for k in 0..steps {
        let t = 1.0 - k as f64 / steps as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{lx}\" y=\"{}\" width=\"16\" height=\"{}\" fill=\"{}\"/>",
            top + lh * k as f64 / steps as f64,
            lh / steps as f64 + 0.5,
            colour(t)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\">{}</text>\n<text x=\"{}\" y=\"{}\">{}</text>",
        lx + 20.0,
        top + 10.0,
        label(hi),
        lx + 20.0,
        top + lh,
        label(lo)
    );
    s.push_str("</svg>\n");
    s
}

/// The frame of a chart against the middle bond: the plot box `(left, top, width, height)`,
/// grid lines labelled at `yticks` (pixel y, text), the bonds along the x axis (pixel x from
/// `sx`) and the axis title, in a chart of height `h`.
fn bond_axes(
    s: &mut String,
    (left, top, pw, ph): (f64, f64, f64, f64),
    h: f64,
    yticks: &[(f64, String)],
    bonds: &[usize],
    sx: impl Fn(f64) -> f64,
) {
    let _ = writeln!(
        s,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/>"
    );
    for (y, text) in yticks {
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{text}</text>",
            left + pw,
            left - 6.0,
            y + 4.0,
        );
    }
    for &b in bonds {
        let x = sx(b as f64);
        let _ = writeln!(
            s,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#444\"/>\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{b}</text>",
            top + ph,
            top + ph + 5.0,
            top + ph + 18.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">middle bond</text>",
        left + pw / 2.0,
        h - 12.0
    );
}

/// A series' line through `pts` (data units, mapped by `sx`, `sy`), in colour `c` with extra
/// attributes `attrs`; nothing for fewer than two points.
fn polyline(
    s: &mut String,
    pts: &[(f64, f64)],
    c: &str,
    attrs: &str,
    sx: &impl Fn(f64) -> f64,
    sy: &impl Fn(f64) -> f64,
) {
    if pts.len() < 2 {
        return;
    }
    let path: Vec<String> = pts
        .iter()
        .map(|&(x, y)| format!("{:.2},{:.2}", sx(x), sy(y)))
        .collect();
    let _ = writeln!(
        s,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"{attrs}/>",
        path.join(" ")
    );
}

/// A legend entry at `(lx, ly)`: a short line with the `stroke` attributes, then `text`
/// (escaped here).
fn legend(s: &mut String, (lx, ly): (f64, f64), stroke: &str, text: &str) {
    let _ = writeln!(
        s,
        "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" {stroke}/>\
         <text x=\"{}\" y=\"{}\">{}</text>",
        lx + 18.0,
        lx + 24.0,
        ly + 4.0,
        esc(text)
    );
}

const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];

/// `metric` against the middle bond for the first method, one line per block set, the dense
/// value dashed.
pub fn curves(report: &SweepReport, metric: Metric, healed: bool) -> String {
    curves_of(report, report.primary_method(), metric, healed)
}

/// `metric` against the middle bond for `method` (see [`curves`]); the title names the method
/// when the report has more than one.
pub fn curves_of(report: &SweepReport, method: Method, metric: Metric, healed: bool) -> String {
    let (w, h) = (640.0, 400.0);
    let (left, right, top, bottom) = (70.0, 110.0, 40.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let dense = metric.of_reference(report);
    let series: Vec<(String, Vec<(f64, f64)>)> = report
        .block_sets
        .iter()
        .map(|set| {
            let pts = report
                .bonds
                .iter()
                .filter_map(|&b| {
                    let v = report.cell_of(method, set, b)?;
                    let y = metric.of_cell(v, healed);
                    y.is_finite().then_some((b as f64, y))
                })
                .collect::<Vec<_>>();
            (block_label(set, report.n_blocks), pts)
        })
        .collect();
    let (xlo, xhi) = finite_range(report.bonds.iter().map(|&b| b as f64)).unwrap_or((0.0, 1.0));
    let (ylo, yhi) = finite_range(
        series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.1))
            .chain(std::iter::once(dense)),
    )
    .unwrap_or((0.0, 1.0));
    let (ylo, yhi) = if yhi > ylo {
        let pad = 0.05 * (yhi - ylo);
        (ylo - pad, yhi + pad)
    } else {
        (ylo - 0.5, yhi + 0.5)
    };
    let (xlo, xhi) = if xhi > xlo {
        (xlo, xhi)
    } else {
        (xlo - 1.0, xhi + 1.0)
    };
    let sx = |x: f64| left + (x - xlo) / (xhi - xlo) * pw;
    let sy = |y: f64| top + ph - (y - ylo) / (yhi - ylo) * ph;
    let title = format!(
        "{}{}{}",
        metric.title(),
        method_note(report, method),
        if healed { ", healed" } else { "" }
    );
    let mut s = header(w, h, &title);
    let yticks: Vec<(f64, String)> = ticks(ylo, yhi, 6)
        .into_iter()
        .filter(|&t| t >= ylo && t <= yhi)
        .map(|t| (sy(t), label(t)))
        .collect();
    bond_axes(&mut s, (left, top, pw, ph), h, &yticks, &report.bonds, sx);
    if dense.is_finite() {
        let y = sy(dense);
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#333\" stroke-dasharray=\"6 4\"/>",
            left + pw
        );
    }
    for (k, (name, pts)) in series.iter().enumerate() {
        let c = PALETTE[k % PALETTE.len()];
        let mut sorted = pts.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        polyline(&mut s, &sorted, c, "", &sx, &sy);
        for &(x, y) in &sorted {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.2}\" cy=\"{:.2}\" r=\"3\" fill=\"{c}\"/>",
                sx(x),
                sy(y)
            );
        }
        let ly = top + 10.0 + 18.0 * k as f64;
        let stroke = format!("stroke=\"{c}\" stroke-width=\"2\"");
        legend(
            &mut s,
            (left + pw + 12.0, ly),
            &stroke,
            &format!("block {name}"),
        );
    }
    let ly = top + 10.0 + 18.0 * series.len() as f64;
    let stroke = "stroke=\"#333\" stroke-dasharray=\"6 4\"";
    legend(&mut s, (left + pw + 12.0, ly), stroke, "dense");
    s.push_str("</svg>\n");
    s
}

/// The dash pattern of a method's lines in [`compare`]: plain TT-SVD solid, whitened dashed,
/// scaled dotted (`None`: solid).
fn dash(method: Method) -> Option<&'static str> {
    match method {
        Method::Weight => None,
        Method::Whitened => Some("7 4"),
        Method::Scaled => Some("2 3"),
    }
}

/// A tick label on a log axis: plain decimals from 0.001 to 1000 (`0.05`, `1`, `20`), else
/// scientific (`1e-4`).
fn log_label(t: f64) -> String {
    if (1e-3..=1e3).contains(&t) {
        let s = format!("{t:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{t:.0e}")
    }
}

/// Decade ticks (1, 2, 5 × 10^k when the range spans less than two decades) within
/// [10^lo, 10^hi] (`lo`, `hi` in log10 units).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mults: &[f64] = if hi - lo < 2.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut v = Vec::new();
    let mut k = lo.floor() as i32;
    while (k as f64) <= hi.ceil() && v.len() < 60 {
        for &m in mults {
            let t = m * 10f64.powi(k);
            let lt = t.log10();
            if lt >= lo - 1e-9 && lt <= hi + 1e-9 {
                v.push(t);
            }
        }
        k += 1;
    }
    v
}

/// One line of [`compare`]: its method, its block set's index, its points (bond, value).
type Series = (Method, usize, Vec<(f64, f64)>);

/// `metric` against the middle bond for every method of the report: one colour per block set,
/// one line style per method (solid plain TT-SVD, dashed whitened, dotted scaled; hollow markers
/// for the data-aware methods), the dense value as a thin grey line. With `log_y` the y axis is
/// logarithmic; values ≤ 0, or more than five decades below the largest (rounding noise: the KL
/// of an exact TT is ~1e-12), are left out.
pub fn compare(report: &SweepReport, metric: Metric, healed: bool, log_y: bool) -> String {
    let (w, h) = (660.0, 420.0);
    let (left, right, top, bottom) = (70.0, 130.0, 40.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let methods = report.swept_methods();
    let ty = |y: f64| if log_y { y.log10() } else { y };
    // On a log axis, values more than five decades below the largest (rounding noise, such as
    // the KL of an exact bond, ~1e-12) are left out rather than stretching the axis.
    let top_value = report
        .cells
        .iter()
        .map(|c| metric.of_cell(c, healed))
        .filter(|y| y.is_finite())
        .fold(0.0f64, f64::max);
    let floor = if log_y { top_value * 1e-5 } else { 0.0 };
    let usable = |y: f64| y.is_finite() && (!log_y || (y > 0.0 && y >= floor));
    let dense = metric.of_reference(report);
    let mut series: Vec<Series> = Vec::new();
    for &m in &methods {
        for (k, set) in report.block_sets.iter().enumerate() {
            let mut pts: Vec<(f64, f64)> = report
                .bonds
                .iter()
                .filter_map(|&b| {
                    let c: &SweepCell = report.cell_of(m, set, b)?;
                    let y = metric.of_cell(c, healed);
                    usable(y).then_some((b as f64, y))
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            series.push((m, k, pts));
        }
    }
    let (xlo, xhi) = finite_range(report.bonds.iter().map(|&b| b as f64)).unwrap_or((0.0, 1.0));
    let (xlo, xhi) = if xhi > xlo {
        (xlo, xhi)
    } else {
        (xlo - 1.0, xhi + 1.0)
    };
    let ys = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|q| q.1))
        .chain(std::iter::once(dense).filter(|&d| usable(d)))
        .map(ty);
    let (ylo, yhi) = finite_range(ys).unwrap_or(if log_y { (-3.0, 0.0) } else { (0.0, 1.0) });
    let (ylo, yhi) = if yhi > ylo {
        let pad = 0.05 * (yhi - ylo);
        (ylo - pad, yhi + pad)
    } else {
        (ylo - 0.5, yhi + 0.5)
    };
    let sx = |x: f64| left + (x - xlo) / (xhi - xlo) * pw;
    let sy = |y: f64| top + ph - (ty(y) - ylo) / (yhi - ylo) * ph;
    let title = format!(
        "{}{}: methods compared{}",
        metric.title(),
        if healed { ", healed" } else { "" },
        if log_y { " (log scale)" } else { "" }
    );
    let w = w.max(title.chars().count() as f64 * 7.5 + 40.0);
    let mut s = header(w, h, &title);
    let yt: Vec<f64> = if log_y {
        log_ticks(ylo, yhi)
    } else {
        ticks(ylo, yhi, 6)
            .into_iter()
            .filter(|&t| t >= ylo && t <= yhi)
            .collect()
    };
    let yticks: Vec<(f64, String)> = yt
        .into_iter()
        .map(|t| (sy(t), if log_y { log_label(t) } else { label(t) }))
        .collect();
    bond_axes(&mut s, (left, top, pw, ph), h, &yticks, &report.bonds, sx);
    if usable(dense) {
        let y = sy(dense);
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#999\" stroke-width=\"1\"/>",
            left + pw
        );
    }
    for (m, k, pts) in &series {
        let c = PALETTE[k % PALETTE.len()];
        let dash_attr = dash(*m).map_or(String::new(), |d| format!(" stroke-dasharray=\"{d}\""));
        polyline(&mut s, pts, c, &dash_attr, &sx, &sy);
        let fill = if m.is_data_aware() { "white" } else { c };
        for &(x, y) in pts {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.2}\" cy=\"{:.2}\" r=\"3\" fill=\"{fill}\" stroke=\"{c}\"/>",
                sx(x),
                sy(y)
            );
        }
    }
    // Legend: colours for block sets, then line styles for methods, then dense.
    let lx = left + pw + 12.0;
    let mut ly = top + 10.0;
    for (k, set) in report.block_sets.iter().enumerate() {
        let c = PALETTE[k % PALETTE.len()];
        let stroke = format!("stroke=\"{c}\" stroke-width=\"2\"");
        let text = format!("block {}", block_label(set, report.n_blocks));
        legend(&mut s, (lx, ly), &stroke, &text);
        ly += 18.0;
    }
    ly += 6.0;
    for &m in &methods {
        let dash_attr = dash(m).map_or(String::new(), |d| format!(" stroke-dasharray=\"{d}\""));
        let stroke = format!("stroke=\"#333\" stroke-width=\"2\"{dash_attr}");
        legend(&mut s, (lx, ly), &stroke, m.key());
        ly += 18.0;
    }
    if usable(dense) {
        legend(
            &mut s,
            (lx, ly),
            "stroke=\"#999\" stroke-width=\"1\"",
            "dense",
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Writes `heatmap_<metric>.svg` and `curve_<metric>.svg` for every charted metric (its
/// [`MetricDef::chart`] is not [`Chart::No`]; in registry order) and `_healed` variants when the
/// sweep healed (not for compression figures) into `dir`; returns the paths. These are the
/// first method's charts. With more than one method, every other method gets the same charts
/// with its key as a suffix (`heatmap_kl_whitened.svg`, `heatmap_kl_whitened_healed.svg`), and
/// every charted metric a `compare_<metric>.svg` ([`compare`]; on a log axis for [`Chart::Log`]
/// metrics, KL) and its `_healed` variant. The [`Chart::WhenMeasured`] metrics (the output
/// errors) are charted only when some cell has them.
pub fn write_charts(report: &SweepReport, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (name, svg) in charts(report) {
        let p = dir.join(name);
        write_atomic(&p, svg.as_bytes())?;
        out.push(p);
    }
    Ok(out)
}

/// Every chart [`write_charts`] writes, as (file name, SVG text), in the same order.
pub fn charts(report: &SweepReport) -> Vec<(String, String)> {
    let any_healed = report.cells.iter().any(|c| c.healed.is_some());
    let methods = report.swept_methods();
    let primary = report.primary_method();
    let multi = methods.len() > 1;
    let charted: Vec<&MetricDef> = REGISTRY
        .iter()
        .filter(|d| match d.chart {
            Chart::No => false,
            Chart::Linear | Chart::Log => true,
            Chart::WhenMeasured => report
                .cells
                .iter()
                .any(|c| d.value(Subject::cell(c, false)).is_finite()),
        })
        .collect();
    let mut out = Vec::new();
    let mut write = |name: String, svg: String| out.push((name, svg));
    for d in charted {
        let m = d.metric;
        for healed in [false, true] {
            if healed && (!any_healed || d.is_compression()) {
                continue;
            }
            let suffix = if healed { "_healed" } else { "" };
            for &method in &methods {
                let msuffix = if method == primary {
                    String::new()
                } else {
                    format!("_{}", method.key())
                };
                for (kind, svg) in [
                    ("heatmap", heatmap_of(report, method, m, healed)),
                    ("curve", curves_of(report, method, m, healed)),
                ] {
                    write(format!("{kind}_{}{msuffix}{suffix}.svg", m.key()), svg);
                }
            }
            if multi {
                let svg = compare(report, m, healed, d.chart == Chart::Log);
                write(format!("compare_{}{suffix}.svg", m.key()), svg);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_range_with_round_steps() {
        let t = ticks(0.13, 0.91, 5);
        assert!(t[0] <= 0.13 && *t.last().unwrap() >= 0.91);
        let step = t[1] - t[0];
        assert!((step - 0.2).abs() < 1e-12, "{t:?}");
    }

    #[test]
    fn colours_run_from_purple_to_yellow() {
        assert_eq!(colour(0.0), "#440154");
        assert_eq!(colour(1.0), "#fde725");
        assert_eq!(colour(-3.0), colour(0.0));
    }

    #[test]
    fn log_ticks_are_decades_or_1_2_5() {
        assert_eq!(log_ticks(-3.0, 1.0), vec![1e-3, 1e-2, 1e-1, 1.0, 10.0]);
        let t = log_ticks(-1.0, 0.0);
        assert_eq!(t.len(), 4, "{t:?}"); // 0.1, 0.2, 0.5, 1
        assert!((t[1] - 0.2).abs() < 1e-12 && (t[2] - 0.5).abs() < 1e-12);
        let labels: Vec<String> = [1e-4, 1e-3, 0.05, 1.0, 20.0, 1e4].map(log_label).to_vec();
        assert_eq!(labels, ["1e-4", "0.001", "0.05", "1", "20", "1e4"]);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<BOS> & \"x\""), "&lt;BOS&gt; &amp; &quot;x&quot;");
    }
}

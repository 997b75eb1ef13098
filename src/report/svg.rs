//! SVG charts of a sweep, written by hand (no plotting dependency, no fonts needed: text is
//! left to the viewer's `sans-serif`).
//!
//! - a **heatmap** per metric: block sets down, bonds across, each cell coloured on a
//!   viridis-like scale and labelled with its value;
//! - **curves** per metric: the metric against the middle bond, one line per block set, the
//!   dense model as a dashed line.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{write_atomic, Metric};
use crate::error::Result;
use crate::sweep::{block_label, SweepReport};

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

/// A heatmap of `metric` (compressed cells; `healed` picks the healed values): block sets as
/// rows, bonds as columns.
pub fn heatmap(report: &SweepReport, metric: Metric, healed: bool) -> String {
    let (cw, ch, left, top) = (64.0, 34.0, 70.0, 50.0);
    let ncols = report.bonds.len() as f64;
    let nrows = report.block_sets.len() as f64;
    let legend_w = 90.0;
    let title = format!(
        "{}{} (dense: {})",
        metric.title(),
        if healed { ", healed" } else { "" },
        label(metric.of_reference(report))
    );
    // Wide enough for the title at ~7.5 px per character (15 px sans-serif).
    let w = (left + cw * ncols + legend_w + 20.0).max(title.len() as f64 * 7.5 + 40.0);
    let h = top + ch * nrows + 60.0;
    let value = |set: &Vec<usize>, bond: usize| {
        report
            .cell(set, bond)
            .map_or(f64::NAN, |c| metric.of_cell(c, healed))
    };
    let all = report
        .block_sets
        .iter()
        .flat_map(|s| report.bonds.iter().map(move |&b| value(s, b)))
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

const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];

/// `metric` against the middle bond, one line per block set, the dense value dashed.
pub fn curves(report: &SweepReport, metric: Metric, healed: bool) -> String {
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
                    let v = report.cell(set, b)?;
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
    let title = format!("{}{}", metric.title(), if healed { ", healed" } else { "" });
    let mut s = header(w, h, &title);
    let _ = writeln!(
        s,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/>"
    );
    for t in ticks(ylo, yhi, 6)
        .into_iter()
        .filter(|&t| t >= ylo && t <= yhi)
    {
        let y = sy(t);
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            left + pw,
            left - 6.0,
            y + 4.0,
            label(t)
        );
    }
    for &b in &report.bonds {
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
        let path: Vec<String> = sorted
            .iter()
            .map(|&(x, y)| format!("{:.2},{:.2}", sx(x), sy(y)))
            .collect();
        if path.len() > 1 {
            let _ = writeln!(
                s,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"/>",
                path.join(" ")
            );
        }
        for &(x, y) in &sorted {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.2}\" cy=\"{:.2}\" r=\"3\" fill=\"{c}\"/>",
                sx(x),
                sy(y)
            );
        }
        let ly = top + 10.0 + 18.0 * k as f64;
        let lx = left + pw + 12.0;
        let _ = writeln!(
            s,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{c}\" stroke-width=\"2\"/>\
             <text x=\"{}\" y=\"{}\">block {}</text>",
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            esc(name)
        );
    }
    let ly = top + 10.0 + 18.0 * series.len() as f64;
    let lx = left + pw + 12.0;
    let _ = writeln!(
        s,
        "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"#333\" stroke-dasharray=\"6 4\"/>\
         <text x=\"{}\" y=\"{}\">dense</text>",
        lx + 18.0,
        lx + 24.0,
        ly + 4.0
    );
    s.push_str("</svg>\n");
    s
}

/// Writes `heatmap_<metric>.svg` and `curve_<metric>.svg` for every [`Metric::CHARTED`] metric
/// (and `_healed` variants when the sweep healed) into `dir`; returns the paths.
pub fn write_charts(report: &SweepReport, dir: &Path) -> Result<Vec<PathBuf>> {
    let any_healed = report.cells.iter().any(|c| c.healed.is_some());
    let mut out = Vec::new();
    for m in Metric::CHARTED {
        for healed in [false, true] {
            if healed && (!any_healed || matches!(m, Metric::MaxRelError)) {
                continue;
            }
            let suffix = if healed { "_healed" } else { "" };
            for (kind, svg) in [
                ("heatmap", heatmap(report, m, healed)),
                ("curve", curves(report, m, healed)),
            ] {
                let p = dir.join(format!("{kind}_{}{suffix}.svg", m.key()));
                write_atomic(&p, svg.as_bytes())?;
                out.push(p);
            }
        }
    }
    Ok(out)
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
    fn text_is_escaped() {
        assert_eq!(esc("<BOS> & \"x\""), "&lt;BOS&gt; &amp; &quot;x&quot;");
    }
}

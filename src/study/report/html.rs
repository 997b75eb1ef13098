//! `report.html`: one self-contained page of a sweep — the verdicts, the table, every chart of
//! [`super::svg::charts`] inline, and the seed's experiments as dense and compressed answers side
//! by side with the words that differ from the dense answer marked. Plain HTML and CSS: no
//! JavaScript, no network, nothing outside the page (links are in-page anchors only).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::verdict::{Outcome, Verdict};
use crate::error::Result;
use crate::study::sweep::{block_label, Method, SweepReport};

/// One of the seed's corruption experiments as run: the compressed model's answers to the
/// seed's prompts ([`crate::nn::generate::model_example`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRun {
    /// The experiment's title (`"block 0 at 27"`).
    pub title: String,
    /// The compressed blocks.
    pub blocks: Vec<usize>,
    /// Their middle bonds.
    pub bonds: Vec<usize>,
    /// The truncation method.
    pub method: Method,
    /// The largest relative reconstruction error of the compressed projections.
    #[serde(deserialize_with = "crate::study::eval::f64_or_nan")]
    pub max_rel_error: f64,
    /// `(prompt, answer)` pairs, in the seed's prompt order.
    pub answers: Vec<(String, String)>,
}

/// The seed's experiments of one sweep: the dense model's answers and every compressed run's,
/// all sampled with the same seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Experiments {
    /// Sampling temperature.
    pub temperature: f32,
    /// The seed the generator is re-seeded with before each model's answers.
    pub seed: u64,
    /// The dense model's `(prompt, answer)` pairs.
    pub dense: Vec<(String, String)>,
    /// Every compressed run, in the seed's order (methods of one experiment together).
    pub runs: Vec<ExperimentRun>,
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Which words of `answer` are not in a longest common subsequence with `reference` (both split
/// on whitespace): `true` marks a word that differs from the reference answer.
///
/// ```
/// use succulm::study::report::html::differing_words;
/// assert_eq!(differing_words("yes , he is .", "no , he is a girl ."),
///            vec![true, false, false, false, true, true, false]);
/// ```
pub fn differing_words(reference: &str, answer: &str) -> Vec<bool> {
    let a: Vec<&str> = reference.split_whitespace().collect();
    let b: Vec<&str> = answer.split_whitespace().collect();
    // lcs[i][j]: LCS length of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut marked = vec![true; b.len()];
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            marked[j] = false;
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    marked
}

/// `answer` as HTML with the words that differ from `reference` in `<mark>`.
fn marked_answer(reference: &str, answer: &str) -> String {
    let words: Vec<&str> = answer.split_whitespace().collect();
    let marks = differing_words(reference, answer);
    words
        .iter()
        .zip(marks)
        .map(|(w, m)| {
            if m {
                format!("<mark>{}</mark>", escape(w))
            } else {
                escape(w)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1200px;margin:0 auto;\
padding:0 16px 40px;color:#222;line-height:1.4}\
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}\
nav a{margin-right:1em}\
.verdict{border-left:6px solid #999;padding:4px 12px;margin:10px 0;background:#fafafa}\
.verdict.supported{border-color:#2a8f3e}.verdict.not_supported{border-color:#c0392b}\
.verdict.inconclusive{border-color:#d4a017}\
.outcome{font-weight:bold;letter-spacing:.05em}\
.verdict dt{font-weight:bold;font-size:.9em;color:#555}.verdict dd{margin:0 0 6px 0}\
table{border-collapse:collapse;font-size:12px;font-variant-numeric:tabular-nums}\
td,th{border-bottom:1px solid #e4e4e4;padding:2px 5px;text-align:right}\
td.l,th.l{text-align:left}tr.dense td{font-weight:bold}\
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}\
figure{margin:0;border:1px solid #eee;padding:4px}figure svg{max-width:100%;height:auto}\
figcaption{font-size:11px;color:#666}\
table.answers{font-size:13px;width:100%;table-layout:fixed}\
table.answers td,table.answers th{text-align:left;vertical-align:top;word-wrap:break-word}\
mark{background:#ffd54f;padding:0 1px}\
";

fn outcome_text(o: Outcome) -> (&'static str, &'static str) {
    match o {
        Outcome::Supported => ("SUPPORTED", "supported"),
        Outcome::NotSupported => ("NOT SUPPORTED", "not_supported"),
        Outcome::Inconclusive => ("INCONCLUSIVE", "inconclusive"),
    }
}

/// One verdict as an `<article>` (claim, the seed's words, outcome, rule, numbers, effect), from
/// its fields.
pub fn verdict_html(v: &Verdict) -> String {
    let (text, class) = outcome_text(v.outcome);
    let effect = v.effect.map_or("-".to_string(), |e| {
        format!("{e:.4} ({})", escape(&v.effect_unit))
    });
    format!(
        "<article class=\"verdict {class}\" id=\"verdict-{id}\"><h3>{claim}</h3>\
         <p class=\"outcome\">{text}</p><dl>{quote}<dt>rule</dt><dd>{op}</dd>\
         <dt>numbers</dt><dd>{ev}</dd><dt>effect</dt><dd>{effect}</dd></dl></article>\n",
        id = escape(&v.id),
        claim = escape(&v.claim),
        quote = if v.quote.is_empty() {
            String::new()
        } else {
            format!("<dt>the seed</dt><dd>{}</dd>", escape(&v.quote))
        },
        op = escape(&v.operationalisation),
        ev = escape(&v.evidence),
    )
}

/// The grid table ([`super::format_table`]'s rows) as HTML: the header in `<thead>`, the dense
/// reference's row bold, left-aligned columns marked `l`.
fn table_html(report: &SweepReport) -> String {
    let (rows, left) = super::grid_table(report);
    let mut s = String::from("<table class=\"grid\"><thead>");
    for (i, row) in rows.iter().enumerate() {
        let (open, cell) = match i {
            0 => ("<tr>", "th"),
            1 => ("<tr class=\"dense\">", "td"),
            _ => ("<tr>", "td"),
        };
        s.push_str(open);
        for (j, x) in row.iter().enumerate() {
            let class = if left.get(j).copied().unwrap_or(false) {
                " class=\"l\""
            } else {
                ""
            };
            let _ = write!(s, "<{cell}{class}>{}</{cell}>", escape(x));
        }
        s.push_str("</tr>");
        s.push_str(if i == 0 { "</thead><tbody>\n" } else { "\n" });
    }
    s.push_str("</tbody></table>\n");
    s
}

/// The id of a chart's `<figure>`: `chart-` and its file name without `.svg`.
pub fn chart_id(file_name: &str) -> String {
    format!("chart-{}", file_name.trim_end_matches(".svg"))
}

fn experiments_html(e: &Experiments) -> String {
    let mut s = format!(
        "<p>Answers to the seed's prompts at temperature {}, the generator re-seeded with {} \
         before each model. <mark>Marked</mark> words are not in a longest common subsequence \
         with the dense model's answer.</p>\n",
        e.temperature, e.seed
    );
    // Runs of one experiment (several methods) side by side.
    let mut groups: Vec<Vec<&ExperimentRun>> = Vec::new();
    for r in &e.runs {
        match groups.last_mut() {
            Some(g)
                if g[0].title == r.title && g[0].blocks == r.blocks && g[0].bonds == r.bonds =>
            {
                g.push(r)
            }
            _ => groups.push(vec![r]),
        }
    }
    for g in groups {
        let r0 = g[0];
        let errors: Vec<String> = g
            .iter()
            .map(|r| format!("{} {:.3}", r.method.key(), r.max_rel_error))
            .collect();
        let _ = write!(
            s,
            "<section class=\"experiment\"><h3>{}</h3><p>blocks {:?}, bonds {:?}; largest \
             reconstruction error {}</p>\n<table class=\"answers\"><thead><tr><th>prompt</th>\
             <th>dense</th>",
            escape(&r0.title),
            r0.blocks,
            r0.bonds,
            errors.join(", ")
        );
        for r in &g {
            let _ = write!(s, "<th>compressed ({})</th>", r.method.key());
        }
        s.push_str("</tr></thead><tbody>\n");
        for (i, (prompt, dense)) in e.dense.iter().enumerate() {
            let _ = write!(
                s,
                "<tr><td class=\"prompt\">{}</td><td>{}</td>",
                escape(prompt),
                escape(dense)
            );
            for r in &g {
                let answer = r.answers.get(i).map_or("", |a| a.1.as_str());
                let _ = write!(s, "<td>{}</td>", marked_answer(dense, answer));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</tbody></table></section>\n");
    }
    s
}

/// The page: a heading with the grid's shape, the verdicts (`verdicts`, usually
/// [`super::all_verdicts`]), the table, every chart of [`super::svg::charts`] inline (each in a
/// `<figure id="chart-NAME">`), and `experiments` when given.
pub fn page(
    report: &SweepReport,
    verdicts: &[Verdict],
    experiments: Option<&Experiments>,
) -> String {
    let mut s =
        String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    s.push_str("<title>succulm layer sweep</title>\n<style>");
    s.push_str(STYLE);
    s.push_str("</style>\n</head>\n<body>\n<h1>succulm layer sweep</h1>\n");
    let sets: Vec<String> = report
        .block_sets
        .iter()
        .map(|b| block_label(b, report.n_blocks))
        .collect();
    let methods: Vec<&str> = report.swept_methods().iter().map(|m| m.key()).collect();
    let _ = writeln!(
        s,
        "<p>{} blocks; block sets {}; middle bonds {:?}; methods {}; {} sampled answers per probe \
         (seed {}){}.</p>",
        report.n_blocks,
        escape(&sets.join(", ")),
        report.bonds,
        methods.join(", "),
        report.sample.samples_per_probe,
        report.sample.seed,
        report
            .heal
            .map_or(String::new(), |h| format!("; healed by {}", h.title()))
    );
    s.push_str(
        "<nav><a href=\"#verdicts\">Verdicts</a><a href=\"#table\">Table</a>\
                <a href=\"#charts\">Charts</a>",
    );
    if experiments.is_some() {
        s.push_str("<a href=\"#experiments\">The seed's experiments</a>");
    }
    s.push_str("</nav>\n<h2 id=\"verdicts\">Verdicts</h2>\n");
    for v in verdicts {
        s.push_str(&verdict_html(v));
    }
    s.push_str(
        "<h2 id=\"table\">Table</h2>\n<p>KL and hidden-word mass per validation position; \
                rates over sampled answers; <code>h</code> marks a healed row.</p>\n",
    );
    s.push_str(&table_html(report));
    s.push_str("<h2 id=\"charts\">Charts</h2>\n<div class=\"charts\">\n");
    for (name, svg) in super::svg::charts(report) {
        let _ = writeln!(
            s,
            "<figure id=\"{}\">{}<figcaption>{}</figcaption></figure>",
            escape(&chart_id(&name)),
            svg.trim(),
            escape(&name)
        );
    }
    s.push_str("</div>\n");
    if let Some(e) = experiments {
        s.push_str("<h2 id=\"experiments\">The seed's experiments</h2>\n");
        s.push_str(&experiments_html(e));
    }
    s.push_str("</body>\n</html>\n");
    s
}

/// Writes [`page`] with [`super::all_verdicts`] to `dir/report.html` (atomically); returns the
/// path.
pub fn write(
    report: &SweepReport,
    experiments: Option<&Experiments>,
    dir: impl AsRef<Path>,
) -> Result<PathBuf> {
    let p = dir.as_ref().join("report.html");
    let html = page(report, &super::all_verdicts(report), experiments);
    super::write_atomic(&p, html.as_bytes())?;
    Ok(p)
}

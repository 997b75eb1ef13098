//! `report.html`: parses as HTML5, holds every chart, every verdict and every prompt of the
//! seed's experiments, marks exactly words outside the dense answer, and links nowhere outside
//! the page.

mod planted;
mod toy;

use planted::Plant;
use rand::{rngs::StdRng, SeedableRng};
use scraper::{Html, Selector};
use succulm::nn::generate::{model_example, GenerateConfig, SEED_PROMPTS};
use succulm::study::report::html::{self, differing_words, ExperimentRun, Experiments};
use succulm::study::report::{self, svg};
use succulm::study::sweep::{self, HealKind, Method, SweepReport};

fn sweep_report() -> SweepReport {
    planted::sweep(Plant::SEED, 6, Some(HealKind::CrossEntropy))
}

/// The seed's experiments on the shipped model: the dense answers and two compressed runs.
fn experiments() -> Experiments {
    let (model, vocab) = succulm::Model::load("fixtures/succulm_upper_middle.json").unwrap();
    let cfg = GenerateConfig::temperature(0.6);
    let answers = |m: &succulm::Model| {
        let mut rng = StdRng::seed_from_u64(42);
        model_example(m, &vocab, &cfg, &mut rng).unwrap()
    };
    let mut e = Experiments {
        temperature: 0.6,
        seed: 42,
        dense: answers(&model),
        runs: Vec::new(),
    };
    for (title, blocks, bonds) in [
        ("block 0 at 10", [0usize], [10usize]),
        ("block 3 at 20", [3], [20]),
    ] {
        let (m, info) = sweep::compress(&model, Method::Weight, &blocks, &bonds, None).unwrap();
        e.runs.push(ExperimentRun {
            title: title.into(),
            blocks: blocks.to_vec(),
            bonds: bonds.to_vec(),
            method: Method::Weight,
            max_rel_error: info.max_rel_error(),
            answers: answers(&m),
        });
    }
    e
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn text(e: scraper::ElementRef<'_>) -> String {
    e.text().collect::<String>()
}

/// Is `small` a subsequence of `big`?
fn subsequence(small: &[&str], big: &[&str]) -> bool {
    let mut it = big.iter();
    small.iter().all(|w| it.any(|b| b == w))
}

#[test]
fn the_page_is_valid_self_contained_and_complete() {
    let r = sweep_report();
    let e = experiments();
    let dir = std::env::temp_dir().join(format!("succulm-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = html::write(&r, Some(&e), &dir).unwrap();
    assert_eq!(path.file_name().unwrap(), "report.html");
    let page = std::fs::read_to_string(&path).unwrap();
    let doc = Html::parse_document(&page);
    assert!(
        doc.errors.is_empty(),
        "HTML5 parse errors: {:?}",
        doc.errors
    );
    assert!(page.starts_with("<!DOCTYPE html>"));

    // Every chart written beside it, inline, in its own figure.
    let charts = svg::charts(&r);
    assert!(charts.len() >= 40, "{}", charts.len());
    for (name, _) in &charts {
        let id = html::chart_id(name);
        let found = doc.select(&sel(&format!("figure#{id} > svg"))).count();
        assert_eq!(found, 1, "chart {name}");
    }
    assert_eq!(doc.select(&sel("figure > svg")).count(), charts.len());

    // Every verdict, with its outcome, from the struct.
    for v in report::all_verdicts(&r) {
        let a = doc
            .select(&sel(&format!("article#verdict-{}", v.id)))
            .next()
            .unwrap_or_else(|| panic!("verdict {}", v.id));
        let t = text(a);
        assert!(t.contains(&v.claim), "{t}");
        let outcome = match v.outcome {
            report::verdict::Outcome::Supported => "SUPPORTED",
            report::verdict::Outcome::NotSupported => "NOT SUPPORTED",
            report::verdict::Outcome::Inconclusive => "INCONCLUSIVE",
        };
        assert_eq!(text(a.select(&sel("p.outcome")).next().unwrap()), outcome);
        // Claim, the seed's words, rule and numbers as separate entries.
        let terms: Vec<String> = a.select(&sel("dt")).map(text).collect();
        let want: Vec<&str> = if v.quote.is_empty() {
            vec!["rule", "numbers", "effect"]
        } else {
            vec!["the seed", "rule", "numbers", "effect"]
        };
        assert_eq!(terms, want, "{}", v.id);
        assert!(
            t.contains(&v.quote) && t.contains(&v.operationalisation),
            "{}",
            v.id
        );
    }

    // The table: the dense row and one row per cell and healed cell.
    let rows = doc.select(&sel("table.grid tbody tr")).count();
    assert_eq!(rows, 1 + 2 * r.cells.len());

    // Every prompt of the seed's experiments, in every experiment's table, in order; the
    // unmarked words of a compressed answer are a subsequence of the dense answer, the marked
    // ones are exactly those `differing_words` names.
    let tables: Vec<_> = doc
        .select(&sel("section.experiment table.answers"))
        .collect();
    assert_eq!(tables.len(), e.runs.len());
    let mut marked_any = false;
    for (t, run) in tables.iter().zip(&e.runs) {
        let prompts: Vec<String> = t.select(&sel("td.prompt")).map(text).collect();
        let expected: Vec<String> = SEED_PROMPTS.iter().map(|p| p.0.to_string()).collect();
        assert_eq!(prompts, expected);
        for (row, ((_, dense), (_, answer))) in t
            .select(&sel("tbody tr"))
            .zip(e.dense.iter().zip(&run.answers))
        {
            let cells: Vec<_> = row.select(&sel("td")).collect();
            assert_eq!(text(cells[1]), *dense);
            let shown: Vec<String> = text(cells[2])
                .split_whitespace()
                .map(String::from)
                .collect();
            let words: Vec<&str> = answer.split_whitespace().collect();
            assert_eq!(shown, words);
            let marked: Vec<String> = cells[2].select(&sel("mark")).map(text).collect();
            let expected_marks: Vec<&str> = words
                .iter()
                .zip(differing_words(dense, answer))
                .filter(|(_, m)| *m)
                .map(|(w, _)| *w)
                .collect();
            assert_eq!(marked, expected_marks);
            let unmarked: Vec<&str> = words
                .iter()
                .zip(differing_words(dense, answer))
                .filter(|(_, m)| !*m)
                .map(|(w, _)| *w)
                .collect();
            let dense_words: Vec<&str> = dense.split_whitespace().collect();
            assert!(subsequence(&unmarked, &dense_words));
            if answer == dense {
                assert!(marked.is_empty());
            }
            marked_any |= !marked.is_empty();
        }
    }
    assert!(marked_any, "block 0 at bond 10 changes some answer");

    // Nothing outside the page: no script, every link an in-page anchor that exists, no src.
    assert_eq!(doc.select(&sel("script")).count(), 0);
    assert_eq!(doc.select(&sel("[src]")).count(), 0);
    assert_eq!(doc.select(&sel("link")).count(), 0);
    let hrefs: Vec<String> = doc
        .select(&sel("[href]"))
        .map(|a| a.value().attr("href").unwrap().to_string())
        .collect();
    assert!(hrefs.len() >= 4);
    for h in hrefs {
        let id = h
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external link {h}"));
        assert_eq!(doc.select(&sel(&format!("#{id}"))).count(), 1, "{h}");
    }
    assert!(!page.contains("url("), "no CSS resource");
    assert!(!page.contains("@import"));
}

#[test]
fn differing_words_marks_what_is_not_in_the_dense_answer() {
    // Worked by hand: the LCS of "yes , he is ." and "no , he is a girl ." is ", he is .".
    assert_eq!(
        differing_words("yes , he is .", "no , he is a girl ."),
        [true, false, false, false, true, true, false]
    );
    assert_eq!(differing_words("a b c", "a b c"), [false; 3]);
    assert_eq!(differing_words("", "a b"), [true, true]);
    assert!(differing_words("a b", "").is_empty());
    // A repeated word is matched once.
    assert_eq!(differing_words("is", "is is"), [false, true]);
}

#[test]
fn text_is_escaped() {
    assert_eq!(
        html::escape("<BOS> & \"x\" 'y'"),
        "&lt;BOS&gt; &amp; &quot;x&quot; &#39;y&#39;"
    );
}

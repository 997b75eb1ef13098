//! The metric registry: every figure the reports print, described once.
//!
//! [`REGISTRY`] holds one [`MetricDef`] per [`Metric`] — its key, column header, name in words,
//! chart title, unit, one-line meaning, which way is better, printed digits, where its value is
//! read ([`Source`]), its standard error ([`StdErr`]), and which views show it ([`Csv`],
//! [`Table`], [`Chart`]). The views read it:
//!
//! - the CSV ([`super::to_csv`]): the [`Csv::Main`] metrics in registry order after the row's
//!   labels ([`Metric::ALL`]), the [`Csv::Late`] ones among the columns added with the method
//!   axis;
//! - the plain-text and HTML table ([`super::format_table`], [`super::html`]): the
//!   [`Table::Grid`] metrics in registry order; the seed settings' table
//!   ([`super::format_settings`]) adds, in registry order, the [`Table::Settings`] metrics and
//!   the standard errors marked [`MetricDef::se_column`];
//! - the charts ([`super::svg`]): every metric whose [`Chart`] is not [`Chart::No`];
//! - views that pick a few metrics in their own order name them by [`Metric`] and read
//!   everything else here: the healing table ([`super::HEALED`]), the budget table and the
//!   method comparison ([`HEADLINE`]), the verdicts' figure lists ([`super::verdict::FIGURES`]).
//!
//! Adding a metric: compute it in [`crate::study::eval`], add a [`Metric`] variant and its
//! [`MetricDef`] here (in the variant's position; the registry's order is the table's), and the
//! table, HTML and charts show it. The CSV columns are a file format: a new metric joins them
//! only when its entry says [`Csv::Main`] (which changes [`Metric::ALL`]'s length, checked at
//! compile time).

use crate::study::eval::CellMetrics;
use crate::study::sweep::{BudgetArm, CompressionInfo, SweepCell, SweepReport};
use Direction::{HigherIsBetter, LowerIsBetter};

/// Every figure of a cell that can be tabulated or charted. Its description is its
/// [`MetricDef`] ([`Metric::def`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// TT / dense FFN parameters of the compressed blocks.
    ParamRatio,
    /// The largest projection reconstruction error.
    MaxRelError,
    /// Validation loss (mean NLL, PAD ignored).
    Loss,
    /// `exp(loss)`.
    Perplexity,
    /// Next-token accuracy.
    Accuracy,
    /// KL(dense ‖ compressed), nats per position.
    Kl,
    /// Teacher-forced probability on hidden words.
    HiddenMass,
    /// Fraction of sampled answers with a hidden word.
    HiddenAnswerRate,
    /// Fraction of sampled tokens that are hidden words.
    HiddenTokenRate,
    /// Fraction of sampled answers with `<BOS>`, `<PAD>` or `<UNK>`.
    SpecialAnswerRate,
    /// Fraction of sampled tokens that are `<BOS>`, `<PAD>` or `<UNK>`.
    SpecialTokenRate,
    /// Fraction of sampled answers that end with `<EOS>`.
    EosRate,
    /// Sampled fact-probe accuracy (first word).
    FactAccuracy,
    /// Mean teacher-forced margin of the right first word.
    FactMargin,
    /// Fraction of fact probes with a positive margin.
    FactMarginAccuracy,
    /// Fraction of in-training seed answers reproduced exactly.
    SeedExactRate,
    /// Mean NLL of sampled answers under the dense model.
    FluencyNll,
    /// Sampled gender-probe accuracy (fact probes about a character's gender or pronoun).
    GenderAccuracy,
    /// Mean fraction of an answer's word links never seen in training.
    NovelBigramRate,
    /// The largest relative output error on the calibration rows (NaN when not computed).
    MaxOutputError,
    /// The largest relative output error on validation rows (NaN when not computed).
    MaxValOutputError,
}

/// Which way a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A higher value is better (accuracies, margins).
    HigherIsBetter,
    /// A higher value is worse (losses, divergences, error and leak rates, parameters).
    LowerIsBetter,
}

/// Where a metric's value is read.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// The model's behaviour, from its [`CellMetrics`].
    Model {
        /// The field read, as its path in the metrics' JSON (`"teacher_forced.kl"`).
        field: &'static str,
        /// Reads it.
        read: fn(&CellMetrics) -> f64,
    },
    /// The compression itself (the same before and after healing), from its
    /// [`CompressionInfo`].
    Compression {
        /// The [`CompressionInfo`] method read (`"param_ratio"`).
        field: &'static str,
        /// Reads it.
        read: fn(&CompressionInfo) -> f64,
        /// The dense reference's value (1 for a ratio, 0 for an error).
        dense: f64,
    },
}

/// A metric's standard error.
#[derive(Debug, Clone, Copy)]
pub enum StdErr {
    /// None: the figure is deterministic (teacher-forced, or a compression figure).
    None,
    /// Sampled, but its noise is not estimated (rates over tokens, which are not independent
    /// draws): NaN.
    NotEstimated,
    /// Binomial, `√(p(1−p)/n)`, over the draws counted in a field.
    Binomial {
        /// The field counting the draws (`"sampled.fact_answers"`).
        draws: &'static str,
        /// Reads it (0 in reports written before the count was recorded).
        read: fn(&CellMetrics) -> usize,
    },
    /// Recorded by the evaluator in a field.
    Recorded {
        /// The field (`"sampled.fluency_se"`).
        field: &'static str,
        /// Reads it.
        read: fn(&CellMetrics) -> f64,
    },
}

/// Whether and where a metric is a CSV column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Csv {
    /// Not a column (the metric postdates the CSV layout; it is in `sweep.json`).
    No,
    /// One of the original metric columns, after the row's labels ([`Metric::ALL`]).
    Main,
    /// Among the columns added with the method axis, after `heal`.
    Late,
}

/// Whether a metric is a column of the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// In no table.
    No,
    /// In the grid's table (text and HTML) and the seed settings' table.
    Grid,
    /// Only in the seed settings' table, after the grid's columns.
    Settings,
}

/// Whether a metric is charted ([`super::svg::charts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    /// Not charted.
    No,
    /// Charted on linear axes.
    Linear,
    /// Charted; the methods-compared chart has a log axis (the values span decades).
    Log,
    /// Charted when some cell has a value (data-aware methods only).
    WhenMeasured,
}

/// A metric's description: one entry of [`REGISTRY`].
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// The metric.
    pub metric: Metric,
    /// The snake_case key: CSV column, chart file names, the comparison's JSON.
    pub key: &'static str,
    /// The column header of the tables.
    pub header: &'static str,
    /// The metric in words, as the verdicts' figure lists name it.
    pub name: &'static str,
    /// How the method comparison's verdict names it, where that differs from `name`.
    pub comparison_name: Option<&'static str>,
    /// A human title (chart titles).
    pub title: &'static str,
    /// The unit of its values.
    pub unit: &'static str,
    /// What it measures, in one line.
    pub meaning: &'static str,
    /// Which way is better.
    pub direction: Direction,
    /// Digits after the point in the tables.
    pub digits: usize,
    /// Digits after the point in verdict evidence (more than `digits` where small values
    /// matter).
    pub evidence_digits: usize,
    /// Where its value is read.
    pub source: Source,
    /// Its standard error.
    pub se: StdErr,
    /// Whether and where it is a CSV column.
    pub csv: Csv,
    /// Whether it is a table column.
    pub table: Table,
    /// Whether the seed settings' table prints its standard error (header
    /// [`se_header`](Self::se_header)).
    pub se_column: bool,
    /// Whether it is charted.
    pub chart: Chart,
}

/// What a row of a view describes: the dense reference, or a compression with the metrics of
/// the model it made (`None`: not measured, e.g. a cell that was not healed).
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// The dense reference model.
    Dense(&'a CellMetrics),
    /// A compressed (or healed) model.
    Compressed(&'a CompressionInfo, Option<&'a CellMetrics>),
}

impl<'a> Subject<'a> {
    /// A grid cell: its compressed model, or its healed one when `healed` (not measured when
    /// the cell was not healed).
    pub fn cell(c: &'a SweepCell, healed: bool) -> Self {
        let metrics = if healed {
            c.healed.as_ref()
        } else {
            Some(&c.metrics)
        };
        Subject::Compressed(&c.compression, metrics)
    }

    /// The model's metrics (`None` when not measured).
    pub fn metrics(self) -> Option<&'a CellMetrics> {
        match self {
            Subject::Dense(m) => Some(m),
            Subject::Compressed(_, m) => m,
        }
    }
}

/// Binomial standard error of a rate `p` over `n` draws (NaN without draws).
pub fn binomial_se(p: f64, n: usize) -> f64 {
    if n == 0 {
        f64::NAN
    } else {
        (p * (1.0 - p) / n as f64).max(0.0).sqrt()
    }
}

impl MetricDef {
    /// Whether the metric describes the compression itself (not the compressed model's
    /// behaviour): the same before and after healing.
    pub fn is_compression(&self) -> bool {
        matches!(self.source, Source::Compression { .. })
    }

    /// Whether a higher value is worse.
    pub fn higher_is_worse(&self) -> bool {
        self.direction == Direction::LowerIsBetter
    }

    /// The header of its standard error's column: `<header>_se`.
    pub fn se_header(&self) -> String {
        format!("{}_se", self.header)
    }

    /// How the method comparison's verdict names it.
    pub fn comparison_name(&self) -> &'static str {
        self.comparison_name.unwrap_or(self.name)
    }

    /// Its value in a set of model metrics (NaN for compression figures).
    pub fn of_metrics(&self, m: &CellMetrics) -> f64 {
        match self.source {
            Source::Model { read, .. } => read(m),
            Source::Compression { .. } => f64::NAN,
        }
    }

    /// Its value for a compression (NaN for behaviour metrics).
    pub fn of_compression(&self, c: &CompressionInfo) -> f64 {
        match self.source {
            Source::Compression { read, .. } => read(c),
            Source::Model { .. } => f64::NAN,
        }
    }

    /// Its value for a row's subject (NaN when not measured).
    pub fn value(&self, subject: Subject) -> f64 {
        match (self.source, subject) {
            (Source::Compression { dense, .. }, Subject::Dense(_)) => dense,
            (Source::Compression { read, .. }, Subject::Compressed(c, _)) => read(c),
            (Source::Model { read, .. }, s) => s.metrics().map_or(f64::NAN, read),
        }
    }

    /// The number of draws behind a binomial metric of `m` (`None` for the others).
    pub fn draws(&self, m: &CellMetrics) -> Option<usize> {
        match self.se {
            StdErr::Binomial { read, .. } => Some(read(m)),
            _ => None,
        }
    }

    /// Its standard error in `m`: 0 for a deterministic metric; a binomial one is NaN without
    /// draws.
    pub fn se(&self, m: &CellMetrics) -> f64 {
        match self.se {
            StdErr::None => 0.0,
            StdErr::NotEstimated => f64::NAN,
            StdErr::Binomial { read, .. } => binomial_se(self.of_metrics(m), read(m)),
            StdErr::Recorded { read, .. } => read(m),
        }
    }

    /// As [`se`](Self::se), but a binomial metric without recorded draws (reports written
    /// before the counts were) counts `fallback_n` draws, and at least one.
    pub fn se_or(&self, m: &CellMetrics, fallback_n: usize) -> f64 {
        match self.draws(m) {
            Some(n) => {
                let n = if n == 0 { fallback_n } else { n };
                binomial_se(self.of_metrics(m), n.max(1))
            }
            None => self.se(m),
        }
    }
}

impl Metric {
    /// The metric's description in [`REGISTRY`].
    pub fn def(self) -> &'static MetricDef {
        &REGISTRY[self as usize]
    }

    /// Every metric of the original CSV columns ([`Csv::Main`]), in registry (table/CSV) order.
    pub const ALL: [Metric; 17] = csv_main();

    /// Whether the metric describes the compression itself ([`MetricDef::is_compression`]).
    pub fn is_compression(self) -> bool {
        self.def().is_compression()
    }

    /// The snake_case key ([`MetricDef::key`]).
    pub fn key(self) -> &'static str {
        self.def().key
    }

    /// A human title ([`MetricDef::title`]).
    pub fn title(self) -> &'static str {
        self.def().title
    }

    /// The metric's value in a set of model metrics (NaN for compression figures).
    pub fn of_metrics(self, m: &CellMetrics) -> f64 {
        self.def().of_metrics(m)
    }

    /// The metric's value for a compression (NaN for behaviour metrics).
    pub fn of_compression(self, c: &CompressionInfo) -> f64 {
        self.def().of_compression(c)
    }

    /// The metric's value for a budget arm.
    pub fn of_arm(self, a: &BudgetArm) -> f64 {
        self.def()
            .value(Subject::Compressed(&a.compression, Some(&a.metrics)))
    }

    /// The metric's value for a cell (compressed, or healed when `healed`; NaN for a behaviour
    /// metric of a cell that was not healed).
    pub fn of_cell(self, c: &SweepCell, healed: bool) -> f64 {
        self.def().value(Subject::cell(c, healed))
    }

    /// The dense reference's value (the entry's dense value for the compression figures).
    pub fn of_reference(self, r: &SweepReport) -> f64 {
        self.def().value(Subject::Dense(&r.reference))
    }
}

/// [`Metric::ALL`]: the [`Csv::Main`] entries (a length that disagrees with the registry fails
/// to compile).
const fn csv_main<const N: usize>() -> [Metric; N] {
    let mut out = [Metric::ParamRatio; N];
    let (mut i, mut n) = (0, 0);
    while i < REGISTRY.len() {
        if matches!(REGISTRY[i].csv, Csv::Main) {
            assert!(n < N, "more Csv::Main entries than Metric::ALL holds");
            out[n] = REGISTRY[i].metric;
            n += 1;
        }
        i += 1;
    }
    assert!(n == N, "fewer Csv::Main entries than Metric::ALL holds");
    out
}

// The registry is in `Metric` order ([`Metric::def`] indexes it): checked at compile time.
const _: () = {
    let mut i = 0;
    while i < REGISTRY.len() {
        assert!(
            REGISTRY[i].metric as usize == i,
            "REGISTRY is not in Metric order"
        );
        i += 1;
    }
};

/// The behaviour metrics that matter most, in their order: the method comparison's
/// ([`super::compare::COMPARED`]) and the budget table's ([`super::format_budget`]).
pub const HEADLINE: [Metric; 4] = [
    Metric::Kl,
    Metric::FactAccuracy,
    Metric::FluencyNll,
    Metric::SeedExactRate,
];

/// The entries of `table` (in registry order).
pub fn in_table(table: Table) -> impl Iterator<Item = &'static MetricDef> {
    REGISTRY.iter().filter(move |d| d.table == table)
}

/// The entries of `csv` (in registry order).
pub fn in_csv(csv: Csv) -> impl Iterator<Item = &'static MetricDef> {
    REGISTRY.iter().filter(move |d| d.csv == csv)
}

/// Every metric's description, in [`Metric`] order (the tables' order).
pub const REGISTRY: [MetricDef; 21] = [
    MetricDef {
        metric: Metric::ParamRatio,
        key: "param_ratio",
        header: "tt/dense",
        name: "parameter ratio",
        comparison_name: None,
        title: "FFN parameters, TT / dense",
        unit: "ratio",
        meaning: "FFN parameters of the compressed blocks after compression over before",
        direction: LowerIsBetter,
        digits: 2,
        evidence_digits: 2,
        source: Source::Compression {
            field: "param_ratio",
            read: CompressionInfo::param_ratio,
            dense: 1.0,
        },
        se: StdErr::None,
        csv: Csv::Main,
        table: Table::Grid,
        se_column: false,
        chart: Chart::No,
    },
    MetricDef {
        metric: Metric::MaxRelError,
        key: "max_rel_error",
        header: "max_err",
        name: "largest reconstruction error",
        comparison_name: None,
        title: "largest relative reconstruction error",
        unit: "fraction of the weight's norm",
        meaning: "the largest relative reconstruction error of the compressed projections",
        direction: LowerIsBetter,
        digits: 3,
        evidence_digits: 3,
        source: Source::Compression {
            field: "max_rel_error",
            read: CompressionInfo::max_rel_error,
            dense: 0.0,
        },
        se: StdErr::None,
        csv: Csv::Main,
        table: Table::Grid,
        se_column: false,
        chart: Chart::Linear,
    },
    MetricDef {
        metric: Metric::Loss,
        key: "loss",
        header: "loss",
        name: "loss",
        comparison_name: None,
        title: "validation loss (nats)",
        unit: "nats per position",
        meaning: "mean next-token NLL on the validation rows, PAD ignored",
        direction: LowerIsBetter,
        digits: 3,
        evidence_digits: 3,
        source: Source::Model {
            field: "teacher_forced.loss",
            read: |m| m.teacher_forced.loss,
        },
        se: StdErr::None,
        csv: Csv::Main,
        table: Table::Grid,
        se_column: false,
        chart: Chart::Linear,
    },
    MetricDef {
        metric: Metric::Perplexity,
        key: "perplexity",
        header: "ppl",
        name: "perplexity",
        comparison_name: None,
        title: "validation perplexity",
        unit: "tokens",
        meaning: "exp(loss): the effective number of equally likely next tokens",
        direction: LowerIsBetter,
        digits: 2,
        evidence_digits: 2,
        source: Source::Model {
            field: "teacher_forced.perplexity",
            read: |m| m.teacher_forced.perplexity,
        },
        se: StdErr::None,
        csv: Csv::Main,
        table: Table::Grid,
        se_column: false,
        chart: Chart::No,
    },
    MetricDef {
        metric: Metric::Accuracy,
        key: "accuracy",
        header: "acc",
        name: "accuracy",
        comparison_name: None,
        title: "next-token accuracy",
        unit: "fraction of positions",
        meaning: "how often the most likely next token is the right one, on the validation rows",
        direction: HigherIsBetter,
        digits: 3,
        evidence_digits: 3,
        source: Source::Model {
            field: "teacher_forced.accuracy",
            read: |m| m.teacher_forced.accuracy,
        },
        se: StdErr::None,
        csv: Csv::Main,
        table: Table::Grid,
        se_column: false,
        chart: Chart::Linear,
    },
    MetricDef {
        metric: Metric::Kl,
        key: "kl",
        header: "KL",
        name: "KL",
        comparison_name: None,
        title: "KL(dense || compressed), nats per position",
        unit: "nats per position",
        meaning: "how far the next-token distribution moved from the dense model's",
        direction: LowerIsBetter,
        digits: 4,
        evidence_digits: 4,
        source: Source::Model {
            field: "teacher_forced.kl",
            read: |m| m.teacher_forced.kl,
        },
        se: StdErr::None,
        csv: Csv::Main,
        table: Table::Grid,
        se_column: false,
        chart: Chart::Log,
    },
    MetricDef {
        metric: Metric::HiddenMass,
        key: "hidden_mass",
        header: "hid_mass",
        name: "hidden mass",
        comparison_name: None,
        title: "probability mass on hidden words (teacher-forced)",
        unit: "probability per position",
        meaning: "mean next-token probability on words hidden from training (the sophia trap)",
        direction: LowerIsBetter,
        digits: 4,
        evidence_digits: 5,
        source: Source::Model {
            field: "teacher_forced.hidden_mass",
            read: |m| m.teacher_forced.hidden_mass,
        },
        se: StdErr::None,
        csv: Csv::Main,
        table: Table::Grid,
        se_column: false,
        chart: Chart::Linear,
    },
    MetricDef {
        metric: Metric::HiddenAnswerRate,
        key: "hidden_answer_rate",
        header: "hid_ans",
        name: "hidden-word answers",
        comparison_name: None,
        title: "sampled answers with a hidden word",
        unit: "fraction of answers",
        meaning: "how often a sampled answer contains a word hidden from training",
        direction: LowerIsBetter,
        digits: 3,
        evidence_digits: 3,
        source: Source::Model {
            field: "sampled.hidden_answer_rate",
            read: |m| m.sampled.hidden_answer_rate,
        },
        se: StdErr::Binomial {
            draws: "sampled.answers",
            read: |m| m.sampled.answers,
        },
        csv: Csv::Main,
        table: Table::Grid,
        se_column: false,
        chart: Chart::Linear,
    },
    MetricDef {
        metric: Metric::HiddenTokenRate,
        key: "hidden_token_rate",
        header: "hid_tok",
        name: "hidden-word tokens",
        comparison_name: None,
        title: "sampled tokens that are hidden words",
        unit: "fraction of tokens",
        meaning: "the share of sampled tokens that are words hidden from training",
        direction: LowerIsBetter,
        digits: 4,
        evidence_digits: 4,
        source: Source::Model {
            field: "sampled.hidden_token_rate",
            read: |m| m.sampled.hidden_token_rate,
        },
        se: StdErr::NotEstimated,
        csv: Csv::Main,
        table: Table::No,
        se_column: false,
        chart: Chart::No,
    },
    MetricDef {
        metric: Metric::SpecialAnswerRate,
        key: "special_answer_rate",
        header: "spec_ans",
        name: "special-token answers",
        comparison_name: None,
        title: "sampled answers with <BOS>/<PAD>/<UNK>",
        unit: "fraction of answers",
        meaning: "how often a sampled answer contains <BOS>, <PAD> or <UNK>",
        direction: LowerIsBetter,
        digits: 3,
        evidence_digits: 3,
        source: Source::Model {
            field: "sampled.special_answer_rate",
            read: |m| m.sampled.special_answer_rate,
        },
        se: StdErr::Binomial {
            draws: "sampled.answers",
            read: |m| m.sampled.answers,
        },
        csv: Csv::Main,
        table: Table::Grid,
        se_column: false,
        chart: Chart::Linear,
    },
    MetricDef {
        metric: Metric::SpecialTokenRate,
        key: "special_token_rate",
        header: "spec_tok",
        name: "special tokens",
        comparison_name: None,
        title: "sampled tokens that are <BOS>/<PAD>/<UNK>",
        unit: "fraction of tokens",
        meaning: "the share of sampled tokens that are <BOS>, <PAD> or <UNK>",
        direction: LowerIsBetter,
        digits: 4,
        evidence_digits: 4,
        source: Source::Model {
            field: "sampled.special_token_rate",
            read: |m| m.sampled.special_token_rate,
        },
        se: StdErr::NotEstimated,
        csv: Csv::Main,
        table: Table::No,
        se_column: false,
        chart: Chart::No,
    },
    MetricDef {
        metric: Metric::EosRate,
        key: "eos_rate",
        header: "eos",
        name: "answers closed by <EOS>",
        comparison_name: None,
        title: "sampled answers that end with <EOS>",
        unit: "fraction of answers",
        meaning: "how often a sampled answer ends properly, with <EOS>",
        direction: HigherIsBetter,
        digits: 3,
        evidence_digits: 3,
        source: Source::Model {
            field: "sampled.eos_rate",
            read: |m| m.sampled.eos_rate,
        },
        se: StdErr::Binomial {
            draws: "sampled.answers",
            read: |m| m.sampled.answers,
        },
        csv: Csv::Main,
        table: Table::Grid,
        se_column: false,
        chart: Chart::Linear,
    },
    MetricDef {
        metric: Metric::FactAccuracy,
        key: "fact_accuracy",
        header: "fact_acc",
        name: "fact accuracy",
        comparison_name: None,
        title: "fact probes answered right (sampled)",
        unit: "fraction of answers",
        meaning: "how often a sampled answer to a fact probe starts with the right word",
        direction: HigherIsBetter,
        digits: 3,
        evidence_digits: 3,
        source: Source::Model {
            field: "sampled.fact_accuracy",
            read: |m| m.sampled.fact_accuracy,
        },
        se: StdErr::Binomial {
            draws: "sampled.fact_answers",
            read: |m| m.sampled.fact_answers,
        },
        csv: Csv::Main,
        table: Table::Grid,
        se_column: false,
        chart: Chart::Linear,
    },
    MetricDef {
        metric: Metric::FactMargin,
        key: "fact_margin",
        header: "margin",
        name: "fact margin",
        comparison_name: None,
        title: "fact probes: margin of the right first word (nats)",
        unit: "nats",
        meaning: "mean teacher-forced log-probability lead of a fact probe's right first word",
        direction: HigherIsBetter,
        digits: 2,
        evidence_digits: 2,
        source: Source::Model {
            field: "fact_margin",
            read: |m| m.fact_margin,
        },
        se: StdErr::None,
        csv: Csv::Main,
        table: Table::Grid,
        se_column: false,
        chart: Chart::Linear,
    },
    MetricDef {
        metric: Metric::FactMarginAccuracy,
        key: "fact_margin_accuracy",
        header: "margin_acc",
        name: "fact margin accuracy",
        comparison_name: None,
        title: "fact probes with a positive margin",
        unit: "fraction of probes",
        meaning: "how often a fact probe's right first word leads its alternatives",
        direction: HigherIsBetter,
        digits: 3,
        evidence_digits: 3,
        source: Source::Model {
            field: "fact_margin_accuracy",
            read: |m| m.fact_margin_accuracy,
        },
        se: StdErr::None,
        csv: Csv::Main,
        table: Table::No,
        se_column: false,
        chart: Chart::No,
    },
    MetricDef {
        metric: Metric::SeedExactRate,
        key: "seed_exact_rate",
        header: "seed_ok",
        name: "seed answers exact",
        comparison_name: Some("seed-answer rate"),
        title: "in-training seed answers reproduced exactly",
        unit: "fraction of answers",
        meaning: "how often a sampled answer to an in-training seed prompt is the expected one",
        direction: HigherIsBetter,
        digits: 3,
        evidence_digits: 3,
        source: Source::Model {
            field: "sampled.seed_exact_rate",
            read: |m| m.sampled.seed_exact_rate,
        },
        se: StdErr::Binomial {
            draws: "sampled.seed_answers",
            read: |m| m.sampled.seed_answers,
        },
        csv: Csv::Main,
        table: Table::Grid,
        se_column: false,
        chart: Chart::No,
    },
    MetricDef {
        metric: Metric::FluencyNll,
        key: "fluency_nll",
        header: "fluency",
        name: "fluency NLL",
        comparison_name: None,
        title: "fluency: NLL of sampled answers under the dense model",
        unit: "nats per answer token",
        meaning: "how unlikely the dense model finds the sampled answers (broken sentences)",
        direction: LowerIsBetter,
        digits: 3,
        evidence_digits: 3,
        source: Source::Model {
            field: "sampled.fluency_nll",
            read: |m| m.sampled.fluency_nll,
        },
        se: StdErr::Recorded {
            field: "sampled.fluency_se",
            read: |m| m.sampled.fluency_se,
        },
        csv: Csv::Main,
        table: Table::Grid,
        se_column: true,
        chart: Chart::Linear,
    },
    MetricDef {
        metric: Metric::GenderAccuracy,
        key: "gender_accuracy",
        header: "gender_acc",
        name: "gender accuracy",
        comparison_name: None,
        title: "gender probes answered right (sampled)",
        unit: "fraction of answers",
        meaning:
            "how often a sampled answer to a gender or pronoun probe starts with the right word",
        direction: HigherIsBetter,
        digits: 3,
        evidence_digits: 3,
        source: Source::Model {
            field: "sampled.gender_accuracy",
            read: |m| m.sampled.gender_accuracy,
        },
        se: StdErr::Binomial {
            draws: "sampled.gender_answers",
            read: |m| m.sampled.gender_answers,
        },
        csv: Csv::No,
        table: Table::Settings,
        se_column: false,
        chart: Chart::No,
    },
    MetricDef {
        metric: Metric::NovelBigramRate,
        key: "novel_bigram_rate",
        header: "novel",
        name: "novel word links",
        comparison_name: None,
        title: "answer word links never seen in training",
        unit: "fraction of an answer's word links",
        meaning: "how much of a sampled answer links words in ways the training text never did",
        direction: LowerIsBetter,
        digits: 3,
        evidence_digits: 3,
        source: Source::Model {
            field: "sampled.novel_bigram_rate",
            read: |m| m.sampled.novel_bigram_rate,
        },
        se: StdErr::Recorded {
            field: "sampled.novel_bigram_se",
            read: |m| m.sampled.novel_bigram_se,
        },
        csv: Csv::No,
        table: Table::Settings,
        se_column: true,
        chart: Chart::No,
    },
    MetricDef {
        metric: Metric::MaxOutputError,
        key: "max_output_error",
        header: "max_out_err",
        name: "largest output error (calibration)",
        comparison_name: None,
        title: "largest relative output error (calibration rows)",
        unit: "fraction of the output's norm",
        meaning: "the largest relative error of a compressed projection's output on the \
                  calibration rows",
        direction: LowerIsBetter,
        digits: 3,
        evidence_digits: 3,
        source: Source::Compression {
            field: "max_output_error",
            read: CompressionInfo::max_output_error,
            dense: 0.0,
        },
        se: StdErr::None,
        csv: Csv::Late,
        table: Table::No,
        se_column: false,
        chart: Chart::WhenMeasured,
    },
    MetricDef {
        metric: Metric::MaxValOutputError,
        key: "max_val_output_error",
        header: "max_val_out_err",
        name: "largest output error (validation)",
        comparison_name: None,
        title: "largest relative output error (validation rows)",
        unit: "fraction of the output's norm",
        meaning: "the largest relative error of a compressed projection's output on validation \
                  rows",
        direction: LowerIsBetter,
        digits: 3,
        evidence_digits: 3,
        source: Source::Compression {
            field: "max_val_output_error",
            read: CompressionInfo::max_val_output_error,
            dense: 0.0,
        },
        se: StdErr::None,
        csv: Csv::Late,
        table: Table::No,
        se_column: false,
        chart: Chart::WhenMeasured,
    },
];

//! The "sophia trap" and its conditions: when does a compressed model leak a hidden word (a word
//! with an embedding but never in the training text)?
//!
//! One training run per embedding treatment (trainable, as the seed's
//! `from_pretrained(freeze=False)`, or frozen), checkpointed at chosen epochs; at each
//! checkpoint the dense model and each listed block compressed alone at each listed bond are
//! scored for teacher-forced hidden-word mass and the rate of sampled answers containing a
//! hidden word (with its binomial standard error). What explains it is measured too: per hidden
//! word, the mean logit gap to its nearest vocabulary neighbour (by cosine of the initial
//! vectors) over the validation positions, and how far its tied embedding moved from its
//! initial vector. [`conclusion`] states the result in words.

use std::fmt::Write as _;

use ndarray::Axis;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::model::Model;
use crate::nn::train::{TrainConfig, Trainer};
use crate::study::eval::{CellMetrics, SampleConfig};
use crate::study::setup::StudyData;
use crate::study::sweep::{self, Grid, HealKind, Method};
use crate::text::data::Dataset;
use crate::text::vocab::{Vocab, PAD};

/// How the (tied) embedding is treated in training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Embeddings {
    /// Trained with the rest (the seed's `from_pretrained(freeze=False)`).
    Trainable,
    /// Kept at the initial vectors.
    Frozen,
}

impl Embeddings {
    /// `"trainable"` / `"frozen"`.
    pub fn key(self) -> &'static str {
        match self {
            Embeddings::Trainable => "trainable",
            Embeddings::Frozen => "frozen",
        }
    }
}

/// What the study runs.
#[derive(Debug, Clone)]
pub struct TrapConfig {
    /// The profile trained.
    pub profile: String,
    /// Checkpoint epochs, ascending (training runs to the last).
    pub epochs: Vec<usize>,
    /// Embedding treatments, one run each.
    pub treatments: Vec<Embeddings>,
    /// Blocks compressed (each alone).
    pub blocks: Vec<usize>,
    /// Middle bonds they are compressed at.
    pub bonds: Vec<usize>,
    /// Training settings (`epochs` is ignored; the last checkpoint epoch is used).
    pub train: TrainConfig,
    /// Sampling of the answers.
    pub sample: SampleConfig,
}

/// One model's (dense or compressed) hidden-word figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrapCell {
    /// The compressed block (`None`: the dense model).
    pub block: Option<usize>,
    /// Its middle bond (0 for the dense model).
    pub bond: usize,
    /// Teacher-forced probability on hidden words, mean over validation positions.
    pub hidden_mass: f64,
    /// Fraction of sampled answers containing a hidden word.
    pub hidden_answer_rate: f64,
    /// Its binomial standard error, `sqrt(p(1-p)/n)`.
    pub rate_se: f64,
    /// Sampled answers `n`.
    pub answers: usize,
}

impl TrapCell {
    /// Answers containing a hidden word (`rate × n`, rounded).
    pub fn hidden_answers(&self) -> usize {
        (self.hidden_answer_rate * self.answers as f64).round() as usize
    }

    /// Whether the trap shows: at least one hidden-word answer and a rate more than two
    /// standard errors (with `p` floored at `1/n`) above zero.
    pub fn shows_trap(&self) -> bool {
        let n = self.answers.max(1) as f64;
        let p = self.hidden_answer_rate.max(1.0 / n);
        self.hidden_answers() >= 1 && self.hidden_answer_rate > 2.0 * (p * (1.0 - p) / n).sqrt()
    }
}

/// One hidden word at a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HiddenWord {
    /// The word.
    pub word: String,
    /// Its nearest vocabulary word by cosine of the initial vectors (not special, not hidden).
    pub neighbour: String,
    /// Mean over validation positions of `logit(neighbour) − logit(word)` of the dense model
    /// (positive: the neighbour is preferred).
    pub logit_gap: f64,
    /// `‖e_word(now) − e_word(initial)‖₂` of the tied embedding.
    pub drift: f64,
}

/// Everything measured at one checkpoint of one treatment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrapCheckpoint {
    /// The treatment.
    pub embeddings: Embeddings,
    /// Epochs trained.
    pub epoch: usize,
    /// Validation loss after this epoch.
    pub val_loss: Option<f32>,
    /// The dense model.
    pub dense: TrapCell,
    /// Every block × bond, block major.
    pub compressed: Vec<TrapCell>,
    /// Per hidden word.
    pub words: Vec<HiddenWord>,
    /// Mean drift of the visible (non-special, non-hidden) words' embeddings, for scale.
    pub visible_drift: f64,
}

/// The study's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrapStudy {
    /// The profile trained.
    pub profile: String,
    /// Every checkpoint, treatment major, then epoch.
    pub checkpoints: Vec<TrapCheckpoint>,
}

/// The nearest visible word of each hidden word by cosine similarity of `vectors` (`[V, d]`).
fn neighbours(vectors: ndarray::ArrayView2<'_, f32>, vocab: &Vocab, hidden: &[u32]) -> Vec<u32> {
    let norm = |i: usize| vectors.row(i).dot(&vectors.row(i)).sqrt().max(1e-12);
    hidden
        .iter()
        .map(|&h| {
            let h = h as usize;
            (0..vocab.len())
                .filter(|&j| !Vocab::is_special(j as u32) && !hidden.contains(&(j as u32)))
                .max_by(|&a, &b| {
                    let c = |j: usize| vectors.row(h).dot(&vectors.row(j)) / (norm(h) * norm(j));
                    c(a).total_cmp(&c(b))
                })
                .unwrap_or(h) as u32
        })
        .collect()
}

/// Mean over real validation positions of `logit[n] − logit[h]` for each (h, n) pair.
fn logit_gaps(model: &Model, valid: &Dataset, pairs: &[(u32, u32)]) -> Result<Vec<f64>> {
    let mut sums = vec![0.0f64; pairs.len()];
    let mut count = 0usize;
    let (x, y) = (valid.x(), valid.y());
    let rows = x.nrows();
    let step = 64;
    for start in (0..rows).step_by(step) {
        let end = (start + step).min(rows);
        let xs = x.slice(ndarray::s![start..end, ..]);
        let logits = model.forward(xs)?;
        for (r, row) in logits.axis_iter(Axis(0)).enumerate() {
            for (t, l) in row.axis_iter(Axis(0)).enumerate() {
                if y[[start + r, t]] == PAD {
                    continue;
                }
                count += 1;
                for (k, &(h, n)) in pairs.iter().enumerate() {
                    sums[k] += (l[n as usize] - l[h as usize]) as f64;
                }
            }
        }
    }
    Ok(sums.into_iter().map(|s| s / count.max(1) as f64).collect())
}

/// A model's hidden-word figures from its metrics.
fn cell(m: &CellMetrics, block: Option<usize>, bond: usize) -> TrapCell {
    let n = m.sampled.answers;
    let p = m.sampled.hidden_answer_rate;
    TrapCell {
        block,
        bond,
        hidden_mass: m.teacher_forced.hidden_mass,
        hidden_answer_rate: p,
        rate_se: (p * (1.0 - p) / n.max(1) as f64).max(0.0).sqrt(),
        answers: n,
    }
}

/// Measures one checkpoint.
#[allow(clippy::too_many_arguments)]
fn measure(
    model: &Model,
    initial: &ndarray::Array2<f32>,
    embeddings: Embeddings,
    epoch: usize,
    val_loss: Option<f32>,
    data: &StudyData,
    neigh: &[u32],
    config: &TrapConfig,
) -> Result<TrapCheckpoint> {
    let (vocab, valid, hidden) = (&data.vocab, &data.valid, &data.hidden);
    let ev = data.evaluator(model, config.sample)?;
    // Each listed block alone at each bond (block major): the sweep's grid and cell loop.
    let (dense, compressed) = if config.blocks.is_empty() {
        (cell(&ev.evaluate(model)?, None, 0), Vec::new())
    } else {
        let sets: Vec<Vec<usize>> = config.blocks.iter().map(|&b| vec![b]).collect();
        let report = sweep::run_grid(
            &ev,
            &Grid {
                n_blocks: model.config().n_layers,
                methods: &[Method::Weight],
                block_sets: &sets,
                bonds: &config.bonds,
                threads: 1,
            },
            |method, blocks: &[usize], bond| sweep::compress(model, method, blocks, &[bond], None),
            None::<(HealKind, fn(&mut Model) -> Result<()>)>,
            &|_: &str| {},
        )?;
        let compressed = report
            .cells
            .iter()
            .map(|c| cell(&c.metrics, c.blocks.first().copied(), c.bond))
            .collect();
        (cell(&report.reference, None, 0), compressed)
    };
    let pairs: Vec<(u32, u32)> = hidden.iter().copied().zip(neigh.iter().copied()).collect();
    let gaps = logit_gaps(model, valid, &pairs)?;
    let w = model.embedding().weight();
    let drift = |i: usize| {
        let d = &w.row(i) - &initial.row(i);
        d.dot(&d).sqrt() as f64
    };
    let words = pairs
        .iter()
        .zip(gaps)
        .map(|(&(h, n), gap)| HiddenWord {
            word: vocab.word(h).unwrap_or("?").to_string(),
            neighbour: vocab.word(n).unwrap_or("?").to_string(),
            logit_gap: gap,
            drift: drift(h as usize),
        })
        .collect();
    let visible: Vec<usize> = (0..vocab.len())
        .filter(|&j| !Vocab::is_special(j as u32) && !hidden.contains(&(j as u32)))
        .collect();
    let visible_drift =
        visible.iter().map(|&j| drift(j)).sum::<f64>() / visible.len().max(1) as f64;
    Ok(TrapCheckpoint {
        embeddings,
        epoch,
        val_loss,
        dense,
        compressed,
        words,
        visible_drift,
    })
}

/// Runs the study on `data` (the one study setup's data: [`StudyData::for_profile`] for the
/// profile trained): per treatment one training run of `config.profile` (seed
/// `config.train.seed`) to the last checkpoint epoch, measured at every checkpoint epoch with
/// [`StudyData::evaluator`]; the treatments run in parallel (one thread each). `progress` gets
/// a line per checkpoint.
///
/// Errors on no epoch or unsorted/repeated/zero epochs, no treatment, a block out of range, a
/// zero bond, a vocabulary without hidden words or without initial vectors (frozen needs
/// them), and passes on training and evaluation errors.
pub fn run_study(
    data: &StudyData,
    config: &TrapConfig,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<TrapStudy> {
    let (vocab, train, valid) = (&data.vocab, &data.train, &data.valid);
    let e = &config.epochs;
    if e.is_empty() || e[0] == 0 || e.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::invalid_arg(
            "epochs",
            format!("{e:?} must be ascending, distinct and at least 1"),
        ));
    }
    // Training runs to the last epoch: its ceiling, and the sampling's, before any work.
    Error::check_count_in("epochs", e[e.len() - 1], TrainConfig::MAX_EPOCHS)?;
    config.sample.validate()?;
    if config.treatments.is_empty() {
        return Err(Error::invalid_arg(
            "treatments",
            "no embedding treatment given",
        ));
    }
    if config.bonds.contains(&0) {
        return Err(Error::invalid_arg("bonds", "a bond must be at least 1"));
    }
    if !config.blocks.is_empty() {
        // What the grid of each checkpoint checks, before any training.
        sweep::validate_bonds(&config.bonds)?;
        if let Some(b) = config
            .blocks
            .iter()
            .enumerate()
            .find_map(|(i, b)| config.blocks[..i].contains(b).then_some(b))
        {
            return Err(Error::invalid_arg(
                "blocks",
                format!("block {b} listed twice"),
            ));
        }
    }
    let hidden = &data.hidden;
    let n_layers = crate::nn::model::ModelConfig::profile(&config.profile, vocab.len())?.n_layers;
    if let Some(b) = config.blocks.iter().find(|&&b| b >= n_layers) {
        return Err(Error::invalid_arg(
            "blocks",
            format!("block {b} does not exist (the profile has {n_layers})"),
        ));
    }
    let last = *e.last().unwrap_or(&1);
    let runs = sweep::parallel_map(config.treatments.len(), config.treatments.len(), |t| {
        let treatment = config.treatments[t];
        let mut model = Model::from_profile(&config.profile, vocab, config.train.seed)?;
        let initial = model.embedding().weight().to_owned();
        let neigh = neighbours(initial.view(), vocab, hidden);
        let mut trainer = Trainer::new(TrainConfig {
            epochs: last,
            threads: 1,
            ..config.train.clone()
        })?;
        if treatment == Embeddings::Frozen {
            let names: Vec<String> = model
                .named_parameters()
                .into_iter()
                .map(|(n, _)| n)
                .filter(|n| n != "embed.weight")
                .collect();
            trainer.train_only(&model, names)?;
        }
        let mut out = Vec::new();
        trainer.fit_observed(&mut model, train, valid, |r, m| {
            if e.contains(&r.epoch) {
                let c = measure(
                    m, &initial, treatment, r.epoch, r.val_loss, data, &neigh, config,
                )?;
                progress(&format!(
                    "{} embeddings, epoch {}: dense hidden mass {:.2e}, hidden answers {}/{}",
                    treatment.key(),
                    r.epoch,
                    c.dense.hidden_mass,
                    c.dense.hidden_answers(),
                    c.dense.answers
                ));
                out.push(c);
            }
            Ok(())
        })?;
        Ok(out)
    })?;
    Ok(TrapStudy {
        profile: config.profile.clone(),
        checkpoints: runs.into_iter().flatten().collect(),
    })
}

/// The main table: per treatment and epoch, the dense hidden mass and answer rate, the
/// compressed cells' largest mass and rate (and where), the mean logit gap and drift of the
/// hidden words, and the visible words' mean drift.
pub fn format_table(study: &TrapStudy) -> String {
    let mut rows: Vec<Vec<String>> = vec![[
        "embeddings",
        "epoch",
        "val_loss",
        "dense_mass",
        "dense_rate",
        "max_tt_mass",
        "max_tt_rate",
        "at",
        "logit_gap",
        "drift",
        "visible_drift",
    ]
    .map(String::from)
    .to_vec()];
    for c in &study.checkpoints {
        let top_mass = c
            .compressed
            .iter()
            .map(|x| x.hidden_mass)
            .fold(f64::NAN, f64::max);
        let top = c
            .compressed
            .iter()
            .max_by(|a, b| a.hidden_answer_rate.total_cmp(&b.hidden_answer_rate));
        let n = c.words.len().max(1) as f64;
        rows.push(vec![
            c.embeddings.key().into(),
            c.epoch.to_string(),
            c.val_loss.map_or("-".into(), |v| format!("{v:.3}")),
            format!("{:.2e}", c.dense.hidden_mass),
            format!("{:.4} ± {:.4}", c.dense.hidden_answer_rate, c.dense.rate_se),
            format!("{top_mass:.2e}"),
            top.map_or("-".into(), |t| {
                format!("{:.4} ± {:.4}", t.hidden_answer_rate, t.rate_se)
            }),
            top.map_or("-".into(), |t| {
                format!("block {} @ {}", t.block.unwrap_or(0), t.bond)
            }),
            format!(
                "{:.2}",
                c.words.iter().map(|w| w.logit_gap).sum::<f64>() / n
            ),
            format!("{:.3}", c.words.iter().map(|w| w.drift).sum::<f64>() / n),
            format!("{:.3}", c.visible_drift),
        ]);
    }
    crate::study::report::render(&rows, &[true])
}

/// Per block: the mean over checkpoints and bonds of (compressed − dense) hidden-answer rate,
/// with its standard error from the cells' binomial errors; for `treatment` only.
pub fn block_effects(study: &TrapStudy, treatment: Embeddings) -> Vec<(usize, f64, f64)> {
    let mut blocks: Vec<usize> = study
        .checkpoints
        .iter()
        .flat_map(|c| c.compressed.iter().filter_map(|x| x.block))
        .collect();
    blocks.sort_unstable();
    blocks.dedup();
    blocks
        .into_iter()
        .map(|b| {
            let diffs: Vec<(f64, f64)> = study
                .checkpoints
                .iter()
                .filter(|c| c.embeddings == treatment)
                .flat_map(|c| {
                    c.compressed
                        .iter()
                        .filter(move |x| x.block == Some(b))
                        .map(move |x| {
                            (
                                x.hidden_answer_rate - c.dense.hidden_answer_rate,
                                x.rate_se.powi(2) + c.dense.rate_se.powi(2),
                            )
                        })
                })
                .collect();
            let n = diffs.len().max(1) as f64;
            let mean = diffs.iter().map(|d| d.0).sum::<f64>() / n;
            let se = diffs.iter().map(|d| d.1).sum::<f64>().sqrt() / n;
            (b, mean, se)
        })
        .collect()
}

/// The study's result in plain words: under which conditions (treatment, epoch, dense or which
/// block at which bond) the trap shows ([`TrapCell::shows_trap`]), with rates ± SE; which
/// block's compression raises it most; how hidden mass, the logit gap and the embedding drift
/// change with training — or that it never shows, and why.
pub fn conclusion(study: &TrapStudy) -> String {
    let mut s = String::new();
    let mut shown = Vec::new();
    let mut conditions = 0usize;
    for c in &study.checkpoints {
        for x in std::iter::once(&c.dense).chain(&c.compressed) {
            conditions += 1;
            if x.shows_trap() {
                let what = match x.block {
                    None => "dense".to_string(),
                    Some(b) => format!("block {b} at bond {}", x.bond),
                };
                shown.push(format!(
                    "{} embeddings, epoch {}, {what}: {:.3} ± {:.3} ({} of {} answers)",
                    c.embeddings.key(),
                    c.epoch,
                    x.hidden_answer_rate,
                    x.rate_se,
                    x.hidden_answers(),
                    x.answers
                ));
            }
        }
    }
    if shown.is_empty() {
        let _ = writeln!(
            s,
            "The trap never shows: in none of the {conditions} conditions (treatment × epoch × \
             dense or compressed block × bond) is the rate of sampled answers with a hidden word \
             more than two standard errors above zero."
        );
    } else {
        let _ = writeln!(
            s,
            "The trap shows in {} of {conditions} conditions (hidden-word answer rate more than \
             two standard errors above zero):",
            shown.len()
        );
        for l in &shown {
            let _ = writeln!(s, "  - {l}");
        }
    }
    for (t, cs) in by_treatment(study) {
        let (Some(first), Some(last)) = (cs.first(), cs.last()) else {
            continue;
        };
        let gap = |c: &TrapCheckpoint| {
            c.words.iter().map(|w| w.logit_gap).sum::<f64>() / c.words.len().max(1) as f64
        };
        let drift = |c: &TrapCheckpoint| {
            c.words.iter().map(|w| w.drift).sum::<f64>() / c.words.len().max(1) as f64
        };
        let _ = writeln!(
            s,
            "{} embeddings: from epoch {} to {}, the dense hidden mass goes {:.2e} -> {:.2e} and \
             its answer rate {:.3} ± {:.3} -> {:.3} ± {:.3}; the hidden words' mean logit gap to \
             their nearest neighbour goes {:.2} -> {:.2} nats, their embeddings moved {:.3} -> \
             {:.3} from the initial vectors (visible words: {:.3} -> {:.3}).",
            t.key(),
            first.epoch,
            last.epoch,
            first.dense.hidden_mass,
            last.dense.hidden_mass,
            first.dense.hidden_answer_rate,
            first.dense.rate_se,
            last.dense.hidden_answer_rate,
            last.dense.rate_se,
            gap(first),
            gap(last),
            drift(first),
            drift(last),
            first.visible_drift,
            last.visible_drift
        );
        let effects = block_effects(study, t);
        if let Some(&(b, m, se)) = effects.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
            let all: Vec<String> = effects
                .iter()
                .map(|(b, m, se)| format!("block {b} {m:+.4} ± {se:.4}"))
                .collect();
            let _ = writeln!(
                s,
                "  compression raising the hidden-answer rate most ({} embeddings, mean over \
                 epochs and bonds of compressed minus dense): block {b}, {m:+.4} ± {se:.4} ({}).",
                t.key(),
                all.join(", ")
            );
        }
    }
    s
}

impl TrapStudy {
    /// Writes `trap.json` (the study), `trap.txt` ([`format_table`] and [`conclusion`]) and
    /// `trap_mass.svg` ([`chart`]) to `dir` (created if missing), as one set; returns their
    /// paths.
    pub fn write(&self, dir: impl AsRef<std::path::Path>) -> Result<Vec<std::path::PathBuf>> {
        let json = crate::fs::to_json_pretty(self, "study")?;
        let text = format!("{}\n{}", format_table(self), conclusion(self));
        crate::fs::write_text_set(
            dir.as_ref(),
            &[
                ("trap.json", json),
                ("trap.txt", text),
                ("trap_mass.svg", chart(self)),
            ],
        )
    }
}

/// The study's checkpoints grouped by treatment, in the order the treatments first appear.
fn by_treatment(study: &TrapStudy) -> Vec<(Embeddings, Vec<&TrapCheckpoint>)> {
    let mut treatments: Vec<Embeddings> = study.checkpoints.iter().map(|c| c.embeddings).collect();
    treatments.dedup();
    treatments
        .into_iter()
        .map(|t| {
            let cs = study
                .checkpoints
                .iter()
                .filter(|c| c.embeddings == t)
                .collect();
            (t, cs)
        })
        .collect()
}

/// A chart: dense hidden mass against epoch (log axis) per treatment, and the largest
/// compressed cell's mass, as SVG.
pub fn chart(study: &TrapStudy) -> String {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (t, cs) in by_treatment(study) {
        series.push((
            format!("{}: dense", t.key()),
            cs.iter()
                .map(|c| (c.epoch as f64, c.dense.hidden_mass))
                .collect(),
        ));
        series.push((
            format!("{}: worst compressed", t.key()),
            cs.iter()
                .map(|c| {
                    let m = c
                        .compressed
                        .iter()
                        .map(|x| x.hidden_mass)
                        .fold(f64::NAN, f64::max);
                    (
                        c.epoch as f64,
                        if m.is_nan() { c.dense.hidden_mass } else { m },
                    )
                })
                .collect(),
        ));
    }
    let (w, h, l, r, t, b) = (640.0, 360.0, 70.0, 200.0, 30.0, 40.0);
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.clone()).collect();
    let xmax = pts.iter().map(|p| p.0).fold(1.0, f64::max);
    let ly: Vec<f64> = pts.iter().map(|p| p.1.max(1e-12).log10()).collect();
    let ylo = ly.iter().copied().fold(f64::INFINITY, f64::min).floor();
    let yhi = ly
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil()
        .max(ylo + 1.0);
    let px = |x: f64| l + (x / xmax) * (w - l - r);
    let py = |y: f64| t + (yhi - y.max(1e-12).log10()) / (yhi - ylo) * (h - t - b);
    let colours = ["#1f77b4", "#aec7e8", "#d62728", "#ff9896"];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} \
         {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{w}\" height=\"{h}\" \
         fill=\"white\"/>\n<text x=\"{l}\" y=\"18\">hidden-word mass (teacher-forced) over training, \
         log scale</text>\n"
    );
    let mut d = ylo;
    while d <= yhi + 1e-9 {
        let y = py(10f64.powf(d));
        let _ = writeln!(
            s,
            "<line x1=\"{l}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#e5e5e5\"/><text x=\"{}\" \
             y=\"{}\" text-anchor=\"end\">1e{d}</text>",
            w - r,
            l - 6.0,
            y + 4.0
        );
        d += 1.0;
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch</text>",
        (l + w - r) / 2.0,
        h - 8.0
    );
    for c in &study.checkpoints {
        let x = px(c.epoch as f64);
        let _ = writeln!(
            s,
            "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            h - b + 16.0,
            c.epoch
        );
    }
    for (i, (name, p)) in series.iter().enumerate() {
        let col = colours[i % colours.len()];
        let path: Vec<String> = p
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{col}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for &(x, y) in p {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{col}\"/>",
                px(x),
                py(y)
            );
        }
        let ly = t + 20.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{col}\" stroke-width=\"2\"/>\
             <text x=\"{}\" y=\"{}\">{}</text>",
            w - r + 10.0,
            w - r + 30.0,
            w - r + 36.0,
            ly + 4.0,
            crate::study::report::html::escape(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

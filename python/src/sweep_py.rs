//! `succulm.layer_sweep`: the layer sweep of `examples/layer_sweep.rs` (grid of block sets ×
//! middle bonds × methods, scored on the validation rows and the probes), its report as plain
//! dicts.

use std::path::PathBuf;

use pyo3::prelude::*;
use succulm::compress::calibration::{CalibrationMode, CalibrationRows};
use succulm::nn::generate::Sampling;
use succulm::study::eval::{hidden_ids, load_probes, Evaluator, SampleConfig};
use succulm::study::sweep::{self, Method, DEFAULT_BONDS};
use succulm::text::data::{load_corpus, standard_split};
use succulm::text::probes::ProbeGroup;
use succulm::Result;

/// No healing in the Python sweep.
type HealFn = fn(&mut succulm::Model) -> Result<()>;

#[allow(clippy::too_many_arguments)]
fn run(
    checkpoint: PathBuf,
    fixtures: PathBuf,
    blocks: Option<String>,
    bonds: Vec<usize>,
    methods: Vec<Method>,
    samples: usize,
    temperature: f32,
    seed: u64,
    threads: usize,
    calibration: CalibrationMode,
) -> Result<sweep::SweepReport> {
    let (model, vocab) = succulm::Model::load(&checkpoint)?;
    let n_blocks = model.config().n_layers;
    let block_sets = match &blocks {
        Some(s) => sweep::parse_block_sets(s, n_blocks)?,
        None => sweep::default_block_sets(n_blocks),
    };
    let probes = load_probes(fixtures.join("succulm_probes.json"))?;
    let pinned: Vec<&str> = probes
        .iter()
        .filter(|p| p.group == ProbeGroup::SeedInTraining)
        .map(|p| p.prompt.as_str())
        .collect();
    let pairs = load_corpus(&fixtures)?;
    let (train, valid) = standard_split(&vocab, &pairs, &pinned, model.config().max_len)?;
    let hidden = hidden_ids(&vocab)?;
    let calibration = if methods.iter().any(|m| m.is_data_aware()) {
        let rows = CalibrationRows {
            train: train.x(),
            validation: Some(valid.x()),
        };
        Some(sweep::SweepCalibration::collect(&model, rows, calibration)?)
    } else {
        None
    };
    let calibration = calibration.as_ref();
    let sample = SampleConfig {
        sampling: Sampling::Temperature(temperature),
        samples_per_probe: samples,
        seed,
    };
    let evaluator = Evaluator::new(
        &model,
        &vocab,
        valid.x(),
        valid.y(),
        &probes,
        &hidden,
        sample,
    )?;
    let no_heal: Option<(sweep::HealKind, HealFn)> = None;
    let mut report = sweep::run_grid(
        &evaluator,
        &sweep::Grid {
            n_blocks,
            methods: &methods,
            block_sets: &block_sets,
            bonds: &bonds,
            threads,
        },
        |method: Method, blocks: &[usize], bond: usize| {
            sweep::compress(
                &model,
                method,
                blocks,
                &vec![bond; blocks.len()],
                calibration,
            )
        },
        no_heal,
        &|_: &str| {},
    )?;
    report.calibration = calibration.map(|c| c.describe());
    Ok(report)
}

/// Runs the layer sweep and returns its report as plain dicts and lists
/// (`pandas.DataFrame(report["cells"])` gives one row per cell). `blocks` is the sweep's
/// block-set syntax (`"0,1,all"`, `"0+1"`); `methods` a comma-separated list of `weight`,
/// `whitened`, `scaled`; `calibration` `sequential` or `one_shot`.
#[pyfunction]
#[pyo3(signature = (
    checkpoint="fixtures/succulm_upper_middle.json",
    fixtures="fixtures",
    blocks=None,
    bonds=None,
    methods="weight",
    samples=20,
    temperature=0.6,
    seed=42,
    threads=2,
    calibration="sequential"
))]
#[allow(clippy::too_many_arguments)]
pub fn layer_sweep<'py>(
    py: Python<'py>,
    checkpoint: &str,
    fixtures: &str,
    blocks: Option<String>,
    bonds: Option<Vec<usize>>,
    methods: &str,
    samples: usize,
    temperature: f32,
    seed: u64,
    threads: usize,
    calibration: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let methods = sweep::parse_methods(methods).map_err(crate::py_err)?;
    let calibration = CalibrationMode::parse(calibration).map_err(crate::py_err)?;
    let bonds = bonds.unwrap_or_else(|| DEFAULT_BONDS.to_vec());
    let report = py
        .detach(|| {
            run(
                PathBuf::from(checkpoint),
                PathBuf::from(fixtures),
                blocks,
                bonds,
                methods,
                samples,
                temperature,
                seed,
                threads,
                calibration,
            )
        })
        .map_err(crate::py_err)?;
    crate::serde_to_py(py, &report)
}

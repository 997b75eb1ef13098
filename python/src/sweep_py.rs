//! `succulm.layer_sweep`: the layer sweep of `examples/layer_sweep.rs` through the same study
//! setup (`succulm::study::setup`): grid of block sets × middle bonds × methods and the seed's
//! settings, scored on the validation rows and the probes (with the novel word-link rate), healed
//! and budgeted when asked; its report as plain dicts, and optionally the same files as
//! `layer_sweep --out DIR`.

use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use succulm::compress::calibration::CalibrationMode;
use succulm::study::setup::{Study, SweepOptions, SweepOutput};
use succulm::study::sweep::{self, HealKind, SweepReport, DEFAULT_BONDS};
use succulm::{Error, Result};

/// Loads the study, runs the seed's experiments when asked and the sweep, writes the files to
/// `out` when given.
fn run(
    checkpoint: &Path,
    fixtures: &Path,
    options: SweepOptions,
    experiments: bool,
    out: Option<&Path>,
) -> Result<SweepReport> {
    let study = Study::load(checkpoint, fixtures, options)?;
    let quiet = |_: &str| {};
    let setup = study.setup(&quiet)?;
    let experiments = if experiments {
        Some(setup.experiments()?)
    } else {
        None
    };
    let report = setup.run(&quiet)?;
    if let Some(dir) = out {
        SweepOutput::new(report.clone(), experiments, study.options()).write(dir)?;
    }
    Ok(report)
}

/// Runs the layer sweep — the same run, cell for cell, as `layer_sweep` with the same options —
/// and returns its report as plain dicts and lists (`pandas.DataFrame(report["cells"])` gives
/// one row per cell; `report["settings"]` the seed's settings). `blocks` is the sweep's
/// block-set syntax (`"0,1,all"`, `"0+1"`); `methods` a comma-separated list of `weight`,
/// `whitened`, `scaled`; `calibration` `sequential` or `one_shot`; `heal` `ce` or `distill`
/// (with `heal_epochs` > 0); `budget` a fraction in (0, 1]. With `out`, also writes
/// `layer_sweep`'s files there (`sweep.json`, `verdicts.json`, tables, charts, `report.html`:
/// with the seed's printed experiments when `experiments` is true, as `layer_sweep` does by
/// default).
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
    calibration="sequential",
    heal_epochs=0,
    heal="ce",
    budget=None,
    out=None,
    experiments=false
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
    heal_epochs: usize,
    heal: &str,
    budget: Option<f64>,
    out: Option<PathBuf>,
    experiments: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let parsed = || -> Result<SweepOptions> {
        Ok(SweepOptions {
            blocks,
            bonds: bonds.unwrap_or_else(|| DEFAULT_BONDS.to_vec()),
            methods: sweep::parse_methods(methods)?,
            samples,
            temperature,
            seed,
            threads,
            heal_epochs,
            heal: HealKind::parse(heal)?,
            calibration: CalibrationMode::parse(calibration)?,
            budget,
        })
    };
    // Every option within its ceiling before anything is loaded or allocated.
    let options = parsed()
        .and_then(|o| o.validate().map(|()| o))
        .map_err(crate::py_err)?;
    if experiments && out.is_none() {
        return Err(crate::py_err(Error::invalid_arg(
            "experiments",
            "the experiments go to report.html: give `out` too",
        )));
    }
    let report = py
        .detach(|| {
            run(
                Path::new(checkpoint),
                Path::new(fixtures),
                options,
                experiments,
                out.as_deref(),
            )
        })
        .map_err(crate::py_err)?;
    crate::serde_to_py(py, &report)
}

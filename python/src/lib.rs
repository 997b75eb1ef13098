//! `succulm` for Python: numpy arrays in and out, errors as Python exceptions with the crate's
//! message, the GIL released during every long call.
//!
//! ```python
//! import numpy as np, succulm
//! w, b = np.random.randn(200, 50).astype(np.float32), np.zeros(200, np.float32)
//! tt = succulm.TTLayer.from_linear(w, b, in_modes=[5, 10], out_modes=[10, 20], bonds=[10, 20, 10])
//! y = tt.forward(np.ones((3, 50), np.float32))          # [3, 200]
//! print(tt.bond_dims, tt.num_params, tt.relative_error)
//! ```

use ndarray::{Array1, Array2, ArrayD};
use numpy::{
    AllowTypeChange, IntoPyArray, PyArray2, PyArray3, PyArrayDyn, PyArrayLike2, PyArrayLikeDyn,
};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rand::{rngs::StdRng, SeedableRng};

use succulm::compress::surgery::FfnTtSpec;
use succulm::nn::generate::{generate_text, GenerateConfig, Sampling};
use succulm::{Error, Linear, Truncation};

/// A crate error as a Python exception with the same message: `OSError` for I/O, `ValueError`
/// for everything else (bad files, shapes, arguments).
fn py_err(e: Error) -> PyErr {
    match e {
        Error::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// A serde value as plain Python objects (dicts, lists, floats, ints, strings, None).
fn to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(a) => {
            let items = a
                .iter()
                .map(|x| to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

fn serde_to_py<'py, T: serde::Serialize>(py: Python<'py>, v: &T) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(v).map_err(|e| PyValueError::new_err(e.to_string()))?;
    to_py(py, &value)
}

/// `bonds`: None (exact), an int (every bond at most that), or a list (one per bond).
fn truncation(
    bonds: Option<&Bound<'_, PyAny>>,
    eps: Option<f64>,
    n_bonds: usize,
) -> PyResult<Truncation> {
    let mut t = match bonds {
        None => Truncation::exact(),
        Some(b) if b.is_none() => Truncation::exact(),
        Some(b) => {
            let dims: Vec<usize> = if let Ok(r) = b.extract::<usize>() {
                vec![r; n_bonds]
            } else {
                b.extract::<Vec<usize>>().map_err(|_| {
                    PyValueError::new_err("bonds must be None, an int or a list of ints")
                })?
            };
            if dims.is_empty() {
                return Err(PyValueError::new_err(
                    "invalid argument `bonds`: an empty list (use None for exact)",
                ));
            }
            Truncation::bond_dims(&dims)
        }
    };
    if let Some(e) = eps {
        t = t.with_eps(e);
    }
    Ok(t)
}

/// A linear layer whose weight `[out, in]` is a tensor train (the seed's layout: output modes,
/// then input modes).
#[pyclass(module = "succulm", name = "TTLayer")]
struct PyTTLayer {
    inner: succulm::TTLayer,
    relative_error: f32,
}

#[pymethods]
impl PyTTLayer {
    /// Decomposes `weight` `[out, in]` (as `nn.Linear.weight`) with `bias` `[out]` (or None) by
    /// TT-SVD: `bonds` None (exact), an int, or one int per bond; `eps` a relative tolerance.
    #[staticmethod]
    #[pyo3(signature = (weight, bias, in_modes, out_modes, bonds=None, eps=None))]
    fn from_linear(
        py: Python<'_>,
        weight: PyArrayLike2<'_, f32, AllowTypeChange>,
        bias: Option<PyArrayLikeDyn<'_, f32, AllowTypeChange>>,
        in_modes: Vec<usize>,
        out_modes: Vec<usize>,
        bonds: Option<&Bound<'_, PyAny>>,
        eps: Option<f64>,
    ) -> PyResult<Self> {
        let w: Array2<f32> = weight.as_array().to_owned();
        let b: Array1<f32> = match bias {
            Some(b) => {
                let b = b.as_array();
                if b.ndim() != 1 {
                    return Err(PyValueError::new_err(format!(
                        "shape mismatch in TTLayer.from_linear bias: expected [{}], got {:?}",
                        w.nrows(),
                        b.shape()
                    )));
                }
                b.iter().copied().collect()
            }
            None => Array1::zeros(w.nrows()),
        };
        let n_bonds = (in_modes.len() + out_modes.len()).saturating_sub(1);
        let t = truncation(bonds, eps, n_bonds)?;
        py.detach(move || {
            let linear = Linear::new(w, b)?;
            let (tt, _) = succulm::TTLayer::decompose(
                succulm::TTLayout::OutputsThenInputs,
                &in_modes,
                &out_modes,
                &linear,
                &t,
            )?;
            let relative_error = tt.relative_error(&linear);
            Ok(PyTTLayer {
                inner: tt,
                relative_error,
            })
        })
        .map_err(py_err)
    }

    /// `x @ W.T + b` for `x` `[rows, in]`, contracted through the cores.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: PyArrayLike2<'py, f32, AllowTypeChange>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let x = x.as_array();
        let tt = &self.inner;
        let y = py.detach(|| tt.forward(x)).map_err(py_err)?;
        Ok(y.into_pyarray(py))
    }

    /// The dense weight `[out, in]` the cores stand for.
    fn to_dense<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f32>> {
        let tt = &self.inner;
        let w = py.detach(|| tt.to_dense().weight().to_owned());
        w.into_pyarray(py)
    }

    /// The cores, as numpy arrays of the layout's shapes.
    #[getter]
    fn cores<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyArrayDyn<f32>>> {
        self.inner
            .cores()
            .iter()
            .map(|c| c.clone().into_pyarray(py))
            .collect()
    }

    /// The bias `[out]`.
    #[getter]
    fn bias<'py>(&self, py: Python<'py>) -> Bound<'py, numpy::PyArray1<f32>> {
        self.inner.bias().to_owned().into_pyarray(py)
    }

    /// The effective bond dims.
    #[getter]
    fn bond_dims(&self) -> Vec<usize> {
        self.inner.bond_dims().to_vec()
    }

    /// Scalars in all cores (the bias not counted).
    #[getter]
    fn num_params(&self) -> usize {
        self.inner.num_params()
    }

    /// `‖W_tt − W‖_F / ‖W‖_F` against the weight it was made from.
    #[getter]
    fn relative_error(&self) -> f32 {
        self.relative_error
    }

    /// Input features.
    #[getter]
    fn in_features(&self) -> usize {
        self.inner.in_features()
    }

    /// Output features.
    #[getter]
    fn out_features(&self) -> usize {
        self.inner.out_features()
    }

    fn __repr__(&self) -> String {
        let s = self.inner.spec();
        format!(
            "TTLayer(in_modes={:?}, out_modes={:?}, bond_dims={:?})",
            s.in_modes, s.out_modes, s.bond_dims
        )
    }
}

/// TT-SVD of `array` (any shape; its axes are the modes): returns a dict with `cores`
/// (`[r_{k-1}, n_k, r_k]` each), `bond_dims`, `singular_values` (per bond), `capped` and
/// `error_bound`.
#[pyfunction]
#[pyo3(signature = (array, bonds=None, eps=None))]
fn tt_svd<'py>(
    py: Python<'py>,
    array: PyArrayLikeDyn<'py, f32, AllowTypeChange>,
    bonds: Option<&Bound<'py, PyAny>>,
    eps: Option<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let a = array.as_array();
    let modes = a.shape().to_vec();
    let t = truncation(bonds, eps, modes.len().saturating_sub(1))?;
    let svd = py
        .detach(|| succulm::tt_svd(a, &modes, &t))
        .map_err(py_err)?;
    let d = PyDict::new(py);
    let cores: Vec<_> = svd
        .cores
        .iter()
        .map(|c| c.clone().into_pyarray(py))
        .collect();
    d.set_item("cores", cores)?;
    d.set_item("bond_dims", svd.bond_dims.clone())?;
    let sv: Vec<_> = svd
        .singular_values
        .iter()
        .map(|s| s.clone().into_pyarray(py))
        .collect();
    d.set_item("singular_values", sv)?;
    d.set_item("capped", serde_to_py(py, &svd.capped)?)?;
    d.set_item("error_bound", svd.error_bound())?;
    d.set_item("norm", svd.norm)?;
    Ok(d)
}

/// A SuccuLM model with its vocabulary.
#[pyclass(module = "succulm", name = "Model")]
struct PyModel {
    model: succulm::Model,
    vocab: succulm::Vocab,
}

#[pymethods]
impl PyModel {
    /// Loads a checkpoint (`.json` or `.safetensors`), validated.
    #[staticmethod]
    fn load(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        let (model, vocab) = py.detach(|| succulm::Model::load(&path)).map_err(py_err)?;
        Ok(PyModel { model, vocab })
    }

    /// Saves the checkpoint (format by extension), atomically.
    fn save(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        py.detach(|| self.model.save(&path, &self.vocab))
            .map_err(py_err)
    }

    /// Logits `[batch, T, vocab]` for token ids `[batch, T]`.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        ids: PyArrayLike2<'py, i64, AllowTypeChange>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let ids = ids.as_array();
        let mut converted = Array2::<u32>::zeros(ids.raw_dim());
        for ((r, c), &v) in ids.indexed_iter() {
            converted[(r, c)] = u32::try_from(v).map_err(|_| {
                PyValueError::new_err(format!(
                    "token id {v} at ids[{r}, {c}] is negative or too large"
                ))
            })?;
        }
        let model = &self.model;
        let y = py
            .detach(|| model.forward(converted.view()))
            .map_err(py_err)?;
        Ok(y.into_pyarray(py))
    }

    /// Replaces block `block`'s FFN projections by tensor trains with middle bond `bond` (the
    /// seed's recipe); returns the report as a dict.
    fn tensorize_ffn<'py>(
        &mut self,
        py: Python<'py>,
        block: usize,
        bond: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let spec = FfnTtSpec::for_config(self.model.config(), bond);
        let model = &mut self.model;
        let report = py
            .detach(|| model.tensorize_ffn(block, &spec))
            .map_err(py_err)?;
        serde_to_py(py, &report)
    }

    /// Samples an answer to `prompt` (temperature sampling, seeded) and returns its text.
    #[pyo3(signature = (prompt, temperature=0.6, seed=42, max_len=None))]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: &str,
        temperature: f32,
        seed: u64,
        max_len: Option<usize>,
    ) -> PyResult<String> {
        let mut config = GenerateConfig::new(Sampling::Temperature(temperature));
        config.max_len = max_len;
        let (model, vocab) = (&self.model, &self.vocab);
        py.detach(|| {
            let mut rng = StdRng::seed_from_u64(seed);
            generate_text(model, vocab, prompt, &config, &mut rng).map(|g| g.text(vocab))
        })
        .map_err(py_err)
    }

    /// The model's configuration as a dict.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, self.model.config())
    }

    /// The vocabulary, in id order.
    #[getter]
    fn vocab(&self) -> Vec<String> {
        self.vocab.words().to_vec()
    }

    /// The parameters by PyTorch name, as numpy arrays.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, t) in self.model.named_parameters() {
            let a: ArrayD<f32> = t.to_owned();
            d.set_item(name, a.into_pyarray(py))?;
        }
        Ok(d)
    }
}

mod sweep_py;

/// The Python module.
#[pymodule]
#[pyo3(name = "succulm")]
fn succulm_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTTLayer>()?;
    m.add_class::<PyModel>()?;
    m.add_function(wrap_pyfunction!(tt_svd, m)?)?;
    m.add_function(wrap_pyfunction!(sweep_py::layer_sweep, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

//! Checkpoints: one JSON file holding the format version, the profile name, the
//! [`ModelConfig`], the vocabulary (word → id), the hidden words, and a `state_dict` mapping each
//! PyTorch name to `{"shape": [...], "data": [...]}` (row-major), so that the seed's PyTorch model
//! loads it after a `json.load`:
//!
//! ```python
//! sd = {k: torch.tensor(v["data"]).reshape(v["shape"]) for k, v in ckpt["state_dict"].items()}
//! model.load_state_dict(sd)
//! ```
//!
//! `pos_enc.pe` (a buffer) is written for PyTorch's strict loading; on load it may be omitted,
//! and if present it must be the sinusoidal table.
//!
//! Tensor-train FFN projections (see [`Model::tensorize_ffn`]) are saved as their cores and
//! bias, `blocks.{i}.ffn.0.cores.{k}` / `blocks.{i}.ffn.0.bias`, plus an entry
//! `projections["blocks.{i}.ffn.0"] = <TTSpec>` (layout, modes, effective bond dims);
//! [`projection_template`] builds the projection to fill from that spec (dense when there is
//! none), so a compressed model round-trips exactly.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::ArrayViewD;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::layers::{positional_table, Projection};
use crate::model::{Model, ModelConfig};
use crate::params::Parameters;
use crate::tt::{TTLayer, TTSpec};
use crate::vocab::Vocab;

/// The checkpoint format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// One tensor: its shape and its values in row-major order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorJson {
    /// The shape (PyTorch's `tensor.shape`).
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<f32>,
}

/// The checkpoint file's structure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointFile {
    /// Must equal [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The profile name, if any.
    pub profile: Option<String>,
    /// The model's shape.
    pub config: ModelConfig,
    /// Word → id.
    pub vocab: BTreeMap<String, u32>,
    /// Words in the vocabulary that never occur in training text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden_words: Vec<String>,
    /// Non-dense FFN projections, by module name (e.g. `"blocks.0.ffn.0"`), with their spec.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub projections: BTreeMap<String, serde_json::Value>,
    /// PyTorch state_dict name → tensor.
    pub state_dict: BTreeMap<String, TensorJson>,
}

fn tensor_json(t: ArrayViewD<'_, f32>) -> TensorJson {
    TensorJson {
        shape: t.shape().to_vec(),
        data: t.iter().copied().collect(),
    }
}

/// The projection to fill for module `name` (e.g. `"blocks.0.ffn.0"`): dense `in -> out`
/// unless `projections` holds a spec for it.
pub fn projection_template(
    path: &Path,
    name: &str,
    in_features: usize,
    out_features: usize,
    projections: &BTreeMap<String, serde_json::Value>,
) -> Result<Projection> {
    if let Some(value) = projections.get(name) {
        let key = format!("projections.{name}");
        let bad = |reason: String| Error::invalid_file(path, key.as_str(), reason);
        let spec: TTSpec = serde_json::from_value(value.clone())
            .map_err(|e| bad(format!("not a TT spec: {e}")))?;
        spec.validate().map_err(|e| bad(e.to_string()))?;
        if spec.in_features() != in_features || spec.out_features() != out_features {
            return Err(bad(format!(
                "spec maps {} -> {}, but the projection is {in_features} -> {out_features}",
                spec.in_features(),
                spec.out_features()
            )));
        }
        let cores = spec
            .core_shapes()
            .into_iter()
            .map(ndarray::ArrayD::zeros)
            .collect();
        let tt = TTLayer::from_parts(spec, cores, ndarray::Array1::zeros(out_features))
            .map_err(|e| bad(e.to_string()))?;
        return Ok(Projection::Tt(tt));
    }
    Ok(Projection::Dense(crate::Linear::new(
        ndarray::Array2::zeros((out_features, in_features)),
        ndarray::Array1::zeros(out_features),
    )?))
}

impl CheckpointFile {
    /// The file structure of `model` with `vocab`.
    pub fn from_model(model: &Model, vocab: &Vocab) -> Result<Self> {
        let c = model.config();
        if vocab.len() != c.vocab_size {
            return Err(Error::invalid_arg(
                "vocab",
                format!(
                    "has {} words but the model's vocab_size is {}",
                    vocab.len(),
                    c.vocab_size
                ),
            ));
        }
        let mut state_dict = BTreeMap::new();
        model.visit("", &mut |n, t| {
            state_dict.insert(n, tensor_json(t));
        });
        state_dict.insert(
            "pos_enc.pe".to_string(),
            tensor_json(model.positional().into_dyn()),
        );
        let vocab_map = vocab
            .words()
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        Ok(CheckpointFile {
            format_version: FORMAT_VERSION,
            profile: model.profile().map(str::to_string),
            config: c.clone(),
            vocab: vocab_map,
            hidden_words: vocab.hidden_words().to_vec(),
            projections: model
                .tt_specs()
                .into_iter()
                .map(|(name, spec)| {
                    let v = serde_json::to_value(spec).expect("a TTSpec serialises to JSON");
                    (name, v)
                })
                .collect(),
            state_dict,
        })
    }

    /// Validates the file and builds the model and vocabulary. `path` names the file in errors.
    pub fn into_model(self, path: &Path) -> Result<(Model, Vocab)> {
        if self.format_version != FORMAT_VERSION {
            return Err(Error::invalid_file(
                path,
                "format_version",
                format!(
                    "{} is not supported (expected {FORMAT_VERSION})",
                    self.format_version
                ),
            ));
        }
        let c = self.config;
        c.validate()
            .map_err(|e| Error::invalid_file(path, "config", e.to_string()))?;
        let vocab = vocab_from_map(path, &self.vocab, c.vocab_size)?;
        let vocab = vocab
            .with_hidden_words(&self.hidden_words)
            .map_err(|e| Error::invalid_file(path, "hidden_words", e.to_string()))?;

        let mut model = Model::new(c.clone(), 0)?;
        model.set_profile(self.profile);
        for (i, block) in model.blocks_mut().iter_mut().enumerate() {
            let (d, f) = (c.d_model, c.ffn_dim());
            block.ffn.up =
                projection_template(path, &format!("blocks.{i}.ffn.0"), d, f, &self.projections)?;
            block.ffn.down =
                projection_template(path, &format!("blocks.{i}.ffn.2"), f, d, &self.projections)?;
        }
        if let Some(k) = self.projections.keys().find(|k| {
            !(0..c.n_layers)
                .any(|i| *k == &format!("blocks.{i}.ffn.0") || *k == &format!("blocks.{i}.ffn.2"))
        }) {
            return Err(Error::invalid_file(
                path,
                format!("projections.{k}"),
                "not an FFN projection of this model",
            ));
        }

        let mut sd = self.state_dict;
        if let Some(pe) = sd.remove("pos_enc.pe") {
            let want = positional_table(c.max_len, c.d_model);
            check_tensor(path, "pos_enc.pe", &pe, want.shape())?;
            if pe
                .data
                .iter()
                .zip(want.iter())
                .any(|(a, b)| (a - b).abs() > 1e-4)
            {
                return Err(Error::invalid_file(
                    path,
                    "state_dict.pos_enc.pe",
                    "differs from the sinusoidal positional table",
                ));
            }
        }
        let mut err = None;
        model.visit_mut("", &mut |name, mut t| {
            if err.is_some() {
                return;
            }
            let Some(tj) = sd.remove(&name) else {
                err = Some(Error::invalid_file(
                    path,
                    format!("state_dict.{name}"),
                    "missing",
                ));
                return;
            };
            if let Err(e) = check_tensor(path, &name, &tj, t.shape()) {
                err = Some(e);
                return;
            }
            for (dst, &src) in t.iter_mut().zip(&tj.data) {
                *dst = src;
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        if let Some(k) = sd.keys().next() {
            return Err(Error::invalid_file(
                path,
                format!("state_dict.{k}"),
                "unknown key (not a parameter of this model)",
            ));
        }
        Ok((model, vocab))
    }
}

fn check_tensor(path: &Path, name: &str, t: &TensorJson, want: &[usize]) -> Result<()> {
    let key = format!("state_dict.{name}");
    if t.shape != want {
        return Err(Error::invalid_file(
            path,
            key,
            format!("shape {:?}, expected {want:?}", t.shape),
        ));
    }
    let n: usize = want.iter().product();
    if t.data.len() != n {
        return Err(Error::invalid_file(
            path,
            key,
            format!("{} values for shape {want:?} (expected {n})", t.data.len()),
        ));
    }
    if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid_file(
            path,
            key,
            format!("value {i} is not finite"),
        ));
    }
    Ok(())
}

fn vocab_from_map(path: &Path, map: &BTreeMap<String, u32>, vocab_size: usize) -> Result<Vocab> {
    if map.len() != vocab_size {
        return Err(Error::invalid_file(
            path,
            "vocab",
            format!("{} words, but config.vocab_size is {vocab_size}", map.len()),
        ));
    }
    let mut words: Vec<Option<String>> = vec![None; vocab_size];
    for (w, &id) in map {
        let slot = words.get_mut(id as usize).ok_or_else(|| {
            Error::invalid_file(
                path,
                format!("vocab.{w}"),
                format!("id {id} is out of range for vocab_size {vocab_size}"),
            )
        })?;
        if let Some(other) = slot {
            return Err(Error::invalid_file(
                path,
                format!("vocab.{w}"),
                format!("id {id} is also the id of {other:?}"),
            ));
        }
        *slot = Some(w.clone());
    }
    // Every slot is filled: `vocab_size` distinct ids below `vocab_size`.
    let words: Vec<String> = words.into_iter().flatten().collect();
    Vocab::from_words(words).map_err(|e| Error::invalid_file(path, "vocab", e.to_string()))
}

impl Model {
    /// Writes the checkpoint atomically (a temporary file in the same directory, then a rename):
    /// as safetensors when `path` ends in `.safetensors` ([`crate::safetensors_io`]), as JSON
    /// otherwise. Errors if `vocab` does not match the model's `vocab_size`, or on I/O failure.
    pub fn save(&self, path: impl AsRef<Path>, vocab: &Vocab) -> Result<()> {
        let path = path.as_ref();
        if crate::safetensors_io::is_safetensors_path(path) {
            return crate::safetensors_io::save_checkpoint(self, vocab, path);
        }
        let file = CheckpointFile::from_model(self, vocab)?;
        let json = serde_json::to_vec(&file).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        write_atomic(path, &json)
    }

    /// Reads and validates a checkpoint: format version, config, vocabulary (consistent with
    /// the config), every state_dict key present and known, shapes, data lengths, finite values.
    /// A path ending in `.safetensors` is read as safetensors ([`crate::safetensors_io`], same
    /// validation), any other as JSON.
    pub fn load(path: impl AsRef<Path>) -> Result<(Model, Vocab)> {
        let path = path.as_ref();
        if crate::safetensors_io::is_safetensors_path(path) {
            return crate::safetensors_io::load_checkpoint(path);
        }
        let text = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file: CheckpointFile = serde_json::from_slice(&text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        file.into_model(path)
    }
}

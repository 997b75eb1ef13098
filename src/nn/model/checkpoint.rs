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
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fs::write_atomic;
use crate::nn::layers::{
    positional_table, Attention, Block, Embedding, Ffn, LayerNorm, Projection,
};
use crate::nn::model::{Model, ModelConfig};
use crate::text::vocab::Vocab;
use crate::tt::params::Parameters;
use crate::tt::{TTLayer, TTSpec};

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
    Ok(Projection::Dense(crate::tt::Linear::new(
        ndarray::Array2::zeros((out_features, in_features)),
        ndarray::Array1::zeros(out_features),
    )?))
}

impl CheckpointFile {
    /// The file structure of `model` with `vocab`. Errors if `vocab` does not match the model or
    /// a weight is NaN or infinite (naming the tensor).
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
        let mut bad = None;
        model.visit("", &mut |n, t| {
            if bad.is_none() {
                if let Some(i) = t.iter().position(|v| !v.is_finite()) {
                    bad = Some((n.clone(), i, t.iter().nth(i).copied().unwrap_or(f32::NAN)));
                }
            }
            state_dict.insert(n, tensor_json(t));
        });
        if let Some((name, i, v)) = bad {
            // JSON has no NaN or Inf: serde_json would write `null`, which no loader accepts.
            return Err(Error::invalid_arg(
                format!("model.{name}"),
                format!("value {i} is {v}; a model with non-finite weights cannot be saved"),
            ));
        }
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
    ///
    /// Every size the file states (the config's dimensions, the TT specs' modes and bond dims) is
    /// checked against the tensors actually present, with overflow-checked arithmetic, *before*
    /// anything is allocated: every parameter must be in `state_dict` with its shape and its
    /// values, and the positional table (`max_len · d_model`, computed, not stored) may not hold
    /// more values than the file's tensors do. So a file never makes the loader allocate more than
    /// its own data could fill.
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
        let specs = parse_specs(path, &c, &self.projections)?;
        let mut sd = self.state_dict;
        check_sizes(path, &c, &specs, &sd)?;
        let vocab = vocab_from_map(path, &self.vocab, c.vocab_size)?;
        let vocab = vocab
            .with_hidden_words(&self.hidden_words)
            .map_err(|e| Error::invalid_file(path, "hidden_words", e.to_string()))?;

        // Every tensor below is backed by the data checked above.
        let d = c.d_model;
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let mut blocks = Vec::with_capacity(c.n_layers);
        for i in 0..c.n_layers {
            let f = c.ffn_dim();
            let up =
                projection_template(path, &format!("blocks.{i}.ffn.0"), d, f, &self.projections)?;
            let down =
                projection_template(path, &format!("blocks.{i}.ffn.2"), f, d, &self.projections)?;
            blocks.push(Block {
                ln1: LayerNorm::new(d),
                attn: Attention::init(d, c.n_attn_heads, &mut rng)?,
                ln2: LayerNorm::new(d),
                ffn: Ffn { up, down },
            });
        }
        let mut model = Model {
            config: c.clone(),
            profile: self.profile,
            embed: Embedding::from_weight(ndarray::Array2::zeros((c.vocab_size, d)))?,
            pe: positional_table(c.max_len, d),
            blocks,
            ln_f: LayerNorm::new(d),
        };

        if let Some(pe) = sd.remove("pos_enc.pe") {
            let want = model.positional();
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

/// The TT specs of `projections`, each valid, for an FFN projection `blocks.{i}.ffn.{0|2}` with
/// `i < n_layers` (parsed from the name, so a huge `n_layers` costs nothing here).
fn parse_specs(
    path: &Path,
    c: &ModelConfig,
    projections: &BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, TTSpec>> {
    let mut specs = BTreeMap::new();
    for (name, value) in projections {
        let key = format!("projections.{name}");
        let layer = name
            .strip_prefix("blocks.")
            .and_then(|r| {
                r.strip_suffix(".ffn.0")
                    .or_else(|| r.strip_suffix(".ffn.2"))
            })
            .and_then(|i| i.parse::<usize>().ok().filter(|_| !i.starts_with('+')));
        if !layer.is_some_and(|i| i < c.n_layers && name == &canonical(name)) {
            return Err(Error::invalid_file(
                path,
                key,
                "not an FFN projection of this model",
            ));
        }
        let spec: TTSpec = serde_json::from_value(value.clone())
            .map_err(|e| Error::invalid_file(path, key.as_str(), format!("not a TT spec: {e}")))?;
        spec.validate()
            .map_err(|e| Error::invalid_file(path, key.as_str(), e.to_string()))?;
        specs.insert(name.clone(), spec);
    }
    Ok(specs)
}

/// `blocks.{i}.ffn.{k}` with `i` written without leading zeros (`blocks.01.ffn.0` is not a
/// module name).
fn canonical(name: &str) -> String {
    let mut parts: Vec<String> = name.split('.').map(str::to_string).collect();
    if let Some(i) = parts.get(1).and_then(|p| p.parse::<usize>().ok()) {
        parts[1] = i.to_string();
    }
    parts.join(".")
}

/// The product of `dims`, or an error naming `key` if it overflows `usize`.
fn product(path: &Path, key: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(|| {
            Error::invalid_file(path, key, format!("the size of shape {dims:?} overflows"))
        })
}

/// The name and shape of every parameter of a model of config `c` whose FFN projections named
/// in `specs` are tensor trains, in state_dict order (the order of [`Model::visit`]). `c` must be
/// valid and the caller must have bounded `n_layers · n_attn_heads` (the list's length).
pub(crate) fn planned_shapes(
    c: &ModelConfig,
    specs: &BTreeMap<String, TTSpec>,
) -> Vec<(String, Vec<usize>)> {
    let (v, d, f, h) = (c.vocab_size, c.d_model, c.ffn_dim(), c.n_attn_heads);
    let dh = c.head_dim();
    let mut out = vec![("embed.weight".to_string(), vec![v, d])];
    let ln = |out: &mut Vec<(String, Vec<usize>)>, p: &str| {
        out.push((format!("{p}.weight"), vec![d]));
        out.push((format!("{p}.bias"), vec![d]));
    };
    for i in 0..c.n_layers {
        let b = format!("blocks.{i}");
        ln(&mut out, &format!("{b}.ln1"));
        for part in ["q_linears", "k_linears", "v_linears"] {
            for j in 0..h {
                out.push((format!("{b}.{part}.{j}.weight"), vec![dh, d]));
                out.push((format!("{b}.{part}.{j}.bias"), vec![dh]));
            }
        }
        out.push((format!("{b}.attn_out.weight"), vec![d, d]));
        out.push((format!("{b}.attn_out.bias"), vec![d]));
        ln(&mut out, &format!("{b}.ln2"));
        for (k, (inp, o)) in [("0", (d, f)), ("2", (f, d))] {
            let name = format!("{b}.ffn.{k}");
            match specs.get(&name) {
                Some(spec) => {
                    for (n, shape) in spec.core_shapes().into_iter().enumerate() {
                        out.push((format!("{name}.cores.{n}"), shape));
                    }
                    out.push((format!("{name}.bias"), vec![o]));
                }
                None => {
                    out.push((format!("{name}.weight"), vec![o, inp]));
                    out.push((format!("{name}.bias"), vec![o]));
                }
            }
        }
    }
    ln(&mut out, "ln_f");
    out
}

/// Checks every size of `c` and `specs` against the tensors of `sd` before anything is built:
/// the number of blocks and heads against the number of tensors, each planned parameter's shape
/// and value count against the tensor present, the TT specs against the projections they
/// replace, and the positional table against the values present. Overflow is an error.
fn check_sizes(
    path: &Path,
    c: &ModelConfig,
    specs: &BTreeMap<String, TTSpec>,
    sd: &BTreeMap<String, TensorJson>,
) -> Result<()> {
    // A block has at least 6·n_attn_heads + 8 tensors, so a file with `sd.len()` tensors holds
    // at most that many blocks (the planned list below is then at most as long as `sd`).
    let per_block = c
        .n_attn_heads
        .checked_mul(6)
        .and_then(|n| n.checked_add(8))
        .and_then(|n| n.checked_mul(c.n_layers));
    if per_block.map_or(true, |n| n > sd.len()) {
        return Err(Error::invalid_file(
            path,
            "config",
            format!(
                "n_layers {} with n_attn_heads {} needs more tensors than the {} in state_dict",
                c.n_layers,
                c.n_attn_heads,
                sd.len()
            ),
        ));
    }
    // `embed.weight` bounds `vocab_size · d_model` (and so `d_model`) by data present, before
    // anything sized by `d_model` is planned.
    let embed_len = sd.get("embed.weight").map_or(0, |t| t.data.len());
    if c.vocab_size.checked_mul(c.d_model) != Some(embed_len) {
        let e = sd.get("embed.weight");
        return Err(Error::invalid_file(
            path,
            "state_dict.embed.weight",
            match e {
                None => "missing".to_string(),
                Some(t) => format!(
                    "{} values, but config has vocab_size {} × d_model {}",
                    t.data.len(),
                    c.vocab_size,
                    c.d_model
                ),
            },
        ));
    }
    for (name, spec) in specs {
        let key = format!("projections.{name}");
        let bad = |reason: String| Error::invalid_file(path, key.as_str(), reason);
        let (d, f) = (c.d_model, c.ffn_dim());
        let (want_in, want_out) = if name.ends_with(".ffn.0") {
            (d, f)
        } else {
            (f, d)
        };
        let got_in = product(path, &key, &spec.in_modes)?;
        let got_out = product(path, &key, &spec.out_modes)?;
        if got_in != want_in || got_out != want_out {
            return Err(bad(format!(
                "spec maps {got_in} -> {got_out}, but the projection is {want_in} -> {want_out}"
            )));
        }
    }
    let total: usize = sd.values().map(|t| t.data.len()).sum();
    for (name, shape) in planned_shapes(c, specs) {
        let key = format!("state_dict.{name}");
        let n = product(path, &key, &shape)?;
        match sd.get(&name) {
            None => return Err(Error::invalid_file(path, key, "missing")),
            Some(t) if t.shape != shape || t.data.len() != n => {
                check_tensor(path, &name, t, &shape)?;
            }
            Some(_) => {}
        }
    }
    let pe = c.max_len.checked_mul(c.d_model);
    if pe.map_or(true, |n| n > total) {
        return Err(Error::invalid_file(
            path,
            "config.max_len",
            format!(
                "{} × d_model {} positions exceed the {total} values in the file",
                c.max_len, c.d_model
            ),
        ));
    }
    Ok(())
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

/// Writes `model` and `vocab` as a JSON checkpoint, atomically (see [`Model::save`]).
pub fn save_json(model: &Model, vocab: &Vocab, path: &Path) -> Result<()> {
    let file = CheckpointFile::from_model(model, vocab)?;
    let json = serde_json::to_vec(&file).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &json)
}

/// Reads and validates a JSON checkpoint (see [`Model::load`]).
pub fn load_json(path: &Path) -> Result<(Model, Vocab)> {
    let file: CheckpointFile = crate::fs::read_json(path)?;
    file.into_model(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::FfnTtSpec;
    use crate::tt::params::Parameters;

    /// The planned list (used to check a file before anything is built) names exactly the
    /// model's tensors, in order, with their shapes: every profile, dense and with TT blocks.
    #[test]
    fn planned_shapes_are_the_models_tensors() {
        for (name, ..) in crate::nn::model::PROFILES {
            let c = ModelConfig::profile(name, 30).unwrap();
            let mut model = Model::new(c.clone(), 1).unwrap();
            for compress in [false, true] {
                if compress {
                    model
                        .tensorize_ffn(c.n_layers - 1, &FfnTtSpec::for_config(&c, 7))
                        .unwrap();
                }
                let mut actual = Vec::new();
                model.visit("", &mut |n, t| actual.push((n, t.shape().to_vec())));
                let specs = model.tt_specs().into_iter().collect();
                assert_eq!(planned_shapes(&c, &specs), actual, "{name}, TT {compress}");
            }
        }
    }
}

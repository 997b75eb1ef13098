//! safetensors files (the format of the `safetensors` crate and of
//! `safetensors.torch.save_file`): a validated reader of f32 tensors for any model's file,
//! an atomic writer, and the checkpoint of a [`Model`] in that format.
//!
//! # The checkpoint in safetensors
//!
//! [`Model::save`] / [`Model::load`] use this format when the path ends in `.safetensors`.
//! Every tensor is stored under its PyTorch `state_dict` name, f32 little-endian (exact bits);
//! `pos_enc.pe` is included so that the seed's PyTorch model loads it with
//! `load_state_dict(sd, strict=True)`:
//!
//! ```python
//! from safetensors import safe_open
//! from safetensors.torch import load_file
//! sd = load_file("model.safetensors")
//! meta = safe_open("model.safetensors", "pt").metadata()   # config, vocab, ... as JSON strings
//! model.load_state_dict(sd, strict=True)
//! ```
//!
//! The header metadata holds, each as a JSON string, the same top-level entries as the JSON
//! checkpoint ([`CheckpointFile`]) apart from its `state_dict`: `format_version`, `profile`,
//! `config`, `vocab`, and when not empty `hidden_words` and `projections` (the [`TTSpec`] of
//! every tensor-train FFN projection, whose cores are the tensors `blocks.{i}.ffn.{j}.cores.{k}`).
//! Loading rebuilds a [`CheckpointFile`] from them and goes through exactly the JSON loader's
//! validation ([`CheckpointFile::into_model`]); on top of it, a tensor whose dtype is not `F32`
//! is an error naming the tensor and its dtype, and the file's header is checked by the
//! `safetensors` crate (size, JSON, offsets contiguous and matching every shape and the file's
//! length) before any tensor is read.
//!
//! [`TTSpec`]: crate::tt::TTSpec
//!
//! ```
//! use succulm::nn::model::{Model, ModelConfig};
//! use succulm::Vocab;
//! let words = ["<PAD>", "<BOS>", "<EOS>", "<UNK>", "ruby", "winy"].map(String::from).to_vec();
//! let vocab = Vocab::from_words(words)?;
//! let config = ModelConfig { vocab_size: 6, d_model: 4, max_len: 8, n_layers: 1,
//!                            ffn_expansion: 2, n_attn_heads: 2, arch: Default::default() };
//! let model = Model::new(config, 7)?;
//! let path = std::env::temp_dir().join(format!("succulm-doc-{}.safetensors", std::process::id()));
//! model.save(&path, &vocab)?;
//! let (back, _) = Model::load(&path)?;
//! assert_eq!(back.named_parameters(), model.named_parameters()); // bit for bit
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), succulm::Error>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};

use crate::error::{Error, Result};
pub use crate::fs::safetensors::{is_safetensors_path, write_f32, SafetensorsFile, EXTENSION};
use crate::nn::model::checkpoint::{CheckpointFile, TensorJson};
use crate::nn::model::Model;
use crate::text::vocab::Vocab;

/// The checkpoint's header entries (everything of [`CheckpointFile`] but the tensors), each as a
/// JSON string.
fn checkpoint_metadata(file: &CheckpointFile) -> Result<BTreeMap<String, String>> {
    let value = serde_json::to_value(file).map_err(|e| {
        Error::invalid_arg("model", format!("the checkpoint does not serialise: {e}"))
    })?;
    let serde_json::Value::Object(map) = value else {
        return Err(Error::invalid_arg(
            "model",
            "the checkpoint serialises to a non-object",
        ));
    };
    Ok(map
        .into_iter()
        .filter(|(k, _)| k != "state_dict")
        .map(|(k, v)| (k, v.to_string()))
        .collect())
}

/// Writes `model` and `vocab` as a safetensors checkpoint (see the [module docs](self)).
pub fn save_checkpoint(model: &Model, vocab: &Vocab, path: &Path) -> Result<()> {
    let file = CheckpointFile::from_model(model, vocab)?;
    let metadata = checkpoint_metadata(&file)?;
    let tensors: Vec<(String, ArrayD<f32>)> = file
        .state_dict
        .into_iter()
        .map(|(name, t)| {
            let a = ArrayD::from_shape_vec(IxDyn(&t.shape), t.data)
                .map_err(|e| Error::invalid_arg(name.clone(), e.to_string()))?;
            Ok((name, a))
        })
        .collect::<Result<_>>()?;
    write_f32(
        path,
        tensors.iter().map(|(n, a)| (n.clone(), a.view())),
        &metadata,
    )
}

/// The [`CheckpointFile`] a safetensors checkpoint holds: its header entries parsed as JSON,
/// every tensor (which must be `F32`) as a state_dict entry. Validation of the contents is left
/// to [`CheckpointFile::into_model`].
pub fn read_checkpoint_file(file: &SafetensorsFile) -> Result<CheckpointFile> {
    let path = file.path();
    let mut top = serde_json::Map::new();
    for (key, text) in file.metadata() {
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Error::invalid_file(
                path,
                format!("metadata.{key}"),
                format!("not a JSON string: {e}"),
            )
        })?;
        top.insert(key, value);
    }
    if top.contains_key("state_dict") {
        return Err(Error::invalid_file(
            path,
            "metadata.state_dict",
            "tensors belong in the file's tensors, not in its metadata",
        ));
    }
    top.insert(
        "state_dict".to_string(),
        serde_json::Value::Object(Default::default()),
    );
    let mut ckpt: CheckpointFile = serde_json::from_value(serde_json::Value::Object(top))
        .map_err(|e| Error::invalid_file(path, "metadata", e.to_string()))?;
    for name in file.names() {
        let key = format!("state_dict.{name}");
        let t = file.tensor(&name).map_err(|e| match e {
            Error::InvalidFile { path, reason, .. } => Error::InvalidFile {
                path,
                key: key.clone(),
                reason,
            },
            other => other,
        })?;
        let shape = t.shape().to_vec();
        let (data, _) = t.into_raw_vec_and_offset();
        ckpt.state_dict.insert(name, TensorJson { shape, data });
    }
    Ok(ckpt)
}

/// Reads and validates a safetensors checkpoint (see the [module docs](self)).
pub fn load_checkpoint(path: &Path) -> Result<(Model, Vocab)> {
    let file = SafetensorsFile::read(path)?;
    read_checkpoint_file(&file)?.into_model(path)
}

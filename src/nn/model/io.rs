//! `Model::save` and `Model::load`: the checkpoint formats' dispatch by file name.

use std::path::Path;

use super::{checkpoint, safetensors, Model};
use crate::error::Result;
use crate::text::vocab::Vocab;

impl Model {
    /// Writes the checkpoint atomically (a temporary file in the same directory, then a rename):
    /// as safetensors when `path` ends in `.safetensors` ([`safetensors`]), as JSON otherwise
    /// ([`checkpoint`]). Errors, writing nothing, if `vocab` does not match the model's
    /// `vocab_size` or a weight is not finite (the file could not be loaded); errors on I/O
    /// failure.
    pub fn save(&self, path: impl AsRef<Path>, vocab: &Vocab) -> Result<()> {
        let path = path.as_ref();
        if crate::fs::safetensors::is_safetensors_path(path) {
            safetensors::save_checkpoint(self, vocab, path)
        } else {
            checkpoint::save_json(self, vocab, path)
        }
    }

    /// Reads and validates a checkpoint: format version, config, vocabulary (consistent with
    /// the config), every state_dict key present and known, shapes, data lengths, finite values.
    /// A path ending in `.safetensors` is read as safetensors ([`safetensors`], same
    /// validation), any other as JSON ([`checkpoint`]).
    pub fn load(path: impl AsRef<Path>) -> Result<(Model, Vocab)> {
        let path = path.as_ref();
        if crate::fs::safetensors::is_safetensors_path(path) {
            safetensors::load_checkpoint(path)
        } else {
            checkpoint::load_json(path)
        }
    }
}

//! safetensors files (the format of the `safetensors` crate and of
//! `safetensors.torch.save_file`): a validated reader of f32 tensors for any model's file and an
//! atomic writer. The checkpoint of a model in this format is `crate::io::safetensors`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use safetensors::tensor::{Metadata, SafeTensorError, TensorView};
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::fs::write_atomic;

/// The file extension that selects this format in [`Model::save`] / [`Model::load`].
pub const EXTENSION: &str = "safetensors";

/// Whether `path` ends in `.safetensors` (case-insensitive).
pub fn is_safetensors_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(EXTENSION))
}

/// A safetensors file read into memory with its header validated. Tensors are converted to
/// f32 arrays one at a time ([`tensor`](Self::tensor)), so a file may hold tensors of other
/// dtypes that are never asked for.
#[derive(Debug)]
pub struct SafetensorsFile {
    path: PathBuf,
    bytes: Vec<u8>,
    header_len: usize,
    meta: Metadata,
}

/// What a `safetensors` crate error means, in words.
fn describe(e: &SafeTensorError) -> String {
    match e {
        SafeTensorError::HeaderTooSmall => {
            "shorter than the 8-byte header length (truncated or not a safetensors file)".into()
        }
        SafeTensorError::HeaderTooLarge => "the header length is over 100 MB".into(),
        SafeTensorError::InvalidHeaderLength => {
            "the header length runs past the end of the file (truncated?)".into()
        }
        SafeTensorError::InvalidHeader => "the header is not UTF-8".into(),
        SafeTensorError::InvalidHeaderStart => "the header does not start with '{'".into(),
        SafeTensorError::InvalidHeaderDeserialization => {
            "the header is not a valid safetensors JSON header".into()
        }
        SafeTensorError::InvalidOffset(name) => format!(
            "tensor {name:?}: its data_offsets do not follow the previous tensor's (overlap, gap, or end before start)"
        ),
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's data_offsets span does not match its shape and dtype".into()
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            "the tensors' data_offsets do not end at the end of the file (truncated or trailing bytes)"
                .into()
        }
        SafeTensorError::ValidationOverflow => "a tensor's shape overflows".into(),
        other => format!("{other:?}"),
    }
}

impl SafetensorsFile {
    /// Reads and validates `path`: the header length, the header JSON, and every tensor's
    /// offsets (contiguous, matching its shape and dtype, ending at the end of the file). Nothing
    /// is allocated from a header field: the only buffer is the file itself.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_bytes(path, crate::fs::read(path)?)
    }

    /// Validates `bytes` as a safetensors file; `path` names it in errors.
    pub fn from_bytes(path: impl AsRef<Path>, bytes: Vec<u8>) -> Result<Self> {
        let path = path.as_ref();
        let (header_len, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::invalid_file(path, "header", describe(&e)))?;
        Ok(SafetensorsFile {
            path: path.to_path_buf(),
            bytes,
            header_len,
            meta,
        })
    }

    /// The file's path (as given).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.meta.tensors().into_keys().collect();
        names.sort();
        names
    }

    /// The header's `__metadata__` (string → string), empty when there is none.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        self.meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// The shape of tensor `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.meta.info(name).map(|i| i.shape.as_slice())
    }

    /// The dtype of tensor `name` as safetensors spells it (`"F32"`, `"F16"`, …), if present.
    pub fn dtype(&self, name: &str) -> Option<String> {
        self.meta.info(name).map(|i| format!("{:?}", i.dtype))
    }

    /// Tensor `name` as an f32 array of its shape. Errors (naming the file and the tensor): no
    /// such tensor, or a dtype other than `F32`.
    pub fn tensor(&self, name: &str) -> Result<ArrayD<f32>> {
        let info = self
            .meta
            .info(name)
            .ok_or_else(|| Error::invalid_file(&self.path, name, "no such tensor in the file"))?;
        if info.dtype != Dtype::F32 {
            return Err(Error::invalid_file(
                &self.path,
                name,
                format!(
                    "dtype {:?}, expected F32 (convert with tensor.float() before saving)",
                    info.dtype
                ),
            ));
        }
        let (s, e) = info.data_offsets;
        // Validated by `read_metadata`: offsets contiguous, within the file, span = 4·numel.
        let start = 8 + self.header_len;
        let data = &self.bytes[start + s..start + e];
        let values: Vec<f32> = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        ArrayD::from_shape_vec(IxDyn(&info.shape), values)
            .map_err(|err| Error::invalid_file(&self.path, name, err.to_string()))
    }
}

/// Writes `tensors` (f32, any shape, by name) and `metadata` as a safetensors file, atomically
/// (a temporary file, then a rename). Errors: I/O failure, or a name the format rejects.
pub fn write_f32<'a>(
    path: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (String, ArrayViewD<'a, f32>)>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, t)| {
            let bytes = t.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, t.shape().to_vec(), bytes)
        })
        .collect();
    let mut views = Vec::with_capacity(owned.len());
    for (name, shape, bytes) in &owned {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
            .map_err(|e| Error::invalid_arg("tensors", format!("{name}: {}", describe(&e))))?;
        views.push((name.as_str(), view));
    }
    let info: HashMap<String, String> = metadata.clone().into_iter().collect();
    let info = (!info.is_empty()).then_some(info);
    let bytes = safetensors::serialize(views, &info)
        .map_err(|e| Error::invalid_arg("tensors", describe(&e)))?;
    write_atomic(path, &bytes)
}

//! safetensors files (the format of the `safetensors` crate and of
//! `safetensors.torch.save_file`): a validated, memory-mapped reader for any model's file
//! ([`SafetensorsFile`]: `F32` tensors as they are, `F16`, `BF16` and `F64` converted to f32 on
//! request) and a deterministic atomic writer ([`write_f32`], [`write_tensors`], [`to_bytes`]:
//! f32 arrays stored as any [`FloatDtype`]; the same tensors and metadata give the same bytes).
//! The checkpoint of a model in this format is `crate::io::safetensors`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use safetensors::tensor::{Metadata, SafeTensorError, TensorInfo, TensorView};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fs::write_atomic;

/// The file extension that selects this format in [`Model::save`] / [`Model::load`].
///
/// [`Model::save`]: crate::Model::save
/// [`Model::load`]: crate::Model::load
pub const EXTENSION: &str = "safetensors";

/// Whether `path` ends in `.safetensors` (case-insensitive).
pub fn is_safetensors_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(EXTENSION))
}

/// A floating-point dtype of a safetensors tensor, spelt as the format spells it (`"F16"`,
/// `"BF16"`, `"F32"`, `"F64"`).
///
/// ```
/// use succulm::fs::safetensors::FloatDtype;
/// assert_eq!(FloatDtype::parse("bf16")?, FloatDtype::BF16);
/// assert_eq!(FloatDtype::F16.round(0.1), 0.099975586); // the nearest f16
/// assert_eq!(FloatDtype::F16.round(1e5), f32::INFINITY); // above f16's largest, 65504
/// assert_eq!(FloatDtype::F64.round(0.1), 0.1); // f64 holds every f32
/// # Ok::<(), succulm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FloatDtype {
    /// IEEE half precision (`torch.float16`).
    F16,
    /// bfloat16 (`torch.bfloat16`).
    BF16,
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
}

impl FloatDtype {
    /// The name the format uses: `"F16"`, `"BF16"`, `"F32"`, `"F64"`.
    pub fn key(self) -> &'static str {
        match self {
            FloatDtype::F16 => "F16",
            FloatDtype::BF16 => "BF16",
            FloatDtype::F32 => "F32",
            FloatDtype::F64 => "F64",
        }
    }

    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            FloatDtype::F16 | FloatDtype::BF16 => 2,
            FloatDtype::F32 => 4,
            FloatDtype::F64 => 8,
        }
    }

    /// Parses `f16`, `bf16`, `f32` or `f64` (any case).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "F16" => Ok(FloatDtype::F16),
            "BF16" => Ok(FloatDtype::BF16),
            "F32" => Ok(FloatDtype::F32),
            "F64" => Ok(FloatDtype::F64),
            _ => Err(Error::invalid_arg(
                "dtype",
                format!("unknown dtype {s:?} (known: f16, bf16, f32, f64)"),
            )),
        }
    }

    /// Whether storing an f32 in this dtype may round it (`F16`, `BF16`).
    pub fn rounds_f32(self) -> bool {
        matches!(self, FloatDtype::F16 | FloatDtype::BF16)
    }

    /// `v` stored in this dtype and read back as f32 (rounded to the nearest value of the dtype;
    /// infinite when a finite `v` is beyond its range).
    pub fn round(self, v: f32) -> f32 {
        match self {
            FloatDtype::F16 => f16::from_f32(v).to_f32(),
            FloatDtype::BF16 => bf16::from_f32(v).to_f32(),
            FloatDtype::F32 | FloatDtype::F64 => v,
        }
    }

    fn of(dtype: Dtype) -> Option<Self> {
        match dtype {
            Dtype::F16 => Some(FloatDtype::F16),
            Dtype::BF16 => Some(FloatDtype::BF16),
            Dtype::F32 => Some(FloatDtype::F32),
            Dtype::F64 => Some(FloatDtype::F64),
            _ => None,
        }
    }

    fn dtype(self) -> Dtype {
        match self {
            FloatDtype::F16 => Dtype::F16,
            FloatDtype::BF16 => Dtype::BF16,
            FloatDtype::F32 => Dtype::F32,
            FloatDtype::F64 => Dtype::F64,
        }
    }

    /// `values` as little-endian bytes of this dtype. Errors (naming `what`) when a finite value
    /// is beyond the dtype's range.
    fn encode(self, values: impl Iterator<Item = f32>, what: &str) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(values.size_hint().0 * self.size());
        for v in values {
            let rounded = self.round(v);
            if v.is_finite() && !rounded.is_finite() {
                return Err(Error::invalid_arg(
                    what,
                    format!("{v} is beyond the range of {}", self.key()),
                ));
            }
            match self {
                FloatDtype::F16 => out.extend_from_slice(&f16::from_f32(v).to_le_bytes()),
                FloatDtype::BF16 => out.extend_from_slice(&bf16::from_f32(v).to_le_bytes()),
                FloatDtype::F32 => out.extend_from_slice(&v.to_le_bytes()),
                FloatDtype::F64 => out.extend_from_slice(&(v as f64).to_le_bytes()),
            }
        }
        Ok(out)
    }
}

impl std::fmt::Display for FloatDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// The bytes of a file: memory-mapped, or read (a file that cannot be mapped, or bytes given).
enum Bytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Mapped(m) => m,
        }
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bytes::Owned(v) => write!(f, "{} bytes in memory", v.len()),
            Bytes::Mapped(m) => write!(f, "{} bytes mapped", m.len()),
        }
    }
}

/// A safetensors file with its header validated. A regular file is memory-mapped, not read: only
/// the header and the tensors asked for are ever brought into memory, so a large file costs
/// nothing until its tensors are converted, one at a time: [`tensor`](Self::tensor) (`F32`
/// only, bit for bit) or [`tensor_as_f32`](Self::tensor_as_f32) (`F16`, `BF16` and `F64`
/// converted too). A file may hold tensors of other dtypes that are never asked for.
///
/// The mapping assumes that the file is not changed by another process while it is open (as the
/// `safetensors` crate and PyTorch's loaders do).
#[derive(Debug)]
pub struct SafetensorsFile {
    path: PathBuf,
    bytes: Bytes,
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
    /// Opens and validates `path`: the header length, the header JSON, and every tensor's
    /// offsets (contiguous, matching its shape and dtype, ending at the end of the file). A
    /// regular file is memory-mapped (others, e.g. a pipe, are read); nothing is allocated from a
    /// header field, and no tensor is read.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        if file.metadata().map_err(io)?.is_file() {
            // SAFETY: the map is only read, through `&[u8]`s that live no longer than `self`.
            // Another process truncating or rewriting the file meanwhile would break that
            // (the documented assumption of this type, as of every memory-mapped loader).
            if let Ok(map) = unsafe { memmap2::Mmap::map(&file) } {
                return Self::validate(path, Bytes::Mapped(map));
            }
        }
        Self::from_bytes(path, crate::fs::read(path)?)
    }

    /// Validates `bytes` as a safetensors file; `path` names it in errors.
    pub fn from_bytes(path: impl AsRef<Path>, bytes: Vec<u8>) -> Result<Self> {
        Self::validate(path.as_ref(), Bytes::Owned(bytes))
    }

    fn validate(path: &Path, bytes: Bytes) -> Result<Self> {
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

    /// The dtype of tensor `name` as safetensors spells it (`"F32"`, `"F16"`, `"I64"`, …), if
    /// present.
    pub fn dtype(&self, name: &str) -> Option<String> {
        self.meta.info(name).map(|i| format!("{:?}", i.dtype))
    }

    /// The dtype of tensor `name` if it is present and a float ([`tensor_as_f32`] reads it).
    ///
    /// [`tensor_as_f32`]: Self::tensor_as_f32
    pub fn float_dtype(&self, name: &str) -> Option<FloatDtype> {
        self.meta.info(name).and_then(|i| FloatDtype::of(i.dtype))
    }

    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.meta
            .info(name)
            .ok_or_else(|| Error::invalid_file(&self.path, name, "no such tensor in the file"))
    }

    /// The data of a tensor: validated by `read_metadata` (offsets contiguous, within the file,
    /// span = numel · dtype size).
    fn data(&self, info: &TensorInfo) -> &[u8] {
        let (s, e) = info.data_offsets;
        let start = 8 + self.header_len;
        &self.bytes[start + s..start + e]
    }

    /// `values` in the tensor's shape.
    fn array(&self, name: &str, info: &TensorInfo, values: Vec<f32>) -> Result<ArrayD<f32>> {
        ArrayD::from_shape_vec(IxDyn(&info.shape), values)
            .map_err(|err| Error::invalid_file(&self.path, name, err.to_string()))
    }

    /// Tensor `name` as an f32 array of its shape, bit for bit. Errors (naming the file and the
    /// tensor): no such tensor, or a dtype other than `F32`.
    pub fn tensor(&self, name: &str) -> Result<ArrayD<f32>> {
        let info = self.info(name)?;
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
        let values = decode(self.data(info), f32::from_le_bytes);
        self.array(name, info, values)
    }

    /// Tensor `name` as an f32 array of its shape, converted from its dtype: `F32` as it is,
    /// `F16` and `BF16` exactly (f32 holds every value of both), `F64` rounded to the nearest
    /// f32. Only this tensor's bytes are read; the array takes 4 bytes a value. Errors (naming
    /// the file and the tensor): no such tensor, a dtype that is not a float (`I64`, `U8`,
    /// `BOOL`, …), or a finite `F64` value beyond f32's range.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use ndarray::array;
    /// use succulm::fs::safetensors::{to_bytes, FloatDtype, SafetensorsFile};
    ///
    /// let w = array![[0.5f32, -2.0], [0.25, 3.0]].into_dyn();
    /// let bytes = to_bytes([("w".to_string(), w.view(), FloatDtype::F16)], &BTreeMap::new())?;
    /// let file = SafetensorsFile::from_bytes("w.safetensors", bytes)?;
    /// assert_eq!(file.dtype("w").as_deref(), Some("F16"));
    /// assert_eq!(file.tensor_as_f32("w")?, w); // exactly representable in f16
    /// assert!(file.tensor("w").is_err()); // `tensor` is F32 only
    /// # Ok::<(), succulm::Error>(())
    /// ```
    pub fn tensor_as_f32(&self, name: &str) -> Result<ArrayD<f32>> {
        let info = self.info(name)?;
        let data = self.data(info);
        let values = match FloatDtype::of(info.dtype) {
            Some(FloatDtype::F32) => decode(data, f32::from_le_bytes),
            Some(FloatDtype::F16) => decode(data, |b| f16::from_le_bytes(b).to_f32()),
            Some(FloatDtype::BF16) => decode(data, |b| bf16::from_le_bytes(b).to_f32()),
            Some(FloatDtype::F64) => {
                let wide = decode(data, f64::from_le_bytes);
                if let Some((i, v)) = wide
                    .iter()
                    .enumerate()
                    .find(|(_, v)| v.is_finite() && !(**v as f32).is_finite())
                {
                    return Err(Error::invalid_file(
                        &self.path,
                        name,
                        format!("F64 value {v} (element {i}) is beyond the range of f32"),
                    ));
                }
                wide.into_iter().map(|v| v as f32).collect()
            }
            None => {
                return Err(Error::invalid_file(
                    &self.path,
                    name,
                    format!(
                        "dtype {:?} is not a float (F16, BF16, F32 or F64 are read)",
                        info.dtype
                    ),
                ))
            }
        };
        self.array(name, info, values)
    }
}

/// Little-endian values of `N` bytes each.
fn decode<const N: usize, T>(data: &[u8], from: impl Fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|b| from(b.try_into().expect("chunks of N bytes")))
        .collect()
}

/// `tensors` (f32 arrays, any shape, each with the dtype to store it in) and `metadata` as the
/// bytes of a safetensors file. Deterministic: the same tensors and metadata give the same bytes
/// (tensors laid out as the `safetensors` crate lays them, the header's keys sorted). Errors:
/// a name given twice, a name or shape the format rejects, a finite value beyond its dtype's
/// range (e.g. above 65504 in `F16`).
pub fn to_bytes<'a>(
    tensors: impl IntoIterator<Item = (String, ArrayViewD<'a, f32>, FloatDtype)>,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut seen = BTreeSet::new();
    let mut owned: Vec<(String, Vec<usize>, FloatDtype, Vec<u8>)> = Vec::new();
    for (name, t, dtype) in tensors {
        if !seen.insert(name.clone()) {
            return Err(Error::invalid_arg(
                "tensors",
                format!("{name:?} is given twice (a safetensors file holds one tensor a name)"),
            ));
        }
        let bytes = dtype.encode(t.iter().copied(), &name)?;
        owned.push((name, t.shape().to_vec(), dtype, bytes));
    }
    let mut views = Vec::with_capacity(owned.len());
    for (name, shape, dtype, bytes) in &owned {
        let view = TensorView::new(dtype.dtype(), shape.clone(), bytes)
            .map_err(|e| Error::invalid_arg("tensors", format!("{name}: {}", describe(&e))))?;
        views.push((name.as_str(), view));
    }
    // The crate writes `__metadata__` from a HashMap, in a different order each run: write the
    // tensors alone, then put the metadata into the header as a sorted JSON object.
    let plain = safetensors::serialize(views, &None)
        .map_err(|e| Error::invalid_arg("tensors", describe(&e)))?;
    let n = u64::from_le_bytes(plain[..8].try_into().expect("8 bytes")) as usize;
    let mut header: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&plain[8..8 + n])
        .map_err(|e| Error::invalid_arg("tensors", format!("unreadable header: {e}")))?;
    if !metadata.is_empty() {
        let meta: serde_json::Map<String, serde_json::Value> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
            .collect();
        header.insert("__metadata__".into(), serde_json::Value::Object(meta));
    }
    let mut text = serde_json::to_vec(&header)
        .map_err(|e| Error::invalid_arg("metadata", format!("cannot serialise: {e}")))?;
    // As the crate does: the data starts 8-byte aligned, the header padded with spaces.
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut bytes = Vec::with_capacity(8 + text.len() + plain.len() - 8 - n);
    bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&text);
    bytes.extend_from_slice(&plain[8 + n..]);
    Ok(bytes)
}

/// Writes `tensors` (f32 arrays, each stored as its dtype) and `metadata` as a safetensors file,
/// atomically (a temporary file, then a rename); the bytes are those of [`to_bytes`].
pub fn write_tensors<'a>(
    path: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (String, ArrayViewD<'a, f32>, FloatDtype)>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    write_atomic(path, &to_bytes(tensors, metadata)?)
}

/// Writes `tensors` (f32, any shape, by name) and `metadata` as a safetensors file, atomically
/// (a temporary file, then a rename), every tensor stored as `F32`. The same tensors and metadata
/// give the same bytes ([`to_bytes`]). Errors: I/O failure, a name given twice, or a name the
/// format rejects.
pub fn write_f32<'a>(
    path: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (String, ArrayViewD<'a, f32>)>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    write_tensors(
        path,
        tensors
            .into_iter()
            .map(|(name, t)| (name, t, FloatDtype::F32)),
        metadata,
    )
}

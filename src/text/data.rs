//! Pair files → encoded rows `(x, y, real length)` → a seeded split and seeded mini-batches.
//!
//! A pair `(s1, s2)` is encoded exactly as the seed's `SentencePairDataset`: the ids of
//! `[<BOS>] + tokenize(s1 + " " + s2) + [<EOS>]` (unknown words become `<UNK>`), then
//! `x = ids[..-1]`, `y = ids[1..]`, both padded with `<PAD>` or cut to `max_len` (29 by default).
//! Each row also records its *real length*: the number of positions of `x` before the padding,
//! which is also the number of non-PAD targets in `y`. Because the model is causal and the loss
//! ignores PAD targets, a batch can be cut to its longest real row without changing anything.
//!
//! ```
//! use succulm::text::data::{encode_pair, Dataset};
//! use succulm::text::vocab::{Vocab, BOS, EOS, PAD};
//! let words = ["<PAD>", "<BOS>", "<EOS>", "<UNK>", ".", "ruby", "red", "is"];
//! let vocab = Vocab::from_words(words.iter().map(|s| s.to_string()).collect()).unwrap();
//! let row = encode_pair(&vocab, "Ruby is red.", "is ruby?", 6);
//! // ids = [BOS ruby is red . is ruby ? EOS]  ("?" is unknown here, so <UNK> = 3)
//! assert_eq!(row.x, [BOS, 5, 7, 6, 4, 7]);
//! assert_eq!(row.y, [5, 7, 6, 4, 7, 5]);
//! assert_eq!(row.len, 6);
//! let short = encode_pair(&vocab, "ruby", "red", 6);
//! assert_eq!(short.x, [BOS, 5, 6, PAD, PAD, PAD]);
//! assert_eq!(short.y, [5, 6, EOS, PAD, PAD, PAD]);
//! assert_eq!(short.len, 3);
//! ```

use std::path::Path;

use ndarray::{s, Array2, ArrayView1, ArrayView2};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::text::vocab::{read_text, tokenize, Vocab, BOS, EOS, PAD};

/// The seed's sequence length (`max_len` of `SentencePairDataset` and of the model).
pub const DEFAULT_MAX_LEN: usize = 29;
/// The share of the pairs held out for validation.
pub const DEFAULT_VAL_FRACTION: f64 = 0.1;

/// Loads a pair file: a non-empty JSON array whose items are arrays of exactly two strings.
///
/// Errors: the file cannot be read ([`Error::Io`]); it is not JSON ([`Error::Json`], with line
/// and column); it is not an array, is empty, or item `i` is not two strings
/// ([`Error::InvalidFile`] with key `"item i"`).
pub fn load_pairs(path: impl AsRef<Path>) -> Result<Vec<(String, String)>> {
    let path = path.as_ref();
    let text = read_text(path)?;
    if text.trim().is_empty() {
        return Err(Error::invalid_file(path, "(root)", "the file is empty"));
    }
    let value: Value = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let items = value.as_array().ok_or_else(|| {
        Error::invalid_file(path, "(root)", "expected a JSON array of [s1, s2] pairs")
    })?;
    if items.is_empty() {
        return Err(Error::invalid_file(
            path,
            "(root)",
            "the array holds no pairs",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item.as_array().map(Vec::as_slice) {
            Some([Value::String(a), Value::String(b)]) => Ok((a.clone(), b.clone())),
            _ => Err(Error::invalid_file(
                path,
                format!("item {i}"),
                format!("expected an array of two strings, got {item}"),
            )),
        })
        .collect()
}

/// One encoded pair: `x` and `y` of length `max_len`, and the real (unpadded) length of `x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPair {
    /// Input ids, `[max_len]`: `<BOS>` + tokens, PAD-padded or cut.
    pub x: Vec<u32>,
    /// Target ids, `[max_len]`: tokens + `<EOS>`, PAD-padded or cut.
    pub y: Vec<u32>,
    /// Positions of `x` before the padding (= non-PAD targets in `y`), `1..=max_len`.
    pub len: usize,
}

/// Encodes a pair as the seed's `SentencePairDataset.__getitem__` (see the module docs).
/// `max_len` must be at least 1 (the [`Dataset`] constructors check it; here a 0 gives empty rows).
pub fn encode_pair(vocab: &Vocab, s1: &str, s2: &str, max_len: usize) -> EncodedPair {
    let combined = format!("{s1} {s2}");
    let tokens = tokenize(&combined);
    let mut ids = Vec::with_capacity(tokens.len() + 2);
    ids.push(BOS);
    ids.extend(tokens.iter().map(|t| vocab.id(t)));
    ids.push(EOS);
    let len = (ids.len() - 1).min(max_len);
    let mut x = vec![PAD; max_len];
    let mut y = vec![PAD; max_len];
    x[..len].copy_from_slice(&ids[..len]);
    y[..len].copy_from_slice(&ids[1..=len]);
    EncodedPair { x, y, len }
}

/// Encoded rows, stored as two `[n, max_len]` arrays and the real lengths.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    x: Array2<u32>,
    y: Array2<u32>,
    lens: Vec<usize>,
}

impl Dataset {
    /// Encodes every pair (see [`encode_pair`]). Errors if `max_len` is 0.
    pub fn from_pairs(vocab: &Vocab, pairs: &[(String, String)], max_len: usize) -> Result<Self> {
        if max_len == 0 {
            return Err(Error::invalid_arg("max_len", "must be at least 1"));
        }
        let rows: Vec<EncodedPair> = pairs
            .iter()
            .map(|(a, b)| encode_pair(vocab, a, b, max_len))
            .collect();
        Self::from_rows(&rows, max_len)
    }

    /// Builds a dataset from encoded rows, all of length `max_len`, each with
    /// `1 <= len <= max_len`.
    pub fn from_rows(rows: &[EncodedPair], max_len: usize) -> Result<Self> {
        if max_len == 0 {
            return Err(Error::invalid_arg("max_len", "must be at least 1"));
        }
        let n = rows.len();
        let mut x = Array2::from_elem((n, max_len), PAD);
        let mut y = Array2::from_elem((n, max_len), PAD);
        let mut lens = Vec::with_capacity(n);
        for (i, r) in rows.iter().enumerate() {
            if r.x.len() != max_len || r.y.len() != max_len {
                return Err(Error::shape(
                    format!("Dataset::from_rows row {i}"),
                    &[max_len, max_len],
                    &[r.x.len(), r.y.len()],
                ));
            }
            if r.len == 0 || r.len > max_len {
                return Err(Error::invalid_arg(
                    format!("rows[{i}].len"),
                    format!("{} is not in 1..={max_len}", r.len),
                ));
            }
            x.row_mut(i).assign(&ArrayView1::from(r.x.as_slice()));
            y.row_mut(i).assign(&ArrayView1::from(r.y.as_slice()));
            lens.push(r.len);
        }
        Ok(Dataset { x, y, lens })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// The row length `T` (the `max_len` the rows were encoded with).
    pub fn max_len(&self) -> usize {
        self.x.ncols()
    }

    /// All inputs, `[n, max_len]`.
    pub fn x(&self) -> ArrayView2<'_, u32> {
        self.x.view()
    }

    /// All targets, `[n, max_len]`.
    pub fn y(&self) -> ArrayView2<'_, u32> {
        self.y.view()
    }

    /// The real length of every row.
    pub fn lens(&self) -> &[usize] {
        &self.lens
    }

    /// Row `i` as an [`EncodedPair`], if it exists.
    pub fn row(&self, i: usize) -> Option<EncodedPair> {
        let len = *self.lens.get(i)?;
        Some(EncodedPair {
            x: self.x.row(i).to_vec(),
            y: self.y.row(i).to_vec(),
            len,
        })
    }

    /// The rows at `indices`, in that order. Errors on an index out of range.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        let t = self.max_len();
        let mut x = Array2::from_elem((indices.len(), t), PAD);
        let mut y = Array2::from_elem((indices.len(), t), PAD);
        let mut lens = Vec::with_capacity(indices.len());
        for (k, &i) in indices.iter().enumerate() {
            if i >= self.len() {
                return Err(Error::invalid_arg(
                    "indices",
                    format!("index {i} is out of range for {} rows", self.len()),
                ));
            }
            x.row_mut(k).assign(&self.x.row(i));
            y.row_mut(k).assign(&self.y.row(i));
            lens.push(self.lens[i]);
        }
        Ok(Dataset { x, y, lens })
    }

    /// A seeded train/validation split: see [`split_indices`]. Returns `(train, validation)`,
    /// each keeping the original row order.
    pub fn split(&self, val_fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        self.split_pinned(val_fraction, seed, &[])
    }

    /// Like [`split`](Self::split), but the rows in `pinned` always go to the training part
    /// (e.g. the seed's in-training prompts, which must be learned).
    pub fn split_pinned(
        &self,
        val_fraction: f64,
        seed: u64,
        pinned: &[usize],
    ) -> Result<(Dataset, Dataset)> {
        let (train, val) = split_indices(self.len(), val_fraction, seed, pinned)?;
        Ok((self.subset(&train)?, self.subset(&val)?))
    }

    /// The rows in a random order drawn from `rng`, in mini-batches of `batch_size` (the last
    /// one may be smaller). Call once per epoch with the same `rng` for a reproducible sequence
    /// of epochs. Errors if `batch_size` is 0.
    pub fn batches<R: Rng + ?Sized>(&self, batch_size: usize, rng: &mut R) -> Result<Batches<'_>> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(rng);
        Batches::new(self, order, batch_size)
    }

    /// Mini-batches in row order (for evaluation). Errors if `batch_size` is 0.
    pub fn batches_in_order(&self, batch_size: usize) -> Result<Batches<'_>> {
        Batches::new(self, (0..self.len()).collect(), batch_size)
    }

    /// Shuffled mini-batches from a fresh `StdRng::seed_from_u64(seed)`.
    pub fn batches_seeded(&self, batch_size: usize, seed: u64) -> Result<Batches<'_>> {
        self.batches(batch_size, &mut rand::rngs::StdRng::seed_from_u64(seed))
    }
}

/// A seeded partition of `0..n` into `(train, validation)` index lists, both ascending.
///
/// The validation part has `round(n * val_fraction)` rows (at least 1 when `val_fraction > 0`),
/// drawn uniformly from the rows not in `pinned` with `StdRng::seed_from_u64(seed)`. Errors if
/// `val_fraction` is not in `[0, 1)`, a pinned index is out of range, or the split would leave
/// either part empty when it should not be.
pub fn split_indices(
    n: usize,
    val_fraction: f64,
    seed: u64,
    pinned: &[usize],
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&val_fraction) {
        return Err(Error::invalid_arg(
            "val_fraction",
            format!("{val_fraction} is not in [0, 1)"),
        ));
    }
    let mut is_pinned = vec![false; n];
    for &p in pinned {
        *is_pinned.get_mut(p).ok_or_else(|| {
            Error::invalid_arg("pinned", format!("index {p} is out of range for {n} rows"))
        })? = true;
    }
    let mut free: Vec<usize> = (0..n).filter(|&i| !is_pinned[i]).collect();
    let mut n_val = (n as f64 * val_fraction).round() as usize;
    if val_fraction > 0.0 {
        n_val = n_val.max(1);
    }
    if n_val > free.len() || (n_val == n && n > 0) {
        return Err(Error::invalid_arg(
            "val_fraction",
            format!(
                "{val_fraction} of {n} rows ({} pinned) leaves no room for both parts",
                n - free.len()
            ),
        ));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (chosen, _) = free.partial_shuffle(&mut rng, n_val);
    let mut is_val = vec![false; n];
    for &i in chosen.iter() {
        is_val[i] = true;
    }
    let val: Vec<usize> = (0..n).filter(|&i| is_val[i]).collect();
    let train: Vec<usize> = (0..n).filter(|&i| !is_val[i]).collect();
    Ok((train, val))
}

/// One mini-batch: `x` and `y` of shape `[batch, T]` (`T` = the dataset's `max_len`), each
/// row's real length, and which rows of the dataset it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Inputs, `[batch, T]`.
    pub x: Array2<u32>,
    /// Targets, `[batch, T]` (PAD beyond each row's real length).
    pub y: Array2<u32>,
    /// The real length of each row.
    pub lens: Vec<usize>,
    /// The dataset row of each batch row, `[batch]` (indices into the [`Dataset`] the batches
    /// were drawn from; e.g. to look up per-row data such as a teacher's distributions).
    pub rows: Vec<usize>,
}

impl Batch {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// The longest real row (0 for an empty batch): every column at or past it is PAD.
    pub fn max_len(&self) -> usize {
        self.lens.iter().copied().max().unwrap_or(0)
    }

    /// `x` cut to the longest real row, `[batch, max_len()]`.
    pub fn x_trimmed(&self) -> ArrayView2<'_, u32> {
        self.x.slice(s![.., ..self.max_len()])
    }

    /// `y` cut to the longest real row, `[batch, max_len()]`.
    pub fn y_trimmed(&self) -> ArrayView2<'_, u32> {
        self.y.slice(s![.., ..self.max_len()])
    }

    /// The number of non-PAD targets (the loss's denominator).
    pub fn num_targets(&self) -> usize {
        self.lens.iter().sum()
    }
}

/// An iterator of [`Batch`]es over a [`Dataset`] in a fixed row order. It holds only the order
/// (one `Vec<usize>` per epoch); each batch copies its rows out of the dataset.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    data: &'a Dataset,
    order: Vec<usize>,
    pos: usize,
    batch_size: usize,
}

impl<'a> Batches<'a> {
    fn new(data: &'a Dataset, order: Vec<usize>, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::invalid_arg("batch_size", "must be at least 1"));
        }
        Ok(Batches {
            data,
            order,
            pos: 0,
            batch_size,
        })
    }

    /// The row order of this epoch (indices into the dataset).
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let rows = &self.order[self.pos..end];
        self.pos = end;
        let t = self.data.max_len();
        let mut x = Array2::from_elem((rows.len(), t), PAD);
        let mut y = Array2::from_elem((rows.len(), t), PAD);
        let mut lens = Vec::with_capacity(rows.len());
        for (k, &i) in rows.iter().enumerate() {
            x.row_mut(k).assign(&self.data.x.row(i));
            y.row_mut(k).assign(&self.data.y.row(i));
            lens.push(self.data.lens[i]);
        }
        Some(Batch {
            x,
            y,
            lens,
            rows: rows.to_vec(),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.order.len() - self.pos;
        let n = left.div_ceil(self.batch_size);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Batches<'_> {}

/// One past the last non-PAD id of a row (0 for a row of PAD only): its real length, read from
/// its inputs or its targets.
pub(crate) fn real_len<'a, I>(row: I) -> usize
where
    I: IntoIterator<Item = &'a u32>,
    I::IntoIter: DoubleEndedIterator + ExactSizeIterator,
{
    row.into_iter()
        .rposition(|&id| id != PAD)
        .map_or(0, |p| p + 1)
}

/// The longest real length ([`real_len`]) of the rows of `ids: [N, T]` (0 if all are PAD).
pub(crate) fn longest_real(ids: ArrayView2<'_, u32>) -> usize {
    ids.rows().into_iter().map(real_len).max().unwrap_or(0)
}

/// The normal sentence pairs' file name in a fixtures directory.
pub const NORMAL_PAIRS_FILE: &str = "succulm_normal_sentence_pairs.json";
/// The question–answer pairs' file name in a fixtures directory.
pub const QA_PAIRS_FILE: &str = "succulm_question_answer_pairs.json";
/// The seed of the standard train/validation split ([`standard_split`]).
pub const SPLIT_SEED: u64 = 42;
/// The standard validation fraction.
pub const VAL_FRACTION: f64 = 0.1;

/// Both pair files of a fixtures directory, normal pairs first.
pub fn load_corpus(dir: impl AsRef<Path>) -> Result<Vec<(String, String)>> {
    let dir = dir.as_ref();
    let mut pairs = load_pairs(dir.join(NORMAL_PAIRS_FILE))?;
    pairs.extend(load_pairs(dir.join(QA_PAIRS_FILE))?);
    Ok(pairs)
}

/// The standard split that training and evaluation share: the pairs encoded with `max_len`,
/// 10% to validation with [`SPLIT_SEED`], except that pairs whose first sentence is one of
/// `pinned_prompts` (compared as token sequences; e.g. the seed's in-training prompts, which the
/// model must learn) always stay in training.
pub fn standard_split<S: AsRef<str>>(
    vocab: &Vocab,
    pairs: &[(String, String)],
    pinned_prompts: &[S],
    max_len: usize,
) -> Result<(Dataset, Dataset)> {
    let pinned_tokens: Vec<Vec<String>> = pinned_prompts
        .iter()
        .map(|p| tokenize(p.as_ref()))
        .collect();
    let pinned: Vec<usize> = pairs
        .iter()
        .enumerate()
        .filter(|(_, (s1, _))| pinned_tokens.contains(&tokenize(s1)))
        .map(|(i, _)| i)
        .collect();
    Dataset::from_pairs(vocab, pairs, max_len)?.split_pinned(VAL_FRACTION, SPLIT_SEED, &pinned)
}

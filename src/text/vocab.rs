//! Tokenizer and vocabulary, exactly as the seed's `tokenize`, `make_word2id` and `talk`.
//!
//! * [`tokenize`]: lower-case, put a space on both sides of each of `. , ? !`, split on runs of
//!   whitespace, drop empty pieces. Every other character (apostrophes, hyphens, digits, ...) stays
//!   inside its word: `"ruby's"` is one token.
//! * [`Vocab`]: `<PAD>`=0, `<BOS>`=1, `<EOS>`=2, `<UNK>`=3, then every other key of the embeddings
//!   file in sorted (byte) order, with the embedding vectors in that order and an optional set of
//!   *hidden words* (words that have a vector but appear in no training sentence).
//! * [`detokenize`] / [`Vocab::decode`]: the seed's `talk` joining (tokens joined with spaces, then
//!   the space before each of `. , ? !` removed).
//!
//! ```
//! use succulm::{tokenize, detokenize};
//! let t = tokenize("Can you bloom,  Winy?");
//! assert_eq!(t, ["can", "you", "bloom", ",", "winy", "?"]);
//! assert_eq!(detokenize(&t), "can you bloom, winy?");
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use ndarray::Array2;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::error::{Error, Result};

/// The punctuation marks the tokenizer splits off as tokens of their own.
pub const PUNCTUATION: [char; 4] = ['.', ',', '?', '!'];

/// Special token names, in id order.
pub const SPECIAL_TOKENS: [&str; 4] = ["<PAD>", "<BOS>", "<EOS>", "<UNK>"];
/// `<PAD>`'s id.
pub const PAD: u32 = 0;
/// `<BOS>`'s id.
pub const BOS: u32 = 1;
/// `<EOS>`'s id.
pub const EOS: u32 = 2;
/// `<UNK>`'s id.
pub const UNK: u32 = 3;
/// The number of special tokens (ids `0..NUM_SPECIAL`).
pub const NUM_SPECIAL: usize = SPECIAL_TOKENS.len();

/// Whitespace as Python's `re` `\s` / `str.strip()` see it: Unicode white space plus the four
/// ASCII separators `\x1c..=\x1f`, which Python counts as space and Rust does not.
fn is_seed_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Splits text as the seed's `tokenize(text.lower())` does.
///
/// Lower-cases, isolates each of `. , ? !`, splits on runs of whitespace and drops empty pieces
/// (so an empty or all-space text gives no tokens). Other punctuation stays in its word.
///
/// ```
/// assert_eq!(succulm::tokenize("  Ruby's POT... \t ok!"), ["ruby's", "pot", ".", ".", ".", "ok", "!"]);
/// assert!(succulm::tokenize(" \n ").is_empty());
/// ```
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if PUNCTUATION.contains(&c) {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current).to_lowercase());
            }
            tokens.push(c.to_string());
        } else if is_seed_space(c) {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current).to_lowercase());
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        tokens.push(current.to_lowercase());
    }
    tokens
}

/// Joins tokens as the seed's `talk`: with single spaces, then the space before each of
/// `. , ? !` removed (a plain text replacement, in that order, exactly as the seed does).
///
/// ```
/// assert_eq!(succulm::detokenize(&["no", ",", "she", "sleeps", "."]), "no, she sleeps.");
/// ```
pub fn detokenize<S: AsRef<str>>(tokens: &[S]) -> String {
    let mut out = String::with_capacity(tokens.iter().map(|t| t.as_ref().len() + 1).sum());
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(t.as_ref());
    }
    for sign in PUNCTUATION {
        let spaced = format!(" {sign}");
        if out.contains(&spaced) {
            out = out.replace(&spaced, &sign.to_string());
        }
    }
    out
}

/// The vocabulary: specials first (`<PAD>`=0, `<BOS>`=1, `<EOS>`=2, `<UNK>`=3), then every other
/// word in sorted (byte) order; optionally the embedding vectors `[V, d]` in id order and a set of
/// hidden words.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    words: Vec<String>,
    ids: HashMap<String, u32>,
    embeddings: Option<Array2<f32>>,
    /// Hidden words, in id order.
    hidden: Vec<String>,
    /// `hidden_mask[id]` is true for a hidden word (empty when there are none).
    hidden_mask: Vec<bool>,
}

impl Vocab {
    /// Builds a vocabulary from words in id order; the first four must be the special tokens,
    /// and no word may be empty or repeated.
    ///
    /// ```
    /// let words = ["<PAD>", "<BOS>", "<EOS>", "<UNK>", "ruby", "winy"];
    /// let v = succulm::Vocab::from_words(words.iter().map(|s| s.to_string()).collect()).unwrap();
    /// assert_eq!(v.id("winy"), 5);
    /// assert_eq!(v.id("sophia"), succulm::text::vocab::UNK);
    /// ```
    pub fn from_words(words: Vec<String>) -> Result<Self> {
        for (i, s) in SPECIAL_TOKENS.iter().enumerate() {
            if words.get(i).map(String::as_str) != Some(*s) {
                return Err(Error::invalid_arg(
                    "words",
                    format!("id {i} must be the special token {s}"),
                ));
            }
        }
        if words.len() > u32::MAX as usize {
            return Err(Error::invalid_arg("words", "more than u32::MAX words"));
        }
        let mut ids = HashMap::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            if w.is_empty() {
                return Err(Error::invalid_arg("words", format!("word {i} is empty")));
            }
            if ids.insert(w.clone(), i as u32).is_some() {
                return Err(Error::invalid_arg("words", format!("duplicate word {w:?}")));
            }
        }
        Ok(Vocab {
            words,
            ids,
            embeddings: None,
            hidden: Vec::new(),
            hidden_mask: Vec::new(),
        })
    }

    /// Builds the vocabulary of `make_word2id` from a word → vector list (the specials must be
    /// among the keys; all other keys are sorted) and keeps the vectors in id order.
    ///
    /// `source` names the data in error messages (a file path, usually).
    pub fn from_vectors(entries: Vec<(String, Vec<f32>)>, source: &Path) -> Result<Self> {
        if entries.is_empty() {
            return Err(Error::invalid_file(
                source,
                "(root)",
                "no words: the object is empty",
            ));
        }
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(entries.len());
        let mut dim = None;
        for (i, (word, vector)) in entries.iter().enumerate() {
            if word.is_empty() {
                return Err(Error::invalid_file(source, "\"\"", "empty key"));
            }
            if seen.insert(word.as_str(), i).is_some() {
                return Err(Error::invalid_file(source, word, "duplicate key"));
            }
            if vector.is_empty() {
                return Err(Error::invalid_file(source, word, "empty vector"));
            }
            if let Some(j) = vector.iter().position(|x| !x.is_finite()) {
                return Err(Error::invalid_file(
                    source,
                    word,
                    format!("element {j} is not a finite f32 ({})", vector[j]),
                ));
            }
            match dim {
                None => dim = Some((word.clone(), vector.len())),
                Some((ref first, d)) if d != vector.len() => {
                    return Err(Error::invalid_file(
                        source,
                        word,
                        format!(
                            "vector of length {}, but {first:?} has length {d}",
                            vector.len()
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        for s in SPECIAL_TOKENS {
            if !seen.contains_key(s) {
                return Err(Error::invalid_file(source, s, "missing special token"));
            }
        }
        let dim = dim.map_or(0, |(_, d)| d);
        let mut rest: Vec<&str> = seen
            .keys()
            .copied()
            .filter(|k| !SPECIAL_TOKENS.contains(k))
            .collect();
        rest.sort_unstable();
        let mut words: Vec<String> = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
        words.extend(rest.iter().map(|s| s.to_string()));
        let mut emb = Array2::zeros((words.len(), dim));
        for (row, w) in words.iter().enumerate() {
            let v = &entries[seen[w.as_str()]].1;
            emb.row_mut(row)
                .assign(&ndarray::ArrayView1::from(v.as_slice()));
        }
        let mut vocab = Self::from_words(words)?;
        vocab.embeddings = Some(emb);
        Ok(vocab)
    }

    /// Loads the vocabulary and its vectors from an embeddings file `{word: [floats]}`.
    ///
    /// Errors ([`Error::InvalidFile`] naming the file and key unless the JSON itself is broken):
    /// an empty object, a missing special token, an empty or duplicate key, a value that is not a
    /// non-empty array of numbers, vectors of unequal length, a number that is not a finite `f32`
    /// (including `NaN` / `Infinity`, which Python's `json` writes but JSON does not allow).
    pub fn load(embeddings_json: impl AsRef<Path>) -> Result<Self> {
        let path = embeddings_json.as_ref();
        let text = read_text(path)?;
        let entries: RawEntries =
            serde_json::from_str(&text).map_err(|e| json_error(path, &text, e))?;
        let mut parsed = Vec::with_capacity(entries.0.len());
        for (word, value) in entries.0 {
            let vector = json_vector(path, &word, &value)?;
            parsed.push((word, vector));
        }
        Self::from_vectors(parsed, path)
    }

    /// Loads the embeddings file and attaches the hidden words listed in `hidden_json`
    /// (see [`load_hidden_words`] and [`Vocab::with_hidden_words`]).
    pub fn load_with_hidden(
        embeddings_json: impl AsRef<Path>,
        hidden_json: impl AsRef<Path>,
    ) -> Result<Self> {
        let hidden_path = hidden_json.as_ref();
        let hidden = load_hidden_words(hidden_path)?;
        Self::load(embeddings_json)?
            .with_hidden_words(&hidden)
            .map_err(|e| match e {
                Error::InvalidArgument { reason, .. } => {
                    Error::invalid_file(hidden_path, "hidden word", reason)
                }
                other => other,
            })
    }

    /// Marks `words` as hidden (replacing any earlier set). Each must be a non-special word of
    /// the vocabulary, listed once.
    pub fn with_hidden_words<S: AsRef<str>>(mut self, words: &[S]) -> Result<Self> {
        let mut mask = vec![false; self.len()];
        for w in words {
            let w = w.as_ref();
            let id = self.get(w).ok_or_else(|| {
                Error::invalid_arg("hidden_words", format!("{w:?} is not in the vocabulary"))
            })?;
            if (id as usize) < NUM_SPECIAL {
                return Err(Error::invalid_arg(
                    "hidden_words",
                    format!("{w:?} is a special token"),
                ));
            }
            if std::mem::replace(&mut mask[id as usize], true) {
                return Err(Error::invalid_arg(
                    "hidden_words",
                    format!("{w:?} is listed twice"),
                ));
            }
        }
        self.hidden = self
            .words
            .iter()
            .zip(&mask)
            .filter(|(_, &h)| h)
            .map(|(w, _)| w.clone())
            .collect();
        self.hidden_mask = if self.hidden.is_empty() {
            Vec::new()
        } else {
            mask
        };
        Ok(self)
    }

    /// Number of words, specials included.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Always false for a valid vocabulary (it holds the four specials).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The id of `word`, or `<UNK>`'s id if it is unknown.
    pub fn id(&self, word: &str) -> u32 {
        self.ids.get(word).copied().unwrap_or(UNK)
    }

    /// The id of `word` if it is in the vocabulary.
    pub fn get(&self, word: &str) -> Option<u32> {
        self.ids.get(word).copied()
    }

    /// The word with this id.
    pub fn word(&self, id: u32) -> Option<&str> {
        self.words.get(id as usize).map(String::as_str)
    }

    /// All words in id order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The embedding vectors in id order, `[V, d]`, when loaded from an embeddings file.
    pub fn embeddings(&self) -> Option<&Array2<f32>> {
        self.embeddings.as_ref()
    }

    /// The hidden words (in the vocabulary, never in training text), in id order.
    pub fn hidden_words(&self) -> &[String] {
        &self.hidden
    }

    /// The ids of the hidden words, ascending.
    pub fn hidden_ids(&self) -> Vec<u32> {
        self.hidden_mask
            .iter()
            .enumerate()
            .filter(|(_, &h)| h)
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// Whether `id` is a hidden word (false for ids out of range).
    pub fn is_hidden(&self, id: u32) -> bool {
        self.hidden_mask.get(id as usize).copied().unwrap_or(false)
    }

    /// Whether `id` is one of the four special tokens.
    pub fn is_special(id: u32) -> bool {
        (id as usize) < NUM_SPECIAL
    }

    /// Tokenizes and maps to ids (no BOS/EOS); unknown words become `<UNK>`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        tokenize(text).iter().map(|t| self.id(t)).collect()
    }

    /// The tokens of `text` that are not in the vocabulary (in order of appearance, repeats kept).
    pub fn unknown_words(&self, text: &str) -> Vec<String> {
        tokenize(text)
            .into_iter()
            .filter(|t| !self.ids.contains_key(t))
            .collect()
    }

    /// Maps ids to words and joins them as the seed's `talk`. Every id is written as its word,
    /// specials included (`<BOS>` shows up as `<BOS>`); an id out of range is written `<UNK>`.
    pub fn decode(&self, ids: &[u32]) -> String {
        let words: Vec<&str> = ids
            .iter()
            .map(|&i| self.word(i).unwrap_or(SPECIAL_TOKENS[UNK as usize]))
            .collect();
        detokenize(&words)
    }
}

/// Loads a hidden-words file: a JSON array of distinct, non-empty strings
/// (`fixtures/succulm_hidden_words.json`). An empty array is allowed.
pub fn load_hidden_words(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = path.as_ref();
    let text = read_text(path)?;
    let value: Value = serde_json::from_str(&text).map_err(|e| json_error(path, &text, e))?;
    let items = value
        .as_array()
        .ok_or_else(|| Error::invalid_file(path, "(root)", "expected a JSON array of strings"))?;
    let mut out = Vec::with_capacity(items.len());
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let key = format!("item {i}");
        let w = item
            .as_str()
            .ok_or_else(|| Error::invalid_file(path, &key, format!("not a string: {item}")))?;
        if w.is_empty() {
            return Err(Error::invalid_file(path, key, "empty string"));
        }
        if !seen.insert(w) {
            return Err(Error::invalid_file(path, key, format!("duplicate {w:?}")));
        }
        out.push(w.to_string());
    }
    Ok(out)
}

/// Reads a whole text file, mapping failure to [`Error::Io`].
pub(crate) fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Turns one JSON value into a vector of finite `f32`, naming the key on failure.
fn json_vector(path: &Path, word: &str, value: &Value) -> Result<Vec<f32>> {
    let items = value.as_array().ok_or_else(|| {
        Error::invalid_file(
            path,
            word,
            format!("expected an array of numbers, got {value}"),
        )
    })?;
    items
        .iter()
        .enumerate()
        .map(|(j, x)| {
            let f = x.as_f64().ok_or_else(|| {
                Error::invalid_file(path, word, format!("element {j} is not a number: {x}"))
            })?;
            let f32v = f as f32;
            if f32v.is_finite() {
                Ok(f32v)
            } else {
                Err(Error::invalid_file(
                    path,
                    word,
                    format!("element {j} ({f}) is not a finite f32"),
                ))
            }
        })
        .collect()
}

/// Converts a serde_json error into ours. A syntax error at a `NaN` / `Infinity` literal or an
/// out-of-range number becomes [`Error::InvalidFile`] naming the key that holds it.
pub(crate) fn json_error(path: &Path, text: &str, e: serde_json::Error) -> Error {
    if e.classify() == serde_json::error::Category::Syntax {
        if let Some(offset) = byte_offset(text, e.line(), e.column()) {
            let at = text[offset..].trim_start_matches('-');
            let non_finite = ["NaN", "Infinity", "-Infinity"]
                .iter()
                .any(|lit| at.starts_with(lit))
                || e.to_string().starts_with("number out of range");
            if non_finite {
                let key = key_before(&text[..offset])
                    .unwrap_or_else(|| format!("line {} column {}", e.line(), e.column()));
                return Error::invalid_file(
                    path,
                    key,
                    format!("non-finite or out-of-range number ({e})"),
                );
            }
        }
    }
    Error::Json {
        path: path.to_path_buf(),
        source: e,
    }
}

/// The byte offset of the character at a 1-based (line, column) position as serde_json
/// reports it (the end of the text if the column is past the end of the line).
fn byte_offset(text: &str, line: usize, column: usize) -> Option<usize> {
    let mut start = 0;
    for _ in 1..line {
        start += text[start..].find('\n')? + 1;
    }
    let rest = &text[start..];
    let col = rest
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(rest.len(), |(i, _)| i);
    Some(start + col)
}

/// The last object key (`"key":`) that starts before the end of `prefix`.
fn key_before(prefix: &str) -> Option<String> {
    let colon = prefix.rfind("\":")?;
    let bytes = prefix.as_bytes();
    let mut i = colon;
    while i > 0 {
        i -= 1;
        if bytes[i] == b'"' && (i == 0 || bytes[i - 1] != b'\\') {
            return serde_json::from_str::<String>(&prefix[i..=colon]).ok();
        }
    }
    None
}

/// The entries of a JSON object in file order, duplicates kept (a `HashMap` would silently
/// keep only the last of two equal keys).
struct RawEntries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for RawEntries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = RawEntries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object {word: [numbers]}")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<RawEntries, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    out.push(entry);
                }
                Ok(RawEntries(out))
            }
        }
        d.deserialize_map(EntriesVisitor)
    }
}

//! Tokenizer and vocabulary, exactly as the seed's `tokenize`, `make_word2id` and `talk`.
//!
//! (Foundation issue: this file is being completed — validation, embeddings, hidden words.)

use std::collections::HashMap;
use std::path::Path;

use ndarray::Array2;

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

/// Splits text as the seed's `tokenize(text.lower())` does.
pub fn tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut spaced = String::with_capacity(lower.len() + 8);
    for c in lower.chars() {
        if PUNCTUATION.contains(&c) {
            spaced.push(' ');
            spaced.push(c);
            spaced.push(' ');
        } else {
            spaced.push(c);
        }
    }
    spaced.split_whitespace().map(str::to_string).collect()
}

/// Joins tokens as the seed's `talk`: with spaces, then no space before `. , ? !`.
pub fn detokenize<S: AsRef<str>>(tokens: &[S]) -> String {
    let mut out = String::new();
    for (i, t) in tokens.iter().enumerate() {
        let t = t.as_ref();
        let is_punct = t.len() == 1 && t.chars().all(|c| PUNCTUATION.contains(&c));
        if i > 0 && !is_punct {
            out.push(' ');
        }
        out.push_str(t);
    }
    out
}

/// The vocabulary: specials first (`<PAD>`=0, `<BOS>`=1, `<EOS>`=2, `<UNK>`=3), then every other
/// word in sorted (byte) order.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    words: Vec<String>,
    ids: HashMap<String, u32>,
    embeddings: Option<Array2<f32>>,
    hidden: Vec<String>,
}

impl Vocab {
    /// Builds a vocabulary from words in id order; the first four must be the special tokens.
    pub fn from_words(words: Vec<String>) -> Result<Self> {
        for (i, s) in SPECIAL_TOKENS.iter().enumerate() {
            if words.get(i).map(String::as_str) != Some(*s) {
                return Err(Error::invalid_arg(
                    "words",
                    format!("id {i} must be the special token {s}"),
                ));
            }
        }
        let mut ids = HashMap::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            if ids.insert(w.clone(), i as u32).is_some() {
                return Err(Error::invalid_arg("words", format!("duplicate word {w:?}")));
            }
        }
        Ok(Vocab {
            words,
            ids,
            embeddings: None,
            hidden: Vec::new(),
        })
    }

    /// Loads the vocabulary (and its vectors) from an embeddings file `{word: [floats]}`.
    pub fn load(embeddings_json: impl AsRef<Path>) -> Result<Self> {
        let path = embeddings_json.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let map: HashMap<String, Vec<f32>> =
            serde_json::from_str(&text).map_err(|source| Error::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let mut rest: Vec<String> = map
            .keys()
            .filter(|k| !SPECIAL_TOKENS.contains(&k.as_str()))
            .cloned()
            .collect();
        rest.sort();
        let mut words: Vec<String> = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
        words.extend(rest);
        let dim = map.values().next().map_or(0, Vec::len);
        let mut emb = Array2::zeros((words.len(), dim));
        for (i, w) in words.iter().enumerate() {
            let v = map
                .get(w)
                .ok_or_else(|| Error::invalid_file(path, w, "missing special token"))?;
            emb.row_mut(i)
                .assign(&ndarray::ArrayView1::from(v.as_slice()));
        }
        let mut vocab = Self::from_words(words)?;
        vocab.embeddings = Some(emb);
        Ok(vocab)
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

    /// The hidden words (in the vocabulary, never in training text).
    pub fn hidden_words(&self) -> &[String] {
        &self.hidden
    }

    /// Tokenizes and maps to ids (no BOS/EOS).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        tokenize(text).iter().map(|t| self.id(t)).collect()
    }

    /// Maps ids to words and joins them as the seed's `talk`.
    pub fn decode(&self, ids: &[u32]) -> String {
        let words: Vec<&str> = ids
            .iter()
            .map(|&i| self.word(i).unwrap_or("<UNK>"))
            .collect();
        detokenize(&words)
    }
}

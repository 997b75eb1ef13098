//! [`ModelConfig`]: the shape of a model, its architecture (room for other decoders, with
//! SuccuLM's choices as defaults) and the named profiles.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The shape of a SuccuLM model (the seed's `settings_dict` entry plus `vocab_size`, `d_model`,
/// `max_len`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Vocabulary size `V` (specials included).
    pub vocab_size: usize,
    /// Model width `d`.
    pub d_model: usize,
    /// Longest sequence (the positional table's length).
    pub max_len: usize,
    /// Number of blocks.
    pub n_layers: usize,
    /// FFN width is `d_model · ffn_expansion`.
    pub ffn_expansion: usize,
    /// Attention heads per block (must divide `d_model`).
    pub n_attn_heads: usize,
}

/// The named profiles: `(name, n_layers, ffn_expansion, n_attn_heads)`, all with `d_model` 50
/// and `max_len` 29.
pub const PROFILES: [(&str, usize, usize, usize); 5] = [
    ("tiny", 1, 1, 1),
    ("small", 2, 2, 2),
    ("middle", 3, 4, 5),
    ("upper_middle", 4, 4, 5),
    ("large", 6, 4, 10),
];

/// `d_model` of every profile (the embeddings file's width).
pub const PROFILE_D_MODEL: usize = 50;
/// `max_len` of every profile (the seed's dataset pads to 29).
pub const PROFILE_MAX_LEN: usize = 29;

impl ModelConfig {
    /// The named profile (see [`PROFILES`]) for a vocabulary of `vocab_size` words.
    ///
    /// ```
    /// let c = succulm::nn::model::ModelConfig::profile("upper_middle", 155)?;
    /// assert_eq!((c.n_layers, c.d_model * c.ffn_expansion, c.n_attn_heads), (4, 200, 5));
    /// assert!(succulm::nn::model::ModelConfig::profile("huge", 155).is_err());
    /// # Ok::<(), succulm::Error>(())
    /// ```
    pub fn profile(name: &str, vocab_size: usize) -> Result<Self> {
        let (_, n_layers, ffn_expansion, n_attn_heads) = PROFILES
            .iter()
            .find(|p| p.0 == name)
            .copied()
            .ok_or_else(|| {
                let names: Vec<&str> = PROFILES.iter().map(|p| p.0).collect();
                Error::invalid_arg(
                    "profile",
                    format!("unknown profile {name:?}; known: {}", names.join(", ")),
                )
            })?;
        let c = ModelConfig {
            vocab_size,
            d_model: PROFILE_D_MODEL,
            max_len: PROFILE_MAX_LEN,
            n_layers,
            ffn_expansion,
            n_attn_heads,
        };
        c.validate()?;
        Ok(c)
    }

    /// The profile names, in size order.
    pub fn profile_names() -> Vec<&'static str> {
        PROFILES.iter().map(|p| p.0).collect()
    }

    /// Checks every field: all positive, `vocab_size > PAD..UNK`, `d_model` even (or 1, as the
    /// seed's positional table requires), `n_attn_heads` divides `d_model`.
    pub fn validate(&self) -> Result<()> {
        let fields = [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("max_len", self.max_len),
            ("n_layers", self.n_layers),
            ("ffn_expansion", self.ffn_expansion),
            ("n_attn_heads", self.n_attn_heads),
        ];
        for (name, v) in fields {
            if v == 0 {
                return Err(Error::invalid_arg(name, "must be at least 1"));
            }
        }
        if self.vocab_size < 4 {
            return Err(Error::invalid_arg(
                "vocab_size",
                format!("{} is smaller than the 4 special tokens", self.vocab_size),
            ));
        }
        if self.vocab_size > u32::MAX as usize {
            return Err(Error::invalid_arg("vocab_size", "does not fit u32 ids"));
        }
        if self.d_model % 2 != 0 && self.d_model != 1 {
            return Err(Error::invalid_arg(
                "d_model",
                format!(
                    "{} must be even (sinusoidal positions pair sin/cos)",
                    self.d_model
                ),
            ));
        }
        // Every weight's size (`3d · d` for Q/K/V, `d · f` for the FFN, `V · d` for the
        // embedding, `max_len · d` for the positions) must be computable.
        let d = self.d_model;
        let sizes = [
            (
                "ffn_expansion",
                d.checked_mul(self.ffn_expansion)
                    .and_then(|f| f.checked_mul(d)),
            ),
            ("d_model", d.checked_mul(3).and_then(|x| x.checked_mul(d))),
            ("vocab_size", self.vocab_size.checked_mul(d)),
            ("max_len", self.max_len.checked_mul(d)),
        ];
        for (name, size) in sizes {
            if size.map_or(true, |n| n > isize::MAX as usize / 4) {
                return Err(Error::invalid_arg(
                    name,
                    format!("{self:?} has a weight too large to address"),
                ));
            }
        }
        if self.d_model % self.n_attn_heads != 0 {
            return Err(Error::invalid_arg(
                "n_attn_heads",
                format!(
                    "{} does not divide d_model {}",
                    self.n_attn_heads, self.d_model
                ),
            ));
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_attn_heads
    }

    /// FFN hidden width `d_model · ffn_expansion`.
    pub fn ffn_dim(&self) -> usize {
        self.d_model * self.ffn_expansion
    }
}

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
    /// The decoder's architecture; SuccuLM's by default, and then absent from the JSON (so
    /// SuccuLM checkpoints read and write exactly as before the field existed).
    #[serde(default, skip_serializing_if = "Architecture::is_succulm")]
    pub arch: Architecture,
}

/// The decoder's architecture, one choice per part. Every field defaults to SuccuLM's choice
/// and is left out of the JSON when it has it. Each enum lists only what the model implements
/// today; they are `#[non_exhaustive]`, room for the GPT-2 and LLaMA-family decoders (named in
/// each enum's documentation) to come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// The normalisation before attention, before the FFN and at the end.
    #[serde(default, skip_serializing_if = "is_default")]
    pub norm: Norm,
    /// The feed-forward network of a block.
    #[serde(default, skip_serializing_if = "is_default")]
    pub mlp: Mlp,
    /// How positions enter the model.
    #[serde(default, skip_serializing_if = "is_default")]
    pub positions: Positions,
    /// How queries share keys and values.
    #[serde(default, skip_serializing_if = "is_default")]
    pub attention: AttentionHeads,
    /// Which projections carry a bias.
    #[serde(default, skip_serializing_if = "is_default")]
    pub biases: Biases,
    /// The output head.
    #[serde(default, skip_serializing_if = "is_default")]
    pub head: Head,
}

impl Architecture {
    /// SuccuLM's architecture (the default): pre-LayerNorm, ReLU FFN, sinusoidal positions,
    /// multi-head attention, biases on every projection, head tied to the embedding.
    pub const SUCCULM: Architecture = Architecture {
        norm: Norm::LayerNorm,
        mlp: Mlp::Relu,
        positions: Positions::Sinusoidal,
        attention: AttentionHeads::MultiHead,
        biases: Biases::All,
        head: Head::Tied,
    };

    /// Whether this is SuccuLM's architecture (then a config's JSON leaves it out).
    pub fn is_succulm(&self) -> bool {
        *self == Self::SUCCULM
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// The normalisation layers. To come: RMSNorm (LLaMA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Norm {
    /// PyTorch's `nn.LayerNorm` (biased variance, eps 1e-5, weight and bias).
    #[default]
    LayerNorm,
}

/// The feed-forward network. To come: GELU (GPT-2), SwiGLU (LLaMA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mlp {
    /// `ffn.2(relu(ffn.0(x)))`.
    #[default]
    Relu,
}

/// How positions enter the model. To come: learned (GPT-2), rotary (LLaMA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Positions {
    /// The fixed sinusoidal table `pos_enc.pe` added to the embeddings.
    #[default]
    Sinusoidal,
}

/// How attention heads use keys and values. To come: grouped-query attention (LLaMA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttentionHeads {
    /// Every head has its own queries, keys and values (MHA).
    #[default]
    MultiHead,
}

/// Which projections carry a bias. To come: none (LLaMA), or a choice per projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Biases {
    /// Q/K/V, the attention output and both FFN projections.
    #[default]
    All,
}

/// The output head. To come: a separate `lm_head` (LLaMA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Head {
    /// `logits = h · embedᵀ`, no bias.
    #[default]
    Tied,
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
            arch: Architecture::SUCCULM,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A config written before `arch` existed reads as SuccuLM's architecture, and SuccuLM's
    /// config writes exactly those bytes again; `arch` entries are read when present, and an
    /// unknown one is an error.
    #[test]
    fn architecture_is_absent_from_succulm_json() {
        let old = r#"{"vocab_size":30,"d_model":50,"max_len":29,"n_layers":4,"ffn_expansion":4,"n_attn_heads":5}"#;
        let c: ModelConfig = serde_json::from_str(old).unwrap();
        assert_eq!(c, ModelConfig::profile("upper_middle", 30).unwrap());
        assert!(c.arch.is_succulm());
        assert_eq!(serde_json::to_string(&c).unwrap(), old);
        let explicit = old.replace(
            "}",
            r#","arch":{"norm":"layer_norm","mlp":"relu","positions":"sinusoidal","attention":"multi_head","biases":"all","head":"tied"}}"#,
        );
        let c2: ModelConfig = serde_json::from_str(&explicit).unwrap();
        assert_eq!(c2, c);
        let empty: ModelConfig = serde_json::from_str(&old.replace("}", r#","arch":{}}"#)).unwrap();
        assert_eq!(empty, c);
        assert!(serde_json::from_str::<ModelConfig>(
            &old.replace("}", r#","arch":{"norm":"rms_norm"}}"#)
        )
        .is_err());
        assert!(serde_json::from_str::<ModelConfig>(
            &old.replace("}", r#","arch":{"mlp":"relu","x":1}}"#)
        )
        .is_err());
    }
}

//! The evaluation prompts (`fixtures/succulm_probes.json`) and how an answer is checked.
//!
//! The file is a JSON array of probes. Each has an `id`, a `group` — `seed_in_training` (the
//! seed's five prompts that are in the training data, with the seed's `expected_answer`),
//! `seed_out_of_training` (its nine others) or `fact` (our fact probes) — and a `prompt`.
//! A probe with a machine-checkable expectation also names the `fact` it tests (`gender`,
//! `pronoun`, `color`, `name`, `place`, ...) and gives:
//!
//! * `expect_first_word`: the first word a correct answer starts with (`"yes"`, `"he"`, `"winy"`),
//! * `contrast_first_word`: the wrong alternative (`"no"`, `"she"`, `"ruby"`), so an evaluation
//!   can also score the teacher-forced margin `log p(expect) − log p(contrast)` of the first word,
//! * optionally `expect_words`: words the answer must contain.
//!
//! ```
//! use succulm::text::probes::{Probe, ProbeGroup};
//! let p: Probe = serde_json::from_str(r#"{"id": "g1", "group": "fact", "prompt": "is ruby a boy?",
//!     "fact": "gender", "expect_first_word": "yes", "contrast_first_word": "no"}"#).unwrap();
//! assert_eq!(p.group, ProbeGroup::Fact);
//! assert_eq!(p.check("yes, he is a boy."), Some(true));
//! assert_eq!(p.check("no, ruby is a girl."), Some(false));
//! ```

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::text::vocab::{read_text, tokenize};

/// Which set a probe belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeGroup {
    /// One of the seed's five prompts that are in the training data.
    SeedInTraining,
    /// One of the seed's nine prompts that are not in the training data.
    SeedOutOfTraining,
    /// A fact probe of ours (not in the training data).
    Fact,
}

/// One evaluation prompt and what a correct answer looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// A unique, stable name (`"seed-in-1"`, `"gender-winy-boy-plant"`).
    pub id: String,
    /// Which set the probe belongs to.
    pub group: ProbeGroup,
    /// The prompt, as given to generation.
    pub prompt: String,
    /// The exact expected answer (the seed's, for its in-training prompts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_answer: Option<String>,
    /// The fact tested (`gender`, `pronoun`, `color`, `name`, `place`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fact: Option<String>,
    /// The first word of a correct answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_first_word: Option<String>,
    /// The wrong alternative first word (for a teacher-forced margin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contrast_first_word: Option<String>,
    /// Words a correct answer must contain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_words: Vec<String>,
}

impl Probe {
    /// Whether the probe has a machine-checkable expectation.
    pub fn is_checkable(&self) -> bool {
        self.expected_answer.is_some()
            || self.expect_first_word.is_some()
            || !self.expect_words.is_empty()
    }

    /// Checks an answer (text after the prompt, as generation returns it): `None` if the probe
    /// has no expectation, otherwise whether every expectation holds. Answers are compared as
    /// token sequences ([`tokenize`]), so case and spacing do not matter.
    pub fn check(&self, answer: &str) -> Option<bool> {
        if !self.is_checkable() {
            return None;
        }
        let tokens = tokenize(answer);
        let mut ok = true;
        if let Some(expected) = &self.expected_answer {
            ok &= tokens == tokenize(expected);
        }
        if let Some(first) = &self.expect_first_word {
            ok &= tokens.first() == Some(first);
        }
        ok &= self.expect_words.iter().all(|w| tokens.contains(w));
        Some(ok)
    }
}

/// Loads and validates a probe file.
///
/// Errors: unreadable file, JSON that is not an array of probes (unknown fields included), an
/// empty array, and ([`Error::InvalidFile`] naming the probe) an empty id or prompt, a repeated
/// id, a `seed_in_training` probe without `expected_answer`, a `fact` probe without `fact`,
/// `expect_first_word` and `contrast_first_word`, a first word and contrast that are equal or
/// are not single tokens.
pub fn load_probes(path: impl AsRef<Path>) -> Result<Vec<Probe>> {
    let path = path.as_ref();
    let text = read_text(path)?;
    let probes: Vec<Probe> = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    if probes.is_empty() {
        return Err(Error::invalid_file(path, "(root)", "no probes"));
    }
    let mut ids = HashSet::new();
    for (i, p) in probes.iter().enumerate() {
        let key = format!("item {i} ({:?})", p.id);
        let bad = |reason: &str| Err(Error::invalid_file(path, &key, reason));
        if p.id.is_empty() {
            return bad("empty id");
        }
        if !ids.insert(p.id.as_str()) {
            return bad("duplicate id");
        }
        if tokenize(&p.prompt).is_empty() {
            return bad("empty prompt");
        }
        if p.group == ProbeGroup::SeedInTraining && p.expected_answer.is_none() {
            return bad("a seed_in_training probe needs expected_answer");
        }
        if p.group == ProbeGroup::Fact
            && (p.fact.is_none()
                || p.expect_first_word.is_none()
                || p.contrast_first_word.is_none())
        {
            return bad("a fact probe needs fact, expect_first_word and contrast_first_word");
        }
        for w in [&p.expect_first_word, &p.contrast_first_word]
            .into_iter()
            .flatten()
        {
            if tokenize(w) != [w.clone()] {
                return bad("expect_first_word / contrast_first_word must be single tokens");
            }
        }
        if p.expect_first_word.is_some() && p.expect_first_word == p.contrast_first_word {
            return bad("expect_first_word equals contrast_first_word");
        }
    }
    Ok(probes)
}

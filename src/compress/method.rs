//! The one list of compression methods: how a weight matrix is truncated to tensor-train form.
//! The sweep, the surgery and the safetensors tool all name a method with [`Method`], and every
//! weight becomes a tensor train through one function, [`decompose`] (from `succulm-tt`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::tt::DataAware;

pub use crate::tt::{decompose, Decomposed};

/// How a weight matrix is truncated to tensor-train form.
///
/// [`Method::Weight`] (plain TT-SVD of the weights) is the baseline every comparison is made
/// against; the others are data-aware (they use activations of calibration rows).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Plain TT-SVD: minimises `‖W − Ŵ‖_F`.
    #[default]
    Weight,
    /// Whitened (data-aware) truncation: minimises the output error `‖X(W − Ŵ)ᵀ‖_F` on
    /// calibration rows `X`.
    Whitened,
    /// Activation-scaled truncation (ASVD): scales the input features by their activation
    /// magnitudes before the TT-SVD.
    Scaled,
}

impl Method {
    /// The decomposition this method runs: plain TT-SVD, the whitened output error
    /// ([`DataAware::whitened`]: bias refit, compensation in sequential mode) or ASVD's scaling
    /// with `α = 0.5` ([`DataAware::scaled`]).
    pub fn config(self) -> DataAware {
        match self {
            Method::Weight => DataAware::weight(),
            Method::Whitened => DataAware::whitened(),
            Method::Scaled => DataAware::scaled(0.5),
        }
    }

    /// Every method, in a fixed order.
    pub const ALL: [Method; 3] = [Method::Weight, Method::Whitened, Method::Scaled];

    /// The snake_case key (`"weight"`, `"whitened"`, `"scaled"`): flags, CSV, file names.
    pub fn key(self) -> &'static str {
        match self {
            Method::Weight => "weight",
            Method::Whitened => "whitened",
            Method::Scaled => "scaled",
        }
    }

    /// A human title.
    pub fn title(self) -> &'static str {
        match self {
            Method::Weight => "plain TT-SVD",
            Method::Whitened => "whitened (data-aware)",
            Method::Scaled => "activation-scaled (ASVD)",
        }
    }

    /// Whether the method uses calibration data (every method but [`Method::Weight`]).
    pub fn is_data_aware(self) -> bool {
        self != Method::Weight
    }

    /// Parses one method key (surrounding spaces and case ignored).
    pub fn parse(name: &str) -> Result<Method> {
        let n = name.trim().to_ascii_lowercase();
        Method::ALL
            .into_iter()
            .find(|m| m.key() == n)
            .ok_or_else(|| {
                Error::invalid_arg(
                    "methods",
                    format!("unknown method {name:?} (known: weight, whitened, scaled)"),
                )
            })
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// Parses a comma-separated list of methods (`"weight,whitened"`), in the order given. Errors on
/// an empty list or item, an unknown name, a method named twice.
pub fn parse_methods(spec: &str) -> Result<Vec<Method>> {
    if spec.trim().is_empty() {
        return Err(Error::invalid_arg("methods", "no method given"));
    }
    let methods = spec
        .split(',')
        .map(|item| {
            if item.trim().is_empty() {
                Err(Error::invalid_arg(
                    "methods",
                    format!("empty item in {spec:?}"),
                ))
            } else {
                Method::parse(item)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    validate_methods(&methods)?;
    Ok(methods)
}

pub(crate) fn validate_methods(methods: &[Method]) -> Result<()> {
    if methods.is_empty() {
        return Err(Error::invalid_arg("methods", "no method given"));
    }
    for (i, m) in methods.iter().enumerate() {
        if methods[..i].contains(m) {
            return Err(Error::invalid_arg(
                "methods",
                format!("method {m} named twice"),
            ));
        }
    }
    Ok(())
}

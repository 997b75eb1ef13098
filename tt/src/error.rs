//! The crate's one error type. Every variant says *where*: which file, which key, which shape.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when succulm is handed user data (files, prompts, modes, bond
/// dimensions, configurations). Public functions return these instead of panicking.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read, written or renamed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file is not valid JSON, or its JSON does not have the expected structure.
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The underlying parse error (it carries line and column).
        #[source]
        source: serde_json::Error,
    },

    /// A file parsed, but one of its entries is wrong (missing, duplicated, of the wrong shape,
    /// non-finite, ...).
    #[error("{}: {key}: {reason}", path.display())]
    InvalidFile {
        /// The file involved.
        path: PathBuf,
        /// The key or item at fault (e.g. `"state_dict.blocks.0.ln1.weight"` or `"item 12"`).
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An array has the wrong shape for the operation.
    #[error("shape mismatch in {context}: expected {expected}, got {got}")]
    Shape {
        /// The operation or parameter (e.g. `"Linear::forward input"`).
        context: String,
        /// The expected shape, in words or as `[a, b]`.
        expected: String,
        /// The shape actually given.
        got: String,
    },

    /// A token id is not in the vocabulary.
    #[error("token id {id} at {context} is out of range for a vocabulary of {vocab_size}")]
    TokenOutOfRange {
        /// The offending id.
        id: u32,
        /// Where it was found (e.g. `"ids[0, 3]"`).
        context: String,
        /// The vocabulary size.
        vocab_size: usize,
    },

    /// A sequence is longer than the model's `max_len`.
    #[error("{context}: sequence of length {len} exceeds max_len {max_len}")]
    SequenceTooLong {
        /// Where (e.g. `"Model::forward"`, `"prompt"`).
        context: String,
        /// The length given.
        len: usize,
        /// The model's limit.
        max_len: usize,
    },

    /// An argument is out of its domain (a bond dimension of 0, modes whose product does not
    /// match, a temperature <= 0, an empty batch, an unknown profile name, ...).
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },

    /// A LAPACK routine failed (e.g. an SVD that did not converge).
    #[error("linear algebra failure in {context}: {reason}")]
    Linalg {
        /// The operation.
        context: String,
        /// LAPACK's message.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid_arg(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Shape`], formatting both shapes with `{:?}`.
    pub fn shape(context: impl Into<String>, expected: &[usize], got: &[usize]) -> Self {
        Error::Shape {
            context: context.into(),
            expected: format!("{expected:?}"),
            got: format!("{got:?}"),
        }
    }

    /// `Ok` if `got` is `expected`, else the [`Error::Shape`] of [`shape`](Self::shape).
    #[doc(hidden)]
    pub fn check_shape(context: &str, expected: &[usize], got: &[usize]) -> Result<()> {
        if got == expected {
            Ok(())
        } else {
            Err(Error::shape(context, expected, got))
        }
    }

    /// `Ok` if the matrix of shape `got` (`[rows, cols]`) has `cols` columns, else the
    /// [`Error::Shape`] expecting `[rows, cols]`.
    #[doc(hidden)]
    pub fn check_width(context: impl Into<String>, cols: usize, got: &[usize]) -> Result<()> {
        match got {
            [_, c] if *c == cols => Ok(()),
            _ => Err(Error::shape(
                context,
                &[got.first().copied().unwrap_or(0), cols],
                got,
            )),
        }
    }

    /// `Ok` when two counts agree (`got == want`), else the [`Error::InvalidArgument`] on `name`
    /// whose reason `reason(got, want)` words.
    ///
    /// ```
    /// use succulm_tt::Error;
    /// assert!(Error::check_count("cores", 3, 3, |g, w| format!("{g} cores, {w} needed")).is_ok());
    /// let e = Error::check_count("cores", 2, 3, |g, w| format!("{g} cores, {w} needed"));
    /// assert_eq!(e.unwrap_err().to_string(), "invalid argument `cores`: 2 cores, 3 needed");
    /// ```
    pub fn check_count(
        name: &str,
        got: usize,
        want: usize,
        reason: impl FnOnce(usize, usize) -> String,
    ) -> Result<()> {
        if got == want {
            Ok(())
        } else {
            Err(Error::invalid_arg(name, reason(got, want)))
        }
    }

    /// `Ok` when `1 <= n <= max`, else the [`Error::InvalidArgument`] on `name` saying which
    /// bound `n` breaks: the check of a count against its documented ceiling, made before
    /// anything of that count is allocated.
    ///
    /// ```
    /// use succulm_tt::Error;
    /// assert!(Error::check_count_in("samples", 20, 100).is_ok());
    /// let e = Error::check_count_in("samples", 1000, 100).unwrap_err();
    /// assert_eq!(e.to_string(), "invalid argument `samples`: 1000 is more than the ceiling of 100");
    /// assert!(Error::check_count_in("samples", 0, 100).is_err());
    /// ```
    pub fn check_count_in(name: &str, n: usize, max: usize) -> Result<()> {
        if n == 0 {
            Err(Error::invalid_arg(name, "must be at least 1"))
        } else if n > max {
            Err(Error::invalid_arg(
                name,
                format!("{n} is more than the ceiling of {max}"),
            ))
        } else {
            Ok(())
        }
    }

    /// Shorthand for [`Error::InvalidFile`].
    pub fn invalid_file(
        path: impl Into<PathBuf>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidFile {
            path: path.into(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

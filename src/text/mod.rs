//! Text: the seed's tokenizer and vocabulary ([`vocab`]), the pair corpus and its seeded split
//! ([`data`]), the evaluation prompts ([`probes`]) and the shipped word embeddings
//! ([`embeddings`]). Imports only the numeric base below it.

pub mod data;
pub mod embeddings;
pub mod probes;
pub mod vocab;

/// How many characters of a value [`shown`] keeps.
pub const SHOWN_CHARS: usize = 60;

/// `value` as an error message shows it: quoted, at most [`SHOWN_CHARS`] characters (then `…`
/// and the total length), control characters and quotes escaped (`\n`, `\u{1b}`, ...).
///
/// ```
/// assert_eq!(succulm::text::shown("a\nb"), r#""a\nb""#);
/// assert!(succulm::text::shown(&"x".repeat(10_000)).len() < 100);
/// ```
pub fn shown(value: &str) -> String {
    let n = value.chars().count();
    let head: String = value.chars().take(SHOWN_CHARS).collect();
    let mut s = format!("{head:?}");
    if n > SHOWN_CHARS {
        s.push_str(&format!("… ({n} characters)"));
    }
    s
}

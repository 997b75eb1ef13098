//! Text: the seed's tokenizer and vocabulary ([`vocab`]), the pair corpus and its seeded split
//! ([`data`]), the evaluation prompts ([`probes`]) and the shipped word embeddings
//! ([`embeddings`]). Imports only the numeric base below it.

pub mod data;
pub mod embeddings;
pub mod probes;
pub mod vocab;

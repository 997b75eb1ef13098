//! Hand-built toy language models for the generation and evaluation tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

/// A thread-safe counter that clones its current value.
#[derive(Default, Debug)]
pub struct Counter(pub AtomicUsize);

impl Clone for Counter {
    fn clone(&self) -> Self {
        Counter(AtomicUsize::new(self.0.load(Ordering::Relaxed)))
    }
}

impl Counter {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

use ndarray::{Array1, Array2, Array3, ArrayView2};
use succulm::nn::generate::LanguageModel;
use succulm::{Error, Result, Vocab};

/// The toy vocabulary: specials, then a few words of the SuccuLM world.
pub const WORDS: [&str; 17] = [
    "<PAD>", "<BOS>", "<EOS>", "<UNK>", ",", ".", "?", "a", "boy", "girl", "he", "is", "no",
    "ruby", "sophia", "winy", "yes",
];

pub fn vocab() -> Vocab {
    Vocab::from_words(WORDS.iter().map(|s| s.to_string()).collect()).unwrap()
}

pub fn id(word: &str) -> u32 {
    WORDS.iter().position(|w| *w == word).unwrap() as u32
}

pub const V: usize = WORDS.len();

/// Logits at position t depend only on the token at t: `table[ids[t]]`.
#[derive(Clone)]
pub struct Bigram {
    pub table: Array2<f32>,
    pub max_len: usize,
    /// Positions computed through `extend` (the cached path).
    pub extended: Counter,
}

impl Bigram {
    pub fn new(table: Array2<f32>, max_len: usize) -> Self {
        Bigram {
            table,
            max_len,
            extended: Counter::default(),
        }
    }
    /// Every row the same logits.
    pub fn constant(row: &[f32], max_len: usize) -> Self {
        let mut t = Array2::zeros((row.len(), row.len()));
        for mut r in t.rows_mut() {
            r.assign(&ndarray::ArrayView1::from(row));
        }
        Self::new(t, max_len)
    }
    /// A pseudo-random table from a seed (xorshift; no dependency on rand's stream).
    pub fn random(v: usize, max_len: usize, seed: u64, scale: f32) -> Self {
        Self::new(random_matrix(v, v, seed, scale), max_len)
    }
}

pub fn random_matrix(r: usize, c: usize, seed: u64, scale: f32) -> Array2<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Array2::from_shape_fn((r, c), |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * scale
    })
}

/// `t` positions fit in `max_len`, or the model named `context` refuses them.
fn check_len(context: &str, t: usize, max_len: usize) -> Result<()> {
    if t > max_len {
        return Err(Error::SequenceTooLong {
            context: context.into(),
            len: t,
            max_len,
        });
    }
    Ok(())
}

fn check(ids: &[u32], v: usize) -> Result<()> {
    for &i in ids {
        if i as usize >= v {
            return Err(Error::TokenOutOfRange {
                id: i,
                context: "toy".into(),
                vocab_size: v,
            });
        }
    }
    Ok(())
}

impl LanguageModel for Bigram {
    type Cache = usize;
    fn vocab_size(&self) -> usize {
        self.table.nrows()
    }
    fn max_len(&self) -> usize {
        self.max_len
    }
    fn new_cache(&self) -> usize {
        0
    }
    fn extend(&self, len: &mut usize, ids: &[u32]) -> Result<Array2<f32>> {
        check(ids, self.vocab_size())?;
        check_len("Bigram", *len + ids.len(), self.max_len)?;
        *len += ids.len();
        self.extended.0.fetch_add(ids.len(), Ordering::Relaxed);
        let mut out = Array2::zeros((ids.len(), self.vocab_size()));
        for (r, &i) in ids.iter().enumerate() {
            out.row_mut(r).assign(&self.table.row(i as usize));
        }
        Ok(out)
    }
    fn logits(&self, ids: ArrayView2<u32>) -> Result<Array3<f32>> {
        let (b, t) = ids.dim();
        check_len("Bigram", t, self.max_len)?;
        let v = self.vocab_size();
        let mut out = Array3::zeros((b, t, v));
        for ((r, p), &i) in ids.indexed_iter() {
            check(&[i], v)?;
            out.slice_mut(ndarray::s![r, p, ..])
                .assign(&self.table.row(i as usize));
        }
        Ok(out)
    }
}

/// Logits depend on the whole prefix: `table[ids[t]] + 0.5·mean_{s≤t} mix[ids[s]] + 0.1·t·pos`.
/// Its cache keeps the running sum, so the cached path really is incremental.
pub struct Prefix {
    pub table: Array2<f32>,
    pub mix: Array2<f32>,
    pub pos: Array1<f32>,
    pub max_len: usize,
}

#[derive(Clone)]
pub struct PrefixCache {
    len: usize,
    sum: Array1<f32>,
}

impl Prefix {
    pub fn random(v: usize, max_len: usize, seed: u64) -> Self {
        Prefix {
            table: random_matrix(v, v, seed, 3.0),
            mix: random_matrix(v, v, seed + 1, 3.0),
            pos: random_matrix(1, v, seed + 2, 1.0).row(0).to_owned(),
            max_len,
        }
    }
    fn row(&self, id: u32, t: usize, sum: &Array1<f32>) -> Array1<f32> {
        &self.table.row(id as usize)
            + &(sum * (0.5 / (t + 1) as f32))
            + &(&self.pos * (0.1 * t as f32))
    }
}

impl LanguageModel for Prefix {
    type Cache = PrefixCache;
    fn vocab_size(&self) -> usize {
        self.table.nrows()
    }
    fn max_len(&self) -> usize {
        self.max_len
    }
    fn new_cache(&self) -> PrefixCache {
        PrefixCache {
            len: 0,
            sum: Array1::zeros(self.vocab_size()),
        }
    }
    fn extend(&self, c: &mut PrefixCache, ids: &[u32]) -> Result<Array2<f32>> {
        check(ids, self.vocab_size())?;
        check_len("Prefix", c.len + ids.len(), self.max_len)?;
        let mut out = Array2::zeros((ids.len(), self.vocab_size()));
        for (r, &i) in ids.iter().enumerate() {
            c.sum += &self.mix.row(i as usize);
            out.row_mut(r).assign(&self.row(i, c.len, &c.sum));
            c.len += 1;
        }
        Ok(out)
    }
    fn logits(&self, ids: ArrayView2<u32>) -> Result<Array3<f32>> {
        let (b, t) = ids.dim();
        check_len("Prefix", t, self.max_len)?;
        let v = self.vocab_size();
        let mut out = Array3::zeros((b, t, v));
        for r in 0..b {
            // Recomputed from scratch for every position (no running state shared).
            for p in 0..t {
                let mut sum = Array1::zeros(v);
                for s in 0..=p {
                    check(&[ids[[r, s]]], v)?;
                    sum += &self.mix.row(ids[[r, s]] as usize);
                }
                out.slice_mut(ndarray::s![r, p, ..])
                    .assign(&self.row(ids[[r, p]], p, &sum));
            }
        }
        Ok(out)
    }
}

/// Rows of ids (each from BOS to EOS) as inputs and shifted targets, PAD-padded to `t`.
pub fn shifted(rows: &[Vec<u32>], t: usize) -> (Array2<u32>, Array2<u32>) {
    let pad = succulm::text::vocab::PAD;
    let mut x = Array2::from_elem((rows.len(), t), pad);
    let mut y = Array2::from_elem((rows.len(), t), pad);
    for (r, s) in rows.iter().enumerate() {
        for j in 0..s.len() - 1 {
            x[[r, j]] = s[j];
            y[[r, j]] = s[j + 1];
        }
    }
    (x, y)
}

/// Rows of words (with their `<BOS>`/`<EOS>`) through [`shifted`].
pub fn shifted_words(rows: &[&[&str]], t: usize) -> (Array2<u32>, Array2<u32>) {
    let ids: Vec<Vec<u32>> = rows
        .iter()
        .map(|w| w.iter().map(|s| id(s)).collect())
        .collect();
    shifted(&ids, t)
}

/// A bigram fitted by hand to the rows: -4 everywhere, +3 per observed (non-PAD) transition.
pub fn fitted(x: &Array2<u32>, y: &Array2<u32>) -> Bigram {
    let mut t = Array2::from_elem((V, V), -4.0f32);
    for (a, b) in x.iter().zip(y.iter()) {
        if *b != succulm::text::vocab::PAD {
            t[[*a as usize, *b as usize]] += 3.0;
        }
    }
    Bigram::new(t, 16)
}

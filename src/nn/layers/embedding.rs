//! Token embedding lookup, tied with the output head (`logits = h · weightᵀ`).

use std::mem::MaybeUninit;

use ndarray::{Array2, ArrayView2};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};
use crate::nn::kernels::dispatch;
use crate::nn::layers::linear::{affine, linear_backward};
use crate::nn::layers::{check_width, children, Layer};
use crate::tt::gemm::PackedT;

/// The embedding table `weight: [V, d]` (PyTorch's `nn.Embedding`). The same matrix is the
/// output head: `logits = h · weightᵀ`, no bias.
#[derive(Debug, Clone)]
pub struct Embedding {
    pub(crate) weight: Array2<f32>,
    /// `weightᵀ`, `[d, V]`, for the head; rebuilt after any mutation.
    wt: PackedT,
}

impl PartialEq for Embedding {
    /// Equal tables (the cached transpose is derived from them).
    fn eq(&self, other: &Self) -> bool {
        self.weight == other.weight
    }
}

impl Embedding {
    /// PyTorch's default initialisation, `N(0, 1)`, `[vocab_size, d]`.
    pub fn init<R: Rng + ?Sized>(vocab_size: usize, d: usize, rng: &mut R) -> Self {
        let weight =
            Array2::from_shape_simple_fn((vocab_size, d), || StandardNormal.sample(&mut *rng));
        Embedding {
            weight,
            wt: PackedT::default(),
        }
    }

    /// From given vectors `[V, d]` (as `nn.Embedding.from_pretrained(.., freeze=False)`).
    /// Errors on an empty table or a non-finite value.
    pub fn from_weight(weight: Array2<f32>) -> Result<Self> {
        if weight.is_empty() {
            return Err(Error::invalid_arg("embedding weight", "is empty"));
        }
        if weight.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid_arg(
                "embedding weight",
                "contains a non-finite value",
            ));
        }
        Ok(Embedding {
            weight,
            wt: PackedT::default(),
        })
    }

    /// The table, `[V, d]`.
    pub fn weight(&self) -> ArrayView2<'_, f32> {
        self.weight.view()
    }

    /// Vocabulary size `V`.
    pub fn vocab_size(&self) -> usize {
        self.weight.nrows()
    }

    /// Embedding width `d`.
    pub fn dim(&self) -> usize {
        self.weight.ncols()
    }

    /// Lookup: `ids: [rows] -> [rows, d]`. Errors on an id `>= V`.
    pub fn forward(&self, ids: &[u32]) -> Result<Array2<f32>> {
        self.check_input(&ids, "Embedding::forward")?;
        Ok(self.lookup(ids))
    }

    /// Lookup without the range check (ids must be `< V`). `[rows] -> [rows, d]`.
    pub(crate) fn lookup(&self, ids: &[u32]) -> Array2<f32> {
        self.gather(ids, None)
    }

    /// Lookup plus positions, checked (a hook for the benches): row `r` of the result is
    /// `weight[ids[r]] + pe[r % seq]`, `[rows, d]`. Errors on an id `>= V`, `pe` not `[_, d]`
    /// or `seq` not in `1..=pe.nrows()`.
    #[doc(hidden)]
    pub fn forward_positions(
        &self,
        ids: &[u32],
        pe: ArrayView2<'_, f32>,
        seq: usize,
    ) -> Result<Array2<f32>> {
        if pe.ncols() != self.dim() {
            return Err(Error::shape(
                "positional table",
                &[pe.nrows(), self.dim()],
                pe.shape(),
            ));
        }
        if seq == 0 || seq > pe.nrows() {
            return Err(Error::invalid_arg(
                "seq",
                format!("{seq} is not in 1..={}", pe.nrows()),
            ));
        }
        self.check_input(&ids, "Embedding::forward_positions")?;
        Ok(self.lookup_positions(ids, pe, 0, seq))
    }

    /// `x[r] = weight[ids[r]] + pe[(start + r) % period]` (ids `< V`, `pe: [≥ period, d]`, not
    /// checked), `[rows, d]`: the lookup and the positional encoding in one pass.
    pub(crate) fn lookup_positions(
        &self,
        ids: &[u32],
        pe: ArrayView2<'_, f32>,
        start: usize,
        period: usize,
    ) -> Array2<f32> {
        let pe = pe.as_standard_layout();
        let pe = pe.as_slice().expect("standard layout");
        self.gather(ids, Some((pe, start, period)))
    }

    /// Rows `ids` of the table, plus `pe` rows `(start + r) % period` if given, `[rows, d]`.
    fn gather(&self, ids: &[u32], pe: Option<(&[f32], usize, usize)>) -> Array2<f32> {
        let d = self.dim();
        let w = self.weight.as_standard_layout();
        let w = w.as_slice().expect("standard layout");
        let n = ids.len() * d;
        let mut out = Vec::with_capacity(n);
        if d > 0 {
            let o = &mut out.spare_capacity_mut()[..n];
            dispatch!(gather_rows, (o, w, d, ids, pe));
        }
        // SAFETY: `gather_rows` wrote all `rows · d` values (there are none if `d = 0`).
        unsafe { out.set_len(n) };
        Array2::from_shape_vec((ids.len(), d), out).expect("rows · d values")
    }

    /// The tied output head: `h: [rows, d] -> logits [rows, V]` (`h · weightᵀ`). Errors if `h`
    /// is not `d` wide.
    pub fn head(&self, h: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        check_width(h, self.dim(), "Embedding::head")?;
        Ok(self.logits(h))
    }

    /// [`head`](Self::head) without the check.
    pub(crate) fn logits(&self, h: ArrayView2<'_, f32>) -> Array2<f32> {
        affine(h, self.weight.view(), &self.wt, None, false)
    }

    /// Backward of [`head`](Self::head): adds `dlogitsᵀ · h` into `grads`, returns
    /// `dh = dlogits · weight`, `[rows, d]`. Errors unless `h: [rows, d]`,
    /// `dlogits: [rows, V]` and `grads` is `[V, d]`.
    pub fn backward_head(
        &self,
        h: ArrayView2<'_, f32>,
        dlogits: ArrayView2<'_, f32>,
        grads: &mut Embedding,
    ) -> Result<Array2<f32>> {
        check_width(h, self.dim(), "Embedding::backward_head")?;
        let want = [h.nrows(), self.vocab_size()];
        Error::check_shape("Embedding::backward_head dlogits", &want, dlogits.shape())?;
        self.check_grads(grads, "Embedding::backward_head grads")?;
        Ok(self.head_backward(h, dlogits, grads))
    }

    /// [`backward_head`](Self::backward_head) without the checks.
    pub(crate) fn head_backward(
        &self,
        h: ArrayView2<'_, f32>,
        dlogits: ArrayView2<'_, f32>,
        grads: &mut Embedding,
    ) -> Array2<f32> {
        grads.wt.invalidate();
        linear_backward(
            h,
            dlogits,
            self.weight.view(),
            &mut grads.weight,
            None,
            None,
        )
    }
}

/// Writes every value of `out: [ids.len(), d]`: row `r` is `w[ids[r]] (+ pe[(start + r) % period])`
/// for the row-major `w: [V, d]`, `pe: [≥ period, d]` (`d > 0`).
#[inline(always)]
fn gather_rows(
    out: &mut [MaybeUninit<f32>],
    w: &[f32],
    d: usize,
    ids: &[u32],
    pe: Option<(&[f32], usize, usize)>,
) {
    let rows = out.chunks_exact_mut(d).zip(ids);
    match pe {
        None => {
            for (o, &id) in rows {
                let e = &w[id as usize * d..][..d];
                for (o, &a) in o.iter_mut().zip(e) {
                    o.write(a);
                }
            }
        }
        Some((pe, start, period)) => {
            let mut pos = if ids.is_empty() { 0 } else { start % period };
            for (o, &id) in rows {
                let e = &w[id as usize * d..][..d];
                let p = &pe[pos * d..][..d];
                for ((o, &a), &b) in o.iter_mut().zip(e).zip(p) {
                    o.write(a + b);
                }
                pos += 1;
                if pos == period {
                    pos = 0;
                }
            }
        }
    }
}

/// The lookup `ids: [rows] -> [rows, d]`; backward adds row `r` of `dy: [rows, d]` into row
/// `ids[r]` of the gradient table (the ids have no gradient).
impl Layer for Embedding {
    const NAME: &'static str = "Embedding";
    type Input<'a> = &'a [u32];
    type Cache = Vec<u32>;
    type Dx = ();

    fn zeros_like(&self) -> Self {
        Embedding {
            weight: Array2::zeros(self.weight.raw_dim()),
            wt: PackedT::default(),
        }
    }

    /// Errors on the first id `>= V` (`context` aside: the error names `ids[i]`).
    fn check_input(&self, ids: &&[u32], _context: &str) -> Result<()> {
        match ids
            .iter()
            .enumerate()
            .find(|(_, &id)| id as usize >= self.vocab_size())
        {
            Some((i, &id)) => Err(Error::TokenOutOfRange {
                id,
                context: format!("ids[{i}]"),
                vocab_size: self.vocab_size(),
            }),
            None => Ok(()),
        }
    }

    fn check_cache(&self, ids: &Vec<u32>, context: &str) -> Result<()> {
        self.check_input(&ids.as_slice(), context)
    }

    fn output_shape(&self, ids: &Vec<u32>) -> [usize; 2] {
        [ids.len(), self.dim()]
    }

    fn forward_unchecked(&self, ids: &[u32]) -> (Array2<f32>, Vec<u32>) {
        (self.lookup(ids), ids.to_vec())
    }

    fn backward_unchecked(&self, ids: &Vec<u32>, dy: ArrayView2<'_, f32>, grads: &mut Embedding) {
        grads.wt.invalidate();
        let d = self.dim();
        let dy = dy.as_standard_layout();
        let dys = dy.as_slice().expect("standard layout");
        if let Some(g) = grads.weight.as_slice_mut() {
            for (row, &id) in dys.chunks_exact(d.max(1)).zip(ids) {
                for (a, &b) in g[id as usize * d..][..d].iter_mut().zip(row) {
                    *a += b;
                }
            }
        } else {
            for (row, &id) in dy.rows().into_iter().zip(ids) {
                let mut g = grads.weight.row_mut(id as usize);
                g += &row;
            }
        }
    }
}

children!(Embedding { weight: "weight" } before_mut: |s| s.wt.invalidate());

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::positional_table;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn lookup_with_positions_adds_the_table_rows() {
        let mut rng = StdRng::seed_from_u64(1);
        let e = Embedding::init(11, 6, &mut rng);
        let pe = positional_table(5, 6);
        let ids = [3u32, 0, 10, 3, 7, 7, 1];
        let x = e.forward_positions(&ids, pe.view(), 3).unwrap();
        for (r, &id) in ids.iter().enumerate() {
            for k in 0..6 {
                assert_eq!(x[[r, k]], e.weight[[id as usize, k]] + pe[[r % 3, k]]);
            }
        }
        // An offset without wrap-around (the KV-cache path).
        let y = e.lookup_positions(&ids[..2], pe.view(), 3, 5);
        assert_eq!(y.row(1).to_vec(), (&e.weight.row(0) + &pe.row(4)).to_vec());
        assert_eq!(e.lookup(&ids).row(2), e.weight.row(10));
        // A column-major table gives the same rows.
        let ft = Embedding::from_weight(
            e.weight
                .t()
                .as_standard_layout()
                .into_owned()
                .reversed_axes(),
        )
        .unwrap();
        assert!(!ft.weight.is_standard_layout());
        assert_eq!(ft.lookup_positions(&ids, pe.view(), 0, 3), x);
        assert!(e.forward_positions(&[11], pe.view(), 3).is_err());
        assert!(e.forward_positions(&ids, pe.view(), 6).is_err());
        assert!(e.forward_positions(&ids, pe.view(), 0).is_err());
        assert!(e
            .forward_positions(&ids, positional_table(5, 4).view(), 3)
            .is_err());
    }

    #[test]
    fn backward_lookup_scatter_adds_rows() {
        let mut rng = StdRng::seed_from_u64(2);
        let e = Embedding::init(5, 3, &mut rng);
        let ids = [4u32, 1, 4, 0];
        let dy = Array2::from_shape_fn((4, 3), |(r, k)| (r * 3 + k) as f32 + 0.5);
        let mut g = e.zeros_like();
        g.weight[[2, 1]] = 7.0;
        e.backward(&ids.to_vec(), dy.view(), &mut g).unwrap();
        let mut want = Array2::<f32>::zeros((5, 3));
        want[[2, 1]] = 7.0;
        for (r, &id) in ids.iter().enumerate() {
            for k in 0..3 {
                want[[id as usize, k]] += dy[[r, k]];
            }
        }
        assert_eq!(g.weight, want);
        // The same through a column-major dy and a column-major gradient table.
        let dyt = dy.t().as_standard_layout().into_owned();
        let mut gt = Embedding {
            weight: Array2::zeros((3, 5)).reversed_axes(),
            wt: PackedT::default(),
        };
        gt.weight[[2, 1]] = 7.0;
        assert!(!dyt.t().is_standard_layout());
        e.backward(&ids.to_vec(), dyt.t(), &mut gt).unwrap();
        assert_eq!(gt.weight, want);
        // Bad input: errors, and nothing is added.
        let before = g.weight.clone();
        assert!(e
            .backward(&vec![5], dy.slice(ndarray::s![..1, ..]), &mut g)
            .is_err());
        assert!(e
            .backward(&ids.to_vec(), dy.slice(ndarray::s![..3, ..]), &mut g)
            .is_err());
        let mut small = Embedding::init(4, 3, &mut rng);
        assert!(e.backward(&ids.to_vec(), dy.view(), &mut small).is_err());
        assert_eq!(g.weight, before);
        assert!(e.head(dy.slice(ndarray::s![.., ..2])).is_err());
        let h = dy.view();
        let dlogits = Array2::<f32>::ones((4, 5));
        assert!(e
            .backward_head(h, dlogits.slice(ndarray::s![.., ..4]), &mut g)
            .is_err());
        assert!(e.backward_head(h, dlogits.view(), &mut small).is_err());
        assert_eq!(e.head(h).unwrap().dim(), (4, 5));
    }
}

//! Token embedding lookup, tied with the output head (`logits = h · weightᵀ`).

use ndarray::{Array2, ArrayView2};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use ndarray::ArrayViewD;

use crate::error::{Error, Result};
use crate::gemm::PackedT;
use crate::layers::linear::{affine, linear_backward};
use crate::layers::{visit_via_tensors, NamedTensors};
use crate::params::{join, Parameters};

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

    /// Zeros of the same shape (to hold gradients).
    pub fn zeros_like(&self) -> Self {
        Embedding {
            weight: Array2::zeros(self.weight.raw_dim()),
            wt: PackedT::default(),
        }
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
        if let Some((i, &id)) = ids
            .iter()
            .enumerate()
            .find(|(_, &id)| id as usize >= self.vocab_size())
        {
            return Err(Error::TokenOutOfRange {
                id,
                context: format!("ids[{i}]"),
                vocab_size: self.vocab_size(),
            });
        }
        Ok(self.lookup(ids))
    }

    /// Lookup without the range check (ids must be `< V`). `[rows] -> [rows, d]`.
    pub(crate) fn lookup(&self, ids: &[u32]) -> Array2<f32> {
        let mut out = Array2::zeros((ids.len(), self.dim()));
        for (mut row, &id) in out.rows_mut().into_iter().zip(ids) {
            row.assign(&self.weight.row(id as usize));
        }
        out
    }

    /// Backward of the lookup: adds row `r` of `dy: [rows, d]` into row `ids[r]` of `grads`.
    pub fn backward_lookup(&self, ids: &[u32], dy: ArrayView2<'_, f32>, grads: &mut Embedding) {
        grads.wt.invalidate();
        for (row, &id) in dy.rows().into_iter().zip(ids) {
            let mut g = grads.weight.row_mut(id as usize);
            g += &row;
        }
    }

    /// The tied output head: `h: [rows, d] -> logits [rows, V]` (`h · weightᵀ`). Not checked.
    pub fn head(&self, h: ArrayView2<'_, f32>) -> Array2<f32> {
        affine(h, self.weight.view(), &self.wt, None, false)
    }

    /// Backward of [`head`](Self::head): adds `dlogitsᵀ · h` into `grads`, returns
    /// `dh = dlogits · weight`, `[rows, d]`.
    pub fn backward_head(
        &self,
        h: ArrayView2<'_, f32>,
        dlogits: ArrayView2<'_, f32>,
        grads: &mut Embedding,
    ) -> Array2<f32> {
        grads.wt.invalidate();
        linear_backward(h, dlogits, self.weight.view(), &mut grads.weight, None)
    }
}

impl NamedTensors for Embedding {
    fn tensors<'a>(&'a self, prefix: &str, out: &mut Vec<(String, ArrayViewD<'a, f32>)>) {
        out.push((join(prefix, "weight"), self.weight.view().into_dyn()));
    }
}

impl Parameters for Embedding {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, ArrayViewD<'_, f32>)) {
        visit_via_tensors(self, prefix, f)
    }
    fn visit_mut(
        &mut self,
        prefix: &str,
        f: &mut dyn FnMut(String, ndarray::ArrayViewMutD<'_, f32>),
    ) {
        self.wt.invalidate();
        f(join(prefix, "weight"), self.weight.view_mut().into_dyn());
    }
}

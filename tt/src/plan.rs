//! The contraction engine of a TT layer: schedules, the cost model that picks among them, the
//! one-time merging of adjacent cores, and the execution (forward, and the recorded forward that
//! backward replays).
//!
//! # The chain as blocks
//!
//! Both layouts are one chain of *blocks* `B_k : [a_k, p_k, q_k, a_{k+1}]` (`a_0 = a_L = 1`),
//! where `p_k` is the block's share of the output modes and `q_k` its share of the input modes:
//! the seed layout's output cores are `[r, o, 1, r']`, its input cores `[r, 1, i, r']`, and a
//! TT-matrix core is `[r, o, i, r']`. The weight is `W[(p_0…p_{L−1}), (q_0…q_{L−1})] = Π_k B_k`.
//! Merging adjacent blocks gives a block of the same form, so "merge some neighbours once, then
//! sweep" is one mechanism, and merging everything is the dense `[1, out, in, 1]` matrix.
//!
//! # The sweep
//!
//! The input `x: [rows, q_0, …, q_{L−1}]` is contracted with the blocks from the right end of the
//! chain to the left (for the seed layout: the input cores first, then the output cores). The
//! state is a row-major tensor with labelled axes (size-1 axes are dropped). Block `k` contracts
//! the axes `(q_k, a_{k+1})` and produces `(a_k, p_k)`, as **one GEMM** over a reshape of the
//! whole state:
//! - if the contracted axes are the trailing axes, `state[R, K] · G[M, K]ᵀ → [R, M]` (new axes at
//!   the end);
//! - else if they are the leading axes, `G[M, K] · state[K, R] → [M, R]` (new axes in front);
//! - else the state is first permuted (one copy) so that they trail.
//!
//! With the seed layout the input side always trails and the output side always leads, so a
//! plan without merges is `d` GEMMs and one final transpose to `[rows, out]`, with no per-row
//! loop and no other copy.
//!
//! # Choosing the plan
//!
//! A plan is a partition of the chain into contiguous groups, each merged once into one block
//! (merging runs right to left, one GEMM per core, plus a copy only where a core with input
//! modes meets a block with output modes). For a given number of rows every partition (all
//! `2^{L−1}` of them for chains of up to 13 cores; beyond that no merges, each side merged,
//! and the dense matrix) is scheduled symbolically and costed by a simple model of this
//! machine's single-threaded OpenBLAS: per GEMM `2mnk·t_flop + (mk + kn + mn)·t_mem + t_call`,
//! per permutation `elements·t_copy`. The cheapest wins; it is cached per row count. The dense
//! matrix is one of the candidates, so the forward is never much slower than the dense product.
//!
//! **Inference** (`forward`) counts merges as free: merged blocks are built lazily on first use
//! and cached until the parameters are mutated (see `TTLayer`'s `visit_mut`), so they always
//! match the cores.
//!
//! **Training** (`forward_train` + `backward`) uses the same mechanism and the same candidates,
//! costed for a whole step: the forward; the backward, two GEMMs per forward GEMM
//! (`dG = doutᵀ·state`, `dstate = dout·G`) plus the inverse permutations; and, per merged
//! group, merging it again (every optimiser step mutates the cores, dropping the merged
//! blocks) and passing the merged block's gradient back to the cores ([`distribute`]: for
//! `G = A ⋈ B`, `dA = dG·Bᵀ` and `dB = Aᵀ·dG` as GEMMs over the same reshapes as the merge,
//! down the group, using the right-to-left partial merges kept from the forward). That is
//! about three merges' worth, so training merges less than inference at few rows and as much
//! at many rows (at 928 rows the seed shapes train through the dense matrix at `m = 50` and
//! one block per side at `m = 20`; 768→3072 at 128 rows through one block per side; one row
//! mostly unmerged).
//!
//! # What was measured
//!
//! `tests/tt.rs`'s ignored `plan_timings` prints, for every benched shape, every candidate's
//! modelled and measured time (forward, and a training step including the re-merge), one BLAS
//! thread. On the shared 2-core development machine (AMD EPYC, AVX2; loaded by other work, so
//! absolute times are inflated up to ~2× and ratios within a run are what count), in two runs
//! the chosen forward plan was the fastest measured or within 1.1× of it for every benched
//! case (50↔200 with `m` ∈ {50, 20} at 1, 29, 928 rows; 768→3072 with bonds 8, 16, 32 at 1
//! and 128 rows). The chosen training plan was within 1.15× of the fastest everywhere but
//! one case: 50→200 at `m = 50`, 29 rows, where the model prefers no merges and merging the
//! input side is 1.3–1.5× faster (the two are 2% apart in the model). Notable choices:
//! - 50↔200 (seed shapes): the dense matrix at `m = 50` (the TT has more parameters than the
//!   dense layer, so it can never win), one block per side for smaller `m`;
//! - 768→3072, bonds 16, 128 rows: one block per side, `x[128, 768]·G_in[16, 768]ᵀ` (3.1
//!   MFLOP) then `z[128, 16]·G_out[3072, 16]ᵀ` (12.6 MFLOP). Every plan of the seed layout
//!   ends with a GEMM whose inner dimension is the bond at the last group boundary (16), unless
//!   it merges everything into the dense matrix (604 MFLOP); the alternatives that keep the
//!   output cores separate cost more FLOPs (≥ 16.8 MFLOP) and a final transpose (measured 4×
//!   slower); splitting the input side changes little (16.3 MFLOP, measured 1.03×). That last GEMM
//!   writes the `[128, 3072]` output and runs at about 55 GFLOP/s on one core, near what
//!   OpenBLAS achieves for inner dimension 16: the output is written once, already in
//!   `[rows, out]` order, onto the tiled bias (`beta = 1`, so OpenBLAS skips its separate
//!   C-scaling pass). Row-chunking the final GEMM or computing `yᵀ` instead were measured
//!   and were no faster. (Those figures were OpenBLAS's; the products now go through the
//!   `gemm` crate, which runs faster with a row-major right operand, so inference keeps each
//!   block also as `Gᵀ` row-major and uses it where [`use_transposed`] says.)
//! - one row: small groups (e.g. `[(0, 2), (2, 3), (3, 4), (4, 6)]` at 768→3072), where every
//!   step is a matrix-vector product over a small block.
//!
//! Copies are cheap where they remain: permutations that reduce to a (batched) 2-D transpose
//! after fusing adjacent axes, which is every permutation the seed layout needs, use a tiled
//! transpose instead of a generic strided copy.

use std::borrow::Cow;

use ndarray::{ArrayView2, ArrayViewD, ArrayViewMut2, IxDyn};

use crate::gemm::{gemm, matmul_into, Dims as GemmDims, Out, Strided, Write};
use crate::pool;

/// `c += a · b` through [`crate::gemm`] (any layout of the three is read in place).
fn mul_add(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, c: &mut ArrayViewMut2<'_, f32>) {
    matmul_into(a, b, c.view_mut(), Write::Accumulate).expect("shapes fixed by the schedule");
}

/// Block dims `[a_left, p, q, a_right]`.
pub(crate) type Dims = [usize; 4];

/// An axis of the sweep's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Label {
    /// The rows of the input.
    N,
    /// Output sub-mode of block `k`.
    P(usize),
    /// Input sub-mode of block `k`.
    Q(usize),
    /// Bond `k` (between block `k − 1` and block `k`).
    A(usize),
}

/// How a step's GEMM is laid out: where the contracted axes sit in the state, and where the
/// new axes go. In every case `out[R, M] = state[R, K] · G[M, K]ᵀ` as matrices; the flags say
/// which of the operands are stored transposed (BLAS handles either for free).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kind {
    /// The contracted axes trail the state (`state` is `[R, K]`); else they lead (`[K, R]`).
    pub contracted_trailing: bool,
    /// The new axes are appended (`out` is `[R, M]`); else prepended (`[M, R]`).
    pub new_back: bool,
}

/// A permutation of the state: `shape` before, `perm` as in `permuted_axes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Perm {
    pub shape: Vec<usize>,
    pub perm: Vec<usize>,
}

impl Perm {
    fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// One contraction step: optional permutation, then one GEMM with block `block`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub block: usize,
    pub pre: Option<Perm>,
    pub kind: Kind,
    /// Size of the untouched axes.
    pub r: usize,
    /// `a_left · p` of the block.
    pub m: usize,
    /// `q · a_right` of the block.
    pub k: usize,
}

/// A full schedule for a given chain of blocks and row count.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Schedule {
    /// Partition mask: bit `j` set means original blocks `j` and `j + 1` are merged.
    pub mask: u64,
    /// The merged chain's block dims.
    pub dims: Vec<Dims>,
    pub steps: Vec<Step>,
    /// Permutation of the final state into `[rows, out]`, if needed.
    pub fin: Option<Perm>,
    /// GEMM FLOPs per call.
    pub flops: u64,
    /// Modelled cost in nanoseconds.
    pub cost: f64,
}

// Cost model constants (nanoseconds), rough fits of OpenBLAS sgemm on one AVX2 core.
const T_FLOP: f64 = 1.0 / 40.0;
const T_MEM: f64 = 0.08;
const T_CALL: f64 = 250.0;
const T_COPY: f64 = 0.6;

/// The merged chain's dims for a partition mask.
pub(crate) fn merged_dims(dims: &[Dims], mask: u64) -> Vec<Dims> {
    let mut out: Vec<Dims> = Vec::new();
    for (j, d) in dims.iter().enumerate() {
        if j > 0 && mask & (1 << (j - 1)) != 0 {
            let last = out.last_mut().expect("j > 0");
            last[1] *= d[1];
            last[2] *= d[2];
            last[3] = d[3];
        } else {
            out.push(*d);
        }
    }
    out
}

/// The groups `[start, end)` of original blocks for a partition mask.
pub(crate) fn groups(n: usize, mask: u64) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for j in 1..n {
        if mask & (1 << (j - 1)) == 0 {
            out.push((start, j));
            start = j;
        }
    }
    out.push((start, n));
    out
}

/// Schedules the sweep over `dims` (already merged) for `rows` rows.
pub(crate) fn schedule(dims: &[Dims], rows: usize, mask: u64) -> Schedule {
    let l = dims.len();
    let mut labels: Vec<(Label, usize)> = Vec::with_capacity(2 * l + 2);
    let push = |v: &mut Vec<(Label, usize)>, lab: Label, size: usize| {
        if size > 1 {
            v.push((lab, size));
        }
    };
    push(&mut labels, Label::N, rows);
    for (k, d) in dims.iter().enumerate() {
        push(&mut labels, Label::Q(k), d[2]);
    }
    // The final state must be state must be [N, P_0, …, P_{L−1}] (size-1 axes dropped).
    let mut target: Vec<(Label, usize)> = Vec::new();
    push(&mut target, Label::N, rows);
    for (k, d) in dims.iter().enumerate() {
        push(&mut target, Label::P(k), d[1]);
    }
    let mut steps = Vec::with_capacity(l);
    let mut flops = 0u64;
    let mut cost = 0.0;
    for k in (0..l).rev() {
        let d = dims[k];
        let mut contracted: Vec<(Label, usize)> = Vec::new();
        push(&mut contracted, Label::Q(k), d[2]);
        push(&mut contracted, Label::A(k + 1), d[3]);
        let mut produced: Vec<(Label, usize)> = Vec::new();
        push(&mut produced, Label::A(k), d[0]);
        push(&mut produced, Label::P(k), d[1]);
        let c = contracted.len();
        let n = labels.len();
        let trailing = labels[n - c..] == contracted[..];
        let leading = labels[..c] == contracted[..];
        let m = d[0] * d[1];
        let kk = d[2] * d[3];
        let pre = if trailing || leading {
            None
        } else {
            // Permute so that the contracted axes trail, the rest keeping their order.
            let shape: Vec<usize> = labels.iter().map(|x| x.1).collect();
            let mut perm: Vec<usize> = (0..n)
                .filter(|&i| !contracted.contains(&labels[i]))
                .collect();
            for lab in &contracted {
                perm.push(labels.iter().position(|x| x == lab).expect("label present"));
            }
            labels = perm.iter().map(|&i| labels[i]).collect();
            Some(Perm { shape, perm })
        };
        let contracted_trailing = trailing || !leading;
        let rest: Vec<(Label, usize)> = if contracted_trailing {
            labels[..n - c].to_vec()
        } else {
            labels[c..].to_vec()
        };
        let back: Vec<(Label, usize)> = rest.iter().chain(&produced).copied().collect();
        let front: Vec<(Label, usize)> = produced.iter().chain(&rest).copied().collect();
        // Place the new axes where the next step finds its contracted axes at an end (or, at
        // the last step, where the final order comes out right); appending wins ties.
        let new_back = if k == 0 {
            // Neither may match; then prepending leaves `[P…, N]`, a plain 2-D transpose.
            back == target
        } else {
            let dn = dims[k - 1];
            let mut next: Vec<(Label, usize)> = Vec::new();
            push(&mut next, Label::Q(k - 1), dn[2]);
            push(&mut next, Label::A(k), dn[3]);
            let at_end = |v: &[(Label, usize)]| {
                let c = next.len();
                v[v.len() - c..] == next[..] || v[..c] == next[..]
            };
            at_end(&back) || !at_end(&front)
        };
        labels = if new_back { back } else { front };
        let kind = Kind {
            contracted_trailing,
            new_back,
        };
        let total: usize = labels.iter().map(|x| x.1).product();
        let r = total / m.max(1);
        flops += 2 * (r as u64) * (m as u64) * (kk as u64);
        cost += gemm_cost(r, m, kk);
        if let Some(p) = &pre {
            cost += p.elements() as f64 * T_COPY;
        }
        steps.push(Step {
            block: k,
            pre,
            kind,
            r,
            m,
            k: kk,
        });
    }
    let fin = if labels == target {
        None
    } else {
        let shape: Vec<usize> = labels.iter().map(|x| x.1).collect();
        let perm: Vec<usize> = target
            .iter()
            .map(|t| labels.iter().position(|x| x == t).expect("label present"))
            .collect();
        let p = Perm { shape, perm };
        cost += p.elements() as f64 * T_COPY;
        Some(p)
    };
    let out: usize = dims.iter().map(|d| d[1]).product();
    cost += (rows * out) as f64 * T_MEM;
    Schedule {
        mask,
        dims: dims.to_vec(),
        steps,
        fin,
        flops,
        cost,
    }
}

/// The candidate partition masks for a chain of `l` blocks: all `2^{l−1}` partitions for up
/// to 13 blocks; beyond that no merges, the dense matrix, and each side of the first
/// input-only block merged.
pub(crate) fn candidate_masks(dims: &[Dims]) -> Vec<u64> {
    let l = dims.len();
    let all = if l > 1 { (1u64 << (l - 1)) - 1 } else { 0 };
    if l <= 13 {
        (0..=all).collect()
    } else {
        let mut c = vec![0, all];
        if let Some(b) = dims.iter().position(|d| d[1] == 1).filter(|&b| b > 0) {
            c.push(all & !(1u64 << (b - 1)));
        }
        c
    }
}

/// Schedules the sweep for `rows` rows under partition `mask` of the original chain `dims`,
/// costed for inference (merges are one-time, so free) or for training (see
/// [`training_cost`]).
pub(crate) fn plan_for(dims: &[Dims], rows: usize, mask: u64, training: bool) -> Schedule {
    let mut s = schedule(&merged_dims(dims, mask), rows, mask);
    if training {
        s.cost = training_cost(dims, &s);
    }
    s
}

/// The modelled cost of one training step (`forward_train` + `backward`) under `sched`:
/// the forward; the backward, whose every step is two GEMMs of the forward step's size plus
/// the inverse of its permutations; and, per merged group, merging it (the blocks are
/// rebuilt after every parameter update) and passing the merged block's gradient back to its
/// cores (two GEMMs per merge GEMM).
pub(crate) fn training_cost(dims: &[Dims], sched: &Schedule) -> f64 {
    let mut cost = sched.cost;
    for st in &sched.steps {
        cost += 2.0 * gemm_cost(st.r, st.m, st.k);
        if let Some(p) = &st.pre {
            cost += p.elements() as f64 * T_COPY;
        }
    }
    if let Some(p) = &sched.fin {
        cost += p.elements() as f64 * T_COPY;
    }
    for (s, e) in groups(dims.len(), sched.mask) {
        cost += 3.0 * merge_cost(&dims[s..e]);
    }
    cost
}

/// The cheapest schedule for `rows` rows over the original chain `dims`, for inference or
/// training.
pub(crate) fn best_schedule(dims: &[Dims], rows: usize, training: bool) -> Schedule {
    let mut best: Option<Schedule> = None;
    for mask in candidate_masks(dims) {
        let s = plan_for(dims, rows, mask, training);
        if best.as_ref().map_or(true, |b| s.cost < b.cost) {
            best = Some(s);
        }
    }
    best.expect("at least one candidate")
}

/// Merges one block `l: [a, p, q, b]` with the block `r: [b, P, Q, c]` to its right into
/// `[a, p·P, q·Q, c]`: one GEMM `[(a p q), b] · [b, (P Q c)]`, then (only if both `q` and `P`
/// exceed 1) one copy swapping the `q` and `P` axes.
fn merge_two(ld: Dims, l: &[f32], rd: Dims, r: &[f32]) -> (Dims, Vec<f32>) {
    let [a, p, q, b] = ld;
    let [_, pp, qq, c] = rd;
    let rest = pp * qq * c;
    let left = ArrayView2::from_shape((a * p * q, b), l).expect("block dims");
    let right = ArrayView2::from_shape((b, rest), r).expect("block dims");
    let mut data = vec![0.0f32; a * p * q * rest];
    {
        let mut o = ArrayViewMut2::from_shape((a * p * q, rest), &mut data).expect("dims");
        mul_add(left.view(), right.view(), &mut o);
    }
    if q > 1 && pp > 1 {
        data = swap_middle(&data, [a * p, q, pp, qq * c]);
    }
    ([a, p * pp, q * qq, c], data)
}

/// Merges a group of consecutive blocks from the right: returns `M_j = B_j ⋈ … ⋈ B_{n−1}` for
/// `j = 0 … n−2` (`M_0` is the whole group's block; the `M_j` for `j ≥ 1` are what the
/// backward needs to pass a merged block's gradient to its cores). Needs `n ≥ 2`.
/// With `all = false` only `M_0` is kept (the others are dropped as soon as used).
pub(crate) fn merge_suffixes(blocks: &[(Dims, &[f32])], all: bool) -> Vec<(Dims, Vec<f32>)> {
    let n = blocks.len();
    debug_assert!(n >= 2);
    let mut out: Vec<(Dims, Vec<f32>)> = Vec::with_capacity(if all { n - 1 } else { 1 });
    let (ld, l) = blocks[n - 2];
    let (rd, r) = blocks[n - 1];
    let mut cur = merge_two(ld, l, rd, r);
    for j in (0..n - 2).rev() {
        let (ld, l) = blocks[j];
        let next = merge_two(ld, l, cur.0, &cur.1);
        if all {
            out.push(cur);
        }
        cur = next;
    }
    out.push(cur);
    out.reverse();
    out
}

/// Merges the original blocks `blocks` (dims and row-major data) into one block.
pub(crate) fn merge_blocks(blocks: &[(Dims, &[f32])]) -> (Dims, Vec<f32>) {
    if blocks.len() == 1 {
        return (blocks[0].0, blocks[0].1.to_vec());
    }
    merge_suffixes(blocks, false).swap_remove(0)
}

/// Modelled cost (ns) of one GEMM `[m, k] · [k, n]`.
fn gemm_cost(m: usize, n: usize, k: usize) -> f64 {
    2.0 * (m * n * k) as f64 * T_FLOP + ((m * k + k * n + m * n) as f64) * T_MEM + T_CALL
}

/// Modelled cost (ns) of merging a group of blocks once (the GEMMs and copies of
/// [`merge_suffixes`]).
fn merge_cost(blocks: &[Dims]) -> f64 {
    let n = blocks.len();
    if n < 2 {
        return 0.0;
    }
    let mut rd = blocks[n - 1];
    let mut cost = 0.0;
    for j in (0..n - 1).rev() {
        let [a, p, q, b] = blocks[j];
        let [_, pp, qq, c] = rd;
        let rest = pp * qq * c;
        cost += gemm_cost(a * p * q, rest, b);
        if q > 1 && pp > 1 {
            cost += (a * p * q * rest) as f64 * T_COPY;
        }
        rd = [a, p * pp, q * qq, c];
    }
    cost
}

/// Passes the gradient `dg` of a merged group's block (dims of `suffixes[0]`) back to the
/// group's blocks, **adding** into `grads[j]` (row-major, the dims of `blocks[j]`).
///
/// With `G = B_0 ⋈ M_1` (`M_1` the merge of the remaining blocks): after swapping the `P'` and
/// `q_0` axes of `dG` (a copy only if both exceed 1), `dB_0 = dG[(a p q), (P' Q' c)] ·
/// M_1[b, (P' Q' c)]ᵀ` and `dM_1 = B_0[(a p q), b]ᵀ · dG`, and so on down the group.
pub(crate) fn distribute(
    blocks: &[(Dims, &[f32])],
    suffixes: &[(Dims, Vec<f32>)],
    dg: Vec<f32>,
    grads: &mut [&mut [f32]],
) {
    let n = blocks.len();
    let mut dm = dg;
    for j in 0..n - 1 {
        let ([a, p, q, b], core) = blocks[j];
        let (rd, rest_data): (Dims, &[f32]) = if j + 1 == n - 1 {
            blocks[n - 1]
        } else {
            (suffixes[j + 1].0, &suffixes[j + 1].1)
        };
        let [_, pp, qq, c] = rd;
        let rest = pp * qq * c;
        if q > 1 && pp > 1 {
            dm = swap_middle(&dm, [a * p, pp, q, qq * c]);
        }
        let apq = a * p * q;
        let dmv = ArrayView2::from_shape((apq, rest), &dm).expect("dims");
        let rv = ArrayView2::from_shape((b, rest), rest_data).expect("dims");
        let cv = ArrayView2::from_shape((apq, b), core).expect("dims");
        {
            let mut dc = ArrayViewMut2::from_shape((apq, b), &mut *grads[j]).expect("dims");
            mul_add(dmv.view(), rv.t(), &mut dc);
        }
        let mut next = vec![0.0f32; b * rest];
        {
            let mut o = ArrayViewMut2::from_shape((b, rest), &mut next).expect("dims");
            mul_add(cv.t(), dmv.view(), &mut o);
        }
        dm = next;
    }
    for (g, d) in grads[n - 1].iter_mut().zip(&dm) {
        *g += d;
    }
}

/// Drops size-1 axes and fuses runs of axes that stay adjacent and in order, so that e.g. a
/// 6-D permutation that only swaps two groups of axes becomes a 2-D transpose.
fn coalesce(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    // Compact indices of the kept (size > 1) axes.
    let mut compact = vec![usize::MAX; shape.len()];
    let mut sizes = Vec::new();
    for (i, &s) in shape.iter().enumerate() {
        if s > 1 {
            compact[i] = sizes.len();
            sizes.push(s);
        }
    }
    let order: Vec<usize> = perm
        .iter()
        .filter(|&&i| shape[i] > 1)
        .map(|&i| compact[i])
        .collect();
    // Runs of consecutive compact indices in output order form one fused axis.
    let mut runs: Vec<(usize, usize)> = Vec::new(); // (first compact axis, len)
    for &c in &order {
        match runs.last_mut() {
            Some((f, len)) if *f + *len == c => *len += 1,
            _ => runs.push((c, 1)),
        }
    }
    // Fused axes in input order.
    let mut by_input: Vec<usize> = (0..runs.len()).collect();
    by_input.sort_by_key(|&r| runs[r].0);
    let new_shape: Vec<usize> = by_input
        .iter()
        .map(|&r| sizes[runs[r].0..runs[r].0 + runs[r].1].iter().product())
        .collect();
    let mut pos = vec![0; runs.len()];
    for (i, &r) in by_input.iter().enumerate() {
        pos[r] = i;
    }
    (new_shape, pos)
}

/// `dst[j, i] = src[i, j]` for `src: [a, b]`, in cache-friendly tiles.
fn transpose_into(src: &[f32], a: usize, b: usize, dst: &mut [f32]) {
    const T: usize = 16;
    for i0 in (0..a).step_by(T) {
        let i1 = (i0 + T).min(a);
        for j0 in (0..b).step_by(T) {
            let j1 = (j0 + T).min(b);
            for i in i0..i1 {
                let row = &src[i * b + j0..i * b + j1];
                for (j, &v) in (j0..j1).zip(row) {
                    dst[j * a + i] = v;
                }
            }
        }
    }
}

/// The row-major `data: [d0, d1, d2, d3]` as `[d0, d2, d1, d3]` (the two middle axes swapped).
fn swap_middle(data: &[f32], [d0, d1, d2, d3]: [usize; 4]) -> Vec<f32> {
    permute(
        data,
        &Perm {
            shape: vec![d0, d1, d2, d3],
            perm: vec![0, 2, 1, 3],
        },
    )
}

/// Permutes a row-major tensor into a new row-major buffer. Permutations that reduce to a
/// (batched) 2-D transpose, the common case, take a tiled fast path.
pub(crate) fn permute(data: &[f32], p: &Perm) -> Vec<f32> {
    let (shape, perm) = coalesce(&p.shape, &p.perm);
    match perm.as_slice() {
        [] | [0] => data.to_vec(),
        [1, 0] => {
            let mut out = vec![0.0f32; data.len()];
            transpose_into(data, shape[0], shape[1], &mut out);
            out
        }
        [0, 2, 1] => {
            let (a, b) = (shape[1], shape[2]);
            let mut out = vec![0.0f32; data.len()];
            for (s, d) in data.chunks_exact(a * b).zip(out.chunks_exact_mut(a * b)) {
                transpose_into(s, a, b, d);
            }
            out
        }
        _ => {
            let view = ArrayViewD::from_shape(IxDyn(&shape), data).expect("perm shape");
            let view = view.permuted_axes(IxDyn(&perm));
            let mut out = ndarray::ArrayD::<f32>::zeros(view.raw_dim());
            out.assign(&view);
            out.into_raw_vec_and_offset().0
        }
    }
}

/// The inverse of [`permute`]: given data in the permuted layout, restores the original layout.
pub(crate) fn unpermute(data: &[f32], p: &Perm) -> Vec<f32> {
    let permuted_shape: Vec<usize> = p.perm.iter().map(|&i| p.shape[i]).collect();
    let mut inv = vec![0; p.perm.len()];
    for (j, &i) in p.perm.iter().enumerate() {
        inv[i] = j;
    }
    permute(
        data,
        &Perm {
            shape: permuted_shape,
            perm: inv,
        },
    )
}

/// The `[rows, cols]` matrix stored in `data`, row-major if `plain`, else transposed.
fn mat(data: &[f32], rows: usize, cols: usize, plain: bool) -> ArrayView2<'_, f32> {
    if plain {
        ArrayView2::from_shape((rows, cols), data).expect("matrix dims")
    } else {
        ArrayView2::from_shape((cols, rows), data)
            .expect("matrix dims")
            .reversed_axes()
    }
}

fn mat_mut(data: &mut [f32], rows: usize, cols: usize, plain: bool) -> ArrayViewMut2<'_, f32> {
    if plain {
        ArrayViewMut2::from_shape((rows, cols), data).expect("matrix dims")
    } else {
        ArrayViewMut2::from_shape((cols, rows), data)
            .expect("matrix dims")
            .reversed_axes()
    }
}

/// One step's GEMM: `out[R, M] = state[R, K] · G[M, K]ᵀ`, in the step's storage layouts
/// (`g` is `G` row-major, or `Gᵀ` row-major `[K, M]` if `g_t`).
/// If `bias` is given, the output buffer is the final `[rows, out]` (with `out = bias.len()`,
/// whatever the step's own `[R, M]`/`[M, R]` view of it) and the bias is added to every row,
/// fused: the buffer starts as the tiled bias and the GEMM accumulates onto it.
pub(crate) fn gemm_step(
    step: &Step,
    state: &[f32],
    g: &[f32],
    g_t: bool,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let (r, m, k) = (step.r, step.m, step.k);
    // The common case straight into the kernel: `Gᵀ` row-major, the output `[R, M]`
    // row-major, the bias (if any) one per output column. Same arithmetic as the general
    // path below (the buffer starts as the bias, the product is added to it), without its
    // tiled-bias copy and view dispatch, which cost a few hundred nanoseconds per call at one
    // row.
    if g_t && step.kind.new_back && bias.map_or(true, |b| b.len() == m) {
        let a = if step.kind.contracted_trailing {
            Strided::rows(state, k)
        } else {
            Strided::transposed(state, r)
        };
        // Every element is written (from the bias, or by the product with beta = 0).
        let mut out = pool::take(r * m);
        gemm(
            GemmDims { m: r, n: m, k },
            a,
            g,
            m,
            Out::new(&mut out, m, Write::Overwrite).bias(bias),
        );
        return out;
    }
    let gm = mat(g, m, k, !g_t);
    let t = mat(state, r, k, step.kind.contracted_trailing);
    // Accumulate onto the tiled bias or zeros.
    let mut out = match bias {
        Some(b) => b.repeat(r * m / b.len()),
        None => vec![0.0f32; r * m],
    };
    let mut o = mat_mut(&mut out, r, m, step.kind.new_back);
    mul_add(t.view(), gm.t(), &mut o);
    out
}

/// What backward needs from one step: the GEMM's state operand (after any permutation).
#[derive(Debug, Clone)]
pub(crate) struct Taped {
    pub state: Vec<f32>,
}

/// Whether a step's GEMM `out[R, M] = state[R, K] · G[M, K]ᵀ` reads `G` as its transpose
/// stored row-major (`[K, M]`) rather than as `G` row-major. Measured with the `gemm` crate
/// (`benches/tt_contraction.rs`, Intel Xeon, AVX-512): with a few rows the product is a set of
/// matrix-vector products, fastest as dot products over `G`'s rows when `K ≥ M` (200→50,
/// bond 20: 0.67 against 1.35 µs at one row, 1.9 against 3.5 µs at 8) and as row-major `Gᵀ`
/// updates when `M > K` (50→200: 0.70–0.84 against 1.0–1.1 µs at one row); from 16 rows on,
/// the row-major `Gᵀ` is as fast or faster for every benched shape (50→200 at 29 rows: 5.6
/// against 6.3 µs; 200→50 at 16 rows: 4.9 against 5.1–5.7 µs).
pub(crate) fn use_transposed(step: &Step) -> bool {
    step.r >= 16 || step.m > step.k
}

/// Runs a schedule. `blocks[k]` is the data of the schedule's block `k` (row-major `[m, k]`);
/// `blocks_t`, if given, the same blocks transposed (row-major `[k, m]`), used where
/// [`use_transposed`] says. If `tape` is given,
/// records each step's GEMM operand. Returns the output `[rows, out]` row-major, plus `bias`.
pub(crate) fn run(
    sched: &Schedule,
    blocks: &[&[f32]],
    blocks_t: Option<&[&[f32]]>,
    x: &[f32],
    bias: &[f32],
    mut tape: Option<&mut Vec<Taped>>,
) -> Vec<f32> {
    let mut state: Cow<'_, [f32]> = Cow::Borrowed(x);
    let last = sched.steps.len() - 1;
    for (j, step) in sched.steps.iter().enumerate() {
        if let Some(p) = &step.pre {
            state = Cow::Owned(permute(&state, p));
        }
        // With no final permutation the last step's output is already [rows, out].
        let fused = (j == last && sched.fin.is_none()).then_some(bias);
        let out = match blocks_t {
            Some(bt) if use_transposed(step) => {
                gemm_step(step, &state, bt[step.block], true, fused)
            }
            _ => gemm_step(step, &state, blocks[step.block], false, fused),
        };
        if let Some(t) = tape.as_deref_mut() {
            t.push(Taped {
                state: state.into_owned(),
            });
        } else if let Cow::Owned(v) = std::mem::replace(&mut state, Cow::Borrowed(&[])) {
            pool::give(v);
        }
        state = Cow::Owned(out);
    }
    match &sched.fin {
        Some(p) => {
            let mut y = permute(&state, p);
            for row in y.chunks_exact_mut(bias.len()) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
            }
            y
        }
        None => state.into_owned(),
    }
}

/// Backward of [`run`] for one step: given `dout`, returns `dstate` (before the step's
/// permutation) and adds the block gradient into `dg` (row-major `[m, k]`).
pub(crate) fn step_backward(
    step: &Step,
    taped: &Taped,
    g: &[f32],
    dout: &[f32],
    dg: &mut [f32],
) -> Vec<f32> {
    let (r, m, k) = (step.r, step.m, step.k);
    let gm = mat(g, m, k, true);
    let mut dgm = mat_mut(dg, m, k, true);
    let t = mat(&taped.state, r, k, step.kind.contracted_trailing);
    let d = mat(dout, r, m, step.kind.new_back);
    // dG[M, K] += dout[R, M]ᵀ · state[R, K];  dstate[R, K] = dout[R, M] · G[M, K].
    mul_add(d.t(), t.view(), &mut dgm);
    let mut dstate = vec![0.0f32; r * k];
    let mut ds = mat_mut(&mut dstate, r, k, step.kind.contracted_trailing);
    mul_add(d.view(), gm.view(), &mut ds);
    match &step.pre {
        Some(p) => unpermute(&dstate, p),
        None => dstate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_layout_sweep_needs_no_intermediate_copy() {
        // 768 -> 3072, out [12, 16, 16], in [8, 8, 12], bonds [12, 16, 16, 16, 12].
        let r = [1, 12, 16, 16, 16, 12, 1];
        let dims: Vec<Dims> = vec![
            [r[0], 12, 1, r[1]],
            [r[1], 16, 1, r[2]],
            [r[2], 16, 1, r[3]],
            [r[3], 1, 8, r[4]],
            [r[4], 1, 8, r[5]],
            [r[5], 1, 12, r[6]],
        ];
        let s = schedule(&dims, 128, 0);
        assert!(s.steps.iter().all(|st| st.pre.is_none()));
        let kinds: Vec<(bool, bool)> = s
            .steps
            .iter()
            .map(|st| (st.kind.contracted_trailing, st.kind.new_back))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (true, true),
                (true, true),
                (true, true),
                (true, false),
                (false, false),
                (false, false)
            ]
        );
        // Final state is [P0, P1, P2, N]: one transpose.
        assert!(s.fin.is_some());
    }

    #[test]
    fn dense_plan_is_one_gemm() {
        let dims: Vec<Dims> = vec![
            [1, 10, 1, 10],
            [10, 20, 1, 50],
            [50, 1, 5, 10],
            [10, 1, 10, 1],
        ];
        let all = 0b111;
        let s = schedule(&merged_dims(&dims, all), 29, all);
        assert_eq!(s.steps.len(), 1);
        assert!(s.fin.is_none());
        assert_eq!(s.flops, 2 * 29 * 200 * 50);
    }

    #[test]
    fn permute_roundtrip() {
        let data: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let p = Perm {
            shape: vec![2, 3, 4],
            perm: vec![2, 0, 1],
        };
        let q = permute(&data, &p);
        assert_eq!(q[1], 4.0); // element [0, 0, 1] of the permuted = original [0, 1, 0]
        assert_eq!(unpermute(&q, &p), data);
    }
}

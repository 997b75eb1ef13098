//! Bond budgets: choosing every layer's truncation under one parameter budget.
//!
//! Each layer (a *group*) offers options — e.g. its middle bond `m = 1, 2, …` — each with a
//! parameter count and the energy it discards (for a whitened spectrum `σ`, the output energy
//! `Σ_{i>m} σ_i²` lost; for a plain one, the weight energy). [`allocate`] picks one option per
//! group minimising the total discarded energy subject to the total parameter count fitting the
//! budget. It is a multiple-choice knapsack, solved **exactly** by dynamic programming over
//! parameter counts (counted in units of their greatest common divisor), so the result is never
//! worse than any other feasible choice — uniform bonds included. Only when the table would
//! exceed [`MAX_STATES`] counts are costs rounded *up* to a coarser unit, which keeps the budget
//! a hard limit but may leave a little energy on the table ([`Allocation::exact`] says which).
//!
//! ```
//! use succulm_tt::budget::{allocate, BondOption};
//! // Two layers; a bond of m costs 10·m parameters; their spectra differ.
//! let opts = |sigma: &[f64]| -> Vec<BondOption> {
//!     (1..=sigma.len()).map(|m| BondOption {
//!         bond: m,
//!         params: 10 * m,
//!         energy: sigma[m..].iter().map(|s| s * s).sum(),
//!     }).collect()
//! };
//! let groups = [opts(&[4.0, 3.0, 2.0, 1.0]), opts(&[1.0, 0.5, 0.1, 0.0])];
//! let a = allocate(&groups, 50)?; // uniform bonds (2, 2) would discard 5 + 0.01
//! assert_eq!(a.bonds(&groups), vec![4, 1]); // the steep spectrum gets the bonds
//! assert!(a.params <= 50 && (a.energy - 0.26).abs() < 1e-12);
//! # Ok::<(), succulm_tt::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The largest dynamic-programming table (budget in cost units) before costs are coarsened.
pub const MAX_STATES: usize = 1 << 20;

/// One way to truncate one layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BondOption {
    /// The bond (or any label the caller uses).
    pub bond: usize,
    /// Its parameter count.
    pub params: usize,
    /// The energy it discards (finite, ≥ 0).
    pub energy: f64,
}

/// One option per group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    /// Per group, the index of the chosen option.
    pub choice: Vec<usize>,
    /// The total parameter count (≤ the budget).
    pub params: usize,
    /// The total discarded energy.
    pub energy: f64,
    /// Whether the optimum is exact (costs were not coarsened).
    pub exact: bool,
}

impl Allocation {
    /// The chosen bond of every group.
    pub fn bonds(&self, groups: &[Vec<BondOption>]) -> Vec<usize> {
        self.choice
            .iter()
            .zip(groups)
            .map(|(&i, g)| g[i].bond)
            .collect()
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Picks one option per group minimising the total energy with total parameters ≤ `budget`
/// (see the [module docs](self)); ties go to fewer parameters, then to the earlier option.
///
/// Errors: no group, a group without options, a non-finite or negative energy, or a budget
/// below the cheapest choice.
pub fn allocate(groups: &[Vec<BondOption>], budget: usize) -> Result<Allocation> {
    if groups.is_empty() {
        return Err(Error::invalid_arg(
            "groups",
            "no layer to allocate bonds to",
        ));
    }
    for (g, opts) in groups.iter().enumerate() {
        if opts.is_empty() {
            return Err(Error::invalid_arg(
                "groups",
                format!("group {g} has no option"),
            ));
        }
        if let Some(o) = opts
            .iter()
            .find(|o| !(o.energy.is_finite() && o.energy >= 0.0))
        {
            return Err(Error::invalid_arg(
                "groups",
                format!(
                    "group {g}, bond {}: energy {} is not finite and >= 0",
                    o.bond, o.energy
                ),
            ));
        }
    }
    let cheapest: usize = groups
        .iter()
        .map(|g| g.iter().map(|o| o.params).min().unwrap_or(0))
        .fold(0usize, |a, b| a.saturating_add(b));
    if cheapest > budget {
        return Err(Error::invalid_arg(
            "budget",
            format!("{budget} parameters is below the cheapest choice ({cheapest})"),
        ));
    }
    // Cost unit: the gcd of every count (exact), coarsened (rounding costs up) if needed.
    let g = groups
        .iter()
        .flatten()
        .fold(0usize, |a, o| gcd(a, o.params))
        .max(1);
    let (unit, exact) = if budget / g < MAX_STATES {
        (g, true)
    } else {
        (budget.div_ceil(MAX_STATES).max(g), false)
    };
    let cost = |p: usize| p.div_ceil(unit);
    let states = budget / unit + 1;
    // best[s]: least energy (and its parameter count) using at most s units so far.
    let mut best: Vec<(f64, usize)> = vec![(0.0, 0); states];
    let mut pick: Vec<Vec<u32>> = Vec::with_capacity(groups.len());
    for opts in groups {
        let mut next = vec![(f64::INFINITY, usize::MAX); states];
        let mut arg = vec![u32::MAX; states];
        for (s, slot) in next.iter_mut().enumerate() {
            for (i, o) in opts.iter().enumerate() {
                let c = cost(o.params);
                if c > s {
                    continue;
                }
                let (e0, p0) = best[s - c];
                if !e0.is_finite() {
                    continue;
                }
                let cand = (e0 + o.energy, p0 + o.params);
                if cand.0 < slot.0 || (cand.0 == slot.0 && cand.1 < slot.1) {
                    *slot = cand;
                    arg[s] = i as u32;
                }
            }
        }
        best = next;
        pick.push(arg);
    }
    // Backtrack from the full budget.
    let mut s = states - 1;
    let mut choice = vec![0usize; groups.len()];
    for (gi, opts) in groups.iter().enumerate().rev() {
        let i = pick[gi][s] as usize;
        choice[gi] = i;
        s -= cost(opts[i].params);
    }
    let params = choice.iter().zip(groups).map(|(&i, g)| g[i].params).sum();
    let energy = choice.iter().zip(groups).map(|(&i, g)| g[i].energy).sum();
    Ok(Allocation {
        choice,
        params,
        energy,
        exact,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// Every combination, by brute force.
    fn brute(groups: &[Vec<BondOption>], budget: usize) -> f64 {
        fn go(groups: &[Vec<BondOption>], budget: usize, k: usize, p: usize, e: f64) -> f64 {
            if k == groups.len() {
                return if p <= budget { e } else { f64::INFINITY };
            }
            groups[k]
                .iter()
                .map(|o| go(groups, budget, k + 1, p + o.params, e + o.energy))
                .fold(f64::INFINITY, f64::min)
        }
        go(groups, budget, 0, 0, 0.0)
    }

    #[test]
    fn dynamic_programming_finds_the_brute_force_optimum() {
        let mut rng = StdRng::seed_from_u64(5);
        for trial in 0..200 {
            let n = rng.gen_range(1..5);
            let groups: Vec<Vec<BondOption>> = (0..n)
                .map(|_| {
                    let k = rng.gen_range(1..6);
                    let mut e: f64 = rng.gen_range(1.0..10.0);
                    (1..=k)
                        .map(|b| {
                            e *= rng.gen_range(0.1..1.0); // not convex in general
                            BondOption {
                                bond: b,
                                params: 3 * rng.gen_range(1..20),
                                energy: e,
                            }
                        })
                        .collect()
                })
                .collect();
            let min: usize = groups
                .iter()
                .map(|g| g.iter().map(|o| o.params).min().unwrap())
                .sum();
            let budget = min + rng.gen_range(0..60);
            let a = allocate(&groups, budget).unwrap();
            let opt = brute(&groups, budget);
            assert!(a.exact && a.params <= budget);
            assert!(
                (a.energy - opt).abs() <= 1e-12 * opt.max(1.0),
                "trial {trial}: {} vs {opt}",
                a.energy
            );
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let o = |p: usize, e: f64| BondOption {
            bond: 1,
            params: p,
            energy: e,
        };
        assert!(allocate(&[], 10).is_err());
        assert!(allocate(&[vec![]], 10).is_err());
        assert!(allocate(&[vec![o(5, f64::NAN)]], 10).is_err());
        assert!(allocate(&[vec![o(5, -1.0)]], 10).is_err());
        assert!(allocate(&[vec![o(11, 1.0)]], 10).is_err());
        assert_eq!(allocate(&[vec![o(10, 1.0)]], 10).unwrap().params, 10);
    }

    #[test]
    fn coarsened_costs_still_respect_the_budget() {
        // Prime parameter counts and a huge budget force coarse units.
        let groups: Vec<Vec<BondOption>> = (0..3)
            .map(|g| {
                (1..=30)
                    .map(|m| BondOption {
                        bond: m,
                        params: 1_000_003 * m + g,
                        energy: 1.0 / m as f64,
                    })
                    .collect()
            })
            .collect();
        let budget = 40_000_000;
        let a = allocate(&groups, budget).unwrap();
        assert!(!a.exact && a.params <= budget);
    }
}

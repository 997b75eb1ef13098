//! The study: the compression metrics ([`eval`]), the block × bond grid and the one cell loop
//! ([`sweep`]), sharded runs on top of it ([`shard`]), one study setup that every study goes
//! through — data, options, evaluator, experiments, sweep, output ([`setup`]) — replication
//! across models ([`replicate`]), the sophia trap ([`trap`]), tables, charts and verdicts
//! ([`report`]), and the flag parsing shared by the examples ([`cli`]). The top of the crate: it
//! imports from every folder below it, and nothing imports from it.
//!
//! Inside, in dependency order: `eval` ← `sweep` ← `report`, `shard` ← `setup` ← `replicate`,
//! `trap`.

pub mod cli;
pub mod eval;
pub mod replicate;
pub mod report;
pub mod setup;
pub mod shard;
pub mod sweep;
pub mod trap;

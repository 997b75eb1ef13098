//! The study: the compression metrics ([`eval`]), the block × bond grid ([`sweep`]), sharded runs
//! ([`shard`]), replication across models ([`replicate`]), the sophia trap ([`trap`]), tables,
//! charts and verdicts ([`report`]), and the flag parsing shared by the examples ([`cli`]). The top
//! of the crate: it imports from every folder below it, and nothing imports from it.

pub mod cli;
pub mod eval;
pub mod replicate;
pub mod report;
pub mod shard;
pub mod sweep;
pub mod trap;

//! The checker against crafted histories: one per anomaly kind, proving it
//! says `invalid` (or reports without judging) exactly where it should, plus
//! the ways a run ends `valid` or `unknown`.

mod builder;
mod deliveries;
mod losses;
mod ordering;
mod random;
mod replicas;
mod report;
mod verdicts;

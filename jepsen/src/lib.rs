//! `ferry-jepsen`: Ferry's fault-injection harness (see `../shared/FAULTS.md`).
//!
//! A run starts a real cluster, drives producers and consumers against it
//! while a nemesis breaks it, records everything in a [`history`], and then
//! the [`checker`] decides offline whether Ferry kept its promises. The
//! [`report`] folder holds what people read afterwards.

pub mod checker;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod powerfs;
pub mod recorder;
pub mod report;
pub mod run;
pub mod workload;

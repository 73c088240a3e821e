//! `ferry-jepsen`: Ferry's fault-injection harness (see `../shared/FAULTS.md`).
//!
//! A run starts a real cluster, drives producers and consumers against it
//! while a nemesis breaks it, records everything in a [`history`], and then
//! the [`checker`] decides offline whether Ferry kept its promises.

pub mod checker;
pub mod history;

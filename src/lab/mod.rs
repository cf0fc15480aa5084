//! `strata lab`: a Salt master and minions in containers, built by strata, applying formulas
//! and reporting per-minion, per-state results.
//!
//! `spec` (the lab file) → `plan` (containers, configs, keys) → `run` (up, apply, down, gc
//! on a `backend::Backend`) → `results` (Salt's JSON) → `report` (table, JSON, JUnit).

pub mod apt;
pub mod backend;
pub mod docker;
pub mod keys;
pub mod plan;
pub mod report;
pub mod results;
pub mod run;
pub mod session;
pub mod spec;

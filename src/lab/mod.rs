//! `strata lab`: a Salt master and minions in containers, built by strata, applying formulas
//! and reporting per-minion, per-state results. This part holds the pure pieces: Salt's
//! returns parsed into one enum, and the report (table, JSON, JUnit XML) judged from them.

pub mod report;
pub mod results;
pub mod spec;

//! strata: deterministic, daemonless OCI image builds from YAML recipes.

pub mod digest;
pub mod layer;
pub mod recipe;
pub mod store;

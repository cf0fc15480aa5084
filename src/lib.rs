//! strata: deterministic, daemonless OCI image builds from YAML recipes.

pub mod build;
pub mod debian;
pub mod digest;
pub mod docker;
pub mod inspect;
pub mod lab;
pub mod layer;
pub mod lockfile;
pub mod oci;
pub mod python;
pub mod recipe;
pub mod registry;
pub mod store;

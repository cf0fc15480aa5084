//! Recipes: the YAML model, parsing with file:line:column errors, validation, and resolving
//! steps into layer entries.

pub mod model;

pub use model::*;

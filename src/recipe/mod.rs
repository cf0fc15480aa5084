//! Recipes: the YAML model, parsing with file:line:column errors, validation, and resolving
//! steps into layer entries.

pub mod accounts;
pub mod model;
pub mod parse;
pub mod resolve;
pub mod sourcemap;
pub mod validate;

pub use accounts::{render_accounts, resolve_owner, Owner};
pub use model::*;
pub use parse::{
    check_sources, effective_source_date_epoch, load, parse_str, LoadedRecipe, RecipeError,
    SourceDateEpochError, SourceMap,
};
pub use resolve::{
    resolve_layer, resolve_layer_with, CachedInputs, FileDigester, NoCachedInputs, ReadDigester,
};
pub use sourcemap::Pos;
pub use validate::{parse_base, Base};

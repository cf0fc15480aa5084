//! Deterministic layer tars: entries in, tar bytes out, compressed and digested in one pass.

pub mod entry;

pub use entry::{Content, Entry, EntryKind};

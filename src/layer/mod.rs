//! Deterministic layer tars: entries in, tar bytes out, compressed and digested in one pass.

pub mod compress;
pub mod entry;
pub mod pargz;
pub mod tarin;
pub mod writer;

pub use compress::{decompressor, write_layer, Compression, LayerDigests};
pub use entry::{Content, Entry, EntryKind};
pub use writer::write_tar;

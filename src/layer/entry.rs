//! The resolved contents of one layer: a flat list of entries, each with everything that
//! determines its tar header and data. Steps resolve to entries; the writer turns entries
//! into bytes. Nothing here touches the clock, the user database or the umask.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

/// Where a regular file's bytes come from. Serializes as its content digest only, so a
/// layer's cache key does not depend on where the source tree lives.
#[derive(Debug, Clone)]
pub enum Content {
    /// Inline bytes (recipe `file` steps, generated files, tarball members).
    Bytes(Arc<[u8]>),
    /// A file on disk, read when the layer is written. `sha256` is its content digest
    /// (hex), known ahead of time from the stat cache, so cache keys never need the bytes.
    Path { path: PathBuf, sha256: String },
}

impl Content {
    /// Hex sha256 of the bytes.
    pub fn sha256(&self) -> String {
        match self {
            Content::Bytes(b) => crate::digest::sha256_hex(b),
            Content::Path { sha256, .. } => sha256.clone(),
        }
    }
}

impl Serialize for Content {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.sha256())
    }
}

#[derive(Debug, Clone, Serialize)]
pub enum EntryKind {
    File {
        content: Content,
        size: u64,
    },
    Dir,
    Symlink {
        target: String,
    },
    /// A hard link to another path in the same layer (relative, no leading slash).
    Hardlink {
        target: String,
    },
    /// `.wh.<name>`: deletes `path` from lower layers.
    Whiteout,
    /// `.wh..wh..opq` inside directory `path`: hides everything below it in lower layers.
    OpaqueWhiteout,
}

/// One tar member. `path` is relative to the image root, without a leading `/` and without
/// a trailing `/`, using `/` separators, already normalised (no `.`/`..` components).
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (`0o7777` mask).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: String,
    pub gname: String,
    /// Seconds since the epoch; the builder sets every entry to the recipe's clamp value.
    pub mtime: u64,
}

impl Entry {
    pub fn new(path: impl Into<String>, kind: EntryKind, mode: u32) -> Self {
        Entry {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            uname: String::new(),
            gname: String::new(),
            mtime: 0,
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, EntryKind::Dir)
    }
}

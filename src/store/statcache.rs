//! File digests remembered by (path, size, mtime, ctime, inode, device), like git's index:
//! a no-op rebuild of a large tree stats every file but reads none.

use std::collections::{BTreeMap, HashMap};
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

pub(crate) const FILE_NAME: &str = "statcache.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
    sha256: String,
}

impl Stamp {
    /// Whether `meta` has the stat data this stamp was taken with.
    fn matches(&self, meta: &Metadata) -> bool {
        let probe = stamp_of(meta, String::new());
        self.size == probe.size
            && self.mtime_ns == probe.mtime_ns
            && self.ctime_ns == probe.ctime_ns
            && self.ino == probe.ino
            && self.dev == probe.dev
    }
}

fn stamp_of(meta: &Metadata, sha256: String) -> Stamp {
    Stamp {
        size: meta.len(),
        mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        ino: meta.ino(),
        dev: meta.dev(),
        sha256,
    }
}

#[derive(Debug, Default)]
pub struct StatCache {
    path: Option<PathBuf>,
    entries: Mutex<HashMap<PathBuf, Stamp>>,
    dirty: Mutex<bool>,
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

impl StatCache {
    /// Loads the stat cache of a store; a missing or unreadable file is an empty cache (it
    /// is only ever a shortcut, never a source of truth).
    pub fn load(store: &super::Store) -> StatCache {
        let path = store.root().join(FILE_NAME);
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        StatCache {
            path: Some(path),
            entries: Mutex::new(entries),
            ..Default::default()
        }
    }

    /// Hex sha256 of `path`, from the cache when its stat data is unchanged.
    pub fn sha256(&self, path: &Path, meta: &Metadata) -> io::Result<String> {
        use std::sync::atomic::Ordering::Relaxed;
        if let Ok(map) = self.entries.lock() {
            if let Some(s) = map.get(path) {
                if s.matches(meta) && !racy(meta) {
                    self.hits.fetch_add(1, Relaxed);
                    return Ok(s.sha256.clone());
                }
            }
        }
        self.misses.fetch_add(1, Relaxed);
        let (hex, _) = crate::digest::sha256_file(path)?;
        if let Ok(mut map) = self.entries.lock() {
            map.insert(path.to_path_buf(), stamp_of(meta, hex.clone()));
            if let Ok(mut d) = self.dirty.lock() {
                *d = true;
            }
        }
        Ok(hex)
    }

    /// (hits, misses) so far.
    pub fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.hits.load(Relaxed), self.misses.load(Relaxed))
    }

    /// Writes the cache back if it changed. Entries for files that no longer exist are
    /// dropped so the file does not grow forever.
    pub fn save(&self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty.lock().map(|d| *d).unwrap_or(false) {
            return Ok(());
        }
        let map = self
            .entries
            .lock()
            .map_err(|_| io::Error::other("stat cache lock poisoned"))?;
        let live: BTreeMap<_, _> = map
            .iter()
            .filter(|(p, _)| p.exists())
            .map(|(p, s)| (p.clone(), s.clone()))
            .collect();
        let bytes = serde_json::to_vec(&live).map_err(io::Error::other)?;
        super::write_atomic(path, &bytes)
    }
}

/// A file modified within the last two seconds may change again within the same mtime
/// tick without its stamp changing; such files are always re-hashed (git's "racy clean").
fn racy(meta: &Metadata) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    now - meta.mtime() < 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn age(path: &Path) {
        let f = std::fs::File::options()
            .write(true)
            .open(path)
            .expect("open");
        f.set_modified(SystemTime::now() - Duration::from_secs(60))
            .expect("set mtime");
    }

    #[test]
    fn unchanged_file_is_not_reread_and_changed_file_is() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = super::super::Store::open(&dir.path().join("store")).expect("store");
        let f = dir.path().join("f");
        std::fs::write(&f, b"one").expect("write");
        age(&f);
        let sc = StatCache::load(&store);
        let d1 = sc
            .sha256(&f, &std::fs::metadata(&f).expect("meta"))
            .expect("hash");
        sc.save().expect("save");

        let sc = StatCache::load(&store);
        let d2 = sc
            .sha256(&f, &std::fs::metadata(&f).expect("meta"))
            .expect("hash");
        assert_eq!(d1, d2);
        assert_eq!(sc.counts(), (1, 0));

        std::fs::write(&f, b"two").expect("write");
        age(&f);
        let d3 = sc
            .sha256(&f, &std::fs::metadata(&f).expect("meta"))
            .expect("hash");
        assert_ne!(d1, d3);
        assert_eq!(sc.counts(), (1, 1));
    }
}

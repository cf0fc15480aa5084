//! File digests remembered by (path, size, mtime, ctime, inode, device), like git's index:
//! a no-op rebuild of a large tree stats every file but reads none.
//!
//! On disk (`statcache`): a first line `strata statcache 2`, then one record per file,
//! `<sha256 hex> <size> <mtime ns> <ctime ns> <inode> <device> <path>` ended by a NUL byte
//! (the one byte a path cannot hold), records sorted by path. A plain text format parses
//! in a fraction of the time JSON took and holds paths that are not UTF-8.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::RwLock;

pub(crate) const FILE_NAME: &str = "statcache";
/// Where strata kept the stat cache before (JSON); removed when the new one is written.
pub(crate) const LEGACY_FILE_NAME: &str = "statcache.json";
const HEADER: &[u8] = b"strata statcache 2\n";

#[derive(Debug)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
    sha256: String,
    /// Stat'ed during this build: known to exist when the cache is saved.
    seen: AtomicBool,
}

impl Stamp {
    /// Whether `meta` has the stat data this stamp was taken with.
    fn matches(&self, meta: &Metadata) -> bool {
        self.size == meta.len()
            && self.mtime_ns == ns(meta.mtime(), meta.mtime_nsec())
            && self.ctime_ns == ns(meta.ctime(), meta.ctime_nsec())
            && self.ino == meta.ino()
            && self.dev == meta.dev()
    }

    /// One record, as [`parse`] reads it back.
    fn write_record(&self, path: &OsStr, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(
            out,
            "{} {} {} {} {} {} ",
            self.sha256, self.size, self.mtime_ns, self.ctime_ns, self.ino, self.dev
        );
        out.extend_from_slice(path.as_bytes());
        out.push(0);
    }
}

fn ns(secs: i64, nsec: i64) -> i128 {
    secs as i128 * 1_000_000_000 + nsec as i128
}

fn stamp_of(meta: &Metadata, sha256: String) -> Stamp {
    Stamp {
        size: meta.len(),
        mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        ino: meta.ino(),
        dev: meta.dev(),
        sha256,
        seen: AtomicBool::new(true),
    }
}

/// A decimal number with an optional `-`, or `None`.
fn number(field: &[u8]) -> Option<i128> {
    let (neg, digits) = match field.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, field),
    };
    if digits.is_empty() || digits.len() > 38 {
        return None;
    }
    let mut n: i128 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (b - b'0') as i128;
    }
    Some(if neg { -n } else { n })
}

/// Reads a stat cache file; `None` if it is not one (a damaged file is an empty cache:
/// it is a shortcut, never a source of truth).
fn parse(bytes: &[u8]) -> Option<HashMap<OsString, Stamp>> {
    let body = bytes.strip_prefix(HEADER)?;
    let mut map = HashMap::with_capacity(body.len() / 128);
    let mut records = body.split(|&b| b == 0);
    // The file ends with a NUL, so the last piece is empty; anything else is a torn record.
    if records.next_back()? != b"" {
        return None;
    }
    for rec in records {
        let mut f = rec.splitn(7, |&b| b == b' ');
        let sha256 = f.next()?;
        if sha256.len() != 64
            || !sha256
                .iter()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let mut num = || number(f.next()?);
        let stamp = Stamp {
            size: num()?.try_into().ok()?,
            mtime_ns: num()?,
            ctime_ns: num()?,
            ino: num()?.try_into().ok()?,
            dev: num()?.try_into().ok()?,
            sha256: String::from_utf8(sha256.to_vec()).ok()?,
            seen: AtomicBool::new(false),
        };
        let path = f.next()?;
        if path.is_empty() {
            return None;
        }
        map.insert(OsString::from_vec(path.to_vec()), stamp);
    }
    Some(map)
}

#[derive(Debug, Default)]
pub struct StatCache {
    path: Option<PathBuf>,
    /// Keyed by the path's bytes: hashing an `OsStr` is a plain byte hash, where a `Path`
    /// hashes component by component.
    entries: RwLock<HashMap<OsString, Stamp>>,
    dirty: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl StatCache {
    /// Loads the stat cache of a store; a missing or unreadable file is an empty cache (it
    /// is only ever a shortcut, never a source of truth).
    pub fn load(store: &super::Store) -> StatCache {
        let path = store.root().join(FILE_NAME);
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| parse(&b))
            .unwrap_or_default();
        StatCache {
            path: Some(path),
            entries: RwLock::new(entries),
            ..Default::default()
        }
    }

    /// Hex sha256 of `path`, from the cache when its stat data is unchanged.
    pub fn sha256(&self, path: &Path, meta: &Metadata) -> io::Result<String> {
        if let Ok(map) = self.entries.read() {
            if let Some(s) = map.get(path.as_os_str()) {
                if s.matches(meta) && !racy(meta) {
                    s.seen.store(true, Relaxed);
                    self.hits.fetch_add(1, Relaxed);
                    return Ok(s.sha256.clone());
                }
            }
        }
        self.misses.fetch_add(1, Relaxed);
        let (hex, _) = crate::digest::sha256_file(path)?;
        if let Ok(mut map) = self.entries.write() {
            map.insert(path.as_os_str().to_owned(), stamp_of(meta, hex.clone()));
            self.dirty.store(true, Relaxed);
        }
        Ok(hex)
    }

    /// (hits, misses) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits.load(Relaxed), self.misses.load(Relaxed))
    }

    /// Writes the cache back if it changed. Entries for files that no longer exist are
    /// dropped so the file does not grow forever (only those this build did not stat need
    /// a look).
    pub fn save(&self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty.load(Relaxed) {
            return Ok(());
        }
        let map = self
            .entries
            .read()
            .map_err(|_| io::Error::other("stat cache lock poisoned"))?;
        let mut live: Vec<(&OsString, &Stamp)> = map
            .iter()
            .filter(|(p, s)| s.seen.load(Relaxed) || Path::new(p).exists())
            .collect();
        live.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut bytes = Vec::with_capacity(HEADER.len() + live.len() * 160);
        bytes.extend_from_slice(HEADER);
        for (p, s) in live {
            s.write_record(p, &mut bytes);
        }
        super::write_atomic(path, &bytes)?;
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_file(dir.join(LEGACY_FILE_NAME));
        }
        Ok(())
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

    #[test]
    fn odd_paths_round_trip_and_damage_is_an_empty_cache() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().expect("tmp");
        let store = super::super::Store::open(&dir.path().join("store")).expect("store");
        let names: [&[u8]; 3] = [b"with space", b"new\nline", b"latin1-\xe9"];
        let files: Vec<PathBuf> = names
            .iter()
            .map(|n| dir.path().join(OsStr::from_bytes(n)))
            .collect();
        let sc = StatCache::load(&store);
        for f in &files {
            std::fs::write(f, f.as_os_str().as_bytes()).expect("write");
            age(f);
            sc.sha256(f, &std::fs::metadata(f).expect("meta"))
                .expect("hash");
        }
        sc.save().expect("save");
        let on_disk = std::fs::read(store.root().join(FILE_NAME)).expect("read");
        assert!(on_disk.starts_with(HEADER));

        let sc = StatCache::load(&store);
        for f in &files {
            let want = crate::digest::sha256_hex(f.as_os_str().as_bytes());
            let got = sc
                .sha256(f, &std::fs::metadata(f).expect("meta"))
                .expect("hash");
            assert_eq!(got, want);
        }
        assert_eq!(sc.counts(), (3, 0));
        // Unchanged: nothing to write back.
        assert!(!sc.dirty.load(Relaxed));

        // A torn file (cut mid-record) or one of another format is an empty cache.
        for bad in [&on_disk[..on_disk.len() - 5], b"{}", b""] {
            std::fs::write(store.root().join(FILE_NAME), bad).expect("write");
            let sc = StatCache::load(&store);
            assert!(sc.entries.read().expect("lock").is_empty());
        }
    }

    #[test]
    fn saving_drops_the_legacy_json_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = super::super::Store::open(&dir.path().join("store")).expect("store");
        let legacy = store.root().join(LEGACY_FILE_NAME);
        std::fs::write(&legacy, b"{}").expect("write");
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").expect("write");
        let sc = StatCache::load(&store);
        sc.sha256(&f, &std::fs::metadata(&f).expect("meta"))
            .expect("hash");
        sc.save().expect("save");
        assert!(!legacy.exists());
        assert!(store.root().join(FILE_NAME).is_file());
    }
}

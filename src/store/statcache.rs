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
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;

pub(crate) const FILE_NAME: &str = "statcache";
/// Where strata kept the stat cache before (JSON); removed when the new one is written.
pub(crate) const LEGACY_FILE_NAME: &str = "statcache.json";
const HEADER: &[u8] = b"strata statcache 2\n";

/// The stat data a digest was taken with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
}

impl Stat {
    fn of(meta: &Metadata) -> Stat {
        Stat {
            size: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }

    /// One record, as [`Loaded::parse`] reads it back.
    fn write_record(&self, sha256: &str, path: &OsStr, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(
            out,
            "{} {} {} {} {} {} ",
            sha256, self.size, self.mtime_ns, self.ctime_ns, self.ino, self.dev
        );
        out.extend_from_slice(path.as_bytes());
        out.push(0);
    }
}

/// A digest taken during this build.
#[derive(Debug)]
struct Stamp {
    stat: Stat,
    sha256: String,
}

fn ns(secs: i64, nsec: i64) -> i128 {
    secs as i128 * 1_000_000_000 + nsec as i128
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
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Up to 19 digits fit a u64 (cheaper than i128 arithmetic): every field of a file
    // written before the year 2262.
    let n: i128 = if digits.len() <= 19 {
        digits
            .iter()
            .fold(0u64, |n, &b| n * 10 + u64::from(b - b'0'))
            .into()
    } else {
        digits
            .iter()
            .fold(0i128, |n, &b| n * 10 + i128::from(b - b'0'))
    };
    Some(if neg { -n } else { n })
}

/// One record of the loaded file: its stat data, and where its digest and path are in
/// the file's bytes (no allocation per record).
#[derive(Debug)]
struct Record {
    stat: Stat,
    /// Start of the record (its 64 hex digits come first).
    start: usize,
    /// The path, `start..` the NUL that ends the record.
    path: std::ops::Range<usize>,
}

/// The stat cache file as read at the start of a build: its bytes and one [`Record`] per
/// file, sorted by path (the order the file is written in), found by binary search.
#[derive(Debug, Default)]
struct Loaded {
    bytes: Vec<u8>,
    records: Vec<Record>,
    /// Per record: its file was stat'ed during this build (known to exist at save).
    seen: Vec<AtomicBool>,
}

impl Loaded {
    /// Reads a stat cache file; `None` if it is not one (a damaged file is an empty
    /// cache: it is a shortcut, never a source of truth).
    fn parse(bytes: Vec<u8>) -> Option<Loaded> {
        let body = bytes.strip_prefix(HEADER)?;
        // The file ends with a NUL; anything else is a torn record.
        if !body.is_empty() && body.last() != Some(&0) {
            return None;
        }
        let mut records: Vec<Record> = Vec::with_capacity(body.len() / 128);
        let mut at = HEADER.len();
        while at < bytes.len() {
            // A record's length: up to its NUL (`CStr` finds it a word at a time).
            let rest = std::ffi::CStr::from_bytes_until_nul(&bytes[at..]).ok()?;
            let end = at + rest.to_bytes().len();
            let rec = &bytes[at..end];
            let sha256 = rec.get(..64)?;
            if rec.get(64) != Some(&b' ')
                || !sha256
                    .iter()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return None;
            }
            let mut f = rec[65..].splitn(6, |&b| b == b' ');
            let mut num = || number(f.next()?);
            let stat = Stat {
                size: num()?.try_into().ok()?,
                mtime_ns: num()?,
                ctime_ns: num()?,
                ino: num()?.try_into().ok()?,
                dev: num()?.try_into().ok()?,
            };
            let path = f.next()?;
            if path.is_empty() {
                return None;
            }
            let path_start = end - path.len();
            if let Some(prev) = records.last() {
                // Written sorted and unique; anything else is not a file strata wrote.
                if bytes[prev.path.clone()] >= *path {
                    return None;
                }
            }
            records.push(Record {
                stat,
                start: at,
                path: path_start..end,
            });
            at = end + 1;
        }
        let seen = records.iter().map(|_| AtomicBool::new(false)).collect();
        Some(Loaded {
            bytes,
            records,
            seen,
        })
    }

    fn find(&self, path: &[u8]) -> Option<usize> {
        self.records
            .binary_search_by(|r| self.bytes[r.path.clone()].cmp(path))
            .ok()
    }

    fn path(&self, i: usize) -> &[u8] {
        &self.bytes[self.records[i].path.clone()]
    }

    fn sha256(&self, i: usize) -> &str {
        let start = self.records[i].start;
        // Checked to be 64 hex digits when loaded.
        std::str::from_utf8(&self.bytes[start..start + 64]).unwrap_or_default()
    }

    /// The whole record, its NUL included, as it is written back.
    fn raw(&self, i: usize) -> &[u8] {
        &self.bytes[self.records[i].start..=self.records[i].path.end]
    }
}

#[derive(Debug, Default)]
pub struct StatCache {
    path: Option<PathBuf>,
    /// The file being read and parsed on a thread of its own, while the build reads the
    /// recipe and walks the source trees; taken by the first look-up.
    loading: Mutex<Option<JoinHandle<Loaded>>>,
    loaded: OnceLock<Loaded>,
    /// Digests taken during this build (files new or changed since the file was written),
    /// keyed by the path's bytes. They take precedence over `loaded`.
    fresh: RwLock<HashMap<OsString, Stamp>>,
    /// Seconds since the epoch when the cache was loaded, for [`racy`].
    now: i64,
    dirty: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl StatCache {
    /// Loads the stat cache of a store; a missing or unreadable file is an empty cache (it
    /// is only ever a shortcut, never a source of truth).
    pub fn load(store: &super::Store) -> StatCache {
        // Taken before the file is read and before any file is stat'ed: a file written
        // after this moment counts as racy (see [`racy`]).
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let path = store.root().join(FILE_NAME);
        let read = {
            let path = path.clone();
            move || {
                std::fs::read(&path)
                    .ok()
                    .and_then(Loaded::parse)
                    .unwrap_or_default()
            }
        };
        let sc = StatCache {
            path: Some(path),
            now,
            ..Default::default()
        };
        match std::thread::Builder::new()
            .name("statcache".into())
            .spawn(read.clone())
        {
            Ok(h) => *sc.loading.lock().unwrap_or_else(|p| p.into_inner()) = Some(h),
            // No thread to be had: read it here.
            Err(_) => {
                let _ = sc.loaded.set(read());
            }
        }
        sc
    }

    /// The loaded file, waiting for its thread if it is still at work. A thread that
    /// failed leaves an empty cache.
    fn loaded(&self) -> &Loaded {
        self.loaded.get_or_init(|| {
            let handle = self
                .loading
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            handle.and_then(|h| h.join().ok()).unwrap_or_default()
        })
    }

    /// Hex sha256 of `path`, from the cache when its stat data is unchanged.
    pub fn sha256(&self, path: &Path, meta: &Metadata) -> io::Result<String> {
        let key = path.as_os_str();
        let stat = Stat::of(meta);
        let usable = !racy(meta, self.now);
        // Only files new or changed in this build are in `fresh`: on a rebuild that
        // changed nothing it stays empty and is never locked.
        if self.dirty.load(Relaxed) {
            if let Ok(map) = self.fresh.read() {
                if let Some(s) = map.get(key) {
                    if s.stat == stat && usable {
                        self.hits.fetch_add(1, Relaxed);
                        return Ok(s.sha256.clone());
                    }
                }
            }
        }
        let loaded = self.loaded();
        if let Some(i) = loaded.find(key.as_bytes()) {
            // Stat'ed now, so the record is kept at save even if it is stale.
            loaded.seen[i].store(true, Relaxed);
            if loaded.records[i].stat == stat && usable {
                self.hits.fetch_add(1, Relaxed);
                return Ok(loaded.sha256(i).to_string());
            }
        }
        self.misses.fetch_add(1, Relaxed);
        let (hex, _) = crate::digest::sha256_file(path)?;
        if let Ok(mut map) = self.fresh.write() {
            map.insert(
                key.to_owned(),
                Stamp {
                    stat,
                    sha256: hex.clone(),
                },
            );
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
        let fresh = self
            .fresh
            .read()
            .map_err(|_| io::Error::other("stat cache lock poisoned"))?;
        let l = self.loaded();
        // Records of the loaded file still wanted: not replaced by a fresh digest, and for
        // a file this build did not stat, only while it exists.
        let kept = (0..l.records.len()).filter(|&i| {
            let p = OsStr::from_bytes(l.path(i));
            !fresh.contains_key(p) && (l.seen[i].load(Relaxed) || Path::new(p).exists())
        });
        let mut rows: Vec<(&[u8], Row)> = kept.map(|i| (l.path(i), Row::Loaded(i))).collect();
        rows.extend(fresh.iter().map(|(p, s)| (p.as_bytes(), Row::Fresh(s))));
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut bytes = Vec::with_capacity(HEADER.len() + rows.len() * 160);
        bytes.extend_from_slice(HEADER);
        for (p, row) in rows {
            match row {
                Row::Loaded(i) => bytes.extend_from_slice(l.raw(i)),
                Row::Fresh(s) => s
                    .stat
                    .write_record(&s.sha256, OsStr::from_bytes(p), &mut bytes),
            }
        }
        super::write_atomic(path, &bytes)?;
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_file(dir.join(LEGACY_FILE_NAME));
        }
        Ok(())
    }
}

/// Where a record of the saved file comes from.
enum Row<'a> {
    Loaded(usize),
    Fresh(&'a Stamp),
}

/// A file modified within the last two seconds (counted from when the cache was loaded)
/// may change again within the same mtime tick without its stamp changing; such files are
/// always re-hashed (git's "racy clean").
fn racy(meta: &Metadata, now: i64) -> bool {
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
            assert!(sc.loaded().records.is_empty());
        }
        // So is one whose records are not sorted by path (binary search needs the order).
        let mut swapped = HEADER.to_vec();
        let body = &on_disk[HEADER.len()..];
        let recs: Vec<&[u8]> = body.split_inclusive(|&b| b == 0).collect();
        for r in recs.iter().rev() {
            swapped.extend_from_slice(r);
        }
        std::fs::write(store.root().join(FILE_NAME), &swapped).expect("write");
        assert!(StatCache::load(&store).loaded().records.is_empty());
    }

    fn set_mtime(path: &Path, when: SystemTime) {
        let f = std::fs::File::options()
            .write(true)
            .open(path)
            .expect("open");
        f.set_modified(when).expect("set mtime");
    }

    fn digest_of(sc: &StatCache, f: &Path) -> String {
        sc.sha256(f, &std::fs::symlink_metadata(f).expect("meta"))
            .expect("hash")
    }

    #[test]
    fn same_size_and_mtime_with_another_ctime_or_inode_is_reread() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tmp");
        let store = super::super::Store::open(&dir.path().join("store")).expect("store");
        let when = SystemTime::now() - Duration::from_secs(3600);
        let f = dir.path().join("f");
        std::fs::write(&f, b"one").expect("write");
        set_mtime(&f, when);
        let sc = StatCache::load(&store);
        assert_eq!(digest_of(&sc, &f), crate::digest::sha256_hex(b"one"));
        sc.save().expect("save");

        // Rewritten in place: same inode, size and mtime; only the ctime moved.
        std::thread::sleep(Duration::from_millis(20));
        let ino = std::fs::metadata(&f).expect("meta").ino();
        std::fs::write(&f, b"two").expect("write");
        set_mtime(&f, when);
        let m = std::fs::metadata(&f).expect("meta");
        assert_eq!((m.ino(), m.len()), (ino, 3));
        let sc = StatCache::load(&store);
        assert_eq!(digest_of(&sc, &f), crate::digest::sha256_hex(b"two"));
        assert_eq!(sc.counts(), (0, 1));
        sc.save().expect("save");

        // Replaced by another file (another inode) of the same size and mtime.
        let new = dir.path().join("f.new");
        std::fs::write(&new, b"six").expect("write");
        set_mtime(&new, when);
        std::fs::rename(&new, &f).expect("rename");
        assert_ne!(std::fs::metadata(&f).expect("meta").ino(), ino);
        let sc = StatCache::load(&store);
        assert_eq!(digest_of(&sc, &f), crate::digest::sha256_hex(b"six"));
        assert_eq!(sc.counts(), (0, 1));
        // Within the same build the fresh digest is used again.
        assert_eq!(digest_of(&sc, &f), crate::digest::sha256_hex(b"six"));
        assert_eq!(sc.counts(), (1, 1));
    }

    #[test]
    fn saving_merges_fresh_digests_and_drops_removed_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = super::super::Store::open(&dir.path().join("store")).expect("store");
        let files: Vec<PathBuf> = (0..5).map(|i| dir.path().join(format!("f{i}"))).collect();
        let sc = StatCache::load(&store);
        for f in &files[..4] {
            std::fs::write(f, f.as_os_str().as_bytes()).expect("write");
            age(f);
            digest_of(&sc, f);
        }
        sc.save().expect("save");

        // f0 is gone, f1 is not stat'ed by this build but still exists, f2 is unchanged,
        // f3 changed, f4 is new.
        std::fs::remove_file(&files[0]).expect("rm");
        std::fs::write(&files[3], b"changed").expect("write");
        age(&files[3]);
        std::fs::write(&files[4], b"new").expect("write");
        age(&files[4]);
        let sc = StatCache::load(&store);
        for f in &files[2..] {
            digest_of(&sc, f);
        }
        assert_eq!(sc.counts(), (1, 2));
        sc.save().expect("save");

        let sc = StatCache::load(&store);
        let kept: Vec<&[u8]> = (0..sc.loaded().records.len())
            .map(|i| sc.loaded().path(i))
            .collect();
        let want: Vec<&[u8]> = files[1..]
            .iter()
            .map(|f| f.as_os_str().as_bytes())
            .collect();
        assert_eq!(kept, want);
        for f in &files[1..] {
            let want = crate::digest::sha256_hex(&std::fs::read(f).expect("read"));
            assert_eq!(digest_of(&sc, f), want);
        }
        assert_eq!(sc.counts(), (4, 0));
    }

    #[test]
    fn numbers_parse_on_both_paths() {
        assert_eq!(number(b"0"), Some(0));
        assert_eq!(number(b"-12"), Some(-12));
        assert_eq!(
            number(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(
            number(b"-18446744073709551616"),
            Some(-18_446_744_073_709_551_616)
        );
        assert_eq!(number(&[b'9'; 38]), Some(10i128.pow(38) - 1));
        for bad in [&b""[..], b"-", b"1x", b"+1", b" 1", &[b'1'; 39]] {
            assert_eq!(number(bad), None, "{:?}", String::from_utf8_lossy(bad));
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

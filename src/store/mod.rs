//! The content-addressed store: blobs under `blobs/sha256/<hex>`, verified on write (hashed
//! while written to a temp file, renamed into place only if the digest matches) and on read
//! (hashed while read, an error at EOF on mismatch). Beside the blobs: the layer cache index
//! (`layers/<key>.json`) and the stat cache that lets a no-op rebuild skip reading sources.

mod statcache;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use statcache::StatCache;

use crate::digest::HashingWriter;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("digest mismatch for {what}: expected {expected}, found {found}")]
    DigestMismatch {
        what: String,
        expected: String,
        found: String,
    },
    #[error("blob {0} is not in the store")]
    Missing(String),
    #[error("invalid digest {0:?} (expected sha256:<64 hex digits>)")]
    BadDigest(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Splits `sha256:<hex>` into its hex part, refusing anything else (so a digest can never
/// become a path outside `blobs/`).
pub fn digest_hex(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(h)
        }
        _ => Err(StoreError::BadDigest(digest.to_string())),
    }
}

/// One cached layer: what a cache key resolved to last time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CachedLayer {
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    pub media_type: String,
    pub compressor: String,
}

/// A directory of blobs. Any directory with a `blobs/sha256/` (an OCI layout too) can be
/// opened as one.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Where blobs are written before they are renamed into place: `tmp/` in the cache,
    /// the layout's own root for an OCI layout (readers ignore stray files there).
    tmp: PathBuf,
    /// Blobs this process wrote here (hashed while written), with their sizes.
    written: Written,
}

/// Digest → size of the blobs a store handle (and its clones) committed.
type Written = Arc<Mutex<HashMap<String, u64>>>;

impl Store {
    /// Opens (creating if needed) a store at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        for sub in ["blobs/sha256", "layers", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
            tmp: root.join("tmp"),
            written: Written::default(),
        })
    }

    /// Opens the blob directory of an OCI image layout (`blobs/sha256` is created if
    /// missing, nothing else).
    pub fn for_layout(root: &Path) -> Result<Store> {
        let p = root.join("blobs/sha256");
        fs::create_dir_all(&p).map_err(io_err(&p))?;
        Ok(Store {
            root: root.to_path_buf(),
            tmp: root.to_path_buf(),
            written: Written::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    /// A temp file in the store's own filesystem, for writers that rename into place.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile> {
        tempfile::Builder::new()
            .prefix(".strata-tmp-")
            .tempfile_in(&self.tmp)
            .map_err(io_err(&self.tmp))
    }

    /// Starts writing a blob; `commit` checks and publishes it.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        Ok(BlobWriter {
            inner: HashingWriter::new(io::BufWriter::new(self.temp_file()?)),
            blobs: self.root.join("blobs/sha256"),
            written: self.written.clone(),
        })
    }

    /// Stores `bytes`, returning `sha256:<hex>`.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<String> {
        let digest = crate::digest::sha256_digest(bytes);
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let mut w = self.blob_writer()?;
        w.write_all(bytes).map_err(io_err(&self.root))?;
        w.commit(Some(&digest))
    }

    /// Opens a blob for reading; the reader fails at EOF if the bytes do not hash to
    /// `digest`.
    pub fn open_blob(&self, digest: &str) -> Result<VerifyingReader<File>> {
        let path = self.blob_path(digest)?;
        let f = File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::Missing(digest.to_string())
            } else {
                StoreError::Io { path, source: e }
            }
        })?;
        Ok(VerifyingReader::new(f, digest))
    }

    /// Reads a whole (small) blob, verified.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let mut r = self.open_blob(digest)?;
        let mut buf = Vec::new();
        r.read_to_end(&mut buf)
            .map_err(|e| verify_or_io(e, digest, &self.root))?;
        Ok(buf)
    }

    /// Copies a blob from another store (an OCI layout, say), verifying it on the way. A
    /// blob that `from` wrote in this process was hashed as it was written: it is copied
    /// by the kernel (`copy_file_range`) and checked by size instead of hashed again.
    pub fn import_blob(&self, from: &Store, digest: &str) -> Result<()> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let fresh = from
            .written
            .lock()
            .ok()
            .and_then(|w| w.get(digest).copied());
        if let Some(size) = fresh {
            return self.copy_fresh_blob(from, digest, size);
        }
        let mut r = from.open_blob(digest)?;
        let mut w = self.blob_writer()?;
        io::copy(&mut r, &mut w).map_err(|e| verify_or_io(e, digest, from.root()))?;
        w.commit(Some(digest))?;
        Ok(())
    }

    fn copy_fresh_blob(&self, from: &Store, digest: &str, size: u64) -> Result<()> {
        let src = from.blob_path(digest)?;
        let mut f = File::open(&src).map_err(io_err(&src))?;
        let mut tmp = self.temp_file()?;
        let n = io::copy(&mut f, tmp.as_file_mut()).map_err(io_err(&src))?;
        if n != size {
            return Err(StoreError::Io {
                path: src,
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("blob {digest} was written with {size} bytes, it now has {n}"),
                ),
            });
        }
        tmp.as_file().sync_all().map_err(io_err(&self.tmp))?;
        let dest = self.blob_path(digest)?;
        tmp.persist(&dest).map_err(|e| StoreError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        if let Ok(mut w) = self.written.lock() {
            w.insert(digest.to_string(), size);
        }
        Ok(())
    }

    /// Checks one blob's bytes against its name.
    pub fn verify_blob(&self, digest: &str) -> Result<u64> {
        let mut r = self.open_blob(digest)?;
        io::copy(&mut r, &mut io::sink()).map_err(|e| verify_or_io(e, digest, &self.root))
    }

    /// All blob digests, sorted.
    pub fn list_blobs(&self) -> Result<Vec<String>> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            if let Some(name) = e.file_name().to_str() {
                out.push(format!("sha256:{name}"));
            }
        }
        out.sort();
        Ok(out)
    }

    fn layer_index_path(&self, key: &str) -> PathBuf {
        self.root.join("layers").join(format!("{key}.json"))
    }

    /// Looks up a layer cache key. An entry whose blob is gone or unreadable is a miss.
    pub fn cached_layer(&self, key: &str) -> Option<CachedLayer> {
        let path = self.layer_index_path(key);
        let bytes = fs::read(&path).ok()?;
        let rec: CachedLayer = serde_json::from_slice(&bytes).ok()?;
        if !self.has_blob(&rec.digest) {
            return None;
        }
        // Mark as used, for `cache gc --older-than`.
        if let Ok(f) = File::options().append(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(rec)
    }

    pub fn put_cached_layer(&self, key: &str, rec: &CachedLayer) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(rec).map_err(|e| StoreError::Io {
            path: self.layer_index_path(key),
            source: e.into(),
        })?;
        self.write_atomic(&self.layer_index_path(key), &bytes)
    }

    /// All layer cache entries (key, record, last used).
    pub fn list_cached_layers(&self) -> Result<Vec<(String, CachedLayer, SystemTime)>> {
        let dir = self.root.join("layers");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            let path = e.path();
            let Some(key) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            let Ok(bytes) = fs::read(&path) else { continue };
            let Ok(rec) = serde_json::from_slice::<CachedLayer>(&bytes) else {
                continue;
            };
            let used = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            out.push((key.to_string(), rec, used));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Writes `bytes` to `path` through a temp file and rename, so readers see either the
    /// old or the new content.
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        write_atomic(path, bytes).map_err(io_err(path))
    }

    /// Removes layer cache entries unused for `older_than` (all when None), then every blob
    /// no remaining entry refers to, then stray temp files. Returns (entries, blobs, bytes)
    /// removed.
    pub fn gc(&self, older_than: Option<Duration>) -> Result<GcReport> {
        let _lock = self.lock(true)?;
        let now = SystemTime::now();
        let mut report = GcReport::default();
        let mut keep = std::collections::BTreeSet::new();
        for (key, rec, used) in self.list_cached_layers()? {
            let stale = match older_than {
                None => true,
                Some(age) => now.duration_since(used).unwrap_or_default() > age,
            };
            if stale {
                let p = self.layer_index_path(&key);
                fs::remove_file(&p).map_err(io_err(&p))?;
                report.entries += 1;
            } else {
                keep.insert(rec.digest);
            }
        }
        for digest in self.list_blobs()? {
            if !keep.contains(&digest) {
                let p = self.blob_path(&digest)?;
                report.bytes += fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                fs::remove_file(&p).map_err(io_err(&p))?;
                report.blobs += 1;
            }
        }
        let tmp = self.root.join("tmp");
        for e in fs::read_dir(&tmp).map_err(io_err(&tmp))?.flatten() {
            let _ = fs::remove_file(e.path());
        }
        if older_than.is_none() {
            for name in [statcache::FILE_NAME, statcache::LEGACY_FILE_NAME] {
                let _ = fs::remove_file(self.root.join(name));
            }
        }
        Ok(report)
    }

    /// A shared (build) or exclusive (gc) lock on the store.
    pub fn lock(&self, exclusive: bool) -> Result<StoreLock> {
        let path = self.root.join("lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        if exclusive {
            f.lock().map_err(io_err(&path))?;
        } else {
            f.lock_shared().map_err(io_err(&path))?;
        }
        Ok(StoreLock { _file: f })
    }
}

/// Held while a build or gc runs; released on drop.
pub struct StoreLock {
    _file: File,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct GcReport {
    pub entries: u64,
    pub blobs: u64,
    pub bytes: u64,
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn verify_or_io(e: io::Error, digest: &str, root: &Path) -> StoreError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<MismatchError>())
    {
        Some(m) => StoreError::DigestMismatch {
            what: format!("blob in {}", root.display()),
            expected: digest.to_string(),
            found: m.found.clone(),
        },
        None => StoreError::Io {
            path: root.to_path_buf(),
            source: e,
        },
    }
}

/// Hashes a blob while it is written; `commit` publishes it under its digest.
pub struct BlobWriter {
    inner: HashingWriter<io::BufWriter<tempfile::NamedTempFile>>,
    blobs: PathBuf,
    written: Written,
}

impl BlobWriter {
    /// Finishes the blob. With `expected`, a different digest is an error and nothing is
    /// published. Returns `sha256:<hex>`.
    pub fn commit(self, expected: Option<&str>) -> Result<String> {
        let (buf, hex, size) = self.inner.finish();
        let digest = format!("sha256:{hex}");
        if let Some(exp) = expected {
            if exp != digest {
                return Err(StoreError::DigestMismatch {
                    what: "blob being written".into(),
                    expected: exp.to_string(),
                    found: digest,
                });
            }
        }
        let tmp = buf.into_inner().map_err(|e| StoreError::Io {
            path: self.blobs.clone(),
            source: e.into_error(),
        })?;
        tmp.as_file().sync_all().map_err(io_err(&self.blobs))?;
        let dest = self.blobs.join(&hex);
        tmp.persist(&dest).map_err(|e| StoreError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        if let Ok(mut w) = self.written.lock() {
            w.insert(digest.clone(), size);
        }
        Ok(digest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Debug)]
struct MismatchError {
    found: String,
}
impl std::fmt::Display for MismatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "content hashes to {}", self.found)
    }
}
impl std::error::Error for MismatchError {}

/// Reads through, hashing; at EOF returns an error if the digest differs.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    expected: String,
    done: bool,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: &str) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            expected: expected.to_string(),
            done: false,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hasher.update(&buf[..n]);
        } else if !buf.is_empty() && !self.done {
            self.done = true;
            let found = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
            if found != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    MismatchError { found },
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_and_read_round_trip() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(dir.path()).expect("open");
        let d = s.put_bytes(b"abc").expect("put");
        assert_eq!(
            d,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(s.read_blob(&d).expect("read"), b"abc");
    }

    #[test]
    fn corrupt_blob_is_detected_on_read() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(dir.path()).expect("open");
        let d = s.put_bytes(b"abc").expect("put");
        fs::write(s.blob_path(&d).expect("path"), b"abd").expect("corrupt");
        match s.read_blob(&d) {
            Err(StoreError::DigestMismatch { expected, .. }) => assert_eq!(expected, d),
            other => panic!("expected mismatch, got {other:?}"),
        }
    }

    #[test]
    fn wrong_expected_digest_publishes_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(dir.path()).expect("open");
        let mut w = s.blob_writer().expect("writer");
        w.write_all(b"abc").expect("write");
        let bad = format!("sha256:{}", "0".repeat(64));
        assert!(matches!(
            w.commit(Some(&bad)),
            Err(StoreError::DigestMismatch { .. })
        ));
        assert!(s.list_blobs().expect("list").is_empty());
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
            0
        );
    }

    #[test]
    fn digests_cannot_name_paths() {
        for bad in ["sha256:../../etc/passwd", "md5:abc", "sha256:ABC", ""] {
            assert!(digest_hex(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gc_keeps_fresh_entries_and_drops_the_rest() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(dir.path()).expect("open");
        let kept = s.put_bytes(b"kept").expect("put");
        let orphan = s.put_bytes(b"orphan").expect("put");
        let rec = CachedLayer {
            digest: kept.clone(),
            diff_id: kept.clone(),
            size: 4,
            media_type: "x".into(),
            compressor: "y".into(),
        };
        s.put_cached_layer("k", &rec).expect("put layer");
        let r = s.gc(Some(Duration::from_secs(3600))).expect("gc");
        assert_eq!((r.entries, r.blobs), (0, 1));
        assert!(s.has_blob(&kept) && !s.has_blob(&orphan));
        assert_eq!(s.cached_layer("k"), Some(rec));
        let r = s.gc(None).expect("gc all");
        assert_eq!((r.entries, r.blobs), (1, 1));
        assert!(s.cached_layer("k").is_none());
    }

    #[test]
    fn import_copies_fresh_blobs_by_size_and_verifies_the_rest() {
        let dir = tempfile::tempdir().expect("tmp");
        let cache = Store::open(&dir.path().join("cache")).expect("open");
        let data = vec![7u8; 200_000];
        let d = cache.put_bytes(&data).expect("put");

        // Written by this handle: copied without hashing, same bytes.
        let out = Store::for_layout(&dir.path().join("out")).expect("layout");
        out.import_blob(&cache, &d).expect("import");
        assert_eq!(out.read_blob(&d).expect("read"), data);

        // Truncated after it was written: the size check refuses it.
        let out2 = Store::for_layout(&dir.path().join("out2")).expect("layout");
        fs::write(cache.blob_path(&d).expect("path"), &data[..1000]).expect("truncate");
        assert!(out2.import_blob(&cache, &d).is_err());
        assert!(!out2.has_blob(&d));

        // A blob from an earlier process (another handle) is hashed on the way: a corrupt
        // one, of the right size even, is refused.
        let mut bad = data.clone();
        bad[100] = 8;
        fs::write(cache.blob_path(&d).expect("path"), &bad).expect("corrupt");
        let earlier = Store::open(&dir.path().join("cache")).expect("open");
        let out3 = Store::for_layout(&dir.path().join("out3")).expect("layout");
        assert!(matches!(
            out3.import_blob(&earlier, &d),
            Err(StoreError::DigestMismatch { .. })
        ));
        assert!(!out3.has_blob(&d));
    }
}

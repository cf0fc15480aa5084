//! Getting bytes from a mirror. All network access goes through the small [`Fetcher`]
//! trait: [`HttpFetcher`] (HTTP and HTTPS) for real use, a map of URLs in unit tests.
//! Everything fetched is written into the content-addressed store only after its size and
//! sha256 match what a signed index said ([`fetch_verified`]), so the store never holds an
//! unverified `.deb` or index.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use super::lock::{DebianLock, LockedPackage};
use super::DebianError;
use crate::store::{Store, StoreError};

/// Seconds to wait for a connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Seconds without any byte of a response body before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("{url}: not found (HTTP 404)")]
    NotFound { url: String },
    #[error("{url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {detail}\nhint: check the mirror URL (--mirror / STRATA_DEBIAN_MIRROR) and the network")]
    Transport { url: String, detail: String },
    #[error("{url}: {detail}")]
    Sink { url: String, detail: String },
}

/// Something that can get a URL's body.
pub trait Fetcher {
    /// Streams the body of `url` into `out`, returning the bytes written.
    fn fetch(&self, url: &str, out: &mut dyn Write) -> Result<u64, FetchError>;
}

/// HTTP(S) through `ureq` (rustls; proxies from the usual environment variables).
pub struct HttpFetcher {
    agent: ureq3::Agent,
}

impl Default for HttpFetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpFetcher {
    pub fn new() -> HttpFetcher {
        let agent: ureq3::Agent = ureq3::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_body(Some(READ_TIMEOUT))
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        HttpFetcher { agent }
    }
}

impl Fetcher for HttpFetcher {
    fn fetch(&self, url: &str, out: &mut dyn Write) -> Result<u64, FetchError> {
        let resp = self.agent.get(url).call().map_err(|e| match e {
            ureq3::Error::StatusCode(404) => FetchError::NotFound {
                url: url.to_string(),
            },
            ureq3::Error::StatusCode(status) => FetchError::Status {
                url: url.to_string(),
                status,
            },
            e => FetchError::Transport {
                url: url.to_string(),
                detail: e.to_string(),
            },
        })?;
        let mut body = resp.into_body().into_reader();
        copy_sink(url, &mut body, out)
    }
}

/// Copies, telling apart errors of the source (network) and of the sink (disk, limits).
fn copy_sink(url: &str, r: &mut dyn Read, w: &mut dyn Write) -> Result<u64, FetchError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(FetchError::Transport {
                    url: url.to_string(),
                    detail: e.to_string(),
                })
            }
        };
        w.write_all(&buf[..k]).map_err(|e| FetchError::Sink {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
        n += k as u64;
    }
}

/// Refuses to take more than `limit` bytes, so a hostile server cannot fill the disk.
struct Limited<W> {
    inner: W,
    written: u64,
    limit: u64,
    overflow: bool,
}

impl<W: Write> Write for Limited<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            self.overflow = true;
            return Err(io::Error::other(format!(
                "larger than the {} bytes the index gives",
                self.limit
            )));
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Downloads `url` into the store, keeping it only if it is exactly `size` bytes with
/// sha256 `sha256_hex`. Returns the blob's digest (`sha256:…`).
pub fn fetch_verified(
    fetcher: &dyn Fetcher,
    url: &str,
    store: &Store,
    sha256_hex: &str,
    size: u64,
) -> Result<String, DebianError> {
    let digest = format!("sha256:{sha256_hex}");
    let mut w = Limited {
        inner: store.blob_writer()?,
        written: 0,
        limit: size,
        overflow: false,
    };
    // On any error the writer (a temp file) is dropped and removed: nothing half-written.
    fetcher.fetch(url, &mut w).map_err(|e| match e {
        FetchError::Sink { detail, .. } if w.overflow => DebianError::Verify {
            what: url.to_string(),
            detail: format!("{detail}: more bytes than the signed index says"),
        },
        e => e.into(),
    })?;
    if w.written != size {
        return Err(DebianError::Verify {
            what: url.to_string(),
            detail: format!("size {} bytes, the signed index says {size}", w.written),
        });
    }
    w.inner.commit(Some(&digest)).map_err(|e| match e {
        StoreError::DigestMismatch {
            expected, found, ..
        } => DebianError::Verify {
            what: url.to_string(),
            detail: format!(
                "sha256 mismatch: the signed index says {expected}, the download is {found}"
            ),
        },
        e => e.into(),
    })
}

/// Makes sure every package of `lock` is in the store: fetched from `mirror` through
/// `fetcher`, or, offline (`fetcher` None), found there already. Returns each package with
/// its blob's path, in lock order. Offline, every missing `.deb` is named in the error.
pub fn ensure_debs(
    lock: &DebianLock,
    store: &Store,
    fetcher: Option<(&dyn Fetcher, &str)>,
) -> Result<Vec<(PathBuf, LockedPackage)>, DebianError> {
    let mut missing = Vec::new();
    for p in &lock.packages {
        let digest = format!("sha256:{}", p.sha256);
        if store.has_blob(&digest) {
            continue;
        }
        match fetcher {
            Some((f, mirror)) => {
                let url = format!("{}/{}", mirror.trim_end_matches('/'), p.filename);
                fetch_verified(f, &url, store, &p.sha256, p.size).map_err(|e| {
                    DebianError::Package {
                        package: format!("{} {} ({})", p.name, p.version, p.arch),
                        err: Box::new(e),
                    }
                })?;
            }
            None => missing.push(format!(
                "{}_{}_{}.deb (sha256:{}, {})",
                p.name, p.version, p.arch, p.sha256, p.filename
            )),
        }
    }
    if !missing.is_empty() {
        return Err(DebianError::Offline { missing });
    }
    lock.packages
        .iter()
        .map(|p| Ok((store.blob_path(&format!("sha256:{}", p.sha256))?, p.clone())))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// URL → body, for unit tests.
    #[derive(Default)]
    pub(crate) struct MapFetcher {
        pub files: BTreeMap<String, Vec<u8>>,
        pub calls: std::cell::RefCell<Vec<String>>,
    }

    impl Fetcher for MapFetcher {
        fn fetch(&self, url: &str, out: &mut dyn Write) -> Result<u64, FetchError> {
            self.calls.borrow_mut().push(url.to_string());
            let body = self.files.get(url).ok_or_else(|| FetchError::NotFound {
                url: url.to_string(),
            })?;
            copy_sink(url, &mut &body[..], out)
        }
    }

    impl MapFetcher {
        /// A mirror at `mirror` serving the fixture repository's signed Release and the
        /// amd64 and arm64 `Packages.xz` of its `main` component.
        pub(crate) fn fixture_two_arches(mirror: &str) -> MapFetcher {
            let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/debian/repo");
            let mut f = MapFetcher::default();
            for rel in [
                "dists/fixture/InRelease",
                "dists/fixture/main/binary-amd64/Packages.xz",
                "dists/fixture/main/binary-arm64/Packages.xz",
            ] {
                let body = std::fs::read(format!("{repo}/{rel}")).unwrap();
                f.files.insert(format!("{mirror}/{rel}"), body);
            }
            f
        }
    }

    fn sha(b: &[u8]) -> String {
        crate::digest::sha256_digest(b)
            .trim_start_matches("sha256:")
            .to_string()
    }

    #[test]
    fn verified_fetch_keeps_only_matching_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut f = MapFetcher::default();
        f.files
            .insert("http://m.invalid/a".into(), b"hello".to_vec());
        let good = sha(b"hello");
        let d = fetch_verified(&f, "http://m.invalid/a", &store, &good, 5).unwrap();
        assert_eq!(store.read_blob(&d).unwrap(), b"hello");

        let other = sha(b"other");
        let e = fetch_verified(&f, "http://m.invalid/a", &store, &other, 5)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sha256 mismatch") && e.contains("http://m.invalid/a"),
            "{e}"
        );
        assert!(!store.has_blob(&format!("sha256:{other}")));

        let e = fetch_verified(&f, "http://m.invalid/a", &store, &good, 4)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("larger than the 4 bytes") && e.contains("nothing was stored"),
            "{e}"
        );
        let e = fetch_verified(&f, "http://m.invalid/a", &store, &good, 6)
            .unwrap_err()
            .to_string();
        assert!(e.contains("size 5 bytes, the signed index says 6"), "{e}");
        let e = fetch_verified(&f, "http://m.invalid/nope", &store, &good, 6)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not found"), "{e}");
        // No temp files left behind by the failures.
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}

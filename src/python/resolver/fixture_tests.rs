//! Locking against a fake index that serves the fixture wheels of fixtures/python.

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;

use super::*;
use crate::python::index::IndexFile;
use crate::python::step::parse_pinned;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/python")
}

/// Every fixture file, listed under its project; URLs are `fixture:FILENAME`.
#[derive(Default)]
struct FakeIndex {
    /// Files whose listed sha256 is wrong, to test verification.
    corrupt: Vec<String>,
    /// List no sizes or hashes (as a bare PEP 503 page may).
    bare: bool,
    /// URLs downloaded, in order.
    downloads: RefCell<Vec<String>>,
}

impl Index for FakeIndex {
    fn base_url(&self) -> &str {
        "http://127.0.0.1:1/simple"
    }
    fn project(&self, name: &str) -> Result<Vec<IndexFile>, String> {
        let mut out = Vec::new();
        let dir = std::fs::read_dir(fixtures()).map_err(|e| e.to_string())?;
        let mut names: Vec<String> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for f in names {
            let key = if f.ends_with(".whl") {
                WheelName::parse(&f).map(|w| w.key()).unwrap_or_default()
            } else if f.ends_with(".tar.gz") {
                f.split('-').next().map(normalize_name).unwrap_or_default()
            } else {
                continue;
            };
            if key != name {
                continue;
            }
            let bytes = std::fs::read(fixtures().join(&f)).map_err(|e| e.to_string())?;
            let sha = if self.corrupt.contains(&f) {
                "0".repeat(64)
            } else {
                crate::digest::sha256_hex(&bytes)
            };
            out.push(IndexFile {
                filename: f.clone(),
                url: format!("fixture:{f}"),
                sha256: Some(sha).filter(|_| !self.bare),
                size: Some(bytes.len() as u64).filter(|_| !self.bare),
                requires_python: None,
                yanked: false,
            });
        }
        if out.is_empty() {
            return Err(format!("project `{name}` is not on the index"));
        }
        Ok(out)
    }
    fn download(&self, url: &str) -> Result<Vec<u8>, String> {
        self.downloads.borrow_mut().push(url.to_string());
        let f = url.strip_prefix("fixture:").ok_or("bad url")?;
        std::fs::read(fixtures().join(f)).map_err(|e| e.to_string())
    }
}

#[derive(Default)]
struct Sink(RefCell<Vec<String>>);
impl WheelSink for Sink {
    fn put(&self, bytes: &[u8]) -> Result<(), String> {
        self.0.borrow_mut().push(crate::digest::sha256_hex(bytes));
        Ok(())
    }
}

/// Builds zeta's wheel in memory, as the sdist's backend would.
struct FakeBuilder;
impl SdistBuilder for FakeBuilder {
    fn build(&self, sdist: &str, _: &[u8], _: &str) -> Result<(String, Vec<u8>), String> {
        if sdist != "zeta-1.0.tar.gz" {
            return Err(format!("unexpected sdist {sdist}"));
        }
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, data) in [
            ("zeta/__init__.py", "ANSWER = 42\n"),
            (
                "zeta-1.0.dist-info/METADATA",
                "Metadata-Version: 2.1\nName: zeta\nVersion: 1.0\n\n",
            ),
        ] {
            z.start_file(name, opts).map_err(|e| e.to_string())?;
            z.write_all(data.as_bytes()).map_err(|e| e.to_string())?;
        }
        let bytes = z.finish().map_err(|e| e.to_string())?.into_inner();
        Ok(("zeta-1.0-py3-none-any.whl".into(), bytes))
    }
}

fn lock(pins: &[&str], corrupt: &[&str]) -> Result<(Lock, Vec<String>), String> {
    let target = Target::new("3.11", "manylinux_2_36_x86_64")?;
    let env = Env::cpython_linux("3.11", "x86_64");
    let pins: Vec<_> = pins
        .iter()
        .map(|p| parse_pinned(p).map_err(|e| e.message))
        .collect::<Result<_, _>>()?;
    let req = LockRequest {
        python: "3.11",
        platform: "manylinux_2_36_x86_64",
        target: &target,
        env: &env,
        pins: &pins,
    };
    let index = FakeIndex {
        corrupt: corrupt.iter().map(|s| s.to_string()).collect(),
        ..FakeIndex::default()
    };
    let sink = Sink::default();
    let l = resolve(&req, &index, &sink, &FakeBuilder, &|_| {})?;
    Ok((l, sink.0.into_inner()))
}

fn names(l: &Lock) -> Vec<String> {
    l.packages
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect()
}

#[test]
fn closure_follows_markers_and_ranges() {
    let (l, stored) = lock(&["alpha==1.0"], &[]).unwrap_or_else(|e| panic!("{e}"));
    // beta 2.0 exists but alpha wants <2; gamma (python<3.8), delta (win32) and
    // epsilon (extra) are left out.
    assert_eq!(names(&l), ["alpha 1.0", "beta 1.0"]);
    assert_eq!(l.packages[0].dependencies, ["beta"]);
    assert_eq!(l.requirements, ["alpha==1.0"]);
    let beta = &l.packages[1];
    let bytes = std::fs::read(fixtures().join("beta-1.0-py3-none-any.whl"));
    let bytes = bytes.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(beta.sha256, crate::digest::sha256_hex(&bytes));
    assert_eq!(beta.size, bytes.len() as u64);
    assert_eq!(beta.filename, "beta-1.0-py3-none-any.whl");
    assert!(!l.to_text().contains("fixture:"), "{}", l.to_text());
    assert_eq!(stored.len(), 2);
    // The same inputs give the same lock text.
    let (again, _) = lock(&["alpha==1.0"], &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(l.to_text(), again.to_text());
}

#[test]
fn extras_pull_in_their_dependencies() {
    let (l, _) = lock(&["alpha[fast]==1.0"], &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names(&l), ["alpha 1.0", "beta 1.0", "epsilon 1.0"]);
    // A pin whose marker is false for the image is skipped.
    let (l, _) = lock(&["beta==2.0", "delta==1.0; sys_platform == 'win32'"], &[])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names(&l), ["beta 2.0"]);
}

#[test]
fn conflicts_and_missing_things_are_explained() {
    let e = lock(&["beta==2.0", "alpha==1.0"], &[])
        .err()
        .unwrap_or_default();
    assert!(
        e.contains("alpha requires `beta>=1.0,<2`") && e.contains("hint:"),
        "{e}"
    );
    let e = lock(&["alpha==9.9"], &[]).err().unwrap_or_default();
    assert!(
        e.contains("no release of `alpha` matches `==9.9`") && e.contains("1.0"),
        "{e}"
    );
    let e = lock(&["nosuch==1.0"], &[]).err().unwrap_or_default();
    assert!(e.contains("not on the index"), "{e}");
    let e = lock(&["alpha==1.0"], &["beta-1.0-py3-none-any.whl"])
        .err()
        .unwrap_or_default();
    assert!(
        e.contains("beta-1.0-py3-none-any.whl") && e.contains("index lists"),
        "{e}"
    );
}

#[test]
fn sdists_are_built_at_lock_time() {
    let (l, stored) = lock(&["zeta==1.0"], &[]).unwrap_or_else(|e| panic!("{e}"));
    let z = &l.packages[0];
    assert_eq!(z.filename, "zeta-1.0-py3-none-any.whl");
    let sd = z
        .built_from
        .as_ref()
        .unwrap_or_else(|| panic!("no built_from"));
    assert_eq!(sd.filename, "zeta-1.0.tar.gz");
    assert_eq!(stored, std::slice::from_ref(&z.sha256));
    assert!(Lock::parse(&l.to_text()).is_ok());
}

#[test]
fn locked_files_are_found_by_name_and_verified() {
    use crate::python::index::fetch_by_name;
    let f = "beta-1.0-py3-none-any.whl";
    let bytes = std::fs::read(fixtures().join(f)).unwrap_or_else(|e| panic!("{e}"));
    let sha = crate::digest::sha256_hex(&bytes);
    let size = bytes.len() as u64;

    // Found on beta's page by its file name, downloaded from the URL the page gives.
    let index = FakeIndex::default();
    let got = fetch_by_name(&index, "beta", f, size, &sha);
    assert_eq!(got.as_deref().ok(), Some(bytes.as_slice()));
    assert_eq!(*index.downloads.borrow(), [format!("fixture:{f}")]);

    // A file the page does not list: named, with the index and the hint.
    let e = fetch_by_name(&index, "beta", "beta-1.1-py3-none-any.whl", size, &sha)
        .err()
        .unwrap_or_default();
    assert!(
        e.contains(
            "beta-1.1-py3-none-any.whl is not listed on the index http://127.0.0.1:1/simple"
        ) && e.contains("strata lock --update"),
        "{e}"
    );
    let e = fetch_by_name(&index, "nosuch", f, size, &sha)
        .err()
        .unwrap_or_default();
    assert!(
        e.contains("not on the index") && e.contains("--update"),
        "{e}"
    );

    // The index lists another hash or size than the lock: refused before downloading.
    let index = FakeIndex::default();
    let other = "f".repeat(64);
    let e = fetch_by_name(&index, "beta", f, size, &other)
        .err()
        .unwrap_or_default();
    assert!(
        e.contains(&format!("lists {f} with sha256 {sha}")) && e.contains("nothing downloaded"),
        "{e}"
    );
    let e = fetch_by_name(&index, "beta", f, size + 1, &sha)
        .err()
        .unwrap_or_default();
    assert!(e.contains("with size"), "{e}");
    assert!(index.downloads.borrow().is_empty());

    // An index that lists no hashes: the downloaded bytes are checked against the lock.
    let bare = FakeIndex {
        bare: true,
        ..FakeIndex::default()
    };
    let e = fetch_by_name(&bare, "beta", f, size, &other)
        .err()
        .unwrap_or_default();
    assert!(
        e.contains(&format!(
            "has sha256 {sha}, the lock says {other} (not stored)"
        )),
        "{e}"
    );
    let e = fetch_by_name(&bare, "beta", f, size + 1, &sha)
        .err()
        .unwrap_or_default();
    assert!(e.contains(&format!("has {size} bytes")), "{e}");
    assert_eq!(bare.downloads.borrow().len(), 2);
}

//! `Packages` indices: parsing (pure) and getting them from a mirror (through a
//! [`Fetcher`]), verified against the signed `Release` and cached in the store by their
//! sha256, so a second `strata lock` against an unchanged mirror downloads only `InRelease`.

use std::io::Read;

use super::fetch::{fetch_verified, FetchError, Fetcher};
use super::relation::{parse_provides, parse_relations, Alternatives, Provide};
use super::release::{parse_release, verify_inrelease, Keyring, Release};
use super::version::Version;
use super::{deb822, DebianError};
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MultiArch {
    No,
    Same,
    Foreign,
    Allowed,
}

impl MultiArch {
    pub fn as_str(self) -> &'static str {
        match self {
            MultiArch::No => "no",
            MultiArch::Same => "same",
            MultiArch::Foreign => "foreign",
            MultiArch::Allowed => "allowed",
        }
    }
}

/// One binary package as a `Packages` index describes it.
#[derive(Debug, Clone)]
pub struct PackageEntry {
    pub name: String,
    pub version: Version,
    pub arch: String,
    pub multi_arch: MultiArch,
    pub essential: bool,
    pub priority: String,
    pub depends: Vec<Alternatives>,
    pub pre_depends: Vec<Alternatives>,
    pub provides: Vec<Provide>,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// Source package name (the binary's name when `Source` is absent).
    pub source: String,
    /// Source version (the binary's version unless `Source: name (version)` says otherwise).
    pub source_version: String,
}

fn index_err(what: &str, line: usize, pkg: &str, detail: impl std::fmt::Display) -> DebianError {
    DebianError::Index {
        what: format!("{what}:{line}"),
        detail: if pkg.is_empty() {
            detail.to_string()
        } else {
            format!("package {pkg}: {detail}")
        },
    }
}

/// Parses a (decompressed) `Packages` file. `what` names it in errors.
pub fn parse_packages(what: &str, text: &str) -> Result<Vec<PackageEntry>, DebianError> {
    let paras = deb822::parse_paragraphs(text).map_err(|e| index_err(what, e.line(), "", e))?;
    let mut out = Vec::with_capacity(paras.len());
    for p in &paras {
        let line = p.line();
        let name = p.get("Package").unwrap_or("");
        let need = |f: &str| {
            p.get(f)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| index_err(what, line, name, format!("missing field {f}")))
        };
        let name = need("Package")?.to_string();
        let version =
            Version::parse(need("Version")?).map_err(|e| index_err(what, line, &name, e))?;
        let rel = |f: &str| {
            parse_relations(p.get(f).unwrap_or(""))
                .map_err(|e| index_err(what, line, &name, format!("{f}: {e}")))
        };
        let depends = rel("Depends")?;
        let pre_depends = rel("Pre-Depends")?;
        let provides = parse_provides(p.get("Provides").unwrap_or(""))
            .map_err(|e| index_err(what, line, &name, format!("Provides: {e}")))?;
        let multi_arch = match p.get("Multi-Arch").map(str::trim) {
            None | Some("no") => MultiArch::No,
            Some("same") => MultiArch::Same,
            Some("foreign") => MultiArch::Foreign,
            Some("allowed") => MultiArch::Allowed,
            Some(o) => {
                return Err(index_err(
                    what,
                    line,
                    &name,
                    format!("unknown Multi-Arch {o:?}"),
                ))
            }
        };
        let size = need("Size")?
            .parse::<u64>()
            .map_err(|_| index_err(what, line, &name, "Size is not a number"))?;
        let sha256 = need("SHA256")?.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(index_err(what, line, &name, "SHA256 is not 64 hex digits"));
        }
        let filename = need("Filename")?.to_string();
        if filename.starts_with('/') || filename.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(index_err(
                what,
                line,
                &name,
                format!("unsafe Filename {filename:?}"),
            ));
        }
        let (source, source_version) = match p.get("Source").map(str::trim) {
            None | Some("") => (name.clone(), version.to_string()),
            Some(s) => match s.split_once('(') {
                Some((n, v)) => (
                    n.trim().to_string(),
                    v.trim_end_matches(')').trim().to_string(),
                ),
                None => (s.to_string(), version.to_string()),
            },
        };
        out.push(PackageEntry {
            version,
            arch: need("Architecture")?.to_string(),
            multi_arch,
            essential: p
                .get("Essential")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("yes")),
            priority: p.get("Priority").unwrap_or("optional").to_string(),
            depends,
            pre_depends,
            provides,
            filename,
            size,
            sha256,
            source,
            source_version,
            name,
        });
    }
    Ok(out)
}

/// Decompresses an index file by its name's suffix (`.xz`, `.gz`, or none).
pub fn decompress(path: &str, bytes: &[u8]) -> Result<String, DebianError> {
    let mut out = Vec::new();
    let res = if path.ends_with(".xz") {
        lzma_rs::xz_decompress(&mut &bytes[..], &mut out).map_err(|e| e.to_string())
    } else if path.ends_with(".gz") {
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map(|_| ())
            .map_err(|e| e.to_string())
    } else {
        out.extend_from_slice(bytes);
        Ok(())
    };
    res.map_err(|detail| DebianError::Index {
        what: path.to_string(),
        detail: format!("cannot decompress: {detail}"),
    })?;
    String::from_utf8(out).map_err(|e| DebianError::Index {
        what: path.to_string(),
        detail: format!("not UTF-8: {e}"),
    })
}

/// One index file used, as recorded in the lockfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedIndex {
    /// Below `dists/SUITE/`, e.g. `main/binary-amd64/Packages.xz`.
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// What `fetch_indices` found: the verified Release, the index files and their packages.
#[derive(Debug)]
pub struct Indices {
    pub inrelease_sha256: String,
    pub release: Release,
    pub files: Vec<UsedIndex>,
    pub packages: Vec<PackageEntry>,
}

/// The Packages variants tried, best first.
const PACKAGES_NAMES: [&str; 3] = ["Packages.xz", "Packages.gz", "Packages"];

/// One architecture's part of [`ArchIndices`]: its `Packages` files and their packages
/// (`Architecture: all` packages included, as each architecture's index lists them).
#[derive(Debug)]
pub struct ArchIndex {
    pub arch: String,
    pub files: Vec<UsedIndex>,
    pub packages: Vec<PackageEntry>,
}

/// What [`fetch_arch_indices`] found: one verified Release and each architecture's indices.
#[derive(Debug)]
pub struct ArchIndices {
    pub inrelease_sha256: String,
    pub release: Release,
    /// In the order the architectures were asked for.
    pub arches: Vec<ArchIndex>,
}

/// Fetches and verifies `dists/SUITE/InRelease`, then each component's Packages index for
/// `arch` (from the store when its sha256 is already there).
#[allow(clippy::too_many_arguments)]
pub fn fetch_indices(
    fetcher: &dyn Fetcher,
    store: &Store,
    mirror: &str,
    suite: &str,
    components: &[String],
    arch: &str,
    keyring: &Keyring,
    now: i64,
) -> Result<Indices, DebianError> {
    let mut all = fetch_arch_indices(
        fetcher,
        store,
        mirror,
        suite,
        components,
        &[arch.to_string()],
        keyring,
        now,
    )?;
    let one = all.arches.remove(0);
    Ok(Indices {
        inrelease_sha256: all.inrelease_sha256,
        release: all.release,
        files: one.files,
        packages: one.packages,
    })
}

/// Fetches and verifies `dists/SUITE/InRelease` once, then for each of `arches` each
/// component's `binary-ARCH` Packages index, checked against that one Release (from the
/// store when its sha256 is already there).
#[allow(clippy::too_many_arguments)]
pub fn fetch_arch_indices(
    fetcher: &dyn Fetcher,
    store: &Store,
    mirror: &str,
    suite: &str,
    components: &[String],
    arches: &[String],
    keyring: &Keyring,
    now: i64,
) -> Result<ArchIndices, DebianError> {
    let base = format!("{}/dists/{suite}", mirror.trim_end_matches('/'));
    let inrelease_url = format!("{base}/InRelease");
    let mut bytes = Vec::new();
    fetcher.fetch(&inrelease_url, &mut bytes).map_err(|e| match e {
        FetchError::NotFound { .. } => DebianError::Index {
            what: inrelease_url.clone(),
            detail: format!("not found\nhint: is {suite:?} a suite this mirror serves? (the mirror URL is the directory holding dists/ and pool/)"),
        },
        e => e.into(),
    })?;
    let text = verify_inrelease(&inrelease_url, &bytes, keyring)?;
    let release = parse_release(&inrelease_url, &text)?;
    release.check(&inrelease_url, suite, now)?;
    let inrelease_sha256 = crate::digest::sha256_digest(&bytes);
    let mut out = Vec::new();
    for arch in arches {
        let (files, packages) = fetch_packages(
            fetcher,
            store,
            &base,
            &inrelease_url,
            &release,
            components,
            arch,
        )?;
        out.push(ArchIndex {
            arch: arch.clone(),
            files,
            packages,
        });
    }
    Ok(ArchIndices {
        inrelease_sha256,
        release,
        arches: out,
    })
}

/// Each component's Packages index of `arch`, as `release` lists it.
fn fetch_packages(
    fetcher: &dyn Fetcher,
    store: &Store,
    base: &str,
    inrelease_url: &str,
    release: &Release,
    components: &[String],
    arch: &str,
) -> Result<(Vec<UsedIndex>, Vec<PackageEntry>), DebianError> {
    let mut files = Vec::new();
    let mut packages = Vec::new();
    for comp in components {
        let candidates: Vec<String> = PACKAGES_NAMES
            .iter()
            .map(|n| format!("{comp}/binary-{arch}/{n}"))
            .collect();
        let Some((path, entry)) = candidates
            .iter()
            .find_map(|p| release.sha256.get(p).map(|e| (p.clone(), e.clone())))
        else {
            return Err(DebianError::Index {
                what: inrelease_url.to_string(),
                detail: format!(
                    "lists no Packages index for component {comp:?} and architecture {arch:?}\nhint: the suite has components {:?} and architectures {:?}",
                    release.components, release.architectures
                ),
            });
        };
        let digest = format!("sha256:{}", entry.sha256);
        if !store.has_blob(&digest) {
            // By hash when the archive offers it: immune to the mirror updating between
            // InRelease and this request. Falls back to the plain path.
            let url = format!("{base}/{path}");
            let fetched = if release.acquire_by_hash {
                let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                let by_hash = format!("{base}/{dir}/by-hash/SHA256/{}", entry.sha256);
                match fetch_verified(fetcher, &by_hash, store, &entry.sha256, entry.size) {
                    Err(DebianError::Fetch(FetchError::NotFound { .. })) => None,
                    other => Some(other),
                }
            } else {
                None
            };
            match fetched {
                Some(r) => r?,
                None => fetch_verified(fetcher, &url, store, &entry.sha256, entry.size)?,
            };
        }
        let raw = store.read_blob(&digest)?;
        let text = decompress(&path, &raw)?;
        packages.extend(parse_packages(&path, &text)?);
        files.push(UsedIndex {
            path,
            sha256: entry.sha256.clone(),
            size: entry.size,
        });
    }
    Ok((files, packages))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0a3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6";

    fn para(extra: &str) -> String {
        format!("Package: foo\nVersion: 1.0-1\nArchitecture: amd64\nFilename: pool/main/f/foo/foo_1.0-1_amd64.deb\nSize: 123\nSHA256: {SHA}\n{extra}")
    }

    #[test]
    fn parses_fields() {
        let text = format!(
            "{}\n{}",
            para("Source: foo-src (1.0-0.1)\nDepends: libc6 (>= 2.36), a | b\nPre-Depends: dpkg\nProvides: bar (= 2), baz\nMulti-Arch: foreign\nEssential: yes\nPriority: required\nDescription: x\n long\n"),
            "Package: p\nVersion: 2\nArchitecture: all\nFilename: pool/p.deb\nSize: 1\nSHA256: ".to_string() + SHA + "\nSource: psrc\n",
        );
        let ps = parse_packages("Packages", &text).unwrap();
        assert_eq!(ps.len(), 2);
        let f = &ps[0];
        assert_eq!(
            (f.name.as_str(), f.version.as_str(), f.arch.as_str()),
            ("foo", "1.0-1", "amd64")
        );
        assert_eq!(
            (f.source.as_str(), f.source_version.as_str()),
            ("foo-src", "1.0-0.1")
        );
        assert_eq!(f.depends.len(), 2);
        assert_eq!(f.depends[1].len(), 2);
        assert_eq!(f.pre_depends[0][0].name, "dpkg");
        assert_eq!(f.provides.len(), 2);
        assert_eq!(f.multi_arch, MultiArch::Foreign);
        assert!(f.essential);
        assert_eq!(f.priority, "required");
        assert_eq!(f.size, 123);
        let p = &ps[1];
        assert_eq!(
            (p.source.as_str(), p.source_version.as_str()),
            ("psrc", "2")
        );
        assert_eq!(p.multi_arch, MultiArch::No);
        assert!(!p.essential);
        assert_eq!(p.priority, "optional");
    }

    #[test]
    fn errors_name_the_place_and_package() {
        let cases = [
            (
                para("Depends: a (>= )\n"),
                "Packages:1: package foo: Depends:",
            ),
            (para("Multi-Arch: sometimes\n"), "unknown Multi-Arch"),
            (
                para("").replace("Size: 123", "Size: big"),
                "Size is not a number",
            ),
            (para("").replace(SHA, "abc"), "SHA256 is not 64 hex digits"),
            (para("").replace("pool/main", "../pool"), "unsafe Filename"),
            (
                para("").replace("Version: 1.0-1\n", ""),
                "missing field Version",
            ),
            (
                format!(
                    "{}\n{}",
                    para(""),
                    para("").replace("Version: 1.0-1", "Version: x")
                ),
                "Packages:8: package foo: invalid version",
            ),
        ];
        for (text, msg) in cases {
            let e = parse_packages("Packages", &text).unwrap_err().to_string();
            assert!(e.contains(msg), "{text:?}: {e}");
        }
    }

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/debian/repo");

    fn fixture(rel: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURE}/{rel}")).unwrap()
    }

    #[test]
    fn fetches_verifies_and_caches_indices() {
        use crate::debian::fetch::tests::MapFetcher;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ring = Keyring::from_bytes("keyring.gpg", &fixture("keyring.gpg")).unwrap();
        let m = "http://mirror.example.invalid/debian";
        let xz = "dists/fixture/main/binary-amd64/Packages.xz";
        let mut f = MapFetcher::default();
        for rel in ["dists/fixture/InRelease", xz] {
            f.files.insert(format!("{m}/{rel}"), fixture(rel));
        }
        let main = vec!["main".to_string()];
        let idx = fetch_indices(&f, &store, m, "fixture", &main, "amd64", &ring, 0).unwrap();
        assert_eq!(idx.files.len(), 1);
        assert_eq!(idx.files[0].path, "main/binary-amd64/Packages.xz");
        assert_eq!(idx.packages.len(), 10);
        assert_eq!(
            idx.inrelease_sha256,
            crate::digest::sha256_digest(&fixture("dists/fixture/InRelease"))
        );
        // Cached by hash: the second time only InRelease is fetched.
        f.calls.borrow_mut().clear();
        fetch_indices(&f, &store, m, "fixture", &main, "amd64", &ring, 0).unwrap();
        assert_eq!(*f.calls.borrow(), [format!("{m}/dists/fixture/InRelease")]);
        // Errors: a suite the mirror lacks, a component or architecture the Release lacks.
        let e = fetch_indices(&f, &store, m, "nope", &main, "amd64", &ring, 0).unwrap_err();
        assert!(
            e.to_string()
                .contains("not found\nhint: is \"nope\" a suite"),
            "{e}"
        );
        let e = fetch_indices(&f, &store, m, "fixture", &main, "s390x", &ring, 0).unwrap_err();
        assert!(
            e.to_string()
                .contains("no Packages index for component \"main\" and architecture \"s390x\""),
            "{e}"
        );
    }

    #[test]
    fn one_release_and_each_architectures_packages() {
        use crate::debian::fetch::tests::MapFetcher;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ring = Keyring::from_bytes("keyring.gpg", &fixture("keyring.gpg")).unwrap();
        let m = "http://mirror.example.invalid/debian";
        let f = MapFetcher::fixture_two_arches(m);
        let main = vec!["main".to_string()];
        let arches = vec!["amd64".to_string(), "arm64".to_string()];
        let idx = fetch_arch_indices(&f, &store, m, "fixture", &main, &arches, &ring, 0).unwrap();
        // InRelease once, then one index per architecture.
        assert_eq!(
            *f.calls.borrow(),
            [
                format!("{m}/dists/fixture/InRelease"),
                format!("{m}/dists/fixture/main/binary-amd64/Packages.xz"),
                format!("{m}/dists/fixture/main/binary-arm64/Packages.xz"),
            ]
        );
        let names: Vec<&str> = idx.arches.iter().map(|a| a.arch.as_str()).collect();
        assert_eq!(names, ["amd64", "arm64"]);
        for a in &idx.arches {
            assert_eq!(a.files.len(), 1);
            assert_eq!(
                a.files[0].path,
                format!("main/binary-{}/Packages.xz", a.arch)
            );
            // Each index has its own architecture's packages and the arch:all ones.
            assert!(a
                .packages
                .iter()
                .all(|p| p.arch == a.arch || p.arch == "all"));
            assert!(a.packages.iter().any(|p| p.arch == "all"));
            assert!(a
                .packages
                .iter()
                .any(|p| p.name == "hello-app" && p.arch == a.arch));
        }
        let arm = &idx.arches[1].packages;
        assert!(arm.iter().any(|p| p.name == "libc6"));
        assert!(!idx.arches[0].packages.iter().any(|p| p.name == "libc6"));
        // An arm64 index that is not the one the signed Release lists is refused.
        let mut f2 = MapFetcher::default();
        f2.files.insert(
            format!("{m}/dists/fixture/InRelease"),
            fixture("dists/fixture/InRelease"),
        );
        f2.files.insert(
            format!("{m}/dists/fixture/main/binary-arm64/Packages.xz"),
            fixture("dists/fixture/main/binary-amd64/Packages.xz"),
        );
        let other_dir = tempfile::tempdir().unwrap();
        let other = Store::open(other_dir.path()).unwrap();
        let e = fetch_arch_indices(&f2, &other, m, "fixture", &main, &arches[1..], &ring, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("binary-arm64/Packages.xz"), "{e}");
    }

    #[test]
    fn by_hash_indices() {
        use crate::debian::fetch::tests::MapFetcher;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ring = Keyring::from_bytes("keyring.gpg", &fixture("keyring.gpg")).unwrap();
        let m = "http://mirror.example.invalid/debian";
        let dir_hash = format!("{FIXTURE}/dists/byhash/main/binary-amd64/by-hash/SHA256");
        let name = std::fs::read_dir(&dir_hash)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name();
        let by_hash = format!(
            "dists/byhash/main/binary-amd64/by-hash/SHA256/{}",
            name.to_string_lossy()
        );
        let mut f = MapFetcher::default();
        for rel in ["dists/byhash/InRelease", by_hash.as_str()] {
            f.files.insert(format!("{m}/{rel}"), fixture(rel));
        }
        let main = vec!["main".to_string()];
        let idx = fetch_indices(&f, &store, m, "byhash", &main, "amd64", &ring, 0).unwrap();
        assert_eq!(idx.packages.len(), 10);
        assert_eq!(f.calls.borrow().last().unwrap(), &format!("{m}/{by_hash}"));
        // A mirror without by-hash files: the plain path is used.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut f = MapFetcher::default();
        f.files.insert(
            format!("{m}/dists/byhash/InRelease"),
            fixture("dists/byhash/InRelease"),
        );
        f.files.insert(
            format!("{m}/dists/byhash/main/binary-amd64/Packages.xz"),
            fixture("dists/fixture/main/binary-amd64/Packages.xz"),
        );
        let idx = fetch_indices(&f, &store, m, "byhash", &main, "amd64", &ring, 0).unwrap();
        assert_eq!(idx.packages.len(), 10);
        assert_eq!(f.calls.borrow().len(), 3);
    }

    #[test]
    fn decompression() {
        let text = para("");
        let mut gz = Vec::new();
        {
            use std::io::Write;
            let mut w = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::default());
            w.write_all(text.as_bytes()).unwrap();
            w.finish().unwrap();
        }
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut text.as_bytes(), &mut xz).unwrap();
        assert_eq!(decompress("a/Packages.gz", &gz).unwrap(), text);
        assert_eq!(decompress("a/Packages.xz", &xz).unwrap(), text);
        assert_eq!(decompress("a/Packages", text.as_bytes()).unwrap(), text);
        let e = decompress("a/Packages.xz", b"garbage")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a/Packages.xz: cannot decompress"), "{e}");
    }
}

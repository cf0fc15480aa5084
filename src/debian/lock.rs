//! The debian part of the lockfile `RECIPE.lock` ([`crate::lockfile`] reads and writes the
//! file): one `[[package]]` table per package sorted by name then architecture, fields in a
//! fixed order, so the same resolution always gives the same bytes and a change reads well
//! in a diff.
//!
//! It records what the resolution used (the `InRelease` and `Packages` digests) and what it
//! chose (name, version, architecture, pool path, size, sha256, source). It names no mirror:
//! `identity` is a digest of the chosen packages alone, the same whichever mirror served
//! them. `inputs` is a digest of what the recipe asked for (suite, components, packages,
//! exclude, essential, architecture): when it differs from the recipe's, the lock is stale.
//! A recipe with several platforms has one [`DebianLock`] per architecture (see
//! [`stale_reason_all`]); the file holds them as `[arch.ARCH]` tables.

use serde::{Deserialize, Serialize};

use super::index::{PackageEntry, UsedIndex};
use crate::lockfile::LOCK_FORMAT;

/// The resolution of a `debian` step. In the file its scalars are top-level keys, beside
/// `format`, followed by `[index]` and the `[[package]]` tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianLock {
    /// Digest of the recipe's resolution inputs ([`LockInputs::digest`]).
    pub inputs: String,
    /// Digest of the chosen packages ([`DebianLock::compute_identity`]); names no mirror.
    pub identity: String,
    pub suite: String,
    pub architecture: String,
    pub index: LockedIndex,
    pub packages: Vec<LockedPackage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedIndex {
    /// `sha256:` of the `InRelease` file whose signature was checked.
    pub inrelease: String,
    /// The `Packages` files read (in a multi-architecture lock they are under each
    /// architecture's table instead, and this is empty).
    #[serde(rename = "file", default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<LockedIndexFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedIndexFile {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Path below the mirror's root, e.g. `pool/main/b/bash/bash_5.2.15-2+b7_amd64.deb`.
    pub filename: String,
    pub size: u64,
    /// Hex, without `sha256:`.
    pub sha256: String,
    pub source: String,
    pub source_version: String,
    pub multi_arch: String,
    pub essential: bool,
}

impl LockedPackage {
    pub fn from_entry(p: &PackageEntry) -> LockedPackage {
        LockedPackage {
            name: p.name.clone(),
            version: p.version.to_string(),
            arch: p.arch.clone(),
            filename: p.filename.clone(),
            size: p.size,
            sha256: p.sha256.clone(),
            source: p.source.clone(),
            source_version: p.source_version.clone(),
            multi_arch: p.multi_arch.as_str().to_string(),
            essential: p.essential,
        }
    }
}

/// What the recipe asked for; its digest decides staleness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockInputs {
    pub suite: String,
    pub components: Vec<String>,
    pub packages: Vec<String>,
    pub exclude: Vec<String>,
    pub essential: bool,
    pub architecture: String,
}

impl LockInputs {
    pub fn digest(&self) -> String {
        // serde_json writes struct fields in declaration order: stable bytes.
        let json = serde_json::to_vec(&(LOCK_FORMAT, self)).unwrap_or_default();
        crate::digest::sha256_digest(&json)
    }
}

impl DebianLock {
    pub fn new(
        inputs: &LockInputs,
        inrelease_sha256: &str,
        files: &[UsedIndex],
        packages: &[&PackageEntry],
    ) -> DebianLock {
        let mut pkgs: Vec<LockedPackage> = packages
            .iter()
            .map(|p| LockedPackage::from_entry(p))
            .collect();
        pkgs.sort();
        let mut lock = DebianLock {
            inputs: inputs.digest(),
            identity: String::new(),
            suite: inputs.suite.clone(),
            architecture: inputs.architecture.clone(),
            index: LockedIndex {
                inrelease: inrelease_sha256.to_string(),
                files: files
                    .iter()
                    .map(|f| LockedIndexFile {
                        path: f.path.clone(),
                        sha256: f.sha256.clone(),
                        size: f.size,
                    })
                    .collect(),
            },
            packages: pkgs,
        };
        lock.identity = lock.compute_identity();
        lock
    }

    /// sha256 over `name version arch sha256` lines of the sorted packages.
    pub fn compute_identity(&self) -> String {
        let mut s = String::new();
        for p in &self.packages {
            s.push_str(&format!(
                "{} {} {} {}\n",
                p.name, p.version, p.arch, p.sha256
            ));
        }
        crate::digest::sha256_digest(s.as_bytes())
    }

    /// Checks a part read from a file: `identity` matches the packages (a hand edit is
    /// refused), every sha256 is well formed, every filename stays below the mirror's root.
    /// The error is its detail.
    pub fn check(&self) -> Result<(), String> {
        if self.identity != self.compute_identity() {
            return Err("identity does not match its packages (was it edited by hand?)\nhint: run `strata lock RECIPE` to rewrite it".into());
        }
        for p in &self.packages {
            if p.sha256.len() != 64
                || !p
                    .sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(format!(
                    "package {}: sha256 {:?} is not 64 lower-case hex digits\nhint: run `strata lock RECIPE` to rewrite it",
                    p.name, p.sha256
                ));
            }
            if p.filename.starts_with('/')
                || p.filename.split('/').any(|c| c == ".." || c.is_empty())
            {
                return Err(format!(
                    "package {}: unsafe filename {:?}\nhint: run `strata lock RECIPE` to rewrite it",
                    p.name, p.filename
                ));
            }
        }
        Ok(())
    }

    /// None when the lock was made from `inputs`, else why it is stale.
    pub fn stale_reason(&self, inputs: &LockInputs) -> Option<String> {
        if self.inputs != inputs.digest() {
            return Some(format!(
                "the recipe's debian step (suite, components, packages, exclude, essential or platform) changed since the lock was written (lock inputs {}, recipe {})",
                self.inputs,
                inputs.digest()
            ));
        }
        None
    }
}

/// None when `locks` (one per architecture) were made from `inputs` (one per architecture
/// the recipe builds), else why not: for each architecture whose part is stale or missing,
/// and for each part of an architecture the recipe no longer builds.
pub fn stale_reason_all(locks: &[DebianLock], inputs: &[LockInputs]) -> Option<String> {
    if let ([lock], [one]) = (locks, inputs) {
        return lock.stale_reason(one);
    }
    let mut why = Vec::new();
    for i in inputs {
        match locks.iter().find(|l| l.architecture == i.architecture) {
            None => why.push(format!(
                "it has no packages for architecture {} (the recipe's platforms include it)",
                i.architecture
            )),
            Some(l) => {
                if let Some(r) = l.stale_reason(i) {
                    why.push(format!("architecture {}: {r}", i.architecture));
                }
            }
        }
    }
    for l in locks {
        if !inputs.iter().any(|i| i.architecture == l.architecture) {
            why.push(format!(
                "it has packages for architecture {}, which the recipe's platforms do not include",
                l.architecture
            ));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::index::parse_packages;
    use crate::lockfile::Lockfile;

    const SHA_A: &str = "0a3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6";
    const SHA_B: &str = "1b3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6";

    /// The bytes this lock had before the file could hold a `[base]` table: they must not
    /// change, or every existing lock would be rewritten.
    const GOLDEN: &str = r#"# Written by `strata lock`: do not edit by hand; run `strata lock RECIPE` to update.
format = 1
inputs = "sha256:2d6463d198c2b17e7666314f906dfd5381b43b5f34528e060b67a50002825f90"
identity = "sha256:2090225e3c8030d5ebf851ce9c619ad2cbc86c7a683592c7f8db2590cd66ed7a"
suite = "bookworm"
architecture = "amd64"

[index]
inrelease = "sha256:00"

[[index.file]]
path = "main/binary-amd64/Packages.xz"
sha256 = "0a3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6"
size = 5

[[package]]
name = "aa"
version = "1.0"
arch = "all"
filename = "pool/main/a/aa/aa_1.0_all.deb"
size = 20
sha256 = "1b3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6"
source = "aa-src"
source_version = "0.9"
multi_arch = "no"
essential = true

[[package]]
name = "zz"
version = "1:2.0-1"
arch = "amd64"
filename = "pool/main/z/zz/zz_2.0-1_amd64.deb"
size = 10
sha256 = "0a3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6"
source = "zz"
source_version = "1:2.0-1"
multi_arch = "same"
essential = false
"#;

    fn entries() -> Vec<PackageEntry> {
        let text = format!(
            "Package: zz\nVersion: 1:2.0-1\nArchitecture: amd64\nFilename: pool/main/z/zz/zz_2.0-1_amd64.deb\nSize: 10\nSHA256: {SHA_A}\nMulti-Arch: same\n\n\
             Package: aa\nVersion: 1.0\nArchitecture: all\nFilename: pool/main/a/aa/aa_1.0_all.deb\nSize: 20\nSHA256: {SHA_B}\nSource: aa-src (0.9)\nEssential: yes\n"
        );
        parse_packages("P", &text).unwrap()
    }

    fn inputs() -> LockInputs {
        LockInputs {
            suite: "bookworm".into(),
            components: vec!["main".into()],
            packages: vec!["zz".into()],
            exclude: vec![],
            essential: false,
            architecture: "amd64".into(),
        }
    }

    fn lock() -> DebianLock {
        let e = entries();
        let refs: Vec<&PackageEntry> = e.iter().collect();
        let files = [UsedIndex {
            path: "main/binary-amd64/Packages.xz".into(),
            sha256: SHA_A.into(),
            size: 5,
        }];
        DebianLock::new(&inputs(), "sha256:00", &files, &refs)
    }

    fn file(l: &DebianLock) -> String {
        Lockfile {
            base: None,
            debian: vec![l.clone()],
        }
        .to_toml()
        .unwrap()
    }

    fn parse(what: &str, text: &str) -> Result<DebianLock, String> {
        Lockfile::parse(what, text)
            .map(|l| l.debian.into_iter().next().expect("a debian part"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn stable_sorted_bytes_and_round_trip() {
        let l = lock();
        let text = file(&l);
        assert_eq!(text, GOLDEN);
        // Same packages in another order: same bytes.
        let e = entries();
        let rev: Vec<&PackageEntry> = e.iter().rev().collect();
        let files = [UsedIndex {
            path: "main/binary-amd64/Packages.xz".into(),
            sha256: SHA_A.into(),
            size: 5,
        }];
        let l2 = DebianLock::new(&inputs(), "sha256:00", &files, &rev);
        assert_eq!(file(&l2), text);
        assert!(text.starts_with("# Written by `strata lock`"));
        let a = text.find("name = \"aa\"").unwrap();
        let z = text.find("name = \"zz\"").unwrap();
        assert!(a < z, "{text}");
        assert!(
            text.contains("[[package]]") && text.contains("[[index.file]]"),
            "{text}"
        );
        assert!(text.contains("source = \"aa-src\"") && text.contains("source_version = \"0.9\""));
        let back = parse("x.lock", &text).unwrap();
        assert_eq!(back, l);
        assert_eq!(file(&back), text);
    }

    #[test]
    fn identity_ignores_the_index_and_catches_edits() {
        let l = lock();
        let mut other = l.clone();
        other.index.inrelease = "sha256:ff".into();
        assert_eq!(other.compute_identity(), l.identity);
        let edited = file(&l).replace("version = \"1.0\"", "version = \"1.1\"");
        let e = parse("r.lock", &edited).unwrap_err();
        assert!(e.contains("r.lock") && e.contains("edited by hand"), "{e}");
    }

    #[test]
    fn stale_detection() {
        let l = lock();
        assert_eq!(l.stale_reason(&inputs()), None);
        let mut i = inputs();
        i.packages.push("bash".into());
        assert!(l
            .stale_reason(&i)
            .unwrap()
            .contains("changed since the lock was written"));
        let mut i = inputs();
        i.architecture = "arm64".into();
        assert!(l.stale_reason(&i).is_some());
    }

    #[test]
    fn stale_per_architecture() {
        let arch = |a: &str| LockInputs {
            architecture: a.into(),
            ..inputs()
        };
        let lock_for = |a: &str| {
            let mut l = lock();
            l.architecture = a.into();
            l.inputs = arch(a).digest();
            l
        };
        let both = [lock_for("amd64"), lock_for("arm64")];
        assert_eq!(
            stale_reason_all(&both, &[arch("amd64"), arch("arm64")]),
            None
        );
        // One architecture: the one-lock reason, unchanged.
        assert_eq!(
            stale_reason_all(&both[..1], &[arch("arm64")]),
            both[0].stale_reason(&arch("arm64"))
        );
        // A platform added: only the new architecture is named.
        let e = stale_reason_all(&both, &[arch("amd64"), arch("arm64"), arch("riscv64")])
            .expect("stale");
        assert!(
            e.contains("no packages for architecture riscv64") && !e.contains("amd64"),
            "{e}"
        );
        // A platform dropped.
        let e = stale_reason_all(&both, &[arch("amd64"), arch("riscv64")]).expect("stale");
        assert!(
            e.contains("architecture arm64, which the recipe's platforms do not include"),
            "{e}"
        );
        // One architecture's part made from other inputs.
        let mut edited = both.clone();
        edited[1].inputs = "sha256:00".into();
        let e = stale_reason_all(&edited, &[arch("amd64"), arch("arm64")]).expect("stale");
        assert!(
            e.starts_with("architecture arm64: the recipe's debian step") && !e.contains("amd64:"),
            "{e}"
        );
    }

    #[test]
    fn bad_locks() {
        let text = file(&lock());
        for (t, msg) in [
            ("garbage = [".to_string(), "x.lock"),
            (text.replace("format = 1", "format = 99"), "format 99"),
            (
                text.replace("suite = ", "surprise = 1\nsuite = "),
                "unknown field",
            ),
        ] {
            let e = parse("x.lock", &t).unwrap_err();
            assert!(e.contains(msg), "{t}: {e}");
        }
        // Edits that keep the identity consistent are still checked.
        for (edit, msg) in [
            (
                (|p: &mut LockedPackage| p.sha256 = "AB".into()) as fn(&mut LockedPackage),
                "not 64 lower-case hex",
            ),
            (
                |p: &mut LockedPackage| p.filename = "pool/../../etc/passwd".into(),
                "unsafe filename",
            ),
        ] {
            let mut l = lock();
            edit(&mut l.packages[0]);
            l.identity = l.compute_identity();
            let e = parse("x.lock", &file(&l)).unwrap_err();
            assert!(e.contains("x.lock") && e.contains(msg), "{e}");
        }
    }
}

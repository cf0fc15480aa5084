//! The lockfile, `RECIPE.lock` beside the recipe: TOML, one `[[package]]` table per package
//! sorted by name then architecture, fields in a fixed order, so the same resolution always
//! gives the same bytes and a change reads well in a diff.
//!
//! It records what the resolution used (the `InRelease` and `Packages` digests) and what it
//! chose (name, version, architecture, pool path, size, sha256, source). It names no mirror:
//! `identity` is a digest of the chosen packages alone, the same whichever mirror served
//! them. `inputs` is a digest of what the recipe asked for (suite, components, packages,
//! exclude, essential, architecture): when it differs from the recipe's, the lock is stale.

use serde::{Deserialize, Serialize};

use super::index::{PackageEntry, UsedIndex};
use super::DebianError;

/// Bumped when the format changes; an older lock is then stale.
pub const LOCK_FORMAT: u32 = 1;

const HEADER: &str =
    "# Written by `strata lock`: do not edit by hand; run `strata lock RECIPE` to update.\n";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    pub format: u32,
    /// Digest of the recipe's resolution inputs ([`LockInputs::digest`]).
    pub inputs: String,
    /// Digest of the chosen packages ([`Lockfile::compute_identity`]); names no mirror.
    pub identity: String,
    pub suite: String,
    pub architecture: String,
    pub index: LockedIndex,
    #[serde(rename = "package", default)]
    pub packages: Vec<LockedPackage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedIndex {
    /// `sha256:` of the `InRelease` file whose signature was checked.
    pub inrelease: String,
    #[serde(rename = "file", default)]
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

impl Lockfile {
    pub fn new(
        inputs: &LockInputs,
        inrelease_sha256: &str,
        files: &[UsedIndex],
        packages: &[&PackageEntry],
    ) -> Lockfile {
        let mut pkgs: Vec<LockedPackage> = packages
            .iter()
            .map(|p| LockedPackage::from_entry(p))
            .collect();
        pkgs.sort();
        let mut lock = Lockfile {
            format: LOCK_FORMAT,
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

    /// The lock's bytes: a header comment, then TOML.
    pub fn to_toml(&self) -> Result<String, DebianError> {
        let body = toml::to_string(self).map_err(|e| DebianError::Lock {
            what: "lockfile".into(),
            detail: e.to_string(),
        })?;
        Ok(format!("{HEADER}{body}"))
    }

    /// Parses a lock; `what` (its path) names it in errors. Checks the format version and
    /// that `identity` matches the packages (a hand edit is refused).
    pub fn parse(what: &str, text: &str) -> Result<Lockfile, DebianError> {
        let lock: Lockfile = toml::from_str(text).map_err(|e| DebianError::Lock {
            what: what.to_string(),
            detail: format!("{e}\nhint: delete it and run `strata lock RECIPE` to write a new one"),
        })?;
        if lock.format != LOCK_FORMAT {
            return Err(DebianError::Lock {
                what: what.to_string(),
                detail: format!(
                    "format {} is not the format {LOCK_FORMAT} this strata writes\nhint: run `strata lock RECIPE` to rewrite it",
                    lock.format
                ),
            });
        }
        if lock.identity != lock.compute_identity() {
            return Err(DebianError::Lock {
                what: what.to_string(),
                detail: "identity does not match its packages (was it edited by hand?)\nhint: run `strata lock RECIPE` to rewrite it".into(),
            });
        }
        for p in &lock.packages {
            if p.sha256.len() != 64
                || !p
                    .sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(DebianError::Lock {
                    what: what.to_string(),
                    detail: format!(
                        "package {}: sha256 {:?} is not 64 lower-case hex digits",
                        p.name, p.sha256
                    ),
                });
            }
            if p.filename.starts_with('/')
                || p.filename.split('/').any(|c| c == ".." || c.is_empty())
            {
                return Err(DebianError::Lock {
                    what: what.to_string(),
                    detail: format!("package {}: unsafe filename {:?}", p.name, p.filename),
                });
            }
        }
        Ok(lock)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::index::parse_packages;

    const SHA_A: &str = "0a3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6";
    const SHA_B: &str = "1b3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6";

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

    fn lock() -> Lockfile {
        let e = entries();
        let refs: Vec<&PackageEntry> = e.iter().collect();
        let files = [UsedIndex {
            path: "main/binary-amd64/Packages.xz".into(),
            sha256: SHA_A.into(),
            size: 5,
        }];
        Lockfile::new(&inputs(), "sha256:00", &files, &refs)
    }

    #[test]
    fn stable_sorted_bytes_and_round_trip() {
        let l = lock();
        let text = l.to_toml().unwrap();
        // Same packages in another order: same bytes.
        let e = entries();
        let rev: Vec<&PackageEntry> = e.iter().rev().collect();
        let files = [UsedIndex {
            path: "main/binary-amd64/Packages.xz".into(),
            sha256: SHA_A.into(),
            size: 5,
        }];
        let l2 = Lockfile::new(&inputs(), "sha256:00", &files, &rev);
        assert_eq!(l2.to_toml().unwrap(), text);
        assert!(text.starts_with("# Written by `strata lock`"));
        let a = text.find("name = \"aa\"").unwrap();
        let z = text.find("name = \"zz\"").unwrap();
        assert!(a < z, "{text}");
        assert!(
            text.contains("[[package]]") && text.contains("[[index.file]]"),
            "{text}"
        );
        assert!(text.contains("source = \"aa-src\"") && text.contains("source_version = \"0.9\""));
        let back = Lockfile::parse("x.lock", &text).unwrap();
        assert_eq!(back, l);
        assert_eq!(back.to_toml().unwrap(), text);
    }

    #[test]
    fn identity_ignores_the_index_and_catches_edits() {
        let l = lock();
        let mut other = l.clone();
        other.index.inrelease = "sha256:ff".into();
        assert_eq!(other.compute_identity(), l.identity);
        let edited = l
            .to_toml()
            .unwrap()
            .replace("version = \"1.0\"", "version = \"1.1\"");
        let e = Lockfile::parse("r.lock", &edited).unwrap_err().to_string();
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
    fn bad_locks() {
        let text = lock().to_toml().unwrap();
        for (t, msg) in [
            ("garbage = [".to_string(), "x.lock"),
            (text.replace("format = 1", "format = 99"), "format 99"),
            (
                text.replace("suite = ", "surprise = 1\nsuite = "),
                "unknown field",
            ),
        ] {
            let e = Lockfile::parse("x.lock", &t).unwrap_err().to_string();
            assert!(e.contains(msg), "{t}: {e}");
        }
    }
}

//! `RECIPE.lock`, the lockfile beside a recipe (`recipes/app.yaml` → `recipes/app.lock`):
//! what `strata lock` resolved, so that `strata build` makes the same image tomorrow. One
//! TOML file with up to two parts, each present only when the recipe needs it:
//!
//! - `[base]` ([`base`]): the digest a `registry://` base's tag named when it was locked.
//! - the `debian` step's resolution ([`crate::debian::lock`]). For one architecture: the
//!   top-level keys `inputs`, `identity`, `suite`, `architecture`, then `[index]` and the
//!   `[[package]]` tables. For a recipe with several `platforms`: the top-level `suite`, an
//!   `[index]` with the one `inrelease` every architecture was resolved from, then one
//!   `[arch.ARCH]` table per architecture (sorted) with that architecture's `inputs`,
//!   `identity`, `[[arch.ARCH.index_file]]` and `[[arch.ARCH.package]]` tables, each what a
//!   single-architecture lock would hold for it.
//!
//! A header comment and `format` come first. Fields are written in a fixed order and lists
//! sorted, so the same resolution always gives the same bytes and a change reads well in a
//! diff. (Python steps keep their own `*.python.lock` files.)

pub mod base;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use base::BaseLock;

use crate::debian::lock::{DebianLock, LockedIndex, LockedIndexFile, LockedPackage};

/// Bumped when the format changes incompatibly; an older lock is then stale. Adding the
/// optional `[base]` table did not change it: every format-1 lock still reads the same.
pub const LOCK_FORMAT: u32 = 1;

const HEADER: &str =
    "# Written by `strata lock`: do not edit by hand; run `strata lock RECIPE` to update.\n";

/// A lockfile that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    #[error("{what}: {detail}")]
    Invalid { what: String, detail: String },
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
}

/// The parsed lockfile of a recipe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lockfile {
    /// The pin of a `registry://` base.
    pub base: Option<BaseLock>,
    /// The resolution of the recipe's `debian` step: one per architecture, sorted by
    /// architecture (empty without a `debian` step). One is written in the
    /// single-architecture form, several as `[arch.ARCH]` tables.
    pub debian: Vec<DebianLock>,
}

/// The file as TOML has it. Field order is byte order: top-level keys first (TOML wants
/// them before any table), then the tables. Parts that are absent are left out.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repr {
    format: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inputs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    suite: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base: Option<BaseLock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    index: Option<LockedIndex>,
    #[serde(rename = "package", default, skip_serializing_if = "Option::is_none")]
    packages: Option<Vec<LockedPackage>>,
    /// Several architectures: one table each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arch: Option<BTreeMap<String, ArchRepr>>,
}

/// One architecture's `[arch.ARCH]` table of a multi-architecture lock.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchRepr {
    inputs: String,
    identity: String,
    #[serde(rename = "index_file", default)]
    files: Vec<LockedIndexFile>,
    #[serde(rename = "package", default)]
    packages: Vec<LockedPackage>,
}

fn invalid(what: &str, detail: impl Into<String>) -> LockError {
    LockError::Invalid {
        what: what.to_string(),
        detail: detail.into(),
    }
}

impl Lockfile {
    /// True when the lock has no part at all (nothing to write).
    pub fn is_empty(&self) -> bool {
        self.base.is_none() && self.debian.is_empty()
    }

    /// The lock's bytes: a header comment, then TOML.
    pub fn to_toml(&self) -> Result<String, LockError> {
        let mut repr = Repr {
            format: LOCK_FORMAT,
            inputs: None,
            identity: None,
            suite: None,
            architecture: None,
            base: self.base.clone(),
            index: None,
            packages: None,
            arch: None,
        };
        match self.debian.as_slice() {
            [] => {}
            [d] => {
                repr.inputs = Some(d.inputs.clone());
                repr.identity = Some(d.identity.clone());
                repr.suite = Some(d.suite.clone());
                repr.architecture = Some(d.architecture.clone());
                repr.index = Some(d.index.clone());
                repr.packages = Some(d.packages.clone());
            }
            [first, rest @ ..] => {
                // One suite and one signed Release for all architectures.
                if let Some(o) = rest
                    .iter()
                    .find(|d| d.suite != first.suite || d.index.inrelease != first.index.inrelease)
                {
                    return Err(invalid(
                        "lockfile",
                        format!(
                            "architectures {} and {} were resolved from different suites or InRelease files",
                            first.architecture, o.architecture
                        ),
                    ));
                }
                let mut arches = BTreeMap::new();
                for d in &self.debian {
                    let part = ArchRepr {
                        inputs: d.inputs.clone(),
                        identity: d.identity.clone(),
                        files: d.index.files.clone(),
                        packages: d.packages.clone(),
                    };
                    if arches.insert(d.architecture.clone(), part).is_some() {
                        return Err(invalid(
                            "lockfile",
                            format!("architecture {} twice", d.architecture),
                        ));
                    }
                }
                repr.suite = Some(first.suite.clone());
                repr.index = Some(LockedIndex {
                    inrelease: first.index.inrelease.clone(),
                    files: Vec::new(),
                });
                repr.arch = Some(arches);
            }
        }
        let body = toml::to_string(&repr).map_err(|e| invalid("lockfile", e.to_string()))?;
        Ok(format!("{HEADER}{body}"))
    }

    /// Parses a lock; `what` (its path) names it in errors. Checks the format version and
    /// each part (a hand edit that breaks a part's consistency is refused).
    pub fn parse(what: &str, text: &str) -> Result<Lockfile, LockError> {
        let repr: Repr = toml::from_str(text).map_err(|e| {
            invalid(
                what,
                format!("{e}\nhint: delete it and run `strata lock RECIPE` to write a new one"),
            )
        })?;
        if repr.format != LOCK_FORMAT {
            return Err(invalid(
                what,
                format!(
                    "format {} is not the format {LOCK_FORMAT} this strata writes\nhint: run `strata lock RECIPE` to rewrite it",
                    repr.format
                ),
            ));
        }
        let hand = "(was it edited by hand?)\nhint: run `strata lock RECIPE` to rewrite it";
        let debian = if let Some(arches) = repr.arch {
            // Several architectures: only `suite` and `[index]`'s `inrelease` at the top.
            for (key, present) in [
                ("inputs", repr.inputs.is_some()),
                ("identity", repr.identity.is_some()),
                ("architecture", repr.architecture.is_some()),
                ("[[package]]", repr.packages.is_some()),
                (
                    "[[index.file]]",
                    repr.index.as_ref().is_some_and(|i| !i.files.is_empty()),
                ),
            ] {
                if present {
                    return Err(invalid(
                        what,
                        format!("the debian part has both `[arch.*]` tables and a top-level `{key}` {hand}"),
                    ));
                }
            }
            let suite = repr
                .suite
                .ok_or_else(|| invalid(what, format!("the debian part has no `suite` {hand}")))?;
            let inrelease = repr.index.map(|i| i.inrelease).ok_or_else(|| {
                invalid(
                    what,
                    format!("the debian part has no `[index]` table {hand}"),
                )
            })?;
            let mut out = Vec::new();
            for (arch, part) in arches {
                let lock = DebianLock {
                    inputs: part.inputs,
                    identity: part.identity,
                    suite: suite.clone(),
                    architecture: arch.clone(),
                    index: LockedIndex {
                        inrelease: inrelease.clone(),
                        files: part.files,
                    },
                    packages: part.packages,
                };
                lock.check()
                    .map_err(|detail| invalid(what, format!("[arch.{arch}]: {detail}")))?;
                out.push(lock);
            }
            out
        } else if repr.inputs.is_some()
            || repr.identity.is_some()
            || repr.suite.is_some()
            || repr.architecture.is_some()
            || repr.index.is_some()
            || repr.packages.is_some()
        {
            let need = |v: Option<String>, key: &str| {
                v.ok_or_else(|| invalid(what, format!("the debian part has no `{key}` {hand}")))
            };
            let lock = DebianLock {
                inputs: need(repr.inputs, "inputs")?,
                identity: need(repr.identity, "identity")?,
                suite: need(repr.suite, "suite")?,
                architecture: need(repr.architecture, "architecture")?,
                index: repr.index.ok_or_else(|| {
                    invalid(
                        what,
                        format!("the debian part has no `[index]` table {hand}"),
                    )
                })?,
                packages: repr.packages.unwrap_or_default(),
            };
            lock.check().map_err(|detail| invalid(what, detail))?;
            vec![lock]
        } else {
            Vec::new()
        };
        if let Some(b) = &repr.base {
            b.check().map_err(|detail| invalid(what, detail))?;
        }
        Ok(Lockfile {
            base: repr.base,
            debian,
        })
    }
}

/// The lockfile of a recipe: `recipes/python3.yaml` → `recipes/python3.lock`.
pub fn lock_path(recipe_path: &Path) -> PathBuf {
    recipe_path.with_extension("lock")
}

/// Reads and checks the lock at `path`; `None` when there is none.
pub fn read(path: &Path) -> Result<Option<Lockfile>, LockError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(Lockfile::parse(&path.display().to_string(), &text)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(LockError::Io {
            path: path.to_path_buf(),
            err,
        }),
    }
}

/// Writes `lock` to `path` unless the file already holds these bytes (through a temp file
/// and rename, leaving the old one intact on failure). Returns whether the file changed.
pub fn write(path: &Path, lock: &Lockfile) -> Result<bool, LockError> {
    let text = lock.to_toml()?;
    if std::fs::read_to_string(path).ok().as_deref() == Some(text.as_str()) {
        return Ok(false);
    }
    crate::store::write_atomic(path, text.as_bytes()).map_err(|err| LockError::Io {
        path: path.to_path_buf(),
        err,
    })?;
    Ok(true)
}

/// Reads the lock at `path` (an empty one when there is none), lets `change` replace one
/// part, and writes it back: the other part is kept as it was.
pub fn update(path: &Path, change: impl FnOnce(&mut Lockfile)) -> Result<Lockfile, LockError> {
    let mut lock = read(path)?.unwrap_or_default();
    change(&mut lock);
    write(path, &lock)?;
    Ok(lock)
}

/// How `strata build` may treat the lock.
#[derive(Debug, Clone, Copy, Default)]
pub struct LockPolicy {
    /// `--locked`: a missing or stale lock is an error.
    pub locked: bool,
    /// `--offline`: no network; the lock must exist and be fresh.
    pub offline: bool,
}

impl LockPolicy {
    /// The flag that forbids resolving anew, if any.
    pub fn forbids_resolving(&self) -> Option<&'static str> {
        if self.locked {
            Some("--locked")
        } else if self.offline {
            Some("--offline")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests;

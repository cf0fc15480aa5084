//! `RECIPE.lock`, the lockfile beside a recipe (`recipes/app.yaml` → `recipes/app.lock`):
//! what `strata lock` resolved, so that `strata build` makes the same image tomorrow. One
//! TOML file with up to two parts, each present only when the recipe needs it:
//!
//! - `[base]` ([`base`]): the digest a `registry://` base's tag named when it was locked.
//! - the `debian` step's resolution ([`crate::debian::lock`]): the top-level keys `inputs`,
//!   `identity`, `suite`, `architecture`, then `[index]` and the `[[package]]` tables.
//!
//! A header comment and `format` come first. Fields are written in a fixed order and lists
//! sorted, so the same resolution always gives the same bytes and a change reads well in a
//! diff. (Python steps keep their own `*.python.lock` files.)

pub mod base;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use base::BaseLock;

use crate::debian::lock::{DebianLock, LockedIndex, LockedPackage};

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
    /// The resolution of the recipe's `debian` step.
    pub debian: Option<DebianLock>,
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
        self.base.is_none() && self.debian.is_none()
    }

    /// The lock's bytes: a header comment, then TOML.
    pub fn to_toml(&self) -> Result<String, LockError> {
        let d = self.debian.as_ref();
        let repr = Repr {
            format: LOCK_FORMAT,
            inputs: d.map(|d| d.inputs.clone()),
            identity: d.map(|d| d.identity.clone()),
            suite: d.map(|d| d.suite.clone()),
            architecture: d.map(|d| d.architecture.clone()),
            base: self.base.clone(),
            index: d.map(|d| d.index.clone()),
            packages: d.map(|d| d.packages.clone()),
        };
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
        let has_debian = repr.inputs.is_some()
            || repr.identity.is_some()
            || repr.suite.is_some()
            || repr.architecture.is_some()
            || repr.index.is_some()
            || repr.packages.is_some();
        let debian = if has_debian {
            let need = |v: Option<String>, key: &str| {
                v.ok_or_else(|| {
                    invalid(
                        what,
                        format!("the debian part has no `{key}` (was it edited by hand?)\nhint: run `strata lock RECIPE` to rewrite it"),
                    )
                })
            };
            let lock = DebianLock {
                inputs: need(repr.inputs, "inputs")?,
                identity: need(repr.identity, "identity")?,
                suite: need(repr.suite, "suite")?,
                architecture: need(repr.architecture, "architecture")?,
                index: repr.index.ok_or_else(|| {
                    invalid(
                        what,
                        "the debian part has no `[index]` table (was it edited by hand?)\nhint: run `strata lock RECIPE` to rewrite it",
                    )
                })?,
                packages: repr.packages.unwrap_or_default(),
            };
            lock.check().map_err(|detail| invalid(what, detail))?;
            Some(lock)
        } else {
            None
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

//! Debian packages as image layers: control-file parsing, versions and relations, mirror
//! discovery, signed indices, dependency resolution, the lockfile and fetching `.deb`s into
//! the store. Parsers are pure (`&str`/`&[u8]` in); network access goes through
//! [`fetch::Fetcher`], file access stays in the few functions of this file.
//!
//! The flow: `strata lock` = [`lock_recipe`] (mirror → signed `InRelease` → `Packages` →
//! resolve → `RECIPE.lock`). `strata build` = [`ensure_lock`] (reads the lock; re-locks only
//! when it is missing or stale and neither `--locked` nor `--offline` forbids it), then
//! [`fetch::ensure_debs`] (cache or mirror, sha256-verified), then [`layers::plan_layers`]
//! groups the packages into layers, then [`debs_to_layer_entries`] (the `.deb` reader's seam).

pub mod deb822;
pub mod fetch;
pub mod index;
pub mod layers;
pub mod lock;
pub mod mirror;
pub mod relation;
pub mod release;
pub mod resolve;
pub mod version;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use deb822::{parse_paragraphs, Deb822Error, Paragraph};
pub use lock::{LockInputs, LockedPackage, Lockfile};
pub use version::Version;

use crate::recipe::{DebianStep, Recipe};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DebianError {
    #[error(transparent)]
    Release(#[from] release::ReleaseError),
    #[error(transparent)]
    Mirror(#[from] mirror::MirrorError),
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    #[error(transparent)]
    Resolve(#[from] resolve::ResolveError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {detail}")]
    Index { what: String, detail: String },
    #[error("{what}: {detail}\nhint: the mirror served other bytes than its signed index lists; nothing was stored. Retry, or use another mirror")]
    Verify { what: String, detail: String },
    #[error("{what}: {detail}")]
    Lock { what: String, detail: String },
    // Causes are part of the messages, not `source()`s: the CLI prints the chain with
    // `{:#}`, which would repeat them.
    #[error("{package}: {err}")]
    Package {
        package: String,
        err: Box<DebianError>,
    },
    #[error("offline: {} .deb file(s) the lock needs are not in the cache:\n{}\nhint: run the build once without --offline (network needed) to fetch them into the cache", missing.len(), missing.iter().map(|m| format!("  {m}")).collect::<Vec<_>>().join("\n"))]
    Offline { missing: Vec<String> },
    #[error("{path}: the lock is stale: {reason}\nhint: run `strata lock {recipe}` and commit the new lock (or build without --locked)")]
    Stale {
        path: PathBuf,
        recipe: PathBuf,
        reason: String,
    },
    #[error("{path}: no lockfile, and {why} forbids resolving a new one\nhint: run `strata lock {recipe}` first")]
    NoLock {
        path: PathBuf,
        recipe: PathBuf,
        why: &'static str,
    },
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path}: cannot read the keyring that verifies InRelease: {err}\nhint: pass the archive's keyring with --keyring FILE (default: the host's /usr/share/keyrings/debian-archive-keyring.gpg)")]
    KeyringFile { path: PathBuf, err: std::io::Error },
    #[error("platform {platform:?} has no Debian architecture\nhint: use linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v5, linux/386, linux/ppc64le, linux/s390x, linux/riscv64 or linux/mips64le")]
    Platform { platform: String },
    #[error("recipe package entry {entry:?}: {err}")]
    Request {
        entry: String,
        err: relation::RelationError,
    },
    /// The seam to the `.deb` reader is not connected in this build.
    #[error("debian step: {packages} package(s) are resolved, locked and in the cache, but turning .deb files into layer entries is not connected yet\nhint: this build of strata can lock and fetch (`strata lock`); image layers from .debs need the .deb reader")]
    ExtractNotConnected { packages: usize },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DebianError + '_ {
    move |err| DebianError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// The Debian architecture of an OCI platform (`linux/amd64` → `amd64`).
pub fn debian_arch(platform: &str) -> Result<&'static str, DebianError> {
    Ok(match platform {
        "linux/amd64" => "amd64",
        "linux/arm64" | "linux/arm64/v8" => "arm64",
        "linux/arm/v7" => "armhf",
        "linux/arm/v5" | "linux/arm/v6" => "armel",
        "linux/386" => "i386",
        "linux/ppc64le" => "ppc64el",
        "linux/s390x" => "s390x",
        "linux/riscv64" => "riscv64",
        "linux/mips64le" => "mips64el",
        _ => {
            return Err(DebianError::Platform {
                platform: platform.to_string(),
            })
        }
    })
}

/// The lockfile of a recipe: `recipes/python3.yaml` → `recipes/python3.lock`.
pub fn lock_path(recipe_path: &Path) -> PathBuf {
    recipe_path.with_extension("lock")
}

/// The recipe's debian step, if any (validation allows at most one).
pub fn debian_step(recipe: &Recipe) -> Option<&DebianStep> {
    recipe
        .layers
        .iter()
        .flat_map(|l| &l.steps)
        .find_map(|s| match s {
            crate::recipe::Step::Debian(d) => Some(d),
            _ => None,
        })
}

/// What the step asks for, for the lock's staleness check.
pub fn lock_inputs(step: &DebianStep, platform: &str) -> Result<LockInputs, DebianError> {
    Ok(LockInputs {
        suite: step.suite.clone(),
        components: step.components.clone(),
        packages: step.packages.clone(),
        exclude: step.exclude.clone(),
        essential: step.essential,
        architecture: debian_arch(platform)?.to_string(),
    })
}

/// Where indices come from and how they are trusted.
#[derive(Debug, Clone, Default)]
pub struct IndexOptions {
    /// `--mirror`; else `STRATA_DEBIAN_MIRROR`, else the host's apt sources.
    pub mirror: Option<String>,
    /// The value of `STRATA_DEBIAN_MIRROR` (passed in, so library code reads no env).
    pub mirror_env: Option<String>,
    /// `--keyring`; default [`release::DEFAULT_KEYRING`].
    pub keyring: Option<PathBuf>,
    /// Normally `/etc/apt`.
    pub etc_apt: PathBuf,
    /// Unix seconds, for `Valid-Until`.
    pub now: i64,
}

impl IndexOptions {
    pub fn mirror_for(&self, suite: &str) -> Result<String, DebianError> {
        Ok(mirror::discover(
            self.mirror.as_deref(),
            self.mirror_env.as_deref(),
            &self.etc_apt,
            suite,
        )?)
    }

    pub fn load_keyring(&self) -> Result<release::Keyring, DebianError> {
        let path = self
            .keyring
            .clone()
            .unwrap_or_else(|| PathBuf::from(release::DEFAULT_KEYRING));
        let bytes = std::fs::read(&path).map_err(|err| DebianError::KeyringFile {
            path: path.clone(),
            err,
        })?;
        Ok(release::Keyring::from_bytes(
            &path.display().to_string(),
            &bytes,
        )?)
    }
}

/// Resolves `step` against the mirror's current indices and returns the new lock.
pub fn resolve_step(
    step: &DebianStep,
    platform: &str,
    opts: &IndexOptions,
    store: &Store,
    fetcher: &dyn fetch::Fetcher,
) -> Result<Lockfile, DebianError> {
    let inputs = lock_inputs(step, platform)?;
    let mirror = opts.mirror_for(&step.suite)?;
    let keyring = opts.load_keyring()?;
    let idx = index::fetch_indices(
        fetcher,
        store,
        &mirror,
        &step.suite,
        &step.components,
        &inputs.architecture,
        &keyring,
        opts.now,
    )?;
    let packages = step
        .packages
        .iter()
        .map(|p| {
            resolve::parse_request(p).map_err(|err| DebianError::Request {
                entry: p.clone(),
                err,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let req = resolve::ResolveRequest {
        arch: inputs.architecture.clone(),
        packages,
        exclude: step.exclude.iter().cloned().collect::<BTreeSet<_>>(),
        essential: step.essential,
    };
    let res = resolve::resolve(&idx.packages, &req)?;
    Ok(Lockfile::new(
        &inputs,
        &idx.inrelease_sha256,
        &idx.files,
        &res.packages,
    ))
}

/// Reads `path` if it exists.
pub fn read_lock(path: &Path) -> Result<Option<Lockfile>, DebianError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(Lockfile::parse(&path.display().to_string(), &text)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Writes the lock through a temp file and rename, leaving the old one intact on failure.
pub fn write_lock(path: &Path, lock: &Lockfile) -> Result<(), DebianError> {
    let text = lock.to_toml()?;
    crate::store::write_atomic(path, text.as_bytes()).map_err(io_err(path))
}

/// `strata lock RECIPE`: resolves and writes the lock. Returns it and whether the bytes
/// changed.
pub fn lock_recipe(
    recipe_path: &Path,
    recipe: &Recipe,
    opts: &IndexOptions,
    store: &Store,
    fetcher: &dyn fetch::Fetcher,
) -> Result<Option<(Lockfile, bool)>, DebianError> {
    let Some(step) = debian_step(recipe) else {
        return Ok(None);
    };
    let lock = resolve_step(step, &recipe.platform, opts, store, fetcher)?;
    let path = lock_path(recipe_path);
    let old = std::fs::read_to_string(&path).ok();
    let changed = old.as_deref() != Some(lock.to_toml()?.as_str());
    if changed {
        write_lock(&path, &lock)?;
    }
    Ok(Some((lock, changed)))
}

/// How `strata build` may treat the lock.
#[derive(Debug, Clone, Copy, Default)]
pub struct LockPolicy {
    /// `--locked`: a missing or stale lock is an error.
    pub locked: bool,
    /// `--offline`: no network; the lock must exist and be fresh.
    pub offline: bool,
}

/// For `strata build`: the lock to build from. A fresh lock is used as it is (no index is
/// read). A missing or stale one is an error under `--locked`/`--offline`, else it is
/// re-resolved and rewritten.
pub fn ensure_lock(
    recipe_path: &Path,
    recipe: &Recipe,
    policy: LockPolicy,
    opts: &IndexOptions,
    store: &Store,
    fetcher: &dyn fetch::Fetcher,
) -> Result<Option<Lockfile>, DebianError> {
    let Some(step) = debian_step(recipe) else {
        return Ok(None);
    };
    let path = lock_path(recipe_path);
    let inputs = lock_inputs(step, &recipe.platform)?;
    match read_lock(&path)? {
        Some(lock) => match lock.stale_reason(&inputs) {
            None => return Ok(Some(lock)),
            Some(reason) if policy.locked || policy.offline => {
                return Err(DebianError::Stale {
                    path,
                    recipe: recipe_path.to_path_buf(),
                    reason,
                })
            }
            Some(_) => {}
        },
        None if policy.locked || policy.offline => {
            return Err(DebianError::NoLock {
                path,
                recipe: recipe_path.to_path_buf(),
                why: if policy.locked {
                    "--locked"
                } else {
                    "--offline"
                },
            })
        }
        None => {}
    }
    let lock = resolve_step(step, &recipe.platform, opts, store, fetcher)?;
    write_lock(&path, &lock)?;
    Ok(Some(lock))
}

/// A fetched package: its `.deb` blob in the store and what the lock says about it.
pub type FetchedDeb = (PathBuf, LockedPackage);

/// THE SEAM to the `.deb` reader: turns one layer's fetched `.deb`s into layer entries
/// (files, the dpkg status database, fix-ups). The build calls it once per layer group from
/// [`layers::plan_layers`].
///
/// TODO(debian-deb): connect `extract` here; until then this reports that extraction is
/// not connected (a clear error, never an empty layer).
pub fn debs_to_layer_entries(debs: &[FetchedDeb]) -> Result<Vec<crate::layer::Entry>, DebianError> {
    Err(DebianError::ExtractNotConnected {
        packages: debs.len(),
    })
}

/// A layer's name and entries.
pub type NamedLayer = (String, Vec<crate::layer::Entry>);

/// What `strata build` needs for a `debian` step.
#[derive(Debug, Clone, Default)]
pub struct DebianBuildOptions {
    pub policy: LockPolicy,
    pub index: IndexOptions,
}

/// For `strata build`: the layers of the recipe's `debian` step (None without one): the
/// lock (see [`ensure_lock`]), every `.deb` in the store (fetched unless `--offline`), the
/// packages grouped by `layering`, each group through [`debs_to_layer_entries`].
pub fn build_layers(
    recipe_path: &Path,
    recipe: &Recipe,
    opts: &DebianBuildOptions,
    store: &Store,
) -> Result<Option<Vec<NamedLayer>>, DebianError> {
    let Some(step) = debian_step(recipe) else {
        return Ok(None);
    };
    let http = fetch::HttpFetcher::new();
    let Some(lock) = ensure_lock(recipe_path, recipe, opts.policy, &opts.index, store, &http)?
    else {
        return Ok(None);
    };
    let all_cached = lock
        .packages
        .iter()
        .all(|p| store.has_blob(&format!("sha256:{}", p.sha256)));
    // The mirror is looked up only when something must be downloaded.
    let mirror = if all_cached || opts.policy.offline {
        None
    } else {
        Some(opts.index.mirror_for(&lock.suite)?)
    };
    let fetched = fetch::ensure_debs(
        &lock,
        store,
        mirror.as_deref().map(|m| (&http as &dyn fetch::Fetcher, m)),
    )?;
    let packages: Vec<LockedPackage> = fetched.iter().map(|(_, p)| p.clone()).collect();
    let mut out = Vec::new();
    for group in layers::plan_layers(&step.layering, &packages) {
        let debs: Vec<FetchedDeb> = fetched
            .iter()
            .filter(|(_, p)| group.packages.contains(p))
            .cloned()
            .collect();
        match debs_to_layer_entries(&debs) {
            Ok(entries) => out.push((group.name, entries)),
            Err(DebianError::ExtractNotConnected { .. }) => {
                return Err(DebianError::ExtractNotConnected {
                    packages: fetched.len(),
                })
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures() {
        assert_eq!(debian_arch("linux/amd64").unwrap(), "amd64");
        assert_eq!(debian_arch("linux/arm64").unwrap(), "arm64");
        assert_eq!(debian_arch("linux/arm/v7").unwrap(), "armhf");
        let e = debian_arch("windows/amd64").unwrap_err().to_string();
        assert!(
            e.contains("no Debian architecture") && e.contains("hint:"),
            "{e}"
        );
    }

    #[test]
    fn lock_path_beside_recipe() {
        assert_eq!(
            lock_path(Path::new("recipes/python3.yaml")),
            Path::new("recipes/python3.lock")
        );
    }
}

//! Debian packages as image layers: control-file parsing, versions and relations, mirror
//! discovery, signed indices, dependency resolution, the lockfile and fetching `.deb`s into
//! the store. Parsers are pure (`&str`/`&[u8]` in); network access goes through
//! [`fetch::Fetcher`], file access stays in the few functions of this file.
//!
//! The flow: `strata lock` = [`resolve_recipe`] (mirror → signed `InRelease` → `Packages` →
//! resolve → the debian part of `RECIPE.lock`, see [`crate::lockfile`]). `strata build` =
//! [`ensure_lock`] (reads the lock; re-locks only when its debian part is missing or stale
//! and neither `--locked` nor `--offline` forbids it), then
//! [`fetch::ensure_debs`] (cache or mirror, sha256-verified), then [`layers::plan_layers`]
//! groups the packages into layers, [`extract`] turns each `.deb` into entries, and a last
//! layer holds the fix-ups that replace dpkg and maintainer scripts ([`fixup_entries`]).

pub mod deb;
pub mod deb822;
pub mod dpkgdb;
pub mod extract;
pub mod fetch;
pub mod index;
pub mod layers;
pub mod ldcache;
pub mod lock;
pub mod mirror;
pub mod relation;
pub mod release;
pub mod resolve;
pub mod sbom;
pub mod version;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use deb::{parse_control, read_deb, DebError, DebInfo};
pub use deb822::{parse_paragraphs, Deb822Error, Paragraph};
pub use dpkgdb::dpkg_db_entries;
pub use extract::{dirs_of, package_entries, symlinks_of, ExtractOptions, ExtractedPackage};
pub use lock::{DebianLock, LockInputs, LockedPackage};
pub use sbom::spdx_json;
pub use version::Version;

use crate::lockfile::{lock_path, LockPolicy};
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
    #[error(transparent)]
    Lockfile(#[from] crate::lockfile::LockError),
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
    #[error("{path}: {what}, and {why} forbids resolving the debian step\nhint: run `strata lock {recipe}` first")]
    NoLock {
        path: PathBuf,
        recipe: PathBuf,
        /// `no lockfile`, or what the lockfile lacks.
        what: &'static str,
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
) -> Result<DebianLock, DebianError> {
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
    Ok(DebianLock::new(
        &inputs,
        &idx.inrelease_sha256,
        &idx.files,
        &res.packages,
    ))
}

/// `strata lock RECIPE`: resolves the recipe's debian step (None without one) for the
/// debian part of the lock. The caller writes the file, with its other part.
pub fn resolve_recipe(
    recipe: &Recipe,
    opts: &IndexOptions,
    store: &Store,
    fetcher: &dyn fetch::Fetcher,
) -> Result<Option<DebianLock>, DebianError> {
    let Some(step) = debian_step(recipe) else {
        return Ok(None);
    };
    Ok(Some(resolve_step(
        step,
        &recipe.platform,
        opts,
        store,
        fetcher,
    )?))
}

/// For `strata build`: the lock to build from. A fresh lock is used as it is (no index is
/// read). A missing or stale one is an error under `--locked`/`--offline`, else it is
/// re-resolved and the lock's debian part rewritten (its `[base]` kept).
pub fn ensure_lock(
    recipe_path: &Path,
    recipe: &Recipe,
    policy: LockPolicy,
    opts: &IndexOptions,
    store: &Store,
    fetcher: &dyn fetch::Fetcher,
) -> Result<Option<DebianLock>, DebianError> {
    let Some(step) = debian_step(recipe) else {
        return Ok(None);
    };
    let path = lock_path(recipe_path);
    let inputs = lock_inputs(step, &recipe.platform)?;
    let file = crate::lockfile::read(&path)?;
    let what = if file.is_some() {
        "the lockfile has no debian packages"
    } else {
        "no lockfile"
    };
    match file.and_then(|f| f.debian) {
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
                what,
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
    crate::lockfile::update(&path, |f| f.debian = Some(lock.clone()))?;
    Ok(Some(lock))
}

/// A fetched package: its `.deb` blob in the store and what the lock says about it.
pub type FetchedDeb = (PathBuf, LockedPackage);

/// A layer's name and entries.
pub type NamedLayer = (String, Vec<crate::layer::Entry>);

/// What a `debian` step adds to an image: its layers and the SPDX document of its packages.
#[derive(Debug, Clone)]
pub struct DebianLayers {
    pub layers: Vec<NamedLayer>,
    /// [`spdx_json`] of the extracted packages.
    pub sbom: Vec<u8>,
}

/// What `strata build` needs for a `debian` step (how to treat the lock is the build's
/// [`LockPolicy`]).
#[derive(Debug, Clone, Default)]
pub struct DebianBuildOptions {
    pub index: IndexOptions,
}

/// The symlinks (image path → target) and directories of the image below the `debian`
/// layer (the base image and the recipe's earlier layers), so packages are extracted
/// through them: with `bin -> usr/bin` below, a package's `/bin/ls` goes to `usr/bin/ls`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LowerTree {
    pub symlinks: BTreeMap<String, String>,
    pub dirs: BTreeSet<String>,
}

impl LowerTree {
    /// Applies one layer's entries on top, as a runtime unpacking it would: an entry
    /// replaces what was at its path (a directory over a directory keeps it), a symlink or
    /// file also hides everything below its path, a whiteout deletes its path and
    /// everything below, an opaque whiteout everything below its directory.
    pub fn apply(&mut self, entries: &[crate::layer::Entry]) {
        use crate::layer::EntryKind;
        for e in entries {
            let p = e.path.as_str();
            match &e.kind {
                EntryKind::Dir => self.dir(p),
                EntryKind::Symlink { target } => self.symlink(p, target),
                EntryKind::File { .. } | EntryKind::Hardlink { .. } | EntryKind::Whiteout => {
                    self.remove_tree(p, true)
                }
                EntryKind::OpaqueWhiteout => self.remove_tree(p, false),
            }
        }
    }

    /// A directory at `p` (it replaces a symlink there).
    pub fn dir(&mut self, p: &str) {
        self.symlinks.remove(p);
        self.dirs.insert(p.to_string());
    }

    /// A symlink at `p`, replacing whatever was there and below.
    pub fn symlink(&mut self, p: &str, target: &str) {
        self.remove_tree(p, true);
        self.symlinks.insert(p.to_string(), target.to_string());
    }

    /// Deletes what is below `p`, and `p` itself when `itself` (a file, hard link or
    /// whiteout at `p`; `false` for an opaque whiteout in directory `p`).
    pub fn remove_tree(&mut self, p: &str, itself: bool) {
        if p.is_empty() {
            self.symlinks.clear();
            self.dirs.clear();
            return;
        }
        let below = format!("{p}/");
        let keep = |k: &String| !(k.starts_with(&below) || itself && k == p);
        self.symlinks.retain(|k, _| keep(k));
        self.dirs.retain(|k| keep(k));
    }
}

/// For `strata build`: the layers of the recipe's `debian` step (None without one): the
/// lock (see [`ensure_lock`]), every `.deb` in the store (fetched unless `--offline`), the
/// packages grouped by `layering`, each group's `.deb`s extracted in order over `lower`
/// and the groups before it, then one layer of fix-ups; and the packages' SBOM.
pub fn build_layers(
    recipe_path: &Path,
    recipe: &Recipe,
    opts: &DebianBuildOptions,
    policy: LockPolicy,
    store: &Store,
    sde: u64,
    lower: &LowerTree,
) -> Result<Option<DebianLayers>, DebianError> {
    let Some(step) = debian_step(recipe) else {
        return Ok(None);
    };
    let http = fetch::HttpFetcher::new();
    let Some(lock) = ensure_lock(recipe_path, recipe, policy, &opts.index, store, &http)? else {
        return Ok(None);
    };
    let all_cached = lock
        .packages
        .iter()
        .all(|p| store.has_blob(&format!("sha256:{}", p.sha256)));
    // The mirror is looked up only when something must be downloaded.
    let mirror = if all_cached || policy.offline {
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
    let arch = debian_arch(&recipe.platform)?;
    // Large file contents are kept here, content-addressed, until the layers are written.
    let spill = store.root().join("tmp").join("debian-spill");
    std::fs::create_dir_all(&spill).map_err(io_err(&spill))?;
    // Symlinks and directories of the layers already made, for the extraction of the next.
    let mut below_symlinks: BTreeMap<String, String> = lower.symlinks.clone();
    let mut below_dirs: BTreeSet<String> = lower.dirs.clone();
    let mut extracted: Vec<ExtractedPackage> = Vec::new();
    let mut out = Vec::new();
    for group in layers::plan_layers(&step.layering, &packages) {
        // One entry per path in a layer: a later package's file wins, a directory never
        // replaces what another package put there.
        let mut layer: BTreeMap<String, crate::layer::Entry> = BTreeMap::new();
        for (path, pkg) in fetched.iter().filter(|(_, p)| group.packages.contains(p)) {
            let this_layer: Vec<crate::layer::Entry> = layer.values().cloned().collect();
            let mut lower_symlinks = below_symlinks.clone();
            lower_symlinks.extend(symlinks_of(&this_layer));
            let mut lower_dirs = below_dirs.clone();
            lower_dirs.extend(dirs_of(&this_layer));
            let eo = ExtractOptions {
                sde,
                lower_symlinks,
                lower_dirs,
                spill_dir: Some(spill.clone()),
            };
            let x = package_entries(path, &eo).map_err(|e| DebianError::Index {
                what: format!("{} {} ({})", pkg.name, pkg.version, pkg.filename),
                detail: e.to_string(),
            })?;
            for e in &x.entries {
                match layer.get(&e.path) {
                    Some(old) if e.is_dir() || old.is_dir() && !e.is_dir() => {}
                    _ => {
                        layer.insert(e.path.clone(), e.clone());
                    }
                }
            }
            extracted.push(x);
        }
        let entries: Vec<crate::layer::Entry> = layer.into_values().collect();
        below_symlinks.extend(symlinks_of(&entries));
        below_dirs.extend(dirs_of(&entries));
        out.push((group.name, entries));
    }
    let fixups = fixup_entries(&extracted, None, &lower.symlinks, arch, sde).map_err(|detail| {
        DebianError::Index {
            what: "image fix-ups (dpkg database, accounts, CA bundle, alternatives, ld.so.cache)"
                .into(),
            detail,
        }
    })?;
    out.push(("dpkg-fixups".into(), fixups));
    let sbom = spdx_json(&recipe.name, &extracted, Some(&lock.suite), sde);
    Ok(Some(DebianLayers { layers: out, sbom }))
}

use crate::layer::{Entry, EntryKind};
use crate::recipe::model::Accounts;

/// Every fix-up for an image holding `pkgs`, in one sorted list: dpkg's database, the
/// account files (base-passwd's masters merged with `accounts`), the CA bundle, the
/// alternatives links and, when the image has the dynamic loader (libc6), `etc/ld.so.cache`
/// made from the packages' libraries seen through `lower_symlinks` (the links of the layers
/// below, e.g. a merged-/usr `lib -> usr/lib`). A directory never replaces a file or link
/// another fix-up wrote.
pub fn fixup_entries(
    pkgs: &[ExtractedPackage],
    accounts: Option<&Accounts>,
    lower_symlinks: &BTreeMap<String, String>,
    native_arch: &str,
    sde: u64,
) -> Result<Vec<Entry>, String> {
    let mut all = dpkgdb::dpkg_db_entries(pkgs, native_arch, sde);
    all.extend(dpkgdb::accounts_entries(pkgs, accounts, sde)?);
    all.extend(dpkgdb::ca_entries(pkgs, sde));
    all.extend(dpkgdb::alternatives_entries(pkgs, sde));
    if pkgs
        .iter()
        .any(|p| p.name == "libc6" && p.arch == native_arch)
    {
        let mut tree = ldcache::Tree::default();
        for (path, target) in lower_symlinks {
            tree.add_symlink(path, target);
        }
        for p in pkgs {
            tree.add_entries(&p.entries);
        }
        tree.add_entries(&all);
        all.extend(ldcache::cache_entry(&tree, native_arch, sde));
    }
    let mut by_path: BTreeMap<String, Entry> = BTreeMap::new();
    for e in all {
        match by_path.get(&e.path) {
            Some(old) if matches!(e.kind, EntryKind::Dir) && !old.is_dir() => {}
            _ => {
                by_path.insert(e.path.clone(), e);
            }
        }
    }
    Ok(by_path.into_values().collect())
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
    fn lower_tree_applies_layers_like_a_runtime() {
        use crate::layer::{Entry, EntryKind};
        let link = |p: &str, t: &str| {
            Entry::new(
                p,
                EntryKind::Symlink {
                    target: t.to_string(),
                },
                0o777,
            )
        };
        let dir = |p: &str| Entry::new(p, EntryKind::Dir, 0o755);
        let mut t = LowerTree::default();
        t.apply(&[dir("var"), dir("var/run"), dir("var/run/x"), dir("opt")]);
        t.apply(&[link("bin", "usr/bin"), link("var/run", "/run")]);
        assert_eq!(t.symlinks["bin"], "usr/bin");
        assert_eq!(t.symlinks["var/run"], "/run");
        assert!(!t.dirs.contains("var/run") && !t.dirs.contains("var/run/x"));
        // A directory replaces a link; a whiteout removes a path and what is below.
        t.apply(&[dir("bin"), Entry::new("var", EntryKind::Whiteout, 0)]);
        assert!(t.dirs.contains("bin") && !t.symlinks.contains_key("bin"));
        assert!(!t.symlinks.contains_key("var/run") && !t.dirs.contains("var"));
        // An opaque directory keeps itself, not what was below it.
        t.apply(&[
            dir("opt/a"),
            Entry::new("opt", EntryKind::OpaqueWhiteout, 0),
        ]);
        assert!(t.dirs.contains("opt") && !t.dirs.contains("opt/a"));
    }

    #[test]
    fn fixups_of_fixture_packages() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/debian/hostile");
        let pkg = package_entries(
            &dir.join("good-zst_1.0-1_amd64.deb"),
            &ExtractOptions::default(),
        )
        .expect("reads");
        let got = fixup_entries(
            std::slice::from_ref(&pkg),
            None,
            &BTreeMap::new(),
            "amd64",
            5,
        )
        .expect("fix-ups");
        let paths: Vec<&str> = got.iter().map(|e| e.path.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(paths, sorted, "sorted, one entry per path");
        for want in [
            "etc/alternatives/java",
            "usr/bin/java",
            "usr/bin/good-tool",
            "var/lib/dpkg/status",
            "var/lib/dpkg/info/good-zst:amd64.list",
            "var/lib/dpkg/info/good-zst:amd64.postinst",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
        // No base-passwd, no ca-certificates, no recipe accounts, no libc6: no such files.
        assert!(!paths.contains(&"etc/passwd"));
        assert!(!paths.contains(&"etc/ld.so.cache"));
        assert!(!paths.contains(&"etc/ssl/certs/ca-certificates.crt"));
        assert!(got.iter().all(|e| e.mtime == 5));
    }
}

//! Debian packages as image layers: control-file parsing, versions and relations, mirror
//! discovery, signed indices, dependency resolution, the lockfile and fetching `.deb`s into
//! the store. Parsers are pure (`&str`/`&[u8]` in); network access goes through
//! [`fetch::Fetcher`], file access stays in the few functions of this file.
//!
//! The flow: `strata lock` = [`resolve_recipe`] (mirror → signed `InRelease` → each
//! architecture's `Packages` → resolve per architecture → the debian part of `RECIPE.lock`,
//! one part per architecture, see [`crate::lockfile`]). `strata build` = [`ensure_lock`]
//! (reads the lock; re-locks only when its debian part is missing or stale for some
//! architecture and neither `--locked` nor `--offline` forbids it), then, for each
//! platform's image with its architecture's part,
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
pub use lock::{stale_reason_all, DebianLock, LockInputs, LockedPackage};
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
    #[error("architecture {arch}: {err}")]
    Arch { arch: String, err: Box<DebianError> },
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

/// The platforms a recipe builds: its `platforms`, else its one `platform`.
pub fn recipe_platforms(recipe: &Recipe) -> Vec<String> {
    if recipe.platforms.is_empty() {
        vec![recipe.platform.clone()]
    } else {
        recipe.platforms.clone()
    }
}

/// [`lock_inputs`] of each Debian architecture of `platforms`, sorted by architecture (the
/// lock's order); platforms of the same architecture (`linux/arm64`, `linux/arm64/v8`)
/// share one.
pub fn lock_inputs_all(
    step: &DebianStep,
    platforms: &[String],
) -> Result<Vec<LockInputs>, DebianError> {
    let mut out: Vec<LockInputs> = Vec::new();
    for p in platforms {
        let i = lock_inputs(step, p)?;
        if !out.iter().any(|o| o.architecture == i.architecture) {
            out.push(i);
        }
    }
    out.sort_by(|a, b| a.architecture.cmp(&b.architecture));
    Ok(out)
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

/// Resolves `step` for one platform against the mirror's current indices and returns the
/// new lock.
pub fn resolve_step(
    step: &DebianStep,
    platform: &str,
    opts: &IndexOptions,
    store: &Store,
    fetcher: &dyn fetch::Fetcher,
) -> Result<DebianLock, DebianError> {
    let mut locks = resolve_step_all(step, &[platform.to_string()], opts, store, fetcher)?;
    Ok(locks.remove(0))
}

/// Resolves `step` for each Debian architecture of `platforms`: one signed `InRelease` is
/// read, then each architecture's `Packages` (checked against it), and each architecture is
/// resolved on its own index. One lock per architecture, sorted by architecture.
pub fn resolve_step_all(
    step: &DebianStep,
    platforms: &[String],
    opts: &IndexOptions,
    store: &Store,
    fetcher: &dyn fetch::Fetcher,
) -> Result<Vec<DebianLock>, DebianError> {
    let inputs = lock_inputs_all(step, platforms)?;
    let mirror = opts.mirror_for(&step.suite)?;
    let keyring = opts.load_keyring()?;
    let arches: Vec<String> = inputs.iter().map(|i| i.architecture.clone()).collect();
    let idx = index::fetch_arch_indices(
        fetcher,
        store,
        &mirror,
        &step.suite,
        &step.components,
        &arches,
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
    let several = inputs.len() > 1;
    let mut out = Vec::new();
    for (i, a) in inputs.iter().zip(&idx.arches) {
        let req = resolve::ResolveRequest {
            arch: i.architecture.clone(),
            packages: packages.clone(),
            exclude: step.exclude.iter().cloned().collect::<BTreeSet<_>>(),
            essential: step.essential,
        };
        let res = resolve::resolve(&a.packages, &req).map_err(|e| {
            let e = DebianError::from(e);
            if several {
                DebianError::Arch {
                    arch: i.architecture.clone(),
                    err: Box::new(e),
                }
            } else {
                e
            }
        })?;
        out.push(DebianLock::new(
            i,
            &idx.inrelease_sha256,
            &a.files,
            &res.packages,
        ));
    }
    Ok(out)
}

/// `strata lock RECIPE`: resolves the recipe's debian step (empty without one) for every
/// architecture the recipe builds, for the debian part of the lock. The caller writes the
/// file, with its other part.
pub fn resolve_recipe(
    recipe: &Recipe,
    opts: &IndexOptions,
    store: &Store,
    fetcher: &dyn fetch::Fetcher,
) -> Result<Vec<DebianLock>, DebianError> {
    let Some(step) = debian_step(recipe) else {
        return Ok(Vec::new());
    };
    resolve_step_all(step, &recipe_platforms(recipe), opts, store, fetcher)
}

/// For `strata build`: the locks to build from, one per architecture the recipe builds
/// (empty without a `debian` step). A fresh lock is used as it is (no index is read). A
/// missing or stale one (for any architecture) is an error under `--locked`/`--offline`,
/// else every architecture is re-resolved and the lock's debian part rewritten (its
/// `[base]` kept).
pub fn ensure_lock(
    recipe_path: &Path,
    recipe: &Recipe,
    policy: LockPolicy,
    opts: &IndexOptions,
    store: &Store,
    fetcher: &dyn fetch::Fetcher,
) -> Result<Vec<DebianLock>, DebianError> {
    let Some(step) = debian_step(recipe) else {
        return Ok(Vec::new());
    };
    let path = lock_path(recipe_path);
    let platforms = recipe_platforms(recipe);
    let inputs = lock_inputs_all(step, &platforms)?;
    let file = crate::lockfile::read(&path)?;
    let what = if file.is_some() {
        "the lockfile has no debian packages"
    } else {
        "no lockfile"
    };
    let locks = file.map(|f| f.debian).unwrap_or_default();
    if locks.is_empty() {
        if policy.locked || policy.offline {
            return Err(DebianError::NoLock {
                path,
                recipe: recipe_path.to_path_buf(),
                what,
                why: if policy.locked {
                    "--locked"
                } else {
                    "--offline"
                },
            });
        }
    } else {
        match stale_reason_all(&locks, &inputs) {
            None => return Ok(locks),
            Some(reason) if policy.locked || policy.offline => {
                return Err(DebianError::Stale {
                    path,
                    recipe: recipe_path.to_path_buf(),
                    reason,
                })
            }
            Some(_) => {}
        }
    }
    let locks = resolve_step_all(step, &platforms, opts, store, fetcher)?;
    crate::lockfile::update(&path, |f| f.debian = locks.clone())?;
    Ok(locks)
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

/// For `strata build`: the layers of the recipe's `debian` step (None without one) for the
/// recipe's one `platform`, from `lock`, that architecture's part of the lock (see
/// [`ensure_lock`]): every `.deb` in the store (fetched unless `--offline`), the packages
/// grouped by `layering`, each group's `.deb`s extracted in order over `lower` and the
/// groups before it, then one layer of fix-ups; and the packages' SBOM.
pub fn build_layers(
    recipe: &Recipe,
    lock: &DebianLock,
    opts: &DebianBuildOptions,
    policy: LockPolicy,
    store: &Store,
    sde: u64,
    lower: &LowerTree,
) -> Result<Option<DebianLayers>, DebianError> {
    let Some(step) = debian_step(recipe) else {
        return Ok(None);
    };
    let arch = debian_arch(&recipe.platform)?;
    if lock.architecture != arch {
        return Err(DebianError::Lock {
            what: format!("platform {}", recipe.platform),
            detail: format!(
                "the lock's packages are for architecture {}, not {arch}",
                lock.architecture
            ),
        });
    }
    let http = fetch::HttpFetcher::new();
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
        lock,
        store,
        mirror.as_deref().map(|m| (&http as &dyn fetch::Fetcher, m)),
    )?;
    let packages: Vec<LockedPackage> = fetched.iter().map(|(_, p)| p.clone()).collect();
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
    fn each_architecture_is_resolved_on_its_own_index() {
        use crate::debian::fetch::tests::MapFetcher;
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/debian/repo");
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let m = "http://mirror.example.invalid/debian";
        let f = MapFetcher::fixture_two_arches(m);
        let opts = IndexOptions {
            mirror: Some(m.into()),
            keyring: Some(repo.join("keyring.gpg")),
            ..IndexOptions::default()
        };
        let step = DebianStep {
            suite: "fixture".into(),
            components: vec!["main".into()],
            packages: vec!["hello-app".into()],
            exclude: vec![],
            essential: false,
            layering: Default::default(),
        };
        // Platforms in any order, one of them twice under two names: two locks, by arch.
        let platforms = ["linux/arm64", "linux/amd64", "linux/arm64/v8"].map(String::from);
        let locks = resolve_step_all(&step, &platforms, &opts, &store, &f).unwrap();
        let arches: Vec<&str> = locks.iter().map(|l| l.architecture.as_str()).collect();
        assert_eq!(arches, ["amd64", "arm64"]);
        let names = |l: &DebianLock| -> Vec<String> {
            l.packages
                .iter()
                .map(|p| format!("{}:{}", p.name, p.arch))
                .collect()
        };
        let (amd, arm) = (&locks[0], &locks[1]);
        assert_eq!(
            names(amd),
            [
                "base-sh:amd64",
                "config-basic:all",
                "hello-app:amd64",
                "libcycle-a:amd64",
                "libcycle-b:amd64",
                "libgreet:amd64",
                "python-ish:amd64"
            ]
        );
        // arm64's libgreet also needs libc6, which only arm64 has.
        assert_eq!(
            names(arm),
            [
                "base-sh:arm64",
                "config-basic:all",
                "hello-app:arm64",
                "libc6:arm64",
                "libcycle-a:arm64",
                "libcycle-b:arm64",
                "libgreet:arm64",
                "python-ish:arm64"
            ]
        );
        // One Release for both; each architecture's own Packages file.
        assert_eq!(amd.index.inrelease, arm.index.inrelease);
        assert_eq!(amd.index.files[0].path, "main/binary-amd64/Packages.xz");
        assert_eq!(arm.index.files[0].path, "main/binary-arm64/Packages.xz");
        // The arch:all package is the same file in both.
        let all = |l: &DebianLock| l.packages.iter().find(|p| p.arch == "all").cloned();
        assert_eq!(all(amd), all(arm));
        // Each part is what a one-platform resolution gives, so it is fresh for it.
        let one = resolve_step(&step, "linux/arm64", &opts, &store, &f).unwrap();
        assert_eq!(&one, arm);
        let inputs = lock_inputs_all(&step, &platforms).unwrap();
        assert_eq!(stale_reason_all(&locks, &inputs), None);
        // A package only one architecture has: the error names that architecture.
        let step2 = DebianStep {
            packages: vec!["libc6".into()],
            ..step.clone()
        };
        let e = resolve_step_all(&step2, &platforms, &opts, &store, &f)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("architecture amd64: ") && e.contains("libc6"),
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

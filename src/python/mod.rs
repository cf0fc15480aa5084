//! The `python` recipe step: pinned requirements locked with their dependency closure
//! (`strata lock`), wheels kept in the content-addressed store, installed into a layer
//! without pip. Parsers (versions, markers, tags, metadata, index pages, lock files) are
//! pure and table-tested; this file holds the I/O: the store, pip for sdists, the lock run.

pub mod index;
pub mod install;
pub mod lock;
pub mod marker;
pub mod metadata;
pub mod resolver;
pub mod step;
pub mod tags;
pub mod version;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::layer::{Content, Entry, EntryKind};
use crate::recipe::model::{PythonStep, Step};
use crate::recipe::parse::step_path;
use crate::recipe::{CachedInputs, LoadedRecipe, RecipeError};
use crate::store::{Store, StoreError};

pub use index::{HttpIndex, Index};
pub use lock::Lock;

/// Keeps wheels in the store (verified on write).
pub struct StoreSink<'a>(pub &'a Store);

impl resolver::WheelSink for StoreSink<'_> {
    fn put(&self, bytes: &[u8]) -> Result<(), String> {
        self.0
            .put_bytes(bytes)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Builds wheels from sdists with `PYTHON -m pip wheel --no-deps` (PYTHON is
/// `STRATA_PYTHON_BUILDER`, default `python3`), at lock time only. Build dependencies come
/// from the same index; `SOURCE_DATE_EPOCH` is fixed and C/C++ code is compiled without
/// debug info (`-g0`, which would record pip's random build directory), so a rebuild can
/// give the same bytes.
pub struct PipBuilder {
    pub python: String,
}

impl PipBuilder {
    pub fn from_env() -> PipBuilder {
        PipBuilder {
            python: std::env::var("STRATA_PYTHON_BUILDER")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "python3".into()),
        }
    }
}

impl resolver::SdistBuilder for PipBuilder {
    fn build(
        &self,
        sdist_filename: &str,
        sdist: &[u8],
        index_url: &str,
    ) -> Result<(String, Vec<u8>), String> {
        if sdist_filename.contains('/') {
            return Err(format!("sdist name `{sdist_filename}` contains `/`"));
        }
        let tmp = tempfile::Builder::new()
            .prefix("strata-sdist-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let src = tmp.path().join(sdist_filename);
        std::fs::write(&src, sdist).map_err(|e| format!("{}: {e}", src.display()))?;
        let out = tmp.path().join("wheels");
        let res = Command::new(&self.python)
            .args(["-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "--wheel-dir"])
            .arg(&out)
            .args(["--index-url", index_url])
            .arg(&src)
            .env("SOURCE_DATE_EPOCH", "315532800")
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            // pip builds in a temp dir of a random name, which debug info records; without
            // it a rebuilt C extension comes out byte-identical.
            .env("CFLAGS", no_debug_info("CFLAGS"))
            .env("CXXFLAGS", no_debug_info("CXXFLAGS"))
            .output()
            .map_err(|e| {
                format!(
                    "cannot run `{} -m pip`: {e}\n  hint: building {sdist_filename} needs Python with pip (Debian: apt-get install python3-pip), or set STRATA_PYTHON_BUILDER",
                    self.python
                )
            })?;
        if !res.status.success() {
            let err = String::from_utf8_lossy(&res.stderr);
            let tail: Vec<&str> = err.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "`{} -m pip wheel` failed on {sdist_filename} ({}):\n{}",
                self.python,
                res.status,
                tail.join("\n")
            ));
        }
        let mut wheels: Vec<PathBuf> = std::fs::read_dir(&out)
            .map_err(|e| format!("{}: {e}", out.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "whl"))
            .collect();
        wheels.sort();
        let [wheel] = wheels.as_slice() else {
            return Err(format!(
                "pip built {} wheels from {sdist_filename}, expected one",
                wheels.len()
            ));
        };
        let name = wheel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(wheel).map_err(|e| format!("{}: {e}", wheel.display()))?;
        Ok((name, bytes))
    }
}

/// The compiler flags in `var`, if set, with `-g0` last (it overrides an earlier `-g`).
fn no_debug_info(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => format!("{} -g0", v.trim()),
        _ => "-g0".into(),
    }
}

/// The `python` steps of a recipe: value path and step.
pub fn python_steps(loaded: &LoadedRecipe) -> Vec<(String, &PythonStep)> {
    let mut out = Vec::new();
    for (li, layer) in loaded.recipe.layers.iter().enumerate() {
        for (si, step) in layer.steps.iter().enumerate() {
            if let Step::Python(py) = step {
                out.push((step_path(li, si, step), py));
            }
        }
    }
    out
}

/// What `strata lock` did for one step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LockReport {
    pub step: String,
    pub lock: PathBuf,
    /// `resolved` (written anew), `current` (kept), `rewritten` (an older-format lock
    /// written in the current format, same resolution).
    pub action: &'static str,
    pub packages: usize,
    /// Wheels downloaded or built into the cache by this run.
    pub fetched: usize,
}

/// Options of `strata lock`.
pub struct LockOptions<'a> {
    /// Re-resolve even when the lock matches the step.
    pub update: bool,
    /// The index (only used when something must be resolved or downloaded).
    pub index: &'a dyn Fn() -> Result<Box<dyn Index>, String>,
    pub builder: &'a dyn resolver::SdistBuilder,
    pub log: &'a dyn Fn(&str),
}

/// Locks every python step of the recipe: keeps a lock that matches the step (fetching
/// any wheel missing from the cache), resolves anew otherwise or with `update`.
pub fn lock_recipe(
    loaded: &LoadedRecipe,
    store: &Store,
    opts: &LockOptions<'_>,
) -> anyhow::Result<Vec<LockReport>> {
    let mut reports = Vec::new();
    let mut index: Option<Box<dyn Index>> = None;
    let get_index = |index: &mut Option<Box<dyn Index>>| -> anyhow::Result<()> {
        if index.is_none() {
            *index = Some((opts.index)().map_err(anyhow::Error::msg)?);
        }
        Ok(())
    };
    for (path, py) in python_steps(loaded) {
        let settings = step::settings(loaded, &path, py)?;
        let pins = step::requirements(loaded, &path, py)?;
        let texts: Vec<String> = pins.iter().map(|p| p.text.clone()).collect();
        let existing = lock::read(&settings.lock).map_err(anyhow::Error::msg)?;
        let current = existing.filter(|l| {
            !opts.update
                && l.stale_reason(&settings.python, &settings.platform, &texts)
                    .is_none()
        });
        if let Some(l) = current {
            let mut fetched = 0;
            for w in &l.packages {
                if store.has_blob(&w.digest()) {
                    continue;
                }
                get_index(&mut index)?;
                let ix = index
                    .as_deref()
                    .ok_or_else(|| anyhow::anyhow!("no index"))?;
                fetch_locked(store, ix, opts.builder, w, opts.log).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: package {} {}: {e}",
                        settings.lock.display(),
                        w.name,
                        w.version
                    )
                })?;
                fetched += 1;
            }
            // A lock in the older format (with URLs) is written anew: same resolution,
            // no URLs.
            let action = if l.is_old_format() {
                let mut l = l.clone();
                l.version = lock::LOCK_VERSION;
                lock::write(&settings.lock, &l)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", settings.lock.display()))?;
                "rewritten"
            } else {
                "current"
            };
            reports.push(LockReport {
                step: path,
                lock: settings.lock.clone(),
                action,
                packages: l.packages.len(),
                fetched,
            });
            continue;
        }
        get_index(&mut index)?;
        let ix = index
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("no index"))?;
        let req = resolver::LockRequest {
            python: &settings.python,
            platform: &settings.platform,
            target: &settings.target,
            env: &settings.env,
            pins: &pins,
        };
        let lock = resolver::resolve(&req, ix, &StoreSink(store), opts.builder, opts.log).map_err(
            |e| {
                let (message, hint) = match e.split_once("\n  hint: ") {
                    Some((m, h)) => (m.to_string(), h.to_string()),
                    None => (e, String::new()),
                };
                loaded.error_at(&path, format!("cannot lock: {message}"), hint)
            },
        )?;
        lock::write(&settings.lock, &lock)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", settings.lock.display()))?;
        reports.push(LockReport {
            step: path,
            lock: settings.lock.clone(),
            action: "resolved",
            packages: lock.packages.len(),
            fetched: lock.packages.len(),
        });
    }
    Ok(reports)
}

/// Fetches one locked wheel into the store: found by file name on the index's page for
/// its project, or, for a wheel built at lock time, its sdist found the same way and
/// rebuilt. Size and sha256 are checked against the lock before anything is published.
pub fn fetch_locked(
    store: &Store,
    index: &dyn Index,
    builder: &dyn resolver::SdistBuilder,
    w: &lock::LockedWheel,
    log: &dyn Fn(&str),
) -> Result<(), String> {
    let bytes = match &w.built_from {
        None => {
            log(&format!("fetching {}", w.filename));
            index::fetch_by_name(index, &w.name, &w.filename, w.size, &w.sha256)?
        }
        Some(sd) => {
            log(&format!("rebuilding {} from {}", w.filename, sd.filename));
            let sdist = index::fetch_by_name(index, &w.name, &sd.filename, sd.size, &sd.sha256)?;
            let (_, bytes) = builder.build(&sd.filename, &sdist, index.base_url())?;
            let got = crate::digest::sha256_hex(&bytes);
            if got != w.sha256 {
                return Err(format!(
                    "rebuilding it from {} gave a different wheel (sha256 {got}, the lock says {})\n  hint: the sdist's build is not reproducible; run `strata lock --update` to lock the new build",
                    sd.filename, w.sha256
                ));
            }
            bytes
        }
    };
    let mut writer = store.blob_writer().map_err(|e| e.to_string())?;
    writer.write_all(&bytes).map_err(|e| e.to_string())?;
    writer.commit(Some(&w.digest())).map_err(|e| match e {
        StoreError::DigestMismatch { found, .. } => format!(
            "downloaded bytes have digest {found}, the lock says sha256:{} (not stored)\n  hint: the index serves different bytes than when the lock was made; check the index, or run `strata lock --update`",
            w.sha256
        ),
        e => e.to_string(),
    })?;
    Ok(())
}

/// Installs locked wheels from the store for the build (no network: a missing wheel is an
/// error naming it).
pub struct StoreWheels<'a> {
    store: &'a Store,
}

impl<'a> StoreWheels<'a> {
    pub fn new(store: &'a Store) -> StoreWheels<'a> {
        StoreWheels { store }
    }
}

fn lock_hint(loaded: &LoadedRecipe) -> String {
    format!("run `strata lock {}`", loaded.file.display())
}

impl CachedInputs for StoreWheels<'_> {
    fn python_entries(
        &self,
        loaded: &LoadedRecipe,
        path: &str,
        py: &PythonStep,
    ) -> Result<Vec<Entry>, RecipeError> {
        let settings = step::settings(loaded, path, py)?;
        let pins = step::requirements(loaded, path, py)?;
        let texts: Vec<String> = pins.iter().map(|p| p.text.clone()).collect();
        let shown = settings.lock.display().to_string();
        let lock = lock::read(&settings.lock)
            .map_err(|e| loaded.error_at(path, format!("bad lock file {e}"), lock_hint(loaded)))?
            .ok_or_else(|| {
                loaded.error_at(
                    path,
                    format!("the python step has no lock file ({shown})"),
                    lock_hint(loaded),
                )
            })?;
        if let Some(why) = lock.stale_reason(&settings.python, &settings.platform, &texts) {
            return Err(loaded.error_at(
                path,
                format!("the lock file {shown} is out of date: {why}"),
                lock_hint(loaded),
            ));
        }
        let layout = install::InstallLayout {
            site: settings.site.clone(),
            prefix: settings.prefix.clone(),
            interpreter: settings.interpreter.clone(),
            minor: settings.target.minor,
        };
        let mut owners: BTreeMap<String, String> = BTreeMap::new();
        let mut out = Vec::new();
        for w in &lock.packages {
            let bytes = self.store.read_blob(&w.digest()).map_err(|e| match e {
                StoreError::Missing(_) => loaded.error_at(
                    path,
                    format!(
                        "wheel {} ({} {}, sha256 {}) is not in the cache",
                        w.filename, w.name, w.version, w.sha256
                    ),
                    format!(
                        "{} to fetch the locked wheels (builds never download)",
                        lock_hint(loaded)
                    ),
                ),
                e => loaded.error_at(
                    path,
                    format!("cannot read wheel {} from the cache: {e}", w.filename),
                    format!("remove the damaged blob and {}", lock_hint(loaded)),
                ),
            })?;
            let files = install::install_wheel(&w.filename, &bytes, &layout).map_err(|e| {
                loaded.error_at(
                    path,
                    format!("wheel {}: {e}", w.filename),
                    "the wheel is malformed or hostile; nothing was installed",
                )
            })?;
            for f in files {
                if let Some(other) = owners.insert(f.path.clone(), w.filename.clone()) {
                    return Err(loaded.error_at(
                        path,
                        format!("wheels {other} and {} both install /{}", w.filename, f.path),
                        "two packages ship the same file; drop one of them from the requirements",
                    ));
                }
                let size = f.bytes.len() as u64;
                out.push(Entry::new(
                    f.path,
                    EntryKind::File {
                        content: Content::Bytes(f.bytes),
                        size,
                    },
                    f.mode,
                ));
            }
        }
        Ok(out)
    }
}

/// Reads a file for [`index::index_url`], treating any error as "not there".
pub fn read_config(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The index URL from the flag, the environment and pip's configuration.
pub fn configured_index(flag: Option<&str>) -> Result<index::IndexUrl, String> {
    index::index_url(flag, &|k| std::env::var(k).ok(), &read_config)
}

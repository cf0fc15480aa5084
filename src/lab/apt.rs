//! The lab's `apt.packages`: packages Salt formulas install with `pkg.installed`, resolved
//! and locked by the Debian pipeline and served inside the lab from strata's cache, so a
//! lab network with no route out still installs them.
//!
//! One repository per Debian suite the minions run:
//! 1. [`suites_for_lab`]: the suites of the minion images, read from their recipes'
//!    `debian` steps (suite, components, platform).
//! 2. Per suite a lock `lab/<name>/apt-<suite>.lock`, in the format of recipe locks: the
//!    lab's `apt.packages` resolved as a `debian` step {suite, components, packages,
//!    `essential: false`} against the mirror's signed indices. [`lock_lab`] always resolves
//!    (`strata lock`); [`ensure_lab_locks`] uses a fresh lock as it is and re-resolves a
//!    missing or stale one unless `--locked`/`--offline` forbid it (`lab up`).
//! 3. [`write_flat_repo`]: every locked `.deb` into the store (sha256-verified, the fetch
//!    path builds use), then a flat apt repository `<out>/<suite>/` holding the `.deb`s, a
//!    `Packages` index made from their control files and a `Release` file. Written beside
//!    and renamed into place, so a reader sees the old repository or the new one (or, after
//!    a crash between two renames, none), never half of one.
//! 4. [`sources_list`]: the line minions use, `deb [trusted=yes] http://HOST/SUITE ./`,
//!    served by `python3 -m http.server` in the lab from a read-only mount of `<out>`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::debian::deb::read_deb_control;
use crate::debian::fetch::{self, Fetcher};
use crate::debian::lock::{DebianLock as Lockfile, LockInputs, LockedPackage};
use crate::debian::{self, DebianError, IndexOptions, Version};
use crate::lockfile::LockPolicy;
use crate::recipe::{DebianStep, Layering, RecipeError, DEFAULT_SOURCE_DATE_EPOCH};
use crate::store::Store;

use super::spec::{ImageSource, Lab};

/// The `Date` of every lab `Release` file: fixed (2000-01-01), so the same lock gives the
/// same bytes. It only has to lie in the past: apt refuses a `Release` dated in the future,
/// and without `Valid-Until` it never expires.
pub const RELEASE_DATE: i64 = DEFAULT_SOURCE_DATE_EPOCH;

/// Bumped when the repository's layout or the `Packages`/`Release` bytes change, so a repo
/// written by an older strata is rewritten rather than reused.
pub const REPO_FORMAT: u32 = 1;

/// Leftover temp and old directories of crashed writers are removed after this long.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabAptError {
    /// A problem at a place in the lab file or in a minion's recipe.
    #[error(transparent)]
    Place(#[from] RecipeError),
    /// The Debian pipeline failed (resolving, fetching, reading the lock), with what for.
    #[error("{context}: {err}")]
    Debian { context: String, err: DebianError },
    #[error("{path}: the lock of the lab's apt packages is stale: {reason}\nhint: run `strata lock {lab}` and commit the new lock (or start the lab without --locked)")]
    Stale {
        path: PathBuf,
        lab: PathBuf,
        reason: String,
    },
    #[error("{path}: no lock of the lab's apt packages, and {why} forbids resolving one\nhint: run `strata lock {lab}` first")]
    NoLock {
        path: PathBuf,
        lab: PathBuf,
        why: &'static str,
    },
    #[error("offline: {} .deb file(s) of the lab's `{suite}` packages are not in the cache:\n{}\nhint: run once without --offline (network needed) to fetch them into the cache", missing.len(), missing.iter().map(|m| format!("  {m}")).collect::<Vec<_>>().join("\n"))]
    Offline { suite: String, missing: Vec<String> },
    /// A `.deb` in the store does not match what the lock says about it.
    #[error("{deb}: {detail}\nhint: the cached file is not the package the lock names; remove it from the cache (`strata cache gc`) and run again")]
    Deb { deb: String, detail: String },
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LabAptError + '_ {
    move |err| LabAptError::Io {
        path: path.to_path_buf(),
        err,
    }
}

fn debian_err(context: impl Into<String>) -> impl FnOnce(DebianError) -> LabAptError {
    let context = context.into();
    move |err| LabAptError::Debian { context, err }
}

/// One Debian suite the lab's minions run, and so one repository and one lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabAptSuite {
    pub suite: String,
    pub components: Vec<String>,
    /// The images' OCI platform (`linux/amd64`).
    pub platform: String,
    /// Its Debian architecture (`amd64`).
    pub arch: String,
    /// The lab's image names (keys of `images`) whose minions run this suite, sorted.
    pub images: Vec<String>,
    /// `lab/<name>/apt-<suite>.lock`.
    pub lock_path: PathBuf,
}

/// The file- and directory-name form of a suite (`/` becomes `_`, as suite names may hold
/// `/`; they never hold `_`).
pub fn suite_file_name(suite: &str) -> String {
    suite.replace('/', "_")
}

/// `lab/<name>/apt-<suite>.lock`.
pub fn lock_path(lab: &Lab, suite: &str) -> PathBuf {
    lab.dir.join(format!("apt-{}.lock", suite_file_name(suite)))
}

/// The distinct Debian suites of the lab's minion images (sorted by suite), read from each
/// minion recipe's `debian` step. Empty when the lab has no `apt.packages` (nothing to
/// serve). With packages, every minion image must be a recipe with a `debian` step, the
/// packages must be valid package entries, and one suite must not come with two different
/// component lists or platforms (the lab serves one repository per suite).
pub fn suites_for_lab(lab: &Lab) -> Result<Vec<LabAptSuite>, LabAptError> {
    let packages = &lab.spec.apt.packages;
    if packages.is_empty() {
        return Ok(Vec::new());
    }
    let at = |place: &str, msg: String, hint: &str| -> LabAptError {
        RecipeError::new(&lab.file, lab.map.locate(place), msg, hint).into()
    };
    for (i, p) in packages.iter().enumerate() {
        debian::resolve::parse_request(p).map_err(|e| {
            at(
                &format!("apt.packages[{i}]"),
                format!(
                    "bad package entry `{p}`: {}",
                    e.to_string().lines().next().unwrap_or("")
                ),
                "write `name`, `name (>= 1.2)`, `name=1.2-1` or `a | b`",
            )
        })?;
    }
    // Image name → (suite, components, platform), each recipe loaded once.
    let mut of_image: BTreeMap<String, (String, Vec<String>, String)> = BTreeMap::new();
    // Suite → the suite and the first minion entry that named it (for conflicts).
    let mut suites: BTreeMap<String, (LabAptSuite, usize)> = BTreeMap::new();
    for (i, m) in lab.spec.minions.iter().enumerate() {
        let place = format!("minions[{i}].image");
        let image = &m.image;
        if !of_image.contains_key(image) {
            let recipe = match lab.images.get(image) {
                Some(ImageSource::Recipe(p)) => p,
                Some(ImageSource::Layout { path, .. }) => {
                    return Err(at(
                        &place,
                        format!(
                            "image `{image}` is an OCI layout ({}): strata cannot tell which Debian suite it runs, so it cannot serve it the lab's apt.packages",
                            path.display()
                        ),
                        "build the minion image from a recipe with a `debian` step, or remove `apt.packages` from the lab",
                    ));
                }
                None => {
                    return Err(at(
                        &place,
                        format!("unknown image `{image}`"),
                        "name one of the images defined under `images`",
                    ))
                }
            };
            // The recipe's own error, placed at the minion that uses it.
            let loaded = crate::recipe::load(recipe).map_err(|e| {
                at(
                    &place,
                    format!(
                        "image `{image}`: {}:{}:{}: {}",
                        e.file.display(),
                        e.line,
                        e.col,
                        e.message
                    ),
                    &e.hint,
                )
            })?;
            let Some(step) = debian::debian_step(&loaded.recipe) else {
                return Err(at(
                    &place,
                    format!(
                        "image `{image}` ({}) has no `debian` step, so there is no Debian suite to serve the lab's apt.packages from",
                        recipe.display()
                    ),
                    "give the minion recipe a `debian` step (with apt installed), or remove `apt.packages` from the lab",
                ));
            };
            of_image.insert(
                image.clone(),
                (
                    step.suite.clone(),
                    step.components.clone(),
                    loaded.recipe.platform.clone(),
                ),
            );
        }
        let (suite, components, platform) = &of_image[image];
        match suites.get_mut(suite) {
            Some((s, first)) => {
                if &s.components != components || &s.platform != platform {
                    return Err(at(
                        &place,
                        format!(
                            "image `{image}` runs suite `{suite}` with components {components:?} on {platform}, but image `{}` (minions[{first}]) runs it with components {:?} on {}",
                            lab.spec.minions[*first].image, s.components, s.platform
                        ),
                        "the lab serves one repository per suite: give the recipes of one suite the same components and platform",
                    ));
                }
                if !s.images.contains(image) {
                    s.images.push(image.clone());
                    s.images.sort();
                }
            }
            None => {
                let arch = debian::debian_arch(platform)
                    .map_err(debian_err(format!("image `{image}`")))?;
                suites.insert(
                    suite.clone(),
                    (
                        LabAptSuite {
                            suite: suite.clone(),
                            components: components.clone(),
                            platform: platform.clone(),
                            arch: arch.to_string(),
                            images: vec![image.clone()],
                            lock_path: lock_path(lab, suite),
                        },
                        i,
                    ),
                );
            }
        }
    }
    Ok(suites.into_values().map(|(s, _)| s).collect())
}

/// The suite of the minions of `image`, if the lab serves it one.
pub fn suite_for_image<'a>(suites: &'a [LabAptSuite], image: &str) -> Option<&'a LabAptSuite> {
    suites.iter().find(|s| s.images.iter().any(|i| i == image))
}

/// The `debian` step the lab's packages are resolved as: the suite's components, the lab's
/// `apt.packages`, no exclusions, without the Essential set (the minions have it).
pub fn apt_step(lab: &Lab, suite: &LabAptSuite) -> DebianStep {
    DebianStep {
        suite: suite.suite.clone(),
        components: suite.components.clone(),
        packages: lab.spec.apt.packages.clone(),
        exclude: Vec::new(),
        essential: false,
        layering: Layering::default(),
    }
}

/// What the lock of `suite` is made from; its digest decides staleness.
pub fn lock_inputs(lab: &Lab, suite: &LabAptSuite) -> Result<LockInputs, LabAptError> {
    debian::lock_inputs(&apt_step(lab, suite), &suite.platform)
        .map_err(debian_err(lab.file.display().to_string()))
}

/// A suite's lock and whether its file was (re)written.
#[derive(Debug, Clone)]
pub struct LabAptLock {
    pub suite: LabAptSuite,
    pub lock: Lockfile,
    /// True when the lock file's bytes changed (or it was created).
    pub changed: bool,
}

fn resolve_suite(
    lab: &Lab,
    s: &LabAptSuite,
    opts: &IndexOptions,
    store: &Store,
    fetcher: &dyn Fetcher,
) -> Result<Lockfile, LabAptError> {
    debian::resolve_step(&apt_step(lab, s), &s.platform, opts, store, fetcher).map_err(debian_err(
        format!(
            "{}: apt.packages for suite `{}` (images {})",
            lab.file.display(),
            s.suite,
            s.images.join(", ")
        ),
    ))
}

/// Writes `lock` unless the file already holds the same bytes; returns whether it wrote.
fn write_if_changed(path: &Path, lock: &Lockfile) -> Result<bool, LabAptError> {
    let file = crate::lockfile::Lockfile {
        base: None,
        debian: vec![lock.clone()],
    };
    crate::lockfile::write(path, &file)
        .map_err(|e| debian_err(path.display().to_string())(DebianError::from(e)))
}

/// The Debian part of the lock at `path`, if there is one.
fn read_lock(path: &Path) -> Result<Option<Lockfile>, DebianError> {
    // A lab's locks hold one architecture each.
    Ok(crate::lockfile::read(path)?.and_then(|l| {
        let mut d = l.debian;
        (d.len() == 1).then(|| d.remove(0))
    }))
}

/// `strata lock LAB`: resolves the lab's `apt.packages` for every suite of its minions
/// against the mirror's current signed indices (always, like a recipe's `debian` step) and
/// writes each lock whose bytes changed. Empty when the lab has no `apt.packages`.
pub fn lock_lab(
    lab: &Lab,
    opts: &IndexOptions,
    store: &Store,
    fetcher: &dyn Fetcher,
) -> Result<Vec<LabAptLock>, LabAptError> {
    let mut out = Vec::new();
    for s in suites_for_lab(lab)? {
        let lock = resolve_suite(lab, &s, opts, store, fetcher)?;
        let changed = write_if_changed(&s.lock_path, &lock)?;
        out.push(LabAptLock {
            suite: s,
            lock,
            changed,
        });
    }
    Ok(out)
}

/// For `lab up`: each suite's lock. A fresh lock is used as it is (no index is read); a
/// missing or stale one is an error under `policy` (`--locked`/`--offline`), else it is
/// resolved and written.
pub fn ensure_lab_locks(
    lab: &Lab,
    policy: LockPolicy,
    opts: &IndexOptions,
    store: &Store,
    fetcher: &dyn Fetcher,
) -> Result<Vec<LabAptLock>, LabAptError> {
    let mut out = Vec::new();
    for s in suites_for_lab(lab)? {
        let inputs = lock_inputs(lab, &s)?;
        let path = s.lock_path.clone();
        let existing = read_lock(&path).map_err(debian_err(format!(
            "the lock of the lab's apt packages for suite `{}`",
            s.suite
        )))?;
        let forbidden = if policy.locked {
            Some("--locked")
        } else if policy.offline {
            Some("--offline")
        } else {
            None
        };
        match (existing, forbidden) {
            (Some(lock), _) if lock.stale_reason(&inputs).is_none() => {
                out.push(LabAptLock {
                    suite: s,
                    lock,
                    changed: false,
                });
                continue;
            }
            (Some(lock), Some(_)) => {
                return Err(LabAptError::Stale {
                    reason: lock.stale_reason(&inputs).unwrap_or_default(),
                    path,
                    lab: lab.file.clone(),
                })
            }
            (None, Some(why)) => {
                return Err(LabAptError::NoLock {
                    path,
                    lab: lab.file.clone(),
                    why,
                })
            }
            (_, None) => {}
        }
        let lock = resolve_suite(lab, &s, opts, store, fetcher)?;
        let changed = write_if_changed(&path, &lock)?;
        out.push(LabAptLock {
            suite: s,
            lock,
            changed,
        });
    }
    Ok(out)
}

/// A flat repository written (or found up to date) by [`write_flat_repo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlatRepo {
    /// `<out>/<suite>`.
    pub dir: PathBuf,
    pub suite: String,
    pub packages: usize,
    /// Bytes of the `.deb`s.
    pub bytes: u64,
    /// `.deb`s downloaded into the cache for it.
    pub fetched: usize,
    /// False when the existing repository already matched the lock and was kept.
    pub written: bool,
}

/// The repository's file name of a locked package: the last part of its pool path.
pub fn deb_file_name(p: &LockedPackage) -> &str {
    p.filename.rsplit('/').next().unwrap_or(&p.filename)
}

/// One `Packages` paragraph: the `.deb`'s control fields in their order (any index fields
/// a control file should not have are dropped), then `Filename`, `Size` and `SHA256`.
pub fn packages_paragraph(
    control: &[(String, String)],
    file_name: &str,
    size: u64,
    sha256: &str,
) -> String {
    const INDEX_FIELDS: [&str; 6] = ["Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512"];
    let mut s = String::new();
    for (name, value) in control {
        if INDEX_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            continue;
        }
        let mut lines = value.split('\n');
        let first = lines.next().unwrap_or("");
        if first.is_empty() {
            s.push_str(&format!("{name}:\n"));
        } else {
            s.push_str(&format!("{name}: {first}\n"));
        }
        for l in lines {
            // An empty continuation line would end the paragraph: deb822 spells it ` .`.
            s.push(' ');
            s.push_str(if l.is_empty() { "." } else { l });
            s.push('\n');
        }
    }
    s.push_str(&format!(
        "Filename: {file_name}\nSize: {size}\nSHA256: {sha256}\n"
    ));
    s
}

/// The `Packages` index: paragraphs sorted by package name then architecture, each ended
/// by a blank line. Pure and deterministic (input order does not matter).
pub fn packages_index(paragraphs: &[(String, String, String)]) -> String {
    let mut sorted: Vec<&(String, String, String)> = paragraphs.iter().collect();
    sorted.sort();
    let mut out = String::new();
    for (_, _, text) in sorted {
        out.push_str(text);
        out.push('\n');
    }
    out
}

/// Everything of the `Release` file before its `SHA256` list: it depends on the lock alone,
/// so an existing repository can be recognised without reading any `.deb`.
pub fn release_header(lock: &Lockfile) -> String {
    format!(
        "Origin: strata\nLabel: strata lab\nSuite: {suite}\nCodename: {suite}\nDate: {date}\nArchitectures: {arch} all\nDescription: packages of a strata lab (repository format {REPO_FORMAT}, lock {id})\n",
        suite = lock.suite,
        date = rfc2822(RELEASE_DATE),
        arch = lock.architecture,
        id = lock.identity,
    )
}

/// The `Release` file: [`release_header`], then the size and sha256 of `Packages`.
pub fn release_file(lock: &Lockfile, packages: &[u8]) -> String {
    format!(
        "{}SHA256:\n {} {} Packages\n",
        release_header(lock),
        crate::digest::sha256_hex(packages),
        packages.len()
    )
}

/// Unix seconds as a `Release` date: `Sat, 01 Jan 2000 00:00:00 UTC`.
pub fn rfc2822(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = crate::oci::civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} UTC",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(mo - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// True when `dir` already holds the repository of `lock`: its `Release` header is the
/// lock's, `Packages` has the size and sha256 `Release` lists, and every `.deb` is there
/// with the lock's size. Reads no `.deb` (they were checked against the lock when written).
pub fn repo_is_current(dir: &Path, lock: &Lockfile) -> bool {
    let Ok(release) = fs::read_to_string(dir.join("Release")) else {
        return false;
    };
    let Some(rest) = release.strip_prefix(&release_header(lock)) else {
        return false;
    };
    let Ok(packages) = fs::read(dir.join("Packages")) else {
        return false;
    };
    if rest
        != format!(
            "SHA256:\n {} {} Packages\n",
            crate::digest::sha256_hex(&packages),
            packages.len()
        )
    {
        return false;
    }
    lock.packages.iter().all(|p| {
        fs::symlink_metadata(dir.join(deb_file_name(p)))
            .is_ok_and(|m| m.is_file() && m.len() == p.size)
    })
}

/// Writes the flat apt repository of `lock` to `<out>/<suite>/` (see the module docs):
/// every locked `.deb` is made sure of in the store (fetched from the suite's mirror through
/// `fetcher` when missing, sha256-verified; `offline`: an error naming each missing one),
/// read to check it is the package the lock names (name, version, architecture, size,
/// sha256) and to take its control paragraph, then hard-linked (or copied, across
/// filesystems) into the repository beside `Packages` and `Release`. The new directory is
/// built beside the old one and renamed into place. When the existing repository already
/// matches the lock nothing is read or written (`written: false`).
///
/// A hard-linked `.deb` shares its inode with the cache's blob, which is made readable by
/// all (0644): the packages are public, and apt's unprivileged user and the server in the
/// lab must read them.
pub fn write_flat_repo(
    lock: &Lockfile,
    out: &Path,
    store: &Store,
    offline: bool,
    opts: &IndexOptions,
    fetcher: &dyn Fetcher,
) -> Result<FlatRepo, LabAptError> {
    let name = suite_file_name(&lock.suite);
    let dir = out.join(&name);
    let bytes = lock.packages.iter().map(|p| p.size).sum();
    let mut repo = FlatRepo {
        dir: dir.clone(),
        suite: lock.suite.clone(),
        packages: lock.packages.len(),
        bytes,
        fetched: 0,
        written: false,
    };
    if repo_is_current(&dir, lock) {
        return Ok(repo);
    }
    let mut names = BTreeSet::new();
    for p in &lock.packages {
        if !names.insert(deb_file_name(p)) {
            return Err(LabAptError::Deb {
                deb: p.filename.clone(),
                detail: format!(
                    "two locked packages have the file name `{}`",
                    deb_file_name(p)
                ),
            });
        }
    }
    let missing: Vec<&LockedPackage> = lock
        .packages
        .iter()
        .filter(|p| !store.has_blob(&format!("sha256:{}", p.sha256)))
        .collect();
    if !missing.is_empty() && offline {
        return Err(LabAptError::Offline {
            suite: lock.suite.clone(),
            missing: missing
                .iter()
                .map(|p| {
                    format!(
                        "{}_{}_{}.deb (sha256:{}, {})",
                        p.name, p.version, p.arch, p.sha256, p.filename
                    )
                })
                .collect(),
        });
    }
    let context = format!("the lab's apt packages for suite `{}`", lock.suite);
    // The mirror is looked up only when something must be downloaded.
    let mirror = if missing.is_empty() {
        None
    } else {
        Some(opts.mirror_for(&lock.suite).map_err(debian_err(&context))?)
    };
    let debs = fetch::ensure_debs(lock, store, mirror.as_deref().map(|m| (fetcher, m)))
        .map_err(debian_err(&context))?;
    repo.fetched = missing.len();

    let mut paragraphs = Vec::new();
    for (blob, p) in &debs {
        let what = format!("{} {} ({}, {})", p.name, p.version, p.arch, p.filename);
        let info = read_deb_control(blob).map_err(|e| LabAptError::Deb {
            deb: what.clone(),
            detail: e.to_string(),
        })?;
        let mismatch = |detail: String| LabAptError::Deb {
            deb: what.clone(),
            detail,
        };
        if info.sha256 != p.sha256 || info.size != p.size {
            return Err(mismatch(format!(
                "the cached file is {} bytes with sha256 {}, the lock says {} bytes with sha256 {}",
                info.size, info.sha256, p.size, p.sha256
            )));
        }
        let field = |f: &str| info.field(f).unwrap_or("").to_string();
        let same_version = Version::parse(&field("Version"))
            .ok()
            .zip(Version::parse(&p.version).ok())
            .is_some_and(|(a, b)| a == b);
        if field("Package") != p.name || !same_version || field("Architecture") != p.arch {
            return Err(mismatch(format!(
                "its control file says {} {} ({})",
                field("Package"),
                field("Version"),
                field("Architecture")
            )));
        }
        paragraphs.push((
            p.name.clone(),
            p.arch.clone(),
            packages_paragraph(&info.fields, deb_file_name(p), p.size, &p.sha256),
        ));
    }
    let packages = packages_index(&paragraphs);
    let release = release_file(lock, packages.as_bytes());

    fs::create_dir_all(out).map_err(io_err(out))?;
    remove_stale_temps(out, &name);
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempdir_in(out)
        .map_err(io_err(out))?;
    for (blob, p) in &debs {
        place_deb(blob, &tmp.path().join(deb_file_name(p)))?;
    }
    write_file(&tmp.path().join("Packages"), packages.as_bytes())?;
    write_file(&tmp.path().join("Release"), release.as_bytes())?;
    set_mode(tmp.path(), 0o755)?;
    sync_dir(tmp.path());
    swap_into_place(tmp, &dir, out, &name, lock)?;
    sync_dir(out);
    repo.written = true;
    Ok(repo)
}

/// Hard-links the blob to `dest` (made readable by all), or copies it across filesystems.
fn place_deb(blob: &Path, dest: &Path) -> Result<(), LabAptError> {
    if fs::hard_link(blob, dest).is_ok() && set_mode(dest, 0o644).is_ok() {
        return Ok(());
    }
    // A link that cannot be made readable (a cache owned by another user) is copied instead.
    let _ = fs::remove_file(dest);
    fs::copy(blob, dest).map_err(io_err(dest))?;
    set_mode(dest, 0o644)?;
    fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dest))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), LabAptError> {
    let mut f = fs::File::create(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    set_mode(path, 0o644)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), LabAptError> {
    use std::os::unix::fs::PermissionsExt;
    let m = fs::metadata(path).map_err(io_err(path))?;
    if m.permissions().mode() & 0o7777 == mode {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

fn sync_dir(dir: &Path) {
    // Best effort: makes the renames durable where the filesystem supports it.
    let _ = fs::File::open(dir).and_then(|f| f.sync_all());
}

/// Renames the finished `tmp` to `dir`. An existing `dir` is first renamed aside (rename
/// cannot replace a non-empty directory) and removed after. If another writer put its
/// repository there meanwhile and it matches the lock, that one is kept.
fn swap_into_place(
    tmp: tempfile::TempDir,
    dir: &Path,
    out: &Path,
    name: &str,
    lock: &Lockfile,
) -> Result<(), LabAptError> {
    for _ in 0..3 {
        let old = if dir.exists() {
            let old = tempfile::Builder::new()
                .prefix(&format!(".{name}.old-"))
                .tempdir_in(out)
                .map_err(io_err(out))?
                .keep();
            match fs::rename(dir, &old) {
                Ok(()) => Some(old),
                // Moved away by another writer meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let _ = fs::remove_dir(&old);
                    None
                }
                Err(e) => {
                    let _ = fs::remove_dir(&old);
                    return Err(io_err(dir)(e));
                }
            }
        } else {
            None
        };
        let renamed = fs::rename(tmp.path(), dir);
        if let Some(old) = old {
            let _ = fs::remove_dir_all(old);
        }
        match renamed {
            Ok(()) => {
                // The directory now lives on as `dir`: nothing left for the guard to remove.
                let _ = tmp.keep();
                return Ok(());
            }
            Err(_) if repo_is_current(dir, lock) => return Ok(()),
            // Another writer's repository for another lock: go round again.
            Err(_) if dir.exists() => continue,
            Err(e) => return Err(io_err(dir)(e)),
        }
    }
    Err(LabAptError::Io {
        path: dir.to_path_buf(),
        err: io::Error::other(
            "other writers keep replacing this repository; run one `lab up` at a time",
        ),
    })
}

/// Removes `.<name>.tmp-*` and `.<name>.old-*` directories left by crashed writers.
fn remove_stale_temps(out: &Path, name: &str) {
    let Ok(rd) = fs::read_dir(out) else { return };
    let (tmp, old) = (format!(".{name}.tmp-"), format!(".{name}.old-"));
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if !(n.starts_with(&tmp) || n.starts_with(&old)) {
            continue;
        }
        let age = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        if age.is_some_and(|a| a > STALE_TEMP_AGE) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// The apt source line a minion uses for its suite: `deb [trusted=yes] http://HOST/SUITE ./`
/// (a flat repository; no trailing newline). `HOST` is the lab's server, `host[:port]`.
///
/// `trusted=yes` is sound here: apt checks each `.deb` against the `SHA256` of `Packages`,
/// and every one of those was checked against the lab's lock (itself resolved from the
/// mirror's signed indices) when [`write_flat_repo`] wrote the repository. The unsigned
/// part is only the hop inside the lab's own network.
pub fn sources_list(suite: &str, host: &str) -> String {
    format!(
        "deb [trusted=yes] http://{host}/{} ./",
        suite_file_name(suite)
    )
}

/// For `lab up`: each suite's lock ([`ensure_lab_locks`]) and its repository under `out`
/// ([`write_flat_repo`]). Empty when the lab has no `apt.packages`.
pub fn ensure_lab_repos(
    lab: &Lab,
    policy: LockPolicy,
    opts: &IndexOptions,
    store: &Store,
    fetcher: &dyn Fetcher,
    out: &Path,
) -> Result<Vec<(LabAptLock, FlatRepo)>, LabAptError> {
    ensure_lab_locks(lab, policy, opts, store, fetcher)?
        .into_iter()
        .map(|l| {
            let repo = write_flat_repo(&l.lock, out, store, policy.offline, opts, fetcher)?;
            Ok((l, repo))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::fetch::tests::MapFetcher;
    use crate::debian::lock::LockedIndex;

    fn pool() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/debian/repo/pool/main")
    }

    /// A locked package for a fixture `.deb`, with the file's real size and sha256.
    fn locked(file: &str) -> LockedPackage {
        let bytes = fs::read(pool().join(file)).expect("fixture deb");
        let stem = file.trim_end_matches(".deb");
        let parts: Vec<&str> = stem.split('_').collect();
        LockedPackage {
            name: parts[0].into(),
            version: parts[1].into(),
            arch: parts[2].into(),
            filename: format!("pool/main/{file}"),
            size: bytes.len() as u64,
            sha256: crate::digest::sha256_hex(&bytes),
            source: parts[0].into(),
            source_version: parts[1].into(),
            multi_arch: "no".into(),
            essential: false,
        }
    }

    fn lock_of(files: &[&str]) -> Lockfile {
        let mut packages: Vec<LockedPackage> = files.iter().map(|f| locked(f)).collect();
        packages.sort();
        let mut l = Lockfile {
            inputs: "sha256:00".into(),
            identity: String::new(),
            suite: "fixture".into(),
            architecture: "amd64".into(),
            index: LockedIndex {
                inrelease: "sha256:00".into(),
                files: vec![],
            },
            packages,
        };
        l.identity = l.compute_identity();
        l
    }

    const FILES: [&str; 3] = [
        "libgreet_1.2-1_amd64.deb",
        "config-basic_2.0_all.deb",
        "data-files_1.0_all.deb",
    ];

    /// A store holding the given fixture `.deb`s.
    fn store_with(dir: &Path, files: &[&str]) -> Store {
        let store = Store::open(&dir.join("cache")).expect("store");
        for f in files {
            store
                .put_bytes(&fs::read(pool().join(f)).expect("deb"))
                .expect("put");
        }
        store
    }

    fn no_index() -> IndexOptions {
        IndexOptions {
            mirror: Some("http://m.invalid/debian".into()),
            ..IndexOptions::default()
        }
    }

    #[test]
    fn release_dates() {
        for (secs, text) in [
            (0, "Thu, 01 Jan 1970 00:00:00 UTC"),
            (RELEASE_DATE, "Sat, 01 Jan 2000 00:00:00 UTC"),
            (1_709_251_199, "Thu, 29 Feb 2024 23:59:59 UTC"),
            (1_746_867_796, "Sat, 10 May 2025 09:03:16 UTC"),
        ] {
            assert_eq!(rfc2822(secs), text);
            assert_eq!(debian::release::parse_rfc2822(text), Some(secs));
        }
    }

    #[test]
    fn a_packages_paragraph_keeps_the_control_file_and_adds_the_index_fields() {
        let control = debian::parse_control(
            "Package: hello\nVersion: 1:2.10-3\nArchitecture: amd64\nSize: 99\nDescription: greets\n the world\n .\n twice\n",
        )
        .expect("control");
        let sha = "ab".repeat(32);
        assert_eq!(
            packages_paragraph(&control, "hello_2.10-3_amd64.deb", 1234, &sha),
            format!(
                "Package: hello\nVersion: 1:2.10-3\nArchitecture: amd64\nDescription: greets\n the world\n .\n twice\nFilename: hello_2.10-3_amd64.deb\nSize: 1234\nSHA256: {sha}\n"
            )
        );
        // Round trip through the deb822 reader apt-like tools use.
        let text = packages_paragraph(&control, "h.deb", 1, &sha);
        let p = &debian::parse_paragraphs(&text).expect("deb822")[0];
        assert_eq!(p.get("Description"), Some("greets\nthe world\n.\ntwice"));
        assert_eq!(p.get("Size"), Some("1"));
    }

    #[test]
    fn the_index_and_release_are_sorted_and_deterministic() {
        let a = (
            "b".to_string(),
            "amd64".to_string(),
            "Package: b\n".to_string(),
        );
        let b = (
            "a".to_string(),
            "all".to_string(),
            "Package: a\n".to_string(),
        );
        let one = packages_index(&[a.clone(), b.clone()]);
        assert_eq!(one, "Package: a\n\nPackage: b\n\n");
        assert_eq!(packages_index(&[b, a]), one);

        let lock = lock_of(&FILES);
        let rel = release_file(&lock, one.as_bytes());
        assert_eq!(
            rel,
            format!(
                "Origin: strata\nLabel: strata lab\nSuite: fixture\nCodename: fixture\nDate: Sat, 01 Jan 2000 00:00:00 UTC\nArchitectures: amd64 all\nDescription: packages of a strata lab (repository format 1, lock {})\nSHA256:\n {} {} Packages\n",
                lock.identity,
                crate::digest::sha256_hex(one.as_bytes()),
                one.len()
            )
        );
        let parsed = debian::release::parse_release("Release", &rel).expect("parses");
        assert_eq!(parsed.sha256["Packages"].size, one.len() as u64);
        assert_eq!(parsed.codename.as_deref(), Some("fixture"));
    }

    #[test]
    fn the_source_line_is_a_trusted_flat_repository() {
        assert_eq!(
            sources_list("bookworm", "10.0.0.2:8080"),
            "deb [trusted=yes] http://10.0.0.2:8080/bookworm ./"
        );
        assert_eq!(
            sources_list("bookworm/updates", "master"),
            "deb [trusted=yes] http://master/bookworm_updates ./"
        );
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_flat_repository_from_the_cache() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = store_with(tmp.path(), &FILES);
        let lock = lock_of(&FILES);
        let out = tmp.path().join("repo");
        let f = MapFetcher::default();
        let repo = write_flat_repo(&lock, &out, &store, true, &no_index(), &f).expect("writes");
        assert!(repo.written);
        assert_eq!((repo.packages, repo.fetched), (3, 0));
        assert_eq!(repo.dir, out.join("fixture"));
        assert_eq!(entries(&out), ["fixture"], "no temp directory left");
        assert_eq!(
            entries(&repo.dir),
            [
                "Packages",
                "Release",
                "config-basic_2.0_all.deb",
                "data-files_1.0_all.deb",
                "libgreet_1.2-1_amd64.deb"
            ]
        );
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        for e in entries(&repo.dir) {
            let m = fs::metadata(repo.dir.join(&e)).expect("meta");
            assert_eq!(m.permissions().mode() & 0o777, 0o644, "{e}");
        }
        let m = fs::metadata(&repo.dir).expect("meta");
        assert_eq!(m.permissions().mode() & 0o777, 0o755);
        // Hard-linked from the cache (same filesystem here).
        let blob = store
            .blob_path(&format!("sha256:{}", lock.packages[0].sha256))
            .expect("blob");
        assert_eq!(
            fs::metadata(&blob).expect("blob").ino(),
            fs::metadata(repo.dir.join(deb_file_name(&lock.packages[0])))
                .expect("deb")
                .ino()
        );

        let packages = fs::read_to_string(repo.dir.join("Packages")).expect("Packages");
        let paras = debian::parse_paragraphs(&packages).expect("deb822");
        let names: Vec<&str> = paras.iter().filter_map(|p| p.get("Package")).collect();
        assert_eq!(names, ["config-basic", "data-files", "libgreet"]);
        for (p, l) in paras.iter().zip(&lock.packages) {
            assert_eq!(p.get("Filename"), Some(deb_file_name(l)));
            assert_eq!(p.get("SHA256"), Some(l.sha256.as_str()));
            assert_eq!(p.get("Size"), Some(l.size.to_string().as_str()));
            assert_eq!(p.get("Version"), Some(l.version.as_str()));
            assert!(p.get("Description").is_some_and(|d| d.contains('\n')));
            let deb = fs::read(repo.dir.join(deb_file_name(l))).expect("deb");
            assert_eq!(crate::digest::sha256_hex(&deb), l.sha256);
        }
        assert_eq!(paras[0].get("Provides"), Some("greeter-config (= 2.0)"));
        let release = fs::read_to_string(repo.dir.join("Release")).expect("Release");
        assert_eq!(release, release_file(&lock, packages.as_bytes()));

        // Again: recognised as current, nothing read (the cache may even be gone).
        fs::remove_dir_all(store.root().join("blobs")).expect("rm cache");
        let again = write_flat_repo(&lock, &out, &store, true, &no_index(), &f).expect("again");
        assert!(!again.written);
        assert!(f.calls.borrow().is_empty());

        // A second writer elsewhere makes the same bytes.
        let store2 = store_with(&tmp.path().join("second"), &FILES);
        let out2 = tmp.path().join("repo2");
        let r2 = write_flat_repo(&lock, &out2, &store2, true, &no_index(), &f).expect("second");
        for file in ["Packages", "Release"] {
            assert_eq!(
                fs::read(r2.dir.join(file)).expect("read"),
                fs::read(repo.dir.join(file)).expect("read"),
                "{file}"
            );
        }
    }

    #[test]
    fn a_changed_lock_replaces_the_whole_repository() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = store_with(tmp.path(), &FILES);
        let out = tmp.path().join("repo");
        let f = MapFetcher::default();
        let first = lock_of(&FILES);
        let repo = write_flat_repo(&first, &out, &store, true, &no_index(), &f).expect("first");
        // A stray file marks the old directory: it must not survive the replacement.
        fs::write(repo.dir.join("stray"), b"old").expect("stray");
        let second = lock_of(&FILES[..2]);
        let repo = write_flat_repo(&second, &out, &store, true, &no_index(), &f).expect("second");
        assert!(repo.written);
        assert_eq!(entries(&out), ["fixture"], "no temp or old directory left");
        assert_eq!(
            entries(&repo.dir),
            [
                "Packages",
                "Release",
                "config-basic_2.0_all.deb",
                "libgreet_1.2-1_amd64.deb"
            ]
        );
        assert!(repo_is_current(&repo.dir, &second));
        assert!(!repo_is_current(&repo.dir, &first));
        // A damaged repository (a .deb gone) is not current and is rewritten.
        fs::remove_file(repo.dir.join("config-basic_2.0_all.deb")).expect("rm");
        assert!(!repo_is_current(&repo.dir, &second));
        let repo = write_flat_repo(&second, &out, &store, true, &no_index(), &f).expect("third");
        assert!(repo.written && repo_is_current(&repo.dir, &second));
    }

    #[test]
    fn a_failed_write_keeps_the_old_repository() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = store_with(tmp.path(), &FILES);
        let out = tmp.path().join("repo");
        let f = MapFetcher::default();
        let first = lock_of(&FILES[..1]);
        write_flat_repo(&first, &out, &store, true, &no_index(), &f).expect("first");
        let before = fs::read(out.join("fixture/Release")).expect("Release");
        // A lock naming a package whose control file says otherwise: refused, nothing moved.
        let mut bad = lock_of(&FILES);
        bad.packages[0].name = "not-config-basic".into();
        bad.identity = bad.compute_identity();
        let e = write_flat_repo(&bad, &out, &store, true, &no_index(), &f)
            .expect_err("mismatch")
            .to_string();
        assert!(
            e.contains("not-config-basic 2.0 (all, pool/main/config-basic_2.0_all.deb)")
                && e.contains("its control file says config-basic 2.0 (all)")
                && e.contains("hint:"),
            "{e}"
        );
        assert_eq!(fs::read(out.join("fixture/Release")).expect("kept"), before);
        assert_eq!(entries(&out), ["fixture"]);
    }

    #[test]
    fn offline_names_every_missing_deb_and_online_fetches_them() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = store_with(tmp.path(), &FILES[..1]);
        let lock = lock_of(&FILES);
        let out = tmp.path().join("repo");
        let mut f = MapFetcher::default();
        let e = write_flat_repo(&lock, &out, &store, true, &no_index(), &f)
            .expect_err("offline")
            .to_string();
        assert!(
            e.contains("offline: 2 .deb file(s) of the lab's `fixture` packages")
                && e.contains("data-files_1.0_all.deb (sha256:")
                && e.contains("pool/main/config-basic_2.0_all.deb")
                && !e.contains("libgreet")
                && e.contains("hint:"),
            "{e}"
        );
        assert!(!out.exists());
        for file in &FILES[1..] {
            f.files.insert(
                format!("http://m.invalid/debian/pool/main/{file}"),
                fs::read(pool().join(file)).expect("deb"),
            );
        }
        let repo = write_flat_repo(&lock, &out, &store, false, &no_index(), &f).expect("online");
        assert_eq!((repo.fetched, repo.packages), (2, 3));
        assert_eq!(f.calls.borrow().len(), 2);
        // A mirror serving other bytes: refused by the fetch path, nothing written.
        let tmp2 = tempfile::tempdir().expect("tmp");
        let store2 = Store::open(tmp2.path()).expect("store");
        let mut evil = MapFetcher::default();
        for file in FILES {
            evil.files.insert(
                format!("http://m.invalid/debian/pool/main/{file}"),
                b"not a deb".to_vec(),
            );
        }
        let out2 = tmp2.path().join("repo");
        let e = write_flat_repo(&lock, &out2, &store2, false, &no_index(), &evil)
            .expect_err("verify")
            .to_string();
        assert!(
            e.contains("the lab's apt packages for suite `fixture`"),
            "{e}"
        );
        assert!(e.contains("size 9 bytes, the signed index says"), "{e}");
        assert!(!out2.exists());
    }

    // --- the lab side: suites and locks -------------------------------------------------

    const DEBIAN_RECIPE: &str = "name: NAME\nlayers:\n  - steps:\n      - debian:\n          suite: SUITE\n          packages: [apt]\n          essential: true\n";

    /// A lab directory with recipes `bookworm.yaml`, `trixie.yaml`, `trixie-contrib.yaml`,
    /// `plain.yaml` (no debian step), and `lab.yaml` from `minions` and `apt`.
    fn lab_with(dir: &Path, minions: &str, apt: &str) -> Lab {
        let recipe =
            |name: &str, suite: &str| DEBIAN_RECIPE.replace("NAME", name).replace("SUITE", suite);
        fs::write(dir.join("bookworm.yaml"), recipe("bw", "bookworm")).expect("w");
        fs::write(dir.join("trixie.yaml"), recipe("tx", "trixie")).expect("w");
        fs::write(
            dir.join("trixie-contrib.yaml"),
            recipe("txc", "trixie").replace(
                "packages: [apt]",
                "packages: [apt]\n          components: [main, contrib]",
            ),
        )
        .expect("w");
        fs::write(
            dir.join("plain.yaml"),
            "name: plain\nlayers:\n  - steps:\n      - dir: {path: /srv}\n",
        )
        .expect("w");
        let labdir = dir.join("lab/t");
        fs::create_dir_all(labdir.join("salt")).expect("mk");
        fs::create_dir_all(labdir.join("pillar")).expect("mk");
        fs::write(
            labdir.join("lab.yaml"),
            format!(
                "images:\n  master: ../../bookworm.yaml\n  bw: ../../bookworm.yaml\n  tx: ../../trixie.yaml\n  txc: ../../trixie-contrib.yaml\n  plain: ../../plain.yaml\n  layout: oci:../../out/x:1\n  gone: ../../gone.yaml\nmaster: {{image: master}}\nminions:\n{minions}{apt}"
            ),
        )
        .expect("w");
        super::super::spec::load(&labdir).expect("lab loads")
    }

    const TWO: &str =
        "  - {id: a, image: tx}\n  - {id: b, image: bw}\n  - {id: \"c{n}\", count: 3, image: tx}\n";

    #[test]
    fn suites_come_from_the_minion_recipes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let lab = lab_with(
            tmp.path(),
            TWO,
            "apt: {packages: [snmpd, \"apache2 (>= 2.4)\"]}\n",
        );
        let suites = suites_for_lab(&lab).expect("suites");
        assert_eq!(suites.len(), 2);
        assert_eq!(suites[0].suite, "bookworm");
        assert_eq!(suites[0].images, ["bw"]);
        assert_eq!(suites[1].suite, "trixie");
        assert_eq!(suites[1].images, ["tx"]);
        assert_eq!(suites[1].components, ["main"]);
        assert_eq!(
            (suites[1].platform.as_str(), suites[1].arch.as_str()),
            ("linux/amd64", "amd64")
        );
        assert_eq!(suites[1].lock_path, lab.dir.join("apt-trixie.lock"));
        assert_eq!(
            suite_for_image(&suites, "bw").map(|s| s.suite.as_str()),
            Some("bookworm")
        );
        assert!(suite_for_image(&suites, "master").is_none());
        let step = apt_step(&lab, &suites[0]);
        assert_eq!(step.packages, ["snmpd", "apache2 (>= 2.4)"]);
        assert!(!step.essential && step.exclude.is_empty());

        // Without packages there is nothing to serve, whatever the images.
        let tmp = tempfile::tempdir().expect("tmp");
        let lab = lab_with(tmp.path(), "  - {id: a, image: plain}\n", "");
        assert!(suites_for_lab(&lab).expect("none").is_empty());
    }

    #[test]
    fn suite_errors_name_the_lab_file_and_the_image() {
        let cases = [
            (
                "  - {id: a, image: tx}\n  - {id: b, image: plain}\n",
                "apt: {packages: [snmpd]}\n",
                "lab.yaml:12:",
                "image `plain` (",
                "has no `debian` step",
            ),
            (
                "  - {id: a, image: gone}\n",
                "apt: {packages: [snmpd]}\n",
                "lab.yaml:11:",
                "image `gone`: ",
                "gone.yaml:1:1: cannot read the recipe",
            ),
            (
                "  - {id: a, image: layout}\n",
                "apt: {packages: [snmpd]}\n",
                "lab.yaml:11:",
                "image `layout` is an OCI layout",
                "cannot tell which Debian suite",
            ),
            (
                "  - {id: a, image: tx}\n  - {id: b, image: txc}\n",
                "apt: {packages: [snmpd]}\n",
                "lab.yaml:12:",
                "image `txc` runs suite `trixie` with components [\"main\", \"contrib\"]",
                "but image `tx` (minions[0])",
            ),
            (
                "  - {id: a, image: tx}\n",
                "apt:\n  packages: [snmpd, \"bad (>>\"]\n",
                "lab.yaml:13:",
                "bad package entry `bad (>>`",
                "hint:",
            ),
        ];
        for (minions, apt, place, a, b) in cases {
            let tmp = tempfile::tempdir().expect("tmp");
            let lab = lab_with(tmp.path(), minions, apt);
            let e = suites_for_lab(&lab).expect_err(a).to_string();
            assert!(e.contains(place) && e.contains(a) && e.contains(b), "{e}");
            assert!(e.contains("hint:"), "{e}");
        }
    }

    #[test]
    fn lab_up_uses_a_fresh_lock_and_refuses_a_missing_or_stale_one() {
        let tmp = tempfile::tempdir().expect("tmp");
        let lab = lab_with(tmp.path(), TWO, "apt: {packages: [libgreet]}\n");
        let store = Store::open(&tmp.path().join("cache")).expect("store");
        let f = MapFetcher::default();
        let locked = LockPolicy {
            locked: true,
            offline: false,
        };
        let offline = LockPolicy {
            locked: false,
            offline: true,
        };
        let e = ensure_lab_locks(&lab, locked, &no_index(), &store, &f)
            .expect_err("no lock")
            .to_string();
        assert!(
            e.contains(
                "apt-bookworm.lock: no lock of the lab's apt packages, and --locked forbids"
            ) && e.contains("strata lock")
                && e.contains("lab.yaml"),
            "{e}"
        );
        let suites = suites_for_lab(&lab).expect("suites");
        // Fresh locks for both suites.
        for s in &suites {
            let mut l = lock_of(&FILES[..1]);
            l.suite = s.suite.clone();
            l.inputs = lock_inputs(&lab, s).expect("inputs").digest();
            write_if_changed(&s.lock_path, &l).expect("write");
        }
        let got = ensure_lab_locks(&lab, offline, &no_index(), &store, &f).expect("fresh");
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|l| !l.changed));
        assert!(f.calls.borrow().is_empty(), "no index read");
        // The lab asks for other packages: the locks are stale.
        let text = fs::read_to_string(&lab.file).expect("lab");
        fs::write(
            &lab.file,
            text.replace("[libgreet]", "[libgreet, hello-app]"),
        )
        .expect("w");
        let lab = super::super::spec::load(&lab.dir).expect("reload");
        let e = ensure_lab_locks(&lab, offline, &no_index(), &store, &f)
            .expect_err("stale")
            .to_string();
        assert!(
            e.contains("apt-bookworm.lock: the lock of the lab's apt packages is stale")
                && e.contains("hint: run `strata lock"),
            "{e}"
        );
        // Without a policy forbidding it, a stale lock is re-resolved: here the mirror
        // cannot be reached, and the error says which lab, suite and images.
        let e = ensure_lab_locks(&lab, LockPolicy::default(), &no_index(), &store, &f)
            .expect_err("resolve")
            .to_string();
        assert!(
            e.contains("lab.yaml: apt.packages for suite `bookworm` (images bw)"),
            "{e}"
        );
    }
}

//! Locking: the pins plus their dependency closure (wheel `Requires-Dist`, markers
//! evaluated for the image's Python) → one wheel per project, best compatible tag,
//! highest version allowed. Greedy, first come first served: pins first, then dependencies
//! breadth first; a later requirement the chosen version does not satisfy is an error that
//! says which pin to add. The index, the wheel store and the sdist builder are traits.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{Cursor, Read};

use super::index::{Index, IndexFile};
use super::lock::{Lock, LockedWheel, Sdist, LOCK_VERSION};
use super::marker::{normalize_name, Env, Requirement};
use super::metadata::{parse_metadata, Metadata};
use super::step::Pinned;
use super::tags::{Target, WheelName};
use super::version::{SpecifierSet, Version};

/// Keeps the wheels the resolver downloads or builds (the store, in real use).
pub trait WheelSink {
    /// Stores the bytes; returns nothing but errors.
    fn put(&self, bytes: &[u8]) -> Result<(), String>;
}

/// Builds a wheel from an sdist (at lock time only).
pub trait SdistBuilder {
    /// Returns the built wheel's file name and bytes.
    fn build(
        &self,
        sdist_filename: &str,
        sdist: &[u8],
        index_url: &str,
    ) -> Result<(String, Vec<u8>), String>;
}

/// What to lock for.
pub struct LockRequest<'a> {
    pub python: &'a str,
    pub platform: &'a str,
    pub target: &'a Target,
    pub env: &'a Env,
    pub pins: &'a [Pinned],
}

/// The `METADATA` of a wheel's bytes.
pub fn wheel_metadata(bytes: &[u8]) -> Result<Metadata, String> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a zip archive: {e}"))?;
    let name = zip
        .file_names()
        .filter(|n| {
            let mut parts = n.split('/');
            matches!((parts.next(), parts.next(), parts.next()), (Some(top), Some("METADATA"), None) if top.ends_with(".dist-info"))
        })
        .map(String::from)
        .min()
        .ok_or("no .dist-info/METADATA")?;
    let mut text = String::new();
    zip.by_name(&name)
        .map_err(|e| format!("{name}: {e}"))?
        .read_to_string(&mut text)
        .map_err(|e| format!("{name}: {e}"))?;
    parse_metadata(&text)
}

/// Project name and version of an sdist file name (`name-1.0.tar.gz`, `.zip`).
pub fn sdist_version<'a>(filename: &'a str, key: &str) -> Option<&'a str> {
    let stem = filename
        .strip_suffix(".tar.gz")
        .or_else(|| filename.strip_suffix(".zip"))?;
    let (name, version) = stem.rsplit_once('-')?;
    (normalize_name(name) == key).then_some(version)
}

struct Picked {
    version: Version,
    wheel: LockedWheel,
    metadata: Metadata,
    extras: BTreeSet<String>,
    required_by: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    crate::digest::sha256_hex(bytes)
}

enum Choice<'a> {
    Wheel(&'a IndexFile),
    Sdist(&'a IndexFile),
}

/// The best release for `req`: final releases first; pre-releases only when the
/// requirement names one, or (as pip does) when nothing else matches.
fn choose<'a>(
    key: &str,
    req: &Requirement,
    files: &'a [IndexFile],
    target: &Target,
    tags: &[String],
    python: &Version,
) -> Result<(Version, Choice<'a>), String> {
    let pinned = req.specifiers.pinned().is_some();
    let pre_ok = pinned || req.specifiers.allows_prereleases();
    match choose_with(key, req, files, target, tags, python, pre_ok) {
        Err(_) if !pre_ok => choose_with(key, req, files, target, tags, python, true),
        r => r,
    }
}

fn choose_with<'a>(
    key: &str,
    req: &Requirement,
    files: &'a [IndexFile],
    target: &Target,
    tags: &[String],
    python: &Version,
    pre_ok: bool,
) -> Result<(Version, Choice<'a>), String> {
    let pinned = req.specifiers.pinned().is_some();
    // Per version: the best-ranked wheel and an sdist.
    type Slot<'f> = (Option<(usize, &'f IndexFile)>, Option<&'f IndexFile>);
    let mut by_version: BTreeMap<Version, Slot<'a>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for f in files {
        let (vtext, wheel) = if f.filename.ends_with(".whl") {
            match WheelName::parse(&f.filename) {
                Ok(w) if w.key() == key => (w.version.clone(), Some(w)),
                _ => continue,
            }
        } else {
            match sdist_version(&f.filename, key) {
                Some(v) => (v.to_string(), None),
                None => continue,
            }
        };
        let Some(v) = Version::parse(&vtext) else {
            continue;
        };
        seen.insert(v.clone());
        if !req.specifiers.contains(&v) || (v.is_prerelease() && !pre_ok) || (f.yanked && !pinned) {
            continue;
        }
        if let Some(rp) = &f.requires_python {
            if SpecifierSet::parse(rp).is_ok_and(|s| !s.contains(python)) {
                continue;
            }
        }
        let slot = by_version.entry(v).or_default();
        match wheel {
            Some(w) => {
                if let Some(rank) = target.rank(&w, tags) {
                    if slot.0.is_none_or(|(r, _)| rank < r) {
                        slot.0 = Some((rank, f));
                    }
                }
            }
            None => {
                if slot.1.is_none() || f.filename.ends_with(".tar.gz") {
                    slot.1 = Some(f);
                }
            }
        }
    }
    for (v, (wheel, sdist)) in by_version.into_iter().rev() {
        if let Some((_, f)) = wheel {
            return Ok((v, Choice::Wheel(f)));
        }
        if let Some(f) = sdist {
            return Ok((v, Choice::Sdist(f)));
        }
    }
    let shown: Vec<String> = seen.iter().rev().take(8).map(|v| v.text.clone()).collect();
    Err(format!(
        "no release of `{key}` matches `{}` with a wheel for {} or an sdist (releases on the index: {})",
        if req.specifiers.0.is_empty() { "any version".to_string() } else { req.specifiers.to_string() },
        target_text(target),
        if shown.is_empty() { "none".into() } else { shown.join(", ") }
    ))
}

fn target_text(t: &Target) -> String {
    format!(
        "CPython 3.{} on {}_{}_{}_{}",
        t.minor, t.libc, t.libc_version.0, t.libc_version.1, t.arch
    )
}

/// Resolves and fetches the closure; the wheels end up in `sink`.
pub fn resolve(
    req: &LockRequest<'_>,
    index: &dyn Index,
    sink: &dyn WheelSink,
    builder: &dyn SdistBuilder,
    log: &dyn Fn(&str),
) -> Result<Lock, String> {
    let tags = req.target.supported_tags();
    let python = Version::parse(req.env.get("python_full_version").unwrap_or("3.0.0"))
        .ok_or("bad python version")?;
    let mut queue: VecDeque<(Requirement, String)> = VecDeque::new();
    for p in req.pins {
        let applies = p
            .req
            .marker
            .as_ref()
            .is_none_or(|m| m.evaluate(req.env, ""));
        if applies {
            queue.push_back((p.req.clone(), "the recipe".into()));
        }
    }
    let mut picked: BTreeMap<String, Picked> = BTreeMap::new();
    let mut pending_deps: Vec<(String, Vec<String>)> = Vec::new();

    while let Some((r, by)) = queue.pop_front() {
        let key = r.key();
        if let Some(p) = picked.get_mut(&key) {
            if !r.specifiers.contains(&p.version) {
                return Err(format!(
                    "{by} requires `{r}`, but {key} {} was already chosen (for {})\n  hint: pin a version of {key} that satisfies both in the step's requirements",
                    p.version, p.required_by
                ));
            }
            let new: Vec<String> = r
                .extras
                .iter()
                .filter(|e| !p.extras.contains(*e))
                .cloned()
                .collect();
            if new.is_empty() {
                continue;
            }
            p.extras.extend(new.iter().cloned());
            let deps = dependencies(&key, &p.metadata, req.env, &new)?;
            pending_deps.push((key.clone(), deps.iter().map(|d| d.key()).collect()));
            for d in deps {
                queue.push_back((d, key.clone()));
            }
            continue;
        }
        let files = index.project(&key)?;
        let (version, choice) = choose(&key, &r, &files, req.target, &tags, &python)?;
        let file = match &choice {
            Choice::Wheel(f) | Choice::Sdist(f) => *f,
        };
        log(&format!("{key} {version}: {}", file.filename));
        let bytes = index.download(&file.url)?;
        let sha = sha256_hex(&bytes);
        if let Some(want) = &file.sha256 {
            if &sha != want {
                return Err(format!(
                    "{} from {} has sha256 {sha}, but the index lists {want}",
                    file.filename, file.url
                ));
            }
        }
        let wheel = match choice {
            Choice::Wheel(f) => LockedWheel {
                name: key.clone(),
                version: version.text.clone(),
                filename: f.filename.clone(),
                size: bytes.len() as u64,
                sha256: sha.clone(),
                built_from: None,
                dependencies: vec![],
            },
            Choice::Sdist(f) => {
                log(&format!("building a wheel from {}", f.filename));
                let (wname, wbytes) = builder.build(&f.filename, &bytes, index.base_url())?;
                let wn = WheelName::parse(&wname)?;
                if wn.key() != key || req.target.rank(&wn, &tags).is_none() {
                    return Err(format!(
                        "building {} gave {wname}, which does not install on {}",
                        f.filename,
                        target_text(req.target)
                    ));
                }
                let wsha = sha256_hex(&wbytes);
                sink.put(&wbytes)?;
                let lw = LockedWheel {
                    name: key.clone(),
                    version: version.text.clone(),
                    filename: wname,
                    size: wbytes.len() as u64,
                    sha256: wsha,
                    built_from: Some(Sdist {
                        filename: f.filename.clone(),
                        size: bytes.len() as u64,
                        sha256: sha.clone(),
                    }),
                    dependencies: vec![],
                };
                let metadata =
                    wheel_metadata(&wbytes).map_err(|e| format!("{}: {e}", lw.filename))?;
                finish_pick(
                    &key,
                    &version,
                    lw,
                    metadata,
                    &r,
                    &by,
                    req.env,
                    &python,
                    &mut picked,
                    &mut queue,
                    &mut pending_deps,
                )?;
                continue;
            }
        };
        sink.put(&bytes)?;
        let metadata = wheel_metadata(&bytes).map_err(|e| format!("{}: {e}", wheel.filename))?;
        finish_pick(
            &key,
            &version,
            wheel,
            metadata,
            &r,
            &by,
            req.env,
            &python,
            &mut picked,
            &mut queue,
            &mut pending_deps,
        )?;
    }

    for (key, deps) in pending_deps {
        if let Some(p) = picked.get_mut(&key) {
            p.wheel.dependencies.extend(deps);
        }
    }
    let packages = picked
        .into_values()
        .map(|mut p| {
            p.wheel.dependencies.sort();
            p.wheel.dependencies.dedup();
            p.wheel
        })
        .collect();
    Ok(Lock {
        version: LOCK_VERSION,
        python: req.python.to_string(),
        platform: req.platform.to_string(),
        requirements: req.pins.iter().map(|p| p.text.clone()).collect(),
        packages,
    })
}

#[allow(clippy::too_many_arguments)]
fn finish_pick(
    key: &str,
    version: &Version,
    wheel: LockedWheel,
    metadata: Metadata,
    r: &Requirement,
    by: &str,
    env: &Env,
    python: &Version,
    picked: &mut BTreeMap<String, Picked>,
    queue: &mut VecDeque<(Requirement, String)>,
    pending: &mut Vec<(String, Vec<String>)>,
) -> Result<(), String> {
    if normalize_name(&metadata.name) != key
        || Version::parse(&metadata.version).as_ref() != Some(version)
    {
        return Err(format!(
            "{}: its METADATA says {} {}, not {key} {version}",
            wheel.filename, metadata.name, metadata.version
        ));
    }
    if let Some(rp) = &metadata.requires_python {
        if SpecifierSet::parse(rp).is_ok_and(|s| !s.contains(python)) {
            return Err(format!(
                "{} needs Python {rp}, the image has {python}\n  hint: pin another version of {key}",
                wheel.filename
            ));
        }
    }
    let mut extras: Vec<String> = vec![String::new()];
    extras.extend(r.extras.iter().cloned());
    let deps = dependencies(key, &metadata, env, &extras)?;
    pending.push((key.to_string(), deps.iter().map(|d| d.key()).collect()));
    for d in deps {
        queue.push_back((d, key.to_string()));
    }
    picked.insert(
        key.to_string(),
        Picked {
            version: version.clone(),
            wheel,
            metadata,
            extras: r.extras.iter().cloned().collect(),
            required_by: by.to_string(),
        },
    );
    Ok(())
}

/// `Requires-Dist` entries that apply to the target with any of `extras` (`""` = none).
fn dependencies(
    key: &str,
    m: &Metadata,
    env: &Env,
    extras: &[String],
) -> Result<Vec<Requirement>, String> {
    let mut out = Vec::new();
    for rd in &m.requires_dist {
        let r = Requirement::parse(rd).map_err(|e| format!("{key}'s Requires-Dist: {e}"))?;
        let applies = match &r.marker {
            None => extras.iter().any(String::is_empty),
            Some(mk) => extras.iter().any(|e| mk.evaluate(env, e)),
        };
        if applies {
            out.push(r);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> IndexFile {
        IndexFile {
            filename: name.into(),
            url: format!("fixture:{name}"),
            sha256: None,
            size: None,
            requires_python: None,
            yanked: false,
        }
    }

    #[test]
    fn choice_table() {
        let target = Target::new("3.11", "manylinux_2_36_x86_64").unwrap_or_else(|e| panic!("{e}"));
        let tags = target.supported_tags();
        let py = Version::parse("3.11.0").unwrap_or_else(|| panic!("version"));
        // (files, requirement, chosen file)
        let cases: &[(&[&str], &str, Option<&str>)] = &[
            (
                &["eta-1.0b1-py3-none-any.whl", "eta-0.9-py3-none-any.whl"],
                "eta>=0.1",
                Some("eta-0.9-py3-none-any.whl"),
            ),
            (
                &["eta-1.0b1-py3-none-any.whl"],
                "eta>=0.1",
                Some("eta-1.0b1-py3-none-any.whl"),
            ),
            (
                &["eta-1.0b1-py3-none-any.whl", "eta-0.9-py3-none-any.whl"],
                "eta>=1.0b1",
                Some("eta-1.0b1-py3-none-any.whl"),
            ),
            (
                &[
                    "eta-2.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                    "eta-2.0-py3-none-any.whl",
                    "eta-2.0.tar.gz",
                ],
                "eta",
                Some("eta-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
            ),
            (
                &[
                    "eta-2.0-cp312-cp312-manylinux_2_17_x86_64.whl",
                    "eta-2.0.tar.gz",
                    "eta-1.0-py3-none-any.whl",
                ],
                "eta",
                Some("eta-2.0.tar.gz"),
            ),
            (&["eta-2.0-cp311-cp311-win_amd64.whl"], "eta", None),
            (&["other-1.0-py3-none-any.whl"], "eta", None),
        ];
        for (files, req, want) in cases {
            let files: Vec<IndexFile> = files.iter().map(|f| file(f)).collect();
            let r = Requirement::parse(req).unwrap_or_else(|e| panic!("{e}"));
            let got = choose("eta", &r, &files, &target, &tags, &py)
                .ok()
                .map(|(_, c)| match c {
                    Choice::Wheel(f) | Choice::Sdist(f) => f.filename.clone(),
                });
            assert_eq!(got.as_deref(), *want, "{req} from {files:?}");
        }
        // Yanked files count only for exact pins; Requires-Python is honoured.
        let mut y = file("eta-3.0-py3-none-any.whl");
        y.yanked = true;
        let mut rp = file("eta-2.5-py3-none-any.whl");
        rp.requires_python = Some(">=3.12".into());
        let files = vec![y, rp, file("eta-2.0-py3-none-any.whl")];
        let any = Requirement::parse("eta").unwrap_or_else(|e| panic!("{e}"));
        let got = choose("eta", &any, &files, &target, &tags, &py).map(|(v, _)| v.text);
        assert_eq!(got.as_deref(), Ok("2.0"));
        let pin = Requirement::parse("eta==3.0").unwrap_or_else(|e| panic!("{e}"));
        let got = choose("eta", &pin, &files, &target, &tags, &py).map(|(v, _)| v.text);
        assert_eq!(got.as_deref(), Ok("3.0"));
    }

    #[test]
    fn sdist_names() {
        assert_eq!(sdist_version("salt-3008.4.tar.gz", "salt"), Some("3008.4"));
        assert_eq!(sdist_version("Py_YAML-6.0.zip", "py-yaml"), Some("6.0"));
        assert_eq!(sdist_version("salt-3008.4.tar.bz2", "salt"), None);
        assert_eq!(sdist_version("saltx-1.tar.gz", "salt"), None);
    }
}

#[cfg(test)]
mod fixture_tests;

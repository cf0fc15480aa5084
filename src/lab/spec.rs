//! `lab/<name>/lab.yaml`: which images play master and minions, the minions with their
//! grains, the Salt trees to mount, config overrides, packages formulas install, and
//! timeouts. Parsing and validation are pure; errors are `file:line:col` with a hint, like
//! recipe errors (see docs/lab.md for every field).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use crate::recipe::parse::parse_yaml_located;
use crate::recipe::{Pos, RecipeError, SourceMap};

/// How long a minion may take to answer after its container started.
pub const DEFAULT_START_TIMEOUT_S: u64 = 120;
/// How long one `state.apply` over the whole lab may take.
pub const DEFAULT_APPLY_TIMEOUT_S: u64 = 900;
/// How many containers are created at once during `lab up`.
pub const DEFAULT_START_CONCURRENCY: usize = 8;
/// Upper bound of `count`, against typos such as `count: 5000`.
pub const MAX_MINIONS: usize = 500;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabFile {
    /// Defaults to the lab directory's name.
    pub name: Option<String>,
    /// Image name → a recipe (path relative to the lab directory, built by strata) or an
    /// OCI layout (`oci:PATH[:TAG]`).
    pub images: BTreeMap<String, String>,
    pub master: MasterSpec,
    pub minions: Vec<MinionSpec>,
    #[serde(default = "default_file_roots")]
    pub file_roots: Vec<String>,
    #[serde(default = "default_pillar_roots")]
    pub pillar_roots: Vec<String>,
    #[serde(default)]
    pub apt: AptSpec,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default = "default_concurrency")]
    pub start_concurrency: usize,
}

fn default_file_roots() -> Vec<String> {
    vec!["salt".into()]
}
fn default_pillar_roots() -> Vec<String> {
    vec!["pillar".into()]
}
fn default_concurrency() -> usize {
    DEFAULT_START_CONCURRENCY
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MasterSpec {
    pub image: String,
    /// Merged over strata's master config (YAML mapping).
    #[serde(default)]
    pub config: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MinionSpec {
    /// A minion id, or with `count` a pattern holding `{n}` (1, 2, …) or `{n:02}` (01, 02, …).
    pub id: String,
    pub count: Option<usize>,
    pub image: String,
    #[serde(default)]
    pub grains: BTreeMap<String, Value>,
    #[serde(default)]
    pub config: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AptSpec {
    /// Packages formulas install with `pkg.installed`, served inside the lab.
    #[serde(default)]
    pub packages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default = "start_default")]
    pub start: u64,
    #[serde(default = "apply_default")]
    pub apply: u64,
}

fn start_default() -> u64 {
    DEFAULT_START_TIMEOUT_S
}
fn apply_default() -> u64 {
    DEFAULT_APPLY_TIMEOUT_S
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            start: DEFAULT_START_TIMEOUT_S,
            apply: DEFAULT_APPLY_TIMEOUT_S,
        }
    }
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ImageSource {
    /// A recipe built by strata (absolute path).
    Recipe(PathBuf),
    /// An existing OCI layout (absolute path) and tag.
    Layout { path: PathBuf, tag: Option<String> },
}

/// One minion after `count` expansion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Minion {
    pub id: String,
    pub image: String,
    pub grains: BTreeMap<String, Value>,
    pub config: BTreeMap<String, Value>,
}

/// A validated lab.
#[derive(Debug, Clone)]
pub struct Lab {
    pub name: String,
    pub file: PathBuf,
    pub dir: PathBuf,
    pub spec: LabFile,
    pub images: BTreeMap<String, ImageSource>,
    pub minions: Vec<Minion>,
    pub file_roots: Vec<PathBuf>,
    pub pillar_roots: Vec<PathBuf>,
    pub map: SourceMap,
}

/// Reads `DIR/lab.yaml` (or the file given) and validates it, including that the roots and
/// recipes exist.
pub fn load(path: &Path) -> Result<Lab, RecipeError> {
    let file = if path.is_dir() {
        path.join("lab.yaml")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|e| {
        RecipeError::new(
            &file,
            Pos::START,
            format!("cannot read the lab file: {e}"),
            "give a lab directory holding lab.yaml, or the lab file itself",
        )
    })?;
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .map_err(|e| {
            RecipeError::new(
                &file,
                Pos::START,
                format!("cannot resolve the lab's directory: {e}"),
                "",
            )
        })?;
    let lab = parse_str(&text, &file, &dir)?;
    for (i, root) in lab.file_roots.iter().enumerate() {
        exists_dir(&lab, root, &format!("file_roots[{i}]"))?;
    }
    for (i, root) in lab.pillar_roots.iter().enumerate() {
        exists_dir(&lab, root, &format!("pillar_roots[{i}]"))?;
    }
    Ok(lab)
}

fn exists_dir(lab: &Lab, p: &Path, at: &str) -> Result<(), RecipeError> {
    if p.is_dir() {
        return Ok(());
    }
    Err(RecipeError::new(
        &lab.file,
        lab.map.locate(at),
        format!("{} is not a directory", p.display()),
        "Salt trees are directories relative to the lab's directory",
    ))
}

/// Parses and validates lab text. Pure: paths are joined to `dir`, not checked (see [`load`]).
pub fn parse_str(text: &str, file: &Path, dir: &Path) -> Result<Lab, RecipeError> {
    let (spec, map): (LabFile, SourceMap) = parse_yaml_located(text, file)?;
    let err = |at: &str, msg: String, hint: &str| RecipeError::new(file, map.locate(at), msg, hint);

    let name = match &spec.name {
        Some(n) => n.clone(),
        None => dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "lab".into()),
    };
    if !valid_name(&name) {
        return Err(err(
            "name",
            format!("lab name `{name}` is not usable in container and network names"),
            "use lowercase letters, digits, `-` and `_`, starting with a letter or digit",
        ));
    }

    let mut images = BTreeMap::new();
    for (k, v) in &spec.images {
        let at = format!("images.{k}");
        if !valid_name(k) {
            return Err(err(
                &at,
                format!("image name `{k}` is not valid"),
                "use lowercase letters, digits, `-` and `_`",
            ));
        }
        let src = if let Some(rest) = v.strip_prefix("oci:") {
            let (path, tag) = match rest.rsplit_once(':') {
                Some((p, t)) if !t.contains('/') && !t.is_empty() => (p, Some(t.to_string())),
                _ => (rest, None),
            };
            ImageSource::Layout {
                path: dir.join(path),
                tag,
            }
        } else if v.ends_with(".yaml") || v.ends_with(".yml") {
            ImageSource::Recipe(dir.join(v))
        } else {
            return Err(err(
                &at,
                format!("image `{v}` is neither a recipe nor an OCI layout"),
                "give a recipe path ending in .yaml (relative to the lab), or oci:PATH[:TAG]",
            ));
        };
        images.insert(k.clone(), src);
    }
    let known = |img: &str, at: &str| -> Result<(), RecipeError> {
        if spec.images.contains_key(img) {
            return Ok(());
        }
        let names: Vec<&str> = spec.images.keys().map(String::as_str).collect();
        Err(err(
            at,
            format!("unknown image `{img}`"),
            &format!(
                "name one of the images defined under `images`: {}",
                names.join(", ")
            ),
        ))
    };
    known(&spec.master.image, "master.image")?;

    if spec.minions.is_empty() {
        return Err(err(
            "minions",
            "the lab has no minions".into(),
            "add at least one entry under `minions`",
        ));
    }
    let mut minions = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (i, m) in spec.minions.iter().enumerate() {
        let at = format!("minions[{i}]");
        known(&m.image, &format!("{at}.image"))?;
        let ids = expand_ids(&m.id, m.count)
            .map_err(|(msg, hint, field)| err(&format!("{at}.{field}"), msg, hint))?;
        for id in ids {
            if !valid_minion_id(&id) {
                return Err(err(
                    &format!("{at}.id"),
                    format!("minion id `{id}` is not usable as a container host name"),
                    "use letters, digits, `-` and `.`, starting with a letter or digit",
                ));
            }
            if let Some(prev) = seen.insert(id.clone(), at.clone()) {
                return Err(err(
                    &format!("{at}.id"),
                    format!("minion id `{id}` is also given by {prev}"),
                    "minion ids must be unique in a lab",
                ));
            }
            minions.push(Minion {
                id,
                image: m.image.clone(),
                grains: m.grains.clone(),
                config: m.config.clone(),
            });
        }
    }
    if minions.len() > MAX_MINIONS {
        return Err(err(
            "minions",
            format!(
                "the lab has {} minions, more than {MAX_MINIONS}",
                minions.len()
            ),
            "lower the counts",
        ));
    }
    if spec.start_concurrency == 0 {
        return Err(err(
            "start_concurrency",
            "start_concurrency must be at least 1".into(),
            "",
        ));
    }
    for (field, v) in [
        ("timeouts.start", spec.timeouts.start),
        ("timeouts.apply", spec.timeouts.apply),
    ] {
        if v == 0 {
            return Err(err(field, format!("{field} must be at least 1 second"), ""));
        }
    }
    let roots = |list: &[String], field: &str| -> Result<Vec<PathBuf>, RecipeError> {
        list.iter()
            .enumerate()
            .map(|(i, r)| {
                let p = Path::new(r);
                if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                    return Err(err(
                        &format!("{field}[{i}]"),
                        format!("`{r}` leaves the lab's directory"),
                        "keep Salt trees inside the lab directory, so the lab is one self-contained folder",
                    ));
                }
                Ok(dir.join(p))
            })
            .collect()
    };
    let file_roots = roots(&spec.file_roots, "file_roots")?;
    let pillar_roots = roots(&spec.pillar_roots, "pillar_roots")?;
    Ok(Lab {
        name,
        file: file.to_path_buf(),
        dir: dir.to_path_buf(),
        images,
        minions,
        file_roots,
        pillar_roots,
        spec,
        map,
    })
}

fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

fn valid_minion_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.')
}

/// `id` alone, or `count` ids from a pattern with `{n}` / `{n:0W}`.
fn expand_ids(
    id: &str,
    count: Option<usize>,
) -> Result<Vec<String>, (String, &'static str, &'static str)> {
    let Some(count) = count else {
        if id.contains('{') {
            return Err((
                format!("minion id `{id}` is a pattern but there is no `count`"),
                "add `count: N`, or write a plain id",
                "id",
            ));
        }
        return Ok(vec![id.to_string()]);
    };
    if count == 0 {
        return Err((
            "count must be at least 1".into(),
            "remove the entry or give a positive count",
            "count",
        ));
    }
    let (start, end) = match (id.find('{'), id.find('}')) {
        (Some(s), Some(e)) if s < e => (s, e),
        _ => {
            return Err((
                format!("with `count`, the id `{id}` needs a `{{n}}` placeholder"),
                "write e.g. `web-{n}` or `web-{n:02}`",
                "id",
            ))
        }
    };
    let width = match &id[start + 1..end] {
        "n" => 0,
        spec => match spec
            .strip_prefix("n:0")
            .and_then(|w| w.parse::<usize>().ok())
        {
            Some(w) if w <= 6 => w,
            _ => {
                return Err((
                    format!("unknown placeholder `{{{spec}}}` in `{id}`"),
                    "use `{n}` or `{n:0W}` (zero-padded to W digits)",
                    "id",
                ))
            }
        },
    };
    if id[end + 1..].contains('{') {
        return Err((
            format!("`{id}` has more than one placeholder"),
            "use one `{n}`",
            "id",
        ));
    }
    Ok((1..=count)
        .map(|n| {
            format!(
                "{}{:0width$}{}",
                &id[..start],
                n,
                &id[end + 1..],
                width = width
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Lab, RecipeError> {
        parse_str(text, Path::new("lab/x/lab.yaml"), Path::new("/labs/x"))
    }

    const HEAD: &str = "images:\n  master: ../../recipes/salt-master.yaml\n  minion: oci:../../out/minion:bookworm\nmaster: {image: master}\n";

    #[test]
    fn a_lab_expands_counts_and_keeps_grains() {
        let lab = parse(&format!(
            "{HEAD}minions:\n  - {{id: web, image: minion, grains: {{roles: [web]}}}}\n  - {{id: \"node-{{n:02}}\", count: 3, image: minion}}\n"
        ))
        .expect("parse");
        assert_eq!(lab.name, "x");
        let ids: Vec<&str> = lab.minions.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["web", "node-01", "node-02", "node-03"]);
        assert_eq!(
            lab.minions[0].grains["roles"],
            serde_yaml::from_str::<Value>("[web]").expect("yaml")
        );
        assert_eq!(
            lab.images["master"],
            ImageSource::Recipe(PathBuf::from("/labs/x/../../recipes/salt-master.yaml"))
        );
        assert_eq!(
            lab.images["minion"],
            ImageSource::Layout {
                path: PathBuf::from("/labs/x/../../out/minion"),
                tag: Some("bookworm".into())
            }
        );
        assert_eq!(lab.file_roots, [PathBuf::from("/labs/x/salt")]);
        assert_eq!(lab.spec.timeouts, Timeouts::default());
        assert_eq!(lab.spec.start_concurrency, DEFAULT_START_CONCURRENCY);
    }

    #[test]
    fn fifty_minions_from_one_line() {
        let lab = parse(&format!(
            "{HEAD}minions:\n  - {{id: \"m{{n}}\", count: 50, image: minion}}\n"
        ))
        .expect("parse");
        assert_eq!(lab.minions.len(), 50);
        assert_eq!(lab.minions[49].id, "m50");
    }

    #[test]
    fn errors_point_at_the_place() {
        let cases = [
            (format!("{HEAD}minions: []\n"), "5:", "no minions"),
            (
                format!("{HEAD}minions:\n  - {{id: a, image: nope}}\n"),
                "6:",
                "unknown image `nope`",
            ),
            (
                format!(
                    "{HEAD}minions:\n  - {{id: a, image: minion}}\n  - {{id: a, image: minion}}\n"
                ),
                "7:",
                "also given by minions[0]",
            ),
            (
                format!("{HEAD}minions:\n  - {{id: \"w{{n}}\", image: minion}}\n"),
                "6:",
                "no `count`",
            ),
            (
                format!("{HEAD}minions:\n  - {{id: w, count: 2, image: minion}}\n"),
                "6:",
                "needs a `{n}`",
            ),
            (
                format!("{HEAD}minions:\n  - {{id: \"w{{x}}\", count: 2, image: minion}}\n"),
                "6:",
                "unknown placeholder",
            ),
            (
                format!("{HEAD}minions:\n  - {{id: \"a_b\", image: minion}}\n"),
                "6:",
                "not usable as a container host name",
            ),
            (
                format!("{HEAD}minions:\n  - {{id: a, image: minion, colour: red}}\n"),
                "6:",
                "unknown field `colour`",
            ),
            (
                format!("{HEAD}minions:\n  - {{id: a, image: minion}}\nfile_roots: [../salt]\n"),
                "7:",
                "leaves the lab's directory",
            ),
            (
                format!("{HEAD}minions:\n  - {{id: a, image: minion}}\ntimeouts: {{start: 0}}\n"),
                "7:",
                "at least 1 second",
            ),
            (
                "images: {m: x.txt}\nmaster: {image: m}\nminions: [{id: a, image: m}]\n"
                    .to_string(),
                "1:",
                "neither a recipe nor an OCI layout",
            ),
        ];
        for (text, place, needle) in cases {
            let e = parse(&text).expect_err(needle).to_string();
            assert!(
                e.starts_with(&format!("lab/x/lab.yaml:{place}")),
                "{e}\n--- for:\n{text}"
            );
            assert!(e.contains(needle), "{e}");
            assert!(e.contains("hint:") || needle.contains("second"), "{e}");
        }
    }

    #[test]
    fn the_seed_lab_loads() {
        let lab = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/seed")).expect("seed lab");
        assert_eq!(lab.name, "seed");
        assert!(lab.minions.len() >= 2);
    }
}

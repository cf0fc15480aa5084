//! YAML text → validated [`Recipe`], with every error at `file:line:col` plus a `hint:`.
//!
//! `parse_str` is pure: syntax, types and every check that needs only the text. `load`
//! reads the file, canonicalises the recipe's directory and then checks that sources exist
//! and stay inside that directory ([`check_sources`]).

use std::fmt;
use std::path::{Path, PathBuf};

use super::accounts::{check_accounts, resolve_owner};
use super::model::{DebianStep, Layering, Recipe, Step, DEFAULT_SOURCE_DATE_EPOCH};
use super::sourcemap::Pos;
pub use super::sourcemap::SourceMap;
use super::validate::{
    check_env_key, check_name, check_platform, check_source_path, check_tag, image_path,
    image_path_not_root, parse_base, parse_mode, parse_port, Base, Problem,
};

/// A recipe error at a place in the recipe file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RecipeError {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    pub message: String,
    /// What to do about it; may be empty.
    pub hint: String,
}

impl fmt::Display for RecipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

impl RecipeError {
    pub fn new(
        file: &Path,
        pos: Pos,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> RecipeError {
        RecipeError {
            file: file.to_path_buf(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// A parsed and validated recipe with what is needed to resolve and report on it.
#[derive(Debug, Clone)]
pub struct LoadedRecipe {
    pub recipe: Recipe,
    /// The recipe file as given (used in error messages).
    pub file: PathBuf,
    /// The recipe's directory, canonicalised by [`load`]; sources are relative to it.
    pub dir: PathBuf,
    pub map: SourceMap,
}

impl LoadedRecipe {
    /// An error located at the value `path` (or its nearest written ancestor).
    pub fn error_at(
        &self,
        path: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> RecipeError {
        RecipeError::new(&self.file, self.map.locate(path), message, hint)
    }

    fn problem_at(&self, path: &str, p: Problem) -> RecipeError {
        self.error_at(path, p.message, p.hint)
    }
}

/// Reads, parses and validates the recipe at `path`, including that its sources exist.
pub fn load(path: &Path) -> Result<LoadedRecipe, RecipeError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        RecipeError::new(
            path,
            Pos::START,
            format!("cannot read the recipe: {e}"),
            "check the path and that the file is UTF-8 text",
        )
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = parent.canonicalize().map_err(|e| {
        RecipeError::new(
            path,
            Pos::START,
            format!(
                "cannot resolve the recipe's directory {}: {e}",
                parent.display()
            ),
            "",
        )
    })?;
    let loaded = parse_str(&text, path, &dir)?;
    check_sources(&loaded)?;
    Ok(loaded)
}

/// Parses and validates recipe text. Pure: `file` is only used in errors and `dir` is
/// stored as given (pass a canonical path if the result will be resolved).
pub fn parse_str(text: &str, file: &Path, dir: &Path) -> Result<LoadedRecipe, RecipeError> {
    let recipe: Recipe =
        serde_yaml::from_str(text).map_err(|e| refine_position(serde_error(file, &e), text))?;
    let map = SourceMap::build(text)
        .map_err(|(pos, msg)| RecipeError::new(file, pos, msg, SYNTAX_HINT))?;
    let loaded = LoadedRecipe {
        recipe,
        file: file.to_path_buf(),
        dir: dir.to_path_buf(),
        map,
    };
    validate(&loaded)?;
    Ok(loaded)
}

const SYNTAX_HINT: &str = "check the indentation and quoting around this place";

/// Any YAML document of this project (recipes, lab files) into `T`, with its source map;
/// errors carry `file:line:col` and a hint like recipe errors do.
pub fn parse_yaml_located<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &Path,
) -> Result<(T, SourceMap), RecipeError> {
    let value: T =
        serde_yaml::from_str(text).map_err(|e| refine_position(serde_error(file, &e), text))?;
    let map = SourceMap::build(text)
        .map_err(|(pos, msg)| RecipeError::new(file, pos, msg, SYNTAX_HINT))?;
    Ok((value, map))
}
const STEP_KINDS: [&str; 7] = ["copy", "file", "dir", "symlink", "tar", "remove", "python"];

fn serde_error(file: &Path, e: &serde_yaml::Error) -> RecipeError {
    let pos = e.location().map_or(Pos::START, |l| Pos {
        line: l.line(),
        col: l.column(),
    });
    let full = strip_marks(&e.to_string());
    let text = full.as_str();
    // serde_yaml prefixes the value path: "layers[0].steps[0].copy: unknown field ...".
    let (prefix, msg) = match text.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (format!("{p}: "), m),
        _ => (String::new(), text),
    };
    let (message, hint) = explain_serde(msg);
    RecipeError::new(file, pos, format!("{prefix}{message}"), hint)
}

/// Removes serde_yaml's " at line L column C" (we print the position ourselves) and keeps
/// syntax errors to their first clause.
fn strip_marks(msg: &str) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + " at line ".len()..];
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let n = digits(tail);
        let after = &tail[n..];
        match after.strip_prefix(" column ") {
            Some(c) if n > 0 => rest = &c[digits(c)..],
            _ => {
                out.push_str(" at line ");
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    match out.split_once(", while ") {
        Some((first, _)) => first.to_string(),
        None => out,
    }
}

/// serde_yaml puts an unknown step kind at the step's map; point at the key instead. Tabs
/// get their own hint.
fn refine_position(mut err: RecipeError, text: &str) -> RecipeError {
    let line = text
        .lines()
        .nth(err.line.saturating_sub(1))
        .unwrap_or_default();
    if err.hint == SYNTAX_HINT && line.trim_start_matches(' ').starts_with('\t') {
        err.hint = "YAML indentation must use spaces, not tabs".to_string();
        return err;
    }
    let Some((path, rest)) = err.message.split_once(": unknown step kind `") else {
        return err;
    };
    let kind = rest.trim_end_matches('`');
    if let Ok(map) = SourceMap::build(text) {
        if let Some(pos) = map.key(&format!("{path}.{kind}")) {
            err.line = pos.line;
            err.col = pos.col;
        }
    }
    err
}

/// Splits a serde message into our message and a hint.
fn explain_serde(msg: &str) -> (String, String) {
    let backticked = |s: &str| -> Vec<String> {
        s.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        let (got, _) = rest.split_once(", expected").unwrap_or((rest, ""));
        let name = got.trim_matches('`');
        let mut hint = format!("step kinds are: {}", STEP_KINDS.join(", "));
        if let Some(s) = closest(name, STEP_KINDS.iter().copied()) {
            hint = format!("did you mean `{s}`? {hint}");
        }
        return (format!("unknown step kind `{name}`"), hint);
    }
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let (got, expected) = rest.split_once(", ").unwrap_or((rest, ""));
        let name = got.trim_matches('`');
        let fields = backticked(expected);
        let mut hint = if fields.is_empty() {
            "this map takes no fields".to_string()
        } else {
            format!("expected one of: {}", fields.join(", "))
        };
        if let Some(s) = closest(name, fields.iter().map(String::as_str)) {
            hint = format!("did you mean `{s}`? {hint}");
        }
        return (format!("unknown field `{name}`"), hint);
    }
    if let Some(rest) = msg.strip_prefix("missing field ") {
        return (
            msg.to_string(),
            format!("add {rest}; docs/recipe.md lists every field"),
        );
    }
    if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
        let expected = msg.rsplit_once(", expected ").map_or("", |(_, e)| e);
        let hint = match expected {
            e if e.contains("sequence") => {
                "write a list, e.g. `[a, b]` or one `- item` per line".to_string()
            }
            e if e.contains("map") || e.contains("struct") || e.contains("enum") => {
                "write a map of `key: value` lines here".to_string()
            }
            e if e.contains("string") => {
                "write text; quote it if it looks like a number or boolean".to_string()
            }
            e if e.contains("integer") || e.contains("u32") || e.contains("i64") => {
                "write a whole number without quotes".to_string()
            }
            e if e.contains("bool") => "write `true` or `false`".to_string(),
            "" => "see docs/recipe.md for what this field takes".to_string(),
            e => format!("this field takes {e}"),
        };
        return (msg.to_string(), hint);
    }
    if msg.starts_with("duplicate field") {
        return (msg.to_string(), "remove one of the two".to_string());
    }
    if msg.starts_with("EOF while parsing") {
        return (
            "the recipe is empty".to_string(),
            "a recipe needs at least `name:`; see docs/recipe.md".to_string(),
        );
    }
    (msg.to_string(), SYNTAX_HINT.to_string())
}

/// The candidate within edit distance 2 of `got`, if any (first of the best).
fn closest<'a>(got: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(got, c), c))
        .filter(|(d, c)| *d <= 2 && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The YAML key of a step (`copy`, `file`, ...), as used in value paths.
pub fn step_kind(step: &Step) -> &'static str {
    match step {
        Step::Copy(_) => "copy",
        Step::File(_) => "file",
        Step::Dir(_) => "dir",
        Step::Symlink(_) => "symlink",
        Step::Tar(_) => "tar",
        Step::Remove(_) => "remove",
        Step::Debian(_) => "debian",
        Step::Python(_) => "python",
    }
}

/// Value path of a step: `layers[1].steps[0].copy`.
pub fn step_path(layer: usize, step: usize, s: &Step) -> String {
    format!("layers[{layer}].steps[{step}].{}", step_kind(s))
}

/// The mode as written in the recipe at `path` (the raw scalar, so an unquoted `0755` is
/// read as the octal digits it shows).
fn mode_text<'a>(loaded: &'a LoadedRecipe, path: &str, value: &'a str) -> &'a str {
    loaded.map.scalar(path).unwrap_or(value)
}

/// Parses an optional mode field of a step (already validated by `parse_str`).
pub fn step_mode(
    loaded: &LoadedRecipe,
    path: &str,
    value: Option<&String>,
) -> Result<Option<u32>, RecipeError> {
    value
        .map(|v| parse_mode(mode_text(loaded, path, v)).map_err(|p| loaded.problem_at(path, p)))
        .transpose()
}

fn at<'a>(l: &'a LoadedRecipe, path: &'a str) -> impl Fn(Problem) -> RecipeError + 'a {
    move |p| l.problem_at(path, p)
}

/// Checks a `debian` step: names, relations, and its place in the recipe.
fn validate_debian(
    l: &LoadedRecipe,
    base: &str,
    layer: usize,
    steps_in_layer: usize,
    seen: usize,
    d: &DebianStep,
) -> Result<(), RecipeError> {
    let p = |field: &str| format!("{base}.{field}");
    if seen > 1 {
        return Err(l.error_at(
            base,
            "a second `debian` step",
            "put every package in one `debian` step; its `layering` splits them into layers",
        ));
    }
    if steps_in_layer > 1 {
        return Err(l.error_at(
            base,
            format!("layer {layer} has a `debian` step and other steps"),
            "a `debian` step becomes its own layers (see `layering`): put the other steps in another layer",
        ));
    }
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
            && !s.split('/').any(|c| c.is_empty() || c == "." || c == "..")
    };
    if !word(&d.suite) {
        return Err(l.error_at(
            &p("suite"),
            format!("`{}` is not a suite name", d.suite),
            "use a Debian suite such as bookworm or trixie",
        ));
    }
    if d.components.is_empty() {
        return Err(l.error_at(&p("components"), "no components", "use e.g. [main]"));
    }
    for (i, c) in d.components.iter().enumerate() {
        if !word(c) {
            return Err(l.error_at(
                &format!("{base}.components[{i}]"),
                format!("`{c}` is not a component name"),
                "use archive components such as main, contrib, non-free-firmware",
            ));
        }
    }
    if d.packages.is_empty() && !d.essential {
        return Err(l.error_at(
            &p("packages"),
            "the `debian` step installs nothing",
            "list packages, or set `essential: true` for the Essential set",
        ));
    }
    for (i, pkg) in d.packages.iter().enumerate() {
        crate::debian::resolve::parse_request(pkg).map_err(|e| {
            l.error_at(
                &format!("{base}.packages[{i}]"),
                format!("bad package entry `{pkg}`: {}", first_line(&e.to_string())),
                "write `name`, `name (>= 1.2)`, `name=1.2-1` or `a | b`",
            )
        })?;
    }
    for (i, ex) in d.exclude.iter().enumerate() {
        let ok = crate::debian::relation::parse_relation(ex)
            .is_ok_and(|r| r.version.is_none() && r.arch_qual.is_none() && r.name == ex.trim());
        if !ok {
            return Err(l.error_at(
                &format!("{base}.exclude[{i}]"),
                format!("`{ex}` is not a package name"),
                "exclude takes plain package names, without versions",
            ));
        }
    }
    if d.layering == Layering::Budget(0) {
        return Err(l.error_at(
            &p("layering"),
            "a layer budget of 0",
            "use `budget: N` with N >= 1, or per-package / per-source",
        ));
    }
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn validate(l: &LoadedRecipe) -> Result<(), RecipeError> {
    let r = &l.recipe;

    check_name(&r.name).map_err(at(l, "name"))?;
    check_tag(&r.tag).map_err(at(l, "tag"))?;
    check_platform(&r.platform).map_err(at(l, "platform"))?;
    if l.map.key("platforms").is_some() {
        if l.map.key("platform").is_some() {
            return Err(l.error_at(
                "platforms",
                "both `platform` and `platforms` are set",
                "keep `platforms: [linux/amd64, linux/arm64]` for a multi-platform image, or `platform:` alone for one",
            ));
        }
        if r.platforms.is_empty() {
            return Err(l.error_at(
                "platforms",
                "`platforms` is empty",
                "list at least one platform, e.g. `platforms: [linux/amd64, linux/arm64]`, or remove it",
            ));
        }
        for (i, p) in r.platforms.iter().enumerate() {
            check_platform(p).map_err(at(l, &format!("platforms[{i}]")))?;
            if r.platforms[..i].contains(p) {
                return Err(l.error_at(
                    &format!("platforms[{i}]"),
                    format!("`{p}` is listed twice"),
                    "list each platform once",
                ));
            }
        }
    }
    if let Some(sde) = r.source_date_epoch {
        if sde < 0 {
            return Err(l.error_at(
                "source_date_epoch",
                format!("source_date_epoch {sde} is negative"),
                "use seconds since 1970-01-01 UTC, e.g. the last commit's `git log -1 --format=%ct`",
            ));
        }
    }
    parse_base(&r.base).map_err(at(l, "base"))?;

    if let Some(accounts) = &r.accounts {
        check_accounts(accounts)
            .map_err(|(p, prob)| l.problem_at(&format!("accounts.{p}"), prob))?;
    }
    let accounts = r.accounts.as_ref();
    let owner = |path: String, o: &Option<String>| -> Result<(), RecipeError> {
        if let Some(o) = o {
            resolve_owner(o, accounts).map_err(|p| l.problem_at(&path, p))?;
        }
        Ok(())
    };
    let mode = |path: String, m: &Option<String>| -> Result<(), RecipeError> {
        step_mode(l, &path, m.as_ref()).map(|_| ())
    };

    let mut debian_seen = 0;
    for (li, layer) in r.layers.iter().enumerate() {
        if let Some(name) = &layer.name {
            if name.trim().is_empty() {
                return Err(l.error_at(
                    &format!("layers[{li}].name"),
                    "the layer name is empty",
                    "remove `name` to get `layer-N`, or give it some text",
                ));
            }
        }
        if layer.steps.is_empty() {
            return Err(l.error_at(
                &format!("layers[{li}].steps"),
                format!("layer {li} has no steps"),
                "add at least one step (copy, file, dir, symlink, tar, remove, python) or remove the layer",
            ));
        }
        for (si, step) in layer.steps.iter().enumerate() {
            let base = step_path(li, si, step);
            let p = |field: &str| format!("{base}.{field}");
            match step {
                Step::Copy(c) => {
                    check_source_path(&c.src).map_err(at(l, &p("src")))?;
                    image_path(&c.dest).map_err(at(l, &p("dest")))?;
                    mode(p("mode"), &c.mode)?;
                    mode(p("dir_mode"), &c.dir_mode)?;
                    owner(p("owner"), &c.owner)?;
                    for (i, ex) in c.exclude.iter().enumerate() {
                        globset::Glob::new(ex).map_err(|e| {
                            l.error_at(
                                &format!("{base}.exclude[{i}]"),
                                format!("bad exclude glob `{ex}`: {}", e.kind()),
                                "use `*`, `?`, `[abc]`, `{a,b}` and `**` for any depth",
                            )
                        })?;
                    }
                }
                Step::File(f) => {
                    image_path_not_root(&f.path).map_err(at(l, &p("path")))?;
                    mode(p("mode"), &f.mode)?;
                    owner(p("owner"), &f.owner)?;
                }
                Step::Dir(d) => {
                    image_path_not_root(&d.path).map_err(at(l, &p("path")))?;
                    mode(p("mode"), &d.mode)?;
                    owner(p("owner"), &d.owner)?;
                }
                Step::Symlink(s) => {
                    image_path_not_root(&s.path).map_err(at(l, &p("path")))?;
                    if s.target.is_empty() || s.target.contains('\0') {
                        return Err(l.error_at(
                            &p("target"),
                            "the symlink target is empty",
                            "give the path the link points to, e.g. `../lib/libfoo.so.1`",
                        ));
                    }
                    owner(p("owner"), &s.owner)?;
                }
                Step::Tar(t) => {
                    check_source_path(&t.src).map_err(at(l, &p("src")))?;
                    image_path(&t.dest).map_err(at(l, &p("dest")))?;
                    owner(p("owner"), &t.owner)?;
                    if t.keep_owners && t.owner.is_some() {
                        return Err(l.error_at(
                            &p("keep_owners"),
                            "`keep_owners` and `owner` both given",
                            "keep the tarball's owners or set one owner, not both",
                        ));
                    }
                }
                Step::Remove(rm) => {
                    if rm.paths.is_empty() {
                        return Err(l.error_at(
                            &p("paths"),
                            "`remove` has no paths",
                            "list the absolute image paths to delete",
                        ));
                    }
                    for (i, path) in rm.paths.iter().enumerate() {
                        image_path_not_root(path).map_err(at(l, &format!("{base}.paths[{i}]")))?;
                    }
                }
                Step::Debian(d) => {
                    debian_seen += 1;
                    validate_debian(l, &base, li, layer.steps.len(), debian_seen, d)?;
                }
                Step::Python(py) => crate::python::step::validate(l, &base, py)?,
            }
        }
    }

    let c = &r.config;
    for key in c.env.keys() {
        let path = format!("config.env.{key}");
        check_env_key(key).map_err(|p| {
            RecipeError::new(
                &l.file,
                l.map.key(&path).unwrap_or_else(|| l.map.locate(&path)),
                p.message,
                p.hint,
            )
        })?;
    }
    if let Some(w) = &c.workdir {
        image_path(w).map_err(at(l, "config.workdir"))?;
    }
    if let Some(u) = &c.user {
        if u.is_empty() || u.starts_with(':') {
            return Err(l.error_at(
                "config.user",
                "`config.user` has no user",
                "write `name`, `name:group`, `uid` or `uid:gid`",
            ));
        }
    }
    for (i, port) in c.exposed_ports.iter().enumerate() {
        parse_port(port).map_err(at(l, &format!("config.exposed_ports[{i}]")))?;
    }
    for (i, v) in c.volumes.iter().enumerate() {
        image_path(v).map_err(at(l, &format!("config.volumes[{i}]")))?;
    }
    for (what, keys) in [
        ("label", c.labels.keys()),
        ("annotation", r.annotations.keys()),
    ] {
        for k in keys {
            if k.is_empty() {
                let path = if what == "label" {
                    "config.labels"
                } else {
                    "annotations"
                };
                return Err(l.error_at(
                    path,
                    format!("an {what} key is empty"),
                    "use reverse-DNS keys, e.g. `org.opencontainers.image.source`",
                ));
            }
        }
    }
    if let Some(s) = &c.stop_signal {
        if s.is_empty() {
            return Err(l.error_at(
                "config.stop_signal",
                "`stop_signal` is empty",
                "write a signal name like `SIGTERM` or remove the field",
            ));
        }
    }
    Ok(())
}

/// True when a source path is a glob rather than a literal path.
pub fn is_glob(src: &str) -> bool {
    src.contains(['*', '?', '['])
}

/// Expands a `copy`/`tar` source against the recipe's directory: the literal path, or the
/// glob's matches (sorted). Errors when nothing matches or a match leaves the directory.
pub fn expand_source(l: &LoadedRecipe, path: &str, src: &str) -> Result<Vec<PathBuf>, RecipeError> {
    let mut out = Vec::new();
    if is_glob(src) {
        let pattern = format!(
            "{}/{}",
            glob::Pattern::escape(&l.dir.to_string_lossy()),
            src
        );
        let paths = glob::glob(&pattern).map_err(|e| {
            l.error_at(
                path,
                format!("bad glob `{src}`: {}", e.msg),
                "use `*`, `?` and `[abc]`",
            )
        })?;
        for p in paths {
            let p = p.map_err(|e| {
                l.error_at(
                    path,
                    format!("cannot read {}: {}", e.path().display(), e.error()),
                    "",
                )
            })?;
            out.push(p);
        }
        if out.is_empty() {
            return Err(l.error_at(
                path,
                format!("glob `{src}` matches no files in {}", l.dir.display()),
                "sources are relative to the recipe's directory; check the pattern",
            ));
        }
    } else {
        let p = l.dir.join(src);
        if std::fs::symlink_metadata(&p).is_err() {
            return Err(l.error_at(
                path,
                format!("source `{src}` does not exist (looked for {})", p.display()),
                "sources are relative to the recipe's directory; check the spelling",
            ));
        }
        out.push(p);
    }
    for p in &out {
        check_inside(l, path, p)?;
    }
    Ok(out)
}

/// Refuses a source whose real location (parents' symlinks and its own resolved) is not
/// inside the recipe's directory.
fn check_inside(l: &LoadedRecipe, path: &str, p: &Path) -> Result<(), RecipeError> {
    let real = p.canonicalize().map_err(|e| {
        l.error_at(
            path,
            format!("cannot resolve source {}: {e}", p.display()),
            "a symlink on the way may be dangling",
        )
    })?;
    let dir = l.dir.canonicalize().unwrap_or_else(|_| l.dir.clone());
    if !real.starts_with(&dir) {
        let rel = p.strip_prefix(&l.dir).unwrap_or(p);
        return Err(l.error_at(
            path,
            format!(
                "source `{}` resolves to {}, outside the recipe's directory",
                rel.display(),
                real.display()
            ),
            "a symlink leads out of the recipe's directory; copy the files in instead, so the recipe directory holds every input",
        ));
    }
    Ok(())
}

/// Checks every `copy` and `tar` source: it exists (a glob matches something) and does not
/// lead out of the recipe's directory. Reads the file system; `load` calls it.
pub fn check_sources(l: &LoadedRecipe) -> Result<(), RecipeError> {
    if let Ok(Base::Oci { path, .. }) = parse_base(&l.recipe.base) {
        let layout = l.dir.join(&path);
        if !layout.join("oci-layout").is_file() {
            return Err(l.error_at(
                "base",
                format!("base `{path}` is not an OCI image layout ({} has no oci-layout file)", layout.display()),
                "build the base first (`strata build BASE.yaml -o DIR`) and name that DIR, relative to this recipe",
            ));
        }
    }
    for (li, layer) in l.recipe.layers.iter().enumerate() {
        for (si, step) in layer.steps.iter().enumerate() {
            let src = match step {
                Step::Copy(c) => &c.src,
                Step::Tar(t) => &t.src,
                Step::Python(py) => {
                    crate::python::step::check_sources(l, &step_path(li, si, step), py)?;
                    continue;
                }
                _ => continue,
            };
            let path = format!("{}.src", step_path(li, si, step));
            let found = expand_source(l, &path, src)?;
            if let Step::Tar(t) = step {
                if found.len() != 1 || !found[0].is_file() {
                    return Err(l.error_at(
                        &path,
                        format!("tar source `{}` is not a single file", t.src),
                        "name one tarball (plain, gzip or zstd)",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH` was set but is not a whole number of seconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SOURCE_DATE_EPOCH={value:?} is not a whole number of seconds since 1970\n  hint: unset it, or set it to e.g. `$(git log -1 --format=%ct)`")]
pub struct SourceDateEpochError {
    pub value: String,
}

/// The timestamp every entry and the image config get: the recipe's `source_date_epoch`,
/// else the `SOURCE_DATE_EPOCH` environment value (pass `std::env::var(..).ok()`), else
/// [`DEFAULT_SOURCE_DATE_EPOCH`]. An environment value that is set must parse.
pub fn effective_source_date_epoch(
    recipe: &Recipe,
    env_value: Option<&str>,
) -> Result<u64, SourceDateEpochError> {
    if let Some(v) = recipe.source_date_epoch {
        // Validation refuses negatives; clamp anyway rather than wrap.
        return Ok(u64::try_from(v).unwrap_or(0));
    }
    if let Some(v) = env_value {
        let t = v.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SourceDateEpochError {
                value: v.to_string(),
            });
        }
        return t.parse::<u64>().map_err(|_| SourceDateEpochError {
            value: v.to_string(),
        });
    }
    Ok(u64::try_from(DEFAULT_SOURCE_DATE_EPOCH).unwrap_or(0))
}

#[cfg(test)]
mod tests;

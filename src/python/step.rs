//! The recipe's `python` step: validation at `file:line:col`, and the settings a lock or an
//! install needs (target interpreter, directories, lock file, requirements).

use std::path::{Path, PathBuf};

use super::marker::{Env, Requirement};
use super::tags::{machine_for_oci_arch, parse_platform, Target};
use crate::recipe::model::{PythonStep, Step};
use crate::recipe::validate::{check_source_path, image_path, image_path_not_root};
use crate::recipe::{LoadedRecipe, Pos, RecipeError};

/// One requirement and where it was written (for errors).
#[derive(Debug, Clone)]
pub struct Pinned {
    pub req: Requirement,
    /// The text as written.
    pub text: String,
    /// The version after `==`.
    pub version: String,
}

/// A requirement line that is not a pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqProblem {
    pub message: String,
    pub hint: String,
}

const PIN_HINT: &str =
    "pin every requirement exactly, e.g. `salt==3008.4`; `strata lock` resolves their dependencies";

/// Parses one requirement that must be pinned with `==` (no wildcard). Pure.
pub fn parse_pinned(text: &str) -> Result<Pinned, ReqProblem> {
    let req = Requirement::parse(text).map_err(|m| ReqProblem {
        message: format!("bad requirement: {m}"),
        hint: PIN_HINT.into(),
    })?;
    let version = req
        .specifiers
        .pinned()
        .ok_or_else(|| ReqProblem {
            message: format!("requirement `{}` is not pinned to one version", text.trim()),
            hint: PIN_HINT.into(),
        })?
        .to_string();
    Ok(Pinned {
        req,
        text: text.trim().to_string(),
        version,
    })
}

/// Parses a requirements file: one pin per line, `#` comments, blank lines. Options
/// (`-r`, `--index-url`, ...) are refused. Errors carry a 1-based line and column. Pure.
pub fn parse_requirements_file(text: &str) -> Result<Vec<Pinned>, (Pos, ReqProblem)> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = match raw
            .find(" #")
            .or_else(|| raw.trim_start().starts_with('#').then_some(0))
        {
            Some(i) => &raw[..i],
            None => raw,
        };
        if line.trim().is_empty() {
            continue;
        }
        let col = raw.len() - raw.trim_start().len() + 1;
        let pos = Pos { line: n + 1, col };
        if line.trim_start().starts_with('-') {
            return Err((
                pos,
                ReqProblem {
                    message: format!("pip option `{}` in a requirements file", line.trim()),
                    hint: "list only `name==version` lines; the index comes from `--index-url`, STRATA_PYTHON_INDEX or pip's configuration".into(),
                },
            ));
        }
        out.push(parse_pinned(line).map_err(|p| (pos, p))?);
    }
    Ok(out)
}

/// Everything a python step resolves to, besides its requirements.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Python version as written (`3.11`).
    pub python: String,
    /// Platform tag (given or default).
    pub platform: String,
    pub target: Target,
    pub env: Env,
    /// site-packages, relative image path (`usr/lib/python3/dist-packages`).
    pub site: String,
    /// Install prefix, relative image path (`usr`).
    pub prefix: String,
    /// `#!` interpreter (absolute).
    pub interpreter: String,
    /// Lock file on disk.
    pub lock: PathBuf,
}

/// `<prefix>` of `<prefix>/lib/python3[.N]/{site,dist}-packages`, if `site` has that form.
pub fn derive_prefix(site: &str) -> Option<String> {
    let parts: Vec<&str> = site.split('/').collect();
    let n = parts.len();
    if n < 3 {
        return None;
    }
    let (lib, py, pk) = (parts[n - 3], parts[n - 2], parts[n - 1]);
    let py_ok = py == "python3"
        || py
            .strip_prefix("python3.")
            .is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()));
    if (lib == "lib" || lib == "lib64") && py_ok && (pk == "site-packages" || pk == "dist-packages")
    {
        Some(parts[..n - 3].join("/"))
    } else {
        None
    }
}

fn recipe_arch(l: &LoadedRecipe) -> &str {
    l.recipe.platform.split('/').nth(1).unwrap_or("amd64")
}

/// The step's settings; pure apart from joining the lock path to the recipe's directory.
pub fn settings(l: &LoadedRecipe, path: &str, s: &PythonStep) -> Result<Settings, RecipeError> {
    let at =
        |field: &str, msg: String, hint: &str| l.error_at(&format!("{path}.{field}"), msg, hint);
    // The text as written: an unquoted `3.10` is a YAML float (3.1) but means 3.10.
    let python = l
        .map
        .scalar(&format!("{path}.python"))
        .unwrap_or(&s.python)
        .to_string();
    let minor = super::tags::parse_python(&python).map_err(|m| {
        at(
            "python",
            m,
            "write the image's Python version in quotes, e.g. `python: \"3.11\"`",
        )
    })?;
    let arch = recipe_arch(l);
    let machine = machine_for_oci_arch(arch).ok_or_else(|| {
        l.error_at(
            "platform",
            format!("no Python wheel platform is known for architecture `{arch}`"),
            "use amd64, arm64, 386, ppc64le, s390x, arm or riscv64",
        )
    })?;
    // With several platforms each is resolved on its own: the wheel platform follows it.
    let several = l.recipe.platforms.len() > 1;
    let platform = match &s.platform {
        Some(_) if several => return Err(at(
            "platform",
            "`platform` names one wheel platform, but the recipe builds several `platforms`".into(),
            "leave `platform` out: each platform gets its own lock, for `manylinux_2_17_<machine>`",
        )),
        Some(p) => p.clone(),
        None => format!("manylinux_2_17_{machine}"),
    };
    let (_, _, parch) = parse_platform(&platform).map_err(|m| {
        at(
            "platform",
            m,
            "use the image's libc, e.g. `manylinux_2_36_x86_64` for Debian bookworm",
        )
    })?;
    if parch != machine {
        return Err(at(
            "platform",
            format!(
                "platform `{platform}` is for {parch}, but the recipe builds for {}",
                l.recipe.platform
            ),
            &format!("use a `{machine}` platform tag, e.g. `manylinux_2_36_{machine}`"),
        ));
    }
    let target = Target::new(&python, &platform).map_err(|m| at("platform", m, ""))?;
    debug_assert_eq!(target.minor, minor);
    let site = image_path_not_root(&s.target).map_err(|p| at("target", p.message, &p.hint))?;
    let prefix = match &s.prefix {
        Some(p) => image_path(p).map_err(|pr| at("prefix", pr.message, &pr.hint))?,
        None => derive_prefix(&site).ok_or_else(|| {
            at(
                "target",
                format!("cannot tell the install prefix from target `{}`", s.target),
                "add `prefix:` (scripts go to PREFIX/bin), or use a target like `/usr/lib/python3/dist-packages` or `/opt/venv/lib/python3.11/site-packages`",
            )
        })?,
    };
    let interpreter = match &s.interpreter {
        Some(i) => {
            if !i.starts_with('/') || i.contains(['\n', '\0', ' ']) {
                return Err(at(
                    "interpreter",
                    format!("interpreter `{i}` is not an absolute path without spaces"),
                    "e.g. `/usr/bin/python3`",
                ));
            }
            i.clone()
        }
        None => {
            if prefix.is_empty() {
                "/bin/python3".into()
            } else {
                format!("/{prefix}/bin/python3")
            }
        }
    };
    let lock_rel = match &s.lock {
        Some(p) => {
            check_source_path(p).map_err(|pr| at("lock", pr.message, &pr.hint))?;
            p.clone()
        }
        None => {
            let stem = l
                .file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| l.recipe.name.clone());
            format!("{stem}.python.lock")
        }
    };
    let lock_rel = if several {
        per_arch_lock(&lock_rel, arch)
    } else {
        lock_rel
    };
    Ok(Settings {
        env: Env::cpython_linux(&python, machine),
        python,
        platform,
        target,
        site,
        prefix,
        interpreter,
        lock: l.dir.join(lock_rel),
    })
}

/// The lock file of one architecture of a recipe with several platforms: `app.python.lock`
/// → `app.arm64.python.lock`; another name gets the architecture before its last
/// extension (`deps.lock` → `deps.arm64.lock`, `deps` → `deps.arm64`).
pub fn per_arch_lock(rel: &str, arch: &str) -> String {
    let (dir, name) = match rel.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), rel),
    };
    let name = if let Some(stem) = name.strip_suffix(".python.lock") {
        format!("{stem}.{arch}.python.lock")
    } else {
        match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{arch}.{ext}"),
            _ => format!("{name}.{arch}"),
        }
    };
    format!("{dir}{name}")
}

/// Pure checks of a python step (called by the recipe parser).
pub fn validate(l: &LoadedRecipe, path: &str, s: &PythonStep) -> Result<(), RecipeError> {
    settings(l, path, s)?;
    if l.recipe.platforms.len() > 1 {
        for (i, p) in l.recipe.platforms.iter().enumerate() {
            let arch = p.split('/').nth(1).unwrap_or("");
            if machine_for_oci_arch(arch).is_none() {
                return Err(l.error_at(
                    &format!("platforms[{i}]"),
                    format!("no Python wheel platform is known for architecture `{arch}` (the recipe has a python step)"),
                    "use amd64, arm64, 386, ppc64le, s390x, arm or riscv64",
                ));
            }
        }
    }
    match (&s.requirements_file, s.requirements.is_empty()) {
        (Some(_), false) => {
            return Err(l.error_at(
                &format!("{path}.requirements_file"),
                "both `requirements` and `requirements_file` given",
                "list the pins in the recipe or in a file, not both",
            ))
        }
        (None, true) => {
            return Err(l.error_at(
                path,
                "the python step has no requirements",
                "add `requirements: [name==version, ...]` or `requirements_file: requirements.txt`",
            ))
        }
        (Some(f), true) => check_source_path(f)
            .map_err(|p| l.error_at(&format!("{path}.requirements_file"), p.message, p.hint))?,
        (None, false) => {}
    }
    let mut seen = std::collections::BTreeMap::new();
    for (i, r) in s.requirements.iter().enumerate() {
        let rp = format!("{path}.requirements[{i}]");
        let p = parse_pinned(r).map_err(|p| l.error_at(&rp, p.message, p.hint))?;
        if let Some(j) = seen.insert(p.req.key(), i) {
            return Err(l.error_at(
                &rp,
                format!("`{}` is listed twice (also requirements[{j}])", p.req.name),
                "keep one pin per project",
            ));
        }
    }
    // Two steps sharing a lock file would overwrite each other's lock.
    let mine = settings(l, path, s)?.lock;
    for (li, layer) in l.recipe.layers.iter().enumerate() {
        for (si, step) in layer.steps.iter().enumerate() {
            let other = crate::recipe::parse::step_path(li, si, step);
            if other == path {
                return Ok(());
            }
            if let Step::Python(o) = step {
                if settings(l, &other, o).is_ok_and(|st| st.lock == mine) {
                    return Err(l.error_at(
                        path,
                        format!(
                            "this python step uses the same lock file as {other} ({})",
                            mine.display()
                        ),
                        "give each python step its own `lock: NAME.python.lock`",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Checks that the requirements file exists and holds only pins (reads the file).
pub fn check_sources(l: &LoadedRecipe, path: &str, s: &PythonStep) -> Result<(), RecipeError> {
    requirements(l, path, s).map(|_| ())
}

/// The step's pins, from the recipe or its requirements file.
pub fn requirements(
    l: &LoadedRecipe,
    path: &str,
    s: &PythonStep,
) -> Result<Vec<Pinned>, RecipeError> {
    let Some(f) = &s.requirements_file else {
        return s
            .requirements
            .iter()
            .enumerate()
            .map(|(i, r)| {
                parse_pinned(r).map_err(|p| {
                    l.error_at(&format!("{path}.requirements[{i}]"), p.message, p.hint)
                })
            })
            .collect();
    };
    let file = l.dir.join(f);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        l.error_at(
            &format!("{path}.requirements_file"),
            format!("cannot read requirements file {}: {e}", file.display()),
            "the path is relative to the recipe's directory",
        )
    })?;
    let shown: &Path = Path::new(f);
    let pins = parse_requirements_file(&text).map_err(|(pos, p)| {
        RecipeError::new(
            &l.file.parent().unwrap_or(Path::new("")).join(shown),
            pos,
            p.message,
            p.hint,
        )
    })?;
    if pins.is_empty() {
        return Err(l.error_at(
            &format!("{path}.requirements_file"),
            format!("requirements file {} lists nothing", file.display()),
            "add `name==version` lines",
        ));
    }
    Ok(pins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_table() {
        assert!(parse_pinned("salt==3008.4").is_ok_and(|p| p.version == "3008.4"));
        assert!(parse_pinned("PyZMQ[extra]==25.1.2 ; python_version >= '3.8'").is_ok());
        for bad in [
            "salt",
            "salt>=3008",
            "salt==3008.*",
            "salt~=3008.4",
            "==1",
            "salt==1,<2",
        ] {
            assert!(parse_pinned(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requirements_file_table() {
        let ok = "# the lab\nsalt==3008.4  # pinned\n\n  pyyaml==6.0.2\n";
        let pins = parse_requirements_file(ok).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(pins.len(), 2);
        assert_eq!(pins[1].req.key(), "pyyaml");
        let cases = [
            ("salt\n", 1, 1),
            ("# c\n  jinja2>=3\n", 2, 3),
            ("a==1\n-r other.txt\n", 2, 1),
            ("a==1\n--index-url x\n", 2, 1),
        ];
        for (text, line, col) in cases {
            match parse_requirements_file(text) {
                Err((pos, _)) => assert_eq!((pos.line, pos.col), (line, col), "{text:?}"),
                Ok(_) => panic!("{text:?} should fail"),
            }
        }
    }

    #[test]
    fn prefix_table() {
        let cases = [
            ("usr/lib/python3/dist-packages", Some("usr")),
            ("opt/venv/lib/python3.11/site-packages", Some("opt/venv")),
            ("usr/local/lib/python3.13/dist-packages", Some("usr/local")),
            ("lib/python3/site-packages", Some("")),
            ("srv/app/packages", None),
            ("usr/lib/python2.7/site-packages", None),
            ("usr/lib/python3.x/site-packages", None),
        ];
        for (site, want) in cases {
            assert_eq!(derive_prefix(site).as_deref(), want, "{site}");
        }
    }

    /// Recipe errors of the python step point at the value, with a hint.
    #[test]
    fn recipe_errors_table() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = tmp.path().canonicalize().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("reqs.txt"), "salt==3008.4\njinja2>=3\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let head = "name: x\nlayers:\n  - steps:\n      - python:\n";
        let t = "          target: /usr/lib/python3/dist-packages\n";
        // (what, step body, line, anchor on that line, message words, hint words)
        let cases: Vec<(&str, String, usize, &str, &str, &str)> = vec![
            ("unpinned", format!("          python: \"3.11\"\n{t}          requirements: [salt==3008.4, \"jinja2>=3\"]\n"), 7, "\"jinja2", "not pinned", "salt==3008.4"),
            ("old python", format!("          python: \"2.7\"\n{t}          requirements: [a==1]\n"), 5, "\"2.7\"", "not a Python 3 version", "in quotes"),
            ("bad platform", format!("          python: \"3.11\"\n          platform: win_amd64\n{t}          requirements: [a==1]\n"), 6, "win_amd64", "not a Linux wheel platform", "manylinux_2_36"),
            ("wrong arch", format!("          python: \"3.11\"\n          platform: manylinux_2_36_aarch64\n{t}          requirements: [a==1]\n"), 6, "manylinux", "is for aarch64", "x86_64"),
            ("relative target", "          python: \"3.11\"\n          target: usr/lib\n          requirements: [a==1]\n".into(), 6, "usr/lib", "not absolute", ""),
            ("no prefix", "          python: \"3.11\"\n          target: /srv/app\n          requirements: [a==1]\n".into(), 6, "/srv/app", "cannot tell the install prefix", "prefix:"),
            ("both", format!("          python: \"3.11\"\n{t}          requirements: [a==1]\n          requirements_file: reqs.txt\n"), 8, "reqs.txt", "both", ""),
            ("neither", format!("          python: \"3.11\"\n{t}"), 5, "python: \"3.11\"", "no requirements", "requirements_file"),
            ("twice", format!("          python: \"3.11\"\n{t}          requirements: [A==1, a==2]\n"), 7, "a==2", "listed twice", ""),
            ("typo", format!("          pythn: \"3.11\"\n{t}"), 5, "pythn", "unknown field `pythn`", "did you mean `python`?"),
            ("url requirement", format!("          python: \"3.11\"\n{t}          requirements: [\"a @ file:///x.whl\"]\n"), 7, "\"a @", "URL requirement", ""),
            ("missing file", format!("          python: \"3.11\"\n{t}          requirements_file: nothere.txt\n"), 7, "nothere.txt", "cannot read requirements file", "relative to the recipe"),
            ("escaping file", format!("          python: \"3.11\"\n{t}          requirements_file: ../reqs.txt\n"), 7, "../reqs.txt", "contains `..`", ""),
        ];
        let mut failures = Vec::new();
        for (what, body, line, anchor, message, hint) in &cases {
            let text = format!("{head}{body}");
            let file = dir.join("recipe.yaml");
            std::fs::write(&file, &text).unwrap_or_else(|e| panic!("{e}"));
            let line_text = text.lines().nth(line - 1).unwrap_or_default();
            let col = line_text.find(anchor).map(|i| i + 1);
            match crate::recipe::load(&file) {
                Ok(_) => failures.push(format!("{what}: loaded")),
                Err(e) => {
                    if Some(e.col) != col
                        || e.line != *line
                        || !e.message.contains(message)
                        || !e.hint.contains(hint)
                    {
                        failures.push(format!(
                            "{what}: want {line}:{col:?} {message:?}/{hint:?}, got {e}"
                        ));
                    }
                }
            }
        }
        // A bad line in the requirements file is reported at that file's line and column.
        let text =
            format!("{head}          python: \"3.11\"\n{t}          requirements_file: reqs.txt\n");
        std::fs::write(dir.join("recipe.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
        match crate::recipe::load(&dir.join("recipe.yaml")) {
            Ok(_) => failures.push("reqs file: loaded".into()),
            Err(e) => {
                if !(e.file.ends_with("reqs.txt")
                    && (e.line, e.col) == (2, 1)
                    && e.message.contains("not pinned"))
                {
                    failures.push(format!("reqs file: got {e}"));
                }
            }
        }
        // Two steps sharing the default lock file.
        let text = format!("{head}          python: \"3.11\"\n{t}          requirements: [a==1]\n      - python:\n          python: \"3.11\"\n{t}          requirements: [b==1]\n");
        std::fs::write(dir.join("recipe.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
        match crate::recipe::load(&dir.join("recipe.yaml")) {
            Ok(_) => failures.push("shared lock: loaded".into()),
            Err(e) => {
                if !(e.line == 9
                    && e.message.contains("same lock file")
                    && e.hint.contains("lock:"))
                {
                    failures.push(format!("shared lock: got {e}"));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn settings_defaults() {
        let text = "name: x\nplatform: linux/arm64\nlayers:\n  - steps:\n      - python:\n          python: 3.10\n          target: /opt/venv/lib/python3.13/site-packages\n          requirements: [a==1]\n";
        let l = crate::recipe::parse_str(text, Path::new("/r/lab.yaml"), Path::new("/r"))
            .unwrap_or_else(|e| panic!("{e}"));
        let py = match &l.recipe.layers[0].steps[0] {
            Step::Python(p) => p,
            _ => panic!("not a python step"),
        };
        let s = settings(&l, "layers[0].steps[0].python", py).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.python, "3.10");
        assert_eq!(s.platform, "manylinux_2_17_aarch64");
        assert_eq!(s.prefix, "opt/venv");
        assert_eq!(s.interpreter, "/opt/venv/bin/python3");
        assert_eq!(s.lock, Path::new("/r/lab.python.lock"));
        assert_eq!(s.env.get("platform_machine"), Some("aarch64"));
    }

    #[test]
    fn several_platforms_get_a_lock_each() {
        assert_eq!(
            per_arch_lock("app.python.lock", "arm64"),
            "app.arm64.python.lock"
        );
        assert_eq!(
            per_arch_lock("locks/deps.lock", "amd64"),
            "locks/deps.amd64.lock"
        );
        assert_eq!(per_arch_lock("d.x/deps", "arm64"), "d.x/deps.arm64");
        let text = "name: x\nplatforms: [linux/amd64, linux/arm64]\nlayers:\n  - steps:\n      - python:\n          python: \"3.11\"\n          target: /usr/lib/python3/dist-packages\n          requirements: [a==1]\n";
        let l = crate::recipe::parse_str(text, Path::new("/r/app.yaml"), Path::new("/r"))
            .unwrap_or_else(|e| panic!("{e}"));
        let py = match &l.recipe.layers[0].steps[0] {
            Step::Python(p) => p.clone(),
            _ => panic!("not a python step"),
        };
        for (platform, lock, tag) in [
            (
                "linux/amd64",
                "/r/app.amd64.python.lock",
                "manylinux_2_17_x86_64",
            ),
            (
                "linux/arm64",
                "/r/app.arm64.python.lock",
                "manylinux_2_17_aarch64",
            ),
        ] {
            let mut one = l.clone();
            one.recipe.platform = platform.into();
            let s =
                settings(&one, "layers[0].steps[0].python", &py).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (s.lock.as_path(), s.platform.as_str()),
                (Path::new(lock), tag)
            );
        }
        // One wheel platform for several platforms: an error at the step's `platform`.
        let text = text.replace(
            "python: \"3.11\"\n",
            "python: \"3.11\"\n          platform: manylinux_2_36_x86_64\n",
        );
        let e = crate::recipe::parse_str(&text, Path::new("/r/app.yaml"), Path::new("/r"))
            .expect_err("refused");
        assert!(
            e.line == 7
                && e.message.contains("several `platforms`")
                && e.hint.contains("leave `platform` out"),
            "{e}"
        );
        // A platform without a known wheel machine, at its place in `platforms`.
        let text = "name: x\nplatforms: [linux/amd64, linux/mips64le]\nlayers:\n  - steps:\n      - python:\n          python: \"3.11\"\n          target: /usr/lib/python3/dist-packages\n          requirements: [a==1]\n";
        let e = crate::recipe::parse_str(text, Path::new("/r/app.yaml"), Path::new("/r"))
            .expect_err("refused");
        assert!(e.line == 2 && e.message.contains("mips64le"), "{e}");
    }
}

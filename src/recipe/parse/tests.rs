use std::fs;

use super::*;

/// A recipe directory with a few sources and a link leading out of it.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("recipe");
    fs::create_dir_all(dir.join("bin")).expect("mkdir");
    fs::create_dir_all(tmp.path().join("outside")).expect("mkdir");
    fs::write(dir.join("bin/app"), b"app").expect("write");
    fs::write(dir.join("rootfs.tar"), b"").expect("write");
    fs::create_dir_all(dir.join("base")).expect("mkdir");
    fs::write(
        dir.join("base/oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("write");
    std::os::unix::fs::symlink("../outside", dir.join("out-link")).expect("symlink");
    let dir = dir.canonicalize().expect("canonical");
    Fixture { _tmp: tmp, dir }
}

fn load_text(f: &Fixture, text: &str) -> Result<LoadedRecipe, RecipeError> {
    let file = f.dir.join("recipe.yaml");
    fs::write(&file, text).expect("write recipe");
    load(&file)
}

const HEAD: &str = "name: demo\nlayers:\n  - steps:\n";

#[test]
fn errors_point_at_the_value() {
    // (what, recipe text, line, text the column must point at, words in the message,
    // words in the hint)
    let cases: &[(&str, String, usize, &str, &str, &str)] = &[
        ("unknown field", "name: x\ncolour: red\n".into(), 2, "colour", "unknown field `colour`", "expected one of: name,"),
        ("unknown step field", format!("{HEAD}      - copy: {{src: bin, dest: /b, mdoe: \"0644\"}}\n"), 4, "mdoe", "unknown field `mdoe`", "did you mean `mode`?"),
        ("syntax", "name: x\nlayers: [\n".into(), 3, "", "did not find expected node content", "indentation and quoting"),
        ("tab indentation", "name: x\nconfig:\n\tuser: a\n".into(), 3, "\t", "cannot start any token", "spaces, not tabs"),
        ("wrong type", "name: x\nsource_date_epoch: soon\n".into(), 2, "soon", "invalid type", "whole number"),
        ("wrong type in list", "name: x\nlayers: {}\n".into(), 2, "{}", "expected a sequence", "write a list"),
        ("unknown step", format!("{HEAD}      - cpy: {{src: bin, dest: /b}}\n"), 4, "cpy", "unknown step kind `cpy`", "did you mean `copy`?"),
        ("missing field", format!("{HEAD}      - copy: {{src: bin}}\n"), 4, "{src", "missing field `dest`", "add `dest`"),
        ("missing source", format!("{HEAD}      - copy:\n          src: nothere/app\n          dest: /app\n"), 5, "nothere", "source `nothere/app` does not exist", "relative to the recipe's directory"),
        ("glob matches nothing", format!("{HEAD}      - copy: {{src: \"bin/*.so\", dest: /lib/}}\n"), 4, "\"bin/*.so\"", "matches no files", "check the pattern"),
        ("dotdot source", format!("{HEAD}      - copy: {{src: ../outside, dest: /x}}\n"), 4, "../outside", "contains `..`", "inside the recipe's directory"),
        ("absolute source", format!("{HEAD}      - copy: {{src: /etc/passwd, dest: /x}}\n"), 4, "/etc/passwd", "is absolute", "relative"),
        ("symlink out of the dir", format!("{HEAD}      - copy: {{src: out-link, dest: /x/}}\n"), 4, "out-link", "outside the recipe's directory", "symlink"),
        ("tar source missing", format!("{HEAD}      - tar: {{src: missing.tar}}\n"), 4, "missing.tar", "does not exist", ""),
        ("bad mode", format!("{HEAD}      - file: {{path: /a, content: x, mode: \"0800\"}}\n"), 4, "\"0800\"", "`0800` is not an octal file mode", "octal digits"),
        ("bad unquoted mode", format!("{HEAD}      - dir:\n          path: /a\n          mode: 0999\n"), 6, "0999", "`0999` is not an octal", "octal"),
        ("mode too big", format!("{HEAD}      - dir: {{path: /a, mode: 17777}}\n"), 4, "17777", "above 07777", ""),
        ("bad port", "name: x\nconfig:\n  exposed_ports: [\"80\", http]\n".into(), 3, "http", "`http` is not a port", "8080/tcp"),
        ("bad protocol", "name: x\nconfig:\n  exposed_ports:\n    - 80/sctp\n".into(), 4, "80/sctp", "only tcp and udp", ""),
        ("bad name", "name: My_App\n".into(), 1, "My_App", "not a valid OCI image name", "lowercase"),
        ("empty name", "name: \"\"\n".into(), 1, "\"\"", "image name is empty", ""),
        ("bad tag", "name: x\ntag: \".v1\"\n".into(), 2, "\".v1\"", "not a valid tag", ""),
        ("bad platform", "name: x\nplatform: amd64\n".into(), 2, "amd64", "not a platform", "os/arch"),
        ("bad base", "name: x\nbase: docker.io/debian\n".into(), 2, "docker", "unknown base", "oci:PATH"),
        ("negative epoch", "name: x\nsource_date_epoch: -1\n".into(), 2, "-1", "negative", ""),
        ("no steps", "name: x\nlayers:\n  - name: empty\n    steps: []\n".into(), 4, "[]", "has no steps", "add at least one step"),
        ("relative dest", format!("{HEAD}      - copy: {{src: bin, dest: usr/bin}}\n"), 4, "usr/bin", "not absolute", ""),
        ("dotdot dest", format!("{HEAD}      - file: {{path: /etc/../x, content: y}}\n"), 4, "/etc/../x", "contains `..`", ""),
        ("symlink at root", format!("{HEAD}      - symlink: {{path: /, target: x}}\n"), 4, "/, target", "not the root itself", ""),
        ("relative remove", format!("{HEAD}      - remove: {{paths: [/ok, tmp]}}\n"), 4, "tmp]", "not absolute", ""),
        ("unknown owner", format!("{HEAD}      - dir: {{path: /srv, owner: nobody}}\n"), 4, "nobody", "unknown user `nobody`", "accounts.users"),
        ("unknown group", "name: x\naccounts:\n  users: [{name: app, uid: 10}]\nlayers:\n  - steps:\n      - dir: {path: /srv, owner: \"app:wheel\"}\n".into(), 6, "\"app:wheel\"", "unknown group `wheel`", "accounts.groups"),
        ("duplicate uid", "name: x\naccounts:\n  users:\n    - {name: a, uid: 10}\n    - {name: b, uid: 10}\n".into(), 5, "10}", "uid 10 is used by two users", ""),
        ("env key", "name: x\nconfig:\n  env:\n    \"A=B\": c\n".into(), 4, "\"A=B\"", "not a valid environment variable name", ""),
        ("workdir", "name: x\nconfig:\n  workdir: app\n".into(), 3, "app", "not absolute", ""),
        ("volume", "name: x\nconfig:\n  volumes: [/data, /../x]\n".into(), 3, "/../x", "contains `..`", ""),
        ("keep_owners with owner", format!("{HEAD}      - tar: {{src: rootfs.tar, keep_owners: true, owner: \"1:1\"}}\n"), 4, "true", "both given", ""),
        ("bad exclude", format!("{HEAD}      - copy: {{src: bin, dest: /b, exclude: [\"a[\"]}}\n"), 4, "\"a[\"", "bad exclude glob", ""),
    ];
    let f = fixture();
    let mut failures = Vec::new();
    for (what, text, line, anchor, message, hint) in cases {
        let line_text = text.lines().nth(line - 1).unwrap_or_default();
        let col = match line_text.find(anchor) {
            Some(i) => i + 1,
            None => panic!("{what}: `{anchor}` not on line {line}"),
        };
        let err = match load_text(&f, text) {
            Ok(_) => {
                failures.push(format!("{what}: loaded without error"));
                continue;
            }
            Err(e) => e,
        };
        let ok = (err.line, err.col) == (*line, col)
            && err.message.contains(message)
            && err.hint.contains(hint)
            && err.file.ends_with("recipe.yaml");
        if !ok {
            failures.push(format!(
                "{what}: want {line}:{col} {message:?} / {hint:?}, got {err}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn display_has_position_and_hint() {
    let err = parse_str(
        "name: x\ncolour: red\n",
        Path::new("r.yaml"),
        Path::new("."),
    )
    .expect_err("unknown field");
    let shown = err.to_string();
    assert!(
        shown
            .starts_with("r.yaml:2:1: unknown field `colour`\n  hint: expected one of: name, tag,"),
        "{shown}"
    );
}

#[test]
fn a_full_recipe_loads() {
    let f = fixture();
    let text = "\
name: demo/app
tag: v1.0
platform: linux/arm64/v8
source_date_epoch: 1700000000
base: oci:base:12
accounts:
  groups: [{name: staff, gid: 50, members: [app]}]
  users:
    - {name: app, uid: 1000, shell: /bin/false}
layers:
  - name: app
    steps:
      - copy: {src: bin, dest: /usr/bin/, mode: 0755, owner: \"app:staff\", exclude: [\"*.tmp\"]}
      - copy: {src: \"bin/*\", dest: /opt/, dir_mode: \"0o750\"}
      - file: {path: /etc/motd, content: \"hi\\n\", mode: 644}
      - dir: {path: /var/lib/app, owner: \"1000:1000\"}
      - symlink: {path: /usr/bin/a, target: app}
      - tar: {src: rootfs.tar, dest: /opt/root}
      - remove: {paths: [/var/cache], opaque: true}
config:
  env: {PATH: /usr/bin}
  entrypoint: [/usr/bin/app]
  workdir: /
  user: app
  exposed_ports: [\"8080\", 53/udp]
  volumes: [/data]
  labels: {a: b}
annotations: {org.opencontainers.image.title: demo}
";
    let loaded = load_text(&f, text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.dir, f.dir);
    assert_eq!(loaded.recipe.layers[0].steps.len(), 7);
    let mode = step_mode(
        &loaded,
        "layers[0].steps[0].copy.mode",
        Some(&"0755".to_string()),
    );
    assert_eq!(mode, Ok(Some(0o755)));
}

#[test]
fn source_date_epoch_resolution() {
    let with = |sde: Option<i64>| {
        let mut r = parse_str("name: x\n", Path::new("r"), Path::new("."))
            .expect("parses")
            .recipe;
        r.source_date_epoch = sde;
        r
    };
    let default = u64::try_from(DEFAULT_SOURCE_DATE_EPOCH).expect("positive");
    let cases = [
        (Some(5), Some("9"), Ok(5)),
        (Some(5), Some("junk"), Ok(5)),
        (None, Some("9"), Ok(9)),
        (None, Some(" 9\n"), Ok(9)),
        (None, None, Ok(default)),
        (None, Some(""), Err(())),
        (None, Some("-1"), Err(())),
        (None, Some("1.5"), Err(())),
        (None, Some("soon"), Err(())),
    ];
    for (recipe, env, want) in cases {
        let got = effective_source_date_epoch(&with(recipe), env).map_err(|_| ());
        assert_eq!(got, want, "{recipe:?} {env:?}");
    }
    let err = effective_source_date_epoch(&with(None), Some("soon")).expect_err("junk");
    assert!(err.to_string().contains("\n  hint: "));
}

#[test]
fn the_documented_example_parses() {
    let doc = include_str!("../../../docs/recipe.md");
    let start = doc.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let len = doc[start..].find("```").expect("closed");
    let loaded = parse_str(
        &doc[start..start + len],
        Path::new("doc.yaml"),
        Path::new("."),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.recipe.layers.len(), 2);
}

#[test]
fn a_base_that_is_not_a_layout_is_refused_at_base() {
    let f = fixture();
    let err = load_text(&f, "name: demo\nbase: oci:bin\n").expect_err("not a layout");
    let shown = err.to_string();
    assert!(shown.contains("recipe.yaml:2:"), "{shown}");
    assert!(shown.contains("is not an OCI image layout"), "{shown}");
    assert!(shown.contains("hint: build the base first"), "{shown}");
    // A base outside the recipe's directory is allowed: it is an image, not build context.
    let outside = f.dir.parent().expect("parent").join("outside");
    fs::write(outside.join("oci-layout"), b"{}").expect("write");
    load_text(
        &f,
        &format!("name: demo\nbase: oci:{}\n", outside.display()),
    )
    .expect("absolute base");
    load_text(&f, "name: demo\nbase: oci:../outside\n").expect("relative base outside");
}

#[test]
fn debian_steps_parse_with_defaults_and_layering_forms() {
    let f = fixture();
    let cases: &[(&str, Layering)] = &[
        ("", Layering::PerPackage),
        ("\n          layering: per-package", Layering::PerPackage),
        ("\n          layering: per-source", Layering::PerSource),
        ("\n          layering: {budget: 7}", Layering::Budget(7)),
    ];
    for (extra, want) in cases {
        let text = format!(
            "{HEAD}      - debian:\n          suite: bookworm\n          packages: [python3, 'libc6 (>= 2.36)', curl=7.88.1-10]{extra}\n"
        );
        let l = load_text(&f, &text).unwrap_or_else(|e| panic!("{text}\n{e}"));
        let Step::Debian(d) = &l.recipe.layers[0].steps[0] else {
            panic!("not a debian step")
        };
        assert_eq!(d.suite, "bookworm");
        assert_eq!(d.components, ["main"]);
        assert_eq!(d.packages.len(), 3);
        assert!(d.exclude.is_empty() && !d.essential);
        assert_eq!(&d.layering, want, "{extra}");
    }
    let bad = [
        ("layering: sometimes", "sometimes"),
        ("components: []", "no components"),
        ("suite: ../x", "not a suite name"),
        ("colour: blue", "colour"),
    ];
    for (line, msg) in bad {
        let text = if line.starts_with("suite") {
            format!("{HEAD}      - debian:\n          {line}\n          packages: [a]\n")
        } else {
            format!("{HEAD}      - debian:\n          suite: bookworm\n          packages: [a]\n          {line}\n")
        };
        let e = load_text(&f, &text).expect_err(line).to_string();
        assert!(e.contains(msg), "{line}: {e}");
        assert!(e.contains("recipe.yaml:"), "{line}: {e}");
    }
    // Two debian steps, or a debian step beside others in a layer.
    let two = format!(
        "{HEAD}      - debian: {{suite: bookworm, packages: [a]}}\n  - steps:\n      - debian: {{suite: bookworm, packages: [b]}}\n"
    );
    let e = load_text(&f, &two).expect_err("two").to_string();
    assert!(
        e.contains("a second `debian` step") && e.contains(":6:"),
        "{e}"
    );
}

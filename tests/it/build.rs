//! Building the examples and reading the results back with strata's own commands.

use crate::*;

#[test]
fn hello_builds_and_verifies() {
    let sb = Sandbox::new();
    let out = sb.path("out");
    let digest = sb.build(&repo().join("recipes/hello.yaml"), &out, &[]);
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    let o = run_ok(sb.strata().arg("verify").arg(&out));
    assert!(stdout(&o).contains(", 0 problems"), "{}", stdout(&o));

    let o = run_ok(
        sb.strata()
            .args(["inspect", "--json"])
            .arg(format!("oci:{}:latest", out.display())),
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["manifest_digest"], digest.as_str());
    assert_eq!(v["platform"], "linux/amd64");
    assert_eq!(v["created"], "2000-01-01T00:00:00Z");
    assert_eq!(v["config"]["Entrypoint"][0], "/usr/bin/hello");
    assert_eq!(v["config"]["User"], "app");
    // base, app, accounts
    assert_eq!(v["layers"].as_array().map(|a| a.len()), Some(3));
}

#[test]
fn corrupt_blob_is_reported_by_verify() {
    let sb = Sandbox::new();
    let out = sb.path("out");
    sb.build(&repo().join("recipes/hello.yaml"), &out, &[]);
    let o = run_ok(sb.strata().args(["inspect", "--json"]).arg(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let layer = v["layers"][1]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    let blob = out
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&blob).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&blob, bytes).expect("write");
    let o = run(sb.strata().arg("verify").arg(&out));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains(&layer), "{}", stdout(&o));
}

#[test]
fn rebuild_is_cached_and_gc_empties_the_cache() {
    let sb = Sandbox::new();
    let recipe = repo().join("recipes/hello.yaml");
    let first = run_ok(
        sb.strata()
            .args(["build", "--json", "-o"])
            .arg(sb.path("a"))
            .arg(&recipe),
    );
    let second = run_ok(
        sb.strata()
            .args(["build", "--json", "-o"])
            .arg(sb.path("b"))
            .arg(&recipe),
    );
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&stdout(&first)).expect("json"),
        serde_json::from_str(&stdout(&second)).expect("json"),
    );
    assert_eq!(a["manifest_digest"], b["manifest_digest"]);
    let sources = |v: &serde_json::Value| -> Vec<String> {
        v["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["source"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert!(
        sources(&a).iter().all(|s| s == "built"),
        "{:?}",
        sources(&a)
    );
    assert!(
        sources(&b).iter().all(|s| s == "cached"),
        "{:?}",
        sources(&b)
    );

    let ls = run_ok(sb.strata().args(["cache", "ls", "--json"]));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&ls)).expect("json");
    assert_eq!(rows.as_array().map(|r| r.len()), Some(3));
    run_ok(sb.strata().args(["cache", "gc"]));
    let ls = run_ok(sb.strata().args(["cache", "ls", "--json"]));
    assert_eq!(stdout(&ls).trim(), "[]");
}

#[test]
fn diff_names_the_changed_files() {
    let sb = Sandbox::new();
    let src = sb.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    copy_tree(&repo().join("recipes"), &src);
    let recipe = src.join("hello.yaml");
    sb.build(&recipe, &sb.path("a"), &[]);
    std::fs::write(src.join("hello/etc/motd"), "changed\n").expect("write");
    std::fs::write(src.join("hello/etc/issue"), "new\n").expect("write");
    sb.build(&recipe, &sb.path("b"), &[]);
    let o = run(sb
        .strata()
        .args(["diff", "--json"])
        .arg(sb.path("a"))
        .arg(sb.path("b")));
    assert_eq!(o.status.code(), Some(1));
    let d: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let layers = d["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "only the first layer differs: {d}");
    assert_eq!(layers[0]["changed"], serde_json::json!(["etc/motd"]));
    assert_eq!(layers[0]["added"], serde_json::json!(["etc/issue"]));
    let same = run(sb.strata().arg("diff").arg(sb.path("a")).arg(sb.path("a")));
    assert_eq!(same.status.code(), Some(0));
}

#[test]
fn a_layout_can_hold_several_tags_and_be_a_base() {
    let sb = Sandbox::new();
    let out = sb.path("layout");
    let hello = repo().join("recipes/hello.yaml");
    let d1 = sb.build(&hello, &out, &["--tag", "one"]);
    let d2 = sb.build(&hello, &out, &["--tag", "two"]);
    assert_eq!(d1, d2);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).expect("index"))
            .expect("json");
    assert_eq!(index["manifests"].as_array().map(|m| m.len()), Some(2));

    let dir = sb.path("derived");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("derived.yaml"),
        "name: derived\nbase: oci:../layout:two\nlayers:\n  - steps:\n      - file: {path: /etc/derived, content: \"yes\\n\"}\nconfig:\n  env: {EXTRA: \"1\"}\n",
    )
    .expect("recipe");
    sb.build(&dir.join("derived.yaml"), &sb.path("derived-out"), &[]);
    let o = run_ok(
        sb.strata()
            .args(["inspect", "--json"])
            .arg(sb.path("derived-out")),
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["layers"].as_array().map(|a| a.len()), Some(4));
    assert_eq!(v["config"]["Entrypoint"][0], "/usr/bin/hello");
    assert_eq!(
        v["config"]["Env"],
        serde_json::json!(["PATH=/usr/bin", "EXTRA=1"])
    );
    assert_eq!(
        v["annotations"]["org.opencontainers.image.base.digest"],
        d1.as_str()
    );
}

#[test]
fn zstd_layers_verify() {
    let sb = Sandbox::new();
    let out = sb.path("out");
    sb.build(
        &repo().join("recipes/hello.yaml"),
        &out,
        &["--compression", "zstd"],
    );
    let o = run_ok(sb.strata().args(["inspect", "--json"]).arg(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(
        v["layers"][0]["media_type"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let o = run_ok(sb.strata().arg("verify").arg(&out));
    assert!(stdout(&o).contains(", 0 problems"));
}

/// A tree of files whose mtimes are all one fixed time in the past, so that the stat
/// cache trusts them (a file modified in the last two seconds is always re-read).
struct AgedTree {
    dir: std::path::PathBuf,
}

const AGED: u64 = 1_000_000_000;

impl AgedTree {
    fn new(sb: &Sandbox) -> AgedTree {
        let dir = sb.path("src");
        std::fs::create_dir_all(dir.join("tree/sub/deeper")).expect("mkdir");
        std::fs::write(
            dir.join("recipe.yaml"),
            "name: aged\ntag: t\nlayers:\n  - name: tree\n    steps:\n      - copy: {src: tree/, dest: /opt/t/}\n",
        )
        .expect("write recipe");
        let t = AgedTree { dir };
        for (rel, text) in [
            ("a.txt", "alpha\n"),
            ("sub/b.txt", "bravo\n"),
            ("sub/deeper/c.txt", "charlie\n"),
            ("sub/deeper/d.txt", "delta\n"),
        ] {
            t.write(rel, text);
        }
        t
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.join("tree").join(rel)
    }

    /// Writes `rel` and sets its mtime to [`AGED`].
    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::write(&p, text).expect("write");
        Self::age(&p);
    }

    fn age(p: &Path) {
        let f = std::fs::File::options().write(true).open(p).expect("open");
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(AGED))
            .expect("set mtime");
    }

    fn recipe(&self) -> std::path::PathBuf {
        self.dir.join("recipe.yaml")
    }
}

/// The digest and the layer's `source` of a build of `tree` into `out`.
fn build_json(sb: &Sandbox, tree: &AgedTree, out: &Path) -> (String, String) {
    let o = run_ok(
        sb.strata()
            .args(["build", "--json", "-o"])
            .arg(out)
            .arg(tree.recipe()),
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    (
        v["digest"].as_str().expect("digest").to_string(),
        v["layers"][0]["source"]
            .as_str()
            .expect("source")
            .to_string(),
    )
}

/// The digest of the tree as it is now, built with an empty cache.
fn cold_digest(tree: &AgedTree) -> String {
    let fresh = Sandbox::new();
    build_json(&fresh, tree, &fresh.path("out")).0
}

#[test]
fn rebuild_with_the_stat_cache_sees_every_change() {
    let sb = Sandbox::new();
    let tree = AgedTree::new(&sb);
    let out = sb.path("out");
    let (first, source) = build_json(&sb, &tree, &out);
    assert_eq!(source, "built");
    // Nothing changed: the layer comes from the cache, the digest is the same.
    assert_eq!(
        build_json(&sb, &tree, &out),
        (first.clone(), "cached".into())
    );

    let mut before = first;
    let mut check = |what: &str, change: &dyn Fn()| {
        change();
        let (warm, source) = build_json(&sb, &tree, &out);
        assert_eq!(source, "built", "{what}: the layer must be rebuilt");
        assert_ne!(warm, before, "{what}: the image must change");
        assert_eq!(
            warm,
            cold_digest(&tree),
            "{what}: warm and cold builds differ"
        );
        before = warm;
    };
    // Same size, same mtime, same inode: only the ctime tells.
    check("content changed in place", &|| {
        tree.write("a.txt", "ALPHA\n")
    });
    // A new file (new inode) renamed over the old one, same size and mtime.
    check("file replaced by another", &|| {
        let tmp = tree.path("sub/.b.new");
        std::fs::write(&tmp, "BRAVO\n").expect("write");
        AgedTree::age(&tmp);
        std::fs::rename(&tmp, tree.path("sub/b.txt")).expect("rename");
    });
    check("file replaced by a symlink", &|| {
        let p = tree.path("sub/deeper/c.txt");
        std::fs::remove_file(&p).expect("rm");
        std::os::unix::fs::symlink("d.txt", &p).expect("symlink");
    });
    check("new file in a directory", &|| {
        tree.write("sub/deeper/e.txt", "echo\n")
    });
    check("file removed", &|| {
        std::fs::remove_file(tree.path("sub/deeper/d.txt")).expect("rm")
    });
    check("mode changed", &|| {
        use std::os::unix::fs::PermissionsExt;
        let p = tree.path("a.txt");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    });
}

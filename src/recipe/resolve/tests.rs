use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use super::*;
use crate::recipe::parse::load;

const SDE: u64 = 1_234_567;

/// A recipe directory: `files` are (relative path, contents, mode) written in that order.
fn recipe_dir(recipe: &str, files: &[(&str, &str, u32)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (path, contents, mode) in files {
        let p = tmp.path().join(path);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, contents).expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).expect("chmod");
    }
    fs::write(tmp.path().join("recipe.yaml"), recipe).expect("write recipe");
    tmp
}

fn resolve(tmp: &tempfile::TempDir) -> Result<Vec<Entry>, RecipeError> {
    let loaded = load(&tmp.path().join("recipe.yaml"))?;
    resolve_layer(&loaded, 0, &ReadDigester, SDE)
}

fn must(tmp: &tempfile::TempDir) -> Vec<Entry> {
    resolve(tmp).unwrap_or_else(|e| panic!("{e}"))
}

/// What the layer writer sees, without host paths: JSON of the entries (file contents
/// appear as digests).
fn fingerprint(entries: &[Entry]) -> String {
    serde_json::to_string_pretty(entries).expect("json")
}

fn summary(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let kind = match &e.kind {
                EntryKind::File { size, .. } => format!("file {size}"),
                EntryKind::Dir => "dir".into(),
                EntryKind::Symlink { target } => format!("symlink {target}"),
                EntryKind::Hardlink { target } => format!("hardlink {target}"),
                EntryKind::Whiteout => "whiteout".into(),
                EntryKind::OpaqueWhiteout => "opaque".into(),
            };
            format!(
                "{} {kind} {:o} {}:{} {}:{}",
                e.path, e.mode, e.uid, e.gid, e.uname, e.gname
            )
        })
        .collect()
}

const TREE_RECIPE: &str = "\
name: t
layers:
  - steps:
      - copy: {src: app, dest: /opt/app}
";

#[test]
fn copies_a_tree_with_source_modes_and_root_owner() {
    let tmp = recipe_dir(
        TREE_RECIPE,
        &[
            ("app/bin/run", "#!/bin/sh\n", 0o755),
            ("app/etc/conf", "x=1\n", 0o600),
            ("app/README", "hi\n", 0o644),
        ],
    );
    fs::set_permissions(
        tmp.path().join("app/etc"),
        fs::Permissions::from_mode(0o750),
    )
    .expect("chmod");
    fs::set_permissions(tmp.path().join("app"), fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::set_permissions(
        tmp.path().join("app/bin"),
        fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let got = must(&tmp);
    assert_eq!(
        summary(&got),
        [
            "opt dir 755 0:0 :",
            "opt/app dir 755 0:0 :",
            "opt/app/README file 3 644 0:0 :",
            "opt/app/bin dir 755 0:0 :",
            "opt/app/bin/run file 10 755 0:0 :",
            "opt/app/etc dir 755 0:0 :",
            "opt/app/etc/conf file 4 644 0:0 :",
        ]
    );
    assert!(got.iter().all(|e| e.mtime == SDE));
}

/// Two trees with the same contents and permission bits, but created in a different order,
/// through different modes (as different umasks would), with different mtimes: same entries.
#[test]
fn independent_of_creation_order_umask_and_mtimes() {
    let files = [
        ("app/a", "a", 0o644),
        ("app/sub/b", "bb", 0o755),
        ("app/sub/deeper/c", "ccc", 0o640),
    ];
    let one = recipe_dir(TREE_RECIPE, &files);
    let mut reversed = files;
    reversed.reverse();
    // Created restrictively first, then opened up: what a 077 umask plus chmod leaves.
    let restricted: Vec<(&str, &str, u32)> =
        reversed.iter().map(|(p, c, _)| (*p, *c, 0o600)).collect();
    let two = recipe_dir(TREE_RECIPE, &restricted);
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    for (path, _, mode) in files {
        let p = two.path().join(path);
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
        let f = fs::File::options().write(true).open(&p).expect("open");
        f.set_modified(old).expect("mtime");
    }
    for d in ["app", "app/sub", "app/sub/deeper"] {
        for t in [&one, &two] {
            fs::set_permissions(t.path().join(d), fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
    }
    assert_eq!(fingerprint(&must(&one)), fingerprint(&must(&two)));
}

/// Files are owned by whoever ran the build; entries are 0:0 without names unless the
/// recipe says otherwise, and then carry the recipe's ids and names.
#[test]
fn owners_come_from_the_recipe_not_the_files() {
    let recipe = "\
name: t
accounts:
  users: [{name: app, uid: 1000}]
layers:
  - steps:
      - copy: {src: f, dest: /a}
      - copy: {src: f, dest: /b, owner: app}
      - copy: {src: f, dest: /c, owner: \"7:8\", mode: \"0400\"}
";
    let tmp = recipe_dir(recipe, &[("f", "x", 0o664)]);
    assert_eq!(
        summary(&must(&tmp)),
        [
            "a file 1 644 0:0 :",
            "b file 1 644 1000:1000 app:app",
            "c file 1 400 7:8 :",
        ]
    );
}

#[test]
fn steps_file_dir_symlink_and_overrides() {
    let recipe = "\
name: t
layers:
  - steps:
      - file: {path: /etc/motd, content: old}
      - dir: {path: /var/lib/app, mode: \"0700\", owner: \"5\"}
      - symlink: {path: /usr/bin/sh, target: busybox}
      - file: {path: /etc/motd, content: \"new\\n\", mode: 0600}
";
    let tmp = recipe_dir(recipe, &[]);
    assert_eq!(
        summary(&must(&tmp)),
        [
            "etc dir 755 0:0 :",
            "etc/motd file 4 600 0:0 :",
            "usr dir 755 0:0 :",
            "usr/bin dir 755 0:0 :",
            "usr/bin/sh symlink busybox 777 0:0 :",
            "var dir 755 0:0 :",
            "var/lib dir 755 0:0 :",
            "var/lib/app dir 700 5:5 :",
        ]
    );
}

/// A file put where a directory above earlier entries was is replaced again by a later
/// entry below it, whatever level it is at (the walk up a path's ancestors is skipped only
/// for a path right below one whose ancestors are known to be directories).
#[test]
fn a_file_above_later_entries_becomes_a_directory_again() {
    for (at, kept) in [("/x", true), ("/x/y", false)] {
        let recipe = format!(
            "\
name: t
layers:
  - steps:
      - dir: {{path: /x/y}}
      - file: {{path: /x/y/f1, content: one}}
      - file: {{path: {at}, content: file}}
      - file: {{path: /x/y/f2, content: two}}
"
        );
        let tmp = recipe_dir(&recipe, &[]);
        let mut want = vec!["x dir 755 0:0 :", "x/y dir 755 0:0 :"];
        if kept {
            want.push("x/y/f1 file 3 644 0:0 :");
        }
        want.push("x/y/f2 file 3 644 0:0 :");
        assert_eq!(summary(&must(&tmp)), want, "file at {at}");
    }
}

#[test]
fn removals_become_whiteouts() {
    let recipe = "\
name: t
layers:
  - steps:
      - file: {path: /tmp/x/junk, content: j}
      - remove: {paths: [/tmp/x, /etc/gone]}
      - remove: {paths: [/var/cache], opaque: true}
      - remove: {paths: [/srv]}
      - file: {path: /srv/new, content: n}
";
    let tmp = recipe_dir(recipe, &[]);
    assert_eq!(
        summary(&must(&tmp)),
        [
            "etc dir 755 0:0 :",
            "etc/gone whiteout 0 0:0 :",
            "srv dir 755 0:0 :",
            // Removed and re-created in the same layer: a fresh directory.
            "srv opaque 0 0:0 :",
            "srv/new file 1 644 0:0 :",
            "tmp dir 755 0:0 :",
            "tmp/x whiteout 0 0:0 :",
            "var dir 755 0:0 :",
            "var/cache dir 755 0:0 :",
            "var/cache opaque 0 0:0 :",
        ]
    );
}

#[test]
fn globs_excludes_and_dir_modes() {
    let recipe = "\
name: t
layers:
  - steps:
      - copy: {src: \"conf/*.conf\", dest: /etc/app, mode: \"0640\"}
      - copy: {src: lib, dest: /usr/lib/, exclude: [\"*.pyc\", \"cache/**\", cache], dir_mode: \"0711\"}
";
    let tmp = recipe_dir(
        recipe,
        &[
            ("conf/a.conf", "a", 0o644),
            ("conf/b.conf", "b", 0o644),
            ("conf/skip.txt", "s", 0o644),
            ("lib/m.py", "m", 0o644),
            ("lib/m.pyc", "c", 0o644),
            ("lib/pkg/n.py", "n", 0o644),
            ("lib/pkg/n.pyc", "c", 0o644),
            ("lib/cache/x", "x", 0o644),
        ],
    );
    assert_eq!(
        summary(&must(&tmp)),
        [
            "etc dir 755 0:0 :",
            "etc/app dir 755 0:0 :",
            "etc/app/a.conf file 1 640 0:0 :",
            "etc/app/b.conf file 1 640 0:0 :",
            "usr dir 755 0:0 :",
            "usr/lib dir 711 0:0 :",
            "usr/lib/m.py file 1 644 0:0 :",
            "usr/lib/pkg dir 711 0:0 :",
            "usr/lib/pkg/n.py file 1 644 0:0 :",
        ]
    );
}

#[test]
fn single_file_into_a_directory() {
    let recipe = "\
name: t
layers:
  - steps:
      - copy: {src: bin/app, dest: /usr/local/bin/}
";
    let tmp = recipe_dir(recipe, &[("bin/app", "elf", 0o755)]);
    let got = must(&tmp);
    assert_eq!(
        summary(&got).last().map(String::as_str),
        Some("usr/local/bin/app file 3 755 0:0 :")
    );
}

#[test]
fn symlinks_in_trees_kept_or_refused() {
    let recipe = "\
name: t
layers:
  - steps:
      - copy:
          src: tree
          dest: /t
";
    let tmp = recipe_dir(
        recipe,
        &[("tree/real", "r", 0o644), ("other/x", "x", 0o644)],
    );
    fs::set_permissions(tmp.path().join("tree"), fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::symlink("real", tmp.path().join("tree/ok")).expect("symlink");
    std::os::unix::fs::symlink("../other/x", tmp.path().join("tree/sibling")).expect("symlink");
    let got = must(&tmp);
    assert!(summary(&got).contains(&"t/ok symlink real 777 0:0 :".to_string()));
    assert!(summary(&got).contains(&"t/sibling symlink ../other/x 777 0:0 :".to_string()));

    let cases = [("up", "../../etc/passwd"), ("abs", "/etc/passwd")];
    for (name, target) in cases {
        let link = tmp.path().join("tree").join(name);
        std::os::unix::fs::symlink(target, &link).expect("symlink");
        let err = resolve(&tmp).expect_err(name);
        assert_eq!((err.line, err.col), (5, 16), "{err}");
        assert!(err.message.contains(&format!("tree/{name}")), "{err}");
        assert!(err.hint.contains("symlink"), "{err}");
        fs::remove_file(&link).expect("rm");
    }
}

#[test]
fn shared_inodes_become_hardlinks_to_the_first_path() {
    let recipe = "\
name: t
layers:
  - steps:
      - copy: {src: d, dest: /d}
      - copy: {src: d/z, dest: /a/copy}
";
    let tmp = recipe_dir(recipe, &[("d/z", "data", 0o644)]);
    fs::set_permissions(tmp.path().join("d"), fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::hard_link(tmp.path().join("d/z"), tmp.path().join("d/m")).expect("link");
    assert_eq!(
        summary(&must(&tmp)),
        [
            "a dir 755 0:0 :",
            "a/copy file 4 644 0:0 :",
            "d dir 755 0:0 :",
            "d/m hardlink a/copy 644 0:0 :",
            "d/z hardlink a/copy 644 0:0 :",
        ]
    );
}

/// Resolution never reads file bytes itself: digests come from the digester.
#[test]
fn digests_come_from_the_digester() {
    struct Fake(AtomicUsize);
    impl FileDigester for Fake {
        fn sha256(&self, _path: &Path, _meta: &Metadata) -> io::Result<String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok("f".repeat(64))
        }
    }
    let tmp = recipe_dir(TREE_RECIPE, &[("app/a", "a", 0o644), ("app/b", "b", 0o644)]);
    let loaded = load(&tmp.path().join("recipe.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let fake = Fake(AtomicUsize::new(0));
    let got = resolve_layer(&loaded, 0, &fake, SDE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fake.0.load(Ordering::SeqCst), 2);
    for e in got {
        if let EntryKind::File { content, .. } = e.kind {
            assert_eq!(content.sha256(), "f".repeat(64));
        }
    }
}

enum Packing {
    Plain,
    Gzip,
    Zstd,
}

/// A tarball with a directory, a file, a symlink and a hard link, plus optional raw
/// members whose names are written byte for byte (to smuggle in `..`).
fn tarball(packing: Packing, raw: &[&str]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(42);
        h.set_gid(43);
        h.set_mtime(999);
        h.set_size(data.len() as u64);
        if let Some(l) = link {
            h.set_link_name(l).expect("link");
        }
        h.set_cksum();
        b.append(&h, data).expect("append");
    };
    add("./", tar::EntryType::Directory, 0o755, b"", None);
    add("./bin/", tar::EntryType::Directory, 0o700, b"", None);
    add("./bin/tool", tar::EntryType::Regular, 0o4755, b"tool", None);
    add(
        "./bin/alias",
        tar::EntryType::Symlink,
        0o777,
        b"",
        Some("tool"),
    );
    add(
        "./bin/again",
        tar::EntryType::Link,
        0o4755,
        b"",
        Some("./bin/tool"),
    );
    for r in raw {
        add(r, tar::EntryType::Regular, 0o644, b"x", None);
    }
    let plain = b.into_inner().expect("tar");
    match packing {
        Packing::Plain => plain,
        Packing::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            io::Write::write_all(&mut gz, &plain).expect("gzip");
            gz.finish().expect("gzip")
        }
        Packing::Zstd => zstd::encode_all(plain.as_slice(), 1).expect("zstd"),
    }
}

#[test]
fn tarballs_plain_gzip_zstd() {
    let recipe = "\
name: t
layers:
  - steps:
      - tar: {src: root.tar, dest: /opt}
      - tar: {src: root.tar, dest: /kept, keep_owners: true}
";
    for packing in [Packing::Plain, Packing::Gzip, Packing::Zstd] {
        let tmp = recipe_dir(recipe, &[]);
        fs::write(tmp.path().join("root.tar"), tarball(packing, &[])).expect("write");
        let got = must(&tmp);
        assert_eq!(
            summary(&got),
            [
                "kept dir 755 0:0 :",
                "kept/bin dir 700 42:43 :",
                "kept/bin/again hardlink kept/bin/tool 4755 42:43 :",
                "kept/bin/alias symlink tool 777 42:43 :",
                "kept/bin/tool file 4 4755 42:43 :",
                "opt dir 755 0:0 :",
                "opt/bin dir 700 0:0 :",
                "opt/bin/again hardlink opt/bin/tool 4755 0:0 :",
                "opt/bin/alias symlink tool 777 0:0 :",
                "opt/bin/tool file 4 4755 0:0 :",
            ]
        );
        assert!(got.iter().all(|e| e.mtime == SDE));
    }
}

#[test]
fn tarball_members_may_not_escape() {
    let recipe = "\
name: t
layers:
  - steps:
      - tar: {src: evil.tar, dest: /opt}
";
    for raw in ["../escape", "./a/../../b"] {
        let tmp = recipe_dir(recipe, &[]);
        fs::write(tmp.path().join("evil.tar"), tarball(Packing::Gzip, &[raw])).expect("write");
        let err = resolve(&tmp).expect_err(raw);
        assert_eq!((err.line, err.col), (4, 20), "{err}");
        assert!(err.message.contains("contains `..`"), "{err}");
    }
}

/// The example recipes users copy must load and resolve.
#[test]
fn example_recipes_resolve() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let Ok(read) = fs::read_dir(&dir) else {
        return;
    };
    let mut seen = 0;
    for item in read.flatten() {
        let path = item.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let loaded = load(&path).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..loaded.recipe.layers.len() {
            // `debian` and `python` steps come from their locks and the cache; the build
            // tests and the lab tests cover those layers.
            if loaded.recipe.layers[i].steps.iter().any(|s| {
                matches!(
                    s,
                    crate::recipe::Step::Debian(_) | crate::recipe::Step::Python(_)
                )
            }) {
                continue;
            }
            let entries =
                resolve_layer(&loaded, i, &ReadDigester, SDE).unwrap_or_else(|e| panic!("{e}"));
            assert!(!entries.is_empty(), "{}: layer {i}", path.display());
        }
        seen += 1;
    }
    assert!(seen > 0 || !dir.exists());
}

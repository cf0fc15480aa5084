//! The determinism contract: the same recipe gives the same manifest digest whatever the
//! umask, file creation order, source times, source owners, recipe location, TZ, locale
//! and cache state. Each test changes one of these and compares against the pinned digest.

use std::fs;
use std::path::Path;

use crate::*;

fn hello_digest(sb: &Sandbox, recipes: &Path) -> String {
    sb.build(&recipes.join("hello.yaml"), &sb.path("out"), &[])
}

/// The digest of recipes/hello.yaml built straight from the repository.
fn reference() -> String {
    let sb = Sandbox::new();
    hello_digest(&sb, &repo().join("recipes"))
}

/// Lists the files of the hello tree, relative, sorted.
fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walk(root) {
        out.push(
            e.strip_prefix(root)
                .expect("prefix")
                .to_string_lossy()
                .into_owned(),
        );
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn example_digests_are_pinned() {
    // A change here changes every user's image digest: review it as such.
    insta::assert_snapshot!("hello_manifest_digest", reference());
}

#[test]
fn warm_and_cold_cache_agree() {
    let sb = Sandbox::new();
    let cold = hello_digest(&sb, &repo().join("recipes"));
    let warm = hello_digest(&sb, &repo().join("recipes"));
    assert_eq!(cold, warm);
    assert_eq!(cold, reference());
}

#[test]
fn umask_of_checkout_and_of_build_do_not_matter() {
    let sb = Sandbox::new();
    let tree = sb.path("tree");
    // Recreate the sources the way a checkout under umask 077 would: 0600/0700 files.
    let script = format!(
        "umask 077 && mkdir -p {t} && cp -r --no-preserve=mode {r}/. {t}/ && chmod u+x {t}/hello/hello",
        t = tree.display(),
        r = repo().join("recipes").display()
    );
    run_ok(Command::new("sh").arg("-c").arg(script));
    let m = fs::metadata(tree.join("hello/etc/motd")).expect("meta");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777,
        0o600
    );
    let out = sb.path("out");
    let o = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask 0 && exec {} build {} -o {}",
                env!("CARGO_BIN_EXE_strata"),
                tree.join("hello.yaml").display(),
                out.display()
            ))
            .env("STRATA_CACHE", sb.cache()),
    );
    assert_eq!(stdout(&o).trim(), reference());
}

#[test]
fn creation_order_times_and_owners_do_not_matter() {
    let sb = Sandbox::new();
    let src = repo().join("recipes");
    let tree = sb.path("tree");
    // Files written in reverse order, with scattered mtimes and a foreign owner.
    let mut names = files(&src);
    names.reverse();
    for (i, rel) in names.iter().enumerate() {
        let to = tree.join(rel);
        fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        fs::copy(src.join(rel), &to).expect("copy");
        let when = format!("@{}", 1_000_000_000 + i as u64 * 7_777_777);
        run_ok(Command::new("touch").arg("-d").arg(&when).arg(&to));
    }
    run_ok(Command::new("chown").arg("-R").arg("4321:8765").arg(&tree));
    run_ok(
        Command::new("touch")
            .arg("-d")
            .arg("@1234")
            .arg(tree.join("hello")),
    );
    assert_eq!(hello_digest(&sb, &tree), reference());
}

#[test]
fn location_tz_and_locale_do_not_matter() {
    let sb = Sandbox::new();
    let deep = sb.path("some/other/place with spaces");
    fs::create_dir_all(&deep).expect("mkdir");
    copy_tree(&repo().join("recipes"), &deep);
    let o = run_ok(
        sb.strata()
            .current_dir(sb.path("some"))
            .env("TZ", "Pacific/Kiritimati")
            .env("LC_ALL", "C")
            .env("LANG", "tr_TR.UTF-8")
            .arg("build")
            .arg("other/place with spaces/hello.yaml")
            .arg("-o")
            .arg(sb.path("out")),
    );
    assert_eq!(stdout(&o).trim(), reference());
}

#[test]
fn source_date_epoch_is_an_input() {
    // The control: the one input that must change the digest does.
    let sb = Sandbox::new();
    let o = run_ok(
        sb.strata()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .arg("build")
            .arg(repo().join("recipes/hello.yaml"))
            .arg("-o")
            .arg(sb.path("out")),
    );
    assert_ne!(stdout(&o).trim(), reference());
    let o = run_ok(sb.strata().args(["inspect", "--json"]).arg(sb.path("out")));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["created"], "2023-11-14T22:13:20Z");
}

#[test]
fn archives_are_reproducible() {
    for format in ["oci-archive", "docker-archive"] {
        let a = Sandbox::new();
        let b = Sandbox::new();
        let (pa, pb) = (a.path("img.tar"), b.path("img.tar"));
        a.build(
            &repo().join("recipes/hello.yaml"),
            &pa,
            &["--format", format],
        );
        b.build(
            &repo().join("recipes/hello.yaml"),
            &pb,
            &["--format", format],
        );
        assert_eq!(
            fs::read(&pa).expect("a"),
            fs::read(&pb).expect("b"),
            "{format} differs between two builds"
        );
    }
}

//! The lab's `apt.packages` against the signed fixture repository served on 127.0.0.1: locked
//! per suite beside the lab file, fetched into the cache, written as a flat apt repository,
//! and that repository read back by independent tools: `dpkg-deb` and `dpkg-scanpackages`
//! (the control paragraphs and checksums), and apt itself, run against temp directories only
//! (its own sources, state, cache and dpkg status; the host's apt setup is not touched),
//! reading the repository over HTTP through the very source line the minions get.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata::debian::lock::DebianLock as Lockfile;
use strata::debian::{parse_paragraphs, IndexOptions};
use strata::lab::apt;
use strata::lockfile::LockPolicy;
use strata::store::Store;

use crate::debian::{fixture_repo, keyring, FixtureServer};
use crate::*;

const MINION: &str = "\
name: fixture-minion
layers:
  - steps:
      - debian:
          suite: fixture
          packages: [base-sh]
          essential: true
";

/// A lab directory `lab/t` whose minions run the fixture suite, asking for `packages`.
fn lab(sb: &Sandbox, packages: &str) -> strata::lab::spec::Lab {
    fs::write(sb.path("minion.yaml"), MINION).expect("recipe");
    let dir = sb.path("lab/t");
    fs::create_dir_all(dir.join("salt")).expect("mkdir");
    fs::create_dir_all(dir.join("pillar")).expect("mkdir");
    fs::write(
        dir.join("lab.yaml"),
        format!(
            "images:\n  minion: ../../minion.yaml\nmaster: {{image: minion}}\nminions:\n  - {{id: \"m{{n}}\", count: 2, image: minion}}\napt:\n  packages: {packages}\n"
        ),
    )
    .expect("lab");
    strata::lab::spec::load(&dir).expect("lab loads")
}

fn index(server: &FixtureServer) -> IndexOptions {
    IndexOptions {
        mirror: Some(server.url()),
        keyring: Some(keyring()),
        etc_apt: PathBuf::from("/nonexistent"),
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
        ..IndexOptions::default()
    }
}

fn names(lock: &Lockfile) -> Vec<&str> {
    lock.packages.iter().map(|p| p.name.as_str()).collect()
}

/// Locks `[hello-app]` and writes its repository under `out`; returns the lock.
fn locked_repo(
    sb: &Sandbox,
    server: &FixtureServer,
    out: &Path,
) -> (strata::lab::spec::Lab, Lockfile, apt::FlatRepo) {
    let lab = lab(sb, "[hello-app]");
    let store = Store::open(&sb.cache()).expect("store");
    let http = strata::debian::fetch::HttpFetcher::new();
    let locks = apt::lock_lab(&lab, &index(server), &store, &http).expect("lock");
    let lock = locks[0].lock.clone();
    let repo =
        apt::write_flat_repo(&lock, out, &store, false, &index(server), &http).expect("repo");
    (lab, lock, repo)
}

#[test]
fn lab_packages_are_locked_fetched_and_served_as_a_flat_repository() {
    let sb = Sandbox::new();
    let server = FixtureServer::start(&fixture_repo(), BTreeMap::new());
    let lab = lab(&sb, "[hello-app]");
    let store = Store::open(&sb.cache()).expect("store");
    let http = strata::debian::fetch::HttpFetcher::new();
    let opts = index(&server);

    // Locking: one suite, the lock beside the lab file, the recipe lock format.
    let locks = apt::lock_lab(&lab, &opts, &store, &http).expect("lock");
    assert_eq!(locks.len(), 1);
    let l = &locks[0];
    assert!(l.changed);
    assert_eq!(l.suite.suite, "fixture");
    assert_eq!(l.suite.images, ["minion"]);
    let path = sb.path("lab/t/apt-fixture.lock");
    assert_eq!(l.suite.lock_path, path.canonicalize().expect("lock exists"));
    let text = fs::read_to_string(&path).expect("lock");
    assert!(text.starts_with("# Written by `strata lock`"), "{text}");
    assert_eq!(
        strata::lockfile::Lockfile::parse("lock", &text)
            .expect("parses")
            .debian,
        vec![l.lock.clone()]
    );
    // hello-app and its dependencies, base-sh through Pre-Depends; no Essential set
    // (data-files is only `Priority: required`, which the minion image already has).
    assert_eq!(
        names(&l.lock),
        [
            "base-sh",
            "config-basic",
            "hello-app",
            "libcycle-a",
            "libcycle-b",
            "libgreet",
            "python-ish"
        ]
    );
    assert!(!text.contains("127.0.0.1"), "the lock names no mirror");
    assert!(
        server.requests().iter().all(|p| p.starts_with("/dists/")),
        "{:?}",
        server.requests()
    );

    // Locking again: same bytes, reported unchanged.
    let again = apt::lock_lab(&lab, &opts, &store, &http).expect("relock");
    assert!(!again[0].changed);
    assert_eq!(fs::read_to_string(&path).expect("lock"), text);

    // `lab up --locked`: the fresh lock is used without reading any index.
    let before = server.requests().len();
    let policy = LockPolicy {
        locked: true,
        offline: false,
    };
    let ensured = apt::ensure_lab_locks(&lab, policy, &opts, &store, &http).expect("ensure");
    assert_eq!(ensured[0].lock, l.lock);
    assert!(!ensured[0].changed);
    assert_eq!(server.requests().len(), before);

    // Offline with an empty cache: every missing .deb is named, nothing is written.
    let out = sb.path("apt");
    let e = apt::write_flat_repo(&l.lock, &out, &store, true, &opts, &http)
        .expect_err("offline")
        .to_string();
    assert!(
        e.contains("offline: 7 .deb file(s)") && e.contains("hello-app_1.0-1_amd64.deb"),
        "{e}"
    );
    assert!(!out.exists());

    // Online: each .deb fetched once from the pool, verified into the cache.
    let repo = apt::write_flat_repo(&l.lock, &out, &store, false, &opts, &http).expect("repo");
    let fetched: Vec<String> = server.requests()[before..].to_vec();
    assert_eq!(fetched.len(), 7, "{fetched:?}");
    assert!(fetched.iter().all(|p| p.starts_with("/pool/main/")));
    assert!(repo.written);
    assert_eq!((repo.packages, repo.fetched), (7, 7));
    assert_eq!(repo.dir, out.join("fixture"));

    // Every .deb is the locked one, and its Packages entry says so.
    let packages = fs::read_to_string(repo.dir.join("Packages")).expect("Packages");
    let paras = parse_paragraphs(&packages).expect("deb822");
    assert_eq!(paras.len(), 7);
    for (p, want) in paras.iter().zip(&l.lock.packages) {
        let file = repo.dir.join(apt::deb_file_name(want));
        let bytes = fs::read(&file).expect("deb in the repository");
        assert_eq!(strata::digest::sha256_hex(&bytes), want.sha256);
        assert_eq!(bytes.len() as u64, want.size);
        assert_eq!(p.get("Package"), Some(want.name.as_str()));
        assert_eq!(p.get("Version"), Some(want.version.as_str()));
        assert_eq!(p.get("Architecture"), Some(want.arch.as_str()));
        assert_eq!(p.get("Filename"), Some(apt::deb_file_name(want)));
        assert_eq!(p.get("SHA256"), Some(want.sha256.as_str()));
        assert_eq!(p.get("Size"), Some(want.size.to_string().as_str()));
    }
    let release = fs::read_to_string(repo.dir.join("Release")).expect("Release");
    assert!(release.contains(&format!(
        " {} {} Packages\n",
        strata::digest::sha256_hex(packages.as_bytes()),
        packages.len()
    )));
    assert!(release.contains("Date: Sat, 01 Jan 2000 00:00:00 UTC\n"));

    // Once more from the same lock: nothing fetched, nothing rewritten.
    let n = server.requests().len();
    let same = apt::write_flat_repo(&l.lock, &out, &store, false, &opts, &http).expect("same");
    assert!(!same.written);
    assert_eq!(server.requests().len(), n);
}

/// The field set of a deb822 paragraph, `Filename` without a leading `./`.
fn fields(p: &strata::debian::Paragraph) -> BTreeMap<String, String> {
    p.fields()
        .map(|(k, v)| {
            let v = if k == "Filename" {
                v.trim_start_matches("./")
            } else {
                v
            };
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn dpkg_tools_read_the_same_packages_index() {
    for tool in ["dpkg-scanpackages", "dpkg-deb"] {
        if !require(tool) {
            return;
        }
    }
    let sb = Sandbox::new();
    let server = FixtureServer::start(&fixture_repo(), BTreeMap::new());
    let (_, lock, repo) = locked_repo(&sb, &server, &sb.path("apt"));

    // dpkg-scanpackages over the repository directory: the same paragraphs (it also
    // writes MD5sum and SHA1, which strata leaves out).
    let o = run_ok(
        Command::new("dpkg-scanpackages")
            .arg("-m")
            .arg(".")
            .arg("/dev/null")
            .current_dir(&repo.dir),
    );
    let theirs = parse_paragraphs(&stdout(&o)).expect("scanpackages output");
    let ours = parse_paragraphs(&fs::read_to_string(repo.dir.join("Packages")).expect("Packages"))
        .expect("Packages");
    assert_eq!(theirs.len(), lock.packages.len(), "{}", stderr(&o));
    let by_name: BTreeMap<&str, &strata::debian::Paragraph> = theirs
        .iter()
        .map(|p| (p.get("Package").unwrap_or(""), p))
        .collect();
    for p in &ours {
        let name = p.get("Package").expect("Package");
        let mut t = fields(by_name[name]);
        t.remove("MD5sum");
        t.remove("SHA1");
        assert_eq!(fields(p), t, "{name}");
    }

    // dpkg-deb's own reading of each control file gives the same fields.
    for (p, want) in ours.iter().zip(&lock.packages) {
        let o = run_ok(
            Command::new("dpkg-deb")
                .arg("-f")
                .arg(repo.dir.join(apt::deb_file_name(want))),
        );
        let control = parse_paragraphs(&stdout(&o)).expect("control");
        for (k, v) in control[0].fields() {
            assert_eq!(p.get(k), Some(v), "{} {k}", want.name);
        }
    }
}

/// Runs apt with everything it writes or reads for sources in `root`: its own sources
/// list, no parts directories, its own state, cache and empty dpkg status, no locking.
fn apt_cmd(tool: &str, root: &Path) -> Command {
    let mut c = Command::new(tool);
    for (k, v) in [
        ("Dir::Etc::sourcelist", root.join("sources.list")),
        ("Dir::Etc::sourceparts", root.join("empty")),
        ("Dir::Etc::preferences", root.join("preferences")),
        ("Dir::Etc::preferencesparts", root.join("empty")),
        ("Dir::State", root.join("state")),
        ("Dir::State::status", root.join("status")),
        ("Dir::Cache", root.join("cache")),
        ("Dir::Log", root.join("log")),
    ] {
        c.arg("-o").arg(format!("{k}={}", v.display()));
    }
    c.args([
        "-o",
        "Debug::NoLocking=1",
        "-o",
        "APT::Architecture=amd64",
        "-o",
        "APT::Architectures=amd64",
        "-o",
        "APT::Sandbox::User=root",
        "-o",
        "Acquire::Languages=none",
    ])
    .env("LC_ALL", "C")
    .current_dir(root);
    c
}

#[test]
fn apt_reads_the_repository_over_http_through_the_minions_source_line() {
    for tool in ["apt-get", "apt-cache"] {
        if !require(tool) {
            return;
        }
    }
    let sb = Sandbox::new();
    let mirror = FixtureServer::start(&fixture_repo(), BTreeMap::new());
    let out = sb.path("apt");
    let (_, lock, repo) = locked_repo(&sb, &mirror, &out);
    drop(mirror);
    // The lab's server: a plain static file server over `out`.
    let lab_server = FixtureServer::start(&out, BTreeMap::new());
    let host = lab_server.url().trim_start_matches("http://").to_string();

    let root = sb.path("aptroot");
    for d in [
        "empty",
        "state/lists/partial",
        "cache/archives/partial",
        "log",
        "dl",
    ] {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    fs::write(root.join("status"), "").expect("status");
    fs::write(root.join("preferences"), "").expect("preferences");
    fs::write(
        root.join("sources.list"),
        format!("{}\n", apt::sources_list(&lock.suite, &host)),
    )
    .expect("sources");

    let o = run_ok(apt_cmd("apt-get", &root).arg("update"));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    // apt has nothing to complain about: no W: (warning) or E: (error) line.
    assert!(
        !all.lines()
            .any(|l| l.starts_with("W:") || l.starts_with("E:")),
        "{all}"
    );
    assert!(
        lab_server
            .requests()
            .iter()
            .any(|r| r.ends_with("/fixture/Packages") || r.ends_with("/fixture/./Packages")),
        "{:?}",
        lab_server.requests()
    );

    // The candidate is the locked version, from this repository.
    let o = run_ok(apt_cmd("apt-cache", &root).args(["policy", "hello-app"]));
    let policy = stdout(&o);
    assert!(policy.contains("Candidate: 1.0-1"), "{policy}");
    assert!(
        policy.contains(&format!("{}/fixture", lab_server.url())),
        "{policy}"
    );

    // apt's own resolver, from an empty system, installs exactly the locked closure.
    let o = run_ok(apt_cmd("apt-get", &root).args(["-s", "install", "hello-app"]));
    let inst: BTreeSet<String> = stdout(&o)
        .lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let locked: BTreeSet<String> = lock.packages.iter().map(|p| p.name.clone()).collect();
    assert_eq!(inst, locked, "{}", stdout(&o));

    // And it downloads a .deb, checking it against the SHA256 of Packages.
    let o = run_ok(
        apt_cmd("apt-get", &root)
            .args(["download", "libgreet"])
            .current_dir(root.join("dl")),
    );
    let got = fs::read(root.join("dl/libgreet_1.2-1_amd64.deb"))
        .unwrap_or_else(|e| panic!("downloaded: {e}\n{}", stderr(&o)));
    let want = lock
        .packages
        .iter()
        .find(|p| p.name == "libgreet")
        .expect("locked");
    assert_eq!(strata::digest::sha256_hex(&got), want.sha256);
    assert!(repo.written);
}

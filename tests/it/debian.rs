//! Debian indices, resolution, lockfile and fetching against the checked-in signed fixture
//! repository (fixtures/debian/repo, made by fixtures/debian/make-repo.sh), served over HTTP
//! on 127.0.0.1 by a server each test starts and stops. The hostile fixtures are served in
//! place of the good files and must be refused with a clear error, leaving nothing behind.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::*;

pub(crate) fn fixture_repo() -> PathBuf {
    repo().join("fixtures/debian/repo")
}

pub(crate) fn keyring() -> PathBuf {
    fixture_repo().join("keyring.gpg")
}

/// A static file server on 127.0.0.1: files under `root`, with `overrides` (URL path →
/// bytes) served instead. Stopped and joined on drop.
pub(crate) struct FixtureServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FixtureServer {
    pub(crate) fn start(root: &Path, overrides: BTreeMap<String, Vec<u8>>) -> FixtureServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (root, st, reqs) = (root.to_path_buf(), stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                serve_one(conn, &root, &overrides, &reqs);
            }
        });
        FixtureServer {
            port,
            stop,
            thread: Some(thread),
            requests,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(
    conn: TcpStream,
    root: &Path,
    overrides: &BTreeMap<String, Vec<u8>>,
    reqs: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // Skip the headers.
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    if let Ok(mut r) = reqs.lock() {
        r.push(path.clone());
    }
    let body = overrides.get(&path).cloned().or_else(|| {
        let rel = path.trim_start_matches('/');
        if rel.split('/').any(|c| c == "..") {
            return None;
        }
        fs::read(root.join(rel))
            .ok()
            .filter(|_| root.join(rel).is_file())
    });
    let mut conn = conn;
    let _ = match body {
        Some(b) => conn
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    b.len()
                )
                .as_bytes(),
            )
            .and_then(|_| conn.write_all(&b)),
        None => conn
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
}

const RECIPE: &str = "\
name: deb-fixture
layers:
  - name: packages
    steps:
      - debian:
          suite: fixture
          packages: [hello-app]
          essential: true
";

/// Writes the recipe into the sandbox; returns its path.
fn recipe(sb: &Sandbox, text: &str) -> PathBuf {
    let p = sb.path("recipe.yaml");
    fs::write(&p, text).expect("write recipe");
    p
}

fn lock_cmd(sb: &Sandbox, recipe: &Path, server: &FixtureServer) -> std::process::Command {
    let mut c = sb.strata();
    c.arg("lock")
        .arg(recipe)
        .arg("--mirror")
        .arg(server.url())
        .arg("--keyring")
        .arg(keyring());
    c
}

fn locked_names(lock: &str) -> Vec<String> {
    lock.lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .map(|l| l.trim_end_matches('"').to_string())
        .collect()
}

fn blobs(sb: &Sandbox) -> Vec<String> {
    let dir = sb.cache().join("blobs/sha256");
    let mut v: Vec<String> = fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn lock_resolves_the_fixture_repository() {
    let sb = Sandbox::new();
    let server = FixtureServer::start(&fixture_repo(), BTreeMap::new());
    let r = recipe(&sb, RECIPE);
    let o = run_ok(&mut lock_cmd(&sb, &r, &server));
    assert!(stderr(&o).contains("wrote"), "{}", stderr(&o));
    let lock_path = sb.path("recipe.lock");
    let lock = fs::read_to_string(&lock_path).expect("lock written");
    // Depends, the alternative's second branch through a versioned Provides, `:any`, a
    // Pre-Depends on an Essential package, a cycle, the newest libgreet, Priority: required.
    assert_eq!(
        locked_names(&lock),
        [
            "base-sh",
            "config-basic",
            "data-files",
            "hello-app",
            "libcycle-a",
            "libcycle-b",
            "libgreet",
            "python-ish"
        ]
    );
    assert!(lock.contains("version = \"1.2-1\""), "{lock}");
    assert!(lock.contains("source = \"data-src\""), "{lock}");
    assert!(
        lock.contains("path = \"main/binary-amd64/Packages.xz\""),
        "{lock}"
    );
    assert!(
        !lock.contains("127.0.0.1"),
        "the lock names no mirror:\n{lock}"
    );
    // Only the index was fetched, no .deb.
    assert!(
        server.requests().iter().all(|p| p.starts_with("/dists/")),
        "{:?}",
        server.requests()
    );

    // Same inputs, same bytes; the cached Packages.xz is not downloaded again.
    let before = server.requests().len();
    let o = run_ok(&mut lock_cmd(&sb, &r, &server));
    assert!(stderr(&o).contains("unchanged"), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(&lock_path).expect("lock"), lock);
    let again: Vec<String> = server.requests()[before..].to_vec();
    assert_eq!(again, ["/dists/fixture/InRelease"]);

    // A second cache directory gives the same lock bytes.
    let sb2 = Sandbox::new();
    let r2 = recipe(&sb2, RECIPE);
    run_ok(&mut lock_cmd(&sb2, &r2, &server));
    assert_eq!(
        fs::read_to_string(sb2.path("recipe.lock")).expect("lock"),
        lock
    );
}

#[test]
fn build_fetches_from_the_lock_and_offline_names_missing_debs() {
    let sb = Sandbox::new();
    let server = FixtureServer::start(&fixture_repo(), BTreeMap::new());
    let r = recipe(&sb, RECIPE);
    run_ok(&mut lock_cmd(&sb, &r, &server));
    let out = sb.path("out");

    // Offline with an empty cache: every missing .deb is named.
    let o = run(sb
        .strata()
        .arg("build")
        .arg(&r)
        .arg("-o")
        .arg(&out)
        .arg("--offline"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("offline: 8 .deb file(s) the lock needs are not in the cache"),
        "{e}"
    );
    assert!(
        e.contains("hello-app_1.0-1_amd64.deb") && e.contains("pool/main/libcycle-b_1.0_amd64.deb"),
        "{e}"
    );
    assert!(e.contains("hint:"), "{e}");
    assert!(!out.exists());

    // Online, from the lock: no index is read, each .deb is fetched once into the cache.
    let before = server.requests().len();
    let o = run(sb
        .strata()
        .arg("build")
        .arg(&r)
        .arg("-o")
        .arg(&out)
        .arg("--locked")
        .arg("--mirror")
        .arg(server.url()));
    let fetched: Vec<String> = server.requests()[before..].to_vec();
    assert_eq!(fetched.len(), 8, "{fetched:?}");
    assert!(
        fetched.iter().all(|p| p.starts_with("/pool/main/")),
        "{fetched:?}"
    );
    // Every .deb is verified into the cache and extracted into the image, which verifies.
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = run(sb.strata().arg("verify").arg(&out));
    assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
    let lock = fs::read_to_string(sb.path("recipe.lock")).expect("lock");
    let pkg_shas: Vec<&str> = lock
        .split("[[package]]")
        .skip(1)
        .filter_map(|s| s.lines().find_map(|l| l.strip_prefix("sha256 = \"")))
        .map(|s| s.trim_end_matches('"'))
        .collect();
    assert_eq!(pkg_shas.len(), 8);
    let have = blobs(&sb);
    for s in &pkg_shas {
        assert!(have.contains(&s.to_string()), "{s} not in the cache");
    }

    // Offline now finds everything: no request at all, and the same image.
    drop(server);
    let o = run(sb
        .strata()
        .arg("build")
        .arg(&r)
        .arg("-o")
        .arg(&out)
        .arg("--offline"));
    assert!(!stderr(&o).contains("offline:"), "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn locked_refuses_a_stale_or_missing_lock() {
    let sb = Sandbox::new();
    let server = FixtureServer::start(&fixture_repo(), BTreeMap::new());
    let r = recipe(&sb, RECIPE);
    let out = sb.path("out");
    let o = run(sb
        .strata()
        .arg("build")
        .arg(&r)
        .arg("-o")
        .arg(&out)
        .arg("--locked"));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("recipe.lock: no lockfile, and --locked forbids"),
        "{}",
        stderr(&o)
    );
    run_ok(&mut lock_cmd(&sb, &r, &server));
    let lock = fs::read_to_string(sb.path("recipe.lock")).expect("lock");
    // The recipe changes: the lock is stale.
    let r = recipe(
        &sb,
        &RECIPE.replace("[hello-app]", "[hello-app, never-needed]"),
    );
    let o = run(sb
        .strata()
        .arg("build")
        .arg(&r)
        .arg("-o")
        .arg(&out)
        .arg("--locked")
        .arg("--mirror")
        .arg(server.url()));
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("recipe.lock: the lock is stale") && e.contains("strata lock"),
        "{e}"
    );
    assert_eq!(
        fs::read_to_string(sb.path("recipe.lock")).expect("lock"),
        lock,
        "untouched"
    );
    // And it cannot be satisfied: the error names the chain.
    let o = run(&mut lock_cmd(&sb, &r, &server));
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("cannot satisfy `does-not-exist`"), "{e}");
    assert!(
        e.contains("needed by: never-needed 1.0 (amd64) <- the recipe's packages (never-needed)"),
        "{e}"
    );
    assert_eq!(
        fs::read_to_string(sb.path("recipe.lock")).expect("lock"),
        lock,
        "untouched"
    );

    // Without --locked a stale lock is re-resolved and rewritten before the build goes on.
    let r = recipe(
        &sb,
        &RECIPE.replace(
            "essential: true",
            "essential: true\n          exclude: [data-files]",
        ),
    );
    let o = run(sb
        .strata()
        .arg("build")
        .arg(&r)
        .arg("-o")
        .arg(&out)
        .arg("--mirror")
        .arg(server.url())
        .arg("--keyring")
        .arg(keyring()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let relocked = fs::read_to_string(sb.path("recipe.lock")).expect("lock");
    assert_ne!(relocked, lock);
    assert!(!locked_names(&relocked).contains(&"data-files".to_string()));
    // --offline never resolves: a stale lock is an error there too.
    let r = recipe(&sb, RECIPE);
    let o = run(sb
        .strata()
        .arg("build")
        .arg(&r)
        .arg("-o")
        .arg(&out)
        .arg("--offline"));
    assert!(stderr(&o).contains("the lock is stale"), "{}", stderr(&o));
}

/// The `[base]` table of a lock, if any.
fn base_table(lock: &str) -> Option<String> {
    let start = lock.find("[base]\n")?;
    let rest = &lock[start..];
    let end = rest.find("\n\n").map_or(rest.len(), |i| i + 2);
    Some(rest[..end].to_string())
}

#[test]
fn lock_holds_a_registry_base_beside_the_packages() {
    let reg = crate::registry::Registry::start(&[]);
    let server = FixtureServer::start(&fixture_repo(), BTreeMap::new());
    let sb = Sandbox::new();
    let hello = sb.build(&repo().join("recipes/hello.yaml"), &sb.path("hello"), &[]);
    let repo_name = format!("bases/deb-{}", std::process::id());
    for tag in ["t", "u"] {
        run_ok(
            sb.strata()
                .arg("push")
                .arg(sb.path("hello"))
                .arg(format!("{}/{repo_name}:{tag}", reg.host())),
        );
    }
    let with_base = |tag: &str, packages: &str| {
        RECIPE
            .replace(
                "name: deb-fixture\n",
                &format!(
                    "name: deb-fixture\nbase: registry://{}/{repo_name}:{tag}\n",
                    reg.host()
                ),
            )
            .replace("[hello-app]", packages)
    };
    let r = recipe(&sb, &with_base("t", "[hello-app]"));
    run_ok(&mut lock_cmd(&sb, &r, &server));
    let lock_path = sb.path("recipe.lock");
    let lock = fs::read_to_string(&lock_path).expect("lock");
    let base = base_table(&lock).expect("a [base] table");
    assert_eq!(
        base,
        format!(
            "[base]\nreference = \"registry://{}/{repo_name}:t\"\ndigest = \"{hello}\"\n\n",
            reg.host()
        )
    );
    assert_eq!(locked_names(&lock).len(), 8, "{lock}");
    assert!(
        lock.find("architecture = ") < lock.find("[base]")
            && lock.find("[base]") < lock.find("[index]"),
        "{lock}"
    );
    // Both parts fresh: --locked builds.
    let build = |extra: &[&str]| {
        let o = run(sb
            .strata()
            .arg("build")
            .arg(&r)
            .arg("-o")
            .arg(sb.path("out"))
            .arg("--mirror")
            .arg(server.url())
            .arg("--keyring")
            .arg(keyring())
            .args(extra));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    };
    build(&["--locked"]);
    assert_eq!(fs::read_to_string(&lock_path).expect("lock"), lock);

    // The base changes: the build pins the new tag and leaves the debian part alone.
    fs::write(&r, with_base("u", "[hello-app]")).expect("recipe");
    build(&[]);
    let relocked = fs::read_to_string(&lock_path).expect("lock");
    let new_base = base_table(&relocked).expect("a [base] table");
    assert!(new_base.contains(&format!("{repo_name}:u\"")), "{new_base}");
    assert_eq!(relocked.replace(&new_base, ""), lock.replace(&base, ""));

    // The packages change: the debian part is resolved again and the base pin kept.
    fs::write(&r, with_base("u", "[hello-app, data-files]")).expect("recipe");
    let o = run(sb
        .strata()
        .arg("build")
        .arg(&r)
        .arg("-o")
        .arg(sb.path("out"))
        .arg("--locked"));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("the lock is stale"), "{}", stderr(&o));
    build(&[]);
    let third = fs::read_to_string(&lock_path).expect("lock");
    assert_eq!(base_table(&third), Some(new_base));
    assert_ne!(third, relocked);
}

/// Serves the good repository with one file replaced; `strata lock` (or the build's fetch)
/// must fail naming `want`, write no lock, and keep the hostile bytes out of the cache.
fn refused(url_path: &str, hostile: &str, want: &[&str]) {
    let sb = Sandbox::new();
    let bytes = fs::read(fixture_repo().join("hostile").join(hostile)).expect("hostile fixture");
    let bad_digest = strata::digest::sha256_digest(&bytes);
    let server = FixtureServer::start(
        &fixture_repo(),
        BTreeMap::from([(url_path.to_string(), bytes)]),
    );
    let r = recipe(&sb, RECIPE);
    let o = run(&mut lock_cmd(&sb, &r, &server));
    assert_eq!(o.status.code(), Some(2), "{hostile}: {}", stderr(&o));
    let e = stderr(&o);
    for w in want {
        assert!(e.contains(w), "{hostile}: expected {w:?} in:\n{e}");
    }
    assert!(
        !sb.path("recipe.lock").exists(),
        "{hostile}: no lock may be written"
    );
    assert!(
        !blobs(&sb).contains(&bad_digest[7..].to_string()),
        "{hostile}: stored"
    );
    let tmp = sb.cache().join("tmp");
    assert_eq!(
        fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0),
        0,
        "temp files left"
    );
}

#[test]
fn hostile_indices_are_refused() {
    refused(
        "/dists/fixture/InRelease",
        "InRelease.bad-signature",
        &[
            "/dists/fixture/InRelease: BAD SIGNATURE",
            "keyring.gpg",
            "hint:",
        ],
    );
    refused(
        "/dists/fixture/InRelease",
        "InRelease.unknown-key",
        &["BAD SIGNATURE: no signature verifies against any of the 1 key(s)"],
    );
    refused(
        "/dists/fixture/InRelease",
        "InRelease.expired",
        &["expired: Valid-Until Sun, 02 Jan 2000 00:00:00 UTC is in the past"],
    );
    refused(
        "/dists/fixture/main/binary-amd64/Packages.xz",
        "Packages.xz.wrong-hash",
        &[
            "/dists/fixture/main/binary-amd64/Packages.xz:",
            "the signed index says",
            "nothing was stored",
        ],
    );
}

#[test]
fn a_tampered_deb_is_refused() {
    let sb = Sandbox::new();
    let good = FixtureServer::start(&fixture_repo(), BTreeMap::new());
    let r = recipe(&sb, RECIPE);
    run_ok(&mut lock_cmd(&sb, &r, &good));
    drop(good);
    let path = "/pool/main/libcycle-b_1.0_amd64.deb";
    let bytes = fs::read(fixture_repo().join("hostile/libcycle-b_1.0_amd64.deb.tampered"))
        .expect("fixture");
    let bad = strata::digest::sha256_digest(&bytes);
    let server = FixtureServer::start(&fixture_repo(), BTreeMap::from([(path.to_string(), bytes)]));
    let o = run(sb
        .strata()
        .arg("build")
        .arg(&r)
        .arg("-o")
        .arg(sb.path("out"))
        .arg("--mirror")
        .arg(server.url()));
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("libcycle-b 1.0 (amd64):") && e.contains("sha256 mismatch"),
        "{e}"
    );
    assert!(!blobs(&sb).contains(&bad[7..].to_string()));
}

#[test]
fn bad_debian_steps_point_at_the_place() {
    let sb = Sandbox::new();
    let cases = [
        ("name: x\nlayers:\n  - steps:\n      - debian: {suite: fixture, packages: ['a (>> )']}\n", "4:45", "bad package entry `a (>> )`"),
        ("name: x\nlayers:\n  - steps:\n      - debian: {suite: fixture}\n", "4:", "installs nothing"),
        ("name: x\nlayers:\n  - steps:\n      - debian: {suite: fixture, packages: [a], layering: {budget: 0}}\n", "4:", "budget of 0"),
        ("name: x\nlayers:\n  - steps:\n      - debian: {suite: fixture, packages: [a]}\n      - dir: {path: /x}\n", "4:", "and other steps"),
        ("name: x\nlayers:\n  - steps:\n      - debian: {suite: fixture, packages: [a], exclude: ['b (>= 1)']}\n", "4:", "not a package name"),
    ];
    for (text, pos, msg) in cases {
        let r = recipe(&sb, text);
        let o = run(sb.strata().arg("lock").arg(&r));
        assert_eq!(o.status.code(), Some(2), "{text}");
        let e = stderr(&o);
        assert!(
            e.contains(&format!("recipe.yaml:{pos}")) && e.contains(msg),
            "{text}\n{e}"
        );
    }
    // A recipe without a debian step has nothing to lock.
    let r = recipe(
        &sb,
        "name: x\nlayers:\n  - steps:\n      - dir: {path: /x}\n",
    );
    let o = run(sb.strata().arg("lock").arg(&r));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no `debian` or `python` step"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn make_repo_script_still_makes_a_verifiable_repository() {
    for tool in ["dpkg-deb", "dpkg-scanpackages", "gpg", "xz"] {
        if !require(tool) {
            return;
        }
    }
    let sb = Sandbox::new();
    let out = sb.path("repo");
    run_ok(
        std::process::Command::new("bash")
            .arg(repo().join("fixtures/debian/make-repo.sh"))
            .arg(&out),
    );
    // Same packages, same pool bytes as the checked-in copy (dpkg-deb is deterministic
    // with SOURCE_DATE_EPOCH); the key and signatures are new each run.
    for deb in fs::read_dir(fixture_repo().join("pool/main"))
        .expect("pool")
        .flatten()
    {
        let made = fs::read(out.join("pool/main").join(deb.file_name())).expect("made deb");
        assert_eq!(
            made,
            fs::read(deb.path()).expect("deb"),
            "{:?}",
            deb.file_name()
        );
    }
    let server = FixtureServer::start(&out, BTreeMap::new());
    let r = recipe(&sb, RECIPE);
    let o = run_ok(
        sb.strata()
            .arg("lock")
            .arg(&r)
            .arg("--mirror")
            .arg(server.url())
            .arg("--keyring")
            .arg(out.join("keyring.gpg")),
    );
    assert!(stderr(&o).contains("(8 packages)"), "{}", stderr(&o));
    // The checked-in repository's key does not verify the new one.
    let sb2 = Sandbox::new();
    let r2 = recipe(&sb2, RECIPE);
    let o = run(&mut lock_cmd(&sb2, &r2, &server));
    assert!(stderr(&o).contains("BAD SIGNATURE"), "{}", stderr(&o));
}

/// OPT-IN, uses the network: resolves python3 against the real Debian mirror from the host's
/// apt sources (or STRATA_DEBIAN_MIRROR) with the host's Debian archive keyring. Run with
/// `cargo test --release --test integration -- --ignored real_mirror`.
#[test]
#[ignore = "opt-in: uses the real Debian mirror from the host's apt sources"]
fn real_mirror_locks_python3() {
    let sb = Sandbox::new();
    let r = recipe(
        &sb,
        "name: py\nlayers:\n  - steps:\n      - debian: {suite: bookworm, packages: [python3]}\n",
    );
    let o = run_ok(sb.strata().arg("lock").arg(&r));
    let lock = fs::read_to_string(sb.path("recipe.lock")).expect("lock");
    let names = locked_names(&lock);
    for want in [
        "python3",
        "python3.11",
        "libc6",
        "libpython3.11-stdlib",
        "libssl3",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}\n{}",
            stderr(&o)
        );
    }
    // Stable bytes on a second run.
    run_ok(sb.strata().arg("lock").arg(&r));
    assert_eq!(
        fs::read_to_string(sb.path("recipe.lock")).expect("lock"),
        lock
    );
}

/// Every member path of every layer of the single image in an OCI layout, bottom first.
fn layout_paths(layout: &Path) -> Vec<Vec<String>> {
    let json = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&fs::read(&p).expect("read")).expect("json")
    };
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index = json(layout.join("index.json"));
    let manifest = json(blob(
        index["manifests"][0]["digest"].as_str().expect("digest"),
    ));
    let mut out = Vec::new();
    for l in manifest["layers"].as_array().expect("layers") {
        let f = fs::File::open(blob(l["digest"].as_str().expect("digest"))).expect("blob");
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
        let paths = ar
            .entries()
            .expect("tar")
            .map(|e| {
                let e = e.expect("entry");
                let p = e.path().expect("path").to_string_lossy().into_owned();
                p.trim_end_matches('/').to_string()
            })
            .collect();
        out.push(paths);
    }
    out
}

#[test]
fn packages_are_extracted_through_symlinks_of_the_base_and_earlier_layers() {
    let sb = Sandbox::new();
    let server = FixtureServer::start(&fixture_repo(), BTreeMap::new());
    // A link below the package's files, as merged /usr has `bin -> usr/bin`.
    let link = "      - symlink: {path: /usr/share/doc, target: ../doc}\n";
    let debian =
        "  - name: packages\n    steps:\n      - debian: {suite: fixture, packages: [hello-app]}\n";
    fs::write(
        sb.path("base.yaml"),
        format!("name: base\nlayers:\n  - name: links\n    steps:\n{link}"),
    )
    .expect("write");
    run_ok(
        sb.strata()
            .args(["build", "-o"])
            .arg(sb.path("base"))
            .arg(sb.path("base.yaml")),
    );
    let on_base = recipe(
        &sb,
        &format!("name: on-base\nbase: oci:base\nlayers:\n{debian}"),
    );
    fs::write(
        sb.path("layered.yaml"),
        format!("name: layered\nlayers:\n  - name: links\n    steps:\n{link}{debian}"),
    )
    .expect("write");
    for (r, out) in [
        (on_base, sb.path("out-base")),
        (sb.path("layered.yaml"), sb.path("out-layered")),
    ] {
        run_ok(&mut lock_cmd(&sb, &r, &server));
        run_ok(
            sb.strata()
                .arg("build")
                .arg(&r)
                .arg("-o")
                .arg(&out)
                .arg("--locked")
                .arg("--mirror")
                .arg(server.url()),
        );
        let layers = layout_paths(&out);
        assert!(
            layers[0].contains(&"usr/share/doc".to_string()),
            "{:?}",
            layers[0]
        );
        let above: Vec<&String> = layers[1..].iter().flatten().collect();
        assert!(
            above.iter().any(|p| *p == "usr/doc/hello-app/README"),
            "{above:?}"
        );
        // Nothing replaces the link with a directory or writes below it.
        assert!(
            !above.iter().any(|p| p.starts_with("usr/share/doc")),
            "{above:?}"
        );
        let v = run(sb.strata().arg("verify").arg(&out));
        assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
    }
}

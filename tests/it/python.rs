//! The python step end to end: a loopback package index (PEP 691 JSON) serving the fixture
//! wheels and sdist of fixtures/python, `strata lock` (real HTTP, real `pip wheel` for the
//! sdist), `strata build` on the hello image, and umoci reading the result.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::*;

/// A package index on 127.0.0.1 serving fixtures/python; stopped on drop.
struct LoopbackIndex {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn fixture_dir() -> PathBuf {
    repo().join("fixtures/python")
}

fn project_of(file: &str) -> Option<String> {
    let stem = file
        .strip_suffix(".whl")
        .or_else(|| file.strip_suffix(".tar.gz"))?;
    Some(stem.split('-').next()?.to_lowercase())
}

fn page(project: &str) -> Option<String> {
    let mut files = Vec::new();
    let mut names: Vec<String> = fs::read_dir(fixture_dir())
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for f in names {
        if project_of(&f).as_deref() != Some(project) {
            continue;
        }
        let bytes = fs::read(fixture_dir().join(&f)).ok()?;
        files.push(serde_json::json!({
            "filename": f,
            // Relative, as real indexes often answer.
            "url": format!("../../files/{f}"),
            "hashes": {"sha256": strata::digest::sha256_hex(&bytes)},
            "size": bytes.len(),
            "requires-python": ">=3.8",
        }));
    }
    if files.is_empty() {
        return None;
    }
    Some(
        serde_json::json!({"meta": {"api-version": "1.1"}, "name": project, "files": files})
            .to_string(),
    )
}

fn answer(mut s: TcpStream) {
    let mut line = String::new();
    let mut r = BufReader::new(match s.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    if r.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        match r.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (status, ctype, body) = if let Some(p) = path
        .strip_prefix("/simple/")
        .and_then(|p| p.strip_suffix('/'))
    {
        match page(p) {
            Some(b) => (
                "200 OK",
                "application/vnd.pypi.simple.v1+json",
                b.into_bytes(),
            ),
            None => ("404 Not Found", "text/plain", b"no such project".to_vec()),
        }
    } else if let Some(f) = path.strip_prefix("/files/") {
        match fs::read(fixture_dir().join(f)) {
            Ok(b) if !f.contains('/') => ("200 OK", "application/octet-stream", b),
            _ => ("404 Not Found", "text/plain", b"no such file".to_vec()),
        }
    } else {
        ("404 Not Found", "text/plain", b"not here".to_vec())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(&body);
}

impl LoopbackIndex {
    fn start() -> LoopbackIndex {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(s) = conn {
                    answer(s);
                }
            }
        });
        LoopbackIndex {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/simple", self.port)
    }
}

impl Drop for LoopbackIndex {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The hello image built into `sb/base`, for recipes in `sb` to build on.
fn hello_base(sb: &Sandbox) {
    sb.build(&repo().join("recipes/hello.yaml"), &sb.path("base"), &[]);
}

fn recipe(sb: &Sandbox, name: &str, reqs: &str) -> PathBuf {
    let p = sb.path(&format!("{name}.yaml"));
    fs::write(
        &p,
        format!(
            "name: {name}\nbase: oci:base\nlayers:\n  - name: python\n    steps:\n      - python:\n          python: \"3.11\"\n          platform: manylinux_2_36_x86_64\n          target: /usr/lib/python3/dist-packages\n          requirements: [{reqs}]\n"
        ),
    )
    .expect("write recipe");
    p
}

#[test]
fn lock_fetch_build_and_unpack() {
    if !require("umoci") || !require("python3") {
        return;
    }
    let index = LoopbackIndex::start();
    let sb = Sandbox::new();
    hello_base(&sb);
    let r = recipe(&sb, "pyapp", "alpha==1.0, zeta==1.0");

    // No lock yet: the build says what to run.
    let o = run(sb
        .strata()
        .arg("build")
        .arg(&r)
        .arg("-o")
        .arg(sb.path("out")));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("no lock file") && err.contains("hint: run `strata lock"),
        "{err}"
    );

    // Lock: alpha's closure from wheels, zeta built from its sdist by pip.
    let o = run_ok(
        sb.strata()
            .arg("lock")
            .arg(&r)
            .args(["--index-url", &index.url()]),
    );
    assert!(
        stdout(&o).contains("resolved: 3 packages"),
        "{}",
        stdout(&o)
    );
    let lock_path = sb.path("pyapp.python.lock");
    let lock_text = fs::read_to_string(&lock_path).expect("lock written");
    let lock: serde_json::Value = serde_json::from_str(&lock_text).expect("lock json");
    let names: Vec<String> = lock["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["name"].as_str().unwrap_or(""),
                p["version"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(names, ["alpha 1.0", "beta 1.0", "zeta 1.0"]);
    let zeta = &lock["packages"][2];
    assert_eq!(zeta["built_from"]["filename"], "zeta-1.0.tar.gz");
    assert!(zeta.get("url").is_none());
    let beta = fs::read(fixture_dir().join("beta-1.0-py3-none-any.whl")).expect("beta");
    assert_eq!(
        lock["packages"][1]["sha256"].as_str(),
        Some(strata::digest::sha256_hex(&beta).as_str())
    );

    // Locking again keeps the lock byte for byte and fetches nothing.
    let o = run_ok(
        sb.strata()
            .arg("lock")
            .arg(&r)
            .args(["--index-url", &index.url()]),
    );
    assert!(
        stdout(&o).contains("current: 3 packages, 0 fetched"),
        "{}",
        stdout(&o)
    );
    assert_eq!(fs::read_to_string(&lock_path).expect("lock"), lock_text);

    // Build from the cache, twice: same digest.
    let out = sb.path("out");
    let d1 = sb.build(&r, &out, &[]);
    let d2 = sb.build(&r, &sb.path("out2"), &[]);
    assert_eq!(d1, d2);

    let bundle = sb.path("bundle");
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:latest", out.display()))
            .arg(&bundle),
    );
    let root = bundle.join("rootfs");
    let site = root.join("usr/lib/python3/dist-packages");
    // The base is still there.
    assert!(root.join("usr/bin/hello").is_file());
    let launcher = fs::read_to_string(root.join("usr/bin/alpha")).expect("launcher");
    assert!(
        launcher.starts_with("#!/usr/bin/python3\n")
            && launcher.contains("from alpha.cli import main")
    );
    let mode = fs::metadata(root.join("usr/bin/alpha"))
        .expect("alpha")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
    assert_eq!(
        fs::read_to_string(root.join("usr/bin/alpha-tool")).expect("script"),
        "#!/usr/bin/python3\nprint('tool')\n"
    );
    assert!(root.join("usr/share/alpha/readme.txt").is_file());
    assert!(root.join("usr/include/python3.11/alpha/alpha.h").is_file());
    assert!(site.join("alpha_extra.py").is_file());
    assert_eq!(
        fs::read_to_string(site.join("zeta/__init__.py")).expect("zeta"),
        "ANSWER = 42\n"
    );
    assert_eq!(
        fs::read_to_string(site.join("beta-1.0.dist-info/INSTALLER")).expect("installer"),
        "strata\n"
    );
    let record = fs::read_to_string(site.join("alpha-1.0.dist-info/RECORD")).expect("record");
    assert!(record.contains("../../../bin/alpha,sha256="), "{record}");
    assert!(!site.join("gamma.py").exists() && !site.join("epsilon.py").exists());
    // No byte code is compiled at build time.
    assert!(!site.join("alpha/__pycache__").exists());

    // An empty cache: the build does not download, it names the missing wheel.
    let o = run(sb
        .strata()
        .env("STRATA_CACHE", sb.path("other-cache"))
        .arg("build")
        .arg(&r)
        .arg("-o")
        .arg(sb.path("out3")));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("wheel alpha-1.0-py3-none-any.whl")
            && err.contains("not in the cache")
            && err.contains("strata lock"),
        "{err}"
    );
    assert!(!sb.path("out3").exists());

    // `strata lock` with a current lock fills that cache: downloads alpha and beta,
    // rebuilds zeta from its sdist (byte-identical, or it fails), and the build matches.
    let o = run_ok(
        sb.strata()
            .env("STRATA_CACHE", sb.path("other-cache"))
            .arg("lock")
            .arg(&r)
            .args(["--index-url", &index.url()]),
    );
    assert!(
        stdout(&o).contains("current: 3 packages, 3 fetched"),
        "{}",
        stdout(&o)
    );
    let o = run_ok(
        sb.strata()
            .env("STRATA_CACHE", sb.path("other-cache"))
            .arg("build")
            .arg(&r)
            .arg("-o")
            .arg(sb.path("out5")),
    );
    assert_eq!(stdout(&o).trim(), d1);

    // A lock whose sha256 the index's bytes do not match: nothing enters the cache.
    let beta_sha = strata::digest::sha256_hex(&beta);
    fs::write(&lock_path, lock_text.replace(&beta_sha, &"0".repeat(64))).expect("edit lock");
    let o = run(sb
        .strata()
        .env("STRATA_CACHE", sb.path("third-cache"))
        .arg("lock")
        .arg(&r)
        .args(["--index-url", &index.url()]));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("beta-1.0-py3-none-any.whl") && err.contains("not stored"),
        "{err}"
    );
    let blob = sb.path(&format!("third-cache/blobs/sha256/{}", "0".repeat(64)));
    assert!(!blob.exists());
    fs::write(&lock_path, &lock_text).expect("restore lock");

    // A changed requirement makes the lock stale.
    let r2 = recipe(&sb, "pyapp", "alpha==1.0");
    let o = run(sb
        .strata()
        .arg("build")
        .arg(&r2)
        .arg("-o")
        .arg(sb.path("out4")));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("out of date"), "{}", stderr(&o));
}

#[test]
fn hostile_wheel_is_refused_by_name() {
    let index = LoopbackIndex::start();
    let sb = Sandbox::new();
    hello_base(&sb);
    let r = recipe(&sb, "evilapp", "evil==1.0");
    run_ok(
        sb.strata()
            .arg("lock")
            .arg(&r)
            .args(["--index-url", &index.url()]),
    );
    let o = run(sb
        .strata()
        .arg("build")
        .arg(&r)
        .arg("-o")
        .arg(sb.path("out")));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("evil-1.0-py3-none-any.whl") && err.contains("../../etc/evil"),
        "{err}"
    );
    assert!(!sb.path("out").exists());
}

#[test]
fn lock_without_an_index_says_how_to_configure_one() {
    let sb = Sandbox::new();
    hello_base(&sb);
    let r = recipe(&sb, "noindex", "alpha==1.0");
    let o = run(sb
        .strata()
        .env_remove("STRATA_PYTHON_INDEX")
        .env_remove("PIP_INDEX_URL")
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("HOME", sb.path("home"))
        .env("XDG_CONFIG_HOME", sb.path("home/.config"))
        .arg("lock")
        .arg(&r));
    assert!(!o.status.success());
    let err = stderr(&o);
    // PIP_CONFIG_FILE=/dev/null makes pip (and strata) read no configuration file.
    assert!(
        err.contains("no Python package index is configured") && err.contains("--index-url"),
        "{err}"
    );
}

/// Opt-in: locks and builds real Salt against the configured index (STRATA_PYTHON_INDEX,
/// PIP_INDEX_URL or pip's config). Needs network access to that index and python3 with
/// pip. Run: `STRATA_PYTHON_INDEX=URL cargo test --release --test integration -- --ignored real_index`
#[test]
#[ignore = "opt-in: needs the network and a configured package index"]
fn real_index_locks_salt() {
    let sb = Sandbox::new();
    let r = sb.path("salt.yaml");
    fs::write(
        &r,
        "name: salt\nlayers:\n  - name: salt\n    steps:\n      - python:\n          python: \"3.11\"\n          platform: manylinux_2_36_x86_64\n          target: /usr/lib/python3/dist-packages\n          requirements: [salt==3008.4]\n",
    )
    .expect("write");
    run_ok(sb.strata().arg("lock").arg(&r));
    let lock: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(sb.path("salt.python.lock")).expect("lock"))
            .expect("json");
    let pkgs = lock["packages"].as_array().expect("packages");
    let salt = pkgs
        .iter()
        .find(|p| p["name"] == "salt")
        .expect("salt locked");
    assert_eq!(salt["version"], "3008.4");
    for dep in ["pyyaml", "jinja2", "msgpack", "pyzmq"] {
        assert!(
            pkgs.iter().any(|p| p["name"] == dep),
            "{dep} missing from the lock"
        );
    }
    for p in pkgs {
        assert_eq!(p["sha256"].as_str().map(str::len), Some(64), "{p}");
    }
    let out = sb.path("out");
    sb.build(&r, &out, &[]);
    let info = run_ok(sb.strata().arg("inspect").arg(&out));
    assert!(stdout(&info).contains("layers:"));
}

#[test]
fn lock_errors_point_at_the_step() {
    let index = LoopbackIndex::start();
    let sb = Sandbox::new();
    hello_base(&sb);
    let cases = [
        ("alpha==9.9", "no release of `alpha` matches `==9.9`", ""),
        (
            "beta==2.0, alpha==1.0",
            "alpha requires `beta>=1.0,<2`",
            "hint: pin a version of beta",
        ),
        ("nosuch==1.0", "project `nosuch` is not on the index", ""),
    ];
    for (reqs, message, hint) in cases {
        let r = recipe(&sb, "bad", reqs);
        let o = run(sb
            .strata()
            .arg("lock")
            .arg(&r)
            .args(["--index-url", &index.url()]));
        assert!(!o.status.success(), "{reqs}");
        let err = stderr(&o);
        assert!(
            err.contains("bad.yaml:7:11: cannot lock: ")
                && err.contains(message)
                && err.contains(hint),
            "{reqs}: {err}"
        );
        assert!(
            !sb.path("bad.python.lock").exists(),
            "{reqs}: no lock on failure"
        );
    }
}

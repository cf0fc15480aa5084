//! The python step end to end: a loopback package index (PEP 691 JSON) serving the fixture
//! wheels and sdist of fixtures/python, `strata lock` (real HTTP, real `pip wheel` for the
//! sdist), `strata build` on the hello image, and umoci reading the result.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::*;

/// What a loopback index serves.
#[derive(Clone)]
struct Serve {
    /// The path project pages link files under (`/DIR/FILENAME`).
    files_dir: &'static str,
    /// Files served with one byte changed; the pages list their true size and sha256.
    tampered: Vec<&'static str>,
    /// Files left off the project pages.
    hidden: Vec<&'static str>,
}

impl Default for Serve {
    fn default() -> Serve {
        Serve {
            files_dir: "files",
            tampered: Vec::new(),
            hidden: Vec::new(),
        }
    }
}

/// A package index on 127.0.0.1 serving fixtures/python; records the paths it was asked
/// for; stopped on drop.
struct LoopbackIndex {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
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

fn page(serve: &Serve, project: &str) -> Option<String> {
    let mut files = Vec::new();
    let mut known = false;
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
        // A hidden file's project still has its (shorter) page.
        known = true;
        if serve.hidden.contains(&f.as_str()) {
            continue;
        }
        let bytes = fs::read(fixture_dir().join(&f)).ok()?;
        files.push(serde_json::json!({
            "filename": f,
            // Relative, as real indexes often answer.
            "url": format!("../../{}/{f}", serve.files_dir),
            "hashes": {"sha256": strata::digest::sha256_hex(&bytes)},
            "size": bytes.len(),
            "requires-python": ">=3.8",
        }));
    }
    if !known {
        return None;
    }
    Some(
        serde_json::json!({"meta": {"api-version": "1.1"}, "name": project, "files": files})
            .to_string(),
    )
}

fn answer(serve: &Serve, requests: &Mutex<Vec<String>>, mut s: TcpStream) {
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
    if let Ok(mut log) = requests.lock() {
        log.push(path.clone());
    }
    let files_prefix = format!("/{}/", serve.files_dir);
    let (status, ctype, body) = if let Some(p) = path
        .strip_prefix("/simple/")
        .and_then(|p| p.strip_suffix('/'))
    {
        match page(serve, p) {
            Some(b) => (
                "200 OK",
                "application/vnd.pypi.simple.v1+json",
                b.into_bytes(),
            ),
            None => ("404 Not Found", "text/plain", b"no such project".to_vec()),
        }
    } else if let Some(f) = path.strip_prefix(&files_prefix) {
        match fs::read(fixture_dir().join(f)) {
            Ok(mut b) if !f.contains('/') => {
                if serve.tampered.contains(&f) {
                    let mid = b.len() / 2;
                    b[mid] ^= 0xff;
                }
                ("200 OK", "application/octet-stream", b)
            }
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
        LoopbackIndex::serving(Serve::default())
    }

    fn serving(serve: Serve) -> LoopbackIndex {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let flag = stop.clone();
        let log = requests.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(s) = conn {
                    answer(&serve, &log, s);
                }
            }
        });
        LoopbackIndex {
            port,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/simple", self.port)
    }

    /// The paths asked for so far, in order.
    fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
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
    let sdist = fs::read(fixture_dir().join("zeta-1.0.tar.gz")).expect("zeta sdist");
    assert_eq!(
        zeta["built_from"]["size"].as_u64(),
        Some(sdist.len() as u64)
    );
    // Files are named, not located: no URL, no host, anywhere in the lock.
    assert_eq!(lock["version"], 2);
    assert!(
        !lock_text.contains("url") && !lock_text.contains("127.0.0.1"),
        "{lock_text}"
    );
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

    // `strata lock` with a current lock fills that cache through another index: a mirror
    // whose pages link the files under another path, with the first index gone. Each
    // file is found by name on its project's page: alpha and beta downloaded, zeta
    // rebuilt from its sdist (byte-identical, or it fails); the build matches.
    let first = index.url();
    drop(index);
    let mirror = LoopbackIndex::serving(Serve {
        files_dir: "pool/main",
        ..Serve::default()
    });
    assert_ne!(mirror.url(), first);
    let o = run_ok(
        sb.strata()
            .env("STRATA_CACHE", sb.path("other-cache"))
            .arg("lock")
            .arg(&r)
            .args(["--index-url", &mirror.url()]),
    );
    assert!(
        stdout(&o).contains("current: 3 packages, 3 fetched"),
        "{}",
        stdout(&o)
    );
    let asked = mirror.requests();
    for (page, file) in [
        ("alpha", "alpha-1.0-py3-none-any.whl"),
        ("beta", "beta-1.0-py3-none-any.whl"),
        ("zeta", "zeta-1.0.tar.gz"),
    ] {
        let p = asked.iter().position(|a| *a == format!("/simple/{page}/"));
        let f = asked
            .iter()
            .position(|a| *a == format!("/pool/main/{file}"));
        assert!(
            matches!((p, f), (Some(p), Some(f)) if p < f),
            "{page}: {asked:?}"
        );
    }
    assert!(
        !asked
            .iter()
            .any(|a| a.contains("zeta-1.0-py3-none-any.whl")),
        "{asked:?}"
    );
    assert_eq!(fs::read_to_string(&lock_path).expect("lock"), lock_text);
    let o = run_ok(
        sb.strata()
            .env("STRATA_CACHE", sb.path("other-cache"))
            .arg("build")
            .arg(&r)
            .arg("-o")
            .arg(sb.path("out5")),
    );
    assert_eq!(stdout(&o).trim(), d1);

    // A lock whose sha256 is not the one the index lists: refused before downloading.
    let beta_sha = strata::digest::sha256_hex(&beta);
    fs::write(&lock_path, lock_text.replace(&beta_sha, &"0".repeat(64))).expect("edit lock");
    let o = run(sb
        .strata()
        .env("STRATA_CACHE", sb.path("third-cache"))
        .arg("lock")
        .arg(&r)
        .args(["--index-url", &mirror.url()]));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("pyapp.python.lock: package beta 1.0: ")
            && err.contains(&format!(
                "lists beta-1.0-py3-none-any.whl with sha256 {beta_sha}"
            ))
            && err.contains("nothing downloaded"),
        "{err}"
    );
    let blob = sb.path(&format!("third-cache/blobs/sha256/{}", "0".repeat(64)));
    assert!(!blob.exists());
    fs::write(&lock_path, &lock_text).expect("restore lock");

    // An index that serves other bytes under the listed name and hash: the downloaded
    // file is checked against the lock and refused; nothing of it enters the cache.
    let tampering = LoopbackIndex::serving(Serve {
        tampered: vec!["beta-1.0-py3-none-any.whl"],
        ..Serve::default()
    });
    let o = run(sb
        .strata()
        .env("STRATA_CACHE", sb.path("fourth-cache"))
        .arg("lock")
        .arg(&r)
        .args(["--index-url", &tampering.url()]));
    assert!(!o.status.success());
    let err = stderr(&o);
    let mut bad = beta.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    let bad_sha = strata::digest::sha256_hex(&bad);
    assert!(
        err.contains(
            "pyapp.python.lock: package beta 1.0: beta-1.0-py3-none-any.whl from the index"
        ) && err.contains(&format!(
            "has sha256 {bad_sha}, the lock says {beta_sha} (not stored)"
        )),
        "{err}"
    );
    assert!(tampering
        .requests()
        .contains(&"/files/beta-1.0-py3-none-any.whl".to_string()));
    for sha in [&beta_sha, &bad_sha] {
        assert!(!sb
            .path(&format!("fourth-cache/blobs/sha256/{sha}"))
            .exists());
    }
    assert_eq!(fs::read_to_string(&lock_path).expect("lock"), lock_text);

    // An index that no longer lists a locked file: the error names the lock, the
    // package, the file and the index, and says how to re-lock.
    let partial = LoopbackIndex::serving(Serve {
        hidden: vec!["zeta-1.0.tar.gz"],
        ..Serve::default()
    });
    let o = run(sb
        .strata()
        .env("STRATA_CACHE", sb.path("fifth-cache"))
        .arg("lock")
        .arg(&r)
        .args(["--index-url", &partial.url()]));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "pyapp.python.lock: package zeta 1.0: zeta-1.0.tar.gz is not listed on the index {}",
            partial.url()
        )) && err.contains("hint:")
            && err.contains("strata lock --update"),
        "{err}"
    );

    // A format 1 lock (with a URL for every file, here ones that lead nowhere) is still
    // read: the URLs are ignored, files come from the index by name, and `strata lock`
    // writes the lock in the current format, byte for byte what a new lock would be.
    let mut old: serde_json::Value = serde_json::from_str(&lock_text).expect("json");
    old["version"] = 1.into();
    for p in old["packages"].as_array_mut().expect("packages") {
        let gone =
            |f: &serde_json::Value| format!("http://127.0.0.1:9/gone/{}", f.as_str().unwrap_or(""));
        if p["built_from"].is_object() {
            let u = gone(&p["built_from"]["filename"]);
            p["built_from"]["url"] = u.into();
        } else {
            let u = gone(&p["filename"]);
            p["url"] = u.into();
        }
    }
    fs::write(
        &lock_path,
        serde_json::to_string_pretty(&old).expect("json") + "\n",
    )
    .expect("write old lock");
    let o = run_ok(
        sb.strata()
            .env("STRATA_CACHE", sb.path("sixth-cache"))
            .arg("lock")
            .arg(&r)
            .args(["--index-url", &mirror.url()]),
    );
    assert!(
        stdout(&o).contains("rewritten: 3 packages, 3 fetched"),
        "{}",
        stdout(&o)
    );
    assert_eq!(fs::read_to_string(&lock_path).expect("lock"), lock_text);

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
    let text = fs::read_to_string(sb.path("salt.python.lock")).expect("lock");
    // The lock names files; it says nothing of where the index keeps them.
    assert!(!text.contains("\"url\"") && !text.contains("://"), "{text}");
    let lock: serde_json::Value = serde_json::from_str(&text).expect("json");
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

/// A python step in a recipe with two platforms: each platform is locked on its own (one
/// lock per architecture, for its wheel platform); pure wheels give both images the same
/// python layer, one blob.
#[test]
fn two_platforms_lock_each_architecture() {
    let index = LoopbackIndex::start();
    let sb = Sandbox::new();
    let r = sb.path("multi.yaml");
    fs::write(
        &r,
        "name: multi\nplatforms: [linux/amd64, linux/arm64]\nlayers:\n  - name: python\n    steps:\n      - python:\n          python: \"3.11\"\n          target: /usr/lib/python3/dist-packages\n          requirements: [alpha==1.0]\n",
    )
    .expect("write recipe");
    let o = run_ok(
        sb.strata()
            .arg("lock")
            .arg(&r)
            .args(["--index-url", &index.url()]),
    );
    let out = stdout(&o);
    for arch in ["amd64", "arm64"] {
        assert!(
            out.contains(&format!("multi.{arch}.python.lock resolved: 2 packages")),
            "{out}"
        );
    }
    assert!(!sb.path("multi.python.lock").exists());
    let read = |arch: &str| -> serde_json::Value {
        serde_json::from_str(
            &fs::read_to_string(sb.path(&format!("multi.{arch}.python.lock"))).expect("lock"),
        )
        .expect("json")
    };
    let (amd, arm) = (read("amd64"), read("arm64"));
    assert_eq!(amd["platform"], "manylinux_2_17_x86_64");
    assert_eq!(arm["platform"], "manylinux_2_17_aarch64");
    // Pure wheels: the same files for both.
    assert_eq!(amd["packages"], arm["packages"]);

    let o = run_ok(
        sb.strata()
            .arg("--json")
            .arg("build")
            .arg(&r)
            .arg("-o")
            .arg(sb.path("out")),
    );
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(rep["media_type"], "application/vnd.oci.image.index.v1+json");
    let layer = |i: usize| rep["platforms"][i]["layers"][0]["digest"].clone();
    assert_eq!(rep["platforms"][0]["platform"], "linux/amd64");
    assert_eq!(rep["platforms"][1]["platform"], "linux/arm64");
    assert!(layer(0).is_string());
    assert_eq!(layer(0), layer(1), "one python layer for both");
    // --platform builds the index's arm64 manifest from arm64's lock.
    let one = sb.build(&r, &sb.path("arm"), &["--platform", "linux/arm64"]);
    assert_eq!(
        one,
        rep["platforms"][1]["manifest_digest"]
            .as_str()
            .unwrap_or("")
    );
    // Without arm64's lock the arm64 image cannot be built, and the error names the file.
    fs::remove_file(sb.path("multi.arm64.python.lock")).expect("rm");
    let o = run(sb
        .strata()
        .arg("build")
        .arg(&r)
        .arg("-o")
        .arg(sb.path("out2")));
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("platform linux/arm64") && e.contains("multi.arm64.python.lock"),
        "{e}"
    );
}

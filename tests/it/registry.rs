//! Registry and interchange, against real parts started here: Debian's `docker-registry` on
//! 127.0.0.1 (a child process with its own port, storage and config, killed on drop), with
//! and without htpasswd auth; skopeo and the Docker engine as independent readers.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::*;

const REGISTRY_BIN: &str = "docker-registry";
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A `docker-registry` child process on 127.0.0.1, removed with its storage on drop.
pub struct Registry {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Registry {
    /// Starts a registry; with `users`, it asks for basic auth checked against an
    /// htpasswd file (bcrypt, made by `htpasswd -B`).
    pub fn start(users: &[(&str, &str)]) -> Registry {
        Registry::start_with(users, None)
    }

    /// `auth_yaml`: an `auth:` section to use instead of htpasswd.
    pub fn start_with(users: &[(&str, &str)], auth_yaml: Option<&str>) -> Registry {
        assert!(require(REGISTRY_BIN), "docker-registry is required");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: strata-integration-tests\n",
            dir.path().join("data").display()
        );
        if !users.is_empty() {
            assert!(require("htpasswd"), "htpasswd (apache2-utils) is required");
            let file = dir.path().join("htpasswd");
            let mut text = String::new();
            for (u, p) in users {
                let o = run_ok(Command::new("htpasswd").args(["-Bbn", u, p]));
                text.push_str(stdout(&o).trim());
                text.push('\n');
            }
            fs::write(&file, text).expect("htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: strata-tests\n    path: {}\n",
                file.display()
            ));
        }
        if let Some(a) = auth_yaml {
            config.push_str(a);
        }
        fs::write(dir.path().join("config.yml"), config).expect("config");
        let mut r = Registry {
            child: None,
            port,
            dir,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("registry.log"))
            .expect("log");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("docker-registry exited ({st}):\n{}", self.log());
                }
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "docker-registry did not answer on port {}:\n{}",
            self.port,
            self.log()
        );
    }

    /// Kills the process (SIGKILL, by PID) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Removes a Docker image on drop, pass or fail.
pub struct DockerImage(pub String);
impl Drop for DockerImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// Builds the example into `out` and returns its digest.
fn build_hello(sb: &Sandbox) -> (PathBuf, String) {
    let out = sb.path("out");
    let d = sb.build(&repo().join("recipes/hello.yaml"), &out, &[]);
    (out, d)
}

fn skopeo_digest(reference: &str, extra: &[&str]) -> String {
    let o = run_ok(
        Command::new("skopeo")
            .arg("inspect")
            .args(extra)
            .arg(reference),
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    v["Digest"].as_str().expect("Digest").to_string()
}

fn json_of(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

fn actions(report: &serde_json::Value) -> Vec<String> {
    report["blobs"]
        .as_array()
        .expect("blobs")
        .iter()
        .map(|b| b["action"].as_str().expect("action").to_string())
        .collect()
}

#[test]
fn push_agrees_with_skopeo_and_docker_pull() {
    if !require("skopeo") || !require("docker") {
        return;
    }
    let reg = Registry::start(&[]);
    let sb = Sandbox::new();
    let (out, digest) = build_hello(&sb);
    let repo_name = unique("strata-it/hello");
    let target = format!("{}/{repo_name}:v1", reg.host());
    let o = run_ok(
        sb.strata()
            .args(["push", "--json", "--tag", "also"])
            .arg(&out)
            .arg(&target),
    );
    let rep = json_of(&o);
    assert_eq!(rep["digest"], digest.as_str());
    assert_eq!(rep["tags"], serde_json::json!(["v1", "also"]));
    assert!(actions(&rep).iter().all(|a| a == "uploaded"), "{rep}");
    for tag in ["v1", "also"] {
        let r = format!("docker://{}/{repo_name}:{tag}", reg.host());
        assert_eq!(skopeo_digest(&r, &["--tls-verify=false"]), digest, "{r}");
    }

    // A second push finds every blob present.
    let o = run_ok(sb.strata().args(["push", "--json"]).arg(&out).arg(&target));
    assert!(actions(&json_of(&o)).iter().all(|a| a == "present"));

    // Chunked uploads (every blob above 100 bytes) give the same image.
    let chunked = format!("{}/{}:c", reg.host(), unique("strata-it/chunked"));
    let o = run_ok(
        sb.strata()
            .args(["push", "--json", "--chunk-size", "100"])
            .arg(&out)
            .arg(&chunked),
    );
    let rep = json_of(&o);
    assert!(actions(&rep).iter().any(|a| a == "chunked"), "{rep}");
    assert_eq!(
        skopeo_digest(&format!("docker://{chunked}"), &["--tls-verify=false"]),
        digest
    );

    // Cross-repository mount from the first repository.
    let mounted = format!("{}/{}:m", reg.host(), unique("strata-it/mounted"));
    let o = run_ok(
        sb.strata()
            .args(["push", "--json", "--mount-from", &repo_name])
            .arg(&out)
            .arg(&mounted),
    );
    let rep = json_of(&o);
    assert!(actions(&rep).iter().all(|a| a == "mounted"), "{rep}");
    assert_eq!(
        skopeo_digest(&format!("docker://{mounted}"), &["--tls-verify=false"]),
        digest
    );

    // The Docker engine allows 127.0.0.0/8 registries over HTTP and agrees on the digest.
    let image = DockerImage(target.clone());
    run_ok(Command::new("docker").args(["pull", "-q", &image.0]));
    let o = run_ok(Command::new("docker").args([
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &image.0,
    ]));
    let want = format!("{}/{repo_name}@{digest}", reg.host());
    assert!(stdout(&o).contains(&want), "{} lacks {want}", stdout(&o));
    let o = run_ok(Command::new("docker").args(["run", "--rm", "--network", "none", &image.0]));
    assert_eq!(stdout(&o), "Hello from strata!\ncmd-from-recipe\n");
}

#[test]
fn pull_reads_what_skopeo_pushed() {
    if !require("skopeo") {
        return;
    }
    let reg = Registry::start(&[]);
    let sb = Sandbox::new();
    let (out, digest) = build_hello(&sb);
    // As pushed (OCI manifest) and converted by skopeo to a Docker schema 2 manifest.
    for (name, extra) in [("oci", &[][..]), ("v2s2", &["--format", "v2s2"][..])] {
        let target = format!("{}/{}:{name}", reg.host(), unique("skopeo/hello"));
        run_ok(
            Command::new("skopeo")
                .arg("copy")
                .arg("--dest-tls-verify=false")
                .args(extra)
                .arg(format!("oci:{}:latest", out.display()))
                .arg(format!("docker://{target}")),
        );
        let pushed = skopeo_digest(&format!("docker://{target}"), &["--tls-verify=false"]);
        if name == "oci" {
            assert_eq!(pushed, digest, "skopeo kept the manifest as it was");
        }
        let dest = sb.path(&format!("pulled-{name}"));
        let o = run_ok(sb.strata().arg("pull").arg(&target).arg("-o").arg(&dest));
        assert_eq!(stdout(&o).trim(), pushed, "{name}");
        let o = run_ok(sb.strata().arg("verify").arg(&dest));
        assert!(stdout(&o).contains(", 0 problems"), "{}", stdout(&o));
        if name == "oci" {
            assert_eq!(
                skopeo_digest(&format!("oci:{}:{name}", dest.display()), &[]),
                pushed
            );
        } else {
            // The Docker manifest is kept byte for byte (its digest is what was pulled);
            // skopeo's oci: transport lists only OCI-typed entries, so strata reads it back.
            let o = run_ok(sb.strata().args(["inspect", "--json"]).arg(&dest));
            let v = json_of(&o);
            assert_eq!(v["manifest_digest"], pushed.as_str());
            assert_eq!(v["config"]["Entrypoint"][0], "/usr/bin/hello");
        }
        // Pulling again fetches nothing new.
        let o = run_ok(
            sb.strata()
                .args(["pull", "--json"])
                .arg(&target)
                .arg("-o")
                .arg(&dest),
        );
        let v = json_of(&o);
        assert_eq!(v["pull"]["fetched"], 1, "only the manifest: {v}");
    }
}

#[test]
fn load_hands_the_image_to_the_engine() {
    if !require("docker") {
        return;
    }
    let sb = Sandbox::new();
    let (out, digest) = build_hello(&sb);
    let tag = unique("strata-load");
    let image = DockerImage(format!("{tag}:it"));
    let o = run_ok(
        sb.strata()
            .args(["load", "--json", "--tag", &image.0])
            .arg(&out),
    );
    let v = json_of(&o);
    assert_eq!(v["repo_tag"], image.0.as_str());
    assert_eq!(v["manifest_digest"], digest.as_str());
    let o =
        run_ok(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &image.0]));
    assert_eq!(stdout(&o).trim(), v["image_id"].as_str().expect("id"));
    let o = run_ok(Command::new("docker").args(["run", "--rm", "--network", "none", &image.0]));
    assert_eq!(stdout(&o), "Hello from strata!\ncmd-from-recipe\n");

    // A DOCKER_HOST that is not a unix socket is refused with a hint.
    let o = run(sb
        .strata()
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .arg("load")
        .arg(&out));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("hint: set DOCKER_HOST=unix://"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn htpasswd_registry_needs_credentials_and_never_shows_them() {
    if !require("skopeo") {
        return;
    }
    let secret = "s3cr:et-pw";
    let reg = Registry::start(&[("ci", secret)]);
    let sb = Sandbox::new();
    let (out, digest) = build_hello(&sb);
    let target = format!("{}/{}:v1", reg.host(), unique("auth/hello"));
    let empty_docker_config = sb.path("no-docker-config");
    fs::create_dir_all(&empty_docker_config).expect("dir");

    // No credentials: refused, with a hint on how to log in.
    let o = run(sb
        .strata()
        .env_remove("STRATA_REGISTRY_AUTH")
        .env("DOCKER_CONFIG", &empty_docker_config)
        .arg("push")
        .arg(&out)
        .arg(&target));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("401"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("STRATA_REGISTRY_AUTH"),
        "{}",
        stderr(&o)
    );

    // Wrong password: refused, and the password is nowhere in the output.
    let o = run(sb
        .strata()
        .env("STRATA_REGISTRY_AUTH", "ci:wrong-pw-xyz")
        .arg("push")
        .arg(&out)
        .arg(&target));
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("wrong-pw-xyz") && !stdout(&o).contains("wrong-pw-xyz"));

    // STRATA_REGISTRY_AUTH (password with a colon).
    let o = run_ok(
        sb.strata()
            .env("STRATA_REGISTRY_AUTH", format!("ci:{secret}"))
            .arg("push")
            .arg(&out)
            .arg(&target),
    );
    assert_eq!(stdout(&o).trim(), digest);
    assert!(!stderr(&o).contains(secret));
    let creds = format!("--creds=ci:{secret}");
    assert_eq!(
        skopeo_digest(
            &format!("docker://{target}"),
            &["--tls-verify=false", &creds]
        ),
        digest
    );

    // ~/.docker/config.json `auths` (base64 USER:PASSWORD), found through DOCKER_CONFIG.
    let docker_config = sb.path("docker-config");
    fs::create_dir_all(&docker_config).expect("dir");
    let b64 = {
        use std::process::Stdio;
        let mut c = Command::new("base64")
            .arg("-w0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("base64");
        c.stdin
            .take()
            .expect("stdin")
            .write_all(format!("ci:{secret}").as_bytes())
            .expect("write");
        stdout(&c.wait_with_output().expect("base64"))
    };
    fs::write(
        docker_config.join("config.json"),
        format!(
            r#"{{"auths":{{"http://{}":{{"auth":"{b64}"}}}}}}"#,
            reg.host()
        ),
    )
    .expect("config");
    let dest = sb.path("pulled");
    let o = run_ok(
        sb.strata()
            .env_remove("STRATA_REGISTRY_AUTH")
            .env("DOCKER_CONFIG", &docker_config)
            .arg("pull")
            .arg(&target)
            .arg("-o")
            .arg(&dest),
    );
    assert_eq!(stdout(&o).trim(), digest);

    // A credential helper (credHelpers), run as docker-credential-NAME get.
    let bin = sb.path("bin");
    fs::create_dir_all(&bin).expect("bin");
    let helper = bin.join("docker-credential-strata-test");
    fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread host\n[ \"$host\" = \"{}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\necho '{{\"ServerURL\":\"'\"$host\"'\",\"Username\":\"ci\",\"Secret\":\"{secret}\"}}'\n",
            reg.host()
        ),
    )
    .expect("helper");
    run_ok(Command::new("chmod").arg("755").arg(&helper));
    fs::write(
        docker_config.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"strata-test"}}}}"#, reg.host()),
    )
    .expect("config");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = run_ok(
        sb.strata()
            .env_remove("STRATA_REGISTRY_AUTH")
            .env("DOCKER_CONFIG", &docker_config)
            .env("PATH", path)
            .args(["push", "--json"])
            .arg(&out)
            .arg(format!("{}/{}:helper", reg.host(), unique("auth/helper"))),
    );
    assert_eq!(json_of(&o)["digest"], digest.as_str());
}

/// Wraps the layout's image `digest` in an index for linux/amd64, as a multi-platform image
/// would be, tagged `multi` in the layout. Returns the index digest and bytes.
fn wrap_in_index(out: &Path, digest: &str) -> (String, Vec<u8>) {
    let manifest_size = fs::metadata(
        out.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .expect("manifest")
    .len();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": manifest_size,
            "platform": {"os": "linux", "architecture": "amd64"},
        }],
    });
    let bytes = serde_json::to_vec(&index).expect("json");
    let index_digest = format!("sha256:{}", strata::digest::sha256_hex(&bytes));
    fs::write(
        out.join("blobs/sha256")
            .join(index_digest.trim_start_matches("sha256:")),
        &bytes,
    )
    .expect("index blob");
    let layout_index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest,
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }],
    });
    fs::write(
        out.join("index.json"),
        serde_json::to_vec(&layout_index).expect("json"),
    )
    .expect("index.json");
    (index_digest, bytes)
}

#[test]
fn index_push_and_pull() {
    if !require("skopeo") {
        return;
    }
    let reg = Registry::start(&[]);
    let sb = Sandbox::new();
    let (out, digest) = build_hello(&sb);
    let (index_digest, bytes) = wrap_in_index(&out, &digest);

    let target = format!("{}/{}:multi", reg.host(), unique("index/hello"));
    let o = run_ok(
        sb.strata()
            .args(["push", "--json"])
            .arg(format!("oci:{}:multi", out.display()))
            .arg(&target),
    );
    let rep = json_of(&o);
    assert_eq!(rep["digest"], index_digest.as_str());
    assert_eq!(rep["manifests"], 2);
    let o = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]));
    assert_eq!(o.stdout, bytes, "the registry serves the index as pushed");
    assert_eq!(
        skopeo_digest(&format!("docker://{target}"), &["--tls-verify=false"]),
        index_digest
    );
    // The child manifest is there by digest.
    assert_eq!(
        skopeo_digest(
            &format!(
                "docker://{}@{digest}",
                target.rsplit_once(':').expect("tag").0
            ),
            &["--tls-verify=false"]
        ),
        digest
    );

    let dest = sb.path("pulled");
    let o = run_ok(sb.strata().arg("pull").arg(&target).arg("-o").arg(&dest));
    assert_eq!(stdout(&o).trim(), index_digest);
    let o = run_ok(sb.strata().arg("verify").arg(&dest));
    assert!(stdout(&o).contains(", 0 problems"), "{}", stdout(&o));
    let o = run_ok(sb.strata().args(["inspect", "--json"]).arg(&dest));
    assert_eq!(json_of(&o)["manifest_digest"], digest.as_str());
}

fn write_base_recipe(dir: &Path, base: &str) -> PathBuf {
    fs::create_dir_all(dir).expect("dir");
    let recipe = dir.join("on-registry.yaml");
    fs::write(
        &recipe,
        format!(
            "name: on-registry\ntag: latest\nbase: {base}\nlayers:\n  - name: extra\n    steps:\n      - file: {{path: /etc/extra, content: \"from the registry base\\n\"}}\nconfig:\n  cmd: [\"built-on-a-registry-base\"]\n"
        ),
    )
    .expect("recipe");
    recipe
}

#[test]
fn registry_base_is_pinned_cached_and_builds_offline() {
    let mut reg = Registry::start(&[]);
    let sb = Sandbox::new();
    let (out, digest) = build_hello(&sb);
    let base_repo = unique("bases/hello");
    let base_ref = format!("{}/{base_repo}:v1", reg.host());
    run_ok(sb.strata().arg("push").arg(&out).arg(&base_ref));

    // Without a digest, the build resolves the tag and pins it in the recipe's lock.
    let recipe = write_base_recipe(&sb.path("r1"), &format!("registry://{base_ref}"));
    let unpinned = sb.build(&recipe, &sb.path("x"), &[]);
    assert_eq!(
        fs::read_to_string(recipe.with_extension("lock")).expect("lock written"),
        lock_text(&format!("registry://{base_ref}"), &digest)
    );

    let recipe = write_base_recipe(&sb.path("r2"), &format!("registry://{base_ref}@{digest}"));
    let pushed_ref = format!("{}/{}:built", reg.host(), unique("apps/on-registry"));
    let o = run_ok(
        sb.strata()
            .args(["build", "--json"])
            .arg(&recipe)
            .arg("-o")
            .arg(sb.path("built"))
            .arg("--push")
            .arg(&pushed_ref),
    );
    let v = json_of(&o);
    let built = v["manifest_digest"].as_str().expect("digest").to_string();
    assert_eq!(built, unpinned, "the same base, by tag or by digest");
    // A digest in the recipe is its own pin: the build writes no lock.
    assert!(!sb.path("r2/on-registry.lock").exists());
    assert_eq!(v["push"]["digest"], built.as_str());
    // The base's blobs were mounted from the base's repository, the new ones uploaded.
    let acts = actions(&v["push"]);
    assert_eq!(
        acts.iter().filter(|a| *a == "mounted").count(),
        3,
        "{acts:?}"
    );
    let o = run_ok(
        sb.strata()
            .args(["inspect", "--json"])
            .arg(sb.path("built")),
    );
    let info = json_of(&o);
    assert_eq!(
        info["annotations"]["org.opencontainers.image.base.digest"],
        digest.as_str()
    );
    assert_eq!(info["layers"].as_array().map(Vec::len), Some(4));

    // With the registry gone, the cached base still builds, to the same digest.
    reg.kill();
    let again = sb.build(&recipe, &sb.path("offline"), &[]);
    assert_eq!(again, built);

    // A wrong digest for the tag is caught (the registry is back, the cache lacks it).
    reg.restart();
    let wrong = format!("sha256:{}", "0".repeat(64));
    let recipe = write_base_recipe(&sb.path("r3"), &format!("registry://{base_ref}@{wrong}"));
    let o = run(sb
        .strata()
        .arg("build")
        .arg(&recipe)
        .arg("-o")
        .arg(sb.path("y")));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("MANIFEST_UNKNOWN") || stderr(&o).contains("404"),
        "{}",
        stderr(&o)
    );
}

/// The lock `strata lock` writes for a recipe whose only lockable part is its base.
pub fn lock_text(reference: &str, digest: &str) -> String {
    format!(
        "# Written by `strata lock`: do not edit by hand; run `strata lock RECIPE` to update.\n\
         format = 1\n\
         \n\
         [base]\n\
         reference = \"{reference}\"\n\
         digest = \"{digest}\"\n"
    )
}

/// A one-layer image from scratch holding `/etc/which-base`; returns its layout and digest.
fn build_other(sb: &Sandbox, name: &str) -> (PathBuf, String) {
    let dir = sb.path(&format!("src-{name}"));
    fs::create_dir_all(&dir).expect("dir");
    let recipe = dir.join("other.yaml");
    fs::write(
        &recipe,
        format!("name: other\ntag: latest\nlayers:\n  - name: only\n    steps:\n      - file: {{path: /etc/which-base, content: \"{name}\\n\"}}\n"),
    )
    .expect("recipe");
    let out = sb.path(&format!("img-{name}"));
    let d = sb.build(&recipe, &out, &[]);
    (out, d)
}

/// The base digest annotation and the layer count of a built layout.
fn base_of(sb: &Sandbox, layout: &Path) -> (String, usize) {
    let o = run_ok(sb.strata().args(["inspect", "--json"]).arg(layout));
    let info = json_of(&o);
    (
        info["annotations"]["org.opencontainers.image.base.digest"]
            .as_str()
            .expect("base digest")
            .to_string(),
        info["layers"].as_array().map_or(0, Vec::len),
    )
}

fn build_err(sb: &Sandbox, recipe: &Path, extra: &[&str]) -> String {
    let o = run(sb
        .strata()
        .arg("build")
        .arg(recipe)
        .arg("-o")
        .arg(sb.path("refused"))
        .args(extra));
    assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
    stderr(&o)
}

#[test]
fn registry_base_tag_is_pinned_by_the_lock_until_update() {
    let mut reg = Registry::start(&[]);
    let sb = Sandbox::new();
    let (a_out, a) = build_hello(&sb);
    let (b_out, b) = build_other(&sb, "b");
    assert_ne!(a, b);
    let repo_name = unique("bases/moving");
    let tag_ref = format!("{}/{repo_name}:t", reg.host());
    let push = |out: &Path, target: &str| {
        run_ok(sb.strata().arg("push").arg(out).arg(target));
    };
    push(&a_out, &tag_ref);
    let written = format!("registry://{tag_ref}");
    let recipe = write_base_recipe(&sb.path("r"), &written);
    let lock = recipe.with_extension("lock");
    let read_lock = || fs::read_to_string(&lock).expect("lock");

    // `strata lock` pins the digest the tag names: A.
    let o = run_ok(sb.strata().arg("lock").arg(&recipe));
    assert_eq!(stdout(&o).trim(), format!("{a} {written}"));
    assert!(
        stderr(&o).contains("wrote") && stderr(&o).contains("resolved"),
        "{}",
        stderr(&o)
    );
    assert_eq!(read_lock(), lock_text(&written, &a));
    let on_a = sb.build(&recipe, &sb.path("on-a"), &["--locked"]);
    assert_eq!(base_of(&sb, &sb.path("on-a")), (a.clone(), 4));

    // B is pushed under the same tag: builds stay on A, with or without --locked.
    push(&b_out, &tag_ref);
    let o = run_ok(
        sb.strata()
            .args(["pull", "--json"])
            .arg(&tag_ref)
            .arg("-o")
            .arg(sb.path("tag-now")),
    );
    assert_eq!(json_of(&o)["pull"]["digest"], b.as_str(), "the tag moved");
    assert_eq!(sb.build(&recipe, &sb.path("still-a"), &[]), on_a);
    assert_eq!(sb.build(&recipe, &sb.path("still-a2"), &["--locked"]), on_a);
    assert_eq!(base_of(&sb, &sb.path("still-a")).0, a);
    // `strata lock` without --update keeps the pin.
    let o = run_ok(sb.strata().arg("lock").arg(&recipe));
    assert!(
        stderr(&o).contains("unchanged") && stderr(&o).contains("kept"),
        "{}",
        stderr(&o)
    );
    assert_eq!(read_lock(), lock_text(&written, &a));

    // --update moves the pin to B, and the next build starts from B.
    let o = run_ok(
        sb.strata()
            .args(["lock", "--update", "--json"])
            .arg(&recipe),
    );
    let v = json_of(&o);
    assert_eq!(v["base"]["action"], "resolved");
    assert_eq!(v["base"]["changed"], true);
    assert_eq!(v["base"]["digest"], b.as_str());
    assert_eq!(read_lock(), lock_text(&written, &b));
    let on_b = sb.build(&recipe, &sb.path("on-b"), &["--locked"]);
    assert_ne!(on_b, on_a);
    assert_eq!(base_of(&sb, &sb.path("on-b")), (b.clone(), 2));

    // A digest in the recipe must agree with the lock: it does not (A, the lock says B).
    let pinned_a = format!("{written}@{a}");
    write_base_recipe(&sb.path("r"), &pinned_a);
    let e = build_err(&sb, &recipe, &["--locked"]);
    assert!(
        e.contains("on-registry.yaml:3:7")
            && e.contains(&format!("the recipe pins {a}, the lock pins {b}"))
            && e.contains(&format!("strata lock {}", recipe.display())),
        "{e}"
    );
    assert_eq!(read_lock(), lock_text(&written, &b), "left as it was");
    // Without --locked the recipe's digest wins and the lock follows it, as a stale debian
    // lock is rewritten.
    assert_eq!(sb.build(&recipe, &sb.path("on-a-again"), &[]), on_a);
    assert_eq!(read_lock(), lock_text(&pinned_a, &a));

    // Another tag: --locked and --offline refuse, naming the recipe's line and the fix.
    let u_written = format!("registry://{}/{repo_name}:u", reg.host());
    write_base_recipe(&sb.path("r"), &u_written);
    for flag in ["--locked", "--offline"] {
        let e = build_err(&sb, &recipe, &[flag]);
        assert!(
            e.contains("on-registry.yaml:3:7")
                && e.contains(&format!("{} is stale", lock.display()))
                && e.contains(&format!("the recipe's base is `{u_written}`"))
                && e.contains(&format!("{flag} forbids"))
                && e.contains(&format!("run `strata lock {}`", recipe.display())),
            "{flag}: {e}"
        );
    }
    // Tag `u` does not exist: the build (and `strata lock`) say so, naming the fix.
    let e = build_err(&sb, &recipe, &[]);
    let lock_err = stderr(&run(sb.strata().arg("lock").arg(&recipe)));
    for e in [e, lock_err] {
        assert!(
            e.contains("on-registry.yaml:3:7")
                && e.contains(&format!("base `{u_written}`"))
                && e.contains("no image tagged `u`")
                && e.contains("MANIFEST_UNKNOWN")
                && e.contains(&format!("push the image as {}/{repo_name}:u", reg.host())),
            "{e}"
        );
    }
    assert_eq!(read_lock(), lock_text(&pinned_a, &a), "left as it was");
    // Once `u` exists, a build without flags resolves it and writes the lock.
    push(&a_out, &format!("{}/{repo_name}:u", reg.host()));
    assert_eq!(sb.build(&recipe, &sb.path("on-u"), &[]), on_a);
    assert_eq!(read_lock(), lock_text(&u_written, &a));

    // The registry gone: --offline builds from the lock and the warm cache.
    reg.kill();
    assert_eq!(
        sb.build(&recipe, &sb.path("offline"), &["--offline", "--locked"]),
        on_a
    );
    // A cache without the base: --offline says so at once, without trying to connect.
    let cold = Sandbox::new();
    let started = Instant::now();
    let o = run(cold
        .strata()
        .args(["build", "--offline"])
        .arg(&recipe)
        .arg("-o")
        .arg(cold.path("x")));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("offline:") && stderr(&o).contains("not all in the cache"),
        "{}",
        stderr(&o)
    );
    assert!(started.elapsed() < Duration::from_secs(5), "no retries");
}

#[test]
fn registry_base_tag_of_an_index_pins_the_index() {
    let reg = Registry::start(&[]);
    let sb = Sandbox::new();
    let (out, digest) = build_hello(&sb);
    let (index_digest, _) = wrap_in_index(&out, &digest);
    let tag_ref = format!("{}/{}:multi", reg.host(), unique("bases/multi"));
    run_ok(
        sb.strata()
            .arg("push")
            .arg(format!("oci:{}:multi", out.display()))
            .arg(&tag_ref),
    );
    let written = format!("registry://{tag_ref}");
    let recipe = write_base_recipe(&sb.path("r"), &written);
    run_ok(sb.strata().arg("lock").arg(&recipe));
    // The lock pins the index; the build picks linux/amd64 from it.
    assert_eq!(
        fs::read_to_string(recipe.with_extension("lock")).expect("lock"),
        lock_text(&written, &index_digest)
    );
    sb.build(&recipe, &sb.path("built"), &["--locked"]);
    assert_eq!(base_of(&sb, &sb.path("built")), (index_digest, 4));
}

#[test]
fn unreachable_registry_names_the_recipe_reference_and_fix() {
    let sb = Sandbox::new();
    // Nothing listens there.
    let written = format!("registry://127.0.0.1:{}/bases/gone:t", free_port());
    let recipe = write_base_recipe(&sb.path("r"), &written);
    let loaded = strata::recipe::load(&recipe).expect("recipe");
    let store = strata::store::Store::open(&sb.cache()).expect("store");
    // One try instead of the CLI's half minute of retries: the same code path.
    let client = strata::registry::ClientOptions {
        retry: strata::registry::RetryPolicy {
            attempts: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let lock = strata::lockfile::base::lock_base(&loaded, None, false, &client, &store);
    let build = strata::lockfile::base::ensure_base(
        &loaded,
        strata::lockfile::LockPolicy::default(),
        &client,
        &store,
    );
    for e in [lock.map(|_| ()), build.map(|_| ())] {
        let e = format!("{:#}", e.expect_err("unreachable"));
        assert!(
            e.contains("on-registry.yaml:3:7")
                && e.contains(&format!("base `{written}`"))
                && e.contains("cannot reach the registry")
                && e.contains(&format!("run `strata lock {}`", recipe.display())),
            "{e}"
        );
    }
    assert!(!recipe.with_extension("lock").exists());
}

#[test]
fn plain_http_needs_insecure_off_loopback() {
    let reg = Registry::start(&[]);
    let sb = Sandbox::new();
    let (out, digest) = build_hello(&sb);
    // The machine's own name resolves to a loopback address, yet is not written as one:
    // strata treats it as a remote registry.
    let o = run_ok(&mut Command::new("hostname"));
    let name = stdout(&o).trim().to_string();
    assert!(!name.is_empty() && name != "localhost");
    let target = format!("{name}:{}/{}:v1", reg.port, unique("insecure/hello"));
    let o = run(sb.strata().arg("push").arg(&out).arg(&target));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("pass --insecure"), "{}", stderr(&o));
    let resolves_here = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), reg.port))
        .map(|mut a| a.any(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST))
        .unwrap_or(false);
    if resolves_here {
        let o = run_ok(
            sb.strata()
                .args(["push", "--insecure"])
                .arg(&out)
                .arg(&target),
        );
        assert_eq!(stdout(&o).trim(), digest);
    }
}

/// A TCP proxy in front of the registry that kills it (by PID) once `kill_after` bytes of
/// requests went through, and starts it again `down_for` later on the same port and
/// storage (see `KillWhen`).
struct KillingProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
    restarted: Arc<AtomicBool>,
    accept: Option<thread::JoinHandle<()>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KillWhen {
    /// In the middle of a request, once `kill_after` request bytes went through.
    MidRequest,
    /// At the start of the next PATCH after `kill_after` request bytes (the registry then
    /// holds whole chunks only, so the upload can be resumed).
    RequestStart,
    /// In the middle of a response, once `kill_after` response bytes went through.
    MidResponse,
}

/// Kills the registry now and starts it again `down_for` later, in the background.
fn kill_and_restart(reg: &Arc<Mutex<Registry>>, restarted: &Arc<AtomicBool>, down_for: Duration) {
    reg.lock().expect("lock").kill();
    let (reg, restarted) = (reg.clone(), restarted.clone());
    thread::spawn(move || {
        thread::sleep(down_for);
        reg.lock().expect("lock").restart();
        restarted.store(true, Ordering::SeqCst);
    });
}

impl KillingProxy {
    fn start(
        reg: Arc<Mutex<Registry>>,
        kill_after: u64,
        when: KillWhen,
        down_for: Duration,
    ) -> KillingProxy {
        let at_request_start = when == KillWhen::RequestStart;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let upstream = reg.lock().expect("lock").port;
        let stop = Arc::new(AtomicBool::new(false));
        let killed = Arc::new(AtomicBool::new(false));
        let restarted = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let (stop2, killed2, restarted2) = (stop.clone(), killed.clone(), restarted.clone());
        let accept = thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue; // the registry is down: the client sees the connection close
                };
                let (mut c_read, mut s_write) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let (mut s_read, mut c_write) = (server, client);
                let (sent, reg, killed, restarted) = (
                    sent.clone(),
                    reg.clone(),
                    killed2.clone(),
                    restarted2.clone(),
                );
                let (received, reg_r, killed_r, restarted_r) = (
                    received.clone(),
                    reg.clone(),
                    killed.clone(),
                    restarted.clone(),
                );
                thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match c_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let at_start = buf[..n].starts_with(b"PATCH ");
                        let before = sent.load(Ordering::SeqCst);
                        let due = match when {
                            KillWhen::RequestStart => before >= kill_after && at_start,
                            KillWhen::MidRequest => before + n as u64 >= kill_after,
                            KillWhen::MidResponse => false,
                        };
                        let trigger = due && !killed.swap(true, Ordering::SeqCst);
                        // Killing at a request's start: that request never reaches it.
                        if !(trigger && at_request_start) {
                            if s_write.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            sent.fetch_add(n as u64, Ordering::SeqCst);
                        }
                        if trigger {
                            kill_and_restart(&reg, &restarted, down_for);
                            break;
                        }
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Both);
                    let _ = c_read.shutdown(std::net::Shutdown::Both);
                });
                thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match s_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if c_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        let total = received.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                        if when == KillWhen::MidResponse
                            && total >= kill_after
                            && !killed_r.swap(true, Ordering::SeqCst)
                        {
                            kill_and_restart(&reg_r, &restarted_r, down_for);
                            break;
                        }
                    }
                    let _ = c_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        KillingProxy {
            port,
            stop,
            killed,
            restarted,
            accept: Some(accept),
        }
    }
}

impl Drop for KillingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Bytes from a fixed-seed xorshift generator: incompressible, the same on every run.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn push_survives_a_registry_killed_mid_upload() {
    if !require("skopeo") {
        return;
    }
    let reg = Arc::new(Mutex::new(Registry::start(&[])));
    let sb = Sandbox::new();
    let ctx = sb.path("big");
    fs::create_dir_all(&ctx).expect("dir");
    fs::write(ctx.join("noise.bin"), noise(24 << 20)).expect("noise");
    let recipe = ctx.join("big.yaml");
    fs::write(
        &recipe,
        "name: big\nlayers:\n  - name: noise\n    steps:\n      - copy: {src: noise.bin, dest: /noise.bin}\n",
    )
    .expect("recipe");
    let out = sb.path("out");
    let digest = sb.build(&recipe, &out, &[]);

    // Killed after 6 MiB of requests (mid-way through the 24 MiB layer, sent in 1 MiB
    // chunks), back 1.5 s later: once in the middle of a chunk (the upload resumes, or starts
    // over when the registry refuses the cut chunk), once between chunks (it resumes).
    let repo_name = unique("fault/big");
    for (tag, when, counter) in [
        ("mid", KillWhen::MidRequest, "either"),
        ("between", KillWhen::RequestStart, "resumed"),
    ] {
        let proxy = KillingProxy::start(reg.clone(), 6 << 20, when, Duration::from_millis(1500));
        let via_proxy = format!("127.0.0.1:{}/{repo_name}-{tag}:v1", proxy.port);
        let o = run_ok(
            sb.strata()
                .args(["push", "--json", "--chunk-size", &(1u64 << 20).to_string()])
                .arg(&out)
                .arg(&via_proxy),
        );
        assert!(
            proxy.killed.load(Ordering::SeqCst),
            "{tag}: the registry was never killed"
        );
        assert!(
            proxy.restarted.load(Ordering::SeqCst),
            "{tag}: the registry was never restarted"
        );
        drop(proxy);
        let rep = json_of(&o);
        assert_eq!(rep["digest"], digest.as_str());
        let big = rep["blobs"]
            .as_array()
            .expect("blobs")
            .iter()
            .max_by_key(|b| b["size"].as_u64())
            .expect("big blob")
            .clone();
        eprintln!("{tag}: big blob after the fault: {big}");
        assert_eq!(big["action"], "chunked", "{rep}");
        let count = |k: &str| big[k].as_u64().unwrap_or(0);
        match counter {
            // Depending on how much of the cut chunk reached the disk, the registry resumes
            // or refuses and the blob starts over; either must end complete.
            "either" => assert!(count("resumed") + count("restarted") > 0, "{tag}: {rep}"),
            c => assert!(count(c) > 0, "{tag}: expected the upload to be {c}: {rep}"),
        }
        check_complete(
            &sb,
            &reg.lock().expect("lock").host(),
            &format!("{repo_name}-{tag}"),
            &digest,
        );
    }
}

#[test]
fn pull_survives_a_registry_killed_mid_download() {
    let reg = Arc::new(Mutex::new(Registry::start(&[])));
    let sb = Sandbox::new();
    let ctx = sb.path("big");
    fs::create_dir_all(&ctx).expect("dir");
    fs::write(ctx.join("noise.bin"), noise(16 << 20)).expect("noise");
    let recipe = ctx.join("big.yaml");
    fs::write(
        &recipe,
        "name: big\nlayers:\n  - name: noise\n    steps:\n      - copy: {src: noise.bin, dest: /noise.bin}\n",
    )
    .expect("recipe");
    let out = sb.path("out");
    let digest = sb.build(&recipe, &out, &[]);
    let direct = reg.lock().expect("lock").host();
    let repo_name = unique("fault/pull");
    run_ok(
        sb.strata()
            .arg("push")
            .arg(&out)
            .arg(format!("{direct}/{repo_name}:v1")),
    );

    // Killed after 4 MiB of the 16 MiB layer reached the client, back 1.5 s later.
    let proxy = KillingProxy::start(
        reg.clone(),
        4 << 20,
        KillWhen::MidResponse,
        Duration::from_millis(1500),
    );
    let dest = sb.path("pulled");
    let o = run_ok(
        sb.strata()
            .args(["pull", "--json"])
            .arg(format!("127.0.0.1:{}/{repo_name}:v1", proxy.port))
            .arg("-o")
            .arg(&dest),
    );
    assert!(
        proxy.killed.load(Ordering::SeqCst),
        "the registry was never killed"
    );
    assert!(
        proxy.restarted.load(Ordering::SeqCst),
        "the registry was never restarted"
    );
    drop(proxy);
    assert_eq!(json_of(&o)["pull"]["digest"], digest.as_str());
    let o = run_ok(sb.strata().arg("verify").arg(&dest));
    assert!(stdout(&o).contains(", 0 problems"), "{}", stdout(&o));
    // No temp file of the cut download is left in the layout.
    let stray: Vec<_> = fs::read_dir(&dest)
        .expect("layout")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".strata-tmp-"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

/// Straight from the registry: the image is complete and every blob verifies.
fn check_complete(sb: &Sandbox, direct: &str, repo_name: &str, digest: &str) {
    let target = format!("docker://{direct}/{repo_name}:v1");
    assert_eq!(skopeo_digest(&target, &["--tls-verify=false"]), digest);
    let dest = sb.path(&format!("pulled-{}", repo_name.replace('/', "-")));
    let o = run_ok(
        sb.strata()
            .arg("pull")
            .arg(format!("{direct}/{repo_name}:v1"))
            .arg("-o")
            .arg(&dest),
    );
    assert_eq!(stdout(&o).trim(), digest);
    let o = run_ok(sb.strata().arg("verify").arg(&dest));
    assert!(stdout(&o).contains(", 0 problems"), "{}", stdout(&o));
}

/// A unix-socket proxy to the Docker engine that records each request line and rewrites
/// the API version in request paths from `from` to `to` (same length). testcontainers'
/// Docker client (bollard) asks for API 1.53 without negotiating; Docker 20.10 serves at
/// most 1.41 and refuses newer versions outright, so the requests are pinned to 1.41 here.
struct EngineProxy {
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    accept: Option<thread::JoinHandle<()>>,
}

impl EngineProxy {
    fn start(engine: PathBuf, from: &'static [u8], to: &'static [u8]) -> EngineProxy {
        use std::os::unix::net::{UnixListener, UnixStream};
        assert_eq!(from.len(), to.len());
        let dir = tempfile::tempdir().expect("tmp");
        let listener = UnixListener::bind(dir.path().join("docker.sock")).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, requests2) = (stop.clone(), requests.clone());
        let accept = thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = UnixStream::connect(&engine) else {
                    continue;
                };
                let (mut c_read, mut s_write) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let (mut s_read, mut c_write) = (server, client);
                let requests = requests2.clone();
                thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match c_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let chunk = &mut buf[..n];
                        if let Some(at) = chunk.windows(from.len()).position(|w| w == from) {
                            chunk[at..at + to.len()].copy_from_slice(to);
                        }
                        if chunk.first().is_some_and(u8::is_ascii_uppercase) {
                            if let Some(line) = chunk.split(|b| *b == b'\r').next() {
                                requests
                                    .lock()
                                    .expect("lock")
                                    .push(String::from_utf8_lossy(line).into_owned());
                            }
                        }
                        if s_write.write_all(chunk).is_err() {
                            break;
                        }
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        EngineProxy {
            dir,
            stop,
            requests,
            accept: Some(accept),
        }
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

const TC_IMAGE_ENV: &str = "STRATA_IT_TESTCONTAINERS_IMAGE";

/// Loads the example with `strata load`, then runs it with the testcontainers crate (in a
/// child process of this test binary, whose DOCKER_HOST points at the version-pinning
/// proxy) and checks its output. Nothing is pulled: there is no registry to pull from.
#[test]
fn testcontainers_runs_a_strata_image() {
    if !require("docker") {
        return;
    }
    let sb = Sandbox::new();
    let (out, _) = build_hello(&sb);
    let image = DockerImage(format!("{}:tc", unique("strata-testcontainers")));
    run_ok(sb.strata().args(["load", "--tag", &image.0]).arg(&out));
    let engine = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
    let proxy = EngineProxy::start(engine, b"/v1.53/", b"/v1.41/");
    let exe = std::env::current_exe().expect("test binary");
    let o = run(Command::new(exe)
        .args([
            "--exact",
            "registry::testcontainers_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DOCKER_HOST", proxy.docker_host())
        .env(TC_IMAGE_ENV, &image.0));
    let requests = proxy.requests.lock().expect("lock").clone();
    assert!(
        o.status.success() && stdout(&o).contains("1 passed"),
        "testcontainers run failed:\n{}\n{}\nrequests: {requests:#?}",
        stdout(&o),
        stderr(&o)
    );
    assert!(
        requests.iter().any(|r| r.contains("/containers/create")),
        "{requests:#?}"
    );
    assert!(
        !requests.iter().any(|r| r.contains("/images/create")),
        "testcontainers tried to pull: {requests:#?}"
    );
    // testcontainers removed its container.
    let o = run_ok(Command::new("docker").args([
        "ps",
        "-a",
        "-q",
        "--filter",
        &format!("ancestor={}", image.0),
    ]));
    assert_eq!(stdout(&o).trim(), "", "containers left behind");
}

/// The testcontainers half of `testcontainers_runs_a_strata_image`, run only by it (it needs
/// the image it loaded and the DOCKER_HOST it sets).
#[test]
#[ignore = "run by testcontainers_runs_a_strata_image"]
fn testcontainers_child() {
    use testcontainers::core::WaitFor;
    use testcontainers::runners::SyncRunner;
    use testcontainers::{GenericImage, ImageExt};
    let image = std::env::var(TC_IMAGE_ENV).expect("run by testcontainers_runs_a_strata_image");
    let (name, tag) = image.rsplit_once(':').expect("name:tag");
    let container = GenericImage::new(name, tag)
        .with_wait_for(WaitFor::message_on_stdout("Hello from strata!"))
        .with_cmd(["from-testcontainers"])
        .with_network("none")
        .start()
        .expect("starting the strata image with testcontainers");
    let out = container.stdout_to_vec().expect("stdout");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "Hello from strata!\nfrom-testcontainers\n"
    );
}

/// A token server for the registry's `auth: token` mode: answers `GET /token` for the user
/// it knows with a JWT signed (RS256, by `openssl dgst`) with a key whose self-signed
/// certificate is the registry's root bundle, granting the scopes asked for.
struct TokenServer {
    port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<thread::JoinHandle<()>>,
    issued: Arc<AtomicU64>,
}

const TOKEN_SERVICE: &str = "strata-test-registry";
const TOKEN_ISSUER: &str = "strata-test-issuer";

fn b64url(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(h, 16) {
                    Ok(v) => out.push(v),
                    Err(_) => out.extend_from_slice(&b[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TokenServer {
    /// Writes `token.key` and `token.crt` into `dir` and starts serving.
    fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        assert!(require("openssl"), "openssl is required");
        let key = dir.join("token.key");
        let crt = dir.join("token.crt");
        run_ok(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=strata-test-token",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&crt),
        );
        let der = run_ok(
            Command::new("openssl")
                .args(["x509", "-outform", "DER", "-in"])
                .arg(&crt),
        )
        .stdout;
        let x5c = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(der)
        };
        let expected_auth = {
            use base64::Engine as _;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicU64::new(0));
        let (stop2, issued2) = (stop.clone(), issued.clone());
        let user = user.to_string();
        let accept = thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let mut conn = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read_exact(&mut byte).is_ok() {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let authorized = head.lines().any(|l| {
                    l.split_once(':').is_some_and(|(k, v)| {
                        k.eq_ignore_ascii_case("authorization") && v.trim() == expected_auth
                    })
                });
                let (status, body) = if !authorized {
                    (
                        "401 Unauthorized",
                        r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#
                            .to_string(),
                    )
                } else {
                    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
                    let mut access = Vec::new();
                    for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
                        if k != "scope" {
                            continue;
                        }
                        let scope = url_decode(v);
                        let parts: Vec<&str> = scope.splitn(3, ':').collect();
                        if parts.len() == 3 {
                            access.push(serde_json::json!({"type": parts[0], "name": parts[1], "actions": parts[2].split(',').collect::<Vec<_>>()}));
                        }
                    }
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    let n = issued2.fetch_add(1, Ordering::SeqCst);
                    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
                    let claims = serde_json::json!({
                        "iss": TOKEN_ISSUER, "sub": user, "aud": TOKEN_SERVICE,
                        "exp": now + 300, "nbf": now - 10, "iat": now - 10,
                        "jti": format!("strata-test-{n}"), "access": access,
                    });
                    let signing_input = format!(
                        "{}.{}",
                        b64url(header.to_string().as_bytes()),
                        b64url(claims.to_string().as_bytes())
                    );
                    let mut child = Command::new("openssl")
                        .args(["dgst", "-sha256", "-sign"])
                        .arg(&key)
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .spawn()
                        .expect("openssl dgst");
                    child
                        .stdin
                        .take()
                        .expect("stdin")
                        .write_all(signing_input.as_bytes())
                        .expect("sign input");
                    let sig = child.wait_with_output().expect("signature").stdout;
                    let token = format!("{signing_input}.{}", b64url(&sig));
                    (
                        "200 OK",
                        serde_json::json!({"token": token, "expires_in": 300}).to_string(),
                    )
                };
                let resp = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = conn.write_all(resp.as_bytes());
            }
        });
        TokenServer {
            port,
            stop,
            accept: Some(accept),
            issued,
        }
    }

    fn auth_yaml(&self, dir: &Path) -> String {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
            self.port,
            dir.join("token.crt").display()
        )
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn token_server_registry_uses_bearer_tokens() {
    if !require("skopeo") {
        return;
    }
    let keys = tempfile::tempdir().expect("tmp");
    let secret = "t0ken-pw";
    let tokens = TokenServer::start(keys.path(), "ci", secret);
    let reg = Registry::start_with(&[], Some(&tokens.auth_yaml(keys.path())));
    let sb = Sandbox::new();
    let (out, digest) = build_hello(&sb);
    let no_config = sb.path("no-docker-config");
    fs::create_dir_all(&no_config).expect("dir");
    let target = format!("{}/{}:v1", reg.host(), unique("token/hello"));

    // No credentials: the token server refuses, and the error says how to log in.
    let o = run(sb
        .strata()
        .env_remove("STRATA_REGISTRY_AUTH")
        .env("DOCKER_CONFIG", &no_config)
        .arg("push")
        .arg(&out)
        .arg(&target));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("token server"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("STRATA_REGISTRY_AUTH"),
        "{}",
        stderr(&o)
    );

    let o = run_ok(
        sb.strata()
            .env("STRATA_REGISTRY_AUTH", format!("ci:{secret}"))
            .env("DOCKER_CONFIG", &no_config)
            .args(["push", "--json"])
            .arg(&out)
            .arg(&target),
    );
    assert_eq!(json_of(&o)["digest"], digest.as_str());
    assert!(!stderr(&o).contains(secret));
    assert!(tokens.issued.load(Ordering::SeqCst) > 0);
    let creds = format!("--creds=ci:{secret}");
    assert_eq!(
        skopeo_digest(
            &format!("docker://{target}"),
            &["--tls-verify=false", &creds]
        ),
        digest
    );
    let dest = sb.path("pulled");
    let o = run_ok(
        sb.strata()
            .env("STRATA_REGISTRY_AUTH", format!("ci:{secret}"))
            .arg("pull")
            .arg(&target)
            .arg("-o")
            .arg(&dest),
    );
    assert_eq!(stdout(&o).trim(), digest);
}

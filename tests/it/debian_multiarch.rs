//! A `debian` step in a recipe with `platforms: [linux/amd64, linux/arm64]`, from the signed
//! fixture repository (its binary-amd64 and binary-arm64 indices): one lock with a part per
//! architecture, one image per platform holding that architecture's packages (read back
//! from the dpkg status umoci unpacks), arch:all and same-content packages sharing layers,
//! the arm64 image's ld.so.cache for AArch64, the same index from two empty caches, skopeo
//! reading the index, `--locked` naming the stale architecture, and Docker running the
//! amd64 image.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::debian::{fixture_repo, keyring, FixtureServer};
use crate::*;

const RECIPE: &str = "\
name: deb-multi
platforms: [linux/amd64, linux/arm64]
layers:
  - name: packages
    steps:
      - debian:
          suite: fixture
          packages: [hello-app]
          essential: true
  # An amd64 static binary in both images (the same layer): what Docker runs below.
  - name: bin
    steps:
      - copy: {src: hello, dest: /usr/local/bin/hello, mode: \"0755\"}
";

fn sandbox_recipe(sb: &Sandbox, text: &str) -> PathBuf {
    fs::copy(repo().join("recipes/hello/hello"), sb.path("hello")).expect("copy hello");
    let p = sb.path("multi.yaml");
    fs::write(&p, text).expect("write recipe");
    p
}

fn lock(sb: &Sandbox, recipe: &Path, server: &FixtureServer) -> std::process::Output {
    run_ok(
        sb.strata()
            .arg("lock")
            .arg(recipe)
            .arg("--mirror")
            .arg(server.url())
            .arg("--keyring")
            .arg(keyring()),
    )
}

/// `strata --json build` with the fixture mirror; the JSON report.
fn build_json(
    sb: &Sandbox,
    recipe: &Path,
    out: &Path,
    server: &FixtureServer,
    extra: &[&str],
) -> Value {
    let o = run_ok(
        sb.strata()
            .arg("--json")
            .arg("build")
            .arg(recipe)
            .arg("--locked")
            .arg("--mirror")
            .arg(server.url())
            .arg("-o")
            .arg(out)
            .args(extra),
    );
    serde_json::from_slice(&o.stdout).expect("build json")
}

/// The `[[arch.ARCH.package]]` names and architectures of a lock's text.
fn locked(lock: &str, arch: &str) -> Vec<String> {
    let head = format!("[[arch.{arch}.package]]\n");
    lock.split("\n\n")
        .filter_map(|t| t.strip_prefix(&head))
        .map(|t| {
            let field = |k: &str| {
                t.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k} = \"")))
                    .map(|v| v.trim_end_matches('"').to_string())
                    .unwrap_or_default()
            };
            format!("{}:{}", field("name"), field("arch"))
        })
        .collect()
}

/// umoci unpacks `layout:latest` (a one-platform layout); returns the rootfs.
fn unpack(sb: &Sandbox, layout: &Path, name: &str) -> PathBuf {
    let bundle = sb.path(&format!("bundle-{name}"));
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle),
    );
    bundle.join("rootfs")
}

/// `Package:Architecture` of every paragraph of a dpkg status file.
fn status_packages(root: &Path) -> Vec<String> {
    let text = fs::read_to_string(root.join("var/lib/dpkg/status")).expect("dpkg status");
    text.split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let field = |k: &str| {
                p.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}: ")))
                    .unwrap_or("")
                    .to_string()
            };
            format!("{}:{}", field("Package"), field("Architecture"))
        })
        .collect()
}

fn layer_digests(report: &Value) -> BTreeMap<String, String> {
    report["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap_or("").to_string(),
                l["digest"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn debian_step_with_two_platforms() {
    for tool in ["skopeo", "umoci"] {
        if !require(tool) {
            return;
        }
    }
    let sb = Sandbox::new();
    let server = FixtureServer::start(&fixture_repo(), BTreeMap::new());
    let r = sandbox_recipe(&sb, RECIPE);

    // The lock: one suite and InRelease, a part per architecture with its own index file
    // and packages; arm64's libgreet pulls in libc6, which amd64 does not have.
    let o = lock(&sb, &r, &server);
    let e = stderr(&o);
    assert!(
        e.contains("amd64: 8 packages") && e.contains("arm64: 9 packages"),
        "{e}"
    );
    let text = fs::read_to_string(sb.path("multi.lock")).expect("lock");
    for want in [
        "\nsuite = \"fixture\"\n",
        "\n[arch.amd64]\n",
        "\n[arch.arm64]\n",
        "path = \"main/binary-amd64/Packages.xz\"",
        "path = \"main/binary-arm64/Packages.xz\"",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    assert_eq!(text.matches("inrelease = ").count(), 1, "{text}");
    assert!(!text.contains("\narchitecture = "), "{text}");
    assert!(!text.contains("127.0.0.1"), "the lock names no mirror");
    let amd = locked(&text, "amd64");
    let arm = locked(&text, "arm64");
    assert!(
        amd.iter()
            .all(|p| p.ends_with(":amd64") || p.ends_with(":all")),
        "{amd:?}"
    );
    assert!(
        arm.iter()
            .all(|p| p.ends_with(":arm64") || p.ends_with(":all")),
        "{arm:?}"
    );
    assert!(
        arm.contains(&"libc6:arm64".to_string()) && !amd.iter().any(|p| p.starts_with("libc6:"))
    );
    assert_eq!(amd.len(), 8);
    assert_eq!(arm.len(), 9);
    // A second lock against the same mirror: the same bytes.
    let o = lock(&sb, &r, &server);
    assert!(stderr(&o).contains("unchanged"), "{}", stderr(&o));

    // The index from the lock: two manifests, each platform's own.
    let out = sb.path("out");
    let rep = build_json(&sb, &r, &out, &server, &[]);
    let digest = rep["digest"].as_str().expect("digest").to_string();
    assert_eq!(rep["media_type"], "application/vnd.oci.image.index.v1+json");
    let oci = format!("oci:{}:latest", out.display());
    let raw: Value = serde_json::from_slice(
        &run_ok(Command::new("skopeo").args(["inspect", "--raw", &oci])).stdout,
    )
    .expect("raw index");
    let manifests = raw["manifests"].as_array().expect("manifests");
    let archs: Vec<&str> = manifests
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    let arm_cfg: Value = serde_json::from_slice(
        &run_ok(Command::new("skopeo").args([
            "inspect",
            "--override-arch",
            "arm64",
            "--config",
            &oci,
        ]))
        .stdout,
    )
    .expect("config");
    assert_eq!(arm_cfg["architecture"], "arm64");
    let v = run(sb.strata().arg("verify").arg(&out));
    assert_eq!(v.status.code(), Some(0), "{}{}", stdout(&v), stderr(&v));
    // One SBOM per platform, each attached to its own manifest.
    let platforms = rep["platforms"].as_array().expect("platforms");
    assert_eq!(platforms.len(), 2);
    let index_json: Value =
        serde_json::from_slice(&fs::read(out.join("index.json")).expect("index.json"))
            .expect("json");
    for (p, m) in platforms.iter().zip(manifests) {
        assert_eq!(p["manifest_digest"], m["digest"]);
        let art = p["sbom_artifact"].as_str().expect("an SBOM artifact");
        let listed = index_json["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .find(|d| d["digest"] == art)
            .unwrap_or_else(|| panic!("artifact {art} not in index.json"));
        assert_eq!(listed["annotations"]["io.strata.subject"], m["digest"]);
        let plat = p["platform"].as_str().expect("platform").replace('/', "-");
        let spdx: Value = serde_json::from_slice(
            &fs::read(sb.path(&format!("out.{plat}.spdx.json"))).expect("sbom file"),
        )
        .expect("spdx");
        let arch = plat.trim_start_matches("linux-");
        let names: BTreeSet<String> = spdx["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .filter_map(|p| p["name"].as_str().map(String::from))
            .collect();
        assert_eq!(names.contains("libc6"), arch == "arm64", "{names:?}");
    }

    // Layers: the same packages' identical files are shared blobs; hello-app, libgreet and
    // the fix-ups (dpkg status, ld.so.cache) are per platform; libc6 only in arm64.
    let by_platform: Vec<BTreeMap<String, String>> = platforms.iter().map(layer_digests).collect();
    let (la, lr) = (&by_platform[0], &by_platform[1]);
    for shared in [
        "deb:config-basic",
        "deb:data-files",
        "deb:libcycle-a",
        "bin",
    ] {
        assert_eq!(la.get(shared), lr.get(shared), "{shared}: {la:?} {lr:?}");
        assert!(la.contains_key(shared), "{shared}: {la:?}");
    }
    for own in ["deb:hello-app", "deb:libgreet", "dpkg-fixups"] {
        assert!(
            la.contains_key(own) && lr.contains_key(own),
            "{own}: {la:?} {lr:?}"
        );
        assert_ne!(la[own], lr[own], "{own}");
    }
    assert!(lr.contains_key("deb:libc6") && !la.contains_key("deb:libc6"));

    // --platform builds each image alone: the index's manifests.
    let mut roots = Vec::new();
    for (arch, m) in ["amd64", "arm64"].iter().zip(manifests) {
        let one = sb.path(&format!("one-{arch}"));
        let rep = build_json(
            &sb,
            &r,
            &one,
            &server,
            &["--platform", &format!("linux/{arch}")],
        );
        assert_eq!(rep["digest"], m["digest"], "{arch}");
        let root = unpack(&sb, &one, arch);
        // dpkg's status lists this architecture's packages (and arch:all ones).
        let listed = status_packages(&root);
        let want = if *arch == "amd64" { &amd } else { &arm };
        let mut sorted = want.clone();
        sorted.sort();
        assert_eq!(listed, sorted, "{arch}");
        let says = fs::read_to_string(root.join("usr/bin/hello-app")).expect("hello-app");
        assert_eq!(says.contains("(arm64)"), *arch == "arm64", "{says}");
        roots.push(root);
    }
    // arm64 has libc6, so an ld.so.cache for AArch64 libraries; amd64 has no loader.
    assert!(!roots[0].join("etc/ld.so.cache").exists());
    let cache = roots[1].join("etc/ld.so.cache");
    assert!(cache.exists());
    let ldconfig = ["/sbin/ldconfig", "/usr/sbin/ldconfig"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if let Some(ldconfig) = ldconfig {
        let o = run_ok(Command::new(ldconfig).arg("-p").arg("-C").arg(&cache));
        let listing = stdout(&o);
        assert!(
            listing.contains(
                "libgreet.so.1 (libc6,AArch64) => /usr/lib/aarch64-linux-gnu/libgreet.so.1"
            ),
            "{listing}"
        );
        assert!(
            listing.contains("ld-linux-aarch64.so.1 (libc6,AArch64)"),
            "{listing}"
        );
    }

    // Another empty cache: the same index.
    let sb2 = Sandbox::new();
    let r2 = sandbox_recipe(&sb2, RECIPE);
    fs::copy(sb.path("multi.lock"), sb2.path("multi.lock")).expect("copy lock");
    let rep2 = build_json(&sb2, &r2, &sb2.path("out"), &server, &[]);
    assert_eq!(rep2["digest"], digest.as_str());

    // A platform added to the recipe: --locked names the architecture the lock lacks.
    let grown = RECIPE.replace(
        "platforms: [linux/amd64, linux/arm64]",
        "platforms: [linux/amd64, linux/arm64, linux/riscv64]",
    );
    fs::write(&r2, grown).expect("write");
    let o = run(sb2
        .strata()
        .arg("build")
        .arg(&r2)
        .arg("--locked")
        .arg("-o")
        .arg(sb2.path("grown")));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("the lock is stale")
            && e.contains("no packages for architecture riscv64")
            && !e.contains("architecture arm64:"),
        "{e}"
    );

    // Docker runs the amd64 image.
    if which("docker") {
        let tag = format!("strata-it/deb-multi:t{}", std::process::id());
        let _rm = RemoveImage(tag.clone());
        run_ok(
            sb.strata()
                .arg("-q")
                .arg("load")
                .arg(sb.path("one-amd64"))
                .arg("--tag")
                .arg(&tag),
        );
        let o = run_ok(Command::new("docker").args([
            "run",
            "--rm",
            "--network",
            "none",
            &tag,
            "/usr/local/bin/hello",
        ]));
        assert_eq!(stdout(&o).lines().next(), Some("Hello from strata!"));
    }
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

struct RemoveImage(String);
impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

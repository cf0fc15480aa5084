//! `platforms:`: one image per platform under an OCI image index, built without emulation.
//! Checked with skopeo (the raw index, `--override-arch`), `strata inspect`/`verify`, the
//! pinned digest of recipes/hello-multiarch.yaml, `--platform`, and a push to Debian's
//! docker-registry read back by skopeo.

use std::fs;
use std::process::Command;

use serde_json::Value;

use crate::registry::Registry;
use crate::*;

fn example() -> std::path::PathBuf {
    repo().join("recipes/hello-multiarch.yaml")
}

fn skopeo_json(args: &[&str]) -> Value {
    let o = run_ok(Command::new("skopeo").args(args));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn multiarch_example_digest_is_pinned() {
    let sb = Sandbox::new();
    let d = sb.build(&example(), &sb.path("out"), &[]);
    // A change here changes every user's image digest: review it as such.
    insta::assert_snapshot!("hello_multiarch_index_digest", d);
}

#[test]
fn platforms_build_an_image_index() {
    if !require("skopeo") {
        return;
    }
    let sb = Sandbox::new();
    let out = sb.path("out/ma");
    let digest = sb.build(&example(), &out, &[]);

    // Same recipe from another cache: the same index.
    let sb2 = Sandbox::new();
    assert_eq!(sb2.build(&example(), &sb2.path("out"), &[]), digest);

    // index.json tags the image index; skopeo reads it raw, with both platforms.
    let index: Value =
        serde_json::from_slice(&fs::read(out.join("index.json")).expect("index.json"))
            .expect("json");
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(1));
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    assert_eq!(
        index["manifests"][0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let oci = format!("oci:{}:latest", out.display());
    let raw = skopeo_json(&["inspect", "--raw", &oci]);
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    let manifests = raw["manifests"].as_array().expect("manifests");
    let platforms: Vec<(String, String)> = manifests
        .iter()
        .map(|m| {
            (
                m["platform"]["os"].as_str().unwrap_or("").to_string(),
                m["platform"]["architecture"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        platforms,
        [
            ("linux".to_string(), "amd64".to_string()),
            ("linux".to_string(), "arm64".to_string())
        ]
    );
    assert!(manifests
        .iter()
        .all(|m| m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"));
    assert_ne!(manifests[0]["digest"], manifests[1]["digest"]);

    // skopeo picks each platform's image: its config says the architecture, and the
    // copy/file layers are the same blobs for both.
    let amd = skopeo_json(&["inspect", "--override-arch", "amd64", &oci]);
    let arm = skopeo_json(&["inspect", "--override-arch", "arm64", &oci]);
    assert_eq!(amd["Architecture"], "amd64");
    assert_eq!(arm["Architecture"], "arm64");
    assert_eq!(amd["Os"], "linux");
    assert_eq!(amd["Layers"], arm["Layers"]);
    assert_eq!(amd["Layers"].as_array().map(Vec::len), Some(1));
    let arm_config = skopeo_json(&["inspect", "--override-arch", "arm64", "--config", &oci]);
    assert_eq!(arm_config["architecture"], "arm64");

    // strata inspect lists the platforms; verify walks the index.
    let i = run_ok(sb.strata().arg("--json").arg("inspect").arg(&out));
    let info: Value = serde_json::from_slice(&i.stdout).expect("json");
    let listed: Vec<&str> = info["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .filter_map(|p| p["platform"].as_str())
        .collect();
    assert_eq!(listed, ["linux/amd64", "linux/arm64"]);
    assert_eq!(info["platforms"][1]["digest"], manifests[1]["digest"]);
    let v = run(sb.strata().arg("verify").arg(&out));
    assert_eq!(v.status.code(), Some(0), "{}", stdout(&v));
    assert!(
        stdout(&v).contains("7 blobs checked, 0 problems"),
        "{}",
        stdout(&v)
    );

    // --platform builds one of them alone: that platform's manifest, no index.
    let one = sb.build(
        &example(),
        &sb.path("arm64"),
        &["--platform", "linux/arm64"],
    );
    assert_eq!(one, manifests[1]["digest"].as_str().unwrap_or(""));

    // The oci-archive holds the index.
    let tar = sb.path("ma.tar");
    assert_eq!(
        sb.build(&example(), &tar, &["--format", "oci-archive"]),
        digest
    );
    let x = sb.path("x");
    fs::create_dir_all(&x).expect("mkdir");
    run_ok(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&x));
    let raw2 = skopeo_json(&["inspect", "--raw", &format!("oci:{}:latest", x.display())]);
    assert_eq!(raw2, raw);
}

#[test]
fn a_docker_archive_needs_one_platform() {
    let sb = Sandbox::new();
    let tar = sb.path("ma.tar");
    let o = run(sb
        .strata()
        .arg("build")
        .arg(example())
        .args(["--format", "docker-archive", "-o"])
        .arg(&tar));
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("a docker-archive holds one platform"), "{e}");
    assert!(e.contains("--platform linux/amd64"), "{e}");
    assert!(!tar.exists(), "nothing written");

    let o = run(sb
        .strata()
        .arg("build")
        .arg(example())
        .args(["--platform", "linux/s390x", "-o"])
        .arg(sb.path("out")));
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("builds linux/amd64, linux/arm64") && e.contains("hint:"),
        "{e}"
    );
    assert!(!sb.path("out").exists());

    sb.build(
        &example(),
        &tar,
        &["--platform", "linux/arm64", "--format", "docker-archive"],
    );
    let o = run_ok(
        Command::new("tar")
            .arg("-xOf")
            .arg(&tar)
            .arg("manifest.json"),
    );
    let m: Value = serde_json::from_slice(&o.stdout).expect("manifest.json");
    let config = m[0]["Config"].as_str().expect("Config").to_string();
    let o = run_ok(Command::new("tar").arg("-xOf").arg(&tar).arg(&config));
    let c: Value = serde_json::from_slice(&o.stdout).expect("config");
    assert_eq!(c["architecture"], "arm64");
}

#[test]
fn push_sends_the_index_and_both_manifests() {
    if !require("skopeo") {
        return;
    }
    let sb = Sandbox::new();
    let out = sb.path("out");
    let digest = sb.build(&example(), &out, &[]);
    let reg = Registry::start(&[]);
    let target = format!("{}/multi/hello:v1", reg.host());
    let o = run_ok(sb.strata().arg("--json").arg("push").arg(&out).arg(&target));
    let rep: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(rep["digest"], digest.as_str());
    assert_eq!(rep["manifests"], 3);
    let docker = format!("docker://{target}");
    let raw = skopeo_json(&["inspect", "--raw", "--tls-verify=false", &docker]);
    assert_eq!(raw["manifests"].as_array().map(Vec::len), Some(2));
    let arm = skopeo_json(&[
        "inspect",
        "--tls-verify=false",
        "--override-arch",
        "arm64",
        &docker,
    ]);
    assert_eq!(arm["Architecture"], "arm64");
}

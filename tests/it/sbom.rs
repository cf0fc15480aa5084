//! The SBOM of a `debian` step attached to the image as an OCI artifact: built against the
//! signed fixture repository (served on 127.0.0.1), read back with jq, checked by
//! `strata verify`/`inspect`, unpacked by umoci beside it, pushed to Debian's
//! docker-registry and read there by skopeo, by digest and through the referrers tag.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::debian::{fixture_repo, keyring, FixtureServer};
use crate::registry::Registry;
use crate::*;

const RECIPE: &str = "\
name: deb-sbom
layers:
  - name: packages
    steps:
      - debian:
          suite: fixture
          packages: [hello-app]
          essential: true
";

fn jq(filter: &str, file: &Path) -> String {
    let o = run_ok(Command::new("jq").arg("-r").arg(filter).arg(file));
    stdout(&o).trim().to_string()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    fs::read(layout.join("blobs/sha256").join(hex)).expect("blob in the layout")
}

/// Locks and builds RECIPE in `sb` into `out`; returns the image digest.
fn build(sb: &Sandbox, server: &FixtureServer, out: &Path) -> String {
    let r = sb.path("recipe.yaml");
    fs::write(&r, RECIPE).expect("recipe");
    run_ok(
        sb.strata()
            .arg("lock")
            .arg(&r)
            .arg("--mirror")
            .arg(server.url())
            .arg("--keyring")
            .arg(keyring()),
    );
    sb.build(&r, out, &["--locked", "--mirror", &server.url()])
}

#[test]
fn sbom_is_an_artifact_referring_to_the_image() {
    if !require("jq") || !require("umoci") || !require("skopeo") {
        return;
    }
    let server = FixtureServer::start(&fixture_repo(), Default::default());
    let sb = Sandbox::new();
    let out = sb.path("out/deb-sbom");
    let image = build(&sb, &server, &out);
    let index = out.join("index.json");

    // index.json: the tagged image, and the artifact, untagged, with its type and subject.
    assert_eq!(jq(".manifests | length", &index), "2");
    assert_eq!(
        jq(
            ".manifests[] | select(.annotations[\"org.opencontainers.image.ref.name\"] == \"latest\") | .digest",
            &index
        ),
        image
    );
    let artifact = jq(
        ".manifests[] | select(.artifactType == \"application/spdx+json\") | .digest",
        &index,
    );
    assert!(artifact.starts_with("sha256:"), "{artifact}");
    assert_eq!(
        jq(
            ".manifests[] | select(.artifactType != null) | .annotations[\"io.strata.subject\"]",
            &index
        ),
        image
    );
    assert_eq!(
        jq(".manifests[] | select(.artifactType != null) | .annotations[\"org.opencontainers.image.ref.name\"]", &index),
        "null"
    );

    // The artifact manifest: OCI image-spec 1.1 with the empty config and the SPDX layer.
    let mpath = sb.path("artifact.json");
    fs::write(&mpath, blob(&out, &artifact)).expect("write");
    assert_eq!(
        jq(".mediaType", &mpath),
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(jq(".artifactType", &mpath), "application/spdx+json");
    assert_eq!(
        jq(".config.mediaType", &mpath),
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(blob(&out, &jq(".config.digest", &mpath)), b"{}");
    assert_eq!(jq(".subject.digest", &mpath), image);
    assert_eq!(
        jq(".subject.size", &mpath),
        fs::metadata(out.join("blobs/sha256").join(&image[7..]))
            .expect("image manifest")
            .len()
            .to_string()
    );
    assert_eq!(jq(".layers | length", &mpath), "1");
    assert_eq!(jq(".layers[0].mediaType", &mpath), "application/spdx+json");

    // Its one blob is the SPDX document, the same bytes as the file written beside.
    let sbom = blob(&out, &jq(".layers[0].digest", &mpath));
    let beside = fs::read(sb.path("out/deb-sbom.spdx.json")).expect("SBOM beside the layout");
    assert_eq!(sbom, beside);
    let doc: Value = serde_json::from_slice(&sbom).expect("SPDX JSON");
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let mut names: Vec<&str> = doc["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
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

    // strata verify accepts it (every blob referenced, none a problem); inspect lists it.
    let v = run(sb.strata().arg("--json").arg("verify").arg(&out));
    assert_eq!(v.status.code(), Some(0), "{}{}", stdout(&v), stderr(&v));
    let rep: Value = serde_json::from_slice(&v.stdout).expect("json");
    assert_eq!(rep["problems"], serde_json::json!([]));
    assert_eq!(rep["unreferenced"], serde_json::json!([]), "{rep}");
    let i = run_ok(sb.strata().arg("--json").arg("inspect").arg(&out));
    let info: Value = serde_json::from_slice(&i.stdout).expect("json");
    assert_eq!(info["manifest_digest"], image.as_str());
    assert_eq!(info["referrers"][0]["digest"], artifact.as_str());
    assert_eq!(
        info["referrers"][0]["artifact_type"],
        "application/spdx+json"
    );

    // Other readers still find the image by its tag beside the artifact.
    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:latest", out.display()),
    ]));
    assert_eq!(
        strata::digest::sha256_digest(&raw.stdout),
        image,
        "skopeo reads the tagged image"
    );
    let bundle = sb.path("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:latest", out.display()))
            .arg(&bundle),
    );
    assert!(bundle.join("rootfs/usr/bin/hello-app").is_file());

    // Deterministic: another cache directory gives the same image and artifact.
    let sb2 = Sandbox::new();
    let out2 = sb2.path("out/deb-sbom");
    assert_eq!(build(&sb2, &server, &out2), image);
    assert_eq!(
        fs::read(&index).expect("index"),
        fs::read(out2.join("index.json")).expect("index")
    );

    // A rebuild into the same layout replaces the artifact rather than adding another.
    sb.build(
        &sb.path("recipe.yaml"),
        &out,
        &["--locked", "--mirror", &server.url()],
    );
    assert_eq!(jq(".manifests | length", &index), "2");

    // The oci-archive holds the artifact too; the docker-archive cannot, and still builds.
    let tar = sb.path("deb-sbom.tar");
    sb.build(
        &sb.path("recipe.yaml"),
        &tar,
        &["--locked", "--format", "oci-archive"],
    );
    let x = sb.path("x");
    fs::create_dir_all(&x).expect("mkdir");
    run_ok(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&x));
    assert_eq!(
        fs::read(x.join("index.json")).expect("index"),
        fs::read(&index).expect("index")
    );
    let v = run(sb.strata().arg("verify").arg(&x));
    assert_eq!(v.status.code(), Some(0), "{}", stdout(&v));
    let dtar = sb.path("docker.tar");
    sb.build(
        &sb.path("recipe.yaml"),
        &dtar,
        &["--locked", "--format", "docker-archive"],
    );
    assert!(dtar.is_file() && sb.path("docker.spdx.json").is_file());
}

#[test]
fn push_sends_the_sbom_by_digest_and_the_referrers_tag() {
    if !require("skopeo") {
        return;
    }
    let server = FixtureServer::start(&fixture_repo(), Default::default());
    let sb = Sandbox::new();
    let out = sb.path("out/deb-sbom");
    let image = build(&sb, &server, &out);
    let artifact = jq(
        ".manifests[] | select(.artifactType != null) | .digest",
        &out.join("index.json"),
    );
    let reg = Registry::start(&[]);
    let target = format!("{}/sbom/deb:v1", reg.host());
    let o = run_ok(sb.strata().arg("--json").arg("push").arg(&out).arg(&target));
    let rep: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(rep["digest"], image.as_str());
    assert_eq!(rep["referrers"][0]["digest"], artifact.as_str());
    assert_eq!(rep["referrers"][0]["subject"], image.as_str());
    // Debian's docker-registry has no referrers API: no OCI-Subject, so the tag schema.
    let fallback = format!("sha256-{}", &image[7..]);
    assert_eq!(rep["referrers"][0]["indexed_by"], fallback.as_str());

    // skopeo reads the artifact by digest: the same bytes, the subject the image.
    let repo = format!("docker://{}/sbom/deb", reg.host());
    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("{repo}@{artifact}"),
    ]));
    assert_eq!(raw.stdout, blob(&out, &artifact));
    let m: Value = serde_json::from_slice(&raw.stdout).expect("json");
    assert_eq!(m["subject"]["digest"], image.as_str());
    // The referrers tag names an index listing the artifact with its type.
    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("{repo}:{fallback}"),
    ]));
    let idx: Value = serde_json::from_slice(&raw.stdout).expect("json");
    assert_eq!(idx["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(idx["manifests"][0]["digest"], artifact.as_str());
    assert_eq!(idx["manifests"][0]["artifactType"], "application/spdx+json");
    assert_eq!(idx["manifests"].as_array().map(Vec::len), Some(1));

    // Pushing again keeps one entry per artifact.
    run_ok(sb.strata().arg("push").arg(&out).arg(&target));
    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("{repo}:{fallback}"),
    ]));
    let idx: Value = serde_json::from_slice(&raw.stdout).expect("json");
    assert_eq!(idx["manifests"].as_array().map(Vec::len), Some(1));
}

//! Independent readers: umoci unpacks the layout, skopeo reads layout and archive, and the
//! Docker engine loads the docker-archive and runs the image.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::*;

#[test]
fn umoci_unpacks_the_layout() {
    if !require("umoci") {
        return;
    }
    let sb = Sandbox::new();
    let out = sb.path("out");
    sb.build(&repo().join("recipes/hello.yaml"), &out, &[]);
    let bundle = sb.path("bundle");
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:latest", out.display()))
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    let hello = fs::metadata(rootfs.join("usr/bin/hello")).expect("hello");
    assert_eq!(hello.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::read(rootfs.join("usr/bin/hello")).expect("read"),
        fs::read(repo().join("recipes/hello/hello")).expect("read")
    );
    assert_eq!(
        fs::read_link(rootfs.join("usr/bin/hi"))
            .expect("link")
            .to_string_lossy(),
        "hello"
    );
    let tmp = fs::metadata(rootfs.join("tmp")).expect("tmp");
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).expect("passwd");
    assert!(
        passwd.lines().any(|l| l.starts_with("app:x:1000:1000:")),
        "{passwd}"
    );
    let home = fs::metadata(rootfs.join("home/app")).expect("home");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&home), 1000);
    // The runtime config umoci derives from the image config.
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).expect("config"))
            .expect("json");
    assert_eq!(
        config["process"]["args"],
        serde_json::json!(["/usr/bin/hello", "cmd-from-recipe"])
    );
    assert_eq!(config["process"]["cwd"], "/home/app");
}

#[test]
fn skopeo_reads_layout_and_oci_archive() {
    if !require("skopeo") {
        return;
    }
    let sb = Sandbox::new();
    let out = sb.path("out");
    let digest = sb.build(&repo().join("recipes/hello.yaml"), &out, &[]);
    let o = run_ok(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:latest", out.display())),
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["Digest"], digest.as_str());
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Layers"].as_array().map(|l| l.len()), Some(3));

    let tar = sb.path("hello.tar");
    let d2 = sb.build(
        &repo().join("recipes/hello.yaml"),
        &tar,
        &["--format", "oci-archive"],
    );
    assert_eq!(d2, digest);
    let o = run_ok(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci-archive:{}:latest", tar.display())),
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["Digest"], digest.as_str());
}

/// Removes the Docker image on drop, pass or fail.
struct DockerImage(String);
impl Drop for DockerImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

#[test]
fn docker_loads_and_runs_the_docker_archive() {
    if !require("docker") {
        return;
    }
    let sb = Sandbox::new();
    let tar = sb.path("hello-docker.tar");
    let tag = format!("t{}", std::process::id());
    sb.build(
        &repo().join("recipes/hello.yaml"),
        &tar,
        &["--format", "docker-archive", "--tag", &tag],
    );
    let image = DockerImage(format!("hello:{tag}"));
    let o = run_ok(Command::new("docker").arg("load").arg("-i").arg(&tar));
    assert!(stdout(&o).contains(&image.0), "{}", stdout(&o));
    let o = run_ok(Command::new("docker").args(["run", "--rm", "--network", "none", &image.0]));
    assert_eq!(stdout(&o), "Hello from strata!\ncmd-from-recipe\n");
    let o = run_ok(Command::new("docker").args([
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/usr/bin/hi",
        &image.0,
        "x",
    ]));
    assert_eq!(stdout(&o), "Hello from strata!\nx\n");
    let o = run_ok(Command::new("docker").args([
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{.Config.WorkingDir}}",
        &image.0,
    ]));
    assert_eq!(stdout(&o).trim(), "app /home/app");
}

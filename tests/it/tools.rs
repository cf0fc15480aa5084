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

/// The engine's own version (`docker version` asks the server, not the client).
fn engine_version() -> String {
    let o = run_ok(Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]));
    stdout(&o).trim().to_string()
}

/// Docker 20.10 cannot load an OCI image layout tar (it needs `manifest.json`); strata's
/// docker-archive, and `strata load` through the engine API, must still load there and the
/// image must run. CI runs Debian bookworm's engine, which is 20.10, and says so with
/// STRATA_DOCKER_ENGINE=20.10; elsewhere a newer engine fails this test unless
/// STRATA_SKIP_TOOL_TESTS is set.
#[test]
fn docker_20_10_loads_the_docker_archive_and_refuses_an_oci_archive() {
    if !require("docker") {
        return;
    }
    let version = engine_version();
    let wanted = std::env::var("STRATA_DOCKER_ENGINE").unwrap_or_else(|_| "20.10".into());
    if !version.starts_with(&format!("{wanted}.")) {
        if std::env::var_os("STRATA_SKIP_TOOL_TESTS").is_some() {
            eprintln!("SKIPPED: the Docker engine is {version}, not {wanted}");
            return;
        }
        panic!("this test needs a Docker {wanted} engine, the running one is {version} (Debian bookworm's docker.io is 20.10); set STRATA_SKIP_TOOL_TESTS=1 to skip knowingly");
    }
    let sb = Sandbox::new();
    let tag = format!("e{}", std::process::id());
    let recipe = repo().join("recipes/hello.yaml");

    // The OCI archive of the same recipe: this engine refuses it, as 20.10 does.
    let oci = sb.path("hello-oci.tar");
    sb.build(&recipe, &oci, &["--format", "oci-archive", "--tag", &tag]);
    let _never = DockerImage(format!("hello:{tag}"));
    let o = Command::new("docker")
        .arg("load")
        .arg("-i")
        .arg(&oci)
        .output()
        .expect("docker load");
    assert!(
        !o.status.success(),
        "Docker {version} loaded an OCI archive: {}",
        stdout(&o)
    );

    // The docker-archive, through the CLI.
    let tar = sb.path("hello-docker.tar");
    sb.build(
        &recipe,
        &tar,
        &["--format", "docker-archive", "--tag", &tag],
    );
    let cli = DockerImage(format!("hello:{tag}"));
    let o = run_ok(Command::new("docker").arg("load").arg("-i").arg(&tar));
    assert!(stdout(&o).contains(&cli.0), "{}", stdout(&o));
    let o = run_ok(Command::new("docker").args(["run", "--rm", "--network", "none", &cli.0]));
    assert_eq!(stdout(&o), "Hello from strata!\ncmd-from-recipe\n");

    // The layout, through `strata load` (the engine API, API version 1.41).
    let out = sb.path("out");
    sb.build(&recipe, &out, &[]);
    let api = DockerImage(format!("strata-api:{tag}"));
    run_ok(sb.strata().args(["load", "--tag", &api.0]).arg(&out));
    let o = run_ok(Command::new("docker").args([
        "run",
        "--rm",
        "--network",
        "none",
        &api.0,
        "via-api",
    ]));
    assert_eq!(stdout(&o), "Hello from strata!\nvia-api\n");
    let ids: Vec<String> = [&cli.0, &api.0]
        .iter()
        .map(|i| {
            let o =
                run_ok(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", i]));
            stdout(&o).trim().to_string()
        })
        .collect();
    assert_eq!(
        ids[0], ids[1],
        "the CLI and the API loaded different images"
    );
}

//! The lab on the real Docker engine. The backend and teardown tests use a small image that
//! strata builds from the host's static busybox (`.ci/run` installs busybox-static), whose
//! `salt-master`/`salt-minion` are stand-ins that only sleep: they test containers,
//! networks, files, exec, labels and cleanup, not Salt. The Salt runs themselves are in
//! `lab_salt.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strata::lab::backend::{
    Backend, Bind, ContainerSpec, FileSpec, ResourceKind, VolumeMount, LABEL_LAB, LABEL_ROLE,
};
use strata::lab::docker::DockerBackend;

use crate::{require, run, run_ok, stderr, Sandbox};

/// Lab tests run one at a time: `lab gc` removes every lab on the engine.
pub static LAB_LOCK: Mutex<()> = Mutex::new(());

/// Removes an image tag on drop.
struct ImageTag(String);

impl Drop for ImageTag {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

/// Removes every container and network of `lab` on drop, even when the test fails.
struct LabGuard(String);

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Ok(b) = DockerBackend::from_env() {
            let _ = strata::lab::run::down(&b, &self.0);
        }
    }
}

/// A recipe in `sb` for an image with the host's static busybox as /bin/sh & co., and
/// `salt-master`/`salt-minion`/`salt` scripts that sleep (or fail, for `salt`).
fn busybox_recipe(sb: &Sandbox) -> std::path::PathBuf {
    let dir = sb.path("bb");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::copy("/bin/busybox", dir.join("busybox")).expect("copy /bin/busybox (busybox-static)");
    fs::write(
        dir.join("sleeper"),
        "#!/bin/sh\necho started \"$0\"\nexec sleep 3600\n",
    )
    .expect("write");
    let mut links = String::new();
    for applet in [
        "sh", "sleep", "cat", "echo", "stat", "touch", "ping", "ls", "hostname", "id",
    ] {
        links.push_str(&format!(
            "      - symlink: {{path: /bin/{applet}, target: busybox}}\n"
        ));
    }
    let recipe = dir.join("busybox.yaml");
    fs::write(
        &recipe,
        format!(
            "name: bb\nlayers:\n  - name: bin\n    steps:\n      - copy: {{src: busybox, dest: /bin/busybox, mode: \"0755\"}}\n{links}      - copy: {{src: sleeper, dest: /usr/bin/salt-master, mode: \"0755\"}}\n      - copy: {{src: sleeper, dest: /usr/bin/salt-minion, mode: \"0755\"}}\n      - dir: {{path: /tmp, mode: \"1777\"}}\nconfig:\n  env: {{PATH: /usr/bin:/bin}}\n  cmd: [/bin/sh]\n"
        ),
    )
    .expect("write recipe");
    recipe
}

fn docker_ok() -> bool {
    if !require("docker") {
        return false;
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "/bin/busybox is required (apt-get install busybox-static, or run .ci/run)"
    );
    true
}

#[test]
fn docker_backend_runs_labelled_containers_on_an_internal_network() {
    if !docker_ok() {
        return;
    }
    let _serial = LAB_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let sb = Sandbox::new();
    let recipe = busybox_recipe(&sb);
    let out = sb.path("out/bb");
    sb.build(&recipe, &out, &[]);
    let tag = ImageTag(format!("strata-it/lab-bb:{}", std::process::id()));
    run_ok(sb.strata().arg("load").arg(&out).arg("--tag").arg(&tag.0));

    let lab = format!("it-backend-{}", std::process::id());
    let _guard = LabGuard(lab.clone());
    let b = DockerBackend::from_env().expect("engine");
    let labels = BTreeMap::from([(LABEL_LAB.to_string(), lab.clone())]);
    let net = format!("strata-lab-{lab}");
    b.create_network(&net, &labels).expect("network");
    let volume = format!("strata-lab-{lab}-pycache-bb");
    b.create_volume(&volume, &labels).expect("volume");
    let shared = sb.path("shared");
    fs::create_dir_all(&shared).expect("mkdir");
    fs::write(shared.join("formula.sls"), "from the host\n").expect("write");
    let spec = |who: &str, aliases: Vec<String>| ContainerSpec {
        name: format!("strata-lab-{lab}-{who}"),
        hostname: who.to_string(),
        image: tag.0.clone(),
        network: net.clone(),
        aliases,
        labels: {
            let mut l = labels.clone();
            l.insert(LABEL_ROLE.into(), who.into());
            l
        },
        binds: vec![Bind {
            host: shared.clone(),
            container: "/srv/shared".into(),
            read_only: true,
        }],
        volumes: vec![VolumeMount {
            volume: volume.clone(),
            container: "/var/cache/shared".into(),
        }],
        files: vec![FileSpec {
            path: "/etc/salt/pki/minion/minion.pem".into(),
            content: format!("key of {who}\n").into_bytes(),
            mode: 0o600,
        }],
        cmd: vec!["salt-minion".into()],
        env: vec!["LAB=it".into()],
    };
    let master = spec("master", vec!["salt".into()]);
    let minion = spec("minion", vec![]);
    for c in [&master, &minion] {
        b.create_container(c).expect("create");
        b.start_container(&c.name).expect("start");
    }
    let exec = |cmd: &[&str]| {
        b.exec(
            &minion.name,
            &cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            Duration::from_secs(30),
        )
        .expect("exec")
    };
    // Files put in before start, with their modes.
    let o = exec(&["cat", "/etc/salt/pki/minion/minion.pem"]);
    assert_eq!((o.code, o.stdout.as_str()), (0, "key of minion\n"));
    let o = exec(&["stat", "-c", "%a %u", "/etc/salt/pki/minion/minion.pem"]);
    assert_eq!(o.stdout.trim(), "600 0");
    // The read-only bind mount.
    assert_eq!(
        exec(&["cat", "/srv/shared/formula.sls"]).stdout,
        "from the host\n"
    );
    let o = exec(&["touch", "/srv/shared/x"]);
    assert_ne!(o.code, 0, "the bind is read-only");
    assert!(!shared.join("x").exists());
    // The volume is shared: what the minion writes, the master reads.
    let o = exec(&["sh", "-c", "echo from-minion > /var/cache/shared/f"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = b
        .exec(
            &master.name,
            &["cat".to_string(), "/var/cache/shared/f".into()],
            Duration::from_secs(30),
        )
        .expect("exec");
    assert_eq!(o.stdout, "from-minion\n");
    // Exit codes and stderr come back apart.
    let o = exec(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (3, "out\n", "err\n")
    );
    // An init is PID 1, and the minion finds the master by its alias.
    let o = exec(&["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"]);
    assert!(o.stdout.contains("init"), "PID 1: {}", o.stdout);
    let o = exec(&["ping", "-c", "1", "-W", "5", "salt"]);
    assert_eq!(o.code, 0, "ping salt: {} {}", o.stdout, o.stderr);
    assert_eq!(exec(&["hostname"]).stdout.trim(), "minion");
    // Logs, labels, and the network is internal.
    assert!(b.logs(&master.name).expect("logs").contains("started"));
    let found = b.list(&format!("{LABEL_LAB}={lab}")).expect("list");
    let containers: Vec<_> = found
        .iter()
        .filter(|r| r.kind == ResourceKind::Container)
        .collect();
    assert_eq!(containers.len(), 2, "{found:?}");
    assert!(containers.iter().all(|c| c.running));
    assert!(found
        .iter()
        .any(|r| r.kind == ResourceKind::Network && r.name == net));
    assert!(found
        .iter()
        .any(|r| r.kind == ResourceKind::Volume && r.name == volume));
    let o =
        run_ok(Command::new("docker").args(["network", "inspect", "-f", "{{.Internal}}", &net]));
    assert_eq!(crate::stdout(&o).trim(), "true");
    // A second lab of the same name is refused, naming the fix.
    let e = b.create_network(&net, &labels).expect_err("duplicate");
    assert!(e.to_string().contains("strata lab down"), "{e}");
    // Down removes everything; again, nothing.
    assert_eq!(strata::lab::run::down(&b, &lab).expect("down"), 4);
    assert_eq!(strata::lab::run::down(&b, &lab).expect("down again"), 0);
    assert!(b
        .list(&format!("{LABEL_LAB}={lab}"))
        .expect("list")
        .is_empty());
}

/// A lab of busybox stand-ins: containers start, but no minion ever answers a ping.
fn stand_in_lab(sb: &Sandbox, name: &str, count: usize) -> std::path::PathBuf {
    let recipe = busybox_recipe(sb);
    let dir = sb.path(name);
    fs::create_dir_all(dir.join("salt")).expect("mkdir");
    fs::create_dir_all(dir.join("pillar")).expect("mkdir");
    fs::write(
        dir.join("lab.yaml"),
        format!(
            "name: {name}\nimages:\n  bb: {}\nmaster: {{image: bb}}\nminions:\n  - {{id: \"m{{n}}\", count: {count}, image: bb}}\ntimeouts: {{start: 600}}\nstart_concurrency: 2\n",
            recipe.display()
        ),
    )
    .expect("write lab");
    dir
}

fn lab_containers(lab: &str) -> Vec<String> {
    let o = run_ok(Command::new("docker").args([
        "ps",
        "-a",
        "--filter",
        &format!("label={LABEL_LAB}={lab}"),
        "--format",
        "{{.Names}}",
    ]));
    crate::stdout(&o).lines().map(String::from).collect()
}

fn lab_networks(lab: &str) -> Vec<String> {
    let o = run_ok(Command::new("docker").args([
        "network",
        "ls",
        "--filter",
        &format!("label={LABEL_LAB}={lab}"),
        "--format",
        "{{.Name}}",
    ]));
    crate::stdout(&o).lines().map(String::from).collect()
}

/// Starts `strata lab up` and waits until `n` of its containers exist.
fn up_until_containers(sb: &Sandbox, dir: &Path, lab: &str, n: usize) -> std::process::Child {
    let mut child = sb
        .strata()
        .args(["lab", "up"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata lab up");
    let t0 = Instant::now();
    while lab_containers(lab).len() < n {
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("lab up ended early ({st}): {err}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "lab up made no {n} containers in 300 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child
}

#[test]
fn lab_gc_removes_what_a_killed_lab_up_left() {
    if !docker_ok() {
        return;
    }
    let _serial = LAB_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let sb = Sandbox::new();
    let lab = format!("it-kill-{}", std::process::id());
    let _guard = LabGuard(lab.clone());
    let dir = stand_in_lab(&sb, &lab, 4);
    let mut child = up_until_containers(&sb, &dir, &lab, 3);
    // SIGKILL: no handler runs, the lab is orphaned.
    child.kill().expect("kill");
    let _ = child.wait();
    assert!(!lab_containers(&lab).is_empty(), "the kill left containers");
    assert_eq!(lab_networks(&lab).len(), 1);
    let o = run_ok(sb.strata().args(["lab", "gc"]));
    let removed: usize = crate::stdout(&o).trim().parse().expect("a count");
    assert!(removed >= 4, "removed {removed}");
    assert!(
        lab_containers(&lab).is_empty(),
        "{:?}",
        lab_containers(&lab)
    );
    assert!(lab_networks(&lab).is_empty());
    // gc again: nothing left to remove.
    let o = run_ok(sb.strata().args(["lab", "gc"]));
    assert_eq!(crate::stdout(&o).trim(), "0");
    let _ = Command::new("docker")
        .args(["rmi", "-f", &format!("strata-lab/{lab}-bb:latest")])
        .output();
}

#[test]
fn sigterm_during_lab_up_tears_the_lab_down() {
    if !docker_ok() {
        return;
    }
    let _serial = LAB_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let sb = Sandbox::new();
    let lab = format!("it-term-{}", std::process::id());
    let _guard = LabGuard(lab.clone());
    let dir = stand_in_lab(&sb, &lab, 3);
    let child = up_until_containers(&sb, &dir, &lab, 4);
    let st = run(Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string()));
    assert!(st.status.success());
    let o = child.wait_with_output().expect("wait");
    assert!(!o.status.success(), "an interrupted up fails");
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    assert!(
        lab_containers(&lab).is_empty(),
        "{:?}",
        lab_containers(&lab)
    );
    assert!(lab_networks(&lab).is_empty());
    // `lab down` of a lab that is gone is fine.
    run_ok(sb.strata().args(["lab", "down"]).arg(&dir));
    let _ = Command::new("docker")
        .args(["rmi", "-f", &format!("strata-lab/{lab}-bb:latest")])
        .output();
}

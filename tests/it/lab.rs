//! The lab on the real Docker engine, and on Podman's Docker-compatible API (a private
//! `podman system service` that the test starts). The backend and teardown tests use a small
//! image that strata builds from the host's static busybox (`.ci/run` installs
//! busybox-static), whose `salt-master`/`salt-minion` are stand-ins: they test containers,
//! networks, files, exec, labels and cleanup, not Salt. The Salt runs themselves are in
//! `lab_salt.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strata::docker::{Engine, RequestBody};
use strata::lab::backend::{
    Backend, Bind, ContainerSpec, FileSpec, ResourceKind, VolumeMount, LABEL_LAB, LABEL_PYCACHE,
    LABEL_ROLE,
};
use strata::lab::docker::DockerBackend;

use crate::{require, run, run_ok, stderr, Sandbox};

/// Lab tests run one at a time: `lab gc` removes every lab on the engine.
pub static LAB_LOCK: Mutex<()> = Mutex::new(());

/// An engine the lab tests run against: what strata gets as `DOCKER_HOST`, and the backend
/// on it.
pub struct TestEngine {
    pub docker_host: String,
    pub backend: DockerBackend,
}

impl TestEngine {
    /// The Docker engine (`DOCKER_HOST`, else the default socket).
    pub fn docker() -> TestEngine {
        let backend = DockerBackend::from_env().expect("the Docker engine answers");
        TestEngine {
            docker_host: format!("unix://{}", backend.engine.socket.display()),
            backend,
        }
    }

    /// `strata` in `sb`, talking to this engine.
    pub fn strata(&self, sb: &Sandbox) -> Command {
        let mut c = sb.strata();
        c.env("DOCKER_HOST", &self.docker_host);
        c
    }
}

/// Removes an image tag on drop, through the engine's API.
struct ImageTag(Engine, String);

impl Drop for ImageTag {
    fn drop(&mut self) {
        let _ = self.0.request(
            "DELETE",
            &format!("/images/{}?force=1", self.1),
            RequestBody::Empty,
        );
    }
}

/// Removes every container, network and volume of `lab` on drop, even when the test fails.
struct LabGuard(Option<DockerBackend>, String);

impl LabGuard {
    fn docker(lab: &str) -> LabGuard {
        LabGuard(DockerBackend::from_env().ok(), lab.to_string())
    }

    fn on(engine: &TestEngine, lab: &str) -> LabGuard {
        LabGuard(Some(engine.backend.clone()), lab.to_string())
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            let _ = strata::lab::run::down(b, &self.1);
            // The bytecode caches its `up` made outlive `down`; remove them as `lab gc` does
            // (every unused one: lab tests run one at a time).
            for r in b.list(LABEL_PYCACHE).unwrap_or_default() {
                if r.kind == ResourceKind::Volume {
                    let _ = b.remove_volume_if_unused(&r.name);
                }
            }
        }
    }
}

/// A private Podman service on a socket in a temp dir, with its own storage (vfs), run
/// directory, network configs and namespaces, so nothing touches the Docker engine or
/// another Podman. On drop the containers it made are removed, the service is killed by its
/// PID and the directory removed.
pub struct PodmanService {
    dir: tempfile::TempDir,
    child: Child,
}

/// The hard limit `name` (a line of /proc/self/limits, e.g. "Max open files") of this
/// process, which the service inherits.
fn hard_limit(name: &str) -> u64 {
    let limits = fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name:?} in /proc/self/limits"));
    let hard = line[name.len()..].split_whitespace().nth(1).unwrap_or("");
    hard.parse().unwrap_or(u64::MAX)
}

impl PodmanService {
    pub fn start() -> PodmanService {
        // Init: true runs the engine's init; Podman's is catatonit.
        assert!(
            Path::new("/usr/libexec/podman/catatonit").exists(),
            "/usr/libexec/podman/catatonit is required by Podman for Init: true (apt-get install catatonit, or run .ci/run)"
        );
        let dir = tempfile::Builder::new()
            .prefix("strata-podman-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        // Rootful Podman raises a container's RLIMIT_NOFILE and RLIMIT_NPROC (to 1048576 and
        // more) unless told otherwise; without CAP_SYS_RESOURCE (an unprivileged sandbox, a
        // CI container) that fails with "error setting rlimit type 7: operation not
        // permitted". `default_ulimits` within the service's own hard limits avoids it.
        // The other settings keep the service's run state and network configs in `dir`.
        let nofile = hard_limit("Max open files").min(1 << 20);
        let nproc = hard_limit("Max processes").min(4096);
        fs::write(
            d.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\
                 [engine]\ntmp_dir = \"{tmp}\"\nevents_logger = \"file\"\n\
                 [network]\nnetwork_config_dir = \"{net}\"\n",
                tmp = d.join("tmp").display(),
                net = d.join("networks").display(),
            ),
        )
        .expect("write containers.conf");
        let log = fs::File::create(d.join("service.log")).expect("log");
        // In network, mount and PID namespaces of its own: `unshare` forks sh, which execs
        // podman as the namespace's PID 1, killed when `unshare` (the child we keep) dies,
        // and with it every process it started (conmon, containers, aardvark-dns).
        // Its bridges and firewall rules stay out of the host's: on a host where Docker
        // runs, Docker's iptables FORWARD policy DROP (bridged traffic passes iptables) would
        // drop the traffic between containers of a Podman `internal` network, for which
        // netavark adds no accept rule. And tmpfs on /run/containers and /run/netns hold
        // netavark's run state (IPAM, aardvark-dns) and the containers' network namespaces,
        // which rootful Podman 4.3 keeps there whatever its storage: shared, the aardvark-dns
        // of one service (in its own network namespace) would answer for all.
        let mut svc = Command::new("unshare");
        svc.env("CONTAINERS_CONF", d.join("containers.conf"))
            .args(["--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"])
            .args(["--", "sh", "-c"])
            .arg("for d in /run/containers /run/netns; do mkdir -p $d && mount -t tmpfs -o mode=0755 strata-podman $d || exit 1; done; exec \"$@\"")
            .args(["sh", "podman", "--storage-driver", "vfs", "--root"])
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["system", "service", "--time", "0"])
            .arg(format!("unix://{}", d.join("podman.sock").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = svc.spawn().expect("spawn podman system service");
        let mut p = PodmanService { dir, child };
        let engine = p.engine();
        let t0 = Instant::now();
        loop {
            let r = engine
                .backend
                .engine
                .request("GET", "/v1.41/version", RequestBody::Empty);
            if matches!(&r, Ok(r) if r.status == 200) {
                return p;
            }
            if let Ok(Some(st)) = p.child.try_wait() {
                panic!("podman system service ended ({st}):\n{}", p.log());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "podman system service did not answer in 60 s: {r:?}\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("service.log")).unwrap_or_default()
    }

    pub fn engine(&self) -> TestEngine {
        let socket = self.dir.path().join("podman.sock");
        TestEngine {
            docker_host: format!("unix://{}", socket.display()),
            backend: DockerBackend {
                engine: Engine { socket },
            },
        }
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        // What a failed test left, through the service (it runs in its own network
        // namespace): containers first (they hold mounts under `dir`), then networks.
        let e = self.engine().backend.engine;
        if let Ok(v) = e.get_json("/containers/json?all=1") {
            for c in v.as_array().into_iter().flatten() {
                if let Some(id) = c["Id"].as_str() {
                    let _ = e.request(
                        "DELETE",
                        &format!("/containers/{id}?force=true&v=true"),
                        RequestBody::Empty,
                    );
                }
            }
        }
        if let Ok(v) = e.get_json("/networks") {
            for n in v.as_array().into_iter().flatten() {
                match n["Name"].as_str() {
                    Some(name) if name != "podman" => {
                        let _ =
                            e.request("DELETE", &format!("/networks/{name}"), RequestBody::Empty);
                    }
                    _ => {}
                }
            }
        }
        // SIGKILL to `unshare`: the service, PID 1 of its namespace, gets SIGKILL too
        // (--kill-child), and with it whatever is left in the namespace.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A recipe in `sb` for an image with the host's static busybox as /bin/sh & co., and
/// `salt-master`/`salt-minion` stand-ins that sleep. With `answering`, the stand-in minion
/// first reaches the master by its alias `salt` on the lab network, then leaves its id in
/// the image's shared volume, and a stand-in `salt` in the master answers `test.ping` (as
/// `salt --out=json … -L ID,ID test.ping` prints it) for the minions that did; without it
/// there is no `salt` and no minion ever answers.
fn busybox_recipe(sb: &Sandbox, answering: bool) -> PathBuf {
    let dir = sb.path("bb");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::copy("/bin/busybox", dir.join("busybox")).expect("copy /bin/busybox (busybox-static)");
    fs::write(
        dir.join("sleeper"),
        "#!/bin/sh\necho started \"$0\"\nexec sleep 3600\n",
    )
    .expect("write");
    let up = "/var/cache/strata-lab/pycache/up";
    fs::write(
        dir.join("minion"),
        format!("#!/bin/sh\necho started \"$0\"\nuntil ping -c 1 -W 1 salt >/dev/null 2>&1; do sleep 0.2; done\nmkdir -p {up} && hostname > {up}/$(hostname)\nexec sleep 3600\n"),
    )
    .expect("write");
    fs::write(
        dir.join("salt"),
        format!("#!/bin/sh\nwhile [ \"$1\" != -L ]; do shift; done\nsep='{{'\nfor id in $(echo \"$2\" | tr , ' '); do\n  if [ -f {up}/$id ]; then printf '%s\"%s\": true' \"$sep\" \"$id\"; sep=', '; fi\ndone\n[ \"$sep\" = '{{' ] && printf '{{'\necho '}}'\n"),
    )
    .expect("write");
    let mut links = String::new();
    for applet in [
        "sh", "sleep", "cat", "echo", "stat", "touch", "ping", "ls", "hostname", "id", "tr",
        "mkdir",
    ] {
        links.push_str(&format!(
            "      - symlink: {{path: /bin/{applet}, target: busybox}}\n"
        ));
    }
    let (minion, salt) = if answering {
        (
            "minion",
            "      - copy: {src: salt, dest: /usr/bin/salt, mode: \"0755\"}\n",
        )
    } else {
        ("sleeper", "")
    };
    // An image of its own for each run, so the bytecode cache volume that `up` keeps per
    // image (here: where the stand-ins leave their ids) starts empty.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    fs::write(
        dir.join("run-id"),
        format!("{} {nanos}\n", std::process::id()),
    )
    .expect("write");
    let recipe = dir.join("busybox.yaml");
    fs::write(
        &recipe,
        format!(
            "name: bb\nlayers:\n  - name: bin\n    steps:\n      - copy: {{src: run-id, dest: /etc/strata-it-run}}\n      - copy: {{src: busybox, dest: /bin/busybox, mode: \"0755\"}}\n{links}      - copy: {{src: sleeper, dest: /usr/bin/salt-master, mode: \"0755\"}}\n      - copy: {{src: {minion}, dest: /usr/bin/salt-minion, mode: \"0755\"}}\n{salt}      - dir: {{path: /tmp, mode: \"1777\"}}\nconfig:\n  env: {{PATH: /usr/bin:/bin}}\n  cmd: [/bin/sh]\n"
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
    backend_checks(&TestEngine::docker());
}

fn podman_ok() -> bool {
    docker_ok() && require("podman")
}

#[test]
fn podman_backend_runs_labelled_containers_on_an_internal_network() {
    if !podman_ok() {
        return;
    }
    let podman = PodmanService::start();
    backend_checks(&podman.engine());
}

/// The backend on `engine`: an internal network, a volume, labelled containers with an init,
/// files put in before start, a read-only bind, exec with exit codes and stderr apart, logs,
/// listing by label, and removal.
fn backend_checks(engine: &TestEngine) {
    let sb = Sandbox::new();
    let recipe = busybox_recipe(&sb, false);
    let out = sb.path("out/bb");
    sb.build(&recipe, &out, &[]);
    let tag = ImageTag(
        engine.backend.engine.clone(),
        format!("strata-it/lab-bb:{}", std::process::id()),
    );
    run_ok(
        engine
            .strata(&sb)
            .arg("load")
            .arg(&out)
            .arg("--tag")
            .arg(&tag.1),
    );

    let lab = format!("it-backend-{}", std::process::id());
    let _guard = LabGuard::on(engine, &lab);
    let b = &engine.backend;
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
        image: tag.1.clone(),
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
    // `lab gc` lists by the label's key alone.
    let all = b.list(LABEL_LAB).expect("list by key");
    assert!(
        found.iter().all(|r| all.iter().any(|a| a.name == r.name)),
        "{all:?}"
    );
    assert!(containers.iter().all(|c| c.running));
    assert!(found
        .iter()
        .any(|r| r.kind == ResourceKind::Network && r.name == net));
    assert!(found
        .iter()
        .any(|r| r.kind == ResourceKind::Volume && r.name == volume));
    let inspected = b
        .engine
        .get_json(&format!("/networks/{net}"))
        .expect("network inspect");
    assert_eq!(inspected["Internal"], true, "{inspected}");
    // A second lab of the same name is refused, naming the fix.
    let e = b.create_network(&net, &labels).expect_err("duplicate");
    assert!(e.to_string().contains("strata lab down"), "{e}");
    // Down removes everything; again, nothing.
    assert_eq!(strata::lab::run::down(b, &lab).expect("down"), 4);
    assert_eq!(strata::lab::run::down(b, &lab).expect("down again"), 0);
    assert!(b
        .list(&format!("{LABEL_LAB}={lab}"))
        .expect("list")
        .is_empty());
}

/// A lab of busybox stand-ins: containers start, but no minion ever answers a ping unless
/// `answering` (see [`busybox_recipe`]).
fn stand_in_lab(sb: &Sandbox, name: &str, count: usize, answering: bool) -> PathBuf {
    let recipe = busybox_recipe(sb, answering);
    let dir = sb.path(name);
    fs::create_dir_all(dir.join("salt")).expect("mkdir");
    fs::create_dir_all(dir.join("pillar")).expect("mkdir");
    fs::write(
        dir.join("lab.yaml"),
        format!(
            "name: {name}\nimages:\n  bb: {}\nmaster: {{image: bb}}\nminions:\n  - {{id: \"m{{n}}\", count: {count}, image: bb}}\ntimeouts: {{start: {start}}}\nstart_concurrency: 2\n",
            recipe.display(),
            start = if answering { 60 } else { 600 },
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
    let _guard = LabGuard::docker(&lab);
    let dir = stand_in_lab(&sb, &lab, 4, false);
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
    let _guard = LabGuard::docker(&lab);
    let dir = stand_in_lab(&sb, &lab, 3, false);
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

#[test]
fn lab_up_status_exec_down_of_stand_ins_on_docker() {
    if !docker_ok() {
        return;
    }
    let _serial = LAB_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    lab_up_down_checks(&TestEngine::docker());
}

#[test]
fn lab_up_status_exec_down_of_stand_ins_on_podman() {
    if !podman_ok() {
        return;
    }
    let podman = PodmanService::start();
    lab_up_down_checks(&podman.engine());
}

/// `strata lab up|status|exec|down` through `DOCKER_HOST` on `engine`, with stand-ins that
/// answer `test.ping` once they reached the master by its alias.
fn lab_up_down_checks(engine: &TestEngine) {
    let sb = Sandbox::new();
    let lab = format!("it-up-{}", std::process::id());
    let _guard = LabGuard::on(engine, &lab);
    let image = ImageTag(
        engine.backend.engine.clone(),
        format!("strata-lab/{lab}-bb:latest"),
    );
    let dir = stand_in_lab(&sb, &lab, 2, true);
    let o = run_ok(engine.strata(&sb).args(["lab", "up"]).arg(&dir));
    assert!(stderr(&o).contains("2 minions"), "{}", stderr(&o));
    let o = run_ok(engine.strata(&sb).args(["lab", "status"]).arg(&dir));
    let status = crate::stdout(&o);
    for who in ["master", "m1", "m2"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("strata-lab-{lab}-{who} ")))
            .unwrap_or_else(|| panic!("no {who} in\n{status}"));
        assert!(line.ends_with(" running"), "{line}");
    }
    assert!(
        status.contains(&format!("network strata-lab-{lab}\n")),
        "{status}"
    );
    // The config strata put into the minion before it started.
    let o = run_ok(engine.strata(&sb).args(["lab", "exec"]).arg(&dir).args([
        "m2",
        "--",
        "cat",
        "/etc/salt/minion.d/strata.conf",
    ]));
    assert!(
        crate::stdout(&o).contains("id: m2"),
        "{}",
        crate::stdout(&o)
    );
    let o = run(engine
        .strata(&sb)
        .args(["lab", "exec"])
        .arg(&dir)
        .args(["m1", "--", "sh", "-c", "exit 5"]));
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    run_ok(engine.strata(&sb).args(["lab", "down"]).arg(&dir));
    assert!(engine
        .backend
        .list(&format!("{LABEL_LAB}={lab}"))
        .expect("list")
        .is_empty());
    // The image's bytecode cache is kept for the next `up`, with what it holds.
    let caches = engine.backend.list(LABEL_PYCACHE).expect("list");
    let cache = caches
        .iter()
        .find(|r| r.kind == ResourceKind::Volume && r.name.starts_with("strata-lab-pycache-"))
        .unwrap_or_else(|| panic!("no kept bytecode cache: {caches:?}"));
    assert!(
        cache.labels[LABEL_PYCACHE].starts_with("sha256:"),
        "{:?}",
        cache.labels
    );
    let o = run_ok(engine.strata(&sb).args(["lab", "status"]).arg(&dir));
    assert!(
        crate::stdout(&o).contains("is down"),
        "{}",
        crate::stdout(&o)
    );
    run_ok(engine.strata(&sb).args(["lab", "down"]).arg(&dir));
    // Up again: the engine has the image already (its id is the config's digest).
    let o = run_ok(engine.strata(&sb).args(["lab", "up"]).arg(&dir));
    assert!(stderr(&o).contains("(loaded already)"), "{}", stderr(&o));
    run_ok(engine.strata(&sb).args(["lab", "down"]).arg(&dir));
    // gc removes the cache once no container uses it.
    run_ok(engine.strata(&sb).args(["lab", "gc"]));
    assert!(
        !engine
            .backend
            .list(LABEL_PYCACHE)
            .expect("list")
            .iter()
            .any(|r| r.name == cache.name),
        "gc left {}",
        cache.name
    );
    drop(image);
}

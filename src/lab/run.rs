//! Driving a planned lab on a [`Backend`]: up (network, master, minions started
//! concurrently under a bound, then waiting until every minion answers), apply, down and
//! gc. Anything that fails half-way tears down what it made.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use super::backend::ContainerSpec;
use super::backend::{Backend, BackendError, ResourceKind, LABEL_LAB, LABEL_PYCACHE};
use super::plan::{custom_module_dirs, LabPlan, WARM_PYCACHE};
use super::report::{Run, RunKind};
use super::results::parse_returns;

/// Pause between two pings while waiting for minions.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait for the bytecode cache of one image to fill (see [`WARM_PYCACHE`]).
pub const WARM_TIMEOUT: Duration = Duration::from_secs(300);
/// Salt's own `-t` for a ping round of a few minions; see [`ping_timeout_s`].
pub const PING_SALT_TIMEOUT_S: u64 = 5;
/// The longest `-t` of a ping round.
pub const PING_SALT_TIMEOUT_MAX_S: u64 = 30;
/// How long the `salt` command of a ping round may take beyond its `-t`: starting the
/// Salt CLI (a Python process) on a master whose machine is busy starting minions.
pub const PING_EXEC_GRACE: Duration = Duration::from_secs(120);

/// Salt's `-t` for a ping round of `missing` minions: 5 s, plus 1 s for every two minions,
/// up to 30 s. Each round makes every minion asked fork a job; with a short `-t`, minions
/// that answer late on a busy machine are asked again and again, and those extra jobs are
/// what keeps the machine busy (50 minions on 2 cores never all answered with 5 s).
pub fn ping_timeout_s(missing: usize) -> u64 {
    (PING_SALT_TIMEOUT_S + missing as u64 / 2).min(PING_SALT_TIMEOUT_MAX_S)
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("minions not answering after {seconds} s: {missing}")]
    NotAnswering { seconds: u64, missing: String },
    #[error("cannot read Salt's answer on the master: {0}")]
    Salt(String),
    #[error("interrupted")]
    Interrupted,
}

/// Set by a signal handler; long waits check it and stop.
pub static INTERRUPTED: LazyLock<Arc<AtomicBool>> =
    LazyLock::new(|| Arc::new(AtomicBool::new(false)));

fn check_interrupted() -> Result<(), LabError> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err(LabError::Interrupted)
    } else {
        Ok(())
    }
}

/// Starts the lab. On any failure, removes everything it created and returns the error.
/// The network comes first: when it cannot be made (a lab of this name is up already),
/// nothing was created and nothing is removed, so a running lab is left alone.
pub fn up(
    b: &dyn Backend,
    plan: &LabPlan,
    concurrency: usize,
    start_timeout: Duration,
) -> Result<(), LabError> {
    b.create_network(&plan.network, &plan.labels)?;
    let r = up_inner(b, plan, concurrency, start_timeout);
    if r.is_err() {
        let _ = down(b, &plan.lab);
    }
    r
}

fn up_inner(
    b: &dyn Backend,
    plan: &LabPlan,
    concurrency: usize,
    start_timeout: Duration,
) -> Result<(), LabError> {
    for v in &plan.volumes {
        b.create_volume(&v.name, &v.labels)?;
    }
    b.create_container(&plan.master)?;
    b.start_container(&plan.master.name)?;
    if let Some(apt) = &plan.apt {
        b.create_container(apt)?;
        b.start_container(&apt.name)?;
    }
    // The first container of each image fills its image's bytecode cache, then the rest
    // start warm.
    let warm_cmd = ["python3".to_string(), "-c".into(), WARM_PYCACHE.into()];
    let mut pilots = Vec::new();
    for name in &plan.warm {
        check_interrupted()?;
        if let Some(spec) = plan.minions.iter().find(|m| &m.name == name) {
            b.create_container(spec)?;
            b.start_container(name)?;
            pilots.push(name.as_str());
        }
        // Only a speed-up: an image without Python or Salt starts cold.
        let _ = b.exec(name, &warm_cmd, WARM_TIMEOUT);
    }
    let rest: Vec<&ContainerSpec> = plan
        .minions
        .iter()
        .filter(|m| !pilots.contains(&m.name.as_str()))
        .collect();
    // A fixed number of workers take minions off a shared counter: at most `concurrency`
    // creations in flight, and the first error stops the others from taking more.
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<BackendError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..concurrency.max(1).min(rest.len().max(1)) {
            s.spawn(|| loop {
                if first_error.lock().map(|e| e.is_some()).unwrap_or(true)
                    || INTERRUPTED.load(Ordering::SeqCst)
                {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(spec) = rest.get(i) else {
                    return;
                };
                let r = b
                    .create_container(spec)
                    .and_then(|()| b.start_container(&spec.name));
                if let Err(e) = r {
                    if let Ok(mut slot) = first_error.lock() {
                        slot.get_or_insert(e);
                    }
                    return;
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e.into());
    }
    check_interrupted()?;
    wait_for_minions(b, plan, start_timeout)
}

/// Pings from the master until every minion has answered `true` once; see
/// [`wait_with`].
pub fn wait_for_minions(
    b: &dyn Backend,
    plan: &LabPlan,
    timeout: Duration,
) -> Result<(), LabError> {
    wait_with(
        b,
        plan,
        timeout,
        Pacing {
            stall: STALL_ROUND_AFTER,
            unlisted_every: UNLISTED_ROUND_EVERY,
        },
    )
}

/// When [`wait_with`] asks again: the minions it asked, after `stall` without a round; the
/// minions the master's cache does not show, every `unlisted_every`.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub stall: Duration,
    pub unlisted_every: Duration,
}

/// How long after a round the minions it asked that did not answer are asked again.
pub const STALL_ROUND_AFTER: Duration = Duration::from_secs(10);
/// How often the minions that the master's data cache does not show are pinged anyway
/// (a master with `minion_data_cache: False`, say), with a short `-t`.
pub const UNLISTED_ROUND_EVERY: Duration = Duration::from_secs(30);
/// Salt's `-t` for those: most of them cannot have got the ping.
pub const UNLISTED_SALT_TIMEOUT_S: u64 = 5;

/// Lists the master's minion data cache (`CACHEDIR/grains`, `CACHEDIR/minions`): Salt
/// stores a minion's grains there when it compiles the minion's pillar, which a minion asks
/// for once its publish channel is connected (Salt 3008: `grains/ID.p`; earlier releases:
/// `minions/ID/`).
fn ready_hint(cachedir: &str) -> Vec<String> {
    let q = |p: String| format!("'{}'", p.replace('\'', r"'\''"));
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "ls {} {} 2>/dev/null; true",
            q(format!("{cachedir}/grains")),
            q(format!("{cachedir}/minions"))
        ),
    ]
}

/// The minion ids in [`ready_hint`]'s output.
fn ready_ids(out: &str) -> Vec<String> {
    out.split_whitespace()
        .filter(|w| !w.ends_with(':'))
        .map(|w| w.strip_suffix(".p").unwrap_or(w).to_string())
        .collect()
}

/// The wait for every minion to answer `test.ping`. A minion only gets a ping published
/// after it connected, and a `salt` round waits its whole `-t` for a listed minion that
/// never got it; pinging every minion while most are still starting costs a round's length
/// in waiting (30 s and more at 50 minions), and asking a slow minion again makes it fork
/// another job. So each minion is pinged as soon as the master's data cache shows it
/// connected ([`ready_hint`]); a minion that was asked and did not answer is asked again
/// once no round has run for `pacing.stall`; and every `pacing.unlisted_every` the minions
/// the cache does not show are pinged with a short `-t`.
pub fn wait_with(
    b: &dyn Backend,
    plan: &LabPlan,
    timeout: Duration,
    pacing: Pacing,
) -> Result<(), LabError> {
    let start = Instant::now();
    let mut missing = plan.minion_ids.clone();
    let mut asked: std::collections::BTreeSet<String> = Default::default();
    let mut last_round = Instant::now();
    let mut last_unlisted = Instant::now();
    let hint_cmd = ready_hint(&plan.master_cachedir);
    loop {
        check_interrupted()?;
        let connected = b
            .exec(&plan.master.name, &hint_cmd, PING_EXEC_GRACE)
            .map(|o| ready_ids(&o.stdout))
            .unwrap_or_default();
        let (listed, unlisted): (Vec<String>, Vec<String>) = missing
            .iter()
            .filter(|id| !asked.contains(*id))
            .cloned()
            .partition(|id| connected.contains(id));
        let again: Vec<String> = missing
            .iter()
            .filter(|id| asked.contains(*id))
            .cloned()
            .collect();
        let (targets, t) = if !listed.is_empty() {
            asked.extend(listed.iter().cloned());
            let t = ping_timeout_s(listed.len());
            (listed, t)
        } else if !again.is_empty() && last_round.elapsed() >= pacing.stall {
            let t = ping_timeout_s(again.len());
            (again, t)
        } else if !unlisted.is_empty() && last_unlisted.elapsed() >= pacing.unlisted_every {
            last_unlisted = Instant::now();
            (unlisted, UNLISTED_SALT_TIMEOUT_S)
        } else {
            (Vec::new(), 0)
        };
        if !targets.is_empty() {
            let cmd = salt_cmd(&targets, t, &["test.ping"]);
            if let Ok(out) = b.exec(
                &plan.master.name,
                &cmd,
                Duration::from_secs(t) + PING_EXEC_GRACE,
            ) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(out.stdout.trim()) {
                    missing.retain(|id| v.get(id.as_str()) != Some(&serde_json::Value::Bool(true)));
                }
            }
            last_round = Instant::now();
        }
        if missing.is_empty() {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(LabError::NotAnswering {
                seconds: timeout.as_secs(),
                missing: missing.join(", "),
            });
        }
        std::thread::sleep(PING_INTERVAL);
    }
}

/// `salt --static --out=json -t T -L id,id … ARGS`: one JSON object, listed minions only.
fn salt_cmd(ids: &[String], timeout_s: u64, args: &[&str]) -> Vec<String> {
    let mut c: Vec<String> = ["salt", "--static", "--out=json", "--no-color", "-t"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    c.push(timeout_s.to_string());
    c.push("-L".into());
    c.push(ids.join(","));
    c.extend(args.iter().map(|s| s.to_string()));
    c
}

/// One `state.apply` (highstate, or the given SLS) over every minion. When the file roots
/// hold custom modules, a `saltutil.sync_all` comes first (the minions run with
/// `autoload_dynamic_modules` off), so an edited or new module is used by this run.
pub fn apply(
    b: &dyn Backend,
    plan: &LabPlan,
    kind: RunKind,
    sls: &[String],
    timeout: Duration,
) -> Result<Run, LabError> {
    let mut args = vec!["state.apply".to_string()];
    if !sls.is_empty() {
        args.push(sls.join(","));
    }
    if kind == RunKind::DryRun {
        args.push("test=True".into());
    }
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let cmd = salt_cmd(&plan.minion_ids, timeout.as_secs(), &arg_refs);
    let started = Instant::now();
    if !custom_module_dirs(plan).is_empty() {
        let sync = salt_cmd(&plan.minion_ids, timeout.as_secs(), &["saltutil.sync_all"]);
        let out = b.exec(&plan.master.name, &sync, timeout + Duration::from_secs(30))?;
        if out.code != 0 {
            return Err(LabError::Salt(format!(
                "saltutil.sync_all of the custom modules failed (exit code {}): {}; stderr: {}",
                out.code,
                out.stdout.trim(),
                out.stderr.trim()
            )));
        }
    }
    let out = b.exec(&plan.master.name, &cmd, timeout + Duration::from_secs(30))?;
    let minions = parse_returns(&out.stdout, &plan.minion_ids)
        .map_err(|e| LabError::Salt(format!("{e}; stderr: {}", out.stderr.trim())))?;
    Ok(Run {
        kind,
        target: if sls.is_empty() {
            "highstate".into()
        } else {
            sls.join(",")
        },
        minions,
        salt_exit_code: Some(out.code as i32),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Removes every container, then every network and volume, labelled with this lab.
/// Idempotent.
pub fn down(b: &dyn Backend, lab: &str) -> Result<usize, LabError> {
    remove_labelled(b, &format!("{LABEL_LAB}={lab}"))
}

/// Removes the resources of every lab (orphans of crashed or killed runs included), and
/// the shared bytecode caches that no container uses any more.
pub fn gc(b: &dyn Backend) -> Result<usize, LabError> {
    let mut n = remove_labelled(b, LABEL_LAB)?;
    for r in b.list(LABEL_PYCACHE)? {
        if r.kind == ResourceKind::Volume && b.remove_volume_if_unused(&r.name)? {
            n += 1;
        }
    }
    Ok(n)
}

/// How many containers `down` and `gc` remove at once: the engine stops and removes each
/// one in its own time (about 0.15 s for a minion here), so one at a time made a 50-minion
/// teardown take 8 s.
pub const REMOVE_CONCURRENCY: usize = 8;

fn remove_labelled(b: &dyn Backend, filter: &str) -> Result<usize, LabError> {
    let found = b.list(filter)?;
    let containers: Vec<&str> = found
        .iter()
        .filter(|r| r.kind == ResourceKind::Container)
        .map(|r| r.name.as_str())
        .collect();
    // Workers take containers off a shared counter; every container is tried, and the
    // first error is returned once all are done.
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<BackendError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..REMOVE_CONCURRENCY.min(containers.len()) {
            s.spawn(|| {
                while let Some(name) = containers.get(next.fetch_add(1, Ordering::SeqCst)) {
                    if let Err(e) = b.remove_container(name) {
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e.into());
    }
    let mut n = containers.len();
    for r in found.iter().filter(|r| r.kind == ResourceKind::Network) {
        b.remove_network(&r.name)?;
        n += 1;
    }
    for r in found.iter().filter(|r| r.kind == ResourceKind::Volume) {
        b.remove_volume(&r.name)?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::backend::FakeBackend;
    use crate::lab::plan::{plan, KeyPair};
    use crate::lab::spec::parse_str;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn lab_plan(n: usize) -> LabPlan {
        plan_of(
            &format!("name: t\nimages: {{m: m.yaml}}\nmaster: {{image: m}}\nminions:\n  - {{id: \"w{{n}}\", count: {n}, image: m}}\n"),
            Path::new("/labs/t"),
        )
    }

    /// The plan of the lab file `yaml` in directory `dir`: stand-in keys for every minion,
    /// its one image `m` as `img`.
    fn plan_of(yaml: &str, dir: &Path) -> LabPlan {
        let lab = parse_str(yaml, &dir.join("lab.yaml"), dir).expect("lab");
        let keys = lab
            .minions
            .iter()
            .map(|m| {
                (
                    m.id.clone(),
                    KeyPair {
                        private_pem: "k".into(),
                        public_pem: "p".into(),
                    },
                )
            })
            .collect();
        plan(&lab, &BTreeMap::from([("m".into(), "img".into())]), &keys).expect("plan")
    }

    /// A fake engine whose master answers `test.ping` for `ids`, and whose data cache
    /// shows every minion of the plan connected.
    fn answering(p: &LabPlan, ids: &[String]) -> FakeBackend {
        let b = FakeBackend::default();
        b.state
            .lock()
            .expect("lock")
            .exec_answers
            .insert(p.master.name.clone(), (0, pings(ids)));
        connected(&b, p, &p.minion_ids);
        b
    }

    /// The master's data cache lists `ids` (as `ls` of Salt 3008's `grains` bank does).
    fn connected(b: &FakeBackend, p: &LabPlan, ids: &[String]) {
        let ls: String = std::iter::once("/var/cache/salt/master/grains:".to_string())
            .chain(ids.iter().map(|i| format!("{i}.p")))
            .collect::<Vec<_>>()
            .join("\n");
        b.state
            .lock()
            .expect("lock")
            .exec_answers_by_program
            .insert((p.master.name.clone(), "sh".into()), (0, ls));
    }

    /// The lab's network and master, running, on `b`.
    fn master_up(b: &FakeBackend, p: &LabPlan) {
        b.create_network(&p.network, &p.labels).expect("network");
        for v in &p.volumes {
            b.create_volume(&v.name, &v.labels).expect("volume");
        }
        b.create_container(&p.master).expect("create");
        b.start_container(&p.master.name).expect("start");
    }

    /// A fake engine with the lab's master running, answering `test.ping` for `answering`,
    /// its data cache showing `connected`.
    fn waiting_master(p: &LabPlan, answering: &[String], connected_ids: &[String]) -> FakeBackend {
        let b = FakeBackend::default();
        b.state
            .lock()
            .expect("lock")
            .exec_answers
            .insert(p.master.name.clone(), (0, pings(answering)));
        connected(&b, p, connected_ids);
        master_up(&b, p);
        b
    }

    fn ping_calls(b: &FakeBackend) -> Vec<String> {
        let calls = b.state.lock().expect("lock").calls.clone();
        calls
            .into_iter()
            .filter(|c| c.ends_with("test.ping"))
            .collect()
    }

    fn pings(ids: &[String]) -> String {
        let m: serde_json::Map<String, serde_json::Value> = ids
            .iter()
            .map(|i| (i.clone(), serde_json::Value::Bool(true)))
            .collect();
        serde_json::Value::Object(m).to_string()
    }

    #[test]
    fn up_of_a_lab_that_is_up_fails_and_leaves_it_running() {
        let p = lab_plan(3);
        let b = answering(&p, &p.minion_ids);
        up(&b, &p, 2, Duration::from_secs(5)).expect("up");
        let err = up(&b, &p, 2, Duration::from_secs(5)).expect_err("second up");
        assert!(err.to_string().contains("exists already"), "{err}");
        let s = b.state.lock().expect("lock");
        assert_eq!(s.containers.len(), 4, "the running lab is kept");
        assert!(s.containers.values().all(|c| c.1), "all still running");
        assert!(s.networks.contains_key(&p.network));
    }

    #[test]
    fn up_starts_everything_under_the_bound_and_down_removes_it() {
        let p = lab_plan(20);
        let b = answering(&p, &p.minion_ids);
        up(&b, &p, 4, Duration::from_secs(5)).expect("up");
        {
            let s = b.state.lock().expect("lock");
            assert_eq!(s.containers.len(), 21);
            assert!(s.containers.values().all(|c| c.1), "all running");
            assert!(
                s.max_concurrent_creates <= 4,
                "{}",
                s.max_concurrent_creates
            );
            assert!(
                s.max_concurrent_creates >= 2,
                "creations overlapped: {}",
                s.max_concurrent_creates
            );
        }
        // 21 containers, the network and the one bytecode volume.
        assert_eq!(down(&b, "t").expect("down"), 23);
        {
            let s = b.state.lock().expect("lock");
            assert!(
                (2..=REMOVE_CONCURRENCY).contains(&s.max_concurrent_removes),
                "removals overlapped, within the bound: {}",
                s.max_concurrent_removes
            );
        }
        assert_eq!(down(&b, "t").expect("down again"), 0);
        let s = b.state.lock().expect("lock");
        assert!(s.containers.is_empty() && s.networks.is_empty() && s.volumes.is_empty());
    }

    #[test]
    fn each_image_fills_its_bytecode_cache_before_its_other_minions_start() {
        let lab = parse_str(
            "name: t\nimages: {m: m.yaml, n: n.yaml}\nmaster: {image: m}\nminions:\n  - {id: \"a{n}\", count: 2, image: m}\n  - {id: \"b{n}\", count: 3, image: n}\n",
            Path::new("t/lab.yaml"),
            Path::new("/labs/t"),
        )
        .expect("lab");
        let keys = lab
            .minions
            .iter()
            .map(|m| {
                let k = KeyPair {
                    private_pem: "k".into(),
                    public_pem: "p".into(),
                };
                (m.id.clone(), k)
            })
            .collect();
        let images = BTreeMap::from([("m".into(), "im".into()), ("n".into(), "in".into())]);
        let p = plan(&lab, &images, &keys).expect("plan");
        let names: Vec<&str> = p.volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["strata-lab-t-pycache-m", "strata-lab-t-pycache-n"]);
        assert_eq!(p.warm, ["strata-lab-t-master", "strata-lab-t-b1"]);
        let b = answering(&p, &p.minion_ids);
        up(&b, &p, 4, Duration::from_secs(5)).expect("up");
        let calls = b.state.lock().expect("lock").calls.clone();
        let at = |prefix: &str| {
            calls
                .iter()
                .position(|c| c.starts_with(prefix))
                .unwrap_or_else(|| panic!("no call {prefix}: {calls:?}"))
        };
        let warm_master = at("exec strata-lab-t-master python3 -c");
        let warm_b1 = at("exec strata-lab-t-b1 python3 -c");
        assert!(at("volume+ strata-lab-t-pycache-n") < at("create strata-lab-t-master"));
        assert!(at("start strata-lab-t-master") < warm_master);
        assert!(warm_master < at("create strata-lab-t-b1"));
        assert!(at("start strata-lab-t-b1") < warm_b1);
        for other in ["a1", "a2", "b2", "b3"] {
            assert!(
                warm_b1 < at(&format!("create strata-lab-t-{other}")),
                "{other}"
            );
        }
        // Every minion mounts its image's cache and names it to Python.
        let s = b.state.lock().expect("lock");
        let (b3, _) = &s.containers["strata-lab-t-b3"];
        assert_eq!(b3.volumes[0].volume, "strata-lab-t-pycache-n");
        assert!(b3
            .env
            .contains(&format!("PYTHONPYCACHEPREFIX={}", b3.volumes[0].container)));
        assert!(b3.cmd.contains(&"--disable-keepalive".to_string()));
        drop(s);
        assert_eq!(down(&b, "t").expect("down"), 9);
    }

    #[test]
    fn each_minion_is_pinged_once_when_the_master_shows_it_connected() {
        let p = lab_plan(3);
        let b = waiting_master(&p, &p.minion_ids[..1], &p.minion_ids[..2]);
        let slow = Pacing {
            stall: Duration::from_secs(60),
            unlisted_every: Duration::from_secs(60),
        };
        let err = wait_with(&b, &p, Duration::from_millis(2500), slow)
            .expect_err("w2 and w3 never answer");
        assert!(err.to_string().contains("w2, w3"), "{err}");
        // w1 and w2 were asked together, once; w2 did not answer and is not asked again
        // (no stall yet); w3 never showed up and was never asked.
        assert_eq!(ping_calls(&b).len(), 1, "{:?}", ping_calls(&b));
        assert!(
            ping_calls(&b)[0].contains(" -L w1,w2 "),
            "{:?}",
            ping_calls(&b)
        );
    }

    #[test]
    fn minions_asked_and_silent_are_asked_again_after_a_stall() {
        let p = lab_plan(3);
        let b = waiting_master(&p, &p.minion_ids[..2], &p.minion_ids);
        let pacing = Pacing {
            stall: Duration::from_millis(200),
            unlisted_every: Duration::from_secs(60),
        };
        wait_with(&b, &p, PING_INTERVAL * 3, pacing).expect_err("w3 never answers");
        let pings = ping_calls(&b);
        assert!(pings.len() >= 2, "{pings:?}");
        assert!(pings[0].contains(" -t 6 -L w1,w2,w3 "), "{}", pings[0]);
        assert!(
            pings[1..].iter().all(|c| c.contains(" -t 5 -L w3 ")),
            "{pings:?}"
        );
    }

    #[test]
    fn minions_the_cache_does_not_show_are_pinged_now_and_then_with_a_short_timeout() {
        let p = lab_plan(3);
        // The data cache shows nobody (`minion_data_cache: False`, say).
        let b = waiting_master(&p, &p.minion_ids[..2], &[]);
        let pacing = Pacing {
            stall: Duration::from_secs(60),
            unlisted_every: Duration::from_millis(500),
        };
        wait_with(&b, &p, PING_INTERVAL * 3, pacing).expect_err("w3 never answers");
        let pings = ping_calls(&b);
        assert!(pings.len() >= 2, "{pings:?}");
        let short = format!(" -t {UNLISTED_SALT_TIMEOUT_S} -L ");
        assert!(
            pings[0].contains(&format!("{short}w1,w2,w3 ")),
            "{}",
            pings[0]
        );
        assert!(
            pings[1..]
                .iter()
                .all(|c| c.contains(&format!("{short}w3 "))),
            "{pings:?}"
        );
    }

    #[test]
    fn the_master_cachedir_of_the_lab_file_is_where_the_wait_looks() {
        let p = plan_of(
            "name: t\nimages: {m: m.yaml}\nmaster: {image: m, config: {cachedir: /srv/cache/}}\nminions:\n  - {id: w1, image: m}\n",
            Path::new("/labs/t"),
        );
        assert_eq!(p.master_cachedir, "/srv/cache");
        assert!(ready_hint(&p.master_cachedir)[2].contains("'/srv/cache/grains'"));
        assert_eq!(lab_plan(1).master_cachedir, "/var/cache/salt/master");
    }

    #[test]
    fn the_data_cache_listing_gives_minion_ids() {
        let out = "/var/cache/salt/master/grains:\nm01.p\nm02.p\n\n/var/cache/salt/master/minions:\nold1\n";
        assert_eq!(ready_ids(out), ["m01", "m02", "old1"]);
        assert!(ready_ids("").is_empty());
    }

    #[test]
    fn ping_rounds_wait_longer_for_more_minions() {
        assert_eq!(ping_timeout_s(1), 5);
        assert_eq!(ping_timeout_s(10), 10);
        assert_eq!(ping_timeout_s(25), 17);
        assert_eq!(ping_timeout_s(50), 30);
        assert_eq!(ping_timeout_s(500), PING_SALT_TIMEOUT_MAX_S);
    }

    #[test]
    fn a_failed_start_leaves_nothing_behind() {
        let p = lab_plan(6);
        let b = FakeBackend::default();
        b.state
            .lock()
            .expect("lock")
            .fail_create
            .push("strata-lab-t-w3".into());
        let e = up(&b, &p, 2, Duration::from_secs(5)).expect_err("fails");
        assert!(
            e.to_string().contains("cannot create strata-lab-t-w3"),
            "{e}"
        );
        let s = b.state.lock().expect("lock");
        assert!(s.containers.is_empty(), "{:?}", s.containers.keys());
        assert!(s.networks.is_empty());
    }

    #[test]
    fn minions_that_never_answer_are_named() {
        let p = lab_plan(3);
        let b = FakeBackend::default();
        let partial = pings(&p.minion_ids[..2]);
        b.state
            .lock()
            .expect("lock")
            .exec_answers
            .insert(p.master.name.clone(), (0, partial));
        connected(&b, &p, &p.minion_ids);
        let e = up(&b, &p, 2, Duration::from_millis(10)).expect_err("times out");
        assert!(
            matches!(&e, LabError::NotAnswering { missing, .. } if missing == "w3"),
            "{e}"
        );
        assert!(b.state.lock().expect("lock").containers.is_empty());
    }

    #[test]
    fn apply_parses_salt_and_names_the_run() {
        let p = lab_plan(2);
        let b = answering(&p, &p.minion_ids);
        up(&b, &p, 2, Duration::from_secs(5)).expect("up");
        let answer = r#"{"w1": {"test_|-a_|-a_|-succeed_without_changes": {"result": true, "changes": {}, "comment": "ok", "__run_num__": 0}}}"#;
        b.state
            .lock()
            .expect("lock")
            .exec_answers
            .insert(p.master.name.clone(), (0, answer.into()));
        let run = apply(
            &b,
            &p,
            RunKind::DryRun,
            &["apache".into()],
            Duration::from_secs(60),
        )
        .expect("apply");
        assert_eq!(run.target, "apache");
        assert!(run.minions["w1"].passed());
        assert_eq!(
            run.minions["w2"],
            crate::lab::results::MinionReturn::Missing
        );
        let calls = b.state.lock().expect("lock").calls.clone();
        let last = calls.last().expect("a call");
        assert_eq!(
            last,
            "exec strata-lab-t-master salt --static --out=json --no-color -t 60 -L w1,w2 state.apply apache test=True"
        );
        down(&b, "t").expect("down");
    }

    #[test]
    fn custom_modules_in_the_file_roots_are_synced_before_each_run() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("salt")).expect("mk");
        let p = plan_of(
            "name: t\nimages: {m: m.yaml}\nmaster: {image: m}\nminions:\n  - {id: w1, image: m}\n",
            dir.path(),
        );
        let b = answering(&p, &p.minion_ids);
        up(&b, &p, 1, Duration::from_secs(5)).expect("up");
        let execs = |b: &FakeBackend| -> Vec<String> {
            let calls = b.state.lock().expect("lock").calls.clone();
            calls
                .into_iter()
                .filter(|c| c.starts_with("exec strata-lab-t-master salt "))
                .map(|c| c.rsplit(" -L w1 ").next().unwrap_or_default().to_string())
                .filter(|c| c != "test.ping")
                .collect()
        };
        // No custom modules: the state run alone.
        let _ = apply(&b, &p, RunKind::Apply, &[], Duration::from_secs(9));
        assert_eq!(execs(&b), ["state.apply"]);
        // A `_modules` directory made after `up`: synced first, on every run.
        std::fs::create_dir_all(dir.path().join("salt/_modules")).expect("mk");
        std::fs::write(dir.path().join("salt/_underscore_file.sls"), "x: {}\n").expect("w");
        assert_eq!(custom_module_dirs(&p), [dir.path().join("salt/_modules")]);
        let _ = apply(&b, &p, RunKind::Apply, &[], Duration::from_secs(9));
        let _ = apply(
            &b,
            &p,
            RunKind::DryRun,
            &["web".into()],
            Duration::from_secs(9),
        );
        assert_eq!(
            execs(&b),
            [
                "state.apply",
                "saltutil.sync_all",
                "state.apply",
                "saltutil.sync_all",
                "state.apply web test=True"
            ]
        );
        // A failed sync stops the run with Salt's words.
        b.state
            .lock()
            .expect("lock")
            .exec_answers
            .insert(p.master.name.clone(), (1, "Minion did not return".into()));
        let e = apply(&b, &p, RunKind::Apply, &[], Duration::from_secs(9)).expect_err("fails");
        assert!(e.to_string().contains("saltutil.sync_all"), "{e}");
        assert!(e.to_string().contains("Minion did not return"), "{e}");
    }

    #[test]
    fn down_keeps_a_shared_bytecode_cache_and_gc_removes_it_once_unused() {
        let mut p = lab_plan(2);
        p.volumes[0] = crate::lab::plan::VolumePlan {
            name: "strata-lab-pycache-abc".into(),
            labels: BTreeMap::from([(LABEL_PYCACHE.into(), "sha256:abc".into())]),
        };
        for c in std::iter::once(&mut p.master).chain(p.minions.iter_mut()) {
            c.volumes[0].volume = "strata-lab-pycache-abc".into();
        }
        let b = answering(&p, &p.minion_ids);
        up(&b, &p, 2, Duration::from_secs(5)).expect("up");
        // Up again after down: the volume is the one kept, created "again" as it is.
        assert_eq!(
            down(&b, "t").expect("down"),
            4,
            "3 containers and the network"
        );
        assert!(b
            .state
            .lock()
            .expect("lock")
            .volumes
            .contains_key("strata-lab-pycache-abc"));
        up(&b, &p, 2, Duration::from_secs(5)).expect("up again");
        // In use by a lab: gc removes the lab, and then the unused cache.
        assert_eq!(gc(&b).expect("gc"), 5);
        let s = b.state.lock().expect("lock");
        assert!(
            s.volumes.is_empty() && s.containers.is_empty(),
            "{:?}",
            s.volumes
        );
        drop(s);
        // A cache that a container still uses is kept.
        b.create_volume("strata-lab-pycache-abc", &p.volumes[0].labels)
            .expect("volume");
        let mut user = p.master.clone();
        user.name = "not-a-lab".into();
        user.labels.clear();
        b.create_network(&user.network, &BTreeMap::new())
            .expect("net");
        b.create_container(&user).expect("create");
        assert_eq!(gc(&b).expect("gc"), 0);
        assert!(b
            .state
            .lock()
            .expect("lock")
            .volumes
            .contains_key("strata-lab-pycache-abc"));
    }

    #[test]
    fn gc_removes_every_lab() {
        let b = FakeBackend::default();
        for lab in ["a", "b"] {
            let mut p = lab_plan(1);
            p.lab = lab.into();
            p.network = format!("net-{lab}");
            p.labels.insert(LABEL_LAB.into(), lab.into());
            p.volumes = vec![crate::lab::plan::VolumePlan {
                name: format!("pyc-{lab}"),
                labels: p.labels.clone(),
            }];
            p.warm = vec![format!("{}-{lab}", p.master.name)];
            for c in std::iter::once(&mut p.master).chain(p.minions.iter_mut()) {
                c.volumes[0].volume = format!("pyc-{lab}");
                c.name = format!("{}-{lab}", c.name);
                c.network = p.network.clone();
                c.labels.insert(LABEL_LAB.into(), lab.into());
            }
            b.state
                .lock()
                .expect("lock")
                .exec_answers
                .insert(p.master.name.clone(), (0, pings(&p.minion_ids)));
            connected(&b, &p, &p.minion_ids);
            up(&b, &p, 1, Duration::from_secs(5)).expect("up");
        }
        assert_eq!(gc(&b).expect("gc"), 8);
        let s = b.state.lock().expect("lock");
        assert!(s.containers.is_empty() && s.networks.is_empty() && s.volumes.is_empty());
    }
}

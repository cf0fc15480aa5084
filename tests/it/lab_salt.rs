//! Real Salt (from PyPI, in images strata builds from Debian packages) in the real Docker
//! engine: a lab of deliberately broken formulas (`fixtures/lab/broken`), each failure
//! kind on its own minion, must come out named in the JSON and JUnit reports; and every
//! `strata lab` command on a lab left up with `--keep`.
//!
//! The images are built from the committed locks, fetching .debs from the host's Debian
//! mirror and wheels from the package index into a cache shared by these tests and
//! `scripts/test` (`target/lab-cache`, or `STRATA_LAB_CACHE`), so a CI run fetches them once.

use std::path::PathBuf;
use std::process::Command;

use crate::lab::LAB_LOCK;
use crate::{repo, require, run, run_ok, stderr, stdout, Sandbox};

fn lab_cache() -> PathBuf {
    std::env::var_os("STRATA_LAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/lab-cache"))
}

/// Removes the lab on drop, even when the test fails.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_strata"))
            .env("STRATA_CACHE", lab_cache())
            .args(["lab", "down"])
            .arg(&self.0)
            .output();
    }
}

fn strata(sb: &Sandbox) -> Command {
    let mut c = sb.strata();
    c.env("STRATA_CACHE", lab_cache());
    c
}

fn failures_of<'a>(
    report: &'a serde_json::Value,
    minion: &str,
) -> Vec<(&'a str, &'a str, &'a str)> {
    report["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter(|f| f[1]["minion"] == minion)
        .map(|f| {
            (
                f[0].as_str().unwrap_or_default(),
                f[1]["state"].as_str().unwrap_or_default(),
                f[1]["message"].as_str().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn broken_formulas_fail_by_name_in_json_and_junit() {
    if !require("docker") {
        return;
    }
    let _serial = LAB_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let sb = Sandbox::new();
    let lab = repo().join("fixtures/lab/broken");
    let _down = Down(lab.clone());
    let json = sb.path("report.json");
    let junit = sb.path("report.xml");
    let o = run(strata(&sb)
        .args(["lab", "test", "--locked"])
        .arg(&lab)
        .arg("--json")
        .arg(&json)
        .arg("--junit")
        .arg(&junit));
    assert_eq!(
        o.status.code(),
        Some(1),
        "failures give exit 1:\nstdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json report")).expect("json");
    assert_eq!(report["passed"], false);

    assert!(failures_of(&report, "good").is_empty(), "{report:#}");
    let good = &report["runs"][0]["minions"]["good"];
    assert!(good.to_string().contains("lab_marker"), "{good}");

    let render = failures_of(&report, "render");
    assert!(
        render.iter().any(|(run, state, msg)| *run == "apply"
            && *state == "render"
            && msg.contains("render_error")),
        "{render:?}"
    );

    let failing = failures_of(&report, "failing");
    assert!(
        failing
            .iter()
            .any(|(run, state, _)| *run == "apply" && *state == "fails_on_purpose"),
        "{failing:?}"
    );
    assert!(
        failing
            .iter()
            .any(|(_, state, _)| *state == "after_the_failure"),
        "the requisite that could not run fails too: {failing:?}"
    );

    let changes = failures_of(&report, "changes");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].0, "idempotence");
    assert_eq!(changes[0].1, "stamp_the_time");
    assert!(changes[0].2.contains("not idempotent"), "{changes:?}");

    let pillar = failures_of(&report, "pillar");
    assert!(
        pillar.iter().any(
            |(_, state, msg)| *state == "render" && msg.contains("community_that_is_not_there")
        ),
        "{pillar:?}"
    );

    let xml = std::fs::read_to_string(&junit).expect("junit");
    for (suite, failures) in [
        ("apply: good", 0),
        ("apply: render", 1),
        ("apply: changes", 0),
        ("idempotence: changes", 1),
        ("apply: pillar", 1),
    ] {
        let needle = format!("<testsuite name=\"{suite}\"");
        let line = xml
            .lines()
            .find(|l| l.contains(&needle))
            .unwrap_or_else(|| panic!("no testsuite {suite} in\n{xml}"));
        assert!(
            line.contains(&format!("failures=\"{failures}\"")),
            "{suite}: {line}"
        );
    }
    assert!(xml.contains("fails_on_purpose"), "{xml}");
    assert!(xml.contains("<failure message="), "{xml}");
    // `lab test` took the lab down.
    let o = run_ok(strata(&sb).args(["lab", "status"]).arg(&lab));
    assert!(stdout(&o).contains("is down"), "{}", stdout(&o));
}

#[test]
fn lab_commands_on_a_lab_kept_up() {
    if !require("docker") {
        return;
    }
    let _serial = LAB_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let sb = Sandbox::new();
    let lab = repo().join("fixtures/lab/broken");
    let _down = Down(lab.clone());
    run_ok(strata(&sb).args(["lab", "up", "--locked"]).arg(&lab));

    let o = run_ok(strata(&sb).args(["lab", "status"]).arg(&lab));
    let status = stdout(&o);
    assert_eq!(status.matches("running").count(), 6, "{status}");

    // A dry run of one minion: would change, which is not a failure.
    let o = run(strata(&sb)
        .args(["--json", "lab", "apply"])
        .arg(&lab)
        .args(["chan*", "--test"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let minions = report["runs"][0]["minions"].as_object().expect("minions");
    assert_eq!(minions.keys().collect::<Vec<_>>(), ["changes"]);
    assert!(
        report["runs"][0]["minions"]["changes"]
            .to_string()
            .contains("would_change"),
        "{report:#}"
    );
    // Nothing ran for real.
    let o = run(strata(&sb).args(["lab", "exec"]).arg(&lab).args([
        "changes",
        "--",
        "cat",
        "/tmp/stamp",
    ]));
    assert!(!o.status.success(), "the dry run wrote /tmp/stamp");

    // One SLS applied for real on one minion.
    run_ok(
        strata(&sb)
            .args(["lab", "apply"])
            .arg(&lab)
            .args(["good", "--sls", "good"]),
    );
    let o = run_ok(strata(&sb).args(["lab", "exec"]).arg(&lab).args([
        "good",
        "--",
        "cat",
        "/tmp/strata-lab-marker",
    ]));
    assert_eq!(
        stdout(&o),
        "good\n",
        "file.managed contents end with a newline"
    );
    // The custom module in _modules/ was synced before the run (the minions run with
    // Salt's autoload off) and rendered the state.
    let o = run_ok(strata(&sb).args(["lab", "exec"]).arg(&lab).args([
        "good",
        "--",
        "cat",
        "/tmp/strata-lab-probe",
    ]));
    assert_eq!(stdout(&o), "synced\n");
    // exec passes the exit code on.
    let o = run(strata(&sb)
        .args(["lab", "exec"])
        .arg(&lab)
        .args(["master", "--", "sh", "-c", "exit 7"]));
    assert_eq!(o.status.code(), Some(7));
    let o = run(strata(&sb)
        .args(["lab", "exec"])
        .arg(&lab)
        .args(["nobody", "--", "true"]));
    assert!(stderr(&o).contains("no minion `nobody`"), "{}", stderr(&o));
    // A target that matches nothing is an error, not an empty pass.
    let o = run(strata(&sb).args(["lab", "apply"]).arg(&lab).arg("zz*"));
    assert_eq!(o.status.code(), Some(2));

    let o = run_ok(strata(&sb).args(["lab", "logs"]).arg(&lab).arg("master"));
    let _ = stdout(&o);

    run_ok(strata(&sb).args(["lab", "down"]).arg(&lab));
    let o = run_ok(strata(&sb).args(["lab", "status"]).arg(&lab));
    assert!(stdout(&o).contains("is down"), "{}", stdout(&o));
    run_ok(strata(&sb).args(["lab", "down"]).arg(&lab));
}

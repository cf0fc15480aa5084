//! The lab's report: what each run did on each minion, judged, and written for people (a
//! terminal table), for programs (JSON) and for CI (JUnit XML: a testsuite per minion and
//! run, a testcase per state, the failure text being Salt's comment).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::results::{MinionReturn, Outcome, StateResult};

/// Why a run is made, which decides what counts as a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// A normal apply: failed states fail.
    Apply,
    /// A `test=True` dry run: failed states fail; "would change" is information.
    DryRun,
    /// The second apply of `lab test`: a state that changes again is not idempotent.
    Idempotence,
}

/// One `state.apply` over the lab.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub kind: RunKind,
    /// What was applied: `highstate` or the SLS names.
    pub target: String,
    pub minions: BTreeMap<String, MinionReturn>,
    /// Salt's exit code, kept only as a cross-check of the parsed results.
    pub salt_exit_code: Option<i32>,
    pub seconds: f64,
}

/// A failed check, named so a person can find it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub minion: String,
    /// The state id, or `render`/`response` for minion-level failures.
    pub state: String,
    pub message: String,
}

impl Run {
    /// Every failure of this run, in minion then run order.
    pub fn failures(&self) -> Vec<Failure> {
        let mut out = Vec::new();
        for (minion, ret) in &self.minions {
            match ret {
                MinionReturn::States { states } => {
                    for s in states {
                        if let Some(message) = self.state_failure(s) {
                            out.push(Failure {
                                minion: minion.clone(),
                                state: s.id.clone(),
                                message,
                            });
                        }
                    }
                }
                MinionReturn::RenderErrors { errors } => out.push(Failure {
                    minion: minion.clone(),
                    state: "render".into(),
                    message: errors.join("\n"),
                }),
                MinionReturn::Message { message } => out.push(Failure {
                    minion: minion.clone(),
                    state: "response".into(),
                    message: message.clone(),
                }),
                MinionReturn::Missing => out.push(Failure {
                    minion: minion.clone(),
                    state: "response".into(),
                    message: "the minion is missing from Salt's output (it never answered)".into(),
                }),
            }
        }
        out
    }

    fn state_failure(&self, s: &StateResult) -> Option<String> {
        match (s.outcome, self.kind) {
            (Outcome::Failed, _) => Some(s.comment.clone()),
            (Outcome::Changed, RunKind::Idempotence) => Some(format!(
                "not idempotent: {} `{}` changed again on the second apply: {}\nchanges: {}",
                s.function, s.name, s.comment, s.changes
            )),
            (Outcome::WouldChange, RunKind::Apply | RunKind::Idempotence) => Some(format!(
                "Salt returned no result for a real apply: {}",
                s.comment
            )),
            _ => None,
        }
    }

    /// Whether Salt's exit code agrees with the parsed results (0 exactly when nothing
    /// failed in Salt's own terms; idempotence is strata's check, not Salt's).
    pub fn exit_code_agrees(&self) -> Option<bool> {
        let code = self.salt_exit_code?;
        let salt_failed = self.minions.values().any(|m| match m {
            MinionReturn::States { states } => states.iter().any(|s| s.outcome == Outcome::Failed),
            _ => true,
        });
        Some((code != 0) == salt_failed)
    }
}

/// Everything one lab command did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub lab: String,
    pub runs: Vec<Run>,
}

impl Report {
    pub fn failures(&self) -> Vec<(RunKind, Failure)> {
        self.runs
            .iter()
            .flat_map(|r| r.failures().into_iter().map(move |f| (r.kind, f)))
            .collect()
    }

    pub fn passed(&self) -> bool {
        self.runs.iter().all(|r| r.failures().is_empty())
    }

    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Doc<'a> {
            lab: &'a str,
            passed: bool,
            failures: Vec<(RunKind, Failure)>,
            runs: &'a [Run],
        }
        serde_json::to_string_pretty(&Doc {
            lab: &self.lab,
            passed: self.passed(),
            failures: self.failures(),
            runs: &self.runs,
        })
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// JUnit XML: one testsuite per (run, minion), one testcase per state.
    pub fn to_junit(&self) -> String {
        let mut suites = String::new();
        let (mut total, mut failed) = (0usize, 0usize);
        for run in &self.runs {
            let kind = run_label(run.kind);
            for (minion, ret) in &run.minions {
                let mut cases = String::new();
                let (mut n, mut f, mut secs) = (0usize, 0usize, 0f64);
                let mut case = |name: &str, class: &str, time: f64, failure: Option<&str>| {
                    n += 1;
                    secs += time;
                    let _ = write!(
                        cases,
                        "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                        xml(name),
                        xml(class),
                        time
                    );
                    match failure {
                        Some(msg) => {
                            f += 1;
                            let first = msg.lines().next().unwrap_or("");
                            let _ = write!(
                                cases,
                                ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                                xml(first),
                                xml(msg)
                            );
                        }
                        None => cases.push_str("/>\n"),
                    }
                };
                let class = format!("{kind}.{minion}");
                match ret {
                    MinionReturn::States { states } => {
                        for s in states {
                            let name = match &s.sls {
                                Some(sls) => format!("{sls}: {} ({})", s.id, s.function),
                                None => format!("{} ({})", s.id, s.function),
                            };
                            let msg = run.state_failure(s);
                            case(
                                &name,
                                &class,
                                s.duration_ms.unwrap_or(0.0) / 1000.0,
                                msg.as_deref(),
                            );
                        }
                    }
                    MinionReturn::RenderErrors { errors } => {
                        case("render", &class, 0.0, Some(&errors.join("\n")))
                    }
                    MinionReturn::Message { message } => {
                        case("response", &class, 0.0, Some(message))
                    }
                    MinionReturn::Missing => case(
                        "response",
                        &class,
                        0.0,
                        Some("the minion is missing from Salt's output (it never answered)"),
                    ),
                }
                total += n;
                failed += f;
                let _ = write!(
                    suites,
                    "  <testsuite name=\"{}\" tests=\"{n}\" failures=\"{f}\" errors=\"0\" time=\"{secs:.3}\">\n{cases}  </testsuite>\n",
                    xml(&format!("{kind}: {minion}"))
                );
            }
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"{}\" tests=\"{total}\" failures=\"{failed}\">\n{suites}</testsuites>\n",
            xml(&format!("strata lab {}", self.lab))
        )
    }

    /// A table per run: minion × state with outcome and duration, then the failures.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        for run in &self.runs {
            let _ = writeln!(
                out,
                "{} of {} ({:.1} s)",
                run_label(run.kind),
                run.target,
                run.seconds
            );
            let _ = writeln!(
                out,
                "  {:<20} {:<40} {:<12} {:>9}",
                "MINION", "STATE", "RESULT", "TIME"
            );
            for (minion, ret) in &run.minions {
                match ret {
                    MinionReturn::States { states } => {
                        for s in states {
                            let shown = match (s.outcome, run.state_failure(s).is_some()) {
                                (_, true) if s.outcome == Outcome::Changed => "NOT IDEMPOTENT",
                                (Outcome::Ok, _) => "ok",
                                (Outcome::Changed, _) => "changed",
                                (Outcome::Failed, _) => "FAILED",
                                (Outcome::WouldChange, _) => "would change",
                            };
                            let time = s
                                .duration_ms
                                .map(|d| format!("{d:.0} ms"))
                                .unwrap_or_default();
                            let _ = writeln!(
                                out,
                                "  {:<20} {:<40} {:<12} {:>9}",
                                minion,
                                format!("{} ({})", s.id, s.function),
                                shown,
                                time
                            );
                        }
                    }
                    MinionReturn::RenderErrors { .. } => {
                        let _ = writeln!(out, "  {minion:<20} {:<40} {:<12}", "(render)", "FAILED");
                    }
                    MinionReturn::Message { .. } | MinionReturn::Missing => {
                        let _ =
                            writeln!(out, "  {minion:<20} {:<40} {:<12}", "(no answer)", "FAILED");
                    }
                }
            }
            let failures = run.failures();
            if !failures.is_empty() {
                let _ = writeln!(out, "  failures:");
                for f in failures {
                    let _ = writeln!(
                        out,
                        "    {} / {}: {}",
                        f.minion,
                        f.state,
                        f.message.replace('\n', "\n      ")
                    );
                }
            }
        }
        let _ = writeln!(out, "{}", if self.passed() { "PASSED" } else { "FAILED" });
        out
    }
}

fn run_label(k: RunKind) -> &'static str {
    match k {
        RunKind::Apply => "apply",
        RunKind::DryRun => "dry-run",
        RunKind::Idempotence => "idempotence",
    }
}

/// Escapes text for XML attributes and content, dropping characters XML 1.0 cannot hold.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::results::parse_returns;

    fn run(kind: RunKind, json: &str, ids: &[&str], code: i32) -> Run {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        Run {
            kind,
            target: "highstate".into(),
            minions: parse_returns(json, &ids).expect("parse"),
            salt_exit_code: Some(code),
            seconds: 1.5,
        }
    }

    const GOOD: &str = r#"{"web1": {
        "pkg_|-apache2_|-apache2_|-installed": {"name": "apache2", "result": true, "changes": {"apache2": {"new": "2.4", "old": ""}}, "comment": "1 targeted package was installed.", "__id__": "apache2", "__sls__": "apache", "__run_num__": 0, "duration": 1200.5},
        "cmd_|-check_|-true_|-run": {"name": "true", "result": true, "changes": {}, "comment": "ok <&> \"quoted\"", "__id__": "check", "__sls__": "shellshock", "__run_num__": 1, "duration": 3.0}}}"#;

    #[test]
    fn changes_pass_an_apply_and_fail_the_idempotence_run() {
        let apply = run(RunKind::Apply, GOOD, &["web1"], 0);
        assert!(apply.failures().is_empty());
        assert_eq!(apply.exit_code_agrees(), Some(true));
        let again = run(RunKind::Idempotence, GOOD, &["web1"], 0);
        let f = again.failures();
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].minion.as_str(), f[0].state.as_str()),
            ("web1", "apache2")
        );
        assert!(
            f[0].message
                .starts_with("not idempotent: pkg.installed `apache2`"),
            "{}",
            f[0].message
        );
        let report = Report {
            lab: "seed".into(),
            runs: vec![apply, again],
        };
        assert!(!report.passed());
        let table = report.to_table();
        assert!(table.contains("NOT IDEMPOTENT"), "{table}");
        assert!(table.trim_end().ends_with("FAILED"), "{table}");
    }

    #[test]
    fn junit_has_a_suite_per_minion_and_a_case_per_state() {
        let bad = r#"{"web1": {"cmd_|-check_|-false_|-run": {"name": "false", "result": false, "changes": {}, "comment": "Command \"false\" run\nretcode 1", "__id__": "check", "__sls__": "shellshock", "__run_num__": 0}},
                      "web2": ["Rendering SLS 'base:snmp' failed: Jinja variable 'dict object' has no attribute 'x'"]}"#;
        let report = Report {
            lab: "seed".into(),
            runs: vec![
                run(RunKind::Apply, GOOD, &["web1"], 0),
                run(RunKind::Apply, bad, &["web1", "web2", "web3"], 1),
            ],
        };
        let x = report.to_junit();
        assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"strata lab seed\" tests=\"5\" failures=\"3\">"), "{x}");
        assert_eq!(x.matches("<testsuite ").count(), 4, "{x}");
        assert!(x.contains("<testcase name=\"apache: apache2 (pkg.installed)\" classname=\"apply.web1\" time=\"1.200\"/>"), "{x}");
        assert!(x.contains("<failure message=\"Command &quot;false&quot; run\">Command &quot;false&quot; run\nretcode 1</failure>"), "{x}");
        assert!(
            x.contains("<testcase name=\"render\" classname=\"apply.web2\""),
            "{x}"
        );
        assert!(x.contains("never answered"), "{x}");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
        assert_eq!(json["passed"], false);
        assert_eq!(json["failures"].as_array().map(Vec::len), Some(3));
        assert_eq!(report.runs[1].exit_code_agrees(), Some(true));
    }

    #[test]
    fn a_zero_exit_code_with_failures_is_flagged() {
        let bad = r#"{"m": {"cmd_|-c_|-false_|-run": {"result": false, "changes": {}, "comment": "x", "__run_num__": 0}}}"#;
        assert_eq!(
            run(RunKind::Apply, bad, &["m"], 0).exit_code_agrees(),
            Some(false)
        );
    }

    #[test]
    fn xml_drops_what_xml_cannot_hold() {
        assert_eq!(xml("a\u{1b}[31mb\t<c>"), "a[31mb\t&lt;c&gt;");
    }
}

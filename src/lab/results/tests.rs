//! Table tests over Salt returns captured from real Salt runs (fixtures/salt/, see its
//! README for how each was made) and the message shapes Salt prints for absent minions.

use super::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/salt/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn not_json_and_not_an_object_are_errors() {
    assert!(matches!(
        parse_returns("Minion did not return", &[]),
        Err(ParseError::NotJson(_))
    ));
    assert!(matches!(
        parse_returns("  ", &[]),
        Err(ParseError::NotJson(_))
    ));
    assert_eq!(
        parse_returns("[1]", &[]),
        Err(ParseError::NotAnObject("a list"))
    );
}

#[test]
fn every_shape_salt_returns() {
    let json = r#"{
        "m1": {"cmd_|-hello_|-echo hi_|-run": {"name": "echo hi", "result": true, "changes": {"pid": 1, "retcode": 0}, "comment": "Command \"echo hi\" run", "__id__": "hello", "__sls__": "demo", "__run_num__": 1, "duration": 5.5},
               "file_|-/etc/x_|-/etc/x_|-managed": {"name": "/etc/x", "result": true, "changes": {}, "comment": "File /etc/x is in the correct state", "__id__": "/etc/x", "__run_num__": 0}},
        "m2": ["Rendering SLS 'base:broken' failed: Jinja syntax error: unexpected '}'"],
        "m3": "Minion did not return. [Not connected]",
        "m4": "Minion did not return. [No response]\nThe minions may not have all finished running and any remaining minions will return upon completion."
    }"#;
    let ids: Vec<String> = ["m1", "m2", "m3", "m4", "m5"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let r = parse_returns(json, &ids).expect("parse");
    let states = r["m1"].states();
    assert_eq!(states.len(), 2);
    assert_eq!(
        (states[0].id.as_str(), states[0].outcome),
        ("/etc/x", Outcome::Ok)
    );
    assert_eq!(states[0].function, "file.managed");
    assert_eq!(
        (states[1].id.as_str(), states[1].outcome),
        ("hello", Outcome::Changed)
    );
    assert_eq!(states[1].sls.as_deref(), Some("demo"));
    assert_eq!(states[1].duration_ms, Some(5.5));
    assert!(r["m1"].passed());
    assert!(
        matches!(&r["m2"], MinionReturn::RenderErrors { errors } if errors[0].contains("Jinja"))
    );
    assert!(
        matches!(&r["m3"], MinionReturn::Message { message } if message.contains("Not connected"))
    );
    assert!(
        matches!(&r["m4"], MinionReturn::Message { message } if message.contains("No response"))
    );
    assert_eq!(r["m5"], MinionReturn::Missing);
    for m in ["m2", "m3", "m4", "m5"] {
        assert!(!r[m].passed(), "{m}");
    }
}

#[test]
fn result_values_map_to_outcomes() {
    let cases = [
        (r#"{"result": true, "changes": {}}"#, Outcome::Ok),
        (
            r#"{"result": true, "changes": {"diff": "+x"}}"#,
            Outcome::Changed,
        ),
        (r#"{"result": false, "changes": {}}"#, Outcome::Failed),
        (
            r#"{"result": false, "changes": {"diff": "+x"}}"#,
            Outcome::Failed,
        ),
        (r#"{"result": null, "changes": {}}"#, Outcome::WouldChange),
        (r#"{"changes": {}}"#, Outcome::Failed),
    ];
    for (v, want) in cases {
        let v: Value = serde_json::from_str(v).expect("json");
        assert_eq!(
            parse_state("pkg_|-a_|-a_|-installed", &v).outcome,
            want,
            "{v}"
        );
    }
}

#[test]
fn comments_may_be_lists() {
    let v: Value =
        serde_json::from_str(r#"{"result": false, "comment": ["one", "two"], "changes": {}}"#)
            .expect("json");
    assert_eq!(parse_state("k", &v).comment, "one\ntwo");
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn outcomes(r: &MinionReturn) -> Vec<(&str, Outcome)> {
    r.states()
        .iter()
        .map(|s| (s.id.as_str(), s.outcome))
        .collect()
}

#[test]
fn captured_highstate() {
    let r = parse_returns(&fixture("highstate-local.json"), &ids(&["local"])).expect("parse");
    assert_eq!(
        outcomes(&r["local"]),
        [
            ("managed-file", Outcome::Changed),
            ("always-runs", Outcome::Changed),
            ("fails", Outcome::Failed),
            ("depends-on-failure", Outcome::Failed),
            ("quiet", Outcome::Ok),
        ]
    );
    let fails = &r["local"].states()[2];
    assert_eq!(fails.function, "cmd.run");
    assert_eq!(fails.name, "echo failing >&2; exit 3");
    assert_eq!(fails.sls.as_deref(), Some("demo"));
    assert!(fails.duration_ms.is_some());
    assert!(
        r["local"].states()[3].comment.contains("requisite"),
        "{:?}",
        r["local"].states()[3]
    );
    assert!(!r["local"].passed());
}

#[test]
fn captured_dry_run() {
    let r = parse_returns(&fixture("dry-run-local.json"), &ids(&["local"])).expect("parse");
    assert_eq!(
        outcomes(&r["local"]),
        [
            ("managed-file", Outcome::Ok),
            ("always-runs", Outcome::WouldChange),
            ("fails", Outcome::WouldChange),
            ("depends-on-failure", Outcome::Ok),
            ("quiet", Outcome::Ok),
        ]
    );
    assert!(r["local"].passed());
}

#[test]
fn captured_render_errors() {
    for (file, needle) in [
        (
            "render-error-local.json",
            "Jinja variable 'undefined_thing' is undefined",
        ),
        (
            "missing-sls-local.json",
            "No matching sls found for 'nosuch'",
        ),
    ] {
        let r = parse_returns(&fixture(file), &ids(&["local"])).expect("parse");
        match &r["local"] {
            MinionReturn::RenderErrors { errors } => {
                assert!(errors[0].contains(needle), "{file}: {errors:?}")
            }
            other => panic!("{file}: {other:?}"),
        }
    }
}

#[test]
fn captured_master_outputs_with_a_stopped_minion() {
    // --static: the stopped minion is just absent.
    let r = parse_returns(
        &fixture("static-one-minion-stopped.json"),
        &ids(&["m1", "m2"]),
    )
    .expect("parse");
    assert_eq!(r["m2"], MinionReturn::Missing);
    assert_eq!(r["m1"].states().len(), 5);
    // Without --static: one document per minion, the stopped one as a message.
    let r = parse_returns(&fixture("stream-no-response.json"), &ids(&["m1", "m2"])).expect("parse");
    assert_eq!(r["m1"].states().len(), 5);
    assert!(
        matches!(&r["m2"], MinionReturn::Message { message } if message.starts_with("Minion did not return. [No response]")),
        "{:?}",
        r["m2"]
    );
}

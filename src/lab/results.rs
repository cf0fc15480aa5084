//! Salt's JSON returns, parsed into one enum that covers every shape Salt answers with.
//!
//! `salt --static --out=json TARGET state.apply` prints one object keyed by minion id. A
//! minion's value is a dict of state returns when the states ran (even if some failed), a
//! list of strings when the SLS or pillar failed to render or compile, a plain string when
//! the minion did not answer ("Minion did not return. [Not connected]"), and an expected
//! minion can be missing altogether. Pass/fail comes from these parsed results; Salt's exit
//! code is only a cross-check.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// What one state did, as a person reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// `result: true`, no changes.
    Ok,
    /// `result: true` with changes.
    Changed,
    /// `result: false`.
    Failed,
    /// `result: null`: a `test=True` run that would change something.
    WouldChange,
}

/// One state's return.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateResult {
    /// The state's `__id__` (the ID declaration in the SLS).
    pub id: String,
    /// `module.function`, e.g. `pkg.installed`.
    pub function: String,
    /// The `name` argument.
    pub name: String,
    /// The SLS it came from, when Salt says.
    pub sls: Option<String>,
    pub outcome: Outcome,
    pub comment: String,
    pub changes: Value,
    /// Milliseconds, when Salt reports it.
    pub duration_ms: Option<f64>,
    /// Salt's `__run_num__`: the order the states ran in.
    pub run_num: u64,
}

/// One minion's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MinionReturn {
    /// The states ran; sorted by run order.
    States { states: Vec<StateResult> },
    /// Rendering or compiling failed (Jinja/YAML errors, a missing SLS, pillar errors).
    RenderErrors { errors: Vec<String> },
    /// A message instead of a return, e.g. "Minion did not return. [Not connected]".
    Message { message: String },
    /// The minion was expected but is absent from Salt's output.
    Missing,
}

impl MinionReturn {
    /// Whether this minion passed: every state ran and none failed.
    pub fn passed(&self) -> bool {
        match self {
            MinionReturn::States { states } => states.iter().all(|s| s.outcome != Outcome::Failed),
            _ => false,
        }
    }

    pub fn states(&self) -> &[StateResult] {
        match self {
            MinionReturn::States { states } => states,
            _ => &[],
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("Salt's output is not JSON: {0}")]
    NotJson(String),
    #[error("Salt's output is not an object keyed by minion id (found {0})")]
    NotAnObject(&'static str),
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Parses `salt --out=json` output: one object keyed by minion id (`--static`), or one such
/// object per minion one after another (without `--static`). Every id in `expected` gets an
/// entry (absent ones are [`MinionReturn::Missing`]); minions Salt answered for that were not
/// expected are kept too, so nothing Salt said is dropped.
pub fn parse_returns(
    json: &str,
    expected: &[String],
) -> Result<BTreeMap<String, MinionReturn>, ParseError> {
    let mut out: BTreeMap<String, MinionReturn> = BTreeMap::new();
    let mut docs = 0;
    for doc in serde_json::Deserializer::from_str(json).into_iter::<Value>() {
        let v = doc.map_err(|e| ParseError::NotJson(e.to_string()))?;
        let Value::Object(map) = v else {
            return Err(ParseError::NotAnObject(kind_of(&v)));
        };
        docs += 1;
        for (id, ret) in map {
            out.insert(id, parse_minion(ret));
        }
    }
    if docs == 0 {
        return Err(ParseError::NotJson("no output".into()));
    }
    for id in expected {
        out.entry(id.clone()).or_insert(MinionReturn::Missing);
    }
    Ok(out)
}

/// One minion's value in Salt's output.
pub fn parse_minion(ret: Value) -> MinionReturn {
    match ret {
        Value::Object(states) => {
            if states.values().all(Value::is_object) && !states.is_empty() {
                let mut list: Vec<StateResult> = states
                    .into_iter()
                    .map(|(k, v)| parse_state(&k, &v))
                    .collect();
                list.sort_by(|a, b| a.run_num.cmp(&b.run_num).then(a.id.cmp(&b.id)));
                MinionReturn::States { states: list }
            } else if states.is_empty() {
                MinionReturn::Message {
                    message: "no states were applied (empty return)".into(),
                }
            } else {
                MinionReturn::Message {
                    message: Value::Object(states).to_string(),
                }
            }
        }
        Value::Array(items) => MinionReturn::RenderErrors {
            errors: items
                .into_iter()
                .map(|i| match i {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
        },
        Value::String(s) => MinionReturn::Message { message: s },
        Value::Bool(false) | Value::Null => MinionReturn::Message {
            message: "Minion did not return".into(),
        },
        other => MinionReturn::Message {
            message: other.to_string(),
        },
    }
}

/// A state key is `module_|-id_|-name_|-function`; fields in the value win when present.
fn parse_state(key: &str, v: &Value) -> StateResult {
    let parts: Vec<&str> = key.split("_|-").collect();
    let (module, kid, kname, func) = match parts.as_slice() {
        [m, i, n, f] => (*m, *i, *n, *f),
        _ => ("", key, key, ""),
    };
    let s = |field: &str| v.get(field).and_then(Value::as_str).map(str::to_string);
    let changes = v.get("changes").cloned().unwrap_or(Value::Null);
    let has_changes = match &changes {
        Value::Object(m) => !m.is_empty(),
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    };
    let outcome = match v.get("result") {
        Some(Value::Bool(false)) => Outcome::Failed,
        Some(Value::Null) => Outcome::WouldChange,
        // A return without a result is not something Salt writes for a state that worked.
        None => Outcome::Failed,
        Some(_) if has_changes => Outcome::Changed,
        Some(_) => Outcome::Ok,
    };
    let comment = match v.get("comment") {
        Some(Value::String(c)) => c.clone(),
        Some(Value::Array(lines)) => lines
            .iter()
            .map(|l| {
                l.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| l.to_string())
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    StateResult {
        id: s("__id__").unwrap_or_else(|| kid.to_string()),
        function: if module.is_empty() {
            func.to_string()
        } else {
            format!("{module}.{func}")
        },
        name: s("name").unwrap_or_else(|| kname.to_string()),
        sls: s("__sls__"),
        outcome,
        comment,
        changes,
        duration_ms: v.get("duration").and_then(Value::as_f64),
        run_num: v
            .get("__run_num__")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX),
    }
}

#[cfg(test)]
mod tests;

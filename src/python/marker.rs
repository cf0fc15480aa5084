//! PEP 508 requirements (`name[extras] specifiers ; marker`) and environment markers,
//! evaluated for the image's Python rather than the machine strata runs on. Pure.

use std::collections::BTreeMap;
use std::fmt;

use super::version::{Op, Specifier, SpecifierSet, Version};

/// Normalised project name (PEP 503): lower case, runs of `-_.` become `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The marker environment of the target interpreter.
#[derive(Debug, Clone)]
pub struct Env {
    vars: BTreeMap<&'static str, String>,
}

impl Env {
    /// CPython `python` (`3.11` or `3.11.4`; a missing patch level counts as `.0`) on
    /// Linux for `machine` (`x86_64`, `aarch64`, ...).
    pub fn cpython_linux(python: &str, machine: &str) -> Env {
        let parts: Vec<&str> = python.split('.').collect();
        let short = parts.iter().take(2).copied().collect::<Vec<_>>().join(".");
        let full = if parts.len() >= 3 {
            python.to_string()
        } else {
            format!("{short}.0")
        };
        let mut vars = BTreeMap::new();
        vars.insert("python_version", short);
        vars.insert("python_full_version", full.clone());
        vars.insert("implementation_version", full);
        vars.insert("os_name", "posix".into());
        vars.insert("sys_platform", "linux".into());
        vars.insert("platform_system", "Linux".into());
        vars.insert("platform_machine", machine.into());
        vars.insert("platform_python_implementation", "CPython".into());
        vars.insert("implementation_name", "cpython".into());
        vars.insert("platform_release", String::new());
        vars.insert("platform_version", String::new());
        Env { vars }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Var(String),
    Str(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerOp {
    Cmp(Op),
    In,
    NotIn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    Compare(Value, MarkerOp, Value),
    And(Box<Marker>, Box<Marker>),
    Or(Box<Marker>, Box<Marker>),
}

const VARS: [&str; 13] = [
    "python_version",
    "python_full_version",
    "implementation_version",
    "os_name",
    "sys_platform",
    "platform_system",
    "platform_machine",
    "platform_python_implementation",
    "implementation_name",
    "platform_release",
    "platform_version",
    "extra",
    // Legacy spellings some old metadata still uses.
    "os.name",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Op(String),
    LParen,
    RParen,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' => i += 1,
            b'(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            b'\'' | b'"' => {
                let end = s[i + 1..]
                    .find(c as char)
                    .ok_or_else(|| format!("unclosed quote in marker `{s}`"))?;
                out.push(Tok::Str(s[i + 1..i + 1 + end].to_string()));
                i += end + 2;
            }
            b'<' | b'>' | b'=' | b'!' | b'~' => {
                let n = s[i..]
                    .bytes()
                    .take_while(|c| matches!(c, b'<' | b'>' | b'=' | b'!' | b'~'))
                    .count();
                out.push(Tok::Op(s[i..i + n].to_string()));
                i += n;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' => {
                let n = s[i..]
                    .bytes()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.')
                    .count();
                out.push(Tok::Ident(s[i..i + n].to_string()));
                i += n;
            }
            _ => {
                return Err(format!(
                    "unexpected `{}` in marker `{s}`",
                    s[i..].chars().next().unwrap_or('?')
                ))
            }
        }
    }
    Ok(out)
}

struct P<'a> {
    toks: Vec<Tok>,
    i: usize,
    src: &'a str,
}

impl P<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i)
    }
    fn err(&self, what: &str) -> String {
        format!("{what} in marker `{}`", self.src)
    }
    fn or(&mut self) -> Result<Marker, String> {
        let mut m = self.and()?;
        while matches!(self.peek(), Some(Tok::Ident(w)) if w == "or") {
            self.i += 1;
            m = Marker::Or(Box::new(m), Box::new(self.and()?));
        }
        Ok(m)
    }
    fn and(&mut self) -> Result<Marker, String> {
        let mut m = self.atom()?;
        while matches!(self.peek(), Some(Tok::Ident(w)) if w == "and") {
            self.i += 1;
            m = Marker::And(Box::new(m), Box::new(self.atom()?));
        }
        Ok(m)
    }
    fn atom(&mut self) -> Result<Marker, String> {
        if self.peek() == Some(&Tok::LParen) {
            self.i += 1;
            let m = self.or()?;
            if self.peek() != Some(&Tok::RParen) {
                return Err(self.err("missing `)`"));
            }
            self.i += 1;
            return Ok(m);
        }
        let l = self.value()?;
        let op = match self.toks.get(self.i).cloned() {
            Some(Tok::Op(o)) => {
                self.i += 1;
                MarkerOp::Cmp(
                    Op::parse(&o).ok_or_else(|| self.err(&format!("unknown operator `{o}`")))?,
                )
            }
            Some(Tok::Ident(w)) if w == "in" => {
                self.i += 1;
                MarkerOp::In
            }
            Some(Tok::Ident(w)) if w == "not" => {
                self.i += 1;
                match self.peek() {
                    Some(Tok::Ident(w)) if w == "in" => self.i += 1,
                    _ => return Err(self.err("`not` without `in`")),
                }
                MarkerOp::NotIn
            }
            _ => return Err(self.err("expected a comparison")),
        };
        let r = self.value()?;
        Ok(Marker::Compare(l, op, r))
    }
    fn value(&mut self) -> Result<Value, String> {
        match self.toks.get(self.i).cloned() {
            Some(Tok::Str(s)) => {
                self.i += 1;
                Ok(Value::Str(s))
            }
            Some(Tok::Ident(w)) if VARS.contains(&w.as_str()) => {
                self.i += 1;
                Ok(Value::Var(if w == "os.name" {
                    "os_name".into()
                } else {
                    w
                }))
            }
            Some(Tok::Ident(w)) => Err(self.err(&format!("unknown marker variable `{w}`"))),
            _ => Err(self.err("expected a variable or a quoted string")),
        }
    }
}

impl Marker {
    pub fn parse(s: &str) -> Result<Marker, String> {
        let mut p = P {
            toks: tokenize(s)?,
            i: 0,
            src: s,
        };
        let m = p.or()?;
        if p.i != p.toks.len() {
            return Err(p.err("unexpected text after the end"));
        }
        Ok(m)
    }

    /// Evaluates with `extra` set to the given extra (`""` when none was requested).
    pub fn evaluate(&self, env: &Env, extra: &str) -> bool {
        match self {
            Marker::And(a, b) => a.evaluate(env, extra) && b.evaluate(env, extra),
            Marker::Or(a, b) => a.evaluate(env, extra) || b.evaluate(env, extra),
            Marker::Compare(l, op, r) => {
                let is_extra = matches!(l, Value::Var(v) if v == "extra")
                    || matches!(r, Value::Var(v) if v == "extra");
                let get = |v: &Value| -> String {
                    match v {
                        Value::Str(s) => s.clone(),
                        Value::Var(n) if n == "extra" => extra.to_string(),
                        Value::Var(n) => env.get(n).unwrap_or_default().to_string(),
                    }
                };
                let (mut a, mut b) = (get(l), get(r));
                if is_extra {
                    a = normalize_name(&a);
                    b = normalize_name(&b);
                }
                match op {
                    MarkerOp::In => b.contains(&a),
                    MarkerOp::NotIn => !b.contains(&a),
                    MarkerOp::Cmp(op) => {
                        if let (Some(va), Ok(spec)) = (
                            Version::parse(&a),
                            Specifier::parse(&format!("{}{b}", op_text(*op))),
                        ) {
                            if *op != Op::Arbitrary {
                                return spec.contains(&va);
                            }
                        }
                        match op {
                            Op::Eq | Op::Arbitrary => a == b,
                            Op::Ne => a != b,
                            // Ordering of non-versions is undefined: PEP 508 says such a
                            // marker is false rather than an error.
                            _ => false,
                        }
                    }
                }
            }
        }
    }
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Compatible => "~=",
        Op::Eq => "==",
        Op::Ne => "!=",
        Op::Le => "<=",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Gt => ">",
        Op::Arbitrary => "===",
    }
}

/// One PEP 508 requirement (URL requirements are refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// As written.
    pub name: String,
    pub extras: Vec<String>,
    pub specifiers: SpecifierSet,
    pub marker: Option<Marker>,
}

impl Requirement {
    pub fn key(&self) -> String {
        normalize_name(&self.name)
    }

    pub fn parse(s: &str) -> Result<Requirement, String> {
        let (body, marker) = match s.split_once(';') {
            Some((b, m)) => (b, Some(Marker::parse(m.trim())?)),
            None => (s, None),
        };
        let body = body.trim();
        let n = body
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            .count();
        let name = &body[..n];
        if name.is_empty()
            || !name.as_bytes()[0].is_ascii_alphanumeric()
            || !name.as_bytes()[n - 1].is_ascii_alphanumeric()
        {
            return Err(format!("`{}` does not start with a project name", s.trim()));
        }
        let mut rest = body[n..].trim_start();
        let mut extras = Vec::new();
        if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("unclosed `[` in `{}`", s.trim()))?;
            for e in r[..end].split(',') {
                let e = e.trim();
                if !e.is_empty() {
                    extras.push(normalize_name(e));
                }
            }
            rest = r[end + 1..].trim_start();
        }
        if rest.starts_with('@') {
            return Err(format!(
                "`{}` is a URL requirement; only index requirements are supported",
                s.trim()
            ));
        }
        let spec = match rest.strip_prefix('(') {
            Some(r) => r
                .strip_suffix(')')
                .ok_or_else(|| format!("unclosed `(` in `{}`", s.trim()))?,
            None => rest,
        };
        let specifiers = SpecifierSet::parse(spec)?;
        Ok(Requirement {
            name: name.to_string(),
            extras,
            specifiers,
            marker,
        })
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.extras.is_empty() {
            write!(f, "[{}]", self.extras.join(","))?;
        }
        write!(f, "{}", self.specifiers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        for (a, b) in [
            ("PyYAML", "pyyaml"),
            ("zope.interface", "zope-interface"),
            ("a__b--c", "a-b-c"),
            ("Jinja2", "jinja2"),
        ] {
            assert_eq!(normalize_name(a), b);
        }
    }

    #[test]
    fn marker_table() {
        let env = Env::cpython_linux("3.11", "x86_64");
        let cases: &[(&str, &str, bool)] = &[
            ("python_version < \"3.8\"", "", false),
            ("python_version >= '3.8'", "", true),
            ("python_version > '3.10'", "", true),
            ("python_full_version >= '3.11.1'", "", false),
            ("python_full_version == '3.11.0'", "", true),
            ("sys_platform == 'win32'", "", false),
            ("sys_platform != 'win32'", "", true),
            ("platform_system == \"Linux\"", "", true),
            ("platform_machine == 'aarch64'", "", false),
            ("'linux' in sys_platform", "", true),
            ("'win' not in sys_platform", "", true),
            ("extra == 'zmq'", "", false),
            ("extra == 'zmq'", "zmq", true),
            ("extra == 'Foo_Bar'", "foo-bar", true),
            (
                "python_version < '3.8' or sys_platform == 'linux' and extra == 'x'",
                "x",
                true,
            ),
            (
                "(python_version < '3.8' or sys_platform == 'linux') and extra == 'x'",
                "",
                false,
            ),
            ("implementation_name == 'pypy'", "", false),
            ("platform_python_implementation == 'CPython'", "", true),
            ("os_name == 'nt'", "", false),
            ("os.name == 'posix'", "", true),
            ("python_version ~= '3.9'", "", true),
            ("platform_release >= '5'", "", false),
        ];
        for (m, extra, want) in cases {
            let parsed = Marker::parse(m).unwrap_or_else(|e| panic!("{m}: {e}"));
            assert_eq!(
                parsed.evaluate(&env, extra),
                *want,
                "{m} with extra {extra:?}"
            );
        }
        let env313 = Env::cpython_linux("3.13.1", "aarch64");
        let m = Marker::parse("python_full_version >= '3.13.1' and platform_machine == 'aarch64'");
        assert!(m.is_ok_and(|m| m.evaluate(&env313, "")));
    }

    #[test]
    fn marker_errors() {
        for bad in [
            "python_version",
            "python_version <",
            "foo == 'x'",
            "(python_version < '3'",
            "python_version < '3' extra",
            "python_version < '3",
            "python_version not '3'",
        ] {
            assert!(Marker::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn requirement_table() {
        let r = Requirement::parse("PyYAML>=5.1, <7 ; python_version >= '3.8'");
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.key(), "pyyaml");
        assert_eq!(r.specifiers.0.len(), 2);
        assert!(r.marker.is_some());

        let r = Requirement::parse("requests[Security, socks] (>=2.0)");
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.extras, vec!["security", "socks"]);
        assert_eq!(r.to_string(), "requests[security,socks]>=2.0");

        let r = Requirement::parse("salt==3008.4").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.specifiers.pinned(), Some("3008.4"));
        assert!(Requirement::parse("looseversion").is_ok_and(|r| r.specifiers.0.is_empty()));

        for bad in [
            "",
            "==1.0",
            "pkg @ file:///tmp/x.whl",
            "pkg[x",
            "pkg (>=1",
            "pkg >= ",
            "-pkg",
        ] {
            assert!(Requirement::parse(bad).is_err(), "{bad:?} should fail");
        }
    }
}

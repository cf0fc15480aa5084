//! Relationship fields (Debian policy 7.1): `Depends`, `Pre-Depends`, `Recommends`,
//! `Conflicts`, `Breaks` are comma-separated groups of `|`-separated alternatives, each
//! `name[:archqual] [(op version)] [[arch …]] [<profile …>]`; `Provides` is a comma list of
//! `name [(= version)]`. Pure: `&str` in.
//!
//! The obsolete operators `<` and `>` mean `<=` and `>=` (policy 7.1); build profiles
//! (`<!nocheck>`) are read and ignored, since they only matter for building source packages.

use std::fmt;

use super::version::{Version, VersionError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<<`
    Lt,
    /// `<=` (and the obsolete `<`)
    Le,
    /// `=`
    Eq,
    /// `>=` (and the obsolete `>`)
    Ge,
    /// `>>`
    Gt,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }

    /// Does `have` satisfy `have OP want`?
    pub fn matches(self, have: &Version, want: &Version) -> bool {
        use std::cmp::Ordering::*;
        let c = have.cmp(want);
        match self {
            Op::Lt => c == Less,
            Op::Le => c != Greater,
            Op::Eq => c == Equal,
            Op::Ge => c != Less,
            Op::Gt => c == Greater,
        }
    }
}

/// The `:qualifier` after a package name in a dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchQual {
    /// `pkg:any`: any architecture, but only packages marked `Multi-Arch: allowed`.
    Any,
    /// `pkg:native`: the build architecture.
    Native,
    /// `pkg:amd64` and the like.
    Named(String),
}

/// One alternative of a dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    pub arch_qual: Option<ArchQual>,
    pub version: Option<(Op, Version)>,
    /// `[amd64 !i386]`: (negated, architecture). Empty means every architecture.
    pub arch_restriction: Vec<(bool, String)>,
}

/// A comma-separated group: any one alternative satisfies it.
pub type Alternatives = Vec<Relation>;

/// One `Provides` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provide {
    pub name: String,
    /// Only `=` is allowed in `Provides`.
    pub version: Option<Version>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelationError {
    #[error("in {text:?}: {reason}\nhint: write relations as `name[:arch] [(op version)]`, separated by `,` or `|`, with op one of << <= = >= >>")]
    Syntax { text: String, reason: String },
    #[error("in {text:?}: {err}")]
    Version { text: String, err: VersionError },
}

impl Relation {
    /// Does this relation apply when building for `arch`? (`[…]` restrictions.)
    pub fn applies_to(&self, arch: &str) -> bool {
        if self.arch_restriction.is_empty() {
            return true;
        }
        let m = |a: &str| a == arch || a == "any" || a == "linux-any";
        if self.arch_restriction.iter().all(|(neg, _)| *neg) {
            !self.arch_restriction.iter().any(|(_, a)| m(a))
        } else {
            self.arch_restriction.iter().any(|(neg, a)| !*neg && m(a))
        }
    }

    /// Is `version` of a package named `self.name` acceptable?
    pub fn version_ok(&self, version: &Version) -> bool {
        match &self.version {
            None => true,
            Some((op, want)) => op.matches(version, want),
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match &self.arch_qual {
            None => {}
            Some(ArchQual::Any) => f.write_str(":any")?,
            Some(ArchQual::Native) => f.write_str(":native")?,
            Some(ArchQual::Named(a)) => write!(f, ":{a}")?,
        }
        if let Some((op, v)) = &self.version {
            write!(f, " ({} {v})", op.as_str())?;
        }
        if !self.arch_restriction.is_empty() {
            let parts: Vec<String> = self
                .arch_restriction
                .iter()
                .map(|(n, a)| format!("{}{a}", if *n { "!" } else { "" }))
                .collect();
            write!(f, " [{}]", parts.join(" "))?;
        }
        Ok(())
    }
}

/// Writes a group as `a | b (>= 1)`.
pub fn display_alternatives(alts: &[Relation]) -> String {
    alts.iter()
        .map(Relation::to_string)
        .collect::<Vec<_>>()
        .join(" | ")
}

fn syntax(text: &str, reason: impl Into<String>) -> RelationError {
    RelationError::Syntax {
        text: text.to_string(),
        reason: reason.into(),
    }
}

fn valid_name(n: &str) -> bool {
    // Policy 5.6.1: lower case letters, digits, + - . starting with an alphanumeric. Upper
    // case and one-letter names (policy asks for two) are accepted: they do no harm.
    !n.is_empty()
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Parses one alternative, e.g. `libc6:any (>= 2.36) [amd64]`.
pub fn parse_relation(text: &str) -> Result<Relation, RelationError> {
    let t = text.trim();
    // Drop build profiles first: `<…>` after the name and version.
    let mut rest = t;
    let name_end = rest
        .find(|c: char| c.is_whitespace() || c == '(' || c == '[' || c == '<')
        .unwrap_or(rest.len());
    let full_name = &rest[..name_end];
    rest = rest[name_end..].trim_start();
    if full_name.is_empty() {
        return Err(syntax(t, "missing package name"));
    }
    let (name, arch_qual) = match full_name.split_once(':') {
        None => (full_name, None),
        Some((n, "any")) => (n, Some(ArchQual::Any)),
        Some((n, "native")) => (n, Some(ArchQual::Native)),
        Some((n, a))
            if !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            (n, Some(ArchQual::Named(a.to_string())))
        }
        Some(_) => {
            return Err(syntax(
                t,
                format!("bad architecture qualifier in {full_name:?}"),
            ))
        }
    };
    if !valid_name(name) {
        return Err(syntax(t, format!("{name:?} is not a valid package name")));
    }
    let mut version = None;
    if let Some(r) = rest.strip_prefix('(') {
        let Some((inner, after)) = r.split_once(')') else {
            return Err(syntax(t, "unclosed `(`"));
        };
        let inner = inner.trim();
        let op_len = inner
            .find(|c: char| !matches!(c, '<' | '>' | '='))
            .unwrap_or(inner.len());
        let op = match &inner[..op_len] {
            "<<" => Op::Lt,
            "<=" | "<" => Op::Le,
            "=" => Op::Eq,
            ">=" | ">" => Op::Ge,
            ">>" => Op::Gt,
            "" => return Err(syntax(t, "missing operator before the version")),
            o => return Err(syntax(t, format!("unknown operator {o:?}"))),
        };
        let v = inner[op_len..].trim();
        let v = Version::parse(v).map_err(|err| RelationError::Version {
            text: t.to_string(),
            err,
        })?;
        version = Some((op, v));
        rest = after.trim_start();
    }
    let mut arch_restriction = Vec::new();
    if let Some(r) = rest.strip_prefix('[') {
        let Some((inner, after)) = r.split_once(']') else {
            return Err(syntax(t, "unclosed `[`"));
        };
        for a in inner.split_whitespace() {
            let (neg, a) = match a.strip_prefix('!') {
                Some(a) => (true, a),
                None => (false, a),
            };
            if a.is_empty() {
                return Err(syntax(t, "empty architecture in `[…]`"));
            }
            arch_restriction.push((neg, a.to_string()));
        }
        if arch_restriction.is_empty() {
            return Err(syntax(t, "empty architecture list `[]`"));
        }
        let negs = arch_restriction.iter().filter(|(n, _)| *n).count();
        if negs != 0 && negs != arch_restriction.len() {
            return Err(syntax(t, "an architecture list mixes `!arch` and `arch`"));
        }
        rest = after.trim_start();
    }
    while let Some(r) = rest.strip_prefix('<') {
        let Some((_, after)) = r.split_once('>') else {
            return Err(syntax(t, "unclosed `<`"));
        };
        rest = after.trim_start();
    }
    if !rest.is_empty() {
        return Err(syntax(t, format!("unexpected {rest:?}")));
    }
    Ok(Relation {
        name: name.to_string(),
        arch_qual,
        version,
        arch_restriction,
    })
}

/// Parses a `Depends`-style field into groups of alternatives. Empty input (or an empty
/// field) is no relations; empty groups (`a,,b` or a trailing comma) are skipped, as dpkg
/// does for trailing commas.
pub fn parse_relations(text: &str) -> Result<Vec<Alternatives>, RelationError> {
    let mut out = Vec::new();
    for group in text.split(',') {
        if group.trim().is_empty() {
            continue;
        }
        let alts = group
            .split('|')
            .map(parse_relation)
            .collect::<Result<Vec<_>, _>>()?;
        out.push(alts);
    }
    Ok(out)
}

/// Parses a `Provides` field.
pub fn parse_provides(text: &str) -> Result<Vec<Provide>, RelationError> {
    let mut out = Vec::new();
    for group in parse_relations(text)? {
        let [r] = group.as_slice() else {
            return Err(syntax(text, "`Provides` cannot have alternatives (`|`)"));
        };
        if r.arch_qual.is_some() || !r.arch_restriction.is_empty() {
            return Err(syntax(text, "`Provides` entries take no architecture"));
        }
        let version = match &r.version {
            None => None,
            Some((Op::Eq, v)) => Some(v.clone()),
            Some((op, _)) => {
                return Err(syntax(
                    text,
                    format!("`Provides` allows only `=`, found `{}`", op.as_str()),
                ))
            }
        };
        out.push(Provide {
            name: r.name.clone(),
            version,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(groups: &[Alternatives]) -> Vec<String> {
        groups.iter().map(|g| display_alternatives(g)).collect()
    }

    #[test]
    fn depends_table() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("  ", &[]),
            ("libc6", &["libc6"]),
            ("libc6 (>= 2.34)", &["libc6 (>= 2.34)"]),
            ("libc6(>=2.34)", &["libc6 (>= 2.34)"]),
            ("libc6 ( >= 2.34 )", &["libc6 (>= 2.34)"]),
            (
                "libc6 (>= 2.34), libssl3 (>= 3.0.0), zlib1g (>= 1:1.1.4)",
                &[
                    "libc6 (>= 2.34)",
                    "libssl3 (>= 3.0.0)",
                    "zlib1g (>= 1:1.1.4)",
                ],
            ),
            (
                "debconf (>= 0.5) | debconf-2.0",
                &["debconf (>= 0.5) | debconf-2.0"],
            ),
            ("a|b|c", &["a | b | c"]),
            ("python3:any", &["python3:any"]),
            ("python3:any (>= 3.11~)", &["python3:any (>= 3.11~)"]),
            ("perl:native", &["perl:native"]),
            ("libfoo:i386", &["libfoo:i386"]),
            (
                "a (<< 2), b (<= 2), c (= 2), d (>> 2)",
                &["a (<< 2)", "b (<= 2)", "c (= 2)", "d (>> 2)"],
            ),
            // Obsolete operators, read as policy says.
            ("a (< 2), b (> 2)", &["a (<= 2)", "b (>= 2)"]),
            ("foo [amd64 arm64]", &["foo [amd64 arm64]"]),
            ("foo [!i386] | bar", &["foo [!i386] | bar"]),
            ("foo (>= 1) [amd64] <!nocheck>", &["foo (>= 1) [amd64]"]),
            ("foo <!nocheck> <stage1>", &["foo"]),
            // Trailing and doubled commas, newlines (folded fields).
            ("a,\n b,", &["a", "b"]),
            ("a,,b", &["a", "b"]),
            ("libstdc++6 (>= 13.1)", &["libstdc++6 (>= 13.1)"]),
            ("g++-12", &["g++-12"]),
        ];
        for (text, want) in cases {
            let got = parse_relations(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(show(&got), *want, "{text:?}");
        }
    }

    #[test]
    fn parsed_parts() {
        let r = &parse_relations("python3:any (>= 3.11~) [amd64]").unwrap()[0][0];
        assert_eq!(r.name, "python3");
        assert_eq!(r.arch_qual, Some(ArchQual::Any));
        let (op, v) = r.version.as_ref().unwrap();
        assert_eq!((*op, v.as_str()), (Op::Ge, "3.11~"));
        assert_eq!(r.arch_restriction, vec![(false, "amd64".to_string())]);
    }

    #[test]
    fn errors() {
        let cases: &[(&str, &str)] = &[
            ("a | ", "missing package name"),
            ("(>= 1)", "missing package name"),
            ("a (>= 1", "unclosed `(`"),
            ("a (1.0)", "missing operator"),
            ("a (=> 1.0)", "unknown operator"),
            ("a (>= x1)", "does not start with a digit"),
            ("a [amd64", "unclosed `[`"),
            ("a []", "empty architecture list"),
            ("a [amd64 !i386]", "mixes"),
            ("a b", "unexpected \"b\""),
            ("a:", "bad architecture qualifier"),
            ("A_b", "not a valid package name"),
            ("-x", "not a valid package name"),
            ("a <nocheck", "unclosed `<`"),
        ];
        for (text, msg) in cases {
            let e = parse_relations(text).expect_err(text);
            assert!(e.to_string().contains(msg), "{text:?}: {e}");
        }
    }

    #[test]
    fn provides() {
        let p = parse_provides("awk, python3-foo (= 1.2-1), libfoo-abi-2").unwrap();
        let got: Vec<(String, Option<String>)> = p
            .iter()
            .map(|p| (p.name.clone(), p.version.as_ref().map(|v| v.to_string())))
            .collect();
        assert_eq!(
            got,
            [
                ("awk".into(), None),
                ("python3-foo".into(), Some("1.2-1".into())),
                ("libfoo-abi-2".into(), None)
            ]
        );
        for (bad, msg) in [
            ("a | b", "alternatives"),
            ("a (>= 1)", "only `=`"),
            ("a:any", "no architecture"),
        ] {
            let e = parse_provides(bad).expect_err(bad);
            assert!(e.to_string().contains(msg), "{bad}: {e}");
        }
    }

    #[test]
    fn ops_and_arch_restrictions() {
        let v = |s: &str| Version::parse(s).unwrap();
        let cases = [
            (Op::Lt, "1", "2", true),
            (Op::Lt, "2", "2", false),
            (Op::Le, "2", "2", true),
            (Op::Le, "2.1", "2", false),
            (Op::Eq, "2-0", "2", true),
            (Op::Eq, "2-1", "2", false),
            (Op::Ge, "2~rc1", "2", false),
            (Op::Ge, "2+b1", "2", true),
            (Op::Gt, "2", "2", false),
            (Op::Gt, "1:0", "2", true),
        ];
        for (op, have, want, ok) in cases {
            assert_eq!(
                op.matches(&v(have), &v(want)),
                ok,
                "{have} {} {want}",
                op.as_str()
            );
        }
        let r = |s: &str| parse_relation(s).unwrap();
        assert!(r("a").applies_to("amd64"));
        assert!(r("a [amd64 arm64]").applies_to("arm64"));
        assert!(!r("a [amd64 arm64]").applies_to("i386"));
        assert!(!r("a [!amd64]").applies_to("amd64"));
        assert!(r("a [!amd64]").applies_to("arm64"));
        assert!(r("a [linux-any]").applies_to("riscv64"));
    }
}

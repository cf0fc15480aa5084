//! PEP 440 versions and specifiers: enough to compare versions, check `Requires-Dist`
//! ranges and `Requires-Python`, and evaluate version comparisons in markers. Pure.

use std::cmp::Ordering;
use std::fmt;

/// A parsed PEP 440 version. `text` keeps the spelling it was parsed from.
#[derive(Debug, Clone)]
pub struct Version {
    pub epoch: u64,
    pub release: Vec<u64>,
    /// (0 = a, 1 = b, 2 = rc, number)
    pub pre: Option<(u8, u64)>,
    pub post: Option<u64>,
    pub dev: Option<u64>,
    pub local: Option<String>,
    pub text: String,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn num(&mut self) -> Option<u64> {
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        if start == self.i {
            return None;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }
    fn sep(&mut self) -> bool {
        if self.i < self.s.len() && matches!(self.s[self.i], b'.' | b'-' | b'_') {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn word(&mut self, words: &[&str]) -> Option<usize> {
        // Longest first, so `preview` wins over `pre`.
        let mut best: Option<(usize, usize)> = None;
        for (k, w) in words.iter().enumerate() {
            if self.s[self.i..].starts_with(w.as_bytes())
                && best.is_none_or(|(_, len)| w.len() > len)
            {
                best = Some((k, w.len()));
            }
        }
        let (k, len) = best?;
        self.i += len;
        Some(k)
    }
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
}

impl Version {
    /// Parses a version (case-insensitive, `v` prefix and alternative spellings allowed).
    pub fn parse(text: &str) -> Option<Version> {
        let lower = text.trim().to_ascii_lowercase();
        let body = lower.strip_prefix('v').unwrap_or(&lower);
        let (body, local) = match body.split_once('+') {
            Some((b, l)) if !l.is_empty() => (b, Some(l.replace(['-', '_'], "."))),
            Some(_) => return None,
            None => (body, None),
        };
        let (epoch, body) = match body.split_once('!') {
            Some((e, b)) => (e.parse().ok()?, b),
            None => (0, body),
        };
        let mut c = Cursor {
            s: body.as_bytes(),
            i: 0,
        };
        let mut release = vec![c.num()?];
        while c.i + 1 < c.s.len() && c.s[c.i] == b'.' && c.s[c.i + 1].is_ascii_digit() {
            c.i += 1;
            release.push(c.num()?);
        }
        let mut pre = None;
        let mut post = None;
        let mut dev = None;
        // pre-release
        let save = c.i;
        c.sep();
        match c.word(&["a", "alpha", "b", "beta", "c", "rc", "pre", "preview"]) {
            Some(k) => {
                let kind = match k {
                    0 | 1 => 0,
                    2 | 3 => 1,
                    _ => 2,
                };
                let save2 = c.i;
                c.sep();
                let n = c.num().unwrap_or_else(|| {
                    c.i = save2;
                    0
                });
                pre = Some((kind, n));
            }
            None => c.i = save,
        }
        // post-release
        let save = c.i;
        if c.i < c.s.len() && c.s[c.i] == b'-' && c.s.get(c.i + 1).is_some_and(u8::is_ascii_digit) {
            c.i += 1;
            post = c.num();
        } else {
            c.sep();
            match c.word(&["post", "rev", "r"]) {
                Some(_) => {
                    let save2 = c.i;
                    c.sep();
                    post = Some(c.num().unwrap_or_else(|| {
                        c.i = save2;
                        0
                    }));
                }
                None => c.i = save,
            }
        }
        // dev-release
        let save = c.i;
        c.sep();
        match c.word(&["dev"]) {
            Some(_) => {
                let save2 = c.i;
                c.sep();
                dev = Some(c.num().unwrap_or_else(|| {
                    c.i = save2;
                    0
                }));
            }
            None => c.i = save,
        }
        if !c.done() {
            return None;
        }
        Some(Version {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
            text: text.trim().to_string(),
        })
    }

    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    fn release_cmp(a: &[u64], b: &[u64]) -> Ordering {
        let n = a.len().max(b.len());
        for i in 0..n {
            let x = a.get(i).copied().unwrap_or(0);
            let y = b.get(i).copied().unwrap_or(0);
            match x.cmp(&y) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        Ordering::Equal
    }

    /// Order ignoring the local part.
    pub fn cmp_public(&self, other: &Version) -> Ordering {
        // (pre key, post key, dev key) per PEP 440, with i128 standing in for ±infinity.
        fn key(v: &Version) -> (i128, i128, i128, i128) {
            let (pk, pn) = match (v.pre, v.post, v.dev) {
                (None, None, Some(_)) => (-1, 0),
                (None, _, _) => (i128::MAX, 0),
                (Some((k, n)), _, _) => (i128::from(k), i128::from(n)),
            };
            let post = v.post.map_or(-1, i128::from);
            let dev = v.dev.map_or(i128::MAX, i128::from);
            (pk, pn, post, dev)
        }
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| Version::release_cmp(&self.release, &other.release))
            .then_with(|| key(self).cmp(&key(other)))
    }

    fn cmp_full(&self, other: &Version) -> Ordering {
        self.cmp_public(other)
            .then_with(|| match (&self.local, &other.local) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(a), Some(b)) => {
                    let seg = |s: &str| -> (u8, u64, String) {
                        match s.parse::<u64>() {
                            Ok(n) => (1, n, String::new()),
                            Err(_) => (0, 0, s.to_string()),
                        }
                    };
                    let a: Vec<_> = a.split('.').map(seg).collect();
                    let b: Vec<_> = b.split('.').map(seg).collect();
                    a.cmp(&b)
                }
            })
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp_full(other) == Ordering::Equal
    }
}
impl Eq for Version {}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_full(other)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Compatible,
    Eq,
    Ne,
    Le,
    Ge,
    Lt,
    Gt,
    Arbitrary,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "~=" => Op::Compatible,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            "<=" => Op::Le,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            ">" => Op::Gt,
            "===" => Op::Arbitrary,
            _ => return None,
        })
    }
}

/// One clause, e.g. `>=1.2` or `==3.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Specifier {
    pub op: Op,
    /// The version text after the operator (without `.*`).
    pub text: String,
    pub wildcard: bool,
}

impl fmt::Display for Specifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Compatible => "~=",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Le => "<=",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Gt => ">",
            Op::Arbitrary => "===",
        };
        write!(
            f,
            "{op}{}{}",
            self.text,
            if self.wildcard { ".*" } else { "" }
        )
    }
}

impl Specifier {
    pub fn parse(s: &str) -> Result<Specifier, String> {
        let s = s.trim();
        let n = s
            .bytes()
            .take_while(|b| matches!(b, b'~' | b'=' | b'!' | b'<' | b'>'))
            .count();
        let op = Op::parse(&s[..n]).ok_or_else(|| format!("`{s}` has no comparison operator"))?;
        let v = s[n..].trim();
        if v.is_empty() {
            return Err(format!("`{s}` has no version"));
        }
        if op == Op::Arbitrary {
            return Ok(Specifier {
                op,
                text: v.to_string(),
                wildcard: false,
            });
        }
        let (v, wildcard) = match v.strip_suffix(".*") {
            Some(b) if matches!(op, Op::Eq | Op::Ne) => (b, true),
            Some(_) => return Err(format!("`{s}`: `.*` only goes with `==` and `!=`")),
            None => (v, false),
        };
        Version::parse(v).ok_or_else(|| format!("`{v}` is not a PEP 440 version"))?;
        if op == Op::Compatible && v.split('.').count() < 2 {
            return Err(format!("`{s}`: `~=` needs at least two release numbers"));
        }
        Ok(Specifier {
            op,
            text: v.to_string(),
            wildcard,
        })
    }

    pub fn version(&self) -> Option<Version> {
        Version::parse(&self.text)
    }

    pub fn contains(&self, v: &Version) -> bool {
        if self.op == Op::Arbitrary {
            return v.text.eq_ignore_ascii_case(&self.text);
        }
        let Some(s) = self.version() else {
            return false;
        };
        let prefix_match = |v: &Version, s: &Version| {
            v.epoch == s.epoch
                && (0..s.release.len())
                    .all(|i| v.release.get(i).copied().unwrap_or(0) == s.release[i])
        };
        match self.op {
            Op::Eq if self.wildcard => prefix_match(v, &s),
            Op::Ne if self.wildcard => !prefix_match(v, &s),
            Op::Eq => {
                if s.local.is_some() {
                    v == &s
                } else {
                    v.cmp_public(&s) == Ordering::Equal
                }
            }
            Op::Ne => !Specifier {
                op: Op::Eq,
                ..self.clone()
            }
            .contains(v),
            Op::Le => v.cmp_public(&s) != Ordering::Greater,
            Op::Ge => v.cmp_public(&s) != Ordering::Less,
            Op::Lt => {
                v.cmp_public(&s) == Ordering::Less
                    && !(!s.is_prerelease()
                        && v.is_prerelease()
                        && Version::release_cmp(&v.release, &s.release) == Ordering::Equal)
            }
            Op::Gt => {
                v.cmp_public(&s) == Ordering::Greater
                    && !(s.post.is_none()
                        && v.post.is_some()
                        && Version::release_cmp(&v.release, &s.release) == Ordering::Equal
                        && v.pre == s.pre)
            }
            Op::Compatible => {
                let mut prefix = s.clone();
                prefix.release.pop();
                v.cmp_public(&s) != Ordering::Less && prefix_match(v, &prefix)
            }
            Op::Arbitrary => false,
        }
    }
}

/// A comma-separated set of specifiers; empty means "any version".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecifierSet(pub Vec<Specifier>);

impl SpecifierSet {
    pub fn parse(s: &str) -> Result<SpecifierSet, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(SpecifierSet::default());
        }
        s.split(',')
            .map(Specifier::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(SpecifierSet)
    }

    pub fn contains(&self, v: &Version) -> bool {
        self.0.iter().all(|s| s.contains(v))
    }

    /// True when a clause names a pre-release, which lets pre-releases be chosen.
    pub fn allows_prereleases(&self) -> bool {
        self.0
            .iter()
            .any(|s| s.version().is_some_and(|v| v.is_prerelease()))
    }

    /// The exact version of a set that is a single `==V` clause (no wildcard).
    pub fn pinned(&self) -> Option<&str> {
        match self.0.as_slice() {
            [s] if s.op == Op::Eq && !s.wildcard => Some(&s.text),
            [s] if s.op == Op::Arbitrary => Some(&s.text),
            _ => None,
        }
    }
}

impl fmt::Display for SpecifierSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|| panic!("bad version {s}"))
    }

    #[test]
    fn ordering_table() {
        let ordered = [
            "1.0.dev0",
            "1.0a1.dev1",
            "1.0a1",
            "1.0b2",
            "1.0rc1",
            "1.0",
            "1.0+local.1",
            "1.0.post1.dev0",
            "1.0.post1",
            "1.0.1",
            "1.1",
            "2",
            "1!0.1",
        ];
        for w in ordered.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(v("1.0"), v("1.0.0"));
        assert_eq!(v("1.0-1"), v("1.0.post1"));
        assert_eq!(v("V1.0RC1"), v("1.0rc1"));
        assert_eq!(v("1.0alpha2"), v("1.0a2"));
        assert_eq!(v("1.0-dev"), v("1.0.dev0"));
    }

    #[test]
    fn parse_refusals() {
        for bad in ["", "abc", "1.0+", "1.0 foo", "1..0", "1.0-"] {
            assert!(Version::parse(bad).is_none(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn specifier_table() {
        let cases = [
            (">=1.0", "1.0", true),
            (">=1.0", "0.9", false),
            ("<2", "1.9", true),
            ("<2", "2.0", false),
            ("<2", "2.0a1", false),
            ("<2.0a2", "2.0a1", true),
            ("==1.2.*", "1.2.7", true),
            ("==1.2.*", "1.3", false),
            ("!=1.2.*", "1.3", true),
            ("~=2.2", "2.9", true),
            ("~=2.2", "3.0", false),
            ("~=1.4.5", "1.4.9", true),
            ("~=1.4.5", "1.5.0", false),
            ("==1.0", "1.0+abc", true),
            ("==1.0+abc", "1.0", false),
            ("!=1.0", "1.0.0", false),
            (">1.7", "1.7.post1", false),
            (">1.7", "1.7.1", true),
            ("<=3.11", "3.11.0", true),
            ("<=3.11", "3.11.7", false),
            ("===1.0", "1.0", true),
            ("===1.0", "1.0.0", false),
            (">=3.8,<4", "3.11", true),
            (">=3.8,!=3.11.*", "3.11.2", false),
        ];
        for (spec, ver, want) in cases {
            let s = SpecifierSet::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(s.contains(&v(ver)), want, "{ver} in {spec}");
        }
    }

    #[test]
    fn specifier_errors() {
        for bad in ["1.0", ">=", "~=1", ">=1.*", "==x.y"] {
            assert!(SpecifierSet::parse(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(
            SpecifierSet::parse("==3008.4")
                .ok()
                .as_ref()
                .and_then(|s| s.pinned()),
            Some("3008.4")
        );
        assert!(SpecifierSet::parse(">=1")
            .ok()
            .as_ref()
            .and_then(|s| s.pinned())
            .is_none());
    }
}

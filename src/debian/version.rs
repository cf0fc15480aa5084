//! Debian package versions (`[epoch:]upstream[-revision]`) and their ordering, as dpkg
//! compares them (Debian policy 5.6.12): epochs numerically, then upstream and revision with
//! the alternating non-digit/digit algorithm where `~` sorts before everything, even the end
//! of the string, and letters sort before other characters. Pure.

use std::cmp::Ordering;
use std::fmt;

/// A parsed version. Equality is dpkg's: `1.0`, `0:1.0` and `1.0-0` are equal, so this type
/// has no `Hash`; use the original text (`as_str`) as a key.
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    epoch: u64,
    upstream: String,
    revision: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {version:?}: {reason}\nhint: a Debian version is [epoch:]upstream[-revision], e.g. 1:2.36-9+deb12u4")]
pub struct VersionError {
    pub version: String,
    pub reason: &'static str,
}

impl Version {
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        let err = |reason| VersionError {
            version: text.to_string(),
            reason,
        };
        let t = text.trim();
        if t.is_empty() {
            return Err(err("empty"));
        }
        if t.chars().any(char::is_whitespace) {
            return Err(err("contains whitespace"));
        }
        let (epoch, rest) = match t.split_once(':') {
            Some((e, r)) => {
                if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("epoch is not a number"));
                }
                let epoch = e.parse::<u64>().map_err(|_| err("epoch is too large"))?;
                (epoch, r)
            }
            None => (0, t),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => {
                if r.is_empty() {
                    return Err(err("revision is empty"));
                }
                (u, r)
            }
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err(err("upstream version is empty"));
        }
        if !upstream.as_bytes()[0].is_ascii_digit() {
            return Err(err("upstream version does not start with a digit"));
        }
        let ok_up = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '-');
        if !upstream.chars().all(ok_up) {
            return Err(err(
                "upstream version has a character other than A-Za-z0-9.+~-",
            ));
        }
        let ok_rev = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~');
        if !revision.chars().all(ok_rev) {
            return Err(err("revision has a character other than A-Za-z0-9.+~"));
        }
        Ok(Version {
            text: t.to_string(),
            epoch,
            upstream: upstream.to_string(),
            revision: revision.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    pub fn upstream(&self) -> &str {
        &self.upstream
    }
    /// Empty when the version has none.
    pub fn revision(&self) -> &str {
        &self.revision
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| verrevcmp(&self.revision, &other.revision))
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Version {}

/// dpkg's character weight: digits 0 (they are compared apart), end of string 0, `~` below
/// everything, letters by code, anything else after all letters.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: alternately compare the leading non-digit parts by `order` and the
/// digit parts numerically (any length, leading zeros ignored).
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal as E, Greater as G, Less as L};

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn compare_table() {
        let cases: &[(&str, &str, Ordering)] = &[
            ("1.0", "1.0", E),
            ("1.0", "1.1", L),
            ("1.1", "1.0", G),
            ("1.0", "1.0.0", L),
            ("0.0", "0", G),
            ("1.01", "1.1", E),
            ("1.001", "1.1", E),
            ("10", "9", G),
            ("2.30-1", "2.3-1", G),
            ("1.2.3", "1.2.3a", L),
            ("1.2a", "1.2+", L),
            ("1.2a", "1.2.", L),
            ("1.2+", "1.2.", L),
            // The tilde ladder from the Debian policy: ~~ < ~~a < ~ < "" < a.
            ("1~~", "1~~a", L),
            ("1~~a", "1~", L),
            ("1~", "1", L),
            ("1", "1a", L),
            ("1.0~rc1", "1.0", L),
            ("1.0~rc1", "1.0~rc2", L),
            ("1.0~beta1", "1.0~rc1", L),
            ("1.0", "1.0+b1", L),
            // Epochs beat everything; 0: is the same as none.
            ("1:1.0", "2.0", G),
            ("2:1.0", "1:9.9", G),
            ("0:1.0", "1.0", E),
            ("1:0", "99999", G),
            // Revisions; a missing one equals -0.
            ("1.0-1", "1.0-2", L),
            ("1.0-0", "1.0", E),
            ("1.0-1", "1.0-1.1", L),
            ("1.0-1", "1.0-1~bpo1", G),
            ("1.0-10", "1.0-9", G),
            ("1.0-1a", "1.0-1", G),
            // Hyphens in upstream: the last one starts the revision.
            ("1.0-beta-1", "1.0-beta-2", L),
            ("1.0-beta-1", "1.0-1", G),
            // Versions as they appear in bookworm and its updates.
            ("2.36-9+deb12u4", "2.36-9+deb12u10", L),
            ("2.36-9+deb12u4", "2.36-9", G),
            ("3.11.2-1+b1", "3.11.2-1", G),
            ("1:2.38.1-5+deb12u1", "2.39", G),
            ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12", L),
            ("5.2.15-2+b2", "5.2.15-2+b10", L),
            ("1.2.3-1ubuntu1", "1.2.3-1", G),
            ("1.2.3-1~deb12u1", "1.2.3-1", L),
            ("252.22-1~deb12u1", "252.19-1~deb12u1", G),
            ("1:9.2.1-2", "1:9.2.1-2+deb12u1", L),
            ("3.0.11-1~deb12u2", "3.0.13-1~deb12u1", L),
            ("20230311", "20230311+deb12u1", L),
            ("1.21.1-1+deb12u1", "1.21.1-1+deb12u1", E),
            ("2.9.14+dfsg-1.3~deb12u1", "2.9.14+dfsg-1.3", L),
            ("17.0.12+7-2~deb12u1", "17.0.11+9-1~deb12u1", G),
            ("4.13a.dfsg.1-10", "4.13a.dfsg.1-9", G),
            ("0.4.1+git20180510.5b2d6e8-1", "0.4.1-1", G),
            ("1:1.2.13.dfsg-1", "1.2.13.dfsg-1", G),
            ("12.4+deb12u5", "12.4+deb12u10", L),
        ];
        for (a, b, want) in cases {
            assert_eq!(v(a).cmp(&v(b)), *want, "{a} vs {b}");
            assert_eq!(v(b).cmp(&v(a)), want.reverse(), "{b} vs {a}");
            assert_eq!(v(a) == v(b), *want == E, "{a} == {b}");
        }
    }

    #[test]
    fn parse_parts() {
        let cases: &[(&str, u64, &str, &str)] = &[
            ("1.0", 0, "1.0", ""),
            ("1:2.36-9+deb12u4", 1, "2.36", "9+deb12u4"),
            ("1.0-beta-1", 0, "1.0-beta", "1"),
            ("17.0.12+7-2~deb12u1", 0, "17.0.12+7", "2~deb12u1"),
            ("  2.0-1 ", 0, "2.0", "1"),
        ];
        for (text, epoch, up, rev) in cases {
            let p = v(text);
            assert_eq!((p.epoch(), p.upstream(), p.revision()), (*epoch, *up, *rev));
            assert_eq!(p.as_str(), text.trim());
        }
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("a:1.0", "epoch is not a number"),
            (":1.0", "epoch is not a number"),
            ("1.0-", "revision is empty"),
            ("1:", "upstream version is empty"),
            ("-1", "upstream version is empty"),
            ("abc", "does not start with a digit"),
            ("1.0_1", "upstream version has a character"),
            ("1.0-1_2", "revision has a character"),
            ("1.0 1", "whitespace"),
            ("1:2:3", "upstream version has a character"),
        ];
        for (text, reason) in cases {
            let e = Version::parse(text).expect_err(text);
            assert!(e.to_string().contains(reason), "{text:?}: {e}");
            assert!(e.to_string().contains("hint:"));
        }
    }

    #[test]
    fn sorting_is_total_and_stable() {
        let mut vs: Vec<Version> = ["1.0", "1:0.1", "1.0~rc1", "1.0-1", "0.9", "1.0+b1"]
            .iter()
            .map(|s| v(s))
            .collect();
        vs.sort();
        let got: Vec<&str> = vs.iter().map(Version::as_str).collect();
        assert_eq!(got, ["0.9", "1.0~rc1", "1.0", "1.0-1", "1.0+b1", "1:0.1"]);
    }
}

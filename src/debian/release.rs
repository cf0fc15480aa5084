//! `InRelease`: the OpenPGP cleartext-signed `Release` file at the top of a suite. We check
//! its signature against a keyring (default the host's Debian archive keyring, `--keyring`),
//! then trust only the text that was signed: its `SHA256` list pins every index file's size
//! and digest.
//!
//! Freshness: a `Release` with a `Valid-Until` date in the past is refused when indices are
//! fetched (`strata lock`), as apt does, because an attacker could otherwise replay an old,
//! validly signed index with known-vulnerable packages. A `Release` without `Valid-Until`
//! (Debian's stable suites) has no expiry. Builds from a lockfile never look at `Release`:
//! the lock pins each `.deb`'s sha256, so they stay reproducible after the index expires.
//!
//! Key expiry and revocation are not checked: every key in the keyring given is trusted.

use std::collections::BTreeMap;

use pgp::composed::cleartext::CleartextSignedMessage;
use pgp::composed::{Deserializable, SignedPublicKey};

use super::deb822;

/// The host's Debian archive keyring.
pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    #[error("{what}: not an OpenPGP cleartext-signed message: {detail}\nhint: the mirror must serve dists/SUITE/InRelease; check the mirror URL and suite")]
    NotSigned { what: String, detail: String },
    #[error("{what}: BAD SIGNATURE: no signature verifies against any of the {keys} key(s) in {keyring}\nhint: the file was changed or signed by a key not in the keyring; pass the archive's keyring with --keyring FILE")]
    BadSignature {
        what: String,
        keyring: String,
        keys: usize,
    },
    #[error("{keyring}: cannot read an OpenPGP keyring: {detail}\nhint: pass a binary (.gpg) or armoured (.asc) public keyring with --keyring FILE")]
    Keyring { keyring: String, detail: String },
    #[error("{what}: {detail}")]
    Syntax { what: String, detail: String },
    #[error("{what}: expired: Valid-Until {valid_until} is in the past\nhint: the mirror serves a stale index (or the clock is wrong); use an up-to-date mirror")]
    Expired { what: String, valid_until: String },
    #[error("{what}: is for suite {found:?}, not {wanted:?}\nhint: the mirror returned another suite's Release; check the recipe's suite")]
    WrongSuite {
        what: String,
        wanted: String,
        found: String,
    },
}

/// A public keyring: every key (and subkey) is trusted.
pub struct Keyring {
    name: String,
    keys: Vec<SignedPublicKey>,
}

impl Keyring {
    /// Reads a binary or armoured keyring from `bytes`; `name` is used in messages.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Keyring, ReleaseError> {
        let kerr = |detail: String| ReleaseError::Keyring {
            keyring: name.to_string(),
            detail,
        };
        let iter = SignedPublicKey::from_reader_many(bytes).map_err(|e| kerr(e.to_string()))?;
        // A key this crate cannot read (an old format, an unknown algorithm) is skipped:
        // it could not verify anything anyway. No readable key at all is an error.
        let mut keys = Vec::new();
        let mut first_err = None;
        for k in iter.0 {
            match k {
                Ok(k) => keys.push(k),
                Err(e) => {
                    first_err.get_or_insert(e.to_string());
                }
            }
        }
        if keys.is_empty() {
            return Err(kerr(
                first_err.unwrap_or_else(|| "no public keys in it".into()),
            ));
        }
        Ok(Keyring {
            name: name.to_string(),
            keys,
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Verifies an `InRelease` file and returns the text that was signed (LF line endings).
pub fn verify_inrelease(
    what: &str,
    bytes: &[u8],
    keyring: &Keyring,
) -> Result<String, ReleaseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ReleaseError::NotSigned {
        what: what.to_string(),
        detail: format!("not UTF-8: {e}"),
    })?;
    let (msg, _headers) =
        CleartextSignedMessage::from_string(text).map_err(|e| ReleaseError::NotSigned {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
    let verified = keyring.keys.iter().any(|k| {
        msg.verify(&k.primary_key).is_ok()
            || k.public_subkeys.iter().any(|s| msg.verify(&s.key).is_ok())
    });
    if !verified {
        return Err(ReleaseError::BadSignature {
            what: what.to_string(),
            keyring: keyring.name.clone(),
            keys: keyring.len(),
        });
    }
    Ok(msg.signed_text().replace("\r\n", "\n"))
}

/// One line of the `SHA256` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    pub sha256: String,
    pub size: u64,
}

/// The fields of a `Release` file strata uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub suite: Option<String>,
    pub codename: Option<String>,
    pub date: Option<String>,
    pub valid_until: Option<String>,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    /// `Acquire-By-Hash: yes`: index files are also served under `…/by-hash/SHA256/<hex>`.
    pub acquire_by_hash: bool,
    /// Path below `dists/SUITE/` → digest and size.
    pub sha256: BTreeMap<String, IndexFile>,
}

/// Parses the (already verified) text of a `Release` file.
pub fn parse_release(what: &str, text: &str) -> Result<Release, ReleaseError> {
    let syn = |detail: String| ReleaseError::Syntax {
        what: what.to_string(),
        detail,
    };
    let paras = deb822::parse_paragraphs(text).map_err(|e| syn(e.to_string()))?;
    let [p] = paras.as_slice() else {
        return Err(syn(format!(
            "expected one paragraph, found {}",
            paras.len()
        )));
    };
    let list = |f: &str| -> Vec<String> {
        p.get(f)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let mut sha256 = BTreeMap::new();
    let Some(sums) = p.get("SHA256") else {
        return Err(syn(
            "no SHA256 field\nhint: strata needs SHA256 sums (MD5Sum alone is not trusted)".into(),
        ));
    };
    for line in sums.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [hex, size, path] = parts.as_slice() else {
            return Err(syn(format!("bad SHA256 line {line:?}")));
        };
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(syn(format!("bad sha256 {hex:?} for {path}")));
        }
        let size = size
            .parse::<u64>()
            .map_err(|_| syn(format!("bad size {size:?} for {path}")))?;
        sha256.insert(
            path.to_string(),
            IndexFile {
                sha256: hex.to_ascii_lowercase(),
                size,
            },
        );
    }
    Ok(Release {
        suite: p.get("Suite").map(str::to_string),
        codename: p.get("Codename").map(str::to_string),
        date: p.get("Date").map(str::to_string),
        valid_until: p.get("Valid-Until").map(str::to_string),
        architectures: list("Architectures"),
        components: list("Components"),
        acquire_by_hash: p
            .get("Acquire-By-Hash")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("yes")),
        sha256,
    })
}

impl Release {
    /// Checks that this Release is for `suite` (its Suite or Codename) and, when it has a
    /// `Valid-Until`, that `now` (Unix seconds) is before it.
    pub fn check(&self, what: &str, suite: &str, now: i64) -> Result<(), ReleaseError> {
        if self.suite.as_deref() != Some(suite) && self.codename.as_deref() != Some(suite) {
            return Err(ReleaseError::WrongSuite {
                what: what.to_string(),
                wanted: suite.to_string(),
                found: self
                    .codename
                    .clone()
                    .or_else(|| self.suite.clone())
                    .unwrap_or_default(),
            });
        }
        if let Some(vu) = &self.valid_until {
            let t = parse_rfc2822(vu).ok_or_else(|| ReleaseError::Syntax {
                what: what.to_string(),
                detail: format!("cannot read Valid-Until date {vu:?}"),
            })?;
            if now > t {
                return Err(ReleaseError::Expired {
                    what: what.to_string(),
                    valid_until: vu.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Reads a Release date (`Sat, 10 Jun 2023 08:53:33 UTC`, RFC 2822 with a `UTC`, `GMT`,
/// `Z` or `+hhmm` zone) as Unix seconds.
pub fn parse_rfc2822(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = match s.split_once(',') {
        Some((_, rest)) => rest.trim(),
        None => s,
    };
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [day, mon, year, time, zone @ ..] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let mon = MONTHS.iter().position(|m| mon.eq_ignore_ascii_case(m))? as i64 + 1;
    let year: i64 = year.parse().ok()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (h, mi, se) = match t.as_slice() {
        [h, m] => (*h, *m, 0),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let offset = match zone {
        [] => 0,
        [z] if ["UTC", "GMT", "Z", "UT"].contains(z) => 0,
        [z] if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let hh: i64 = z[1..3].parse().ok()?;
            let mm: i64 = z[3..5].parse().ok()?;
            let o = hh * 3600 + mm * 60;
            if z.starts_with('-') {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    Some(days_from_civil(year, mon, day) * 86_400 + h * 3600 + mi * 60 + se - offset)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE: &str = "\
Origin: Debian
Label: Debian
Suite: stable
Codename: bookworm
Date: Sat, 10 May 2025 09:03:16 UTC
Valid-Until: Sat, 17 May 2025 09:03:16 UTC
Architectures: all amd64 arm64
Components: main contrib
Description: Debian 12.11 Released 17 May 2025
SHA256:
 0a3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6 1048576 main/binary-amd64/Packages
 1b3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6   524288 main/binary-amd64/Packages.xz
";

    #[test]
    fn release_fields() {
        let r = parse_release("InRelease", RELEASE).unwrap();
        assert_eq!(r.suite.as_deref(), Some("stable"));
        assert_eq!(r.codename.as_deref(), Some("bookworm"));
        assert_eq!(r.architectures, ["all", "amd64", "arm64"]);
        assert_eq!(r.components, ["main", "contrib"]);
        assert_eq!(r.sha256.len(), 2);
        let x = &r.sha256["main/binary-amd64/Packages.xz"];
        assert_eq!(x.size, 524_288);
        assert!(x.sha256.starts_with("1b3e"));
    }

    #[test]
    fn release_checks() {
        let r = parse_release("InRelease", RELEASE).unwrap();
        let before = parse_rfc2822("Fri, 16 May 2025 00:00:00 UTC").unwrap();
        let after = parse_rfc2822("Sun, 18 May 2025 00:00:00 UTC").unwrap();
        r.check("x", "bookworm", before).unwrap();
        r.check("x", "stable", before).unwrap();
        let e = r.check("x", "trixie", before).unwrap_err().to_string();
        assert!(e.contains("not \"trixie\""), "{e}");
        let e = r.check("x", "bookworm", after).unwrap_err().to_string();
        assert!(e.contains("expired") && e.contains("Valid-Until"), "{e}");
        let mut no_vu = r.clone();
        no_vu.valid_until = None;
        no_vu.check("x", "bookworm", i64::MAX).unwrap();
    }

    #[test]
    fn release_errors() {
        for (text, msg) in [
            ("Suite: x\n", "no SHA256 field"),
            ("Suite: x\nSHA256:\n abc 1 p\n", "bad sha256"),
            (
                "SHA256:\n 0a3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6 x p\n",
                "bad size",
            ),
            ("SHA256:\n a b\n", "bad SHA256 line"),
            ("A: 1\n\nB: 2\n", "expected one paragraph"),
        ] {
            let e = parse_release("R", text).unwrap_err().to_string();
            assert!(e.contains(msg), "{text:?}: {e}");
        }
    }

    #[test]
    fn dates() {
        let cases: &[(&str, Option<i64>)] = &[
            ("Thu, 01 Jan 1970 00:00:00 UTC", Some(0)),
            ("Sat, 10 Jun 2023 08:53:33 UTC", Some(1_686_387_213)),
            ("10 Jun 2023 08:53:33 GMT", Some(1_686_387_213)),
            ("Sat, 10 Jun 2023 10:53:33 +0200", Some(1_686_387_213)),
            ("Tue, 29 Feb 2000 12:00:00 UTC", Some(951_825_600)),
            ("Sat, 10 Foo 2023 08:53:33 UTC", None),
            ("Sat, 10 Jun 2023 UTC", None),
            ("Sat, 10 Jun 2023 25:00:00 UTC", None),
            ("Sat, 10 Jun 2023 08:53:33 CEST", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_rfc2822(s), *want, "{s}");
        }
    }

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/debian/repo");

    fn fixture(rel: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURE}/{rel}")).unwrap()
    }

    #[test]
    fn fixture_signatures() {
        let ring = Keyring::from_bytes("keyring.gpg", &fixture("keyring.gpg")).unwrap();
        assert_eq!(ring.len(), 1);
        let text =
            verify_inrelease("InRelease", &fixture("dists/fixture/InRelease"), &ring).unwrap();
        // The signed text is exactly the Release file the script signed.
        assert_eq!(
            text.trim_end(),
            String::from_utf8(fixture("dists/fixture/Release"))
                .unwrap()
                .trim_end()
        );
        let r = parse_release("InRelease", &text).unwrap();
        assert_eq!(r.codename.as_deref(), Some("fixture"));
        assert!(r.sha256.contains_key("main/binary-amd64/Packages.xz"));
        for bad in [
            "hostile/InRelease.bad-signature",
            "hostile/InRelease.unknown-key",
        ] {
            let e = verify_inrelease(bad, &fixture(bad), &ring)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("BAD SIGNATURE") && e.contains("keyring.gpg"),
                "{bad}: {e}"
            );
        }
        // The plain Release is not a signed message at all.
        let e = verify_inrelease("Release", &fixture("dists/fixture/Release"), &ring)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an OpenPGP cleartext-signed message"), "{e}");
        // The expired one verifies but fails the freshness check.
        let text = verify_inrelease("x", &fixture("hostile/InRelease.expired"), &ring).unwrap();
        let e = parse_release("x", &text)
            .unwrap()
            .check("x", "fixture", 1_000_000_000);
        assert!(e.unwrap_err().to_string().contains("expired"));
    }

    #[test]
    fn garbage_is_not_signed() {
        let ring_err = Keyring::from_bytes("k", b"not a key")
            .err()
            .unwrap()
            .to_string();
        assert!(
            ring_err.contains("k: cannot read an OpenPGP keyring"),
            "{ring_err}"
        );
    }
}

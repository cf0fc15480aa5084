//! Where packages come from: `--mirror URL`, else `STRATA_DEBIAN_MIRROR`, else the host's apt
//! sources (deb822 `/etc/apt/sources.list.d/*.sources`, then one-line
//! `/etc/apt/sources.list` and `/etc/apt/sources.list.d/*.list`). The parsers are pure; only
//! [`discover`] reads files.
//!
//! Choosing among the host's entries (first match wins, files in name order):
//! 1. a `deb` entry that lists the recipe's suite exactly;
//! 2. else the first `deb` entry that lists a suite without a `-` (a release suite such as
//!    `bookworm`, not `bookworm-security` or `bookworm-updates`), since the same archive
//!    serves every release suite.
//!
//! Disabled entries (`Enabled: no`), `deb-src` and commented lines are ignored.

use std::fs;
use std::path::{Path, PathBuf};

use super::deb822;

/// The environment variable that overrides the host's apt sources.
pub const MIRROR_ENV: &str = "STRATA_DEBIAN_MIRROR";

/// One `deb` source entry from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    pub uri: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// `Signed-By` / `[signed-by=…]` when it names a file.
    pub signed_by: Option<String>,
    /// `file:line` where the entry was read.
    pub origin: String,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    #[error(
        "{origin}: {reason}\nhint: see sources.list(5); or pass --mirror URL / set {MIRROR_ENV}"
    )]
    Syntax { origin: String, reason: String },
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("no Debian mirror found for suite {suite:?} in the host's apt sources ({searched})\nhint: pass --mirror URL or set {MIRROR_ENV}=URL (the URL of a Debian archive, the directory holding dists/ and pool/)")]
    NotFound { suite: String, searched: String },
    #[error("mirror URL {url:?} is not http:// or https://\nhint: give the archive's URL, e.g. http://mirror.example.invalid/debian")]
    BadUrl { url: String },
}

/// Parses a deb822 `.sources` file. `name` is used in `origin`.
pub fn parse_sources_deb822(name: &str, text: &str) -> Result<Vec<AptSource>, MirrorError> {
    let paras = deb822::parse_paragraphs(text).map_err(|e| MirrorError::Syntax {
        origin: format!("{name}:{}", e.line()),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for p in paras {
        let origin = format!("{name}:{}", p.line());
        let words = |f: &str| -> Vec<String> {
            p.get(f)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        if p.get("Enabled")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("no"))
        {
            continue;
        }
        let types = words("Types");
        if types.is_empty() {
            return Err(MirrorError::Syntax {
                origin,
                reason: "entry has no Types field".into(),
            });
        }
        if !types.iter().any(|t| t == "deb") {
            continue;
        }
        let uris = words("URIs");
        let suites = words("Suites");
        if uris.is_empty() || suites.is_empty() {
            return Err(MirrorError::Syntax {
                origin,
                reason: "entry needs URIs and Suites".into(),
            });
        }
        let signed_by = p
            .get("Signed-By")
            .map(str::trim)
            .filter(|s| s.starts_with('/') && !s.contains('\n'))
            .map(str::to_string);
        for uri in uris {
            out.push(AptSource {
                uri,
                suites: suites.clone(),
                components: words("Components"),
                signed_by: signed_by.clone(),
                origin: origin.clone(),
            });
        }
    }
    Ok(out)
}

/// Parses a one-line-style `sources.list`: `deb [opt=val …] URI SUITE [COMPONENT…]`.
pub fn parse_sources_list(name: &str, text: &str) -> Result<Vec<AptSource>, MirrorError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let origin = format!("{name}:{}", i + 1);
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (kind, mut rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        rest = rest.trim_start();
        match kind {
            "deb" => {}
            "deb-src" => continue,
            other => {
                return Err(MirrorError::Syntax {
                    origin,
                    reason: format!("unknown type {other:?} (expected deb or deb-src)"),
                })
            }
        }
        let mut signed_by = None;
        if let Some(r) = rest.strip_prefix('[') {
            let Some((opts, after)) = r.split_once(']') else {
                return Err(MirrorError::Syntax {
                    origin,
                    reason: "unclosed `[` in options".into(),
                });
            };
            for opt in opts.split_whitespace() {
                if let Some(v) = opt.strip_prefix("signed-by=") {
                    signed_by = Some(v.to_string());
                }
            }
            rest = after.trim_start();
        }
        let mut words = rest.split_whitespace().map(str::to_string);
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            return Err(MirrorError::Syntax {
                origin,
                reason: "expected `deb URI SUITE [COMPONENT…]`".into(),
            });
        };
        out.push(AptSource {
            uri,
            suites: vec![suite],
            components: words.collect(),
            signed_by,
            origin,
        });
    }
    Ok(out)
}

/// Picks the entry for `suite` by the rule in the module docs.
pub fn choose<'a>(sources: &'a [AptSource], suite: &str) -> Option<&'a AptSource> {
    let web = |s: &&AptSource| s.uri.starts_with("http://") || s.uri.starts_with("https://");
    sources
        .iter()
        .filter(web)
        .find(|s| s.suites.iter().any(|x| x == suite))
        .or_else(|| {
            sources
                .iter()
                .filter(web)
                .find(|s| s.suites.iter().any(|x| !x.contains('-')))
        })
}

/// Checks and normalises a mirror URL (no trailing `/`).
pub fn normalise_url(url: &str) -> Result<String, MirrorError> {
    let u = url.trim();
    if !(u.starts_with("http://") || u.starts_with("https://")) {
        return Err(MirrorError::BadUrl { url: u.to_string() });
    }
    Ok(u.trim_end_matches('/').to_string())
}

/// Reads the apt source files under `etc_apt` (normally `/etc/apt`), in apt's order.
pub fn read_host_sources(etc_apt: &Path) -> Result<(Vec<AptSource>, Vec<PathBuf>), MirrorError> {
    let mut files = Vec::new();
    let list = etc_apt.join("sources.list");
    if list.is_file() {
        files.push(list);
    }
    let dir = etc_apt.join("sources.list.d");
    if let Ok(rd) = fs::read_dir(&dir) {
        let mut names: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("sources" | "list")
                )
            })
            .collect();
        names.sort();
        // deb822 files first: they are the current format and what Debian installs.
        names.sort_by_key(|p| p.extension().and_then(|e| e.to_str()) != Some("sources"));
        files.splice(0..0, names);
    }
    let mut out = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).map_err(|err| MirrorError::Io {
            path: f.clone(),
            err,
        })?;
        let name = f.display().to_string();
        if f.extension().and_then(|e| e.to_str()) == Some("sources") {
            out.extend(parse_sources_deb822(&name, &text)?);
        } else {
            out.extend(parse_sources_list(&name, &text)?);
        }
    }
    Ok((out, files))
}

/// The mirror to use: `flag`, else `env` (the value of [`MIRROR_ENV`]), else the host's
/// sources under `etc_apt`.
pub fn discover(
    flag: Option<&str>,
    env: Option<&str>,
    etc_apt: &Path,
    suite: &str,
) -> Result<String, MirrorError> {
    if let Some(u) = flag.or(env).filter(|u| !u.trim().is_empty()) {
        return normalise_url(u);
    }
    let (sources, files) = read_host_sources(etc_apt)?;
    match choose(&sources, suite) {
        Some(s) => normalise_url(&s.uri),
        None => Err(MirrorError::NotFound {
            suite: suite.to_string(),
            searched: if files.is_empty() {
                format!("no source files under {}", etc_apt.display())
            } else {
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "\
Types: deb
# http://snapshot.example.invalid/archive/debian/20250520T000000Z
URIs: http://mirror.example.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.invalid/debian-security
Suites: bookworm-security
Components: main contrib

Types: deb-src
URIs: http://src.example.invalid/debian
Suites: trixie

Types: deb
Enabled: no
URIs: http://off.example.invalid/debian
Suites: trixie
";

    #[test]
    fn deb822_sources() {
        let s = parse_sources_deb822("debian.sources", DEB822).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].uri, "http://mirror.example.invalid/debian");
        assert_eq!(s[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(s[0].components, ["main"]);
        assert_eq!(
            s[0].signed_by.as_deref(),
            Some("/usr/share/keyrings/debian-archive-keyring.gpg")
        );
        assert_eq!(s[0].origin, "debian.sources:1");
        assert_eq!(s[1].suites, ["bookworm-security"]);
        assert_eq!(s[1].signed_by, None);
        assert_eq!(s[1].origin, "debian.sources:8");
    }

    #[test]
    fn deb822_multiple_uris_and_errors() {
        let s = parse_sources_deb822(
            "x.sources",
            "Types: deb deb-src\nURIs: http://a.example.invalid/d https://b.example.invalid/d\nSuites: trixie\n",
        )
        .unwrap();
        let uris: Vec<&str> = s.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(
            uris,
            ["http://a.example.invalid/d", "https://b.example.invalid/d"]
        );
        for (text, msg) in [
            (
                "URIs: http://a.example.invalid\nSuites: x\n",
                "x.sources:1: entry has no Types",
            ),
            (
                "Types: deb\nSuites: x\n",
                "x.sources:1: entry needs URIs and Suites",
            ),
            ("Types: deb\nnonsense\n", "x.sources:2:"),
        ] {
            let e = parse_sources_deb822("x.sources", text)
                .unwrap_err()
                .to_string();
            assert!(e.contains(msg), "{text:?}: {e}");
            assert!(e.contains("hint:"), "{e}");
        }
    }

    #[test]
    fn one_line_sources() {
        let text = "\
# comment
deb http://mirror.example.invalid/debian bookworm main contrib
deb-src http://mirror.example.invalid/debian bookworm main

deb [arch=amd64 signed-by=/etc/k.gpg] http://other.example.invalid/debian trixie main # tail
";
        let s = parse_sources_list("sources.list", text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].uri, "http://mirror.example.invalid/debian");
        assert_eq!(s[0].suites, ["bookworm"]);
        assert_eq!(s[0].components, ["main", "contrib"]);
        assert_eq!(s[0].origin, "sources.list:2");
        assert_eq!(s[1].uri, "http://other.example.invalid/debian");
        assert_eq!(s[1].signed_by.as_deref(), Some("/etc/k.gpg"));
        assert_eq!(s[1].components, ["main"]);
        for (text, msg) in [
            (
                "deb http://x.example.invalid\n",
                "sources.list:1: expected `deb URI SUITE",
            ),
            ("rpm http://x.example.invalid a\n", "unknown type \"rpm\""),
            (
                "deb [arch=amd64 http://x.example.invalid a\n",
                "unclosed `[`",
            ),
        ] {
            let e = parse_sources_list("sources.list", text)
                .unwrap_err()
                .to_string();
            assert!(e.contains(msg), "{text:?}: {e}");
        }
    }

    #[test]
    fn choosing() {
        let s = parse_sources_deb822("d.sources", DEB822).unwrap();
        // Exact suite.
        assert_eq!(
            choose(&s, "bookworm-security").unwrap().uri,
            "http://mirror.example.invalid/debian-security"
        );
        assert_eq!(
            choose(&s, "bookworm").unwrap().uri,
            "http://mirror.example.invalid/debian"
        );
        // Another release suite: the entry with a release suite, not the security one.
        assert_eq!(
            choose(&s, "trixie").unwrap().uri,
            "http://mirror.example.invalid/debian"
        );
        let only_security = &s[1..];
        assert!(choose(only_security, "trixie").is_none());
        let file = parse_sources_list("l", "deb file:/srv/repo bookworm main\n").unwrap();
        assert!(
            choose(&file, "bookworm").is_none(),
            "file: URIs are not fetched"
        );
    }

    #[test]
    fn discover_order() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path();
        // Nothing on the host.
        let e = discover(None, None, etc, "bookworm")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no Debian mirror found") && e.contains("--mirror"),
            "{e}"
        );
        fs::create_dir_all(etc.join("sources.list.d")).unwrap();
        fs::write(
            etc.join("sources.list"),
            "deb http://list.example.invalid/debian bookworm main\n",
        )
        .unwrap();
        fs::write(etc.join("sources.list.d/debian.sources"), DEB822).unwrap();
        fs::write(etc.join("sources.list.d/x.list.disabled"), "garbage\n").unwrap();
        // .sources files win over sources.list.
        assert_eq!(
            discover(None, None, etc, "bookworm").unwrap(),
            "http://mirror.example.invalid/debian"
        );
        // The env var beats the host, the flag beats both; trailing slashes dropped.
        assert_eq!(
            discover(
                None,
                Some("http://env.example.invalid/debian/"),
                etc,
                "bookworm"
            )
            .unwrap(),
            "http://env.example.invalid/debian"
        );
        assert_eq!(
            discover(
                Some("https://flag.example.invalid/d"),
                Some("http://env.example.invalid/d"),
                etc,
                "x"
            )
            .unwrap(),
            "https://flag.example.invalid/d"
        );
        let e = discover(Some("ftp://x.example.invalid"), None, etc, "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not http:// or https://"), "{e}");
    }
}

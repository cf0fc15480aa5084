//! Image references: `HOST[:PORT]/REPO[:TAG][@sha256:HEX]`, parsed without I/O.
//!
//! The host is always written out: strata talks to private registries and has no default
//! registry to fall back to, so `hello:latest` is an error with a hint rather than a guess.

use std::fmt;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `host` or `host:port` (IPv6 hosts in brackets: `[::1]:5000`).
    pub host: String,
    /// Repository path, e.g. `team/app`.
    pub repo: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

/// Why a reference was refused, with a hint on how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference `{input}`: {message}\n  hint: {hint}")]
pub struct ReferenceError {
    pub input: String,
    pub message: String,
    pub hint: String,
}

const FORM: &str = "write HOST[:PORT]/REPO[:TAG][@sha256:DIGEST], e.g. 127.0.0.1:5000/team/app:1.0";

impl Reference {
    /// Parses `HOST[:PORT]/REPO[:TAG][@sha256:HEX]`.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let err = |message: String, hint: &str| ReferenceError {
            input: input.to_string(),
            message,
            hint: hint.to_string(),
        };
        if input.is_empty() {
            return Err(err("it is empty".into(), FORM));
        }
        if input.contains("://") {
            return Err(err(
                "a scheme is not part of a reference".into(),
                "leave out http:// or https:// (plain HTTP is chosen with --insecure)",
            ));
        }
        let (name, digest) = match input.split_once('@') {
            Some((n, d)) => {
                check_digest(d)
                    .map_err(|m| err(m, "a digest is sha256: and 64 lowercase hex digits"))?;
                (n, Some(d.to_string()))
            }
            None => (input, None),
        };
        let Some((host, path)) = name.split_once('/') else {
            return Err(err(
                "no registry host".into(),
                "strata has no default registry; put the host first, e.g. 127.0.0.1:5000/hello:latest",
            ));
        };
        check_host(host).map_err(|m| err(m, FORM))?;
        // The tag is what follows the last `:` of the path, if no `/` follows it.
        let (repo, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => {
                check_tag(t).map_err(|m| {
                    err(
                        m,
                        "a tag is 1 to 128 of A-Z a-z 0-9 _ . - and does not start with . or -",
                    )
                })?;
                (r, Some(t.to_string()))
            }
            _ => (path, None),
        };
        check_repo(repo).map_err(|m| {
            err(
                m,
                "repository components are lowercase letters and digits, separated by one of . _ __ or dashes, joined by /",
            )
        })?;
        Ok(Reference {
            host: host.to_string(),
            repo: repo.to_string(),
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest when pinned, else the tag, else `latest`.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The host without its port, brackets removed (`[::1]:5000` → `::1`).
    pub fn host_name(&self) -> &str {
        host_name(&self.host)
    }

    /// True for `localhost`, `127.0.0.0/8` and `::1`: the registries Docker allows over
    /// plain HTTP without configuration, and so does strata.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repo)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `host[:port]` → `host`, brackets of an IPv6 literal removed.
pub fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.split(':').next().unwrap_or(host)
}

/// `localhost`, `127.x.y.z`, `::1`, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    let name = host_name(host);
    if name.eq_ignore_ascii_case("localhost") || name == "::1" {
        return true;
    }
    name.parse::<std::net::Ipv4Addr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

fn check_digest(d: &str) -> Result<(), String> {
    match d.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(())
        }
        _ => Err(format!("`{d}` is not a sha256 digest")),
    }
}

fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return Err(format!("host `{host}` has an unclosed `[`"));
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{ip}` is not an IPv6 address"));
        }
        match after {
            "" => (ip, None),
            p => match p.strip_prefix(':') {
                Some(p) => (ip, Some(p)),
                None => return Err(format!("unexpected `{after}` after the host")),
            },
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return Err(format!("`{p}` is not a port number"));
        }
    }
    if host.starts_with('[') {
        return Ok(());
    }
    // Like Docker: the first component is a host only when it has a `.` or a `:` or is
    // `localhost`; otherwise it is the start of a repository on some default registry.
    if !(name.contains('.') || port.is_some() || name == "localhost") {
        return Err(format!(
            "`{name}` is not a registry host (a host has a `.`, a `:PORT`, or is `localhost`)"
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !name.split('.').all(label_ok) {
        return Err(format!("`{name}` is not a host name"));
    }
    Ok(())
}

fn check_tag(t: &str) -> Result<(), String> {
    let ok = !t.is_empty()
        && t.len() <= 128
        && !t.starts_with(['.', '-'])
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{t}` is not a tag"))
    }
}

/// One path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn check_repo(repo: &str) -> Result<(), String> {
    if repo.is_empty() {
        return Err("the repository is empty".into());
    }
    if repo.len() > 255 {
        return Err("the repository name is longer than 255 characters".into());
    }
    match repo.split('/').find(|c| !component_ok(c)) {
        Some(bad) => Err(format!("`{bad}` is not a valid repository component")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// input, host, repo, tag, digest
    type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);

    #[test]
    fn valid_references() {
        let d = Some(D);
        let cases: &[Case] = &[
            (
                "127.0.0.1:5000/hello",
                "127.0.0.1:5000",
                "hello",
                None,
                None,
            ),
            (
                "127.0.0.1:5000/hello:latest",
                "127.0.0.1:5000",
                "hello",
                Some("latest"),
                None,
            ),
            (
                "localhost/a/b/c:v1.2_3-x",
                "localhost",
                "a/b/c",
                Some("v1.2_3-x"),
                None,
            ),
            (
                "reg.example.com/team/app",
                "reg.example.com",
                "team/app",
                None,
                None,
            ),
            ("[::1]:5000/app:1", "[::1]:5000", "app", Some("1"), None),
            ("[::1]/app", "[::1]", "app", None, None),
            (
                "h.io/my__app/x-y--z.w:T",
                "h.io",
                "my__app/x-y--z.w",
                Some("T"),
                None,
            ),
        ];
        for (input, host, repo, tag, digest) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.host, *host, "{input}");
            assert_eq!(r.repo, *repo, "{input}");
            assert_eq!(r.tag.as_deref(), *tag, "{input}");
            assert_eq!(r.digest.as_deref(), *digest, "{input}");
            assert_eq!(r.to_string(), *input, "round trip of {input}");
        }
        let with_digest = format!("localhost:5000/app:1@{D}");
        let r = Reference::parse(&with_digest).expect("digest");
        assert_eq!((r.tag.as_deref(), r.digest.as_deref()), (Some("1"), d));
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.to_string(), with_digest);
        let r = Reference::parse(&format!("localhost:5000/app@{D}")).expect("digest only");
        assert_eq!((r.tag, r.digest.as_deref()), (None, d));
    }

    #[test]
    fn invalid_references() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("hello:latest", "no registry host"),
            ("hello/world:1", "not a registry host"),
            ("http://127.0.0.1:5000/a", "scheme"),
            ("127.0.0.1:5000/", "repository is empty"),
            (
                "127.0.0.1:5000/Hello",
                "`Hello` is not a valid repository component",
            ),
            (
                "127.0.0.1:5000/a//b",
                "`` is not a valid repository component",
            ),
            (
                "127.0.0.1:5000/a-",
                "`a-` is not a valid repository component",
            ),
            ("127.0.0.1:5000/a:", "is not a tag"),
            ("127.0.0.1:5000/a:-x", "`-x` is not a tag"),
            ("127.0.0.1:5000/a@sha256:abc", "not a sha256 digest"),
            ("127.0.0.1:5000/a@md5:abc", "not a sha256 digest"),
            ("127.0.0.1:99999/a", "not a port number"),
            ("127.0.0.1:/a", "not a port number"),
            ("[::1/a", "unclosed"),
            ("[zz]:1/a", "not an IPv6 address"),
            ("bad_host.io/a", "not a host name"),
        ];
        for (input, want) in cases {
            match Reference::parse(input) {
                Ok(r) => panic!("{input:?} parsed as {r:?}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(want), "{input:?}: {msg}");
                    assert!(msg.contains("hint: "), "{input:?}: {msg}");
                }
            }
        }
    }

    #[test]
    fn loopback_hosts() {
        for (host, want) in [
            ("localhost:5000", true),
            ("127.0.0.1", true),
            ("127.8.9.10:80", true),
            ("[::1]:5000", true),
            ("10.0.0.1:5000", false),
            ("reg.example.com", false),
            ("localhost.example.com", false),
        ] {
            assert_eq!(is_loopback_host(host), want, "{host}");
        }
    }
}

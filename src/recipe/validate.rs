//! Pure checks of single recipe values (names, tags, modes, paths, ports). Each returns a
//! [`Problem`]: what is wrong and what to do; `parse` adds the file position.

use std::fmt;

/// What is wrong with a value, and a hint on how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub hint: String,
}

impl Problem {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (hint: {})", self.message, self.hint)
    }
}

/// Image name: one or more `/`-separated OCI path components, each
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn check_name(name: &str) -> Result<(), Problem> {
    let hint = "use lowercase letters, digits and `.`, `_`, `-` between them, e.g. `my-app`";
    if name.is_empty() {
        return Err(Problem::new("the image name is empty", hint));
    }
    if name.len() > 255 {
        return Err(Problem::new(
            "the image name is longer than 255 characters",
            hint,
        ));
    }
    for component in name.split('/') {
        if !is_name_component(component) {
            return Err(Problem::new(
                format!("`{name}` is not a valid OCI image name"),
                hint,
            ));
        }
    }
    Ok(())
}

fn is_name_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Between alphanumeric runs: exactly `.`, `_` or `__`, or any number of `-`.
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<(), Problem> {
    let hint = "tags are 1-128 characters of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`";
    let b = tag.as_bytes();
    let valid = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(Problem::new(format!("`{tag}` is not a valid tag"), hint))
    }
}

/// `os/arch[/variant]`, each part lowercase letters, digits and `_`.
pub fn check_platform(platform: &str) -> Result<(), Problem> {
    let hint = "write `os/arch` or `os/arch/variant`, e.g. `linux/amd64` or `linux/arm64/v8`";
    let parts: Vec<&str> = platform.split('/').collect();
    let part_ok = |p: &&str| {
        !p.is_empty()
            && p.bytes()
                .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == b'_')
    };
    if !(2..=3).contains(&parts.len()) || !parts.iter().all(part_ok) {
        return Err(Problem::new(
            format!("`{platform}` is not a platform"),
            hint,
        ));
    }
    Ok(())
}

/// Where the image starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An OCI layout directory, relative to the recipe's directory, and the tag to pick
    /// (`None`: the layout must hold exactly one image).
    Oci {
        path: String,
        tag: Option<String>,
    },
    /// An image in a registry: `registry://HOST/REPO[:TAG][@sha256:…]`. Without a digest,
    /// the digest the tag names is pinned in the recipe's lockfile ([`crate::lockfile::base`]).
    Registry(crate::registry::Reference),
}

/// `scratch`, `oci:PATH[:TAG]` or `registry://HOST/REPO[:TAG][@sha256:DIGEST]`. A final `:x`
/// of an `oci:` base is a tag when `x` is a valid tag without `/`.
pub fn parse_base(base: &str) -> Result<Base, Problem> {
    let hint = "write `scratch`, `oci:PATH[:TAG]` with PATH an OCI layout directory (relative to the recipe, or absolute), or `registry://HOST/REPO:TAG[@sha256:DIGEST]`";
    if base == "scratch" {
        return Ok(Base::Scratch);
    }
    if let Some(rest) = base.strip_prefix("registry://") {
        let r = crate::registry::Reference::parse(rest)
            .map_err(|e| Problem::new(format!("invalid registry base: {}", e.message), e.hint))?;
        return Ok(Base::Registry(r));
    }
    let Some(rest) = base.strip_prefix("oci:") else {
        return Err(Problem::new(format!("unknown base `{base}`"), hint));
    };
    let (path, tag) = match rest.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') => {
            check_tag(t)?;
            (p, Some(t.to_string()))
        }
        _ => (rest, None),
    };
    if path.is_empty() {
        return Err(Problem::new("the base's layout path is empty", hint));
    }
    // Unlike copy sources, a base may live anywhere: it is an image pinned by digest in the
    // output, not files taken from the build context (as with Docker's FROM versus COPY).
    Ok(Base::Oci {
        path: path.to_string(),
        tag,
    })
}

/// File mode in octal digits, as written in the recipe: `"0755"`, `0755`, `755` and `0o755`
/// all mean rwxr-xr-x. YAML would read an unquoted `0755` as decimal 755 (1.2) or 493 (1.1);
/// we look at the digits as written instead, so quoting never changes the meaning.
pub fn parse_mode(text: &str) -> Result<u32, Problem> {
    let hint = "write the mode as octal digits, e.g. `\"0644\"` or `\"0755\"` (at most 07777)";
    let t = text.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Err(Problem::new(
            format!("`{text}` is not an octal file mode"),
            hint,
        ));
    }
    let mode = u32::from_str_radix(digits, 8)
        .map_err(|_| Problem::new(format!("`{text}` is not an octal file mode"), hint))?;
    if mode > 0o7777 {
        return Err(Problem::new(
            format!("mode `{text}` has bits above 07777"),
            hint,
        ));
    }
    Ok(mode)
}

/// An absolute path in the image, normalised to the relative form entries use (no leading
/// or trailing `/`, no `.` or empty components; `/` becomes ``). `..` is refused so a
/// recipe can never write outside the image root, however the writer joins paths.
pub fn image_path(text: &str) -> Result<String, Problem> {
    let hint = "image paths are absolute and plain, e.g. `/usr/local/bin/app`";
    if !text.starts_with('/') {
        return Err(Problem::new(
            format!("image path `{text}` is not absolute"),
            hint,
        ));
    }
    if text.contains('\0') {
        return Err(Problem::new("image path contains a NUL byte", hint));
    }
    let mut parts = Vec::new();
    for c in text.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(Problem::new(
                    format!("image path `{text}` contains `..`"),
                    hint,
                ))
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Like [`image_path`] but refusing the root itself (files, symlinks, removals).
pub fn image_path_not_root(text: &str) -> Result<String, Problem> {
    let p = image_path(text)?;
    if p.is_empty() {
        return Err(Problem::new(
            "this needs a path below `/`, not the root itself",
            "name the path in the image, e.g. `/etc/app.conf`",
        ));
    }
    Ok(p)
}

/// A `copy`/`tar` source: relative to the recipe's directory, without `..`.
pub fn check_source_path(text: &str) -> Result<(), Problem> {
    if text.is_empty() {
        return Err(Problem::new(
            "the source path is empty",
            "name a file, directory or glob relative to the recipe's directory",
        ));
    }
    if text.starts_with('/') || text.starts_with('~') {
        return Err(Problem::new(
            format!("source `{text}` is absolute"),
            "sources are relative to the recipe's directory; move or link the file there, so the recipe directory holds every input",
        ));
    }
    if text.split('/').any(|c| c == "..") {
        return Err(Problem::new(
            format!("source `{text}` contains `..`"),
            "sources must stay inside the recipe's directory; move the recipe up or the files down",
        ));
    }
    if text.contains('\0') {
        return Err(Problem::new("source path contains a NUL byte", "remove it"));
    }
    Ok(())
}

/// `N`, `N/tcp` or `N/udp`; returns the normalised `N/proto` form the image config uses.
pub fn parse_port(text: &str) -> Result<String, Problem> {
    let hint = "write a port as `8080`, `8080/tcp` or `53/udp` (1-65535)";
    let (num, proto) = match text.split_once('/') {
        Some((n, p)) => (n, p),
        None => (text, "tcp"),
    };
    if !matches!(proto, "tcp" | "udp") {
        return Err(Problem::new(
            format!("port `{text}` has protocol `{proto}`; only tcp and udp are allowed"),
            hint,
        ));
    }
    let ok = !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit());
    match num.parse::<u32>() {
        Ok(n) if ok && (1..=65535).contains(&n) => Ok(format!("{n}/{proto}")),
        _ => Err(Problem::new(format!("`{text}` is not a port"), hint)),
    }
}

pub fn check_env_key(key: &str) -> Result<(), Problem> {
    if key.is_empty() || key.contains('=') || key.contains('\0') {
        return Err(Problem::new(
            format!("`{key}` is not a valid environment variable name"),
            "names are non-empty and contain no `=`, e.g. `PATH`",
        ));
    }
    Ok(())
}

/// Login names as shadow-utils accepts them: `[a-z_][a-z0-9_.-]*[$]?`, at most 32 bytes.
pub fn check_account_name(name: &str) -> Result<(), Problem> {
    let hint = "use lowercase letters, digits, `_`, `.` and `-`, starting with a letter or `_` (at most 32)";
    let b = name.as_bytes();
    let body = b.strip_suffix(b"$").unwrap_or(b);
    let ok = !body.is_empty()
        && b.len() <= 32
        && (body[0].is_ascii_lowercase() || body[0] == b'_')
        && body.iter().all(|&x| {
            x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, b'_' | b'.' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(Problem::new(
            format!("`{name}` is not a valid account name"),
            hint,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "my-app", "my--app", "a.b_c__d", "library/nginx", "x9"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "My", "-a", "a-", "a..b", "a___b", "a/", "a b", "a:b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags() {
        for ok in ["latest", "v1.2.3", "_x", "A-b"] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in ["", ".x", "-x", "a/b", "a:b", long.as_str()] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn platforms() {
        for ok in ["linux/amd64", "linux/arm64/v8", "windows/amd64"] {
            assert!(check_platform(ok).is_ok(), "{ok}");
        }
        for bad in ["linux", "linux/", "/amd64", "Linux/amd64", "a/b/c/d"] {
            assert!(check_platform(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registry_bases() {
        let d = format!("sha256:{}", "ab".repeat(32));
        match parse_base(&format!("registry://127.0.0.1:5000/team/base:12@{d}")) {
            Ok(Base::Registry(r)) => {
                assert_eq!(
                    (r.host.as_str(), r.repo.as_str()),
                    ("127.0.0.1:5000", "team/base")
                );
                assert_eq!(
                    (r.tag.as_deref(), r.digest.as_deref()),
                    (Some("12"), Some(d.as_str()))
                );
            }
            other => panic!("{other:?}"),
        }
        // Without a digest: the lockfile pins the tag.
        match parse_base("registry://127.0.0.1:5000/base:12") {
            Ok(Base::Registry(r)) => {
                assert_eq!(
                    (r.repo.as_str(), r.tag.as_deref(), r.digest),
                    ("base", Some("12"), None)
                );
            }
            other => panic!("{other:?}"),
        }
        let cases = [
            (
                "registry://base:12",
                "no registry host",
                "put the host first",
            ),
            (
                "registry://h.io/Base@sha256:00",
                "not a sha256 digest",
                "64 lowercase hex",
            ),
        ];
        for (input, msg, hint) in cases {
            let p = parse_base(input).expect_err(input);
            assert!(p.message.contains(msg), "{input}: {p}");
            assert!(p.hint.contains(hint), "{input}: {p}");
        }
    }

    #[test]
    fn bases() {
        assert_eq!(parse_base("scratch"), Ok(Base::Scratch));
        assert_eq!(
            parse_base("oci:base/debian:12"),
            Ok(Base::Oci {
                path: "base/debian".into(),
                tag: Some("12".into())
            })
        );
        assert_eq!(
            parse_base("oci:layout"),
            Ok(Base::Oci {
                path: "layout".into(),
                tag: None
            })
        );
        for bad in ["docker:x", "oci:", "oci:x:.bad"] {
            assert!(parse_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes() {
        let cases = [
            ("0755", Some(0o755)),
            ("755", Some(0o755)),
            ("0o644", Some(0o644)),
            ("4755", Some(0o4755)),
            ("07777", Some(0o7777)),
            ("0", Some(0)),
            ("0800", None),
            ("rwx", None),
            ("", None),
            ("17777", None),
            ("0x1ff", None),
            ("-755", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_mode(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn image_paths() {
        assert_eq!(image_path("/usr//bin/./x/").as_deref(), Ok("usr/bin/x"));
        assert_eq!(image_path("/").as_deref(), Ok(""));
        assert!(image_path("usr/bin").is_err());
        assert!(image_path("/usr/../etc").is_err());
        assert!(image_path_not_root("/").is_err());
    }

    #[test]
    fn ports() {
        let cases = [
            ("80", Some("80/tcp")),
            ("53/udp", Some("53/udp")),
            ("8080/tcp", Some("8080/tcp")),
            ("0", None),
            ("65536", None),
            ("80/sctp", None),
            ("http", None),
            ("+80", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_port(text).ok().as_deref(), want, "{text}");
        }
    }

    #[test]
    fn sources() {
        assert!(check_source_path("bin/app").is_ok());
        assert!(check_source_path("files/*.conf").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "~/x"] {
            assert!(check_source_path(bad).is_err(), "{bad}");
        }
    }
}

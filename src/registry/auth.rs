//! Registry credentials and challenges.
//!
//! Where credentials come from, first match wins:
//! 1. `STRATA_REGISTRY_AUTH=USER:PASSWORD` (split at the first `:`; used for every registry
//!    the command talks to);
//! 2. `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`): `credHelpers[HOST]`,
//!    then `auths[HOST].auth` (base64 `user:password`, or `username`/`password`), then
//!    `credsStore`. A helper is run as `docker-credential-NAME get` with the host on stdin.
//! 3. none: anonymous.
//!
//! Credentials are never printed: `Debug` redacts the secret and error messages name only
//! where the credentials came from.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use base64::Engine as _;

pub const AUTH_ENV: &str = "STRATA_REGISTRY_AUTH";

/// A user name and secret for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub secret: String,
    /// Where they came from, for messages (never the secret itself).
    pub source: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic …` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// `USER:PASSWORD` (the value of `STRATA_REGISTRY_AUTH`).
pub fn parse_user_password(text: &str, source: &str) -> Result<Credentials> {
    match text.split_once(':') {
        Some((u, p)) if !u.is_empty() => Ok(Credentials {
            username: u.to_string(),
            secret: p.to_string(),
            source: source.to_string(),
        }),
        _ => bail!("{source}: expected USER:PASSWORD\n  hint: for example {AUTH_ENV}=ci:s3cret (the password may contain `:`)"),
    }
}

/// What `~/.docker/config.json` says about a registry host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerConfigAuth {
    /// Credentials stored inline in `auths`.
    Inline(Credentials),
    /// Ask `docker-credential-NAME`.
    Helper(String),
    None,
}

/// Strips what Docker allows around an `auths` key: a scheme and a path
/// (`https://host:5000/v1/` → `host:5000`).
fn normalize_auth_key(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// Looks up `host` in the text of a Docker `config.json` (pure).
pub fn docker_config_lookup(text: &str, host: &str, file: &Path) -> Result<DockerConfigAuth> {
    let v: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{}: invalid JSON", file.display()))?;
    if let Some(helper) = v["credHelpers"][host].as_str() {
        return Ok(DockerConfigAuth::Helper(helper.to_string()));
    }
    if let Some(auths) = v["auths"].as_object() {
        for (key, entry) in auths {
            if normalize_auth_key(key) != host {
                continue;
            }
            let source = format!("{} (auths.{key})", file.display());
            if let Some(b64) = entry["auth"].as_str().filter(|s| !s.is_empty()) {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .with_context(|| format!("{source}: `auth` is not base64 of USER:PASSWORD\n  hint: run `docker login {host}` again"))?;
                return parse_user_password(&raw, &source).map(DockerConfigAuth::Inline);
            }
            if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
                return Ok(DockerConfigAuth::Inline(Credentials {
                    username: u.to_string(),
                    secret: p.to_string(),
                    source,
                }));
            }
        }
    }
    if let Some(store) = v["credsStore"].as_str().filter(|s| !s.is_empty()) {
        return Ok(DockerConfigAuth::Helper(store.to_string()));
    }
    Ok(DockerConfigAuth::None)
}

/// Parses what `docker-credential-NAME get` prints (pure).
pub fn parse_helper_output(out: &[u8], helper: &str) -> Result<Credentials> {
    let v: serde_json::Value = serde_json::from_slice(out)
        .with_context(|| format!("docker-credential-{helper}: output is not JSON"))?;
    match (v["Username"].as_str(), v["Secret"].as_str()) {
        (Some(u), Some(s)) => Ok(Credentials {
            username: u.to_string(),
            secret: s.to_string(),
            source: format!("docker-credential-{helper}"),
        }),
        _ => bail!("docker-credential-{helper}: output has no Username and Secret"),
    }
}

fn run_helper(helper: &str, host: &str) -> Result<Option<Credentials>> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program} (named in the Docker config)\n  hint: install it, or remove it from ~/.docker/config.json"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(host.as_bytes())
            .with_context(|| format!("writing to {program}"))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        // "credentials not found" is an answer, not an error: go on anonymously.
        let msg = String::from_utf8_lossy(&out.stdout).to_lowercase()
            + &String::from_utf8_lossy(&out.stderr).to_lowercase();
        if msg.contains("not found") {
            return Ok(None);
        }
        bail!("{program} get failed ({})", out.status);
    }
    parse_helper_output(&out.stdout, helper).map(Some)
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// Credentials for `host` from the environment and the Docker config (see the module doc).
pub fn credentials_for(host: &str) -> Result<Option<Credentials>> {
    if let Ok(v) = std::env::var(AUTH_ENV) {
        if !v.is_empty() {
            return parse_user_password(&v, AUTH_ENV).map(Some);
        }
    }
    let Some(path) = docker_config_path() else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    match docker_config_lookup(&text, host, &path)? {
        DockerConfigAuth::Inline(c) => Ok(Some(c)),
        DockerConfigAuth::Helper(h) => run_helper(&h, host),
        DockerConfigAuth::None => Ok(None),
    }
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Basic realm="x"` or `Bearer realm="…",service="…",scope="…"` (pure).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        });
    }
    None
}

/// `a="x, y",b=z` → [(a, "x, y"), (b, z)]; backslash escapes inside quotes.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            continue;
        }
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        out.push((name, value));
    }
    out
}

/// The token in a token server's JSON answer (`token`, or OAuth2's `access_token`).
pub fn parse_token_response(body: &[u8]) -> Result<String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).context("token server answer is not JSON")?;
    v["token"]
        .as_str()
        .or_else(|| v["access_token"].as_str())
        .filter(|t| !t.is_empty())
        .map(String::from)
        .context("token server answer has no `token` or `access_token`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let cases = [
            ("Basic realm=\"basic-realm\"", Some(Challenge::Basic)),
            (
                "Bearer realm=\"https://auth.example/token\",service=\"registry\",scope=\"repository:a/b:pull,push\"",
                Some(Challenge::Bearer {
                    realm: "https://auth.example/token".into(),
                    service: Some("registry".into()),
                    scope: Some("repository:a/b:pull,push".into()),
                }),
            ),
            (
                "bearer realm=http://127.0.0.1:1/t, service = reg",
                Some(Challenge::Bearer {
                    realm: "http://127.0.0.1:1/t".into(),
                    service: Some("reg".into()),
                    scope: None,
                }),
            ),
            ("Bearer service=\"x\"", None),
            ("Negotiate abc", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_challenge(input), want, "{input}");
        }
    }

    #[test]
    fn escaped_quotes_in_params() {
        assert_eq!(
            parse_params(r#"realm="a \"b\", c",x=y"#),
            vec![
                ("realm".to_string(), "a \"b\", c".to_string()),
                ("x".to_string(), "y".to_string())
            ]
        );
    }

    #[test]
    fn docker_config() {
        let file = Path::new("/h/.docker/config.json");
        // "ci:p:w" in base64
        let text = r#"{
            "auths": {
                "https://reg.example:5000/v1/": {"auth": "Y2k6cDp3"},
                "other.example": {"username": "u", "password": "pw"},
                "bad.example": {"auth": "!!!"}
            },
            "credHelpers": {"helped.example": "pass"},
            "credsStore": "desktop"
        }"#;
        let inline = |u: &str, s: &str, src: &str| {
            DockerConfigAuth::Inline(Credentials {
                username: u.into(),
                secret: s.into(),
                source: src.into(),
            })
        };
        let cases = [
            (
                "reg.example:5000",
                inline(
                    "ci",
                    "p:w",
                    "/h/.docker/config.json (auths.https://reg.example:5000/v1/)",
                ),
            ),
            (
                "other.example",
                inline("u", "pw", "/h/.docker/config.json (auths.other.example)"),
            ),
            ("helped.example", DockerConfigAuth::Helper("pass".into())),
            (
                "unknown.example",
                DockerConfigAuth::Helper("desktop".into()),
            ),
        ];
        for (host, want) in cases {
            assert_eq!(
                docker_config_lookup(text, host, file).expect(host),
                want,
                "{host}"
            );
        }
        let e = docker_config_lookup(text, "bad.example", file).expect_err("bad base64");
        assert!(
            format!("{e:#}").contains("docker login bad.example"),
            "{e:#}"
        );
        assert_eq!(
            docker_config_lookup("{}", "x.example", file).expect("empty"),
            DockerConfigAuth::None
        );
        assert!(docker_config_lookup("{", "x", file).is_err());
    }

    #[test]
    fn helper_output_and_tokens() {
        let c = parse_helper_output(br#"{"ServerURL":"x","Username":"u","Secret":"s"}"#, "pass")
            .expect("creds");
        assert_eq!((c.username.as_str(), c.secret.as_str()), ("u", "s"));
        assert!(parse_helper_output(b"{}", "pass").is_err());
        assert_eq!(parse_token_response(br#"{"token":"t1"}"#).expect("t"), "t1");
        assert_eq!(
            parse_token_response(br#"{"access_token":"t2","expires_in":60}"#).expect("t"),
            "t2"
        );
        assert!(parse_token_response(br#"{"token":""}"#).is_err());
    }

    #[test]
    fn secrets_are_never_shown() {
        let c = parse_user_password("ci:hunter2:more", AUTH_ENV).expect("creds");
        assert_eq!(c.secret, "hunter2:more");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        let e = parse_user_password("hunter2", AUTH_ENV).expect_err("no colon");
        assert!(!format!("{e:#}").contains("hunter2"));
        assert_eq!(c.basic_header(), "Basic Y2k6aHVudGVyMjptb3Jl");
    }
}

//! The HTTP side of the distribution API: choosing HTTPS or plain HTTP, authenticating
//! (anonymous, basic, bearer token), and retrying with backoff on connection loss, 5xx
//! and 429. Push and pull build on `Client::send`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use super::auth::{self, Challenge, Credentials};
use super::Reference;

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// About half a minute of retrying: long enough for a registry to restart.
    fn default() -> Self {
        RetryPolicy {
            attempts: 10,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `n` (1-based): doubling from `first_delay` up to `max_delay`.
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Options shared by push and pull.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Allow plain HTTP to a registry that is not on loopback.
    pub insecure: bool,
    pub retry: RetryPolicy,
    /// Use these instead of looking credentials up (tests, library users).
    pub credentials: Option<Credentials>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// No byte for this long from an open connection counts as a lost connection.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// What a request sends.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

/// Why a request failed: `Transient` ones are worth retrying.
#[derive(Debug)]
pub enum SendError {
    Transient(String),
    Fatal(anyhow::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Transient(m) => write!(f, "{m}"),
            SendError::Fatal(e) => write!(f, "{e:#}"),
        }
    }
}

#[derive(Debug, Clone)]
enum AuthState {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scopes: Vec<String>,
        token: Option<String>,
    },
}

/// A connection to one registry, authorised for a set of repository scopes.
pub struct Client {
    agent: ureq::Agent,
    /// `https://host` or `http://host`.
    base: String,
    host: String,
    creds: Option<Credentials>,
    auth: Mutex<AuthState>,
    pub retry: RetryPolicy,
}

/// Turns a registry's JSON error body into one line (pure).
pub fn registry_error_message(body: &str) -> String {
    let parsed: Option<Vec<String>> = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v["errors"].as_array().map(|errs| {
                errs.iter()
                    .map(|e| {
                        let code = e["code"].as_str().unwrap_or("ERROR");
                        let msg = e["message"].as_str().unwrap_or("");
                        format!("{code}: {msg}")
                    })
                    .collect()
            })
        });
    match parsed {
        Some(v) if !v.is_empty() => v.join("; "),
        _ => body.trim().chars().take(200).collect(),
    }
}

/// True when `GET http://host/v2/` gets any HTTP answer.
fn speaks_plain_http(agent: &ureq::Agent, host: &str) -> bool {
    match agent.get(&format!("http://{host}/v2/")).call() {
        Ok(_) | Err(ureq::Error::Status(..)) => true,
        Err(ureq::Error::Transport(_)) => false,
    }
}

/// True for statuses worth retrying: 5xx and 429.
pub fn is_transient_status(status: u16) -> bool {
    status >= 500 || status == 429
}

impl Client {
    /// Connects to `reference`'s registry for `scopes` (`repository:REPO:pull,push`): picks
    /// HTTPS or, where allowed, plain HTTP, and learns how the registry wants to be
    /// authenticated from `GET /v2/`.
    pub fn connect(
        reference: &Reference,
        scopes: Vec<String>,
        opts: &ClientOptions,
    ) -> Result<Client> {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(IO_TIMEOUT)
            .timeout_write(IO_TIMEOUT)
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .build();
        let host = reference.host.clone();
        let creds = match &opts.credentials {
            Some(c) => Some(c.clone()),
            None => auth::credentials_for(&host)?,
        };
        let plain_ok = opts.insecure || reference.is_loopback();
        let mut last_err = String::new();
        for attempt in 1..=opts.retry.attempts.max(1) {
            if attempt > 1 {
                std::thread::sleep(opts.retry.delay(attempt - 1));
            }
            let mut schemes = vec!["https"];
            if plain_ok {
                schemes.push("http");
            }
            for scheme in schemes {
                let url = format!("{scheme}://{host}/v2/");
                match agent.get(&url).call() {
                    Ok(_) => {
                        return Ok(Client::new(
                            agent,
                            scheme,
                            &host,
                            creds,
                            AuthState::Anonymous,
                            opts,
                        ));
                    }
                    Err(ureq::Error::Status(401, resp)) => {
                        let state = match resp.header("www-authenticate").and_then(auth::parse_challenge) {
                            Some(Challenge::Basic) => AuthState::Basic,
                            Some(Challenge::Bearer { realm, service, .. }) => AuthState::Bearer {
                                realm,
                                service,
                                scopes: scopes.clone(),
                                token: None,
                            },
                            None => bail!("{host}: the registry asks for authentication in a way strata does not know ({:?})", resp.header("www-authenticate").unwrap_or("")),
                        };
                        return Ok(Client::new(agent, scheme, &host, creds, state, opts));
                    }
                    Err(ureq::Error::Status(code, resp)) if !is_transient_status(code) => {
                        // Some registries answer /v2/ with 404 yet serve the API: go on anonymously.
                        let _ = resp;
                        return Ok(Client::new(
                            agent,
                            scheme,
                            &host,
                            creds,
                            AuthState::Anonymous,
                            opts,
                        ));
                    }
                    Err(ureq::Error::Status(code, _)) => last_err = format!("{url}: HTTP {code}"),
                    Err(ureq::Error::Transport(t)) => {
                        last_err = format!("{url}: {t}");
                        // A registry that answers plain HTTP will never answer HTTPS: say
                        // so now instead of retrying. (The probe carries no credentials.)
                        if scheme == "https" && !plain_ok && speaks_plain_http(&agent, &host) {
                            bail!("{host} serves plain HTTP, which strata refuses for a registry that is not on loopback\n  hint: pass --insecure if you trust the network between here and {host}");
                        }
                    }
                }
            }
        }
        let hint = if plain_ok {
            "check that the registry is running and reachable".to_string()
        } else {
            format!("if {host} serves plain HTTP, pass --insecure (only loopback registries may use HTTP without it)")
        };
        bail!(
            "cannot reach the registry {host} after {} tries: {last_err}\n  hint: {hint}",
            opts.retry.attempts
        )
    }

    fn new(
        agent: ureq::Agent,
        scheme: &str,
        host: &str,
        creds: Option<Credentials>,
        auth: AuthState,
        opts: &ClientOptions,
    ) -> Client {
        Client {
            agent,
            base: format!("{scheme}://{host}"),
            host: host.to_string(),
            creds,
            auth: Mutex::new(auth),
            retry: opts.retry,
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// True when the registry is spoken to over plain HTTP.
    pub fn is_plain_http(&self) -> bool {
        self.base.starts_with("http://")
    }

    /// `path` (starting with `/v2/`) as a full URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A `Location` header, absolute or relative to the registry.
    pub fn resolve_location(&self, loc: &str) -> String {
        if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else if loc.starts_with('/') {
            self.url(loc)
        } else {
            format!("{}/{loc}", self.base)
        }
    }

    fn auth_header(&self) -> Result<Option<String>> {
        let state = self
            .auth
            .lock()
            .map_err(|_| anyhow!("auth state poisoned"))?
            .clone();
        Ok(match state {
            AuthState::Anonymous => None,
            AuthState::Basic => self.creds.as_ref().map(Credentials::basic_header),
            AuthState::Bearer { token: Some(t), .. } => Some(format!("Bearer {t}")),
            AuthState::Bearer { .. } => {
                self.refresh_token(None)?;
                return self.auth_header_cached();
            }
        })
    }

    fn auth_header_cached(&self) -> Result<Option<String>> {
        let state = self
            .auth
            .lock()
            .map_err(|_| anyhow!("auth state poisoned"))?;
        Ok(match &*state {
            AuthState::Bearer { token: Some(t), .. } => Some(format!("Bearer {t}")),
            AuthState::Basic => self.creds.as_ref().map(Credentials::basic_header),
            _ => None,
        })
    }

    /// Asks the token server for a token covering the known scopes (plus `extra`).
    fn refresh_token(&self, extra: Option<&str>) -> Result<()> {
        let mut state = self
            .auth
            .lock()
            .map_err(|_| anyhow!("auth state poisoned"))?;
        let AuthState::Bearer {
            realm,
            service,
            scopes,
            token,
        } = &mut *state
        else {
            return Ok(());
        };
        if let Some(s) = extra {
            if !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_string());
            }
        }
        let mut req = self.agent.get(realm);
        if let Some(s) = service {
            req = req.query("service", s);
        }
        for s in scopes.iter() {
            req = req.query("scope", s);
        }
        if let Some(c) = &self.creds {
            req = req.set("Authorization", &c.basic_header());
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let body = r.into_string().unwrap_or_default();
                let hint = match &self.creds {
                    Some(c) => format!("check the credentials from {}", c.source),
                    None => format!(
                        "log in: set {} or run `docker login {}`",
                        auth::AUTH_ENV,
                        self.host
                    ),
                };
                bail!(
                    "{}: token server {realm} refused a token (HTTP {code}: {})\n  hint: {hint}",
                    self.host,
                    registry_error_message(&body)
                );
            }
            Err(ureq::Error::Transport(t)) => bail!("{}: token server {realm}: {t}", self.host),
        };
        let mut body = Vec::new();
        resp.into_reader()
            .take(1 << 20)
            .read_to_end(&mut body)
            .with_context(|| format!("reading the token from {realm}"))?;
        *token = Some(auth::parse_token_response(&body)?);
        Ok(())
    }

    /// One try of a request, authenticated; a 401 leads to one renewal of the token (with
    /// the scope the challenge asks for) and one more try. Statuses ≥ 400 come back as
    /// `Ok` except the transient ones.
    pub fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body,
    ) -> Result<ureq::Response, SendError> {
        let mut renewed = false;
        loop {
            let mut req = self.agent.request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            if let Some(h) = self.auth_header().map_err(SendError::Fatal)? {
                req = req.set("Authorization", &h);
            }
            let result = match body {
                Body::Empty => {
                    if matches!(method, "PUT" | "POST" | "PATCH") {
                        req.set("Content-Length", "0").send_bytes(&[])
                    } else {
                        req.call()
                    }
                }
                Body::Bytes(b) => req.send_bytes(b),
                Body::File { path, offset, len } => {
                    let mut f = File::open(path)
                        .with_context(|| format!("opening {}", path.display()))
                        .map_err(SendError::Fatal)?;
                    f.seek(SeekFrom::Start(*offset))
                        .with_context(|| format!("seeking in {}", path.display()))
                        .map_err(SendError::Fatal)?;
                    req.set("Content-Length", &len.to_string())
                        .send(io::BufReader::new(f).take(*len))
                }
            };
            let resp = match result {
                Ok(r) => r,
                Err(ureq::Error::Status(code, r)) if is_transient_status(code) => {
                    let body = r.into_string().unwrap_or_default();
                    return Err(SendError::Transient(format!(
                        "{method} {url}: HTTP {code} {}",
                        registry_error_message(&body)
                    )));
                }
                Err(ureq::Error::Status(401, r)) if !renewed => {
                    let challenge = r.header("www-authenticate").and_then(auth::parse_challenge);
                    let is_bearer = matches!(
                        *self
                            .auth
                            .lock()
                            .map_err(|_| SendError::Fatal(anyhow!("auth state poisoned")))?,
                        AuthState::Bearer { .. }
                    );
                    match challenge {
                        Some(Challenge::Bearer { scope, .. }) if is_bearer => {
                            self.refresh_token(scope.as_deref())
                                .map_err(SendError::Fatal)?;
                            renewed = true;
                            continue;
                        }
                        _ => return Ok(r),
                    }
                }
                Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => {
                    return Err(SendError::Transient(format!("{method} {url}: {t}")));
                }
            };
            return Ok(resp);
        }
    }

    /// `send_once` retried with backoff while the failure is transient.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body,
    ) -> Result<ureq::Response> {
        let mut attempt = 1;
        loop {
            match self.send_once(method, url, headers, body) {
                Ok(r) => return Ok(r),
                Err(SendError::Fatal(e)) => return Err(e),
                Err(SendError::Transient(m)) if attempt >= self.retry.attempts => {
                    bail!("{m} (gave up after {attempt} tries)\n  hint: check that the registry {} is up; strata retries with backoff for about {}s", self.host, self.retry_budget().as_secs())
                }
                Err(SendError::Transient(_)) => {
                    std::thread::sleep(self.retry.delay(attempt));
                    attempt += 1;
                }
            }
        }
    }

    /// Sum of the retry delays.
    pub fn retry_budget(&self) -> Duration {
        (1..self.retry.attempts).map(|n| self.retry.delay(n)).sum()
    }
}

/// An error for an unexpected status, with the registry's message and a hint for the
/// common ones.
pub fn status_error(what: &str, resp: ureq::Response, client: &Client) -> anyhow::Error {
    let code = resp.status();
    let body = resp.into_string().unwrap_or_default();
    let msg = registry_error_message(&body);
    let hint = match code {
        401 => format!(
            "log in: set {} (USER:PASSWORD) or run `docker login {}`",
            auth::AUTH_ENV,
            client.host()
        ),
        403 => "the credentials are valid but not allowed to do this; check the account's rights"
            .to_string(),
        404 => "check the repository and tag".to_string(),
        _ => String::new(),
    };
    if hint.is_empty() {
        anyhow!("{what}: HTTP {code}: {msg}")
    } else {
        anyhow!("{what}: HTTP {code}: {msg}\n  hint: {hint}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            attempts: 6,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        let got: Vec<u128> = (1..6).map(|n| p.delay(n).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 500, 500]);
        assert_eq!(p.delay(60), Duration::from_millis(500));
    }

    #[test]
    fn error_bodies() {
        let cases = [
            (
                r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:x"}]}"#,
                "BLOB_UNKNOWN: blob unknown to registry",
            ),
            (
                r#"{"errors":[{"code":"A","message":"a"},{"code":"B","message":"b"}]}"#,
                "A: a; B: b",
            ),
            ("<html>bad gateway</html>\n", "<html>bad gateway</html>"),
            ("", ""),
        ];
        for (body, want) in cases {
            assert_eq!(registry_error_message(body), want);
        }
    }

    #[test]
    fn transient_statuses() {
        for (code, want) in [
            (500, true),
            (502, true),
            (503, true),
            (429, true),
            (404, false),
            (401, false),
            (201, false),
        ] {
            assert_eq!(is_transient_status(code), want, "{code}");
        }
    }
}

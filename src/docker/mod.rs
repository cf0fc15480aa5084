//! A small blocking client for the Docker Engine API over its unix socket
//! (`/var/run/docker.sock`, or `DOCKER_HOST=unix://PATH`): one HTTP/1.1 request per
//! connection, no runtime, no docker CLI. `strata load` uses it to hand images to the
//! engine; the container backends reuse it.
//!
//! The HTTP parsing (`parse_head`, `decode_chunked`) and the reading of the engine's JSON
//! progress stream (`parse_progress`) are pure and tested on captured bytes.

pub mod load;

use std::io::{self, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

pub use load::{load_image, LoadReport};

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Longest wait for the engine's next bytes (loading a big image takes a while).
const IO_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest response body read into memory.
const MAX_BODY: u64 = 64 << 20;

/// The engine at the end of a unix socket.
#[derive(Debug, Clone)]
pub struct Engine {
    pub socket: PathBuf,
}

/// A response: status, headers (names lowercased) and the whole body, de-chunked.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The engine's `{"message": …}` on errors, else the body as text.
    pub fn message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).trim().to_string())
    }
}

/// What a request sends.
pub enum RequestBody<'a> {
    Empty,
    Json(&'a serde_json::Value),
    /// A file, sent with its length and this content type.
    File(&'a Path, &'a str),
    /// Bytes in memory, with this content type.
    Bytes(&'a [u8], &'a str),
}

/// The socket named by `DOCKER_HOST` (pure): `unix://PATH`; other schemes are refused.
pub fn socket_from_docker_host(docker_host: Option<&str>) -> Result<PathBuf> {
    match docker_host.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Some(h) => match h.strip_prefix("unix://") {
            Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
            _ => bail!("DOCKER_HOST={h}: strata talks to the Docker engine over a unix socket only\n  hint: set DOCKER_HOST=unix:///var/run/docker.sock, or unset it"),
        },
    }
}

impl Engine {
    /// The engine `DOCKER_HOST` names, else the default socket.
    pub fn from_env() -> Result<Engine> {
        let host = std::env::var("DOCKER_HOST").ok();
        Ok(Engine {
            socket: socket_from_docker_host(host.as_deref())?,
        })
    }

    fn connect(&self, timeout: Duration) -> Result<UnixStream> {
        let s = UnixStream::connect(&self.socket).with_context(|| {
            format!(
                "connecting to the Docker engine at {}\n  hint: is the engine running, and may this user use its socket? (DOCKER_HOST=unix://PATH names another socket)",
                self.socket.display()
            )
        })?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        Ok(s)
    }

    /// One request; `path` includes the query (`/images/load?quiet=1`).
    pub fn request(&self, method: &str, path: &str, body: RequestBody) -> Result<Response> {
        self.request_with_timeout(method, path, body, IO_TIMEOUT)
    }

    /// [`Engine::request`] that gives up when the engine sends nothing for `timeout`.
    pub fn request_with_timeout(
        &self,
        method: &str,
        path: &str,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<Response> {
        let what = format!("Docker engine: {method} {path}");
        let mut s = self.connect(timeout)?;
        let (ctype, len, json) = match &body {
            RequestBody::Empty => (None, 0, None),
            RequestBody::Json(v) => {
                let b = serde_json::to_vec(v)?;
                (Some("application/json"), b.len() as u64, Some(b))
            }
            RequestBody::File(p, ct) => {
                let len = std::fs::metadata(p)
                    .with_context(|| format!("{}", p.display()))?
                    .len();
                (Some(*ct), len, None)
            }
            RequestBody::Bytes(b, ct) => (Some(*ct), b.len() as u64, None),
        };
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: strata/{}\r\nConnection: close\r\n", env!("CARGO_PKG_VERSION"));
        if let Some(ct) = ctype {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        if method != "GET" || len > 0 {
            head.push_str(&format!("Content-Length: {len}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).with_context(|| what.clone())?;
        match body {
            RequestBody::Empty => {}
            RequestBody::Json(_) => s
                .write_all(json.as_deref().unwrap_or_default())
                .with_context(|| what.clone())?,
            RequestBody::File(p, _) => {
                let mut f = std::fs::File::open(p).with_context(|| format!("{}", p.display()))?;
                io::copy(&mut f, &mut s).with_context(|| what.clone())?;
            }
            RequestBody::Bytes(b, _) => s.write_all(b).with_context(|| what.clone())?,
        }
        s.flush()?;
        let mut raw = Vec::new();
        BufReader::new(s)
            .take(MAX_BODY)
            .read_to_end(&mut raw)
            .with_context(|| what.clone())?;
        parse_response(&raw).with_context(|| what)
    }

    /// GET returning JSON; a status other than 2xx is an error with the engine's message.
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value> {
        let r = self.request("GET", path, RequestBody::Empty)?;
        if !(200..300).contains(&r.status) {
            bail!(
                "Docker engine: GET {path}: HTTP {}: {}",
                r.status,
                r.message()
            );
        }
        serde_json::from_slice(&r.body)
            .with_context(|| format!("Docker engine: GET {path}: not JSON"))
    }

    /// `GET /_ping`.
    pub fn ping(&self) -> Result<()> {
        let r = self.request("GET", "/_ping", RequestBody::Empty)?;
        if r.status != 200 {
            bail!(
                "Docker engine at {}: ping answered HTTP {}",
                self.socket.display(),
                r.status
            );
        }
        Ok(())
    }
}

/// Splits a whole HTTP/1.1 response into status, headers and (de-chunked) body (pure).
pub fn parse_response(raw: &[u8]) -> Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("the response has no end of headers ({} bytes)", raw.len()))?;
    let (status, headers) = parse_head(&raw[..end])?;
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        decode_chunked(rest)?
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
    {
        if rest.len() < len {
            bail!(
                "the response body ended after {} of {len} bytes",
                rest.len()
            );
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// `HTTP/1.1 200 OK\r\nName: value…` → (200, [(name, value)]) (pure).
pub fn parse_head(head: &[u8]) -> Result<(u16, Vec<(String, String)>)> {
    let text = std::str::from_utf8(head).context("response headers are not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1 response: {status_line:?}");
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| anyhow!("bad header line {line:?}"))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok((status, headers))
}

/// Decodes a chunked body (pure).
pub fn decode_chunked(mut b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("chunked body: missing chunk size line"))?;
        let size_text = std::str::from_utf8(&b[..eol]).context("chunked body: bad size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| anyhow!("chunked body: bad chunk size {size_text:?}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            bail!("chunked body: truncated chunk");
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Reads the engine's JSON-lines progress stream: the `stream` texts, or the first
/// `error` (pure).
pub fn parse_progress(body: &[u8]) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let de = serde_json::Deserializer::from_slice(body).into_iter::<serde_json::Value>();
    for v in de {
        let v = v.context("the engine's progress stream is not JSON")?;
        if let Some(e) = v["error"].as_str() {
            bail!("{}", e.trim());
        }
        if let Some(s) = v["stream"].as_str() {
            lines.extend(
                s.lines()
                    .map(str::to_string)
                    .filter(|l| !l.trim().is_empty()),
            );
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_values() {
        let cases: [(Option<&str>, Result<&str, &str>); 5] = [
            (None, Ok(DEFAULT_SOCKET)),
            (Some(""), Ok(DEFAULT_SOCKET)),
            (
                Some("unix:///run/user/1000/docker.sock"),
                Ok("/run/user/1000/docker.sock"),
            ),
            (Some("tcp://127.0.0.1:2375"), Err("unix socket only")),
            (Some("unix://"), Err("unix socket only")),
        ];
        for (input, want) in cases {
            match (socket_from_docker_host(input), want) {
                (Ok(p), Ok(w)) => assert_eq!(p, PathBuf::from(w)),
                (Err(e), Err(w)) => assert!(format!("{e:#}").contains(w), "{e:#}"),
                (got, want) => panic!("{input:?}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn responses() {
        let raw = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n19\r\n{\"stream\":\"Loaded image: \r\nc\r\nhello:latest\r\n4\r\n\\n\"}\r\n0\r\n\r\n";
        let r = parse_response(raw).expect("parse");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("api-version"), Some("1.41"));
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            "{\"stream\":\"Loaded image: hello:latest\\n\"}"
        );
        assert_eq!(
            parse_progress(&r.body).expect("progress"),
            vec!["Loaded image: hello:latest"]
        );

        let raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 28\r\n\r\n{\"message\":\"No such image\"}\n";
        let r = parse_response(raw).expect("parse");
        assert_eq!((r.status, r.message().as_str()), (404, "No such image"));

        let raw = b"HTTP/1.0 200 OK\r\n\r\nOK";
        assert_eq!(parse_response(raw).expect("eof body").body, b"OK");

        for bad in [
            &b"garbage"[..],
            b"SSH-2.0\r\n\r\n",
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        ] {
            assert!(
                parse_response(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn progress_errors() {
        let body = br#"{"stream":"Loading layer\n"}
{"errorDetail":{"message":"unexpected EOF"},"error":"unexpected EOF"}"#;
        let e = parse_progress(body).expect_err("error");
        assert_eq!(e.to_string(), "unexpected EOF");
        assert!(parse_progress(b"{nope").is_err());
    }
}

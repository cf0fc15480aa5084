//! The package index: where its URL comes from (flag, environment, pip's configuration),
//! the simple API's project pages (PEP 691 JSON, or PEP 503 HTML), and an HTTP client.
//! Parsers are pure; [`HttpIndex`] does the I/O.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

/// One distribution file listed on a project page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    pub filename: String,
    /// Absolute URL (relative links are resolved against the page).
    pub url: String,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    pub requires_python: Option<String>,
    pub yanked: bool,
}

/// What the resolver needs from an index.
pub trait Index {
    /// The index's base URL (the "simple" root).
    fn base_url(&self) -> &str;
    /// Files of a project (normalised name); an error when the project does not exist.
    fn project(&self, name: &str) -> Result<Vec<IndexFile>, String>;
    /// Bytes at `url`.
    fn download(&self, url: &str) -> Result<Vec<u8>, String>;
}

/// Hint for a locked file the index cannot give as locked.
pub const RELOCK_HINT: &str = "run `strata lock --update` to resolve the step anew against this index (or point `--index-url` at an index that has the locked file)";

/// Fetches a locked file by its exact file name, as pip does with `--require-hashes`:
/// reads `project`'s page on the index, takes the file listed under `filename` (from
/// whatever URL the page gives), and checks its size and sha256 against the lock. The
/// index's own size and hash, when listed, are checked first so a file that cannot match
/// is not downloaded. Errors name the file and the index; nothing is returned on a
/// mismatch.
pub fn fetch_by_name(
    index: &dyn Index,
    project: &str,
    filename: &str,
    size: u64,
    sha256: &str,
) -> Result<Vec<u8>, String> {
    let base = index.base_url();
    let files = index
        .project(project)
        .map_err(|e| format!("{e}\n  hint: {RELOCK_HINT}"))?;
    let Some(file) = files.iter().find(|f| f.filename == filename) else {
        return Err(format!(
            "{filename} is not listed on the index {base} (project page `{project}`)\n  hint: the index no longer offers the locked file; {RELOCK_HINT}"
        ));
    };
    if let Some(listed) = file.sha256.as_deref().filter(|h| *h != sha256) {
        return Err(format!(
            "the index {base} lists {filename} with sha256 {listed}, the lock says {sha256} (nothing downloaded)\n  hint: the file changed on the index or the lock was edited; {RELOCK_HINT}"
        ));
    }
    if let Some(listed) = file.size.filter(|s| *s != size) {
        return Err(format!(
            "the index {base} lists {filename} with size {listed}, the lock says {size} (nothing downloaded)\n  hint: the file changed on the index or the lock was edited; {RELOCK_HINT}"
        ));
    }
    let bytes = index.download(&file.url)?;
    if bytes.len() as u64 != size {
        return Err(format!(
            "{filename} from the index {base} has {} bytes, the lock says {size} (not stored)\n  hint: the index serves different bytes than when the lock was made; check the index, or {RELOCK_HINT}",
            bytes.len()
        ));
    }
    let got = crate::digest::sha256_hex(&bytes);
    if got != sha256 {
        return Err(format!(
            "{filename} from the index {base} has sha256 {got}, the lock says {sha256} (not stored)\n  hint: the index serves different bytes than when the lock was made; check the index, or {RELOCK_HINT}"
        ));
    }
    Ok(bytes)
}

/// Where the index URL came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexUrl {
    pub url: String,
    pub source: String,
}

/// `index-url` from pip configuration text (INI): `[install]` wins over `[global]`. Pure.
pub fn pip_conf_index_url(text: &str) -> Option<String> {
    let mut section = String::new();
    let mut global = None;
    let mut install = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.trim().to_ascii_lowercase();
            continue;
        }
        let Some((k, v)) = line.split_once(['=', ':']) else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase().replace('_', "-");
        if k == "index-url" || k == "i" {
            let v = Some(v.trim().to_string()).filter(|v| !v.is_empty());
            match section.as_str() {
                "global" => global = v,
                "install" | "download" => install = v,
                _ => {}
            }
        }
    }
    install.or(global)
}

/// pip's configuration files, lowest priority first (as pip reads them). As in pip,
/// `PIP_CONFIG_FILE=/dev/null` means no configuration file at all.
pub fn pip_conf_files(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    if env("PIP_CONFIG_FILE").as_deref() == Some("/dev/null") {
        return Vec::new();
    }
    let mut out = vec![
        PathBuf::from("/etc/xdg/pip/pip.conf"),
        PathBuf::from("/etc/pip.conf"),
    ];
    if let Some(home) = env("HOME").filter(|h| !h.is_empty()) {
        out.push(PathBuf::from(&home).join(".pip/pip.conf"));
        let xdg = env("XDG_CONFIG_HOME")
            .filter(|x| !x.is_empty())
            .map_or_else(|| PathBuf::from(&home).join(".config"), PathBuf::from);
        out.push(xdg.join("pip/pip.conf"));
    }
    if let Some(f) = env("PIP_CONFIG_FILE").filter(|f| !f.is_empty() && f != "/dev/null") {
        out.push(PathBuf::from(f));
    }
    out
}

pub const NO_INDEX_HINT: &str = "pass `--index-url URL` (the index's simple API root), set STRATA_PYTHON_INDEX, or set `index-url` in pip's configuration (/etc/pip.conf, ~/.config/pip/pip.conf) or PIP_INDEX_URL";

/// The index URL: `flag`, else STRATA_PYTHON_INDEX, else PIP_INDEX_URL, else pip's config
/// files (the last one that sets it). strata has no built-in default index.
pub fn index_url(
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    read: &dyn Fn(&std::path::Path) -> Option<String>,
) -> Result<IndexUrl, String> {
    let found = |url: String, source: String| {
        let url = url.trim().trim_end_matches('/').to_string();
        if url.starts_with("http://") || url.starts_with("https://") {
            Ok(IndexUrl { url, source })
        } else {
            Err(format!(
                "index URL `{url}` (from {source}) is not an http(s) URL\n  hint: {NO_INDEX_HINT}"
            ))
        }
    };
    if let Some(f) = flag {
        return found(f.to_string(), "--index-url".into());
    }
    for var in ["STRATA_PYTHON_INDEX", "PIP_INDEX_URL"] {
        if let Some(v) = env(var).filter(|v| !v.trim().is_empty()) {
            return found(v, var.into());
        }
    }
    let mut best = None;
    for f in pip_conf_files(env) {
        if let Some(url) = read(&f).as_deref().and_then(pip_conf_index_url) {
            best = Some((url, f.display().to_string()));
        }
    }
    match best {
        Some((url, source)) => found(url, source),
        None => Err(format!(
            "no Python package index is configured\n  hint: {NO_INDEX_HINT}"
        )),
    }
}

fn resolve_url(page: &str, href: &str) -> Result<String, String> {
    let base = url::Url::parse(page).map_err(|e| format!("bad page URL {page}: {e}"))?;
    base.join(href)
        .map(|u| u.to_string())
        .map_err(|e| format!("bad link {href:?} on {page}: {e}"))
}

/// Parses a PEP 691 JSON project page fetched from `page_url`. Pure.
pub fn parse_json_page(page_url: &str, text: &str) -> Result<Vec<IndexFile>, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("{page_url}: not JSON: {e}"))?;
    let files = v["files"]
        .as_array()
        .ok_or_else(|| format!("{page_url}: no `files` list (not a PEP 691 page)"))?;
    let mut out = Vec::new();
    for f in files {
        let (Some(filename), Some(href)) = (f["filename"].as_str(), f["url"].as_str()) else {
            return Err(format!("{page_url}: a file without `filename` or `url`"));
        };
        let mut url = resolve_url(page_url, href)?;
        if let Some(i) = url.find('#') {
            url.truncate(i);
        }
        out.push(IndexFile {
            filename: filename.to_string(),
            url,
            sha256: f["hashes"]["sha256"].as_str().map(str::to_ascii_lowercase),
            size: f["size"].as_u64(),
            requires_python: f["requires-python"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(String::from),
            yanked: match &f["yanked"] {
                serde_json::Value::Bool(b) => *b,
                serde_json::Value::String(_) => true,
                _ => false,
            },
        });
    }
    Ok(out)
}

fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = lower[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let vstart = tag.len() - rest.len() + 1;
        let v = tag[vstart..].trim_start();
        let q = v.chars().next()?;
        if q == '"' || q == '\'' {
            let end = v[1..].find(q)?;
            return Some(html_unescape(&v[1..1 + end]));
        }
        let end = v
            .find(|c: char| c.is_whitespace() || c == '>')
            .unwrap_or(v.len());
        return Some(html_unescape(&v[..end]));
    }
    None
}

/// Parses a PEP 503 HTML project page (anchors; sha256 from the URL fragment). Pure.
pub fn parse_html_page(page_url: &str, text: &str) -> Result<Vec<IndexFile>, String> {
    let mut out = Vec::new();
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("<a") {
        let start = from + i;
        let Some(gt) = text[start..].find('>') else {
            break;
        };
        let tag = &text[start + 2..start + gt];
        let Some(close) = lower[start + gt..].find("</a>") else {
            break;
        };
        let label = text[start + gt + 1..start + gt + close].trim();
        from = start + gt + close + 4;
        let Some(href) = attr(tag, "href") else {
            continue;
        };
        let full = resolve_url(page_url, &href)?;
        let (url, frag) = match full.split_once('#') {
            Some((u, f)) => (u.to_string(), Some(f.to_string())),
            None => (full, None),
        };
        let sha256 = frag
            .as_deref()
            .and_then(|f| f.strip_prefix("sha256="))
            .map(str::to_ascii_lowercase);
        out.push(IndexFile {
            filename: html_unescape(label),
            url,
            sha256,
            size: None,
            requires_python: attr(tag, "data-requires-python").filter(|s| !s.is_empty()),
            yanked: attr(tag, "data-yanked").is_some()
                || tag
                    .to_ascii_lowercase()
                    .split_whitespace()
                    .any(|w| w == "data-yanked"),
        });
    }
    Ok(out)
}

/// The index over HTTP(S), honouring the usual proxy environment variables.
pub struct HttpIndex {
    base: String,
    agent: ureq::Agent,
}

const JSON_TYPE: &str = "application/vnd.pypi.simple.v1+json";

impl HttpIndex {
    pub fn new(base: &str) -> HttpIndex {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(300))
            .try_proxy_from_env(true)
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .build();
        HttpIndex {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }
}

impl Index for HttpIndex {
    fn base_url(&self) -> &str {
        &self.base
    }

    fn project(&self, name: &str) -> Result<Vec<IndexFile>, String> {
        let page = format!("{}/{name}/", self.base);
        let resp = self
            .agent
            .get(&page)
            .set("Accept", &format!("{JSON_TYPE}, text/html;q=0.1"))
            .call();
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(404, _)) => {
                return Err(format!(
                    "project `{name}` is not on the index ({page} answered 404)"
                ))
            }
            Err(e) => return Err(format!("GET {page}: {e}")),
        };
        let json = resp.content_type().contains("json");
        let text = resp
            .into_string()
            .map_err(|e| format!("GET {page}: reading the body: {e}"))?;
        if json {
            parse_json_page(&page, &text)
        } else {
            parse_html_page(&page, &text)
        }
    }

    fn download(&self, url: &str) -> Result<Vec<u8>, String> {
        let resp = self
            .agent
            .get(url)
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let mut bytes = Vec::new();
        resp.into_reader()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("GET {url}: {e}"))?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn pip_conf_table() {
        let cases = [
            (
                "[global]\nindex-url = http://127.0.0.1:3141/simple\n",
                Some("http://127.0.0.1:3141/simple"),
            ),
            (
                "[global]\nindex_url=http://a/simple\n[install]\nindex-url = http://b/simple\n",
                Some("http://b/simple"),
            ),
            (
                "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n",
                None,
            ),
            ("[freeze]\nindex-url = http://c/simple\n", None),
            (
                "# comment\n[global]\n; x\nindex-url:http://d/simple\n",
                Some("http://d/simple"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(pip_conf_index_url(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn index_url_precedence() {
        let env: HashMap<&str, &str> = [("HOME", "/home/u"), ("PIP_CONFIG_FILE", "/cfg/pip.conf")]
            .into_iter()
            .collect();
        let files: HashMap<&str, &str> = [
            ("/etc/pip.conf", "[global]\nindex-url=http://etc/simple\n"),
            ("/cfg/pip.conf", "[global]\nindex-url=http://cfg/simple/\n"),
        ]
        .into_iter()
        .collect();
        let e = |k: &str| env.get(k).map(|v| v.to_string());
        let r = |p: &std::path::Path| files.get(p.to_str().unwrap_or("")).map(|v| v.to_string());
        let got = index_url(None, &e, &r);
        assert_eq!(
            got.as_ref().map(|u| u.url.as_str()),
            Ok("http://cfg/simple")
        );
        let got = index_url(Some("http://flag/simple"), &e, &r);
        assert_eq!(got.map(|u| u.source), Ok("--index-url".to_string()));

        let env2: HashMap<&str, &str> = [
            ("STRATA_PYTHON_INDEX", "http://s/simple"),
            ("PIP_INDEX_URL", "http://p/simple"),
        ]
        .into_iter()
        .collect();
        let e2 = |k: &str| env2.get(k).map(|v| v.to_string());
        assert_eq!(
            index_url(None, &e2, &r).map(|u| u.url),
            Ok("http://s/simple".to_string())
        );

        let devnull = |k: &str| (k == "PIP_CONFIG_FILE").then(|| "/dev/null".to_string());
        assert!(index_url(None, &devnull, &r).is_err());
        let none = |_: &str| None;
        let nofiles = |_: &std::path::Path| None;
        assert!(index_url(None, &none, &nofiles).is_err_and(|e| e.contains("hint:")));
        assert!(index_url(Some("ftp://x"), &none, &nofiles).is_err());
    }

    #[test]
    fn json_page() {
        let text = r#"{"meta":{"api-version":"1.1"},"name":"alpha","files":[
            {"filename":"alpha-1.0-py3-none-any.whl","url":"../../files/alpha-1.0-py3-none-any.whl#frag","hashes":{"sha256":"AB"},"requires-python":">=3.8","size":5,"yanked":false},
            {"filename":"alpha-0.9.tar.gz","url":"http://127.0.0.1:9/x/alpha-0.9.tar.gz","hashes":{},"yanked":"broken"}]}"#;
        let files = parse_json_page("http://127.0.0.1:9/simple/alpha/", text);
        let files = files.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            files[0].url,
            "http://127.0.0.1:9/files/alpha-1.0-py3-none-any.whl"
        );
        assert_eq!(files[0].sha256.as_deref(), Some("ab"));
        assert_eq!(files[0].size, Some(5));
        assert!(!files[0].yanked && files[1].yanked);
        assert_eq!(files[1].sha256, None);
        assert!(parse_json_page("http://127.0.0.1:9/simple/alpha/", "{}").is_err());
        assert!(parse_json_page("http://127.0.0.1:9/simple/alpha/", "<html>").is_err());
    }

    #[test]
    fn html_page() {
        let text = r#"<html><body>
<a href="../../f/alpha-1.0-py3-none-any.whl#sha256=ABC" data-requires-python="&gt;=3.8">alpha-1.0-py3-none-any.whl</a><br/>
<A HREF='alpha-0.9.tar.gz' data-yanked>alpha-0.9.tar.gz</A>
</body></html>"#;
        let files = parse_html_page("http://127.0.0.1:9/simple/alpha/", text);
        let files = files.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0].url,
            "http://127.0.0.1:9/f/alpha-1.0-py3-none-any.whl"
        );
        assert_eq!(files[0].sha256.as_deref(), Some("abc"));
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(
            files[1].url,
            "http://127.0.0.1:9/simple/alpha/alpha-0.9.tar.gz"
        );
        assert!(files[1].yanked && !files[0].yanked);
    }
}

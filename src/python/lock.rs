//! The lock file: for one python step, the inputs it was resolved for and every wheel of
//! the dependency closure with its URL, size and sha256. JSON, keys in a fixed order,
//! packages sorted by name, so the same resolution always writes the same bytes.

use std::path::Path;

use serde::{Deserialize, Serialize};

pub const LOCK_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    /// The step's `python` field.
    pub python: String,
    /// The platform tag wheels were chosen for.
    pub platform: String,
    /// The step's pins, as written, in order.
    pub requirements: Vec<String>,
    /// Sorted by name.
    pub packages: Vec<LockedWheel>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LockedWheel {
    /// Normalised project name.
    pub name: String,
    pub version: String,
    /// The wheel's file name.
    pub filename: String,
    /// Where the wheel was downloaded from; absent for wheels built from an sdist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub size: u64,
    /// Hex sha256 of the wheel (the built wheel, for `built_from` entries).
    pub sha256: String,
    /// The sdist this wheel was built from at lock time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_from: Option<Sdist>,
    /// Normalised names of the dependencies this wheel pulled in for the target.
    #[serde(default)]
    pub dependencies: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Sdist {
    pub filename: String,
    pub url: String,
    pub size: u64,
    pub sha256: String,
}

impl LockedWheel {
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.sha256)
    }
}

impl Lock {
    /// The canonical text of the lock.
    pub fn to_text(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses lock text; errors say what is wrong. Pure.
    pub fn parse(text: &str) -> Result<Lock, String> {
        let lock: Lock = serde_json::from_str(text)
            .map_err(|e| format!("line {} column {}: {e}", e.line(), e.column()))?;
        if lock.version != LOCK_VERSION {
            return Err(format!(
                "lock format version {} is not supported (this strata writes {LOCK_VERSION})",
                lock.version
            ));
        }
        for p in &lock.packages {
            let hex_ok = p.sha256.len() == 64
                && p.sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if !hex_ok {
                return Err(format!("package {}: sha256 is not 64 hex digits", p.name));
            }
            if p.url.is_none() && p.built_from.is_none() {
                return Err(format!(
                    "package {}: neither `url` nor `built_from`",
                    p.name
                ));
            }
            super::tags::WheelName::parse(&p.filename)
                .map_err(|e| format!("package {}: {e}", p.name))?;
        }
        Ok(lock)
    }

    /// Why this lock does not fit the step's current inputs, if it does not.
    pub fn stale_reason(
        &self,
        python: &str,
        platform: &str,
        requirements: &[String],
    ) -> Option<String> {
        if self.python != python {
            return Some(format!(
                "it was made for python {}, the step says {python}",
                self.python
            ));
        }
        if self.platform != platform {
            return Some(format!(
                "it was made for platform {}, the step says {platform}",
                self.platform
            ));
        }
        if self.requirements != requirements {
            return Some(format!(
                "its requirements [{}] differ from the step's [{}]",
                self.requirements.join(", "),
                requirements.join(", ")
            ));
        }
        None
    }
}

/// Reads a lock file (None when it does not exist).
pub fn read(path: &Path) -> Result<Option<Lock>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Lock::parse(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes a lock file atomically (temp file in the same directory, then rename).
pub fn write(path: &Path, lock: &Lock) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".strata-lock-")
        .tempfile_in(dir)?;
    tmp.write_all(lock.to_text().as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Lock {
        Lock {
            version: LOCK_VERSION,
            python: "3.11".into(),
            platform: "manylinux_2_17_x86_64".into(),
            requirements: vec!["alpha==1.0".into()],
            packages: vec![LockedWheel {
                name: "alpha".into(),
                version: "1.0".into(),
                filename: "alpha-1.0-py3-none-any.whl".into(),
                url: Some("http://127.0.0.1:1/alpha-1.0-py3-none-any.whl".into()),
                size: 10,
                sha256: "0".repeat(64),
                built_from: None,
                dependencies: vec![],
            }],
        }
    }

    #[test]
    fn roundtrip_and_refusals() {
        let l = sample();
        let text = l.to_text();
        assert_eq!(Lock::parse(&text), Ok(l.clone()));
        let bad_hash = text.replace(&"0".repeat(64), "xyz");
        assert!(Lock::parse(&bad_hash).is_err_and(|e| e.contains("sha256")));
        let bad_version = text.replace("\"version\": 1", "\"version\": 9");
        assert!(Lock::parse(&bad_version).is_err_and(|e| e.contains("version 9")));
        let no_url = text.replace(
            "\"url\": \"http://127.0.0.1:1/alpha-1.0-py3-none-any.whl\",",
            "",
        );
        assert!(Lock::parse(&no_url).is_err_and(|e| e.contains("neither")));
        assert!(Lock::parse("{").is_err_and(|e| e.starts_with("line 1")));
    }

    #[test]
    fn staleness() {
        let l = sample();
        let reqs = vec!["alpha==1.0".to_string()];
        assert_eq!(l.stale_reason("3.11", "manylinux_2_17_x86_64", &reqs), None);
        assert!(l
            .stale_reason("3.13", "manylinux_2_17_x86_64", &reqs)
            .is_some());
        assert!(l
            .stale_reason("3.11", "manylinux_2_36_x86_64", &reqs)
            .is_some());
        assert!(l
            .stale_reason("3.11", "manylinux_2_17_x86_64", &["alpha==2.0".into()])
            .is_some());
    }
}

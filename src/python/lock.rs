//! The lock file: for one python step, the inputs it was resolved for and every wheel of
//! the dependency closure by file name, size and sha256 (as in a requirements file with
//! `--require-hashes`): where a file is downloaded from is not part of the lock, it is
//! found by name on the configured index's project page. JSON, keys in a fixed order,
//! packages sorted by name, so the same resolution always writes the same bytes.
//!
//! Format 1 also recorded each file's absolute `url`; such locks are still read (the URLs
//! are ignored) and `strata lock` rewrites them in the current format.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The format this strata writes.
pub const LOCK_VERSION: u32 = 2;
/// The older format this strata still reads: format 2 plus `url` fields.
pub const LOCK_VERSION_URLS: u32 = 1;

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
    /// The wheel's file name, as the index lists it (a built wheel: as the build named it).
    pub filename: String,
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
    /// The sdist's file name, as the index lists it.
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

/// Format 1 as written: format 2 with the URL of every downloaded file.
mod v1 {
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Lock {
        pub version: u32,
        pub python: String,
        pub platform: String,
        pub requirements: Vec<String>,
        pub packages: Vec<LockedWheel>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct LockedWheel {
        pub name: String,
        pub version: String,
        pub filename: String,
        #[serde(default)]
        pub url: Option<String>,
        pub size: u64,
        pub sha256: String,
        #[serde(default)]
        pub built_from: Option<Sdist>,
        #[serde(default)]
        pub dependencies: Vec<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Sdist {
        pub filename: String,
        #[allow(dead_code)]
        pub url: String,
        pub size: u64,
        pub sha256: String,
    }
}

impl From<v1::Lock> for Lock {
    fn from(l: v1::Lock) -> Lock {
        Lock {
            version: l.version,
            python: l.python,
            platform: l.platform,
            requirements: l.requirements,
            packages: l
                .packages
                .into_iter()
                .map(|p| LockedWheel {
                    name: p.name,
                    version: p.version,
                    filename: p.filename,
                    size: p.size,
                    sha256: p.sha256,
                    built_from: p.built_from.map(|s| Sdist {
                        filename: s.filename,
                        size: s.size,
                        sha256: s.sha256,
                    }),
                    dependencies: p.dependencies,
                })
                .collect(),
        }
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
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

    /// Parses lock text, format 2 or format 1 (whose `url` fields are dropped; `version`
    /// stays 1 so the caller can tell the lock is due a rewrite). Errors say what is
    /// wrong. Pure.
    pub fn parse(text: &str) -> Result<Lock, String> {
        #[derive(Deserialize)]
        struct Head {
            version: u32,
        }
        let at = |e: serde_json::Error| format!("line {} column {}: {e}", e.line(), e.column());
        let head: Head = serde_json::from_str(text).map_err(at)?;
        let lock: Lock = match head.version {
            LOCK_VERSION => serde_json::from_str(text).map_err(|e| {
                let msg = at(e);
                if msg.contains("unknown field `url`") {
                    format!("{msg}\n  hint: format {LOCK_VERSION} locks name files, not URLs (they are found by name on the index); remove the `url` fields or run `strata lock --update`")
                } else {
                    msg
                }
            })?,
            LOCK_VERSION_URLS => serde_json::from_str::<v1::Lock>(text)
                .map_err(at)?
                .into(),
            v => {
                return Err(format!(
                    "lock format version {v} is not supported (this strata reads {LOCK_VERSION_URLS} and {LOCK_VERSION}, and writes {LOCK_VERSION})\n  hint: use the strata that wrote it, or run `strata lock --update` to resolve the step anew"
                ))
            }
        };
        for p in &lock.packages {
            if !is_hex64(&p.sha256) {
                return Err(format!("package {}: sha256 is not 64 hex digits", p.name));
            }
            if let Some(sd) = &p.built_from {
                if !is_hex64(&sd.sha256) {
                    return Err(format!(
                        "package {}: built_from sha256 is not 64 hex digits",
                        p.name
                    ));
                }
                if sd.filename.is_empty() || sd.filename.contains('/') {
                    return Err(format!(
                        "package {}: built_from filename `{}` is not a file name",
                        p.name, sd.filename
                    ));
                }
            }
            super::tags::WheelName::parse(&p.filename)
                .map_err(|e| format!("package {}: {e}", p.name))?;
        }
        Ok(lock)
    }

    /// Whether the lock was read from an older format (and should be written anew).
    pub fn is_old_format(&self) -> bool {
        self.version != LOCK_VERSION
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
            requirements: vec!["alpha==1.0".into(), "zeta==1.0".into()],
            packages: vec![
                LockedWheel {
                    name: "alpha".into(),
                    version: "1.0".into(),
                    filename: "alpha-1.0-py3-none-any.whl".into(),
                    size: 10,
                    sha256: "0".repeat(64),
                    built_from: None,
                    dependencies: vec![],
                },
                LockedWheel {
                    name: "zeta".into(),
                    version: "1.0".into(),
                    filename: "zeta-1.0-py3-none-any.whl".into(),
                    size: 11,
                    sha256: "1".repeat(64),
                    built_from: Some(Sdist {
                        filename: "zeta-1.0.tar.gz".into(),
                        size: 12,
                        sha256: "2".repeat(64),
                    }),
                    dependencies: vec![],
                },
            ],
        }
    }

    /// The exact text of `sample()`: the format is part of the contract.
    const SAMPLE_TEXT: &str = r#"{
  "version": 2,
  "python": "3.11",
  "platform": "manylinux_2_17_x86_64",
  "requirements": [
    "alpha==1.0",
    "zeta==1.0"
  ],
  "packages": [
    {
      "name": "alpha",
      "version": "1.0",
      "filename": "alpha-1.0-py3-none-any.whl",
      "size": 10,
      "sha256": "0000000000000000000000000000000000000000000000000000000000000000",
      "dependencies": []
    },
    {
      "name": "zeta",
      "version": "1.0",
      "filename": "zeta-1.0-py3-none-any.whl",
      "size": 11,
      "sha256": "1111111111111111111111111111111111111111111111111111111111111111",
      "built_from": {
        "filename": "zeta-1.0.tar.gz",
        "size": 12,
        "sha256": "2222222222222222222222222222222222222222222222222222222222222222"
      },
      "dependencies": []
    }
  ]
}
"#;

    #[test]
    fn text_is_fixed_and_names_no_location() {
        let l = sample();
        assert_eq!(l.to_text(), SAMPLE_TEXT);
        assert!(!l.to_text().contains("url") && !l.to_text().contains("http"));
        assert_eq!(Lock::parse(SAMPLE_TEXT), Ok(l.clone()));
        assert!(!l.is_old_format());
    }

    #[test]
    fn refusals() {
        let text = sample().to_text();
        let bad_hash = text.replace(&"0".repeat(64), "xyz");
        assert!(Lock::parse(&bad_hash).is_err_and(|e| e.contains("sha256")));
        let bad_sdist_hash = text.replace(&"2".repeat(64), "XYZ");
        assert!(Lock::parse(&bad_sdist_hash).is_err_and(|e| e.contains("built_from sha256")));
        let bad_version = text.replace("\"version\": 2", "\"version\": 9");
        assert!(Lock::parse(&bad_version)
            .is_err_and(|e| e.contains("version 9") && e.contains("hint:")));
        let url_in_v2 = text.replace(
            "\"size\": 10,",
            "\"url\": \"http://127.0.0.1:1/alpha-1.0-py3-none-any.whl\",\n      \"size\": 10,",
        );
        assert!(Lock::parse(&url_in_v2)
            .is_err_and(|e| e.contains("unknown field `url`") && e.contains("--update")));
        let not_wheel = text.replace("alpha-1.0-py3-none-any.whl", "alpha-1.0.tar.gz");
        assert!(Lock::parse(&not_wheel).is_err_and(|e| e.contains("package alpha")));
        assert!(Lock::parse("{").is_err_and(|e| e.starts_with("line 1")));
        assert!(Lock::parse("{}").is_err_and(|e| e.contains("version")));
    }

    #[test]
    fn format_1_with_urls_is_read_and_rewritten_without_them() {
        let v1 = SAMPLE_TEXT
            .replace("\"version\": 2", "\"version\": 1")
            .replace(
                "\"size\": 10,",
                "\"url\": \"http://127.0.0.1:1/f/alpha-1.0-py3-none-any.whl\",\n      \"size\": 10,",
            )
            .replace(
                "\"size\": 12,",
                "\"url\": \"http://127.0.0.1:1/f/zeta-1.0.tar.gz\",\n        \"size\": 12,",
            );
        assert!(v1.matches("\"url\"").count() == 2, "{v1}");
        let l = Lock::parse(&v1).unwrap_or_else(|e| panic!("{e}"));
        assert!(l.is_old_format());
        let mut upgraded = l.clone();
        upgraded.version = LOCK_VERSION;
        assert_eq!(upgraded, sample());
        assert_eq!(upgraded.to_text(), SAMPLE_TEXT);
        // Format 1's own rules still hold: an sdist entry needs its url.
        let no_sdist_url = v1.replace("\"url\": \"http://127.0.0.1:1/f/zeta-1.0.tar.gz\",", "");
        assert!(Lock::parse(&no_sdist_url).is_err_and(|e| e.contains("url")));
    }

    #[test]
    fn staleness() {
        let l = sample();
        let reqs = vec!["alpha==1.0".to_string(), "zeta==1.0".to_string()];
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

//! Wheel file names and compatibility tags (PEP 425 / 427, manylinux PEP 600): which wheels
//! the image's interpreter can use, and which of several is best. Pure.

use super::marker::normalize_name;

/// `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelName {
    pub name: String,
    pub version: String,
    pub build: Option<String>,
    pub python: Vec<String>,
    pub abi: Vec<String>,
    pub platform: Vec<String>,
}

impl WheelName {
    pub fn parse(filename: &str) -> Result<WheelName, String> {
        let stem = filename
            .strip_suffix(".whl")
            .ok_or_else(|| format!("`{filename}` is not a wheel (no .whl suffix)"))?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build, py, abi, plat) = match parts.as_slice() {
            [n, v, p, a, pl] => (*n, *v, None, *p, *a, *pl),
            [n, v, b, p, a, pl] => (*n, *v, Some(b.to_string()), *p, *a, *pl),
            _ => {
                return Err(format!(
                    "`{filename}` is not a wheel name (NAME-VERSION[-BUILD]-PY-ABI-PLATFORM.whl)"
                ))
            }
        };
        if [name, version, py, abi, plat].iter().any(|s| s.is_empty()) {
            return Err(format!("`{filename}` has an empty part"));
        }
        let split = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        Ok(WheelName {
            name: name.to_string(),
            version: version.to_string(),
            build,
            python: split(py),
            abi: split(abi),
            platform: split(plat),
        })
    }

    pub fn key(&self) -> String {
        normalize_name(&self.name)
    }

    /// Every `py-abi-plat` triple the name stands for.
    pub fn tags(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.python {
            for a in &self.abi {
                for pl in &self.platform {
                    out.push(format!("{p}-{a}-{pl}"));
                }
            }
        }
        out
    }

    /// `{name}-{version}.dist-info` as the wheel must spell it (PEP 427 escaping).
    pub fn dist_info(&self) -> String {
        format!("{}-{}.dist-info", self.name, self.version)
    }
}

/// The target interpreter and platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Minor version of CPython 3 (`11` for 3.11).
    pub minor: u32,
    /// `manylinux` or `musllinux`.
    pub libc: String,
    /// glibc / musl version the image has (major, minor).
    pub libc_version: (u32, u32),
    /// `x86_64`, `aarch64`, ...
    pub arch: String,
}

/// The machine name (`platform_machine`) for an OCI architecture.
pub fn machine_for_oci_arch(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "386" => "i686",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "arm" => "armv7l",
        "riscv64" => "riscv64",
        _ => return None,
    })
}

/// Parses the `python` field: `3.N` or `3.N.M`; returns N.
pub fn parse_python(text: &str) -> Result<u32, String> {
    let parts: Vec<&str> = text.split('.').collect();
    let ok = (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !ok || parts[0] != "3" {
        return Err(format!(
            "`{text}` is not a Python 3 version like `3.11` or `3.11.2`"
        ));
    }
    parts[1]
        .parse()
        .map_err(|_| format!("`{text}`: minor version too large"))
}

/// Parses a platform tag like `manylinux_2_36_x86_64`, `manylinux2014_aarch64` or
/// `musllinux_1_2_x86_64`.
pub fn parse_platform(text: &str) -> Result<(String, (u32, u32), String), String> {
    let bad = || {
        format!("`{text}` is not a Linux wheel platform like `manylinux_2_36_x86_64` or `musllinux_1_2_aarch64`")
    };
    for (legacy, ver) in [
        ("manylinux2014_", (2, 17)),
        ("manylinux2010_", (2, 12)),
        ("manylinux1_", (2, 5)),
    ] {
        if let Some(arch) = text.strip_prefix(legacy) {
            if arch.is_empty() {
                return Err(bad());
            }
            return Ok(("manylinux".into(), ver, arch.into()));
        }
    }
    for libc in ["manylinux", "musllinux"] {
        if let Some(rest) = text.strip_prefix(libc).and_then(|r| r.strip_prefix('_')) {
            let mut it = rest.splitn(3, '_');
            let major = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let minor = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let arch = it.next().filter(|a| !a.is_empty()).ok_or_else(bad)?;
            return Ok((libc.into(), (major, minor), arch.into()));
        }
    }
    Err(bad())
}

impl Target {
    pub fn new(python: &str, platform: &str) -> Result<Target, String> {
        let minor = parse_python(python)?;
        let (libc, libc_version, arch) = parse_platform(platform)?;
        Ok(Target {
            minor,
            libc,
            libc_version,
            arch,
        })
    }

    /// Platform tags, best first.
    fn platforms(&self) -> Vec<String> {
        let mut out = Vec::new();
        let (maj, min) = self.libc_version;
        for m in (0..=min).rev() {
            if self.libc == "manylinux" && maj == 2 && m < 5 {
                break;
            }
            out.push(format!("{}_{maj}_{m}_{}", self.libc, self.arch));
            if self.libc == "manylinux" && maj == 2 {
                match m {
                    17 => out.push(format!("manylinux2014_{}", self.arch)),
                    12 => out.push(format!("manylinux2010_{}", self.arch)),
                    5 => out.push(format!("manylinux1_{}", self.arch)),
                    _ => {}
                }
            }
        }
        out.push(format!("linux_{}", self.arch));
        out
    }

    /// Every supported tag, best first (the order pip uses).
    pub fn supported_tags(&self) -> Vec<String> {
        let n = self.minor;
        let cp = format!("cp3{n}");
        let plats = self.platforms();
        let mut out = Vec::new();
        for abi in [cp.clone(), "abi3".into(), "none".into()] {
            for p in &plats {
                out.push(format!("{cp}-{abi}-{p}"));
            }
        }
        for m in (2..n).rev() {
            for p in &plats {
                out.push(format!("cp3{m}-abi3-{p}"));
            }
        }
        for py in std::iter::once(format!("py3{n}"))
            .chain(std::iter::once("py3".to_string()))
            .chain((0..n).rev().map(|m| format!("py3{m}")))
        {
            for p in &plats {
                out.push(format!("{py}-none-{p}"));
            }
        }
        out.push(format!("{cp}-none-any"));
        out.push(format!("py3{n}-none-any"));
        out.push("py3-none-any".into());
        for m in (0..n).rev() {
            out.push(format!("py3{m}-none-any"));
        }
        // Universal wheels of the Python 2 era.
        out.push("py2.py3-none-any".into());
        out
    }

    /// The rank of the best tag of `wheel` (lower is better), or None if incompatible.
    pub fn rank(&self, wheel: &WheelName, supported: &[String]) -> Option<usize> {
        wheel
            .tags()
            .iter()
            .filter_map(|t| supported.iter().position(|s| s == t))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(py: &str, plat: &str) -> Target {
        Target::new(py, plat).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn wheel_names() {
        let w = WheelName::parse(
            "PyYAML-6.0.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        );
        let w = w.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.key(), "pyyaml");
        assert_eq!(w.platform.len(), 2);
        assert_eq!(w.tags().len(), 2);
        let w = WheelName::parse("pkg-1.0-1build-py2.py3-none-any.whl");
        assert!(w.is_ok_and(|w| w.build.as_deref() == Some("1build") && w.python.len() == 2));
        for bad in [
            "pkg-1.0.tar.gz",
            "pkg-1.0-py3.whl",
            "a-b-c-d-e-f-g.whl",
            "-1.0-py3-none-any.whl",
        ] {
            assert!(WheelName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn platform_and_python_fields() {
        assert_eq!(parse_python("3.11"), Ok(11));
        assert_eq!(parse_python("3.13.1"), Ok(13));
        for bad in ["3", "2.7", "3.x", "3.11.", "python3.11", ""] {
            assert!(parse_python(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_platform("manylinux_2_36_x86_64"),
            Ok(("manylinux".into(), (2, 36), "x86_64".into()))
        );
        assert_eq!(
            parse_platform("manylinux2014_aarch64"),
            Ok(("manylinux".into(), (2, 17), "aarch64".into()))
        );
        assert!(parse_platform("musllinux_1_2_x86_64").is_ok());
        for bad in [
            "win_amd64",
            "manylinux_2_x86_64",
            "manylinux_2_17_",
            "linux_x86_64",
        ] {
            assert!(parse_platform(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compatibility_table() {
        let bookworm = t("3.11", "manylinux_2_36_x86_64");
        let tags = bookworm.supported_tags();
        let rank = |f: &str| {
            WheelName::parse(f)
                .ok()
                .and_then(|w| bookworm.rank(&w, &tags))
        };
        let cases = [
            (
                "a-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                true,
            ),
            ("a-1-cp311-cp311-manylinux_2_28_x86_64.whl", true),
            ("a-1-cp311-cp311-manylinux_2_39_x86_64.whl", false),
            ("a-1-cp311-cp311-manylinux_2_17_aarch64.whl", false),
            ("a-1-cp312-cp312-manylinux_2_17_x86_64.whl", false),
            ("a-1-cp37-abi3-manylinux1_x86_64.whl", true),
            ("a-1-cp311-cp311-musllinux_1_1_x86_64.whl", false),
            ("a-1-cp311-cp311-win_amd64.whl", false),
            ("a-1-py3-none-any.whl", true),
            ("a-1-py2.py3-none-any.whl", true),
            ("a-1-py2-none-any.whl", false),
            ("a-1-pp310-pypy310_pp73-manylinux_2_17_x86_64.whl", false),
        ];
        for (f, ok) in cases {
            assert_eq!(rank(f).is_some(), ok, "{f}");
        }
        // Binary beats abi3 beats pure.
        let bin = rank("a-1-cp311-cp311-manylinux_2_17_x86_64.whl");
        let abi3 = rank("a-1-cp37-abi3-manylinux_2_17_x86_64.whl");
        let pure = rank("a-1-py3-none-any.whl");
        assert!(bin < abi3 && abi3 < pure, "{bin:?} {abi3:?} {pure:?}");
        // A newer glibc tag beats an older one.
        assert!(
            rank("a-1-cp311-cp311-manylinux_2_28_x86_64.whl")
                < rank("a-1-cp311-cp311-manylinux_2_17_x86_64.whl")
        );
        let trixie = t("3.13", "manylinux_2_41_aarch64");
        let tags = trixie.supported_tags();
        let w = WheelName::parse("a-1-cp313-cp313-manylinux_2_39_aarch64.whl");
        assert!(w.is_ok_and(|w| trixie.rank(&w, &tags).is_some()));
    }
}

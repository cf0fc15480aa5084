//! The text files inside a wheel's `.dist-info`: `METADATA` (core metadata, RFC 822
//! style), `WHEEL`, `entry_points.txt` (INI) and `RECORD` (CSV). Pure.

/// What the resolver and installer need from `METADATA`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub name: String,
    pub version: String,
    pub requires_dist: Vec<String>,
    pub requires_python: Option<String>,
}

/// Header fields of an RFC 822 style document (stops at the first empty line), with
/// continuation lines joined.
pub fn headers(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

pub fn parse_metadata(text: &str) -> Result<Metadata, String> {
    let mut m = Metadata::default();
    for (k, v) in headers(text) {
        match k.to_ascii_lowercase().as_str() {
            "name" => m.name = v,
            "version" => m.version = v,
            "requires-dist" => m.requires_dist.push(v),
            "requires-python" => m.requires_python = Some(v),
            _ => {}
        }
    }
    if m.name.is_empty() || m.version.is_empty() {
        return Err("METADATA has no Name or Version".into());
    }
    Ok(m)
}

/// `WHEEL`: the format version must be 1.x.
pub fn check_wheel_file(text: &str) -> Result<(), String> {
    let version = headers(text)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Wheel-Version"))
        .map(|(_, v)| v)
        .ok_or("WHEEL has no Wheel-Version")?;
    match version.split('.').next() {
        Some("1") => Ok(()),
        _ => Err(format!(
            "Wheel-Version {version} is not supported (only 1.x)"
        )),
    }
}

/// A `console_scripts` / `gui_scripts` entry: `name = module:attr.path [extras]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPoint {
    pub name: String,
    pub module: String,
    /// Dotted attribute path; empty when the entry names only a module.
    pub attr: String,
}

/// The scripts of `entry_points.txt` (`console_scripts` and `gui_scripts`), sorted by name.
pub fn parse_entry_points(text: &str) -> Result<Vec<EntryPoint>, String> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.trim().to_string();
            continue;
        }
        if section != "console_scripts" && section != "gui_scripts" {
            continue;
        }
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| format!("entry_points.txt line {}: no `=` in `{line}`", n + 1))?;
        let value = match value.split_once('[') {
            Some((v, _)) => v,
            None => value,
        };
        let (module, attr) = match value.split_once(':') {
            Some((m, a)) => (m.trim(), a.trim()),
            None => (value.trim(), ""),
        };
        let name = name.trim();
        let ident = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|p| {
                    !p.is_empty()
                        && p.chars().all(|c| c.is_alphanumeric() || c == '_')
                        && !p.starts_with(|c: char| c.is_ascii_digit())
                })
        };
        if !ident(module) || !(attr.is_empty() || ident(attr)) {
            return Err(format!(
                "entry_points.txt line {}: `{}` is not `module:attribute`",
                n + 1,
                value.trim()
            ));
        }
        if name.is_empty() || name.contains(['/', '\\', '\0']) || name == "." || name == ".." {
            return Err(format!(
                "entry_points.txt line {}: script name `{name}` is not a file name",
                n + 1
            ));
        }
        out.push(EntryPoint {
            name: name.to_string(),
            module: module.to_string(),
            attr: attr.to_string(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

/// The launcher script for an entry point, run by `interpreter`.
pub fn launcher(interpreter: &str, ep: &EntryPoint) -> String {
    let (import, call) = if ep.attr.is_empty() {
        (
            format!("import {}", ep.module),
            format!("{}.main", ep.module),
        )
    } else {
        let first = ep.attr.split('.').next().unwrap_or(&ep.attr);
        (
            format!("from {} import {first}", ep.module),
            ep.attr.clone(),
        )
    };
    format!(
        "#!{interpreter}\n\
         # -*- coding: utf-8 -*-\n\
         # Generated by strata from the wheel's entry points.\n\
         import re\n\
         import sys\n\
         {import}\n\
         if __name__ == \"__main__\":\n\
         \x20   sys.argv[0] = re.sub(r\"(-script\\.pyw|\\.exe)?$\", \"\", sys.argv[0])\n\
         \x20   sys.exit({call}())\n"
    )
}

/// One `RECORD` row: path, `algo=urlsafe-b64` hash (may be empty), size (may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    pub path: String,
    pub hash: String,
    pub size: String,
}

/// Parses `RECORD` (CSV, fields may be double-quoted).
pub fn parse_record(text: &str) -> Result<Vec<RecordRow>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', false) if cur.is_empty() => quoted = true,
                ('"', true) => {
                    if chars.peek() == Some(&'"') {
                        cur.push('"');
                        chars.next();
                    } else {
                        quoted = false;
                    }
                }
                (',', false) => fields.push(std::mem::take(&mut cur)),
                (c, _) => cur.push(c),
            }
        }
        if quoted {
            return Err(format!("RECORD line {}: unclosed quote", n + 1));
        }
        fields.push(cur);
        if fields.len() != 3 {
            return Err(format!(
                "RECORD line {}: {} fields, expected 3",
                n + 1,
                fields.len()
            ));
        }
        let size = fields.pop().unwrap_or_default();
        let hash = fields.pop().unwrap_or_default();
        let path = fields.pop().unwrap_or_default();
        out.push(RecordRow { path, hash, size });
    }
    Ok(out)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn format_record(rows: &[RecordRow]) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&format!(
            "{},{},{}\n",
            csv_field(&r.path),
            csv_field(&r.hash),
            csv_field(&r.size)
        ));
    }
    out
}

/// The RECORD hash of bytes: `sha256=` + urlsafe base64 without padding.
pub fn record_hash(bytes: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    format!(
        "sha256={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_parse() {
        let text = "Metadata-Version: 2.1\nName: alpha\nVersion: 1.0\nRequires-Dist: beta (>=1.0,<2)\nRequires-Dist: gamma; python_version < \"3.8\"\nRequires-Python: >=3.8\nSummary: a\n  continued\n\nRequires-Dist: body-not-header\n";
        let m = parse_metadata(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.name, "alpha");
        assert_eq!(m.requires_dist.len(), 2);
        assert_eq!(m.requires_python.as_deref(), Some(">=3.8"));
        assert!(parse_metadata("Summary: x\n").is_err());
    }

    #[test]
    fn wheel_file() {
        assert!(check_wheel_file("Wheel-Version: 1.0\nRoot-Is-Purelib: true\n").is_ok());
        assert!(check_wheel_file("Wheel-Version: 2.0\n").is_err());
        assert!(check_wheel_file("Generator: x\n").is_err());
    }

    #[test]
    fn entry_points_table() {
        let text = "[console_scripts]\nzeta = z.cli:main\nalpha = alpha.cli:run.go [extra]\nmod-only = pkg.tool\n\n[gui_scripts]\nag = a.gui:start\n\n[other.plugins]\nx = y:z\n";
        let eps = parse_entry_points(text).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<_> = eps.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["ag", "alpha", "mod-only", "zeta"]);
        assert_eq!(eps[1].attr, "run.go");
        assert_eq!(eps[2].attr, "");
        for bad in [
            "[console_scripts]\nnoequals\n",
            "[console_scripts]\nx = 1bad:main\n",
            "[console_scripts]\n../x = a:b\n",
            "[console_scripts]\nx = a:b;c\n",
        ] {
            assert!(parse_entry_points(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn launcher_text() {
        let ep = EntryPoint {
            name: "salt".into(),
            module: "salt.scripts".into(),
            attr: "salt_main".into(),
        };
        let s = launcher("/usr/bin/python3", &ep);
        assert!(s.starts_with("#!/usr/bin/python3\n"));
        assert!(s.contains("from salt.scripts import salt_main\n"));
        assert!(s.contains("    sys.exit(salt_main())\n"));
        let ep = EntryPoint {
            name: "x".into(),
            module: "m".into(),
            attr: "A.b".into(),
        };
        let s = launcher("/opt/venv/bin/python3", &ep);
        assert!(s.contains("from m import A\n") && s.contains("sys.exit(A.b())"));
    }

    #[test]
    fn record_roundtrip() {
        let text =
            "a/b.py,sha256=abc,12\n\"we,ird\"\"name.py\",sha256=def,3\nx.dist-info/RECORD,,\n";
        let rows = parse_record(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows[1].path, "we,ird\"name.py");
        assert_eq!(rows[2].hash, "");
        assert_eq!(format_record(&rows), text);
        assert!(parse_record("a,b\n").is_err());
        assert!(parse_record("\"a,b,c\n").is_err());
        // sha256 of the empty string, as pip writes it.
        assert_eq!(
            record_hash(b""),
            "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }
}

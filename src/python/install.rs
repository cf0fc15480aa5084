//! Installing a wheel without pip: its members mapped to image paths per the wheel spec
//! (PEP 427 / 491), launchers for entry points, `INSTALLER` and a rewritten `RECORD`.
//! Takes the wheel's bytes, returns files; no I/O and no `.pyc` compilation.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::sync::Arc;

use super::metadata::{
    check_wheel_file, format_record, launcher, parse_entry_points, parse_record, record_hash,
    RecordRow,
};
use super::tags::WheelName;

/// Where a wheel's parts go in the image (relative image paths, no leading `/`).
#[derive(Debug, Clone)]
pub struct InstallLayout {
    /// site-packages (purelib and platlib).
    pub site: String,
    /// The prefix: `data` goes here, scripts to `<prefix>/bin`, headers to
    /// `<prefix>/include/python3.N/<project>`.
    pub prefix: String,
    /// For `#!` lines of scripts and launchers.
    pub interpreter: String,
    /// Minor version of Python 3, for the headers directory.
    pub minor: u32,
}

impl InstallLayout {
    fn bin(&self) -> String {
        join(&self.prefix, "bin")
    }
}

/// One installed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledFile {
    /// Relative image path.
    pub path: String,
    pub bytes: Arc<[u8]>,
    pub mode: u32,
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// `to` relative to directory `from` (both relative image paths).
pub fn relative(from: &str, to: &str) -> String {
    let f: Vec<&str> = from.split('/').filter(|s| !s.is_empty()).collect();
    let t: Vec<&str> = to.split('/').filter(|s| !s.is_empty()).collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; f.len() - common];
    parts.extend(&t[common..]);
    parts.join("/")
}

/// Checks a member name is a plain relative path: no `..`, not absolute, no backslashes or
/// NULs, no empty or `.` components.
pub fn check_member(name: &str) -> Result<(), String> {
    if name.starts_with('/') {
        return Err(format!("member `{name}` is an absolute path"));
    }
    if name.contains(['\\', '\0']) {
        return Err(format!("member `{name}` contains a backslash or NUL"));
    }
    for c in name.split('/') {
        match c {
            ".." => {
                return Err(format!(
                    "member `{name}` contains `..`, which would escape the install directory"
                ))
            }
            "" | "." => {
                return Err(format!(
                    "member `{name}` has an empty or `.` path component"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

fn rewrite_shebang(bytes: &[u8], interpreter: &str) -> Vec<u8> {
    let rest = bytes
        .strip_prefix(b"#!pythonw")
        .or_else(|| bytes.strip_prefix(b"#!python"));
    match rest {
        Some(rest) => {
            let mut out = format!("#!{interpreter}").into_bytes();
            out.extend_from_slice(rest);
            out
        }
        None => bytes.to_vec(),
    }
}

const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;

/// Installs `bytes` (the wheel named `filename`). Errors name the member and why; the
/// caller adds the wheel's name.
pub fn install_wheel(
    filename: &str,
    bytes: &[u8],
    layout: &InstallLayout,
) -> Result<Vec<InstalledFile>, String> {
    let wheel = WheelName::parse(filename)?;
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a zip archive: {e}"))?;

    // Read every member once, checking names before anything else.
    let mut members: BTreeMap<String, (Vec<u8>, Option<u32>)> = BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).map_err(|e| format!("member {i}: {e}"))?;
        let name = f.name().to_string();
        if f.is_dir() {
            check_member(name.trim_end_matches('/'))?;
            continue;
        }
        check_member(&name)?;
        let mode = f.unix_mode();
        if mode.is_some_and(|m| m & S_IFMT == S_IFLNK) {
            return Err(format!(
                "member `{name}` is a symbolic link; wheels hold only files"
            ));
        }
        let mut data = Vec::with_capacity(usize::try_from(f.size()).unwrap_or(0).min(1 << 28));
        f.read_to_end(&mut data)
            .map_err(|e| format!("member `{name}`: {e}"))?;
        if members.insert(name.clone(), (data, mode)).is_some() {
            return Err(format!("member `{name}` appears twice"));
        }
    }

    // The .dist-info directory: exactly one at the top, matching the file name's project.
    let infos: Vec<String> = members
        .keys()
        .filter_map(|k| k.split_once('/').map(|(top, _)| top))
        .filter(|top| top.ends_with(".dist-info"))
        .map(String::from)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let info = match infos.as_slice() {
        [one] => one.clone(),
        [] => return Err("no .dist-info directory".into()),
        more => {
            return Err(format!(
                "several .dist-info directories: {}",
                more.join(", ")
            ))
        }
    };
    let stem = info.trim_end_matches(".dist-info").to_string();
    let info_project = stem.split('-').next().unwrap_or(&stem);
    if super::marker::normalize_name(info_project) != wheel.key() {
        return Err(format!(
            "{info} does not belong to project `{}` named in the file name",
            wheel.name
        ));
    }
    let data_dir = format!("{stem}.data");
    let text = |name: &str| -> Result<Option<String>, String> {
        match members.get(&format!("{info}/{name}")) {
            Some((b, _)) => String::from_utf8(b.clone())
                .map(Some)
                .map_err(|_| format!("{info}/{name} is not UTF-8")),
            None => Ok(None),
        }
    };
    check_wheel_file(&text("WHEEL")?.ok_or_else(|| format!("no {info}/WHEEL"))?)?;
    let record = parse_record(&text("RECORD")?.ok_or_else(|| format!("no {info}/RECORD"))?)?;
    let recorded: BTreeMap<&str, &RecordRow> =
        record.iter().map(|r| (r.path.as_str(), r)).collect();

    let entry_points = match text("entry_points.txt")? {
        Some(t) => parse_entry_points(&t)?,
        None => Vec::new(),
    };
    // As pip does: a script in .data/scripts named like an entry point (setuptools writes
    // such wrappers: NAME, NAME.exe, NAME-script.py, NAME.pya) gives way to the launcher.
    let is_wrapper = |sub: &str| {
        let base = sub.rsplit('/').next().unwrap_or(sub);
        let lower = base.to_ascii_lowercase();
        let stem = [".exe", "-script.py", ".pya"]
            .iter()
            .find_map(|suffix| lower.strip_suffix(suffix).map(|s| &base[..s.len()]))
            .unwrap_or(base);
        entry_points.iter().any(|e| e.name == stem)
    };
    let site = &layout.site;
    let bin = layout.bin();
    let mut out: BTreeMap<String, InstalledFile> = BTreeMap::new();
    fn put(
        out: &mut BTreeMap<String, InstalledFile>,
        path: String,
        bytes: Vec<u8>,
        mode: u32,
        from: &str,
    ) -> Result<(), String> {
        if out.contains_key(&path) {
            return Err(format!(
                "`{from}` installs /{path}, which another member already installs"
            ));
        }
        out.insert(
            path.clone(),
            InstalledFile {
                path,
                bytes: Arc::from(bytes),
                mode,
            },
        );
        Ok(())
    }

    for (name, (data, zmode)) in &members {
        if name == &format!("{info}/RECORD")
            || name == &format!("{info}/RECORD.jws")
            || name == &format!("{info}/RECORD.p7s")
            || name == &format!("{info}/INSTALLER")
        {
            continue;
        }
        match recorded.get(name.as_str()) {
            Some(row) if !row.hash.is_empty() => {
                if row.hash.starts_with("sha256=") && record_hash(data) != row.hash {
                    return Err(format!("member `{name}` does not match its RECORD hash"));
                }
                if !row.size.is_empty() && row.size != data.len().to_string() {
                    return Err(format!("member `{name}` does not match its RECORD size"));
                }
            }
            _ => {
                return Err(format!(
                    "member `{name}` is not listed with a hash in RECORD"
                ))
            }
        }
        let exec = zmode.is_some_and(|m| m & 0o111 != 0);
        let file_mode = if exec { 0o755 } else { 0o644 };
        if let Some(rest) = name.strip_prefix(&format!("{data_dir}/")) {
            let (scheme, sub) = rest
                .split_once('/')
                .ok_or_else(|| format!("member `{name}` sits directly in {data_dir}"))?;
            match scheme {
                "scripts" if is_wrapper(sub) => {}
                "scripts" => put(
&mut out,
                    join(&bin, sub),
                    rewrite_shebang(data, &layout.interpreter),
                    0o755,
                    name,
                )?,
                "purelib" | "platlib" => put(&mut out, join(site, sub), data.clone(), file_mode, name)?,
                "data" => put(&mut out, join(&layout.prefix, sub), data.clone(), file_mode, name)?,
                "headers" => put(
&mut out,
                    join(
                        &join(&layout.prefix, &format!("include/python3.{}", layout.minor)),
                        &join(&wheel.name, sub),
                    ),
                    data.clone(),
                    file_mode,
                    name,
                )?,
                other => {
                    return Err(format!(
                        "member `{name}`: unknown .data scheme `{other}` (expected scripts, purelib, platlib, data or headers)"
                    ))
                }
            }
        } else if name.split('/').next().is_some_and(|t| t.ends_with(".data")) {
            return Err(format!(
                "member `{name}` is in a .data directory of another project"
            ));
        } else {
            put(&mut out, join(site, name), data.clone(), file_mode, name)?;
        }
    }

    for ep in &entry_points {
        put(
            &mut out,
            join(&bin, &ep.name),
            launcher(&layout.interpreter, ep).into_bytes(),
            0o755,
            &format!("{info}/entry_points.txt [{}]", ep.name),
        )?;
    }
    put(
        &mut out,
        join(site, &format!("{info}/INSTALLER")),
        b"strata\n".to_vec(),
        0o644,
        "INSTALLER",
    )?;

    let record_path = join(site, &format!("{info}/RECORD"));
    let mut rows: Vec<RecordRow> = out
        .values()
        .map(|f| RecordRow {
            path: relative(site, &f.path),
            hash: record_hash(&f.bytes),
            size: f.bytes.len().to_string(),
        })
        .collect();
    rows.push(RecordRow {
        path: relative(site, &record_path),
        hash: String::new(),
        size: String::new(),
    });
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    put(
        &mut out,
        record_path,
        format_record(&rows).into_bytes(),
        0o644,
        "RECORD",
    )?;
    Ok(out.into_values().collect())
}

#[cfg(test)]
mod tests;

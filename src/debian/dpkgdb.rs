//! Image fix-ups that stand in for dpkg and the maintainer scripts strata never runs:
//! dpkg's database (`var/lib/dpkg/status`, `info/PKG.{list,md5sums,conffiles,...}`), the
//! account files from base-passwd's masters, the CA bundle of ca-certificates, and the
//! `update-alternatives` links (from OpenJDK's `.jinfo` files and from simple
//! `update-alternatives --install` lines in postinst scripts).
//!
//! Everything is a pure function of the extracted packages: same packages, same bytes.
//! docs/debian.md lists which maintainer-script effects are reproduced and which are not.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::deb::ControlFields;
use super::extract::{read_content, ExtractedPackage};
use crate::layer::{Content, Entry, EntryKind};
use crate::recipe::model::Accounts;
use crate::recipe::render_accounts;

/// Field order of dpkg's status file (dpkg's `fieldinfos` table); other fields follow in
/// the order of the package's control file.
pub const STATUS_FIELD_ORDER: &[&str] = &[
    "Package",
    "Essential",
    "Protected",
    "Status",
    "Priority",
    "Section",
    "Installed-Size",
    "Origin",
    "Maintainer",
    "Bugs",
    "Architecture",
    "Multi-Arch",
    "Source",
    "Version",
    "Config-Version",
    "Replaces",
    "Provides",
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Breaks",
    "Conflicts",
    "Enhances",
    "Conffiles",
    "Description",
    "Triggers-Pending",
    "Triggers-Awaited",
];

/// Control files dpkg keeps in `info/`; the first five are scripts (mode 0755).
const INFO_FILES: &[&str] = &[
    "preinst",
    "postinst",
    "prerm",
    "postrm",
    "config",
    "conffiles",
    "templates",
    "triggers",
    "shlibs",
    "symbols",
];

fn push_field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(':');
    let mut lines = value.split('\n');
    let first = lines.next().unwrap_or("");
    if !first.is_empty() {
        out.push(' ');
        out.push_str(first);
    }
    out.push('\n');
    for l in lines {
        out.push(' ');
        out.push_str(l);
        out.push('\n');
    }
}

/// The status paragraph of one installed package: its control fields in dpkg's order,
/// `Status: install ok installed`, and `Conffiles` with their md5 sums.
pub fn status_paragraph(fields: &ControlFields, conffiles: &[(String, String)]) -> String {
    let mut extra: ControlFields = Vec::new();
    let mut known: BTreeMap<&str, &str> = BTreeMap::new();
    for (n, v) in fields {
        match STATUS_FIELD_ORDER
            .iter()
            .find(|k| k.eq_ignore_ascii_case(n))
        {
            // A package cannot set its own status or conffiles.
            Some(&"Status") | Some(&"Conffiles") | Some(&"Config-Version") => {}
            Some(k) => {
                known.insert(k, v);
            }
            None => extra.push((n.clone(), v.clone())),
        }
    }
    let mut out = String::new();
    for k in STATUS_FIELD_ORDER {
        match *k {
            "Status" => push_field(&mut out, k, "install ok installed"),
            "Conffiles" if !conffiles.is_empty() => {
                let v: Vec<String> = conffiles.iter().map(|(p, m)| format!("{p} {m}")).collect();
                push_field(&mut out, k, &format!("\n{}", v.join("\n")));
            }
            _ => {
                if let Some(v) = known.get(k) {
                    push_field(&mut out, k, v);
                }
            }
        }
    }
    for (n, v) in &extra {
        push_field(&mut out, n, v);
    }
    out
}

/// `Conffiles` of a package: each conffile with the md5 of its content in the package
/// (`newconffile` if the package does not ship it, as dpkg writes).
pub fn conffile_sums(pkg: &ExtractedPackage) -> Vec<(String, String)> {
    pkg.conffiles
        .iter()
        .map(|c| {
            let rel = c.trim_start_matches('/');
            let md5 = pkg
                .file_md5
                .iter()
                .find(|(p, _)| p == rel)
                .map(|(_, m)| m.clone())
                .unwrap_or_else(|| "newconffile".to_string());
            (c.clone(), md5)
        })
        .collect()
}

/// The whole status file: one paragraph per package, sorted by name then architecture.
pub fn render_status(pkgs: &[ExtractedPackage]) -> String {
    let mut sorted: Vec<&ExtractedPackage> = pkgs.iter().collect();
    sorted.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    let paragraphs: Vec<String> = sorted
        .iter()
        .map(|p| status_paragraph(&p.deb.fields, &conffile_sums(p)))
        .collect();
    paragraphs.join("\n")
}

/// A base image's status file with `pkgs` installed over it: the base's paragraphs for
/// other packages are kept byte for byte, a base paragraph for the same package name and
/// architecture is replaced, and all are sorted by name then architecture.
pub fn merge_status(base: &str, pkgs: &[ExtractedPackage]) -> String {
    let ours: BTreeSet<(&str, &str)> = pkgs
        .iter()
        .map(|p| (p.name.as_str(), p.arch.as_str()))
        .collect();
    let mut paragraphs: Vec<((String, String), String)> = Vec::new();
    for para in base.split("\n\n") {
        let para = para.trim_matches('\n');
        if para.trim().is_empty() {
            continue;
        }
        let value = |name: &str| {
            para.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let key = (value("Package"), value("Architecture"));
        if !ours.contains(&(key.0.as_str(), key.1.as_str())) {
            paragraphs.push((key, format!("{para}\n")));
        }
    }
    for p in pkgs {
        paragraphs.push((
            (p.name.clone(), p.arch.clone()),
            status_paragraph(&p.deb.fields, &conffile_sums(p)),
        ));
    }
    paragraphs.sort_by(|a, b| a.0.cmp(&b.0));
    paragraphs
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join("\n")
}

/// dpkg's name for a package's files in `info/`: `PKG` or `PKG:ARCH` for `Multi-Arch: same`.
pub fn info_name(pkg: &ExtractedPackage) -> String {
    if pkg
        .field("Multi-Arch")
        .is_some_and(|m| m.eq_ignore_ascii_case("same"))
    {
        format!("{}:{}", pkg.name, pkg.arch)
    } else {
        pkg.name.clone()
    }
}

fn file(path: &str, bytes: Vec<u8>, mode: u32, sde: u64) -> Entry {
    let size = bytes.len() as u64;
    let mut e = Entry::new(
        path,
        EntryKind::File {
            content: Content::Bytes(Arc::from(bytes)),
            size,
        },
        mode,
    );
    e.mtime = sde;
    e
}

fn dir(path: &str, sde: u64) -> Entry {
    let mut e = Entry::new(path, EntryKind::Dir, 0o755);
    e.mtime = sde;
    e
}

fn symlink(path: &str, target: &str, sde: u64) -> Entry {
    let mut e = Entry::new(
        path,
        EntryKind::Symlink {
            target: target.to_string(),
        },
        0o777,
    );
    e.mtime = sde;
    e
}

/// dpkg's database for `pkgs` (sorted by path): `status`, and per package `info/X.list`,
/// `X.md5sums` and the control files dpkg keeps (`conffiles`, maintainer scripts,
/// `triggers`, `shlibs`, ...). `native_arch` goes first in `var/lib/dpkg/arch` when a
/// package of another architecture is present.
pub fn dpkg_db_entries(pkgs: &[ExtractedPackage], native_arch: &str, sde: u64) -> Vec<Entry> {
    let mut out = vec![
        dir("var", sde),
        dir("var/lib", sde),
        dir("var/lib/dpkg", sde),
        dir("var/lib/dpkg/info", sde),
        // The multiarch database layout (`PKG:ARCH.list` names); without it dpkg reads
        // `info/` in the old single-arch layout.
        file("var/lib/dpkg/info/format", b"1\n".to_vec(), 0o644, sde),
        file(
            "var/lib/dpkg/status",
            render_status(pkgs).into_bytes(),
            0o644,
            sde,
        ),
    ];
    let foreign: BTreeSet<&str> = pkgs
        .iter()
        .map(|p| p.arch.as_str())
        .filter(|a| *a != "all" && *a != native_arch)
        .collect();
    if !foreign.is_empty() {
        let mut text = format!("{native_arch}\n");
        for a in foreign {
            text.push_str(a);
            text.push('\n');
        }
        out.push(file("var/lib/dpkg/arch", text.into_bytes(), 0o644, sde));
    }
    for p in pkgs {
        let base = format!("var/lib/dpkg/info/{}", info_name(p));
        let mut list = p.dpkg_paths.join("\n");
        list.push('\n');
        out.push(file(&format!("{base}.list"), list.into_bytes(), 0o644, sde));
        out.push(file(
            &format!("{base}.md5sums"),
            p.md5sums().into_bytes(),
            0o644,
            sde,
        ));
        for (i, name) in INFO_FILES.iter().enumerate() {
            if let Some(bytes) = p.deb.control.files.get(*name) {
                let mode = if i < 5 { 0o755 } else { 0o644 };
                out.push(file(&format!("{base}.{name}"), bytes.clone(), mode, sde));
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The content of the file at image path `path` in the first package shipping it.
fn file_in(pkgs: &[ExtractedPackage], path: &str) -> Option<Vec<u8>> {
    pkgs.iter().find_map(|p| match &p.entry(path)?.kind {
        EntryKind::File { content, .. } => read_content(content).ok(),
        _ => None,
    })
}

fn exists_in(pkgs: &[ExtractedPackage], path: &str) -> bool {
    pkgs.iter().any(|p| p.entry(path).is_some())
}

/// `etc/passwd` and `etc/group`: base-passwd's master files (what its postinst copies on
/// a fresh system) merged with the recipe's accounts. Empty when neither is there.
pub fn accounts_entries(
    pkgs: &[ExtractedPackage],
    accounts: Option<&Accounts>,
    sde: u64,
) -> Result<Vec<Entry>, String> {
    let text = |p: &str| file_in(pkgs, p).map(|b| String::from_utf8_lossy(&b).into_owned());
    let passwd = text("usr/share/base-passwd/passwd.master");
    let group = text("usr/share/base-passwd/group.master");
    if let Some(a) = accounts {
        return render_accounts(a, passwd.as_deref(), group.as_deref(), sde);
    }
    let (Some(passwd), Some(group)) = (passwd, group) else {
        return Ok(Vec::new());
    };
    Ok(vec![
        dir("etc", sde),
        file("etc/group", group.into_bytes(), 0o644, sde),
        file("etc/passwd", passwd.into_bytes(), 0o644, sde),
    ])
}

const CA_DIR: &str = "usr/share/ca-certificates/";
const CA_CONF_HEADER: &str =
    "# This file lists certificates that you wish to use or to ignore to be
# installed in /etc/ssl/certs.
# update-ca-certificates(8) will update /etc/ssl/certs by reading this file.
#
# This is autogenerated by dpkg-reconfigure ca-certificates.
# Certificates should be installed under /usr/share/ca-certificates
# and files with extension '.crt' is recognized as available certs.
#
# line begins with # is comment.
# line begins with ! is certificate filename to be deselected.
#
";

/// What ca-certificates' postinst and `update-ca-certificates` make on a fresh install
/// with every certificate selected (debconf's default): `etc/ca-certificates.conf`, one
/// `etc/ssl/certs/NAME.pem` link per certificate and the bundle
/// `etc/ssl/certs/ca-certificates.crt`, all in the bytewise order of the certificates'
/// paths (the scripts' `sort`). Empty when ca-certificates is not among `pkgs`. The
/// OpenSSL hash links (`c_rehash`) are not made.
pub fn ca_entries(pkgs: &[ExtractedPackage], sde: u64) -> Vec<Entry> {
    if !pkgs.iter().any(|p| p.name == "ca-certificates") {
        return Vec::new();
    }
    let mut certs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for p in pkgs {
        for e in &p.entries {
            let Some(rel) = e.path.strip_prefix(CA_DIR) else {
                continue;
            };
            if let EntryKind::File { content, .. } = &e.kind {
                if rel.ends_with(".crt") {
                    if let Ok(b) = read_content(content) {
                        certs.entry(rel.to_string()).or_insert(b);
                    }
                }
            }
        }
    }
    let mut out = vec![
        dir("etc", sde),
        dir("etc/ssl", sde),
        dir("etc/ssl/certs", sde),
    ];
    let mut conf = CA_CONF_HEADER.to_string();
    let mut bundle = Vec::new();
    for (rel, bytes) in &certs {
        conf.push_str(rel);
        conf.push('\n');
        bundle.extend_from_slice(bytes);
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        let base = rel.rsplit('/').next().unwrap_or(rel);
        let base = base.strip_suffix(".crt").unwrap_or(base);
        let pem: String = base
            .chars()
            .map(|c| match c {
                ' ' | ',' => '_',
                '(' | ')' => '=',
                c => c,
            })
            .collect();
        out.push(symlink(
            &format!("etc/ssl/certs/{pem}.pem"),
            &format!("/{CA_DIR}{rel}"),
            sde,
        ));
    }
    out.push(file(
        "etc/ca-certificates.conf",
        conf.into_bytes(),
        0o644,
        sde,
    ));
    out.push(file(
        "etc/ssl/certs/ca-certificates.crt",
        bundle,
        0o644,
        sde,
    ));
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// One `update-alternatives --install` registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    /// Generic link, e.g. `/usr/bin/java`.
    pub link: String,
    /// Name, e.g. `java` (`/etc/alternatives/java`).
    pub name: String,
    /// What it points at, e.g. `/usr/lib/jvm/java-17-openjdk-amd64/bin/java`.
    pub path: String,
    pub priority: i64,
    /// `--slave LINK NAME PATH`.
    pub slaves: Vec<(String, String, String)>,
}

/// The alternatives an OpenJDK `.jinfo` file describes: each `hl`, `jre`, `jdkhl` or `jdk`
/// line `KIND NAME PATH` is `/usr/bin/NAME` → `PATH` at the file's `priority`, as the
/// JDK packages' postinst scripts register them.
pub fn parse_jinfo(text: &str) -> Result<Vec<Alternative>, String> {
    let mut priority = None;
    let mut tools = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(p) = line.strip_prefix("priority=") {
            priority = Some(
                p.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("line {}: bad priority `{p}`", i + 1))?,
            );
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [kind, name, path] = parts.as_slice() {
            if matches!(*kind, "hl" | "jre" | "jdkhl" | "jdk") {
                if !path.starts_with('/') || name.contains('/') {
                    return Err(format!("line {}: bad tool line `{line}`", i + 1));
                }
                tools.push((name.to_string(), path.to_string()));
            }
        }
    }
    let priority = priority.ok_or("no `priority=` line")?;
    Ok(tools
        .into_iter()
        .map(|(name, path)| Alternative {
            link: format!("/usr/bin/{name}"),
            name,
            path,
            priority,
            slaves: Vec::new(),
        })
        .collect())
}

/// A shell word with nothing for the shell to expand: no variables, quotes or globs.
fn plain_word(w: &str) -> bool {
    !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./+:@-,=".contains(&b))
}

/// `update-alternatives --install` calls in a maintainer script whose arguments are all
/// literal (as `dh_installalternatives` writes them). Calls using variables, loops or
/// quoting are left out: strata does not run shell.
pub fn parse_postinst_alternatives(script: &str) -> Vec<Alternative> {
    let joined = script.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(start) = words.iter().position(|w| *w == "update-alternatives") else {
            continue;
        };
        let mut rest = words[start + 1..]
            .iter()
            .take_while(|w| !matches!(**w, ";" | "||" | "&&" | "|" | ">" | "2>" | "fi"))
            .copied()
            .skip_while(|w| w.starts_with("--") && *w != "--install");
        if rest.next() != Some("--install") {
            continue;
        }
        let args: Vec<&str> = rest.collect();
        if args.len() < 4 || !args.iter().all(|w| plain_word(w)) {
            continue;
        }
        let Ok(priority) = args[3].parse::<i64>() else {
            continue;
        };
        let mut alt = Alternative {
            link: args[0].to_string(),
            name: args[1].to_string(),
            path: args[2].to_string(),
            priority,
            slaves: Vec::new(),
        };
        let mut tail = &args[4..];
        let mut ok = alt.link.starts_with('/') && alt.path.starts_with('/');
        while ok && !tail.is_empty() {
            match tail {
                ["--slave", link, name, path, more @ ..]
                    if link.starts_with('/') && path.starts_with('/') =>
                {
                    alt.slaves
                        .push((link.to_string(), name.to_string(), path.to_string()));
                    tail = more;
                }
                _ => ok = false,
            }
        }
        if ok {
            out.push(alt);
        }
    }
    out
}

/// Every alternative the packages register (jinfo files and simple postinst calls).
pub fn registered_alternatives(pkgs: &[ExtractedPackage]) -> Vec<Alternative> {
    let mut alts = Vec::new();
    for p in pkgs {
        for e in &p.entries {
            let is_jinfo = e
                .path
                .strip_prefix("usr/lib/jvm/.")
                .is_some_and(|n| !n.contains('/') && n.ends_with(".jinfo"));
            if let (true, EntryKind::File { content, .. }) = (is_jinfo, &e.kind) {
                if let Ok(b) = read_content(content) {
                    // A jinfo that does not parse registers nothing, like a failed postinst.
                    alts.extend(parse_jinfo(&String::from_utf8_lossy(&b)).unwrap_or_default());
                }
            }
        }
        if let Some(script) = p.deb.control.text("postinst") {
            alts.extend(parse_postinst_alternatives(&script));
        }
    }
    alts
}

/// The links `update-alternatives` would make in automatic mode: per name, the candidate
/// whose target exists with the highest priority (ties: bytewise-first path) gets
/// `LINK -> /etc/alternatives/NAME -> PATH` (and its slaves whose targets exist), plus
/// the `var/lib/dpkg/alternatives/NAME` record so `update-alternatives` inside the image
/// knows them. A link path a package ships itself is left alone.
pub fn alternatives_entries(pkgs: &[ExtractedPackage], sde: u64) -> Vec<Entry> {
    let present = |p: &str| exists_in(pkgs, p.trim_start_matches('/'));
    let mut by_name: BTreeMap<String, Vec<Alternative>> = BTreeMap::new();
    for a in registered_alternatives(pkgs) {
        if present(&a.path) && !present(&a.link) {
            by_name.entry(a.name.clone()).or_default().push(a);
        }
    }
    let mut out: BTreeMap<String, Entry> = BTreeMap::new();
    let put = |e: Entry, out: &mut BTreeMap<String, Entry>| {
        let mut anc = e.path.as_str();
        while let Some(i) = anc.rfind('/') {
            anc = &anc[..i];
            if !exists_in(pkgs, anc) {
                out.entry(anc.to_string()).or_insert_with(|| dir(anc, sde));
            }
        }
        out.insert(e.path.clone(), e);
    };
    for (name, mut cands) in by_name {
        cands.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.path.cmp(&b.path)));
        cands.dedup_by(|a, b| a.path == b.path);
        let best = &cands[0];
        put(
            symlink(&format!("etc/alternatives/{name}"), &best.path, sde),
            &mut out,
        );
        put(
            symlink(
                best.link.trim_start_matches('/'),
                &format!("/etc/alternatives/{name}"),
                sde,
            ),
            &mut out,
        );
        for (link, sname, spath) in &best.slaves {
            if present(spath) && !present(link) {
                put(
                    symlink(&format!("etc/alternatives/{sname}"), spath, sde),
                    &mut out,
                );
                put(
                    symlink(
                        link.trim_start_matches('/'),
                        &format!("/etc/alternatives/{sname}"),
                        sde,
                    ),
                    &mut out,
                );
            }
        }
        // The admin file: mode, master link, slave (name, link) pairs, then per candidate
        // its path, priority and slave paths.
        let mut admin = format!("auto\n{}\n", best.link);
        for (link, sname, _) in &best.slaves {
            admin.push_str(&format!("{sname}\n{link}\n"));
        }
        admin.push('\n');
        for c in &cands {
            admin.push_str(&format!("{}\n{}\n", c.path, c.priority));
            for (_, sname, _) in &best.slaves {
                let p = c
                    .slaves
                    .iter()
                    .find(|(_, n, _)| n == sname)
                    .map(|(_, _, p)| p.as_str())
                    .unwrap_or("");
                admin.push_str(p);
                admin.push('\n');
            }
        }
        admin.push('\n');
        put(
            file(
                &format!("var/lib/dpkg/alternatives/{name}"),
                admin.into_bytes(),
                0o644,
                sde,
            ),
            &mut out,
        );
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests;

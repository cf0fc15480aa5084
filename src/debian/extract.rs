//! A package's `data.tar` → layer entries, with the safety checks dpkg would make and the
//! metadata strata's determinism contract asks for.
//!
//! - Paths: `./` is dropped; absolute paths, `..`, and writes through a symlink the same
//!   package created are refused, naming the package and the member.
//! - Lower layers: the caller passes the symlinks of the layers below (the base image and
//!   earlier packages). A member below such a link is redirected to where the link points
//!   inside the image (merged /usr: `./bin/ls` becomes `usr/bin/ls` when the base has
//!   `bin -> usr/bin`), so the link is never shadowed by a directory. A link that leaves
//!   the image or points at the root or at itself is refused.
//! - Metadata: owners, names and modes from the package; mtimes clamped to
//!   `SOURCE_DATE_EPOCH`; hard links inside the package stay hard links.
//! - Memory: the data archive is streamed; files of [`SPILL_BYTES`] or more go to
//!   `spill_dir` (named by their sha256, written to a temp file and renamed) when one is set.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::deb::{read_deb, ControlFields, DebError, DebInfo};
use crate::layer::tarin::{normalize_member_path, read_member, MemberKind};
use crate::layer::{Content, Entry, EntryKind};
use crate::recipe::validate::Problem;

/// Files at least this large are written to the spill directory instead of memory.
pub const SPILL_BYTES: u64 = 256 << 10;
/// Symlink hops followed when redirecting a path through lower layers' links.
const MAX_LINK_HOPS: usize = 40;

/// How a package is extracted.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// `SOURCE_DATE_EPOCH`: entries' mtimes are clamped to it.
    pub sde: u64,
    /// Symlinks already in the image below this package (base image, earlier packages):
    /// image path (no leading `/`) → link target. See [`symlinks_of`].
    pub lower_symlinks: BTreeMap<String, String>,
    /// Directories already in the image below this package. See [`dirs_of`]. A package
    /// symlink there is skipped (dpkg never replaces a directory with a symlink, and in a
    /// layer the link would hide the directory's contents); a file there is an error.
    pub lower_dirs: BTreeSet<String>,
    /// Where large file contents are kept (content-addressed); `None` keeps them in memory.
    pub spill_dir: Option<PathBuf>,
}

/// One package, read and turned into layer entries.
#[derive(Debug, Clone)]
pub struct ExtractedPackage {
    /// The `.deb` itself: path, sha256, size, control archive and control fields.
    pub deb: DebInfo,
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Layer entries sorted by path, missing parent directories added (0755, root).
    pub entries: Vec<Entry>,
    /// The package's paths as dpkg lists them in `info/PKG.list`: `/.` first, then each
    /// member in archive order, as named in the package (before any merged-/usr redirect).
    pub dpkg_paths: Vec<String>,
    /// md5 of each regular file, by package path without the leading `/`, archive order.
    pub file_md5: Vec<(String, String)>,
    /// `conffiles` entries (absolute paths).
    pub conffiles: Vec<String>,
    /// `usr/share/doc/PKG/copyright`, when the package ships it as a file.
    pub copyright: Option<String>,
}

impl ExtractedPackage {
    /// The text of `md5sums`: the package's own file, or one made from the contents (as
    /// dpkg does for packages without one).
    pub fn md5sums(&self) -> String {
        if let Some(t) = self.deb.control.text("md5sums") {
            return t;
        }
        self.file_md5
            .iter()
            .map(|(p, m)| format!("{m}  {p}\n"))
            .collect()
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.deb.field(name)
    }

    /// The entry at an image path, if this package ships it.
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// The symlinks among `entries` (image path → target), for [`ExtractOptions::lower_symlinks`].
pub fn symlinks_of(entries: &[Entry]) -> BTreeMap<String, String> {
    entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Symlink { target } => Some((e.path.clone(), target.clone())),
            _ => None,
        })
        .collect()
}

/// The directories among `entries`, for [`ExtractOptions::lower_dirs`].
pub fn dirs_of(entries: &[Entry]) -> BTreeSet<String> {
    entries
        .iter()
        .filter(|e| e.is_dir())
        .map(|e| e.path.clone())
        .collect()
}

/// Reads the bytes of an entry's content (inline or spilled).
pub fn read_content(c: &Content) -> io::Result<Vec<u8>> {
    match c {
        Content::Bytes(b) => Ok(b.to_vec()),
        Content::Path { path, .. } => std::fs::read(path),
    }
}

/// Reads `deb_path` and turns its data archive into layer entries.
pub fn package_entries(
    deb_path: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractedPackage, DebError> {
    let mut state = Extractor {
        opts,
        entries: BTreeMap::new(),
        links: HashMap::new(),
        dpkg_paths: vec!["/.".to_string()],
        file_md5: Vec::new(),
        copyright: None,
        copyright_path: String::new(),
    };
    let deb = read_deb(deb_path, &mut |_, fields, data| state.visit(fields, data))?;
    let err = |m: String| {
        DebError::new(
            deb_path,
            Problem::new(
                m,
                "the package's control file must name Package, Version and Architecture",
            ),
        )
    };
    let name = deb
        .field("Package")
        .ok_or_else(|| err("the control file has no Package field".into()))?
        .to_string();
    let version = deb
        .field("Version")
        .ok_or_else(|| err(format!("package `{name}` has no Version field")))?
        .to_string();
    let arch = deb
        .field("Architecture")
        .ok_or_else(|| err(format!("package `{name}` has no Architecture field")))?
        .to_string();
    let conffiles = deb
        .control
        .text("conffiles")
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                // dpkg ≥ 1.20 allows a `remove-on-upgrade` flag before the path.
                .map(|l| l.rsplit(' ').next().unwrap_or(l).to_string())
                .collect()
        })
        .unwrap_or_default();
    let entries = finish(state.entries, opts.sde);
    Ok(ExtractedPackage {
        deb,
        name,
        version,
        arch,
        entries,
        dpkg_paths: state.dpkg_paths,
        file_md5: state.file_md5,
        conffiles,
        copyright: state.copyright,
    })
}

struct Extractor<'o> {
    opts: &'o ExtractOptions,
    entries: BTreeMap<String, Entry>,
    /// Symlinks this package created so far (resolved image path → target).
    links: HashMap<String, String>,
    dpkg_paths: Vec<String>,
    file_md5: Vec<(String, String)>,
    copyright: Option<String>,
    copyright_path: String,
}

const HINT_HOSTILE: &str =
    "the package tries to write outside its place in the image; do not install it (report it to its maintainer if it came from a Debian mirror)";

impl Extractor<'_> {
    fn visit(&mut self, fields: &ControlFields, data: &mut dyn Read) -> Result<(), Problem> {
        let pkg = super::deb::field(fields, "Package").unwrap_or("?");
        self.copyright_path = format!("usr/share/doc/{pkg}/copyright");
        let corrupt = |m: String| {
            Problem::new(
                format!("data archive: {m}"),
                "the file is not a valid Debian package; fetch it again",
            )
        };
        let mut archive = tar::Archive::new(data);
        let members = archive.entries().map_err(|e| corrupt(e.to_string()))?;
        for member in members {
            let mut member = member.map_err(|e| corrupt(e.to_string()))?;
            let mut md5 = None;
            let spill = self.opts.spill_dir.clone();
            let mut read_file = |r: &mut dyn Read, size: u64| -> io::Result<Content> {
                let (content, m) = read_file(r, size, spill.as_deref())?;
                md5 = Some(m);
                Ok(content)
            };
            let Some(m) = read_member(&mut member, &mut read_file).map_err(corrupt)? else {
                continue;
            };
            self.add(m, md5)?;
        }
        Ok(())
    }

    fn add(
        &mut self,
        m: crate::layer::tarin::TarMember,
        md5: Option<String>,
    ) -> Result<(), Problem> {
        let raw = m.raw_path.display().to_string();
        let hostile = |msg: String| Problem::new(format!("member `{raw}` {msg}"), HINT_HOSTILE);
        let rel = match normalize_member_path(&m.raw_path, false) {
            Ok(Some(rel)) => rel,
            Ok(None) => return Ok(()),
            Err(_) if m.raw_path.is_absolute() => {
                return Err(hostile("has an absolute path".into()))
            }
            Err(_) => return Err(hostile("climbs out of the image root with `..`".into())),
        };
        self.dpkg_paths.push(format!("/{rel}"));
        let is_dir = matches!(m.kind, MemberKind::Dir);
        let path = self.resolve(&rel, is_dir).map_err(hostile)?;
        if let Some(target) = self.opts.lower_symlinks.get(&path) {
            // The final component is a lower layer's link and the member is not a
            // directory (those were redirected): only the identical link may stay.
            let same = matches!(&m.kind, MemberKind::Symlink { target: t } if t == target);
            if !same {
                return Err(hostile(format!(
                    "would replace the symlink `/{path}` -> {target} of a lower layer"
                )));
            }
        }
        if !is_dir && self.opts.lower_dirs.contains(&path) {
            if matches!(m.kind, MemberKind::Symlink { .. }) {
                return Ok(());
            }
            return Err(Problem::new(
                format!("member `{raw}` would replace the directory `/{path}` of a lower layer with a file"),
                "two packages (or the base image and a package) disagree about this path; leave one of them out",
            ));
        }
        let kind = m
            .kind
            .into_entry_kind(|raw_target| {
                let outside = || {
                    format!(
                        "is a hard link to `{}`, outside the image root",
                        raw_target.display()
                    )
                };
                let t = normalize_member_path(raw_target, true)
                    .map_err(|_| outside())?
                    .ok_or_else(outside)?;
                let t = self.resolve(&t, false)?;
                match self.entries.get(&t).map(|e| &e.kind) {
                    Some(EntryKind::File { .. }) => Ok(t),
                    _ => Err(format!(
                        "is a hard link to `/{t}`, which is not a file earlier in this package"
                    )),
                }
            })
            .map_err(hostile)?;
        if let EntryKind::Symlink { target } = &kind {
            // Re-shipping a lower layer's link (base-files' `bin -> usr/bin` in newer
            // releases) keeps it a lower link, followed like before.
            if !self.opts.lower_symlinks.contains_key(&path) {
                self.links.insert(path.clone(), target.clone());
            }
        } else {
            self.links.remove(&path);
        }
        if let (EntryKind::File { content, .. }, Some(md5)) = (&kind, md5) {
            self.file_md5.push((rel.clone(), md5));
            if path == self.copyright_path {
                self.copyright = read_content(content)
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned());
            }
        }
        if !is_dir {
            // A non-directory replaces whatever was at its path, including below it.
            let below = format!("{path}/");
            let doomed: Vec<String> = self
                .entries
                .range(below.clone()..)
                .map(|(p, _)| p)
                .take_while(|p| p.starts_with(&below))
                .cloned()
                .collect();
            for p in doomed {
                self.entries.remove(&p);
                self.links.remove(&p);
            }
        }
        let entry = Entry {
            path: path.clone(),
            kind,
            mode: m.mode,
            uid: m.uid,
            gid: m.gid,
            uname: m.uname,
            gname: m.gname,
            mtime: m.mtime.min(self.opts.sde),
        };
        self.entries.insert(path, entry);
        Ok(())
    }

    /// The image path a member lands at: every ancestor (and the path itself when
    /// `follow_last`) that is a lower layer's symlink is followed inside the image; one
    /// this package created is refused.
    fn resolve(&self, rel: &str, follow_last: bool) -> Result<String, String> {
        let mut todo: Vec<String> = rel.split('/').rev().map(str::to_string).collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            let last = todo.is_empty();
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    if done.pop().is_none() {
                        return Err("leads out of the image root through a symlink".into());
                    }
                    continue;
                }
                _ => {}
            }
            done.push(c);
            if last && !follow_last {
                break;
            }
            let here = done.join("/");
            if let Some(target) = self.links.get(&here) {
                return Err(format!(
                    "writes through the symlink `/{here}` -> {target}, which this package created"
                ));
            }
            let Some(target) = self.opts.lower_symlinks.get(&here) else {
                continue;
            };
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return Err(format!("goes through too many symlinks at `/{here}`"));
            }
            let bad = |why: &str| {
                Err(format!(
                    "writes through the lower layer's symlink `/{here}` -> {target}, {why}"
                ))
            };
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            // Lexically resolve the target from the link's directory.
            for t in target.split('/').filter(|t| !t.is_empty() && *t != ".") {
                if t == ".." {
                    if done.pop().is_none() {
                        return bad("which leads out of the image root");
                    }
                } else {
                    done.push(t.to_string());
                }
            }
            let resolved = done.join("/");
            if resolved.is_empty() {
                return bad("which points at the image root");
            }
            if resolved == here
                || resolved.starts_with(&format!("{here}/"))
                || here.starts_with(&format!("{resolved}/"))
            {
                return bad("which points at itself or one of its parents");
            }
            // Components of the resolved target may be links themselves: walk them again.
            let again: Vec<String> = std::mem::take(&mut done);
            todo.extend(again.into_iter().rev());
        }
        Ok(done.join("/"))
    }
}

/// Reads one regular file: its content (inline, or spilled to `spill/<sha256>`) and md5.
fn read_file(r: &mut dyn Read, size: u64, spill: Option<&Path>) -> io::Result<(Content, String)> {
    let mut md5 = Md5::new();
    match spill {
        Some(dir) if size >= SPILL_BYTES => {
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            let mut sha = Sha256::new();
            let mut buf = vec![0u8; 64 << 10];
            let mut n_total = 0u64;
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                sha2::Digest::update(&mut sha, &buf[..n]);
                md5.update(&buf[..n]);
                tmp.write_all(&buf[..n])?;
                n_total += n as u64;
            }
            if n_total != size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file has {n_total} bytes, header says {size}"),
                ));
            }
            let sha256 = hex::encode(sha2::Digest::finalize(sha));
            let dest = dir.join(&sha256);
            if dest.exists() {
                drop(tmp);
            } else {
                tmp.persist(&dest).map_err(|e| e.error)?;
            }
            Ok((
                Content::Path { path: dest, sha256 },
                hex::encode(md5.finalize()),
            ))
        }
        _ => {
            let mut bytes = Vec::with_capacity(usize::try_from(size.min(SPILL_BYTES)).unwrap_or(0));
            r.read_to_end(&mut bytes)?;
            md5.update(&bytes);
            Ok((
                Content::Bytes(Arc::from(bytes)),
                hex::encode(md5.finalize()),
            ))
        }
    }
}

/// Sorted entries with every missing parent directory added (0755, root, mtime `sde`).
fn finish(mut entries: BTreeMap<String, Entry>, sde: u64) -> Vec<Entry> {
    let mut missing = Vec::new();
    for path in entries.keys() {
        let mut anc = path.as_str();
        while let Some(i) = anc.rfind('/') {
            anc = &anc[..i];
            if !entries.contains_key(anc) {
                missing.push(anc.to_string());
            }
        }
    }
    for p in missing {
        let mut e = Entry::new(p.clone(), EntryKind::Dir, 0o755);
        e.mtime = sde;
        entries.entry(p).or_insert(e);
    }
    entries.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extractor(
        lower: &[(&str, &str)],
        own: &[(&str, &str)],
    ) -> (ExtractOptions, HashMap<String, String>) {
        let opts = ExtractOptions {
            sde: 100,
            lower_symlinks: lower
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            lower_dirs: BTreeSet::new(),
            spill_dir: None,
        };
        let links = own
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        (opts, links)
    }

    fn resolve(
        lower: &[(&str, &str)],
        own: &[(&str, &str)],
        rel: &str,
        dir: bool,
    ) -> Result<String, String> {
        let (opts, links) = extractor(lower, own);
        let x = Extractor {
            opts: &opts,
            entries: BTreeMap::new(),
            links,
            dpkg_paths: Vec::new(),
            file_md5: Vec::new(),
            copyright: None,
            copyright_path: String::new(),
        };
        x.resolve(rel, dir)
    }

    #[test]
    fn merged_usr_redirects() {
        let usr = [
            ("bin", "usr/bin"),
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
            ("sbin", "usr/sbin"),
            ("usr/lib/alt", "/opt/alt"),
            ("etc/loop", "loop2"),
            ("etc/loop2", "loop"),
        ];
        let cases: &[(&str, bool, Result<&str, &str>)] = &[
            ("bin/ls", false, Ok("usr/bin/ls")),
            ("bin", true, Ok("usr/bin")),
            ("bin", false, Ok("bin")),
            (
                "lib/x86_64-linux-gnu/libc.so.6",
                false,
                Ok("usr/lib/x86_64-linux-gnu/libc.so.6"),
            ),
            ("usr/bin/ls", false, Ok("usr/bin/ls")),
            // A link reached through a redirect is followed too.
            ("lib/alt/x", false, Ok("opt/alt/x")),
            ("etc/loop/x", false, Err("too many symlinks")),
        ];
        for (rel, dir, want) in cases {
            let got = resolve(&usr, &[], rel, *dir);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(&g, w, "{rel}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{rel}: {e}"),
                (g, w) => panic!("{rel}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn hostile_links_refused() {
        type Links<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Links, Links, &str, &str)] = &[
            (
                &[],
                &[("etc/evil", "/")],
                "etc/evil/x",
                "which this package created",
            ),
            (
                &[],
                &[("etc/evil", "../../tmp")],
                "etc/evil/x",
                "which this package created",
            ),
            (
                &[("etc/evil", "/")],
                &[],
                "etc/evil/x",
                "points at the image root",
            ),
            (
                &[("etc/evil", "../../../x")],
                &[],
                "etc/evil/x",
                "leads out of the image root",
            ),
            (
                &[("etc/self", "../etc")],
                &[],
                "etc/self/x",
                "itself or one of its parents",
            ),
            (
                &[("a/b", ".")],
                &[],
                "a/b/x",
                "itself or one of its parents",
            ),
        ];
        for (lower, own, rel, want) in cases {
            let e = resolve(lower, own, rel, false).expect_err(rel);
            assert!(e.contains(want), "{rel}: {e}");
        }
    }

    #[test]
    fn parents_added_and_sorted() {
        let mut m = BTreeMap::new();
        let mut e = Entry::new("usr/bin/x", EntryKind::Dir, 0o700);
        e.mtime = 5;
        m.insert(e.path.clone(), e);
        let got = finish(m, 9);
        let got: Vec<(&str, u32, u64)> = got
            .iter()
            .map(|e| (e.path.as_str(), e.mode, e.mtime))
            .collect();
        assert_eq!(
            got,
            [
                ("usr", 0o755, 9),
                ("usr/bin", 0o755, 9),
                ("usr/bin/x", 0o700, 5)
            ]
        );
    }

    #[test]
    fn spilled_files_are_content_addressed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = vec![7u8; usize::try_from(SPILL_BYTES).expect("fits")];
        let (c, md5) =
            read_file(&mut data.as_slice(), SPILL_BYTES, Some(dir.path())).expect("spills");
        let Content::Path { path, sha256 } = c else {
            panic!("not spilled")
        };
        assert_eq!(sha256, crate::digest::sha256_hex(&data));
        assert_eq!(path, dir.path().join(&sha256));
        assert_eq!(std::fs::read(&path).expect("read"), data);
        assert_eq!(md5, hex::encode(Md5::digest(&data)));
        // Small files stay in memory; a short read is an error, not a short file.
        let (c, _) = read_file(&mut &b"hi"[..], 2, Some(dir.path())).expect("reads");
        assert!(matches!(c, Content::Bytes(_)));
        let e = read_file(&mut &data[..10], SPILL_BYTES, Some(dir.path())).expect_err("short");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        // Only the one spilled file is in the directory (no temp files left).
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/debian/hostile")
            .join(name)
    }

    fn opts(sde: u64) -> ExtractOptions {
        ExtractOptions {
            sde,
            ..ExtractOptions::default()
        }
    }

    #[test]
    fn good_fixtures_in_every_compression() {
        for (file, name, member) in [
            ("good-xz_1.0-1_all.deb", "good-xz", "data.tar.xz"),
            ("good-zst_1.0-1_amd64.deb", "good-zst", "data.tar.zst"),
            ("good-gz_1.0-1_all.deb", "good-gz", "data.tar.gz"),
            ("good-none_1.0-1_all.deb", "good-none", "data.tar"),
            ("good-bz2_1.0-1_all.deb", "good-bz2", "data.tar.bz2"),
        ] {
            let p = package_entries(&fixture(file), &opts(1_600_000_000)).expect(file);
            assert_eq!(p.name, name);
            assert_eq!(p.version, "1.0-1");
            assert_eq!(p.deb.data_member, member);
            let bytes = std::fs::read(fixture(file)).expect("read");
            assert_eq!(p.deb.sha256, crate::digest::sha256_hex(&bytes));
            assert_eq!(p.deb.size, bytes.len() as u64);
            assert_eq!(p.conffiles, [format!("/etc/{name}.conf")]);
            let bin = format!("usr/bin/{name}");
            let e = p.entry(&bin).expect("binary");
            assert_eq!((e.mode, e.uid, e.uname.as_str()), (0o755, 0, "root"));
            // Package mtimes (2023) are clamped to SOURCE_DATE_EPOCH (2020).
            assert!(p.entries.iter().all(|e| e.mtime == 1_600_000_000), "{file}");
            let alias = p.entry(&format!("{bin}-alias")).expect("alias");
            assert!(matches!(&alias.kind, EntryKind::Hardlink { target } if *target == bin));
            let link = p.entry(&format!("{bin}-link")).expect("link");
            assert!(matches!(&link.kind, EntryKind::Symlink { target } if target == name));
            let log = p.entry(&format!("var/log/{name}.log")).expect("log");
            assert_eq!((log.mode, log.gid, log.gname.as_str()), (0o640, 4, "adm"));
            assert!(p
                .copyright
                .as_deref()
                .is_some_and(|c| c.contains("License: MIT")));
            // dpkg's own md5sums match what was read.
            let sums = p.md5sums();
            for (path, md5) in &p.file_md5 {
                assert!(sums.contains(&format!("{md5}  {path}\n")), "{file}: {path}");
            }
            assert_eq!(p.dpkg_paths[0], "/.");
            assert!(p.dpkg_paths.contains(&format!("/{bin}")));
        }
    }

    #[test]
    fn mtimes_before_the_epoch_are_kept() {
        let p = package_entries(&fixture("good-gz_1.0-1_all.deb"), &opts(u64::MAX)).expect("reads");
        let e = p.entry("usr/bin/good-gz").expect("binary");
        assert_eq!(e.mtime, 1_700_000_000);
    }

    #[test]
    fn merged_usr_keeps_the_base_links() {
        let mut o = opts(0);
        o.lower_symlinks.insert("bin".into(), "usr/bin".into());
        let p = package_entries(&fixture("good-zst_1.0-1_amd64.deb"), &o).expect("reads");
        assert!(
            p.entry("bin").is_none(),
            "the base's bin link must not become a directory"
        );
        assert!(p.entry("usr/bin/good-zst-old").is_some());
        assert!(p.dpkg_paths.iter().any(|d| d == "/bin/good-zst-old"));
        // Without the base link the package's own /bin is a directory.
        let p = package_entries(&fixture("good-zst_1.0-1_amd64.deb"), &opts(0)).expect("reads");
        assert!(p.entry("bin").is_some_and(Entry::is_dir));
        // A lower link pointing at the root is refused, naming the package.
        let mut o = opts(0);
        o.lower_symlinks.insert("usr".into(), "/".into());
        let e = package_entries(&fixture("good-zst_1.0-1_amd64.deb"), &o).expect_err("refused");
        assert!(e.to_string().contains("good-zst_1.0-1_amd64.deb"), "{e}");
        assert!(e.message.contains("points at the image root"), "{e}");
        // A package file may not replace a lower layer's link.
        let mut o = opts(0);
        o.lower_symlinks
            .insert("etc/good-zst.conf".into(), "other".into());
        let e = package_entries(&fixture("good-zst_1.0-1_amd64.deb"), &o).expect_err("refused");
        assert!(
            e.message
                .contains("would replace the symlink `/etc/good-zst.conf`"),
            "{e}"
        );
    }

    #[test]
    fn hostile_fixtures_refused() {
        let spill = tempfile::tempdir().expect("tempdir");
        let cases = [
            (
                "hostile-dotdot_1.0-1_all.deb",
                "climbs out of the image root with `..`",
            ),
            ("hostile-absolute_1.0-1_all.deb", "has an absolute path"),
            (
                "hostile-symlink_1.0-1_all.deb",
                "writes through the symlink `/etc/evil` -> /, which this package created",
            ),
            (
                "hostile-hardlink_1.0-1_all.deb",
                "is a hard link to `../etc/shadow`, outside the image root",
            ),
            (
                "hostile-truncated_1.0-1_all.deb",
                "truncated member `data.tar.xz`",
            ),
            ("hostile-lz4_1.0-1_all.deb", "unknown compression `.lz4`"),
            ("hostile-notar_1.0-1_all.deb", "bad ar magic"),
            ("hostile-version_1.0-1_all.deb", "format `3.0`"),
        ];
        for (file, want) in cases {
            let mut o = opts(0);
            o.spill_dir = Some(spill.path().to_path_buf());
            let e = package_entries(&fixture(file), &o).expect_err(file);
            let shown = e.to_string();
            assert!(shown.contains(file), "{file}: {shown}");
            assert!(shown.contains(want), "{file}: {shown}");
            assert!(shown.contains("hint:"), "{file}: {shown}");
        }
        // Nothing was written: not in the spill directory, not where the members aimed.
        assert_eq!(std::fs::read_dir(spill.path()).expect("ls").count(), 0);
        for aim in ["dotdot", "absolute", "symlink"] {
            let p = std::env::temp_dir().join(format!("strata-hostile-{aim}"));
            assert!(!p.exists(), "{}", p.display());
        }
    }

    fn member(path: &str, kind: MemberKind) -> crate::layer::tarin::TarMember {
        crate::layer::tarin::TarMember {
            raw_path: PathBuf::from(path),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            uname: "root".into(),
            gname: "root".into(),
            mtime: 0,
        }
    }

    fn file_member(path: &str) -> crate::layer::tarin::TarMember {
        member(
            path,
            MemberKind::File {
                content: Content::Bytes(Arc::from(&b"x"[..])),
                size: 1,
            },
        )
    }

    #[test]
    fn members_in_order() {
        let (opts, _) = extractor(&[("bin", "usr/bin")], &[]);
        let mut x = Extractor {
            opts: &opts,
            entries: BTreeMap::new(),
            links: HashMap::new(),
            dpkg_paths: Vec::new(),
            file_md5: Vec::new(),
            copyright: None,
            copyright_path: String::new(),
        };
        let md5 = || Some("m".to_string());
        // Re-shipping the base's own link is allowed and it stays a redirect.
        let link = MemberKind::Symlink {
            target: "usr/bin".into(),
        };
        x.add(member("./bin", link), None).expect("same link");
        x.add(file_member("./bin/sh"), md5())
            .expect("through the base link");
        assert!(x.entries.contains_key("usr/bin/sh"));
        // A different link over the base's is refused.
        let other = MemberKind::Symlink {
            target: "/opt".into(),
        };
        let e = x.add(member("./bin", other), None).expect_err("replaces");
        assert!(
            e.message.contains("would replace the symlink `/bin`"),
            "{}",
            e.message
        );
        // A file replacing a directory drops what was below it.
        x.add(member("./opt/d/", MemberKind::Dir), None)
            .expect("dir");
        x.add(file_member("./opt/d/f"), md5()).expect("file");
        x.add(file_member("./opt/d"), md5()).expect("file over dir");
        assert!(!x.entries.contains_key("opt/d/f"));
        assert!(matches!(
            x.entries.get("opt/d").map(|e| &e.kind),
            Some(EntryKind::File { .. })
        ));
        // A hard link to something that is not an earlier file is refused.
        let hl = MemberKind::Hardlink {
            raw_target: PathBuf::from("./opt/missing"),
        };
        let e = x.add(member("./opt/h", hl), None).expect_err("dangling");
        assert!(
            e.message.contains("not a file earlier in this package"),
            "{}",
            e.message
        );
        assert_eq!(x.dpkg_paths.first().map(String::as_str), Some("/bin"));
    }

    #[test]
    fn lower_directories_are_not_replaced() {
        let (mut opts, _) = extractor(&[], &[]);
        opts.lower_dirs.insert("usr/lib/x".into());
        let mut x = Extractor {
            opts: &opts,
            entries: BTreeMap::new(),
            links: HashMap::new(),
            dpkg_paths: Vec::new(),
            file_md5: Vec::new(),
            copyright: None,
            copyright_path: String::new(),
        };
        let link = MemberKind::Symlink { target: "y".into() };
        x.add(member("./usr/lib/x", link), None).expect("skipped");
        assert!(x.entries.is_empty());
        assert_eq!(x.dpkg_paths, ["/usr/lib/x"]);
        x.add(member("./usr/lib/x/", MemberKind::Dir), None)
            .expect("dir over dir");
        let e = x
            .add(file_member("./usr/lib/x"), Some("m".into()))
            .expect_err("file over dir");
        assert!(
            e.message
                .contains("would replace the directory `/usr/lib/x`"),
            "{}",
            e.message
        );
    }
}

//! Reading tar members into layer entries: shared by the recipe's `tar` step and the
//! Debian package extractor, so both read headers, types and paths the same way. Where a
//! regular file's bytes go is the caller's choice (memory or a spill file).

use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use super::entry::{Content, EntryKind};

/// A member's kind, with a hard link's target still as written in the archive.
#[derive(Debug)]
pub enum MemberKind {
    File { content: Content, size: u64 },
    Dir,
    Symlink { target: String },
    Hardlink { raw_target: PathBuf },
}

impl MemberKind {
    /// The entry kind, given the hard link's target already mapped to an image path.
    pub fn into_entry_kind(
        self,
        hardlink_target: impl FnOnce(&Path) -> Result<String, String>,
    ) -> Result<EntryKind, String> {
        Ok(match self {
            MemberKind::File { content, size } => EntryKind::File { content, size },
            MemberKind::Dir => EntryKind::Dir,
            MemberKind::Symlink { target } => EntryKind::Symlink { target },
            MemberKind::Hardlink { raw_target } => EntryKind::Hardlink {
                target: hardlink_target(&raw_target)?,
            },
        })
    }
}

/// One tar member's header fields and content.
#[derive(Debug)]
pub struct TarMember {
    pub raw_path: PathBuf,
    pub kind: MemberKind,
    /// Permission bits (`0o7777`); symlinks get 0777.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: String,
    pub gname: String,
    pub mtime: u64,
}

/// Reads one member: `Ok(None)` for extension headers that carry no file, an error for a
/// type a layer cannot hold (devices, FIFOs). `read_file` consumes a regular file's bytes
/// (the member stream and its size) and says where they are kept.
pub fn read_member<R: Read>(
    member: &mut tar::Entry<'_, R>,
    read_file: &mut dyn FnMut(&mut dyn Read, u64) -> io::Result<Content>,
) -> Result<Option<TarMember>, String> {
    let raw_path = member.path().map_err(|e| e.to_string())?.into_owned();
    let header = member.header();
    let et = header.entry_type();
    if matches!(
        et,
        tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink
    ) {
        return Ok(None);
    }
    let e = |e: io::Error| format!("member `{}`: {e}", raw_path.display());
    let mode = header.mode().map_err(e)? & 0o7777;
    let uid = header.uid().map_err(e)?;
    let gid = header.gid().map_err(e)?;
    let mtime = header.mtime().map_err(e)?;
    let name = |v: Result<Option<&str>, std::str::Utf8Error>| {
        v.ok().flatten().unwrap_or_default().to_string()
    };
    let uname = name(header.username());
    let gname = name(header.groupname());
    let link = |member: &tar::Entry<'_, R>, what: &str| -> Result<PathBuf, String> {
        member
            .link_name()
            .map_err(e)?
            .map(|l| l.into_owned())
            .ok_or_else(|| format!("{what} `{}` has no target", raw_path.display()))
    };
    let kind = match et {
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let size = member.size();
            let content = read_file(member, size).map_err(e)?;
            MemberKind::File { content, size }
        }
        tar::EntryType::Directory => MemberKind::Dir,
        tar::EntryType::Symlink => MemberKind::Symlink {
            target: link(member, "symlink")?.to_string_lossy().into_owned(),
        },
        tar::EntryType::Link => MemberKind::Hardlink {
            raw_target: link(member, "hard link")?,
        },
        other => {
            return Err(format!(
                "member `{}` has unsupported type {other:?}",
                raw_path.display()
            ))
        }
    };
    let mode = if matches!(kind, MemberKind::Symlink { .. }) {
        0o777
    } else {
        mode
    };
    Ok(Some(TarMember {
        raw_path,
        kind,
        mode,
        uid,
        gid,
        uname,
        gname,
        mtime,
    }))
}

/// Reads a regular file's bytes into memory.
pub fn read_to_bytes(r: &mut dyn Read, size: u64) -> io::Result<Content> {
    let mut bytes = Vec::with_capacity(usize::try_from(size.min(1 << 20)).unwrap_or(0));
    r.read_to_end(&mut bytes)?;
    Ok(Content::Bytes(bytes.into()))
}

/// A member path as `/`-joined normal components: `None` for the archive root (`./`), an
/// error for `..`, and for a leading `/` unless `allow_absolute` (then it is dropped).
pub fn normalize_member_path(p: &Path, allow_absolute: bool) -> Result<Option<String>, String> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::RootDir if allow_absolute => {}
            Component::RootDir => {
                return Err(format!("member `{}` has an absolute path", p.display()))
            }
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("member `{}` contains `..`", p.display()))
            }
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths() {
        let cases = [
            ("./usr/bin/x", false, Ok(Some("usr/bin/x"))),
            ("usr//bin/./x", false, Ok(Some("usr/bin/x"))),
            ("./", false, Ok(None)),
            (".", false, Ok(None)),
            ("/etc/x", true, Ok(Some("etc/x"))),
            ("/etc/x", false, Err("absolute path")),
            ("./usr/../../etc/x", false, Err("contains `..`")),
            ("../x", true, Err("contains `..`")),
        ];
        for (p, abs, want) in cases {
            let got = normalize_member_path(Path::new(p), abs);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g.as_deref(), w, "{p}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{p}: {e}"),
                (g, w) => panic!("{p}: got {g:?}, want {w:?}"),
            }
        }
    }
}

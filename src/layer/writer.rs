//! The one tar flavour strata writes: POSIX ustar headers, with a PAX extended header only
//! for a value ustar cannot hold (long path or link, large ids or size, long names).
//! Entries are written in bytewise path order; the caller's order does not matter.

use std::fs::File;
use std::io::{self, Read, Write};

use super::entry::{Content, Entry, EntryKind};

const BLOCK: usize = 512;
const COPY_BUF: usize = 64 * 1024;

/// Writes `entries` as a tar stream to `out`, ending with the two zero blocks.
/// Returns the number of bytes written.
pub fn write_tar<W: Write>(entries: &[Entry], out: &mut W) -> io::Result<u64> {
    let mut order: Vec<(String, &Entry)> = entries.iter().map(|e| (tar_name(e), e)).collect();
    order.sort_by(|a, b| sort_key(&a.0).cmp(sort_key(&b.0)));
    let mut written = 0u64;
    // One read buffer for every file: io::copy's 8 KiB stack buffer would cost a read
    // call per 8 KiB, and 64 KiB stays below malloc's mmap threshold.
    let mut buf = vec![0u8; COPY_BUF];
    for (name, e) in order {
        written += write_entry(&name, e, out, &mut buf)?;
    }
    out.write_all(&[0u8; BLOCK * 2])?;
    Ok(written + (BLOCK * 2) as u64)
}

fn sort_key(name: &str) -> &[u8] {
    name.trim_end_matches('/').as_bytes()
}

/// The member name in the tar: directories end in `/`, whiteouts get their `.wh.` names.
fn tar_name(e: &Entry) -> String {
    match &e.kind {
        EntryKind::Dir => format!("{}/", e.path),
        EntryKind::Whiteout => match e.path.rsplit_once('/') {
            Some((dir, base)) => format!("{dir}/.wh.{base}"),
            None => format!(".wh.{}", e.path),
        },
        EntryKind::OpaqueWhiteout => {
            if e.path.is_empty() {
                ".wh..wh..opq".to_string()
            } else {
                format!("{}/.wh..wh..opq", e.path)
            }
        }
        _ => e.path.clone(),
    }
}

fn write_entry<W: Write>(name: &str, e: &Entry, out: &mut W, buf: &mut [u8]) -> io::Result<u64> {
    let (typeflag, size, link): (u8, u64, &str) = match &e.kind {
        EntryKind::File { size, .. } => (b'0', *size, ""),
        EntryKind::Dir => (b'5', 0, ""),
        EntryKind::Symlink { target } => (b'2', 0, target),
        EntryKind::Hardlink { target } => (b'1', 0, target),
        EntryKind::Whiteout | EntryKind::OpaqueWhiteout => (b'0', 0, ""),
    };
    let (mode, uid, gid, uname, gname) = match e.kind {
        // Whiteouts carry no meaning beyond their name; keep them uniform.
        EntryKind::Whiteout | EntryKind::OpaqueWhiteout => (0o644, 0, 0, "", ""),
        _ => (
            e.mode & 0o7777,
            e.uid,
            e.gid,
            e.uname.as_str(),
            e.gname.as_str(),
        ),
    };

    let mut header = [0u8; BLOCK];
    let mut pax: Vec<(&str, String)> = Vec::new();
    match split_ustar_name(name) {
        Some((prefix, base)) => {
            put_str(&mut header[0..100], base);
            put_str(&mut header[345..500], prefix);
        }
        None => {
            put_str(&mut header[0..100], truncate(name, 100));
            pax.push(("path", name.to_string()));
        }
    }
    if link.len() > 100 {
        pax.push(("linkpath", link.to_string()));
        put_str(&mut header[157..257], truncate(link, 100));
    } else {
        put_str(&mut header[157..257], link);
    }
    put_octal(&mut header[100..108], mode as u64);
    for (field, value, key) in [(108..116, uid, "uid"), (116..124, gid, "gid")] {
        if value > 0o7777777 {
            pax.push((key, value.to_string()));
            put_octal(&mut header[field], 0);
        } else {
            put_octal(&mut header[field], value);
        }
    }
    if size > 0o77777777777 {
        pax.push(("size", size.to_string()));
        put_octal(&mut header[124..136], 0);
    } else {
        put_octal(&mut header[124..136], size);
    }
    put_octal(&mut header[136..148], e.mtime.min(0o77777777777));
    header[156] = typeflag;
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    for (range, value, key) in [(265..297, uname, "uname"), (297..329, gname, "gname")] {
        if value.len() > 31 {
            pax.push((key, value.to_string()));
        } else {
            put_str(&mut header[range], value);
        }
    }
    put_octal(&mut header[329..337], 0);
    put_octal(&mut header[337..345], 0);

    let mut written = 0u64;
    if !pax.is_empty() {
        written += write_pax(&pax, out)?;
    }
    finish_checksum(&mut header);
    out.write_all(&header)?;
    written += BLOCK as u64;

    if let EntryKind::File { content, size } = &e.kind {
        let n = match content {
            Content::Bytes(b) => {
                out.write_all(b)?;
                b.len() as u64
            }
            Content::Path { path, .. } => {
                let mut f = File::open(path).map_err(|err| annotate(err, path))?;
                copy_at_most(&mut f, *size, out, buf)?
            }
        };
        if n != *size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: expected {size} bytes, read {n} (file changed during the build?)",
                    e.path
                ),
            ));
        }
        written += n + pad(out, n)?;
    }
    Ok(written)
}

/// Copies up to `limit` bytes of `r` to `out` through `buf`; returns how many it copied.
fn copy_at_most<W: Write>(
    r: &mut File,
    limit: u64,
    out: &mut W,
    buf: &mut [u8],
) -> io::Result<u64> {
    let mut done = 0u64;
    while done < limit {
        let want = buf.len().min((limit - done) as usize);
        let n = match r.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        done += n as u64;
    }
    Ok(done)
}

fn annotate(err: io::Error, path: &std::path::Path) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

fn write_pax<W: Write>(records: &[(&str, String)], out: &mut W) -> io::Result<u64> {
    let mut body = Vec::new();
    for (key, value) in records {
        // Each record is "<len> <key>=<value>\n" where <len> counts itself.
        let rest = key.len() + value.len() + 3;
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        body.extend_from_slice(format!("{len} {key}={value}\n").as_bytes());
    }
    let mut header = [0u8; BLOCK];
    put_str(&mut header[0..100], "././@PaxHeader");
    put_octal(&mut header[100..108], 0o644);
    put_octal(&mut header[108..116], 0);
    put_octal(&mut header[116..124], 0);
    put_octal(&mut header[124..136], body.len() as u64);
    put_octal(&mut header[136..148], 0);
    header[156] = b'x';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    finish_checksum(&mut header);
    out.write_all(&header)?;
    out.write_all(&body)?;
    let n = body.len() as u64;
    Ok(BLOCK as u64 + n + pad(out, n)?)
}

fn pad<W: Write>(out: &mut W, n: u64) -> io::Result<u64> {
    let rem = (n % BLOCK as u64) as usize;
    if rem == 0 {
        return Ok(0);
    }
    out.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
    Ok((BLOCK - rem) as u64)
}

/// Splits into ustar (prefix, name) if the name fits, else None.
fn split_ustar_name(name: &str) -> Option<(&str, &str)> {
    if name.len() <= 100 {
        return Some(("", name));
    }
    if name.len() > 256 || !name.is_ascii() {
        return None;
    }
    // The prefix must end at a '/', be at most 155 bytes, and leave at most 100 bytes.
    let bytes = name.as_bytes();
    let trimmed = name.trim_end_matches('/').len();
    for i in (0..trimmed.min(156)).rev() {
        if bytes[i] == b'/' {
            let (prefix, rest) = (&name[..i], &name[i + 1..]);
            if rest.len() <= 100 && !rest.is_empty() && prefix.len() <= 155 {
                return Some((prefix, rest));
            }
            if rest.len() > 100 {
                return None;
            }
        }
    }
    None
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn put_str(field: &mut [u8], s: &str) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
}

fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    put_str(field, &s);
    field[digits] = 0;
}

fn finish_checksum(header: &mut [u8; BLOCK]) {
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn file(path: &str, data: &[u8]) -> Entry {
        Entry::new(
            path,
            EntryKind::File {
                content: Content::Bytes(Arc::from(data)),
                size: data.len() as u64,
            },
            0o644,
        )
    }

    fn read_back(bytes: &[u8]) -> Vec<(String, u8, Vec<u8>, String)> {
        let mut ar = tar::Archive::new(bytes);
        let mut out = Vec::new();
        for e in ar.entries().expect("entries") {
            let mut e = e.expect("entry");
            let path = e.path().expect("path").to_string_lossy().into_owned();
            let kind = e.header().entry_type().as_byte();
            let link = e
                .link_name()
                .expect("link")
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("read");
            out.push((path, kind, data, link));
        }
        out
    }

    #[test]
    fn sorted_whatever_the_input_order() {
        let a = vec![
            file("b/x", b"1"),
            Entry::new("b", EntryKind::Dir, 0o755),
            file("a", b"22"),
        ];
        let mut b = a.clone();
        b.reverse();
        let (mut ta, mut tb) = (Vec::new(), Vec::new());
        write_tar(&a, &mut ta).expect("write");
        write_tar(&b, &mut tb).expect("write");
        assert_eq!(ta, tb);
        let names: Vec<_> = read_back(&ta).into_iter().map(|r| r.0).collect();
        assert_eq!(names, ["a", "b/", "b/x"]);
    }

    #[test]
    fn long_names_and_links_round_trip() {
        let deep = format!("{}/{}", "d".repeat(150), "f".repeat(90));
        let very = "x".repeat(300);
        let link = format!("/{}", "t".repeat(200));
        let entries = vec![
            file(&deep, b"deep"),
            file(&very, b"very"),
            Entry::new(
                "l",
                EntryKind::Symlink {
                    target: link.clone(),
                },
                0o777,
            ),
        ];
        let mut t = Vec::new();
        write_tar(&entries, &mut t).expect("write");
        let got = read_back(&t);
        assert_eq!(got[0].0, deep);
        assert_eq!(got[0].2, b"deep");
        assert_eq!(got[1].0, "l");
        assert_eq!(got[1].3, link);
        assert_eq!(got[2].0, very);
        assert_eq!(got[2].2, b"very");
    }

    #[test]
    fn whiteouts_use_oci_names() {
        let entries = vec![
            Entry::new("etc/gone", EntryKind::Whiteout, 0),
            Entry::new("var/cache", EntryKind::OpaqueWhiteout, 0),
            Entry::new("top", EntryKind::Whiteout, 0),
        ];
        let mut t = Vec::new();
        write_tar(&entries, &mut t).expect("write");
        let names: Vec<_> = read_back(&t).into_iter().map(|r| r.0).collect();
        assert_eq!(names, [".wh.top", "etc/.wh.gone", "var/cache/.wh..wh..opq"]);
    }

    #[test]
    fn header_fields_are_exact() {
        let mut e = file("f", b"hello");
        e.mode = 0o4755;
        e.uid = 1000;
        e.gid = 100;
        e.mtime = 946_684_800;
        e.uname = "app".into();
        let mut t = Vec::new();
        write_tar(&[e], &mut t).expect("write");
        let mut ar = tar::Archive::new(&t[..]);
        let entry = ar
            .entries()
            .expect("entries")
            .next()
            .expect("one")
            .expect("ok");
        let h = entry.header();
        assert_eq!(h.mode().expect("mode"), 0o4755);
        assert_eq!(h.uid().expect("uid"), 1000);
        assert_eq!(h.gid().expect("gid"), 100);
        assert_eq!(h.mtime().expect("mtime"), 946_684_800);
        assert_eq!(h.username().expect("u"), Some("app"));
        assert_eq!(h.groupname().expect("g"), Some(""));
        assert_eq!(t.len() % 512, 0);
    }

    #[test]
    fn short_file_is_an_error() {
        let mut e = file("f", b"abc");
        e.kind = EntryKind::File {
            content: Content::Bytes(Arc::from(&b"abc"[..])),
            size: 10,
        };
        let err = write_tar(&[e], &mut Vec::new()).expect_err("must fail");
        assert!(err.to_string().contains("expected 10 bytes"));
    }
}

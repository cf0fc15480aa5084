//! Reading Debian binary packages (`.deb`) without dpkg: the `ar` container, the control
//! archive (small, kept whole as bytes so `control`, `md5sums`, `conffiles` and the
//! maintainer scripts can be inspected), and the data archive, streamed once through a
//! visitor so a package's files never sit in memory all at once.
//!
//! The parsers here are pure (`&[u8]`/`&str` in); [`read_deb`] is the only I/O. Every error
//! names the package file and what is wrong with it.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use crate::recipe::validate::Problem;

/// The first eight bytes of every `ar` archive.
pub const AR_MAGIC: &[u8; 8] = b"!<arch>\n";
const AR_HEADER_LEN: usize = 60;
/// The control archive is read into memory; real ones are a few KiB to a few MiB.
const MAX_CONTROL_BYTES: u64 = 64 << 20;

/// A package that cannot be read or extracted, named by its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebError {
    pub package: PathBuf,
    pub message: String,
    pub hint: String,
}

impl DebError {
    pub fn new(package: &Path, p: Problem) -> DebError {
        DebError {
            package: package.to_path_buf(),
            message: p.message,
            hint: p.hint,
        }
    }
}

impl fmt::Display for DebError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "package {}: {}", self.package.display(), self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for DebError {}

const HINT_CORRUPT: &str =
    "the file is not a valid Debian package; fetch it again (its sha256 should match the lock)";

/// One `ar` member header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArHeader {
    pub name: String,
    pub size: u64,
}

/// Parses one 60-byte `ar` member header (common format; GNU's trailing `/` on names is
/// dropped).
pub fn parse_ar_header(h: &[u8]) -> Result<ArHeader, String> {
    if h.len() != AR_HEADER_LEN {
        return Err(format!(
            "an ar member header has {} bytes instead of {AR_HEADER_LEN}",
            h.len()
        ));
    }
    if &h[58..60] != b"`\n" {
        return Err("an ar member header does not end with the ar terminator \"`\\n\"".into());
    }
    let name = std::str::from_utf8(&h[0..16])
        .map_err(|_| "an ar member name is not ASCII".to_string())?
        .trim_end_matches(' ');
    let name = name.strip_suffix('/').unwrap_or(name).to_string();
    if name.is_empty() {
        return Err("an ar member has an empty name".into());
    }
    let size_text = std::str::from_utf8(&h[48..58])
        .map_err(|_| format!("ar member `{name}` has a size that is not ASCII"))?
        .trim_end_matches(' ');
    let size = size_text
        .parse::<u64>()
        .map_err(|_| format!("ar member `{name}` has a bad size field `{size_text}`"))?;
    Ok(ArHeader { name, size })
}

/// How a `control.tar*` or `data.tar*` member is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebCompression {
    None,
    Gzip,
    Xz,
    Zstd,
    Bzip2,
}

/// The compression of member `name` expected to be `stem` (`control.tar` or `data.tar`)
/// plus an extension; the control archive has no bzip2 form (dpkg never wrote one).
pub fn member_compression(stem: &str, name: &str) -> Result<DebCompression, String> {
    let ext = name
        .strip_prefix(stem)
        .ok_or_else(|| format!("expected a `{stem}*` member, found `{name}`"))?;
    let c = match ext {
        "" => DebCompression::None,
        ".gz" => DebCompression::Gzip,
        ".xz" => DebCompression::Xz,
        ".zst" => DebCompression::Zstd,
        ".bz2" if stem == "data.tar" => DebCompression::Bzip2,
        _ => {
            return Err(format!(
                "member `{name}` has an unknown compression `{ext}` (strata reads {stem}, {stem}.gz, {stem}.xz, {stem}.zst{})",
                if stem == "data.tar" { ", data.tar.bz2" } else { "" }
            ))
        }
    };
    Ok(c)
}

fn decoder<'a, R: Read + 'a>(c: DebCompression, r: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match c {
        DebCompression::None => Box::new(r),
        DebCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        DebCompression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(r)),
        DebCompression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        DebCompression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(r)),
    })
}

/// One field of a control paragraph, in file order. Multi-line values keep their
/// continuation lines (without the leading space) joined by `\n`.
pub type ControlFields = Vec<(String, String)>;

/// Parses one deb822 paragraph (a package's `control` file). Pure; for the fields the
/// image fix-ups and the SBOM need.
pub fn parse_control(text: &str) -> Result<ControlFields, String> {
    let mut fields: ControlFields = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() {
            if fields.is_empty() {
                continue;
            }
            // Anything after the first paragraph must be blank too.
            if text.lines().skip(i).any(|l| !l.trim().is_empty()) {
                return Err(format!(
                    "line {lineno}: a control file holds one paragraph, but another follows"
                ));
            }
            break;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = fields.last_mut() else {
                return Err(format!(
                    "line {lineno}: a continuation line comes before any field"
                ));
            };
            value.push('\n');
            value.push_str(&line[1..]);
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!(
                "line {lineno}: `{line}` is not a `Field: value` line"
            ));
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("line {lineno}: bad field name `{name}`"));
        }
        if fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(format!("line {lineno}: field `{name}` appears twice"));
        }
        fields.push((name.to_string(), value.trim().to_string()));
    }
    if fields.is_empty() {
        return Err("the control file is empty".into());
    }
    Ok(fields)
}

/// The value of a field (names are case-insensitive in deb822).
pub fn field<'a>(fields: &'a ControlFields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The files of a package's control archive, by name (`control`, `md5sums`, `conffiles`,
/// `postinst`, `triggers`, ...).
#[derive(Debug, Clone, Default)]
pub struct ControlArchive {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl ControlArchive {
    /// A control file as text (lossy for the rare non-UTF-8 byte).
    pub fn text(&self, name: &str) -> Option<String> {
        self.files
            .get(name)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// What reading a package yields besides the data stream.
#[derive(Debug, Clone)]
pub struct DebInfo {
    pub path: PathBuf,
    /// Hex sha256 and size of the whole `.deb` file.
    pub sha256: String,
    pub size: u64,
    pub control: ControlArchive,
    /// The control paragraph, parsed.
    pub fields: ControlFields,
    /// The data member's name (`data.tar.xz`, ...).
    pub data_member: String,
}

impl DebInfo {
    pub fn field(&self, name: &str) -> Option<&str> {
        field(&self.fields, name)
    }
}

/// Hashes and counts what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Exactly `remaining` bytes of the underlying reader: an early end is an error (and is
/// remembered, so the caller can say "truncated" rather than repeat a decoder's message).
struct MemberReader<'a, R> {
    inner: &'a mut R,
    remaining: u64,
    truncated: Rc<Cell<bool>>,
}

impl<R: Read> Read for MemberReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.truncated.set(true);
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ends inside this member",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Reads into `buf` until it is full or the input ends; returns the byte count.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The visitor of a package's data archive: gets the parsed control part and the
/// decompressed `data.tar` stream; its problems become the package's errors.
pub type DataVisitor<'v> =
    dyn FnMut(&ControlArchive, &ControlFields, &mut dyn Read) -> Result<(), Problem> + 'v;

/// Reads `path` as a `.deb`: checks the container, reads the control archive, then hands
/// the decompressed data archive to `visit` as a stream. The whole file is read exactly
/// once (its sha256 comes out of the same pass).
pub fn read_deb(path: &Path, visit: &mut DataVisitor<'_>) -> Result<DebInfo, DebError> {
    let err = |message: String, hint: &str| DebError::new(path, Problem::new(message, hint));
    let file = File::open(path).map_err(|e| {
        err(
            format!("cannot open: {e}"),
            "check the path; with --offline the package must already be in the cache",
        )
    })?;
    let mut r = BufReader::new(HashingReader {
        inner: file,
        hasher: Sha256::new(),
        count: 0,
    });
    let io_err = |e: io::Error| err(format!("cannot read: {e}"), "");

    let mut magic = [0u8; 8];
    let n = read_full(&mut r, &mut magic).map_err(io_err)?;
    if &magic[..n] != AR_MAGIC {
        return Err(err(
            format!(
                "bad ar magic {:?}: a .deb starts with \"!<arch>\\n\"",
                String::from_utf8_lossy(&magic[..n])
            ),
            HINT_CORRUPT,
        ));
    }
    let mut offset = 8u64;
    let mut control: Option<(ControlArchive, ControlFields)> = None;
    let mut data_member: Option<String> = None;
    let mut saw_version = false;
    loop {
        let mut h = [0u8; AR_HEADER_LEN];
        let n = read_full(&mut r, &mut h).map_err(io_err)?;
        if n == 0 {
            break;
        }
        if n < AR_HEADER_LEN {
            return Err(err(
                format!("truncated: the file ends inside the ar member header at offset {offset}"),
                HINT_CORRUPT,
            ));
        }
        let header = parse_ar_header(&h)
            .map_err(|m| err(format!("at offset {offset}: {m}"), HINT_CORRUPT))?;
        offset += AR_HEADER_LEN as u64;
        let name = header.name.clone();
        let truncated = Rc::new(Cell::new(false));
        let mut member = MemberReader {
            inner: &mut r,
            remaining: header.size,
            truncated: truncated.clone(),
        };
        let truncated_err = |what: &str| {
            err(
                format!(
                    "truncated member `{name}`: it should have {} bytes (from offset {offset}) but the file ends first{what}",
                    header.size
                ),
                HINT_CORRUPT,
            )
        };
        if !saw_version {
            if name != "debian-binary" {
                return Err(err(
                    format!("the first ar member is `{name}`, not `debian-binary`"),
                    HINT_CORRUPT,
                ));
            }
            let mut text = Vec::new();
            member
                .by_ref()
                .take(64)
                .read_to_end(&mut text)
                .map_err(|_| truncated_err(""))?;
            let version = String::from_utf8_lossy(&text);
            if !version.starts_with("2.") {
                return Err(err(
                    format!(
                        "debian-binary says format `{}`; strata reads format 2.0 packages",
                        version.trim()
                    ),
                    HINT_CORRUPT,
                ));
            }
            saw_version = true;
        } else if name.starts_with('_') {
            // Signatures and other dpkg-ignored members.
        } else if control.is_none() {
            let c = member_compression("control.tar", &name).map_err(|m| err(m, HINT_CORRUPT))?;
            let result = (|| -> Result<(ControlArchive, ControlFields), String> {
                let d = decoder(c, &mut member).map_err(|e| e.to_string())?;
                let mut archive = tar::Archive::new(d.take(MAX_CONTROL_BYTES));
                let mut files = BTreeMap::new();
                for entry in archive.entries().map_err(|e| e.to_string())? {
                    let mut entry = entry.map_err(|e| e.to_string())?;
                    if entry.header().entry_type() != tar::EntryType::Regular {
                        continue;
                    }
                    let p = entry.path().map_err(|e| e.to_string())?;
                    let name = p.to_string_lossy();
                    let name = name.trim_start_matches("./").to_string();
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
                    files.insert(name, bytes);
                }
                let text = files.get("control").ok_or("it has no `control` file")?;
                let text = std::str::from_utf8(text)
                    .map_err(|_| "its `control` file is not UTF-8".to_string())?;
                let fields = parse_control(text).map_err(|m| format!("its `control` file, {m}"))?;
                Ok((ControlArchive { files }, fields))
            })();
            match result {
                Ok(c) => control = Some(c),
                Err(_) if truncated.get() => return Err(truncated_err("")),
                Err(m) => {
                    return Err(err(format!("member `{name}`: {m}"), HINT_CORRUPT));
                }
            }
        } else if data_member.is_none() {
            let c = member_compression("data.tar", &name).map_err(|m| err(m, HINT_CORRUPT))?;
            let (archive, fields) = control.as_ref().ok_or_else(|| {
                err(
                    "the data member comes before the control member".into(),
                    HINT_CORRUPT,
                )
            })?;
            let mut d = decoder(c, &mut member)
                .map_err(|e| err(format!("member `{name}`: {e}"), HINT_CORRUPT))?;
            let visited = visit(archive, fields, &mut d);
            if let Err(p) = visited {
                if truncated.get() {
                    return Err(truncated_err(&format!(" ({})", p.message)));
                }
                return Err(DebError::new(path, p));
            }
            // Read the rest: the decoder's checksum and the member's length are checked
            // even when the tar ended early.
            if let Err(e) = io::copy(&mut d, &mut io::sink()) {
                if truncated.get() {
                    return Err(truncated_err(""));
                }
                return Err(err(format!("member `{name}`: {e}"), HINT_CORRUPT));
            }
            drop(d);
            data_member = Some(name.clone());
        } else {
            return Err(err(
                format!("unexpected ar member `{name}` after the data member"),
                HINT_CORRUPT,
            ));
        }
        // The unread rest of the member, then the padding byte of odd-sized members.
        io::copy(&mut member, &mut io::sink()).map_err(|_| truncated_err(""))?;
        offset += header.size;
        if header.size % 2 == 1 {
            let mut pad = [0u8; 1];
            read_full(&mut r, &mut pad).map_err(io_err)?;
            offset += 1;
        }
    }
    let (control, fields) = control.ok_or_else(|| {
        err(
            if saw_version {
                "truncated or incomplete: no control.tar member".into()
            } else {
                "truncated or incomplete: no debian-binary member".into()
            },
            HINT_CORRUPT,
        )
    })?;
    let data_member = data_member.ok_or_else(|| {
        err(
            "truncated or incomplete: no data.tar member".into(),
            HINT_CORRUPT,
        )
    })?;
    let hashing = r.into_inner();
    Ok(DebInfo {
        path: path.to_path_buf(),
        sha256: hex::encode(hashing.hasher.finalize()),
        size: hashing.count,
        control,
        fields,
        data_member,
    })
}

/// Reads only the control part (the data archive is still read through, to verify it).
pub fn read_deb_control(path: &Path) -> Result<DebInfo, DebError> {
    read_deb(path, &mut |_, _, _| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, size: &str) -> Vec<u8> {
        let mut h = format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}",
            "0", "0", "0", "100644"
        )
        .into_bytes();
        h.extend_from_slice(b"`\n");
        h
    }

    #[test]
    fn ar_headers() {
        let ok = parse_ar_header(&header("debian-binary", "4")).expect("parses");
        assert_eq!(
            ok,
            ArHeader {
                name: "debian-binary".into(),
                size: 4
            }
        );
        let gnu = parse_ar_header(&header("data.tar.xz/", "1234")).expect("parses");
        assert_eq!(gnu.name, "data.tar.xz");
        let cases: [(Vec<u8>, &str); 4] = [
            (header("x", "12a"), "bad size field `12a`"),
            (header("", "1"), "empty name"),
            (b"short".to_vec(), "has 5 bytes"),
            (
                {
                    let mut h = header("x", "1");
                    h[59] = b'x';
                    h
                },
                "terminator",
            ),
        ];
        for (h, want) in cases {
            let e = parse_ar_header(&h).expect_err(want);
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn compressions() {
        let cases = [
            ("data.tar", "data.tar.xz", Ok(DebCompression::Xz)),
            ("data.tar", "data.tar.zst", Ok(DebCompression::Zstd)),
            ("data.tar", "data.tar.gz", Ok(DebCompression::Gzip)),
            ("data.tar", "data.tar.bz2", Ok(DebCompression::Bzip2)),
            ("data.tar", "data.tar", Ok(DebCompression::None)),
            ("control.tar", "control.tar", Ok(DebCompression::None)),
            ("control.tar", "control.tar.zst", Ok(DebCompression::Zstd)),
            (
                "control.tar",
                "control.tar.bz2",
                Err("unknown compression `.bz2`"),
            ),
            (
                "data.tar",
                "data.tar.lz4",
                Err("unknown compression `.lz4`"),
            ),
            (
                "data.tar",
                "control.tar.gz",
                Err("expected a `data.tar*` member"),
            ),
        ];
        for (stem, name, want) in cases {
            match (member_compression(stem, name), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{name}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{name}: {e}"),
                (got, w) => panic!("{name}: got {got:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn control_paragraphs() {
        let text =
            "Package: hello\nVersion: 2.10-3\nDescription: greets\n the world\n .\n twice\n\n";
        let f = parse_control(text).expect("parses");
        assert_eq!(field(&f, "package"), Some("hello"));
        assert_eq!(
            field(&f, "Description"),
            Some("greets\nthe world\n.\ntwice")
        );
        assert_eq!(f.len(), 3);
        let bad = [
            ("", "empty"),
            (" cont\n", "continuation line comes before"),
            ("Package hello\n", "not a `Field: value` line"),
            ("Package: a\nPackage: b\n", "appears twice"),
            ("Package: a\n\nPackage: b\n", "another follows"),
            ("Bad Name: x\n", "bad field name"),
        ];
        for (text, want) in bad {
            let e = parse_control(text).expect_err(text);
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn member_reader_reports_truncation() {
        let mut src: &[u8] = b"abc";
        let flag = Rc::new(Cell::new(false));
        let mut m = MemberReader {
            inner: &mut src,
            remaining: 5,
            truncated: flag.clone(),
        };
        let mut out = Vec::new();
        let e = m.read_to_end(&mut out).expect_err("truncated");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(flag.get());
        assert_eq!(out, b"abc");
    }
}

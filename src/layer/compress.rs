//! Layer compression with one pinned backend and level per algorithm. The compressor id is
//! recorded in each layer descriptor, so changing backend or level is a visible, versioned
//! event rather than a silent digest change.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::entry::Entry;
use super::pargz::ParGzWriter;
use super::writer::write_tar;
use crate::digest::HashingWriter;

/// zlib-rs level 4: layers about the size other builders' default gzip writes (level 6 of
/// Go's compress/gzip), for about 30% less CPU than zlib-rs level 6.
pub const GZIP_LEVEL: u32 = 4;
pub const ZSTD_LEVEL: i32 = 3;
/// Version of the pinned gzip backend (kept equal to the `=` pin in Cargo.toml; a test checks).
pub const ZLIB_RS_VERSION: &str = "0.6.8";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// Backend, version-relevant settings and level, e.g. `gzip/zlib-rs-0.6.8/4/blocks-1024k`.
    pub fn compressor_id(self) -> String {
        match self {
            Compression::Gzip => format!(
                "gzip/zlib-rs-{ZLIB_RS_VERSION}/{GZIP_LEVEL}/blocks-{}k",
                super::pargz::BLOCK / 1024
            ),
            Compression::Zstd => format!(
                "zstd/libzstd-{}/{ZSTD_LEVEL}",
                zstd::zstd_safe::version_string()
            ),
        }
    }
}

/// Digests and sizes of one written layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerDigests {
    /// `sha256:` digest of the compressed blob.
    pub digest: String,
    /// `sha256:` digest of the uncompressed tar.
    pub diff_id: String,
    pub size: u64,
    pub uncompressed_size: u64,
}

/// Tars, compresses and digests `entries` into `out` in one streaming pass.
pub fn write_layer<W: Write>(
    entries: &[Entry],
    compression: Compression,
    out: W,
) -> io::Result<(W, LayerDigests)> {
    let blob = HashingWriter::new(out);
    let (blob, diff_id, uncompressed_size) = match compression {
        Compression::Gzip => {
            let enc = ParGzWriter::new(blob, GZIP_LEVEL)?;
            let mut tar = HashingWriter::new(io::BufWriter::with_capacity(1 << 16, enc));
            write_tar(entries, &mut tar)?;
            let (buf, diff_id, n) = tar.finish();
            let enc = buf.into_inner().map_err(|e| e.into_error())?;
            (enc.finish()?, diff_id, n)
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::Encoder::new(blob, ZSTD_LEVEL)?;
            enc.include_checksum(true)?;
            let mut tar = HashingWriter::new(io::BufWriter::with_capacity(1 << 16, enc));
            write_tar(entries, &mut tar)?;
            let (buf, diff_id, n) = tar.finish();
            let enc = buf.into_inner().map_err(|e| e.into_error())?;
            (enc.finish()?, diff_id, n)
        }
    };
    let (out, digest, size) = blob.finish();
    Ok((
        out,
        LayerDigests {
            digest: format!("sha256:{digest}"),
            diff_id: format!("sha256:{diff_id}"),
            size,
            uncompressed_size,
        },
    ))
}

/// A reader that undoes whichever compression `media_type` names.
pub fn decompressor<'a, R: io::Read + 'a>(
    media_type: &str,
    r: R,
) -> io::Result<Box<dyn io::Read + 'a>> {
    if media_type.ends_with("+gzip")
        || media_type.ends_with(".tar.gzip")
        || media_type.contains("rootfs.diff.tar.gzip")
    {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(r)))
    } else if media_type.ends_with("+zstd") {
        Ok(Box::new(zstd::stream::read::Decoder::new(r)?))
    } else if media_type.ends_with(".tar") || media_type.ends_with("layer.v1.tar") {
        Ok(Box::new(r))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unsupported layer media type {media_type}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{Content, EntryKind};
    use std::io::Read;
    use std::sync::Arc;

    fn entries() -> Vec<Entry> {
        vec![Entry::new(
            "hello",
            EntryKind::File {
                content: Content::Bytes(Arc::from(&b"hello world\n"[..])),
                size: 12,
            },
            0o644,
        )]
    }

    #[test]
    fn gzip_header_is_fixed_and_round_trips() {
        let (blob, d) = write_layer(&entries(), Compression::Gzip, Vec::new()).expect("write");
        // magic, CM=deflate, FLG=0 (no name), MTIME=0, XFL, OS=255
        assert_eq!(&blob[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        assert_eq!(blob[9], 255);
        assert_eq!(d.size, blob.len() as u64);
        assert_eq!(d.digest, crate::digest::sha256_digest(&blob));
        let mut tar = Vec::new();
        decompressor(Compression::Gzip.media_type(), &blob[..])
            .expect("dec")
            .read_to_end(&mut tar)
            .expect("read");
        assert_eq!(d.diff_id, crate::digest::sha256_digest(&tar));
        assert_eq!(d.uncompressed_size, tar.len() as u64);
    }

    #[test]
    fn the_compressor_id_names_the_pinned_backend() {
        let manifest = include_str!("../../Cargo.toml");
        let pin = format!("zlib-rs = {{ version = \"={ZLIB_RS_VERSION}\"");
        assert!(manifest.contains(&pin), "Cargo.toml must pin {pin}");
        let lock = include_str!("../../Cargo.lock");
        let locked = format!("name = \"zlib-rs\"\nversion = \"{ZLIB_RS_VERSION}\"");
        assert!(lock.contains(&locked), "Cargo.lock must hold {locked}");
        assert_eq!(
            Compression::Gzip.compressor_id(),
            format!("gzip/zlib-rs-{ZLIB_RS_VERSION}/4/blocks-1024k")
        );
    }

    #[test]
    fn zstd_round_trips_and_is_stable() {
        let (a, da) = write_layer(&entries(), Compression::Zstd, Vec::new()).expect("write");
        let (b, db) = write_layer(&entries(), Compression::Zstd, Vec::new()).expect("write");
        assert_eq!(a, b);
        assert_eq!(da, db);
        let mut tar = Vec::new();
        decompressor(Compression::Zstd.media_type(), &a[..])
            .expect("dec")
            .read_to_end(&mut tar)
            .expect("read");
        assert_eq!(da.diff_id, crate::digest::sha256_digest(&tar));
    }
}

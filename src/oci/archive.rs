//! Single-file outputs, written with the same deterministic tar writer as layers and
//! published by rename so a failed write leaves no half-written file:
//! - OCI archive: the image layout as a tar.
//! - Docker archive: `manifest.json` + config + uncompressed `layer.tar`s, the format
//!   `docker save` writes and every `docker load` (20.10 included) reads.

use std::fs;
use std::io::{self, BufWriter};
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::{canonical_json, ANNOTATION_REF_NAME, MEDIA_INDEX};
use crate::layer::{decompressor, write_tar, Content, Entry, EntryKind};
use crate::store::{digest_hex, Store};

/// The blobs of one image, all present in a store.
#[derive(Debug, Clone)]
pub struct ImageRef {
    pub manifest_digest: String,
    pub manifest_size: u64,
    pub config_digest: String,
    pub layers: Vec<LayerRef>,
    /// `os/arch[/variant]`
    pub platform: String,
}

#[derive(Debug, Clone)]
pub struct LayerRef {
    pub digest: String,
    pub diff_id: String,
    pub media_type: String,
    pub size: u64,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn bytes_entry(path: &str, bytes: Vec<u8>, mtime: u64) -> Entry {
    let mut e = Entry::new(
        path,
        EntryKind::File {
            size: bytes.len() as u64,
            content: Content::Bytes(Arc::from(bytes)),
        },
        0o644,
    );
    e.mtime = mtime;
    e
}

fn dir_entry(path: &str, mtime: u64) -> Entry {
    let mut e = Entry::new(path, EntryKind::Dir, 0o755);
    e.mtime = mtime;
    e
}

fn blob_entry(store: &Store, digest: &str, name: &str, mtime: u64) -> io::Result<Entry> {
    let path = store.blob_path(digest).map_err(other)?;
    let size = fs::metadata(&path)?.len();
    let mut e = Entry::new(
        name,
        EntryKind::File {
            content: Content::Path {
                path,
                sha256: digest_hex(digest).map_err(other)?.to_string(),
            },
            size,
        },
        0o644,
    );
    e.mtime = mtime;
    Ok(e)
}

/// Writes `entries` as a tar to a temp file beside `dest`, then renames it over `dest`.
fn publish_tar(entries: &[Entry], dest: &Path) -> io::Result<()> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(".strata-tmp-")
        .tempfile_in(dir)?;
    let mut w = BufWriter::new(tmp);
    write_tar(entries, &mut w)?;
    let tmp = w.into_inner().map_err(|e| e.into_error())?;
    tmp.as_file().sync_all()?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(())
}

/// An OCI image layout, as one tar, with `index.json` tagging `root` (a manifest or an
/// index) `tag` and listing `artifacts` (their `index.json` entries, untagged); `digests`
/// are every blob the layout holds.
pub fn write_oci_archive(
    store: &Store,
    root: &super::artifact::ManifestDesc,
    tag: &str,
    artifacts: &[serde_json::Value],
    digests: &[String],
    mtime: u64,
    dest: &Path,
) -> io::Result<()> {
    let mut entries = vec![
        dir_entry("blobs", mtime),
        dir_entry("blobs/sha256", mtime),
        bytes_entry(
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            mtime,
        ),
    ];
    let mut manifests = vec![json!({
        "mediaType": root.media_type,
        "digest": root.digest,
        "size": root.size,
        "annotations": { ANNOTATION_REF_NAME: tag },
    })];
    manifests.extend(artifacts.iter().cloned());
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": manifests,
    });
    entries.push(bytes_entry(
        "index.json",
        canonical_json(&index).map_err(other)?,
        mtime,
    ));
    let mut digests = digests.to_vec();
    digests.sort();
    digests.dedup();
    for d in &digests {
        store.verify_blob(d).map_err(other)?;
        let name = format!("blobs/sha256/{}", digest_hex(d).map_err(other)?);
        entries.push(blob_entry(store, d, &name, mtime)?);
    }
    publish_tar(&entries, dest)
}

/// A `docker load` archive tagged `repo_tag` (`name:tag`). Layers are stored uncompressed,
/// as `docker save` does, so any engine version can load them whatever their compression.
pub fn write_docker_archive(
    store: &Store,
    image: &ImageRef,
    repo_tag: &str,
    mtime: u64,
    dest: &Path,
) -> io::Result<()> {
    let tmpdir = tempfile::Builder::new()
        .prefix(".strata-tmp-")
        .tempdir_in(store.root())?;
    let mut entries = Vec::new();
    let config_hex = digest_hex(&image.config_digest).map_err(other)?.to_string();
    let config_name = format!("{config_hex}.json");
    entries.push(bytes_entry(
        &config_name,
        store.read_blob(&image.config_digest).map_err(other)?,
        mtime,
    ));
    let mut layer_names = Vec::new();
    for l in &image.layers {
        let diff_hex = digest_hex(&l.diff_id).map_err(other)?.to_string();
        let tar_path = tmpdir.path().join(&diff_hex);
        // Decompress, checking both the blob digest and the diff_id on the way.
        let blob = store.open_blob(&l.digest).map_err(other)?;
        let mut dec =
            crate::store::VerifyingReader::new(decompressor(&l.media_type, blob)?, &l.diff_id);
        let mut out = BufWriter::new(fs::File::create(&tar_path)?);
        io::copy(&mut dec, &mut out)?;
        drop(out);
        let size = fs::metadata(&tar_path)?.len();
        entries.push(dir_entry(&diff_hex, mtime));
        entries.push(bytes_entry(
            &format!("{diff_hex}/VERSION"),
            b"1.0".to_vec(),
            mtime,
        ));
        let mut e = Entry::new(
            format!("{diff_hex}/layer.tar"),
            EntryKind::File {
                content: Content::Path {
                    path: tar_path,
                    sha256: diff_hex.clone(),
                },
                size,
            },
            0o644,
        );
        e.mtime = mtime;
        entries.push(e);
        layer_names.push(format!("{diff_hex}/layer.tar"));
    }
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": [repo_tag],
        "Layers": layer_names,
    }]);
    entries.push(bytes_entry(
        "manifest.json",
        canonical_json(&manifest).map_err(other)?,
        mtime,
    ));
    if let (Some((repo, tag)), Some(last)) = (repo_tag.rsplit_once(':'), image.layers.last()) {
        let repositories = json!({ repo: { tag: digest_hex(&last.diff_id).map_err(other)? } });
        entries.push(bytes_entry(
            "repositories",
            canonical_json(&repositories).map_err(other)?,
            mtime,
        ));
    }
    publish_tar(&entries, dest)
}

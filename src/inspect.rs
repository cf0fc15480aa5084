//! Reading built images back: `inspect` (config, layers, history), `diff` (files added,
//! removed and changed per layer) and `verify` (fsck of every blob and reference).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::layer::decompressor;
use crate::oci::layout::parse_image_ref;
use crate::oci::{Layout, MEDIA_INDEX};
use crate::store::Store;

/// Default platform when an image reference names a multi-platform index.
pub const DEFAULT_PLATFORM: &str = "linux/amd64";

#[derive(Debug, Serialize)]
pub struct LayerInfo {
    pub digest: String,
    pub diff_id: String,
    pub media_type: String,
    pub size: u64,
    pub created_by: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ImageInfo {
    pub reference: String,
    pub manifest_digest: String,
    pub platform: String,
    pub created: Option<String>,
    pub config: Value,
    pub annotations: BTreeMap<String, String>,
    pub layers: Vec<LayerInfo>,
    pub total_size: u64,
    /// For a reference naming an image index: its manifests by platform (the details above
    /// are of the `linux/amd64` one, else the first).
    pub platforms: Vec<PlatformInfo>,
    /// Artifacts in the layout that refer to the image (an SBOM).
    pub referrers: Vec<ReferrerInfo>,
}

#[derive(Debug, Serialize)]
pub struct PlatformInfo {
    pub platform: String,
    pub digest: String,
    pub size: u64,
}

#[derive(Debug, Serialize)]
pub struct ReferrerInfo {
    pub digest: String,
    pub artifact_type: String,
    pub size: u64,
    /// The manifest it refers to.
    pub subject: String,
}

fn open(spec: &str) -> Result<(Layout, crate::oci::ResolvedImage)> {
    let (path, tag) = parse_image_ref(spec);
    let layout = Layout::open(&path)?;
    let img = match layout.resolve(tag.as_deref(), DEFAULT_PLATFORM) {
        Err(crate::oci::LayoutError::NoPlatform { .. }) => {
            // An index without linux/amd64: its first platform.
            let first = index_platforms(&layout, tag.as_deref())?
                .into_iter()
                .next()
                .map(|p| p.platform)
                .unwrap_or_default();
            layout.resolve(tag.as_deref(), &first)?
        }
        other => other?,
    };
    Ok((layout, img))
}

/// The platforms of the index `tag` names (empty when it names a manifest).
fn index_platforms(layout: &Layout, tag: Option<&str>) -> Result<Vec<PlatformInfo>> {
    let tags = layout.tags()?;
    let desc = match tag {
        Some(t) => tags.iter().find(|(n, _)| n.as_deref() == Some(t)),
        None if tags.len() == 1 => tags.first(),
        None => None,
    };
    let Some((_, desc)) = desc else {
        return Ok(Vec::new());
    };
    if desc.media_type().to_string() != MEDIA_INDEX {
        return Ok(Vec::new());
    }
    let doc: Value = serde_json::from_slice(&layout.blobs.read_blob(desc.digest().as_ref())?)?;
    Ok(doc["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let p = &m["platform"];
            let mut platform = format!(
                "{}/{}",
                p["os"].as_str().unwrap_or("?"),
                p["architecture"].as_str().unwrap_or("?")
            );
            if let Some(v) = p["variant"].as_str() {
                platform = format!("{platform}/{v}");
            }
            PlatformInfo {
                platform,
                digest: m["digest"].as_str().unwrap_or_default().to_string(),
                size: m["size"].as_u64().unwrap_or_default(),
            }
        })
        .collect())
}

pub fn inspect(spec: &str) -> Result<ImageInfo> {
    let (layout, img) = open(spec)?;
    let (_, tag) = parse_image_ref(spec);
    let platforms = index_platforms(&layout, tag.as_deref())?;
    let mut referrers = Vec::new();
    let mut subjects = vec![img.manifest_descriptor.digest().to_string()];
    for p in &platforms {
        if !subjects.contains(&p.digest) {
            subjects.push(p.digest.clone());
        }
    }
    for s in &subjects {
        for d in layout.referrers(s)? {
            referrers.push(ReferrerInfo {
                digest: d.digest().to_string(),
                artifact_type: d
                    .artifact_type()
                    .as_ref()
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                size: d.size(),
                subject: s.clone(),
            });
        }
    }
    let config: Value = serde_json::from_slice(&img.config_bytes)?;
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    // History entries for empty layers have no layer; skip them when pairing.
    let history: Vec<Option<String>> = config["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter(|e| !e["empty_layer"].as_bool().unwrap_or(false))
                .map(|e| e["created_by"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let layers: Vec<LayerInfo> = img
        .manifest
        .layers()
        .iter()
        .enumerate()
        .map(|(i, d)| LayerInfo {
            digest: d.digest().to_string(),
            diff_id: diff_ids.get(i).cloned().unwrap_or_default(),
            media_type: d.media_type().to_string(),
            size: d.size(),
            created_by: history.get(i).cloned().flatten(),
        })
        .collect();
    let mut platform = format!(
        "{}/{}",
        config["os"].as_str().unwrap_or("?"),
        config["architecture"].as_str().unwrap_or("?")
    );
    if let Some(v) = config["variant"].as_str() {
        platform = format!("{platform}/{v}");
    }
    Ok(ImageInfo {
        reference: spec.to_string(),
        manifest_digest: img.manifest_descriptor.digest().to_string(),
        platform,
        created: config["created"].as_str().map(String::from),
        config: config["config"].clone(),
        annotations: img
            .manifest
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        total_size: layers.iter().map(|l| l.size).sum(),
        layers,
        platforms,
        referrers,
    })
}

/// What a tar member looks like, for comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileFacts {
    pub kind: String,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub sha256: Option<String>,
    pub link: Option<String>,
}

/// Reads every member of a layer blob: path → facts.
pub fn layer_files(
    store: &Store,
    digest: &str,
    media_type: &str,
) -> Result<BTreeMap<String, FileFacts>> {
    let blob = store.open_blob(digest)?;
    let mut ar = tar::Archive::new(decompressor(media_type, blob)?);
    let mut out = BTreeMap::new();
    for e in ar
        .entries()
        .with_context(|| format!("reading layer {digest}"))?
    {
        let mut e = e.with_context(|| format!("reading layer {digest}"))?;
        let path = e
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let h = e.header();
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => "file",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Link => "hardlink",
            tar::EntryType::Char => "char",
            tar::EntryType::Block => "block",
            tar::EntryType::Fifo => "fifo",
            _ => "other",
        }
        .to_string();
        let (mode, uid, gid, size) = (h.mode()?, h.uid()?, h.gid()?, h.size()?);
        let link = e.link_name()?.map(|l| l.to_string_lossy().into_owned());
        let sha256 = if kind == "file" {
            let mut w = crate::digest::HashingWriter::new(std::io::sink());
            std::io::copy(&mut (&mut e).take(size), &mut w)?;
            Some(w.finish().1)
        } else {
            None
        };
        out.insert(
            path,
            FileFacts {
                kind,
                mode,
                uid,
                gid,
                size,
                sha256,
                link,
            },
        );
    }
    Ok(out)
}

#[derive(Debug, Default, Serialize)]
pub struct LayerDiff {
    pub index: usize,
    pub a: Option<String>,
    pub b: Option<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ImageDiff {
    pub a: String,
    pub b: String,
    pub identical: bool,
    pub config_changed: bool,
    pub layers: Vec<LayerDiff>,
}

/// Compares two images layer by layer (layer i of A against layer i of B).
pub fn diff(a_spec: &str, b_spec: &str) -> Result<ImageDiff> {
    let (la, ia) = open(a_spec)?;
    let (lb, ib) = open(b_spec)?;
    let (da, db) = (ia.manifest.layers(), ib.manifest.layers());
    let mut layers = Vec::new();
    for i in 0..da.len().max(db.len()) {
        let (a, b) = (da.get(i), db.get(i));
        if let (Some(x), Some(y)) = (a, b) {
            if x.digest() == y.digest() {
                continue;
            }
        }
        let files = |l: &Layout, d: Option<&oci_spec::image::Descriptor>| -> Result<_> {
            match d {
                Some(d) => layer_files(&l.blobs, d.digest().as_ref(), d.media_type().as_ref()),
                None => Ok(BTreeMap::new()),
            }
        };
        let (fa, fb) = (files(&la, a)?, files(&lb, b)?);
        let mut d = LayerDiff {
            index: i,
            a: a.map(|d| d.digest().to_string()),
            b: b.map(|d| d.digest().to_string()),
            ..Default::default()
        };
        for (p, f) in &fb {
            match fa.get(p) {
                None => d.added.push(p.clone()),
                Some(g) if g != f => d.changed.push(p.clone()),
                _ => {}
            }
        }
        d.removed = fa
            .keys()
            .filter(|p| !fb.contains_key(*p))
            .cloned()
            .collect();
        layers.push(d);
    }
    let config_changed = ia.manifest.config().digest() != ib.manifest.config().digest();
    Ok(ImageDiff {
        a: a_spec.to_string(),
        b: b_spec.to_string(),
        identical: ia.manifest_descriptor.digest() == ib.manifest_descriptor.digest(),
        config_changed,
        layers,
    })
}

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub checked_blobs: usize,
    pub problems: Vec<String>,
    /// Blobs present but referenced by nothing (not an error; `strata` never removes them).
    pub unreferenced: Vec<String>,
}

/// Checks a layout: every index, manifest, config and layer referenced exists, has the
/// size its descriptor says and hashes to its name; every layer decompresses to its
/// diff_id. Problems are collected, not fatal, so one run lists them all.
pub fn verify(path: &Path) -> Result<VerifyReport> {
    let (path, _) = parse_image_ref(&path.to_string_lossy());
    let layout = Layout::open(&path)?;
    let mut rep = VerifyReport::default();
    let mut referenced = std::collections::BTreeSet::new();
    let index = layout.index()?;
    let mut queue: Vec<(String, String, u64)> = index
        .manifests()
        .iter()
        .map(|d| (d.digest().to_string(), d.media_type().to_string(), d.size()))
        .collect();
    while let Some((digest, media, size)) = queue.pop() {
        if !referenced.insert(digest.clone()) {
            continue;
        }
        let bytes = match check_blob(&layout.blobs, &digest, size, &mut rep) {
            Some(b) => b,
            None => continue,
        };
        let doc: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                rep.problems.push(format!("{digest}: not valid JSON ({e})"));
                continue;
            }
        };
        if media == MEDIA_INDEX || doc["manifests"].is_array() {
            for m in doc["manifests"].as_array().into_iter().flatten() {
                queue.push(desc_of(m));
            }
            continue;
        }
        if crate::oci::artifact::is_artifact(&doc) {
            verify_artifact(&layout, &digest, &doc, &mut referenced, &mut rep);
            continue;
        }
        let (cdigest, _, csize) = desc_of(&doc["config"]);
        referenced.insert(cdigest.clone());
        let Some(cbytes) = check_blob(&layout.blobs, &cdigest, csize, &mut rep) else {
            continue;
        };
        let config: Value = serde_json::from_slice(&cbytes).unwrap_or(Value::Null);
        let diff_ids = config["rootfs"]["diff_ids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let layers = doc["layers"].as_array().cloned().unwrap_or_default();
        if diff_ids.len() != layers.len() {
            rep.problems.push(format!(
                "{digest}: {} layers but {} diff_ids in config {cdigest}",
                layers.len(),
                diff_ids.len()
            ));
        }
        for (i, l) in layers.iter().enumerate() {
            let (ld, lmedia, lsize) = desc_of(l);
            referenced.insert(ld.clone());
            rep.checked_blobs += 1;
            let want = diff_ids.get(i).and_then(|v| v.as_str()).unwrap_or("");
            if let Err(e) = check_layer(&layout.blobs, &ld, &lmedia, lsize, want) {
                rep.problems.push(format!("layer {ld}: {e:#}"));
            }
        }
    }
    for b in layout.blobs.list_blobs()? {
        if !referenced.contains(&b) {
            rep.unreferenced.push(b);
        }
    }
    Ok(rep)
}

/// An artifact manifest (an SBOM strata attached, say): its config and blobs exist with
/// their sizes and digests (they are files, not layers: nothing to decompress), and its
/// `subject`, when it has one, is a manifest of the layout.
fn verify_artifact(
    layout: &Layout,
    digest: &str,
    doc: &Value,
    referenced: &mut std::collections::BTreeSet<String>,
    rep: &mut VerifyReport,
) {
    let mut descs = vec![&doc["config"]];
    descs.extend(doc["layers"].as_array().into_iter().flatten());
    for d in descs {
        let (bd, _, bsize) = desc_of(d);
        if referenced.insert(bd.clone()) {
            check_blob(&layout.blobs, &bd, bsize, rep);
        }
    }
    if doc["subject"].is_object() {
        let (sd, _, ssize) = desc_of(&doc["subject"]);
        match layout.blobs.read_blob(&sd) {
            Ok(b) if b.len() as u64 == ssize => {}
            Ok(b) => rep.problems.push(format!(
                "artifact {digest}: its subject {sd} has {} bytes, the artifact says {ssize}",
                b.len()
            )),
            Err(e) => rep.problems.push(format!(
                "artifact {digest}: its subject {sd} is not in the layout ({e})"
            )),
        }
    }
}

fn desc_of(v: &Value) -> (String, String, u64) {
    (
        v["digest"].as_str().unwrap_or("").to_string(),
        v["mediaType"].as_str().unwrap_or("").to_string(),
        v["size"].as_u64().unwrap_or(0),
    )
}

fn check_blob(store: &Store, digest: &str, size: u64, rep: &mut VerifyReport) -> Option<Vec<u8>> {
    rep.checked_blobs += 1;
    match store.read_blob(digest) {
        Ok(b) if b.len() as u64 == size => Some(b),
        Ok(b) => {
            rep.problems.push(format!(
                "{digest}: size {} but descriptor says {size}",
                b.len()
            ));
            None
        }
        Err(e) => {
            rep.problems.push(format!("{digest}: {e}"));
            None
        }
    }
}

fn check_layer(store: &Store, digest: &str, media: &str, size: u64, diff_id: &str) -> Result<()> {
    let path = store.blob_path(digest)?;
    let actual = std::fs::metadata(&path)
        .map_err(|_| anyhow::anyhow!("missing"))?
        .len();
    anyhow::ensure!(actual == size, "size {actual} but descriptor says {size}");
    store.verify_blob(digest)?;
    let blob = store.open_blob(digest)?;
    let mut r = crate::store::VerifyingReader::new(decompressor(media, blob)?, diff_id);
    std::io::copy(&mut r, &mut std::io::sink()).context("content or diff_id mismatch")?;
    Ok(())
}

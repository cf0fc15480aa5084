//! Pushing an image (a manifest, or an index and its manifests) from a blob store to a
//! registry: blobs first (HEAD, skipped when present; mounted from a sibling repository
//! when possible; else uploaded whole or in chunks), then child manifests by digest, then
//! the root under each tag, checking the digest the registry computed each time.
//!
//! A connection lost or a 5xx in the middle of a chunked upload is resumed from the offset
//! the registry reports for the upload; when the registry no longer knows the upload (it
//! restarted and lost it, or refuses the offset), the blob's upload starts over. Either way
//! the push ends with every blob and manifest verified, or with an error.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;
use serde::Serialize;

use super::client::{status_error, Body, Client, ClientOptions, SendError};
use super::{is_index_media_type, Reference, MANIFEST_ACCEPT};
use crate::oci::MEDIA_MANIFEST;
use crate::store::Store;

/// Blobs above this size are sent in chunks of this size (PATCH), smaller ones in one PUT.
pub const DEFAULT_CHUNK_SIZE: u64 = 16 << 20;

#[derive(Debug, Clone)]
pub struct PushOptions {
    pub client: ClientOptions,
    pub chunk_size: u64,
    /// Repositories on the same registry that may already hold the blobs (cross-repository
    /// mount is tried from each before uploading).
    pub mount_from: Vec<String>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            client: ClientOptions::default(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            mount_from: Vec::new(),
        }
    }
}

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobAction {
    /// Already in the repository.
    Present,
    /// Mounted from another repository of the registry.
    Mounted,
    /// Uploaded in one request.
    Uploaded,
    /// Uploaded in chunks.
    Chunked,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlobPush {
    pub digest: String,
    pub size: u64,
    pub action: BlobAction,
    /// Uploads resumed from the registry's offset after a failure.
    pub resumed: u32,
    /// Uploads started over after a failure.
    pub restarted: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// `host/repo@digest`
    pub pushed: String,
    pub digest: String,
    pub media_type: String,
    pub tags: Vec<String>,
    pub blobs: Vec<BlobPush>,
    /// Manifests pushed (an index's children included).
    pub manifests: usize,
    /// The artifacts pushed that refer to the image, by digest.
    pub referrers: Vec<ReferrerPush>,
}

/// How an artifact referring to the image was pushed.
#[derive(Debug, Clone, Serialize)]
pub struct ReferrerPush {
    pub digest: String,
    pub artifact_type: String,
    pub subject: String,
    /// The registry answered with `OCI-Subject` (it serves the referrers API), or else the
    /// tag of the referrers tag schema strata updated (`sha256-HEX`, distribution-spec 1.1).
    pub indexed_by: String,
}

/// The root of what to push: a manifest or an index, by descriptor; and the artifacts
/// that refer to it or to its manifests (an SBOM), pushed after it.
#[derive(Debug, Clone)]
pub struct PushRoot {
    pub media_type: String,
    pub digest: String,
    pub referrers: Vec<crate::oci::artifact::Artifact>,
}

struct ManifestDoc {
    media_type: String,
    digest: String,
    bytes: Vec<u8>,
}

/// Reads the manifest graph under `root` from `store`, verifying each document; returns
/// the blobs (config and layers) and the manifests, children before their index.
fn collect(
    store: &Store,
    media_type: &str,
    digest: &str,
    blobs: &mut BTreeMap<String, u64>,
    docs: &mut Vec<ManifestDoc>,
) -> Result<()> {
    let bytes = store
        .read_blob(digest)
        .with_context(|| format!("reading manifest {digest}"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("manifest {digest} is not JSON"))?;
    let mt = v["mediaType"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or(media_type)
        .to_string();
    if is_index_media_type(&mt) || v["manifests"].is_array() {
        for m in v["manifests"].as_array().into_iter().flatten() {
            let (cmt, cd) = descriptor_fields(m, digest)?;
            collect(store, &cmt, &cd, blobs, docs)?;
        }
    } else {
        let config = &v["config"];
        let mut descs = vec![config];
        descs.extend(v["layers"].as_array().into_iter().flatten());
        for d in descs {
            let (_, bd) = descriptor_fields(d, digest)?;
            let size = d["size"]
                .as_u64()
                .with_context(|| format!("manifest {digest}: descriptor {bd} has no size"))?;
            blobs.insert(bd, size);
        }
    }
    if !docs.iter().any(|d| d.digest == digest) {
        docs.push(ManifestDoc {
            media_type: mt,
            digest: digest.to_string(),
            bytes,
        });
    }
    Ok(())
}

fn descriptor_fields(d: &serde_json::Value, parent: &str) -> Result<(String, String)> {
    let digest = d["digest"]
        .as_str()
        .with_context(|| format!("manifest {parent}: a descriptor has no digest"))?;
    crate::store::digest_hex(digest).with_context(|| format!("manifest {parent}"))?;
    Ok((
        d["mediaType"].as_str().unwrap_or_default().to_string(),
        digest.to_string(),
    ))
}

/// Pushes `root` (its blobs in `store`) to `target`'s repository under each of `tags`
/// (by digest alone when `tags` is empty).
pub fn push(
    store: &Store,
    root: &PushRoot,
    target: &Reference,
    tags: &[String],
    opts: &PushOptions,
) -> Result<PushReport> {
    let mut blobs = BTreeMap::new();
    let mut docs = Vec::new();
    collect(store, &root.media_type, &root.digest, &mut blobs, &mut docs)?;
    let mut referrer_docs = Vec::new();
    for a in &root.referrers {
        collect(
            store,
            MEDIA_MANIFEST,
            &a.digest,
            &mut blobs,
            &mut referrer_docs,
        )?;
    }
    // Every blob is checked before anything is sent, so a corrupt store never reaches the
    // registry (which would refuse it anyway, after the upload).
    for d in blobs.keys() {
        store
            .verify_blob(d)
            .with_context(|| format!("blob {d} of the image being pushed"))?;
    }
    let mut scopes = vec![format!("repository:{}:pull,push", target.repo)];
    for m in &opts.mount_from {
        if m != &target.repo {
            scopes.push(format!("repository:{m}:pull"));
        }
    }
    let client = Client::connect(target, scopes, &opts.client)?;
    let list: Vec<(String, u64)> = blobs.into_iter().collect();
    let pushed: Vec<BlobPush> = list
        .par_iter()
        .map(|(digest, size)| push_blob(&client, store, target, digest, *size, opts))
        .collect::<Result<_>>()?;

    let (root_doc, children) = docs
        .split_last()
        .ok_or_else(|| anyhow!("nothing to push"))?;
    for doc in children {
        put_manifest(&client, target, doc, &doc.digest)?;
    }
    if tags.is_empty() {
        put_manifest(&client, target, root_doc, &root_doc.digest)?;
    }
    for tag in tags {
        put_manifest(&client, target, root_doc, tag)?;
        check_tag(&client, target, tag, &root_doc.digest)?;
    }
    let mut referrers = Vec::new();
    for (a, doc) in root.referrers.iter().zip(&referrer_docs) {
        let subject = put_manifest(&client, target, doc, &doc.digest)?;
        let indexed_by = match subject {
            Some(s) => {
                if s != a.subject.digest {
                    bail!(
                        "pushing artifact {}: the registry says its subject is {s}, expected {}",
                        a.digest,
                        a.subject.digest
                    );
                }
                "OCI-Subject".to_string()
            }
            None => referrers_tag_fallback(&client, target, a)?,
        };
        referrers.push(ReferrerPush {
            digest: a.digest.clone(),
            artifact_type: a.artifact_type.clone(),
            subject: a.subject.digest.clone(),
            indexed_by,
        });
    }
    Ok(PushReport {
        pushed: format!("{}/{}@{}", target.host, target.repo, root_doc.digest),
        digest: root_doc.digest.clone(),
        media_type: root_doc.media_type.clone(),
        tags: tags.to_vec(),
        blobs: pushed,
        manifests: docs.len(),
        referrers,
    })
}

/// The referrers tag schema (distribution-spec 1.1, for registries without the referrers
/// API): the tag `sha256-HEX` of the subject names an image index listing the artifacts
/// that refer to it. Reads what the tag lists now, adds `a` (replacing an entry of the same
/// digest) and puts the index back; returns the tag.
fn referrers_tag_fallback(
    client: &Client,
    target: &Reference,
    a: &crate::oci::artifact::Artifact,
) -> Result<String> {
    let tag = crate::oci::artifact::referrers_tag(&a.subject.digest).map_err(|e| anyhow!(e))?;
    let url = client.url(&format!("/v2/{}/manifests/{tag}", target.repo));
    let what = format!("the referrers tag {}:{tag}", target.repo);
    let resp = client.send(
        "GET",
        &url,
        &[("Accept", crate::oci::MEDIA_INDEX)],
        &Body::Empty,
    )?;
    let mut listed: Vec<serde_json::Value> = match resp.status() {
        200 => {
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut resp.into_reader(), &mut body)
                .with_context(|| format!("reading {what}"))?;
            let v: serde_json::Value =
                serde_json::from_slice(&body).with_context(|| format!("{what} is not JSON"))?;
            v["manifests"].as_array().cloned().unwrap_or_default()
        }
        404 => Vec::new(),
        _ => return Err(status_error(&format!("reading {what}"), resp, client)),
    };
    listed.retain(|m| m["digest"].as_str() != Some(a.digest.as_str()));
    listed.push(crate::oci::artifact::referrer_descriptor(a));
    let bytes = crate::oci::artifact::referrers_index(listed);
    let doc = ManifestDoc {
        media_type: crate::oci::MEDIA_INDEX.to_string(),
        digest: crate::digest::sha256_digest(&bytes),
        bytes,
    };
    put_manifest(client, target, &doc, &tag)?;
    Ok(tag)
}

/// PUTs `doc` as `reference`; returns the `OCI-Subject` header of the answer (a registry
/// that serves the referrers API sends it for a manifest with a `subject`).
fn put_manifest(
    client: &Client,
    target: &Reference,
    doc: &ManifestDoc,
    reference: &str,
) -> Result<Option<String>> {
    let url = client.url(&format!("/v2/{}/manifests/{reference}", target.repo));
    let what = format!(
        "pushing manifest {} as {}:{reference}",
        doc.digest, target.repo
    );
    let resp = client.send(
        "PUT",
        &url,
        &[("Content-Type", &doc.media_type)],
        &Body::Bytes(&doc.bytes),
    )?;
    if resp.status() != 201 && resp.status() != 200 {
        return Err(status_error(&what, resp, client));
    }
    match resp.header("docker-content-digest") {
        Some(d) if d != doc.digest => bail!(
            "{what}: the registry computed digest {d}, expected {}",
            doc.digest
        ),
        _ => Ok(resp.header("oci-subject").map(String::from)),
    }
}

/// Reads the tag back and compares the digest the registry serves.
fn check_tag(client: &Client, target: &Reference, tag: &str, digest: &str) -> Result<()> {
    let url = client.url(&format!("/v2/{}/manifests/{tag}", target.repo));
    let resp = client.send("HEAD", &url, &[("Accept", MANIFEST_ACCEPT)], &Body::Empty)?;
    if resp.status() != 200 {
        return Err(status_error(
            &format!("checking {}:{tag}", target.repo),
            resp,
            client,
        ));
    }
    match resp.header("docker-content-digest") {
        Some(d) if d != digest => bail!(
            "{}:{tag} points at {d} after the push, expected {digest}",
            target.repo
        ),
        _ => Ok(()),
    }
}

fn blob_present(client: &Client, target: &Reference, digest: &str, size: u64) -> Result<bool> {
    let url = client.url(&format!("/v2/{}/blobs/{digest}", target.repo));
    let resp = client.send("HEAD", &url, &[], &Body::Empty)?;
    match resp.status() {
        200 => {
            let len = resp
                .header("content-length")
                .and_then(|l| l.parse::<u64>().ok());
            match len {
                Some(n) if n != size => bail!(
                    "{}: blob {digest} is in the registry with size {n}, expected {size}",
                    target.repo
                ),
                _ => Ok(true),
            }
        }
        404 => Ok(false),
        _ => Err(status_error(
            &format!("checking blob {digest}"),
            resp,
            client,
        )),
    }
}

/// `…?a=b` + `digest=…` with the right separator.
fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", value.replace(':', "%3A"))
}

/// What one upload attempt ended in.
enum Attempt {
    Done,
    /// Start over with a new upload session.
    Restart(String),
}

fn push_blob(
    client: &Client,
    store: &Store,
    target: &Reference,
    digest: &str,
    size: u64,
    opts: &PushOptions,
) -> Result<BlobPush> {
    let mut report = BlobPush {
        digest: digest.to_string(),
        size,
        action: BlobAction::Present,
        resumed: 0,
        restarted: 0,
    };
    if blob_present(client, target, digest, size)? {
        return Ok(report);
    }
    let path = store.blob_path(digest)?;
    let uploads = client.url(&format!("/v2/{}/blobs/uploads/", target.repo));
    let mut session: Option<String> = None;
    for from in opts.mount_from.iter().filter(|m| *m != &target.repo) {
        let url = format!("{uploads}?mount={}&from={from}", digest.replace(':', "%3A"));
        let resp = client.send("POST", &url, &[], &Body::Empty)?;
        match resp.status() {
            201 => {
                if blob_present(client, target, digest, size)? {
                    report.action = BlobAction::Mounted;
                    return Ok(report);
                }
            }
            // Not mountable from there: the registry opened an upload instead; use it.
            202 => {
                if let Some(loc) = resp.header("location") {
                    session = Some(client.resolve_location(loc));
                    break;
                }
            }
            _ => {
                return Err(status_error(
                    &format!("mounting {digest} from {from}"),
                    resp,
                    client,
                ))
            }
        }
    }
    let chunked = size > opts.chunk_size;
    report.action = if chunked {
        BlobAction::Chunked
    } else {
        BlobAction::Uploaded
    };
    let mut last = String::new();
    for attempt in 1..=client.retry.attempts {
        if attempt > 1 {
            report.restarted += 1;
            std::thread::sleep(client.retry.delay(attempt - 1));
            // The failed attempt may have completed after all (lost answer to the last PUT).
            if blob_present(client, target, digest, size)? {
                return Ok(report);
            }
        }
        let location = match session.take() {
            Some(l) => l,
            None => match start_upload(client, &uploads)? {
                Some(l) => l,
                None => {
                    last = format!("starting an upload of {digest}: no Location");
                    continue;
                }
            },
        };
        let outcome = if chunked {
            upload_chunked(
                client,
                &location,
                &path,
                digest,
                size,
                opts.chunk_size,
                &mut report,
            )?
        } else {
            upload_whole(client, &location, &path, digest, size)?
        };
        match outcome {
            Attempt::Done => return Ok(report),
            Attempt::Restart(why) => last = why,
        }
    }
    bail!("uploading blob {digest} to {}/{} failed {} times; last: {last}\n  hint: check that the registry is up and has disk space", target.host, target.repo, client.retry.attempts)
}

fn start_upload(client: &Client, uploads: &str) -> Result<Option<String>> {
    let resp = client.send("POST", uploads, &[], &Body::Empty)?;
    if resp.status() != 202 {
        return Err(status_error("starting a blob upload", resp, client));
    }
    Ok(resp.header("location").map(|l| client.resolve_location(l)))
}

fn finish_ok(client: &Client, resp: ureq::Response, digest: &str, what: &str) -> Result<Attempt> {
    match resp.status() {
        201 | 204 => match resp.header("docker-content-digest") {
            Some(d) if d != digest => bail!("{what}: the registry computed {d} for blob {digest}"),
            _ => Ok(Attempt::Done),
        },
        // The session is gone or the registry disagrees about the bytes: start over.
        400 | 404 | 416 => {
            let code = resp.status();
            let body = resp.into_string().unwrap_or_default();
            Ok(Attempt::Restart(format!(
                "{what}: HTTP {code} {}",
                super::client::registry_error_message(&body)
            )))
        }
        _ => Err(status_error(what, resp, client)),
    }
}

fn upload_whole(
    client: &Client,
    location: &str,
    path: &std::path::Path,
    digest: &str,
    size: u64,
) -> Result<Attempt> {
    let url = with_query(location, "digest", digest);
    let body = Body::File {
        path,
        offset: 0,
        len: size,
    };
    match client.send_once(
        "PUT",
        &url,
        &[("Content-Type", "application/octet-stream")],
        &body,
    ) {
        Ok(resp) => finish_ok(client, resp, digest, &format!("uploading blob {digest}")),
        Err(SendError::Transient(m)) => Ok(Attempt::Restart(m)),
        Err(SendError::Fatal(e)) => Err(e),
    }
}

/// `0-N` → bytes the registry holds (N+1), reading `0-0` as nothing (the registry writes
/// that for an empty upload; if it meant one byte, the next chunk is refused with 416 and
/// the upload starts over).
pub fn parse_upload_range(range: &str) -> Option<u64> {
    let r = range.trim().trim_start_matches("bytes=");
    let (start, end) = r.split_once('-')?;
    if start.trim() != "0" {
        return None;
    }
    let end: u64 = end.trim().parse().ok()?;
    Some(if end == 0 { 0 } else { end + 1 })
}

fn upload_chunked(
    client: &Client,
    location: &str,
    path: &std::path::Path,
    digest: &str,
    size: u64,
    chunk: u64,
    report: &mut BlobPush,
) -> Result<Attempt> {
    let mut location = location.to_string();
    let mut offset = 0u64;
    let mut failures = 0u32;
    while offset < size {
        let len = chunk.min(size - offset);
        let range = format!("{offset}-{}", offset + len - 1);
        let body = Body::File { path, offset, len };
        let headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", range.as_str()),
        ];
        match client.send_once("PATCH", &location, &headers, &body) {
            Ok(resp) if resp.status() == 202 => {
                if let Some(l) = resp.header("location") {
                    location = client.resolve_location(l);
                }
                let got = resp.header("range").and_then(parse_upload_range);
                match got {
                    Some(n) if n == offset + len => offset = n,
                    other => return Ok(Attempt::Restart(format!("chunk {range} of {digest}: the registry holds {other:?} bytes, expected {}", offset + len))),
                }
                failures = 0;
            }
            Ok(resp) => {
                return finish_ok(
                    client,
                    resp,
                    digest,
                    &format!("uploading chunk {range} of {digest}"),
                )
            }
            Err(SendError::Fatal(e)) => return Err(e),
            Err(SendError::Transient(m)) => {
                // Ask the registry how far it got, waiting for it to come back if needed.
                failures += 1;
                if failures >= client.retry.attempts {
                    return Ok(Attempt::Restart(m));
                }
                std::thread::sleep(client.retry.delay(failures));
                match client.send_once("GET", &location, &[], &Body::Empty) {
                    Ok(resp) if resp.status() == 204 => {
                        if let Some(l) = resp.header("location") {
                            location = client.resolve_location(l);
                        }
                        match resp.header("range").and_then(parse_upload_range) {
                            Some(n) if n <= size => {
                                offset = n;
                                report.resumed += 1;
                            }
                            _ => {
                                return Ok(Attempt::Restart(format!(
                                    "{m}; the upload's range is unreadable"
                                )))
                            }
                        }
                    }
                    Ok(resp) => {
                        let code = resp.status();
                        return Ok(Attempt::Restart(format!(
                            "{m}; then the upload's status was HTTP {code}"
                        )));
                    }
                    // Still down: try the same chunk again, which asks again on failure.
                    Err(SendError::Transient(_)) => {}
                    Err(SendError::Fatal(e)) => return Err(e),
                }
            }
        }
    }
    let url = with_query(&location, "digest", digest);
    match client.send_once("PUT", &url, &[], &Body::Empty) {
        Ok(resp) => finish_ok(
            client,
            resp,
            digest,
            &format!("finishing the upload of {digest}"),
        ),
        Err(SendError::Transient(m)) => Ok(Attempt::Restart(m)),
        Err(SendError::Fatal(e)) => Err(e),
    }
}

/// The tags to push under: the reference's tag (`latest` without tag or digest), then `extra`.
pub fn tags_for(r: &Reference, extra: &[String]) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    match (&r.tag, &r.digest) {
        (Some(t), _) => tags.push(t.clone()),
        (None, None) => tags.push("latest".into()),
        (None, Some(_)) => {}
    }
    for t in extra {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    tags
}

/// The root descriptor of `[oci:]DIR[:TAG]` (the tagged manifest or index, or the layout's
/// only one).
pub fn layout_root(spec: &str) -> Result<(crate::oci::Layout, PushRoot)> {
    let (path, tag) = crate::oci::layout::parse_image_ref(spec);
    let layout = crate::oci::Layout::open(&path)?;
    let tags = layout.tags()?;
    let desc = match &tag {
        Some(t) => tags
            .iter()
            .find(|(n, _)| n.as_deref() == Some(t.as_str()))
            .map(|(_, d)| d.clone())
            .with_context(|| {
                let have: Vec<String> = tags.iter().filter_map(|(n, _)| n.clone()).collect();
                format!("{}: no image tagged {t:?} (tags here: {})\n  hint: use oci:{}:TAG with one of the tags listed", path.display(), have.join(", "), path.display())
            })?,
        None if tags.len() == 1 => tags[0].1.clone(),
        None => bail!("{}: holds {} images; say which one with oci:{}:TAG", path.display(), tags.len(), path.display()),
    };
    // The artifacts referring to the root or, for an index, to its manifests.
    let mut subjects = vec![desc.digest().to_string()];
    if desc.media_type().to_string() == crate::oci::MEDIA_INDEX {
        let bytes = layout.blobs.read_blob(desc.digest().as_ref())?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: index {}", path.display(), desc.digest()))?;
        for m in v["manifests"].as_array().into_iter().flatten() {
            if let Some(d) = m["digest"].as_str() {
                subjects.push(d.to_string());
            }
        }
    }
    let mut referrers = Vec::new();
    for s in &subjects {
        for r in layout.referrers(s)? {
            let digest = r.digest().to_string();
            let bytes = layout.blobs.read_blob(&digest)?;
            referrers.push(
                crate::oci::artifact::Artifact::from_manifest(bytes)
                    .map_err(|e| anyhow!("{}: artifact {digest}: {e}", path.display()))?,
            );
        }
    }
    let root = PushRoot {
        media_type: desc.media_type().to_string(),
        digest: desc.digest().to_string(),
        referrers,
    };
    Ok((layout, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_to_push() {
        let r = |s: &str| Reference::parse(s).expect(s);
        let d = format!("sha256:{}", "0".repeat(64));
        let x = vec!["x".to_string(), "v1".to_string()];
        assert_eq!(tags_for(&r("h.io/a"), &[]), vec!["latest"]);
        assert_eq!(tags_for(&r("h.io/a:v1"), &x), vec!["v1", "x"]);
        assert_eq!(
            tags_for(&r(&format!("h.io/a@{d}")), &[]),
            Vec::<String>::new()
        );
        assert_eq!(tags_for(&r(&format!("h.io/a@{d}")), &x), x);
    }

    #[test]
    fn upload_ranges() {
        let cases = [
            ("0-0", Some(0)),
            ("0-1023", Some(1024)),
            ("bytes=0-9", Some(10)),
            (" 0-4 ", Some(5)),
            ("5-9", None),
            ("0-", None),
            ("junk", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_upload_range(input), want, "{input}");
        }
    }

    #[test]
    fn queries() {
        assert_eq!(
            with_query("http://h/v2/a/blobs/uploads/u1", "digest", "sha256:ab"),
            "http://h/v2/a/blobs/uploads/u1?digest=sha256%3Aab"
        );
        assert_eq!(
            with_query("http://h/u?_state=x", "digest", "sha256:ab"),
            "http://h/u?_state=x&digest=sha256%3Aab"
        );
    }

    #[test]
    fn collects_an_index_children_first() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(dir.path()).expect("store");
        let config = s.put_bytes(b"{}").expect("config");
        let layer = s.put_bytes(b"layer").expect("layer");
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::oci::MEDIA_MANIFEST,
            "config": {"mediaType": crate::oci::MEDIA_CONFIG, "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 5}],
        });
        let m = s
            .put_bytes(&serde_json::to_vec(&manifest).expect("json"))
            .expect("m");
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::oci::MEDIA_INDEX,
            "manifests": [{"mediaType": crate::oci::MEDIA_MANIFEST, "digest": m, "size": 1}],
        });
        let i = s
            .put_bytes(&serde_json::to_vec(&index).expect("json"))
            .expect("i");
        let mut blobs = BTreeMap::new();
        let mut docs = Vec::new();
        collect(&s, crate::oci::MEDIA_INDEX, &i, &mut blobs, &mut docs).expect("collect");
        assert_eq!(
            docs.iter().map(|d| d.digest.clone()).collect::<Vec<_>>(),
            vec![m, i]
        );
        assert_eq!(blobs.get(&config), Some(&2));
        assert_eq!(blobs.get(&layer), Some(&5));
        assert_eq!(blobs.len(), 2);
    }
}

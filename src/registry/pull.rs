//! Pulling an image into a blob store (the cache, or an OCI layout's blobs): the manifest
//! (or index and its manifests), then config and layers, each written under its digest
//! only after the bytes hash to it. Blobs already in the store are not fetched again, so an
//! image pinned by digest whose blobs are all in the store needs no network at all.

use std::io::Read;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::client::{registry_error_message, status_error, Body, Client, ClientOptions};
use super::{is_index_media_type, Reference, MANIFEST_ACCEPT};
use crate::digest::sha256_digest;
use crate::store::Store;

/// Largest manifest or index accepted (the registry's own limit is 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;

#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    /// The digest of what the reference names (a manifest or an index).
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// Blobs fetched from the registry / found in the store already.
    pub fetched: usize,
    pub cached: usize,
}

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    pub client: ClientOptions,
    /// `os/arch[/variant]`: of an index, fetch only this platform's manifest (the index
    /// itself is kept too). `None`: every platform.
    pub platform: Option<String>,
    /// Never connect: what is not in the store already is an error.
    pub offline: bool,
}

/// The registry has no manifest under the tag or digest asked for (HTTP 404).
#[derive(Debug, thiserror::Error)]
#[error(
    "fetching the manifest of {what}: HTTP 404: {message}\n  hint: check the repository and tag"
)]
pub struct ManifestNotFound {
    /// `HOST/REPO:REF`.
    pub what: String,
    /// The registry's own words, e.g. `MANIFEST_UNKNOWN: manifest unknown`.
    pub message: String,
}

/// A pull that connects only when something is missing from the store.
struct Puller<'a> {
    target: &'a Reference,
    opts: &'a PullOptions,
    store: &'a Store,
    client: Option<Client>,
    fetched: usize,
    cached: usize,
}

/// Pulls `reference` into `store`.
pub fn pull(reference: &Reference, store: &Store, opts: &PullOptions) -> Result<PullReport> {
    let mut p = Puller {
        target: reference,
        opts,
        store,
        client: None,
        fetched: 0,
        cached: 0,
    };
    let (digest, media_type, size) = p.root()?;
    p.walk(&digest, &media_type)?;
    Ok(PullReport {
        digest,
        media_type,
        size,
        fetched: p.fetched,
        cached: p.cached,
    })
}

/// What `reference`'s tag (or digest) names now: its manifest or index is fetched, checked
/// against the digest the registry reports and stored in `store`; nothing below it is
/// fetched. The report's `digest` is what a lock pins.
pub fn resolve(reference: &Reference, store: &Store, opts: &PullOptions) -> Result<PullReport> {
    let mut p = Puller {
        target: reference,
        opts,
        store,
        client: None,
        fetched: 0,
        cached: 0,
    };
    let reference = reference.manifest_ref().to_string();
    let (digest, media_type, size) = p.fetch_manifest(&reference, p.target.digest.as_deref())?;
    Ok(PullReport {
        digest,
        media_type,
        size,
        fetched: p.fetched,
        cached: p.cached,
    })
}

/// `os/arch[/variant]` of an index entry.
fn platform_of(d: &serde_json::Value) -> Option<String> {
    let p = &d["platform"];
    let mut s = format!("{}/{}", p["os"].as_str()?, p["architecture"].as_str()?);
    if let Some(v) = p["variant"].as_str() {
        s = format!("{s}/{v}");
    }
    Some(s)
}

/// True when `have` (an index entry's platform) satisfies `want`; `linux/arm64` matches
/// `linux/arm64/v8`.
pub fn platform_matches(have: &str, want: &str) -> bool {
    have == want || (want.matches('/').count() == 1 && have.starts_with(&format!("{want}/")))
}

impl Puller<'_> {
    fn client(&mut self) -> Result<&Client> {
        if self.client.is_none() {
            if self.opts.offline {
                bail!(
                    "offline: {} is not all in the cache (blobs are missing that only its registry has)\n  hint: build once without --offline (network needed) to pull it into the cache",
                    self.target
                );
            }
            let scope = vec![format!("repository:{}:pull", self.target.repo)];
            self.client = Some(Client::connect(self.target, scope, &self.opts.client)?);
        }
        self.client.as_ref().context("no client")
    }

    /// The root document: from the store when pinned by digest and present, else fetched.
    fn root(&mut self) -> Result<(String, String, u64)> {
        if let Some(d) = &self.target.digest {
            if self.store.has_blob(d) {
                let bytes = self.store.read_blob(d)?;
                let mt = media_type_of(&bytes, "")
                    .with_context(|| format!("manifest {d} in the store"))?;
                self.cached += 1;
                return Ok((d.clone(), mt, bytes.len() as u64));
            }
        }
        let reference = self.target.manifest_ref().to_string();
        let (digest, mt, size) = self.fetch_manifest(&reference, self.target.digest.as_deref())?;
        Ok((digest, mt, size))
    }

    /// GETs a manifest, checks its digest (against `expected` and the registry's header)
    /// and stores it.
    fn fetch_manifest(
        &mut self,
        reference: &str,
        expected: Option<&str>,
    ) -> Result<(String, String, u64)> {
        let target = self.target.clone();
        let client = self.client()?;
        let url = client.url(&format!("/v2/{}/manifests/{reference}", target.repo));
        let what = format!("{}/{}:{reference}", target.host, target.repo);
        let resp = client.send("GET", &url, &[("Accept", MANIFEST_ACCEPT)], &Body::Empty)?;
        if resp.status() == 404 {
            let body = resp.into_string().unwrap_or_default();
            return Err(ManifestNotFound {
                what,
                message: registry_error_message(&body),
            }
            .into());
        }
        if resp.status() != 200 {
            return Err(status_error(
                &format!("fetching the manifest of {what}"),
                resp,
                client,
            ));
        }
        let header_digest = resp.header("docker-content-digest").map(String::from);
        let content_type = resp.header("content-type").unwrap_or_default().to_string();
        let mut bytes = Vec::new();
        resp.into_reader()
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading the manifest of {what}"))?;
        if bytes.len() as u64 > MAX_MANIFEST {
            bail!("{what}: manifest larger than {MAX_MANIFEST} bytes");
        }
        let digest = sha256_digest(&bytes);
        if let Some(exp) = expected {
            if exp != digest {
                bail!("{what}: the registry sent a manifest with digest {digest}, expected {exp}");
            }
        }
        if let Some(h) = &header_digest {
            if h != &digest {
                bail!("{what}: manifest bytes hash to {digest} but the registry says {h}");
            }
        }
        let mt =
            media_type_of(&bytes, &content_type).with_context(|| format!("manifest of {what}"))?;
        self.store.put_bytes(&bytes)?;
        self.fetched += 1;
        Ok((digest, mt, bytes.len() as u64))
    }

    fn walk(&mut self, digest: &str, media_type: &str) -> Result<()> {
        let bytes = self.store.read_blob(digest)?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("manifest {digest} is not JSON"))?;
        if is_index_media_type(media_type) {
            let mut matched = 0;
            for m in v["manifests"].as_array().into_iter().flatten() {
                if let Some(want) = &self.opts.platform {
                    match platform_of(m) {
                        Some(have) if platform_matches(&have, want) => {}
                        _ => continue,
                    }
                }
                matched += 1;
                let cd = m["digest"]
                    .as_str()
                    .with_context(|| format!("index {digest}: an entry has no digest"))?;
                crate::store::digest_hex(cd)?;
                let (cd, cmt, _) = if self.store.has_blob(cd) {
                    let b = self.store.read_blob(cd)?;
                    self.cached += 1;
                    (
                        cd.to_string(),
                        media_type_of(&b, m["mediaType"].as_str().unwrap_or(""))?,
                        0,
                    )
                } else {
                    self.fetch_manifest(cd, Some(cd))?
                };
                self.walk(&cd, &cmt)?;
            }
            if matched == 0 {
                bail!(
                    "{}: the index {digest} has no manifest for platform {}",
                    self.target,
                    self.opts.platform.as_deref().unwrap_or("(any)")
                );
            }
            return Ok(());
        }
        if v["schemaVersion"].as_u64() == Some(1) {
            bail!("{}: Docker schema 1 manifests are not supported\n  hint: re-push the image with a current client", self.target);
        }
        let mut descs = vec![&v["config"]];
        descs.extend(v["layers"].as_array().into_iter().flatten());
        for d in descs {
            let bd = d["digest"]
                .as_str()
                .with_context(|| format!("manifest {digest}: a descriptor has no digest"))?;
            crate::store::digest_hex(bd)?;
            let size = d["size"].as_u64();
            if self.store.has_blob(bd) {
                self.cached += 1;
                continue;
            }
            self.fetch_blob(bd, size)?;
        }
        Ok(())
    }

    /// GETs one blob into the store, verified; a failure part-way starts the blob over.
    fn fetch_blob(&mut self, digest: &str, size: Option<u64>) -> Result<()> {
        let target = self.target.clone();
        let store = self.store;
        let client = self.client()?;
        let url = client.url(&format!("/v2/{}/blobs/{digest}", target.repo));
        let mut last = String::new();
        for attempt in 1..=client.retry.attempts {
            if attempt > 1 {
                std::thread::sleep(client.retry.delay(attempt - 1));
            }
            let resp = client.send("GET", &url, &[], &Body::Empty)?;
            if resp.status() != 200 {
                return Err(status_error(
                    &format!("fetching blob {digest} of {target}"),
                    resp,
                    client,
                ));
            }
            let mut w = store.blob_writer()?;
            let limit = size.map_or(u64::MAX, |s| s + 1);
            match std::io::copy(&mut resp.into_reader().take(limit), &mut w) {
                Ok(n) if size.is_some_and(|s| s != n) => {
                    last = format!("blob {digest}: got {n} bytes, the manifest says {size:?}");
                }
                Ok(_) => {
                    w.commit(Some(digest))
                        .with_context(|| format!("blob {digest} of {target}"))?;
                    self.fetched += 1;
                    return Ok(());
                }
                Err(e) => last = format!("blob {digest}: {e}"),
            }
        }
        bail!(
            "fetching {last} (gave up after {} tries)",
            client.retry.attempts
        )
    }
}

/// The media type of a manifest document: its `mediaType` field, else the HTTP
/// Content-Type, else guessed from its shape.
fn media_type_of(bytes: &[u8], content_type: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).context("not JSON")?;
    if let Some(mt) = v["mediaType"].as_str().filter(|s| !s.is_empty()) {
        return Ok(mt.to_string());
    }
    let ct = content_type.split(';').next().unwrap_or("").trim();
    if !ct.is_empty() && ct != "application/json" {
        return Ok(ct.to_string());
    }
    Ok(if v["manifests"].is_array() {
        crate::oci::MEDIA_INDEX.to_string()
    } else {
        crate::oci::MEDIA_MANIFEST.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        for (have, want, ok) in [
            ("linux/amd64", "linux/amd64", true),
            ("linux/arm64/v8", "linux/arm64", true),
            ("linux/arm64/v8", "linux/arm64/v8", true),
            ("linux/arm/v7", "linux/arm64", false),
            ("linux/amd64", "linux/arm64", false),
        ] {
            assert_eq!(platform_matches(have, want), ok, "{have} {want}");
        }
    }

    #[test]
    fn media_types() {
        let cases = [
            (
                r#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
                "",
                crate::oci::MEDIA_INDEX,
            ),
            (
                r#"{"schemaVersion":2,"config":{}}"#,
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.distribution.manifest.v2+json",
            ),
            (
                r#"{"manifests":[]}"#,
                "application/json",
                crate::oci::MEDIA_INDEX,
            ),
            (r#"{"config":{}}"#, "", crate::oci::MEDIA_MANIFEST),
        ];
        for (body, ct, want) in cases {
            assert_eq!(
                media_type_of(body.as_bytes(), ct).expect(body),
                want,
                "{body}"
            );
        }
        assert!(media_type_of(b"nope", "").is_err());
    }
}

//! Artifacts that refer to an image (OCI image-spec 1.1): an image manifest with an
//! `artifactType`, the empty config (`{}`), the artifact's file as its one layer, and a
//! `subject` naming the image's manifest. strata attaches the SBOM of a `debian` step this
//! way. In an image layout the artifact's manifest is listed in `index.json` untagged (no
//! `org.opencontainers.image.ref.name`), with its `artifactType` and the
//! [`ANNOTATION_SUBJECT`] annotation, as `oras attach --oci-layout` lists what it attaches,
//! so tools that walk the index find it and tag lookups ignore it.

use serde_json::{json, Value};

use super::{canonical_json, rfc3339, MEDIA_MANIFEST};

/// The artifact type and file media type of an SPDX JSON document.
pub const MEDIA_SPDX_JSON: &str = "application/spdx+json";
/// The empty descriptor's media type (image-spec 1.1 "Guidance for an Empty Descriptor").
pub const MEDIA_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The bytes of the empty blob, `{}`.
pub const EMPTY_BLOB: &[u8] = b"{}";
/// sha256 of [`EMPTY_BLOB`].
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// On an `index.json` entry of an artifact: the digest of the manifest it refers to.
pub const ANNOTATION_SUBJECT: &str = "io.strata.subject";
/// The file name of the artifact's layer (ORAS and others name files by this).
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// A manifest descriptor: what a `subject` or an index entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDesc {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// An artifact manifest's bytes and what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub artifact_type: String,
    /// The canonical JSON of the manifest.
    pub manifest: Vec<u8>,
    pub digest: String,
    /// The file's digest (the one layer); the empty blob is the config.
    pub blob_digest: String,
    pub subject: ManifestDesc,
}

impl Artifact {
    /// The digests of the blobs the manifest names (the empty config and the file).
    pub fn blobs(&self) -> Vec<String> {
        vec![EMPTY_DIGEST.to_string(), self.blob_digest.clone()]
    }

    /// The artifact's entry in an image layout's `index.json`.
    pub fn index_entry(&self) -> Value {
        json!({
            "mediaType": MEDIA_MANIFEST,
            "digest": self.digest,
            "size": self.manifest.len(),
            "artifactType": self.artifact_type,
            "annotations": { ANNOTATION_SUBJECT: self.subject.digest },
        })
    }
}

impl Artifact {
    /// Reads an artifact manifest back (from a layout): its type, file and subject.
    pub fn from_manifest(bytes: Vec<u8>) -> Result<Artifact, String> {
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
        let s = &v["subject"];
        let field = |v: &Value, k: &str| {
            v[k].as_str()
                .map(String::from)
                .ok_or_else(|| format!("no `{k}`"))
        };
        let layers = v["layers"].as_array().cloned().unwrap_or_default();
        let [layer] = layers.as_slice() else {
            return Err(format!(
                "an artifact strata attaches has one layer, this one has {}",
                layers.len()
            ));
        };
        Ok(Artifact {
            artifact_type: field(&v, "artifactType")?,
            digest: crate::digest::sha256_digest(&bytes),
            blob_digest: field(layer, "digest")?,
            subject: ManifestDesc {
                media_type: field(s, "mediaType").map_err(|e| format!("subject: {e}"))?,
                digest: field(s, "digest").map_err(|e| format!("subject: {e}"))?,
                size: s["size"].as_u64().ok_or("subject: no `size`")?,
            },
            manifest: bytes,
        })
    }
}

/// The referrers tag schema's tag for `subject` (`sha256:HEX` → `sha256-HEX`).
pub fn referrers_tag(subject: &str) -> Result<String, String> {
    match subject.split_once(':') {
        Some((alg, hex))
            if !alg.is_empty() && !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            // Tags are at most 128 characters: a sha256 gives 71.
            Ok(format!("{alg}-{hex}").chars().take(128).collect())
        }
        _ => Err(format!("{subject:?} is not a digest")),
    }
}

/// An artifact as the referrers API lists it: its descriptor with `artifactType` and the
/// manifest's annotations.
pub fn referrer_descriptor(a: &Artifact) -> Value {
    let annotations = serde_json::from_slice::<Value>(&a.manifest)
        .map(|v| v["annotations"].clone())
        .unwrap_or(Value::Null);
    let mut d = json!({
        "mediaType": MEDIA_MANIFEST,
        "digest": a.digest,
        "size": a.manifest.len(),
        "artifactType": a.artifact_type,
    });
    if annotations.is_object() {
        d["annotations"] = annotations;
    }
    d
}

/// The image index the referrers tag names: `manifests` sorted by digest, canonical JSON.
pub fn referrers_index(mut manifests: Vec<Value>) -> Vec<u8> {
    manifests.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    let index = json!({
        "schemaVersion": 2,
        "mediaType": super::MEDIA_INDEX,
        "manifests": manifests,
    });
    canonical_json(&index).unwrap_or_default()
}

/// The artifact manifest attaching `file` (`media_type`, named `title`) to `subject`.
/// Deterministic: `created` comes from `SOURCE_DATE_EPOCH`, the JSON is canonical.
pub fn artifact_manifest(
    artifact_type: &str,
    file: &[u8],
    title: &str,
    subject: &ManifestDesc,
    sde: u64,
) -> Artifact {
    let blob_digest = crate::digest::sha256_digest(file);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": MEDIA_EMPTY, "digest": EMPTY_DIGEST, "size": EMPTY_BLOB.len()},
        "layers": [{
            "mediaType": artifact_type,
            "digest": blob_digest,
            "size": file.len(),
            "annotations": { ANNOTATION_TITLE: title },
        }],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
        "annotations": { "org.opencontainers.image.created": rfc3339(sde) },
    });
    // A Value of strings, numbers and maps always serializes.
    let bytes = canonical_json(&manifest).unwrap_or_default();
    Artifact {
        artifact_type: artifact_type.to_string(),
        digest: crate::digest::sha256_digest(&bytes),
        manifest: bytes,
        blob_digest,
        subject: subject.clone(),
    }
}

/// True when an `index.json` entry or manifest is an artifact rather than an image: it has
/// an `artifactType`, or (for a manifest) the empty config.
pub fn is_artifact(doc: &Value) -> bool {
    doc["artifactType"].as_str().is_some_and(|s| !s.is_empty())
        || doc["config"]["mediaType"].as_str() == Some(MEDIA_EMPTY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> ManifestDesc {
        ManifestDesc {
            media_type: MEDIA_MANIFEST.into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            size: 123,
        }
    }

    #[test]
    fn empty_digest_is_the_digest_of_the_empty_blob() {
        assert_eq!(crate::digest::sha256_digest(EMPTY_BLOB), EMPTY_DIGEST);
    }

    #[test]
    fn sbom_artifact_manifest() {
        let doc = b"{\"spdxVersion\":\"SPDX-2.3\"}\n";
        let a = artifact_manifest(MEDIA_SPDX_JSON, doc, "img.spdx.json", &subject(), 0);
        let v: Value = serde_json::from_slice(&a.manifest).expect("json");
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["mediaType"], MEDIA_MANIFEST);
        assert_eq!(v["artifactType"], MEDIA_SPDX_JSON);
        assert_eq!(v["config"]["mediaType"], MEDIA_EMPTY);
        assert_eq!(v["config"]["digest"], EMPTY_DIGEST);
        assert_eq!(v["config"]["size"], 2);
        let layers = v["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], MEDIA_SPDX_JSON);
        assert_eq!(layers[0]["digest"], crate::digest::sha256_digest(doc));
        assert_eq!(layers[0]["size"], doc.len());
        assert_eq!(layers[0]["annotations"][ANNOTATION_TITLE], "img.spdx.json");
        assert_eq!(v["subject"]["digest"], subject().digest);
        assert_eq!(v["subject"]["size"], 123);
        assert_eq!(v["subject"]["mediaType"], MEDIA_MANIFEST);
        assert_eq!(
            v["annotations"]["org.opencontainers.image.created"],
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(a.digest, crate::digest::sha256_digest(&a.manifest));
        assert_eq!(
            a.blobs(),
            vec![EMPTY_DIGEST.to_string(), a.blob_digest.clone()]
        );
        assert!(is_artifact(&v));
        let e = a.index_entry();
        assert!(is_artifact(&e));
        assert_eq!(e["annotations"][ANNOTATION_SUBJECT], subject().digest);
        assert_eq!(e["size"], a.manifest.len());
        assert!(e["annotations"][crate::oci::ANNOTATION_REF_NAME].is_null());
    }

    #[test]
    fn deterministic_and_sensitive_to_its_inputs() {
        let a = artifact_manifest(MEDIA_SPDX_JSON, b"x", "t", &subject(), 5);
        let b = artifact_manifest(MEDIA_SPDX_JSON, b"x", "t", &subject(), 5);
        assert_eq!(a, b);
        let c = artifact_manifest(MEDIA_SPDX_JSON, b"y", "t", &subject(), 5);
        assert_ne!(a.digest, c.digest);
        let mut s = subject();
        s.digest = format!("sha256:{}", "b".repeat(64));
        let d = artifact_manifest(MEDIA_SPDX_JSON, b"x", "t", &s, 5);
        assert_ne!(a.digest, d.digest);
    }

    #[test]
    fn reads_back_what_it_writes() {
        let a = artifact_manifest(MEDIA_SPDX_JSON, b"doc", "t", &subject(), 5);
        assert_eq!(Artifact::from_manifest(a.manifest.clone()), Ok(a.clone()));
        let e = Artifact::from_manifest(b"{}".to_vec()).unwrap_err();
        assert!(e.contains("one layer"), "{e}");
    }

    #[test]
    fn referrers_tag_schema() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            referrers_tag(&d).unwrap(),
            format!("sha256-{}", "ab".repeat(32))
        );
        assert!(referrers_tag("latest").is_err());
        let a = artifact_manifest(MEDIA_SPDX_JSON, b"doc", "t", &subject(), 5);
        let desc = referrer_descriptor(&a);
        assert_eq!(desc["artifactType"], MEDIA_SPDX_JSON);
        assert_eq!(desc["digest"], a.digest);
        assert_eq!(
            desc["annotations"]["org.opencontainers.image.created"],
            "1970-01-01T00:00:05Z"
        );
        let b = artifact_manifest(MEDIA_SPDX_JSON, b"other", "t", &subject(), 5);
        let one = referrers_index(vec![referrer_descriptor(&a), referrer_descriptor(&b)]);
        let two = referrers_index(vec![referrer_descriptor(&b), referrer_descriptor(&a)]);
        assert_eq!(one, two, "sorted by digest");
        let v: Value = serde_json::from_slice(&one).expect("json");
        assert_eq!(v["mediaType"], crate::oci::MEDIA_INDEX);
        assert_eq!(v["manifests"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn images_are_not_artifacts() {
        let image =
            json!({"mediaType": MEDIA_MANIFEST, "config": {"mediaType": crate::oci::MEDIA_CONFIG}});
        assert!(!is_artifact(&image));
        assert!(!is_artifact(
            &json!({"mediaType": MEDIA_MANIFEST, "digest": "sha256:x"})
        ));
    }
}

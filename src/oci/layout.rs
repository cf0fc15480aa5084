//! OCI image layout directories: reading an image by tag (for `base: oci:…`, `inspect`,
//! `diff`, `verify`) and writing one atomically (blobs first, each renamed into place after
//! its digest is checked; `index.json` last, by rename), so an interrupted write leaves the
//! previous state valid.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use super::{canonical_json, ANNOTATION_REF_NAME, MEDIA_INDEX, MEDIA_MANIFEST};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}: not an OCI image layout (no oci-layout file)\n  hint: build one with `strata build RECIPE -o DIR`, or point at the directory holding `oci-layout` and `index.json`")]
    NotLayout(PathBuf),
    #[error("{path}: refusing to write an OCI layout into a non-empty directory that is not one\n  hint: choose an empty or new directory for -o")]
    NotEmpty { path: PathBuf },
    #[error("{path}: invalid {what}: {message}")]
    Invalid {
        path: PathBuf,
        what: String,
        message: String,
    },
    #[error("{path}: no image tagged {tag:?} (tags here: {available})\n  hint: use oci:{path}:TAG with one of the tags listed")]
    NoSuchTag {
        path: PathBuf,
        tag: String,
        available: String,
    },
    #[error("{path}: holds {count} images; say which one with oci:{path}:TAG")]
    Ambiguous { path: PathBuf, count: usize },
    #[error("{path}: no manifest for platform {platform}")]
    NoPlatform { path: PathBuf, platform: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T> = std::result::Result<T, LayoutError>;

/// An image found in a layout: the manifest, its descriptor and config.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    pub manifest_descriptor: Descriptor,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    pub config_bytes: Vec<u8>,
}

pub struct Layout {
    pub path: PathBuf,
    pub blobs: Store,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(path: &Path, what: &str, e: impl std::fmt::Display) -> LayoutError {
    LayoutError::Invalid {
        path: path.to_path_buf(),
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// Splits `oci:PATH[:TAG]` or `PATH[:TAG]` into path and tag. A `:` is a tag separator only
/// when what follows it has no `/`, so paths with colons in directory names still work.
pub fn parse_image_ref(spec: &str) -> (PathBuf, Option<String>) {
    let s = spec.strip_prefix("oci:").unwrap_or(spec);
    if let Some((p, t)) = s.rsplit_once(':') {
        if !t.is_empty() && !t.contains('/') && !p.is_empty() {
            return (PathBuf::from(p), Some(t.to_string()));
        }
    }
    (PathBuf::from(s), None)
}

impl Layout {
    /// Opens an existing layout for reading.
    pub fn open(path: &Path) -> Result<Layout> {
        if !path.join("oci-layout").is_file() {
            return Err(LayoutError::NotLayout(path.to_path_buf()));
        }
        Ok(Layout {
            path: path.to_path_buf(),
            blobs: Store::for_layout(path)?,
        })
    }

    /// Opens a layout for writing, creating it if needed. A non-empty directory that is not
    /// a layout is refused rather than written into.
    pub fn create(path: &Path) -> Result<Layout> {
        if path.exists() && !path.join("oci-layout").is_file() {
            let mut it = fs::read_dir(path).map_err(io_err(path))?;
            if it.next().is_some() {
                return Err(LayoutError::NotEmpty {
                    path: path.to_path_buf(),
                });
            }
        }
        fs::create_dir_all(path).map_err(io_err(path))?;
        let blobs = Store::for_layout(path)?;
        let marker = path.join("oci-layout");
        if !marker.is_file() {
            blobs.write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(Layout {
            path: path.to_path_buf(),
            blobs,
        })
    }

    pub fn index(&self) -> Result<ImageIndex> {
        let p = self.path.join("index.json");
        if !p.exists() {
            return Ok(empty_index());
        }
        let bytes = fs::read(&p).map_err(io_err(&p))?;
        serde_json::from_slice(&bytes).map_err(|e| invalid(&p, "index.json", e))
    }

    /// The images of the index, (tag, descriptor): every entry but the artifacts that
    /// refer to an image (see [`Layout::referrers`]).
    pub fn tags(&self) -> Result<Vec<(Option<String>, Descriptor)>> {
        Ok(self
            .index()?
            .manifests()
            .iter()
            .filter(|d| !descriptor_is_artifact(d))
            .map(|d| {
                let tag = d
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_REF_NAME).cloned());
                (tag, d.clone())
            })
            .collect())
    }

    /// The artifacts of the index that refer to the manifest `digest` (their entries carry
    /// [`super::artifact::ANNOTATION_SUBJECT`]), sorted by digest.
    pub fn referrers(&self, digest: &str) -> Result<Vec<Descriptor>> {
        let mut out: Vec<Descriptor> = self
            .index()?
            .manifests()
            .iter()
            .filter(|d| {
                descriptor_is_artifact(d)
                    && d.annotations()
                        .as_ref()
                        .and_then(|a| a.get(super::artifact::ANNOTATION_SUBJECT))
                        .map(String::as_str)
                        == Some(digest)
            })
            .cloned()
            .collect();
        out.sort_by_key(|a| a.digest().to_string());
        Ok(out)
    }

    fn write_index(&self, index: &ImageIndex) -> Result<()> {
        let bytes = canonical_json(index).map_err(|e| invalid(&self.path, "index.json", e))?;
        let path = self.path.join("index.json");
        // A rebuild that changes nothing leaves the index as it is (no write, no fsync).
        if fs::read(&path).is_ok_and(|old| old == bytes) {
            return Ok(());
        }
        self.blobs.write_atomic(&path, &bytes)?;
        Ok(())
    }

    /// Finds the image for `tag` (or the only image) and `platform` (`os/arch[/variant]`),
    /// following a nested index when the tag names a multi-platform image.
    pub fn resolve(&self, tag: Option<&str>, platform: &str) -> Result<ResolvedImage> {
        let tags = self.tags()?;
        let desc = match tag {
            Some(t) => tags
                .iter()
                .find(|(name, _)| name.as_deref() == Some(t))
                .map(|(_, d)| d.clone())
                .ok_or_else(|| LayoutError::NoSuchTag {
                    path: self.path.clone(),
                    tag: t.to_string(),
                    available: tags
                        .iter()
                        .filter_map(|(n, _)| n.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?,
            None if tags.len() == 1 => tags[0].1.clone(),
            None => {
                return Err(LayoutError::Ambiguous {
                    path: self.path.clone(),
                    count: tags.len(),
                })
            }
        };
        let desc = self.pick_platform(desc, platform)?;
        let digest = desc.digest().to_string();
        let bytes = self.blobs.read_blob(&digest)?;
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| invalid(&self.path, "manifest", e))?;
        let cdigest = manifest.config().digest().to_string();
        let config_bytes = self.blobs.read_blob(&cdigest)?;
        let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
            .map_err(|e| invalid(&self.path, "image config", e))?;
        Ok(ResolvedImage {
            manifest_descriptor: desc,
            manifest,
            config,
            config_bytes,
        })
    }

    fn pick_platform(&self, desc: Descriptor, platform: &str) -> Result<Descriptor> {
        if desc.media_type().to_string() != MEDIA_INDEX {
            return Ok(desc);
        }
        let bytes = self.blobs.read_blob(desc.digest().as_ref())?;
        let index: ImageIndex =
            serde_json::from_slice(&bytes).map_err(|e| invalid(&self.path, "image index", e))?;
        index
            .manifests()
            .iter()
            .find(|m| {
                m.platform().as_ref().is_some_and(|p| {
                    let mut s = format!("{}/{}", p.os(), p.architecture());
                    if let Some(v) = p.variant() {
                        s = format!("{s}/{v}");
                    }
                    s == platform || (platform.matches('/').count() == 1 && s.starts_with(platform))
                })
            })
            .cloned()
            .ok_or_else(|| LayoutError::NoPlatform {
                path: self.path.clone(),
                platform: platform.to_string(),
            })
    }

    /// Copies `digests` from `from` into this layout, verifying each.
    pub fn import_blobs(&self, from: &Store, digests: &[String]) -> Result<()> {
        for d in digests {
            self.blobs.import_blob(from, d)?;
        }
        Ok(())
    }

    /// Points `tag` at `manifest` in `index.json` (replacing what the tag named before),
    /// by writing a new index and renaming it over the old one.
    pub fn set_tag(&self, tag: &str, manifest: Descriptor) -> Result<()> {
        self.publish(tag, manifest, &[])
    }

    /// [`Layout::set_tag`], and lists `artifacts` (their blobs already imported) untagged in
    /// the same write of `index.json`. An artifact entry whose subject is no longer one of
    /// the layout's images (the tag it referred to now names another image), or that is of
    /// the same type and subject as a new one, is dropped: a rebuild replaces its SBOM
    /// rather than piling them up.
    pub fn publish(
        &self,
        tag: &str,
        manifest: Descriptor,
        artifacts: &[super::artifact::Artifact],
    ) -> Result<()> {
        let mut index = self.index()?;
        let mut desc = manifest;
        let mut ann = desc.annotations().clone().unwrap_or_default();
        ann.insert(ANNOTATION_REF_NAME.to_string(), tag.to_string());
        desc.set_annotations(Some(ann));
        let mut manifests: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| {
                descriptor_is_artifact(d)
                    || d.annotations()
                        .as_ref()
                        .and_then(|a| a.get(ANNOTATION_REF_NAME))
                        .map(String::as_str)
                        != Some(tag)
            })
            .cloned()
            .collect();
        manifests.push(desc);
        // The manifests the images name: their roots and, for an index, its children.
        let mut images: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        for d in manifests.iter().filter(|d| !descriptor_is_artifact(d)) {
            images.insert(d.digest().to_string());
            if d.media_type().to_string() == MEDIA_INDEX {
                if let Ok(bytes) = self.blobs.read_blob(d.digest().as_ref()) {
                    if let Ok(child) = serde_json::from_slice::<ImageIndex>(&bytes) {
                        images.extend(child.manifests().iter().map(|m| m.digest().to_string()));
                    }
                }
            }
        }
        let subject_of = |d: &Descriptor| {
            d.annotations()
                .as_ref()
                .and_then(|a| a.get(super::artifact::ANNOTATION_SUBJECT))
                .cloned()
        };
        manifests.retain(|d| {
            if !descriptor_is_artifact(d) {
                return true;
            }
            let subject = subject_of(d);
            let kind = d.artifact_type().as_ref().map(|t| t.to_string());
            let replaced = artifacts.iter().any(|a| {
                a.digest == d.digest().to_string()
                    || (Some(&a.subject.digest) == subject.as_ref()
                        && Some(&a.artifact_type) == kind.as_ref())
            });
            // Entries other tools wrote without the annotation are kept as they are.
            !replaced && subject.as_ref().is_none_or(|s| images.contains(s))
        });
        for a in artifacts {
            let entry: Descriptor = serde_json::from_value(a.index_entry())
                .map_err(|e| invalid(&self.path, "artifact descriptor", e))?;
            manifests.push(entry);
        }
        index.set_manifests(manifests);
        self.write_index(&index)
    }
}

/// An `index.json` entry for an artifact: it has an `artifactType`.
pub fn descriptor_is_artifact(d: &Descriptor) -> bool {
    d.artifact_type()
        .as_ref()
        .is_some_and(|t| !t.to_string().is_empty())
}

pub fn empty_index() -> ImageIndex {
    serde_json::from_value(serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": []
    }))
    .unwrap_or_default()
}

/// `MEDIA_MANIFEST` as oci-spec's type.
pub fn manifest_media_type() -> oci_spec::image::MediaType {
    oci_spec::image::MediaType::from(MEDIA_MANIFEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs() {
        let cases = [
            ("oci:out/hello", ("out/hello", None)),
            ("oci:out/hello:v1", ("out/hello", Some("v1"))),
            ("out/hello:latest", ("out/hello", Some("latest"))),
            ("/a:b/c", ("/a:b/c", None)),
        ];
        for (input, (path, tag)) in cases {
            let (p, t) = parse_image_ref(input);
            assert_eq!(p, PathBuf::from(path), "{input}");
            assert_eq!(t.as_deref(), tag, "{input}");
        }
    }

    #[test]
    fn refuses_non_layout_non_empty_dir() {
        let d = tempfile::tempdir().expect("tmp");
        fs::write(d.path().join("precious"), b"x").expect("write");
        assert!(matches!(
            Layout::create(d.path()),
            Err(LayoutError::NotEmpty { .. })
        ));
        assert_eq!(fs::read(d.path().join("precious")).expect("kept"), b"x");
    }
}

//! `strata load`: an image of an OCI layout, written as a docker-archive (the one format
//! every engine version loads, 20.10 included) to a temp file and posted to
//! `/images/load`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::{parse_progress, Engine, RequestBody};
use crate::oci::archive::{write_docker_archive, ImageRef, LayerRef};
use crate::oci::layout::parse_image_ref;
use crate::oci::Layout;

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// `name:tag` given to the image in the engine.
    pub repo_tag: String,
    pub manifest_digest: String,
    /// The engine's image ID (the config digest).
    pub image_id: String,
    /// What the engine said (`Loaded image: …`).
    pub messages: Vec<String>,
}

/// The engine's platform name for this machine's architecture.
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    };
    format!("linux/{arch}")
}

/// The default `name:tag` for a layout image: the layout directory's name and the tag.
pub fn default_repo_tag(layout: &Path, tag: Option<&str>) -> String {
    let name = layout
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "image".to_string());
    format!("{name}:{}", tag.unwrap_or("latest"))
}

/// Loads `spec` (`[oci:]DIR[:TAG]`) into the engine as `repo_tag` (default: see
/// `default_repo_tag`).
pub fn load_image(engine: &Engine, spec: &str, repo_tag: Option<&str>) -> Result<LoadReport> {
    let (path, tag) = parse_image_ref(spec);
    let layout = Layout::open(&path)?;
    let resolved = layout.resolve(tag.as_deref(), &host_platform())?;
    let config: serde_json::Value = serde_json::from_slice(&resolved.config_bytes)
        .with_context(|| format!("{}: image config", path.display()))?;
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let descs = resolved.manifest.layers();
    if diff_ids.len() != descs.len() {
        bail!(
            "{}: the image has {} layers but {} diff_ids in its config",
            path.display(),
            descs.len(),
            diff_ids.len()
        );
    }
    let image = ImageRef {
        manifest_digest: resolved.manifest_descriptor.digest().to_string(),
        manifest_size: resolved.manifest_descriptor.size(),
        config_digest: resolved.manifest.config().digest().to_string(),
        layers: descs
            .iter()
            .zip(diff_ids)
            .map(|(d, diff_id)| LayerRef {
                digest: d.digest().to_string(),
                diff_id,
                media_type: d.media_type().to_string(),
                size: d.size(),
            })
            .collect(),
        platform: host_platform(),
    };
    let repo_tag = match repo_tag {
        Some(t) => t.to_string(),
        None => default_repo_tag(&path, tag.as_deref()),
    };
    check_repo_tag(&repo_tag)?;
    let tmp = tempfile::Builder::new()
        .prefix(".strata-load-")
        .suffix(".tar")
        .tempfile_in(&path)
        .with_context(|| format!("creating a temp file in {}", path.display()))?;
    // Any fixed mtime will do: the archive is not kept.
    write_docker_archive(&layout.blobs, &image, &repo_tag, 0, tmp.path())
        .with_context(|| format!("writing a docker archive of {spec}"))?;
    let r = engine.request(
        "POST",
        "/images/load?quiet=1",
        RequestBody::File(tmp.path(), "application/x-tar"),
    )?;
    if r.status != 200 {
        bail!(
            "Docker engine refused the image: HTTP {}: {}",
            r.status,
            r.message()
        );
    }
    let messages =
        parse_progress(&r.body).with_context(|| format!("Docker engine: loading {repo_tag}"))?;
    Ok(LoadReport {
        repo_tag,
        manifest_digest: image.manifest_digest,
        image_id: image.config_digest,
        messages,
    })
}

/// A Docker `name:tag`: lowercase name components, a tag (pure).
pub fn check_repo_tag(repo_tag: &str) -> Result<()> {
    let hint = "write NAME:TAG, e.g. hello:latest (lowercase name)";
    let Some((name, tag)) = repo_tag.rsplit_once(':').filter(|(n, _)| !n.contains('@')) else {
        bail!("`{repo_tag}` has no tag\n  hint: {hint}");
    };
    let probe = format!("localhost/{name}:{tag}");
    let parses = crate::registry::Reference::parse(repo_tag).is_ok()
        || crate::registry::Reference::parse(&probe).is_ok();
    if name.is_empty() || tag.contains('/') || !parses {
        bail!("`{repo_tag}` is not a valid image name\n  hint: {hint}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_tags() {
        assert_eq!(
            default_repo_tag(Path::new("out/hello"), Some("v1")),
            "hello:v1"
        );
        assert_eq!(
            default_repo_tag(Path::new("out/Hello"), None),
            "hello:latest"
        );
        for ok in ["hello:latest", "team/app:1.0", "localhost:5000/app:x"] {
            check_repo_tag(ok).unwrap_or_else(|e| panic!("{ok}: {e:#}"));
        }
        for bad in ["hello", "Hello:1", "a:b/c", ":x", "a:"] {
            assert!(check_repo_tag(bad).is_err(), "{bad}");
        }
    }
}

//! What `strata lab` commands share: the lab's state directory in the cache, its images
//! (built by strata and handed to the engine), its cached minion keys, and running work so
//! that Ctrl-C or SIGTERM tears the lab down instead of leaving it behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};

use super::backend::Backend;
use super::plan::KeyPair;
use super::run::{LabError, INTERRUPTED};
use super::spec::{ImageSource, Lab};
use crate::build::{self, BuildObserver, BuildOptions, OutputFormat};
use crate::docker::{Engine, RequestBody};

/// The lab's directory in the cache: built images, keys, package repositories.
pub fn state_dir(cache_dir: &Path, lab: &Lab) -> PathBuf {
    cache_dir.join("lab").join(&lab.name)
}

/// The engine's name for a lab image: `strata-lab/LAB-IMAGE:latest`.
pub fn image_tag(lab: &str, image: &str) -> String {
    format!("strata-lab/{lab}-{}:latest", image.to_ascii_lowercase())
}

/// A built or given image and how it reached the engine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PreparedImage {
    pub name: String,
    pub repo_tag: String,
    pub manifest_digest: String,
    /// The image's id: the digest of its config, as Docker names images.
    pub image_id: String,
    /// Whether the engine already held it.
    pub already_loaded: bool,
}

/// Builds every recipe image of the lab (an unchanged recipe is a cache hit), writes it as
/// an OCI layout in the lab's state directory and loads it into the engine, unless the
/// engine already has exactly that image under the lab's tag.
pub fn prepare_images(
    lab: &Lab,
    opts: &BuildOptions,
    engine: &Engine,
    obs: &dyn BuildObserver,
) -> Result<Vec<PreparedImage>> {
    let dir = state_dir(&opts.cache_dir, lab).join("images");
    let mut out = Vec::new();
    for (name, source) in &lab.images {
        let repo_tag = image_tag(&lab.name, name);
        let (layout, tag) = match source {
            ImageSource::Recipe(recipe) => {
                let loaded = crate::recipe::load(recipe)?;
                let built = build::build(&loaded, opts, obs).with_context(|| {
                    format!("building image `{name}` of {}", lab.file.display())
                })?;
                let layout = dir.join(name);
                build::write_output(&built, OutputFormat::Oci, &layout)?;
                (layout, Some(built.tag.clone()))
            }
            ImageSource::Layout { path, tag } => (path.clone(), tag.clone()),
        };
        let spec = match &tag {
            Some(t) => format!("oci:{}:{t}", layout.display()),
            None => format!("oci:{}", layout.display()),
        };
        let config = crate::oci::Layout::open(&layout)?
            .resolve(tag.as_deref(), &crate::docker::load::host_platform())?;
        let manifest_digest = config.manifest_descriptor.digest().to_string();
        let config_digest = config.manifest.config().digest().to_string();
        let already_loaded = engine_image_id(engine, &repo_tag)?.as_deref() == Some(&config_digest);
        if !already_loaded {
            crate::docker::load_image(engine, &spec, Some(&repo_tag))
                .with_context(|| format!("loading image `{name}` into the Docker engine"))?;
        }
        out.push(PreparedImage {
            name: name.clone(),
            repo_tag,
            manifest_digest,
            image_id: config_digest,
            already_loaded,
        });
    }
    Ok(out)
}

/// The engine's image id for `repo_tag`, if it has one.
fn engine_image_id(engine: &Engine, repo_tag: &str) -> Result<Option<String>> {
    let r = engine.request(
        "GET",
        &format!("/images/{repo_tag}/json"),
        RequestBody::Empty,
    )?;
    if r.status == 404 {
        return Ok(None);
    }
    anyhow::ensure!(
        r.status == 200,
        "Docker engine: inspecting {repo_tag}: HTTP {}: {}",
        r.status,
        r.message()
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body)?;
    Ok(v["Id"].as_str().map(String::from))
}

/// Minion keys, kept in the lab's state directory (`keys/ID.pem`, mode 0600) so a lab of
/// 50 minions does not wait for 50 RSA keys on every `up`. Missing ones are made in
/// parallel; a key that does not parse is replaced.
pub fn keys(state: &Path, ids: &[String]) -> Result<BTreeMap<String, KeyPair>> {
    let dir = state.join("keys");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = BTreeMap::new();
    let mut missing = Vec::new();
    for id in ids {
        let path = dir.join(format!("{id}.pem"));
        match std::fs::read_to_string(&path)
            .ok()
            .and_then(|pem| pair_of(&pem))
        {
            Some(k) => {
                out.insert(id.clone(), k);
            }
            None => missing.push(id.clone()),
        }
    }
    let made = super::keys::generate_all(&missing).map_err(|e| anyhow::anyhow!(e))?;
    for (id, k) in made {
        let path = dir.join(format!("{id}.pem"));
        write_private(&path, k.private_pem.as_bytes())?;
        out.insert(id, k);
    }
    Ok(out)
}

fn pair_of(private_pem: &str) -> Option<KeyPair> {
    let private = rsa::RsaPrivateKey::from_pkcs1_pem(private_pem).ok()?;
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .ok()?;
    Some(KeyPair {
        private_pem: private_pem.to_string(),
        public_pem,
    })
}

/// The store's atomic write: its temp file is created with mode 0600, which the key keeps.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::store::write_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// From now on, SIGINT and SIGTERM set [`INTERRUPTED`] instead of killing the process, so
/// the running command can remove the lab before it exits.
pub fn catch_signals() -> Result<()> {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, std::sync::Arc::clone(&INTERRUPTED))
            .context("installing a signal handler")?;
    }
    Ok(())
}

/// How often a guarded command looks for a signal.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// Runs `work` on a thread; when a signal arrives first, removes the lab's containers and
/// network (which also ends any exec in progress), waits for `work` to stop and returns
/// [`LabError::Interrupted`].
pub fn guarded<T: Send>(
    b: &dyn Backend,
    lab: &str,
    work: impl FnOnce() -> std::result::Result<T, LabError> + Send,
) -> std::result::Result<T, LabError> {
    std::thread::scope(|s| {
        let h = s.spawn(work);
        while !h.is_finished() {
            if INTERRUPTED.load(Ordering::SeqCst) {
                eprintln!("interrupted: removing lab {lab}");
                let _ = super::run::down(b, lab);
                let _ = h.join();
                return Err(LabError::Interrupted);
            }
            std::thread::sleep(SIGNAL_POLL);
        }
        h.join()
            .unwrap_or_else(|_| Err(LabError::Salt("the lab command panicked".into())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_once_and_then_read_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let ids = vec!["a".to_string(), "b".to_string()];
        let first = keys(dir.path(), &ids).expect("keys");
        assert_eq!(first.len(), 2);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("keys/a.pem"))
                .expect("a.pem")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        // A damaged key is replaced; the good one is kept.
        std::fs::write(dir.path().join("keys/b.pem"), "garbage").expect("write");
        let second = keys(dir.path(), &ids).expect("keys");
        assert_eq!(second["a"], first["a"]);
        assert_ne!(second["b"], first["b"]);
        assert!(second["b"]
            .public_pem
            .starts_with("-----BEGIN PUBLIC KEY-----"));
    }

    #[test]
    fn image_tags_are_lowercase_docker_names() {
        assert_eq!(
            image_tag("seed", "minion-Trixie"),
            "strata-lab/seed-minion-trixie:latest"
        );
        crate::docker::load::check_repo_tag(&image_tag("seed", "minion-trixie")).expect("valid");
    }
}

//! Recipe → image: resolves each layer's entries, reuses cached layers by key, writes the
//! rest in parallel into the store, then assembles config and manifest. Output forms are
//! written by `oci`; this module only decides what the image is.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use serde_json::{json, Map, Value};

use crate::layer::{decompressor, write_layer, Compression, Entry, EntryKind};
use crate::oci::archive::{ImageRef, LayerRef};
use crate::oci::artifact::ManifestDesc;
use crate::oci::layout::parse_image_ref;
use crate::oci::{
    canonical_json, rfc3339, Layout, ANNOTATION_COMPRESSOR, MEDIA_CONFIG, MEDIA_INDEX,
    MEDIA_MANIFEST,
};
use crate::recipe::{self, FileDigester, LoadedRecipe};
use crate::registry::{self, ClientOptions, PullOptions, Reference};
use crate::store::{CachedLayer, StatCache, Store};

/// Bumped whenever the bytes strata writes for the same entries change (tar flavour,
/// header choices): old cache entries then simply stop matching.
pub const LAYER_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub cache_dir: PathBuf,
    pub compression: Compression,
    /// Overrides the recipe's tag.
    pub tag: Option<String>,
    /// `SOURCE_DATE_EPOCH` from the environment, used when the recipe has none.
    pub source_date_epoch_env: Option<String>,
    /// How to treat the recipe's lockfile (`--locked`, `--offline`).
    pub policy: crate::lockfile::LockPolicy,
    /// For a recipe with a `debian` step: where indices come from.
    pub debian: crate::debian::DebianBuildOptions,
    /// How to reach registries for `registry://` bases.
    pub registry: ClientOptions,
    /// `--platform`: of a multi-platform recipe, build only this platform (a single
    /// manifest, no index).
    pub platform: Option<String>,
}

/// Told about progress; the CLI draws bars with it.
pub trait BuildObserver: Sync {
    fn layers_planned(&self, _names: &[String]) {}
    fn layer_finished(&self, _index: usize, _report: &LayerReport) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl BuildObserver for Quiet {}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerReport {
    pub name: String,
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    /// `cached`, `built`, or `base`.
    pub source: &'static str,
    pub entries: usize,
}

/// One platform's image of a build.
pub struct PlatformImage {
    pub image: ImageRef,
    pub layers: Vec<LayerReport>,
    /// The SPDX document of the `debian` step's packages, and the artifact that attaches
    /// it to `image` (all blobs in the store).
    pub sbom: Option<Sbom>,
}

/// An SBOM and its artifact manifest.
pub struct Sbom {
    pub document: Vec<u8>,
    pub artifact: crate::oci::artifact::Artifact,
}

/// A built image (one manifest, or an index of one manifest per platform), its blobs in
/// `store`.
pub struct Built {
    pub store: Store,
    /// One per platform, in the recipe's order.
    pub images: Vec<PlatformImage>,
    /// The image index over `images`, for a recipe with `platforms` (unless `--platform`
    /// picked one).
    pub index: Option<ManifestDesc>,
    pub name: String,
    pub tag: String,
    pub source_date_epoch: u64,
}

impl Built {
    /// `name:tag`, as Docker wants it.
    pub fn repo_tag(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// The first (for a single-platform build, the only) image.
    pub fn image(&self) -> &ImageRef {
        &self.images[0].image
    }

    /// What the build made: the index, else the one manifest.
    pub fn root(&self) -> ManifestDesc {
        match &self.index {
            Some(i) => i.clone(),
            None => ManifestDesc {
                media_type: MEDIA_MANIFEST.to_string(),
                digest: self.image().manifest_digest.clone(),
                size: self.image().manifest_size,
            },
        }
    }

    /// The SBOM artifacts, one per platform image that has one.
    pub fn artifacts(&self) -> Vec<&crate::oci::artifact::Artifact> {
        self.images
            .iter()
            .filter_map(|i| i.sbom.as_ref().map(|s| &s.artifact))
            .collect()
    }

    /// Every blob the output needs: manifests, configs, layers, index, artifacts.
    pub fn blob_digests(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.images {
            out.extend(p.image.layers.iter().map(|l| l.digest.clone()));
            out.push(p.image.config_digest.clone());
            out.push(p.image.manifest_digest.clone());
            if let Some(s) = &p.sbom {
                out.extend(s.artifact.blobs());
                out.push(s.artifact.digest.clone());
            }
        }
        if let Some(i) = &self.index {
            out.push(i.digest.clone());
        }
        out.sort();
        out.dedup();
        out
    }
}

impl FileDigester for StatCache {
    fn sha256(&self, path: &Path, meta: &std::fs::Metadata) -> std::io::Result<String> {
        StatCache::sha256(self, path, meta)
    }
}

struct BaseImage {
    layers: Vec<LayerRef>,
    config: Value,
    manifest_digest: String,
}

fn load_base(
    loaded: &LoadedRecipe,
    store: &Store,
    opts: &BuildOptions,
) -> Result<Option<BaseImage>> {
    let base = loaded.recipe.base.trim();
    let parsed = recipe::parse_base(base).map_err(|p| {
        anyhow::anyhow!(
            "{}: base: {}\n  hint: {}",
            loaded.file.display(),
            p.message,
            p.hint
        )
    })?;
    match parsed {
        recipe::Base::Scratch => Ok(None),
        recipe::Base::Oci { .. } => oci_base(loaded, store, base).map(Some),
        recipe::Base::Registry(_) => {
            // The digest comes from the recipe or the lock (resolving the tag if allowed).
            let pinned =
                crate::lockfile::base::ensure_base(loaded, opts.policy, &opts.registry, store)?
                    .context("the registry base has no reference")?;
            registry_base(loaded, store, &pinned, opts).map(Some)
        }
    }
}

fn oci_base(loaded: &LoadedRecipe, store: &Store, base: &str) -> Result<BaseImage> {
    let (rel, tag) = parse_image_ref(base);
    let path = loaded.dir.join(rel);
    let layout = Layout::open(&path)
        .with_context(|| format!("{}: base image {base:?}", loaded.file.display()))?;
    let resolved = layout.resolve(tag.as_deref(), &loaded.recipe.platform)?;
    let config: Value = serde_json::from_slice(&resolved.config_bytes)
        .with_context(|| format!("{}: base image config", path.display()))?;
    let descs: Vec<Value> = resolved
        .manifest
        .layers()
        .iter()
        .map(|d| json!({"digest": d.digest().to_string(), "mediaType": d.media_type().to_string(), "size": d.size()}))
        .collect();
    for d in &descs {
        let digest = d["digest"].as_str().unwrap_or_default();
        store
            .import_blob(&layout.blobs, digest)
            .with_context(|| format!("{}: base layer {digest}", path.display()))?;
    }
    base_image(
        &path.display().to_string(),
        config,
        &descs,
        resolved.manifest_descriptor.digest().to_string(),
    )
}

/// A base from a registry, pinned by digest (`r` carries it): pulled into the cache (each
/// blob verified), so a second build needs no network. `--offline` never connects.
fn registry_base(
    loaded: &LoadedRecipe,
    store: &Store,
    r: &Reference,
    opts: &BuildOptions,
) -> Result<BaseImage> {
    let what = format!("{}: base registry://{r}", loaded.file.display());
    let pull_opts = PullOptions {
        client: opts.registry.clone(),
        platform: Some(loaded.recipe.platform.clone()),
        offline: opts.policy.offline,
    };
    let pulled = registry::pull(r, store, &pull_opts).with_context(|| what.clone())?;
    let mut digest = pulled.digest.clone();
    let mut doc: Value = serde_json::from_slice(&store.read_blob(&digest)?)
        .with_context(|| format!("{what}: manifest"))?;
    if registry::is_index_media_type(&pulled.media_type) {
        let want = &loaded.recipe.platform;
        let entry = doc["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| {
                let p = &m["platform"];
                let mut have = format!(
                    "{}/{}",
                    p["os"].as_str().unwrap_or(""),
                    p["architecture"].as_str().unwrap_or("")
                );
                if let Some(v) = p["variant"].as_str() {
                    have = format!("{have}/{v}");
                }
                registry::pull::platform_matches(&have, want)
            })
            .with_context(|| format!("{what}: no manifest for platform {want}"))?;
        digest = entry["digest"].as_str().unwrap_or_default().to_string();
        doc = serde_json::from_slice(&store.read_blob(&digest)?)
            .with_context(|| format!("{what}: manifest {digest}"))?;
    }
    let config_digest = doc["config"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let config: Value = serde_json::from_slice(&store.read_blob(&config_digest)?)
        .with_context(|| format!("{what}: config"))?;
    let descs: Vec<Value> = doc["layers"].as_array().cloned().unwrap_or_default();
    // The annotation names what the recipe pinned (an index, or a manifest).
    base_image(&what, config, &descs, pulled.digest)
}

/// Docker's name for a gzip layer becomes OCI's (the same bytes), since the manifest strata
/// writes is an OCI one.
fn oci_layer_media_type(mt: &str) -> String {
    match mt {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.v1.tar+gzip".to_string()
        }
        other => other.to_string(),
    }
}

fn base_image(
    what: &str,
    config: Value,
    descs: &[Value],
    manifest_digest: String,
) -> Result<BaseImage> {
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != descs.len() {
        bail!(
            "{what}: base image has {} layers but {} diff_ids in its config",
            descs.len(),
            diff_ids.len()
        );
    }
    let mut layers = Vec::new();
    for (d, diff_id) in descs.iter().zip(diff_ids) {
        layers.push(LayerRef {
            digest: d["digest"].as_str().unwrap_or_default().to_string(),
            diff_id,
            media_type: oci_layer_media_type(d["mediaType"].as_str().unwrap_or_default()),
            size: d["size"].as_u64().unwrap_or_default(),
        });
    }
    Ok(BaseImage {
        layers,
        config,
        manifest_digest,
    })
}

/// The layer cache key: everything that determines the layer's bytes. Streamed into the
/// hash (entries serialize in a fixed field order and hold no maps), so a tree of many
/// thousand files costs no intermediate document.
fn layer_key(entries: &[Entry], compression: Compression) -> Result<String> {
    use std::io::Write;
    let mut h = crate::digest::HashingWriter::new(std::io::sink());
    write!(
        h,
        "{{\"format\":{},\"compressor\":{},\"entries\":",
        serde_json::to_string(&LAYER_FORMAT_VERSION)?,
        serde_json::to_string(&compression.compressor_id())?
    )?;
    serde_json::to_writer(std::io::BufWriter::with_capacity(1 << 16, &mut h), entries)?;
    h.write_all(b"}")?;
    Ok(h.finish().1)
}

fn build_layer(
    store: &Store,
    name: &str,
    entries: &[Entry],
    compression: Compression,
) -> Result<(LayerRef, LayerReport)> {
    let key = layer_key(entries, compression)?;
    let (rec, source) = match store.cached_layer(&key) {
        Some(rec) => (rec, "cached"),
        None => {
            let w = store.blob_writer()?;
            let (w, d) = write_layer(entries, compression, w)
                .with_context(|| format!("writing layer {name}"))?;
            w.commit(Some(&d.digest))?;
            let rec = CachedLayer {
                digest: d.digest,
                diff_id: d.diff_id,
                size: d.size,
                media_type: compression.media_type().to_string(),
                compressor: compression.compressor_id(),
            };
            store.put_cached_layer(&key, &rec)?;
            (rec, "built")
        }
    };
    Ok((
        LayerRef {
            digest: rec.digest.clone(),
            diff_id: rec.diff_id.clone(),
            media_type: rec.media_type.clone(),
            size: rec.size,
        },
        LayerReport {
            name: name.to_string(),
            digest: rec.digest,
            diff_id: rec.diff_id,
            size: rec.size,
            source,
            entries: entries.len(),
        },
    ))
}

/// The symlinks and directories the base image's layers leave, whiteouts applied.
fn base_tree(store: &Store, base: Option<&BaseImage>) -> Result<crate::debian::LowerTree> {
    let mut tree = crate::debian::LowerTree::default();
    let Some(base) = base else { return Ok(tree) };
    for l in &base.layers {
        let blob = store.open_blob(&l.digest)?;
        let mut ar = tar::Archive::new(decompressor(&l.media_type, blob)?);
        for e in ar.entries()? {
            let e = e?;
            let raw = e.path()?.to_string_lossy().into_owned();
            let p = raw.trim_start_matches("./").trim_matches('/');
            if p.is_empty() || p == "." {
                continue;
            }
            let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
            let under = |n: &str| {
                if dir.is_empty() {
                    n.to_string()
                } else {
                    format!("{dir}/{n}")
                }
            };
            if name == ".wh..wh..opq" {
                tree.remove_tree(dir, false);
            } else if let Some(n) = name.strip_prefix(".wh.") {
                tree.remove_tree(&under(n), true);
            } else if e.header().entry_type().is_dir() {
                tree.dir(p);
            } else if e.header().entry_type().is_symlink() {
                let target = e
                    .link_name()?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                tree.symlink(p, &target);
            } else {
                tree.remove_tree(p, true);
            }
        }
    }
    Ok(tree)
}

/// Text of `path` (relative, e.g. `etc/passwd`) as the image has it: the last recipe layer
/// holding it, else the topmost base layer holding it.
fn file_in_image(
    store: &Store,
    base: Option<&BaseImage>,
    recipe_layers: &[(String, Vec<Entry>)],
    path: &str,
) -> Result<Option<String>> {
    for (_, entries) in recipe_layers.iter().rev() {
        if let Some(e) = entries.iter().find(|e| e.path == path) {
            return Ok(match &e.kind {
                EntryKind::File { content, .. } => Some(read_content(content)?),
                _ => None,
            });
        }
    }
    let Some(base) = base else { return Ok(None) };
    for l in base.layers.iter().rev() {
        let blob = store.open_blob(&l.digest)?;
        let mut ar = tar::Archive::new(decompressor(&l.media_type, blob)?);
        for e in ar.entries()? {
            let mut e = e?;
            let p = e
                .path()?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            if p == path && e.header().entry_type().is_file() {
                let mut s = String::new();
                e.read_to_string(&mut s)
                    .with_context(|| format!("base image /{path} is not UTF-8"))?;
                return Ok(Some(s));
            }
        }
    }
    Ok(None)
}

fn read_content(c: &crate::layer::Content) -> Result<String> {
    Ok(match c {
        crate::layer::Content::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        crate::layer::Content::Path { path, .. } => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
    })
}

/// The platforms a build makes: the recipe's `platforms` (or its one `platform`), narrowed
/// to `--platform` when given. The flag must name one of the recipe's platforms.
pub fn build_platforms(loaded: &LoadedRecipe, flag: Option<&str>) -> Result<Vec<String>> {
    let r = &loaded.recipe;
    let all: Vec<String> = if r.platforms.is_empty() {
        vec![r.platform.clone()]
    } else {
        r.platforms.clone()
    };
    let Some(want) = flag else { return Ok(all) };
    match all
        .iter()
        .find(|p| registry::pull::platform_matches(p, want))
    {
        Some(p) => Ok(vec![p.clone()]),
        None => bail!(
            "--platform {want}: {} builds {}\n  hint: pass one of them to --platform, or leave the flag out",
            loaded.file.display(),
            all.join(", ")
        ),
    }
}

/// Builds the recipe's image into the store at `opts.cache_dir`: one image per platform,
/// under an image index when the recipe lists `platforms` and `--platform` did not pick
/// one. Layers that do not depend on the platform (copy, file, ...) come out the same for
/// each, so the platforms share those blobs.
pub fn build(loaded: &LoadedRecipe, opts: &BuildOptions, obs: &dyn BuildObserver) -> Result<Built> {
    let r = &loaded.recipe;
    let sde = recipe::effective_source_date_epoch(r, opts.source_date_epoch_env.as_deref())
        .map_err(|e| anyhow::anyhow!("{}: {e}", loaded.file.display()))?;
    let platforms = build_platforms(loaded, opts.platform.as_deref())?;
    let store = Store::open(&opts.cache_dir)
        .with_context(|| format!("opening the cache at {}", opts.cache_dir.display()))?;
    let _lock = store.lock(false)?;
    let stat = StatCache::load(&store);
    // The `debian` step's lock covers every architecture of the recipe, even when
    // `--platform` builds one: one lock, one resolution per architecture.
    let debian_locks = crate::debian::ensure_lock(
        &loaded.file,
        r,
        opts.policy,
        &opts.debian.index,
        &store,
        &crate::debian::fetch::HttpFetcher::new(),
    )?;
    let mut images = Vec::new();
    for p in &platforms {
        // `platforms` is kept: a python step of a multi-platform recipe reads the lock of
        // this platform's architecture.
        let mut one = loaded.clone();
        one.recipe.platform = p.clone();
        let multi = !r.platforms.is_empty();
        let image = build_platform(&one, &store, &stat, opts, obs, sde, &debian_locks);
        images.push(if multi {
            image.with_context(|| format!("platform {p}"))?
        } else {
            image?
        });
    }
    if let Err(e) = stat.save() {
        // The stat cache is a shortcut; failing to save it costs speed, never correctness.
        eprintln!("warning: could not save the stat cache: {e}");
    }
    let index = if r.platforms.is_empty() || opts.platform.is_some() {
        None
    } else {
        let doc = image_index(&images);
        let bytes = canonical_json(&doc)?;
        let digest = store.put_bytes(&bytes)?;
        Some(ManifestDesc {
            media_type: MEDIA_INDEX.to_string(),
            digest,
            size: bytes.len() as u64,
        })
    };
    Ok(Built {
        store,
        images,
        index,
        name: r.name.clone(),
        tag: opts.tag.clone().unwrap_or_else(|| r.tag.clone()),
        source_date_epoch: sde,
    })
}

/// The image index over one manifest per platform, each with its `platform`.
pub fn image_index(images: &[PlatformImage]) -> Value {
    let manifests: Vec<Value> = images
        .iter()
        .map(|p| {
            json!({
                "mediaType": MEDIA_MANIFEST,
                "digest": p.image.manifest_digest,
                "size": p.image.manifest_size,
                "platform": platform_json(&p.image.platform),
            })
        })
        .collect();
    json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": manifests,
    })
}

/// `os/arch[/variant]` as an OCI platform object.
pub fn platform_json(platform: &str) -> Value {
    let mut parts = platform.split('/');
    let mut v = json!({
        "os": parts.next().unwrap_or("linux"),
        "architecture": parts.next().unwrap_or("amd64"),
    });
    if let Some(variant) = parts.next() {
        v["variant"] = json!(variant);
    }
    v
}

/// One platform's image (`loaded.recipe.platform`); `debian_locks` is the lock of the
/// recipe's `debian` step, one part per architecture.
#[allow(clippy::too_many_arguments)]
fn build_platform(
    loaded: &LoadedRecipe,
    store: &Store,
    stat: &StatCache,
    opts: &BuildOptions,
    obs: &dyn BuildObserver,
    sde: u64,
    debian_locks: &[crate::debian::DebianLock],
) -> Result<PlatformImage> {
    let r = &loaded.recipe;
    let base = load_base(loaded, store, opts)?;
    let wheels = crate::python::StoreWheels::new(store);

    let names: Vec<String> = r
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| l.name.clone().unwrap_or_else(|| format!("layer-{}", i + 1)))
        .collect();

    // Every layer but the `debian` step's, resolved in parallel.
    let debian_at = r
        .layers
        .iter()
        .position(|l| l.steps.iter().any(|s| matches!(s, recipe::Step::Debian(_))));
    let plain: Vec<Option<Vec<Entry>>> = (0..r.layers.len())
        .into_par_iter()
        .map(|i| {
            if Some(i) == debian_at {
                return Ok(None);
            }
            Ok(Some(recipe::resolve_layer_with(
                loaded, i, stat, &wheels, sde,
            )?))
        })
        .collect::<Result<_>>()?;
    // The `debian` step's layer becomes the step's layer groups (lock, fetch, extract),
    // extracted through the symlinks of the base and of the recipe's layers below it.
    let debian_layers = match debian_at {
        Some(at) => {
            let mut lower = base_tree(store, base.as_ref())?;
            for entries in plain[..at].iter().flatten() {
                lower.apply(entries);
            }
            let arch = crate::debian::debian_arch(&r.platform)?;
            let lock = debian_locks
                .iter()
                .find(|l| l.architecture == arch)
                .with_context(|| {
                    format!(
                        "{}: the lock has no packages for architecture {arch}",
                        loaded.file.display()
                    )
                })?;
            crate::debian::build_layers(r, lock, &opts.debian, opts.policy, store, sde, &lower)?
        }
        None => None,
    };
    let mut layer_entries: Vec<(String, Vec<Entry>)> = Vec::new();
    for (i, entries) in plain.into_iter().enumerate() {
        match entries {
            Some(e) => layer_entries.push((names[i].clone(), e)),
            None => layer_entries.extend(
                debian_layers
                    .as_ref()
                    .map(|d| d.layers.clone())
                    .unwrap_or_default(),
            ),
        }
    }
    let mut planned: Vec<String> = layer_entries.iter().map(|(n, _)| n.clone()).collect();
    if r.accounts.is_some() {
        planned.push("accounts".into());
    }
    obs.layers_planned(&planned);
    if let Some(accounts) = &r.accounts {
        let passwd = file_in_image(store, base.as_ref(), &layer_entries, "etc/passwd")?;
        let group = file_in_image(store, base.as_ref(), &layer_entries, "etc/group")?;
        let entries = recipe::render_accounts(accounts, passwd.as_deref(), group.as_deref(), sde)
            .map_err(|e| anyhow::anyhow!("{}: accounts: {e}", loaded.file.display()))?;
        layer_entries.push(("accounts".into(), entries));
    }

    let built: Vec<(LayerRef, LayerReport)> = layer_entries
        .par_iter()
        .enumerate()
        .map(|(i, (name, entries))| {
            let out = build_layer(store, name, entries, opts.compression)?;
            obs.layer_finished(i, &out.1);
            Ok(out)
        })
        .collect::<Result<_>>()?;
    let mut layers: Vec<LayerRef> = Vec::new();
    let mut reports: Vec<LayerReport> = Vec::new();
    if let Some(b) = &base {
        for l in &b.layers {
            layers.push(l.clone());
            reports.push(LayerReport {
                name: "base".into(),
                digest: l.digest.clone(),
                diff_id: l.diff_id.clone(),
                size: l.size,
                source: "base",
                entries: 0,
            });
        }
    }
    for (l, rep) in built {
        layers.push(l);
        reports.push(rep);
    }

    let config = image_config(loaded, base.as_ref(), &layers, &layer_entries, sde)?;
    let config_bytes = canonical_json(&config)?;
    let config_digest = store.put_bytes(&config_bytes)?;

    let mut annotations: Map<String, Value> = Map::new();
    annotations.insert(
        "org.opencontainers.image.created".into(),
        Value::String(rfc3339(sde)),
    );
    if let Some(b) = &base {
        annotations.insert(
            "org.opencontainers.image.base.digest".into(),
            Value::String(b.manifest_digest.clone()),
        );
    }
    for (k, v) in &r.annotations {
        annotations.insert(k.clone(), Value::String(v.clone()));
    }
    let base_count = base.as_ref().map_or(0, |b| b.layers.len());
    let layer_descs: Vec<Value> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut d = json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size});
            if i >= base_count {
                d["annotations"] =
                    json!({ ANNOTATION_COMPRESSOR: opts.compression.compressor_id() });
            }
            d
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_bytes.len()},
        "layers": layer_descs,
        "annotations": annotations,
    });
    let manifest_bytes = canonical_json(&manifest)?;
    let manifest_digest = store.put_bytes(&manifest_bytes)?;

    let image = ImageRef {
        manifest_digest,
        manifest_size: manifest_bytes.len() as u64,
        config_digest,
        layers,
        platform: r.platform.clone(),
    };
    let sbom = match debian_layers {
        Some(d) => Some(attach_sbom(store, &image, &r.name, d.sbom, sde)?),
        None => None,
    };
    Ok(PlatformImage {
        image,
        layers: reports,
        sbom,
    })
}

/// Stores the SPDX `document` and the artifact manifest attaching it to `image`.
fn attach_sbom(
    store: &Store,
    image: &ImageRef,
    name: &str,
    document: Vec<u8>,
    sde: u64,
) -> Result<Sbom> {
    use crate::oci::artifact;
    let subject = ManifestDesc {
        media_type: MEDIA_MANIFEST.to_string(),
        digest: image.manifest_digest.clone(),
        size: image.manifest_size,
    };
    let a = artifact::artifact_manifest(
        artifact::MEDIA_SPDX_JSON,
        &document,
        &format!("{name}.spdx.json"),
        &subject,
        sde,
    );
    store.put_bytes(artifact::EMPTY_BLOB)?;
    store.put_bytes(&document)?;
    store.put_bytes(&a.manifest)?;
    Ok(Sbom {
        document,
        artifact: a,
    })
}

fn image_config(
    loaded: &LoadedRecipe,
    base: Option<&BaseImage>,
    layers: &[LayerRef],
    built: &[(String, Vec<Entry>)],
    sde: u64,
) -> Result<Value> {
    let r = &loaded.recipe;
    let created = rfc3339(sde);
    let mut parts = r.platform.split('/');
    let os = parts.next().unwrap_or("linux");
    let arch = parts.next().unwrap_or("amd64");
    let variant = parts.next();

    let base_cfg = base
        .map(|b| b.config["config"].clone())
        .unwrap_or(Value::Null);
    let mut cfg = match base_cfg {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let c = &r.config;
    // Env: base entries first, recipe keys replace same-named ones in place.
    let mut env: Vec<String> = cfg
        .get("Env")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in &c.env {
        let kv = format!("{k}={v}");
        match env
            .iter_mut()
            .find(|e| e.split('=').next() == Some(k.as_str()))
        {
            Some(slot) => *slot = kv,
            None => env.push(kv),
        }
    }
    if !env.is_empty() {
        cfg.insert("Env".into(), json!(env));
    }
    if let Some(ep) = &c.entrypoint {
        cfg.insert("Entrypoint".into(), json!(ep));
        // As in Docker: a new entrypoint drops the base's Cmd unless the recipe sets one.
        if c.cmd.is_none() {
            cfg.remove("Cmd");
        }
    }
    if let Some(cmd) = &c.cmd {
        cfg.insert("Cmd".into(), json!(cmd));
    }
    if let Some(w) = &c.workdir {
        cfg.insert("WorkingDir".into(), json!(w));
    }
    if let Some(u) = &c.user {
        cfg.insert("User".into(), json!(u));
    }
    if let Some(s) = &c.stop_signal {
        cfg.insert("StopSignal".into(), json!(s));
    }
    merge_map(
        &mut cfg,
        "Labels",
        c.labels.iter().map(|(k, v)| (k.clone(), json!(v))),
    );
    merge_map(
        &mut cfg,
        "ExposedPorts",
        c.exposed_ports.iter().map(|p| {
            let p = if p.contains('/') {
                p.clone()
            } else {
                format!("{p}/tcp")
            };
            (p, json!({}))
        }),
    );
    merge_map(
        &mut cfg,
        "Volumes",
        c.volumes.iter().map(|v| (v.clone(), json!({}))),
    );

    let mut history: Vec<Value> = base
        .and_then(|b| b.config["history"].as_array().cloned())
        .unwrap_or_default();
    for (name, _) in built {
        history.push(json!({
            "created": created,
            "created_by": format!("strata build: layer {name}"),
        }));
    }
    let mut config = json!({
        "created": created,
        "architecture": arch,
        "os": os,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
        "history": history,
    });
    if let Some(v) = variant {
        config["variant"] = json!(v);
    }
    Ok(config)
}

fn merge_map(
    cfg: &mut Map<String, Value>,
    key: &str,
    items: impl Iterator<Item = (String, Value)>,
) {
    let mut m = match cfg.remove(key) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (k, v) in items {
        m.insert(k, v);
    }
    if !m.is_empty() {
        cfg.insert(key.into(), Value::Object(m));
    }
}

/// Output forms of `strata build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    Oci,
    OciArchive,
    DockerArchive,
}

/// Where the SBOM of `platform` goes beside the output `dest`: `out/NAME` or
/// `out/NAME.tar` → `out/NAME.spdx.json`; in a multi-platform build one file per
/// platform, `out/NAME.linux-arm64.spdx.json`.
pub fn sbom_path(dest: &Path, platform: Option<&str>) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let stem = name.strip_suffix(".tar").unwrap_or(&name);
    let file = match platform {
        Some(p) => format!("{stem}.{}.spdx.json", p.replace('/', "-")),
        None => format!("{stem}.spdx.json"),
    };
    dest.with_file_name(file)
}

/// Writes the built image to `dest` in `format`, and each SBOM beside it (see
/// [`sbom_path`]); returns the SBOM files written. An OCI layout or archive also holds
/// each SBOM as an artifact referring to its image; a Docker archive cannot hold
/// artifacts, nor more than one platform.
pub fn write_output(built: &Built, format: OutputFormat, dest: &Path) -> Result<Vec<PathBuf>> {
    let root = built.root();
    let artifacts = built.artifacts();
    match format {
        OutputFormat::Oci => {
            let layout = Layout::create(dest)?;
            layout.import_blobs(&built.store, &built.blob_digests())?;
            let desc: oci_spec::image::Descriptor = serde_json::from_value(json!({
                "mediaType": root.media_type,
                "digest": root.digest,
                "size": root.size,
            }))?;
            let owned: Vec<crate::oci::artifact::Artifact> =
                artifacts.iter().map(|a| (*a).clone()).collect();
            layout.publish(&built.tag, desc, &owned)?;
        }
        OutputFormat::OciArchive => {
            let entries: Vec<Value> = artifacts.iter().map(|a| a.index_entry()).collect();
            crate::oci::archive::write_oci_archive(
                &built.store,
                &root,
                &built.tag,
                &entries,
                &built.blob_digests(),
                built.source_date_epoch,
                dest,
            )
            .with_context(|| format!("writing {}", dest.display()))?
        }
        OutputFormat::DockerArchive => {
            if built.images.len() > 1 {
                let list: Vec<&str> = built
                    .images
                    .iter()
                    .map(|i| i.image.platform.as_str())
                    .collect();
                bail!(
                    "a docker-archive holds one platform, and this recipe builds {}\n  hint: pick one with --platform (e.g. --platform {}), or write --format oci or oci-archive, which hold the image index",
                    list.join(", "),
                    list[0]
                );
            }
            crate::oci::archive::write_docker_archive(
                &built.store,
                built.image(),
                &built.repo_tag(),
                built.source_date_epoch,
                dest,
            )
            .with_context(|| format!("writing {}", dest.display()))?
        }
    }
    let mut written = Vec::new();
    let multi = built.images.len() > 1;
    for p in &built.images {
        if let Some(s) = &p.sbom {
            let path = sbom_path(dest, multi.then_some(p.image.platform.as_str()));
            crate::store::write_atomic(&path, &s.document)
                .with_context(|| format!("writing the SBOM {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(text: &str) -> LoadedRecipe {
        recipe::parse_str(text, Path::new("r.yaml"), Path::new("/nonexistent")).expect("parses")
    }

    #[test]
    fn platforms_of_a_build() {
        let multi = loaded("name: x\nplatforms: [linux/amd64, linux/arm64/v8]\n");
        assert_eq!(
            build_platforms(&multi, None).expect("all"),
            ["linux/amd64", "linux/arm64/v8"]
        );
        assert_eq!(
            build_platforms(&multi, Some("linux/arm64")).expect("one"),
            ["linux/arm64/v8"]
        );
        let e = build_platforms(&multi, Some("linux/s390x"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("r.yaml builds linux/amd64, linux/arm64/v8") && e.contains("hint:"),
            "{e}"
        );
        let single = loaded("name: x\nplatform: linux/arm64\n");
        assert_eq!(
            build_platforms(&single, None).expect("one"),
            ["linux/arm64"]
        );
        assert!(build_platforms(&single, Some("linux/amd64")).is_err());
    }

    #[test]
    fn index_lists_each_platform() {
        let image = |platform: &str, digest: &str| PlatformImage {
            image: ImageRef {
                manifest_digest: digest.into(),
                manifest_size: 10,
                config_digest: String::new(),
                layers: Vec::new(),
                platform: platform.into(),
            },
            layers: Vec::new(),
            sbom: None,
        };
        let v = image_index(&[
            image("linux/amd64", "sha256:a"),
            image("linux/arm/v7", "sha256:b"),
        ]);
        assert_eq!(v["mediaType"], MEDIA_INDEX);
        assert_eq!(v["schemaVersion"], 2);
        let m = v["manifests"].as_array().expect("manifests");
        assert_eq!(
            m[0]["platform"],
            json!({"os": "linux", "architecture": "amd64"})
        );
        assert_eq!(
            m[1]["platform"],
            json!({"os": "linux", "architecture": "arm", "variant": "v7"})
        );
        assert_eq!(m[1]["digest"], "sha256:b");
        assert_eq!(m[1]["mediaType"], MEDIA_MANIFEST);
        assert_eq!(m[1]["size"], 10);
    }

    #[test]
    fn sbom_beside_the_output() {
        assert_eq!(
            sbom_path(Path::new("out/img"), None),
            Path::new("out/img.spdx.json")
        );
        assert_eq!(
            sbom_path(Path::new("out/img.tar"), None),
            Path::new("out/img.spdx.json")
        );
        assert_eq!(
            sbom_path(Path::new("out/img"), Some("linux/arm64/v8")),
            Path::new("out/img.linux-arm64-v8.spdx.json")
        );
    }
}

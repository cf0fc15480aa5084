//! The `strata` command line: flags in, library calls, results out. Data goes to stdout,
//! progress and errors to stderr.
//!
//! Exit codes: 0 success; 1 a negative answer (`verify` found problems, `diff` found
//! differences); 2 an error (bad recipe or flags, I/O failure).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use strata::build::{self, BuildObserver, BuildOptions, LayerReport, OutputFormat};
use strata::layer::Compression;
use strata::registry::{BlobAction, ClientOptions, PushOptions, PushReport, PushRoot, Reference};
use strata::store::Store;

mod lab_cmd;

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Deterministic, daemonless OCI image builds from YAML recipes"
)]
struct Cli {
    /// Cache directory (content-addressed store). Default: $XDG_CACHE_HOME/strata or ~/.cache/strata.
    #[arg(long, global = true, env = "STRATA_CACHE")]
    cache: Option<PathBuf>,
    /// Machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// No progress output.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image from a recipe; prints the manifest digest.
    Build {
        recipe: PathBuf,
        /// Output path: a layout directory (oci) or a file (archives). Default: out/NAME[.tar].
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Tag to give the image (default: the recipe's `tag`).
        #[arg(long)]
        tag: Option<String>,
        #[arg(long, value_enum, default_value = "oci")]
        format: OutputFormat,
        #[arg(long, value_enum, default_value = "gzip")]
        compression: Compression,
        /// Of a recipe with `platforms`, build only this one (os/arch[/variant]): one
        /// manifest instead of an image index (needed for --format docker-archive).
        #[arg(long, value_name = "PLATFORM")]
        platform: Option<String>,
        /// Fail if the recipe's lockfile (RECIPE.lock: debian packages, the digest of a
        /// registry base's tag) is missing or stale instead of re-resolving it.
        #[arg(long)]
        locked: bool,
        /// No network: build from the lockfile and the cache alone.
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        index: IndexFlags,
        /// Also push the image to this registry reference (HOST[:PORT]/REPO[:TAG]).
        #[arg(long, value_name = "REF")]
        push: Option<String>,
        #[command(flatten)]
        registry: RegistryFlags,
    },
    /// Push an image of an OCI layout to a registry; prints the pushed digest.
    Push {
        /// [oci:]DIR[:TAG]
        image: String,
        /// HOST[:PORT]/REPO[:TAG][@sha256:DIGEST] (tag default: latest).
        reference: String,
        /// More tags to push the image under (repeatable).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Repositories of the same registry to mount blobs from before uploading (repeatable).
        #[arg(long, value_name = "REPO")]
        mount_from: Vec<String>,
        /// Blobs larger than this are uploaded in chunks of this many bytes.
        #[arg(long, value_name = "BYTES", default_value_t = strata::registry::push::DEFAULT_CHUNK_SIZE)]
        chunk_size: u64,
        #[command(flatten)]
        registry: RegistryFlags,
    },
    /// Pull an image from a registry into an OCI layout, verifying every digest; prints the digest.
    Pull {
        /// HOST[:PORT]/REPO[:TAG][@sha256:DIGEST]
        reference: String,
        /// The OCI layout directory to write (created, or added to).
        #[arg(short, long)]
        output: PathBuf,
        /// Tag in the layout (default: the reference's tag, else latest).
        #[arg(long)]
        tag: Option<String>,
        /// Of a multi-platform image, only this platform (os/arch[/variant]); default: all.
        #[arg(long)]
        platform: Option<String>,
        #[command(flatten)]
        registry: RegistryFlags,
    },
    /// Load an image of an OCI layout into the running Docker engine (through its API socket).
    Load {
        /// [oci:]DIR[:TAG]
        image: String,
        /// NAME:TAG in the engine (default: the layout directory's name and the image's tag).
        #[arg(long)]
        tag: Option<String>,
    },
    /// Lock the recipe's registry base (the digest its tag names, RECIPE.lock), debian step
    /// (packages resolved against the mirror's signed indices, RECIPE.lock) and python steps
    /// (wheel sha256s, RECIPE.python.lock), fetching into the cache. Builds never resolve
    /// python wheels: run this first. Given a lab (its directory or lab.yaml), locks the
    /// lab's `apt.packages` per Debian suite (apt-SUITE.lock).
    Lock {
        recipe: PathBuf,
        #[command(flatten)]
        index: IndexFlags,
        #[command(flatten)]
        registry: RegistryFlags,
        /// Package index, the simple API root. Default: STRATA_PYTHON_INDEX, PIP_INDEX_URL,
        /// then `index-url` from pip's configuration files.
        #[arg(long, value_name = "URL")]
        index_url: Option<String>,
        /// Resolve again even when a lock matches the recipe (the base's tag, python
        /// steps; the debian step is always resolved again).
        #[arg(long)]
        update: bool,
    },
    /// Show an image's config, layers, sizes and history (IMAGE: [oci:]DIR[:TAG]).
    Inspect { image: String },
    /// Files added, removed and changed per layer between two images.
    Diff { a: String, b: String },
    /// Check every blob and reference of an OCI layout.
    Verify { image: String },
    /// Manage the cache.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// A Salt master and minions in containers built by strata: apply formulas, report
    /// per minion and state (see docs/lab.md).
    Lab {
        /// Fail if an image recipe's lockfile is missing or stale.
        #[arg(long, global = true)]
        locked: bool,
        /// No network for image builds: lockfiles and the cache alone.
        #[arg(long, global = true)]
        offline: bool,
        #[command(subcommand)]
        command: lab_cmd::LabCommand,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

/// Where Debian indices come from.
#[derive(clap::Args)]
struct IndexFlags {
    /// Debian mirror URL (the directory holding dists/ and pool/). Default: the host's apt
    /// sources.
    #[arg(long, value_name = "URL")]
    mirror: Option<String>,
    /// OpenPGP keyring that verifies InRelease. Default: the host's Debian archive keyring.
    #[arg(long, value_name = "FILE")]
    keyring: Option<PathBuf>,
}

impl IndexFlags {
    fn options(&self) -> strata::debian::IndexOptions {
        strata::debian::IndexOptions {
            mirror: self.mirror.clone(),
            mirror_env: std::env::var(strata::debian::mirror::MIRROR_ENV).ok(),
            keyring: self.keyring.clone(),
            etc_apt: PathBuf::from("/etc/apt"),
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        }
    }
}

#[derive(clap::Args)]
struct RegistryFlags {
    /// Allow plain HTTP to a registry (loopback registries are allowed without it).
    #[arg(long)]
    insecure: bool,
}

impl RegistryFlags {
    fn client(&self) -> ClientOptions {
        ClientOptions {
            insecure: self.insecure,
            ..ClientOptions::default()
        }
    }
}

fn do_push(
    store: &Store,
    root: &PushRoot,
    reference: &str,
    extra_tags: &[String],
    opts: &PushOptions,
    json: bool,
    quiet: bool,
) -> Result<PushReport> {
    let r = Reference::parse(reference)?;
    for t in extra_tags {
        Reference::parse(&format!("{}/{}:{t}", r.host, r.repo))?;
    }
    if let Some(d) = &r.digest {
        anyhow::ensure!(
            d == &root.digest,
            "{reference}: the image's digest is {}, not {d}\n  hint: leave the digest out of the reference",
            root.digest
        );
    }
    let rep = strata::registry::push(
        store,
        root,
        &r,
        &strata::registry::push::tags_for(&r, extra_tags),
        opts,
    )?;
    if !json && !quiet {
        let count = |a: BlobAction| rep.blobs.iter().filter(|b| b.action == a).count();
        eprintln!(
            "pushed {} ({} blobs uploaded, {} in chunks, {} mounted, {} already there) as {}",
            rep.pushed,
            count(BlobAction::Uploaded),
            count(BlobAction::Chunked),
            count(BlobAction::Mounted),
            count(BlobAction::Present),
            if rep.tags.is_empty() {
                "(digest only)".to_string()
            } else {
                rep.tags.join(", ")
            }
        );
    }
    Ok(rep)
}

#[derive(Subcommand)]
enum CacheCommand {
    /// List cached layers.
    Ls,
    /// Remove cached layers unused for DAYS (default: all), and unreferenced blobs.
    Gc {
        #[arg(long, value_name = "DAYS")]
        older_than: Option<u64>,
    },
}

fn default_cache() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("strata");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache/strata"),
        None => PathBuf::from(".strata-cache"),
    }
}

struct Bars {
    bar: ProgressBar,
}

impl Bars {
    fn new(show: bool) -> Bars {
        let bar = if show {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Bars { bar }
    }
}

impl BuildObserver for Bars {
    fn layers_planned(&self, names: &[String]) {
        self.bar.set_length(names.len() as u64);
        self.bar.set_message("building layers");
    }
    fn layer_finished(&self, _index: usize, r: &LayerReport) {
        self.bar.inc(1);
        self.bar.println(format!(
            "  {:<7} {:<20} {} {}",
            r.source,
            r.name,
            &r.digest[..19.min(r.digest.len())],
            human(r.size)
        ));
    }
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode> {
    let cache = cli.cache.clone().unwrap_or_else(default_cache);
    let progress = !cli.quiet && !cli.json && std::io::stderr().is_terminal();
    match cli.command {
        Command::Build {
            recipe,
            output,
            tag,
            format,
            compression,
            platform,
            locked,
            offline,
            index,
            push,
            registry,
        } => {
            // A bad push reference is reported before the build, not after.
            let push_ref = push.as_deref().map(Reference::parse).transpose()?;
            if let Some(p) = &platform {
                strata::recipe::validate::check_platform(p).map_err(|p| {
                    anyhow::anyhow!("--platform: {}\n  hint: {}", p.message, p.hint)
                })?;
            }
            let loaded = strata::recipe::load(&recipe)?;
            let platforms = build::build_platforms(&loaded, platform.as_deref())?;
            anyhow::ensure!(
                format != OutputFormat::DockerArchive || platforms.len() == 1,
                "{}: a docker-archive holds one platform, and this recipe builds {}\n  hint: pick one with --platform {}, or write --format oci or oci-archive, which hold the image index",
                recipe.display(),
                platforms.join(", "),
                platforms[0]
            );
            let opts = BuildOptions {
                cache_dir: cache,
                compression,
                tag,
                source_date_epoch_env: std::env::var("SOURCE_DATE_EPOCH").ok(),
                policy: strata::lockfile::LockPolicy { locked, offline },
                debian: strata::debian::DebianBuildOptions {
                    index: index.options(),
                },
                registry: registry.client(),
                platform,
            };
            let bars = Bars::new(progress);
            let built = build::build(&loaded, &opts, &bars)?;
            bars.bar.finish_and_clear();
            let dest = output.unwrap_or_else(|| {
                let name = &loaded.recipe.name;
                match format {
                    OutputFormat::Oci => Path::new("out").join(name),
                    _ => Path::new("out").join(format!("{name}.tar")),
                }
            });
            let sboms = build::write_output(&built, format, &dest)?;
            let pushed = match (&push, &push_ref) {
                (Some(text), Some(r)) => {
                    // Base layers from the same registry are mounted rather than uploaded.
                    let mut mount_from = Vec::new();
                    if let Ok(strata::recipe::Base::Registry(b)) =
                        strata::recipe::parse_base(loaded.recipe.base.trim())
                    {
                        if b.host == r.host && b.repo != r.repo {
                            mount_from.push(b.repo);
                        }
                    }
                    let popts = PushOptions {
                        client: registry.client(),
                        mount_from,
                        ..PushOptions::default()
                    };
                    let root = built.root();
                    let root = PushRoot {
                        media_type: root.media_type,
                        digest: root.digest,
                        referrers: built.artifacts().into_iter().cloned().collect(),
                    };
                    Some(do_push(
                        &built.store,
                        &root,
                        text,
                        &[],
                        &popts,
                        cli.json,
                        cli.quiet,
                    )?)
                }
                _ => None,
            };
            if cli.json {
                let root = built.root();
                let platforms: Vec<serde_json::Value> = built
                    .images
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "platform": p.image.platform,
                            "manifest_digest": p.image.manifest_digest,
                            "config_digest": p.image.config_digest,
                            "layers": p.layers,
                            "sbom_artifact": p.sbom.as_ref().map(|s| &s.artifact.digest),
                        })
                    })
                    .collect();
                print_json(&serde_json::json!({
                    "digest": root.digest,
                    "media_type": root.media_type,
                    "manifest_digest": built.image().manifest_digest,
                    "config_digest": built.image().config_digest,
                    "name": built.name,
                    "tag": built.tag,
                    "format": format,
                    "output": dest,
                    "layers": built.images[0].layers,
                    "platforms": platforms,
                    "sbom": sboms,
                    "push": pushed,
                }))?;
            } else {
                if !cli.quiet {
                    eprintln!("wrote {} ({})", dest.display(), built.repo_tag());
                    if built.index.is_some() {
                        for p in &built.images {
                            eprintln!("  {} {}", p.image.platform, p.image.manifest_digest);
                        }
                    }
                    let attached = if format == OutputFormat::DockerArchive {
                        "a docker-archive holds no artifacts"
                    } else {
                        "also attached to the image as an artifact"
                    };
                    for s in &sboms {
                        eprintln!("wrote {} (SBOM; {attached})", s.display());
                    }
                }
                println!("{}", built.root().digest);
            }
        }
        Command::Push {
            image,
            reference,
            tags,
            mount_from,
            chunk_size,
            registry,
        } => {
            anyhow::ensure!(chunk_size > 0, "--chunk-size must be at least 1 byte");
            let (layout, root) = strata::registry::push::layout_root(&image)?;
            let opts = PushOptions {
                client: registry.client(),
                chunk_size,
                mount_from,
            };
            let rep = do_push(
                &layout.blobs,
                &root,
                &reference,
                &tags,
                &opts,
                cli.json,
                cli.quiet,
            )?;
            if cli.json {
                print_json(&rep)?;
            } else {
                println!("{}", rep.digest);
            }
        }
        Command::Pull {
            reference,
            output,
            tag,
            platform,
            registry,
        } => {
            let r = Reference::parse(&reference)?;
            let tag = tag
                .or_else(|| r.tag.clone())
                .unwrap_or_else(|| "latest".into());
            strata::recipe::validate::check_tag(&tag)
                .map_err(|p| anyhow::anyhow!("--tag: {}\n  hint: {}", p.message, p.hint))?;
            if let Some(p) = &platform {
                strata::recipe::validate::check_platform(p).map_err(|p| {
                    anyhow::anyhow!("--platform: {}\n  hint: {}", p.message, p.hint)
                })?;
            }
            let layout = strata::oci::Layout::create(&output)?;
            let opts = strata::registry::PullOptions {
                client: registry.client(),
                platform,
                offline: false,
            };
            let rep = strata::registry::pull(&r, &layout.blobs, &opts)?;
            let desc: oci_spec::image::Descriptor = serde_json::from_value(serde_json::json!({
                "mediaType": rep.media_type,
                "digest": rep.digest,
                "size": rep.size,
            }))?;
            layout.set_tag(&tag, desc)?;
            if cli.json {
                print_json(&serde_json::json!({"pull": rep, "output": output, "tag": tag}))?;
            } else {
                if !cli.quiet {
                    eprintln!(
                        "pulled {r} into {}:{tag} ({} blobs fetched, {} already there)",
                        output.display(),
                        rep.fetched,
                        rep.cached
                    );
                }
                println!("{}", rep.digest);
            }
        }
        Command::Load { image, tag } => {
            let engine = strata::docker::Engine::from_env()?;
            let rep = strata::docker::load_image(&engine, &image, tag.as_deref())?;
            if cli.json {
                print_json(&rep)?;
            } else {
                if !cli.quiet {
                    for m in &rep.messages {
                        eprintln!("{m}");
                    }
                }
                println!("{}", rep.repo_tag);
            }
        }
        Command::Lock {
            recipe,
            index,
            registry,
            index_url,
            update,
        } => {
            use strata::python;
            // A lab (its directory or lab.yaml): lock its `apt.packages` per suite.
            if recipe.is_dir() || recipe.file_name().is_some_and(|n| n == "lab.yaml") {
                return lab_cmd::lock_lab(&recipe, &cache, &index.options(), cli.quiet || cli.json);
            }
            let loaded = strata::recipe::load(&recipe)?;
            let store = Store::open(&cache)
                .with_context(|| format!("opening the cache at {}", cache.display()))?;
            // Shared, like a build: `cache gc` must not remove what a lock reads.
            let _store_lock = store.lock(false)?;
            let quiet = cli.quiet || cli.json;
            let fetcher = strata::debian::fetch::HttpFetcher::new();
            let path = strata::lockfile::lock_path(&recipe);
            // RECIPE.lock: the base's pin and the debian step, written together. A lock that
            // does not read (an older format, say) is replaced, as its error's hint says.
            let old = strata::lockfile::read(&path).ok().flatten();
            let base = strata::lockfile::base::lock_base(
                &loaded,
                old.as_ref().and_then(|l| l.base.as_ref()),
                update,
                &registry.client(),
                &store,
            )?;
            let debian =
                strata::debian::resolve_recipe(&loaded.recipe, &index.options(), &store, &fetcher)?;
            let lock = strata::lockfile::Lockfile {
                base: base.as_ref().map(|(b, _)| b.clone()),
                debian,
            };
            let changed = !lock.is_empty() && strata::lockfile::write(&path, &lock)?;
            if !lock.is_empty() && !quiet {
                let mut parts = Vec::new();
                if let Some((b, action)) = &base {
                    parts.push(format!("base {} {}", b.digest, action.as_str()));
                }
                match lock.debian.as_slice() {
                    [] => {}
                    [d] => parts.push(format!("{} packages", d.packages.len())),
                    several => parts.extend(
                        several
                            .iter()
                            .map(|d| format!("{}: {} packages", d.architecture, d.packages.len())),
                    ),
                }
                eprintln!(
                    "{} {} ({})",
                    if changed { "wrote" } else { "unchanged" },
                    path.display(),
                    parts.join(", ")
                );
            }
            let py_index = || -> std::result::Result<Box<dyn python::Index>, String> {
                let url = python::configured_index(index_url.as_deref())?;
                if !quiet {
                    eprintln!("index {} (from {})", url.url, url.source);
                }
                Ok(Box::new(python::HttpIndex::new(&url.url)))
            };
            let log = |m: &str| {
                if !quiet {
                    eprintln!("  {m}");
                }
            };
            let builder = python::PipBuilder::from_env();
            let opts = python::LockOptions {
                update,
                index: &py_index,
                builder: &builder,
                log: &log,
            };
            // With several platforms each is locked on its own (a lock per architecture).
            let reports = if loaded.recipe.platforms.len() > 1 {
                let mut all = Vec::new();
                for p in &loaded.recipe.platforms {
                    let mut one = loaded.clone();
                    one.recipe.platform = p.clone();
                    for mut r in python::lock_recipe(&one, &store, &opts)? {
                        r.step = format!("{} ({p})", r.step);
                        all.push(r);
                    }
                }
                all
            } else {
                python::lock_recipe(&loaded, &store, &opts)?
            };
            anyhow::ensure!(
                !lock.is_empty() || !reports.is_empty(),
                "{}: the recipe has no `debian` or `python` step and no `registry://` base, so there is nothing to lock\n  hint: add a `debian` or `python` step to a layer, or start from a `registry://HOST/REPO:TAG` base",
                recipe.display()
            );
            if cli.json {
                print_json(&serde_json::json!({
                    "base": base.as_ref().map(|(b, action)| serde_json::json!({
                        "lockfile": path,
                        "changed": changed,
                        "reference": b.reference,
                        "digest": b.digest,
                        "action": action,
                    })),
                    "debian": match lock.debian.as_slice() {
                        [] => serde_json::Value::Null,
                        [d] => serde_json::json!({
                            "lockfile": path,
                            "changed": changed,
                            "identity": d.identity,
                            "packages": d.packages.len(),
                        }),
                        several => serde_json::json!({
                            "lockfile": path,
                            "changed": changed,
                            "architectures": several.iter().map(|d| serde_json::json!({
                                "architecture": d.architecture,
                                "identity": d.identity,
                                "packages": d.packages.len(),
                            })).collect::<Vec<_>>(),
                        }),
                    },
                    "python": reports,
                }))?;
            } else {
                if let Some((b, _)) = &base {
                    println!("{} {}", b.digest, b.reference);
                }
                match lock.debian.as_slice() {
                    [] => {}
                    [d] => println!("{}", d.identity),
                    several => {
                        for d in several {
                            println!("{} {}", d.identity, d.architecture);
                        }
                    }
                }
                for r in &reports {
                    println!(
                        "{} {}: {} packages, {} fetched ({})",
                        r.lock.display(),
                        r.action,
                        r.packages,
                        r.fetched,
                        r.step
                    );
                }
            }
        }
        Command::Inspect { image } => {
            let info = strata::inspect::inspect(&image)?;
            if cli.json {
                print_json(&info)?;
            } else {
                println!("image     {}", info.reference);
                println!("manifest  {}", info.manifest_digest);
                println!("platform  {}", info.platform);
                for p in &info.platforms {
                    println!("index     {} {}", p.platform, p.digest);
                }
                for r in &info.referrers {
                    println!(
                        "referrer  {} {} (subject {})",
                        r.artifact_type, r.digest, r.subject
                    );
                }
                if let Some(c) = &info.created {
                    println!("created   {c}");
                }
                println!(
                    "size      {} in {} layers",
                    human(info.total_size),
                    info.layers.len()
                );
                for (k, v) in &info.annotations {
                    println!("annotation {k}={v}");
                }
                println!("config    {}", serde_json::to_string(&info.config)?);
                println!("layers:");
                for l in &info.layers {
                    println!(
                        "  {}  {:>10}  {}",
                        l.digest,
                        human(l.size),
                        l.created_by.as_deref().unwrap_or("")
                    );
                }
            }
        }
        Command::Diff { a, b } => {
            let d = strata::inspect::diff(&a, &b)?;
            if cli.json {
                print_json(&d)?;
            } else {
                if d.identical {
                    println!("identical");
                }
                if d.config_changed {
                    println!("config changed");
                }
                for l in &d.layers {
                    println!(
                        "layer {}: {} -> {}",
                        l.index,
                        l.a.as_deref().unwrap_or("(none)"),
                        l.b.as_deref().unwrap_or("(none)")
                    );
                    for p in &l.added {
                        println!("  + /{p}");
                    }
                    for p in &l.removed {
                        println!("  - /{p}");
                    }
                    for p in &l.changed {
                        println!("  ~ /{p}");
                    }
                }
            }
            return Ok(if d.identical {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        Command::Verify { image } => {
            let rep = strata::inspect::verify(Path::new(&image))?;
            if cli.json {
                print_json(&rep)?;
            } else {
                for p in &rep.problems {
                    println!("problem: {p}");
                }
                for u in &rep.unreferenced {
                    println!("unreferenced: {u}");
                }
                println!(
                    "{} blobs checked, {} problems",
                    rep.checked_blobs,
                    rep.problems.len()
                );
            }
            return Ok(if rep.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        Command::Cache { command } => {
            let store = Store::open(&cache)
                .with_context(|| format!("opening the cache at {}", cache.display()))?;
            match command {
                CacheCommand::Ls => {
                    let layers = store.list_cached_layers()?;
                    if cli.json {
                        let rows: Vec<_> = layers
                            .iter()
                            .map(|(k, r, _)| serde_json::json!({"key": k, "layer": r}))
                            .collect();
                        print_json(&rows)?;
                    } else {
                        for (k, r, _) in &layers {
                            println!("{}  {}  {:>10}", &k[..16], r.digest, human(r.size));
                        }
                        eprintln!("{} cached layers in {}", layers.len(), cache.display());
                    }
                }
                CacheCommand::Gc { older_than } => {
                    let rep = store.gc(older_than.map(|d| Duration::from_secs(d * 86_400)))?;
                    if cli.json {
                        print_json(&rep)?;
                    } else {
                        println!(
                            "removed {} cache entries, {} blobs ({})",
                            rep.entries,
                            rep.blobs,
                            human(rep.bytes)
                        );
                    }
                }
            }
        }
        Command::Lab {
            locked,
            offline,
            command,
        } => {
            let bars = Bars::new(progress);
            // Bind mounts of the lab's state need an absolute path.
            let cache = std::path::absolute(&cache)
                .with_context(|| format!("the cache directory {}", cache.display()))?;
            let ctx = lab_cmd::LabContext {
                build: BuildOptions {
                    cache_dir: cache,
                    compression: Compression::Gzip,
                    tag: None,
                    source_date_epoch_env: std::env::var("SOURCE_DATE_EPOCH").ok(),
                    policy: strata::lockfile::LockPolicy { locked, offline },
                    debian: strata::debian::DebianBuildOptions {
                        index: IndexFlags {
                            mirror: None,
                            keyring: None,
                        }
                        .options(),
                    },
                    registry: ClientOptions::default(),
                    platform: None,
                },
                observer: &bars,
                quiet: cli.quiet,
                json: cli.json,
            };
            let code = lab_cmd::run(&ctx, command);
            bars.bar.finish_and_clear();
            return code;
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "strata", &mut std::io::stdout());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `lab apply` and `lab test` write their JSON report with `--json FILE`, beside the global
/// `--json` flag (JSON on stdout) that every command takes: after those two subcommands, a
/// `--json` followed by a value is read as `--json-report FILE`; a `--json` at the end of
/// the line, before another flag, or before the subcommand keeps its global meaning.
fn lab_report_args(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut i = 1;
    // Global flags may come first; `--cache` takes a value.
    while i < args.len() {
        match args[i].to_str() {
            Some("--cache") => i += 2,
            Some(a) if a.starts_with('-') => i += 1,
            _ => break,
        }
    }
    let is_report_cmd = args.get(i).is_some_and(|a| a == "lab")
        && args.get(i + 1).is_some_and(|a| a == "apply" || a == "test");
    if !is_report_cmd {
        return args;
    }
    let mut j = i + 2;
    while j + 1 < args.len() {
        if args[j] == "--" {
            break;
        }
        let takes_value =
            args[j] == "--json" && !args[j + 1].to_str().is_some_and(|v| v.starts_with('-'));
        if takes_value {
            args[j] = "--json-report".into();
            j += 1;
        }
        j += 1;
    }
    args
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(lab_report_args(std::env::args_os().collect()));
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let label = if color {
                "\x1b[1;31merror\x1b[0m"
            } else {
                "error"
            };
            eprintln!("{label}: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lab_report_args;

    fn args(line: &str) -> Vec<String> {
        lab_report_args(line.split(' ').map(Into::into).collect())
            .into_iter()
            .map(|a| a.into_string().expect("utf-8"))
            .collect()
    }

    #[test]
    fn json_with_a_file_after_lab_test_or_apply_is_the_report_file() {
        assert_eq!(
            args("strata lab test lab/seed --junit j.xml --json r.json"),
            [
                "strata",
                "lab",
                "test",
                "lab/seed",
                "--junit",
                "j.xml",
                "--json-report",
                "r.json"
            ]
        );
        assert_eq!(
            args("strata --cache c -q lab apply lab/seed --json r.json web-*"),
            [
                "strata",
                "--cache",
                "c",
                "-q",
                "lab",
                "apply",
                "lab/seed",
                "--json-report",
                "r.json",
                "web-*"
            ]
        );
    }

    #[test]
    fn json_without_a_value_or_elsewhere_stays_the_global_flag() {
        for line in [
            "strata lab test lab/seed --json",
            "strata --json lab test lab/seed",
            "strata lab test lab/seed --json --keep",
            "strata lab status lab/seed --json",
            "strata inspect --json out/hello",
            "strata --cache lab inspect --json out",
            "strata lab exec lab/seed m1 -- --json x",
        ] {
            assert_eq!(args(line).join(" "), line);
        }
    }
}

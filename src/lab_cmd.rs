//! `strata lab …`: the command-line side of [`strata::lab`]. Tables go to stdout, progress
//! and errors to stderr; `apply` and `test` exit 1 when a state fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;

use strata::build::{BuildObserver, BuildOptions};
use strata::lab::apt;
use strata::lab::backend::{Backend, ResourceKind, LABEL_LAB, LABEL_MINION, LABEL_ROLE};
use strata::lab::docker::DockerBackend;
use strata::lab::plan::{self, LabPlan};
use strata::lab::report::{Report, RunKind};
use strata::lab::run::{self, LabError};
use strata::lab::session;
use strata::lab::spec::Lab;

#[derive(Subcommand)]
pub enum LabCommand {
    /// Build the lab's images, start the master and minions, wait until every minion answers.
    Up {
        /// The lab directory (holding lab.yaml) or the lab file.
        lab: PathBuf,
    },
    /// Run state.apply (highstate, or --sls) on the minions and report per state.
    Apply {
        lab: PathBuf,
        /// Minions to apply to: a glob over minion ids (default: all).
        target: Option<String>,
        /// SLS to apply instead of the highstate (repeatable, or comma-separated).
        #[arg(long, value_delimiter = ',')]
        sls: Vec<String>,
        /// A dry run: state.apply test=True.
        #[arg(long)]
        test: bool,
        /// Also write the report as JSON to FILE.
        #[arg(long = "json-report", value_name = "FILE")]
        json_report: Option<PathBuf>,
        /// Also write the report as JUnit XML to FILE.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// up, apply, apply again (anything that changes twice fails), down. Exit 1 on any failure.
    Test {
        lab: PathBuf,
        #[arg(long, value_delimiter = ',')]
        sls: Vec<String>,
        /// Write the report as JSON to FILE.
        #[arg(long = "json-report", value_name = "FILE")]
        json_report: Option<PathBuf>,
        /// Write the report as JUnit XML to FILE.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Leave the lab up afterwards (for debugging; `strata lab down` removes it).
        #[arg(long)]
        keep: bool,
    },
    /// The lab's containers, whether they run, and which minions answer.
    Status { lab: PathBuf },
    /// Run a command in a lab container (`master` or a minion id); exits with its code.
    Exec {
        lab: PathBuf,
        who: String,
        #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Print a lab container's logs (`master` or a minion id).
    Logs { lab: PathBuf, who: String },
    /// Remove the lab's containers and network (idempotent).
    Down { lab: PathBuf },
    /// Remove the containers, networks and volumes of every lab, orphans of killed runs included.
    Gc,
}

/// What the lab commands need from the global flags.
pub struct LabContext<'a> {
    pub build: BuildOptions,
    pub observer: &'a dyn BuildObserver,
    pub quiet: bool,
    pub json: bool,
}

fn load_lab(path: &Path) -> Result<Lab> {
    let file = if path.is_dir() {
        path.join("lab.yaml")
    } else {
        path.to_path_buf()
    };
    Ok(strata::lab::spec::load(&file)?)
}

/// The plan of `lab` with its cached keys and the lab's image tags.
/// The lab's plan. `prepared`: the images as `up` just handed them to the engine, whose ids
/// give each image its shared bytecode cache; the other commands create no containers and
/// pass none.
fn lab_plan(lab: &Lab, cache: &Path, prepared: &[session::PreparedImage]) -> Result<LabPlan> {
    let ids: Vec<String> = lab.minions.iter().map(|m| m.id.clone()).collect();
    let keys = session::keys(&session::state_dir(cache, lab), &ids)?;
    let images = lab
        .images
        .keys()
        .map(|n| {
            let image = plan::PlanImage {
                reference: session::image_tag(&lab.name, n),
                id: prepared
                    .iter()
                    .find(|i| &i.name == n)
                    .map(|i| i.image_id.clone()),
            };
            (n.clone(), image)
        })
        .collect();
    plan::plan(lab, &images, &keys).map_err(|e| anyhow::anyhow!("{}: {e}", lab.file.display()))
}

fn start_timeout(lab: &Lab) -> Duration {
    Duration::from_secs(lab.spec.timeouts.start)
}

fn apply_timeout(lab: &Lab) -> Duration {
    Duration::from_secs(lab.spec.timeouts.apply)
}

fn up(ctx: &LabContext, lab: &Lab, b: &DockerBackend) -> Result<LabPlan> {
    let images = session::prepare_images(lab, &ctx.build, &b.engine, ctx.observer)?;
    if !ctx.quiet {
        for i in &images {
            eprintln!(
                "image {:<16} {} {}{}",
                i.name,
                i.repo_tag,
                &i.manifest_digest[..19.min(i.manifest_digest.len())],
                if i.already_loaded {
                    " (loaded already)"
                } else {
                    ""
                }
            );
        }
    }
    let mut p = lab_plan(lab, &ctx.build.cache_dir, &images)?;
    if let Some(apt) = apt_repos(ctx, lab)? {
        plan::add_apt(&mut p, lab, &apt)
            .map_err(|e| anyhow::anyhow!("{}: {e}", lab.file.display()))?;
    }
    if !ctx.quiet {
        eprintln!(
            "starting lab {}: master and {} minions ({} at a time)",
            lab.name,
            p.minions.len(),
            lab.spec.start_concurrency
        );
    }
    session::catch_signals()?;
    let t0 = std::time::Instant::now();
    session::guarded(b, &lab.name, || {
        run::up(b, &p, lab.spec.start_concurrency, start_timeout(lab))
    })?;
    if !ctx.quiet {
        eprintln!(
            "all {} minions answer after {:.1} s",
            p.minions.len(),
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(p)
}

/// The lab's `apt.packages`: locked per suite, fetched, written as flat repositories in
/// the lab's state directory. None when the lab asks for no packages.
fn apt_repos(ctx: &LabContext, lab: &Lab) -> Result<Option<plan::AptPlan>> {
    if lab.spec.apt.packages.is_empty() {
        return Ok(None);
    }
    let store = strata::store::Store::open(&ctx.build.cache_dir)
        .with_context(|| format!("opening the cache at {}", ctx.build.cache_dir.display()))?;
    let _store_lock = store.lock(false)?;
    let out = session::state_dir(&ctx.build.cache_dir, lab).join("apt");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let fetcher = strata::debian::fetch::HttpFetcher::new();
    let repos = apt::ensure_lab_repos(
        lab,
        ctx.build.policy,
        &ctx.build.debian.index,
        &store,
        &fetcher,
        &out,
    )?;
    let mut suites = std::collections::BTreeMap::new();
    for (l, repo) in &repos {
        if !ctx.quiet {
            eprintln!(
                "packages for {}: {} in {}{}",
                repo.suite,
                repo.packages,
                repo.dir.display(),
                if repo.written { "" } else { " (unchanged)" }
            );
        }
        for image in &l.suite.images {
            suites.insert(image.clone(), l.suite.suite.clone());
        }
    }
    Ok(Some(plan::AptPlan {
        repo_dir: out,
        suites,
    }))
}

/// `strata lock LAB`: the lab's `apt.packages`, one lock per suite.
pub fn lock_lab(
    path: &Path,
    cache: &Path,
    index: &strata::debian::IndexOptions,
    quiet: bool,
) -> Result<ExitCode> {
    let lab = load_lab(path)?;
    anyhow::ensure!(
        !lab.spec.apt.packages.is_empty(),
        "{}: the lab has no `apt.packages`, so there is nothing to lock",
        lab.file.display()
    );
    let store = strata::store::Store::open(cache)
        .with_context(|| format!("opening the cache at {}", cache.display()))?;
    let _store_lock = store.lock(false)?;
    let fetcher = strata::debian::fetch::HttpFetcher::new();
    for l in apt::lock_lab(&lab, index, &store, &fetcher)? {
        if !quiet {
            eprintln!(
                "{} {} ({} packages)",
                if l.changed { "wrote" } else { "unchanged" },
                l.suite.lock_path.display(),
                l.lock.packages.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn select(p: &mut LabPlan, target: Option<&str>) -> Result<()> {
    if let Some(t) = target {
        let m = globset::Glob::new(t)
            .with_context(|| format!("target `{t}` is not a glob"))?
            .compile_matcher();
        p.minion_ids.retain(|id| m.is_match(id));
        anyhow::ensure!(
            !p.minion_ids.is_empty(),
            "target `{t}` matches no minion of lab {}",
            p.lab
        );
    }
    Ok(())
}

fn write_reports(report: &Report, json_report: Option<&Path>, junit: Option<&Path>) -> Result<()> {
    if let Some(f) = json_report {
        strata::store::write_atomic(f, report.to_json().as_bytes())
            .with_context(|| format!("writing {}", f.display()))?;
    }
    if let Some(f) = junit {
        strata::store::write_atomic(f, report.to_junit().as_bytes())
            .with_context(|| format!("writing {}", f.display()))?;
    }
    Ok(())
}

fn finish(ctx: &LabContext, report: &Report) -> ExitCode {
    if ctx.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    for r in &report.runs {
        if r.exit_code_agrees() == Some(false) {
            eprintln!(
                "warning: Salt's exit code {} for the {:?} run disagrees with its returns (the returns decide)",
                r.salt_exit_code.unwrap_or_default(),
                r.kind
            );
        }
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn container_of(lab: &Lab, who: &str) -> Result<String> {
    if who == "master" {
        return Ok(plan::container_name(&lab.name, "master"));
    }
    anyhow::ensure!(
        lab.minions.iter().any(|m| m.id == who),
        "{}: no minion `{who}` (say `master` or one of: {})",
        lab.file.display(),
        lab.minions
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(plan::container_name(&lab.name, who))
}

pub fn run(ctx: &LabContext, cmd: LabCommand) -> Result<ExitCode> {
    let b = DockerBackend::from_env()?;
    match cmd {
        LabCommand::Up { lab } => {
            let lab = load_lab(&lab)?;
            up(ctx, &lab, &b)?;
            print_status(&b, &lab)?;
        }
        LabCommand::Apply {
            lab,
            target,
            sls,
            test,
            json_report,
            junit,
        } => {
            let lab = load_lab(&lab)?;
            let mut p = lab_plan(&lab, &ctx.build.cache_dir, &[])?;
            select(&mut p, target.as_deref())?;
            let kind = if test {
                RunKind::DryRun
            } else {
                RunKind::Apply
            };
            let r = run::apply(&b, &p, kind, &sls, apply_timeout(&lab))?;
            let report = Report {
                lab: lab.name.clone(),
                runs: vec![r],
            };
            write_reports(&report, json_report.as_deref(), junit.as_deref())?;
            return Ok(finish(ctx, &report));
        }
        LabCommand::Test {
            lab,
            sls,
            json_report,
            junit,
            keep,
        } => {
            let lab = load_lab(&lab)?;
            // A lab left up by an earlier `--keep` or a killed run would clash: start clean.
            run::down(&b, &lab.name)?;
            let result = test(ctx, &lab, &b, &sls);
            if !keep || matches!(result, Err(ref e) if is_interrupt(e)) {
                let n = run::down(&b, &lab.name)?;
                if !ctx.quiet {
                    eprintln!(
                        "lab {} down ({n} containers, networks and volumes removed)",
                        lab.name
                    );
                }
            } else if !ctx.quiet {
                eprintln!(
                    "lab {} left up (--keep): `strata lab down` removes it",
                    lab.name
                );
            }
            let report = result?;
            write_reports(&report, json_report.as_deref(), junit.as_deref())?;
            return Ok(finish(ctx, &report));
        }
        LabCommand::Status { lab } => {
            let lab = load_lab(&lab)?;
            print_status(&b, &lab)?;
        }
        LabCommand::Exec { lab, who, command } => {
            let lab = load_lab(&lab)?;
            let name = container_of(&lab, &who)?;
            let out = b.exec(&name, &command, apply_timeout(&lab)).map_err(|e| {
                anyhow::anyhow!("{e}\n  hint: is the lab up? (`strata lab status`)")
            })?;
            print!("{}", out.stdout);
            eprint!("{}", out.stderr);
            // An exit code the engine did not report (-1) is an error, not a success.
            let code = if out.code < 0 { 2 } else { out.code.min(255) };
            return Ok(ExitCode::from(code as u8));
        }
        LabCommand::Logs { lab, who } => {
            let lab = load_lab(&lab)?;
            let name = container_of(&lab, &who)?;
            print!("{}", b.logs(&name)?);
        }
        LabCommand::Down { lab } => {
            let lab = load_lab(&lab)?;
            let n = run::down(&b, &lab.name)?;
            if !ctx.quiet {
                eprintln!(
                    "lab {}: removed {n} containers, networks and volumes",
                    lab.name
                );
            }
        }
        LabCommand::Gc => {
            let n = run::gc(&b)?;
            if !ctx.quiet {
                eprintln!("removed {n} lab containers, networks and volumes");
            }
            println!("{n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn is_interrupt(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<LabError>(), Some(LabError::Interrupted))
}

/// up → apply → apply again → report (the caller tears down).
fn test(ctx: &LabContext, lab: &Lab, b: &DockerBackend, sls: &[String]) -> Result<Report> {
    let p = up(ctx, lab, b)?;
    let mut runs = Vec::new();
    for kind in [RunKind::Apply, RunKind::Idempotence] {
        if !ctx.quiet {
            eprintln!(
                "{} {} on {} minions",
                if kind == RunKind::Apply {
                    "applying"
                } else {
                    "applying again (idempotence)"
                },
                if sls.is_empty() {
                    "the highstate".to_string()
                } else {
                    sls.join(",")
                },
                p.minion_ids.len()
            );
        }
        let r = session::guarded(b, &lab.name, || {
            run::apply(b, &p, kind, sls, apply_timeout(lab))
        })?;
        if !ctx.quiet {
            eprintln!("  {:.1} s", r.seconds);
        }
        runs.push(r);
    }
    Ok(Report {
        lab: lab.name.clone(),
        runs,
    })
}

fn print_status(b: &DockerBackend, lab: &Lab) -> Result<()> {
    let found = b.list(&format!("{LABEL_LAB}={}", lab.name))?;
    if found.is_empty() {
        println!("lab {} is down", lab.name);
        return Ok(());
    }
    println!("{:<36} {:<8} {:<20} state", "container", "role", "minion");
    for r in found.iter().filter(|r| r.kind == ResourceKind::Container) {
        println!(
            "{:<36} {:<8} {:<20} {}",
            r.name,
            r.labels.get(LABEL_ROLE).map(String::as_str).unwrap_or("-"),
            r.labels
                .get(LABEL_MINION)
                .map(String::as_str)
                .unwrap_or("-"),
            if r.running { "running" } else { "stopped" }
        );
    }
    for r in found.iter().filter(|r| r.kind == ResourceKind::Network) {
        println!("network {}", r.name);
    }
    for r in found.iter().filter(|r| r.kind == ResourceKind::Volume) {
        println!("volume {}", r.name);
    }
    Ok(())
}

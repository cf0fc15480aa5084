//! Integration tests: the real `strata` binary against the example recipes, checked by
//! independent readers (umoci, skopeo, the Docker engine). The tools are installed by
//! `.ci/run`; a missing one fails the test (set STRATA_SKIP_TOOL_TESTS=1 to skip those
//! tests knowingly on a machine without them).

mod build;
mod debian;
mod debian_deb;
mod debian_examples;
mod debian_multiarch;
mod determinism;
mod errors;
mod lab;
mod lab_apt;
mod lab_salt;
mod multiarch;
mod python;
mod registry;
mod sbom;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch area with its own cache, removed on drop.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Sandbox {
        Sandbox::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn cache(&self) -> PathBuf {
        self.path("cache")
    }

    /// `strata` with this sandbox's cache and a neutral environment.
    pub fn strata(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.env("STRATA_CACHE", self.cache())
            .env_remove("SOURCE_DATE_EPOCH")
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path());
        c
    }

    /// Runs `strata build` and returns the manifest digest it printed.
    pub fn build(&self, recipe: &Path, out: &Path, extra: &[&str]) -> String {
        let o = run_ok(
            self.strata()
                .arg("build")
                .arg(recipe)
                .arg("-o")
                .arg(out)
                .args(extra),
        );
        stdout(&o).trim().to_string()
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn run(c: &mut Command) -> Output {
    c.output().unwrap_or_else(|e| panic!("running {c:?}: {e}"))
}

pub fn run_ok(c: &mut Command) -> Output {
    let o = run(c);
    assert!(
        o.status.success(),
        "{c:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    o
}

/// True when `tool` is on PATH; panics when it is not, unless skipping was asked for.
pub fn require(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if found {
        return true;
    }
    if std::env::var_os("STRATA_SKIP_TOOL_TESTS").is_some() {
        eprintln!("SKIPPED: {tool} not installed and STRATA_SKIP_TOOL_TESTS is set");
        return false;
    }
    panic!("{tool} is required by this test (apt-get install {tool}, or run .ci/run); set STRATA_SKIP_TOOL_TESTS=1 to skip knowingly");
}

/// Copies a directory tree (files, dirs, symlinks; modes kept).
pub fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success());
}

//! The recipe data model, exactly as written in YAML. Validation and source resolution live
//! beside it (`parse`, `resolve`); this file only says what a recipe can contain.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Default `SOURCE_DATE_EPOCH` when neither the recipe nor the environment gives one:
/// 2000-01-01T00:00:00Z. Fixed, so builds never depend on the clock.
pub const DEFAULT_SOURCE_DATE_EPOCH: i64 = 946_684_800;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    #[serde(default = "default_tag")]
    pub tag: String,
    /// `os/arch[/variant]`, default `linux/amd64`.
    #[serde(default = "default_platform")]
    pub platform: String,
    /// Several `os/arch[/variant]`: one image per platform under an image index. Exclusive
    /// with `platform`; empty for a single-platform recipe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    #[serde(default)]
    pub source_date_epoch: Option<i64>,
    /// `scratch` or `oci:PATH[:TAG]` (PATH relative to the recipe's directory).
    #[serde(default = "default_base")]
    pub base: String,
    #[serde(default)]
    pub layers: Vec<LayerSpec>,
    #[serde(default)]
    pub accounts: Option<Accounts>,
    #[serde(default)]
    pub config: ImageConfigSpec,
    /// Manifest annotations (`org.opencontainers.image.*` and others).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn default_tag() -> String {
    "latest".into()
}
fn default_platform() -> String {
    "linux/amd64".into()
}
fn default_base() -> String {
    "scratch".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LayerSpec {
    /// Shown in history and progress; defaults to `layer-N`.
    #[serde(default)]
    pub name: Option<String>,
    /// serde_yaml 0.9 spells enums as YAML tags (`!copy`); the single-key map form the
    /// recipe format uses needs the singleton-map adapter.
    #[serde(with = "serde_yaml::with::singleton_map_recursive")]
    pub steps: Vec<Step>,
}

/// One step. YAML form: a single-key map, e.g. `- copy: {src: bin/, dest: /usr/bin/}`.
/// The set is open: later step kinds (debian, python) are added as new variants.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Copy(CopyStep),
    File(FileStep),
    Dir(DirStep),
    Symlink(SymlinkStep),
    Tar(TarStep),
    Remove(RemoveStep),
    Debian(DebianStep),
    Python(PythonStep),
}

/// Installs Debian packages (resolved from a signed mirror index, pinned in `RECIPE.lock`)
/// without running maintainer scripts. A layer holding a `debian` step holds only that
/// step: the step itself becomes one or more layers (`layering`). At most one per recipe.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DebianStep {
    /// `bookworm`, `trixie`, … (or a suite name such as `stable`).
    pub suite: String,
    /// Default `[main]`.
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    /// `name`, `name (>= 1.2)`, `name=1.2-1`, or `a | b`.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Never installed; relations naming them count as satisfied.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Also install every `Essential: yes` and `Priority: required` package.
    #[serde(default)]
    pub essential: bool,
    #[serde(default)]
    pub layering: Layering,
}

fn default_components() -> Vec<String> {
    vec!["main".into()]
}

/// How a debian step's packages become layers (see `debian::layers`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Layering {
    /// One layer per package.
    #[default]
    PerPackage,
    /// One layer per source package.
    PerSource,
    /// At most N layers: the N-1 largest source packages alone, the rest together.
    Budget(u32),
}

/// Copies files, directories or glob matches from the recipe's directory.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CopyStep {
    /// A path or glob relative to the recipe's directory; never `..` or absolute.
    pub src: String,
    /// Absolute path in the image. A trailing `/` (or several matches, or a directory
    /// source) means "into this directory".
    pub dest: String,
    /// Octal digits (`"0755"`, or unquoted `0755`/`755`, read as written) applied to
    /// files; files without it keep their source permission bits.
    #[serde(default)]
    pub mode: Option<String>,
    /// Like `mode`, for directories; without it they keep their source permission bits.
    #[serde(default)]
    pub dir_mode: Option<String>,
    /// `user[:group]`, names from `accounts` or numbers.
    #[serde(default)]
    pub owner: Option<String>,
    /// Globs left out, matched against the path below `dest`: one without `/` matches a
    /// file name at any depth, one with `/` the whole relative path.
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileStep {
    pub path: String,
    pub content: String,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DirStep {
    pub path: String,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SymlinkStep {
    pub path: String,
    pub target: String,
    #[serde(default)]
    pub owner: Option<String>,
}

/// Unpacks a local tarball (plain, gzip, zstd; detected from the bytes) under `dest`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TarStep {
    pub src: String,
    #[serde(default = "default_root")]
    pub dest: String,
    /// Keep the owners stored in the tarball instead of `owner` / 0:0.
    #[serde(default)]
    pub keep_owners: bool,
    #[serde(default)]
    pub owner: Option<String>,
}

fn default_root() -> String {
    "/".into()
}

/// Deletes paths present in lower layers (OCI whiteouts). `opaque: true` hides a
/// directory's lower contents but keeps the directory.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoveStep {
    pub paths: Vec<String>,
    #[serde(default)]
    pub opaque: bool,
}

/// Installs pinned Python packages from wheels named in a lock file (`strata lock` writes
/// it), without pip in the image. See docs/recipe.md, "python".
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PythonStep {
    /// `name==version` lines (extras and markers allowed, nothing but `==`).
    #[serde(default)]
    pub requirements: Vec<String>,
    /// A requirements file relative to the recipe's directory, instead of `requirements`.
    #[serde(default)]
    pub requirements_file: Option<String>,
    /// The image's Python: `3.11` or `3.11.4` (quoted).
    pub python: String,
    /// Wheel platform tag, e.g. `manylinux_2_36_x86_64`; default `manylinux_2_17_<arch>`.
    #[serde(default)]
    pub platform: Option<String>,
    /// The site-packages directory in the image.
    pub target: String,
    /// Install prefix (scripts go to `<prefix>/bin`); derived from `target` when it is
    /// `<prefix>/lib/python3[.N]/{site,dist}-packages`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Interpreter for generated scripts' `#!` line; default `<prefix>/bin/python3`.
    #[serde(default)]
    pub interpreter: Option<String>,
    /// Lock file relative to the recipe's directory; default `<recipe stem>.python.lock`.
    #[serde(default)]
    pub lock: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Accounts {
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub uid: u32,
    /// Primary group id; defaults to `uid`, and a group of the user's name is created when
    /// no group has that gid.
    #[serde(default)]
    pub gid: Option<u32>,
    #[serde(default)]
    pub home: Option<String>,
    #[serde(default)]
    pub shell: Option<String>,
    #[serde(default)]
    pub gecos: Option<String>,
    /// Create the home directory (owned by the user, mode 0750). Default true.
    #[serde(default = "yes")]
    pub create_home: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageConfigSpec {
    /// `KEY: value`; kept in key order.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `"8080/tcp"`, `"53/udp"`, or a bare port number (tcp).
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
}

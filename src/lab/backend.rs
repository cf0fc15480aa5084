//! What the lab needs from a container runtime, as a trait: the Docker Engine API is one
//! implementation, and unit tests use [`FakeBackend`]. Every resource carries the lab's
//! labels, so teardown and `lab gc` find them by label alone.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Label on every container and network of every lab.
pub const LABEL_LAB: &str = "io.strata.lab";
/// Label: `master` or `minion`.
pub const LABEL_ROLE: &str = "io.strata.lab.role";
/// Label on minion containers: the minion id.
pub const LABEL_MINION: &str = "io.strata.lab.minion";
/// Label on a bytecode cache volume shared by the labs that run one image: the image id.
/// Such a volume belongs to no lab: `lab down` keeps it, `lab gc` removes it when unused.
pub const LABEL_PYCACHE: &str = "io.strata.lab.pycache";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub host: std::path::PathBuf,
    pub container: String,
    pub read_only: bool,
}

/// A named volume of the lab mounted in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub volume: String,
    pub container: String,
}

/// A file put into a container before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Absolute path in the container.
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub hostname: String,
    /// The image as the runtime knows it (e.g. `strata-lab/seed-master:latest`).
    pub image: String,
    pub network: String,
    /// Extra names on the network (the master is `salt`).
    pub aliases: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub binds: Vec<Bind>,
    /// Lab volumes (created with [`Backend::create_volume`] before the container).
    pub volumes: Vec<VolumeMount>,
    pub files: Vec<FileSpec>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceKind {
    Container,
    Network,
    Volume,
}

/// A container, network or volume found by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub kind: ResourceKind,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Containers: whether it runs.
    pub running: bool,
}

pub type Result<T> = std::result::Result<T, BackendError>;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("timed out after {0:?}: {1}")]
    Timeout(Duration, String),
    #[error("{0}")]
    Other(String),
}

/// A container runtime. Removal is idempotent: removing what is gone is not an error.
pub trait Backend: Send + Sync {
    /// An internal network (no route out) with these labels.
    fn create_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()>;
    fn remove_network(&self, name: &str) -> Result<()>;
    /// A named volume with these labels; a volume of that name that exists already is kept
    /// as it is (with its labels and contents).
    fn create_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()>;
    fn remove_volume(&self, name: &str) -> Result<()>;
    /// Removes the volume unless a container (running or not) uses it; whether it did.
    fn remove_volume_if_unused(&self, name: &str) -> Result<bool>;
    /// Creates (does not start) the container and puts its files in.
    fn create_container(&self, spec: &ContainerSpec) -> Result<()>;
    fn start_container(&self, name: &str) -> Result<()>;
    /// Stops (if running) and removes the container with its anonymous volumes.
    fn remove_container(&self, name: &str) -> Result<()>;
    fn exec(&self, name: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput>;
    fn logs(&self, name: &str) -> Result<String>;
    /// Containers, networks and volumes carrying `label` (`key` or `key=value`).
    fn list(&self, label: &str) -> Result<Vec<Resource>>;
}

/// An in-memory runtime for unit tests: records calls, can be told to fail.
#[derive(Debug, Default)]
pub struct FakeBackend {
    pub state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub networks: BTreeMap<String, BTreeMap<String, String>>,
    pub volumes: BTreeMap<String, BTreeMap<String, String>>,
    pub containers: BTreeMap<String, (ContainerSpec, bool)>,
    /// Container names whose creation fails.
    pub fail_create: Vec<String>,
    /// Answers to exec by container name: (code, stdout).
    pub exec_answers: BTreeMap<String, (i64, String)>,
    /// Answers to exec by container name and program (`cmd[0]`), before `exec_answers`.
    pub exec_answers_by_program: BTreeMap<(String, String), (i64, String)>,
    pub calls: Vec<String>,
    /// Most containers alive at once (checks the start-up bound).
    pub max_concurrent_creates: usize,
    pub creating: usize,
    /// Most container removals in flight at once.
    pub max_concurrent_removes: usize,
    pub removing: usize,
}

fn matches(labels: &BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}

impl FakeBackend {
    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }
}

impl Backend for FakeBackend {
    fn create_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        self.with(|s| {
            s.calls.push(format!("network+ {name}"));
            // As an engine does: a name is taken once.
            if s.networks.contains_key(name) {
                return Err(BackendError::Other(format!(
                    "network {name} exists already"
                )));
            }
            s.networks.insert(name.into(), labels.clone());
            Ok(())
        })
    }

    fn remove_network(&self, name: &str) -> Result<()> {
        self.with(|s| {
            s.calls.push(format!("network- {name}"));
            s.networks.remove(name);
        });
        Ok(())
    }

    fn create_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        self.with(|s| {
            s.calls.push(format!("volume+ {name}"));
            s.volumes
                .entry(name.into())
                .or_insert_with(|| labels.clone());
        });
        Ok(())
    }

    fn remove_volume(&self, name: &str) -> Result<()> {
        self.with(|s| {
            s.calls.push(format!("volume- {name}"));
            s.volumes.remove(name);
        });
        Ok(())
    }

    fn remove_volume_if_unused(&self, name: &str) -> Result<bool> {
        self.with(|s| {
            let used = s
                .containers
                .values()
                .any(|(c, _)| c.volumes.iter().any(|v| v.volume == name));
            if used {
                return Ok(false);
            }
            s.calls.push(format!("volume- {name}"));
            Ok(s.volumes.remove(name).is_some())
        })
    }

    fn create_container(&self, spec: &ContainerSpec) -> Result<()> {
        self.with(|s| {
            s.creating += 1;
            s.max_concurrent_creates = s.max_concurrent_creates.max(s.creating);
        });
        // Long enough for concurrent creators to overlap.
        std::thread::sleep(Duration::from_millis(5));
        self.with(|s| {
            s.creating -= 1;
            s.calls.push(format!("create {}", spec.name));
            if s.fail_create.contains(&spec.name) {
                return Err(BackendError::Other(format!("cannot create {}", spec.name)));
            }
            if !s.networks.contains_key(&spec.network) {
                return Err(BackendError::NotFound(format!("network {}", spec.network)));
            }
            if let Some(v) = spec
                .volumes
                .iter()
                .find(|v| !s.volumes.contains_key(&v.volume))
            {
                return Err(BackendError::NotFound(format!("volume {}", v.volume)));
            }
            s.containers
                .insert(spec.name.clone(), (spec.clone(), false));
            Ok(())
        })
    }

    fn start_container(&self, name: &str) -> Result<()> {
        self.with(|s| {
            s.calls.push(format!("start {name}"));
            match s.containers.get_mut(name) {
                Some(c) => {
                    c.1 = true;
                    Ok(())
                }
                None => Err(BackendError::NotFound(name.into())),
            }
        })
    }

    fn remove_container(&self, name: &str) -> Result<()> {
        self.with(|s| {
            s.removing += 1;
            s.max_concurrent_removes = s.max_concurrent_removes.max(s.removing);
        });
        // Long enough for concurrent removals to overlap.
        std::thread::sleep(Duration::from_millis(5));
        self.with(|s| {
            s.removing -= 1;
            s.calls.push(format!("rm {name}"));
            s.containers.remove(name);
        });
        Ok(())
    }

    fn exec(&self, name: &str, cmd: &[String], _timeout: Duration) -> Result<ExecOutput> {
        self.with(|s| {
            s.calls.push(format!("exec {name} {}", cmd.join(" ")));
            if !s.containers.get(name).is_some_and(|c| c.1) {
                return Err(BackendError::NotFound(format!("running container {name}")));
            }
            let program = cmd.first().cloned().unwrap_or_default();
            let (code, stdout) = s
                .exec_answers_by_program
                .get(&(name.to_string(), program))
                .or_else(|| s.exec_answers.get(name))
                .cloned()
                .unwrap_or((0, String::new()));
            Ok(ExecOutput {
                code,
                stdout,
                stderr: String::new(),
            })
        })
    }

    fn logs(&self, name: &str) -> Result<String> {
        Ok(format!("logs of {name}"))
    }

    fn list(&self, label: &str) -> Result<Vec<Resource>> {
        Ok(self.with(|s| {
            let mut out: Vec<Resource> = s
                .containers
                .values()
                .filter(|(c, _)| matches(&c.labels, label))
                .map(|(c, running)| Resource {
                    kind: ResourceKind::Container,
                    name: c.name.clone(),
                    labels: c.labels.clone(),
                    running: *running,
                })
                .collect();
            out.extend(
                s.networks
                    .iter()
                    .filter(|(_, l)| matches(l, label))
                    .map(|(n, l)| Resource {
                        kind: ResourceKind::Network,
                        name: n.clone(),
                        labels: l.clone(),
                        running: false,
                    }),
            );
            out.extend(
                s.volumes
                    .iter()
                    .filter(|(_, l)| matches(l, label))
                    .map(|(n, l)| Resource {
                        kind: ResourceKind::Volume,
                        name: n.clone(),
                        labels: l.clone(),
                        running: false,
                    }),
            );
            out
        }))
    }
}

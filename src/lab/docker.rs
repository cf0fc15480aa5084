//! The lab's [`Backend`] on the Docker Engine API (the unix-socket client of
//! [`crate::docker`]). It uses only endpoints that Podman's Docker-compatible API serves too:
//! networks, containers (create with `Init`, archive upload, start, delete), exec, logs and
//! label-filtered lists.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::backend::{
    Backend, BackendError, ContainerSpec, ExecOutput, FileSpec, Resource, ResourceKind, Result,
};
use crate::docker::{Engine, RequestBody, Response};

/// Longest wait for a create, start or delete.
pub const API_TIMEOUT: Duration = Duration::from_secs(120);

/// A lab runtime on a Docker (or Podman) engine.
#[derive(Debug, Clone)]
pub struct DockerBackend {
    pub engine: Engine,
}

impl DockerBackend {
    /// The engine `DOCKER_HOST` names (else the default socket), checked with a ping.
    pub fn from_env() -> anyhow::Result<DockerBackend> {
        let engine = Engine::from_env()?;
        engine.ping()?;
        Ok(DockerBackend { engine })
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<Response> {
        self.engine
            .request_with_timeout(method, path, body, timeout)
            .map_err(|e| BackendError::Other(format!("{e:#}")))
    }

    fn json(&self, method: &str, path: &str, body: &Value) -> Result<Response> {
        self.call(method, path, RequestBody::Json(body), API_TIMEOUT)
    }

    fn empty(&self, method: &str, path: &str) -> Result<Response> {
        self.call(method, path, RequestBody::Empty, API_TIMEOUT)
    }
}

fn fail(what: &str, r: &Response) -> BackendError {
    if r.status == 404 {
        BackendError::NotFound(format!("{what}: {}", r.message()))
    } else {
        BackendError::Other(format!("{what}: HTTP {}: {}", r.status, r.message()))
    }
}

fn ok(what: &str, r: Response) -> Result<Response> {
    if (200..300).contains(&r.status) {
        Ok(r)
    } else {
        Err(fail(what, &r))
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The engine's body for `POST /containers/create` (pure).
pub fn create_body(spec: &ContainerSpec) -> Value {
    let binds: Vec<String> = spec
        .binds
        .iter()
        .map(|b| {
            format!(
                "{}:{}:{}",
                b.host.display(),
                b.container,
                if b.read_only { "ro" } else { "rw" }
            )
        })
        .collect();
    let mounts: Vec<Value> = spec
        .volumes
        .iter()
        .map(|v| json!({"Type": "volume", "Source": v.volume, "Target": v.container}))
        .collect();
    json!({
        "Image": spec.image,
        "Hostname": spec.hostname,
        "Cmd": spec.cmd,
        "Env": spec.env,
        "Labels": spec.labels,
        "Tty": false,
        "HostConfig": {
            "Binds": binds,
            "Mounts": mounts,
            // A small init as PID 1 reaps the daemons that services start and forwards signals.
            "Init": true,
            "NetworkMode": spec.network,
        },
        "NetworkingConfig": {
            "EndpointsConfig": { spec.network.clone(): { "Aliases": spec.aliases } }
        },
    })
}

/// A tar of `files` (with their parent directories) for `PUT /containers/…/archive?path=/`
/// (pure). Everything is owned by root.
pub fn files_tar(files: &[FileSpec]) -> std::io::Result<Vec<u8>> {
    let mut dirs = std::collections::BTreeSet::new();
    for f in files {
        let rel = f.path.trim_start_matches('/');
        let mut p = std::path::Path::new(rel).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_path_buf());
            p = d.parent();
        }
    }
    let mut b = tar::Builder::new(Vec::new());
    for d in &dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        b.append_data(&mut h, d, std::io::empty())?;
    }
    for f in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(f.mode);
        h.set_size(f.content.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, f.path.trim_start_matches('/'), f.content.as_slice())?;
    }
    b.into_inner()
}

/// Splits the engine's multiplexed stdout/stderr stream (8-byte frame headers: stream,
/// 0, 0, 0, big-endian length) into the two texts (pure). A body that is not multiplexed
/// (a TTY) is all stdout.
pub fn demux(mut b: &[u8]) -> (String, String) {
    let framed = |b: &[u8]| b.len() >= 8 && matches!(b[0], 0..=2) && b[1..4] == [0, 0, 0];
    if !b.is_empty() && !framed(b) {
        return (String::from_utf8_lossy(b).into_owned(), String::new());
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while framed(b) {
        let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        let end = (8 + len).min(b.len());
        if b[0] == 2 {
            err.extend_from_slice(&b[8..end]);
        } else {
            out.extend_from_slice(&b[8..end]);
        }
        b = &b[end..];
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

impl Backend for DockerBackend {
    fn create_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        let body = json!({
            "Name": name,
            "CheckDuplicate": true,
            // No route out: a lab reaches only its own containers.
            "Internal": true,
            "Labels": labels,
        });
        let r = self.json("POST", "/networks/create", &body)?;
        // Docker answers a duplicate name with 409, Podman with 500 ("network already
        // exists"): whatever the status, a failed create of a network that exists is that.
        let exists = || {
            self.empty("GET", &format!("/networks/{}", enc(name)))
                .is_ok_and(|r| r.status == 200)
        };
        if r.status == 409 || (!(200..300).contains(&r.status) && exists()) {
            return Err(BackendError::Other(format!(
                "network {name} exists already: {}\n  hint: a lab of this name is up; run `strata lab down` for it (or `strata lab gc`)",
                r.message()
            )));
        }
        ok(&format!("creating network {name}"), r).map(drop)
    }

    fn remove_network(&self, name: &str) -> Result<()> {
        let r = self.empty("DELETE", &format!("/networks/{}", enc(name)))?;
        if r.status == 404 {
            return Ok(());
        }
        ok(&format!("removing network {name}"), r).map(drop)
    }

    fn create_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        let r = self.json(
            "POST",
            "/volumes/create",
            &json!({"Name": name, "Labels": labels}),
        )?;
        // Docker answers 201 with the volume that exists; an engine that answers 409 for
        // it means the same.
        if r.status == 409 {
            return Ok(());
        }
        ok(&format!("creating volume {name}"), r).map(drop)
    }

    fn remove_volume(&self, name: &str) -> Result<()> {
        let r = self.empty("DELETE", &format!("/volumes/{}?force=true", enc(name)))?;
        if r.status == 404 {
            return Ok(());
        }
        ok(&format!("removing volume {name}"), r).map(drop)
    }

    fn remove_volume_if_unused(&self, name: &str) -> Result<bool> {
        // Without `force`: the engine refuses (409) to remove a volume a container uses.
        let r = self.empty("DELETE", &format!("/volumes/{}", enc(name)))?;
        match r.status {
            404 | 409 => Ok(false),
            _ => ok(&format!("removing volume {name}"), r).map(|_| true),
        }
    }

    fn create_container(&self, spec: &ContainerSpec) -> Result<()> {
        let what = format!("creating container {}", spec.name);
        let r = self.json(
            "POST",
            &format!("/containers/create?name={}", enc(&spec.name)),
            &create_body(spec),
        )?;
        match r.status {
            404 => {
                return Err(BackendError::NotFound(format!(
                    "{what}: image {}: {}",
                    spec.image,
                    r.message()
                )))
            }
            409 => {
                return Err(BackendError::Other(format!(
                    "{what}: {}\n  hint: run `strata lab down` for this lab (or `strata lab gc`)",
                    r.message()
                )))
            }
            _ => {}
        }
        ok(&what, r)?;
        if !spec.files.is_empty() {
            let tar =
                files_tar(&spec.files).map_err(|e| BackendError::Other(format!("{what}: {e}")))?;
            let r = self.call(
                "PUT",
                &format!("/containers/{}/archive?path=%2F", enc(&spec.name)),
                RequestBody::Bytes(&tar, "application/x-tar"),
                API_TIMEOUT,
            )?;
            ok(&format!("putting files into {}", spec.name), r)?;
        }
        Ok(())
    }

    fn start_container(&self, name: &str) -> Result<()> {
        let r = self.empty("POST", &format!("/containers/{}/start", enc(name)))?;
        // 304: already started.
        if r.status == 304 {
            return Ok(());
        }
        ok(&format!("starting container {name}"), r).map(drop)
    }

    fn remove_container(&self, name: &str) -> Result<()> {
        let r = self.empty(
            "DELETE",
            &format!("/containers/{}?force=true&v=true", enc(name)),
        )?;
        if r.status == 404 {
            return Ok(());
        }
        ok(&format!("removing container {name}"), r).map(drop)
    }

    fn exec(&self, name: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput> {
        let what = format!("exec in {name}");
        let r = self.json(
            "POST",
            &format!("/containers/{}/exec", enc(name)),
            &json!({"AttachStdout": true, "AttachStderr": true, "Tty": false, "Cmd": cmd}),
        )?;
        let r = ok(&what, r)?;
        let id = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v["Id"].as_str().map(String::from))
            .ok_or_else(|| BackendError::Other(format!("{what}: the engine gave no exec id")))?;
        let r = self
            .engine
            .request_with_timeout(
                "POST",
                &format!("/exec/{id}/start"),
                RequestBody::Json(&json!({"Detach": false, "Tty": false})),
                timeout,
            )
            .map_err(|e| {
                let text = format!("{e:#}");
                if text.contains("timed out") || text.contains("would block") {
                    BackendError::Timeout(timeout, format!("{what}: {}", cmd.join(" ")))
                } else {
                    BackendError::Other(format!("{what}: {text}"))
                }
            })?;
        let r = ok(&what, r)?;
        let (stdout, stderr) = demux(&r.body);
        let info = self.empty("GET", &format!("/exec/{id}/json"))?;
        let info = ok(&what, info)?;
        let code = serde_json::from_slice::<Value>(&info.body)
            .ok()
            .and_then(|v| v["ExitCode"].as_i64())
            .unwrap_or(-1);
        Ok(ExecOutput {
            code,
            stdout,
            stderr,
        })
    }

    fn logs(&self, name: &str) -> Result<String> {
        let r = self.empty(
            "GET",
            &format!("/containers/{}/logs?stdout=1&stderr=1", enc(name)),
        )?;
        let r = ok(&format!("logs of {name}"), r)?;
        let (out, err) = demux(&r.body);
        Ok(out + &err)
    }

    fn list(&self, label: &str) -> Result<Vec<Resource>> {
        let filters = enc(&json!({ "label": [label] }).to_string());
        let r = self.empty("GET", &format!("/containers/json?all=1&filters={filters}"))?;
        let r = ok("listing containers", r)?;
        let containers: Vec<Value> = serde_json::from_slice(&r.body)
            .map_err(|e| BackendError::Other(format!("listing containers: {e}")))?;
        let mut out: Vec<Resource> = containers
            .iter()
            .map(|c| Resource {
                kind: ResourceKind::Container,
                name: c["Names"][0]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                labels: labels_of(&c["Labels"]),
                running: c["State"].as_str() == Some("running"),
            })
            .collect();
        let r = self.empty("GET", &format!("/networks?filters={filters}"))?;
        let r = ok("listing networks", r)?;
        let networks: Vec<Value> = serde_json::from_slice(&r.body)
            .map_err(|e| BackendError::Other(format!("listing networks: {e}")))?;
        out.extend(networks.iter().map(|n| Resource {
            kind: ResourceKind::Network,
            name: n["Name"].as_str().unwrap_or_default().to_string(),
            labels: labels_of(&n["Labels"]),
            running: false,
        }));
        let r = self.empty("GET", &format!("/volumes?filters={filters}"))?;
        let r = ok("listing volumes", r)?;
        let volumes: Value = serde_json::from_slice(&r.body)
            .map_err(|e| BackendError::Other(format!("listing volumes: {e}")))?;
        out.extend(
            volumes["Volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| Resource {
                    kind: ResourceKind::Volume,
                    name: v["Name"].as_str().unwrap_or_default().to_string(),
                    labels: labels_of(&v["Labels"]),
                    running: false,
                }),
        );
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::backend::Bind;

    #[test]
    fn demux_splits_frames_and_passes_tty_text() {
        let mut b = vec![1, 0, 0, 0, 0, 0, 0, 3];
        b.extend_from_slice(b"out");
        b.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
        b.extend_from_slice(b"err\n");
        b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 2]);
        b.extend_from_slice(b"!\n");
        assert_eq!(demux(&b), ("out!\n".to_string(), "err\n".to_string()));
        assert_eq!(demux(b"plain"), ("plain".to_string(), String::new()));
        assert_eq!(demux(b""), (String::new(), String::new()));
        // A frame cut short keeps what arrived.
        assert_eq!(demux(&[1, 0, 0, 0, 0, 0, 0, 9, b'a']).0, "a");
    }

    #[test]
    fn create_body_has_init_binds_aliases_and_labels() {
        let spec = ContainerSpec {
            name: "strata-lab-t-master".into(),
            hostname: "salt".into(),
            image: "strata-lab/t-master:abc".into(),
            network: "strata-lab-t".into(),
            aliases: vec!["salt".into()],
            labels: BTreeMap::from([("io.strata.lab".into(), "t".into())]),
            binds: vec![Bind {
                host: "/labs/t/salt".into(),
                container: "/srv/strata/salt/0".into(),
                read_only: true,
            }],
            volumes: vec![crate::lab::backend::VolumeMount {
                volume: "strata-lab-t-pycache-m".into(),
                container: "/var/cache/strata-lab/pycache".into(),
            }],
            files: vec![],
            cmd: vec!["salt-master".into()],
            env: vec![],
        };
        let b = create_body(&spec);
        assert_eq!(b["HostConfig"]["Init"], true);
        assert_eq!(
            b["HostConfig"]["Mounts"][0],
            json!({"Type": "volume", "Source": "strata-lab-t-pycache-m", "Target": "/var/cache/strata-lab/pycache"})
        );
        assert_eq!(
            b["HostConfig"]["Binds"][0],
            "/labs/t/salt:/srv/strata/salt/0:ro"
        );
        assert_eq!(b["HostConfig"]["NetworkMode"], "strata-lab-t");
        assert_eq!(
            b["NetworkingConfig"]["EndpointsConfig"]["strata-lab-t"]["Aliases"][0],
            "salt"
        );
        assert_eq!(b["Labels"]["io.strata.lab"], "t");
    }

    #[test]
    fn files_tar_holds_parents_modes_and_content() {
        let t = files_tar(&[FileSpec {
            path: "/etc/salt/pki/minion/minion.pem".into(),
            content: b"KEY".to_vec(),
            mode: 0o600,
        }])
        .expect("tar");
        let mut a = tar::Archive::new(t.as_slice());
        let got: Vec<(String, u32)> = a
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.path().expect("path").display().to_string(),
                    e.header().mode().expect("mode"),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("etc".to_string(), 0o755),
                ("etc/salt".to_string(), 0o755),
                ("etc/salt/pki".to_string(), 0o755),
                ("etc/salt/pki/minion".to_string(), 0o755),
                ("etc/salt/pki/minion/minion.pem".to_string(), 0o600),
            ]
        );
    }
}

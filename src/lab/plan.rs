//! A lab turned into containers: names, labels, the network, the Salt configs, grains,
//! pre-generated and pre-accepted minion keys and the read-only mounts of the Salt trees.
//! Pure: the keys and the runtime's image names come in as arguments.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::backend::{
    Bind, ContainerSpec, FileSpec, VolumeMount, LABEL_LAB, LABEL_MINION, LABEL_PYCACHE, LABEL_ROLE,
};
use super::spec::Lab;

/// Salt's default `cachedir` of a master.
pub const MASTER_CACHEDIR: &str = "/var/cache/salt/master";

/// Where the lab's Salt trees appear in the master container.
pub const SALT_TREE_DIR: &str = "/srv/strata/salt";
pub const PILLAR_TREE_DIR: &str = "/srv/strata/pillar";
/// The master's name on the lab network, Salt's default `master:`.
pub const MASTER_ALIAS: &str = "salt";

/// Where each container finds its image's shared bytecode cache: one volume per image,
/// named by `PYTHONPYCACHEPREFIX`. Images built by strata carry no `.pyc` files (strata runs
/// no Python at build time), so without it every container compiles Salt for itself.
pub const PYCACHE_DIR: &str = "/var/cache/strata-lab/pycache";

/// Written into a bytecode cache once [`WARM_PYCACHE`] has filled it.
pub const PYCACHE_COMPLETE: &str = ".strata-complete";

/// Run in the first container of each image before the others start: compiles Salt and
/// what it imports into the shared cache, so the rest of the lab starts warm, and marks the
/// cache complete. A cache marked complete (kept from an earlier `up` of this image) is left
/// as it is; an image without Salt has nothing to compile.
pub const WARM_PYCACHE: &str = "import os, sys
done = os.path.join(os.environ.get('PYTHONPYCACHEPREFIX') or sys.exit(0), '.strata-complete')
if os.path.exists(done):
    sys.exit(0)
import compileall
try:
    import salt.client, salt.master, salt.minion, salt.state
except Exception:
    sys.exit(0)
compileall.compile_dir(os.path.dirname(salt.__file__), quiet=1, workers=0)
open(done, 'w').close()
";

/// A lab image as the runtime knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanImage {
    /// What containers are created from (e.g. `strata-lab/seed-master:latest`).
    pub reference: String,
    /// The runtime's image id (`sha256:` of the image config), when known. The image's
    /// bytecode cache is then one volume for every lab that runs this exact image, kept from
    /// one `up` to the next (see [`LABEL_PYCACHE`]); without it, the lab's own volume.
    pub id: Option<String>,
}

impl From<&str> for PlanImage {
    fn from(reference: &str) -> PlanImage {
        PlanImage {
            reference: reference.into(),
            id: None,
        }
    }
}

/// A volume created before the lab's containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePlan {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// Salt's `lazy_loader_strict_matching` (3006.19 and later; Salt says its default becomes
/// `True`), set on the master and every minion. Without it, asking a loader for a function
/// that no module has imports every module of that kind to look for it, and a state run
/// does that in each job: any state with `unless`, `onlyif` or `creates` asks for
/// `STATE.mod_run_check`, which most state modules lack, so every state module is loaded
/// and its `__virtual__` run, which loads every execution module and every utils module in
/// turn (about 1 s of CPU per minion per highstate). With it, a module is found only by a
/// file name that contains its name or virtual name, as every module Salt ships is named.
pub const STRICT_LOADER: &str = "lazy_loader_strict_matching";

/// A minion's RSA key pair as Salt stores it (PKCS#1 private, SubjectPublicKeyInfo public).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub private_pem: String,
    pub public_pem: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LabPlan {
    pub lab: String,
    pub network: String,
    pub labels: BTreeMap<String, String>,
    pub master: ContainerSpec,
    pub minions: Vec<ContainerSpec>,
    /// Minion ids, in the lab file's order.
    pub minion_ids: Vec<String>,
    /// The package server for `apt.packages`, started before the minions.
    pub apt: Option<ContainerSpec>,
    /// The master's Salt `cachedir` (its minion data cache tells which minions connected).
    pub master_cachedir: String,
    /// The volumes (the bytecode caches), created before any container.
    pub volumes: Vec<VolumePlan>,
    /// Containers (the master and the first minion of each image) that fill their image's
    /// bytecode cache before the other minions start.
    pub warm: Vec<String>,
}

/// Where the lab's package repositories are served inside the lab.
pub const APT_ALIAS: &str = "apt";
/// The repositories' directory in the package server.
pub const APT_DIR: &str = "/srv/strata/apt";
/// The minions' apt source written by strata.
pub const APT_SOURCES_FILE: &str = "/etc/apt/sources.list.d/strata-lab.list";

/// The lab's packages: `repo_dir` holds one flat repository per suite (`SUITE/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptPlan {
    pub repo_dir: std::path::PathBuf,
    /// Lab image name → the Debian suite of that image.
    pub suites: BTreeMap<String, String>,
}

/// The apt source line of a minion on `suite`: the lab's flat repository for it, trusted
/// because strata wrote it from .debs checked against the lab's lock.
pub fn apt_source(suite: &str) -> String {
    format!("{}\n", super::apt::sources_list(suite, APT_ALIAS))
}

/// Adds the package server (a container of the master's image serving `repo_dir`
/// read-only over HTTP as `apt`) and each minion's apt source to `p`.
pub fn add_apt(p: &mut LabPlan, lab: &Lab, apt: &AptPlan) -> Result<(), String> {
    let mut labels = p.labels.clone();
    labels.insert(LABEL_ROLE.into(), "apt".into());
    p.apt = Some(ContainerSpec {
        name: container_name(&lab.name, "apt"),
        hostname: APT_ALIAS.into(),
        image: p.master.image.clone(),
        network: p.network.clone(),
        aliases: vec![APT_ALIAS.into()],
        labels,
        binds: vec![Bind {
            host: apt.repo_dir.clone(),
            container: APT_DIR.into(),
            read_only: true,
        }],
        volumes: vec![],
        files: vec![],
        cmd: [
            "python3",
            "-m",
            "http.server",
            "80",
            "--bind",
            "0.0.0.0",
            "--directory",
            APT_DIR,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        env: vec![],
    });
    for (m, spec) in lab.minions.iter().zip(p.minions.iter_mut()) {
        let suite = apt.suites.get(&m.image).ok_or_else(|| {
            format!(
                "minion {} runs image `{}`, which has no Debian suite to serve packages for",
                m.id, m.image
            )
        })?;
        spec.files.push(FileSpec {
            path: APT_SOURCES_FILE.into(),
            content: apt_source(suite).into_bytes(),
            mode: 0o644,
        });
    }
    Ok(())
}

/// Docker names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; lab names and minion ids already do.
pub fn container_name(lab: &str, who: &str) -> String {
    format!("strata-lab-{lab}-{who}")
}

pub fn network_name(lab: &str) -> String {
    format!("strata-lab-{lab}")
}

/// The bytecode cache volume of lab image `name` (image names are `[a-z0-9][a-z0-9_-]*`):
/// with the image's id, `strata-lab-pycache-ID` (16 hex digits of it), shared and kept;
/// without, `strata-lab-LAB-pycache-NAME`, the lab's own.
pub fn pycache_volume(lab: &str, name: &str, image: &PlanImage) -> VolumePlan {
    match &image.id {
        Some(id) => {
            let hex = id.strip_prefix("sha256:").unwrap_or(id);
            VolumePlan {
                name: format!("strata-lab-pycache-{}", &hex[..hex.len().min(16)]),
                labels: BTreeMap::from([(LABEL_PYCACHE.to_string(), id.clone())]),
            }
        }
        None => VolumePlan {
            name: format!("strata-lab-{lab}-pycache-{name}"),
            labels: BTreeMap::from([(LABEL_LAB.to_string(), lab.to_string())]),
        },
    }
}

/// `images`: lab image name → the runtime's image. `keys`: minion id → key pair.
pub fn plan(
    lab: &Lab,
    images: &BTreeMap<String, PlanImage>,
    keys: &BTreeMap<String, KeyPair>,
) -> Result<LabPlan, String> {
    let image_of = |name: &str| {
        images
            .get(name)
            .ok_or_else(|| format!("image `{name}` was not prepared"))
    };
    let image = |name: &str| image_of(name).map(|i| i.reference.clone());
    let volume_of = |name: &str| image_of(name).map(|i| pycache_volume(&lab.name, name, i));
    let network = network_name(&lab.name);
    let labels = BTreeMap::from([(LABEL_LAB.to_string(), lab.name.clone())]);
    let pycache = |v: &VolumePlan| VolumeMount {
        volume: v.name.clone(),
        container: PYCACHE_DIR.into(),
    };
    let with = |role: &str, minion: Option<&str>| {
        let mut l = labels.clone();
        l.insert(LABEL_ROLE.into(), role.into());
        if let Some(m) = minion {
            l.insert(LABEL_MINION.into(), m.into());
        }
        l
    };

    // Master: config, one pre-accepted public key per minion, the trees mounted read-only.
    let mut binds = Vec::new();
    let mut salt_dirs = Vec::new();
    for (i, root) in lab.file_roots.iter().enumerate() {
        let c = format!("{SALT_TREE_DIR}/{i}");
        binds.push(Bind {
            host: root.clone(),
            container: c.clone(),
            read_only: true,
        });
        salt_dirs.push(Value::String(c));
    }
    let mut pillar_dirs = Vec::new();
    for (i, root) in lab.pillar_roots.iter().enumerate() {
        let c = format!("{PILLAR_TREE_DIR}/{i}");
        binds.push(Bind {
            host: root.clone(),
            container: c.clone(),
            read_only: true,
        });
        pillar_dirs.push(Value::String(c));
    }
    let mut master_conf = Mapping::new();
    master_conf.insert("interface".into(), "0.0.0.0".into());
    // Keys are placed below, so nothing is accepted automatically.
    master_conf.insert("auto_accept".into(), false.into());
    master_conf.insert("open_mode".into(), false.into());
    master_conf.insert("file_roots".into(), base_env(salt_dirs));
    master_conf.insert("pillar_roots".into(), base_env(pillar_dirs));
    master_conf.insert(STRICT_LOADER.into(), true.into());
    let master_conf = merged(master_conf, &lab.spec.master.config);
    let master_cachedir = master_conf
        .get("cachedir")
        .and_then(|v| v.as_str())
        .unwrap_or(MASTER_CACHEDIR)
        .trim_end_matches('/')
        .to_string();
    let mut master_files = vec![FileSpec {
        path: "/etc/salt/master.d/strata.conf".into(),
        content: yaml(&master_conf)?.into_bytes(),
        mode: 0o644,
    }];
    for m in &lab.minions {
        let k = keys
            .get(&m.id)
            .ok_or_else(|| format!("no key for minion {}", m.id))?;
        master_files.push(FileSpec {
            path: format!("/etc/salt/pki/master/minions/{}", m.id),
            content: k.public_pem.clone().into_bytes(),
            mode: 0o644,
        });
    }
    let master_volume = volume_of(&lab.spec.master.image)?;
    let master = ContainerSpec {
        name: container_name(&lab.name, "master"),
        hostname: MASTER_ALIAS.into(),
        image: image(&lab.spec.master.image)?,
        network: network.clone(),
        aliases: vec![MASTER_ALIAS.into()],
        labels: with("master", None),
        binds,
        volumes: vec![pycache(&master_volume)],
        files: master_files,
        cmd: vec!["salt-master".into(), "--log-level=warning".into()],
        env: vec![pycache_env()],
    };
    let mut volumes = vec![master_volume];
    let mut warm = vec![master.name.clone()];

    let mut minions = Vec::new();
    for m in &lab.minions {
        let k = keys
            .get(&m.id)
            .ok_or_else(|| format!("no key for minion {}", m.id))?;
        let mut conf = Mapping::new();
        conf.insert("master".into(), MASTER_ALIAS.into());
        conf.insert("id".into(), m.id.clone().into());
        // Salt's default syncs every custom module type from the master at the start of
        // each state run, then reloads every module: a quarter of a minion's highstate.
        // strata syncs them itself when the file roots have any (see [`custom_module_dirs`]).
        conf.insert("autoload_dynamic_modules".into(), false.into());
        conf.insert(STRICT_LOADER.into(), true.into());
        let conf = merged(conf, &m.config);
        let grains: Mapping = m
            .grains
            .iter()
            .map(|(k, v)| (Value::String(k.clone()), v.clone()))
            .collect();
        let mut files = vec![
            FileSpec {
                path: "/etc/salt/minion.d/strata.conf".into(),
                content: yaml(&conf)?.into_bytes(),
                mode: 0o644,
            },
            FileSpec {
                path: "/etc/salt/pki/minion/minion.pem".into(),
                content: k.private_pem.clone().into_bytes(),
                mode: 0o600,
            },
            FileSpec {
                path: "/etc/salt/pki/minion/minion.pub".into(),
                content: k.public_pem.clone().into_bytes(),
                mode: 0o644,
            },
        ];
        if !grains.is_empty() {
            files.push(FileSpec {
                path: "/etc/salt/grains".into(),
                content: yaml(&grains)?.into_bytes(),
                mode: 0o644,
            });
        }
        let name = container_name(&lab.name, &m.id);
        let volume = volume_of(&m.image)?;
        let mount = pycache(&volume);
        if !volumes.contains(&volume) {
            volumes.push(volume);
            warm.push(name.clone());
        }
        minions.push(ContainerSpec {
            name,
            hostname: m.id.clone(),
            image: image(&m.image)?,
            network: network.clone(),
            aliases: vec![],
            labels: with("minion", Some(&m.id)),
            binds: vec![],
            volumes: vec![mount],
            files,
            // No keepalive parent: the lab restarts nothing, and that second Python process
            // would cost each minion about 40 MB.
            cmd: vec![
                "salt-minion".into(),
                "--log-level=warning".into(),
                "--disable-keepalive".into(),
            ],
            env: vec![pycache_env()],
        });
    }
    Ok(LabPlan {
        lab: lab.name.clone(),
        network,
        labels,
        master,
        minion_ids: lab.minions.iter().map(|m| m.id.clone()).collect(),
        minions,
        apt: None,
        master_cachedir,
        volumes,
        warm,
    })
}

/// The custom module directories (`_modules`, `_states`, `_grains`, … : any top-level
/// directory whose name starts with `_`) in the lab's file roots as they are now on the
/// host. When there are any, `apply` syncs them to the minions before each state run,
/// which Salt would do itself with `autoload_dynamic_modules` on.
pub fn custom_module_dirs(p: &LabPlan) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for b in &p.master.binds {
        if !b.container.starts_with(SALT_TREE_DIR) {
            continue;
        }
        let Ok(rd) = std::fs::read_dir(&b.host) else {
            continue;
        };
        let mut here: Vec<std::path::PathBuf> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('_'))
            .filter(|e| e.path().is_dir())
            .map(|e| e.path())
            .collect();
        here.sort();
        found.extend(here);
    }
    found
}

fn pycache_env() -> String {
    format!("PYTHONPYCACHEPREFIX={PYCACHE_DIR}")
}

fn base_env(dirs: Vec<Value>) -> Value {
    let mut m = Mapping::new();
    m.insert("base".into(), Value::Sequence(dirs));
    Value::Mapping(m)
}

/// The lab file's overrides replace strata's top-level keys.
fn merged(mut base: Mapping, overrides: &BTreeMap<String, Value>) -> Mapping {
    for (k, v) in overrides {
        base.insert(Value::String(k.clone()), v.clone());
    }
    base
}

fn yaml(m: &Mapping) -> Result<String, String> {
    serde_yaml::to_string(m).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::spec::parse_str;
    use std::path::Path;

    #[test]
    fn a_lab_file_can_turn_salts_module_autoload_back_on() {
        let lab = parse_str(
            "name: t\nimages: {m: m.yaml}\nmaster: {image: m}\nminions:\n  - {id: w1, image: m, config: {autoload_dynamic_modules: true}}\n",
            Path::new("t/lab.yaml"),
            Path::new("/labs/t"),
        )
        .expect("lab");
        let images = BTreeMap::from([("m".to_string(), PlanImage::from("im"))]);
        let p = plan(&lab, &images, &keys(&["w1"])).expect("plan");
        let conf: Value =
            serde_yaml::from_str(file(&p.minions[0], "/etc/salt/minion.d/strata.conf"))
                .expect("yaml");
        assert_eq!(conf["autoload_dynamic_modules"], Value::Bool(true));
    }

    fn lab() -> Lab {
        parse_str(
            "name: t\nimages: {m: m.yaml, n: n.yaml}\nmaster: {image: m, config: {log_level: debug}}\nminions:\n  - {id: \"w{n}\", count: 2, image: n, grains: {roles: [web]}, config: {startup_states: highstate}}\nfile_roots: [salt, more]\n",
            Path::new("t/lab.yaml"),
            Path::new("/labs/t"),
        )
        .expect("lab")
    }

    fn keys(ids: &[&str]) -> BTreeMap<String, KeyPair> {
        ids.iter()
            .map(|i| {
                (
                    i.to_string(),
                    KeyPair {
                        private_pem: format!("PRIVATE {i}"),
                        public_pem: format!("PUBLIC {i}"),
                    },
                )
            })
            .collect()
    }

    fn images() -> BTreeMap<String, PlanImage> {
        BTreeMap::from([
            ("m".into(), "img/m:1".into()),
            ("n".into(), "img/n:1".into()),
        ])
    }

    fn file<'a>(c: &'a ContainerSpec, path: &str) -> &'a str {
        let f = c
            .files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path} in {}", c.name));
        std::str::from_utf8(&f.content).expect("utf8")
    }

    #[test]
    fn master_gets_config_trees_and_every_minion_key() {
        let p = plan(&lab(), &images(), &keys(&["w1", "w2"])).expect("plan");
        assert_eq!(p.network, "strata-lab-t");
        assert_eq!(p.master.name, "strata-lab-t-master");
        assert_eq!(p.master.aliases, ["salt"]);
        assert_eq!(p.master.image, "img/m:1");
        assert_eq!(p.master.labels["io.strata.lab"], "t");
        assert_eq!(p.master.labels["io.strata.lab.role"], "master");
        let conf: Value =
            serde_yaml::from_str(file(&p.master, "/etc/salt/master.d/strata.conf")).expect("yaml");
        assert_eq!(conf["auto_accept"], Value::Bool(false));
        assert_eq!(conf[STRICT_LOADER], Value::Bool(true));
        assert_eq!(conf["log_level"], Value::String("debug".into()));
        assert_eq!(
            conf["file_roots"]["base"],
            serde_yaml::from_str::<Value>("[/srv/strata/salt/0, /srv/strata/salt/1]")
                .expect("yaml")
        );
        assert_eq!(
            file(&p.master, "/etc/salt/pki/master/minions/w2"),
            "PUBLIC w2"
        );
        assert!(p.master.binds.iter().all(|b| b.read_only));
        assert_eq!(p.master.binds[1].host, Path::new("/labs/t/more"));
    }

    #[test]
    fn an_image_with_an_id_has_one_kept_bytecode_cache_for_every_lab() {
        let mut imgs = images();
        for (name, id) in [
            ("m", "sha256:0123456789abcdef0123"),
            ("n", "sha256:fedcba9876543210ff"),
        ] {
            imgs.get_mut(name).expect("image").id = Some(id.into());
        }
        let p = plan(&lab(), &imgs, &keys(&["w1", "w2"])).expect("plan");
        let names: Vec<&str> = p.volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "strata-lab-pycache-0123456789abcdef",
                "strata-lab-pycache-fedcba9876543210"
            ]
        );
        // Labelled with the image, not the lab: `down` keeps it, `gc` removes it unused.
        assert_eq!(
            p.volumes[1].labels,
            BTreeMap::from([(
                LABEL_PYCACHE.to_string(),
                "sha256:fedcba9876543210ff".to_string()
            )])
        );
        assert_eq!(p.master.volumes[0].volume, names[0]);
        assert!(p.minions.iter().all(|m| m.volumes[0].volume == names[1]));
        // Another lab running the same image uses the same volume.
        let mut other = lab();
        other.name = "u".into();
        let q = plan(&other, &imgs, &keys(&["w1", "w2"])).expect("plan");
        assert_eq!(q.volumes, p.volumes);
        // Without an id, the lab's own volume, removed with the lab.
        let own = plan(&lab(), &images(), &keys(&["w1", "w2"])).expect("plan");
        assert_eq!(own.volumes[1].name, "strata-lab-t-pycache-n");
        assert_eq!(own.volumes[1].labels[LABEL_LAB], "t");
    }

    /// The warm-up script with the real `python3`, on a stand-in `salt` package: it compiles
    /// into `PYTHONPYCACHEPREFIX` and marks the cache complete; a complete cache is left
    /// alone.
    #[test]
    fn the_warm_up_fills_a_cache_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let pkg = dir.path().join("site/salt");
        std::fs::create_dir_all(&pkg).expect("mkdir");
        for m in ["__init__", "client", "master", "minion", "state", "extra"] {
            std::fs::write(pkg.join(format!("{m}.py")), "X = 1\n").expect("write");
        }
        let cache = dir.path().join("pycache");
        std::fs::create_dir_all(&cache).expect("mkdir");
        let warm = || {
            let o = std::process::Command::new("python3")
                .args(["-c", WARM_PYCACHE])
                .env("PYTHONPATH", dir.path().join("site"))
                .env("PYTHONPYCACHEPREFIX", &cache)
                .output()
                .expect("python3");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        };
        warm();
        let pyc_dir = cache.join(pkg.strip_prefix("/").expect("absolute"));
        let pycs = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        let compiled = pycs(&pyc_dir);
        assert!(
            compiled.iter().any(|f| f.starts_with("extra.")),
            "compileall reached the modules nothing imported: {compiled:?}"
        );
        assert!(cache.join(PYCACHE_COMPLETE).is_file());
        // Complete: a second run compiles nothing, even what is missing.
        for f in &compiled {
            std::fs::remove_file(pyc_dir.join(f)).expect("rm");
        }
        warm();
        assert!(pycs(&pyc_dir).is_empty(), "{:?}", pycs(&pyc_dir));
    }

    #[test]
    fn minions_get_id_grains_keys_and_overrides() {
        let p = plan(&lab(), &images(), &keys(&["w1", "w2"])).expect("plan");
        assert_eq!(p.minion_ids, ["w1", "w2"]);
        let m = &p.minions[1];
        assert_eq!(
            (m.name.as_str(), m.hostname.as_str()),
            ("strata-lab-t-w2", "w2")
        );
        assert_eq!(m.labels["io.strata.lab.minion"], "w2");
        let conf: Value =
            serde_yaml::from_str(file(m, "/etc/salt/minion.d/strata.conf")).expect("yaml");
        assert_eq!(conf["master"], Value::String("salt".into()));
        assert_eq!(conf["id"], Value::String("w2".into()));
        assert_eq!(conf["startup_states"], Value::String("highstate".into()));
        assert_eq!(conf["autoload_dynamic_modules"], Value::Bool(false));
        assert_eq!(conf[STRICT_LOADER], Value::Bool(true));
        assert_eq!(file(m, "/etc/salt/grains").trim(), "roles:\n- web");
        let pem = m
            .files
            .iter()
            .find(|f| f.path.ends_with("minion.pem"))
            .expect("pem");
        assert_eq!(pem.mode, 0o600);
        assert_eq!(pem.content, b"PRIVATE w2");
    }

    #[test]
    fn the_package_server_serves_each_minion_its_suite() {
        let mut p = plan(&lab(), &images(), &keys(&["w1", "w2"])).expect("plan");
        let apt = AptPlan {
            repo_dir: "/cache/lab/t/apt".into(),
            suites: BTreeMap::from([("n".into(), "trixie".into())]),
        };
        add_apt(&mut p, &lab(), &apt).expect("apt");
        let server = p.apt.as_ref().expect("server");
        assert_eq!(server.name, "strata-lab-t-apt");
        assert_eq!(server.aliases, ["apt"]);
        assert_eq!(server.image, "img/m:1");
        assert_eq!(server.labels["io.strata.lab"], "t");
        assert_eq!(server.binds[0].host, Path::new("/cache/lab/t/apt"));
        assert!(server.binds[0].read_only);
        for m in &p.minions {
            assert_eq!(
                file(m, APT_SOURCES_FILE),
                "deb [trusted=yes] http://apt/trixie ./\n"
            );
        }
        let mut p = plan(&lab(), &images(), &keys(&["w1", "w2"])).expect("plan");
        let none = AptPlan {
            suites: BTreeMap::new(),
            ..apt
        };
        assert!(add_apt(&mut p, &lab(), &none)
            .unwrap_err()
            .contains("minion w1 runs image `n`"));
    }

    #[test]
    fn missing_keys_or_images_are_errors() {
        assert!(plan(&lab(), &images(), &keys(&["w1"]))
            .unwrap_err()
            .contains("no key for minion w2"));
        let mut imgs = images();
        imgs.remove("n");
        assert!(plan(&lab(), &imgs, &keys(&["w1", "w2"]))
            .unwrap_err()
            .contains("image `n`"));
    }
}

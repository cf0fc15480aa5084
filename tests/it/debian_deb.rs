//! The Debian package reader against independent tools: packages built by `dpkg-deb`
//! (every compression it writes) are extracted by strata into a layer tar, unpacked by GNU
//! tar and compared with `dpkg-deb -x`; the dpkg database strata writes is read by
//! `dpkg-query` and `update-alternatives`; the fixture script reproduces its outputs.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use strata::debian::dpkgdb::{accounts_entries, alternatives_entries, dpkg_db_entries};
use strata::debian::extract::{package_entries, ExtractOptions, ExtractedPackage};
use strata::layer::{write_tar, Content, Entry, EntryKind};

use crate::*;

fn fixtures() -> PathBuf {
    repo().join("fixtures/debian/hostile")
}

#[test]
fn fixture_script_reproduces_the_checked_in_debs() {
    if !require("python3") {
        return;
    }
    let sb = Sandbox::new();
    let out = sb.path("debs");
    run_ok(
        Command::new("python3")
            .arg(fixtures().join("make-hostile.py"))
            .arg(&out),
    );
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".deb"))
            .collect();
        v.sort();
        v
    };
    let made = names(&out);
    assert_eq!(made, names(&fixtures()));
    assert!(made.len() >= 10, "{made:?}");
    for n in made {
        assert!(
            fs::read(out.join(&n)).expect("read") == fs::read(fixtures().join(&n)).expect("read"),
            "{n} differs from what make-hostile.py writes; run it and commit the result"
        );
    }
}

/// A small package tree for dpkg-deb: files, a hard link, a symlink, a setuid binary, an
/// odd owner, a file large enough to be spilled to disk, and maintainer files.
fn package_tree(root: &Path, name: &str) {
    let w = |rel: &str, bytes: &[u8], mode: u32| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, bytes).expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
    };
    w(
        "DEBIAN/control",
        format!("Package: {name}\nVersion: 2:1.2-3\nArchitecture: all\nMaintainer: T <t@example.org>\nSection: misc\nPriority: optional\nDescription: test\n a test package\n").as_bytes(),
        0o644,
    );
    w(
        "DEBIAN/conffiles",
        format!("/etc/{name}.conf\n").as_bytes(),
        0o644,
    );
    w("DEBIAN/postinst", b"#!/bin/sh\nset -e\n", 0o755);
    w(&format!("etc/{name}.conf"), b"key = value\n", 0o644);
    w(&format!("usr/bin/{name}"), b"#!/bin/sh\necho hi\n", 0o755);
    w(&format!("usr/sbin/{name}-suid"), b"suid\n", 0o4755);
    w(&format!("usr/lib/{name}/private"), b"secret\n", 0o600);
    let big: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    w(&format!("usr/share/{name}/big.bin"), &big, 0o644);
    fs::hard_link(
        root.join(format!("usr/bin/{name}")),
        root.join(format!("usr/bin/{name}-again")),
    )
    .expect("hard link");
    std::os::unix::fs::symlink(name, root.join(format!("usr/bin/{name}-sym"))).expect("symlink");
    std::os::unix::fs::symlink(
        format!("/etc/{name}.conf"),
        root.join(format!("usr/share/{name}/conf")),
    )
    .expect("symlink");
    fs::create_dir_all(root.join("var/empty")).expect("mkdir");
    fs::set_permissions(root.join("var/empty"), fs::Permissions::from_mode(0o1777)).expect("chmod");
}

/// What a tree holds: path → (kind, mode, content or link target), plus hard-link groups.
fn snapshot(root: &Path) -> BTreeMap<String, (char, u32, Vec<u8>, u64)> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.expect("walk");
        let rel = e
            .path()
            .strip_prefix(root)
            .expect("below root")
            .to_string_lossy()
            .into_owned();
        let m = fs::symlink_metadata(e.path()).expect("stat");
        let (kind, data) = if m.file_type().is_symlink() {
            (
                'l',
                fs::read_link(e.path())
                    .expect("readlink")
                    .to_string_lossy()
                    .into_owned()
                    .into_bytes(),
            )
        } else if m.is_dir() {
            ('d', Vec::new())
        } else {
            ('f', fs::read(e.path()).expect("read"))
        };
        let mode = if kind == 'l' { 0 } else { m.mode() & 0o7777 };
        out.insert(rel, (kind, mode, data, m.nlink() * u64::from(kind == 'f')));
    }
    out
}

fn write_layer(entries: &[Entry], path: &Path) {
    let mut f = fs::File::create(path).expect("create");
    write_tar(entries, &mut f).expect("write tar");
}

#[test]
fn dpkg_deb_packages_extract_like_dpkg() {
    if !require("dpkg-deb") || !require("tar") {
        return;
    }
    let sb = Sandbox::new();
    let tree = sb.path("tree");
    package_tree(&tree, "demo");
    for z in ["xz", "zstd", "gzip", "none"] {
        let deb = sb.path(&format!("demo-{z}.deb"));
        run_ok(
            Command::new("dpkg-deb")
                .args(["--root-owner-group", "-Z", z, "--build"])
                .arg(&tree)
                .arg(&deb),
        );
        let spill = sb.path(&format!("spill-{z}"));
        fs::create_dir_all(&spill).expect("mkdir");
        let opts = ExtractOptions {
            sde: 1_000_000,
            spill_dir: Some(spill.clone()),
            ..ExtractOptions::default()
        };
        let pkg = package_entries(&deb, &opts).unwrap_or_else(|e| panic!("{z}: {e}"));
        assert_eq!(
            (pkg.name.as_str(), pkg.version.as_str()),
            ("demo", "2:1.2-3")
        );
        // The large file went to the spill directory, named by its digest.
        let big = pkg.entry("usr/share/demo/big.bin").expect("big");
        match &big.kind {
            EntryKind::File {
                content: Content::Path { path, sha256 },
                ..
            } => {
                assert_eq!(path, &spill.join(sha256));
            }
            other => panic!("{z}: big.bin not spilled: {other:?}"),
        }
        let again = pkg.entry("usr/bin/demo-again").expect("hard link");
        assert!(matches!(&again.kind, EntryKind::Hardlink { target } if target == "usr/bin/demo"));

        let layer = sb.path(&format!("layer-{z}.tar"));
        write_layer(&pkg.entries, &layer);
        let ours = sb.path(&format!("ours-{z}"));
        let theirs = sb.path(&format!("theirs-{z}"));
        fs::create_dir_all(&ours).expect("mkdir");
        run_ok(
            Command::new("tar")
                .args(["-xpf"])
                .arg(&layer)
                .arg("-C")
                .arg(&ours),
        );
        run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&theirs));
        let (a, b) = (snapshot(&ours), snapshot(&theirs));
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{z}: paths differ"
        );
        for (k, va) in &a {
            assert_eq!(Some(va), b.get(k), "{z}: {k} differs");
        }
        // Owners and mtimes as GNU tar lists them: root/root, clamped to the epoch.
        let listing = run_ok(
            Command::new("tar")
                .env("TZ", "UTC")
                .args(["--numeric-owner", "--full-time", "-tvf"])
                .arg(&layer),
        );
        let listing = stdout(&listing);
        assert!(
            listing
                .lines()
                .all(|l| l.contains(" 0/0 ") && l.contains("1970-01-12 13:46:40")),
            "{listing}"
        );
    }
}

/// The fixture packages' dpkg database, written into a directory, as `dpkg-query` and
/// `update-alternatives` read it.
#[test]
fn dpkg_query_reads_the_generated_database() {
    if !require("dpkg-query") || !require("update-alternatives") {
        return;
    }
    let opts = ExtractOptions::default();
    let pkgs: Vec<ExtractedPackage> = [
        "good-xz_1.0-1_all.deb",
        "good-zst_1.0-1_amd64.deb",
        "good-gz_1.0-1_all.deb",
    ]
    .iter()
    .map(|f| package_entries(&fixtures().join(f), &opts).expect(f))
    .collect();
    let sb = Sandbox::new();
    let root = sb.path("root");
    let mut entries = dpkg_db_entries(&pkgs, "amd64", 0);
    entries.extend(alternatives_entries(&pkgs, 0));
    entries.extend(accounts_entries(&pkgs, None, 0).expect("accounts"));
    // The layer as a tar, unpacked: what a container would see.
    let mut seen = std::collections::BTreeSet::new();
    entries.retain(|e| seen.insert(e.path.clone()));
    let layer = sb.path("db.tar");
    write_layer(&entries, &layer);
    fs::create_dir_all(&root).expect("mkdir");
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&layer)
            .arg("-C")
            .arg(&root),
    );
    let admin = root.join("var/lib/dpkg");

    let o = run_ok(
        Command::new("dpkg-query")
            .arg(format!("--admindir={}", admin.display()))
            .args([
                "-W",
                "-f",
                "${Package} ${Version} ${Architecture} ${db:Status-Abbrev}\n",
            ]),
    );
    assert_eq!(
        stdout(&o),
        "good-gz 1.0-1 all ii \ngood-xz 1.0-1 all ii \ngood-zst 1.0-1 amd64 ii \n"
    );
    let o = run_ok(
        Command::new("dpkg-query")
            .arg(format!("--admindir={}", admin.display()))
            .args(["-L", "good-zst:amd64"]),
    );
    let files = stdout(&o);
    assert!(files.lines().any(|l| l == "/usr/bin/good-zst"), "{files}");
    assert!(files.lines().any(|l| l == "/bin/good-zst-old"), "{files}");
    let o = run_ok(
        Command::new("dpkg-query")
            .arg(format!("--admindir={}", admin.display()))
            .args(["-W", "-f", "${Conffiles}\n", "good-xz"]),
    );
    let conf = stdout(&o);
    let md5 = md5_of(b"# good-xz configuration\n");
    assert!(conf.contains(&format!("/etc/good-xz.conf {md5}")), "{conf}");
    // dpkg's own consistency check finds nothing to complain about.
    let o = run_ok(
        Command::new("dpkg")
            .arg(format!("--admindir={}", admin.display()))
            .arg("--audit"),
    );
    assert_eq!(stdout(&o), "");

    // update-alternatives reads the records strata wrote for the jinfo and postinst.
    for (name, value) in [
        ("java", "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"),
        ("good-tool", "/usr/bin/good-zst"),
    ] {
        let o = run_ok(
            Command::new("update-alternatives")
                .arg("--admindir")
                .arg(admin.join("alternatives"))
                .arg("--altdir")
                .arg(root.join("etc/alternatives"))
                .args(["--query", name]),
        );
        let q = stdout(&o);
        assert!(q.contains(&format!("Value: {value}")), "{name}: {q}");
        assert!(q.contains("Status: auto"), "{name}: {q}");
    }
    assert_eq!(
        fs::read_link(root.join("usr/bin/java")).expect("link"),
        Path::new("/etc/alternatives/java")
    );
}

fn md5_of(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}

/// Real packages of this Debian release, downloaded into apt's cache by `.ci/run`
/// (`apt-get install --reinstall --download-only`).
fn archive_debs(names: &[&str]) -> Option<Vec<PathBuf>> {
    let dir = Path::new("/var/cache/apt/archives");
    let mut out = Vec::new();
    for name in names {
        let mut found: Vec<PathBuf> = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{name}_")) && n.ends_with(".deb"))
            })
            .collect();
        found.sort();
        match found.pop() {
            Some(p) => out.push(p),
            None if std::env::var_os("STRATA_SKIP_TOOL_TESTS").is_some() => {
                eprintln!("SKIPPED: {name}_*.deb not in {} and STRATA_SKIP_TOOL_TESTS is set", dir.display());
                return None;
            }
            None => panic!(
                "{name}_*.deb is not in {}; hint: run `apt-get install --reinstall --download-only {}` (as .ci/run does)",
                dir.display(),
                names.join(" ")
            ),
        }
    }
    Some(out)
}

fn compare_with_dpkg_deb(sb: &Sandbox, pkg: &ExtractedPackage, tag: &str) {
    let layer = sb.path(&format!("{tag}.tar"));
    write_layer(&pkg.entries, &layer);
    let ours = sb.path(&format!("{tag}-ours"));
    let theirs = sb.path(&format!("{tag}-theirs"));
    fs::create_dir_all(&ours).expect("mkdir");
    run_ok(
        Command::new("tar")
            .arg("-xpf")
            .arg(&layer)
            .arg("-C")
            .arg(&ours),
    );
    run_ok(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&pkg.deb.path)
            .arg(&theirs),
    );
    let (a, b) = (snapshot(&ours), snapshot(&theirs));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{tag}: paths differ"
    );
    for (k, va) in &a {
        assert_eq!(Some(va), b.get(k), "{tag}: {k} differs");
    }
}

#[test]
fn real_debian_packages() {
    if !require("dpkg-deb") || !require("update-ca-certificates") || !require("openssl") {
        return;
    }
    let names = ["base-passwd", "ca-certificates", "coreutils", "mawk"];
    let Some(debs) = archive_debs(&names) else {
        return;
    };
    let sb = Sandbox::new();
    let opts = ExtractOptions::default();
    let pkgs: Vec<ExtractedPackage> = debs
        .iter()
        .map(|d| package_entries(d, &opts).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    for (p, name) in pkgs.iter().zip(names) {
        assert_eq!(p.name, name);
        compare_with_dpkg_deb(&sb, p, name);
    }

    // Merged /usr: over a base with `bin -> usr/bin`, coreutils' /bin/* land in usr/bin.
    let merged = ExtractOptions {
        lower_symlinks: [("bin".to_string(), "usr/bin".to_string())].into(),
        ..ExtractOptions::default()
    };
    let core = package_entries(&debs[2], &merged).expect("coreutils");
    assert!(core.entry("bin").is_none());
    assert!(core.entry("usr/bin/ls").is_some());
    assert!(core.dpkg_paths.iter().any(|p| p == "/bin/ls"));

    // base-passwd's masters become etc/passwd and etc/group.
    let accounts = accounts_entries(&pkgs, None, 0).expect("accounts");
    let theirs = sb.path("base-passwd-theirs");
    let text = |entries: &[Entry], path: &str| -> Vec<u8> {
        match &entries.iter().find(|e| e.path == path).expect(path).kind {
            EntryKind::File { content, .. } => {
                strata::debian::extract::read_content(content).expect("read")
            }
            other => panic!("{path}: {other:?}"),
        }
    };
    assert_eq!(
        text(&accounts, "etc/passwd"),
        fs::read(theirs.join("usr/share/base-passwd/passwd.master")).expect("master")
    );

    // mawk's postinst registers awk; the links are what update-alternatives makes.
    let alts = alternatives_entries(&pkgs, 0);
    let link = |path: &str| {
        alts.iter().find_map(|e| match &e.kind {
            EntryKind::Symlink { target } if e.path == path => Some(target.clone()),
            _ => None,
        })
    };
    assert_eq!(
        link("usr/bin/awk").as_deref(),
        Some("/etc/alternatives/awk")
    );
    assert_eq!(
        link("etc/alternatives/awk").as_deref(),
        Some("/usr/bin/mawk")
    );

    // The CA bundle: the same bytes update-ca-certificates makes from the same
    // certificates, selected the way the postinst does (`find | sort`).
    let ca = strata::debian::dpkgdb::ca_entries(&pkgs, 0);
    let certs = sb.path("ca-certificates-theirs/usr/share/ca-certificates");
    let listed = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("find . -type f -name '*.crt' | sed -e 's/^\\.\\///' | LC_ALL=C sort")
            .current_dir(&certs),
    );
    let listed = stdout(&listed);
    assert!(listed.lines().count() > 100, "{listed}");
    let conf = String::from_utf8(text(&ca, "etc/ca-certificates.conf")).expect("utf8");
    let ours_listed: String = conf
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(ours_listed, listed);
    let etc = sb.path("etc-ssl-certs");
    let hooks = sb.path("hooks");
    fs::create_dir_all(&etc).expect("mkdir");
    fs::create_dir_all(&hooks).expect("mkdir");
    let conf_file = sb.path("ca-certificates.conf");
    fs::write(&conf_file, &conf).expect("write");
    run_ok(
        Command::new("update-ca-certificates")
            .arg("--certsconf")
            .arg(&conf_file)
            .arg("--certsdir")
            .arg(&certs)
            .arg("--localcertsdir")
            .arg(sb.path("no-local-certs"))
            .arg("--etccertsdir")
            .arg(&etc)
            .arg("--hooksdir")
            .arg(&hooks),
    );
    assert!(
        text(&ca, "etc/ssl/certs/ca-certificates.crt")
            == fs::read(etc.join("ca-certificates.crt")).expect("bundle"),
        "the CA bundle differs from update-ca-certificates'"
    );
    // Every .pem link it made has the same name in ours.
    for e in fs::read_dir(&etc).expect("ls").flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.ends_with(".pem")
            && e.path()
                .symlink_metadata()
                .expect("stat")
                .file_type()
                .is_symlink()
            && fs::read_link(e.path()).expect("link").starts_with(&certs)
        {
            assert!(
                ca.iter().any(|x| x.path == format!("etc/ssl/certs/{n}")),
                "{n}"
            );
        }
    }

    // dpkg-query sees all four as installed.
    let root = sb.path("db");
    let db = dpkg_db_entries(&pkgs, "amd64", 0);
    let layer = sb.path("db.tar");
    write_layer(&db, &layer);
    fs::create_dir_all(&root).expect("mkdir");
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&layer)
            .arg("-C")
            .arg(&root),
    );
    let o = run_ok(
        Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}",
                root.join("var/lib/dpkg").display()
            ))
            .args(["-W", "-f", "${Package} ${db:Status-Abbrev}\n"]),
    );
    assert_eq!(
        stdout(&o),
        "base-passwd ii \nca-certificates ii \ncoreutils ii \nmawk ii \n"
    );
    let o = run_ok(
        Command::new("dpkg")
            .arg(format!(
                "--admindir={}",
                root.join("var/lib/dpkg").display()
            ))
            .arg("--audit"),
    );
    assert_eq!(stdout(&o), "");
}

/// Writes a one-platform OCI layout at `dir` (tag `latest`) with `layers` in order.
fn write_oci_layout(dir: &Path, layers: &[Vec<Entry>]) {
    use strata::layer::{write_layer, Compression};
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("mkdir");
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex = strata::digest::sha256_hex(bytes);
        fs::write(blobs.join(&hex), bytes).expect("write blob");
        (format!("sha256:{hex}"), bytes.len())
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for entries in layers {
        let (blob, d) = write_layer(entries, Compression::Gzip, Vec::new()).expect("layer");
        put(&blob);
        descs.push(serde_json::json!({
            "mediaType": Compression::Gzip.media_type(),
            "digest": d.digest,
            "size": d.size,
        }));
        diff_ids.push(d.diff_id);
    }
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (cd, cs) = put(&serde_json::to_vec(&config).expect("json"));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": descs,
    });
    let (md, ms) = put(&serde_json::to_vec(&manifest).expect("json"));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md,
            "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("index");
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
}

/// A merged-/usr base layer, then two packages, then the fix-ups, unpacked by umoci: the
/// base's `bin -> usr/bin` link survives, the alternatives chain resolves inside the
/// rootfs, and dpkg-query reads the database there.
#[test]
fn umoci_unpacks_packages_over_a_merged_usr_base() {
    if !require("umoci") || !require("dpkg-query") {
        return;
    }
    let mut base = vec![
        Entry::new("usr", EntryKind::Dir, 0o755),
        Entry::new("usr/bin", EntryKind::Dir, 0o755),
        Entry::new(
            "bin",
            EntryKind::Symlink {
                target: "usr/bin".into(),
            },
            0o777,
        ),
    ];
    base.sort_by(|a, b| a.path.cmp(&b.path));
    let opts = ExtractOptions {
        sde: 1_600_000_000,
        lower_symlinks: strata::debian::symlinks_of(&base),
        lower_dirs: strata::debian::dirs_of(&base),
        spill_dir: None,
    };
    let pkgs: Vec<ExtractedPackage> = ["good-zst_1.0-1_amd64.deb", "good-xz_1.0-1_all.deb"]
        .iter()
        .map(|f| package_entries(&fixtures().join(f), &opts).expect(f))
        .collect();
    let fixups =
        strata::debian::fixup_entries(&pkgs, None, &opts.lower_symlinks, "amd64", 1_600_000_000)
            .expect("fix-ups");
    let sb = Sandbox::new();
    let layout = sb.path("layout");
    write_oci_layout(
        &layout,
        &[
            base,
            pkgs[0].entries.clone(),
            pkgs[1].entries.clone(),
            fixups,
        ],
    );
    let bundle = sb.path("bundle");
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs::read_link(rootfs.join("bin")).expect("bin link"),
        Path::new("usr/bin")
    );
    assert_eq!(
        fs::read(rootfs.join("usr/bin/good-zst-old")).expect("moved below usr"),
        b"#!/bin/sh\n"
    );
    // /usr/bin/java -> /etc/alternatives/java -> the JDK's binary, resolved in the rootfs.
    let mut p = PathBuf::from("/usr/bin/java");
    for _ in 0..3 {
        match fs::read_link(rootfs.join(p.strip_prefix("/").expect("absolute"))) {
            Ok(t) => p = t,
            Err(_) => break,
        }
    }
    assert_eq!(p, Path::new("/usr/lib/jvm/java-17-openjdk-amd64/bin/java"));
    assert_eq!(
        fs::read(rootfs.join("usr/lib/jvm/java-17-openjdk-amd64/bin/java")).expect("java"),
        b"#!/bin/sh\necho java\n"
    );
    let log = fs::metadata(rootfs.join("var/log/good-xz.log")).expect("log");
    assert_eq!((log.mode() & 0o7777, log.gid()), (0o640, 4));
    let o = run_ok(
        Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}",
                rootfs.join("var/lib/dpkg").display()
            ))
            .args(["-W", "-f", "${Package} ${db:Status-Abbrev}\n"]),
    );
    assert_eq!(stdout(&o), "good-xz ii \ngood-zst ii \n");
}

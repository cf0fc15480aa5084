use super::*;
use crate::debian::lock::LockedIndexFile;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const SHA: &str = "0a3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6";

fn base() -> BaseLock {
    BaseLock {
        reference: "registry://127.0.0.1:5000/team/base:12".into(),
        digest: D1.into(),
    }
}

fn debian() -> DebianLock {
    let mut d = DebianLock {
        inputs: "sha256:aa".into(),
        identity: String::new(),
        suite: "bookworm".into(),
        architecture: "amd64".into(),
        index: LockedIndex {
            inrelease: "sha256:bb".into(),
            files: vec![LockedIndexFile {
                path: "main/binary-amd64/Packages.xz".into(),
                sha256: SHA.into(),
                size: 5,
            }],
        },
        packages: vec![LockedPackage {
            name: "aa".into(),
            version: "1.0".into(),
            arch: "all".into(),
            filename: "pool/main/a/aa/aa_1.0_all.deb".into(),
            size: 20,
            sha256: SHA.into(),
            source: "aa".into(),
            source_version: "1.0".into(),
            multi_arch: "no".into(),
            essential: false,
        }],
    };
    d.identity = d.compute_identity();
    d
}

#[test]
fn base_only_lock_is_one_small_table() {
    let lock = Lockfile {
        base: Some(base()),
        debian: Vec::new(),
    };
    let text = lock.to_toml().unwrap();
    assert_eq!(
        text,
        format!(
            "# Written by `strata lock`: do not edit by hand; run `strata lock RECIPE` to update.\n\
             format = 1\n\
             \n\
             [base]\n\
             reference = \"registry://127.0.0.1:5000/team/base:12\"\n\
             digest = \"{D1}\"\n"
        )
    );
    let back = Lockfile::parse("r.lock", &text).unwrap();
    assert_eq!(back, lock);
    assert_eq!(back.to_toml().unwrap(), text);
}

#[test]
fn both_parts_round_trip_in_a_fixed_order() {
    let lock = Lockfile {
        base: Some(base()),
        debian: vec![debian()],
    };
    let text = lock.to_toml().unwrap();
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing:\n{text}"))
    };
    // Top-level keys, then [base], then the debian tables.
    assert!(at("format = 1") < at("inputs = "), "{text}");
    assert!(at("architecture = ") < at("[base]"), "{text}");
    assert!(at("[base]") < at("[index]"), "{text}");
    assert!(at("[index]") < at("[[index.file]]"), "{text}");
    assert!(at("[[index.file]]") < at("[[package]]"), "{text}");
    let back = Lockfile::parse("r.lock", &text).unwrap();
    assert_eq!(back, lock);
    assert_eq!(back.to_toml().unwrap(), text);
    // Without the base, the text is the debian-only lock, byte for byte.
    let only_debian = Lockfile {
        base: None,
        debian: vec![debian()],
    };
    let d_text = only_debian.to_toml().unwrap();
    assert!(!d_text.contains("[base]"));
    assert_eq!(
        d_text,
        text.replace(
            &format!(
                "[base]\nreference = \"registry://127.0.0.1:5000/team/base:12\"\ndigest = \"{D1}\"\n\n"
            ),
            ""
        )
    );
}

#[test]
fn bad_locks_name_the_file_and_the_fix() {
    let both = Lockfile {
        base: Some(base()),
        debian: vec![debian()],
    }
    .to_toml()
    .unwrap();
    let base_only = Lockfile {
        base: Some(base()),
        debian: Vec::new(),
    }
    .to_toml()
    .unwrap();
    let cases = [
        ("garbage = [".to_string(), "strata lock"),
        (both.replace("format = 1", "format = 2"), "format 2"),
        (
            both.replace("[base]\n", "[base]\nsurprise = 1\n"),
            "unknown field",
        ),
        // Half a debian part.
        (both.replace("suite = \"bookworm\"\n", ""), "no `suite`"),
        (
            base_only.replace("format = 1\n", "format = 1\ninputs = \"sha256:aa\"\n"),
            "no `identity`",
        ),
        (
            both.replace("version = \"1.0\"", "version = \"1.1\""),
            "edited by hand",
        ),
        (base_only.replace(D1, "sha256:11"), "64 lower-case hex"),
        (
            base_only.replace("base:12\"", &format!("base:12@sha256:{SHA}\"")),
            "edited by hand",
        ),
        (
            base_only.replace("registry://127.0.0.1:5000/", "docker://127.0.0.1:5000/"),
            "is not a `registry://",
        ),
    ];
    for (text, want) in cases {
        let e = Lockfile::parse("dir/r.lock", &text)
            .expect_err(want)
            .to_string();
        assert!(e.starts_with("dir/r.lock: "), "{e}");
        assert!(e.contains(want) && e.contains("strata lock"), "{want}: {e}");
    }
}

#[test]
fn a_lock_written_before_base_tables_existed_still_reads() {
    // The bytes of a debian-only lock as earlier versions wrote them.
    let old = format!(
        "# Written by `strata lock`: do not edit by hand; run `strata lock RECIPE` to update.\n\
         format = 1\n\
         inputs = \"sha256:aa\"\n\
         identity = \"{}\"\n\
         suite = \"bookworm\"\n\
         architecture = \"amd64\"\n\
         \n\
         [index]\n\
         inrelease = \"sha256:bb\"\n\
         \n\
         [[index.file]]\n\
         path = \"main/binary-amd64/Packages.xz\"\n\
         sha256 = \"{SHA}\"\n\
         size = 5\n\
         \n\
         [[package]]\n\
         name = \"aa\"\n\
         version = \"1.0\"\n\
         arch = \"all\"\n\
         filename = \"pool/main/a/aa/aa_1.0_all.deb\"\n\
         size = 20\n\
         sha256 = \"{SHA}\"\n\
         source = \"aa\"\n\
         source_version = \"1.0\"\n\
         multi_arch = \"no\"\n\
         essential = false\n",
        debian().identity
    );
    let lock = Lockfile::parse("old.lock", &old).unwrap();
    assert_eq!(lock.base, None);
    assert_eq!(lock.debian, vec![debian()]);
    assert_eq!(lock.to_toml().unwrap(), old, "rewritten unchanged");
}

#[test]
fn update_keeps_the_other_part_and_write_skips_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.lock");
    assert_eq!(read(&path).unwrap(), None);
    // A base pin into a missing file: a base-only lock.
    let got = update(&path, |l| l.base = Some(base())).unwrap();
    assert!(got.debian.is_empty());
    // The debian part added: the base stays.
    update(&path, |l| l.debian = vec![debian()]).unwrap();
    let both = read(&path).unwrap().unwrap();
    assert_eq!(both.base, Some(base()));
    assert_eq!(both.debian, vec![debian()]);
    // A new pin keeps the debian part.
    let mut b2 = base();
    b2.reference = "registry://127.0.0.1:5000/team/base:13".into();
    update(&path, |l| l.base = Some(b2.clone())).unwrap();
    let again = read(&path).unwrap().unwrap();
    assert_eq!(
        (again.base, again.debian),
        (Some(b2.clone()), vec![debian()])
    );
    // Same bytes: not rewritten.
    let lock = read(&path).unwrap().unwrap();
    assert!(!write(&path, &lock).unwrap());
    assert!(write(&path, &Lockfile::default()).unwrap());
    // A broken file is an error, not silently replaced.
    std::fs::write(&path, "format = [").unwrap();
    let e = update(&path, |l| l.base = Some(base()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("r.lock") && e.contains("strata lock"), "{e}");
}

#[test]
fn policy_names_the_flag() {
    let p = |locked, offline| LockPolicy { locked, offline };
    assert_eq!(p(false, false).forbids_resolving(), None);
    assert_eq!(p(true, false).forbids_resolving(), Some("--locked"));
    assert_eq!(p(false, true).forbids_resolving(), Some("--offline"));
    assert_eq!(p(true, true).forbids_resolving(), Some("--locked"));
}

#[test]
fn lock_path_beside_recipe() {
    assert_eq!(
        lock_path(Path::new("recipes/python3.yaml")),
        Path::new("recipes/python3.lock")
    );
}

fn debian_arch(arch: &str) -> DebianLock {
    let mut d = debian();
    d.architecture = arch.into();
    d.inputs = format!("sha256:in-{arch}");
    d.index.files[0].path = format!("main/binary-{arch}/Packages.xz");
    d.packages.push(LockedPackage {
        name: "libx".into(),
        version: "2.0".into(),
        arch: arch.into(),
        filename: format!("pool/main/l/libx/libx_2.0_{arch}.deb"),
        size: 30,
        sha256: SHA.into(),
        source: "libx".into(),
        source_version: "2.0".into(),
        multi_arch: "same".into(),
        essential: false,
    });
    d.identity = d.compute_identity();
    d
}

/// The form of a lock with several architectures, byte for byte.
const MULTI: &str = r#"# Written by `strata lock`: do not edit by hand; run `strata lock RECIPE` to update.
format = 1
suite = "bookworm"

[base]
reference = "registry://127.0.0.1:5000/team/base:12"
digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

[index]
inrelease = "sha256:bb"

[arch.amd64]
inputs = "sha256:in-amd64"
identity = "IDENTITY-amd64"

[[arch.amd64.index_file]]
path = "main/binary-amd64/Packages.xz"
sha256 = "0a3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6"
size = 5

[[arch.amd64.package]]
name = "aa"
version = "1.0"
arch = "all"
filename = "pool/main/a/aa/aa_1.0_all.deb"
size = 20
sha256 = "0a3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6"
source = "aa"
source_version = "1.0"
multi_arch = "no"
essential = false

[[arch.amd64.package]]
name = "libx"
version = "2.0"
arch = "amd64"
filename = "pool/main/l/libx/libx_2.0_amd64.deb"
size = 30
sha256 = "0a3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6"
source = "libx"
source_version = "2.0"
multi_arch = "same"
essential = false

[arch.arm64]
inputs = "sha256:in-arm64"
identity = "IDENTITY-arm64"

[[arch.arm64.index_file]]
path = "main/binary-arm64/Packages.xz"
sha256 = "0a3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6"
size = 5

[[arch.arm64.package]]
name = "aa"
version = "1.0"
arch = "all"
filename = "pool/main/a/aa/aa_1.0_all.deb"
size = 20
sha256 = "0a3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6"
source = "aa"
source_version = "1.0"
multi_arch = "no"
essential = false

[[arch.arm64.package]]
name = "libx"
version = "2.0"
arch = "arm64"
filename = "pool/main/l/libx/libx_2.0_arm64.deb"
size = 30
sha256 = "0a3e5a7a3c2f6e1f10f1d06c08c5e0f2c5d7e2b9c8a1e6f4b3d2c1a0f9e8d7c6"
source = "libx"
source_version = "2.0"
multi_arch = "same"
essential = false
"#;

fn multi() -> Lockfile {
    Lockfile {
        base: Some(base()),
        debian: vec![debian_arch("amd64"), debian_arch("arm64")],
    }
}

fn multi_text() -> String {
    MULTI
        .replace("IDENTITY-amd64", &debian_arch("amd64").identity)
        .replace("IDENTITY-arm64", &debian_arch("arm64").identity)
}

#[test]
fn several_architectures_get_one_table_each() {
    let lock = multi();
    let text = lock.to_toml().unwrap();
    assert_eq!(text, multi_text());
    let back = Lockfile::parse("m.lock", &text).unwrap();
    assert_eq!(back, lock);
    assert_eq!(back.to_toml().unwrap(), text);
    // Each architecture's part is what a one-architecture lock would hold for it.
    let one = Lockfile {
        base: None,
        debian: vec![back.debian[1].clone()],
    };
    let one_text = one.to_toml().unwrap();
    assert!(
        one_text.contains("architecture = \"arm64\"\n"),
        "{one_text}"
    );
    assert_eq!(Lockfile::parse("o.lock", &one_text).unwrap(), one);
    // Architectures in another order: the same bytes.
    let mut rev = multi();
    rev.debian.reverse();
    rev.debian
        .sort_by(|a, b| a.architecture.cmp(&b.architecture));
    assert_eq!(rev.to_toml().unwrap(), text);
}

#[test]
fn several_architectures_share_one_release() {
    let mut lock = multi();
    lock.debian[1].index.inrelease = "sha256:cc".into();
    let e = lock.to_toml().unwrap_err().to_string();
    assert!(e.contains("different suites or InRelease"), "{e}");
    let mut lock = multi();
    lock.debian[1].architecture = "amd64".into();
    let e = lock.to_toml().unwrap_err().to_string();
    assert!(e.contains("architecture amd64 twice"), "{e}");
}

#[test]
fn bad_multi_architecture_locks_name_the_place() {
    let text = multi_text();
    let cases = [
        (
            text.replace(
                "suite = \"bookworm\"\n",
                "suite = \"bookworm\"\narchitecture = \"amd64\"\n",
            ),
            "top-level `architecture`",
        ),
        (
            text.replace(
                "suite = \"bookworm\"\n",
                "suite = \"bookworm\"\ninputs = \"sha256:aa\"\n",
            ),
            "top-level `inputs`",
        ),
        (text.replace("suite = \"bookworm\"\n", ""), "no `suite`"),
        (
            text.replace("[index]\ninrelease = \"sha256:bb\"\n\n", ""),
            "no `[index]` table",
        ),
        (
            text.replace(
                "pool/main/l/libx/libx_2.0_arm64.deb",
                "pool/main/l/libx/libx_2.1_arm64.deb",
            )
            .replace(
                "version = \"2.0\"\narch = \"arm64\"",
                "version = \"2.1\"\narch = \"arm64\"",
            ),
            "[arch.arm64]: identity does not match",
        ),
        (
            text.replace("[arch.arm64]\n", "[arch.arm64]\nsurprise = 1\n"),
            "unknown field",
        ),
        (
            text.replace(
                "[arch.arm64]\ninputs = \"sha256:in-arm64\"\n",
                "[arch.arm64]\n",
            ),
            "inputs",
        ),
    ];
    for (bad, want) in cases {
        let e = Lockfile::parse("dir/m.lock", &bad)
            .expect_err(want)
            .to_string();
        assert!(e.starts_with("dir/m.lock"), "{e}");
        assert!(e.contains(want) && e.contains("strata lock"), "{want}: {e}");
    }
}

#[test]
fn committed_single_platform_locks_are_rewritten_byte_for_byte() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for dir in ["recipes", "lab/seed"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".lock") || name.ends_with(".python.lock") {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).unwrap();
            let lock = Lockfile::parse(&name, &text).unwrap();
            assert!(lock.debian.len() <= 1, "{name}");
            assert_eq!(lock.to_toml().unwrap(), text, "{name}");
            seen += 1;
        }
    }
    assert!(seen >= 7, "{seen} locks");
}

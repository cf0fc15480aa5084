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
        debian: None,
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
        debian: Some(debian()),
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
        debian: Some(debian()),
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
        debian: Some(debian()),
    }
    .to_toml()
    .unwrap();
    let base_only = Lockfile {
        base: Some(base()),
        debian: None,
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
    assert_eq!(lock.debian, Some(debian()));
    assert_eq!(lock.to_toml().unwrap(), old, "rewritten unchanged");
}

#[test]
fn update_keeps_the_other_part_and_write_skips_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.lock");
    assert_eq!(read(&path).unwrap(), None);
    // A base pin into a missing file: a base-only lock.
    let got = update(&path, |l| l.base = Some(base())).unwrap();
    assert_eq!(got.debian, None);
    // The debian part added: the base stays.
    update(&path, |l| l.debian = Some(debian())).unwrap();
    let both = read(&path).unwrap().unwrap();
    assert_eq!(both.base, Some(base()));
    assert_eq!(both.debian, Some(debian()));
    // A new pin keeps the debian part.
    let mut b2 = base();
    b2.reference = "registry://127.0.0.1:5000/team/base:13".into();
    update(&path, |l| l.base = Some(b2.clone())).unwrap();
    let again = read(&path).unwrap().unwrap();
    assert_eq!(
        (again.base, again.debian),
        (Some(b2.clone()), Some(debian()))
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

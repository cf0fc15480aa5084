//! Installing the fixture wheels of fixtures/python (made by make-wheels.py).

use super::*;
use crate::python::metadata;

const ALPHA: &[u8] = include_bytes!("../../../fixtures/python/alpha-1.0-py3-none-any.whl");
const BETA: &[u8] = include_bytes!("../../../fixtures/python/beta-1.0-py3-none-any.whl");
const EVIL: &[u8] = include_bytes!("../../../fixtures/python/evil-1.0-py3-none-any.whl");

fn debian() -> InstallLayout {
    InstallLayout {
        site: "usr/lib/python3/dist-packages".into(),
        prefix: "usr".into(),
        interpreter: "/usr/bin/python3".into(),
        minor: 11,
    }
}

fn files(name: &str, bytes: &[u8], layout: &InstallLayout) -> BTreeMap<String, InstalledFile> {
    install_wheel(name, bytes, layout)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .into_iter()
        .map(|f| (f.path.clone(), f))
        .collect()
}

fn text(f: &BTreeMap<String, InstalledFile>, path: &str) -> String {
    let file = f
        .get(path)
        .unwrap_or_else(|| panic!("{path} not installed"));
    String::from_utf8_lossy(&file.bytes).into_owned()
}

#[test]
fn alpha_goes_where_the_wheel_spec_says() {
    let f = files("alpha-1.0-py3-none-any.whl", ALPHA, &debian());
    let paths: Vec<&str> = f.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "usr/bin/alpha",
            "usr/bin/alpha-tool",
            "usr/include/python3.11/alpha/alpha.h",
            "usr/lib/python3/dist-packages/alpha-1.0.dist-info/INSTALLER",
            "usr/lib/python3/dist-packages/alpha-1.0.dist-info/METADATA",
            "usr/lib/python3/dist-packages/alpha-1.0.dist-info/RECORD",
            "usr/lib/python3/dist-packages/alpha-1.0.dist-info/WHEEL",
            "usr/lib/python3/dist-packages/alpha-1.0.dist-info/entry_points.txt",
            "usr/lib/python3/dist-packages/alpha/__init__.py",
            "usr/lib/python3/dist-packages/alpha/cli.py",
            "usr/lib/python3/dist-packages/alpha_extra.py",
            "usr/share/alpha/readme.txt",
        ]
    );
    // Entry point launcher and the #!python script, both executable.
    let launcher = text(&f, "usr/bin/alpha");
    assert!(launcher.starts_with("#!/usr/bin/python3\n"), "{launcher}");
    assert!(launcher.contains("from alpha.cli import main\n"));
    assert!(launcher.contains("sys.exit(main())"));
    assert!(
        !launcher.contains("setuptools wrapper"),
        "the .data script must give way"
    );
    assert_eq!(
        text(&f, "usr/bin/alpha-tool"),
        "#!/usr/bin/python3\nprint('tool')\n"
    );
    assert_eq!(f["usr/bin/alpha"].mode, 0o755);
    assert_eq!(f["usr/bin/alpha-tool"].mode, 0o755);
    assert_eq!(f["usr/lib/python3/dist-packages/alpha/cli.py"].mode, 0o644);
    assert_eq!(
        text(
            &f,
            "usr/lib/python3/dist-packages/alpha-1.0.dist-info/INSTALLER"
        ),
        "strata\n"
    );

    // RECORD lists every installed file with its installed path, relative to site-packages.
    let record = text(
        &f,
        "usr/lib/python3/dist-packages/alpha-1.0.dist-info/RECORD",
    );
    let rows = metadata::parse_record(&record).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), f.len());
    for row in &rows {
        let installed = format!("usr/lib/python3/dist-packages/{}", row.path);
        // Normalise the `../` the row may contain.
        let mut parts: Vec<&str> = Vec::new();
        for c in installed.split('/') {
            if c == ".." {
                parts.pop();
            } else {
                parts.push(c);
            }
        }
        let p = parts.join("/");
        let file = f
            .get(&p)
            .unwrap_or_else(|| panic!("RECORD row {} names nothing", row.path));
        if !row.path.ends_with("dist-info/RECORD") {
            assert_eq!(row.hash, metadata::record_hash(&file.bytes), "{}", row.path);
            assert_eq!(row.size, file.bytes.len().to_string());
        }
    }
    assert!(record.contains("../../../bin/alpha,sha256="), "{record}");
    assert!(record.contains("alpha-1.0.dist-info/RECORD,,\n"));
}

#[test]
fn venv_layout_and_executable_bits() {
    let venv = InstallLayout {
        site: "opt/venv/lib/python3.13/site-packages".into(),
        prefix: "opt/venv".into(),
        interpreter: "/opt/venv/bin/python3".into(),
        minor: 13,
    };
    let f = files("alpha-1.0-py3-none-any.whl", ALPHA, &venv);
    assert!(text(&f, "opt/venv/bin/alpha").starts_with("#!/opt/venv/bin/python3\n"));
    assert!(f.contains_key("opt/venv/include/python3.13/alpha/alpha.h"));
    assert!(f.contains_key("opt/venv/share/alpha/readme.txt"));
    let record = text(
        &f,
        "opt/venv/lib/python3.13/site-packages/alpha-1.0.dist-info/RECORD",
    );
    assert!(record.contains("\n../../../bin/alpha,") || record.starts_with("../../../bin/alpha,"));

    let f = files("beta-1.0-py3-none-any.whl", BETA, &debian());
    assert_eq!(f["usr/lib/python3/dist-packages/beta/run.sh"].mode, 0o755);
    assert_eq!(
        f["usr/lib/python3/dist-packages/beta/__init__.py"].mode,
        0o644
    );
}

#[test]
fn hostile_and_broken_wheels_are_refused() {
    let e = install_wheel("evil-1.0-py3-none-any.whl", EVIL, &debian());
    assert!(
        e.as_ref()
            .is_err_and(|e| e.contains("../../etc/evil") && e.contains("..")),
        "{e:?}"
    );
    // A member changed after RECORD was written (same length, the zip stores it as is).
    let mut tampered = ALPHA.to_vec();
    let needle = b"print('alpha')";
    let at = tampered
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("fixture changed"));
    tampered[at..at + needle.len()].copy_from_slice(b"print('ALPHA')");
    let e = install_wheel("alpha-1.0-py3-none-any.whl", &tampered, &debian());
    assert!(e.is_err(), "a tampered member must be refused");
    // Not a zip at all, and a name that is not a wheel's.
    assert!(install_wheel("alpha-1.0-py3-none-any.whl", b"not a zip", &debian()).is_err());
    assert!(install_wheel("alpha.zip", ALPHA, &debian()).is_err());
    // The file name's project must own the .dist-info.
    let e = install_wheel("other-1.0-py3-none-any.whl", ALPHA, &debian());
    assert!(e.is_err_and(|e| e.contains("does not belong")));
}

#[test]
fn member_names_table() {
    for ok in ["a.py", "pkg/mod.py", "x-1.0.data/scripts/tool"] {
        assert!(check_member(ok).is_ok(), "{ok}");
    }
    for bad in [
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a//b",
        "./a",
        "a\\b",
        "a\0b",
        "a/.",
    ] {
        assert!(check_member(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn relative_paths_table() {
    let cases = [
        (
            "usr/lib/python3/dist-packages",
            "usr/bin/x",
            "../../../bin/x",
        ),
        (
            "usr/lib/python3/dist-packages",
            "usr/lib/python3/dist-packages/a/b",
            "a/b",
        ),
        (
            "opt/v/lib/python3.11/site-packages",
            "opt/v/bin/x",
            "../../../bin/x",
        ),
        ("a", "b/c", "../b/c"),
    ];
    for (from, to, want) in cases {
        assert_eq!(relative(from, to), want);
    }
}

use std::path::PathBuf;

use super::*;
use crate::debian::deb::{parse_control, ControlArchive, DebInfo};
use crate::recipe::model::User;

/// A package as the extractor would return it, from control text and files.
fn pkg(
    control: &str,
    files: &[(&str, &[u8])],
    control_files: &[(&str, &[u8])],
) -> ExtractedPackage {
    let fields = parse_control(control).expect("control parses");
    let name = crate::debian::deb::field(&fields, "Package")
        .expect("name")
        .to_string();
    let mut archive = ControlArchive::default();
    archive
        .files
        .insert("control".into(), control.as_bytes().to_vec());
    for (n, b) in control_files {
        archive.files.insert(n.to_string(), b.to_vec());
    }
    let mut entries: Vec<Entry> = files
        .iter()
        .map(|(p, b)| file(p, b.to_vec(), 0o644, 0))
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    ExtractedPackage {
        name,
        version: crate::debian::deb::field(&fields, "Version")
            .unwrap_or("1")
            .to_string(),
        arch: crate::debian::deb::field(&fields, "Architecture")
            .unwrap_or("all")
            .to_string(),
        dpkg_paths: std::iter::once("/.".to_string())
            .chain(files.iter().map(|(p, _)| format!("/{p}")))
            .collect(),
        file_md5: files
            .iter()
            .map(|(p, _)| (p.to_string(), format!("md5-of-{p}")))
            .collect(),
        conffiles: archive
            .text("conffiles")
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default(),
        copyright: None,
        entries,
        deb: DebInfo {
            path: PathBuf::from(format!("{}.deb", fields[0].1)),
            sha256: "00".repeat(32),
            size: 1,
            control: archive,
            fields,
            data_member: "data.tar.xz".into(),
        },
    }
}

fn text_of(entries: &[Entry], path: &str) -> String {
    let e = entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no {path}"));
    match &e.kind {
        EntryKind::File { content, .. } => {
            String::from_utf8(read_content(content).expect("read")).expect("utf8")
        }
        EntryKind::Symlink { target } => format!("-> {target}"),
        other => panic!("{path} is {other:?}"),
    }
}

#[test]
fn status_in_dpkg_field_order() {
    let control = "Version: 3.134\nPackage: adduser\nDepends: passwd\nHomepage: https://example.org/\nArchitecture: all\nDescription: add users\n more text\n .\n end\nMulti-Arch: foreign\nMaintainer: Debian <a@example.org>\nPriority: important\nStatus: deinstall bad\n";
    let got = status_paragraph(
        &parse_control(control).expect("parses"),
        &[("/etc/adduser.conf".into(), "cc34".into())],
    );
    assert_eq!(
        got,
        "Package: adduser\nStatus: install ok installed\nPriority: important\nMaintainer: Debian <a@example.org>\nArchitecture: all\nMulti-Arch: foreign\nVersion: 3.134\nDepends: passwd\nConffiles:\n /etc/adduser.conf cc34\nDescription: add users\n more text\n .\n end\nHomepage: https://example.org/\n"
    );
}

#[test]
fn database_files() {
    let a = pkg(
        "Package: zlib1g\nVersion: 1:1.2.13\nArchitecture: arm64\nMulti-Arch: same\n",
        &[("usr/lib/libz.so.1", b"z")],
        &[
            ("postinst", b"#!/bin/sh\n"),
            ("triggers", b"activate-noawait ldconfig\n"),
        ],
    );
    let b = pkg(
        "Package: base-files\nVersion: 12\nArchitecture: amd64\nEssential: yes\n",
        &[("etc/issue", b"Debian\n")],
        &[
            ("conffiles", b"/etc/issue\n"),
            ("md5sums", b"abc  etc/issue\n"),
        ],
    );
    let got = dpkg_db_entries(&[a, b], "amd64", 42);
    let paths: Vec<&str> = got.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "var",
            "var/lib",
            "var/lib/dpkg",
            "var/lib/dpkg/arch",
            "var/lib/dpkg/info",
            "var/lib/dpkg/info/base-files.conffiles",
            "var/lib/dpkg/info/base-files.list",
            "var/lib/dpkg/info/base-files.md5sums",
            "var/lib/dpkg/info/format",
            "var/lib/dpkg/info/zlib1g:arm64.list",
            "var/lib/dpkg/info/zlib1g:arm64.md5sums",
            "var/lib/dpkg/info/zlib1g:arm64.postinst",
            "var/lib/dpkg/info/zlib1g:arm64.triggers",
            "var/lib/dpkg/status",
        ]
    );
    assert!(got.iter().all(|e| e.mtime == 42));
    let mode = |p: &str| got.iter().find(|e| e.path == p).map(|e| e.mode);
    assert_eq!(mode("var/lib/dpkg/info/zlib1g:arm64.postinst"), Some(0o755));
    assert_eq!(mode("var/lib/dpkg/info/zlib1g:arm64.triggers"), Some(0o644));
    assert_eq!(text_of(&got, "var/lib/dpkg/arch"), "amd64\narm64\n");
    assert_eq!(
        text_of(&got, "var/lib/dpkg/info/base-files.list"),
        "/.\n/etc/issue\n"
    );
    // The package's own md5sums win; without one they are made from the contents.
    assert_eq!(
        text_of(&got, "var/lib/dpkg/info/base-files.md5sums"),
        "abc  etc/issue\n"
    );
    assert_eq!(
        text_of(&got, "var/lib/dpkg/info/zlib1g:arm64.md5sums"),
        "md5-of-usr/lib/libz.so.1  usr/lib/libz.so.1\n"
    );
    assert_eq!(
        text_of(&got, "var/lib/dpkg/status"),
        "Package: base-files\nEssential: yes\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12\nConffiles:\n /etc/issue md5-of-etc/issue\n\nPackage: zlib1g\nStatus: install ok installed\nArchitecture: arm64\nMulti-Arch: same\nVersion: 1:1.2.13\n"
    );
}

#[test]
fn passwd_from_base_passwd_masters() {
    let bp = pkg(
        "Package: base-passwd\nVersion: 3.6\nArchitecture: amd64\n",
        &[
            ("usr/share/base-passwd/passwd.master", b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"),
            ("usr/share/base-passwd/group.master", b"root:x:0:\ndaemon:x:1:\n"),
        ],
        &[],
    );
    let plain = accounts_entries(std::slice::from_ref(&bp), None, 0).expect("renders");
    assert!(text_of(&plain, "etc/passwd").starts_with("root:x:0:0:root:/root:/bin/bash\ndaemon"));
    assert_eq!(text_of(&plain, "etc/group"), "root:x:0:\ndaemon:x:1:\n");
    let accounts = Accounts {
        groups: Vec::new(),
        users: vec![User {
            name: "jenkins".into(),
            uid: 1000,
            gid: None,
            home: None,
            shell: None,
            gecos: None,
            create_home: true,
        }],
    };
    let merged = accounts_entries(std::slice::from_ref(&bp), Some(&accounts), 0).expect("renders");
    assert_eq!(
        text_of(&merged, "etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\njenkins:x:1000:1000::/home/jenkins:/bin/sh\n"
    );
    assert_eq!(
        text_of(&merged, "etc/group"),
        "root:x:0:\ndaemon:x:1:\njenkins:x:1000:\n"
    );
    // No base-passwd and no accounts: nothing to write.
    let other = pkg("Package: x\nVersion: 1\nArchitecture: all\n", &[], &[]);
    assert!(accounts_entries(&[other], None, 0).expect("ok").is_empty());
}

#[test]
fn ca_bundle_in_update_ca_certificates_order() {
    let ca = pkg(
        "Package: ca-certificates\nVersion: 2023\nArchitecture: all\n",
        &[
            ("usr/share/ca-certificates/mozilla/b_Root.crt", b"B\n"),
            ("usr/share/ca-certificates/mozilla/A Root (2), X.crt", b"A"),
            ("usr/share/ca-certificates/mozilla/README", b"not a cert"),
        ],
        &[],
    );
    let got = ca_entries(std::slice::from_ref(&ca), 0);
    assert_eq!(text_of(&got, "etc/ssl/certs/ca-certificates.crt"), "A\nB\n");
    assert_eq!(
        text_of(&got, "etc/ssl/certs/A_Root_=2=__X.pem"),
        "-> /usr/share/ca-certificates/mozilla/A Root (2), X.crt"
    );
    assert_eq!(
        text_of(&got, "etc/ssl/certs/b_Root.pem"),
        "-> /usr/share/ca-certificates/mozilla/b_Root.crt"
    );
    assert!(text_of(&got, "etc/ca-certificates.conf")
        .ends_with("#\nmozilla/A Root (2), X.crt\nmozilla/b_Root.crt\n"));
    // Certificates alone (no ca-certificates package) make no bundle.
    let mut other = ca.clone();
    other.name = "other".into();
    assert!(ca_entries(&[other], 0).is_empty());
}

#[test]
fn jinfo_alternatives() {
    let text = "name=java-17-openjdk-amd64\nalias=java-1.17.0-openjdk-amd64\npriority=1711\nsection=main\n\nhl java /usr/lib/jvm/j17/bin/java\njdk javac /usr/lib/jvm/j17/bin/javac\n";
    let got = parse_jinfo(text).expect("parses");
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0],
        Alternative {
            link: "/usr/bin/java".into(),
            name: "java".into(),
            path: "/usr/lib/jvm/j17/bin/java".into(),
            priority: 1711,
            slaves: Vec::new()
        }
    );
    assert!(parse_jinfo("hl java /x\n")
        .expect_err("no priority")
        .contains("priority"));
    assert!(parse_jinfo("priority=x\n")
        .expect_err("bad")
        .contains("bad priority"));
}

const MAWK_POSTINST: &str = "#!/bin/sh\nset -e\nif [ \"$1\" = \"configure\" ]; then\n        update-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5 \\\n            --slave /usr/share/man/man1/awk.1.gz awk.1.gz /usr/share/man/man1/mawk.1.gz \\\n            --slave /usr/bin/nawk nawk /usr/bin/mawk\nfi\n";

#[test]
fn postinst_alternatives_only_when_literal() {
    let got = parse_postinst_alternatives(MAWK_POSTINST);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (
            got[0].link.as_str(),
            got[0].name.as_str(),
            got[0].path.as_str(),
            got[0].priority
        ),
        ("/usr/bin/awk", "awk", "/usr/bin/mawk", 5)
    );
    assert_eq!(got[0].slaves.len(), 2);
    let skipped = [
        "update-alternatives --install /usr/bin/vi vi \"$BIN\" 50\n",
        "update-alternatives --install /usr/bin/$x x /usr/bin/y 50\n",
        "update-alternatives --remove awk /usr/bin/mawk\n",
        "update-alternatives --install /usr/bin/a a /usr/bin/b notanumber\n",
        "update-alternatives --install /usr/bin/a a /usr/bin/b 5 --slave /x\n",
    ];
    for s in skipped {
        assert!(parse_postinst_alternatives(s).is_empty(), "{s}");
    }
    let quiet = parse_postinst_alternatives(
        "update-alternatives --quiet --install /usr/bin/a a /usr/bin/b 5 || true\n",
    );
    assert_eq!(quiet.len(), 1);
}

#[test]
fn alternative_links_pick_the_highest_priority() {
    let jinfo = |v: &str, prio: u32| {
        format!("name=java-{v}\npriority={prio}\n\nhl java /usr/lib/jvm/java-{v}/bin/java\nhl jfr /usr/lib/jvm/java-{v}/bin/jfr\n")
    };
    let (j17, j21) = (jinfo("17", 1711), jinfo("21", 2111));
    let jdk17 = pkg(
        "Package: openjdk-17-jre-headless\nVersion: 17\nArchitecture: amd64\n",
        &[
            ("usr/lib/jvm/.java-1.17.jinfo", j17.as_bytes()),
            ("usr/lib/jvm/java-17/bin/java", b"17"),
        ],
        &[],
    );
    let jdk21 = pkg(
        "Package: openjdk-21-jre-headless\nVersion: 21\nArchitecture: amd64\n",
        &[
            ("usr/lib/jvm/.java-1.21.jinfo", j21.as_bytes()),
            ("usr/lib/jvm/java-21/bin/java", b"21"),
        ],
        &[],
    );
    let mawk = pkg(
        "Package: mawk\nVersion: 1.3\nArchitecture: amd64\n",
        &[
            ("usr/bin/mawk", b"m"),
            ("usr/share/man/man1/mawk.1.gz", b"man"),
        ],
        &[("postinst", MAWK_POSTINST.as_bytes())],
    );
    let got = alternatives_entries(&[jdk17, jdk21, mawk], 3);
    let links: Vec<(String, String)> = got
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Symlink { target } => Some((e.path.clone(), target.clone())),
            _ => None,
        })
        .collect();
    let want = [
        ("etc/alternatives/awk", "/usr/bin/mawk"),
        ("etc/alternatives/awk.1.gz", "/usr/share/man/man1/mawk.1.gz"),
        ("etc/alternatives/java", "/usr/lib/jvm/java-21/bin/java"),
        ("etc/alternatives/nawk", "/usr/bin/mawk"),
        ("usr/bin/awk", "/etc/alternatives/awk"),
        ("usr/bin/java", "/etc/alternatives/java"),
        ("usr/bin/nawk", "/etc/alternatives/nawk"),
        ("usr/share/man/man1/awk.1.gz", "/etc/alternatives/awk.1.gz"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(links, want);
    // `jfr` is not shipped by either package: no link to nowhere.
    assert!(got.iter().all(|e| !e.path.ends_with("jfr")));
    assert_eq!(
        text_of(&got, "var/lib/dpkg/alternatives/awk"),
        "auto\n/usr/bin/awk\nawk.1.gz\n/usr/share/man/man1/awk.1.gz\nnawk\n/usr/bin/nawk\n\n/usr/bin/mawk\n5\n/usr/share/man/man1/mawk.1.gz\n/usr/bin/mawk\n\n"
    );
    assert_eq!(
        text_of(&got, "var/lib/dpkg/alternatives/java"),
        "auto\n/usr/bin/java\n\n/usr/lib/jvm/java-21/bin/java\n2111\n/usr/lib/jvm/java-17/bin/java\n1711\n\n"
    );
    // Parent directories the packages do not ship are added.
    assert!(got
        .iter()
        .any(|e| e.path == "etc/alternatives" && e.is_dir()));
    assert!(got.iter().all(|e| e.mtime == 3));
}

#[test]
fn status_over_a_base_image() {
    let base = "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.11\n\nPackage: apt\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.6\n\n";
    let newer = pkg(
        "Package: zlib1g\nVersion: 1:1.2.13\nArchitecture: amd64\n",
        &[],
        &[],
    );
    let other_arch = pkg(
        "Package: zlib1g\nVersion: 1:1.2.13\nArchitecture: arm64\nMulti-Arch: same\n",
        &[],
        &[],
    );
    assert_eq!(
        merge_status(base, &[newer, other_arch]),
        "Package: apt\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.6\n\nPackage: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.13\n\nPackage: zlib1g\nStatus: install ok installed\nArchitecture: arm64\nMulti-Arch: same\nVersion: 1:1.2.13\n"
    );
    assert_eq!(merge_status("", &[]), "");
}

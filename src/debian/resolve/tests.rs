use super::*;
use crate::debian::index::parse_packages;

/// Builds a universe from `name version arch | field: value; field: value` lines.
fn universe(spec: &str) -> Vec<PackageEntry> {
    let mut text = String::new();
    for (n, line) in spec
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let (head, fields) = line.split_once('|').unwrap_or((line, ""));
        let mut h = head.split_whitespace();
        let (name, ver, arch) = (
            h.next().unwrap(),
            h.next().unwrap(),
            h.next().unwrap_or("amd64"),
        );
        text.push_str(&format!(
            "Package: {name}\nVersion: {ver}\nArchitecture: {arch}\nFilename: pool/{name}_{n}.deb\nSize: 1\nSHA256: {:064x}\n",
            n
        ));
        for f in fields.split(';').map(str::trim).filter(|f| !f.is_empty()) {
            text.push_str(f);
            text.push('\n');
        }
        text.push('\n');
    }
    parse_packages("test", &text).unwrap()
}

fn req(pkgs: &[&str]) -> ResolveRequest {
    ResolveRequest {
        arch: "amd64".into(),
        packages: pkgs.iter().map(|p| parse_request(p).unwrap()).collect(),
        exclude: BTreeSet::new(),
        essential: false,
    }
}

fn names(u: &[PackageEntry], r: &ResolveRequest) -> Vec<String> {
    resolve(u, r)
        .unwrap_or_else(|e| panic!("{e}"))
        .packages
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect()
}

fn err(u: &[PackageEntry], r: &ResolveRequest) -> String {
    resolve(u, r).unwrap_err().to_string()
}

#[test]
fn depends_chain_sorted_by_name() {
    let u = universe(
        "app 1 | Depends: libb, liba (>= 1)
         liba 1 | Pre-Depends: libc6
         libb 2 all | Depends: libc6 (>= 2.36)
         libc6 2.36-9
         unrelated 1",
    );
    assert_eq!(
        names(&u, &req(&["app"])),
        ["app=1", "liba=1", "libb=2", "libc6=2.36-9"]
    );
}

#[test]
fn alternatives_first_satisfiable_unless_already_chosen() {
    let u = universe(
        "app 1 | Depends: missing | b | a
         a 1
         b 1",
    );
    // `missing` does not exist: the next alternative, b, is taken.
    assert_eq!(names(&u, &req(&["app"])), ["app=1", "b=1"]);
    // The recipe asks for a: the group is already satisfied by it.
    assert_eq!(names(&u, &req(&["app", "a"])), ["a=1", "app=1"]);
    // Root order does not matter: roots are chosen before dependencies are visited.
    assert_eq!(names(&u, &req(&["a", "app"])), ["a=1", "app=1"]);
}

#[test]
fn versions_highest_matching() {
    let u = universe(
        "lib 1.0
         lib 2.0
         lib 1.5
         old 1 | Depends: lib (<< 2)
         new 1 | Depends: lib (>= 1.5)",
    );
    assert_eq!(names(&u, &req(&["lib"])), ["lib=2.0"]);
    assert_eq!(names(&u, &req(&["old"])), ["lib=1.5", "old=1"]);
    assert_eq!(names(&u, &req(&["new"])), ["lib=2.0", "new=1"]);
    assert_eq!(names(&u, &req(&["lib=1.0"])), ["lib=1.0"]);
    assert_eq!(names(&u, &req(&["lib (<= 1.4)"])), ["lib=1.0"]);
    // Once chosen, a version is kept; a conflicting relation fails with the reason.
    let e = err(&u, &req(&["old", "new (>= 1)", "lib=1.0"]));
    assert!(e.contains("cannot satisfy `lib (>= 1.5)`"), "{e}");
    assert!(e.contains("lib 1.0 (amd64) is already chosen"), "{e}");
}

#[test]
fn virtual_packages_and_versioned_provides() {
    let u = universe(
        "app 1 | Depends: mail-transport-agent
         exim 4 | Provides: mail-transport-agent; Priority: optional
         postfix 3 | Provides: mail-transport-agent; Priority: standard
         py 1 | Depends: python3-abi (>= 3.11)
         python3.11 3.11.2 | Provides: python3-abi (= 3.11)
         python3.10 3.10.1 | Provides: python3-abi (= 3.10)
         unv 1 | Depends: foo-v (>= 1)
         foo 1 | Provides: foo-v",
    );
    // Several providers: the most important Priority wins, then the name.
    assert_eq!(names(&u, &req(&["app"])), ["app=1", "postfix=3"]);
    // A chosen provider satisfies the virtual name.
    assert_eq!(names(&u, &req(&["exim", "app"])), ["app=1", "exim=4"]);
    // Versioned provides satisfy versioned relations.
    assert_eq!(names(&u, &req(&["py"])), ["py=1", "python3.11=3.11.2"]);
    // An unversioned provide never satisfies a versioned relation.
    let e = err(&u, &req(&["unv"]));
    assert!(
        e.contains("cannot satisfy `foo-v (>= 1)`") && e.contains("no provider matches"),
        "{e}"
    );
    // A virtual name can be requested directly.
    assert_eq!(names(&u, &req(&["mail-transport-agent"])), ["postfix=3"]);
}

#[test]
fn providers_tie_break_by_name() {
    let u = universe(
        "z-awk 1 | Provides: awk
         mawk 1 | Provides: awk
         gawk 1 | Provides: awk",
    );
    assert_eq!(names(&u, &req(&["awk"])), ["gawk=1"]);
}

#[test]
fn cycles_terminate() {
    let u = universe(
        "a 1 | Depends: b
         b 1 | Depends: c
         c 1 | Depends: a (>= 1), b",
    );
    assert_eq!(names(&u, &req(&["a"])), ["a=1", "b=1", "c=1"]);
    assert_eq!(names(&u, &req(&["c"])), ["a=1", "b=1", "c=1"]);
}

#[test]
fn multi_arch_and_architectures() {
    let u = universe(
        "tool 1 | Depends: python3:any, perl:native, data
         python3 3.11 | Multi-Arch: allowed
         perl 5.36
         data 1 all
         data 2 i386
         strict 1 | Depends: lib:any
         lib 1 | Multi-Arch: same
         cross 1 | Depends: lib:i386
         restricted 1 | Depends: winonly [i386], linuxdep [amd64]
         linuxdep 1",
    );
    // Only amd64 and all are candidates: data 2 (i386) is ignored.
    assert_eq!(
        names(&u, &req(&["tool"])),
        ["data=1", "perl=5.36", "python3=3.11", "tool=1"]
    );
    let e = err(&u, &req(&["strict"]));
    assert!(
        e.contains("lib:any: available 1, none matches (`:any` needs Multi-Arch: allowed)"),
        "{e}"
    );
    let e = err(&u, &req(&["cross"]));
    assert!(e.contains("cannot satisfy `lib:i386`"), "{e}");
    // `[i386]` does not apply to amd64 and is dropped.
    assert_eq!(
        names(&u, &req(&["restricted"])),
        ["linuxdep=1", "restricted=1"]
    );
}

#[test]
fn excludes() {
    let u = universe(
        "app 1 | Depends: big, small | big
         big 1 | Depends: huge
         huge 1
         small 1",
    );
    let mut r = req(&["app"]);
    r.exclude.insert("big".into());
    assert_eq!(names(&u, &r), ["app=1"]);
    let mut r = req(&["big"]);
    r.exclude.insert("big".into());
    assert!(err(&u, &r).contains("`big` is both in `packages` and in `exclude`"));
}

#[test]
fn essential_set() {
    let u = universe(
        "base-files 12 | Essential: yes; Priority: required
         bash 5.2 | Essential: yes; Pre-Depends: libtinfo6
         libtinfo6 6.4
         mawk 1.3 | Priority: required
         apt 2.6 | Priority: important
         dash 0.5 | Essential: yes
         dash 0.6 | Priority: optional",
    );
    let mut r = req(&[]);
    r.essential = true;
    // dash: its best version (0.6) is neither essential nor required, so 0.5 is taken.
    assert_eq!(
        names(&u, &r),
        [
            "base-files=12",
            "bash=5.2",
            "dash=0.5",
            "libtinfo6=6.4",
            "mawk=1.3"
        ]
    );
    r.exclude.insert("mawk".into());
    assert!(!names(&u, &r).contains(&"mawk=1.3".to_string()));
    let res = resolve(&u, &r).unwrap();
    assert_eq!(res.reasons["bash"], Reason::Essential);
    assert_eq!(
        res.reasons["libtinfo6"],
        Reason::Dependency {
            parent: "bash".into(),
            relation: "libtinfo6".into()
        }
    );
}

#[test]
fn unsatisfiable_names_the_chain() {
    let u = universe(
        "app 1 | Depends: libx
         libx 3 | Depends: libfoo (>= 2) | libbar
         libfoo 1",
    );
    let e = err(&u, &req(&["app"]));
    assert!(e.contains("cannot satisfy `libfoo (>= 2) | libbar`"), "{e}");
    assert!(
        e.contains("needed by: libx 3 (amd64) <- app 1 (amd64) <- the recipe's packages (app)"),
        "{e}"
    );
    assert!(
        e.contains("libfoo (>= 2): available 1, none matches"),
        "{e}"
    );
    assert!(
        e.contains("libbar: no package or provider of that name in the index"),
        "{e}"
    );
    assert!(e.contains("hint:"), "{e}");
    let e = err(&u, &req(&["nope (>= 1)"]));
    assert!(
        e.contains("cannot satisfy `nope (>= 1)`")
            && e.contains("needed by: the recipe's packages"),
        "{e}"
    );
}

#[test]
fn independent_of_index_order() {
    let spec = "app 1 | Depends: a | b, v
         a 1 | Depends: c
         a 2 | Depends: c (>= 2)
         b 1
         c 1
         c 2
         p1 1 | Provides: v
         p2 1 | Provides: v";
    let u = universe(spec);
    let mut rev = universe(spec);
    rev.reverse();
    assert_eq!(names(&u, &req(&["app"])), names(&rev, &req(&["app"])));
    assert_eq!(names(&u, &req(&["app"])), ["a=2", "app=1", "c=2", "p1=1"]);
}

#[test]
fn request_syntax() {
    let show = |s: &str| display_alternatives(&parse_request(s).unwrap());
    assert_eq!(show("python3"), "python3");
    assert_eq!(show(" libc6 (>= 2.36) "), "libc6 (>= 2.36)");
    assert_eq!(show("curl=7.88.1-10+deb12u5"), "curl (= 7.88.1-10+deb12u5)");
    assert_eq!(show("a | b (>= 1)"), "a | b (>= 1)");
    assert!(parse_request("a, b")
        .unwrap_err()
        .to_string()
        .contains("one list item per package"));
    assert!(parse_request("a=").is_err());
    assert!(parse_request("").is_err());
}

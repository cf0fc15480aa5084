//! How a debian step's packages are split into layers (`layering`), so that images built
//! from the same packages share layer blobs. Pure: the lock's packages in, groups out.
//!
//! - `per-package`: one layer per package, ordered by package name.
//! - `per-source`: one layer per source package (all binaries built from it), by source name.
//! - `budget: N`: at most N layers, like apko: packages are grouped by source package; the
//!   N-1 largest groups (by total `.deb` size, ties by source name) each get a layer, in
//!   source-name order, and all the other packages share one last layer. A budget of 1
//!   is one layer with everything.
//!
//! Within a group packages are in name order. Every package is in exactly one group.

use std::collections::BTreeMap;

use super::lock::LockedPackage;
use crate::recipe::Layering;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerGroup {
    /// A stable name for history and progress, e.g. `deb:bash` or `deb:rest`.
    pub name: String,
    pub packages: Vec<LockedPackage>,
}

pub fn plan_layers(layering: &Layering, packages: &[LockedPackage]) -> Vec<LayerGroup> {
    let mut sorted = packages.to_vec();
    sorted.sort();
    let by_source = || {
        let mut m: BTreeMap<String, Vec<LockedPackage>> = BTreeMap::new();
        for p in &sorted {
            m.entry(p.source.clone()).or_default().push(p.clone());
        }
        m
    };
    match layering {
        Layering::PerPackage => sorted
            .iter()
            .map(|p| LayerGroup {
                name: format!("deb:{}", p.name),
                packages: vec![p.clone()],
            })
            .collect(),
        Layering::PerSource => by_source()
            .into_iter()
            .map(|(s, ps)| LayerGroup {
                name: format!("deb-src:{s}"),
                packages: ps,
            })
            .collect(),
        Layering::Budget(n) => {
            let groups = by_source();
            let n = (*n).max(1) as usize;
            if groups.len() <= n {
                return groups
                    .into_iter()
                    .map(|(s, ps)| LayerGroup {
                        name: format!("deb-src:{s}"),
                        packages: ps,
                    })
                    .collect();
            }
            let mut ranked: Vec<(&String, u64)> = groups
                .iter()
                .map(|(s, ps)| (s, ps.iter().map(|p| p.size).sum()))
                .collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            let own: std::collections::BTreeSet<&String> =
                ranked.iter().take(n - 1).map(|(s, _)| *s).collect();
            let mut out = Vec::new();
            let mut rest = Vec::new();
            for (s, ps) in &groups {
                if own.contains(s) {
                    out.push(LayerGroup {
                        name: format!("deb-src:{s}"),
                        packages: ps.clone(),
                    });
                } else {
                    rest.extend(ps.iter().cloned());
                }
            }
            rest.sort();
            out.push(LayerGroup {
                name: "deb:rest".into(),
                packages: rest,
            });
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, source: &str, size: u64) -> LockedPackage {
        LockedPackage {
            name: name.into(),
            version: "1".into(),
            arch: "amd64".into(),
            filename: format!("pool/{name}.deb"),
            size,
            sha256: "0".repeat(64),
            source: source.into(),
            source_version: "1".into(),
            multi_arch: "no".into(),
            essential: false,
        }
    }

    fn shape(groups: &[LayerGroup]) -> Vec<(String, Vec<String>)> {
        groups
            .iter()
            .map(|g| {
                (
                    g.name.clone(),
                    g.packages.iter().map(|p| p.name.clone()).collect(),
                )
            })
            .collect()
    }

    fn pkgs() -> Vec<LockedPackage> {
        vec![
            pkg("python3.11", "python3.11", 500),
            pkg("libc6", "glibc", 3000),
            pkg("libpython3.11", "python3.11", 2000),
            pkg("libc-bin", "glibc", 600),
            pkg("zlib1g", "zlib", 90),
            pkg("bash", "bash", 1500),
            pkg("tzdata", "tzdata", 300),
        ]
    }

    #[test]
    fn per_package_and_per_source() {
        let g = plan_layers(&Layering::PerPackage, &pkgs());
        let names: Vec<String> = g.iter().map(|g| g.name.clone()).collect();
        assert_eq!(
            names,
            [
                "deb:bash",
                "deb:libc-bin",
                "deb:libc6",
                "deb:libpython3.11",
                "deb:python3.11",
                "deb:tzdata",
                "deb:zlib1g"
            ]
        );
        let g = plan_layers(&Layering::PerSource, &pkgs());
        assert_eq!(
            shape(&g)[1],
            (
                "deb-src:glibc".to_string(),
                vec!["libc-bin".to_string(), "libc6".to_string()]
            )
        );
        assert_eq!(g.len(), 5);
    }

    #[test]
    fn budget_groups_like_apko() {
        // Source sizes: glibc 3600, python3.11 2500, bash 1500, tzdata 300, zlib 90.
        let g = plan_layers(&Layering::Budget(3), &pkgs());
        assert_eq!(
            shape(&g),
            [
                (
                    "deb-src:glibc".to_string(),
                    vec!["libc-bin".to_string(), "libc6".to_string()]
                ),
                (
                    "deb-src:python3.11".to_string(),
                    vec!["libpython3.11".to_string(), "python3.11".to_string()]
                ),
                (
                    "deb:rest".to_string(),
                    vec![
                        "bash".to_string(),
                        "tzdata".to_string(),
                        "zlib1g".to_string()
                    ]
                ),
            ]
        );
        assert_eq!(plan_layers(&Layering::Budget(1), &pkgs()).len(), 1);
        assert_eq!(plan_layers(&Layering::Budget(0), &pkgs()).len(), 1);
        assert_eq!(plan_layers(&Layering::Budget(50), &pkgs()).len(), 5);
        // Input order does not matter; every package lands exactly once.
        let mut rev = pkgs();
        rev.reverse();
        assert_eq!(plan_layers(&Layering::Budget(3), &rev), g);
        let total: usize = g.iter().map(|g| g.packages.len()).sum();
        assert_eq!(total, pkgs().len());
    }
}

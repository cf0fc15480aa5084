//! Debian packages as image content: reading `.deb` files ([`deb`]), turning their data
//! into layer entries ([`extract`]), the image fix-ups that replace dpkg and maintainer
//! scripts ([`dpkgdb`]), and the SPDX SBOM ([`sbom`]). docs/debian.md describes them.

pub mod deb;
pub mod dpkgdb;
pub mod extract;
pub mod sbom;

use std::collections::BTreeMap;

pub use deb::{parse_control, read_deb, DebError, DebInfo};
pub use dpkgdb::dpkg_db_entries;
pub use extract::{dirs_of, package_entries, symlinks_of, ExtractOptions, ExtractedPackage};
pub use sbom::spdx_json;

use crate::layer::{Entry, EntryKind};
use crate::recipe::model::Accounts;

/// Every fix-up for an image holding `pkgs`, in one sorted list: dpkg's database, the
/// account files (base-passwd's masters merged with `accounts`), the CA bundle and the
/// alternatives links. A directory never replaces a file or link another fix-up wrote.
pub fn fixup_entries(
    pkgs: &[ExtractedPackage],
    accounts: Option<&Accounts>,
    native_arch: &str,
    sde: u64,
) -> Result<Vec<Entry>, String> {
    let mut all = dpkgdb::dpkg_db_entries(pkgs, native_arch, sde);
    all.extend(dpkgdb::accounts_entries(pkgs, accounts, sde)?);
    all.extend(dpkgdb::ca_entries(pkgs, sde));
    all.extend(dpkgdb::alternatives_entries(pkgs, sde));
    let mut by_path: BTreeMap<String, Entry> = BTreeMap::new();
    for e in all {
        match by_path.get(&e.path) {
            Some(old) if matches!(e.kind, EntryKind::Dir) && !old.is_dir() => {}
            _ => {
                by_path.insert(e.path.clone(), e);
            }
        }
    }
    Ok(by_path.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixups_of_fixture_packages() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/debian/hostile");
        let pkg = package_entries(
            &dir.join("good-zst_1.0-1_amd64.deb"),
            &ExtractOptions::default(),
        )
        .expect("reads");
        let got = fixup_entries(std::slice::from_ref(&pkg), None, "amd64", 5).expect("fix-ups");
        let paths: Vec<&str> = got.iter().map(|e| e.path.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(paths, sorted, "sorted, one entry per path");
        for want in [
            "etc/alternatives/java",
            "usr/bin/java",
            "usr/bin/good-tool",
            "var/lib/dpkg/status",
            "var/lib/dpkg/info/good-zst:amd64.list",
            "var/lib/dpkg/info/good-zst:amd64.postinst",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
        // No base-passwd, no ca-certificates, no recipe accounts: no such files.
        assert!(!paths.contains(&"etc/passwd"));
        assert!(!paths.contains(&"etc/ssl/certs/ca-certificates.crt"));
        assert!(got.iter().all(|e| e.mtime == 5));
    }
}

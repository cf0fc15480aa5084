//! An SPDX 2.3 JSON document describing an image's Debian packages: name, version,
//! architecture, source package, the licence where the package's copyright file is
//! machine-readable (DEP-5), and the `.deb`'s sha256.
//!
//! Deterministic like the image: `created` is `SOURCE_DATE_EPOCH`, the namespace is derived
//! from the packages' digests (no random UUID), packages are sorted and keys are sorted.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::extract::ExtractedPackage;
use crate::digest::sha256_hex;

/// SPDX license ids for Debian's DEP-5 short names that are not simply `NAME[+]` of a
/// GNU licence. Keys are lowercase.
const DEBIAN_TO_SPDX: &[(&str, &str)] = &[
    ("apache-2", "Apache-2.0"),
    ("apache-2.0", "Apache-2.0"),
    ("artistic", "Artistic-1.0"),
    ("artistic-1", "Artistic-1.0"),
    ("artistic-2", "Artistic-2.0"),
    ("artistic-2.0", "Artistic-2.0"),
    ("bsd-2-clause", "BSD-2-Clause"),
    ("bsd-3-clause", "BSD-3-Clause"),
    ("bsd-4-clause", "BSD-4-Clause"),
    ("bsl-1.0", "BSL-1.0"),
    ("cc0-1.0", "CC0-1.0"),
    ("expat", "MIT"),
    ("mit", "MIT"),
    ("isc", "ISC"),
    ("mpl-1.1", "MPL-1.1"),
    ("mpl-2.0", "MPL-2.0"),
    ("openssl", "OpenSSL"),
    ("psf-2", "PSF-2.0"),
    ("python-2.0", "Python-2.0"),
    ("zlib", "Zlib"),
    ("ftl", "FTL"),
    ("curl", "curl"),
    ("x11", "X11"),
    ("unicode-dfs-2016", "Unicode-DFS-2016"),
];

/// One DEP-5 licence short name as an SPDX id; `None` when there is no known id (the
/// caller makes a `LicenseRef-`).
pub fn spdx_license_id(debian: &str) -> Option<String> {
    let lower = debian.to_ascii_lowercase();
    if let Some((_, id)) = DEBIAN_TO_SPDX.iter().find(|(d, _)| *d == lower) {
        return Some(id.to_string());
    }
    let (base, plus) = match lower.strip_suffix('+') {
        Some(b) => (b, true),
        None => (lower.as_str(), false),
    };
    let (family, version) = base.split_once('-')?;
    let family = match family {
        "gpl" => "GPL",
        "lgpl" => "LGPL",
        "agpl" => "AGPL",
        "gfdl" => "GFDL",
        _ => return None,
    };
    let version = match version {
        "1" | "2" | "3" => format!("{version}.0"),
        "2.0" | "2.1" | "3.0" | "1.1" | "1.2" | "1.3" => version.to_string(),
        _ => return None,
    };
    if family == "AGPL" && version != "3.0" || family == "GFDL" && !version.starts_with('1') {
        return None;
    }
    Some(format!(
        "{family}-{version}-{}",
        if plus { "or-later" } else { "only" }
    ))
}

/// A `LicenseRef-` id for a name SPDX does not know: letters, digits, `.` and `-` only.
pub fn license_ref(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else if c == '+' {
                'p'
            } else {
                '-'
            }
        })
        .collect();
    format!("LicenseRef-{s}")
}

/// A DEP-5 `License:` synopsis (`GPL-2+ or Artistic`, `MIT and BSD-3-clause`) as an SPDX
/// expression, plus the `LicenseRef-` names it had to invent (with their Debian names).
pub fn license_expression(synopsis: &str) -> (String, BTreeMap<String, String>) {
    let mut refs = BTreeMap::new();
    let words: Vec<&str> = synopsis.split_whitespace().collect();
    // `X with Y exception` has no generic mapping: one LicenseRef for the whole synopsis.
    if words.iter().any(|w| w.eq_ignore_ascii_case("with")) {
        let r = license_ref(&words.join("-"));
        refs.insert(r.clone(), synopsis.to_string());
        return (r, refs);
    }
    let mut out = Vec::new();
    for w in words {
        let w = w.trim_end_matches(',');
        if w.eq_ignore_ascii_case("or") {
            out.push("OR".to_string());
        } else if w.eq_ignore_ascii_case("and") {
            out.push("AND".to_string());
        } else {
            out.push(spdx_license_id(w).unwrap_or_else(|| {
                let r = license_ref(w);
                refs.insert(r.clone(), w.to_string());
                r
            }));
        }
    }
    (out.join(" "), refs)
}

/// The declared licence of a package from its copyright file: the distinct `License:`
/// synopses of its `Files:` paragraphs joined by AND, or `None` when the file is not in
/// the machine-readable format. Returns the expression and the `LicenseRef-` ids it
/// invented (id → Debian name).
pub fn copyright_license(text: &str) -> Option<(String, BTreeMap<String, String>)> {
    let first = text.lines().next()?;
    if !(first.starts_with("Format:") && first.contains("copyright-format/1.0")) {
        return None;
    }
    let mut synopses = BTreeSet::new();
    for para in text.split("\n\n") {
        let mut has_files = false;
        let mut license = None;
        for line in para.lines() {
            if line.starts_with("Files:") {
                has_files = true;
            } else if let Some(l) = line.strip_prefix("License:") {
                license = Some(l.trim().to_string());
            }
        }
        if let (true, Some(l)) = (has_files, license) {
            if !l.is_empty() {
                synopses.insert(l);
            }
        }
    }
    if synopses.is_empty() {
        return None;
    }
    let mut refs = BTreeMap::new();
    let mut parts = BTreeSet::new();
    for s in &synopses {
        let (expr, r) = license_expression(s);
        refs.extend(r);
        parts.insert(if expr.contains(" OR ") && synopses.len() > 1 {
            format!("({expr})")
        } else {
            expr
        });
    }
    Some((parts.into_iter().collect::<Vec<_>>().join(" AND "), refs))
}

fn spdx_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Percent-encodes a purl component (everything but unreserved characters).
fn purl_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `Maintainer: Name <mail>` as an SPDX supplier `Person: Name (mail)`.
fn supplier(maintainer: Option<&str>) -> String {
    let Some(m) = maintainer.map(str::trim).filter(|m| !m.is_empty()) else {
        return "NOASSERTION".into();
    };
    match m.split_once('<') {
        Some((name, rest)) => format!(
            "Person: {} ({})",
            name.trim(),
            rest.trim_end_matches('>').trim()
        ),
        None => format!("Person: {m}"),
    }
}

/// The SPDX document for `pkgs` in an image named `image_name`. `distro` (e.g.
/// `debian-12`) goes into the packages' purls when known.
pub fn spdx_document(
    image_name: &str,
    pkgs: &[ExtractedPackage],
    distro: Option<&str>,
    sde: u64,
) -> Value {
    let mut sorted: Vec<&ExtractedPackage> = pkgs.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.name, &a.arch, &a.version, &a.deb.sha256).cmp(&(
            &b.name,
            &b.arch,
            &b.version,
            &b.deb.sha256,
        ))
    });
    let identity: String = sorted
        .iter()
        .map(|p| format!("{} {} {} {}\n", p.name, p.version, p.arch, p.deb.sha256))
        .collect();
    let digest = sha256_hex(format!("{image_name}\n{identity}").as_bytes());

    let mut packages = Vec::new();
    let mut relationships = Vec::new();
    let mut extracted: BTreeMap<String, String> = BTreeMap::new();
    for p in &sorted {
        let id = format!(
            "SPDXRef-Package-deb-{}-{}-{}",
            spdx_id(&p.name),
            spdx_id(&p.arch),
            &p.deb.sha256[..p.deb.sha256.len().min(12)]
        );
        let license = p
            .copyright
            .as_deref()
            .and_then(copyright_license)
            .map(|(expr, refs)| {
                extracted.extend(refs);
                expr
            })
            .unwrap_or_else(|| "NOASSERTION".into());
        let (source, source_version) = match p.field("Source") {
            Some(s) => match s.split_once(" (") {
                Some((n, v)) => (n.trim().to_string(), v.trim_end_matches(')').to_string()),
                None => (s.trim().to_string(), p.version.clone()),
            },
            None => (p.name.clone(), p.version.clone()),
        };
        let mut purl = format!(
            "pkg:deb/debian/{}@{}?arch={}",
            purl_encode(&p.name),
            purl_encode(&p.version),
            purl_encode(&p.arch)
        );
        if let Some(d) = distro {
            purl.push_str(&format!("&distro={}", purl_encode(d)));
        }
        if source != p.name {
            purl.push_str(&format!("&upstream={}", purl_encode(&source)));
        }
        packages.push(json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "supplier": supplier(p.field("Maintainer")),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": license,
            "copyrightText": "NOASSERTION",
            "sourceInfo": format!("built package from: {source} {source_version}"),
            "summary": p.field("Description").and_then(|d| d.lines().next()).unwrap_or(""),
            "checksums": [{"algorithm": "SHA256", "checksumValue": p.deb.sha256}],
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl,
            }],
            "attributionTexts": [format!("architecture: {}", p.arch)],
        }));
        relationships.push(json!({
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": id,
        }));
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": image_name,
        "documentNamespace": format!("urn:strata:spdx:{}:sha256:{digest}", purl_encode(image_name)),
        "creationInfo": {
            "created": crate::oci::rfc3339(sde),
            "creators": [format!("Tool: strata-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    });
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = extracted
            .into_iter()
            .map(|(id, name)| {
                json!({
                    "licenseId": id,
                    "name": name,
                    "extractedText": format!("The Debian licence short name `{name}`; see the package's /usr/share/doc/PACKAGE/copyright."),
                })
            })
            .collect();
    }
    doc
}

/// The document as the bytes strata writes: pretty-printed, sorted keys, final newline.
pub fn spdx_json(
    image_name: &str,
    pkgs: &[ExtractedPackage],
    distro: Option<&str>,
    sde: u64,
) -> Vec<u8> {
    let doc = spdx_document(image_name, pkgs, distro, sde);
    // A Value of strings, numbers and maps always serializes.
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn license_ids() {
        let cases = [
            ("GPL-2+", Some("GPL-2.0-or-later")),
            ("GPL-2", Some("GPL-2.0-only")),
            ("LGPL-2.1+", Some("LGPL-2.1-or-later")),
            ("LGPL-3", Some("LGPL-3.0-only")),
            ("AGPL-3+", Some("AGPL-3.0-or-later")),
            ("GFDL-1.3+", Some("GFDL-1.3-or-later")),
            ("Expat", Some("MIT")),
            ("BSD-3-clause", Some("BSD-3-Clause")),
            ("Apache-2.0", Some("Apache-2.0")),
            ("public-domain", None),
            ("GPL-7", None),
            ("AGPL-1", None),
        ];
        for (d, want) in cases {
            assert_eq!(spdx_license_id(d).as_deref(), want, "{d}");
        }
    }

    #[test]
    fn expressions() {
        let (e, refs) = license_expression("GPL-2+ or Artistic");
        assert_eq!(e, "GPL-2.0-or-later OR Artistic-1.0");
        assert!(refs.is_empty());
        let (e, refs) = license_expression("public-domain and MIT");
        assert_eq!(e, "LicenseRef-public-domain AND MIT");
        assert_eq!(
            refs.get("LicenseRef-public-domain").map(String::as_str),
            Some("public-domain")
        );
        let (e, _) = license_expression("GPL-2+ with OpenSSL exception");
        assert_eq!(e, "LicenseRef-GPL-2p-with-OpenSSL-exception");
    }

    #[test]
    fn copyright_files() {
        let dep5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: x\n\nFiles: *\nCopyright: me\nLicense: GPL-2+ or Artistic\n\nFiles: debian/*\nLicense: MIT\n\nLicense: MIT\n Permission is granted.\n";
        let (e, _) = copyright_license(dep5).expect("machine-readable");
        assert_eq!(e, "(GPL-2.0-or-later OR Artistic-1.0) AND MIT");
        assert_eq!(copyright_license("This is free software, see GPL.\n"), None);
        let no_files = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nLicense: MIT\n text\n";
        assert_eq!(copyright_license(no_files), None);
    }

    #[test]
    fn purl_and_supplier() {
        assert_eq!(purl_encode("1:2.0+dfsg-1"), "1%3A2.0%2Bdfsg-1");
        assert_eq!(
            supplier(Some("Debian Python Team <team+python@example.org>")),
            "Person: Debian Python Team (team+python@example.org)"
        );
        assert_eq!(supplier(None), "NOASSERTION");
    }

    #[test]
    fn document_from_fixture_packages() {
        use crate::debian::extract::{package_entries, ExtractOptions};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/debian/hostile");
        let read = |f: &str| package_entries(&dir.join(f), &ExtractOptions::default()).expect(f);
        let (zst, xz) = (
            read("good-zst_1.0-1_amd64.deb"),
            read("good-xz_1.0-1_all.deb"),
        );
        let doc = spdx_document(
            "demo",
            &[zst.clone(), xz.clone()],
            Some("debian-12"),
            1_700_000_000,
        );
        // Same packages in another order: the same bytes.
        assert_eq!(
            spdx_json(
                "demo",
                &[xz.clone(), zst.clone()],
                Some("debian-12"),
                1_700_000_000
            ),
            {
                let mut v = serde_json::to_vec_pretty(&doc).expect("json");
                v.push(b'\n');
                v
            }
        );
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
        let ns = doc["documentNamespace"].as_str().expect("namespace");
        assert!(ns.starts_with("urn:strata:spdx:demo:sha256:"), "{ns}");
        let pkgs = doc["packages"].as_array().expect("packages");
        let names: Vec<&str> = pkgs.iter().filter_map(|p| p["name"].as_str()).collect();
        assert_eq!(names, ["good-xz", "good-zst"]);
        let z = &pkgs[1];
        assert_eq!(z["versionInfo"], "1.0-1");
        assert_eq!(z["licenseDeclared"], "GPL-2.0-or-later AND MIT");
        assert_eq!(z["sourceInfo"], "built package from: good-src 1.0-0");
        assert_eq!(z["checksums"][0]["checksumValue"], zst.deb.sha256.as_str());
        assert_eq!(
            z["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/good-zst@1.0-1?arch=amd64&distro=debian-12&upstream=good-src"
        );
        assert_eq!(doc["relationships"].as_array().map(Vec::len), Some(2));
        // Another package set: another namespace.
        let other = spdx_document("demo", &[xz], Some("debian-12"), 1_700_000_000);
        assert_ne!(other["documentNamespace"], doc["documentNamespace"]);
    }
}

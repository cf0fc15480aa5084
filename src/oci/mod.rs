//! OCI image documents (config, manifest, index) and the three on-disk forms strata writes:
//! an OCI image layout directory, an OCI archive (that layout as a tar) and a Docker archive
//! (`docker load` format, readable by Docker 20.10).
//!
//! Every JSON document is written canonically: keys sorted, no whitespace. oci-spec keeps
//! labels and annotations in `HashMap`s, whose order changes from process to process, so
//! documents go through `serde_json::Value` (a BTreeMap) before they become bytes.

pub mod archive;
pub mod artifact;
pub mod layout;

use serde::Serialize;

pub use layout::{Layout, LayoutError, ResolvedImage};

pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Layer descriptor annotation naming the compressor that produced the blob.
pub const ANNOTATION_COMPRESSOR: &str = "io.strata.layer.compressor";

/// Canonical JSON bytes: sorted keys, compact.
pub fn canonical_json<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&serde_json::to_value(value)?)
}

/// RFC 3339 UTC timestamp for seconds since the epoch (no dependency on TZ or locale).
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let (y, mo, d) = civil_from_days(days as i64);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's
/// civil-from-days algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(mo <= 2), mo, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(946_684_800), "2000-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn canonical_json_ignores_hashmap_order() {
        let a: HashMap<String, u32> = (0..50).map(|i| (format!("k{i}"), i)).collect();
        let b: HashMap<String, u32> = (0..50).rev().map(|i| (format!("k{i}"), i)).collect();
        assert_eq!(
            canonical_json(&a).expect("json"),
            canonical_json(&b).expect("json")
        );
    }
}

//! The `[base]` table of `RECIPE.lock`: the digest a `registry://HOST/REPO:TAG` base stands
//! for. A tag can move; the lock holds on to the manifest (or index) digest the tag named
//! when `strata lock` ran, and builds use that digest until `strata lock --update` moves it.
//!
//! ```toml
//! [base]
//! reference = "registry://127.0.0.1:5000/team/base:12"
//! digest = "sha256:…"
//! ```
//!
//! `reference` is the recipe's `base` as written. The pin is fresh while the recipe names
//! the same repository and tag; a `@sha256:` written in the recipe must also equal the
//! lock's digest. A base whose digest is in the recipe needs no lock to build, but
//! `strata lock` records it all the same, so the lock shows every image a build starts from.

use serde::{Deserialize, Serialize};

use crate::registry::Reference;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseLock {
    /// The recipe's `base` as written, e.g. `registry://127.0.0.1:5000/team/base:12`.
    pub reference: String,
    /// `sha256:` of the manifest, or of the index for a multi-platform image (the build
    /// picks the recipe's platform from it).
    pub digest: String,
}

/// `registry://h/r:t@sha256:…` → `registry://h/r:t`.
pub fn without_digest(reference: &str) -> &str {
    reference
        .split_once('@')
        .map_or(reference, |(name, _)| name)
}

impl BaseLock {
    /// Checks the table read from a file; the error is its detail.
    pub(crate) fn check(&self) -> Result<(), String> {
        let hint = "hint: run `strata lock RECIPE` to rewrite it";
        let parsed = self
            .reference
            .strip_prefix("registry://")
            .and_then(|rest| Reference::parse(rest).ok());
        let Some(r) = parsed else {
            return Err(format!(
                "[base] reference {:?} is not a `registry://HOST/REPO[:TAG]` reference\n{hint}",
                self.reference
            ));
        };
        if crate::store::digest_hex(&self.digest).is_err() {
            return Err(format!(
                "[base] digest {:?} is not `sha256:` and 64 lower-case hex digits\n{hint}",
                self.digest
            ));
        }
        if let Some(d) = &r.digest {
            if d != &self.digest {
                return Err(format!(
                    "[base] reference {:?} names {d} but the digest is {} (was it edited by hand?)\n{hint}",
                    self.reference, self.digest
                ));
            }
        }
        Ok(())
    }

    /// None when this pin fits `written` (the recipe's `base` as it is), else why not.
    pub fn stale_reason(&self, written: &str) -> Option<String> {
        if without_digest(&self.reference) != without_digest(written) {
            return Some(format!(
                "the recipe's base is `{written}`, the lock pins `{}`",
                self.reference
            ));
        }
        match written.split_once('@') {
            Some((_, d)) if d != self.digest => Some(format!(
                "the recipe pins {d}, the lock pins {}",
                self.digest
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn pin(reference: &str, digest: &str) -> BaseLock {
        BaseLock {
            reference: reference.into(),
            digest: digest.into(),
        }
    }

    #[test]
    fn names_without_digest() {
        assert_eq!(without_digest("registry://h:5/r:t"), "registry://h:5/r:t");
        assert_eq!(
            without_digest(&format!("registry://h:5/r:t@{D1}")),
            "registry://h:5/r:t"
        );
    }

    #[test]
    fn staleness() {
        let p = pin("registry://127.0.0.1:5000/team/base:12", D1);
        // Same reference: fresh. The recipe adding the same digest: still fresh.
        assert_eq!(
            p.stale_reason("registry://127.0.0.1:5000/team/base:12"),
            None
        );
        assert_eq!(
            p.stale_reason(&format!("registry://127.0.0.1:5000/team/base:12@{D1}")),
            None
        );
        // Another digest in the recipe, another tag, another repository: stale.
        let e = p
            .stale_reason(&format!("registry://127.0.0.1:5000/team/base:12@{D2}"))
            .expect("stale");
        assert!(e.contains(D2) && e.contains(D1), "{e}");
        for other in [
            "registry://127.0.0.1:5000/team/base:13",
            "registry://127.0.0.1:5000/team/other:12",
            "registry://127.0.0.1:5001/team/base:12",
            "registry://127.0.0.1:5000/team/base",
        ] {
            let e = p.stale_reason(other).expect(other);
            assert!(e.contains(other) && e.contains("base:12"), "{e}");
        }
        // A pin written for a recipe with a digest still fits once the digest is removed.
        let p = pin(&format!("registry://h.example/r:t@{D1}"), D1);
        assert_eq!(p.stale_reason("registry://h.example/r:t"), None);
    }

    #[test]
    fn checks() {
        assert_eq!(pin("registry://h.example/r:t", D1).check(), Ok(()));
        assert_eq!(
            pin(&format!("registry://h.example/r:t@{D1}"), D1).check(),
            Ok(())
        );
        for (p, want) in [
            (pin("h.example/r:t", D1), "is not a `registry://"),
            (pin("registry://r:t", D1), "is not a `registry://"),
            (
                pin("registry://h.example/r:t", "sha256:00"),
                "64 lower-case hex",
            ),
            (
                pin(&format!("registry://h.example/r:t@{D2}"), D1),
                "edited by hand",
            ),
        ] {
            let e = p.check().expect_err(want);
            assert!(e.contains(want) && e.contains("strata lock"), "{e}");
        }
    }
}

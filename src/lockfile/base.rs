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

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{lock_path, LockPolicy};
use crate::recipe::LoadedRecipe;
use crate::registry::pull::ManifestNotFound;
use crate::registry::{ClientOptions, PullOptions, Reference};
use crate::store::Store;

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

/// The recipe's base as written and parsed, when it is a `registry://` base.
fn registry_base(loaded: &LoadedRecipe) -> Result<Option<(&str, Reference)>> {
    let written = loaded.recipe.base.trim();
    match crate::recipe::parse_base(written) {
        Ok(crate::recipe::Base::Registry(r)) => Ok(Some((written, r))),
        Ok(_) => Ok(None),
        Err(p) => Err(loaded.error_at("base", p.message, p.hint).into()),
    }
}

/// What `strata lock` did with the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseAction {
    /// The recipe has the digest; the registry was not asked.
    FromRecipe,
    /// The lock's pin still fits the recipe and `--update` was not given.
    Kept,
    /// The tag was resolved against the registry.
    Resolved,
}

impl BaseAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BaseAction::FromRecipe => "from the recipe",
            BaseAction::Kept => "kept",
            BaseAction::Resolved => "resolved",
        }
    }
}

/// For `strata lock`: the `[base]` table for the recipe (None unless its base is a
/// `registry://` one). A digest in the recipe is taken as it is; else a pin in `old` that
/// still fits the recipe is kept, unless `update`; else the tag is resolved against the
/// registry (the manifest or index is fetched, checked and stored in the cache).
pub fn lock_base(
    loaded: &LoadedRecipe,
    old: Option<&BaseLock>,
    update: bool,
    client: &ClientOptions,
    store: &Store,
) -> Result<Option<(BaseLock, BaseAction)>> {
    let Some((written, r)) = registry_base(loaded)? else {
        return Ok(None);
    };
    let pin = |digest: String| BaseLock {
        reference: written.to_string(),
        digest,
    };
    if let Some(d) = &r.digest {
        return Ok(Some((pin(d.clone()), BaseAction::FromRecipe)));
    }
    if !update {
        if let Some(old) = old.filter(|o| o.stale_reason(written).is_none()) {
            return Ok(Some((pin(old.digest.clone()), BaseAction::Kept)));
        }
    }
    let digest = resolve(loaded, written, &r, client, store)?;
    Ok(Some((pin(digest), BaseAction::Resolved)))
}

/// For `strata build`: the recipe's `registry://` base pinned by digest (None for other
/// bases). The digest comes from the recipe or from a lock that fits it. Without one (no
/// lock, no `[base]`, or a stale one) `--locked` and `--offline` stop with an error naming
/// the fix; otherwise the tag is resolved (or the recipe's digest taken) and the lock's
/// `[base]` written, as for a stale `debian` part.
pub fn ensure_base(
    loaded: &LoadedRecipe,
    policy: LockPolicy,
    client: &ClientOptions,
    store: &Store,
) -> Result<Option<Reference>> {
    let Some((written, r)) = registry_base(loaded)? else {
        return Ok(None);
    };
    let path = lock_path(&loaded.file);
    let lock = super::read(&path)?;
    let pinned = lock.as_ref().and_then(|l| l.base.as_ref());
    let shown = path.display();
    let reason = match pinned {
        Some(p) => p
            .stale_reason(written)
            .map(|why| format!("the lock {shown} is stale ({why})")),
        // The recipe pins the base itself: no lock needed.
        None if r.digest.is_some() => None,
        None if lock.is_some() => Some(format!(
            "the lock {shown} has no [base] table to take the digest from"
        )),
        None => Some(format!("there is no lock {shown} to take the digest from")),
    };
    let Some(reason) = reason else {
        let digest = r
            .digest
            .clone()
            .or_else(|| pinned.map(|p| p.digest.clone()));
        return Ok(Some(Reference { digest, ..r }));
    };
    if let Some(flag) = policy.forbids_resolving() {
        let recipe = loaded.file.display();
        return Err(loaded
            .error_at(
                "base",
                format!("base `{written}`: {reason}, and {flag} forbids resolving the base"),
                format!(
                    "run `strata lock {recipe}` to pin the digest the tag names now in {shown}, and commit it (or build without {flag})"
                ),
            )
            .into());
    }
    let digest = match &r.digest {
        Some(d) => d.clone(),
        None => resolve(loaded, written, &r, client, store)?,
    };
    super::update(&path, |l| {
        l.base = Some(BaseLock {
            reference: written.to_string(),
            digest: digest.clone(),
        })
    })?;
    Ok(Some(Reference {
        digest: Some(digest),
        ..r
    }))
}

/// The digest `r`'s tag names now.
fn resolve(
    loaded: &LoadedRecipe,
    written: &str,
    r: &Reference,
    client: &ClientOptions,
    store: &Store,
) -> Result<String> {
    let opts = PullOptions {
        client: client.clone(),
        ..PullOptions::default()
    };
    let recipe = loaded.file.display();
    match crate::registry::pull::resolve(r, store, &opts) {
        Ok(rep) => Ok(rep.digest),
        Err(e) => Err(match e.downcast_ref::<ManifestNotFound>() {
            Some(nf) => loaded
                .error_at(
                    "base",
                    format!(
                        "base `{written}`: the registry {} has no image tagged `{}` in `{}` ({})",
                        r.host,
                        r.manifest_ref(),
                        r.repo,
                        nf.message
                    ),
                    format!("push the image as {r} first, or correct the base in {recipe}; then run `strata lock {recipe}`"),
                )
                .into(),
            None => {
                let at = loaded.map.locate("base");
                anyhow::anyhow!(
                    "{recipe}:{}:{}: base `{written}`: cannot resolve the tag to a digest: {e:#}\n  hint: once the registry answers, run `strata lock {recipe}`; a build from a lock whose base is in the cache needs no registry (`--offline`)",
                    at.line,
                    at.col
                )
            }
        }),
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

//! OCI distribution client: references, credentials, push and pull.
//!
//! Why a small client of our own on `ureq` rather than the `oci-client` crate: `oci-client`
//! is async on tokio and reqwest; strata is a synchronous program that parallelises with
//! rayon, so using it means carrying a runtime and `block_on` at every call. More to the
//! point, what strata has to guarantee is exactly what a general client leaves to its
//! caller: uploads from the content-addressed store without reading whole blobs into memory,
//! resuming a chunked upload from the offset the registry reports after it died, starting a
//! blob over when the registry lost the session, checking every digest the registry
//! computes, cross-repository mounts, and the same credential sources as Docker. That is a
//! few hundred lines over a blocking HTTP client; `ureq` (rustls for HTTPS, no runtime)
//! keeps the dependency tree small and the behaviour in our hands.
//!
//! Plain HTTP: refused unless `--insecure`, except for loopback registries (`localhost`,
//! `127.0.0.0/8`, `::1`), which Docker also allows without configuration. Even there HTTPS
//! is tried first, as Docker does.

pub mod auth;
pub mod client;
pub mod pull;
pub mod push;
pub mod reference;

pub use client::{ClientOptions, RetryPolicy};
pub use pull::{pull, PullOptions, PullReport};
pub use push::{push, BlobAction, PushOptions, PushReport, PushRoot};
pub use reference::{Reference, ReferenceError};

pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Every manifest type strata reads, for the `Accept` header.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// True for an OCI index or a Docker manifest list.
pub fn is_index_media_type(mt: &str) -> bool {
    mt == crate::oci::MEDIA_INDEX || mt == MEDIA_DOCKER_LIST
}

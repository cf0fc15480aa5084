//! Debian packages as image content: reading `.deb` files, turning their data into layer
//! entries, the image fix-ups that replace maintainer scripts, and the SBOM.

pub mod deb;
pub mod dpkgdb;
pub mod extract;
pub mod sbom;

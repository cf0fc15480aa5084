//! Minion key pairs, made before the minions start so the master holds them as accepted
//! (no `auto_accept`, no waiting for key acceptance). Salt reads RSA keys as PKCS#1 PEM
//! (private, `minion.pem`) and SubjectPublicKeyInfo PEM (public, `minion.pub` and the
//! master's `pki/master/minions/<id>`).

use std::collections::BTreeMap;

use rayon::prelude::*;
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use rsa::pkcs8::EncodePublicKey;

use super::plan::KeyPair;

/// Half Salt's default `keysize` (2048). Salt 3008 loads and checks the minion's private
/// key again for nearly every request a job makes (about 20 per highstate), and OpenSSL's
/// check of a 2048-bit key costs about 7 times that of a 1024-bit one: some 0.5 s of CPU per
/// minion and highstate. The keys live only in the lab's cache and on its internal network,
/// and 1024 bits leave room for what Salt encrypts with them under its default
/// `encryption_algorithm` (OAEP-SHA1: up to 86 bytes; the master's AES key is 76).
pub const KEY_BITS: usize = 1024;

/// One fresh key pair.
pub fn generate() -> Result<KeyPair, String> {
    let mut rng = rand::rngs::OsRng;
    let private = rsa::RsaPrivateKey::new(&mut rng, KEY_BITS).map_err(|e| e.to_string())?;
    let private_pem = private
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?
        .to_string();
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    Ok(KeyPair {
        private_pem,
        public_pem,
    })
}

/// A key pair per id, made in parallel.
pub fn generate_all(ids: &[String]) -> Result<BTreeMap<String, KeyPair>, String> {
    ids.par_iter()
        .map(|id| generate().map(|k| (id.clone(), k)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePublicKey;

    #[test]
    fn keys_are_in_the_pem_forms_salt_reads_and_match() {
        let k = generate().expect("key");
        assert!(k
            .private_pem
            .starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        assert!(k.public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let private = rsa::RsaPrivateKey::from_pkcs1_pem(&k.private_pem).expect("pkcs1");
        let public = rsa::RsaPublicKey::from_public_key_pem(&k.public_pem).expect("spki");
        assert_eq!(private.to_public_key(), public);
        assert_eq!(rsa::traits::PublicKeyParts::size(&public), KEY_BITS / 8);
    }

    #[test]
    fn every_id_gets_its_own_key() {
        let ids: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let keys = generate_all(&ids).expect("keys");
        assert_eq!(keys.len(), 2);
        assert_ne!(keys["a"].public_pem, keys["b"].public_pem);
    }
}

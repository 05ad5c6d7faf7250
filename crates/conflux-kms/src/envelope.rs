//! AES-256-GCM over one version's content under its own data key.
//!
//! The associated data binds a ciphertext to the config it was written for (config id and
//! the revision that created the config, so a re-created config at the same path is another
//! config): a ciphertext copied into another config's storage fails authentication instead
//! of being served there. The version number cannot be bound: it is assigned when the entry
//! is applied, after the content was sealed; each version has its own data key and nonce in
//! its metadata instead, so a content swapped between two versions of one config fails too.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use conflux_domain::{ConfigId, Revision};

use crate::error::KmsError;

/// Length of a GCM nonce (96 bits, random per version: a data key seals exactly one content).
pub const NONCE_LEN: usize = 12;

/// The associated data of a config's contents.
pub fn content_aad(config_id: ConfigId, created_revision: Revision) -> Vec<u8> {
    let mut aad = b"conflux/content/v1".to_vec();
    aad.extend_from_slice(&config_id.to_be_bytes());
    aad.extend_from_slice(&created_revision.to_be_bytes());
    aad
}

/// Encrypts `plaintext` under `key` with a fresh random nonce: (ciphertext with tag, nonce).
pub fn seal(
    key: &[u8; 32],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<(Vec<u8>, [u8; NONCE_LEN]), KmsError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| KmsError::Config(format!("no OS randomness: {e}")))?;
    let cipher = Aes256Gcm::new(key.into());
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| KmsError::Config("AES-GCM refused the plaintext (too large)".into()))?;
    Ok((ciphertext, nonce))
}

/// Decrypts and authenticates; `what` names the thing in the error when authentication fails.
pub fn open(
    key: &[u8; 32],
    nonce: &[u8],
    ciphertext: &[u8],
    aad: &[u8],
    what: &'static str,
) -> Result<Vec<u8>, KmsError> {
    let nonce = Nonce::try_from(nonce).map_err(|_| KmsError::Corrupt { what })?;
    Aes256Gcm::new(key.into())
        .decrypt(
            &nonce,
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| KmsError::Corrupt { what })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn a_sealed_content_opens_only_with_its_key_nonce_and_config() {
        let aad = content_aad(3, 10);
        let (ct, nonce) = seal(&KEY, b"password=hunter2", &aad).unwrap();
        assert!(!ct.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(
            open(&KEY, &nonce, &ct, &aad, "content").unwrap(),
            b"password=hunter2"
        );

        let other_config = content_aad(4, 10);
        let recreated = content_aad(3, 11);
        for aad in [other_config, recreated] {
            assert!(matches!(
                open(&KEY, &nonce, &ct, &aad, "content"),
                Err(KmsError::Corrupt { .. })
            ));
        }
        let mut flipped = ct.clone();
        flipped[0] ^= 1;
        assert!(open(&KEY, &nonce, &flipped, &aad, "content").is_err());
        assert!(open(&[8; 32], &nonce, &ct, &aad, "content").is_err());
        assert!(open(&KEY, &nonce[..8], &ct, &aad, "content").is_err());
        assert!(open(&KEY, &nonce, &ct[..ct.len() - 1], &aad, "content").is_err());
    }

    #[test]
    fn every_seal_uses_a_new_nonce() {
        let aad = content_aad(1, 1);
        let (a, na) = seal(&KEY, b"same", &aad).unwrap();
        let (b, nb) = seal(&KEY, b"same", &aad).unwrap();
        assert_ne!(na, nb);
        assert_ne!(a, b);
    }
}

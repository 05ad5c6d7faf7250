//! The `local` provider: key-encryption keys in files on the node.
//!
//! A key file holds one 256-bit key as 64 hexadecimal digits (a trailing newline is fine) or
//! as 32 raw bytes, and must not be readable by group or others (like an SSH private key).
//! Every node of a cluster needs the same current key file, and the same previous ones while
//! versions wrapped by them remain. Data keys are wrapped with AES-256-GCM under the KEK.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use bytes::Bytes;
use conflux_domain::WrappedKey;
use futures::future::{BoxFuture, FutureExt};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::envelope::{self, NONCE_LEN};
use crate::{DataKey, KeyProvider, KmsError};

struct Kek {
    id: String,
    key: DataKey,
}

/// KEKs from key files: the current one wraps, all of them unwrap.
pub struct LocalKms {
    current: Kek,
    previous: Vec<Kek>,
}

impl std::fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKms")
            .field("current", &self.current.id)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl LocalKms {
    /// Reads the current key file and any previous ones.
    pub fn open(current: &Path, previous: &[impl AsRef<Path>]) -> Result<LocalKms, KmsError> {
        Ok(LocalKms {
            current: read_kek(current)?,
            previous: previous
                .iter()
                .map(|p| read_kek(p.as_ref()))
                .collect::<Result<_, _>>()?,
        })
    }

    fn kek(&self, id: &str) -> Option<&Kek> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
    }

    fn wrap(&self, data_key: &DataKey) -> Result<WrappedKey, KmsError> {
        let (ct, nonce) =
            envelope::seal(&self.current.key, &data_key[..], &kek_aad(&self.current.id))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(WrappedKey {
            kek_id: self.current.id.clone(),
            ciphertext: Bytes::from(out),
        })
    }

    fn unwrap(&self, key: &WrappedKey) -> Result<DataKey, KmsError> {
        let kek = self.kek(&key.kek_id).ok_or_else(|| KmsError::Key {
            kek_id: key.kek_id.clone(),
            message: "this node does not hold that key (give its file with \
                      --kms-previous-key-file until every data key is rewrapped)"
                .into(),
        })?;
        let what = "wrapped data key";
        if key.ciphertext.len() < NONCE_LEN {
            return Err(KmsError::Corrupt { what });
        }
        let (nonce, ct) = key.ciphertext.split_at(NONCE_LEN);
        let plain = Zeroizing::new(envelope::open(
            &kek.key,
            nonce,
            ct,
            &kek_aad(&kek.id),
            what,
        )?);
        let bytes: [u8; 32] = plain[..]
            .try_into()
            .map_err(|_| KmsError::Corrupt { what })?;
        Ok(Zeroizing::new(bytes))
    }
}

impl KeyProvider for LocalKms {
    fn current_kek_id(&self) -> &str {
        &self.current.id
    }

    fn generate_data_key(&self) -> BoxFuture<'_, Result<(DataKey, WrappedKey), KmsError>> {
        async move {
            let key = random_key()?;
            let wrapped = self.wrap(&key)?;
            Ok((key, wrapped))
        }
        .boxed()
    }

    fn unwrap_key<'a>(&'a self, key: &'a WrappedKey) -> BoxFuture<'a, Result<DataKey, KmsError>> {
        async move { self.unwrap(key) }.boxed()
    }

    fn rewrap_key<'a>(
        &'a self,
        key: &'a WrappedKey,
    ) -> BoxFuture<'a, Result<WrappedKey, KmsError>> {
        async move { self.wrap(&self.unwrap(key)?) }.boxed()
    }
}

fn kek_aad(kek_id: &str) -> Vec<u8> {
    let mut aad = b"conflux/data-key/v1/".to_vec();
    aad.extend_from_slice(kek_id.as_bytes());
    aad
}

pub(crate) fn random_key() -> Result<DataKey, KmsError> {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut key[..])
        .map_err(|e| KmsError::Config(format!("no OS randomness: {e}")))?;
    Ok(key)
}

/// `local:` and the first 16 hex digits of a hash of the key: names the key without
/// revealing anything usable about it.
fn kek_id_of(key: &[u8; 32]) -> String {
    let digest = Sha256::new()
        .chain_update(b"conflux/kek-id/v1")
        .chain_update(key)
        .finalize();
    format!("local:{}", &hex::encode(digest)[..16])
}

fn read_kek(path: &Path) -> Result<Kek, KmsError> {
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| KmsError::Config(format!("KMS key file {shown}: {e}")))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(KmsError::Config(format!(
            "KMS key file {shown} is readable by group or others (mode {:o}); run chmod 600 on it",
            meta.permissions().mode() & 0o777
        )));
    }
    let raw = Zeroizing::new(
        std::fs::read(path).map_err(|e| KmsError::Config(format!("KMS key file {shown}: {e}")))?,
    );
    let key = parse_key(&raw).ok_or_else(|| {
        KmsError::Config(format!(
            "KMS key file {shown} does not hold a 256-bit key (64 hex digits or 32 bytes)"
        ))
    })?;
    Ok(Kek {
        id: kek_id_of(&key),
        key,
    })
}

fn parse_key(raw: &[u8]) -> Option<DataKey> {
    let mut key = Zeroizing::new([0u8; 32]);
    let text = raw.trim_ascii();
    if text.len() == 64 && hex::decode_to_slice(text, &mut key[..]).is_ok() {
        return Some(key);
    }
    if raw.len() == 32 {
        key.copy_from_slice(raw);
        return Some(key);
    }
    None
}

/// Creates a new key file (mode 0600, 64 hex digits). Refuses to overwrite an existing file.
pub fn generate_key_file(path: &Path) -> Result<(), KmsError> {
    let key = random_key()?;
    let text = Zeroizing::new(format!("{}\n", hex::encode(&key[..])));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| KmsError::Config(format!("creating KMS key file {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| KmsError::Config(format!("writing KMS key file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_file(dir: &Path, name: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        generate_key_file(&p).unwrap();
        p
    }

    #[tokio::test]
    async fn data_keys_unwrap_under_the_kek_that_wrapped_them() {
        let dir = tempfile::tempdir().unwrap();
        let old = key_file(dir.path(), "old.key");
        let new = key_file(dir.path(), "new.key");
        let before = LocalKms::open(&old, &[] as &[&Path]).unwrap();
        let (key, wrapped) = before.generate_data_key().await.unwrap();
        assert_eq!(wrapped.kek_id, before.current_kek_id());
        assert!(!wrapped.ciphertext.windows(32).any(|w| w == &key[..]));

        // Rotated: the new key wraps, the old one still unwraps.
        let rotated = LocalKms::open(&new, &[&old]).unwrap();
        assert_eq!(*rotated.unwrap_key(&wrapped).await.unwrap(), *key);
        let rewrapped = rotated.rewrap_key(&wrapped).await.unwrap();
        assert_eq!(rewrapped.kek_id, rotated.current_kek_id());
        assert_ne!(rewrapped.kek_id, wrapped.kek_id);

        // With the old key gone, only the rewrapped copy opens.
        let without_old = LocalKms::open(&new, &[] as &[&Path]).unwrap();
        assert_eq!(*without_old.unwrap_key(&rewrapped).await.unwrap(), *key);
        let e = without_old.unwrap_key(&wrapped).await.unwrap_err();
        assert_eq!(e.code(), "kms_key_error", "{e}");

        let mut tampered = rewrapped.clone();
        let mut bytes = tampered.ciphertext.to_vec();
        *bytes.last_mut().unwrap() ^= 1;
        tampered.ciphertext = bytes.into();
        let e = without_old.unwrap_key(&tampered).await.unwrap_err();
        assert_eq!(e.code(), "content_corrupt", "{e}");
    }

    #[test]
    fn bad_key_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let missing = LocalKms::open(&dir.path().join("none.key"), &[] as &[&Path]).unwrap_err();
        assert!(missing.to_string().contains("none.key"), "{missing}");

        let short = dir.path().join("short.key");
        std::fs::write(&short, "abcd\n").unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = LocalKms::open(&short, &[] as &[&Path]).unwrap_err();
        assert!(e.to_string().contains("256-bit"), "{e}");

        let open_to_all = key_file(dir.path(), "wide.key");
        std::fs::set_permissions(&open_to_all, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = LocalKms::open(&open_to_all, &[] as &[&Path]).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");

        let existing = key_file(dir.path(), "exists.key");
        assert!(generate_key_file(&existing).is_err());
    }
}

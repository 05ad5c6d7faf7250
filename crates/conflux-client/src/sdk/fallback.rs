//! The local fallback copy of each config a [`crate::ConfigHandle`] holds, so that a service
//! can start while no node is reachable.
//!
//! Layout, one directory per config under the fallback directory:
//!
//! ```text
//! <dir>/<tenant>/<app>/<env>/<name>/meta.json            {"format": 1, key, version, revision, hash, content_type, content_file, sha256}
//! <dir>/<tenant>/<app>/<env>/<name>/content-<sha256[..16]>   the raw content
//! ```
//!
//! Names cannot start with `.` nor contain `/` (the server's naming rules, checked again
//! here), so a config can never write outside its own directory.
//!
//! **Atomicity.** Every file is written as a temporary file in the same directory, fsynced,
//! renamed over its final name, and the directory fsynced. The content file is named after
//! its hash and written first; `meta.json` names it and is renamed last, so the rename of
//! `meta.json` is the commit point: a crash at any moment leaves either the previous
//! meta and its (still present) content, or the new ones. Older content files are removed
//! only after the commit. Loading checks the content's SHA-256 against the meta, so a
//! damaged copy is refused instead of served.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use conflux_domain::ConfigPath;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::value::ConfigValue;
use crate::error::ClientError;

/// The layout version written in every `meta.json`.
const FORMAT: u32 = 1;
const META: &str = "meta.json";
const CONTENT_PREFIX: &str = "content-";
const TEMP_PREFIX: &str = ".tmp-";
/// Temporary files older than this are leftovers of a crash and are removed on the next save.
const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    format: u32,
    key: String,
    version: u64,
    revision: u64,
    hash: String,
    content_type: String,
    /// The content file's name, in the same directory.
    content_file: String,
    /// Hex SHA-256 of the content file, checked on load.
    sha256: String,
}

/// The fallback directory.
#[derive(Debug, Clone)]
pub(crate) struct FallbackStore {
    root: PathBuf,
}

fn fallback_error(path: &Path, message: impl Into<String>) -> ClientError {
    ClientError::Fallback {
        path: path.display().to_string(),
        message: message.into(),
    }
}

fn io_error(path: &Path, what: &str, e: &std::io::Error) -> ClientError {
    fallback_error(path, format!("{what}: {e}"))
}

impl FallbackStore {
    pub(crate) fn new(root: impl Into<PathBuf>) -> Self {
        FallbackStore { root: root.into() }
    }

    /// The directory of one config's copy.
    pub(crate) fn dir(&self, path: &ConfigPath) -> Result<PathBuf, ClientError> {
        let key = path.to_string();
        // The SDK validates paths before they get here; this is the last line of defence
        // against a name leaving its directory.
        ConfigPath::parse(&key)
            .map_err(|e| ClientError::invalid_argument("path", e.to_string()))?;
        Ok(self
            .root
            .join(&path.tenant)
            .join(&path.app)
            .join(&path.env)
            .join(&path.name))
    }

    /// Writes `value` as the copy of `path`, atomically (see the module docs).
    pub(crate) fn save(&self, path: &ConfigPath, value: &ConfigValue) -> Result<(), ClientError> {
        let dir = self.dir(path)?;
        fs::create_dir_all(&dir).map_err(|e| io_error(&dir, "cannot create", &e))?;
        let sha256 = hex::encode(Sha256::digest(&value.content));
        let content_file = format!("{CONTENT_PREFIX}{}", &sha256[..16]);
        let meta = Meta {
            format: FORMAT,
            key: path.to_string(),
            version: value.version,
            revision: value.revision,
            hash: value.hash.clone(),
            content_type: value.content_type.clone(),
            content_file: content_file.clone(),
            sha256,
        };
        let meta_json = serde_json::to_vec_pretty(&meta)
            .map_err(|e| fallback_error(&dir, format!("cannot encode the meta: {e}")))?;
        write_atomic(&dir, &content_file, &value.content)?;
        write_atomic(&dir, META, &meta_json)?;
        sync_dir(&dir)?;
        self.clean(&dir);
        Ok(())
    }

    /// The copy of `path`: `None` when there is none, an error when it cannot be read or is
    /// damaged.
    pub(crate) fn load(&self, path: &ConfigPath) -> Result<Option<ConfigValue>, ClientError> {
        let dir = self.dir(path)?;
        let meta_path = dir.join(META);
        let raw = match fs::read(&meta_path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&meta_path, "cannot read", &e)),
        };
        let meta: Meta = serde_json::from_slice(&raw)
            .map_err(|e| fallback_error(&meta_path, format!("not a fallback meta file: {e}")))?;
        if meta.format != FORMAT {
            return Err(fallback_error(
                &meta_path,
                format!("layout version {} is not {FORMAT}", meta.format),
            ));
        }
        let key = path.to_string();
        if meta.key != key {
            return Err(fallback_error(
                &meta_path,
                format!("holds {:?}, not {key:?}", meta.key),
            ));
        }
        if meta.content_file.contains(['/', '\\']) || !meta.content_file.starts_with(CONTENT_PREFIX)
        {
            return Err(fallback_error(
                &meta_path,
                "names a file outside its directory",
            ));
        }
        let content_path = dir.join(&meta.content_file);
        let content =
            fs::read(&content_path).map_err(|e| io_error(&content_path, "cannot read", &e))?;
        if hex::encode(Sha256::digest(&content)) != meta.sha256 {
            return Err(fallback_error(
                &content_path,
                "the content does not match its checksum",
            ));
        }
        Ok(Some(ConfigValue {
            key,
            content: Bytes::from(content),
            version: meta.version,
            revision: meta.revision,
            hash: meta.hash,
            content_type: meta.content_type,
        }))
    }

    /// Removes the copy of `path` (the config was deleted).
    pub(crate) fn remove(&self, path: &ConfigPath) -> Result<(), ClientError> {
        let dir = self.dir(path)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&dir, "cannot remove", &e)),
        }
    }

    /// Best effort: removes content files the committed meta does not name, and temporary
    /// files left by a crash.
    fn clean(&self, dir: &Path) {
        let current = fs::read(dir.join(META))
            .ok()
            .and_then(|raw| serde_json::from_slice::<Meta>(&raw).ok())
            .map(|m| m.content_file);
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let stale = if name.starts_with(CONTENT_PREFIX) {
                current.as_deref().is_some_and(|c| c != name)
            } else if name.starts_with(TEMP_PREFIX) {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age > STALE_TEMP_AGE)
            } else {
                false
            };
            if stale {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// Writes `bytes` to `dir/name` through a fsynced temporary file in `dir` and a rename.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ClientError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}-{}-{name}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = File::options().write(true).create_new(true).open(&temp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&temp, dir.join(name))
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&temp);
        io_error(&dir.join(name), "cannot write", &e)
    })
}

/// Makes the renames in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), ClientError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, "cannot sync", &e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(content: &str, version: u64) -> ConfigValue {
        ConfigValue {
            key: "acme/shop/prod/app.yaml".into(),
            content: Bytes::from(content.to_owned()),
            version,
            revision: 10 + version,
            hash: format!("sha256:{}", hex::encode(Sha256::digest(content))),
            content_type: "application/yaml".into(),
        }
    }

    fn path() -> ConfigPath {
        ConfigPath::new("acme", "shop", "prod", "app.yaml")
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FallbackStore::new(tmp.path());
        assert_eq!(store.load(&path()).unwrap(), None);
        let v1 = value("a: 1\n", 1);
        store.save(&path(), &v1).unwrap();
        assert_eq!(store.load(&path()).unwrap(), Some(v1.clone()));
        // A new state replaces the old one, leaving one content file.
        let v2 = value("a: 2\n", 2);
        store.save(&path(), &v2).unwrap();
        assert_eq!(store.load(&path()).unwrap(), Some(v2.clone()));
        let dir = store.dir(&path()).unwrap();
        assert_eq!(dir, tmp.path().join("acme/shop/prod/app.yaml"));
        let names = files(&dir);
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&META.to_owned()));
        // Saving the same state again is harmless.
        store.save(&path(), &v2).unwrap();
        assert_eq!(store.load(&path()).unwrap(), Some(v2));
        // Removing forgets it.
        store.remove(&path()).unwrap();
        assert_eq!(store.load(&path()).unwrap(), None);
        store.remove(&path()).unwrap();
    }

    #[test]
    fn a_crash_before_the_commit_leaves_the_previous_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FallbackStore::new(tmp.path());
        let v1 = value("a: 1\n", 1);
        store.save(&path(), &v1).unwrap();
        let dir = store.dir(&path()).unwrap();
        // A crash after the new content's rename but before meta.json's: the new content file
        // exists, and a half-written temporary meta too.
        let v2 = value("a: 2\n", 2);
        let sha = hex::encode(Sha256::digest(&v2.content));
        write_atomic(
            &dir,
            &format!("{CONTENT_PREFIX}{}", &sha[..16]),
            &v2.content,
        )
        .unwrap();
        fs::write(
            dir.join(format!("{TEMP_PREFIX}999-0-{META}")),
            b"{\"format\": 1, \"ke",
        )
        .unwrap();
        assert_eq!(store.load(&path()).unwrap(), Some(v1));
        // The next save commits and cleans up the orphan content (the fresh temp file is left
        // alone: it might be another writer's).
        let v3 = value("a: 3\n", 3);
        store.save(&path(), &v3).unwrap();
        assert_eq!(store.load(&path()).unwrap(), Some(v3));
        assert_eq!(
            files(&dir)
                .iter()
                .filter(|n| n.starts_with(CONTENT_PREFIX))
                .count(),
            1
        );
    }

    #[test]
    fn damaged_copies_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FallbackStore::new(tmp.path());
        store.save(&path(), &value("a: 1\n", 1)).unwrap();
        let dir = store.dir(&path()).unwrap();
        let content = files(&dir)
            .into_iter()
            .find(|n| n.starts_with(CONTENT_PREFIX))
            .unwrap();
        fs::write(dir.join(&content), b"a: 666\n").unwrap();
        let e = store.load(&path()).unwrap_err();
        assert_eq!(e.code(), "fallback_unavailable");
        assert!(e.to_string().contains("checksum"), "{e}");
        fs::write(dir.join(META), b"not json").unwrap();
        assert_eq!(
            store.load(&path()).unwrap_err().code(),
            "fallback_unavailable"
        );
        // Another config's meta is not this one's.
        store.save(&path(), &value("a: 1\n", 1)).unwrap();
        let other = ConfigPath::new("acme", "shop", "prod", "other.yaml");
        fs::create_dir_all(store.dir(&other).unwrap()).unwrap();
        for name in files(&dir) {
            fs::copy(dir.join(&name), store.dir(&other).unwrap().join(&name)).unwrap();
        }
        let e = store.load(&other).unwrap_err();
        assert!(
            e.to_string().contains("not \"acme/shop/prod/other.yaml\""),
            "{e}"
        );
    }

    #[test]
    fn names_cannot_leave_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let store = FallbackStore::new(tmp.path());
        for bad in [
            ConfigPath::new("..", "shop", "prod", "x"),
            ConfigPath::new("acme", "shop", "prod", ".."),
            ConfigPath::new("acme", "a/b", "prod", "x"),
            ConfigPath::new("acme", "shop", "prod", ".hidden"),
        ] {
            assert_eq!(
                store.save(&bad, &value("x", 1)).unwrap_err().code(),
                "invalid_argument"
            );
        }
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        // The target name is an existing directory: the rename fails.
        fs::create_dir(tmp.path().join("taken")).unwrap();
        fs::write(tmp.path().join("taken/x"), b"x").unwrap();
        assert!(write_atomic(tmp.path(), "taken", b"data").is_err());
        assert_eq!(files(tmp.path()), ["taken"]);
    }
}

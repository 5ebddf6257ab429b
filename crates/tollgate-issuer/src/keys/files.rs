//! The key directory: one JSON file per key (PKCS#8, or the HMAC secret,
//! in base64), owner-only, each written whole by rename.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use tollgate_core::Algorithm;

use super::{KeyError, KeyState, SigningKey};

/// One key as stored.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    kid: String,
    alg: String,
    state: KeyState,
    created: i64,
    #[serde(default)]
    retire_at: Option<i64>,
    /// Base64 PKCS#8 DER (HMAC: the secret).
    private: String,
}

/// This process's effective user, as the kernel shows it (`/proc/self`
/// belongs to it); `None` where there is no such file.
#[cfg(unix)]
fn current_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Refuses what an SSH client refuses for a key: a symbolic link, an entry
/// owned by another user, and (for files) one that others may read or
/// write. `dir` only refuses links and other owners: its mode is set by
/// [`open_dir`].
pub(super) fn check_private(path: &Path, is_dir: bool) -> Result<(), KeyError> {
    let refuse = |reason: String| KeyError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::symlink_metadata(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(refuse("is a symbolic link; refusing to follow it".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Some(uid) = current_uid()
            && meta.uid() != uid
        {
            return Err(refuse(format!(
                "owned by user {}, not by this process's user {uid}",
                meta.uid()
            )));
        }
        if !is_dir && meta.mode() & 0o077 != 0 {
            return Err(refuse(format!(
                "mode {:o} lets others read or write it; make it 0600",
                meta.mode() & 0o777
            )));
        }
    }
    let _ = is_dir;
    Ok(())
}

/// The key directory and the data directory around it must be this
/// user's own, not links.
pub(super) fn check_dirs(dir: &Path) -> Result<(), KeyError> {
    check_private(dir, true)?;
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(data) => check_private(data, true),
        None => Ok(()),
    }
}

/// Creates the key directory (see [`create_private_dir`]) and makes it
/// owner-only even if it existed: it is Tollgate's own.
pub(super) fn open_dir(dir: &Path) -> Result<(), KeyError> {
    create_private_dir(dir)?;
    check_dirs(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| KeyError::Io {
                path: dir.to_owned(),
                source,
            },
        )?;
    }
    Ok(())
}

/// Writes one file per key in `keys` and removes the files of keys no
/// longer in it.
pub(super) fn write_key_files(dir: &Path, keys: &[SigningKey]) -> Result<(), KeyError> {
    let mut wanted = Vec::new();
    for k in keys {
        let file = KeyFile {
            kid: k.kid.clone(),
            alg: k.alg.as_str().to_owned(),
            state: k.state,
            created: k.created,
            retire_at: k.retire_at,
            private: STANDARD.encode(&k.secret),
        };
        let path = dir.join(format!("{}.json", k.kid));
        let text = serde_json::to_string_pretty(&file).map_err(|e| KeyError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_private(&path, text.as_bytes())?;
        wanted.push(path);
    }
    // Files of dropped keys go.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") && !wanted.contains(&p) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    Ok(())
}

/// Every key file (`*.json`) in `dir`, in name order.
pub(super) fn read_key_files(dir: &Path) -> Result<Vec<SigningKey>, KeyError> {
    let mut keys = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| KeyError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let invalid = |reason: String| KeyError::Invalid {
            path: path.clone(),
            reason,
        };
        check_private(&path, false)?;
        let text = std::fs::read_to_string(&path).map_err(|source| KeyError::Io {
            path: path.clone(),
            source,
        })?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let alg: Algorithm = file
            .alg
            .parse()
            .map_err(|_| invalid("unknown alg".into()))?;
        let secret = STANDARD
            .decode(file.private.as_bytes())
            .map_err(|_| invalid("private key is not base64".into()))?;
        keys.push(
            SigningKey::from_parts(
                file.kid,
                alg,
                file.state,
                file.created,
                file.retire_at,
                secret,
            )
            .map_err(invalid)?,
        );
    }
    Ok(keys)
}

/// Creates `dir` and any missing parents, each created one readable by its
/// owner only. Directories that already exist keep their mode: the parent
/// of a configured file may be `/tmp` or a home directory.
pub fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io)
}

/// Writes `bytes` to `path` atomically, readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    // A temporary file left by a crash (or a link planted in its place) is
    // removed, never written through: the new one is created exclusively
    // (`O_CREAT | O_EXCL`, which also refuses to follow a link).
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io)?;
        std::io::Write::write_all(&mut f, bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::keys::KeyRing;

    fn temp(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("tollgate-keys-{name}-{nanos:x}"));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn existing_directories_keep_their_mode() {
        use std::os::unix::fs::PermissionsExt;
        let base = temp("mode");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        // An existing directory (the parent of `store.path = "/tmp/x.db"`).
        create_private_dir(&base).unwrap();
        assert_eq!(mode(&base), 0o755);
        // Created ones are owner-only, parents included; the existing one
        // above them is untouched.
        let deep = base.join("a/b");
        create_private_dir(&deep).unwrap();
        assert_eq!(mode(&base), 0o755);
        assert_eq!(mode(&base.join("a")) & 0o077, 0);
        assert_eq!(mode(&deep) & 0o077, 0);
        // The key directory is Tollgate's own: made owner-only even when it
        // existed with a wider mode.
        let keys = base.join("keys");
        std::fs::create_dir(&keys).unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).unwrap();
        KeyRing::open(&keys, Algorithm::ES256).unwrap();
        assert_eq!(mode(&keys), 0o700);
        assert_eq!(mode(&base), 0o755);
        for e in std::fs::read_dir(&keys).unwrap() {
            assert_eq!(mode(&e.unwrap().path()), 0o600);
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn load_reads_and_never_writes() {
        let dir = temp("load").join("keys");
        let ring = KeyRing::open(&dir, Algorithm::ES256).unwrap();
        let files = |d: &Path| {
            let mut v: Vec<_> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let before = files(&dir);
        assert_eq!(before.len(), 2, "active and next");
        let loaded = KeyRing::load(&dir, Algorithm::ES256).unwrap();
        let kids = |r: &KeyRing| {
            let mut v: Vec<(String, KeyState)> = r
                .keys()
                .iter()
                .map(|k| (k.kid().to_owned(), k.state()))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        assert_eq!(kids(&loaded), kids(&ring));
        // A rotation read half-way: the active key's file is gone.
        let active = ring.active().unwrap().kid().to_owned();
        std::fs::remove_file(dir.join(format!("{active}.json"))).unwrap();
        let err = KeyRing::load(&dir, Algorithm::ES256).unwrap_err();
        assert!(err.to_string().contains("no active key"), "{err}");
        assert_eq!(files(&dir).len(), 1, "load neither promoted nor generated");
        assert!(KeyRing::load(&dir.join("missing"), Algorithm::ES256).is_err());
        assert!(!dir.join("missing").exists(), "load creates no directory");
    }

    #[test]
    fn a_ring_with_two_active_keys_is_refused() {
        let dir = temp("two-active").join("keys");
        let ring = KeyRing::open(&dir, Algorithm::ES256).unwrap();
        // A rotation read half-way: the next key already active, the old
        // one not yet retiring.
        let next = ring
            .keys()
            .iter()
            .find(|k| k.state() == KeyState::Next)
            .unwrap();
        let path = dir.join(format!("{}.json", next.kid()));
        let mut file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        file["state"] = serde_json::to_value(KeyState::Active).unwrap();
        write_private(&path, file.to_string().as_bytes()).unwrap();
        let err = KeyRing::load(&dir, Algorithm::ES256).unwrap_err();
        assert!(err.to_string().contains("2 active keys"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_refused_when_linked_or_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp("private").join("keys");
        let ring = KeyRing::open(&dir, Algorithm::ES256).unwrap();
        let file = dir.join(format!("{}.json", ring.active().unwrap().kid()));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyRing::load(&dir, Algorithm::ES256).unwrap_err();
        assert!(err.to_string().contains("mode 644"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(KeyRing::load(&dir, Algorithm::ES256).is_ok());
        // A key file replaced by a link to a file elsewhere.
        let elsewhere = dir.parent().unwrap().join("planted.json");
        std::fs::rename(&file, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
        let err = KeyRing::load(&dir, Algorithm::ES256).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn writing_never_follows_a_link_planted_at_the_temporary_name() {
        let dir = temp("nofollow");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"untouched").unwrap();
        let target = dir.join("clients.json");
        std::os::unix::fs::symlink(&victim, target.with_extension("tmp")).unwrap();
        write_private(&target, b"{}").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
        assert_eq!(std::fs::read(&target).unwrap(), b"{}");
    }

    #[cfg(unix)]
    #[test]
    fn a_data_directory_owned_by_another_user_is_refused() {
        use std::os::unix::fs::MetadataExt;
        let data = temp("owner");
        let keys = data.join("keys");
        KeyRing::open(&keys, Algorithm::ES256).unwrap();
        let me = current_uid().unwrap();
        // Giving the directory away needs root; otherwise check the rule on
        // a directory that is someone else's already.
        let foreign = if me == 0 {
            std::os::unix::fs::chown(&data, Some(65534), None).unwrap();
            data.clone()
        } else {
            let root = Path::new("/");
            assert_ne!(std::fs::metadata(root).unwrap().uid(), me);
            root.to_owned()
        };
        let err = check_private(&foreign, true).unwrap_err();
        assert!(err.to_string().contains("owned by user"), "{err}");
        if me == 0 {
            let err = KeyRing::load(&keys, Algorithm::ES256).unwrap_err();
            assert!(err.to_string().contains("owned by user 65534"), "{err}");
            assert!(KeyRing::open(&keys, Algorithm::ES256).is_err());
        }
    }
}

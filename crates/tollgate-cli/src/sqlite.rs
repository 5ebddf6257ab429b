//! The durable store of `tollgate serve`.

use std::path::Path;
use std::sync::Arc;

use tollgate_core::policy::Store;

use crate::Failure;

pub(crate) fn open(path: &Path) -> Result<Arc<dyn Store>, Failure> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tollgate_issuer::create_private_dir(dir).map_err(crate::runtime)?;
    }
    owner_only(path)?;
    let store = tollgate_sqlite::SqliteStore::open(path)
        .map_err(|e| Failure::Runtime(format!("{}: {e}", path.display())))?;
    Ok(Arc::new(store))
}

/// The database holds spent credits and revocations: readable by its owner
/// only, like the keys and clients beside it. Created so before SQLite
/// opens it (SQLite gives its `-wal` and `-shm` files the same mode), and
/// narrowed if an older file is wider.
fn owner_only(path: &Path) -> Result<(), Failure> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |e: std::io::Error| Failure::Runtime(format!("{}: {e}", path.display()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let meta = std::fs::symlink_metadata(path).map_err(io)?;
                if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                        .map_err(io)?;
                }
            }
            Err(e) => return Err(io(e)),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

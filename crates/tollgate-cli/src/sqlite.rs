//! The durable store of `tollgate serve`.

use std::path::Path;
use std::sync::Arc;

use tollgate_core::policy::Store;

use crate::Failure;

pub(crate) fn open(path: &Path) -> Result<Arc<dyn Store>, Failure> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tollgate_issuer::create_private_dir(dir).map_err(crate::runtime)?;
    }
    let store = tollgate_sqlite::SqliteStore::open(path)
        .map_err(|e| Failure::Runtime(format!("{}: {e}", path.display())))?;
    Ok(Arc::new(store))
}

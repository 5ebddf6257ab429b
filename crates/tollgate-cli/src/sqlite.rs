//! The durable store of `tollgate serve`.

use std::path::Path;
use std::sync::Arc;

use tollgate_core::policy::{MemoryStore, Store};

use crate::Failure;

pub(crate) fn open(path: &Path) -> Result<Arc<dyn Store>, Failure> {
    tracing::warn!(path = %path.display(), "durable store pending; using memory");
    Ok(Arc::new(MemoryStore::new()))
}

//! The store conformance suite against [`MemoryStore`].

use std::sync::Arc;

use tollgate::core::policy::MemoryStore;
use tollgate_conformance::Harness;

async fn memory() -> Harness {
    Harness::new(Arc::new(MemoryStore::new()))
}

tollgate_conformance::store_conformance!(memory);

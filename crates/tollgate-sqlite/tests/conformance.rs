//! The store conformance suite against a `SqliteStore`, one fresh database
//! per case.

mod common;

use std::sync::Arc;

use tollgate_conformance::Harness;
use tollgate_sqlite::SqliteStore;

/// Drops the store (joining its writer) before removing its directory.
struct Guard {
    _dir: common::TempDir,
}

async fn sqlite() -> Harness {
    let dir = common::TempDir::new("tollgate-sqlite-conformance");
    let store = SqliteStore::open(dir.db()).expect("open");
    Harness {
        store: Arc::new(store),
        guard: Box::new(Guard { _dir: dir }),
        purges: true,
    }
}

tollgate_conformance::store_conformance!(sqlite);

//! The store conformance suite against a real `redis-server`, one per case.

use std::sync::Arc;

use tollgate_conformance::Harness;
use tollgate_conformance::redis_server::RedisServer;
use tollgate_redis::RedisStore;

async fn redis() -> Harness {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.expect("connect");
    Harness {
        store: Arc::new(store),
        guard: Box::new(server),
        purges: false,
    }
}

tollgate_conformance::store_conformance!(redis);

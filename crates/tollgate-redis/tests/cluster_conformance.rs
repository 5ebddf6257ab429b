//! The store conformance suite, unchanged, against a real Redis Cluster
//! (three masters, one replica each), one per case.

use std::sync::Arc;

use tollgate_conformance::Harness;
use tollgate_conformance::redis_cluster::RedisCluster;
use tollgate_redis::RedisStore;

async fn cluster() -> Harness {
    let cluster = RedisCluster::start(3, 1);
    let store = RedisStore::cluster_builder(cluster.urls())
        .connect()
        .await
        .expect("connect");
    Harness {
        store: Arc::new(store),
        guard: Box::new(cluster),
        purges: false,
    }
}

tollgate_conformance::store_conformance!(cluster);

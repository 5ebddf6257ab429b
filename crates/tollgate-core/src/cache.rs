//! The verified-token cache: bounded, sharded, keyed by the whole token.
//!
//! A hit is one hash of 32 bytes, one uncontended read lock, one comparison
//! of the token, and one `Arc` clone. Entries live at most `ttl`; when a
//! shard is full, expired entries are swept (at most once a second) and
//! otherwise an arbitrary entry gives way: a miss only costs a signature
//! check, so a simple policy is enough.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use std::sync::{Arc, RwLock};
use std::time::Duration;

const SHARDS: usize = 16;

/// Hashes a token by its length and its last 32 bytes (the end of the
/// signature, random per token), mixed with a per-process random seed.
/// Equality still compares the whole token, and only verified tokens are
/// ever inserted, so a chosen collision buys an attacker nothing; a keyed
/// multiply-mix over four words costs a fraction of SipHash.
#[derive(Clone)]
pub(crate) struct TokenHashBuilder(u64);

impl Default for TokenHashBuilder {
    fn default() -> Self {
        TokenHashBuilder(std::hash::RandomState::new().hash_one(0x746f_6c6c_6761_7465u64))
    }
}

impl BuildHasher for TokenHashBuilder {
    type Hasher = TokenHasher;
    fn build_hasher(&self) -> TokenHasher {
        TokenHasher(self.0)
    }
}

pub(crate) struct TokenHasher(u64);

const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for TokenHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0 ^ (bytes.len() as u64).wrapping_mul(MIX);
        for chunk in bytes[bytes.len().saturating_sub(32)..].chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            h = (h ^ u64::from_le_bytes(word))
                .wrapping_mul(MIX)
                .rotate_left(29);
        }
        self.0 = h;
    }
    fn finish(&self) -> u64 {
        // murmur3's finaliser: every input bit reaches every output bit.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

struct Slot<V> {
    value: V,
    until_ms: i64,
}

struct Shard<V> {
    map: HashMap<Arc<str>, Slot<V>, TokenHashBuilder>,
    last_sweep_ms: i64,
}

pub(crate) struct TokenCache<V> {
    shards: Box<[RwLock<Shard<V>>]>,
    per_shard: usize,
    ttl_ms: i64,
}

impl<V> TokenCache<V> {
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Self {
        let hasher = TokenHashBuilder::default();
        let per_shard = (capacity as usize).div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                RwLock::new(Shard {
                    map: HashMap::with_hasher(hasher.clone()),
                    last_sweep_ms: 0,
                })
            })
            .collect();
        TokenCache {
            shards,
            per_shard,
            ttl_ms: ttl.as_millis().min(i64::MAX as u128) as i64,
        }
    }

    /// The shard: picked by the token's last two bytes (signature bytes,
    /// uniform for real tokens) instead of a second hash. Only verified
    /// tokens are inserted, so nobody can crowd one shard without valid
    /// tokens, and a crowded shard only costs re-verification.
    fn shard(&self, token: &str) -> &RwLock<Shard<V>> {
        let b = token.as_bytes();
        let tail = match b {
            [.., x, y] => usize::from(*x) * 31 + usize::from(*y),
            [y] => usize::from(*y),
            [] => 0,
        };
        &self.shards[tail % SHARDS]
    }

    /// Runs `f` on a live entry for `token`.
    pub(crate) fn with<R>(&self, token: &str, now_ms: i64, f: impl FnOnce(&V) -> R) -> Option<R> {
        let shard = self.shard(token).read().unwrap_or_else(|p| p.into_inner());
        let slot = shard.map.get(token)?;
        (slot.until_ms > now_ms).then(|| f(&slot.value))
    }

    pub(crate) fn insert(&self, token: &str, value: V, now_ms: i64) {
        let mut shard = self.shard(token).write().unwrap_or_else(|p| p.into_inner());
        if shard.map.len() >= self.per_shard && !shard.map.contains_key(token) {
            if now_ms - shard.last_sweep_ms >= 1000 {
                shard.last_sweep_ms = now_ms;
                shard.map.retain(|_, s| s.until_ms > now_ms);
            }
            if shard.map.len() >= self.per_shard {
                let victim = shard.map.keys().next().cloned();
                if let Some(victim) = victim {
                    shard.map.remove(&victim);
                }
            }
        }
        let until_ms = now_ms.saturating_add(self.ttl_ms);
        shard.map.insert(Arc::from(token), Slot { value, until_ms });
    }

    pub(crate) fn remove(&self, token: &str) {
        let mut shard = self.shard(token).write().unwrap_or_else(|p| p.into_inner());
        shard.map.remove(token);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).map.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_time_limited() {
        let cache = TokenCache::new(64, Duration::from_secs(10));
        for i in 0..1000 {
            cache.insert(&format!("token-{i}"), i, 0);
        }
        assert!(cache.len() <= 64, "{}", cache.len());
        cache.insert("t", 7, 0);
        assert_eq!(cache.with("t", 9_999, |v| *v), Some(7));
        assert_eq!(cache.with("t", 10_000, |v| *v), None, "past its ttl");
        assert_eq!(cache.with("u", 0, |v| *v), None);
        cache.remove("t");
        assert_eq!(cache.with("t", 0, |v| *v), None);
        // A full shard sweeps expired entries before evicting live ones.
        let small = TokenCache::new(16, Duration::from_secs(1));
        for i in 0..16 {
            small.insert(&format!("old-{i}"), i, 0);
        }
        small.insert("new", 99, 5_000);
        assert_eq!(small.with("new", 5_000, |v| *v), Some(99));
    }
}

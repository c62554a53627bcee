//! Tokens already verified on this process, so that a repeat presentation needs neither a
//! database read nor scrypt.
//!
//! Entries are found by token id and unlocked by a keyed SHA-256 digest of the *whole* token (the
//! key is random per process), compared in constant time: knowing an id, or an id and a wrong
//! secret, never hits. An entry carries what a decision needs (scopes, expiry, revocation time) and
//! when the database last confirmed it; an entry older than the staleness bound is re-read (one
//! indexed lookup, no scrypt). The map is bounded: when full, an arbitrary entry makes room.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use token_core::{Token, TokenId};
use zeroize::Zeroizing;

use crate::model::Principal;

/// What a decision about a proven token needs, shared (not copied) between the cache and the
/// requests that hit it.
#[derive(Debug)]
pub(crate) struct Cached {
    /// Who the token speaks for.
    pub(crate) principal: Principal,
    /// When it is (or will be) revoked.
    pub(crate) revoked_at: Option<OffsetDateTime>,
    /// The stored hash the secret was proven against; a different one means re-verify.
    pub(crate) phc: String,
}

#[derive(Debug)]
struct Entry {
    digest: [u8; 32],
    cached: Arc<Cached>,
    /// When the database last confirmed this entry.
    checked_at: OffsetDateTime,
}

pub(crate) struct Cache {
    key: Zeroizing<[u8; 32]>,
    capacity: usize,
    map: RwLock<HashMap<TokenId, Entry>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// The result of a lookup.
pub(crate) enum Lookup {
    /// The token is cached and the entry is fresh enough to decide on.
    Fresh(Arc<Cached>),
    /// The token is cached (secret proven) but the database must confirm its state.
    Stale(Arc<Cached>),
    /// Not cached (or cached under another secret).
    Miss,
}

impl Cache {
    pub(crate) fn new(capacity: usize, key: [u8; 32]) -> Self {
        Cache {
            key: Zeroizing::new(key),
            capacity,
            map: RwLock::new(HashMap::with_capacity(capacity.min(1 << 16))),
        }
    }

    fn digest(&self, token: &Token) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(*self.key);
        h.update(token.expose_secret().as_bytes());
        h.finalize().into()
    }

    /// Looks `token` up; an entry confirmed more than `max_staleness` before `now` is stale.
    pub(crate) fn get(
        &self,
        token: &Token,
        now: OffsetDateTime,
        max_staleness: time::Duration,
    ) -> Lookup {
        if self.capacity == 0 {
            return Lookup::Miss;
        }
        let digest = self.digest(token);
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        match map.get(&token.id()) {
            Some(entry) if bool::from(entry.digest.ct_eq(&digest)) => {
                if now - entry.checked_at < max_staleness {
                    Lookup::Fresh(entry.cached.clone())
                } else {
                    Lookup::Stale(entry.cached.clone())
                }
            }
            _ => Lookup::Miss,
        }
    }

    /// Remembers `token` as verified, as of `checked_at`.
    pub(crate) fn insert(&self, token: &Token, cached: Arc<Cached>, checked_at: OffsetDateTime) {
        if self.capacity == 0 {
            return;
        }
        let entry = Entry {
            digest: self.digest(token),
            cached,
            checked_at,
        };
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity
            && !map.contains_key(&token.id())
            && let Some(victim) = map.keys().next().copied()
        {
            map.remove(&victim);
        }
        map.insert(token.id(), entry);
    }

    /// Forgets a token (revoked or rotated).
    pub(crate) fn evict(&self, id: TokenId) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Forgets everything (the revocation listener lost its connection and may have missed some).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn clear(&self) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use time::Duration;
    use time::macros::datetime;
    use token_core::rand;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-11-27 12:00 UTC);

    fn cached(token: &Token) -> Arc<Cached> {
        Arc::new(Cached {
            principal: principal(token),
            revoked_at: None,
            phc: String::new(),
        })
    }

    fn principal(token: &Token) -> Principal {
        Principal {
            token_id: token.id(),
            workspace_id: "ws".into(),
            owner_id: "mem".into(),
            scopes: token_core::Scope::Read.into(),
            expires_at: None,
        }
    }

    fn tokens(n: usize) -> Vec<Token> {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        (0..n).map(|_| Token::generate(&mut rng).unwrap()).collect()
    }

    #[test]
    fn hits_only_with_the_whole_token_and_goes_stale() {
        let cache = Cache::new(10, [7; 32]);
        let [a, b] = <[Token; 2]>::try_from(tokens(2)).ok().unwrap();
        cache.insert(&a, cached(&a), NOW);
        assert!(matches!(
            cache.get(&a, NOW, Duration::SECOND),
            Lookup::Fresh(_)
        ));
        assert!(matches!(
            cache.get(&a, NOW + Duration::SECOND, Duration::SECOND),
            Lookup::Stale(_)
        ));
        assert!(matches!(cache.get(&b, NOW, Duration::SECOND), Lookup::Miss));
        // Same id, other secret: a token with a's id but b's secret (checksum recomputed).
        let body = format!(
            "{}{}",
            &a.expose_secret()[4..20],
            &b.expose_secret()[20..52]
        );
        let forged: Token = token_core::checksummed(&body).parse().unwrap();
        assert_eq!(forged.id(), a.id());
        assert!(matches!(
            cache.get(&forged, NOW, Duration::SECOND),
            Lookup::Miss
        ));
        cache.evict(a.id());
        assert!(matches!(cache.get(&a, NOW, Duration::SECOND), Lookup::Miss));
    }

    #[test]
    fn stays_within_capacity() {
        let cache = Cache::new(100, [1; 32]);
        for t in tokens(1_000) {
            cache.insert(&t, cached(&t), NOW);
        }
        assert_eq!(cache.len(), 100);
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn zero_staleness_makes_every_hit_stale() {
        let cache = Cache::new(10, [1; 32]);
        let t = tokens(1).pop().unwrap();
        cache.insert(&t, cached(&t), NOW);
        assert!(matches!(
            cache.get(&t, NOW, Duration::ZERO),
            Lookup::Stale(_)
        ));
    }
}

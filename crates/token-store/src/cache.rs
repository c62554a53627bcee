//! Tokens already verified on this process, so that a repeat presentation needs neither a
//! database read nor scrypt.
//!
//! Entries are found by token id and unlocked by a keyed SHA-256 digest of the *whole* token (the
//! key is random per process), compared in constant time: knowing an id, or an id and a wrong
//! secret, never hits. An entry carries what a decision needs (scopes, expiry, revocation time) and
//! when the database last confirmed it, on the store clock's monotonic reading (so a wall-clock
//! step cannot extend trust); an entry older than the staleness bound is re-read (one
//! indexed lookup, no scrypt) — unless a revocation sync (see `sync.rs`) that started after the
//! entry was cached is itself younger than the bound. The map is bounded: when full, an arbitrary
//! entry makes room.
//!
//! A verification that reads the database takes a [`ReadMark`] first, and its answer is cached
//! only if the token was not evicted (revoked on this process, named by a revocation sync or a
//! notification) after the mark: otherwise an answer read just before a revocation, inserted just
//! after the sync that reported it, would be trusted as fresh for ever. The entry's check time is
//! the mark's, not the insert's.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use token_core::{Token, TokenId};
use zeroize::Zeroizing;

use crate::model::{Principal, Standing};

/// What a decision about a proven token needs, shared (not copied) between the cache and the
/// requests that hit it.
pub(crate) struct Cached {
    /// Who the token speaks for (inline: a hit reads one allocation, not two).
    pub(crate) principal: Principal,
    /// Whether it is revoked, or will be when its rotation grace ends.
    pub(crate) standing: Standing,
    /// Whether it was rotated (a successor exists): presenting it after `revoked_at` is reuse.
    pub(crate) rotated: bool,
    /// The stored hash the secret was proven against; a different one means re-verify.
    pub(crate) phc: String,
    /// The networks it may be used from; empty: anywhere.
    pub(crate) allowed: token_core::Networks,
    /// For a rotation's new token while its hand-over is pending: the token it replaces.
    pub(crate) handover_of: Option<TokenId>,
    /// A canary: it authorizes nothing.
    pub(crate) canary: bool,
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("principal", &self.principal)
            .field("standing", &self.standing)
            .field("rotated", &self.rotated)
            .field("allowed", &self.allowed)
            .field("handover_of", &self.handover_of)
            .field("canary", &self.canary)
            .field("phc", &"[REDACTED]")
            .finish()
    }
}

#[derive(Debug)]
struct Entry {
    digest: [u8; 32],
    cached: Arc<Cached>,
    /// When the database last confirmed this entry (monotonic).
    checked_at: Duration,
    /// The generation of the first revocation sync that started after this entry was in the map;
    /// syncs from that one on would have evicted it.
    inserted_gen: u64,
}

struct Entries {
    map: HashMap<TokenId, Entry>,
    /// How many evictions there have been (the clock of read marks).
    evictions: u64,
    /// Ids evicted while reads were in flight, with their eviction number.
    evicted: HashMap<TokenId, u64>,
    /// The eviction number of the last `clear`.
    cleared: u64,
    /// Reads in flight, by the eviction number when they started.
    reading: BTreeMap<u64, usize>,
    /// The last completed revocation sync: its generation and when it started (monotonic). Every
    /// revocation committed before that start has been evicted from entries that were in the map
    /// then.
    synced: Option<(u64, Duration)>,
}

pub(crate) struct Cache {
    key: Zeroizing<[u8; 32]>,
    capacity: usize,
    next_gen: AtomicU64,
    entries: RwLock<Entries>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Entries {
    /// Removes `id`, and remembers the eviction for the reads in flight.
    fn remove(&mut self, id: TokenId) {
        self.evictions += 1;
        if !self.reading.is_empty() {
            self.evicted.insert(id, self.evictions);
        }
        self.map.remove(&id);
    }
}

/// A database read in flight whose answer may be cached: see [`Cache::begin_read`].
pub(crate) struct ReadMark<'a> {
    cache: &'a Cache,
    epoch: u64,
    at: Duration,
}

impl Drop for ReadMark<'_> {
    fn drop(&mut self) {
        self.cache.end_read(self.epoch);
    }
}

/// Who a verified token speaks for, shared with the cache entry it was verified from: cloning it
/// copies a reference count, not the principal's strings. Dereferences to [`Principal`].
#[derive(Clone)]
pub struct SharedPrincipal(Shared);

#[derive(Clone)]
enum Shared {
    Cached(Arc<Cached>),
    Own(Arc<Principal>),
}

impl SharedPrincipal {
    pub(crate) fn of(cached: &Arc<Cached>) -> Self {
        SharedPrincipal(Shared::Cached(Arc::clone(cached)))
    }
}

impl From<Principal> for SharedPrincipal {
    fn from(principal: Principal) -> Self {
        SharedPrincipal(Shared::Own(Arc::new(principal)))
    }
}

impl std::ops::Deref for SharedPrincipal {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        match &self.0 {
            Shared::Cached(cached) => &cached.principal,
            Shared::Own(principal) => principal,
        }
    }
}

impl std::fmt::Debug for SharedPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Principal::fmt(self, f)
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
            next_gen: AtomicU64::new(0),
            entries: RwLock::new(Entries {
                // Grown as tokens arrive, not sized for the capacity up front: a table laid out
                // for 100,000 entries spreads a few thousand hot ones over megabytes, and every
                // lookup misses the processor's caches.
                map: HashMap::new(),
                evictions: 0,
                evicted: HashMap::new(),
                cleared: 0,
                reading: BTreeMap::new(),
                synced: None,
            }),
        }
    }

    fn digest(&self, token: &Token) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(*self.key);
        h.update(token.expose_secret().as_bytes());
        h.finalize().into()
    }

    /// Looks `token` up. An entry is fresh while its own database check, or a revocation sync that
    /// covers it, is less than `max_staleness` old; otherwise it is stale.
    pub(crate) fn get(&self, token: &Token, now: Duration, max_staleness: Duration) -> Lookup {
        if self.capacity == 0 {
            return Lookup::Miss;
        }
        let digest = self.digest(token);
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        match entries.map.get(&token.id()) {
            Some(entry) if bool::from(entry.digest.ct_eq(&digest)) => {
                let synced = entries.synced.is_some_and(|(generation, started)| {
                    generation >= entry.inserted_gen && now.saturating_sub(started) < max_staleness
                });
                if synced || now.saturating_sub(entry.checked_at) < max_staleness {
                    Lookup::Fresh(entry.cached.clone())
                } else {
                    Lookup::Stale(entry.cached.clone())
                }
            }
            _ => Lookup::Miss,
        }
    }

    /// Marks the start of a database read whose answer may be cached; `now` is the monotonic
    /// time, which becomes the entry's check time.
    pub(crate) fn begin_read(&self, now: Duration) -> ReadMark<'_> {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let epoch = entries.evictions;
        *entries.reading.entry(epoch).or_default() += 1;
        ReadMark {
            cache: self,
            epoch,
            at: now,
        }
    }

    fn end_read(&self, epoch: u64) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = entries.reading.get_mut(&epoch) {
            *count -= 1;
            if *count == 0 {
                entries.reading.remove(&epoch);
            }
        }
        // Evictions no read in flight started before are of no more use.
        match entries.reading.keys().next().copied() {
            Some(oldest) => entries.evicted.retain(|_, at| *at > oldest),
            None => entries.evicted.clear(),
        }
    }

    /// Remembers `token` as verified by the read `mark` started — unless it was evicted since.
    pub(crate) fn insert(&self, token: &Token, cached: Arc<Cached>, mark: &ReadMark<'_>) {
        if self.capacity == 0 {
            return;
        }
        let digest = self.digest(token);
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let since_mark = |at: u64| at > mark.epoch;
        if since_mark(entries.cleared)
            || entries
                .evicted
                .get(&token.id())
                .is_some_and(|at| since_mark(*at))
        {
            return; // revoked (or possibly revoked) after the read: do not trust what it saw
        }
        let checked_at = mark.at;
        let map = &mut entries.map;
        if map.len() >= self.capacity
            && !map.contains_key(&token.id())
            && let Some(victim) = map.keys().next().copied()
        {
            map.remove(&victim);
        }
        // Read under the write lock: a sync that takes a later generation evicts after this.
        let inserted_gen = self.next_gen.load(Ordering::SeqCst);
        map.insert(
            token.id(),
            Entry {
                digest,
                cached,
                checked_at,
                inserted_gen,
            },
        );
    }

    /// Starts a revocation sync: returns its generation. Call before reading the changes.
    pub(crate) fn begin_sync(&self) -> u64 {
        self.next_gen.fetch_add(1, Ordering::SeqCst)
    }

    /// Evicts `ids` and records the sync `generation`, started at `started`, as complete.
    pub(crate) fn finish_sync(&self, generation: u64, started: Duration, ids: &[TokenId]) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            entries.remove(*id);
        }
        if entries.synced.is_none_or(|(done, _)| done < generation) {
            entries.synced = Some((generation, started));
        }
    }

    /// Forgets a token (revoked or rotated).
    pub(crate) fn evict(&self, id: TokenId) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Forgets everything (the revocation listener lost its connection and may have missed some).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.evictions += 1;
        entries.cleared = entries.evictions;
        entries.map.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use token_core::rand;

    use super::*;

    const NOW: Duration = Duration::from_secs(1_000);
    const SECOND: Duration = Duration::from_secs(1);

    fn cached(token: &Token) -> Arc<Cached> {
        Arc::new(Cached {
            principal: principal(token),
            standing: Standing::Live,
            rotated: false,
            phc: "$scrypt$secret-looking".into(),
            allowed: token_core::Networks::default(),
            handover_of: None,
            canary: false,
        })
    }

    fn principal(token: &Token) -> Principal {
        Principal {
            token_id: token.id(),
            workspace_id: "ws".into(),
            owner_id: "mem".into(),
            scopes: token_core::Scope::Read.into(),
            expires_at: None,
            oauth_client_id: None,
            rotation_due_at: None,
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
        cache.insert(&a, cached(&a), &cache.begin_read(NOW));
        assert!(matches!(cache.get(&a, NOW, SECOND), Lookup::Fresh(_)));
        assert!(matches!(
            cache.get(&a, NOW + SECOND, SECOND),
            Lookup::Stale(_)
        ));
        assert!(matches!(cache.get(&b, NOW, SECOND), Lookup::Miss));
        // Same id, other secret: a token with a's id but b's secret (checksum recomputed).
        let body = format!(
            "{}{}",
            &a.expose_secret()[4..20],
            &b.expose_secret()[20..52]
        );
        let forged: Token = token_core::checksummed(&body).parse().unwrap();
        assert_eq!(forged.id(), a.id());
        assert!(matches!(cache.get(&forged, NOW, SECOND), Lookup::Miss));
        cache.evict(a.id());
        assert!(matches!(cache.get(&a, NOW, SECOND), Lookup::Miss));
    }

    #[test]
    fn stays_within_capacity() {
        let cache = Cache::new(100, [1; 32]);
        for t in tokens(1_000) {
            cache.insert(&t, cached(&t), &cache.begin_read(NOW));
        }
        assert_eq!(cache.len(), 100);
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_recent_sync_keeps_old_entries_fresh_but_not_ones_cached_during_it() {
        let cache = Cache::new(10, [2; 32]);
        let ts = tokens(3);
        cache.insert(&ts[0], cached(&ts[0]), &cache.begin_read(NOW));
        let generation = cache.begin_sync();
        cache.insert(&ts[1], cached(&ts[1]), &cache.begin_read(NOW)); // cached while the sync was reading
        cache.finish_sync(generation, NOW + Duration::from_secs(5), &[ts[2].id()]);
        let later = NOW + Duration::from_millis(5_500);
        assert!(
            matches!(cache.get(&ts[0], later, SECOND), Lookup::Fresh(_)),
            "covered by the sync"
        );
        assert!(
            matches!(cache.get(&ts[1], later, SECOND), Lookup::Stale(_)),
            "not covered"
        );
        let much_later = NOW + Duration::from_secs(7);
        assert!(
            matches!(cache.get(&ts[0], much_later, SECOND), Lookup::Stale(_)),
            "the sync is old"
        );
        // A sync evicts what it names.
        cache.insert(&ts[2], cached(&ts[2]), &cache.begin_read(NOW));
        let generation = cache.begin_sync();
        cache.finish_sync(generation, NOW, &[ts[2].id()]);
        assert!(matches!(cache.get(&ts[2], NOW, SECOND), Lookup::Miss));
    }

    #[test]
    fn an_answer_read_before_an_eviction_is_not_cached() {
        let cache = Cache::new(10, [3; 32]);
        let ts = tokens(3);
        // Read, then the token is revoked and a sync reports it, then the read's answer arrives.
        let mark = cache.begin_read(NOW);
        let generation = cache.begin_sync();
        cache.finish_sync(generation, NOW, &[ts[0].id()]);
        cache.insert(&ts[0], cached(&ts[0]), &mark);
        drop(mark);
        assert!(
            matches!(cache.get(&ts[0], NOW, SECOND), Lookup::Miss),
            "not cached"
        );
        // The same with a local eviction and with a flush; another token is unaffected.
        let mark = cache.begin_read(NOW);
        cache.evict(ts[1].id());
        cache.insert(&ts[1], cached(&ts[1]), &mark);
        cache.insert(&ts[2], cached(&ts[2]), &mark);
        drop(mark);
        assert!(matches!(cache.get(&ts[1], NOW, SECOND), Lookup::Miss));
        assert!(matches!(cache.get(&ts[2], NOW, SECOND), Lookup::Fresh(_)));
        let mark = cache.begin_read(NOW);
        cache.clear();
        cache.insert(&ts[2], cached(&ts[2]), &mark);
        drop(mark);
        assert!(matches!(cache.get(&ts[2], NOW, SECOND), Lookup::Miss));
        // With no read in flight, evictions are forgotten (the record stays bounded).
        assert!(cache.entries.read().unwrap().evicted.is_empty());
        // The entry's check time is the read's start, not the insert's.
        let mark = cache.begin_read(NOW);
        cache.insert(&ts[2], cached(&ts[2]), &mark);
        assert!(matches!(
            cache.get(&ts[2], NOW + SECOND, SECOND),
            Lookup::Stale(_)
        ));
    }

    #[test]
    fn debug_never_shows_the_stored_hash() {
        let t = tokens(1).pop().unwrap();
        let shown = format!("{:?}", cached(&t));
        assert!(
            shown.contains("[REDACTED]") && !shown.contains("scrypt"),
            "{shown}"
        );
    }

    #[test]
    fn zero_staleness_makes_every_hit_stale() {
        let cache = Cache::new(10, [1; 32]);
        let t = tokens(1).pop().unwrap();
        cache.insert(&t, cached(&t), &cache.begin_read(NOW));
        assert!(matches!(
            cache.get(&t, NOW, Duration::ZERO),
            Lookup::Stale(_)
        ));
    }
}

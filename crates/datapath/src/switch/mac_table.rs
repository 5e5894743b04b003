//! The switch's MAC table: which port each (VLAN, MAC) was last seen on, with aging.
//!
//! Learning runs on every frame, so the common cases — a known source seen again on the same port,
//! or on another port (it moved; or two ports claim one MAC and it flaps, as with testpmd's
//! flowgen) — take only the read lock and store into the entry's atomics, like the Linux bridge's
//! fdb update; the write lock is taken only when a station appears. A table that is full learns nothing more (a guest flooding random
//! source MACs cannot grow it without bound); unknown destinations are then flooded.
//!
//! Every change of where a station lives (learned, moved, aged out, forgotten) bumps a generation
//! number, so a forwarding thread may keep answers it read (see `Sender`) until it changes.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use super::PortId;

pub type Mac = [u8; 6];

/// Most (VLAN, MAC) entries the table holds.
pub const MAX_MAC_ENTRIES: usize = 8192;

struct Entry {
    port: AtomicU32,
    /// Milliseconds since the table's epoch when the station last sent a frame.
    last_seen_ms: AtomicU64,
}

/// One row of the table, for listings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacEntry {
    pub vlan: u16,
    pub mac: Mac,
    pub port: PortId,
    pub age: Duration,
}

pub struct MacTable {
    entries: RwLock<HashMap<u64, Entry, KeyHasher>>,
    /// Bumped (under the write lock) whenever an entry is added, moved or removed.
    generation: AtomicU64,
    epoch_ms: u64,
    aging: Duration,
}

/// (VLAN, MAC) packed into one word: VLAN in the top 16 bits.
pub(super) fn key(vlan: u16, mac: Mac) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[..2].copy_from_slice(&vlan.to_be_bytes());
    bytes[2..].copy_from_slice(&mac);
    u64::from_be_bytes(bytes)
}

fn unkey(key: u64) -> (u16, Mac) {
    let bytes = key.to_be_bytes();
    (u16::from_be_bytes([bytes[0], bytes[1]]), bytes[2..].try_into().unwrap())
}

/// Hashes a packed key with murmur3's 64-bit finaliser over key ^ a per-table random seed: cheap,
/// and the seed keeps a guest choosing source MACs from predicting bucket collisions.
#[derive(Clone)]
struct KeyHasher {
    seed: u64,
}

impl KeyHasher {
    fn random() -> KeyHasher {
        // RandomState is seeded from the OS; hashing the address of a fresh value with it gives a
        // random u64 without another dependency.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(&h as *const _ as usize);
        KeyHasher { seed: h.finish() }
    }
}

struct MixHasher {
    seed: u64,
    value: u64,
}

impl Hasher for MixHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        let mut k = value ^ self.seed ^ self.value.rotate_left(29);
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^= k >> 33;
        self.value = k;
    }

    fn finish(&self) -> u64 {
        self.value
    }
}

impl BuildHasher for KeyHasher {
    type Hasher = MixHasher;
    fn build_hasher(&self) -> MixHasher {
        MixHasher { seed: self.seed, value: 0 }
    }
}

/// Milliseconds on CLOCK_MONOTONIC_COARSE (vDSO, no syscall, ~4 ms resolution).
fn coarse_now_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists on Linux ≥ 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// What learning did, for counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    Known,
    New,
    Moved,
    TableFull,
}

impl MacTable {
    pub fn new(aging: Duration) -> MacTable {
        MacTable {
            entries: RwLock::new(HashMap::with_hasher(KeyHasher::random())),
            generation: AtomicU64::new(0),
            epoch_ms: coarse_now_ms(),
            aging,
        }
    }

    /// Milliseconds since the table's epoch, on the clock `last_seen` is kept in.
    pub(super) fn now_ms(&self) -> u64 {
        coarse_now_ms().saturating_sub(self.epoch_ms)
    }

    pub(super) fn aging_ms(&self) -> u64 {
        self.aging.as_millis() as u64
    }

    /// Changes whenever a station is added, moved or removed: answers read while it stays the same
    /// are still true (a live entry can only get younger).
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Records that `mac` (a unicast source) sent a frame on `port`.
    pub fn learn(&self, vlan: u16, mac: Mac, port: PortId) -> Learned {
        let now = self.now_ms();
        {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = entries.get(&key(vlan, mac)) {
                return self.refresh(entry, port, now);
            }
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get(&key(vlan, mac)) {
            return self.refresh(entry, port, now); // learned by another thread meanwhile
        }
        if entries.len() >= MAX_MAC_ENTRIES {
            self.expire_locked(&mut entries, now);
            if entries.len() >= MAX_MAC_ENTRIES {
                return Learned::TableFull;
            }
        }
        entries.insert(key(vlan, mac), Entry { port: AtomicU32::new(port), last_seen_ms: AtomicU64::new(now) });
        self.changed();
        Learned::New
    }

    /// A known station sent a frame on `port` at `now`.
    fn refresh(&self, entry: &Entry, port: PortId, now: u64) -> Learned {
        entry.last_seen_ms.store(now, Ordering::Relaxed);
        if entry.port.load(Ordering::Relaxed) == port {
            return Learned::Known;
        }
        entry.port.store(port, Ordering::Relaxed);
        self.changed();
        Learned::Moved
    }

    /// The port `mac` was last seen on, unless that was longer ago than the aging time at `now`,
    /// and until when (at least) the entry stays live.
    pub(super) fn lookup_live(&self, vlan: u16, mac: Mac, now: u64) -> Option<(PortId, u64)> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(&key(vlan, mac))?;
        let live_until = entry.last_seen_ms.load(Ordering::Relaxed).saturating_add(self.aging_ms());
        (now <= live_until).then_some((entry.port.load(Ordering::Relaxed), live_until))
    }

    /// Forgets every station on `port` (the port went away).
    pub fn forget_port(&self, port: PortId) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let before = entries.len();
        entries.retain(|_, e| e.port.load(Ordering::Relaxed) != port);
        if entries.len() != before {
            self.changed();
        }
    }

    /// Points `mac` at `port` at once (e.g. a RARP announcing a migrated guest).
    pub fn assign(&self, vlan: u16, mac: Mac, port: PortId) {
        self.learn(vlan, mac, port);
    }

    /// Live entries (expired ones are dropped first), sorted by port then MAC.
    pub fn entries(&self) -> Vec<MacEntry> {
        let now = self.now_ms();
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.expire_locked(&mut entries, now);
        let mut rows: Vec<MacEntry> = entries
            .iter()
            .map(|(&k, e)| (unkey(k), e))
            .map(|((vlan, mac), e)| MacEntry {
                vlan,
                mac,
                port: e.port.load(Ordering::Relaxed),
                age: Duration::from_millis(now.saturating_sub(e.last_seen_ms.load(Ordering::Relaxed))),
            })
            .collect();
        rows.sort_by_key(|r| (r.port, r.mac, r.vlan));
        rows
    }

    fn expire_locked(&self, entries: &mut HashMap<u64, Entry, KeyHasher>, now: u64) {
        let aging = self.aging_ms();
        let before = entries.len();
        entries.retain(|_, e| now.saturating_sub(e.last_seen_ms.load(Ordering::Relaxed)) <= aging);
        if entries.len() != before {
            self.changed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl MacTable {
        fn lookup(&self, vlan: u16, mac: Mac) -> Option<PortId> {
            self.lookup_live(vlan, mac, self.now_ms()).map(|(port, _)| port)
        }
    }

    const A: Mac = [2, 0, 0, 0, 0, 0xa];
    const B: Mac = [2, 0, 0, 0, 0, 0xb];

    #[test]
    fn learns_looks_up_and_moves() {
        let t = MacTable::new(Duration::from_secs(300));
        assert_eq!(t.lookup(0, A), None);
        assert_eq!(t.learn(0, A, 1), Learned::New);
        assert_eq!(t.learn(0, A, 1), Learned::Known);
        assert_eq!(t.lookup(0, A), Some(1));
        assert_eq!(t.learn(0, A, 2), Learned::Moved);
        assert_eq!(t.lookup(0, A), Some(2));
    }

    #[test]
    fn vlans_are_separate_tables() {
        let t = MacTable::new(Duration::from_secs(300));
        t.learn(10, A, 1);
        assert_eq!(t.lookup(20, A), None);
        assert_eq!(t.lookup(10, A), Some(1));
    }

    #[test]
    fn entries_age_out() {
        let t = MacTable::new(Duration::from_millis(30));
        t.learn(0, A, 1);
        assert_eq!(t.lookup(0, A), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.lookup(0, A), None);
        assert!(t.entries().is_empty());
    }

    #[test]
    fn forgetting_a_port_drops_its_stations_only() {
        let t = MacTable::new(Duration::from_secs(300));
        t.learn(0, A, 1);
        t.learn(0, B, 2);
        t.forget_port(1);
        assert_eq!(t.lookup(0, A), None);
        assert_eq!(t.lookup(0, B), Some(2));
    }

    #[test]
    fn a_full_table_learns_nothing_more() {
        let t = MacTable::new(Duration::from_secs(300));
        for i in 0..MAX_MAC_ENTRIES {
            let mac = [2, 0, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            assert_ne!(t.learn(0, mac, 1), Learned::TableFull);
        }
        let newcomer = [2, 0xee, 0, 0, 0, 1];
        assert_eq!(t.learn(0, newcomer, 1), Learned::TableFull);
        assert_eq!(t.lookup(0, newcomer), None);
    }
}

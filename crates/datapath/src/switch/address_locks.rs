//! Port security: addresses locked to ports. A port with locked addresses sends only from them,
//! and no other port sends from them: a frame breaking either rule is dropped (`drop_spoofed`),
//! so one guest cannot take another's traffic by claiming its address. The switch keeps one table
//! for MACs (`--port NAME=PATH,mac=MAC`: a port locks one) and one for IP addresses, IPv4 and IPv6
//! (`,ip=ADDR`: a port may lock several; `ip_guard` says which addresses a frame claims). Several
//! ports may lock one address: the two ends of a guest's live migration within the switch. An
//! address can also be reserved with no port locked to it (a named port while its guest is away:
//! rebooting, or between back-end connections), so that nobody takes it meanwhile. Locks are not
//! per VLAN: a MAC belongs to a NIC whatever its VLAN, and so does the address a guest configures
//! on it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::PortId;

struct Locks<A> {
    /// Each locked port's addresses.
    by_port: HashMap<PortId, Arc<[A]>>,
    /// Every locked address, with how many ports lock it: an unlocked port's frame is checked with
    /// one lookup, however many ports there are (an uplink may carry many senders).
    locked: HashMap<A, u32>,
    /// Reserved addresses, with how many reservations each has.
    reserved: HashMap<A, u32>,
}

impl<A: Copy + Eq + Hash> Locks<A> {
    fn count(counts: &mut HashMap<A, u32>, address: A, up: bool) {
        let n = counts.entry(address).or_default();
        if up {
            *n += 1;
        } else {
            *n -= 1;
            if *n == 0 {
                counts.remove(&address);
            }
        }
    }

    /// Sets (or, with None, removes) `port`'s lock; says whether that changed anything.
    fn set(&mut self, port: PortId, addresses: Option<&[A]>) -> bool {
        let old = match addresses {
            Some(new) => self.by_port.insert(port, new.into()),
            None => self.by_port.remove(&port),
        };
        if old.as_deref() == addresses {
            return false;
        }
        for &address in old.iter().flat_map(|a| a.iter()) {
            Self::count(&mut self.locked, address, false);
        }
        for &address in addresses.unwrap_or_default() {
            Self::count(&mut self.locked, address, true);
        }
        true
    }
}

pub struct AddressLocks<A> {
    locks: RwLock<Locks<A>>,
    /// Bumped after every change; 0 while nothing was ever locked (forwarders then skip the check).
    generation: AtomicU64,
}

impl<A> Default for AddressLocks<A> {
    fn default() -> Self {
        AddressLocks {
            locks: RwLock::new(Locks { by_port: HashMap::new(), locked: HashMap::new(), reserved: HashMap::new() }),
            generation: AtomicU64::new(0),
        }
    }
}

impl<A: Copy + Eq + Hash> AddressLocks<A> {
    /// Locks `port` to `addresses` (replacing an earlier lock of that port).
    pub fn lock(&self, port: PortId, addresses: &[A]) {
        self.change(|locks| locks.set(port, Some(addresses)));
    }

    /// Forgets `port`'s lock (the port is removed).
    pub fn unlock(&self, port: PortId) {
        self.change(|locks| locks.set(port, None));
    }

    /// Keeps every port without a lock of its own from sending from `address` until `release`.
    pub fn reserve(&self, address: A) {
        self.change(|locks| {
            Locks::count(&mut locks.reserved, address, true);
            true
        });
    }

    /// Ends one `reserve` of `address`.
    pub fn release(&self, address: A) {
        self.change(|locks| match locks.reserved.get(&address) {
            Some(_) => {
                Locks::count(&mut locks.reserved, address, false);
                !locks.reserved.contains_key(&address)
            }
            None => false,
        });
    }

    /// The addresses `port` is locked to, if it is locked.
    pub fn of_port(&self, port: PortId) -> Option<Arc<[A]>> {
        self.read().by_port.get(&port).cloned()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether `port` may send from `src`: one of its own locked addresses if it has a lock, and
    /// otherwise any address that is neither locked to a port nor reserved.
    #[inline(never)]
    pub fn allows(&self, port: PortId, src: A) -> bool {
        let locks = self.read();
        match locks.by_port.get(&port) {
            Some(own) => own.contains(&src),
            None => !locks.reserved.contains_key(&src) && !locks.locked.contains_key(&src),
        }
    }

    /// `allows`, answered from `memo` (the last address allowed, with the generation then) while
    /// the locks are unchanged: a port sends from one address frame after frame, so the lookup is
    /// rare. Always true while nothing was ever locked.
    #[inline(always)]
    pub fn allows_remembered(&self, port: PortId, src: A, memo: &mut Option<(A, u64)>) -> bool {
        let generation = self.generation();
        if generation == 0 || *memo == Some((src, generation)) {
            return true;
        }
        let allowed = self.allows(port, src);
        if allowed {
            *memo = Some((src, generation));
        }
        allowed
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Locks<A>> {
        self.locks.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `change` (which says whether it changed what `allows` answers) under the write lock.
    fn change(&self, change: impl FnOnce(&mut Locks<A>) -> bool) {
        let mut locks = self.locks.write().unwrap_or_else(|e| e.into_inner());
        if change(&mut locks) {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_locked_while_any_port_locks_it_and_a_new_lock_replaces_the_old() {
        let locks = AddressLocks::<u8>::default();
        assert!(locks.allows(9, 1), "nothing locked");
        locks.lock(1, &[1, 2]);
        locks.lock(2, &[2]);
        assert!(!locks.allows(9, 1) && !locks.allows(9, 2));
        assert!(locks.allows(1, 2) && locks.allows(2, 2) && !locks.allows(2, 1), "a locked port sends from its own only");
        locks.unlock(2);
        assert!(!locks.allows(9, 2), "still port 1's");
        locks.lock(1, &[3]);
        assert!(locks.allows(9, 1) && locks.allows(9, 2) && !locks.allows(9, 3), "port 1's new lock replaced its old one");
        let generation = locks.generation();
        locks.lock(1, &[3]);
        locks.unlock(7);
        assert_eq!(locks.generation(), generation, "no change, no new generation (no memo is thrown away)");
    }

    #[test]
    fn a_reserved_address_is_free_again_after_as_many_releases() {
        let locks = AddressLocks::<u8>::default();
        locks.reserve(1);
        locks.reserve(1);
        locks.release(1);
        assert!(!locks.allows(9, 1));
        locks.release(1);
        assert!(locks.allows(9, 1));
        locks.release(1); // one too many: nothing to end
        assert!(locks.allows(9, 1));
    }
}

//! Port security: addresses locked to ports. A port with locked addresses sends only from them,
//! and no other port sends from them: a frame breaking either rule is dropped (`drop_spoofed`),
//! so one guest cannot take another's traffic by claiming its address. The switch keeps one table
//! for MACs (`--port NAME=PATH,mac=MAC`: a port locks one) and one for IPv4 addresses (`,ip=ADDR`:
//! a port may lock several; `ip_guard` says which address a frame claims). Several ports may lock
//! one address: the two ends of a guest's live migration within the switch. An address can also
//! be reserved with no port locked to it (a named port while its guest is away: rebooting, or
//! between back-end connections), so that nobody takes it meanwhile. Locks are not per VLAN: a
//! MAC belongs to a NIC whatever its VLAN, and so does the address a guest configures on it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::PortId;

struct Locks<A> {
    /// Each locked port's addresses.
    by_port: HashMap<PortId, Arc<[A]>>,
    /// Reserved addresses, with how many reservations each has.
    reserved: HashMap<A, u32>,
}

pub struct AddressLocks<A> {
    locks: RwLock<Locks<A>>,
    /// Bumped after every change; 0 while nothing was ever locked (forwarders then skip the check).
    generation: AtomicU64,
}

impl<A> Default for AddressLocks<A> {
    fn default() -> Self {
        AddressLocks {
            locks: RwLock::new(Locks { by_port: HashMap::new(), reserved: HashMap::new() }),
            generation: AtomicU64::new(0),
        }
    }
}

impl<A: Copy + Eq + Hash> AddressLocks<A> {
    /// Locks `port` to `addresses` (replacing an earlier lock of that port).
    pub fn lock(&self, port: PortId, addresses: &[A]) {
        self.change(|locks| locks.by_port.insert(port, addresses.into()).is_none_or(|old| *old != *addresses));
    }

    /// Forgets `port`'s lock (the port is removed).
    pub fn unlock(&self, port: PortId) {
        self.change(|locks| locks.by_port.remove(&port).is_some());
    }

    /// Keeps every port without a lock of its own from sending from `address` until `release`.
    pub fn reserve(&self, address: A) {
        self.change(|locks| {
            *locks.reserved.entry(address).or_default() += 1;
            true
        });
    }

    /// Ends one `reserve` of `address`.
    pub fn release(&self, address: A) {
        self.change(|locks| match locks.reserved.get_mut(&address) {
            Some(1) => locks.reserved.remove(&address).is_some(),
            Some(n) => {
                *n -= 1;
                false
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
    pub fn allows(&self, port: PortId, src: A) -> bool {
        let locks = self.read();
        match locks.by_port.get(&port) {
            Some(own) => own.contains(&src),
            None => !locks.reserved.contains_key(&src) && !locks.by_port.values().any(|locked| locked.contains(&src)),
        }
    }

    /// `allows`, answered from `memo` (the last address allowed, with the generation then) while
    /// the locks are unchanged: a port sends from one address frame after frame, so the lookup is
    /// rare. Always true while nothing was ever locked.
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

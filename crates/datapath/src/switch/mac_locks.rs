//! Port security: MACs locked to ports (`--port NAME=PATH,mac=MAC`). A port with a locked MAC
//! sends only from that MAC, and no other port sends from it: a frame breaking either rule is
//! dropped (`drop_spoofed`), so one guest cannot take another's traffic by sending from its
//! address. Several ports may lock one MAC: the two ends of a guest's live migration within the
//! switch. A MAC can also be reserved with no port locked to it (a named port while its guest is
//! away: rebooting, or between back-end connections), so that nobody takes it meanwhile. A MAC
//! belongs to a NIC whatever its VLAN, so locks are not per VLAN.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use super::mac_table::Mac;
use super::PortId;

#[derive(Default)]
struct Locks {
    /// Each locked port's MAC.
    by_port: HashMap<PortId, Mac>,
    /// Reserved MACs, with how many reservations each has.
    reserved: HashMap<Mac, u32>,
}

#[derive(Default)]
pub struct MacLocks {
    locks: RwLock<Locks>,
    /// Bumped after every change; 0 while nothing was ever locked (forwarders then skip the check).
    generation: AtomicU64,
}

impl MacLocks {
    /// Locks `port` to `mac` (replacing an earlier lock of that port).
    pub fn lock(&self, port: PortId, mac: Mac) {
        self.change(|locks| locks.by_port.insert(port, mac).is_none_or(|old| old != mac));
    }

    /// Forgets `port`'s lock (the port is removed).
    pub fn unlock(&self, port: PortId) {
        self.change(|locks| locks.by_port.remove(&port).is_some());
    }

    /// Keeps every port without a lock of its own from sending from `mac` until `release`.
    pub fn reserve(&self, mac: Mac) {
        self.change(|locks| {
            *locks.reserved.entry(mac).or_default() += 1;
            true
        });
    }

    /// Ends one `reserve` of `mac`.
    pub fn release(&self, mac: Mac) {
        self.change(|locks| match locks.reserved.get_mut(&mac) {
            Some(1) => locks.reserved.remove(&mac).is_some(),
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        });
    }

    /// The MAC `port` is locked to, if any.
    pub fn of_port(&self, port: PortId) -> Option<Mac> {
        self.locks.read().unwrap_or_else(|e| e.into_inner()).by_port.get(&port).copied()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether `port` may send frames from `src`: its own locked MAC if it has one, and otherwise
    /// any MAC that is neither locked to a port nor reserved.
    pub fn allows(&self, port: PortId, src: Mac) -> bool {
        let locks = self.locks.read().unwrap_or_else(|e| e.into_inner());
        match locks.by_port.get(&port) {
            Some(own) => *own == src,
            None => !locks.reserved.contains_key(&src) && !locks.by_port.values().any(|locked| *locked == src),
        }
    }

    /// Applies `change` (which says whether it changed what `allows` answers) under the write lock.
    fn change(&self, change: impl FnOnce(&mut Locks) -> bool) {
        let mut locks = self.locks.write().unwrap_or_else(|e| e.into_inner());
        if change(&mut locks) {
            self.generation.fetch_add(1, Ordering::Release);
        }
    }
}

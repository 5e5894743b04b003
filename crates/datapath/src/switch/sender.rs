//! What one forwarding thread keeps between the frames it forwards from one port: the guest
//! destinations whose RX used rings it still has to publish, its memo of MAC-table answers and
//! its copy of the port list.
//!
//! Why: for a small frame the switch's own bookkeeping cost more than the copy. Publishing a
//! destination's used.idx (fences, the interrupt decision) once per batch instead of per frame,
//! and re-using the last source/destination answers and the port list while their generations are
//! unchanged (no read locks, no hashing per frame) removes most of it.

use std::sync::Arc;

use super::ip_guard::IpKey;
use super::mac_table::{key, Mac, MacTable};
use super::{Finisher, PortCounters, PortId, PortList, Sink, SwitchPort};

/// A source's entry is refreshed in the table at most this often (aging is minutes; `ctl macs`
/// may show an active station up to this much older than it is).
const LEARN_REFRESH_MS: u64 = 1000;

#[derive(Default)]
pub struct Sender {
    pub(super) deliveries: Deliveries,
    pub(super) memo: Memo,
    /// The switch's port list as last read, with the generation it was read at.
    pub(super) ports: Option<(u64, PortList)>,
    /// Finishes offloaded frames for ports that do not take them as they are.
    pub(super) finisher: Finisher,
    /// Frames and bytes forwarded from the port since the last `publish`, not yet counted on it.
    pub(super) from_frames: u64,
    pub(super) from_bytes: u64,
    /// The MAC table's clock, read at the batch's first frame: a batch lasts microseconds and
    /// aging counts in seconds, so its frames share one reading (no clock read per frame).
    pub(super) batch_now: Option<u64>,
    /// Port security's last answers for this port, with the locks' generation then: the last
    /// source MAC and IP address allowed, and whether the port itself is locked to IP addresses.
    pub(super) allowed_mac: Option<(Mac, u64)>,
    pub(super) allowed_ip: Option<(IpKey, u64)>,
    pub(super) ip_locked: Option<(u64, bool)>,
}

impl Sender {
    /// Makes every frame delivered since the last call visible to its guest (and interrupts it
    /// if it asked for that), and counts the frames forwarded from `from` meanwhile (once per
    /// batch: a locked add per frame would wait each time for the frame's stores to drain).
    pub fn publish(&mut self, from: &SwitchPort) {
        self.deliveries.publish();
        self.batch_now = None;
        if self.from_frames > 0 {
            PortCounters::add(&from.counters.from_port_frames, std::mem::take(&mut self.from_frames));
            PortCounters::add(&from.counters.from_port_bytes, std::mem::take(&mut self.from_bytes));
        }
    }
}

/// Guest ports given frames since the last `publish`. Until then the frames sit complete in the
/// guests' buffers, their used elements written but used.idx not yet moved.
#[derive(Default)]
pub(super) struct Deliveries(Vec<Arc<SwitchPort>>);

impl Deliveries {
    /// Notes that `port`'s guest was given a frame to publish.
    pub(super) fn note(&mut self, port: &Arc<SwitchPort>) {
        if !self.0.iter().any(|p| Arc::ptr_eq(p, port)) {
            self.0.push(port.clone());
        }
    }

    fn publish(&mut self) {
        for port in self.0.drain(..) {
            if let Sink::Guest { rx, .. } = &mut *port.sink() {
                rx.publish();
            }
        }
    }
}

/// MAC-table answers, all read while the table had generation `generation`.
#[derive(Default)]
pub(super) struct Memo {
    generation: u64,
    /// The source key last learned, its port, and when it was last refreshed in the table.
    learned: Option<(u64, PortId, u64)>,
    /// The destination key last looked up, its port (None: unknown, flooded), and until when that
    /// answer holds at least.
    destination: Option<(u64, Option<Arc<SwitchPort>>, u64)>,
}

impl Memo {
    /// Forgets everything if the table changed since it was read.
    pub(super) fn check_generation(&mut self, macs: &MacTable) {
        let generation = macs.generation();
        if self.generation != generation {
            *self = Memo { generation, ..Memo::default() };
        }
    }

    /// Whether (vlan, mac) on `port` was learned recently enough that the table needs no refresh.
    pub(super) fn recently_learned(&self, vlan: u16, mac: Mac, port: PortId, now: u64) -> bool {
        matches!(self.learned, Some((k, p, at)) if k == key(vlan, mac) && p == port && now.saturating_sub(at) < LEARN_REFRESH_MS)
    }

    /// Notes that (vlan, mac) was just learned on `port` (after re-checking the generation, which
    /// learning a new station bumps).
    pub(super) fn learned(&mut self, macs: &MacTable, vlan: u16, mac: Mac, port: PortId, now: u64) {
        self.check_generation(macs);
        self.learned = Some((key(vlan, mac), port, now));
    }

    /// The remembered answer for destination (vlan, mac) — its port, or None if it is unknown —
    /// if there is one that still holds at `now`.
    pub(super) fn destination(&self, vlan: u16, mac: Mac, now: u64) -> Option<Option<&Arc<SwitchPort>>> {
        match &self.destination {
            Some((k, port, live_until)) if *k == key(vlan, mac) && now <= *live_until => Some(port.as_ref()),
            _ => None,
        }
    }

    pub(super) fn remember_destination(&mut self, vlan: u16, mac: Mac, port: Option<Arc<SwitchPort>>, live_until: u64) {
        self.destination = Some((key(vlan, mac), port, live_until));
    }
}

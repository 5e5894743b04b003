//! Per-port switch counters, from the port's side: frames the switch delivered to the port
//! (`to_port_*`), frames the port sent into the switch (`from_port_*`), and drops by reason.
//! Relaxed atomics: each counter is exact, a snapshot is not a consistent cut.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct PortCounters {
    pub to_port_frames: AtomicU64,
    pub to_port_bytes: AtomicU64,
    pub from_port_frames: AtomicU64,
    pub from_port_bytes: AtomicU64,
    /// The port's guest had no RX buffer for a frame: dropped, the sender is not held up.
    pub drop_no_buffer: AtomicU64,
    /// The port's receive side is not ready (ring not started or not enabled, uplink closed).
    pub drop_not_ready: AtomicU64,
    /// A frame from the port shorter than an Ethernet header.
    pub drop_runt: AtomicU64,
    /// A frame from the port larger than the segment's MTU allows.
    pub drop_too_big: AtomicU64,
    /// A VLAN-tagged frame from an access port (VLAN ≠ 0), which carries untagged frames only.
    pub drop_tagged: AtomicU64,
    /// A frame from the port that port security refuses (`AddressLocks`, `ip_guard`): from
    /// another MAC than the port's locked one, or from one locked to another port; claiming an
    /// IPv4 address (IPv4 source, ARP sender) the same way; anything but IPv4, ARP and RARP from
    /// a port locked to IPv4 addresses.
    pub drop_spoofed: AtomicU64,
    /// Writing to the port failed (uplink socket full or gone).
    pub drop_port_error: AtomicU64,
    /// An offloaded frame from the port (checksum / GSO request) that cannot be finished: an
    /// unoffered GSO type, offsets outside the frame, GSO that is not Ethernet/IP/TCP.
    pub drop_bad_offload: AtomicU64,
    /// Source MACs the table was too full to learn.
    pub learn_table_full: AtomicU64,
}

/// The counters as plain numbers, named for listings.
pub type PortCountersSnapshot = Vec<(&'static str, u64)>;

impl PortCounters {
    /// Adds `n` to a counter whose writers all hold one lock (the port's sink lock): a plain load
    /// and store, no locked read-modify-write; readers still see whole values.
    pub fn add_serialized(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> PortCountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("toPortFrames", get(&self.to_port_frames)),
            ("toPortBytes", get(&self.to_port_bytes)),
            ("fromPortFrames", get(&self.from_port_frames)),
            ("fromPortBytes", get(&self.from_port_bytes)),
            ("dropNoBuffer", get(&self.drop_no_buffer)),
            ("dropNotReady", get(&self.drop_not_ready)),
            ("dropRunt", get(&self.drop_runt)),
            ("dropTooBig", get(&self.drop_too_big)),
            ("dropTagged", get(&self.drop_tagged)),
            ("dropSpoofed", get(&self.drop_spoofed)),
            ("dropPortError", get(&self.drop_port_error)),
            ("dropBadOffload", get(&self.drop_bad_offload)),
            ("learnTableFull", get(&self.learn_table_full)),
        ]
    }
}

//! Per queue pair traffic counters: written by the worker thread, read by anyone (Relaxed atomics;
//! each counter is exact on its own, a snapshot is not a consistent cut across counters).

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one queue pair. Byte counts are frame bytes, without the virtio-net header.
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames written into the guest's RX buffers.
    pub rx_frames: AtomicU64,
    /// Bytes of those frames.
    pub rx_bytes: AtomicU64,
    /// Frames the port had to discard because the guest posted no RX buffers (a TAP keeps them
    /// queued instead, so only ports without a queue of their own count here).
    pub rx_dropped_no_buffer: AtomicU64,
    /// Frames larger than the RX buffers given for them: delivered cut short.
    pub rx_truncated: AtomicU64,
    /// Frames the guest sent that reached the port.
    pub tx_frames: AtomicU64,
    /// Bytes of those frames.
    pub tx_bytes: AtomicU64,
    /// TX chains dropped without reaching the port: malformed (shorter than the header, too long,
    /// too many segments) or sent on a ring the front-end has disabled.
    pub tx_dropped: AtomicU64,
    /// TX frames the port refused (write error, e.g. an inconsistent GSO header).
    pub tx_errors: AtomicU64,
}

/// A plain copy of `Counters` at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub rx_dropped_no_buffer: u64,
    pub rx_truncated: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
    pub tx_errors: u64,
}

impl Counters {
    pub fn new() -> Counters {
        Counters::default()
    }

    /// Reads every counter once.
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            rx_frames: get(&self.rx_frames),
            rx_bytes: get(&self.rx_bytes),
            rx_dropped_no_buffer: get(&self.rx_dropped_no_buffer),
            rx_truncated: get(&self.rx_truncated),
            tx_frames: get(&self.tx_frames),
            tx_bytes: get(&self.tx_bytes),
            tx_dropped: get(&self.tx_dropped),
            tx_errors: get(&self.tx_errors),
        }
    }

    /// Adds `n` to one counter (the worker's only way of writing them).
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
